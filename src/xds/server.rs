//! The gRPC shell: ADS (state of the world and delta) and CSDS over tonic. Each stream
//! is a task that feeds requests and new snapshots to its state machine and writes the
//! responses to a small bounded channel.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

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

use crate::compile::{ProxyId, ResourceType};

use super::delta::DeltaStream;
use super::hub::Hub;
use super::snapshot::ProxySnapshot;
use super::sotw::{ProtocolError, SotwStream};
use super::status::{StatusSource, StreamKind, StreamStatus, TypeStatus, type_label};

/// How many responses may wait for a slow proxy before its stream task waits (only that
/// stream waits: every stream has its own task and its own latest-wins snapshot channel).
const STREAM_BUFFER: usize = 4;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The ADS and CSDS services over one hub.
#[derive(Clone)]
pub struct XdsService {
    hub: Arc<Hub>,
    stop: Option<watch::Receiver<bool>>,
}

impl XdsService {
    /// The services of `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub, stop: None }
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

/// The proxy a node says it is: `node.id`, else `node.cluster`.
pub fn identify(node: Option<&Node>) -> Result<ProxyId, Status> {
    let node = node
        .ok_or_else(|| Status::invalid_argument("the first request of a stream must carry node"))?;
    ProxyId::parse(&node.id)
        .or_else(|_| ProxyId::parse(&node.cluster))
        .map_err(|err| {
            Status::invalid_argument(format!(
                "{err} (node.cluster {:?} is not either)",
                node.cluster
            ))
        })
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
        let LiveState { machine, snapshot } = &mut *state;
        machine.on_request(request, snapshot)
    }

    /// Hands the machine a new snapshot.
    fn on_snapshot(&self, snapshot: Arc<ProxySnapshot>) -> Vec<M::Response> {
        let mut state = self.state.lock();
        state.snapshot = snapshot;
        let LiveState { machine, snapshot } = &mut *state;
        machine.on_snapshot(snapshot)
    }
}

impl<M: StreamMachine> StatusSource for LiveStream<M> {
    fn status(&self) -> StreamStatus {
        let state = self.state.lock();
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
        }
    }
}

fn log_nacks(proxy: &ProxyId, type_url: &str, detail: Option<&RpcStatus>) {
    if let Some(detail) = detail {
        tracing::warn!(proxy = %proxy, type_url, "proxy rejected its configuration: {}", detail.message);
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
}

impl XdsService {
    /// Opens a stream: identifies the proxy from the first request, then runs a task that
    /// feeds requests and new snapshots to `machine` and sends its responses.
    async fn open_stream<M: StreamMachine>(
        &self,
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
        let proxy = identify(node)?;
        let node_id = node.map(|n| n.id.clone()).unwrap_or_default();
        let hub = self.hub.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stop = self.stopping();
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut snapshots = hub.watch(&proxy);
            let live = Arc::new(LiveStream {
                node_id,
                resource: proxy.to_string(),
                state: Mutex::new(LiveState {
                    machine,
                    snapshot: snapshots.borrow().clone(),
                }),
            });
            let id = hub.register(live.clone());
            tracing::info!(proxy = %proxy, stream = ?M::KIND, "stream opened");
            let mut next = Some(first);
            'stream: loop {
                if let Some(request) = next.take() {
                    let (_, type_url, detail) = M::describe(&request);
                    log_nacks(&proxy, type_url, detail);
                    let snapshot = snapshots.borrow_and_update().clone();
                    match live.on_request(&request, snapshot) {
                        Ok(responses) => {
                            for response in responses {
                                if tx.send(Ok(response)).await.is_err() {
                                    break 'stream;
                                }
                            }
                        }
                        Err(err) => tracing::debug!(proxy = %proxy, "{err}"),
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
                        let snapshot = snapshots.borrow_and_update().clone();
                        for response in live.on_snapshot(snapshot) {
                            if tx.send(Ok(response)).await.is_err() {
                                break 'stream;
                            }
                        }
                    }
                }
            }
            hub.unregister(id);
            tracing::info!(proxy = %proxy, stream = ?M::KIND, "stream closed");
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
        self.open_stream(request.into_inner(), SotwStream::new())
            .await
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        self.open_stream(request.into_inner(), DeltaStream::new())
            .await
    }
}

fn client_configs(hub: &Hub) -> Vec<ClientConfig> {
    hub.statuses()
        .into_values()
        .map(|stream| {
            let proxy = ProxyId::parse(&stream.resource).ok();
            let snapshot = proxy.as_ref().and_then(|p| hub.current(p));
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
                let names: Vec<String> = snapshot
                    .as_ref()
                    .map(|s| s.of(kind).resources.keys().cloned().collect())
                    .unwrap_or_default();
                for name in names {
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
        let mut inbound = request.into_inner();
        let hub = self.hub.clone();
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
                    config: client_configs(&hub),
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
        _request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        Ok(Response::new(ClientStatusResponse {
            config: client_configs(&self.hub),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, cluster: &str) -> Node {
        Node {
            id: id.into(),
            cluster: cluster.into(),
            ..Default::default()
        }
    }

    #[test]
    fn test_identify_accepts_app_mesh_ids_and_refuses_others_with_invalid_argument() {
        let proxy = identify(Some(&node("mesh/m/virtualNode/a", ""))).unwrap();
        assert_eq!(proxy, ProxyId::virtual_node("m", "a"));
        let arn = "arn:aws:appmesh:us-east-1:111122223333:mesh/m/virtualGateway/g";
        assert_eq!(
            identify(Some(&node(arn, ""))).unwrap(),
            ProxyId::virtual_gateway("m", "g")
        );
        // node.cluster is the fallback, as the App Mesh image may set either.
        assert_eq!(
            identify(Some(&node("sidecar-1", "mesh/m/virtualNode/b"))).unwrap(),
            ProxyId::virtual_node("m", "b")
        );
        let refused = identify(Some(&node("sidecar-1", "web"))).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("mesh/<mesh>/virtualNode/<name>"),
            "{}",
            refused.message()
        );
        assert_eq!(
            identify(None).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
