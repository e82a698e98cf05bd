//! Shared support for the compiler's tests: loading mesh definitions into a store, and a
//! proptest generator of random valid meshes (every resource kind, every listener
//! protocol, discovery kind, TLS mode, pool, health check, route kind and match kind).
#![allow(dead_code)]

use std::sync::Arc;

use meshd::definition;
use meshd::store::{Snapshot, Store};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{Value, json};

/// Loads `definition` (a JSON list of App Mesh resources) into a fresh in-memory store,
/// panicking with the loader's reason if it is not valid.
pub fn load_store(definition: &Value) -> Store {
    let store = Store::in_memory(Default::default());
    if let Err(err) = definition::load(&store, definition) {
        panic!("the definition does not load: {err}\n{definition}");
    }
    store
}

/// The snapshot of a store loaded from `definition`.
pub fn load(definition: &Value) -> Arc<Snapshot> {
    load_store(definition).snapshot()
}

/// Where the certificates that TLS settings name live. Golden and property tests use
/// paths that need not exist; the Envoy tests point them at real files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// A CA certificate (PEM).
    pub ca: String,
    /// A certificate chain signed by the CA (PEM).
    pub cert: String,
    /// The certificate's private key (PEM).
    pub key: String,
}

impl CertPaths {
    /// Paths under `/certs`, for tests that never read them.
    pub fn placeholder() -> Self {
        Self {
            ca: "/certs/ca.pem".into(),
            cert: "/certs/cert.pem".into(),
            key: "/certs/key.pem".into(),
        }
    }
}

/// The mesh every generated definition lives in.
pub const MESH: &str = "m";

/// A generated mesh: its resources in creation order (parents first), ready for
/// [`definition::load`].
#[derive(Debug, Clone)]
pub struct GeneratedMesh {
    /// The resources, as `describe-*` shapes.
    pub resources: Vec<Value>,
}

impl GeneratedMesh {
    /// The definition as a JSON list.
    pub fn definition(&self) -> Value {
        Value::Array(self.resources.clone())
    }
}

const PROTOCOLS: [&str; 4] = ["http", "http2", "grpc", "tcp"];
const GATEWAY_PROTOCOLS: [&str; 3] = ["http", "http2", "grpc"];
const NODE_PORTS: [i64; 8] = [80, 443, 3306, 5432, 8080, 8443, 9000, 9090];
const GATEWAY_PORTS: [i64; 4] = [8080, 8443, 9080, 10000];
const IP_PREFERENCES: [&str; 4] = ["IPv6_PREFERRED", "IPv4_PREFERRED", "IPv4_ONLY", "IPv6_ONLY"];
const HEADER_NAMES: [&str; 4] = ["x-user", "x-version", "x-canary", "content-type"];
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
const REGEXES: [&str; 3] = ["^/api/v[0-9]+/.*", "/items/[a-z]+", "^[a-z]+$"];
const HTTP_RETRY_EVENTS: [&str; 4] = [
    "server-error",
    "gateway-error",
    "client-error",
    "stream-error",
];
const GRPC_RETRY_EVENTS: [&str; 5] = [
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

fn optional<T: std::fmt::Debug + Clone + 'static>(
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::of(strategy).boxed()
}

/// Inserts `value` under `key` when it is `Some`.
fn put(object: &mut Value, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        object
            .as_object_mut()
            .expect("an object")
            .insert(key.to_string(), value);
    }
}

/// An App Mesh duration in either unit; now and then 0, which the API accepts.
fn duration_any() -> impl Strategy<Value = Value> {
    (
        select(vec!["s", "ms"]),
        prop_oneof![1 => Just(0i64), 7 => 1i64..120_000],
    )
        .prop_map(|(unit, value)| json!({"unit": unit, "value": value}))
}

fn connection_pool(protocol: &str) -> BoxedStrategy<Value> {
    match protocol {
        "http" => (1i64..5000, optional(1i64..5000))
            .prop_map(|(max, pending)| {
                let mut http = json!({"maxConnections": max});
                put(&mut http, "maxPendingRequests", pending.map(Value::from));
                json!({"http": http})
            })
            .boxed(),
        "http2" => (1i64..5000)
            .prop_map(|max| json!({"http2": {"maxRequests": max}}))
            .boxed(),
        "grpc" => (1i64..5000)
            .prop_map(|max| json!({"grpc": {"maxRequests": max}}))
            .boxed(),
        _ => (1i64..5000)
            .prop_map(|max| json!({"tcp": {"maxConnections": max}}))
            .boxed(),
    }
}

fn listener_timeout(protocol: &str) -> BoxedStrategy<Value> {
    let protocol = protocol.to_string();
    if protocol == "tcp" {
        return optional(duration_any())
            .prop_map(|idle| {
                let mut tcp = json!({});
                put(&mut tcp, "idle", idle);
                json!({"tcp": tcp})
            })
            .boxed();
    }
    (optional(duration_any()), optional(duration_any()))
        .prop_map(move |(idle, per_request)| {
            let mut timeout = json!({});
            put(&mut timeout, "idle", idle);
            put(&mut timeout, "perRequest", per_request);
            json!({ protocol.clone(): timeout })
        })
        .boxed()
}

fn health_check() -> impl Strategy<Value = Value> {
    (
        select(PROTOCOLS.to_vec()),
        2i64..=10,
        2i64..=10,
        5000i64..=300_000,
        2000i64..=60_000,
        optional(1i64..65535),
        select(vec!["/ping", "/health", "/"]),
    )
        .prop_map(
            |(protocol, healthy, unhealthy, interval, timeout, port, path)| {
                let mut check = json!({
                    "protocol": protocol,
                    "healthyThreshold": healthy,
                    "unhealthyThreshold": unhealthy,
                    "intervalMillis": interval,
                    "timeoutMillis": timeout,
                });
                if matches!(protocol, "http" | "http2") {
                    put(&mut check, "path", Some(json!(path)));
                }
                put(&mut check, "port", port.map(Value::from));
                check
            },
        )
}

fn gateway_health_check() -> impl Strategy<Value = Value> {
    (
        select(GATEWAY_PROTOCOLS.to_vec()),
        2i64..=10,
        2i64..=10,
        5000i64..=300_000,
        2000i64..=60_000,
        optional(1i64..65535),
    )
        .prop_map(|(protocol, healthy, unhealthy, interval, timeout, port)| {
            let mut check = json!({
                "protocol": protocol,
                "healthyThreshold": healthy,
                "unhealthyThreshold": unhealthy,
                "intervalMillis": interval,
                "timeoutMillis": timeout,
            });
            if protocol != "grpc" {
                put(&mut check, "path", Some(json!("/health")));
            }
            put(&mut check, "port", port.map(Value::from));
            check
        })
}

fn outlier_detection() -> impl Strategy<Value = Value> {
    (1i64..100, duration_any(), duration_any(), 0i64..=100).prop_map(
        |(errors, interval, ejection, percent)| {
            json!({
                "maxServerErrors": errors,
                "interval": interval,
                "baseEjectionDuration": ejection,
                "maxEjectionPercent": percent,
            })
        },
    )
}

fn san_list() -> impl Strategy<Value = Option<Value>> {
    optional(subsequence(
        vec!["a.mesh.local", "spiffe://mesh/a", "b.mesh.local"],
        1..=2,
    ))
    .prop_map(|names| names.map(|names| json!({"match": {"exact": names}})))
}

/// A listener certificate: file, SDS or (rarely) ACM, which meshd cannot use.
fn listener_certificate(certs: &CertPaths) -> impl Strategy<Value = Value> + use<> {
    let file = json!({"file": {"certificateChain": certs.cert, "privateKey": certs.key}});
    prop_oneof![
        4 => Just(file),
        2 => Just(json!({"sds": {"secretName": "listener-cert"}})),
        1 => Just(json!({"acm": {"certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/abc"}})),
    ]
}

fn listener_validation(certs: &CertPaths) -> impl Strategy<Value = Value> + use<> {
    let file = json!({"file": {"certificateChain": certs.ca}});
    (
        prop_oneof![
            Just(file),
            Just(json!({"sds": {"secretName": "listener-ca"}}))
        ],
        san_list(),
    )
        .prop_map(|(trust, sans)| {
            let mut validation = json!({"trust": trust});
            put(&mut validation, "subjectAlternativeNames", sans);
            validation
        })
}

fn listener_tls(certs: &CertPaths) -> impl Strategy<Value = Value> + use<> {
    (
        select(vec!["STRICT", "PERMISSIVE", "DISABLED"]),
        listener_certificate(certs),
        optional(listener_validation(certs)),
    )
        .prop_map(|(mode, certificate, validation)| {
            let mut tls = json!({"mode": mode, "certificate": certificate});
            put(&mut tls, "validation", validation);
            tls
        })
}

fn client_policy(certs: &CertPaths) -> impl Strategy<Value = Value> + use<> {
    let file_trust = json!({"file": {"certificateChain": certs.ca}});
    let file_cert = json!({"file": {"certificateChain": certs.cert, "privateKey": certs.key}});
    (
        prop_oneof![
            4 => Just(file_trust),
            2 => Just(json!({"sds": {"secretName": "client-ca"}})),
            1 => Just(json!({"acm": {"certificateAuthorityArns": ["arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x"]}})),
        ],
        san_list(),
        optional(prop_oneof![
            Just(file_cert),
            Just(json!({"sds": {"secretName": "client-cert"}}))
        ]),
        optional(any::<bool>()),
        optional(subsequence(NODE_PORTS.to_vec(), 1..=2)),
    )
        .prop_map(|(trust, sans, certificate, enforce, ports)| {
            let mut validation = json!({"trust": trust});
            put(&mut validation, "subjectAlternativeNames", sans);
            let mut tls = json!({"validation": validation});
            put(&mut tls, "certificate", certificate);
            put(&mut tls, "enforce", enforce.map(Value::from));
            put(&mut tls, "ports", ports.map(|p| json!(p)));
            json!({"tls": tls})
        })
}

fn logging() -> impl Strategy<Value = Value> {
    let format = prop_oneof![
        Just(None),
        Just(Some(
            json!({"text": "[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE%"})
        )),
        Just(Some(json!({"text": "%UPSTREAM_HOST%\n"}))),
        Just(Some(
            json!({"json": [{"key": "start", "value": "%START_TIME%"}, {"key": "code", "value": "%RESPONSE_CODE%"}]})
        )),
    ];
    (select(vec!["/dev/stdout", "/tmp/envoy-access.log"]), format).prop_map(|(path, format)| {
        let mut file = json!({"path": path});
        put(&mut file, "format", format);
        json!({"accessLog": {"file": file}})
    })
}

/// One listener of a virtual node: its port, protocol and spec.
#[derive(Debug, Clone)]
pub struct NodeListener {
    /// The port.
    pub port: i64,
    /// The protocol.
    pub protocol: &'static str,
    /// The listener's spec.
    pub spec: Value,
}

fn node_listener(port: i64, certs: &CertPaths) -> impl Strategy<Value = NodeListener> + use<> {
    let certs = certs.clone();
    select(PROTOCOLS.to_vec()).prop_flat_map(move |protocol| {
        (
            optional(connection_pool(protocol)),
            optional(listener_timeout(protocol)),
            optional(health_check()),
            optional(outlier_detection()),
            optional(listener_tls(&certs)),
        )
            .prop_map(move |(pool, timeout, check, outlier, tls)| {
                let mut spec = json!({"portMapping": {"port": port, "protocol": protocol}});
                put(&mut spec, "connectionPool", pool);
                put(&mut spec, "timeout", timeout);
                put(&mut spec, "healthCheck", check);
                put(&mut spec, "outlierDetection", outlier);
                put(&mut spec, "tls", tls);
                NodeListener {
                    port,
                    protocol,
                    spec,
                }
            })
    })
}

fn service_discovery(name: String) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (optional(select(IP_PREFERENCES.to_vec())), optional(select(vec!["LOADBALANCER", "ENDPOINTS"])))
            .prop_map(move |(ip, response)| {
                let mut dns = json!({"hostname": format!("{name}.mesh.local")});
                put(&mut dns, "ipPreference", ip.map(Value::from));
                put(&mut dns, "responseType", response.map(Value::from));
                json!({"dns": dns})
            }),
        1 => (optional(select(IP_PREFERENCES.to_vec())), any::<bool>()).prop_map(|(ip, attributes)| {
            let mut map = json!({"namespaceName": "mesh.local", "serviceName": "svc"});
            put(&mut map, "ipPreference", ip.map(Value::from));
            if attributes {
                put(&mut map, "attributes", Some(json!([{"key": "stage", "value": "prod"}])));
            }
            json!({"awsCloudMap": map})
        }),
    ]
}

/// A virtual node before its backends are chosen.
#[derive(Debug, Clone)]
pub struct NodeShape {
    /// Its listeners.
    pub listeners: Vec<NodeListener>,
    /// `serviceDiscovery`, if any.
    pub discovery: Option<Value>,
    /// `logging`, if any.
    pub logging: Option<Value>,
}

fn node_shape(name: String, certs: &CertPaths) -> impl Strategy<Value = NodeShape> + use<> {
    let certs = certs.clone();
    (
        subsequence(NODE_PORTS.to_vec(), 0..=3),
        any::<bool>(),
        optional(logging()),
    )
        .prop_flat_map(move |(ports, discover_anyway, logging)| {
            let listeners: Vec<_> = ports
                .into_iter()
                .map(|port| node_listener(port, &certs))
                .collect();
            let needs_discovery = !listeners.is_empty() || discover_anyway;
            let discovery = if needs_discovery {
                service_discovery(name.clone()).prop_map(Some).boxed()
            } else {
                Just(None).boxed()
            };
            (listeners, discovery, Just(logging))
        })
        .prop_map(|(listeners, discovery, logging)| NodeShape {
            listeners,
            discovery,
            logging,
        })
}

/// A virtual router's listeners: port and protocol.
pub type RouterShape = Vec<(i64, &'static str)>;

fn router_shape() -> impl Strategy<Value = RouterShape> {
    subsequence(vec![80i64, 8080, 9000, 5432], 1..=2).prop_flat_map(|ports| {
        let n = ports.len();
        (
            Just(ports),
            proptest::collection::vec(select(PROTOCOLS.to_vec()), n),
        )
            .prop_map(|(ports, protocols)| ports.into_iter().zip(protocols).collect())
    })
}

/// A virtual gateway listener: port, protocol and spec.
#[derive(Debug, Clone)]
pub struct GatewayListener {
    /// The port.
    pub port: i64,
    /// The protocol.
    pub protocol: &'static str,
    /// The listener's spec.
    pub spec: Value,
}

fn gateway_listener(
    port: i64,
    certs: &CertPaths,
) -> impl Strategy<Value = GatewayListener> + use<> {
    let certs = certs.clone();
    select(GATEWAY_PROTOCOLS.to_vec()).prop_flat_map(move |protocol| {
        (
            optional(connection_pool(protocol)),
            optional(gateway_health_check()),
            optional(listener_tls(&certs)),
        )
            .prop_map(move |(pool, check, tls)| {
                let mut spec = json!({"portMapping": {"port": port, "protocol": protocol}});
                put(&mut spec, "connectionPool", pool);
                put(&mut spec, "healthCheck", check);
                put(&mut spec, "tls", tls);
                GatewayListener {
                    port,
                    protocol,
                    spec,
                }
            })
    })
}

/// A virtual gateway: listeners and the rest of its spec.
#[derive(Debug, Clone)]
pub struct GatewayShape {
    /// Its listeners.
    pub listeners: Vec<GatewayListener>,
    /// The spec without listeners.
    pub rest: Value,
}

fn gateway_shape(certs: &CertPaths) -> impl Strategy<Value = GatewayShape> + use<> {
    let certs = certs.clone();
    (
        subsequence(GATEWAY_PORTS.to_vec(), 1..=3),
        optional(logging()),
        optional(client_policy(&certs)),
    )
        .prop_flat_map(move |(ports, logging, policy)| {
            let listeners: Vec<_> = ports
                .into_iter()
                .map(|port| gateway_listener(port, &certs))
                .collect();
            let mut rest = json!({});
            put(&mut rest, "logging", logging);
            put(
                &mut rest,
                "backendDefaults",
                policy.map(|p| json!({"clientPolicy": p})),
            );
            (listeners, Just(rest))
        })
        .prop_map(|(listeners, rest)| GatewayShape { listeners, rest })
}

/// The first stage of a mesh: everything that others refer to.
#[derive(Debug, Clone)]
pub struct MeshShape {
    /// The mesh's spec.
    pub mesh: Value,
    /// Virtual nodes `n0`, `n1`, …
    pub nodes: Vec<NodeShape>,
    /// Virtual routers `r0`, `r1`, …
    pub routers: Vec<RouterShape>,
    /// How many virtual services (`s0.mesh.local`, …).
    pub services: usize,
    /// Virtual gateways `g0`, `g1`, …
    pub gateways: Vec<GatewayShape>,
}

fn mesh_spec() -> impl Strategy<Value = Value> {
    (
        optional(select(vec!["ALLOW_ALL", "DROP_ALL"])),
        optional(select(IP_PREFERENCES.to_vec())),
    )
        .prop_map(|(filter, ip)| {
            let mut spec = json!({});
            put(
                &mut spec,
                "egressFilter",
                filter.map(|f| json!({"type": f})),
            );
            put(
                &mut spec,
                "serviceDiscovery",
                ip.map(|ip| json!({"ipPreference": ip})),
            );
            spec
        })
}

/// The name of generated virtual node `i`.
pub fn node_name(i: usize) -> String {
    format!("n{i}")
}
/// The name of generated virtual router `i`.
pub fn router_name(i: usize) -> String {
    format!("r{i}")
}
/// The name of generated virtual service `i`.
pub fn service_name(i: usize) -> String {
    format!("s{i}.mesh.local")
}
/// The name of generated virtual gateway `i`.
pub fn gateway_name(i: usize) -> String {
    format!("g{i}")
}

fn mesh_shape(certs: &CertPaths) -> impl Strategy<Value = MeshShape> + use<> {
    let nodes = proptest::collection::vec(Just(()), 1..=5);
    let certs = certs.clone();
    (
        mesh_spec(),
        nodes,
        proptest::collection::vec(router_shape(), 0..=3),
        1usize..=5,
    )
        .prop_flat_map(move |(mesh, nodes, routers, services)| {
            let nodes: Vec<_> = (0..nodes.len())
                .map(|i| node_shape(node_name(i), &certs))
                .collect();
            let gateways = proptest::collection::vec(gateway_shape(&certs), 0..=2);
            (Just(mesh), nodes, Just(routers), Just(services), gateways)
        })
        .prop_map(|(mesh, nodes, routers, services, gateways)| MeshShape {
            mesh,
            nodes,
            routers,
            services,
            gateways,
        })
}

fn header_match() -> impl Strategy<Value = Option<Value>> {
    optional(prop_oneof![
        Just(json!({"exact": "alice"})),
        Just(json!({"prefix": "v1"})),
        Just(json!({"suffix": "-beta"})),
        select(REGEXES.to_vec()).prop_map(|r| json!({ "regex": r })),
        (0i64..100, 1i64..100)
            .prop_map(|(start, len)| json!({"range": {"start": start, "end": start + len}})),
    ])
}

fn headers() -> impl Strategy<Value = Option<Value>> {
    optional(proptest::collection::vec(
        (
            select(HEADER_NAMES.to_vec()),
            header_match(),
            optional(any::<bool>()),
        )
            .prop_map(|(name, m, invert)| {
                let mut header = json!({"name": name});
                put(&mut header, "match", m);
                put(&mut header, "invert", invert.map(Value::from));
                header
            }),
        1..=3,
    ))
    .prop_map(|h| h.map(Value::from))
}

fn query_parameters() -> impl Strategy<Value = Option<Value>> {
    optional(proptest::collection::vec(
        (select(vec!["q", "page", "debug"]), any::<bool>()).prop_map(|(name, exact)| {
            if exact {
                json!({"name": name, "match": {"exact": "1"}})
            } else {
                json!({"name": name})
            }
        }),
        1..=2,
    ))
    .prop_map(|q| q.map(Value::from))
}

/// The path part of an HTTP route match: a prefix, an exact path or a regex.
fn http_path() -> impl Strategy<Value = (Option<Value>, Option<Value>)> {
    prop_oneof![
        select(vec!["/", "/api", "/api/", "/static/images"]).prop_map(|p| (Some(json!(p)), None)),
        select(vec!["/", "/login", "/api/v1/items"])
            .prop_map(|p| (None, Some(json!({ "exact": p })))),
        select(REGEXES.to_vec()).prop_map(|r| (None, Some(json!({ "regex": r })))),
    ]
}

fn http_retry(grpc: bool) -> impl Strategy<Value = Value> {
    (
        0i64..5,
        duration_any(),
        optional(subsequence(HTTP_RETRY_EVENTS.to_vec(), 1..=4)),
        any::<bool>(),
        optional(subsequence(GRPC_RETRY_EVENTS.to_vec(), 1..=5)),
    )
        .prop_map(move |(retries, per_retry, http, tcp, grpc_events)| {
            let mut policy = json!({"maxRetries": retries, "perRetryTimeout": per_retry});
            put(
                &mut policy,
                "httpRetryEvents",
                http.clone().map(Value::from),
            );
            let grpc_events = grpc_events.filter(|_| grpc);
            let has_events = http.is_some() || grpc_events.is_some();
            if tcp || !has_events {
                put(
                    &mut policy,
                    "tcpRetryEvents",
                    Some(json!(["connection-error"])),
                );
            }
            put(&mut policy, "grpcRetryEvents", grpc_events.map(Value::from));
            policy
        })
}

fn route_timeout() -> impl Strategy<Value = Option<Value>> {
    optional(
        (optional(duration_any()), optional(duration_any())).prop_map(|(idle, per_request)| {
            let mut timeout = json!({});
            put(&mut timeout, "idle", idle);
            put(&mut timeout, "perRequest", per_request);
            timeout
        }),
    )
}

/// Weighted targets over the nodes: each a node, an optional listener port of it, a
/// weight (zero allowed, but not all zero).
fn weighted_targets(nodes: &[NodeShape]) -> impl Strategy<Value = Value> + use<> {
    let choices: Vec<(String, Vec<i64>)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (node_name(i), n.listeners.iter().map(|l| l.port).collect()))
        .collect();
    proptest::collection::vec(
        (
            select(choices),
            prop_oneof![1 => Just(0i64), 3 => 1i64..=100],
            any::<prop::sample::Index>(),
            any::<bool>(),
        ),
        1..=3,
    )
    .prop_map(|targets| {
        let mut out: Vec<Value> = targets
            .into_iter()
            .map(|((node, ports), weight, index, with_port)| {
                let mut target = json!({"virtualNode": node, "weight": weight});
                if with_port && !ports.is_empty() {
                    put(
                        &mut target,
                        "port",
                        Some(json!(ports[index.index(ports.len())])),
                    );
                }
                target
            })
            .collect();
        if out.iter().all(|t| t["weight"] == 0) {
            out[0]["weight"] = json!(1);
        }
        Value::from(out)
    })
}

fn route_spec(router: &RouterShape, nodes: &[NodeShape]) -> impl Strategy<Value = Value> + use<> {
    let several = router.len() > 1;
    let listener = select(router.clone());
    let targets = weighted_targets(nodes);
    (
        listener,
        any::<bool>(),
        any::<bool>(),
        optional(0i64..=1000),
        targets,
        http_path(),
        headers(),
        optional(select(METHODS.to_vec())),
        optional(select(vec!["http", "https"])),
        query_parameters(),
        (
            optional(http_retry(false)),
            optional(http_retry(true)),
            route_timeout(),
        ),
        (
            optional(select(vec!["pkg.Greeter", "helloworld.Greeter"])),
            optional(select(vec!["SayHello", "List"])),
            headers(),
            any::<bool>(),
        ),
    )
        .prop_map(
            move |(
                (port, protocol),
                name_port,
                other_kind,
                priority,
                targets,
                (prefix, path),
                headers,
                method,
                scheme,
                query,
                (http_retry, grpc_retry, timeout),
                (service, method_name, metadata, tcp_match),
            )| {
                // Mostly the kind of the listener the route names; sometimes another kind,
                // which the compiler must leave out of that listener.
                let kind = if other_kind && name_port {
                    match protocol {
                        "http" => "http2",
                        "http2" => "grpc",
                        "grpc" => "tcp",
                        _ => "http",
                    }
                } else {
                    protocol
                };
                let match_port = (several || name_port).then_some(port);
                let mut spec = json!({});
                put(&mut spec, "priority", priority.map(Value::from));
                match kind {
                    "http" | "http2" => {
                        let mut m = json!({});
                        put(&mut m, "prefix", prefix);
                        put(&mut m, "path", path);
                        put(&mut m, "headers", headers);
                        put(&mut m, "method", method.map(Value::from));
                        put(&mut m, "scheme", scheme.map(Value::from));
                        put(&mut m, "queryParameters", query);
                        put(&mut m, "port", match_port.map(Value::from));
                        let mut route = json!({"match": m, "action": {"weightedTargets": targets}});
                        put(&mut route, "retryPolicy", http_retry);
                        put(&mut route, "timeout", timeout);
                        let key = if kind == "http" {
                            "httpRoute"
                        } else {
                            "http2Route"
                        };
                        put(&mut spec, key, Some(route));
                    }
                    "grpc" => {
                        let mut m = json!({});
                        put(&mut m, "serviceName", service.map(Value::from));
                        if service.is_some() {
                            put(&mut m, "methodName", method_name.map(Value::from));
                        }
                        put(&mut m, "metadata", metadata);
                        put(&mut m, "port", match_port.map(Value::from));
                        let mut route = json!({"match": m, "action": {"weightedTargets": targets}});
                        put(&mut route, "retryPolicy", grpc_retry);
                        put(&mut route, "timeout", timeout);
                        put(&mut spec, "grpcRoute", Some(route));
                    }
                    _ => {
                        let mut route = json!({"action": {"weightedTargets": targets}});
                        if match_port.is_some() || tcp_match {
                            let mut m = json!({});
                            put(&mut m, "port", match_port.map(Value::from));
                            put(&mut route, "match", Some(m));
                        }
                        if let Some(timeout) = timeout {
                            let mut tcp = json!({});
                            put(&mut tcp, "idle", timeout.get("idle").cloned());
                            put(&mut route, "timeout", Some(tcp));
                        }
                        put(&mut spec, "tcpRoute", Some(route));
                    }
                }
                spec
            },
        )
}

/// What provides virtual service `i`: nothing, node `n` or router `r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// No provider.
    None,
    /// Virtual node by index.
    Node(usize),
    /// Virtual router by index.
    Router(usize),
}

fn provider(shape: &MeshShape) -> impl Strategy<Value = Provider> + use<> {
    let nodes = shape.nodes.len();
    let routers = shape.routers.len();
    let mut choices = vec![Just(Provider::None).boxed()];
    choices.push((0..nodes).prop_map(Provider::Node).boxed());
    if routers > 0 {
        choices.push((0..routers).prop_map(Provider::Router).boxed());
        choices.push((0..routers).prop_map(Provider::Router).boxed());
    }
    proptest::strategy::Union::new(choices)
}

/// The listener ports of a provider, as gateway route targets may name them.
fn provider_ports(shape: &MeshShape, provider: Provider) -> Vec<(i64, &'static str)> {
    match provider {
        Provider::None => Vec::new(),
        Provider::Node(i) => shape.nodes[i]
            .listeners
            .iter()
            .map(|l| (l.port, l.protocol))
            .collect(),
        Provider::Router(i) => shape.routers[i].clone(),
    }
}

fn backends(
    services: usize,
    certs: &CertPaths,
) -> impl Strategy<Value = (Option<Value>, Option<Value>)> + use<> {
    (
        subsequence((0..services).collect::<Vec<_>>(), 0..=services.min(4)),
        proptest::collection::vec(optional(client_policy(certs)), 4),
        optional(client_policy(certs)),
    )
        .prop_map(|(chosen, policies, defaults)| {
            let backends: Vec<Value> = chosen
                .into_iter()
                .zip(policies)
                .map(|(i, policy)| {
                    let mut backend = json!({"virtualServiceName": service_name(i)});
                    put(&mut backend, "clientPolicy", policy);
                    json!({ "virtualService": backend })
                })
                .collect();
            (
                Some(Value::from(backends)),
                defaults.map(|p| json!({"clientPolicy": p})),
            )
        })
}

fn gateway_route_spec(
    gateway: &GatewayShape,
    services: Vec<(String, Vec<(i64, &'static str)>)>,
) -> impl Strategy<Value = Value> + use<> {
    let several = gateway.listeners.len() > 1;
    let listeners: Vec<(i64, &'static str)> = gateway
        .listeners
        .iter()
        .map(|l| (l.port, l.protocol))
        .collect();
    (
        select(listeners),
        any::<bool>(),
        optional(0i64..=1000),
        (
            select(services),
            any::<prop::sample::Index>(),
            any::<bool>(),
        ),
        (
            prop_oneof![
                select(vec!["/", "/shop", "/shop/", "/api/v2/"]).prop_map(|p| (Some(p), None)),
                select(vec!["/login", "/v1/items"])
                    .prop_map(|p| (None, Some(json!({ "exact": p })))),
                select(REGEXES.to_vec()).prop_map(|r| (None, Some(json!({ "regex": r })))),
                Just((None, None)),
            ],
            optional(prop_oneof![
                Just(json!({"exact": "www.example.com"})),
                Just(json!({"suffix": ".example.com"})),
            ]),
        ),
        headers(),
        optional(select(METHODS.to_vec())),
        query_parameters(),
        (
            optional(select(vec!["ENABLED", "DISABLED"])),
            optional(prop_oneof![
                select(vec!["ENABLED", "DISABLED"]).prop_map(|d| json!({ "defaultPrefix": d })),
                select(vec!["/", "/new/", "/v2"]).prop_map(|v| json!({ "value": v })),
            ]),
            optional(select(vec!["/rewritten", "/"])),
            optional(select(vec!["pkg.Greeter", "helloworld.Greeter"])),
        ),
    )
        .prop_map(
            move |(
                (port, protocol),
                name_port,
                priority,
                ((service, service_ports), port_index, target_port),
                ((prefix, path), hostname),
                headers,
                method,
                query,
                (host_rewrite, prefix_rewrite, path_rewrite, grpc_service),
            )| {
                let match_port = (several || name_port).then_some(port);
                let mut target = json!({"virtualService": {"virtualServiceName": service}});
                if target_port && !service_ports.is_empty() {
                    let (p, _) = service_ports[port_index.index(service_ports.len())];
                    put(&mut target, "port", Some(json!(p)));
                }
                let mut rewrite = json!({});
                put(
                    &mut rewrite,
                    "hostname",
                    host_rewrite.map(|h| json!({ "defaultTargetHostname": h })),
                );
                let mut spec = json!({});
                put(&mut spec, "priority", priority.map(Value::from));
                if protocol == "grpc" {
                    let mut m = json!({});
                    put(&mut m, "serviceName", grpc_service.map(Value::from));
                    put(&mut m, "hostname", hostname);
                    put(&mut m, "metadata", headers);
                    put(&mut m, "port", match_port.map(Value::from));
                    let mut action = json!({"target": target});
                    if rewrite.as_object().is_some_and(|r| !r.is_empty()) {
                        put(&mut action, "rewrite", Some(rewrite));
                    }
                    put(
                        &mut spec,
                        "grpcRoute",
                        Some(json!({"match": m, "action": action})),
                    );
                    return spec;
                }
                let mut m = json!({});
                let prefix = if prefix.is_none() && path.is_none() && hostname.is_none() {
                    Some("/")
                } else {
                    prefix
                };
                put(&mut m, "prefix", prefix.map(Value::from));
                put(&mut m, "path", path.clone());
                put(&mut m, "hostname", hostname);
                put(&mut m, "headers", headers);
                put(&mut m, "method", method.map(Value::from));
                put(&mut m, "queryParameters", query);
                put(&mut m, "port", match_port.map(Value::from));
                if prefix.is_some() {
                    put(&mut rewrite, "prefix", prefix_rewrite);
                }
                if path.is_some() {
                    put(
                        &mut rewrite,
                        "path",
                        path_rewrite.map(|p| json!({ "exact": p })),
                    );
                }
                let mut action = json!({"target": target});
                if rewrite.as_object().is_some_and(|r| !r.is_empty()) {
                    put(&mut action, "rewrite", Some(rewrite));
                }
                let key = if protocol == "http" {
                    "httpRoute"
                } else {
                    "http2Route"
                };
                put(&mut spec, key, Some(json!({"match": m, "action": action})));
                spec
            },
        )
}

/// Strategy: a random valid mesh named [`MESH`] whose TLS settings name `certs`.
///
/// Nodes `n*` have up to three listeners of any protocol with random pools, timeouts,
/// health checks, outlier detection and TLS, DNS or Cloud Map discovery, backends with
/// client policies and access logs; routers `r*` have one or two listeners and routes of
/// every kind and match; services `s*.mesh.local` are provided by a node, a router or
/// nothing; gateways `g*` have listeners of each protocol and gateway routes.
pub fn mesh(certs: CertPaths) -> impl Strategy<Value = GeneratedMesh> {
    mesh_shape(&certs).prop_flat_map(move |shape| {
        let providers = proptest::collection::vec(provider(&shape), shape.services);
        let node_backends: Vec<_> = shape
            .nodes
            .iter()
            .map(|_| backends(shape.services, &certs))
            .collect();
        let routes: Vec<_> = shape
            .routers
            .iter()
            .map(|router| proptest::collection::vec(route_spec(router, &shape.nodes), 0..=4))
            .collect();
        let shape_for_gateways = shape.clone();
        let gateway_routes = providers.prop_flat_map(move |providers| {
            let services: Vec<(String, Vec<(i64, &'static str)>)> = providers
                .iter()
                .enumerate()
                .map(|(i, p)| (service_name(i), provider_ports(&shape_for_gateways, *p)))
                .collect();
            let per_gateway: Vec<_> = shape_for_gateways
                .gateways
                .iter()
                .map(|g| proptest::collection::vec(gateway_route_spec(g, services.clone()), 0..=4))
                .collect();
            (Just(providers), per_gateway)
        });
        (Just(shape), gateway_routes, node_backends, routes).prop_map(
            |(shape, (providers, gateway_routes), node_backends, routes)| {
                assemble(&shape, &providers, &gateway_routes, &node_backends, &routes)
            },
        )
    })
}

fn assemble(
    shape: &MeshShape,
    providers: &[Provider],
    gateway_routes: &[Vec<Value>],
    node_backends: &[(Option<Value>, Option<Value>)],
    routes: &[Vec<Value>],
) -> GeneratedMesh {
    let mut resources = vec![json!({"meshName": MESH, "spec": shape.mesh})];
    for (i, node) in shape.nodes.iter().enumerate() {
        let mut spec = json!({});
        if !node.listeners.is_empty() {
            put(
                &mut spec,
                "listeners",
                Some(Value::from(
                    node.listeners
                        .iter()
                        .map(|l| l.spec.clone())
                        .collect::<Vec<_>>(),
                )),
            );
        }
        put(&mut spec, "serviceDiscovery", node.discovery.clone());
        put(&mut spec, "logging", node.logging.clone());
        let (backends, defaults) = node_backends[i].clone();
        put(&mut spec, "backends", backends);
        put(&mut spec, "backendDefaults", defaults);
        resources.push(json!({"meshName": MESH, "virtualNodeName": node_name(i), "spec": spec}));
    }
    for (i, router) in shape.routers.iter().enumerate() {
        let listeners: Vec<Value> = router
            .iter()
            .map(|(port, protocol)| json!({"portMapping": {"port": port, "protocol": protocol}}))
            .collect();
        resources.push(json!({"meshName": MESH, "virtualRouterName": router_name(i), "spec": {"listeners": listeners}}));
        for (j, route) in routes[i].iter().enumerate() {
            resources.push(json!({"meshName": MESH, "virtualRouterName": router_name(i), "routeName": format!("route{j}"), "spec": route}));
        }
    }
    for (i, provider) in providers.iter().enumerate() {
        let spec = match provider {
            Provider::None => json!({}),
            Provider::Node(n) => {
                json!({"provider": {"virtualNode": {"virtualNodeName": node_name(*n)}}})
            }
            Provider::Router(r) => {
                json!({"provider": {"virtualRouter": {"virtualRouterName": router_name(*r)}}})
            }
        };
        resources
            .push(json!({"meshName": MESH, "virtualServiceName": service_name(i), "spec": spec}));
    }
    for (i, gateway) in shape.gateways.iter().enumerate() {
        let mut spec = gateway.rest.clone();
        put(
            &mut spec,
            "listeners",
            Some(Value::from(
                gateway
                    .listeners
                    .iter()
                    .map(|l| l.spec.clone())
                    .collect::<Vec<_>>(),
            )),
        );
        resources
            .push(json!({"meshName": MESH, "virtualGatewayName": gateway_name(i), "spec": spec}));
        for (j, route) in gateway_routes[i].iter().enumerate() {
            resources.push(json!({"meshName": MESH, "virtualGatewayName": gateway_name(i), "gatewayRouteName": format!("gr{j}"), "spec": route}));
        }
    }
    GeneratedMesh { resources }
}
