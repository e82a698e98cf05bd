//! The xDS server as an attacker and as a proxy on another host meet it: TLS, client
//! certificates (SPIFFE URI SANs), bearer tokens, per-node authorization, CSDS for
//! operators only, per-proxy state that lives only while a stream holds it, and a port
//! that idle or half-open connections cannot fill. Real Envoy (1.40) and real gRPC
//! clients (tonic, rustls); certificates made in the test (rcgen).

mod common;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::envoy::{ENVOY_LOCK, Envoy, Mode, eventually, meshd_proxies, meshd_view, stat};
use common::pki::Pki;
use common::process::MeshdProcess;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::status::v3::ClientStatusRequest;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use meshd::api::Account;
use meshd::server::{RunningServer, ServerConfig, XdsConfig, XdsTls};
use prost::Message;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const FRONT: &str = "mesh/demo/virtualNode/front";
const OTHER: &str = "mesh/demo/virtualNode/other";
const TRUST_DOMAIN: &str = "meshd";
const WAIT: Duration = Duration::from_secs(30);
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS_SUCCESS: &str = "listener_manager.lds.update_success";
const CDS_SUCCESS: &str = "cluster_manager.cds.update_success";

/// The tokens every secured server here accepts.
const TOKENS: &str = "\
# token            node ids it may stream
front-token        mesh/demo/virtualNode/front
shop-token         mesh/shop/virtualNode/*   # another mesh
operator-token     *
";

/// The mesh every test serves: `front` and `other` in mesh `demo`.
fn demo_mesh() -> Value {
    let node = |name: &str, port: u16| {
        json!({"meshName": "demo", "virtualNodeName": name, "spec": {
            "listeners": [{"portMapping": {"port": port, "protocol": "http"}}],
            "serviceDiscovery": {"dns": {"hostname": format!("{name}.demo.local")}}}})
    };
    json!([{"meshName": "demo", "spec": {}}, node("front", 8080), node("other", 8081)])
}

/// A meshd with TLS on xDS, client certificates from `pki`'s CA and the tokens above.
struct Secured {
    server: RunningServer,
    pki: Pki,
    _tokens: tempfile::TempDir,
}

impl Secured {
    async fn start() -> Secured {
        let pki = Pki::new("meshd test xDS CA");
        let (cert, key) = pki.issue("meshd", &["127.0.0.1", "localhost"], &[]);
        let tokens = tempfile::tempdir().unwrap();
        let tokens_file = tokens.path().join("tokens");
        std::fs::write(&tokens_file, TOKENS).unwrap();
        let server = start(XdsConfig {
            tls: Some(XdsTls {
                cert,
                key,
                client_ca: Some(pki.ca()),
            }),
            tokens_file: Some(tokens_file),
            ..XdsConfig::default()
        })
        .await;
        Secured {
            server,
            pki,
            _tokens: tokens,
        }
    }

    fn xds(&self) -> SocketAddr {
        self.server.xds_addr.unwrap()
    }

    /// A TLS channel trusting the CA, presenting the certificate `client`, if any.
    async fn channel(&self, client: Option<(PathBuf, PathBuf)>) -> Channel {
        tls_channel(self.xds(), &self.pki.ca(), client).await
    }
}

async fn start(xds: XdsConfig) -> RunningServer {
    let account = Account {
        region: common::REGION.into(),
        account_id: common::ACCOUNT_ID.into(),
    };
    let config = ServerConfig {
        xds_addr: Some("127.0.0.1:0".parse().unwrap()),
        xds,
        ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    let server = meshd::server::start(config).await.expect("meshd starts");
    meshd::definition::load(&server.store, &demo_mesh()).unwrap();
    server
}

async fn tls_channel(xds: SocketAddr, ca: &Path, client: Option<(PathBuf, PathBuf)>) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost");
    if let Some((cert, key)) = client {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    Endpoint::from_shared(format!("https://127.0.0.1:{}", xds.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("the TLS connection is made")
}

async fn plain_channel(xds: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{xds}"))
        .unwrap()
        .connect()
        .await
        .expect("the connection is made")
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        ..Default::default()
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// Opens a stream with `request` (carrying `token`, if any) through `open`: its first
/// response, or the status the stream was refused with.
async fn first_answer<Req, Resp, Open, Opened>(
    request: Req,
    token: Option<&str>,
    open: Open,
) -> Result<Resp, tonic::Status>
where
    Open: FnOnce(tonic::Request<ReceiverStream<Req>>) -> Opened,
    Opened: std::future::Future<Output = Result<tonic::Response<tonic::Streaming<Resp>>, tonic::Status>>,
{
    let (tx, rx) = mpsc::channel(4);
    tx.send(request).await.unwrap();
    let mut responses = open(with_token(ReceiverStream::new(rx), token))
        .await?
        .into_inner();
    let first = tokio::time::timeout(WAIT, responses.message())
        .await
        .expect("an answer within the wait");
    drop(tx);
    first?.ok_or_else(|| tonic::Status::cancelled("the stream ended with no response"))
}

/// Opens a SotW stream as `node_id` asking for clusters: the first response, or the
/// status the stream was refused with.
async fn sotw_first(
    channel: Channel,
    node_id: &str,
    token: Option<&str>,
) -> Result<DiscoveryResponse, tonic::Status> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let request = DiscoveryRequest {
        node: Some(node(node_id)),
        type_url: CDS.into(),
        ..Default::default()
    };
    first_answer(request, token, |stream| async move {
        client.stream_aggregated_resources(stream).await
    })
    .await
}

/// The same over delta xDS: the first response's type, or the refusal.
async fn delta_first(
    channel: Channel,
    node_id: &str,
    token: Option<&str>,
) -> Result<String, tonic::Status> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let request = DeltaDiscoveryRequest {
        node: Some(node(node_id)),
        type_url: CDS.into(),
        ..Default::default()
    };
    let first = first_answer(request, token, |stream| async move {
        client.delta_aggregated_resources(stream).await
    })
    .await?;
    Ok(first.type_url)
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, says: &str) {
    match result {
        Ok(answer) => panic!("expected {code:?}, got an answer: {answer:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(says),
                "{:?} should say {says:?}",
                status.message()
            );
        }
    }
}

async fn xds_view(api: SocketAddr) -> Value {
    meshd_view(api, "xds").await
}

fn refused(view: &Value, reason: &str) -> u64 {
    view["gate"]["refusedStreams"][reason].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_streams_only_the_node_its_certificate_names() {
    let secured = Secured::start().await;
    let front = secured.pki.proxy("front", TRUST_DOMAIN, FRONT);

    let answer = sotw_first(secured.channel(Some(front.clone())).await, FRONT, None).await;
    assert_eq!(answer.expect("front streams its own node").type_url, CDS);
    let answer = delta_first(secured.channel(Some(front.clone())).await, FRONT, None).await;
    assert_eq!(answer.expect("front streams its own node over delta"), CDS);

    // The same certificate claiming another node, by id, ARN or node.cluster.
    let other_arn = common::arn(OTHER);
    for claimed in [OTHER, other_arn.as_str()] {
        let refusal = sotw_first(secured.channel(Some(front.clone())).await, claimed, None).await;
        assert_refused(refusal, Code::PermissionDenied, FRONT);
    }
    let refusal = delta_first(secured.channel(Some(front.clone())).await, OTHER, None).await;
    assert_refused(
        refusal,
        Code::PermissionDenied,
        "may not stream mesh/demo/virtualNode/other",
    );

    // No credential at all, over TLS.
    let refusal = sotw_first(secured.channel(None).await, FRONT, None).await;
    assert_refused(refusal, Code::Unauthenticated, "requires a credential");

    // A certificate for front from a CA meshd does not trust.
    let rogue = Pki::new("rogue CA");
    let forged = rogue.proxy("front", TRUST_DOMAIN, FRONT);
    let refusal = sotw_first(secured.channel(Some(forged)).await, FRONT, None).await;
    assert_refused(refusal, Code::Unauthenticated, "--xds-client-ca");

    // A trusted certificate of another trust domain names nobody here.
    let foreign = secured.pki.proxy("foreign", "elsewhere", FRONT);
    let refusal = sotw_first(secured.channel(Some(foreign)).await, FRONT, None).await;
    assert_refused(refusal, Code::Unauthenticated, "spiffe://meshd/");

    // A node id longer than App Mesh's names allow is refused whatever the credential.
    let huge = format!("mesh/demo/virtualNode/{}", "n".repeat(1 << 20));
    let refusal = sotw_first(secured.channel(None).await, &huge, Some("operator-token")).await;
    assert_refused(refusal, Code::InvalidArgument, "1024");

    // Every refusal is counted by reason and shown, with the node id it claimed.
    let view = xds_view(secured.server.api_addr).await;
    assert_eq!(refused(&view, "not_permitted"), 3, "{view}");
    assert_eq!(refused(&view, "no_credential"), 1, "{view}");
    assert_eq!(refused(&view, "untrusted_certificate"), 1, "{view}");
    assert_eq!(refused(&view, "certificate_identity"), 1, "{view}");
    assert_eq!(refused(&view, "invalid_node_id"), 1, "{view}");
    let recent = view["gate"]["recentRefusals"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .any(|r| r["reason"] == "not_permitted" && r["nodeId"] == OTHER),
        "{view}"
    );
    assert!(
        recent
            .iter()
            .all(|r| r["nodeId"].as_str().unwrap().len() <= 300),
        "a refused id is kept cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_allow_the_nodes_their_line_names() {
    let secured = Secured::start().await;
    let answer = sotw_first(secured.channel(None).await, FRONT, Some("front-token")).await;
    assert_eq!(answer.expect("the right token streams front").type_url, CDS);
    let answer = delta_first(secured.channel(None).await, FRONT, Some("front-token")).await;
    assert_eq!(answer.expect("and over delta"), CDS);

    let refusal = sotw_first(secured.channel(None).await, OTHER, Some("front-token")).await;
    assert_refused(refusal, Code::PermissionDenied, "line 2 of the token file");
    let refusal = sotw_first(secured.channel(None).await, FRONT, Some("shop-token")).await;
    assert_refused(refusal, Code::PermissionDenied, "may not stream");
    let refusal = sotw_first(secured.channel(None).await, FRONT, Some("front-tokenX")).await;
    assert_refused(
        refusal,
        Code::Unauthenticated,
        "not one of meshd's --xds-tokens",
    );

    // Either credential suffices: a good certificate with a bad token still streams.
    let front = secured.pki.proxy("front", TRUST_DOMAIN, FRONT);
    let answer = sotw_first(secured.channel(Some(front)).await, FRONT, Some("wrong")).await;
    assert!(answer.is_ok(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csds_answers_only_operators() {
    let secured = Secured::start().await;
    let front = secured.pki.proxy("front", TRUST_DOMAIN, FRONT);
    // A stream to list.
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node(FRONT)),
        type_url: CDS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut ads = AggregatedDiscoveryServiceClient::new(secured.channel(Some(front.clone())).await);
    let mut held = ads
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    held.message().await.unwrap().unwrap();

    let csds = |channel: Channel, token: Option<&'static str>| async move {
        ClientStatusDiscoveryServiceClient::new(channel)
            .fetch_client_status(with_token(ClientStatusRequest::default(), token))
            .await
    };
    let refusal = csds(secured.channel(None).await, None).await;
    assert_refused(refusal, Code::Unauthenticated, "requires a credential");
    let refusal = csds(secured.channel(Some(front)).await, None).await;
    assert_refused(refusal, Code::PermissionDenied, "operators");
    let refusal = csds(secured.channel(None).await, Some("front-token")).await;
    assert_refused(refusal, Code::PermissionDenied, "operators");

    let listed = csds(secured.channel(None).await, Some("operator-token"))
        .await
        .expect("an operator's token reads every proxy's status")
        .into_inner();
    assert_eq!(listed.config.len(), 1);
    assert_eq!(listed.config[0].node.as_ref().unwrap().id, FRONT);
    let operator = secured.pki.proxy("operator", TRUST_DOMAIN, "operator");
    let listed = csds(secured.channel(Some(operator)).await, None)
        .await
        .expect("so does an operator's certificate");
    assert_eq!(listed.into_inner().config.len(), 1);
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_file_is_served_without_a_restart() {
    let first_ca = Pki::new("first CA");
    let (cert, key) = first_ca.issue("meshd", &["localhost"], &[]);
    let server = start(XdsConfig {
        tls: Some(XdsTls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        }),
        ..XdsConfig::default()
    })
    .await;
    let xds = server.xds_addr.unwrap();
    let answer = sotw_first(tls_channel(xds, &first_ca.ca(), None).await, FRONT, None).await;
    assert!(answer.is_ok(), "{answer:?}");

    // Renewed by another CA, written as a renewal tool writes (new file, then rename).
    let second_ca = Pki::new("second CA");
    let (new_cert, new_key) = second_ca.issue("meshd", &["localhost"], &[]);
    for (from, to) in [(&new_key, &key), (&new_cert, &cert)] {
        let staged = to.with_extension("new");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    eventually("meshd to serve the renewed certificate", WAIT, || async {
        let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{}", xds.port()))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(
                        std::fs::read(second_ca.ca()).unwrap(),
                    ))
                    .domain_name("localhost"),
            )
            .unwrap();
        match endpoint.connect().await {
            Ok(channel) => sotw_first(channel, FRONT, None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(err) => Err(format!("{err:?}")),
        }
    })
    .await;
}

/// What a real Envoy, bootstrapped by `meshd bootstrap` with `args`, gets as `node_id`.
async fn envoy(secured: &Secured, node_id: &str, mode: Mode, args: &[&OsStr]) -> Envoy {
    let endpoint = format!("127.0.0.1:{}", secured.xds().port());
    Envoy::start_with_args(node_id, &endpoint, mode, args).await
}

async fn wait_acked(envoy: &Envoy, api: SocketAddr, node_id: &str) {
    eventually("Envoy to accept its configuration", WAIT, || async {
        let stats = envoy.stats().await;
        let statuses = meshd_proxies(api).await;
        let synced = statuses.iter().any(|s| {
            s["node_id"] == node_id
                && s["types"].as_object().is_some_and(|types| {
                    types
                        .values()
                        .all(|t| t["acked_version"] == t["sent_version"] && t["sent_version"] != "")
                })
        });
        if stat(&stats, LDS_SUCCESS) >= 1 && stat(&stats, CDS_SUCCESS) >= 1 && synced {
            Ok(())
        } else {
            Err(format!("{statuses:?}"))
        }
    })
    .await;
}

/// Waits until meshd has refused `node_id` for `reason` at least once more than
/// `before`, then checks that the Envoy got nothing at all.
async fn wait_refused(envoy: &Envoy, api: SocketAddr, reason: &str, before: u64) {
    eventually("meshd to refuse the Envoy", WAIT, || async {
        let view = xds_view(api).await;
        if refused(&view, reason) > before {
            Ok(())
        } else {
            Err(view.to_string())
        }
    })
    .await;
    let stats = envoy.stats().await;
    assert_eq!(
        stat(&stats, LDS_SUCCESS),
        0,
        "the refused Envoy got no listener"
    );
    assert_eq!(
        stat(&stats, CDS_SUCCESS),
        0,
        "the refused Envoy got no cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_envoys_over_tls_get_their_own_configuration_and_nothing_else() {
    let _serial = ENVOY_LOCK.lock().await;
    let secured = Secured::start().await;
    let api = secured.server.api_addr;
    let ca = secured.pki.ca();
    let (cert, key) = secured.pki.proxy("front", TRUST_DOMAIN, FRONT);
    let dir = tempfile::tempdir().unwrap();
    let token_file = |name: &str, token: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{token}\n")).unwrap();
        path
    };
    let (front_token, wrong_token, shop_token) = (
        token_file("front", "front-token"),
        token_file("wrong", "not-a-token"),
        token_file("shop", "shop-token"),
    );
    let tls_args: Vec<&OsStr> = vec![OsStr::new("--xds-ca"), ca.as_os_str()];
    let cert_args: Vec<&OsStr> = [
        tls_args.clone(),
        vec![
            OsStr::new("--xds-cert"),
            cert.as_os_str(),
            OsStr::new("--xds-key"),
            key.as_os_str(),
        ],
    ]
    .concat();
    fn token_args<'a>(tls_args: &[&'a OsStr], file: &'a Path) -> Vec<&'a OsStr> {
        [
            tls_args,
            &[OsStr::new("--xds-token-file"), file.as_os_str()],
        ]
        .concat()
    }
    let front_token_args = token_args(&tls_args, &front_token);
    let wrong_token_args = token_args(&tls_args, &wrong_token);
    let shop_token_args = token_args(&tls_args, &shop_token);
    for mode in [Mode::Sotw, Mode::Delta] {
        {
            let front = envoy(&secured, FRONT, mode, &cert_args).await;
            wait_acked(&front, api, FRONT).await;
            // The same certificate, another node id: nothing.
            let before = refused(&xds_view(api).await, "not_permitted");
            let other = envoy(&secured, OTHER, mode, &cert_args).await;
            wait_refused(&other, api, "not_permitted", before).await;
        }
        {
            let front = envoy(&secured, FRONT, mode, &front_token_args).await;
            wait_acked(&front, api, FRONT).await;
        }
        let before = refused(&xds_view(api).await, "unknown_token");
        let wrong = envoy(&secured, FRONT, mode, &wrong_token_args).await;
        wait_refused(&wrong, api, "unknown_token", before).await;
        drop(wrong);
        let before = refused(&xds_view(api).await, "not_permitted");
        let shop = envoy(&secured, FRONT, mode, &shop_token_args).await;
        wait_refused(&shop, api, "not_permitted", before).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phantom_node_ids_cost_nothing_once_their_streams_close() {
    const PHANTOMS: usize = 10_000;
    const STREAMS_PER_CONNECTION: usize = 100;
    let server = start(XdsConfig {
        grace: Duration::from_millis(200),
        ..XdsConfig::default()
    })
    .await;
    let xds = server.xds_addr.unwrap();
    let api = server.api_addr;
    let counts = |view: &Value| {
        (
            view["streams"].as_u64().unwrap(),
            view["gate"]["hub"]["proxyStates"].as_u64().unwrap(),
            view["gate"]["hub"]["compiledProxies"].as_u64().unwrap(),
        )
    };
    // One real proxy, held throughout.
    let (real_tx, real_rx) = mpsc::channel(4);
    real_tx
        .send(DiscoveryRequest {
            node: Some(node(FRONT)),
            type_url: CDS.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut real = AggregatedDiscoveryServiceClient::new(plain_channel(xds).await)
        .stream_aggregated_resources(ReceiverStream::new(real_rx))
        .await
        .unwrap()
        .into_inner();
    real.message().await.unwrap().unwrap();
    assert_eq!(counts(&xds_view(api).await), (1, 1, 1));

    let mut held = Vec::with_capacity(PHANTOMS);
    for batch in 0..PHANTOMS / STREAMS_PER_CONNECTION {
        let channel = plain_channel(xds).await;
        for i in 0..STREAMS_PER_CONNECTION {
            let (tx, rx) = mpsc::channel(1);
            tx.send(DiscoveryRequest {
                node: Some(node(&format!(
                    "mesh/demo/virtualNode/phantom-{}",
                    batch * STREAMS_PER_CONNECTION + i
                ))),
                type_url: CDS.into(),
                ..Default::default()
            })
            .await
            .unwrap();
            let mut client = AggregatedDiscoveryServiceClient::new(channel.clone());
            let responses = client
                .stream_aggregated_resources(ReceiverStream::new(rx))
                .await
                .expect("a phantom's stream opens")
                .into_inner();
            held.push((tx, responses));
        }
    }
    let phantoms = PHANTOMS as u64;
    eventually("every phantom stream to be held", WAIT, || async {
        let view = xds_view(api).await;
        match counts(&view) {
            (streams, states, _) if streams == phantoms + 1 && states == phantoms + 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let before = xds_view(api).await["gate"]["hub"]["publications"]
        .as_u64()
        .unwrap();
    drop(held);
    eventually("the phantoms' state to be freed", WAIT, || async {
        match counts(&xds_view(api).await) {
            (1, 1, 1) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // A change to the mesh reaches every proxy of it: only the real one is recompiled.
    meshd::definition::put(
        &server.store,
        &json!({"meshName": "demo", "spec": {"egressFilter": {"type": "ALLOW_ALL"}}}),
    )
    .unwrap();
    let view = eventually("the change to be published", WAIT, || async {
        let view = xds_view(api).await;
        if view["gate"]["hub"]["publications"].as_u64().unwrap() > before {
            Ok(view)
        } else {
            Err(view.to_string())
        }
    })
    .await;
    assert_eq!(view["gate"]["hub"]["lastRecompiled"], 1, "{view}");
    eprintln!("after {PHANTOMS} phantom streams closed and a mesh change: {view}");
    drop(real_tx);
}

/// Creates mesh `demo` and its virtual node `front` through the API (AWS SDK).
async fn create_front(api: SocketAddr) {
    let client = common::sdk_client(api);
    client.create_mesh().mesh_name("demo").send().await.unwrap();
    client
        .create_virtual_node()
        .mesh_name("demo")
        .virtual_node_name("front")
        .spec(common::sdk::node_spec(8080, "front.demo.local", &[]))
        .send()
        .await
        .unwrap();
}

/// `meshd serve` in a process of its own, its soft open-files limit set to systemd's
/// default (1,024) as it starts.
async fn meshd_with_1024_open_files(args: &[&str]) -> MeshdProcess {
    MeshdProcess::start_under(&["prlimit", "--nofile=1024:", "--"], args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_open_connections_do_not_keep_a_new_envoy_out() {
    const IDLE: usize = 2_000;
    const PRE_PREFACE: usize = 1_000;
    let _serial = ENVOY_LOCK.lock().await;
    meshd::net::raise_open_files_limit().expect("the test may hold its connections");
    let meshd = meshd_with_1024_open_files(&[
        "--store",
        "memory",
        "--xds-addr",
        "127.0.0.1:0",
        "--xds-max-connections",
        "2500",
        "--xds-handshake-timeout",
        "120s",
    ])
    .await;
    let xds = meshd.xds_addr().await;
    create_front(meshd.api).await;

    // 2,000 connections that finish HTTP/2's handshake and open no stream, then 1,000
    // that never send the preface.
    let mut held = Vec::with_capacity(IDLE + PRE_PREFACE);
    for _ in 0..IDLE {
        let mut socket = tokio::net::TcpStream::connect(xds).await.unwrap();
        socket
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        held.push(socket);
    }
    for _ in 0..PRE_PREFACE {
        held.push(tokio::net::TcpStream::connect(xds).await.unwrap());
    }
    // Every connection was accepted; those over the limit closed the oldest idle ones
    // (which takes a moment to finish).
    eventually("meshd to hold no more than its limit", WAIT, || async {
        let view = xds_view(meshd.api).await;
        let accepted = view["connections"]["accepted"].as_u64().unwrap();
        let open = view["connections"]["open"].as_u64().unwrap();
        if accepted >= (IDLE + PRE_PREFACE) as u64 && open <= 2500 {
            Ok(())
        } else {
            Err(view.to_string())
        }
    })
    .await;

    let envoy = Envoy::start(FRONT, &xds.to_string(), Mode::Sotw).await;
    wait_acked(&envoy, meshd.api, FRONT).await;
    let view = xds_view(meshd.api).await;
    assert!(
        view["connections"]["closedIdle"].as_u64().unwrap() >= 500,
        "{view}"
    );
    eprintln!(
        "while {IDLE} idle and {PRE_PREFACE} pre-preface connections were held: {}",
        view["connections"]
    );
    drop(held);
}

#[tokio::test]
async fn a_non_loopback_xds_address_needs_a_credential_or_xds_insecure() {
    let port = common::envoy::free_port();
    let addr = format!("0.0.0.0:{port}");
    let run = |extra: &'static [&'static str]| {
        let addr = addr.clone();
        async move {
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshd"))
                .args(["serve", "--store", "memory", "--api-addr", "127.0.0.1:0"])
                .env("MESHD_CONSOLE_ADDR", "127.0.0.1:0")
                .args(["--xds-addr", &addr])
                .args(extra)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            tokio::time::timeout(Duration::from_secs(60), output)
                .await
                .expect("meshd refuses to start rather than serving")
                .unwrap()
        }
    };
    let open = run(&[]).await;
    assert!(!open.status.success());
    let said = String::from_utf8_lossy(&open.stderr);
    assert!(said.contains("--xds-insecure"), "{said}");
    assert!(said.contains(&addr), "{said}");

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, TOKENS).unwrap();
    let in_the_clear = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshd"))
        .args(["serve", "--store", "memory", "--api-addr", "127.0.0.1:0"])
        .args(["--xds-addr", &addr, "--xds-tokens"])
        .arg(&tokens)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!in_the_clear.status.success());
    let said = String::from_utf8_lossy(&in_the_clear.stderr);
    assert!(said.contains("in the clear"), "{said}");

    let insecure =
        MeshdProcess::start(&["--store", "memory", "--xds-addr", &addr, "--xds-insecure"]).await;
    assert_eq!(insecure.xds_addr().await.port(), port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_token_file_and_nack_details_are_logged_cut() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "old-token mesh/demo/virtualNode/front\n").unwrap();
    let tokens_arg = tokens.to_string_lossy().into_owned();
    let meshd = MeshdProcess::start(&[
        "--store",
        "memory",
        "--xds-addr",
        "127.0.0.1:0",
        "--xds-tokens",
        &tokens_arg,
    ])
    .await;
    let xds = meshd.xds_addr().await;
    create_front(meshd.api).await;
    // Tokens need no TLS on loopback; without one, the stream is refused.
    let refusal = sotw_first(plain_channel(xds).await, FRONT, None).await;
    assert_refused(refusal, Code::Unauthenticated, "requires a credential");
    assert!(
        sotw_first(plain_channel(xds).await, FRONT, Some("old-token"))
            .await
            .is_ok()
    );

    std::fs::write(&tokens, "new-token mesh/demo/virtualNode/front\n").unwrap();
    let pid = meshd.child.id().unwrap().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    eventually("the new token to be accepted", WAIT, || async {
        sotw_first(plain_channel(xds).await, FRONT, Some("new-token"))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let refusal = sotw_first(plain_channel(xds).await, FRONT, Some("old-token")).await;
    assert_refused(refusal, Code::Unauthenticated, "--xds-tokens");

    // A NACK with a megabyte of error text: the log and the status view keep a bounded cut.
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node(FRONT)),
        type_url: CDS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut ads = AggregatedDiscoveryServiceClient::new(plain_channel(xds).await);
    let mut responses = ads
        .stream_aggregated_resources(with_token(ReceiverStream::new(rx), Some("new-token")))
        .await
        .unwrap()
        .into_inner();
    let first = responses.message().await.unwrap().unwrap();
    let huge = "x".repeat(1 << 20);
    tx.send(DiscoveryRequest {
        type_url: CDS.into(),
        response_nonce: first.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: format!("rejected: {huge}"),
            details: vec![],
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let nack = eventually("the NACK to be shown", WAIT, || async {
        let proxies = meshd_proxies(meshd.api).await;
        proxies
            .iter()
            .find_map(|p| {
                p["types"]["cluster"]["nack"]["message"]
                    .as_str()
                    .map(str::to_string)
            })
            .ok_or_else(|| format!("{proxies:?}"))
    })
    .await;
    assert!(nack.starts_with("rejected: xxx"), "{}", &nack[..40]);
    assert!(
        nack.len() < 5_000,
        "the status view keeps {} bytes",
        nack.len()
    );
    let logged = meshd
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("rejected its configuration"))
        .cloned();
    let logged = logged.expect("the NACK is logged");
    assert!(
        logged.len() < 1_000,
        "the log line is {} bytes",
        logged.len()
    );
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_speak_http2_or_carry_no_stream_are_closed() {
    use tokio::io::AsyncReadExt;
    let server = start(XdsConfig {
        listener: meshd::net::ListenerLimits {
            handshake_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..XdsConfig::default()
    })
    .await;
    let xds = server.xds_addr.unwrap();
    let closed = |mut socket: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(WAIT, async {
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .expect("meshd closes the connection");
    };
    // Silent after connecting: closed at the handshake deadline.
    closed(tokio::net::TcpStream::connect(xds).await.unwrap()).await;
    // HTTP/1 instead of the HTTP/2 preface: closed at once.
    let mut http1 = tokio::net::TcpStream::connect(xds).await.unwrap();
    http1
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n")
        .await
        .unwrap();
    closed(http1).await;
    // HTTP/2 and then no stream: closed by the idle sweep.
    let mut idle = tokio::net::TcpStream::connect(xds).await.unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    closed(idle).await;
    let view = xds_view(server.api_addr).await;
    assert_eq!(view["connections"]["failedHandshakes"], 2, "{view}");
    assert_eq!(view["connections"]["closedIdle"], 1, "{view}");
    // A proxy with a stream is never closed as idle.
    let channel = plain_channel(xds).await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node(FRONT)),
        type_url: CDS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut stream = AggregatedDiscoveryServiceClient::new(channel)
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        xds_view(server.api_addr).await["connections"]["closedIdle"],
        1
    );
    assert_eq!(xds_view(server.api_addr).await["streams"], 1);
    drop(tx);
}

// ---- ACM secrets: key material only to the proxy that names it and proved it ----

const SDS: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
const FRONT_CERTIFICATE: &str = "arn:aws:acm:us-east-1:111122223333:certificate/front";

/// `front` serves its listener with an ACM certificate; `other` names none.
fn front_with_acm(store: &meshd::store::Store) {
    meshd::definition::put(
        store,
        &json!({"meshName": "demo", "virtualNodeName": "front", "spec": {
            "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                           "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": FRONT_CERTIFICATE}}}}],
            "serviceDiscovery": {"dns": {"hostname": "front.demo.local"}}}}),
    )
    .unwrap();
}

/// The secrets a SotW stream as `node_id` gets when it asks for `FRONT_CERTIFICATE`
/// by name: those of the first response within a few seconds (none if none comes).
async fn secrets_sent(channel: Channel, node_id: &str, token: Option<&str>) -> Vec<Secret> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node(node_id)),
        type_url: SDS.into(),
        resource_names: vec![FRONT_CERTIFICATE.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(with_token(ReceiverStream::new(rx), token))
        .await
        .expect("the stream is admitted")
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut secrets = Vec::new();
    while let Ok(Ok(Some(response))) = tokio::time::timeout_at(deadline, responses.message()).await
    {
        secrets = response
            .resources
            .iter()
            .map(|any| Secret::decode(any.value.as_slice()).unwrap())
            .collect();
        if !secrets.is_empty() {
            break;
        }
    }
    drop(tx);
    secrets
}

fn private_key_of(secret: &Secret) -> String {
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type;
    match &secret.r#type {
        Some(Type::TlsCertificate(certificate)) => match certificate
            .private_key
            .as_ref()
            .and_then(|key| key.specifier.as_ref())
        {
            Some(Specifier::InlineString(key)) => key.clone(),
            other => panic!("an inline key, not {other:?}"),
        },
        other => panic!("a certificate, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_goes_only_to_the_proxy_whose_configuration_names_it() {
    let secured = Secured::start().await;
    front_with_acm(&secured.server.store);
    let front = secured.pki.proxy("front", TRUST_DOMAIN, FRONT);
    let other = secured.pki.proxy("other", TRUST_DOMAIN, OTHER);

    let sent = secrets_sent(secured.channel(Some(front)).await, FRONT, None).await;
    assert_eq!(sent.len(), 1, "front gets its certificate");
    assert_eq!(sent[0].name, FRONT_CERTIFICATE);
    assert!(private_key_of(&sent[0]).contains("PRIVATE KEY"));
    let sent = secrets_sent(secured.channel(None).await, FRONT, Some("front-token")).await;
    assert_eq!(sent.len(), 1, "and so does a stream with front's token");

    // Another proxy asking for it by name, with its own valid certificate: nothing.
    let sent = secrets_sent(secured.channel(Some(other)).await, OTHER, None).await;
    assert!(
        sent.is_empty(),
        "other's configuration names no secret: {sent:?}"
    );
}

/// An address of this host that is not loopback (the one its default route leaves by).
fn non_loopback_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("this host has a route off loopback (the test needs one)");
    let address = socket.local_addr().unwrap().ip();
    assert!(!address.is_loopback(), "{address} is loopback");
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_from_off_this_host_is_never_sent_a_secret() {
    let account = Account {
        region: common::REGION.into(),
        account_id: common::ACCOUNT_ID.into(),
    };
    let config = ServerConfig {
        xds_addr: Some("0.0.0.0:0".parse().unwrap()),
        xds: XdsConfig {
            insecure: true,
            ..XdsConfig::default()
        },
        ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    let server = meshd::server::start(config).await.expect("meshd starts");
    meshd::definition::load(&server.store, &demo_mesh()).unwrap();
    front_with_acm(&server.store);
    let port = server.xds_addr.unwrap().port();

    let remote = SocketAddr::new(non_loopback_address(), port);
    let sent = secrets_sent(plain_channel(remote).await, FRONT, None).await;
    assert!(
        sent.is_empty(),
        "no key material in the clear off this host: {sent:?}"
    );
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let sent = secrets_sent(plain_channel(local).await, FRONT, None).await;
    assert_eq!(sent.len(), 1, "a process on this host gets it");

    // While a remote stream is open, its status says why it holds no secret.
    let remote_stream = tokio::spawn(async move {
        let mut client = AggregatedDiscoveryServiceClient::new(plain_channel(remote).await);
        let (tx, rx) = mpsc::channel(4);
        tx.send(DiscoveryRequest {
            node: Some(node(FRONT)),
            type_url: CDS.into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut responses = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let _ = responses.message().await;
        tokio::time::sleep(WAIT).await;
        drop(tx);
    });
    let status = eventually("the remote stream's status", WAIT, || async {
        let proxies = meshd_proxies(server.api_addr).await;
        match proxies.iter().find(|p| {
            p["diagnostics"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|m| m.as_str().unwrap_or("").contains("withheld"))
            })
        }) {
            Some(found) => Ok(found.clone()),
            None => Err(serde_json::to_string(&proxies).unwrap()),
        }
    })
    .await;
    assert_eq!(status["secrets"], json!([]), "{status}");
    remote_stream.abort();
}
