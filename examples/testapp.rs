//! The application of the local mesh (`tests/localmesh/`, `examples/colorapp/`): a server
//! that answers with its own name over HTTP/1.1, HTTP/2 (h2c), gRPC and raw TCP, and can be
//! told to fail or be slow; and the clients that call it from inside a task's network
//! namespace (so that their connections go through that task's Envoy).
//!
//! ```text
//! testapp serve --name red --http 9080 --tcp 7000     # prints READY once listening
//! testapp http http://colorteller.local:9080/ --count 10 -H 'x-fail-first: 1'
//! testapp grpc http://colorteller.local:9080 --method testapp.Colors/Get
//! testapp tcp colorteller.local:7000 --count 3
//! ```
//!
//! HTTP and gRPC behaviour is steered by request headers (gRPC metadata):
//! - `x-test-id: ID` counts attempts per ID (a retry is the same ID again);
//! - `x-fail-first: N` fails the first N attempts of the ID (HTTP status `x-fail-status`,
//!   default 503; gRPC `UNAVAILABLE`);
//! - `x-fail: STATUS` always fails with that HTTP status;
//! - `x-delay-ms: MS` waits that long before answering.
//!
//! An HTTP answer is one line: `name=<name> method=<m> path=<path> host=<host> attempt=<n>
//! proto=<HTTP/1.1|HTTP/2>`. Clients print one line per request: `<status> <body line>`, or
//! `ERR <reason>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http;
use axum::response::{IntoResponse, Response};
use clap::{Parser, Subcommand};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The gRPC request: who is asking.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ask {
    /// Free text.
    #[prost(string, tag = "1")]
    pub text: String,
}

/// The gRPC answer: who answered, and which method was called.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Answer {
    /// The server's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The gRPC path called.
    #[prost(string, tag = "2")]
    pub method: String,
    /// Which attempt of the request id this was.
    #[prost(uint32, tag = "3")]
    pub attempt: u32,
}

#[derive(Parser)]
#[command(about = "The local mesh's test application and clients")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP/1.1, h2c and gRPC on each `--http` port, raw TCP on each `--tcp` port.
    Serve {
        /// The name the server answers with.
        #[arg(long)]
        name: String,
        /// HTTP ports (HTTP/1.1, HTTP/2 with prior knowledge, gRPC).
        #[arg(long)]
        http: Vec<u16>,
        /// TCP ports: a connection that sends something gets `<name>\n`, then what it
        /// sends echoed (with `--server-first`, the name comes first, unasked).
        #[arg(long)]
        tcp: Vec<u16>,
        /// TCP: greet each connection with the name before it sends anything.
        #[arg(long)]
        server_first: bool,
        /// HTTP: call this URL for each request and add its answer to the own
        /// (`... -> <status> <upstream body line>`), as a front end calling a backend.
        #[arg(long)]
        upstream: Option<String>,
        /// The address to bind (default all).
        #[arg(long, default_value = "0.0.0.0")]
        bind: String,
        /// Answer every HTTP request with this status (a broken instance).
        #[arg(long)]
        fail_status: Option<u16>,
    },
    /// HTTP requests; one output line per request.
    Http {
        /// `http://host:port/path?query`.
        url: String,
        /// How many requests (one connection each).
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Extra request header `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// HTTP/2 with prior knowledge instead of HTTP/1.1.
        #[arg(long)]
        h2: bool,
        /// Give each request a fresh `x-test-id` with this prefix.
        #[arg(long)]
        id_prefix: Option<String>,
        /// Give up on a request after this many milliseconds.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
        /// Wait this long between requests.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
    },
    /// gRPC unary calls; one output line per call: `OK <name> <method> attempt=<n>` or
    /// `ERR <code> <message>`.
    Grpc {
        /// `http://host:port`.
        url: String,
        /// `package.Service/Method`.
        #[arg(long)]
        method: String,
        /// Metadata `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// How many calls.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Give each call a fresh `x-test-id` with this prefix.
        #[arg(long)]
        id_prefix: Option<String>,
    },
    /// TCP connections: prints the first line each connection receives.
    Tcp {
        /// `host:port`.
        addr: String,
        /// How many connections.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Wait for the server to speak first (a `--server-first` server) instead of
        /// sending a greeting.
        #[arg(long)]
        server_first: bool,
    },
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        match args.command {
            Command::Serve {
                name,
                http,
                tcp,
                bind,
                fail_status,
                server_first,
                upstream,
            } => {
                let app = Arc::new(App {
                    name,
                    fail_status,
                    upstream,
                    attempts: Mutex::new(HashMap::new()),
                });
                serve(app, http, tcp, bind, server_first).await
            }
            Command::Http {
                url,
                count,
                headers,
                method,
                h2,
                id_prefix,
                timeout_ms,
                interval_ms,
            } => {
                let client = HttpClient {
                    url,
                    headers: parse_headers(&headers),
                    method,
                    timeout: Duration::from_millis(timeout_ms),
                };
                let channel = if h2 { Some(client.h2_channel()) } else { None };
                for i in 0..count {
                    let mut extra = Vec::new();
                    if let Some(prefix) = &id_prefix {
                        extra.push(("x-test-id".to_string(), format!("{prefix}-{i}")));
                    }
                    let line = match &channel {
                        Some(channel) => client.h2(channel.clone(), &extra).await,
                        None => client.h1(&extra).await,
                    };
                    println!("{}", line.unwrap_or_else(|err| format!("ERR {err}")));
                    if interval_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
                    }
                }
            }
            Command::Grpc {
                url,
                method,
                headers,
                count,
                id_prefix,
            } => {
                let headers = parse_headers(&headers);
                let channel = tonic::transport::Endpoint::from_shared(url)
                    .expect("a valid URL")
                    .timeout(Duration::from_secs(30))
                    .connect_lazy();
                for i in 0..count {
                    let mut request = tonic::Request::new(Ask { text: "hi".into() });
                    for (name, value) in &headers {
                        insert_metadata(&mut request, name, value);
                    }
                    if let Some(prefix) = &id_prefix {
                        insert_metadata(&mut request, "x-test-id", &format!("{prefix}-{i}"));
                    }
                    let mut grpc = tonic::client::Grpc::new(channel.clone());
                    let line = match grpc.ready().await {
                        Err(err) => format!("ERR transport {err}"),
                        Ok(()) => {
                            let path = format!("/{method}").parse().expect("a gRPC path");
                            match grpc
                                .unary::<Ask, Answer, _>(
                                    request,
                                    path,
                                    tonic_prost::ProstCodec::default(),
                                )
                                .await
                            {
                                Ok(answer) => {
                                    let answer = answer.into_inner();
                                    format!(
                                        "OK {} {} attempt={}",
                                        answer.name, answer.method, answer.attempt
                                    )
                                }
                                Err(status) => format!(
                                    "ERR {:?} {}",
                                    status.code(),
                                    status.message().replace('\n', " ")
                                ),
                            }
                        }
                    };
                    println!("{line}");
                }
            }
            Command::Tcp {
                addr,
                count,
                server_first,
            } => {
                for _ in 0..count {
                    println!(
                        "{}",
                        tcp_once(&addr, server_first)
                            .await
                            .unwrap_or_else(|err| format!("ERR {err}"))
                    );
                }
            }
        }
    });
}

fn parse_headers(headers: &[String]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            let (name, value) = h.split_once(':').expect("a header is `name: value`");
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect()
}

fn insert_metadata<T>(request: &mut tonic::Request<T>, name: &str, value: &str) {
    let key: tonic::metadata::MetadataKey<tonic::metadata::Ascii> =
        name.parse().expect("a metadata name");
    request
        .metadata_mut()
        .insert(key, value.parse().expect("a metadata value"));
}

// ---- the server ----

struct App {
    name: String,
    fail_status: Option<u16>,
    upstream: Option<String>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl App {
    /// Counts an attempt of the request's `x-test-id` (1 without one).
    fn attempt(&self, headers: &http::HeaderMap) -> u32 {
        match header(headers, "x-test-id") {
            None => 1,
            Some(id) => {
                let mut attempts = self.attempts.lock();
                let n = attempts.entry(id.to_string()).or_insert(0);
                *n += 1;
                *n
            }
        }
    }
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn number(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    header(headers, name).and_then(|v| v.trim().parse().ok())
}

async fn serve(app: Arc<App>, http: Vec<u16>, tcp: Vec<u16>, bind: String, server_first: bool) {
    let router = axum::Router::new().fallback(handle).with_state(app.clone());
    let mut tasks = Vec::new();
    for port in http {
        let listener = TcpListener::bind((bind.as_str(), port))
            .await
            .unwrap_or_else(|err| panic!("cannot bind HTTP port {port}: {err}"));
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        }));
    }
    for port in tcp {
        let listener = TcpListener::bind((bind.as_str(), port))
            .await
            .unwrap_or_else(|err| panic!("cannot bind TCP port {port}: {err}"));
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let name = app.name.clone();
                tokio::spawn(async move {
                    // The client speaks first (a greeting line), as most protocols do.
                    let mut buf = [0u8; 1024];
                    if !server_first && !matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                        return;
                    }
                    let _ = stream.write_all(format!("{name}\n").as_bytes()).await;
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }));
    }
    println!("READY");
    for task in tasks {
        let _ = task.await;
    }
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let attempt = app.attempt(&headers);
    if let Some(ms) = number(&headers, "x-delay-ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let fail_first = number(&headers, "x-fail-first").unwrap_or(0);
    let failing = u64::from(attempt) <= fail_first;
    let is_grpc =
        header(&headers, "content-type").is_some_and(|t| t.starts_with("application/grpc"));
    if is_grpc {
        let path = request.uri().path().to_string();
        let answer = if failing {
            Err(tonic::Status::unavailable(format!(
                "{} fails attempt {attempt}",
                app.name
            )))
        } else {
            Ok(tonic::Response::new(Answer {
                name: app.name.clone(),
                method: path,
                attempt,
            }))
        };
        let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Answer, Ask>::default());
        let response = grpc.unary(Unary(Some(answer)), request).await;
        return response.map(axum::body::Body::new);
    }
    let status = if failing {
        number(&headers, "x-fail-status").unwrap_or(503)
    } else {
        number(&headers, "x-fail")
            .or(app.fail_status.map(u64::from))
            .unwrap_or(200)
    };
    let status = http::StatusCode::from_u16(status as u16).unwrap_or(http::StatusCode::OK);
    let host = header(&headers, "host")
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let proto = match request.version() {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut body = format!(
        "name={} method={} path={} host={} attempt={} proto={}",
        app.name,
        request.method(),
        path,
        host,
        attempt,
        proto
    );
    if let Some(url) = &app.upstream {
        let client = HttpClient {
            url: url.clone(),
            headers: Vec::new(),
            method: "GET".into(),
            timeout: Duration::from_secs(10),
        };
        let answer = client.h1(&[]).await.unwrap_or_else(|e| format!("ERR {e}"));
        body.push_str(&format!(" -> {answer}"));
    }
    body.push('\n');
    (
        status,
        [
            ("x-app-name", app.name.clone()),
            ("x-attempt", attempt.to_string()),
        ],
        body,
    )
        .into_response()
}

/// A unary gRPC handler whose answer is decided before the call.
struct Unary(Option<Result<tonic::Response<Answer>, tonic::Status>>);

impl tonic::server::UnaryService<Ask> for Unary {
    type Response = Answer;
    type Future = std::future::Ready<Result<tonic::Response<Answer>, tonic::Status>>;

    fn call(&mut self, _request: tonic::Request<Ask>) -> Self::Future {
        std::future::ready(
            self.0
                .take()
                .unwrap_or_else(|| Err(tonic::Status::internal("called twice"))),
        )
    }
}

// ---- the clients ----

struct HttpClient {
    url: String,
    headers: Vec<(String, String)>,
    method: String,
    timeout: Duration,
}

impl HttpClient {
    fn parts(&self) -> (String, String) {
        let rest = self
            .url
            .strip_prefix("http://")
            .expect("the URL starts with http://");
        match rest.find('/') {
            Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
            None => (rest.to_string(), "/".to_string()),
        }
    }

    /// One HTTP/1.1 request on its own connection.
    async fn h1(&self, extra: &[(String, String)]) -> Result<String, String> {
        let (authority, path) = self.parts();
        let work = async {
            let mut stream = TcpStream::connect(&authority)
                .await
                .map_err(|e| format!("connect {e}"))?;
            let mut request = format!(
                "{} {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
                self.method, path, authority
            );
            let mut has_host = false;
            for (name, value) in self.headers.iter().chain(extra) {
                if name == "host" {
                    has_host = true;
                }
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            if has_host {
                // A host header given explicitly replaces the URL's.
                request = request.replacen(&format!("host: {authority}\r\n"), "", 1);
            }
            request.push_str("content-length: 0\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| format!("write {e}"))?;
            let mut response = Vec::new();
            stream
                .read_to_end(&mut response)
                .await
                .map_err(|e| format!("read {e}"))?;
            parse_h1(&response)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| "timeout".to_string())?
    }

    fn h2_channel(&self) -> tonic::transport::Channel {
        let (authority, _) = self.parts();
        tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
            .expect("a valid URL")
            .timeout(self.timeout)
            .connect_lazy()
    }

    /// One HTTP/2 request (prior knowledge) on the shared channel.
    async fn h2(
        &self,
        mut channel: tonic::transport::Channel,
        extra: &[(String, String)],
    ) -> Result<String, String> {
        use tonic::codegen::Service;
        let (authority, path) = self.parts();
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(format!("http://{authority}{path}"));
        for (name, value) in self.headers.iter().chain(extra) {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(tonic::body::Body::empty())
            .map_err(|e| e.to_string())?;
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| format!("connect {e}"))?;
        let response = channel
            .call(request)
            .await
            .map_err(|e| format!("request {e}"))?;
        let status = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| format!("body {e}"))?
            .to_bytes();
        Ok(format!(
            "{status} {}",
            String::from_utf8_lossy(&body).lines().next().unwrap_or("")
        ))
    }
}

fn parse_h1(response: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete response ({} bytes)", response.len()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .ok_or("no status line")?
        .to_string();
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        // The first chunk holds the line that matters.
        body.split_once("\r\n").map_or("", |(_, rest)| rest)
    } else {
        body
    };
    Ok(format!("{status} {}", body.lines().next().unwrap_or("")))
}

async fn tcp_once(addr: &str, server_first: bool) -> Result<String, String> {
    let work = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {e}"))?;
        if !server_first {
            stream
                .write_all(b"hello\n")
                .await
                .map_err(|e| format!("write {e}"))?;
        }
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte).await {
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => line.push(byte[0]),
                Err(e) => return Err(format!("read {e}")),
            }
        }
        if line.is_empty() {
            return Err("closed".to_string());
        }
        Ok(String::from_utf8_lossy(&line).to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| "timeout".to_string())?
}
