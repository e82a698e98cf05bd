//! Validation failures, table by table: for every resource kind (and for tags) at least
//! one request per constraint kind — length, range, enum, pattern, list size, "exactly
//! one" union, required member, unknown field and semantic rule. Each must be answered
//! with HTTP 400, `x-amzn-ErrorType: BadRequestException` and a `{"message": …}` that
//! starts with the path of the offending field, and must leave the store as it was.
//!
//! Raw HTTP (reqwest) sends what the SDK cannot express (unknown fields, wrong JSON types,
//! both members of a union); the last test sends through the SDK what it can.

mod common;

use std::fmt::Write as _;

use aws_sdk_appmesh::config::http::HttpResponse;
use aws_sdk_appmesh::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_appmesh::types::*;
use meshd::server::RunningServer;
use serde_json::{Value, json};

const API: &str = "/v20190125";

// ---------------------------------------------------------------------------------------
// The fixture: one mesh with one resource of every kind
// ---------------------------------------------------------------------------------------

fn node_spec() -> Value {
    json!({
        "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
        "serviceDiscovery": {"dns": {"hostname": "n.local"}},
        "backends": []
    })
}

fn router_spec() -> Value {
    json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]})
}

fn route_spec() -> Value {
    json!({
        "httpRoute": {
            "match": {"prefix": "/"},
            "action": {"weightedTargets": [{"virtualNode": "n", "weight": 1}]}
        }
    })
}

fn service_spec() -> Value {
    json!({"provider": {"virtualNode": {"virtualNodeName": "n"}}})
}

fn gateway_spec() -> Value {
    json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]})
}

fn gateway_route_spec() -> Value {
    json!({
        "httpRoute": {
            "match": {"prefix": "/"},
            "action": {"target": {"virtualService": {"virtualServiceName": "s.local"}}}
        }
    })
}

/// The collection paths of the fixture and the name of each fixture resource in them.
const MESHES: &str = "/v20190125/meshes";
const NODES: &str = "/v20190125/meshes/m/virtualNodes";
const ROUTERS: &str = "/v20190125/meshes/m/virtualRouters";
const ROUTES: &str = "/v20190125/meshes/m/virtualRouter/r/routes";
const SERVICES: &str = "/v20190125/meshes/m/virtualServices";
const GATEWAYS: &str = "/v20190125/meshes/m/virtualGateways";
const GATEWAY_ROUTES: &str = "/v20190125/meshes/m/virtualGateway/g/gatewayRoutes";

struct Fixture {
    server: RunningServer,
    base: String,
    http: reqwest::Client,
}

impl Fixture {
    /// A server holding mesh `m` (tagged `team=core`) with virtual node `n`, virtual
    /// router `r` (one listener, 8080) and its route `rt`, virtual service `s.local`
    /// (provided by `n`), virtual gateway `g` (one listener, 8080) and its gateway route `gr`.
    async fn new() -> Fixture {
        let server = common::start_server().await;
        let fixture = Fixture {
            base: format!("http://{}", server.api_addr),
            server,
            http: reqwest::Client::new(),
        };
        let setup = [
            (
                MESHES,
                json!({"meshName": "m", "tags": [{"key": "team", "value": "core"}]}),
            ),
            (NODES, json!({"virtualNodeName": "n", "spec": node_spec()})),
            (
                ROUTERS,
                json!({"virtualRouterName": "r", "spec": router_spec()}),
            ),
            (ROUTES, json!({"routeName": "rt", "spec": route_spec()})),
            (
                SERVICES,
                json!({"virtualServiceName": "s.local", "spec": service_spec()}),
            ),
            (
                GATEWAYS,
                json!({"virtualGatewayName": "g", "spec": gateway_spec()}),
            ),
            (
                GATEWAY_ROUTES,
                json!({"gatewayRouteName": "gr", "spec": gateway_route_spec()}),
            ),
        ];
        for (path, body) in setup {
            let response = fixture
                .http
                .put(format!("{}{path}", fixture.base))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_eq!(status, 200, "fixture {path}: {text}");
        }
        fixture
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Everything a user can see of the fixture: each resource described, each collection
    /// listed, the tags of the mesh and the node, and the store's revision.
    async fn state(&self) -> Value {
        let mut state = serde_json::Map::new();
        let paths = [
            MESHES.to_string(),
            format!("{MESHES}/m"),
            NODES.to_string(),
            format!("{NODES}/n"),
            ROUTERS.to_string(),
            format!("{ROUTERS}/r"),
            ROUTES.to_string(),
            format!("{ROUTES}/rt"),
            SERVICES.to_string(),
            format!("{SERVICES}/s.local"),
            GATEWAYS.to_string(),
            format!("{GATEWAYS}/g"),
            GATEWAY_ROUTES.to_string(),
            format!("{GATEWAY_ROUTES}/gr"),
            format!("{API}/tags?resourceArn={}", encode(&common::arn("mesh/m"))),
            format!(
                "{API}/tags?resourceArn={}",
                encode(&common::arn("mesh/m/virtualNode/n"))
            ),
        ];
        for path in paths {
            let body = self.get(&path).await;
            state.insert(path, body);
        }
        state.insert(
            "revision".into(),
            json!(self.server.store.snapshot().revision()),
        );
        Value::Object(state)
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            write!(out, "%{byte:02X}").unwrap();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

/// What a case sends.
enum Body {
    Json(Value),
    Raw(&'static str),
    None,
}

/// One request that must be refused with a `BadRequestException`.
struct Case {
    /// The constraint kind and what breaks it, for failure messages.
    what: String,
    method: reqwest::Method,
    path: String,
    body: Body,
    /// The path the message must start with (`spec.listeners[0].portMapping.port`).
    field: &'static str,
    /// A part of the message after the path.
    detail: &'static str,
}

fn case(
    what: &str,
    method: reqwest::Method,
    path: impl Into<String>,
    body: Body,
    field: &'static str,
    detail: &'static str,
) -> Case {
    Case {
        what: what.to_string(),
        method,
        path: path.into(),
        body,
        field,
        detail,
    }
}

/// `PUT` to a collection: a create.
fn create(
    what: &str,
    collection: &str,
    body: Value,
    field: &'static str,
    detail: &'static str,
) -> Case {
    case(
        what,
        reqwest::Method::PUT,
        collection,
        Body::Json(body),
        field,
        detail,
    )
}

/// `PUT` to an item: an update.
fn update(
    what: &str,
    item: String,
    body: Value,
    field: &'static str,
    detail: &'static str,
) -> Case {
    case(
        what,
        reqwest::Method::PUT,
        item,
        Body::Json(body),
        field,
        detail,
    )
}

/// `GET` of a path (list operations with a bad query).
fn get(what: &str, path: String, field: &'static str, detail: &'static str) -> Case {
    case(what, reqwest::Method::GET, path, Body::None, field, detail)
}

/// `value` with the member at JSON pointer `pointer` set to `new` (creating the last
/// member if needed).
fn set(mut value: Value, pointer: &str, new: Value) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    let shown = value.to_string();
    let target = value
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in {shown}"));
    match target {
        Value::Object(members) => {
            members.insert(last.to_string(), new);
        }
        Value::Array(items) => {
            let index: usize = last.parse().expect("an index");
            if index == items.len() {
                items.push(new);
            } else {
                items[index] = new;
            }
        }
        other => panic!("cannot set {last} in {other}"),
    }
    value
}

/// `value` without the member at JSON pointer `pointer`.
fn without(mut value: Value, pointer: &str) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    match value.pointer_mut(parent) {
        Some(Value::Object(members)) => {
            members
                .remove(last)
                .unwrap_or_else(|| panic!("no {pointer}"));
        }
        _ => panic!("no object at {parent}"),
    }
    value
}

/// Sends every case to `fixture`, checks the refusal and that nothing changed, and fails
/// with the list of every case that did not hold.
async fn run(fixture: &Fixture, cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let mut state = fixture.state().await;
    for case in &cases {
        let url = format!("{}{}", fixture.base, case.path);
        let request = fixture.http.request(case.method.clone(), url);
        let request = match &case.body {
            Body::Json(body) => request.json(body),
            Body::Raw(text) => request
                .header("content-type", "application/json")
                .body(*text),
            Body::None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .map(|value| value.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        let label = format!("{} ({} {})", case.what, case.method, case.path);
        if status != 400 {
            failures.push(format!("{label}: status {status}, body {text}"));
        }
        if error_type.as_deref() != Some("BadRequestException") {
            failures.push(format!(
                "{label}: x-amzn-ErrorType {error_type:?}, body {text}"
            ));
        }
        let message = serde_json::from_str::<Value>(&text).ok().and_then(|body| {
            body.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        match message {
            None => failures.push(format!("{label}: no message in {text}")),
            Some(message) => {
                let prefix = format!("{}: ", case.field);
                if !message.starts_with(&prefix) || !message[prefix.len()..].contains(case.detail) {
                    failures.push(format!(
                        "{label}: message {message:?} does not read \"{}: …{}…\"",
                        case.field, case.detail
                    ));
                }
            }
        }
        let after = fixture.state().await;
        if after != state {
            failures.push(format!(
                "{label}: the store changed:\nbefore {state}\nafter  {after}"
            ));
            state = after;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn long(length: usize) -> String {
    "x".repeat(length)
}

// ---------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn mesh_validation_failures() {
    let fixture = Fixture::new().await;
    let mesh = format!("{MESHES}/m");
    let cases = vec![
        // names: no control characters, no `/`, not `.` or `..`
        create(
            "name: a NUL",
            MESHES,
            json!({"meshName": "a\u{0}b"}),
            "meshName",
            "must not contain control characters",
        ),
        create(
            "name: a newline",
            MESHES,
            json!({"meshName": "a\nb"}),
            "meshName",
            "must not contain control characters",
        ),
        create(
            "name: a slash",
            MESHES,
            json!({"meshName": "a/b"}),
            "meshName",
            "must not contain /",
        ),
        create(
            "name: .",
            MESHES,
            json!({"meshName": "."}),
            "meshName",
            "must not be . or ..",
        ),
        create(
            "name: ..",
            MESHES,
            json!({"meshName": ".."}),
            "meshName",
            "must not be . or ..",
        ),
        create(
            "name: a slash in a virtual service name",
            SERVICES,
            json!({"virtualServiceName": "s/x", "spec": service_spec()}),
            "virtualServiceName",
            "must not contain /",
        ),
        create(
            "name: a tab in a route name",
            ROUTES,
            json!({"routeName": "a\tb", "spec": route_spec()}),
            "routeName",
            "must not contain control characters",
        ),
        get(
            "name: an encoded newline in the path",
            format!("{MESHES}/a%0Ab"),
            "meshName",
            "must not contain control characters",
        ),
        get(
            "name: an encoded slash in the path",
            format!("{MESHES}/a%2Fb"),
            "meshName",
            "must not contain /",
        ),
        // length
        create(
            "length: meshName of 256",
            MESHES,
            json!({"meshName": long(256)}),
            "meshName",
            "must be between 1 and 255 characters long",
        ),
        create(
            "length: empty meshName",
            MESHES,
            json!({"meshName": ""}),
            "meshName",
            "must be between 1 and 255 characters long",
        ),
        create(
            "length: clientToken of 37",
            MESHES,
            json!({"meshName": "new", "clientToken": long(37)}),
            "clientToken",
            "must be between 1 and 36 characters long",
        ),
        get(
            "length: meshName of 256 in the path",
            format!("{MESHES}/{}", long(256)),
            "meshName",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: meshName of 256 in the path of an update",
            format!("{MESHES}/{}", long(256)),
            json!({}),
            "meshName",
            "must be between 1 and 255 characters long",
        ),
        get(
            "length: meshOwner not 12 characters",
            format!("{mesh}?meshOwner=1234"),
            "meshOwner",
            "12",
        ),
        // range
        get(
            "range: ListMeshes limit 0",
            format!("{MESHES}?limit=0"),
            "limit",
            "must be between 1 and 100",
        ),
        get(
            "range: ListMeshes limit 101",
            format!("{MESHES}?limit=101"),
            "limit",
            "must be between 1 and 100",
        ),
        // enum
        update(
            "enum: egressFilter.type",
            mesh.clone(),
            json!({"spec": {"egressFilter": {"type": "BOGUS"}}}),
            "spec.egressFilter.type",
            "unknown variant `BOGUS`",
        ),
        create(
            "enum: ipPreference",
            MESHES,
            json!({"meshName": "new", "spec": {"serviceDiscovery": {"ipPreference": "IPv5_ONLY"}}}),
            "spec.serviceDiscovery.ipPreference",
            "unknown variant `IPv5_ONLY`",
        ),
        // pattern
        create(
            "pattern: clientToken characters",
            MESHES,
            json!({"meshName": "new", "clientToken": "no spaces!"}),
            "clientToken",
            "may contain only letters, numbers, hyphens and underscores",
        ),
        // list size
        create(
            "list size: 51 tags",
            MESHES,
            json!({"meshName": "new", "tags": (0..51).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect::<Vec<_>>()}),
            "tags",
            "must contain at most 50 item(s)",
        ),
        // required
        create(
            "required: meshName",
            MESHES,
            json!({"spec": {}}),
            "meshName",
            "must be set",
        ),
        update(
            "required: egressFilter.type",
            mesh.clone(),
            json!({"spec": {"egressFilter": {}}}),
            "spec.egressFilter",
            "missing field `type`",
        ),
        // unknown field
        create(
            "unknown: top-level member",
            MESHES,
            json!({"meshName": "new", "meshOwner": "111122223333"}),
            "meshOwner",
            "unknown field",
        ),
        update(
            "unknown: spec member",
            mesh.clone(),
            json!({"spec": {"egress": {"type": "ALLOW_ALL"}}}),
            "spec.egress",
            "unknown field `egress`",
        ),
        update(
            "unknown: nested member",
            mesh.clone(),
            json!({"spec": {"egressFilter": {"type": "ALLOW_ALL", "mode": "x"}}}),
            "spec.egressFilter.mode",
            "unknown field `mode`",
        ),
        // wrong JSON type
        create(
            "type: meshName a number",
            MESHES,
            json!({"meshName": 5}),
            "meshName",
            "invalid type: integer `5`, expected a string",
        ),
        update(
            "type: spec an array",
            mesh.clone(),
            json!({"spec": []}),
            "spec",
            "invalid type: sequence, expected a structure",
        ),
        update(
            "type: egress filter an array",
            mesh.clone(),
            json!({"spec": {"egressFilter": ["ALLOW_ALL"]}}),
            "spec.egressFilter",
            "invalid type: sequence, expected a structure",
        ),
    ];
    run(&fixture, cases).await;
}

#[tokio::test]
async fn virtual_node_validation_failures() {
    let fixture = Fixture::new().await;
    let node = format!("{NODES}/n");
    let spec = node_spec();
    let with = |pointer: &str, value: Value| json!({"spec": set(spec.clone(), pointer, value)});
    let new = |spec: Value| json!({"virtualNodeName": "new", "spec": spec});
    let health = json!({"protocol": "http", "path": "/ping", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000});
    let sds =
        |secret: String| json!({"mode": "STRICT", "certificate": {"sds": {"secretName": secret}}});
    let acm =
        |arn: String| json!({"mode": "STRICT", "certificate": {"acm": {"certificateArn": arn}}});
    let cases = vec![
        // strings the model leaves unbounded, bounded by what they mean
        update(
            "bound: a hostname of 254 characters",
            node.clone(),
            with(
                "/serviceDiscovery/dns/hostname",
                json!(format!(
                    "{}.{}.{}.{}",
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(62)
                )),
            ),
            "spec.serviceDiscovery.dns.hostname",
            "must be a DNS name of at most 253 characters or an IP address",
        ),
        update(
            "bound: a hostname of 1.9 MB",
            node.clone(),
            with(
                "/serviceDiscovery/dns/hostname",
                json!("a".repeat(1_900_000)),
            ),
            "spec.serviceDiscovery.dns.hostname",
            "must be a DNS name of at most 253 characters or an IP address",
        ),
        update(
            "bound: a hostname label of 64 characters",
            node.clone(),
            with(
                "/serviceDiscovery/dns/hostname",
                json!(format!("{}.local", "a".repeat(64))),
            ),
            "spec.serviceDiscovery.dns.hostname",
            "label 1 must be 1 to 63 characters long",
        ),
        update(
            "bound: a hostname with an empty label",
            node.clone(),
            with("/serviceDiscovery/dns/hostname", json!("a..local")),
            "spec.serviceDiscovery.dns.hostname",
            "label 2 must be 1 to 63 characters long",
        ),
        update(
            "bound: a hostname with a space",
            node.clone(),
            with("/serviceDiscovery/dns/hostname", json!("a b.local")),
            "spec.serviceDiscovery.dns.hostname",
            "label 1 may contain only letters, digits, - and _",
        ),
        update(
            "bound: an SDS secret name of 2,049 characters",
            node.clone(),
            with("/listeners/0/tls", sds("s".repeat(2049))),
            "spec.listeners[0].tls.certificate.sds.secretName",
            "must be between 1 and 2048 characters long",
        ),
        update(
            "bound: an ACM certificate ARN of 2,049 characters",
            node.clone(),
            with("/listeners/0/tls", acm("a".repeat(2049))),
            "spec.listeners[0].tls.certificate.acm.certificateArn",
            "must be between 1 and 2048 characters long",
        ),
        update(
            "bound: a health check path of 4,097 characters",
            node.clone(),
            with(
                "/listeners/0/healthCheck",
                set(
                    health.clone(),
                    "/path",
                    json!(format!("/{}", "p".repeat(4096))),
                ),
            ),
            "spec.listeners[0].healthCheck.path",
            "must be at most 4096 characters long",
        ),
        update(
            "bound: a backend name of 256 characters",
            node.clone(),
            with(
                "/backends",
                json!([{"virtualService": {"virtualServiceName": long(256)}}]),
            ),
            "spec.backends[0].virtualService.virtualServiceName",
            "must be between 1 and 255 characters long",
        ),
        // length
        create(
            "length: virtualNodeName of 256",
            NODES,
            json!({"virtualNodeName": long(256), "spec": spec}),
            "virtualNodeName",
            "must be between 1 and 255 characters long",
        ),
        case(
            "length: virtualNodeName of 256 in the path",
            reqwest::Method::DELETE,
            format!("{NODES}/{}", long(256)),
            Body::None,
            "virtualNodeName",
            "must be between 1 and 255 characters long",
        ),
        get(
            "length: meshName of 256 in the path",
            format!("{MESHES}/{}/virtualNodes/n", long(256)),
            "meshName",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: access log path",
            node.clone(),
            with("/logging", json!({"accessLog": {"file": {"path": ""}}})),
            "spec.logging.accessLog.file.path",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: cloud map namespace",
            node.clone(),
            with(
                "/serviceDiscovery",
                json!({"awsCloudMap": {"namespaceName": "", "serviceName": "s"}}),
            ),
            "spec.serviceDiscovery.awsCloudMap.namespaceName",
            "must be between 1 and 1024 characters long",
        ),
        // range
        update(
            "range: port 0",
            node.clone(),
            with("/listeners/0/portMapping/port", json!(0)),
            "spec.listeners[0].portMapping.port",
            "must be between 1 and 65535",
        ),
        create(
            "range: port 65536",
            NODES,
            new(set(
                spec.clone(),
                "/listeners/0/portMapping/port",
                json!(65536),
            )),
            "spec.listeners[0].portMapping.port",
            "must be between 1 and 65535",
        ),
        update(
            "range: health check interval",
            node.clone(),
            with(
                "/listeners/0/healthCheck",
                set(health.clone(), "/intervalMillis", json!(4999)),
            ),
            "spec.listeners[0].healthCheck.intervalMillis",
            "must be between 5000 and 300000",
        ),
        update(
            "range: health check threshold",
            node.clone(),
            with(
                "/listeners/0/healthCheck",
                set(health.clone(), "/unhealthyThreshold", json!(11)),
            ),
            "spec.listeners[0].healthCheck.unhealthyThreshold",
            "must be between 2 and 10",
        ),
        update(
            "range: max connections",
            node.clone(),
            with(
                "/listeners/0/connectionPool",
                json!({"http": {"maxConnections": 0}}),
            ),
            "spec.listeners[0].connectionPool.http.maxConnections",
            "must be between 1 and 4294967295",
        ),
        update(
            "envoy: more connections than a 32-bit count",
            node.clone(),
            with(
                "/listeners/0/connectionPool",
                json!({"http": {"maxConnections": 4_294_967_296_i64}}),
            ),
            "spec.listeners[0].connectionPool.http.maxConnections",
            "must be between 1 and 4294967295",
        ),
        update(
            "envoy: an outlier interval over the longest Envoy duration",
            node.clone(),
            with(
                "/listeners/0/outlierDetection",
                json!({"maxServerErrors": 1, "maxEjectionPercent": 10, "interval": {"value": 9_223_372_036_i64, "unit": "s"}, "baseEjectionDuration": {"value": 1, "unit": "s"}}),
            ),
            "spec.listeners[0].outlierDetection.interval.value",
            "must be at most 9223372035 (s)",
        ),
        update(
            "range: max ejection percent",
            node.clone(),
            with(
                "/listeners/0/outlierDetection",
                json!({"maxServerErrors": 1, "maxEjectionPercent": 101, "interval": {"value": 1, "unit": "s"}, "baseEjectionDuration": {"value": 1, "unit": "s"}}),
            ),
            "spec.listeners[0].outlierDetection.maxEjectionPercent",
            "must be between 0 and 100",
        ),
        // enum
        update(
            "enum: port protocol",
            node.clone(),
            with("/listeners/0/portMapping/protocol", json!("udp")),
            "spec.listeners[0].portMapping.protocol",
            "unknown variant `udp`",
        ),
        update(
            "enum: dns response type",
            node.clone(),
            with("/serviceDiscovery/dns/responseType", json!("ROUND_ROBIN")),
            "spec.serviceDiscovery.dns.responseType",
            "unknown variant `ROUND_ROBIN`",
        ),
        update(
            "enum: tls mode",
            node.clone(),
            with(
                "/listeners/0/tls",
                json!({"mode": "SOMETIMES", "certificate": {"file": {"certificateChain": "/c", "privateKey": "/k"}}}),
            ),
            "spec.listeners[0].tls.mode",
            "unknown variant `SOMETIMES`",
        ),
        // pattern
        update(
            "pattern: cloud map attribute key",
            node.clone(),
            with(
                "/serviceDiscovery",
                json!({"awsCloudMap": {"namespaceName": "ns", "serviceName": "s", "attributes": [{"key": "bad key", "value": "v"}]}}),
            ),
            "spec.serviceDiscovery.awsCloudMap.attributes[0].key",
            "must match the pattern",
        ),
        update(
            "pattern: cloud map attribute value",
            node.clone(),
            with(
                "/serviceDiscovery",
                json!({"awsCloudMap": {"namespaceName": "ns", "serviceName": "s", "attributes": [{"key": "k", "value": " leading"}]}}),
            ),
            "spec.serviceDiscovery.awsCloudMap.attributes[0].value",
            "must match the pattern",
        ),
        // list size
        update(
            "list size: no certificate authorities",
            node.clone(),
            with(
                "/backendDefaults",
                json!({"clientPolicy": {"tls": {"validation": {"trust": {"acm": {"certificateAuthorityArns": []}}}}}}),
            ),
            "spec.backendDefaults.clientPolicy.tls.validation.trust.acm.certificateAuthorityArns",
            "must contain between 1 and 3 items",
        ),
        update(
            "list size: four certificate authorities",
            node.clone(),
            with(
                "/backendDefaults",
                json!({"clientPolicy": {"tls": {"validation": {"trust": {"acm": {"certificateAuthorityArns": ["a", "b", "c", "d"]}}}}}}),
            ),
            "spec.backendDefaults.clientPolicy.tls.validation.trust.acm.certificateAuthorityArns",
            "must contain between 1 and 3 items",
        ),
        update(
            "list size: empty json log format",
            node.clone(),
            with(
                "/logging",
                json!({"accessLog": {"file": {"path": "/dev/stdout", "format": {"json": []}}}}),
            ),
            "spec.logging.accessLog.file.format.json",
            "must contain at least 1 item(s)",
        ),
        // union
        update(
            "union: dns and cloud map",
            node.clone(),
            with(
                "/serviceDiscovery/awsCloudMap",
                json!({"namespaceName": "ns", "serviceName": "s"}),
            ),
            "spec.serviceDiscovery",
            "exactly one of awsCloudMap, dns must be set",
        ),
        update(
            "union: empty backend",
            node.clone(),
            with("/backends", json!([{}])),
            "spec.backends[0]",
            "exactly one of virtualService must be set",
        ),
        update(
            "union: empty connection pool",
            node.clone(),
            with("/listeners/0/connectionPool", json!({})),
            "spec.listeners[0].connectionPool",
            "exactly one of grpc, http, http2, tcp must be set",
        ),
        update(
            "union: two tls certificates",
            node.clone(),
            with(
                "/listeners/0/tls",
                json!({"mode": "STRICT", "certificate": {"acm": {"certificateArn": "arn:c"}, "file": {"certificateChain": "/c", "privateKey": "/k"}}}),
            ),
            "spec.listeners[0].tls.certificate",
            "exactly one of acm, file, sds must be set",
        ),
        // required
        create(
            "required: spec",
            NODES,
            json!({"virtualNodeName": "new"}),
            "spec",
            "must be set",
        ),
        create(
            "required: virtualNodeName",
            NODES,
            json!({"spec": spec}),
            "virtualNodeName",
            "must be set",
        ),
        update(
            "required: portMapping",
            node.clone(),
            with("/listeners/0", json!({})),
            "spec.listeners[0]",
            "missing field `portMapping`",
        ),
        update(
            "required: port",
            node.clone(),
            with("/listeners/0/portMapping", json!({"protocol": "http"})),
            "spec.listeners[0].portMapping",
            "missing field `port`",
        ),
        update(
            "required: dns hostname",
            node.clone(),
            with("/serviceDiscovery/dns", json!({})),
            "spec.serviceDiscovery.dns",
            "missing field `hostname`",
        ),
        // unknown field
        create(
            "unknown: top-level member",
            NODES,
            json!({"virtualNodeName": "new", "spec": spec, "virtualRouterName": "r"}),
            "virtualRouterName",
            "unknown field",
        ),
        update(
            "unknown: nested member",
            node.clone(),
            with("/listeners/0/portMapping/bogus", json!(1)),
            "spec.listeners[0].portMapping.bogus",
            "unknown field `bogus`",
        ),
        // wrong JSON type
        update(
            "type: port a string",
            node.clone(),
            with("/listeners/0/portMapping/port", json!("8080")),
            "spec.listeners[0].portMapping.port",
            "invalid type: string \"8080\"",
        ),
        update(
            "type: port mapping an array",
            node.clone(),
            with("/listeners/0/portMapping", json!([8080, "http"])),
            "spec.listeners[0].portMapping",
            "invalid type: sequence, expected a structure",
        ),
        update(
            "type: backends an object",
            node.clone(),
            with("/backends", json!({})),
            "spec.backends",
            "invalid type: map",
        ),
        // semantic
        update(
            "semantic: listener without service discovery",
            node.clone(),
            json!({"spec": without(spec.clone(), "/serviceDiscovery")}),
            "spec.serviceDiscovery",
            "must be set when the virtual node has a listener",
        ),
        update(
            "semantic: duplicate listener port",
            node.clone(),
            with(
                "/listeners/1",
                json!({"portMapping": {"port": 8080, "protocol": "tcp"}}),
            ),
            "spec.listeners[1].portMapping.port",
            "port 8080 is already used by another listener",
        ),
        update(
            "semantic: duplicate backend",
            node.clone(),
            with(
                "/backends",
                json!([{"virtualService": {"virtualServiceName": "a"}}, {"virtualService": {"virtualServiceName": "a"}}]),
            ),
            "spec.backends[1].virtualService.virtualServiceName",
            "already a backend",
        ),
        update(
            "semantic: http health check without path",
            node.clone(),
            with("/listeners/0/healthCheck", without(health.clone(), "/path")),
            "spec.listeners[0].healthCheck.path",
            "must be set when the health check protocol is http or http2",
        ),
        update(
            "semantic: connection pool of another protocol",
            node.clone(),
            with(
                "/listeners/0/connectionPool",
                json!({"tcp": {"maxConnections": 1}}),
            ),
            "spec.listeners[0].connectionPool",
            "must be the http connection pool",
        ),
        update(
            "semantic: duration without unit",
            node.clone(),
            with(
                "/listeners/0/timeout",
                json!({"http": {"idle": {"value": 5}}}),
            ),
            "spec.listeners[0].timeout.http.idle.unit",
            "must be set",
        ),
    ];
    run(&fixture, cases).await;
}

#[tokio::test]
async fn virtual_router_validation_failures() {
    let fixture = Fixture::new().await;
    let router = format!("{ROUTERS}/r");
    let spec = router_spec();
    let with = |pointer: &str, value: Value| json!({"spec": set(spec.clone(), pointer, value)});
    let cases = vec![
        // length
        create(
            "length: virtualRouterName of 256",
            ROUTERS,
            json!({"virtualRouterName": long(256), "spec": spec}),
            "virtualRouterName",
            "must be between 1 and 255 characters long",
        ),
        get(
            "length: virtualRouterName of 256 in the path",
            format!("{ROUTERS}/{}", long(256)),
            "virtualRouterName",
            "must be between 1 and 255 characters long",
        ),
        create(
            "length: empty virtualRouterName",
            ROUTERS,
            json!({"virtualRouterName": "", "spec": spec}),
            "virtualRouterName",
            "must be between 1 and 255 characters long",
        ),
        // range
        update(
            "range: port 70000",
            router.clone(),
            with("/listeners/0/portMapping/port", json!(70000)),
            "spec.listeners[0].portMapping.port",
            "must be between 1 and 65535",
        ),
        get(
            "range: ListVirtualRouters limit 101",
            format!("{ROUTERS}?limit=101"),
            "limit",
            "must be between 1 and 100",
        ),
        // enum
        update(
            "enum: port protocol",
            router.clone(),
            with("/listeners/0/portMapping/protocol", json!("HTTP")),
            "spec.listeners[0].portMapping.protocol",
            "unknown variant `HTTP`",
        ),
        // pattern (the spec has none: the request's client token)
        update(
            "pattern: clientToken characters",
            router.clone(),
            json!({"spec": spec, "clientToken": "a/b"}),
            "clientToken",
            "may contain only letters, numbers, hyphens and underscores",
        ),
        // list size (the spec has none: the request's tags)
        create(
            "list size: 51 tags",
            ROUTERS,
            json!({"virtualRouterName": "new", "spec": spec, "tags": (0..51).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect::<Vec<_>>()}),
            "tags",
            "must contain at most 50 item(s)",
        ),
        // required
        create(
            "required: spec",
            ROUTERS,
            json!({"virtualRouterName": "new"}),
            "spec",
            "must be set",
        ),
        update(
            "required: portMapping",
            router.clone(),
            with("/listeners/0", json!({})),
            "spec.listeners[0]",
            "missing field `portMapping`",
        ),
        update(
            "required: protocol",
            router.clone(),
            with("/listeners/0/portMapping", json!({"port": 80})),
            "spec.listeners[0].portMapping",
            "missing field `protocol`",
        ),
        // unknown field
        create(
            "unknown: top-level member",
            ROUTERS,
            json!({"virtualRouterName": "new", "spec": spec, "routeName": "x"}),
            "routeName",
            "unknown field",
        ),
        update(
            "unknown: listener member",
            router.clone(),
            with("/listeners/0/tls", json!({})),
            "spec.listeners[0].tls",
            "unknown field `tls`",
        ),
        // wrong JSON type
        update(
            "type: port mapping an array",
            router.clone(),
            with("/listeners/0/portMapping", json!([9090, "http"])),
            "spec.listeners[0].portMapping",
            "invalid type: sequence, expected a structure",
        ),
        update(
            "type: listeners an object",
            router.clone(),
            with("/listeners", json!({"portMapping": {}})),
            "spec.listeners",
            "invalid type: map",
        ),
        // semantic
        update(
            "semantic: duplicate listener port",
            router.clone(),
            with(
                "/listeners/1",
                json!({"portMapping": {"port": 8080, "protocol": "http2"}}),
            ),
            "spec.listeners[1].portMapping.port",
            "port 8080 is already used by another listener",
        ),
        update(
            "semantic: a second listener while route rt names no port",
            router.clone(),
            with(
                "/listeners/1",
                json!({"portMapping": {"port": 9090, "protocol": "http"}}),
            ),
            "spec.listeners",
            "route rt must name one of these listener ports",
        ),
    ];
    run(&fixture, cases).await;
}

#[tokio::test]
async fn route_validation_failures() {
    let fixture = Fixture::new().await;
    let route = format!("{ROUTES}/rt");
    let spec = route_spec();
    let with = |pointer: &str, value: Value| json!({"spec": set(spec.clone(), pointer, value)});
    let targets = |count: usize| {
        (0..count)
            .map(|_| json!({"virtualNode": "n", "weight": 1}))
            .collect::<Vec<_>>()
    };
    let headers = |count: usize| {
        (0..count)
            .map(|i| json!({"name": format!("h{i}")}))
            .collect::<Vec<_>>()
    };
    let retry = json!({"maxRetries": 1, "perRetryTimeout": {"value": 1, "unit": "s"}, "httpRetryEvents": ["server-error"]});
    let grpc = |r#match: Value| json!({"spec": {"grpcRoute": {"match": r#match, "action": {"weightedTargets": [{"virtualNode": "n", "weight": 1}]}}}});
    let cases = vec![
        // length
        create(
            "length: routeName of 256",
            ROUTES,
            json!({"routeName": long(256), "spec": spec}),
            "routeName",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: routeName of 256 in the path",
            format!("{ROUTES}/{}", long(256)),
            json!({"spec": spec}),
            "routeName",
            "must be between 1 and 255 characters long",
        ),
        get(
            "length: virtualRouterName of 256 in the path",
            format!("/v20190125/meshes/m/virtualRouter/{}/routes", long(256)),
            "virtualRouterName",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: empty target node",
            route.clone(),
            with("/httpRoute/action/weightedTargets/0/virtualNode", json!("")),
            "spec.httpRoute.action.weightedTargets[0].virtualNode",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: header name of 51",
            route.clone(),
            with("/httpRoute/match/headers", json!([{"name": long(51)}])),
            "spec.httpRoute.match.headers[0].name",
            "must be between 1 and 50 characters long",
        ),
        // range
        update(
            "range: priority 1001",
            route.clone(),
            with("/priority", json!(1001)),
            "spec.priority",
            "must be between 0 and 1000",
        ),
        update(
            "range: weight 101",
            route.clone(),
            with("/httpRoute/action/weightedTargets/0/weight", json!(101)),
            "spec.httpRoute.action.weightedTargets[0].weight",
            "must be between 0 and 100",
        ),
        update(
            "range: match port 0",
            route.clone(),
            with("/httpRoute/match/port", json!(0)),
            "spec.httpRoute.match.port",
            "must be between 1 and 65535",
        ),
        update(
            "range: negative retries",
            route.clone(),
            with(
                "/httpRoute/retryPolicy",
                set(retry.clone(), "/maxRetries", json!(-1)),
            ),
            "spec.httpRoute.retryPolicy.maxRetries",
            "must be between 0 and 4294967295",
        ),
        update(
            "bound: a prefix of 4,097 characters",
            route.clone(),
            with(
                "/httpRoute/match/prefix",
                json!(format!("/{}", "p".repeat(4096))),
            ),
            "spec.httpRoute.match.prefix",
            "must be at most 4096 characters long",
        ),
        update(
            "bound: a query parameter name of 256 characters",
            route.clone(),
            with(
                "/httpRoute/match/queryParameters",
                json!([{"name": long(256)}]),
            ),
            "spec.httpRoute.match.queryParameters[0].name",
            "must be between 1 and 255 characters long",
        ),
        update(
            "bound: a gRPC service name of 256 characters",
            route.clone(),
            json!({"spec": {"grpcRoute": {"match": {"serviceName": long(256)}, "action": {"weightedTargets": [{"virtualNode": "n", "weight": 1}]}}}}),
            "spec.grpcRoute.match.serviceName",
            "must be between 1 and 255 characters long",
        ),
        // Envoy's bounds: a duration is at most 9,223,372,035 s, and counts are 32-bit.
        update(
            "envoy: a timeout of 2^63-1 seconds",
            route.clone(),
            with(
                "/httpRoute/timeout",
                json!({"perRequest": {"value": i64::MAX, "unit": "s"}}),
            ),
            "spec.httpRoute.timeout.perRequest.value",
            "must be at most 9223372035 (s)",
        ),
        update(
            "envoy: a per-retry timeout just over the longest Envoy duration, in ms",
            route.clone(),
            with(
                "/httpRoute/retryPolicy",
                set(
                    retry.clone(),
                    "/perRetryTimeout",
                    json!({"value": 9_223_372_036_000_i64, "unit": "ms"}),
                ),
            ),
            "spec.httpRoute.retryPolicy.perRetryTimeout.value",
            "must be at most 9223372035999 (ms)",
        ),
        update(
            "envoy: more retries than a 32-bit count",
            route.clone(),
            with(
                "/httpRoute/retryPolicy",
                set(retry.clone(), "/maxRetries", json!(4_294_967_296_i64)),
            ),
            "spec.httpRoute.retryPolicy.maxRetries",
            "must be between 0 and 4294967295",
        ),
        get(
            "range: ListRoutes limit 0",
            format!("{ROUTES}?limit=0"),
            "limit",
            "must be between 1 and 100",
        ),
        // enum
        update(
            "enum: method",
            route.clone(),
            with("/httpRoute/match/method", json!("FETCH")),
            "spec.httpRoute.match.method",
            "unknown variant `FETCH`",
        ),
        update(
            "enum: scheme",
            route.clone(),
            with("/httpRoute/match/scheme", json!("ftp")),
            "spec.httpRoute.match.scheme",
            "unknown variant `ftp`",
        ),
        update(
            "enum: duration unit",
            route.clone(),
            with(
                "/httpRoute/timeout",
                json!({"idle": {"value": 1, "unit": "h"}}),
            ),
            "spec.httpRoute.timeout.idle.unit",
            "unknown variant `h`",
        ),
        update(
            "enum: tcp retry event",
            route.clone(),
            with(
                "/httpRoute/retryPolicy",
                set(
                    retry.clone(),
                    "/tcpRetryEvents",
                    json!(["connection-reset"]),
                ),
            ),
            "spec.httpRoute.retryPolicy.tcpRetryEvents[0]",
            "unknown variant `connection-reset`",
        ),
        // pattern (the spec has none: the request's client token)
        create(
            "pattern: clientToken characters",
            ROUTES,
            json!({"routeName": "new", "spec": spec, "clientToken": "tok en"}),
            "clientToken",
            "may contain only letters, numbers, hyphens and underscores",
        ),
        // list size
        update(
            "list size: no targets",
            route.clone(),
            with("/httpRoute/action/weightedTargets", json!([])),
            "spec.httpRoute.action.weightedTargets",
            "must contain between 1 and 10 items",
        ),
        update(
            "list size: 11 targets",
            route.clone(),
            with("/httpRoute/action/weightedTargets", json!(targets(11))),
            "spec.httpRoute.action.weightedTargets",
            "must contain between 1 and 10 items",
        ),
        update(
            "list size: 11 headers",
            route.clone(),
            with("/httpRoute/match/headers", json!(headers(11))),
            "spec.httpRoute.match.headers",
            "must contain between 1 and 10 items",
        ),
        update(
            "list size: two tcp retry events",
            route.clone(),
            with(
                "/httpRoute/retryPolicy",
                set(
                    retry.clone(),
                    "/tcpRetryEvents",
                    json!(["connection-error", "connection-error"]),
                ),
            ),
            "spec.httpRoute.retryPolicy.tcpRetryEvents",
            "must contain exactly 1 item(s)",
        ),
        // union ("exactly one")
        update(
            "union: http and tcp route",
            route.clone(),
            with(
                "/tcpRoute",
                json!({"action": {"weightedTargets": [{"virtualNode": "n", "weight": 1}]}}),
            ),
            "spec",
            "exactly one of grpcRoute, http2Route, httpRoute, tcpRoute must be set",
        ),
        update(
            "union: no route at all",
            route.clone(),
            json!({"spec": {"priority": 1}}),
            "spec",
            "exactly one of grpcRoute, http2Route, httpRoute, tcpRoute must be set",
        ),
        update(
            "union: header matched two ways",
            route.clone(),
            with(
                "/httpRoute/match/headers",
                json!([{"name": "h", "match": {"exact": "a", "prefix": "b"}}]),
            ),
            "spec.httpRoute.match.headers[0].match",
            "exactly one of exact, prefix, range, regex, suffix must be set",
        ),
        // required
        create(
            "required: spec",
            ROUTES,
            json!({"routeName": "new"}),
            "spec",
            "must be set",
        ),
        create(
            "required: routeName",
            ROUTES,
            json!({"spec": spec}),
            "routeName",
            "must be set",
        ),
        update(
            "required: match",
            route.clone(),
            json!({"spec": without(spec.clone(), "/httpRoute/match")}),
            "spec.httpRoute",
            "missing field `match`",
        ),
        update(
            "required: weight",
            route.clone(),
            with(
                "/httpRoute/action/weightedTargets/0",
                json!({"virtualNode": "n"}),
            ),
            "spec.httpRoute.action.weightedTargets[0]",
            "missing field `weight`",
        ),
        update(
            "required: maxRetries",
            route.clone(),
            with(
                "/httpRoute/retryPolicy",
                without(retry.clone(), "/maxRetries"),
            ),
            "spec.httpRoute.retryPolicy",
            "missing field `maxRetries`",
        ),
        // unknown field
        create(
            "unknown: top-level member",
            ROUTES,
            json!({"routeName": "new", "spec": spec, "virtualRouterName": "r"}),
            "virtualRouterName",
            "unknown field",
        ),
        update(
            "unknown: match member",
            route.clone(),
            with("/httpRoute/match/host", json!("x")),
            "spec.httpRoute.match.host",
            "unknown field `host`",
        ),
        // wrong JSON type
        update(
            "type: weight a string",
            route.clone(),
            with("/httpRoute/action/weightedTargets/0/weight", json!("1")),
            "spec.httpRoute.action.weightedTargets[0].weight",
            "invalid type: string \"1\"",
        ),
        update(
            "type: target an array",
            route.clone(),
            with("/httpRoute/action/weightedTargets/0", json!([null, "n", 5])),
            "spec.httpRoute.action.weightedTargets[0]",
            "invalid type: sequence, expected a structure",
        ),
        update(
            "type: weight a fraction",
            route.clone(),
            with("/httpRoute/action/weightedTargets/0/weight", json!(0.5)),
            "spec.httpRoute.action.weightedTargets[0].weight",
            "invalid type: floating point",
        ),
        // semantic
        update(
            "semantic: prefix without leading slash",
            route.clone(),
            with("/httpRoute/match/prefix", json!("api")),
            "spec.httpRoute.match.prefix",
            "must start with /",
        ),
        update(
            "semantic: prefix and path",
            route.clone(),
            with("/httpRoute/match/path", json!({"exact": "/a"})),
            "spec.httpRoute.match",
            "exactly one of prefix, path must be set",
        ),
        update(
            "semantic: all weights zero",
            route.clone(),
            with("/httpRoute/action/weightedTargets/0/weight", json!(0)),
            "spec.httpRoute.action.weightedTargets",
            "the weights must add up to more than 0",
        ),
        update(
            "semantic: invalid path regex",
            route.clone(),
            with("/httpRoute/match", json!({"path": {"regex": "(unclosed"}})),
            "spec.httpRoute.match.path.regex",
            "is not a valid regular expression",
        ),
        update(
            "semantic: empty header range",
            route.clone(),
            with(
                "/httpRoute/match/headers",
                json!([{"name": "h", "match": {"range": {"start": 5, "end": 5}}}]),
            ),
            "spec.httpRoute.match.headers[0].match.range",
            "start (5) must be less than end (5)",
        ),
        update(
            "semantic: retry policy without events",
            route.clone(),
            with(
                "/httpRoute/retryPolicy",
                without(retry.clone(), "/httpRetryEvents"),
            ),
            "spec.httpRoute.retryPolicy",
            "must name at least one of httpRetryEvents, tcpRetryEvents",
        ),
        update(
            "semantic: grpc method without service",
            route.clone(),
            grpc(json!({"methodName": "Get"})),
            "spec.grpcRoute.match.serviceName",
            "must be set when methodName is set",
        ),
        update(
            "semantic: port that is no listener port",
            route.clone(),
            with("/httpRoute/match/port", json!(9999)),
            "spec.httpRoute.match.port",
            "port 9999 is not a listener port of virtual router r",
        ),
    ];
    run(&fixture, cases).await;
}

#[tokio::test]
async fn virtual_service_validation_failures() {
    let fixture = Fixture::new().await;
    let service = format!("{SERVICES}/s.local");
    let spec = service_spec();
    let with = |pointer: &str, value: Value| json!({"spec": set(spec.clone(), pointer, value)});
    let cases = vec![
        // length
        update(
            "length: empty provider node",
            service.clone(),
            with("/provider/virtualNode/virtualNodeName", json!("")),
            "spec.provider.virtualNode.virtualNodeName",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: provider router of 256",
            service.clone(),
            json!({"spec": {"provider": {"virtualRouter": {"virtualRouterName": long(256)}}}}),
            "spec.provider.virtualRouter.virtualRouterName",
            "must be between 1 and 255 characters long",
        ),
        create(
            "length: empty virtualServiceName",
            SERVICES,
            json!({"virtualServiceName": "", "spec": spec}),
            "virtualServiceName",
            "must be between 1 and 255 characters long",
        ),
        create(
            "length: virtualServiceName of 256",
            SERVICES,
            json!({"virtualServiceName": long(256), "spec": spec}),
            "virtualServiceName",
            "must be between 1 and 255 characters long",
        ),
        // range (the spec has none: the list's limit)
        get(
            "range: ListVirtualServices limit 0",
            format!("{SERVICES}?limit=0"),
            "limit",
            "must be between 1 and 100",
        ),
        get(
            "range: limit not a number",
            format!("{SERVICES}?limit=ten"),
            "limit",
            "must be a whole number",
        ),
        // pattern (the spec has none: the request's client token)
        update(
            "pattern: clientToken characters",
            service.clone(),
            json!({"spec": spec, "clientToken": "ünïcode"}),
            "clientToken",
            "may contain only letters, numbers, hyphens and underscores",
        ),
        // list size (the spec has none: the request's tags)
        create(
            "list size: 51 tags",
            SERVICES,
            json!({"virtualServiceName": "new.local", "spec": spec, "tags": (0..51).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect::<Vec<_>>()}),
            "tags",
            "must contain at most 50 item(s)",
        ),
        // union
        update(
            "union: node and router provider",
            service.clone(),
            with("/provider/virtualRouter", json!({"virtualRouterName": "r"})),
            "spec.provider",
            "exactly one of virtualNode, virtualRouter must be set",
        ),
        update(
            "union: empty provider",
            service.clone(),
            with("/provider", json!({})),
            "spec.provider",
            "exactly one of virtualNode, virtualRouter must be set",
        ),
        // required
        create(
            "required: spec",
            SERVICES,
            json!({"virtualServiceName": "new.local"}),
            "spec",
            "must be set",
        ),
        create(
            "required: virtualServiceName",
            SERVICES,
            json!({"spec": spec}),
            "virtualServiceName",
            "must be set",
        ),
        update(
            "required: virtualNodeName",
            service.clone(),
            with("/provider/virtualNode", json!({})),
            "spec.provider.virtualNode",
            "missing field `virtualNodeName`",
        ),
        // unknown field
        create(
            "unknown: top-level member",
            SERVICES,
            json!({"virtualServiceName": "new.local", "spec": spec, "virtualNodeName": "n"}),
            "virtualNodeName",
            "unknown field",
        ),
        update(
            "unknown: provider member",
            service.clone(),
            with(
                "/provider/virtualGateway",
                json!({"virtualGatewayName": "g"}),
            ),
            "spec.provider.virtualGateway",
            "unknown field `virtualGateway`",
        ),
        // wrong JSON type
        update(
            "type: provider node an array",
            service.clone(),
            with("/provider/virtualNode", json!(["n"])),
            "spec.provider.virtualNode",
            "invalid type: sequence, expected a structure",
        ),
        update(
            "type: provider a string",
            service.clone(),
            with("/provider", json!("n")),
            "spec.provider",
            "invalid type: string \"n\"",
        ),
    ];
    run(&fixture, cases).await;
}

#[tokio::test]
async fn virtual_gateway_validation_failures() {
    let fixture = Fixture::new().await;
    let gateway = format!("{GATEWAYS}/g");
    let spec = gateway_spec();
    let with = |pointer: &str, value: Value| json!({"spec": set(spec.clone(), pointer, value)});
    let health = json!({"protocol": "http", "path": "/ping", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000});
    let cases = vec![
        // length
        create(
            "length: virtualGatewayName of 256",
            GATEWAYS,
            json!({"virtualGatewayName": long(256), "spec": spec}),
            "virtualGatewayName",
            "must be between 1 and 255 characters long",
        ),
        get(
            "length: virtualGatewayName of 256 in the path",
            format!("{GATEWAYS}/{}", long(256)),
            "virtualGatewayName",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: access log path of 256",
            gateway.clone(),
            with(
                "/logging",
                json!({"accessLog": {"file": {"path": long(256)}}}),
            ),
            "spec.logging.accessLog.file.path",
            "must be between 1 and 255 characters long",
        ),
        // range
        update(
            "range: port 0",
            gateway.clone(),
            with("/listeners/0/portMapping/port", json!(0)),
            "spec.listeners[0].portMapping.port",
            "must be between 1 and 65535",
        ),
        update(
            "range: healthy threshold 1",
            gateway.clone(),
            with(
                "/listeners/0/healthCheck",
                set(health.clone(), "/healthyThreshold", json!(1)),
            ),
            "spec.listeners[0].healthCheck.healthyThreshold",
            "must be between 2 and 10",
        ),
        update(
            "range: health check timeout",
            gateway.clone(),
            with(
                "/listeners/0/healthCheck",
                set(health.clone(), "/timeoutMillis", json!(60001)),
            ),
            "spec.listeners[0].healthCheck.timeoutMillis",
            "must be between 2000 and 60000",
        ),
        update(
            "range: max connections",
            gateway.clone(),
            with(
                "/listeners/0/connectionPool",
                json!({"http": {"maxConnections": 0}}),
            ),
            "spec.listeners[0].connectionPool.http.maxConnections",
            "must be between 1 and 4294967295",
        ),
        // enum
        update(
            "enum: tcp is no gateway protocol",
            gateway.clone(),
            with("/listeners/0/portMapping/protocol", json!("tcp")),
            "spec.listeners[0].portMapping.protocol",
            "unknown variant `tcp`",
        ),
        update(
            "enum: tls mode",
            gateway.clone(),
            with(
                "/listeners/0/tls",
                json!({"mode": "ON", "certificate": {"file": {"certificateChain": "/c", "privateKey": "/k"}}}),
            ),
            "spec.listeners[0].tls.mode",
            "unknown variant `ON`",
        ),
        // pattern (the spec has none: the request's client token)
        create(
            "pattern: clientToken characters",
            GATEWAYS,
            json!({"virtualGatewayName": "new", "spec": spec, "clientToken": "x.y"}),
            "clientToken",
            "may contain only letters, numbers, hyphens and underscores",
        ),
        // list size
        update(
            "list size: four certificate authorities",
            gateway.clone(),
            with(
                "/backendDefaults",
                json!({"clientPolicy": {"tls": {"validation": {"trust": {"acm": {"certificateAuthorityArns": ["a", "b", "c", "d"]}}}}}}),
            ),
            "spec.backendDefaults.clientPolicy.tls.validation.trust.acm.certificateAuthorityArns",
            "must contain between 1 and 3 items",
        ),
        // union
        update(
            "union: empty connection pool",
            gateway.clone(),
            with("/listeners/0/connectionPool", json!({})),
            "spec.listeners[0].connectionPool",
            "exactly one of grpc, http, http2 must be set",
        ),
        update(
            "union: two tls certificates",
            gateway.clone(),
            with(
                "/listeners/0/tls",
                json!({"mode": "STRICT", "certificate": {"file": {"certificateChain": "/c", "privateKey": "/k"}, "sds": {"secretName": "s"}}}),
            ),
            "spec.listeners[0].tls.certificate",
            "exactly one of acm, file, sds must be set",
        ),
        update(
            "union: empty access log",
            gateway.clone(),
            with("/logging", json!({"accessLog": {}})),
            "spec.logging.accessLog",
            "exactly one of file must be set",
        ),
        // required
        create(
            "required: spec",
            GATEWAYS,
            json!({"virtualGatewayName": "new"}),
            "spec",
            "must be set",
        ),
        update(
            "required: listeners",
            gateway.clone(),
            json!({"spec": {}}),
            "spec",
            "missing field `listeners`",
        ),
        update(
            "required: health check protocol",
            gateway.clone(),
            with(
                "/listeners/0/healthCheck",
                without(health.clone(), "/protocol"),
            ),
            "spec.listeners[0].healthCheck",
            "missing field `protocol`",
        ),
        // unknown field
        create(
            "unknown: top-level member",
            GATEWAYS,
            json!({"virtualGatewayName": "new", "spec": spec, "gatewayRouteName": "x"}),
            "gatewayRouteName",
            "unknown field",
        ),
        update(
            "unknown: listener member",
            gateway.clone(),
            with("/listeners/0/outlierDetection", json!({})),
            "spec.listeners[0].outlierDetection",
            "unknown field `outlierDetection`",
        ),
        // wrong JSON type
        update(
            "type: spec an array",
            gateway.clone(),
            json!({"spec": [null, [{"portMapping": {"port": 8080, "protocol": "http2"}}]]}),
            "spec",
            "invalid type: sequence, expected a structure",
        ),
        update(
            "type: port a boolean",
            gateway.clone(),
            with("/listeners/0/portMapping/port", json!(true)),
            "spec.listeners[0].portMapping.port",
            "invalid type: boolean `true`",
        ),
        // semantic
        update(
            "semantic: no listeners",
            gateway.clone(),
            with("/listeners", json!([])),
            "spec.listeners",
            "must contain at least 1 item(s)",
        ),
        update(
            "semantic: duplicate listener port",
            gateway.clone(),
            with(
                "/listeners/1",
                json!({"portMapping": {"port": 8080, "protocol": "grpc"}}),
            ),
            "spec.listeners[1].portMapping.port",
            "port 8080 is already used by another listener",
        ),
        update(
            "semantic: http health check without path",
            gateway.clone(),
            with("/listeners/0/healthCheck", without(health.clone(), "/path")),
            "spec.listeners[0].healthCheck.path",
            "must be set when the health check protocol is http or http2",
        ),
        update(
            "semantic: connection pool of another protocol",
            gateway.clone(),
            with(
                "/listeners/0/connectionPool",
                json!({"grpc": {"maxRequests": 1}}),
            ),
            "spec.listeners[0].connectionPool",
            "must be the http connection pool",
        ),
        update(
            "semantic: a second listener while gateway route gr names no port",
            gateway.clone(),
            with(
                "/listeners/1",
                json!({"portMapping": {"port": 9090, "protocol": "http"}}),
            ),
            "spec.listeners",
            "gateway route gr must name one of these listener ports",
        ),
    ];
    run(&fixture, cases).await;
}

#[tokio::test]
async fn gateway_route_validation_failures() {
    let fixture = Fixture::new().await;
    let route = format!("{GATEWAY_ROUTES}/gr");
    let spec = gateway_route_spec();
    let with = |pointer: &str, value: Value| json!({"spec": set(spec.clone(), pointer, value)});
    let cases = vec![
        // length
        create(
            "length: gatewayRouteName of 256",
            GATEWAY_ROUTES,
            json!({"gatewayRouteName": long(256), "spec": spec}),
            "gatewayRouteName",
            "must be between 1 and 255 characters long",
        ),
        case(
            "length: gatewayRouteName of 256 in the path",
            reqwest::Method::DELETE,
            format!("{GATEWAY_ROUTES}/{}", long(256)),
            Body::None,
            "gatewayRouteName",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: empty target service",
            route.clone(),
            with(
                "/httpRoute/action/target/virtualService/virtualServiceName",
                json!(""),
            ),
            "spec.httpRoute.action.target.virtualService.virtualServiceName",
            "must be between 1 and 255 characters long",
        ),
        update(
            "length: hostname of 254",
            route.clone(),
            with("/httpRoute/match/hostname", json!({"exact": long(254)})),
            "spec.httpRoute.match.hostname.exact",
            "must be between 1 and 253 characters long",
        ),
        // range
        update(
            "range: priority -1",
            route.clone(),
            with("/priority", json!(-1)),
            "spec.priority",
            "must be between 0 and 1000",
        ),
        update(
            "range: match port 70000",
            route.clone(),
            with("/httpRoute/match/port", json!(70000)),
            "spec.httpRoute.match.port",
            "must be between 1 and 65535",
        ),
        update(
            "range: target port 0",
            route.clone(),
            with("/httpRoute/action/target/port", json!(0)),
            "spec.httpRoute.action.target.port",
            "must be between 1 and 65535",
        ),
        // enum
        update(
            "enum: method",
            route.clone(),
            with("/httpRoute/match/method", json!("get")),
            "spec.httpRoute.match.method",
            "unknown variant `get`",
        ),
        update(
            "enum: hostname rewrite",
            route.clone(),
            with(
                "/httpRoute/action/rewrite",
                json!({"hostname": {"defaultTargetHostname": "MAYBE"}}),
            ),
            "spec.httpRoute.action.rewrite.hostname.defaultTargetHostname",
            "unknown variant `MAYBE`",
        ),
        // pattern (the spec has none: the request's client token)
        update(
            "pattern: clientToken characters",
            route.clone(),
            json!({"spec": spec, "clientToken": "a=b"}),
            "clientToken",
            "may contain only letters, numbers, hyphens and underscores",
        ),
        // list size
        update(
            "list size: no headers",
            route.clone(),
            with("/httpRoute/match/headers", json!([])),
            "spec.httpRoute.match.headers",
            "must contain between 1 and 10 items",
        ),
        update(
            "list size: 11 query parameters",
            route.clone(),
            with(
                "/httpRoute/match/queryParameters",
                json!(
                    (0..11)
                        .map(|i| json!({"name": format!("q{i}")}))
                        .collect::<Vec<_>>()
                ),
            ),
            "spec.httpRoute.match.queryParameters",
            "must contain between 1 and 10 items",
        ),
        // union
        update(
            "union: http and grpc route",
            route.clone(),
            with(
                "/grpcRoute",
                json!({"match": {"serviceName": "x"}, "action": {"target": {"virtualService": {"virtualServiceName": "s.local"}}}}),
            ),
            "spec",
            "exactly one of grpcRoute, http2Route, httpRoute must be set",
        ),
        update(
            "union: header matched no way",
            route.clone(),
            with(
                "/httpRoute/match/headers",
                json!([{"name": "h", "match": {}}]),
            ),
            "spec.httpRoute.match.headers[0].match",
            "exactly one of exact, prefix, range, regex, suffix must be set",
        ),
        // required
        create(
            "required: spec",
            GATEWAY_ROUTES,
            json!({"gatewayRouteName": "new"}),
            "spec",
            "must be set",
        ),
        update(
            "required: target",
            route.clone(),
            with("/httpRoute/action", json!({})),
            "spec.httpRoute.action",
            "missing field `target`",
        ),
        update(
            "required: virtualService",
            route.clone(),
            with("/httpRoute/action/target", json!({"port": 8080})),
            "spec.httpRoute.action.target",
            "missing field `virtualService`",
        ),
        // unknown field
        create(
            "unknown: top-level member",
            GATEWAY_ROUTES,
            json!({"gatewayRouteName": "new", "spec": spec, "meshName": "m"}),
            "meshName",
            "unknown field",
        ),
        update(
            "unknown: target member",
            route.clone(),
            with(
                "/httpRoute/action/target/virtualNode",
                json!({"virtualNodeName": "n"}),
            ),
            "spec.httpRoute.action.target.virtualNode",
            "unknown field `virtualNode`",
        ),
        // wrong JSON type
        update(
            "type: target service an array",
            route.clone(),
            with(
                "/httpRoute/action/target/virtualService",
                json!(["s.local"]),
            ),
            "spec.httpRoute.action.target.virtualService",
            "invalid type: sequence, expected a structure",
        ),
        update(
            "type: priority a string",
            route.clone(),
            with("/priority", json!("high")),
            "spec.priority",
            "invalid type: string \"high\"",
        ),
        // semantic
        update(
            "semantic: prefix without leading slash",
            route.clone(),
            with("/httpRoute/match/prefix", json!("api/")),
            "spec.httpRoute.match.prefix",
            "must start with /",
        ),
        update(
            "semantic: hostname exact and suffix",
            route.clone(),
            with(
                "/httpRoute/match/hostname",
                json!({"exact": "a.example.com", "suffix": ".example.com"}),
            ),
            "spec.httpRoute.match.hostname",
            "exactly one of exact, suffix must be set",
        ),
        update(
            "semantic: prefix rewrite of a path match",
            route.clone(),
            json!({"spec": {"httpRoute": {"match": {"path": {"exact": "/a"}}, "action": {"target": {"virtualService": {"virtualServiceName": "s.local"}}, "rewrite": {"prefix": {"value": "/b"}}}}}}),
            "spec.httpRoute.action.rewrite.prefix",
            "can only be used with a prefix match",
        ),
        update(
            "semantic: port that is no listener port",
            route.clone(),
            with("/httpRoute/match/port", json!(9999)),
            "spec.httpRoute.match.port",
            "port 9999 is not a listener port of virtual gateway g",
        ),
    ];
    run(&fixture, cases).await;
}

#[tokio::test]
async fn tag_validation_failures() {
    let fixture = Fixture::new().await;
    let mesh_arn = encode(&common::arn("mesh/m"));
    let tag_path = format!("{API}/tag?resourceArn={mesh_arn}");
    let untag_path = format!("{API}/untag?resourceArn={mesh_arn}");
    let tag = |body: Value| (tag_path.clone(), body);
    let put =
        |what: &str, (path, body): (String, Value), field: &'static str, detail: &'static str| {
            case(
                what,
                reqwest::Method::PUT,
                path,
                Body::Json(body),
                field,
                detail,
            )
        };
    let cases = vec![
        // length
        put(
            "length: empty key",
            tag(json!({"tags": [{"key": "", "value": "v"}]})),
            "tags[0].key",
            "must be between 1 and 128 characters long",
        ),
        put(
            "length: key of 129",
            tag(json!({"tags": [{"key": "a", "value": "v"}, {"key": long(129), "value": "v"}]})),
            "tags[1].key",
            "must be between 1 and 128 characters long",
        ),
        put(
            "length: value of 257",
            tag(json!({"tags": [{"key": "k", "value": long(257)}]})),
            "tags[0].value",
            "must be at most 256 characters long",
        ),
        put(
            "length: empty tag key to remove",
            (untag_path.clone(), json!({"tagKeys": [""]})),
            "tagKeys[0]",
            "must be between 1 and 128 characters long",
        ),
        create(
            "length: tag key at create",
            NODES,
            json!({"virtualNodeName": "new", "spec": node_spec(), "tags": [{"key": long(129), "value": "v"}]}),
            "tags[0].key",
            "must be between 1 and 128 characters long",
        ),
        // range
        get(
            "range: ListTagsForResource limit 51",
            format!("{API}/tags?resourceArn={mesh_arn}&limit=51"),
            "limit",
            "must be between 1 and 50",
        ),
        get(
            "range: ListTagsForResource limit 0",
            format!("{API}/tags?resourceArn={mesh_arn}&limit=0"),
            "limit",
            "must be between 1 and 50",
        ),
        // list size
        put(
            "list size: 51 keys to remove",
            (
                untag_path.clone(),
                json!({"tagKeys": (0..51).map(|i| format!("k{i}")).collect::<Vec<_>>()}),
            ),
            "tagKeys",
            "must contain at most 50 item(s)",
        ),
        create(
            "list size: 51 tags at create",
            GATEWAYS,
            json!({"virtualGatewayName": "new", "spec": gateway_spec(), "tags": (0..51).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect::<Vec<_>>()}),
            "tags",
            "must contain at most 50 item(s)",
        ),
        // required
        put("required: tags", tag(json!({})), "tags", "must be set"),
        put(
            "required: tagKeys",
            (untag_path.clone(), json!({})),
            "tagKeys",
            "must be set",
        ),
        put(
            "required: tag value",
            tag(json!({"tags": [{"key": "k"}]})),
            "tags[0]",
            "missing field `value`",
        ),
        put(
            "required: resourceArn",
            (format!("{API}/tag"), json!({"tags": []})),
            "resourceArn",
            "must be set",
        ),
        get(
            "required: resourceArn to list",
            format!("{API}/tags"),
            "resourceArn",
            "must be set",
        ),
        // unknown field
        put(
            "unknown: top-level member",
            tag(json!({"tags": [], "resourceArn": "x"})),
            "resourceArn",
            "unknown field",
        ),
        put(
            "unknown: tag member",
            tag(json!({"tags": [{"key": "k", "value": "v", "type": "x"}]})),
            "tags[0].type",
            "unknown field `type`",
        ),
        // wrong JSON type
        put(
            "type: tags an object",
            tag(json!({"tags": {"k": "v"}})),
            "tags",
            "invalid type: map",
        ),
        put(
            "type: tag an array",
            tag(json!({"tags": [["k", "v"]]})),
            "tags[0]",
            "invalid type: sequence, expected a structure",
        ),
        put(
            "type: tag value a number",
            tag(json!({"tags": [{"key": "k", "value": 1}]})),
            "tags[0].value",
            "invalid type: integer `1`",
        ),
    ];
    run(&fixture, cases).await;
}

/// Bodies that are not JSON objects at all carry no field path; they are refused the
/// same way and change nothing.
#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let fixture = Fixture::new().await;
    let mut failures = Vec::new();
    let state = fixture.state().await;
    let cases = [
        (
            MESHES.to_string(),
            "{\"meshName\": ",
            "the request body is not valid JSON",
        ),
        (
            format!("{NODES}/n"),
            "[1, 2]",
            "the request body must be a JSON object",
        ),
        (
            ROUTES.to_string(),
            "\"rt\"",
            "the request body must be a JSON object",
        ),
        (
            format!("{API}/tag?resourceArn={}", encode(&common::arn("mesh/m"))),
            "tags",
            "the request body is not valid JSON",
        ),
        // Duplicate keys: the last one would silently win.
        (
            MESHES.to_string(),
            r#"{"meshName": "a", "meshName": "b"}"#,
            "meshName: duplicate member",
        ),
        (
            format!("{NODES}/n"),
            r#"{"spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http", "port": 9090}}], "serviceDiscovery": {"dns": {"hostname": "n.local"}}}}"#,
            "spec.listeners[0].portMapping.port: duplicate member",
        ),
        (
            format!("{NODES}/n"),
            r#"{"spec": {"serviceDiscovery": {"dns": {"hostname": "n.local"}}, "serviceDiscovery": {}}}"#,
            "spec.serviceDiscovery: duplicate member",
        ),
    ];
    for (path, body, detail) in cases {
        let response = fixture
            .http
            .put(format!("{}{path}", fixture.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let error_type = response.headers().get("x-amzn-errortype").cloned();
        let reply: Value = response.json().await.unwrap();
        let message = reply["message"].as_str().unwrap_or_default();
        if status != 400
            || error_type
                .as_ref()
                .is_none_or(|value| value != "BadRequestException")
            || !message.starts_with(detail)
        {
            failures.push(format!(
                "PUT {path} {body:?}: {status} {error_type:?} {reply}"
            ));
        }
    }
    assert_eq!(fixture.state().await, state, "the store is unchanged");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The raw-body case kind is exercised through `run` as well.
    run(
        &fixture,
        vec![case(
            "malformed: spec member not JSON-typed",
            reqwest::Method::PUT,
            format!("{NODES}/n"),
            Body::Raw("{\"spec\": {\"listeners\": [{\"portMapping\": {\"port\": 8080.5, \"protocol\": \"http\"}}]}}"),
            "spec.listeners[0].portMapping.port",
            "invalid type: floating point",
        )],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Through the SDK
// ---------------------------------------------------------------------------------------

/// Checks an SDK error is a `BadRequestException` (400, header) whose message reads
/// `{field}: …{detail}…`.
#[track_caller]
fn expect_bad_request<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E, HttpResponse>>,
    field: &str,
    detail: &str,
) {
    let err = match result {
        Ok(value) => {
            panic!("expected a BadRequestException at {field}, but the call succeeded: {value:?}")
        }
        Err(err) => err,
    };
    let raw = err
        .raw_response()
        .unwrap_or_else(|| panic!("no response: {err:?}"));
    assert_eq!(raw.status().as_u16(), 400, "{err:?}");
    assert_eq!(
        raw.headers().get("x-amzn-errortype"),
        Some("BadRequestException"),
        "{err:?}"
    );
    let service = match err {
        SdkError::ServiceError(context) => context.into_err(),
        other => panic!("expected a service error, got {other:?}"),
    };
    assert_eq!(service.code(), Some("BadRequestException"));
    let message = service.message().unwrap_or_default();
    assert!(
        message.starts_with(&format!("{field}: ")) && message.contains(detail),
        "message {message:?} should read \"{field}: …{detail}…\""
    );
}

#[tokio::test]
async fn sdk_validation_failures_leave_the_store_unchanged() {
    let fixture = Fixture::new().await;
    let client = common::sdk_client(fixture.server.api_addr);
    let state = fixture.state().await;

    // Mesh: a name that is too long.
    expect_bad_request(
        client.create_mesh().mesh_name(long(256)).send().await,
        "meshName",
        "must be between 1 and 255 characters long",
    );
    // Virtual node: a port out of range.
    let listener = |port: i32, protocol: PortProtocol| {
        Listener::builder()
            .port_mapping(
                PortMapping::builder()
                    .port(port)
                    .protocol(protocol)
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let dns = ServiceDiscovery::Dns(
        DnsServiceDiscovery::builder()
            .hostname("n.local")
            .build()
            .unwrap(),
    );
    expect_bad_request(
        client
            .update_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .spec(
                VirtualNodeSpec::builder()
                    .listeners(listener(65536, PortProtocol::Http))
                    .service_discovery(dns.clone())
                    .build(),
            )
            .send()
            .await,
        "spec.listeners[0].portMapping.port",
        "must be between 1 and 65535",
    );
    // Virtual node: a listener but no service discovery.
    expect_bad_request(
        client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("new")
            .spec(
                VirtualNodeSpec::builder()
                    .listeners(listener(80, PortProtocol::Tcp))
                    .build(),
            )
            .send()
            .await,
        "spec.serviceDiscovery",
        "must be set when the virtual node has a listener",
    );
    // Virtual router: a protocol outside the enum.
    expect_bad_request(
        client
            .update_virtual_router()
            .mesh_name("m")
            .virtual_router_name("r")
            .spec(
                VirtualRouterSpec::builder()
                    .listeners(
                        VirtualRouterListener::builder()
                            .port_mapping(
                                PortMapping::builder()
                                    .port(8080)
                                    .protocol(PortProtocol::from("udp"))
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await,
        "spec.listeners[0].portMapping.protocol",
        "unknown variant `udp`",
    );
    // Route: a weight out of range, and a route without any route kind.
    let targets = |weight: i32| {
        HttpRouteAction::builder()
            .weighted_targets(
                WeightedTarget::builder()
                    .virtual_node("n")
                    .weight(weight)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    expect_bad_request(
        client
            .update_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name("rt")
            .spec(
                RouteSpec::builder()
                    .http_route(
                        HttpRoute::builder()
                            .r#match(HttpRouteMatch::builder().prefix("/").build())
                            .action(targets(101))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await,
        "spec.httpRoute.action.weightedTargets[0].weight",
        "must be between 0 and 100",
    );
    expect_bad_request(
        client
            .create_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name("new")
            .spec(RouteSpec::builder().priority(1).build())
            .send()
            .await,
        "spec",
        "exactly one of grpcRoute, http2Route, httpRoute, tcpRoute must be set",
    );
    // Route: a required structure left out (the SDK's builders allow it).
    expect_bad_request(
        client
            .update_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name("rt")
            .spec(
                RouteSpec::builder()
                    .http_route(HttpRoute::builder().action(targets(1)).build())
                    .build(),
            )
            .send()
            .await,
        "spec.httpRoute",
        "missing field `match`",
    );
    // Virtual service: an empty provider name.
    expect_bad_request(
        client
            .update_virtual_service()
            .mesh_name("m")
            .virtual_service_name("s.local")
            .spec(
                VirtualServiceSpec::builder()
                    .provider(VirtualServiceProvider::VirtualNode(
                        VirtualNodeServiceProvider::builder()
                            .virtual_node_name("")
                            .build()
                            .unwrap(),
                    ))
                    .build(),
            )
            .send()
            .await,
        "spec.provider.virtualNode.virtualNodeName",
        "must be between 1 and 255 characters long",
    );
    // Virtual gateway: tcp is not a gateway protocol.
    expect_bad_request(
        client
            .update_virtual_gateway()
            .mesh_name("m")
            .virtual_gateway_name("g")
            .spec(
                VirtualGatewaySpec::builder()
                    .listeners(
                        VirtualGatewayListener::builder()
                            .port_mapping(
                                VirtualGatewayPortMapping::builder()
                                    .port(8080)
                                    .protocol(VirtualGatewayPortProtocol::from("tcp"))
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
        "spec.listeners[0].portMapping.protocol",
        "unknown variant `tcp`",
    );
    // Gateway route: a priority out of range.
    expect_bad_request(
        client
            .update_gateway_route()
            .mesh_name("m")
            .virtual_gateway_name("g")
            .gateway_route_name("gr")
            .spec(
                GatewayRouteSpec::builder()
                    .priority(1001)
                    .http_route(
                        HttpGatewayRoute::builder()
                            .r#match(HttpGatewayRouteMatch::builder().prefix("/").build())
                            .action(
                                HttpGatewayRouteAction::builder()
                                    .target(
                                        GatewayRouteTarget::builder()
                                            .virtual_service(
                                                GatewayRouteVirtualService::builder()
                                                    .virtual_service_name("s.local")
                                                    .build()
                                                    .unwrap(),
                                            )
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await,
        "spec.priority",
        "must be between 0 and 1000",
    );
    // Tags: a key that is too long, and too many keys to remove.
    expect_bad_request(
        client
            .tag_resource()
            .resource_arn(common::arn("mesh/m"))
            .tags(TagRef::builder().key(long(129)).value("v").build().unwrap())
            .send()
            .await,
        "tags[0].key",
        "must be between 1 and 128 characters long",
    );
    expect_bad_request(
        client
            .untag_resource()
            .resource_arn(common::arn("mesh/m"))
            .set_tag_keys(Some((0..51).map(|i| format!("k{i}")).collect()))
            .send()
            .await,
        "tagKeys",
        "must contain at most 50 item(s)",
    );

    assert_eq!(fixture.state().await, state, "the store is unchanged");
    let node = common::sdk::describe_node(&client, "m", "n").await;
    assert_eq!(
        node.metadata.unwrap().version,
        1,
        "refused updates leave the version alone"
    );
}

/// The strings bounded beyond the model still take every value of their meaning: DNS
/// names with `_` and a trailing dot, IPv4 and IPv6 addresses, 253-character names.
#[tokio::test]
async fn bounded_strings_accept_what_they_mean() {
    let fixture = Fixture::new().await;
    let longest = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(longest.len(), 253);
    for hostname in [
        "10.0.0.7",
        "fd00::7",
        "_srv._tcp.web.local.",
        "x",
        longest.as_str(),
    ] {
        let spec = set(
            node_spec(),
            "/serviceDiscovery/dns/hostname",
            json!(hostname),
        );
        let response = fixture
            .http
            .put(format!("{}{NODES}/n", fixture.base))
            .json(&json!({"spec": spec}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "hostname {hostname:?}: {body}");
    }
}
