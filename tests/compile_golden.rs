//! Golden tests of the compiler, one App Mesh feature at a time: each test loads a small
//! definition, compiles one proxy and snapshots the part of its Envoy JSON
//! (`meshd::compile::json::config_json`) that the feature shapes. The snapshots under
//! `tests/snapshots/` were reviewed against `docs/envoy-mapping.md`; a change to them is
//! a change of what Envoy is told.

mod common_compile;

use common_compile::load;
use meshd::compile::json::config_json;
use meshd::compile::{ProxyId, check_references, compile_proxy};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Building definitions.

const MESH: &str = "m";

fn mesh_with(spec: Value) -> Value {
    json!({"meshName": MESH, "spec": spec})
}

fn node(name: &str, spec: Value) -> Value {
    json!({"meshName": MESH, "virtualNodeName": name, "spec": spec})
}

/// A node with one listener and DNS discovery as `<name>.m.local`.
fn listening_node(name: &str, port: i64, protocol: &str) -> Value {
    node(
        name,
        json!({
            "listeners": [{"portMapping": {"port": port, "protocol": protocol}}],
            "serviceDiscovery": {"dns": {"hostname": format!("{name}.m.local")}}
        }),
    )
}

/// A node with no listener whose backends are `services`.
fn client(services: &[&str]) -> Value {
    let backends: Vec<Value> = services
        .iter()
        .map(|s| json!({"virtualService": {"virtualServiceName": s}}))
        .collect();
    node("client", json!({ "backends": backends }))
}

fn router(name: &str, listeners: &[(i64, &str)]) -> Value {
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|(port, protocol)| json!({"portMapping": {"port": port, "protocol": protocol}}))
        .collect();
    json!({"meshName": MESH, "virtualRouterName": name, "spec": {"listeners": listeners}})
}

fn route(router: &str, name: &str, spec: Value) -> Value {
    json!({"meshName": MESH, "virtualRouterName": router, "routeName": name, "spec": spec})
}

fn service_by_node(name: &str, node: &str) -> Value {
    json!({"meshName": MESH, "virtualServiceName": name, "spec": {"provider": {"virtualNode": {"virtualNodeName": node}}}})
}

fn service_by_router(name: &str, router: &str) -> Value {
    json!({"meshName": MESH, "virtualServiceName": name, "spec": {"provider": {"virtualRouter": {"virtualRouterName": router}}}})
}

fn gateway(name: &str, spec: Value) -> Value {
    json!({"meshName": MESH, "virtualGatewayName": name, "spec": spec})
}

fn gateway_route(gateway: &str, name: &str, spec: Value) -> Value {
    json!({"meshName": MESH, "virtualGatewayName": gateway, "gatewayRouteName": name, "spec": spec})
}

/// A gateway route of `kind` (`httpRoute`, …) matching `m`, to `service`.
fn to_service(kind: &str, m: Value, service: &str) -> Value {
    json!({ kind: {"match": m, "action": {"target": {"virtualService": {"virtualServiceName": service}}}} })
}

/// Weighted targets, one per `(node, weight)`.
fn targets(targets: &[(&str, i64)]) -> Value {
    Value::from(
        targets
            .iter()
            .map(|(node, weight)| json!({"virtualNode": node, "weight": weight}))
            .collect::<Vec<_>>(),
    )
}

/// An HTTP route matching `m`, all traffic to node `to`.
fn http_route(m: Value, to: &str) -> Value {
    json!({"httpRoute": {"match": m, "action": {"weightedTargets": targets(&[(to, 1)])}}})
}

fn with_priority(mut spec: Value, priority: i64) -> Value {
    spec["priority"] = json!(priority);
    spec
}

/// Compiles `proxy` of a definition made of a mesh (without a spec unless `resources`
/// starts with one) and `resources`; checks its references and returns its Envoy JSON.
fn compile(resources: Vec<Value>, proxy: &str) -> Value {
    let mut definition = resources;
    let is_mesh = |r: &Value| {
        r.as_object()
            .unwrap()
            .keys()
            .all(|k| k == "meshName" || k == "spec")
    };
    if !definition.first().is_some_and(is_mesh) {
        definition.insert(0, mesh_with(json!({})));
    }
    let snapshot = load(&Value::from(definition));
    let config = compile_proxy(&snapshot, &ProxyId::parse(proxy).unwrap());
    if let Err(dangling) = check_references(&config) {
        panic!("{proxy}: dangling references {dangling:?}");
    }
    config_json(&config)
}

fn compile_node(resources: Vec<Value>, name: &str) -> Value {
    compile(resources, &format!("mesh/{MESH}/virtualNode/{name}"))
}

fn compile_gateway(resources: Vec<Value>, name: &str) -> Value {
    compile(resources, &format!("mesh/{MESH}/virtualGateway/{name}"))
}

// ---------------------------------------------------------------------------------------
// Picking parts of a configuration.

fn find<'a>(config: &'a Value, list: &str, name: &str) -> &'a Value {
    let key = if list == "endpoints" {
        "cluster_name"
    } else {
        "name"
    };
    let items = config[list].as_array().unwrap();
    items
        .iter()
        .find(|item| item[key] == name)
        .unwrap_or_else(|| {
            let names: Vec<&Value> = items.iter().map(|item| &item[key]).collect();
            panic!("no {list} named {name}; there are {names:?}")
        })
}

fn listener<'a>(config: &'a Value, name: &str) -> &'a Value {
    find(config, "listeners", name)
}

fn cluster<'a>(config: &'a Value, name: &str) -> &'a Value {
    find(config, "clusters", name)
}

fn route_config<'a>(config: &'a Value, name: &str) -> &'a Value {
    find(config, "route_configs", name)
}

fn names(config: &Value, list: &str) -> Vec<String> {
    let key = if list == "endpoints" {
        "cluster_name"
    } else {
        "name"
    };
    config[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap().to_string())
        .collect()
}

/// Every route of a route configuration, over all its virtual hosts, in order.
fn routes(route_config: &Value) -> Vec<Value> {
    route_config["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|host| host["routes"].as_array().unwrap().clone())
        .collect()
}

/// `name` and `match` of each route: what decides which route a request takes.
fn matches(route_config: &Value) -> Vec<Value> {
    routes(route_config)
        .into_iter()
        .map(|r| json!({"name": r["name"], "match": r["match"]}))
        .collect()
}

/// The filter chains of a listener without their filters: name, match and TLS.
fn chains(listener: &Value) -> Vec<Value> {
    listener["filter_chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|chain| {
            let mut chain = chain.clone();
            chain.as_object_mut().unwrap().remove("filters");
            chain
        })
        .collect()
}

/// The typed config of the only filter of the filter chain named `name`.
fn chain_filter<'a>(listener: &'a Value, name: &str) -> &'a Value {
    let chain = listener["filter_chains"]
        .as_array()
        .unwrap()
        .iter()
        .chain(listener.get("default_filter_chain"))
        .find(|chain| chain["name"] == name)
        .unwrap_or_else(|| panic!("no filter chain {name} in {listener}"));
    &chain["filters"][0]["typed_config"]
}

fn diagnostics(config: &Value) -> &Value {
    &config["diagnostics"]
}

fn assert_no_diagnostics(config: &Value) {
    assert_eq!(config["diagnostics"], json!([]), "unexpected diagnostics");
}

// ---------------------------------------------------------------------------------------
// Virtual node: inbound.

#[test]
fn virtual_node_with_one_http_listener() {
    let config = compile_node(
        vec![node(
            "app",
            json!({
                "listeners": [{
                    "portMapping": {"port": 8080, "protocol": "http"},
                    "connectionPool": {"http": {"maxConnections": 10, "maxPendingRequests": 5}},
                    "timeout": {"http": {"perRequest": {"unit": "s", "value": 30}, "idle": {"unit": "s", "value": 300}}}
                }],
                "serviceDiscovery": {"dns": {"hostname": "app.m.local"}}
            }),
        )],
        "app",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(config);
}

#[test]
fn virtual_node_with_a_listener_of_each_protocol() {
    let config = compile_node(
        vec![node(
            "app",
            json!({
                "listeners": [
                    {"portMapping": {"port": 8080, "protocol": "http"},
                     "connectionPool": {"http": {"maxConnections": 10, "maxPendingRequests": 5}},
                     "timeout": {"http": {"perRequest": {"unit": "ms", "value": 2500}}}},
                    {"portMapping": {"port": 8081, "protocol": "http2"},
                     "connectionPool": {"http2": {"maxRequests": 20}},
                     "timeout": {"http2": {"perRequest": {"unit": "s", "value": 0}, "idle": {"unit": "s", "value": 60}}}},
                    {"portMapping": {"port": 8082, "protocol": "grpc"},
                     "connectionPool": {"grpc": {"maxRequests": 30}},
                     "timeout": {"grpc": {"idle": {"unit": "ms", "value": 1500}}}},
                    {"portMapping": {"port": 8083, "protocol": "tcp"},
                     "connectionPool": {"tcp": {"maxConnections": 40}},
                     "timeout": {"tcp": {"idle": {"unit": "s", "value": 3600}}}}
                ],
                "serviceDiscovery": {"dns": {"hostname": "app.m.local"}}
            }),
        )],
        "app",
    );
    assert_no_diagnostics(&config);
    let local: Vec<&Value> = config["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("cds_ingress_"))
        .collect();
    insta::assert_json_snapshot!(json!({
        "ingress_listener": listener(&config, "lds_ingress_0.0.0.0_15000"),
        "local_clusters": local,
        "route_configs": config["route_configs"],
    }));
}

// ---------------------------------------------------------------------------------------
// Virtual node: outbound, services and routes.

#[test]
fn virtual_service_provided_by_a_virtual_node() {
    let config = compile_node(
        vec![
            node(
                "b",
                json!({
                    "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                        "timeout": {"http": {"perRequest": {"unit": "s", "value": 5}}}}],
                    "serviceDiscovery": {"dns": {"hostname": "b.m.local"}}
                }),
            ),
            service_by_node("b.m.local", "b"),
            client(&["b.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(json!({
        "listener_names": names(&config, "listeners"),
        "egress_listener": listener(&config, "lds_egress_0.0.0.0_15001"),
        "route_config": route_config(&config, "rds_egress_http_8080"),
        "cluster": cluster(&config, "cds_egress_m_b_http_8080"),
    }));
}

#[test]
fn virtual_service_provided_by_a_virtual_router_with_weighted_targets() {
    let config = compile_node(
        vec![
            listening_node("blue", 8080, "http"),
            node(
                "green",
                json!({
                    "listeners": [
                        {"portMapping": {"port": 8080, "protocol": "http"}},
                        {"portMapping": {"port": 9090, "protocol": "http"}}
                    ],
                    "serviceDiscovery": {"dns": {"hostname": "green.m.local"}}
                }),
            ),
            listening_node("red", 8080, "http"),
            router("colors", &[(80, "http")]),
            route(
                "colors",
                "split",
                json!({"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
                    {"virtualNode": "blue", "weight": 3},
                    {"virtualNode": "green", "weight": 1, "port": 9090},
                    {"virtualNode": "red", "weight": 0}
                ]}}}),
            ),
            service_by_router("colors.m.local", "colors"),
            client(&["colors.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(json!({
        "route_config": route_config(&config, "rds_egress_http_80"),
        "clusters": names(&config, "clusters"),
    }));
}

#[test]
fn http_route_match_kinds() {
    let m = |n: i64, spec: Value| with_priority(http_route(spec, "b"), n);
    let config = compile_node(
        vec![
            listening_node("b", 8080, "http"),
            router("r", &[(80, "http")]),
            route("r", "prefix", m(1, json!({"prefix": "/prefix"}))),
            route(
                "r",
                "path-exact",
                m(2, json!({"path": {"exact": "/exact"}})),
            ),
            route(
                "r",
                "path-regex",
                m(3, json!({"path": {"regex": "^/items/[0-9]+$"}})),
            ),
            route(
                "r",
                "headers",
                m(
                    4,
                    json!({"prefix": "/", "headers": [
                        {"name": "x-exact", "match": {"exact": "a"}},
                        {"name": "x-prefix", "match": {"prefix": "b"}},
                        {"name": "x-suffix", "match": {"suffix": "c"}},
                        {"name": "x-regex", "match": {"regex": "^d+$"}},
                        {"name": "x-range", "match": {"range": {"start": 10, "end": 20}}},
                        {"name": "x-inverted", "invert": true, "match": {"exact": "no"}},
                        {"name": "x-present"}
                    ]}),
                ),
            ),
            route(
                "r",
                "method",
                m(5, json!({"prefix": "/", "method": "PATCH"})),
            ),
            route(
                "r",
                "scheme",
                m(6, json!({"prefix": "/", "scheme": "https"})),
            ),
            route(
                "r",
                "query",
                m(
                    7,
                    json!({"prefix": "/", "queryParameters": [
                        {"name": "exact", "match": {"exact": "1"}},
                        {"name": "present"}
                    ]}),
                ),
            ),
            service_by_router("r.m.local", "r"),
            client(&["r.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(matches(route_config(&config, "rds_egress_http_80")));
}

#[test]
fn route_match_port_on_a_router_with_several_listeners() {
    let config = compile_node(
        vec![
            listening_node("web", 8080, "http"),
            listening_node("api", 8081, "http2"),
            router("r", &[(80, "http"), (81, "http2")]),
            route(
                "r",
                "web",
                http_route(json!({"prefix": "/", "port": 80}), "web"),
            ),
            route(
                "r",
                "web-admin",
                http_route(json!({"prefix": "/admin", "port": 80}), "web"),
            ),
            route(
                "r",
                "api",
                json!({"http2Route": {"match": {"prefix": "/", "port": 81}, "action": {"weightedTargets": targets(&[("api", 1)])}}}),
            ),
            service_by_router("r.m.local", "r"),
            client(&["r.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    let egress = listener(&config, "lds_egress_0.0.0.0_15001");
    insta::assert_json_snapshot!(json!({
        "egress_chains": chains(egress).iter().map(|c| json!({"name": c["name"], "match": c["filter_chain_match"]})).collect::<Vec<_>>(),
        "port_80": route_config(&config, "rds_egress_http_80")["virtual_hosts"],
        "port_81": matches(route_config(&config, "rds_egress_http2_81")),
    }));
}

#[test]
fn grpc_route_matches() {
    let grpc = |m: Value, priority: i64| json!({"priority": priority, "grpcRoute": {"match": m, "action": {"weightedTargets": targets(&[("g", 1)])}}});
    let config = compile_node(
        vec![
            listening_node("g", 9000, "grpc"),
            router("r", &[(9000, "grpc")]),
            route(
                "r",
                "method",
                grpc(
                    json!({"serviceName": "pkg.Greeter", "methodName": "SayHello"}),
                    1,
                ),
            ),
            route(
                "r",
                "service",
                grpc(json!({"serviceName": "pkg.Greeter"}), 2),
            ),
            route(
                "r",
                "metadata",
                grpc(
                    json!({"metadata": [
                        {"name": "x-exact", "match": {"exact": "a"}},
                        {"name": "x-prefix", "match": {"prefix": "b"}},
                        {"name": "x-suffix", "match": {"suffix": "c"}},
                        {"name": "x-regex", "match": {"regex": "^d+$"}},
                        {"name": "x-range", "invert": true, "match": {"range": {"start": 1, "end": 5}}},
                        {"name": "x-present"}
                    ]}),
                    3,
                ),
            ),
            route("r", "any", grpc(json!({}), 4)),
            service_by_router("g.m.local", "r"),
            client(&["g.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(matches(route_config(&config, "rds_egress_grpc_9000")));
}

#[test]
fn routes_are_ordered_by_priority_then_specificity_then_name() {
    let config = compile_node(
        vec![
            listening_node("b", 8080, "http"),
            router("r", &[(80, "http")]),
            route("r", "a-none-short", http_route(json!({"prefix": "/"}), "b")),
            route(
                "r",
                "b-none-exact",
                http_route(json!({"path": {"exact": "/x"}}), "b"),
            ),
            route(
                "r",
                "c-p5-short",
                with_priority(http_route(json!({"prefix": "/a"}), "b"), 5),
            ),
            route(
                "r",
                "d-p5-long",
                with_priority(http_route(json!({"prefix": "/a/b"}), "b"), 5),
            ),
            route(
                "r",
                "e-p5-regex",
                with_priority(http_route(json!({"path": {"regex": "/a/.*"}}), "b"), 5),
            ),
            route(
                "r",
                "f-p5-exact",
                with_priority(http_route(json!({"path": {"exact": "/a/b"}}), "b"), 5),
            ),
            route(
                "r",
                "g-p0",
                with_priority(http_route(json!({"prefix": "/"}), "b"), 0),
            ),
            route(
                "r",
                "h-p5-short",
                with_priority(http_route(json!({"prefix": "/b"}), "b"), 5),
            ),
            service_by_router("r.m.local", "r"),
            client(&["r.m.local"]),
        ],
        "client",
    );
    insta::assert_json_snapshot!(matches(route_config(&config, "rds_egress_http_80")));
}

#[test]
fn retry_policies_and_the_default_retry() {
    let http = |events: Value, tcp: bool| {
        let mut policy = json!({"maxRetries": 3, "perRetryTimeout": {"unit": "ms", "value": 250}});
        if !events.is_null() {
            policy["httpRetryEvents"] = events;
        }
        if tcp {
            policy["tcpRetryEvents"] = json!(["connection-error"]);
        }
        policy
    };
    let http_with = |path: &str, policy: Option<Value>| {
        let mut spec = http_route(json!({"path": {"exact": path}}), "web");
        if let Some(policy) = policy {
            spec["httpRoute"]["retryPolicy"] = policy;
        }
        spec
    };
    let grpc_with = |method: &str, policy: Option<Value>| {
        let mut route = json!({"match": {"serviceName": "pkg.Svc", "methodName": method}, "action": {"weightedTargets": targets(&[("grpc", 1)])}});
        if let Some(policy) = policy {
            route["retryPolicy"] = policy;
        }
        json!({ "grpcRoute": route })
    };
    let config = compile_node(
        vec![
            listening_node("web", 8080, "http"),
            listening_node("grpc", 9000, "grpc"),
            router("http", &[(80, "http")]),
            route(
                "http",
                "server-error",
                http_with("/1", Some(http(json!(["server-error"]), false))),
            ),
            route(
                "http",
                "gateway-error",
                http_with("/2", Some(http(json!(["gateway-error"]), false))),
            ),
            route(
                "http",
                "client-error",
                http_with("/3", Some(http(json!(["client-error"]), false))),
            ),
            route(
                "http",
                "stream-error",
                http_with("/4", Some(http(json!(["stream-error"]), false))),
            ),
            route(
                "http",
                "tcp-only",
                http_with("/5", Some(http(Value::Null, true))),
            ),
            route(
                "http",
                "everything",
                http_with(
                    "/6",
                    Some(http(
                        json!([
                            "server-error",
                            "gateway-error",
                            "client-error",
                            "stream-error"
                        ]),
                        true,
                    )),
                ),
            ),
            route("http", "default", http_with("/7", None)),
            router("grpc", &[(9000, "grpc")]),
            route(
                "grpc",
                "grpc-events",
                grpc_with(
                    "A",
                    Some(
                        json!({"maxRetries": 1, "perRetryTimeout": {"unit": "s", "value": 2},
                        "grpcRetryEvents": ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"],
                        "httpRetryEvents": ["gateway-error"], "tcpRetryEvents": ["connection-error"]}),
                    ),
                ),
            ),
            route("grpc", "grpc-default", grpc_with("B", None)),
            service_by_router("http.m.local", "http"),
            service_by_router("grpc.m.local", "grpc"),
            service_by_node("web.m.local", "web"),
            client(&["http.m.local", "grpc.m.local", "web.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    let retries = |rc: &str| -> Vec<Value> {
        routes(route_config(&config, rc))
            .into_iter()
            .map(|r| json!({"name": r["name"], "retry_policy": r["route"]["retry_policy"]}))
            .collect()
    };
    insta::assert_json_snapshot!(json!({
        "http": retries("rds_egress_http_80"),
        "grpc": retries("rds_egress_grpc_9000"),
        "node_provided": retries("rds_egress_http_8080"),
    }));
}

#[test]
fn route_and_listener_timeouts() {
    let timed = |path: &str, timeout: Option<Value>| {
        let mut spec = http_route(json!({"path": {"exact": path}}), "web");
        if let Some(timeout) = timeout {
            spec["httpRoute"]["timeout"] = timeout;
        }
        spec
    };
    let config = compile_node(
        vec![
            node(
                "web",
                json!({
                    "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                        "timeout": {"http": {"perRequest": {"unit": "s", "value": 45}, "idle": {"unit": "ms", "value": 90000}}}}],
                    "serviceDiscovery": {"dns": {"hostname": "web.m.local"}}
                }),
            ),
            router("r", &[(80, "http")]),
            route("r", "default", timed("/default", None)),
            route(
                "r",
                "per-request",
                timed(
                    "/per-request",
                    Some(json!({"perRequest": {"unit": "s", "value": 60}})),
                ),
            ),
            route(
                "r",
                "idle",
                timed("/idle", Some(json!({"idle": {"unit": "ms", "value": 500}}))),
            ),
            route(
                "r",
                "disabled",
                timed(
                    "/disabled",
                    Some(json!({"perRequest": {"unit": "s", "value": 0}})),
                ),
            ),
            service_by_router("r.m.local", "r"),
            service_by_node("web.m.local", "web"),
            client(&["r.m.local", "web.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    let timeouts = |rc: &str| -> Vec<Value> {
        routes(route_config(&config, rc))
            .into_iter()
            .map(|r| json!({"name": r["name"], "timeout": r["route"]["timeout"], "idle_timeout": r["route"]["idle_timeout"]}))
            .collect()
    };
    insta::assert_json_snapshot!(json!({
        "router_routes": timeouts("rds_egress_http_80"),
        "node_provided": timeouts("rds_egress_http_8080"),
    }));
}

#[test]
fn routes_of_other_protocols_are_left_out_of_a_listener() {
    let config = compile_node(
        vec![
            listening_node("h2", 8080, "http2"),
            router("r", &[(80, "http2")]),
            route(
                "r",
                "http2",
                json!({"http2Route": {"match": {"prefix": "/"}, "action": {"weightedTargets": targets(&[("h2", 1)])},
                    "retryPolicy": {"maxRetries": 1, "perRetryTimeout": {"unit": "s", "value": 1}, "httpRetryEvents": ["stream-error"]},
                    "timeout": {"perRequest": {"unit": "s", "value": 2}}}}),
            ),
            route("r", "http", http_route(json!({"prefix": "/"}), "h2")),
            route(
                "r",
                "grpc",
                json!({"grpcRoute": {"match": {}, "action": {"weightedTargets": targets(&[("h2", 1)])}}}),
            ),
            route(
                "r",
                "tcp",
                json!({"tcpRoute": {"action": {"weightedTargets": targets(&[("h2", 1)])}}}),
            ),
            service_by_router("r.m.local", "r"),
            client(&["r.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(json!({
        "route_configs": names(&config, "route_configs"),
        "routes": routes(route_config(&config, "rds_egress_http2_80")),
        "cluster_protocol_options": cluster(&config, "cds_egress_m_h2_http2_8080")["typed_extension_protocol_options"],
    }));
}

#[test]
fn tcp_route_is_a_tcp_proxy() {
    let config = compile_node(
        vec![
            listening_node("db1", 5432, "tcp"),
            listening_node("db2", 5432, "tcp"),
            listening_node("db3", 5432, "tcp"),
            router("db", &[(5432, "tcp")]),
            route(
                "db",
                "split",
                json!({"priority": 1, "tcpRoute": {"action": {"weightedTargets": targets(&[("db1", 2), ("db2", 1), ("db3", 0)])},
                    "timeout": {"idle": {"unit": "s", "value": 600}}}}),
            ),
            route(
                "db",
                "second",
                json!({"tcpRoute": {"action": {"weightedTargets": targets(&[("db3", 1)])}}}),
            ),
            router("one", &[(6379, "tcp")]),
            route(
                "one",
                "only",
                json!({"tcpRoute": {"match": {"port": 6379}, "action": {"weightedTargets": targets(&[("db1", 1), ("db2", 0)])}}}),
            ),
            service_by_router("db.m.local", "db"),
            service_by_router("one.m.local", "one"),
            client(&["db.m.local", "one.m.local"]),
        ],
        "client",
    );
    let egress = listener(&config, "lds_egress_0.0.0.0_15001");
    insta::assert_json_snapshot!(json!({
        "port_5432": chain_filter(egress, "egress_5432"),
        "port_6379": chain_filter(egress, "egress_6379"),
        "diagnostics": diagnostics(&config),
    }));
}

// ---------------------------------------------------------------------------------------
// Target clusters: discovery, IP preference, health checks, outlier detection.

/// `name`, `type` and DNS lookup family of each egress cluster to a target node.
fn discovery_summary(config: &Value) -> Vec<Value> {
    config["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            let name = c["name"].as_str().unwrap();
            name.starts_with("cds_egress_") && !name.ends_with("amazonaws")
        })
        .map(|c| {
            json!({
                "name": c["name"],
                "type": c["type"],
                "dns_lookup_family": c["dns_lookup_family"],
                "endpoint": c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            })
        })
        .collect()
}

#[test]
fn dns_response_type_and_node_ip_preferences() {
    let dns_node = |name: &str, dns: Value| {
        let mut dns = dns;
        dns["hostname"] = json!(format!("{name}.m.local"));
        node(
            name,
            json!({"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}], "serviceDiscovery": {"dns": dns}}),
        )
    };
    let mut resources = vec![
        dns_node("plain", json!({})),
        dns_node("loadbalancer", json!({"responseType": "LOADBALANCER"})),
        dns_node("endpoints", json!({"responseType": "ENDPOINTS"})),
        dns_node("v4-preferred", json!({"ipPreference": "IPv4_PREFERRED"})),
        dns_node("v4-only", json!({"ipPreference": "IPv4_ONLY"})),
        dns_node("v6-preferred", json!({"ipPreference": "IPv6_PREFERRED"})),
        dns_node(
            "v6-only",
            json!({"ipPreference": "IPv6_ONLY", "responseType": "ENDPOINTS"}),
        ),
    ];
    let services: Vec<String> = [
        "plain",
        "loadbalancer",
        "endpoints",
        "v4-preferred",
        "v4-only",
        "v6-preferred",
        "v6-only",
    ]
    .iter()
    .map(|n| format!("{n}.m.local"))
    .collect();
    for service in &services {
        resources.push(service_by_node(
            service,
            service.trim_end_matches(".m.local"),
        ));
    }
    resources.push(client(
        &services.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let config = compile_node(resources, "client");
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(discovery_summary(&config));
}

#[test]
fn mesh_ip_preference_and_a_node_overriding_it() {
    let resources = |client_preference: Option<&str>| {
        let mut discovery = json!({"dns": {"hostname": "client.m.local"}});
        if let Some(preference) = client_preference {
            discovery["dns"]["ipPreference"] = json!(preference);
        }
        vec![
            mesh_with(json!({"serviceDiscovery": {"ipPreference": "IPv6_PREFERRED"}})),
            listening_node("inherits", 80, "http"),
            node(
                "overrides",
                json!({"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                    "serviceDiscovery": {"dns": {"hostname": "overrides.m.local", "ipPreference": "IPv4_ONLY"}}}),
            ),
            service_by_node("inherits.m.local", "inherits"),
            service_by_node("overrides.m.local", "overrides"),
            node(
                "client",
                json!({
                    "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
                    "serviceDiscovery": discovery,
                    "backends": [
                        {"virtualService": {"virtualServiceName": "inherits.m.local"}},
                        {"virtualService": {"virtualServiceName": "overrides.m.local"}}
                    ]
                }),
            ),
        ]
    };
    let summary = |config: &Value| {
        json!({
            "ingress_address": listener(config, "lds_ingress_0.0.0.0_15000")["address"],
            "egress_address": listener(config, "lds_egress_0.0.0.0_15001")["address"],
            "local_endpoint": cluster(config, "cds_ingress_m_client_http_8080")["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            "targets": discovery_summary(config),
        })
    };
    let inherited = compile_node(resources(None), "client");
    let ipv4 = compile_node(resources(Some("IPv4_PREFERRED")), "client");
    assert_no_diagnostics(&inherited);
    insta::assert_json_snapshot!(json!({
        "client_inherits_IPv6_PREFERRED": summary(&inherited),
        "client_IPv4_PREFERRED": summary(&ipv4),
    }));
}

#[test]
fn cloud_map_discovery_is_eds_with_an_empty_assignment() {
    let config = compile_node(
        vec![
            node(
                "mapped",
                json!({
                    "listeners": [{"portMapping": {"port": 8080, "protocol": "grpc"}}],
                    "serviceDiscovery": {"awsCloudMap": {"namespaceName": "ns.local", "serviceName": "mapped",
                        "attributes": [{"key": "stage", "value": "prod"}], "ipPreference": "IPv4_ONLY"}}
                }),
            ),
            service_by_node("mapped.m.local", "mapped"),
            client(&["mapped.m.local"]),
        ],
        "client",
    );
    insta::assert_json_snapshot!(json!({
        "cluster": cluster(&config, "cds_egress_m_mapped_grpc_8080"),
        "endpoints": config["endpoints"],
        "diagnostics": diagnostics(&config),
    }));
}

#[test]
fn target_health_checks_and_outlier_detection_apply_on_the_client_cluster() {
    let check = |protocol: &str, path: Option<&str>, port: Option<i64>| {
        let mut check = json!({"protocol": protocol, "healthyThreshold": 2, "unhealthyThreshold": 3,
            "intervalMillis": 5000, "timeoutMillis": 2000});
        if let Some(path) = path {
            check["path"] = json!(path);
        }
        if let Some(port) = port {
            check["port"] = json!(port);
        }
        check
    };
    let outlier = json!({"maxServerErrors": 5, "interval": {"unit": "s", "value": 10},
        "baseEjectionDuration": {"unit": "ms", "value": 30000}, "maxEjectionPercent": 20});
    let config = compile_node(
        vec![
            node(
                "target",
                json!({
                    "listeners": [
                        {"portMapping": {"port": 8080, "protocol": "http"}, "healthCheck": check("http", Some("/ping"), Some(8090)), "outlierDetection": outlier},
                        {"portMapping": {"port": 8081, "protocol": "http2"}, "healthCheck": check("http2", Some("/health"), None)},
                        {"portMapping": {"port": 8082, "protocol": "grpc"}, "healthCheck": check("grpc", None, None), "outlierDetection": outlier},
                        {"portMapping": {"port": 8083, "protocol": "tcp"}, "healthCheck": check("tcp", None, Some(8093))}
                    ],
                    "serviceDiscovery": {"dns": {"hostname": "target.m.local"}}
                }),
            ),
            service_by_node("target.m.local", "target"),
            client(&["target.m.local"]),
        ],
        "client",
    );
    assert_no_diagnostics(&config);
    let clusters: Vec<Value> = ["http_8080", "http2_8081", "grpc_8082", "tcp_8083"]
        .iter()
        .map(|suffix| {
            let c = cluster(&config, &format!("cds_egress_m_target_{suffix}"));
            json!({"name": c["name"], "health_checks": c["health_checks"], "outlier_detection": c["outlier_detection"],
                "load_assignment": c["load_assignment"]})
        })
        .collect();
    insta::assert_json_snapshot!(clusters);
}

#[test]
fn health_checks_and_outlier_detection_envoy_cannot_take_are_left_out() {
    let config = compile_node(
        vec![
            node(
                "target",
                json!({
                    "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                        "healthCheck": {"protocol": "grpc", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000},
                        "outlierDetection": {"maxServerErrors": 1, "interval": {"unit": "s", "value": 0},
                            "baseEjectionDuration": {"unit": "ms", "value": 0}, "maxEjectionPercent": 0}}],
                    "serviceDiscovery": {"dns": {"hostname": "target.m.local"}}
                }),
            ),
            service_by_node("target.m.local", "target"),
            client(&["target.m.local"]),
        ],
        "client",
    );
    let c = cluster(&config, "cds_egress_m_target_http_8080");
    insta::assert_json_snapshot!(json!({
        "health_checks": c["health_checks"],
        "outlier_detection": c["outlier_detection"],
        "diagnostics": diagnostics(&config),
    }));
}

// ---------------------------------------------------------------------------------------
// TLS.

#[test]
fn listener_tls_strict_permissive_and_disabled() {
    let file_cert =
        json!({"file": {"certificateChain": "/certs/app.pem", "privateKey": "/certs/app.key"}});
    let config = compile_node(
        vec![node(
            "app",
            json!({
                "listeners": [
                    {"portMapping": {"port": 8080, "protocol": "http"},
                     "tls": {"mode": "STRICT", "certificate": file_cert,
                        "validation": {"trust": {"file": {"certificateChain": "/certs/ca.pem"}},
                            "subjectAlternativeNames": {"match": {"exact": ["client.m.local", "spiffe://m/client"]}}}}},
                    {"portMapping": {"port": 8081, "protocol": "http2"},
                     "tls": {"mode": "PERMISSIVE", "certificate": {"sds": {"secretName": "app-cert"}},
                        "validation": {"trust": {"sds": {"secretName": "ca-bundle"}},
                            "subjectAlternativeNames": {"match": {"exact": ["client.m.local"]}}}}},
                    {"portMapping": {"port": 8082, "protocol": "tcp"},
                     "tls": {"mode": "PERMISSIVE", "certificate": file_cert,
                        "validation": {"trust": {"sds": {"secretName": "ca-bundle"}}}}},
                    {"portMapping": {"port": 8083, "protocol": "http"},
                     "tls": {"mode": "DISABLED", "certificate": file_cert}}
                ],
                "serviceDiscovery": {"dns": {"hostname": "app.m.local"}}
            }),
        )],
        "app",
    );
    assert_no_diagnostics(&config);
    let ingress = listener(&config, "lds_ingress_0.0.0.0_15000");
    insta::assert_json_snapshot!(json!({
        "listener_filters": ingress["listener_filters"],
        "filter_chains": chains(ingress),
    }));
}

#[test]
fn acm_listener_certificates_are_served_over_ads() {
    let acm =
        json!({"acm": {"certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/x"}});
    let definition = vec![
        node(
            "mixed",
            json!({
                "listeners": [
                    {"portMapping": {"port": 8080, "protocol": "http"}, "tls": {"mode": "STRICT", "certificate": acm}},
                    {"portMapping": {"port": 8081, "protocol": "http"}, "tls": {"mode": "PERMISSIVE", "certificate": acm}}
                ],
                "serviceDiscovery": {"dns": {"hostname": "mixed.m.local"}}
            }),
        ),
        node(
            "strict-only",
            json!({
                "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}, "tls": {"mode": "STRICT", "certificate": acm}}],
                "serviceDiscovery": {"dns": {"hostname": "strict-only.m.local"}}
            }),
        ),
    ];
    let mixed = compile_node(definition.clone(), "mixed");
    let strict_only = compile_node(definition, "strict-only");
    insta::assert_json_snapshot!(json!({
        "mixed": {
            "filter_chains": chains(listener(&mixed, "lds_ingress_0.0.0.0_15000")),
            "diagnostics": diagnostics(&mixed),
        },
        "strict_only": {
            "listeners": names(&strict_only, "listeners"),
            "diagnostics": diagnostics(&strict_only),
        },
    }));
}

#[test]
fn client_policy_tls() {
    let file_trust = json!({"file": {"certificateChain": "/certs/ca.pem"}});
    let policy = |tls: Value| json!({"tls": tls});
    let config = compile_node(
        vec![
            listening_node("files", 8080, "http"),
            node(
                "two-ports",
                json!({"listeners": [
                        {"portMapping": {"port": 8080, "protocol": "http"}},
                        {"portMapping": {"port": 9090, "protocol": "grpc"}}],
                    "serviceDiscovery": {"dns": {"hostname": "two-ports.m.local"}}}),
            ),
            node(
                "mapped",
                json!({"listeners": [{"portMapping": {"port": 7000, "protocol": "http2"}}],
                    "serviceDiscovery": {"awsCloudMap": {"namespaceName": "ns.local", "serviceName": "mapped"}}}),
            ),
            listening_node("not-enforced", 8080, "http"),
            listening_node("acm", 8080, "http"),
            service_by_node("files.m.local", "files"),
            service_by_node("two-ports.m.local", "two-ports"),
            service_by_node("mapped.m.local", "mapped"),
            service_by_node("not-enforced.m.local", "not-enforced"),
            service_by_node("acm.m.local", "acm"),
            node(
                "client",
                json!({
                    "backends": [
                        {"virtualService": {"virtualServiceName": "files.m.local", "clientPolicy": policy(json!({
                            "enforce": true,
                            "certificate": {"file": {"certificateChain": "/certs/client.pem", "privateKey": "/certs/client.key"}},
                            "validation": {"trust": file_trust, "subjectAlternativeNames": {"match": {"exact": ["files.m.local", "spiffe://m/files"]}}}}))}},
                        {"virtualService": {"virtualServiceName": "two-ports.m.local", "clientPolicy": policy(json!({
                            "ports": [9090],
                            "certificate": {"sds": {"secretName": "client-cert"}},
                            "validation": {"trust": {"sds": {"secretName": "ca-bundle"}}}}))}},
                        {"virtualService": {"virtualServiceName": "mapped.m.local"}},
                        {"virtualService": {"virtualServiceName": "not-enforced.m.local", "clientPolicy": policy(json!({
                            "enforce": false, "validation": {"trust": file_trust}}))}},
                        {"virtualService": {"virtualServiceName": "acm.m.local", "clientPolicy": policy(json!({
                            "validation": {"trust": {"acm": {"certificateAuthorityArns": ["arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x"]}}}}))}}
                    ],
                    "backendDefaults": {"clientPolicy": policy(json!({"validation": {"trust": file_trust}}))}
                }),
            ),
        ],
        "client",
    );
    let clusters: Vec<Value> = config["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("cds_egress_m_"))
        .map(|c| json!({"name": c["name"], "transport_socket": c["transport_socket"]}))
        .collect();
    insta::assert_json_snapshot!(json!({
        "clusters": clusters,
        "route_configs": names(&config, "route_configs"),
        "diagnostics": diagnostics(&config),
    }));
}

#[test]
fn clients_speak_tls_to_tls_listeners_without_a_client_policy() {
    let tls = |mode: &str, certificate: Value| json!({"mode": mode, "certificate": certificate});
    let file = json!({"file": {"certificateChain": "/certs/t.pem", "privateKey": "/certs/t.key"}});
    let config = compile_node(
        vec![
            node(
                "target",
                json!({"listeners": [
                        {"portMapping": {"port": 8080, "protocol": "http"}, "tls": tls("STRICT", file.clone())},
                        {"portMapping": {"port": 8081, "protocol": "http"}, "tls": tls("PERMISSIVE", json!({"sds": {"secretName": "t"}}))},
                        {"portMapping": {"port": 8082, "protocol": "http"}, "tls": tls("DISABLED", file)},
                        {"portMapping": {"port": 8083, "protocol": "http"},
                         "tls": tls("STRICT", json!({"acm": {"certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/t"}}))}
                    ],
                    "serviceDiscovery": {"dns": {"hostname": "target.m.local"}}}),
            ),
            service_by_node("target.m.local", "target"),
            router("r", &[(80, "http")]),
            route(
                "r",
                "all",
                json!({"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "target", "weight": 1, "port": 8080}]}}}),
            ),
            service_by_router("a-validated.m.local", "r"),
            node(
                "client",
                json!({"backends": [
                    {"virtualService": {"virtualServiceName": "a-validated.m.local", "clientPolicy": {"tls": {
                        "validation": {"trust": {"file": {"certificateChain": "/certs/ca.pem"}}}}}}},
                    {"virtualService": {"virtualServiceName": "target.m.local"}}
                ]}),
            ),
        ],
        "client",
    );
    let clusters: Vec<Value> = config["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["name"]
                .as_str()
                .unwrap()
                .starts_with("cds_egress_m_target")
        })
        .map(|c| json!({"name": c["name"], "transport_socket": c["transport_socket"]}))
        .collect();
    insta::assert_json_snapshot!(json!({
        "clusters": clusters,
        "diagnostics": diagnostics(&config),
    }));
}

// ---------------------------------------------------------------------------------------
// Egress filter and access logs.

#[test]
fn egress_filter_allow_all_and_drop_all() {
    let with_filter = |filter: &str| {
        compile_node(
            vec![
                mesh_with(json!({"egressFilter": {"type": filter}})),
                client(&[]),
            ],
            "client",
        )
    };
    let allow = with_filter("ALLOW_ALL");
    let drop = with_filter("DROP_ALL");
    let summary = |config: &Value| {
        let egress = listener(config, "lds_egress_0.0.0.0_15001");
        json!({
            "egress_listener": egress,
            "clusters": config["clusters"],
        })
    };
    assert_no_diagnostics(&allow);
    assert_no_diagnostics(&drop);
    insta::assert_json_snapshot!(json!({
        "ALLOW_ALL": summary(&allow),
        "DROP_ALL_default_chain": listener(&drop, "lds_egress_0.0.0.0_15001").get("default_filter_chain"),
        "DROP_ALL_clusters": names(&drop, "clusters"),
    }));
}

#[test]
fn access_logs_in_text_and_json() {
    let logged = |name: &str, format: Value| {
        node(
            name,
            json!({
                "listeners": [
                    {"portMapping": {"port": 8080, "protocol": "http"}},
                    {"portMapping": {"port": 5432, "protocol": "tcp"}}
                ],
                "serviceDiscovery": {"dns": {"hostname": format!("{name}.m.local")}},
                "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": format}}}
            }),
        )
    };
    let definition = vec![
        logged(
            "text",
            json!({"text": "%START_TIME% %REQ(:METHOD)% %RESPONSE_CODE%"}),
        ),
        logged(
            "json",
            json!({"json": [{"key": "status", "value": "%RESPONSE_CODE%"}, {"key": "method", "value": "%REQ(:METHOD)%"}]}),
        ),
        node(
            "default",
            json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {"hostname": "default.m.local"}},
                "logging": {"accessLog": {"file": {"path": "/var/log/envoy.log"}}}}),
        ),
    ];
    let logs = |name: &str| {
        let config = compile_node(definition.clone(), name);
        let ingress = listener(&config, "lds_ingress_0.0.0.0_15000");
        let egress = listener(&config, "lds_egress_0.0.0.0_15001");
        let mut out = json!({
            "http": chain_filter(ingress, "ingress_8080")["access_log"],
            "egress_amazonaws": chain_filter(egress, "egress_amazonaws")["access_log"],
        });
        if name != "default" {
            out["tcp"] = chain_filter(ingress, "ingress_5432")["access_log"].clone();
        }
        out
    };
    insta::assert_json_snapshot!(json!({
        "text": logs("text"),
        "json": logs("json"),
        "default_format": logs("default"),
    }));
}

// ---------------------------------------------------------------------------------------
// Virtual gateways.

/// A service `web.m.local` provided by node `web` (HTTP on 8080), and a gateway `gw`
/// with one HTTP listener on 8080, plus `more`.
fn gateway_definition(more: Vec<Value>) -> Vec<Value> {
    let mut resources = vec![
        listening_node("web", 8080, "http"),
        service_by_node("web.m.local", "web"),
        gateway(
            "gw",
            json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}),
        ),
    ];
    resources.extend(more);
    resources
}

/// `name`, `match` and the rewriting parts of the action of each gateway ingress route.
fn gateway_routes(config: &Value, route_config_name: &str) -> Vec<Value> {
    routes(route_config(config, route_config_name))
        .into_iter()
        .map(|r| {
            let action = &r["route"];
            let mut out =
                json!({"name": r["name"], "match": r["match"], "cluster": action["cluster"]});
            for key in [
                "prefix_rewrite",
                "regex_rewrite",
                "host_rewrite_literal",
                "timeout",
            ] {
                if let Some(value) = action.get(key) {
                    out[key] = value.clone();
                }
            }
            if let Some(headers) = r.get("request_headers_to_add") {
                out["request_headers_to_add"] = headers.clone();
            }
            out
        })
        .collect()
}

#[test]
fn virtual_gateway_with_one_http_listener() {
    let config = compile_gateway(
        vec![
            listening_node("web", 8080, "http"),
            service_by_node("web.m.local", "web"),
            gateway(
                "gw",
                json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                    "connectionPool": {"http": {"maxConnections": 100, "maxPendingRequests": 10}},
                    "healthCheck": {"protocol": "http", "path": "/ready", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000}}]}),
            ),
            gateway_route(
                "gw",
                "web",
                to_service("httpRoute", json!({"prefix": "/"}), "web.m.local"),
            ),
        ],
        "gw",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(config);
}

#[test]
fn gateway_routes_by_prefix_and_their_rewrites() {
    let with_rewrite = |prefix: &str, rewrite: Value| {
        let mut spec = to_service("httpRoute", json!({ "prefix": prefix }), "web.m.local");
        spec["httpRoute"]["action"]["rewrite"] = rewrite;
        spec
    };
    let config = compile_gateway(
        gateway_definition(vec![
            gateway_route(
                "gw",
                "default-rewrite",
                to_service("httpRoute", json!({"prefix": "/web/"}), "web.m.local"),
            ),
            gateway_route(
                "gw",
                "custom-rewrite",
                with_rewrite("/api", json!({"prefix": {"value": "/v2/"}})),
            ),
            gateway_route(
                "gw",
                "rewrite-disabled",
                with_rewrite("/keep/", json!({"prefix": {"defaultPrefix": "DISABLED"}})),
            ),
            gateway_route(
                "gw",
                "rewrite-enabled",
                with_rewrite("/enabled", json!({"prefix": {"defaultPrefix": "ENABLED"}})),
            ),
            gateway_route(
                "gw",
                "root",
                to_service("httpRoute", json!({"prefix": "/"}), "web.m.local"),
            ),
        ]),
        "gw",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(gateway_routes(&config, "rds_ingress_http_8080"));
}

#[test]
fn gateway_routes_by_path_with_path_rewrites() {
    let by_path = |path: Value, rewrite: Option<&str>| {
        let mut spec = to_service("httpRoute", json!({ "path": path }), "web.m.local");
        if let Some(rewrite) = rewrite {
            spec["httpRoute"]["action"]["rewrite"] = json!({"path": {"exact": rewrite}});
        }
        spec
    };
    let config = compile_gateway(
        gateway_definition(vec![
            gateway_route("gw", "exact", by_path(json!({"exact": "/login"}), None)),
            gateway_route(
                "gw",
                "exact-rewritten",
                by_path(json!({"exact": "/signin"}), Some("/auth/login")),
            ),
            gateway_route(
                "gw",
                "regex-rewritten",
                by_path(json!({"regex": "/items/[0-9]+"}), Some("/items")),
            ),
        ]),
        "gw",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(gateway_routes(&config, "rds_ingress_http_8080"));
}

#[test]
fn gateway_route_hostname_header_method_and_query_matches() {
    let config = compile_gateway(
        gateway_definition(vec![
            gateway_route(
                "gw",
                "hostname-exact",
                to_service(
                    "httpRoute",
                    json!({"hostname": {"exact": "www.example.com"}}),
                    "web.m.local",
                ),
            ),
            gateway_route(
                "gw",
                "hostname-suffix",
                to_service(
                    "httpRoute",
                    json!({"prefix": "/shop", "hostname": {"suffix": ".example.com"}}),
                    "web.m.local",
                ),
            ),
            gateway_route(
                "gw",
                "headers-method-query",
                to_service(
                    "httpRoute",
                    json!({"prefix": "/api/", "method": "POST",
                        "headers": [
                            {"name": "x-exact", "match": {"exact": "a"}},
                            {"name": "x-prefix", "match": {"prefix": "b"}},
                            {"name": "x-suffix", "match": {"suffix": "c"}},
                            {"name": "x-regex", "match": {"regex": "^d+$"}},
                            {"name": "x-range", "invert": true, "match": {"range": {"start": 1, "end": 3}}},
                            {"name": "x-present"}
                        ],
                        "queryParameters": [{"name": "id", "match": {"exact": "7"}}, {"name": "debug"}]}),
                    "web.m.local",
                ),
            ),
        ]),
        "gw",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(gateway_routes(&config, "rds_ingress_http_8080"));
}

#[test]
fn gateway_routes_are_ordered_by_priority() {
    let prioritized = |prefix: &str, priority: Option<i64>| {
        let spec = to_service("httpRoute", json!({ "prefix": prefix }), "web.m.local");
        match priority {
            Some(p) => with_priority(spec, p),
            None => spec,
        }
    };
    let config = compile_gateway(
        gateway_definition(vec![
            gateway_route("gw", "a-none", prioritized("/", None)),
            gateway_route("gw", "b-p10", prioritized("/b", Some(10))),
            gateway_route("gw", "c-p1", prioritized("/", Some(1))),
            gateway_route("gw", "d-p10-longer", prioritized("/b/c", Some(10))),
            gateway_route("gw", "e-none-longer", prioritized("/e/f", None)),
        ]),
        "gw",
    );
    let order: Vec<Value> = gateway_routes(&config, "rds_ingress_http_8080")
        .into_iter()
        .map(|r| json!([r["name"], r["match"]["prefix"]]))
        .collect();
    insta::assert_json_snapshot!(order);
}

#[test]
fn gateway_hostname_rewrite_disabled_uses_a_header_and_the_default_backend() {
    let config = compile_gateway(
        vec![
            listening_node("web", 8080, "http"),
            listening_node("api", 9000, "http"),
            service_by_node("web.m.local", "web"),
            service_by_node("api.m.local", "api"),
            gateway(
                "gw",
                json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}),
            ),
            gateway_route(
                "gw",
                "rewritten",
                to_service("httpRoute", json!({"prefix": "/web/"}), "web.m.local"),
            ),
            gateway_route(
                "gw",
                "kept",
                json!({"httpRoute": {"match": {"prefix": "/api/"}, "action": {
                    "target": {"virtualService": {"virtualServiceName": "api.m.local"}},
                    "rewrite": {"hostname": {"defaultTargetHostname": "DISABLED"}}}}}),
            ),
        ],
        "gw",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(json!({
        "ingress_routes": gateway_routes(&config, "rds_ingress_http_8080"),
        "egress_virtual_hosts": route_config(&config, "rds_egress_http_15001")["virtual_hosts"],
    }));
}

#[test]
fn gateway_grpc_route() {
    let config = compile_gateway(
        vec![
            listening_node("greeter", 9000, "grpc"),
            router("greeter", &[(9000, "grpc")]),
            route(
                "greeter",
                "all",
                json!({"grpcRoute": {"match": {"serviceName": "pkg.Greeter"}, "action": {"weightedTargets": targets(&[("greeter", 1)])}}}),
            ),
            service_by_router("greeter.m.local", "greeter"),
            gateway(
                "gw",
                json!({"listeners": [{"portMapping": {"port": 8443, "protocol": "grpc"},
                    "connectionPool": {"grpc": {"maxRequests": 500}}}]}),
            ),
            gateway_route(
                "gw",
                "greeter",
                json!({"grpcRoute": {"match": {"serviceName": "pkg.Greeter", "hostname": {"suffix": ".example.com"},
                    "metadata": [{"name": "x-tenant", "match": {"prefix": "acme"}}, {"name": "x-debug", "invert": true}]},
                    "action": {"target": {"virtualService": {"virtualServiceName": "greeter.m.local"}}}}}),
            ),
            gateway_route(
                "gw",
                "any",
                json!({"grpcRoute": {"match": {}, "action": {
                    "target": {"virtualService": {"virtualServiceName": "greeter.m.local"}},
                    "rewrite": {"hostname": {"defaultTargetHostname": "DISABLED"}}}}}),
            ),
        ],
        "gw",
    );
    assert_no_diagnostics(&config);
    insta::assert_json_snapshot!(json!({
        "ingress_routes": gateway_routes(&config, "rds_ingress_grpc_8443"),
        "self_redirect": cluster(&config, "cds_ingress_m_gw_self_redirect_grpc_15001"),
        "egress_virtual_hosts": route_config(&config, "rds_egress_http_15001")["virtual_hosts"],
    }));
}

#[test]
fn gateway_with_several_listeners_and_route_ports() {
    let config = compile_gateway(
        vec![
            listening_node("web", 8080, "http"),
            listening_node("api", 8081, "http2"),
            router("r", &[(80, "http"), (81, "http2")]),
            route(
                "r",
                "web",
                http_route(json!({"prefix": "/", "port": 80}), "web"),
            ),
            route(
                "r",
                "api",
                json!({"http2Route": {"match": {"prefix": "/", "port": 81}, "action": {"weightedTargets": targets(&[("api", 1)])}}}),
            ),
            service_by_router("r.m.local", "r"),
            gateway(
                "gw",
                json!({"listeners": [
                    {"portMapping": {"port": 8080, "protocol": "http"}},
                    {"portMapping": {"port": 8443, "protocol": "http2"}, "connectionPool": {"http2": {"maxRequests": 64}}}
                ]}),
            ),
            gateway_route(
                "gw",
                "web",
                json!({"httpRoute": {"match": {"prefix": "/", "port": 8080}, "action": {
                    "target": {"virtualService": {"virtualServiceName": "r.m.local"}, "port": 80}}}}),
            ),
            gateway_route(
                "gw",
                "api",
                json!({"http2Route": {"match": {"prefix": "/", "port": 8443}, "action": {
                    "target": {"virtualService": {"virtualServiceName": "r.m.local"}, "port": 81}}}}),
            ),
        ],
        "gw",
    );
    assert_no_diagnostics(&config);
    let redirects: Vec<Value> = config["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().contains("self_redirect"))
        .map(|c| {
            json!({"name": c["name"], "thresholds": c["circuit_breakers"]["thresholds"],
            "http2": c.get("typed_extension_protocol_options").is_some()})
        })
        .collect();
    insta::assert_json_snapshot!(json!({
        "listeners": config["listeners"].as_array().unwrap().iter().map(|l| json!({"name": l["name"], "address": l["address"]})).collect::<Vec<_>>(),
        "self_redirects": redirects,
        "port_8080": gateway_routes(&config, "rds_ingress_http_8080"),
        "port_8443": gateway_routes(&config, "rds_ingress_http2_8443"),
        "egress_virtual_hosts": route_config(&config, "rds_egress_http_15001")["virtual_hosts"],
    }));
}

#[test]
fn gateway_listener_tls_and_backend_defaults_client_policy() {
    let config = compile_gateway(
        vec![
            listening_node("web", 8080, "http"),
            service_by_node("web.m.local", "web"),
            gateway(
                "gw",
                json!({
                    "listeners": [{"portMapping": {"port": 443, "protocol": "http"},
                        "tls": {"mode": "STRICT",
                            "certificate": {"file": {"certificateChain": "/certs/gw.pem", "privateKey": "/certs/gw.key"}},
                            "validation": {"trust": {"file": {"certificateChain": "/certs/ca.pem"}},
                                "subjectAlternativeNames": {"match": {"exact": ["client.example.com"]}}}}}],
                    "backendDefaults": {"clientPolicy": {"tls": {
                        "certificate": {"sds": {"secretName": "gw-client"}},
                        "validation": {"trust": {"sds": {"secretName": "mesh-ca"}}}}}},
                    "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": {"text": "%REQ(:AUTHORITY)%\n"}}}}
                }),
            ),
            gateway_route(
                "gw",
                "web",
                to_service("httpRoute", json!({"prefix": "/"}), "web.m.local"),
            ),
        ],
        "gw",
    );
    assert_no_diagnostics(&config);
    let ingress = listener(&config, "lds_ingress_0.0.0.0_443");
    insta::assert_json_snapshot!(json!({
        "ingress_chains": chains(ingress),
        "ingress_access_log": chain_filter(ingress, "ingress_443")["access_log"],
        "egress_cluster_tls": cluster(&config, "cds_egress_m_web_http_8080")["transport_socket"],
    }));
}

#[test]
fn gateway_listener_on_the_outbound_port_is_left_out() {
    let config = compile_gateway(
        vec![
            listening_node("web", 8080, "http"),
            service_by_node("web.m.local", "web"),
            gateway(
                "gw",
                json!({"listeners": [
                    {"portMapping": {"port": 15001, "protocol": "http"}},
                    {"portMapping": {"port": 8080, "protocol": "http"}}
                ]}),
            ),
            gateway_route(
                "gw",
                "web",
                to_service(
                    "httpRoute",
                    json!({"prefix": "/", "port": 8080}),
                    "web.m.local",
                ),
            ),
        ],
        "gw",
    );
    insta::assert_json_snapshot!(json!({
        "listeners": names(&config, "listeners"),
        "clusters": names(&config, "clusters"),
        "route_configs": names(&config, "route_configs"),
        "diagnostics": diagnostics(&config),
    }));
}

/// Proxies compiled in one pass share each virtual service's compiled routes, but only
/// between clients that reach it alike: a client with a client policy and one without
/// reach one service with different TLS, and each proxy is what it would be alone.
#[test]
fn one_pass_shares_a_service_only_between_clients_with_the_same_policy() {
    let trust = json!({"file": {"certificateChain": "/certs/ca.pem"}});
    let definition = vec![
        mesh_with(json!({})),
        listening_node("target", 8080, "http"),
        service_by_node("target.m.local", "target"),
        node(
            "plain",
            json!({"backends": [{"virtualService": {"virtualServiceName": "target.m.local"}}]}),
        ),
        node(
            "validating",
            json!({"backends": [{"virtualService": {"virtualServiceName": "target.m.local",
                "clientPolicy": {"tls": {"validation": {"trust": trust}}}}}]}),
        ),
    ];
    let snapshot = load(&Value::from(definition));
    let all = meshd::compile::compile_all(&snapshot);
    let socket = |proxy: &str| {
        let id = ProxyId::parse(&format!("mesh/{MESH}/virtualNode/{proxy}")).unwrap();
        let config = &all[&id];
        assert_eq!(
            config,
            &compile_proxy(&snapshot, &id),
            "{proxy} differs alone"
        );
        let json = config_json(config);
        cluster(&json, "cds_egress_m_target_http_8080")["transport_socket"].clone()
    };
    assert_eq!(socket("plain"), Value::Null);
    let validating = socket("validating");
    assert_eq!(
        validating["name"],
        json!("envoy.transport_sockets.tls"),
        "{validating}"
    );
}
