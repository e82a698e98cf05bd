//! The scenarios: each a test asserting what a client in a task observes.

use serde_json::{Value, json};

use crate::harness::TaskConfig;
use crate::*;

const COLOR: &str = "color.local";
const COLOR_URL: &str = "http://color.local:9080/";

/// red and blue (http 9080) behind the router `color` (9080) whose route `color-route`
/// has `spec`; `front` calls `color.local`.
fn color_definition(route_spec: Value, front_edit: impl FnOnce(&mut Value)) -> Value {
    json!([
        mesh("DROP_ALL"),
        node("red", &[(9080, "http")], &[]),
        node("blue", &[(9080, "http")], &[]),
        router("color", &[(9080, "http")]),
        route("color", "color-route", route_spec),
        service_on_router(COLOR, "color"),
        node_with("front", &[], &[COLOR], front_edit),
    ])
}

fn color_tasks() -> Vec<TaskConfig> {
    vec![
        TaskConfig::node("red", "red", &[9080]),
        TaskConfig::node("blue", "blue", &[9080]),
        TaskConfig::node("front", "front", &[]),
    ]
}

fn weighted(red: u32, blue: u32) -> Value {
    json!({"httpRoute": {
        "match": {"prefix": "/"},
        "action": {"weightedTargets": targets(&[("red", red), ("blue", blue)])},
    }})
}

/// Share of `name` among the lines, asserting that every request succeeded.
fn shares(lines: &[String]) -> std::collections::BTreeMap<String, usize> {
    let counts = tally(lines, status_and_name);
    for key in counts.keys() {
        assert!(
            key.starts_with("200 "),
            "every request succeeds, but saw {counts:?}"
        );
    }
    counts
}

#[test]
fn weighted_routing_follows_the_weights_and_their_changes() {
    let lab = lab(
        "weights",
        color_definition(weighted(3, 1), |_| {}),
        &[COLOR],
        color_tasks(),
    );
    let envoy_pid = lab.envoy_pid("front");
    let n = 400;
    let lines = lab.client("front", &["http", COLOR_URL, "--count", &n.to_string()]);
    let counts = shares(&lines);
    let red = counts.get("200 red").copied().unwrap_or(0);
    // 3:1 → 300 of 400 expected; the binomial standard deviation is 8.7: ±45 is > 5 sd.
    assert!(
        (255..=345).contains(&red),
        "3:1 split expected ~300 red of {n}, saw {counts:?}"
    );

    let (status, answer) = lab.api(
        "PUT",
        &format!("/v20190125/meshes/{MESH}/virtualRouter/color/routes/color-route"),
        Some(json!({"spec": weighted(1, 3)})),
    );
    assert_eq!(status, 200, "{answer}");
    lab.wait_synced();
    let lines = lab.client("front", &["http", COLOR_URL, "--count", &n.to_string()]);
    let counts = shares(&lines);
    let blue = counts.get("200 blue").copied().unwrap_or(0);
    assert!(
        (255..=345).contains(&blue),
        "1:3 split expected ~300 blue of {n}, saw {counts:?}"
    );
    assert_eq!(
        lab.envoy_pid("front"),
        envoy_pid,
        "the client's Envoy was not restarted"
    );
}

// ---- 2. matching ----

fn only(node: &str) -> Value {
    json!({"weightedTargets": targets(&[(node, 1)])})
}

fn http_route(priority: u32, matcher: Value, node: &str) -> Value {
    json!({"priority": priority, "httpRoute": {"match": matcher, "action": only(node)}})
}

#[test]
fn matching_by_headers_method_path_query_and_priority() {
    let definition = json!([
        mesh("DROP_ALL"),
        node("red", &[(9080, "http")], &[]),
        node("blue", &[(9080, "http")], &[]),
        node("green", &[(9080, "http")], &[]),
        node("gray", &[(9080, "http")], &[]),
        router("color", &[(9080, "http")]),
        route(
            "color",
            "h-exact",
            http_route(
                1,
                json!({"prefix": "/", "headers": [{"name": "x-color", "match": {"exact": "red"}}]}),
                "red"
            )
        ),
        route(
            "color",
            "h-prefix",
            http_route(
                2,
                json!({"prefix": "/", "headers": [{"name": "x-color", "match": {"prefix": "bl"}}]}),
                "blue"
            )
        ),
        route(
            "color",
            "h-regex",
            http_route(
                3,
                json!({"prefix": "/", "headers": [{"name": "x-color", "match": {"regex": "^gr[e]+n$"}}]}),
                "green"
            )
        ),
        route(
            "color",
            "h-range",
            http_route(
                4,
                json!({"prefix": "/", "headers": [{"name": "x-num", "match": {"range": {"start": 10, "end": 20}}}]}),
                "red"
            )
        ),
        route(
            "color",
            "h-invert",
            http_route(
                5,
                json!({"prefix": "/invert", "headers": [{"name": "x-mode", "match": {"exact": "off"}, "invert": true}]}),
                "blue"
            )
        ),
        route(
            "color",
            "method",
            http_route(6, json!({"prefix": "/method", "method": "POST"}), "green")
        ),
        route(
            "color",
            "p-exact",
            http_route(7, json!({"path": {"exact": "/exact"}}), "red")
        ),
        route(
            "color",
            "p-regex",
            http_route(8, json!({"path": {"regex": "/re/[0-9]+"}}), "blue")
        ),
        route(
            "color",
            "query",
            http_route(
                9,
                json!({"prefix": "/q", "queryParameters": [{"name": "color", "match": {"exact": "green"}}]}),
                "green"
            )
        ),
        // Overlapping prefixes: the lower priority number wins, whatever the length.
        route(
            "color",
            "prio-short",
            http_route(10, json!({"prefix": "/prio"}), "red")
        ),
        route(
            "color",
            "prio-long",
            http_route(11, json!({"prefix": "/prio/longer"}), "blue")
        ),
        route(
            "color",
            "other-long",
            http_route(12, json!({"prefix": "/other/x"}), "blue")
        ),
        route(
            "color",
            "other-short",
            http_route(13, json!({"prefix": "/other"}), "red")
        ),
        route(
            "color",
            "default",
            http_route(100, json!({"prefix": "/"}), "gray")
        ),
        service_on_router(COLOR, "color"),
        node("front", &[], &[COLOR]),
    ]);
    let lab = lab(
        "matching",
        definition,
        &[COLOR],
        vec![
            TaskConfig::node("red", "red", &[9080]),
            TaskConfig::node("blue", "blue", &[9080]),
            TaskConfig::node("green", "green", &[9080]),
            TaskConfig::node("gray", "gray", &[9080]),
            TaskConfig::node("front", "front", &[]),
        ],
    );
    let cases: &[(&str, &str, &[&str], &str)] = &[
        // (path, method, headers, expected node)
        ("/", "GET", &[], "gray"),
        ("/", "GET", &["x-color: red"], "red"),
        ("/", "GET", &["x-color: redder"], "gray"),
        ("/", "GET", &["x-color: blueish"], "blue"),
        ("/", "GET", &["x-color: greeeen"], "green"),
        ("/", "GET", &["x-color: grn"], "gray"),
        ("/", "GET", &["x-num: 10"], "red"),
        ("/", "GET", &["x-num: 19"], "red"),
        ("/", "GET", &["x-num: 20"], "gray"),
        ("/", "GET", &["x-num: 9"], "gray"),
        ("/invert", "GET", &["x-mode: on"], "blue"),
        ("/invert", "GET", &["x-mode: off"], "gray"),
        ("/method", "POST", &[], "green"),
        ("/method", "GET", &[], "gray"),
        ("/exact", "GET", &[], "red"),
        ("/exact/more", "GET", &[], "gray"),
        ("/re/123", "GET", &[], "blue"),
        ("/re/abc", "GET", &[], "gray"),
        ("/q?color=green", "GET", &[], "green"),
        ("/q?color=red", "GET", &[], "gray"),
        ("/q", "GET", &[], "gray"),
        ("/prio/longer", "GET", &[], "red"),
        ("/other/x", "GET", &[], "blue"),
        ("/other/y", "GET", &[], "red"),
    ];
    let mut failures = Vec::new();
    for (path, method, headers, expected) in cases {
        let url = format!("http://{COLOR}:9080{path}");
        let mut args = vec!["http", url.as_str(), "--method", method];
        for header in *headers {
            args.extend(["-H", header]);
        }
        let lines = lab.client("front", &args);
        let seen = lines
            .first()
            .and_then(|l| status_and_name(l))
            .unwrap_or_default();
        if seen != format!("200 {expected}") {
            failures.push(format!(
                "{method} {path} {headers:?}: expected 200 {expected}, saw {lines:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---- 3. retries ----

#[test]
fn retries_follow_the_policy() {
    let policy = |events: Value| {
        let mut policy = json!({"maxRetries": 1, "perRetryTimeout": {"unit": "s", "value": 5}});
        policy
            .as_object_mut()
            .unwrap()
            .extend(events.as_object().unwrap().clone());
        policy
    };
    let definition = json!([
        mesh("DROP_ALL"),
        node("red", &[(9080, "http")], &[]),
        node("flaky-a", &[(9080, "http")], &[]),
        node("flaky-b", &[(9080, "http")], &[]),
        router("color", &[(9080, "http")]),
        route(
            "color",
            "retry",
            json!({"priority": 1, "httpRoute": {
                "match": {"prefix": "/retry"},
                "action": only("red"),
                "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "s", "value": 5}, "httpRetryEvents": ["server-error"]},
            }})
        ),
        route(
            "color",
            "conn-retry",
            json!({"priority": 2, "httpRoute": {
                "match": {"prefix": "/conn-retry"},
                "action": only("flaky-a"),
                "retryPolicy": policy(json!({"tcpRetryEvents": ["connection-error"]})),
            }})
        ),
        route(
            "color",
            "conn-no-retry",
            json!({"priority": 3, "httpRoute": {
                "match": {"prefix": "/conn-no-retry"},
                "action": only("flaky-b"),
                "retryPolicy": policy(json!({"httpRetryEvents": ["client-error"]})),
            }})
        ),
        service_on_router(COLOR, "color"),
        node("front", &[], &[COLOR]),
    ]);
    let lab = lab(
        "retries",
        definition,
        &[COLOR],
        color_tasks_with(&["red", "flaky-a", "flaky-b"]),
    );

    let url = format!("http://{COLOR}:9080/retry");
    let get = |headers: &[&str], id: &str| {
        let mut args = vec!["http", url.as_str(), "--id-prefix", id];
        for h in headers {
            args.extend(["-H", h]);
        }
        lab.client("front", &args).remove(0)
    };
    // One failure, then success: the retry succeeds on the second attempt.
    let line = get(&["x-fail-first: 1"], "once");
    assert!(line.starts_with("200 name=red"), "{line}");
    assert_eq!(field(&line, "attempt"), Some("2"), "{line}");
    // Always failing: 1 attempt + maxRetries 2 = 3 attempts, then the last 503 is returned.
    let line = get(&["x-fail-first: 100"], "always");
    assert!(line.starts_with("503 name=red"), "{line}");
    assert_eq!(
        field(&line, "attempt"),
        Some("3"),
        "the policy allows 2 retries: {line}"
    );
    // A 500 is a server-error too.
    let line = get(&["x-fail-first: 2", "x-fail-status: 500"], "twice");
    assert!(line.starts_with("200 name=red"), "{line}");
    assert_eq!(field(&line, "attempt"), Some("3"), "{line}");
    // A 409 is not.
    let line = get(&["x-fail-first: 1", "x-fail-status: 409"], "conflict");
    assert!(line.starts_with("409 name=red"), "{line}");
    assert_eq!(field(&line, "attempt"), Some("1"), "{line}");

    // Connection errors: the flaky tasks refuse every other new connection (a TCP reset
    // to the first SYN; the second is accepted and stays in the client Envoy's pool).
    for task in ["flaky-a", "flaky-b"] {
        lab.ns_exec(
            task,
            &[
                "iptables",
                "-A",
                "INPUT",
                "-p",
                "tcp",
                "--dport",
                "15000",
                "--syn",
                "-m",
                "statistic",
                "--mode",
                "nth",
                "--every",
                "2",
                "--packet",
                "0",
                "-j",
                "REJECT",
                "--reject-with",
                "tcp-reset",
            ],
        );
    }
    let with = lab.client(
        "front",
        &[
            "http",
            &format!("http://{COLOR}:9080/conn-retry"),
            "--count",
            "20",
        ],
    );
    let counts = tally(&with, status_and_name);
    assert_eq!(
        counts.get("200 flaky-a"),
        Some(&20),
        "a connection-error retry hides the refused connection: {counts:?}"
    );
    let without = lab.client(
        "front",
        &[
            "http",
            &format!("http://{COLOR}:9080/conn-no-retry"),
            "--count",
            "20",
        ],
    );
    let counts = tally(&without, status_and_name);
    assert!(
        without[0].starts_with("503"),
        "without connection-error retries the refused connection fails the request: {without:?}"
    );
    assert_eq!(counts.get("200 flaky-b"), Some(&19), "{counts:?}");
}

// ---- 4. timeouts ----

#[test]
fn timeouts_of_route_and_listener() {
    let timeout = |ms: u64| json!({"perRequest": {"unit": "ms", "value": ms}});
    let definition = json!([
        mesh("DROP_ALL"),
        node_with("red", &[(9080, "http")], &[], |spec| {
            spec["listeners"][0]["timeout"] = json!({"http": timeout(2000)});
        }),
        node_with("blue", &[(9080, "http")], &[], |spec| {
            spec["listeners"][0]["timeout"] = json!({"http": timeout(10000)});
        }),
        router("color", &[(9080, "http")]),
        route(
            "color",
            "short",
            json!({"priority": 1, "httpRoute": {"match": {"prefix": "/short"}, "action": only("blue"), "timeout": timeout(1000)}})
        ),
        route(
            "color",
            "long-red",
            json!({"priority": 2, "httpRoute": {"match": {"prefix": "/long-red"}, "action": only("red"), "timeout": timeout(10000)}})
        ),
        route(
            "color",
            "long-blue",
            json!({"priority": 3, "httpRoute": {"match": {"prefix": "/long-blue"}, "action": only("blue"), "timeout": timeout(10000)}})
        ),
        service_on_router(COLOR, "color"),
        node("front", &[], &[COLOR]),
    ]);
    let lab = lab(
        "timeouts",
        definition,
        &[COLOR],
        color_tasks_with(&["red", "blue"]),
    );
    let get = |path: &str, delay: &str| {
        lab.client(
            "front",
            &[
                "http",
                &format!("http://{COLOR}:9080{path}"),
                "-H",
                &format!("x-delay-ms: {delay}"),
            ],
        )
        .remove(0)
    };
    // The route's 1 s: a 1.5 s answer is cut off by the client's Envoy.
    let line = get("/short", "1500");
    assert!(
        line.starts_with("504"),
        "route timeout 1 s, app 1.5 s: {line}"
    );
    assert!(get("/short", "200").starts_with("200 name=blue"));
    // Route 10 s but red's listener 2 s: red's own Envoy cuts a 3 s answer off.
    let line = get("/long-red", "3000");
    assert!(
        line.starts_with("504"),
        "listener timeout 2 s, app 3 s: {line}"
    );
    // Route 10 s and listener 10 s: the 3 s answer gets through.
    let line = get("/long-blue", "3000");
    assert!(
        line.starts_with("200 name=blue"),
        "route and listener 10 s, app 3 s: {line}"
    );
}

fn color_tasks_with(nodes: &[&str]) -> Vec<TaskConfig> {
    let mut tasks: Vec<TaskConfig> = nodes
        .iter()
        .map(|n| TaskConfig::node(n, n, &[9080]))
        .collect();
    tasks.push(TaskConfig::node("front", "front", &[]));
    tasks
}

// ---- 6. TCP ----

#[test]
fn tcp_route_to_tcp_apps() {
    let definition = json!([
        mesh("DROP_ALL"),
        node("ta", &[(7000, "tcp")], &[]),
        node("tb", &[(7000, "tcp")], &[]),
        router("tcp", &[(7000, "tcp")]),
        route(
            "tcp",
            "tcp-route",
            json!({"tcpRoute": {"action": {"weightedTargets": targets(&[("ta", 1), ("tb", 1)])}}})
        ),
        service_on_router("tcp.local", "tcp"),
        node("greeter", &[(7001, "tcp")], &[]),
        service_on_node("greeter.local", "greeter"),
        node("front", &[], &["tcp.local", "greeter.local"]),
    ]);
    let tcp_task = |name: &str| TaskConfig {
        name: name.into(),
        tcp: vec![7000],
        virtual_node: Some(name.into()),
        ..Default::default()
    };
    let lab = lab(
        "tcp",
        definition,
        &["tcp.local", "greeter.local"],
        vec![
            tcp_task("ta"),
            tcp_task("tb"),
            TaskConfig {
                name: "greeter".into(),
                tcp: vec![7001],
                virtual_node: Some("greeter".into()),
                app_args: vec!["--server-first".into()],
                ..Default::default()
            },
            TaskConfig::node("front", "front", &[]),
        ],
    );
    let lines = lab.client("front", &["tcp", "tcp.local:7000", "--count", "40"]);
    let counts = tally(&lines, |l| Some(l.to_string()));
    assert_eq!(
        counts.get("ta").copied().unwrap_or(0) + counts.get("tb").copied().unwrap_or(0),
        40,
        "every connection reaches a TCP app: {counts:?}"
    );
    // A protocol where the server speaks first (MySQL, SMTP) passes the sidecars too.
    let lines = lab.client(
        "front",
        &[
            "tcp",
            "greeter.local:7001",
            "--server-first",
            "--count",
            "3",
        ],
    );
    assert_eq!(
        lines,
        vec!["greeter"; 3],
        "server-first TCP through the sidecars"
    );
    assert!(
        counts.get("ta").copied().unwrap_or(0) >= 5 && counts.get("tb").copied().unwrap_or(0) >= 5,
        "both targets of the 1:1 split: {counts:?}"
    );
}

// ---- 9. egress filter ----

#[test]
fn egress_filter_drop_all_then_allow_all() {
    let definition = json!([mesh("DROP_ALL"), node("front", &[], &[])]);
    let lab = lab(
        "egress",
        definition,
        &[],
        vec![
            TaskConfig::plain("outside", &[8000]),
            TaskConfig::node("front", "front", &[]),
        ],
    );
    let url = "http://outside.local:8000/";
    let lines = lab.client("front", &["http", url, "--timeout-ms", "5000"]);
    assert!(
        lines[0].starts_with("ERR"),
        "DROP_ALL: a destination outside the mesh is not reached: {lines:?}"
    );
    let (status, answer) = lab.api(
        "PUT",
        &format!("/v20190125/meshes/{MESH}"),
        Some(json!({"spec": {"egressFilter": {"type": "ALLOW_ALL"}}})),
    );
    assert_eq!(status, 200, "{answer}");
    lab.wait_synced();
    let lines = lab.client("front", &["http", url]);
    assert!(
        lines[0].starts_with("200 name=outside"),
        "ALLOW_ALL: passed through: {lines:?}"
    );
    // The same application, without the sidecar's rules in the way, always reached it.
    let lines = lab.client("outside", &["http", url]);
    assert!(lines[0].starts_with("200 name=outside"), "{lines:?}");
}

// ---- 7. virtual gateway ----

#[test]
fn gateway_routes_by_prefix_rewrite_and_hostname() {
    let gateway_route = |name: &str, spec: Value| json!({"meshName": MESH, "virtualGatewayName": "gw", "gatewayRouteName": name, "spec": spec});
    let to = |service: &str| json!({"target": {"virtualService": {"virtualServiceName": service}}});
    let definition = json!([
        mesh("DROP_ALL"),
        node("red", &[(9080, "http")], &[]),
        node("blue", &[(9080, "http")], &[]),
        router("color", &[(9080, "http")]),
        route("color", "color-route", json!({"httpRoute": {"match": {"prefix": "/"}, "action": only("red")}})),
        service_on_router(COLOR, "color"),
        service_on_node("blue.svc.local", "blue"),
        {"meshName": MESH, "virtualGatewayName": "gw", "spec": {"listeners": [{"portMapping": {"port": 8088, "protocol": "http"}}]}},
        gateway_route("by-host", json!({"priority": 1, "httpRoute": {"match": {"prefix": "/", "hostname": {"exact": "blue.example.com"}}, "action": to("blue.svc.local")}})),
        gateway_route("default-rewrite", json!({"priority": 2, "httpRoute": {"match": {"prefix": "/color/"}, "action": to(COLOR)}})),
        gateway_route("custom-rewrite", json!({"priority": 3, "httpRoute": {"match": {"prefix": "/paint/"}, "action": {"target": {"virtualService": {"virtualServiceName": COLOR}}, "rewrite": {"prefix": {"value": "/v2/"}}}}})),
    ]);
    let lab = lab(
        "gateway",
        definition,
        &[COLOR, "blue.svc.local"],
        vec![
            TaskConfig::node("red", "red", &[9080]),
            TaskConfig::node("blue", "blue", &[9080]),
            TaskConfig::gateway("gw", "gw"),
            TaskConfig::plain("visitor", &[]),
        ],
    );
    let get = |path: &str, headers: &[&str]| {
        let url = format!("http://gw.local:8088{path}");
        let mut args = vec!["http", url.as_str()];
        for h in headers {
            args.extend(["-H", h]);
        }
        lab.client("visitor", &args).remove(0)
    };
    let line = get("/color/abc?x=1", &[]);
    assert!(line.starts_with("200 name=red"), "{line}");
    assert_eq!(
        field(&line, "path"),
        Some("/abc?x=1"),
        "the default rewrite replaces the matched prefix with /: {line}"
    );
    assert_eq!(
        field(&line, "host"),
        Some(COLOR),
        "Host is the target virtual service: {line}"
    );
    let line = get("/paint/abc", &[]);
    assert!(line.starts_with("200 name=red"), "{line}");
    assert_eq!(
        field(&line, "path"),
        Some("/v2/abc"),
        "the custom rewrite: {line}"
    );
    let line = get("/anything", &["host: blue.example.com"]);
    assert!(line.starts_with("200 name=blue"), "by hostname: {line}");
    let line = get("/anything", &["host: other.example.com"]);
    assert!(line.starts_with("404"), "no gateway route matches: {line}");
}

// ---- 11. a target removed while traffic flows ----

#[test]
fn removing_a_target_moves_traffic_without_failures() {
    let lab = lab(
        "removal",
        color_definition(weighted(1, 1), |_| {}),
        &[COLOR],
        color_tasks(),
    );
    let lines = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            lab.client(
                "front",
                &["http", COLOR_URL, "--count", "300", "--interval-ms", "10"],
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let (status, answer) = lab.api(
            "PUT",
            &format!("/v20190125/meshes/{MESH}/virtualRouter/color/routes/color-route"),
            Some(json!({"spec": {"httpRoute": {"match": {"prefix": "/"}, "action": only("red")}}})),
        );
        assert_eq!(status, 200, "{answer}");
        lab.wait_synced();
        let (status, answer) = lab.api(
            "DELETE",
            &format!("/v20190125/meshes/{MESH}/virtualNodes/blue"),
            None,
        );
        assert_eq!(
            status, 200,
            "the node no route targets can be deleted: {answer}"
        );
        client.join().expect("the client thread")
    });
    let counts = tally(&lines, status_and_name);
    assert_eq!(lines.len(), 300);
    assert_eq!(
        counts
            .iter()
            .filter(|(k, _)| !k.starts_with("200 "))
            .count(),
        0,
        "no request failed: {counts:?}"
    );
    assert!(
        counts.get("200 blue").copied().unwrap_or(0) > 0,
        "blue served before: {counts:?}"
    );
    let tail: Vec<String> = lines[250..].to_vec();
    assert!(
        tail.iter().all(|l| l.starts_with("200 name=red")),
        "after the change only red serves: {:?}",
        tally(&tail, status_and_name)
    );
    let after = lab.client("front", &["http", COLOR_URL, "--count", "20"]);
    assert_eq!(tally(&after, status_and_name).get("200 red"), Some(&20));
}

// ---- 5. gRPC and HTTP/2 ----

#[test]
fn grpc_method_match_and_unavailable_retries_and_http2_route() {
    let definition = json!([
        mesh("DROP_ALL"),
        node("grpc-red", &[(9090, "grpc")], &[]),
        node("grpc-blue", &[(9090, "grpc")], &[]),
        node("h2", &[(9091, "http2")], &[]),
        router("grpc", &[(9090, "grpc")]),
        route(
            "grpc",
            "get",
            json!({"priority": 1, "grpcRoute": {
                "match": {"serviceName": "testapp.Colors", "methodName": "Get"},
                "action": only("grpc-red"),
                "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "s", "value": 5}, "grpcRetryEvents": ["unavailable"]},
            }})
        ),
        route(
            "grpc",
            "any",
            json!({"priority": 2, "grpcRoute": {
                "match": {"serviceName": "testapp.Colors"},
                "action": only("grpc-blue"),
                "retryPolicy": {"maxRetries": 1, "perRetryTimeout": {"unit": "s", "value": 5}, "grpcRetryEvents": ["internal"]},
            }})
        ),
        service_on_router("grpc.local", "grpc"),
        router("h2", &[(9091, "http2")]),
        route(
            "h2",
            "h2-route",
            json!({"http2Route": {"match": {"prefix": "/"}, "action": only("h2")}})
        ),
        service_on_router("h2.local", "h2"),
        node("front", &[], &["grpc.local", "h2.local"]),
    ]);
    let lab = lab(
        "grpc",
        definition,
        &["grpc.local", "h2.local"],
        vec![
            TaskConfig::node("grpc-red", "grpc-red", &[9090]),
            TaskConfig::node("grpc-blue", "grpc-blue", &[9090]),
            TaskConfig::node("h2", "h2", &[9091]),
            TaskConfig::node("front", "front", &[]),
        ],
    );
    let grpc = |method: &str, headers: &[&str], id: &str| {
        let mut args = vec![
            "grpc",
            "http://grpc.local:9090",
            "--method",
            method,
            "--id-prefix",
            id,
        ];
        for h in headers {
            args.extend(["-H", h]);
        }
        lab.client("front", &args).remove(0)
    };
    let line = grpc("testapp.Colors/Get", &[], "get");
    assert_eq!(line, "OK grpc-red /testapp.Colors/Get attempt=1");
    let line = grpc("testapp.Colors/List", &[], "list");
    assert_eq!(line, "OK grpc-blue /testapp.Colors/List attempt=1");
    let line = grpc("other.Service/Get", &[], "other");
    assert!(line.starts_with("ERR Unimplemented"), "no route: {line}");
    // UNAVAILABLE twice, then OK: the method's policy retries `unavailable` twice.
    let line = grpc("testapp.Colors/Get", &["x-fail-first: 2"], "flaky");
    assert_eq!(line, "OK grpc-red /testapp.Colors/Get attempt=3");
    let line = grpc("testapp.Colors/Get", &["x-fail-first: 5"], "down");
    assert!(
        line.starts_with("ERR Unavailable"),
        "three attempts, all UNAVAILABLE: {line}"
    );
    assert!(
        line.contains("attempt 3"),
        "the third attempt's status is returned: {line}"
    );
    // The other route's policy retries `internal` only.
    let line = grpc("testapp.Colors/List", &["x-fail-first: 1"], "list-flaky");
    assert!(line.starts_with("ERR Unavailable"), "{line}");

    let lines = lab.client(
        "front",
        &["http", "http://h2.local:9091/h2", "--h2", "--count", "3"],
    );
    for line in &lines {
        assert!(line.starts_with("200 name=h2"), "{lines:?}");
        assert_eq!(
            field(line, "proto"),
            Some("HTTP/2"),
            "HTTP/2 end to end: {line}"
        );
    }
}

// ---- 8. TLS ----

/// PEM files for the TLS scenario: two CAs and leaf certificates, readable by Envoy's uid.
struct Pki {
    dir: std::path::PathBuf,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use std::os::unix::fs::PermissionsExt;
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("lm-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        };
        for ca_name in ["mesh-ca", "other-ca"] {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, ca_name);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            write(&format!("{ca_name}.pem"), ca.pem());
            let leaves: &[&str] = if ca_name == "mesh-ca" {
                &["red", "blue", "front", "intruder"]
            } else {
                &["stranger"]
            };
            for leaf in leaves {
                let key = KeyPair::generate().unwrap();
                let cert = CertificateParams::new(vec![format!("{leaf}.local")])
                    .unwrap()
                    .signed_by(&key, &ca)
                    .unwrap();
                write(&format!("{leaf}.pem"), cert.pem());
                write(&format!("{leaf}.key"), key.serialize_pem());
            }
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn certificate(&self, leaf: &str) -> Value {
        json!({"file": {"certificateChain": self.path(&format!("{leaf}.pem")), "privateKey": self.path(&format!("{leaf}.key"))}})
    }

    fn trust(&self, ca: &str) -> Value {
        json!({"file": {"certificateChain": self.path(&format!("{ca}.pem"))}})
    }

    /// A client policy trusting `ca` and presenting `leaf`'s certificate.
    fn client_policy(&self, ca: &str, leaf: &str) -> Value {
        json!({"tls": {
            "enforce": true,
            "certificate": self.certificate(leaf),
            "validation": {"trust": self.trust(ca)},
        }})
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn tls_strict_mtls_with_sans_and_permissive() {
    let pki = Pki::new();
    let services = ["red.svc.local", "blue.svc.local"];
    let client = |name: &str, ca: &str| {
        node_with(name, &[], &services, |spec| {
            spec["backendDefaults"] = json!({"clientPolicy": pki.client_policy(ca, name)});
        })
    };
    let definition = json!([
        mesh("DROP_ALL"),
        node_with("red", &[(9080, "http")], &[], |spec| {
            spec["listeners"][0]["tls"] = json!({
                "mode": "STRICT",
                "certificate": pki.certificate("red"),
                "validation": {"trust": pki.trust("mesh-ca"), "subjectAlternativeNames": {"match": {"exact": ["front.local"]}}},
            });
        }),
        node_with("blue", &[(9080, "http")], &[], |spec| {
            spec["listeners"][0]["tls"] =
                json!({"mode": "PERMISSIVE", "certificate": pki.certificate("blue")});
        }),
        service_on_node("red.svc.local", "red"),
        service_on_node("blue.svc.local", "blue"),
        client("front", "mesh-ca"),
        client("intruder", "mesh-ca"),
        client("stranger", "other-ca"),
    ]);
    let lab = lab(
        "tls",
        definition,
        &services,
        vec![
            TaskConfig::node("red", "red", &[9080]),
            TaskConfig::node("blue", "blue", &[9080]),
            TaskConfig::node("front", "front", &[]),
            TaskConfig::node("intruder", "intruder", &[]),
            TaskConfig::node("stranger", "stranger", &[]),
            TaskConfig::plain("plain", &[]),
        ],
    );
    let get = |task: &str, url: &str| {
        lab.client(task, &["http", url, "--timeout-ms", "10000"])
            .remove(0)
    };
    let red = "http://red.svc.local:9080/";
    let blue = "http://blue.svc.local:9080/";
    // mTLS: front trusts the mesh CA and presents front.local, which red requires.
    assert!(
        get("front", red).starts_with("200 name=red"),
        "front → red over mTLS"
    );
    assert!(
        get("front", blue).starts_with("200 name=blue"),
        "front → blue (PERMISSIVE) over TLS"
    );
    let handshakes = |task: &str| {
        lab.envoy_stats(task)
            .unwrap_or_default()
            .iter()
            .filter(|(k, _)| {
                k.starts_with("listener.0.0.0.0_15000.") && k.ends_with("ssl.handshake")
            })
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    assert!(handshakes("red") > 0, "red's listener terminated TLS");
    assert!(handshakes("blue") > 0, "blue's listener terminated TLS");
    // The intruder trusts the right CA, but its certificate's SAN is not front.local.
    let line = get("intruder", red);
    assert!(
        !line.starts_with("200"),
        "red refuses a client certificate without its SAN: {line}"
    );
    assert!(
        get("intruder", blue).starts_with("200 name=blue"),
        "blue validates no client"
    );
    // The stranger trusts another CA: neither server's certificate validates.
    let line = get("stranger", red);
    assert!(
        line.starts_with("503"),
        "an untrusted server certificate fails: {line}"
    );
    let line = get("stranger", blue);
    assert!(
        line.starts_with("503"),
        "an untrusted server certificate fails: {line}"
    );
    // Outside the mesh, without TLS: STRICT refuses plaintext, PERMISSIVE accepts it.
    let line = get("plain", "http://red.local:9080/");
    assert!(!line.starts_with("200"), "STRICT refuses plaintext: {line}");
    let line = get("plain", "http://blue.local:9080/");
    assert!(
        line.starts_with("200 name=blue"),
        "PERMISSIVE accepts plaintext: {line}"
    );
}

// ---- 10. outlier detection ----

#[test]
fn outlier_detection_ejects_a_failing_endpoint() {
    let definition = json!([
        mesh("DROP_ALL"),
        node_with("pool", &[(9080, "http")], &[], |spec| {
            spec["serviceDiscovery"] =
                json!({"dns": {"hostname": "pool.dns.local", "responseType": "ENDPOINTS"}});
            spec["listeners"][0]["outlierDetection"] = json!({
                "maxServerErrors": 3,
                "interval": {"unit": "s", "value": 1},
                "baseEjectionDuration": {"unit": "s", "value": 300},
                "maxEjectionPercent": 50,
            });
        }),
        service_on_node("pool.svc.local", "pool"),
        node("front", &[], &["pool.svc.local"]),
    ]);
    // Two tasks of the virtual node `pool`; the second answers every request with 500.
    let mut broken = TaskConfig::node("broken", "pool", &[9080]);
    broken.app_args = vec!["--fail-status".into(), "500".into()];
    let mut lab = lab(
        "outlier",
        definition,
        &["pool.svc.local"],
        vec![
            TaskConfig::node("healthy", "pool", &[9080]),
            broken,
            TaskConfig::node("front", "front", &[]),
        ],
    );
    lab.add_dns_name("pool.dns.local", &["healthy", "broken"]);
    let cluster = "cds_egress_lm_pool_http_9080";
    let mut hosts = 0;
    for _ in 0..100 {
        let clusters = lab.admin_get("front", "/clusters").unwrap_or_default();
        hosts = clusters
            .lines()
            .filter(|l| l.starts_with(&format!("{cluster}::")) && l.contains("::cx_total::"))
            .count();
        if hosts == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(hosts, 2, "pool.dns.local resolves to both tasks");
    // 50 ms apart, so that the requests span Envoy's 1 s update merge window (a host's
    // ejection reaches the load balancer within it).
    let lines = lab.client(
        "front",
        &[
            "http",
            "http://pool.svc.local:9080/",
            "--count",
            "60",
            "--interval-ms",
            "50",
        ],
    );
    let counts = tally(&lines, status_and_name);
    let failed = counts.get("500 broken").copied().unwrap_or(0);
    assert!(
        (3..=20).contains(&failed),
        "the broken endpoint answers until 3 consecutive errors eject it: {counts:?}"
    );
    assert!(
        lines[30..]
            .iter()
            .all(|l| l.starts_with("200 name=healthy")),
        "after the ejection only the healthy endpoint serves: {counts:?}"
    );
    let stats = lab.envoy_stats("front").unwrap_or_default();
    let ejections = stats
        .get(&format!(
            "cluster.{cluster}.outlier_detection.ejections_enforced_consecutive_5xx"
        ))
        .copied()
        .unwrap_or(0);
    assert!(ejections >= 1, "Envoy counted the ejection");
}

// ---- 14. Cloud Map discovery: tasks register with the AWS CLI, one drains ----

/// Runs `aws servicediscovery <args>` against the mesh's meshd (its own registry), as a
/// task's start-up script would; the JSON it prints.
fn cloud_map(lab: &crate::harness::LocalMesh, args: &[&str]) -> Value {
    let mut command = std::process::Command::new("aws");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(&name);
        }
    }
    let output = command
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
        .arg("servicediscovery")
        .args(args)
        .args([
            "--endpoint-url",
            &format!("http://{}", lab.api),
            "--output",
            "json",
        ])
        .output()
        .unwrap_or_else(|err| panic!("the AWS CLI (`pip install awscli`) runs: {err}"));
    assert!(
        output.status.success(),
        "`aws servicediscovery {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// The endpoints of front's cluster for node `api`, as its Envoy's `/clusters` lists them.
fn api_endpoints(lab: &crate::harness::LocalMesh) -> Vec<String> {
    let text = lab.admin_get("front", "/clusters").unwrap_or_default();
    let mut endpoints: Vec<String> = text
        .lines()
        .filter(|line| {
            line.starts_with("cds_egress_lm_api_http_8080::") && line.contains("::health_flags::")
        })
        .filter_map(|line| line.split("::").nth(1).map(str::to_string))
        .collect();
    endpoints.sort();
    endpoints
}

fn wait_for_api_endpoints(lab: &crate::harness::LocalMesh, expected: &[String]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let endpoints = api_endpoints(lab);
        if endpoints == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "front's Envoy should hold {expected:?}, holds {endpoints:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn cloud_map_tasks_register_themselves_and_one_drains_without_failures() {
    const API: &str = "api.lm.local";
    let definition = json!([
        mesh("DROP_ALL"),
        node_with("api", &[(8080, "http")], &[], |spec| {
            spec["serviceDiscovery"] =
                json!({"awsCloudMap": {"namespaceName": "lm.local", "serviceName": "api"}});
        }),
        service_on_node(API, "api"),
        node("front", &[], &[API]),
    ]);
    let mut service = String::new();
    let mut lab = lab_with(
        "cloudmap",
        definition,
        &[API],
        vec![
            TaskConfig::node("api-1", "api", &[8080]),
            TaskConfig::node("api-2", "api", &[8080]),
            TaskConfig::node("front", "front", &[]),
        ],
        |mesh| {
            cloud_map(mesh, &["create-http-namespace", "--name", "lm.local"]);
            let namespaces = cloud_map(mesh, &["list-namespaces"]);
            let namespace = namespaces["Namespaces"][0]["Id"]
                .as_str()
                .unwrap()
                .to_string();
            let created = cloud_map(
                mesh,
                &[
                    "create-service",
                    "--name",
                    "api",
                    "--namespace-id",
                    &namespace,
                ],
            );
            service = created["Service"]["Id"].as_str().unwrap().to_string();
        },
    );
    // Each task registers itself once it runs, with its address and port.
    let mut registered = Vec::new();
    for task in ["api-1", "api-2"] {
        let address = lab.address(task).to_string();
        cloud_map(
            &lab,
            &[
                "register-instance",
                "--service-id",
                &service,
                "--instance-id",
                task,
                "--attributes",
                &format!("AWS_INSTANCE_IPV4={address},AWS_INSTANCE_PORT=8080"),
            ],
        );
        registered.push(format!("{address}:8080"));
    }
    registered.sort();
    wait_for_api_endpoints(&lab, &registered);
    let url = format!("http://{API}:8080/");
    let first = lab.client("front", &["http", &url, "--count", "40"]);
    let counts = tally(&first, status_and_name);
    assert_eq!(
        counts.get("200 api-1").copied().unwrap_or(0)
            + counts.get("200 api-2").copied().unwrap_or(0),
        40,
        "both serve: {counts:?}"
    );
    assert!(counts.contains_key("200 api-2"), "api-2 serves: {counts:?}");

    // api-2 drains: deregistered while traffic flows, then stopped once the proxy
    // has let it go.
    let api_2 = format!("{}:8080", lab.address("api-2"));
    let api_1 = format!("{}:8080", lab.address("api-1"));
    let lines = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            lab.client(
                "front",
                &["http", &url, "--count", "300", "--interval-ms", "10"],
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(1000));
        cloud_map(
            &lab,
            &[
                "deregister-instance",
                "--service-id",
                &service,
                "--instance-id",
                "api-2",
            ],
        );
        wait_for_api_endpoints(&lab, std::slice::from_ref(&api_1));
        std::thread::sleep(std::time::Duration::from_millis(500));
        client.join().expect("the client thread")
    });
    lab.stop_app("api-2");
    let after = lab.client("front", &["http", &url, "--count", "20"]);
    let counts = tally(&lines, status_and_name);
    assert_eq!(lines.len(), 300);
    assert!(
        counts.keys().all(|k| k.starts_with("200 ")),
        "no request failed while api-2 drained: {counts:?}"
    );
    assert!(
        counts.contains_key("200 api-2"),
        "api-2 served before: {counts:?}"
    );
    assert_eq!(
        tally(&after, status_and_name).get("200 api-1"),
        Some(&20),
        "after draining only api-1 serves (api-2 at {api_2} is stopped)"
    );
}

// ---- 12. ACM certificates from meshd's own CA ----

/// The serial numbers of the certificates `task`'s Envoy got over SDS (`/certs`, leaf
/// chains held inline; its xDS client certificate is a file).
fn served_serials(lab: &crate::harness::LocalMesh, task: &str) -> Vec<String> {
    let Some(text) = lab.admin_get(task, "/certs") else {
        return Vec::new();
    };
    let certs: Value = serde_json::from_str(&text).unwrap_or_default();
    certs["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|entry| entry["cert_chain"].as_array().cloned().unwrap_or_default())
        .filter(|cert| cert["path"] == "<inline>")
        .filter_map(|cert| cert["serial_number"].as_str().map(str::to_string))
        .collect()
}

/// The SSL handshakes of `task`'s Envoy whose statistic starts with `prefix`.
fn handshakes(lab: &crate::harness::LocalMesh, task: &str, prefix: &str) -> u64 {
    lab.envoy_stats(task)
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.ends_with("ssl.handshake"))
        .map(|(_, v)| *v)
        .sum()
}

#[test]
fn acm_tls_from_meshds_ca_is_trusted_refused_and_rotated_without_failures() {
    const CERTIFICATE: &str = "arn:aws:acm:us-east-1:111122223333:certificate/red";
    const AUTHORITY: &str = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/mesh";
    let pki = Pki::new();
    let services = ["red.svc.local"];
    let definition = json!([
        mesh("DROP_ALL"),
        node_with("red", &[(9080, "http")], &[], |spec| {
            spec["listeners"][0]["tls"] = json!({
                "mode": "STRICT",
                "certificate": {"acm": {"certificateArn": CERTIFICATE}},
            });
        }),
        service_on_node("red.svc.local", "red"),
        node_with("front", &[], &services, |spec| {
            spec["backendDefaults"] = json!({"clientPolicy": {"tls": {
                "validation": {"trust": {"acm": {"certificateAuthorityArns": [AUTHORITY]}}},
            }}});
        }),
        // Trusts another CA than the one red's ACM certificate comes from.
        node_with("stranger", &[], &services, |spec| {
            spec["backendDefaults"] = json!({"clientPolicy": {"tls": {
                "validation": {"trust": pki.trust("other-ca")},
            }}});
        }),
    ]);
    let lab = lab_configured(
        "acm",
        definition,
        &services,
        vec![
            TaskConfig::node("red", "red", &[9080]),
            TaskConfig::node("front", "front", &[]),
            TaskConfig::node("stranger", "stranger", &[]),
        ],
        |config| {
            config.acm =
                meshd::certificates::SourceConfig::Local(meshd::certificates::LocalConfig {
                    cert_ttl: std::time::Duration::from_secs(60),
                    ..Default::default()
                });
        },
        |_| {},
    );
    let url = "http://red.svc.local:9080/";
    let get = |task: &str| {
        lab.client(task, &["http", url, "--timeout-ms", "10000"])
            .remove(0)
    };
    assert!(
        get("front").starts_with("200 name=red"),
        "front → red over TLS"
    );
    assert!(
        handshakes(&lab, "red", "listener.0.0.0.0_15000.") > 0,
        "red's listener terminated TLS"
    );
    assert!(
        handshakes(&lab, "front", "cluster.") > 0,
        "front's egress cluster spoke TLS"
    );
    let line = get("stranger");
    assert!(
        line.starts_with("503"),
        "a client that does not trust meshd's CA is refused: {line}"
    );
    // The status says which secrets each proxy holds, and until when.
    let (_, proxies) = lab.api("GET", "/meshd/v1/proxies", None);
    let red = proxies
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["resource"] == "mesh/lm/virtualNode/red")
        .expect("red's stream")
        .clone();
    assert_eq!(red["secrets"][0]["name"], CERTIFICATE, "{red:#}");
    assert!(red["secrets"][0]["notAfter"].as_i64().is_some(), "{red:#}");

    // Two minutes of traffic while the 60 s leaf is issued again every 40 s.
    let mut serials = std::collections::BTreeSet::new();
    serials.extend(served_serials(&lab, "red"));
    assert_eq!(serials.len(), 1, "red serves one certificate: {serials:?}");
    let lines = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            lab.client(
                "front",
                &["http", url, "--count", "1200", "--interval-ms", "100"],
            )
        });
        while !client.is_finished() {
            serials.extend(served_serials(&lab, "red"));
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        client.join().expect("the client thread")
    });
    let counts = tally(&lines, status_and_name);
    assert_eq!(lines.len(), 1200);
    assert_eq!(
        counts.get("200 red"),
        Some(&1200),
        "no request failed while the certificate rotated: {counts:?}"
    );
    assert!(
        serials.len() >= 3,
        "the serial changed at least twice in two minutes: {serials:?}"
    );
}
