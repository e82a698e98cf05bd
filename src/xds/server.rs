//! The gRPC shell: ADS (state of the world and delta) and CSDS over tonic. Each stream
//! is admitted once, on its first request, by the [`Control`] the server was given, and
//! is then a task that feeds requests and new snapshots to its state machine and writes
//! the responses to a small bounded channel.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::ClientStatusDiscoveryService;
use envoy_types::pb::envoy::service::status::v3::{
    ClientConfig, ClientStatusRequest, ClientStatusResponse, ConfigStatus,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::compile::ResourceType;
use crate::net::ConnectionInfo;

use super::delta::DeltaStream;
use super::snapshot::ProxySnapshot;
use super::sotw::{ProtocolError, SotwStream};
use super::status::{
    SecretStatus, StatusSource, StreamKind, StreamStatus, TypeStatus, truncated, type_label,
};
use super::sync::SyncClock;

/// How many responses may wait for a slow proxy before its stream task waits (only that
/// stream waits: every stream has its own task and its own latest-wins snapshot channel).
const STREAM_BUFFER: usize = 4;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Who may open what: the part of the server that knows proxies' identities and the
/// configuration each one is served. The shell asks it once per stream, with what the
/// connection and the first request say; the state machines never see a credential.
pub trait Control: Send + Sync + 'static {
    /// Admits a stream from `peer` whose first request carried `node`, or refuses it
    /// with the gRPC status the proxy gets (`UNAUTHENTICATED`, `PERMISSION_DENIED`,
    /// `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`). Nothing is compiled or sent for a
    /// refused stream.
    fn admit(&self, peer: &Peer, node: Option<&Node>) -> Result<Admission, Status>;

    /// Admits a client of the Client Status Discovery Service (an operator: it sees
    /// every proxy), or refuses it.
    fn admit_operator(&self, peer: &Peer) -> Result<(), Status>;
}

/// An admitted stream: what it serves, and the channel of its configuration.
pub struct Admission {
    /// The resource the stream serves, for the status view and the logs.
    pub resource: String,
    /// The proxy's configuration, latest wins.
    pub updates: watch::Receiver<Arc<ProxySnapshot>>,
    /// Whether the stream may be sent secrets (key material): only a peer that proved
    /// it is this proxy, or one on this host. Without, secrets are withheld.
    pub secrets: bool,
    /// Held while the stream lives; dropping it tells the control side that the stream
    /// ended.
    pub lease: Box<dyn Send + Sync>,
}

/// What a stream's peer presented: the connection's facts and the request's bearer
/// token, if any.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The connection (its address, and its TLS client certificate, if any).
    pub connection: ConnectionInfo,
    /// The token of an `authorization: Bearer <token>` metadata entry.
    pub bearer_token: Option<String>,
}

impl Peer {
    /// The peer of `request`: its connection, as the listener described it (a
    /// connection that did not come through meshd's listener counts as local), and its
    /// bearer token.
    pub fn of<T>(request: &Request<T>) -> Self {
        let connection = request
            .extensions()
            .get::<ConnectionInfo>()
            .cloned()
            .unwrap_or_else(ConnectionInfo::local);
        let bearer_token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_string())
            });
        Self {
            connection,
            bearer_token,
        }
    }
}

/// The connected streams, each readable on demand by the status view.
#[derive(Default)]
pub struct StreamRegistry {
    streams: DashMap<u64, Arc<dyn StatusSource>>,
    next: AtomicU64,
}

impl StreamRegistry {
    /// Registers a stream, whose status is read from `source` when asked for; returns
    /// its id.
    fn register(&self, source: Arc<dyn StatusSource>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.streams.insert(id, source);
        id
    }

    /// Forgets a closed stream.
    fn unregister(&self, id: u64) {
        self.streams.remove(&id);
    }

    /// Every connected stream's status, by stream id.
    pub fn statuses(&self) -> BTreeMap<u64, StreamStatus> {
        self.streams
            .iter()
            .map(|entry| (*entry.key(), entry.value().status()))
            .collect()
    }

    /// The variant of every connected stream.
    pub fn kinds(&self) -> Vec<StreamKind> {
        self.streams
            .iter()
            .map(|entry| entry.value().kind())
            .collect()
    }

    /// How many proxies have a stream whose sent configuration has waited for its ACK
    /// longer than `after` (rejected, or not answered).
    pub fn out_of_sync(&self, after: std::time::Duration) -> usize {
        let mut proxies: Vec<String> = self
            .streams
            .iter()
            .filter(|entry| entry.value().waiting_for_ack().is_some_and(|w| w > after))
            .map(|entry| entry.value().resource().to_string())
            .collect();
        proxies.sort_unstable();
        proxies.dedup();
        proxies.len()
    }

    /// How many streams are connected.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is connected.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Every connected stream's status with the snapshot it works from.
    pub(crate) fn snapshots(&self) -> Vec<(StreamStatus, Arc<ProxySnapshot>)> {
        self.streams
            .iter()
            .map(|entry| entry.value().status_and_snapshot())
            .collect()
    }
}

/// The ADS and CSDS services.
#[derive(Clone)]
pub struct XdsService {
    control: Arc<dyn Control>,
    streams: Arc<StreamRegistry>,
    stop: Option<watch::Receiver<bool>>,
}

impl XdsService {
    /// The services, admitting streams through `control`.
    pub fn new(control: Arc<dyn Control>) -> Self {
        Self {
            control,
            streams: Arc::default(),
            stop: None,
        }
    }

    /// The same services, ending every open stream (with UNAVAILABLE, so proxies
    /// reconnect) once `stop` turns true or its sender is dropped. Proxies never close
    /// their ADS streams, so without this a graceful shutdown would wait forever.
    pub fn with_shutdown(self, stop: watch::Receiver<bool>) -> Self {
        Self {
            stop: Some(stop),
            ..self
        }
    }

    /// The connected streams.
    pub fn streams(&self) -> &Arc<StreamRegistry> {
        &self.streams
    }

    fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let stop = self.stop.clone();
        async move {
            match stop {
                Some(mut stop) => {
                    let _ = stop.wait_for(|stop| *stop).await;
                }
                None => std::future::pending().await,
            }
        }
    }
}

fn shutting_down() -> Status {
    Status::unavailable("meshd is shutting down")
}

/// A stream's state machine and the snapshot it last worked from, shared between the
/// stream's task and the status view.
struct LiveStream<M> {
    node_id: String,
    resource: String,
    state: Mutex<LiveState<M>>,
}

struct LiveState<M> {
    machine: M,
    snapshot: Arc<ProxySnapshot>,
    clock: SyncClock,
}

impl<M: StreamMachine> LiveStream<M> {
    /// Feeds `request` to the machine, working from `snapshot`.
    fn on_request(
        &self,
        request: &M::Request,
        snapshot: Arc<ProxySnapshot>,
    ) -> Result<Vec<M::Response>, ProtocolError> {
        let mut state = self.state.lock();
        state.snapshot = snapshot;
        let LiveState {
            machine,
            snapshot,
            clock,
        } = &mut *state;
        let (_, type_url, detail) = M::describe(request);
        clock.answered(type_url, M::answered_nonce(request), detail.is_some());
        let responses = machine.on_request(request, snapshot)?;
        for response in &responses {
            let (type_url, nonce) = M::sent(response);
            clock.sent(type_url, nonce, None);
        }
        Ok(responses)
    }

    /// Hands the machine a new snapshot.
    fn on_snapshot(&self, snapshot: Arc<ProxySnapshot>) -> Vec<M::Response> {
        let mut state = self.state.lock();
        state.snapshot = snapshot;
        let LiveState {
            machine,
            snapshot,
            clock,
        } = &mut *state;
        let responses = machine.on_snapshot(snapshot);
        for response in &responses {
            let (type_url, nonce) = M::sent(response);
            clock.sent(type_url, nonce, snapshot.changed_at);
        }
        responses
    }
}

impl<M: StreamMachine> LiveStream<M> {
    fn status_of(&self, state: &LiveState<M>) -> StreamStatus {
        StreamStatus {
            node_id: self.node_id.clone(),
            resource: self.resource.clone(),
            stream: M::KIND,
            types: state
                .machine
                .status()
                .into_iter()
                .map(|(kind, s)| (type_label(kind), s))
                .collect(),
            diagnostics: state.snapshot.diagnostics.clone(),
            secrets: state
                .snapshot
                .of(ResourceType::Secret)
                .resources
                .values()
                .map(|secret| SecretStatus {
                    name: secret.name.clone(),
                    version: secret.version.clone(),
                    not_after: state.snapshot.secret_expiry.get(&secret.name).copied(),
                })
                .collect(),
        }
    }
}

impl<M: StreamMachine> StatusSource for LiveStream<M> {
    fn status(&self) -> StreamStatus {
        self.status_of(&self.state.lock())
    }

    fn kind(&self) -> StreamKind {
        M::KIND
    }

    fn resource(&self) -> &str {
        &self.resource
    }

    fn waiting_for_ack(&self) -> Option<std::time::Duration> {
        self.state.lock().clock.waiting_for()
    }

    fn status_and_snapshot(&self) -> (StreamStatus, Arc<ProxySnapshot>) {
        let state = self.state.lock();
        (self.status_of(&state), state.snapshot.clone())
    }
}

/// The most of a NACK's error text that goes to the log (the status view keeps more).
const LOGGED_NACK_LIMIT: usize = 256;

fn log_nacks(resource: &str, type_url: &str, detail: Option<&RpcStatus>) {
    if let Some(detail) = detail {
        tracing::warn!(
            proxy = resource,
            type_url = truncated(type_url, LOGGED_NACK_LIMIT),
            "proxy rejected its configuration: {}",
            truncated(&detail.message, LOGGED_NACK_LIMIT)
        );
    }
}

/// What the stream loop needs of a state machine: SotW and delta differ only in their
/// message types and bookkeeping.
trait StreamMachine: Send + 'static {
    /// The request message.
    type Request: Send + 'static;
    /// The response message.
    type Response: Send + 'static;
    /// The variant, for the status view.
    const KIND: StreamKind;

    fn on_request(
        &mut self,
        request: &Self::Request,
        snapshot: &ProxySnapshot,
    ) -> Result<Vec<Self::Response>, ProtocolError>;
    fn on_snapshot(&mut self, snapshot: &ProxySnapshot) -> Vec<Self::Response>;
    fn status(&self) -> BTreeMap<ResourceType, TypeStatus>;
    /// The node, type URL and NACK detail of a request.
    fn describe(request: &Self::Request) -> (Option<&Node>, &str, Option<&RpcStatus>);
    /// The nonce of the response a request answers.
    fn answered_nonce(request: &Self::Request) -> &str;
    /// The type URL and nonce of a response.
    fn sent(response: &Self::Response) -> (&str, &str);
}

impl StreamMachine for SotwStream {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const KIND: StreamKind = StreamKind::Sotw;

    fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &ProxySnapshot,
    ) -> Result<Vec<DiscoveryResponse>, ProtocolError> {
        SotwStream::on_request(self, request, snapshot)
    }
    fn on_snapshot(&mut self, snapshot: &ProxySnapshot) -> Vec<DiscoveryResponse> {
        SotwStream::on_snapshot(self, snapshot)
    }
    fn status(&self) -> BTreeMap<ResourceType, TypeStatus> {
        SotwStream::status(self)
    }
    fn describe(request: &DiscoveryRequest) -> (Option<&Node>, &str, Option<&RpcStatus>) {
        (
            request.node.as_ref(),
            &request.type_url,
            request.error_detail.as_ref(),
        )
    }
    fn answered_nonce(request: &DiscoveryRequest) -> &str {
        &request.response_nonce
    }
    fn sent(response: &DiscoveryResponse) -> (&str, &str) {
        (&response.type_url, &response.nonce)
    }
}

impl StreamMachine for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const KIND: StreamKind = StreamKind::Delta;

    fn on_request(
        &mut self,
        request: &DeltaDiscoveryRequest,
        snapshot: &ProxySnapshot,
    ) -> Result<Vec<DeltaDiscoveryResponse>, ProtocolError> {
        DeltaStream::on_request(self, request, snapshot)
    }
    fn on_snapshot(&mut self, snapshot: &ProxySnapshot) -> Vec<DeltaDiscoveryResponse> {
        DeltaStream::on_snapshot(self, snapshot)
    }
    fn status(&self) -> BTreeMap<ResourceType, TypeStatus> {
        DeltaStream::status(self)
    }
    fn describe(request: &DeltaDiscoveryRequest) -> (Option<&Node>, &str, Option<&RpcStatus>) {
        (
            request.node.as_ref(),
            &request.type_url,
            request.error_detail.as_ref(),
        )
    }
    fn answered_nonce(request: &DeltaDiscoveryRequest) -> &str {
        &request.response_nonce
    }
    fn sent(response: &DeltaDiscoveryResponse) -> (&str, &str) {
        (&response.type_url, &response.nonce)
    }
}

impl XdsService {
    /// Asks the control side to admit a stream, off the async workers: admitting may
    /// compile the proxy's configuration, and wait for a publication in progress.
    async fn admit(&self, peer: &Peer, node: Option<&Node>) -> Result<Admission, Status> {
        let (control, peer, node) = (self.control.clone(), peer.clone(), node.cloned());
        tokio::task::spawn_blocking(move || control.admit(&peer, node.as_ref()))
            .await
            .map_err(|err| Status::internal(format!("admitting the stream failed: {err}")))?
    }

    /// Opens a stream: admits it on its first request (through [`Control::admit`]),
    /// then runs a task that feeds requests and new snapshots to `machine` and sends
    /// its responses.
    async fn open_stream<M: StreamMachine>(
        &self,
        peer: Peer,
        mut inbound: Streaming<M::Request>,
        machine: M,
    ) -> Result<Response<ResponseStream<M::Response>>, Status>
    where
        Streaming<M::Request>: Send,
        M::Request: prost::Message + Default,
    {
        let first = match inbound.message().await? {
            Some(first) => first,
            None => {
                return Err(Status::cancelled(
                    "the stream closed before its first request",
                ));
            }
        };
        let node = M::describe(&first).0;
        let Admission {
            resource,
            updates: mut snapshots,
            secrets,
            lease,
        } = self.admit(&peer, node).await?;
        // What this stream may be sent of each snapshot.
        let visible = move |snapshot: Arc<ProxySnapshot>| {
            if secrets {
                snapshot
            } else {
                Arc::new(snapshot.without_secrets())
            }
        };
        let node_id = node.map(|n| n.id.clone()).unwrap_or_default();
        let streams = self.streams.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stop = self.stopping();
        let connection_stream = peer.connection.stream_opened();
        tokio::spawn(async move {
            let _held = (lease, connection_stream);
            tokio::pin!(stop);
            let live = Arc::new(LiveStream {
                node_id,
                resource: resource.clone(),
                state: Mutex::new(LiveState {
                    machine,
                    snapshot: visible(snapshots.borrow().clone()),
                    clock: SyncClock::default(),
                }),
            });
            let id = streams.register(live.clone());
            tracing::info!(proxy = %resource, stream = ?M::KIND, "stream opened");
            let mut next = Some(first);
            'stream: loop {
                if let Some(request) = next.take() {
                    let (_, type_url, detail) = M::describe(&request);
                    log_nacks(&resource, type_url, detail);
                    let snapshot = visible(snapshots.borrow_and_update().clone());
                    match live.on_request(&request, snapshot) {
                        Ok(responses) => {
                            for response in responses {
                                if tx.send(Ok(response)).await.is_err() {
                                    break 'stream;
                                }
                            }
                        }
                        Err(err) => tracing::debug!(proxy = %resource, "{err}"),
                    }
                }
                tokio::select! {
                    _ = &mut stop => {
                        let _ = tx.try_send(Err(shutting_down()));
                        break;
                    }
                    message = inbound.message() => match message {
                        Ok(Some(request)) => next = Some(request),
                        _ => break,
                    },
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let snapshot = visible(snapshots.borrow_and_update().clone());
                        for response in live.on_snapshot(snapshot) {
                            if tx.send(Ok(response)).await.is_err() {
                                break 'stream;
                            }
                        }
                    }
                }
            }
            streams.unregister(id);
            tracing::info!(proxy = %resource, stream = ?M::KIND, "stream closed");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for XdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = Peer::of(&request);
        self.open_stream(peer, request.into_inner(), SotwStream::new())
            .await
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let peer = Peer::of(&request);
        self.open_stream(peer, request.into_inner(), DeltaStream::new())
            .await
    }
}

fn client_configs(streams: &StreamRegistry) -> Vec<ClientConfig> {
    streams
        .snapshots()
        .into_iter()
        .map(|(stream, snapshot)| {
            let mut generic = Vec::new();
            for kind in ResourceType::ALL {
                let Some(state) = stream.types.get(type_label(kind)) else {
                    continue;
                };
                let (config_status, client_status) =
                    if state.nack.is_some() && state.acked_version != state.sent_version {
                        (ConfigStatus::Error, ClientResourceStatus::Nacked)
                    } else if state.acked_version == state.sent_version {
                        (ConfigStatus::Synced, ClientResourceStatus::Acked)
                    } else {
                        (ConfigStatus::Stale, ClientResourceStatus::Requested)
                    };
                for name in snapshot.of(kind).resources.keys().cloned() {
                    generic.push(GenericXdsConfig {
                        type_url: kind.type_url().to_string(),
                        name,
                        version_info: state.sent_version.clone(),
                        config_status: config_status as i32,
                        client_status: client_status as i32,
                        ..Default::default()
                    });
                }
            }
            ClientConfig {
                node: Some(Node {
                    id: stream.node_id.clone(),
                    ..Default::default()
                }),
                generic_xds_configs: generic,
                ..Default::default()
            }
        })
        .collect()
}

#[tonic::async_trait]
impl ClientStatusDiscoveryService for XdsService {
    type StreamClientStatusStream = ResponseStream<ClientStatusResponse>;

    async fn stream_client_status(
        &self,
        request: Request<Streaming<ClientStatusRequest>>,
    ) -> Result<Response<Self::StreamClientStatusStream>, Status> {
        self.control.admit_operator(&Peer::of(&request))?;
        let mut inbound = request.into_inner();
        let streams = self.streams.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stop = self.stopping();
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                let message = tokio::select! {
                    _ = &mut stop => {
                        let _ = tx.try_send(Err(shutting_down()));
                        break;
                    }
                    message = inbound.message() => message,
                };
                if !matches!(message, Ok(Some(_))) {
                    break;
                }
                let response = ClientStatusResponse {
                    config: client_configs(&streams),
                };
                if tx.send(Ok(response)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch_client_status(
        &self,
        request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        self.control.admit_operator(&Peer::of(&request))?;
        Ok(Response::new(ClientStatusResponse {
            config: client_configs(&self.streams),
        }))
    }
}
