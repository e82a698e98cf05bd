//! `xds_replay`: the smallest ADS server there can be, the baseline of the fan-out
//! benchmark (`cargo run --release --example fanout -- --baseline`). It holds responses
//! already encoded (read from stdin) and writes them, byte for byte, to every connected
//! ADS stream when told to. It decodes nothing, compiles nothing and tracks no state per
//! stream, so the time it takes is the practical limit of writing those bytes to those
//! streams on this machine.
//!
//! Commands, one per line on stdin:
//! - `load <id> <base64>`: hold a response's encoded bytes as `<id>`;
//! - `initial <id>`: streams that open from now on get `<id>` first;
//! - `push <id>`: write `<id>` to every open stream.
//!
//! It answers each command with `ok` once done (a stream opened after the answer to
//! `initial` gets the initial response), prints `listening <address>` once it accepts
//! streams (on a free loopback port),
//! serves both `StreamAggregatedResources` and `DeltaAggregatedResources` (the bytes say
//! which kind of response they are), and exits when stdin closes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use base64::Engine;
use bytes::{Buf, BufMut, Bytes};
use parking_lot::Mutex;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::NamedService;
use tonic::{Status, Streaming};

const SOTW: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Passes message bytes through untouched, both ways.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

type Outbound = mpsc::UnboundedSender<Result<Bytes, Status>>;

/// The open streams and what a new one gets first.
#[derive(Debug, Default)]
struct State {
    streams: Vec<Outbound>,
    initial: Option<Bytes>,
}

/// The ADS service.
#[derive(Debug, Clone, Default)]
struct Replay(Arc<Mutex<State>>);

impl NamedService for Replay {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

/// One ADS call: requests are read and dropped; responses come from `push`.
struct Call(Arc<Mutex<State>>);

impl Service<tonic::Request<Streaming<Bytes>>> for Call {
    type Response = tonic::Response<UnboundedReceiverStream<Result<Bytes, Status>>>;
    type Error = Status;
    type Future = std::future::Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<Streaming<Bytes>>) -> Self::Future {
        let mut inbound = request.into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.0.lock();
        if let Some(first) = &state.initial {
            let _ = tx.send(Ok(first.clone()));
        }
        state.streams.push(tx);
        std::future::ready(Ok(tonic::Response::new(UnboundedReceiverStream::new(rx))))
    }
}

impl<B> Service<http::Request<B>> for Replay
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let path = request.uri().path();
            if path != SOTW && path != DELTA {
                return Ok(Status::unimplemented(format!("{path} is not served")).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_max_message_size_config(Some(64 << 20), Some(64 << 20));
            Ok(grpc.streaming(Call(state), request).await)
        })
    }
}

impl Replay {
    /// Writes `bytes` to every open stream.
    fn push(&self, bytes: &Bytes) {
        let mut state = self.0.lock();
        state
            .streams
            .retain(|tx| tx.send(Ok(bytes.clone())).is_ok());
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let replay = Replay::default();
    let incoming = TcpListenerStream::new(listener).map(|connection| {
        connection.inspect(|c| {
            let _ = c.set_nodelay(true);
        })
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(replay.clone())
            .serve_with_incoming(incoming),
    );
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {address}")?;
    stdout.flush()?;

    let mut held: HashMap<String, Bytes> = HashMap::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split(' ');
        let (command, id) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let known = |held: &HashMap<String, Bytes>| {
            held.get(id)
                .cloned()
                .ok_or_else(|| format!("no response held as {id:?}"))
        };
        match command {
            "load" => {
                let encoded = words.next().unwrap_or("");
                let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
                held.insert(id.to_string(), Bytes::from(bytes));
            }
            "initial" => replay.0.lock().initial = Some(known(&held)?),
            "push" => replay.push(&known(&held)?),
            "" => continue,
            other => return Err(format!("unknown command {other:?}").into()),
        }
        writeln!(stdout, "ok")?;
        stdout.flush()?;
    }
    Ok(())
}
