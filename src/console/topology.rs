//! A mesh's topology as the console draws it: gateways → gateway routes → virtual
//! services → routers → routes → nodes, with the matches and weights on the edges and
//! each node's backends, read from the specs as the API renders them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Resource, ResourceKind, Spec};
use crate::store::Snapshot;

/// The columns of the graph, left to right.
pub const COLUMNS: [ResourceKind; 6] = [
    ResourceKind::VirtualGateway,
    ResourceKind::GatewayRoute,
    ResourceKind::VirtualService,
    ResourceKind::VirtualRouter,
    ResourceKind::Route,
    ResourceKind::VirtualNode,
];

/// One box of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// Its column (an index into [`COLUMNS`]).
    pub column: usize,
    /// Its name (`router/route` for routes and gateway routes).
    pub name: String,
    /// Its ARN path, for the link to its page.
    pub arn: String,
    /// A line under the name: a node's backends, nothing else.
    pub detail: Option<String>,
}

/// One arrow of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The vertex it starts at (an index into [`Topology::vertices`]).
    pub from: usize,
    /// The vertex it ends at.
    pub to: usize,
    /// A match, a weight, or nothing.
    pub label: String,
}

/// A mesh's graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Every box, column by column, by name within a column.
    pub vertices: Vec<Vertex>,
    /// Every arrow.
    pub edges: Vec<Edge>,
}

/// A spec as the API renders it (the store keeps it tagged with its kind).
fn spec_json(spec: &Spec) -> Value {
    serde_json::to_value(spec)
        .map(|mut tagged| tagged["spec"].take())
        .unwrap_or(Value::Null)
}

/// The route kinds of route and gateway route specs.
const ROUTE_KINDS: [(&str, &str); 4] = [
    ("httpRoute", "http"),
    ("http2Route", "http2"),
    ("grpcRoute", "grpc"),
    ("tcpRoute", "tcp"),
];

/// The route of a route or gateway route spec: its protocol and its body.
fn route_body(spec: &Value) -> Option<(&'static str, &Value)> {
    ROUTE_KINDS
        .iter()
        .find_map(|(field, protocol)| spec.get(*field).map(|body| (*protocol, body)))
}

/// A match as text: `http prefix /api`, `grpc service a.B method Get`, `tcp`.
fn match_text(protocol: &str, body: &Value) -> String {
    let mut parts = vec![protocol.to_string()];
    let Some(m) = body.get("match") else {
        return protocol.to_string();
    };
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    if let Some(prefix) = m.get("prefix") {
        parts.push(format!("prefix {}", text(prefix)));
    }
    if let Some(path) = m.get("path") {
        for (how, value) in path.as_object().into_iter().flatten() {
            parts.push(format!("path {how} {}", text(value)));
        }
    }
    if let Some(hostname) = m.get("hostname") {
        for (how, value) in hostname.as_object().into_iter().flatten() {
            parts.push(format!("host {how} {}", text(value)));
        }
    }
    for (field, words) in [
        ("method", "method"),
        ("serviceName", "service"),
        ("methodName", "method"),
        ("port", "port"),
    ] {
        if let Some(value) = m.get(field) {
            parts.push(format!("{words} {}", text(value)));
        }
    }
    for (field, words) in [
        ("headers", "header match"),
        ("metadata", "metadata match"),
        ("queryParameters", "query match"),
    ] {
        if let Some(list) = m.get(field).and_then(Value::as_array) {
            parts.push(format!("{} {words}(es)", list.len()));
        }
    }
    parts.join(" ")
}

/// The name a route or gateway route is shown under: `parent/name`.
fn shown_name(resource: &Resource) -> String {
    match resource.key.kind {
        ResourceKind::Route | ResourceKind::GatewayRoute => {
            format!("{}/{}", resource.key.parent, resource.key.name)
        }
        _ => resource.key.name.clone(),
    }
}

impl Topology {
    /// The topology of `mesh` in `snapshot` (empty if there is no such mesh).
    pub fn of(snapshot: &Snapshot, mesh: &str) -> Topology {
        let mut topology = Topology::default();
        let mut index: BTreeMap<(usize, String), usize> = BTreeMap::new();
        let mut members: Vec<&Resource> = Vec::new();
        for (column, kind) in COLUMNS.iter().enumerate() {
            let mut of_kind: Vec<&Resource> = snapshot
                .iter()
                .filter(|r| r.key.mesh == mesh && r.key.kind == *kind)
                .map(|r| r.as_ref())
                .collect();
            of_kind.sort_by_key(|r| shown_name(r));
            for resource in of_kind {
                let detail = (*kind == ResourceKind::VirtualNode).then(|| backends(resource));
                index.insert((column, shown_name(resource)), topology.vertices.len());
                topology.vertices.push(Vertex {
                    column,
                    name: shown_name(resource),
                    arn: resource.key.arn_resource(),
                    detail,
                });
                members.push(resource);
            }
        }
        let column_of = |kind: ResourceKind| COLUMNS.iter().position(|k| *k == kind).unwrap_or(0);
        let find = |kind: ResourceKind, name: &str| index.get(&(column_of(kind), name.to_string()));
        for (at, resource) in members.iter().enumerate() {
            let spec = spec_json(&resource.spec);
            let mut edge = |from: Option<&usize>, to: Option<&usize>, label: String| {
                if let (Some(&from), Some(&to)) = (from, to) {
                    topology.edges.push(Edge { from, to, label });
                }
            };
            match resource.key.kind {
                ResourceKind::VirtualGateway | ResourceKind::VirtualRouter => {}
                ResourceKind::GatewayRoute => {
                    // gateway → gateway route, gateway route → its virtual service.
                    edge(
                        find(ResourceKind::VirtualGateway, &resource.key.parent),
                        Some(&at),
                        String::new(),
                    );
                    if let Some((protocol, body)) = route_body(&spec) {
                        let service = body
                            .pointer("/action/target/virtualService/virtualServiceName")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        edge(
                            Some(&at),
                            find(ResourceKind::VirtualService, service),
                            match_text(protocol, body),
                        );
                    }
                }
                ResourceKind::VirtualService => {
                    let provider = spec.get("provider");
                    let router = provider
                        .and_then(|p| p.pointer("/virtualRouter/virtualRouterName"))
                        .and_then(Value::as_str);
                    let node = provider
                        .and_then(|p| p.pointer("/virtualNode/virtualNodeName"))
                        .and_then(Value::as_str);
                    if let Some(router) = router {
                        edge(
                            Some(&at),
                            find(ResourceKind::VirtualRouter, router),
                            String::new(),
                        );
                    }
                    if let Some(node) = node {
                        edge(
                            Some(&at),
                            find(ResourceKind::VirtualNode, node),
                            String::new(),
                        );
                    }
                }
                ResourceKind::Route => {
                    // router → route (labelled with the match), route → its targets.
                    let body = route_body(&spec);
                    edge(
                        find(ResourceKind::VirtualRouter, &resource.key.parent),
                        Some(&at),
                        body.map(|(protocol, body)| match_text(protocol, body))
                            .unwrap_or_default(),
                    );
                    let targets = body
                        .and_then(|(_, body)| body.pointer("/action/weightedTargets"))
                        .and_then(Value::as_array);
                    for target in targets.into_iter().flatten() {
                        let node = target["virtualNode"].as_str().unwrap_or_default();
                        let mut label = format!("weight {}", target["weight"]);
                        if let Some(port) = target.get("port") {
                            label.push_str(&format!(" port {port}"));
                        }
                        edge(Some(&at), find(ResourceKind::VirtualNode, node), label);
                    }
                }
                _ => {}
            }
        }
        topology
    }
}

/// A node's backends as text: `backends: a.local, b.local` or `no backends`.
fn backends(resource: &Resource) -> String {
    let spec = spec_json(&resource.spec);
    let names: Vec<&str> = spec["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b.pointer("/virtualService/virtualServiceName"))
        .filter_map(Value::as_str)
        .collect();
    if names.is_empty() {
        "no backends".into()
    } else {
        format!("backends: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_router_splits_between_its_targets_by_weight() {
        let store = Store::in_memory(Default::default());
        crate::definition::load(
            &store,
            &serde_json::json!([
                {"meshName": "m", "spec": {}},
                {"meshName": "m", "virtualNodeName": "blue", "spec": {
                    "backends": [{"virtualService": {"virtualServiceName": "db.local"}}]}},
                {"meshName": "m", "virtualNodeName": "green", "spec": {}},
                {"meshName": "m", "virtualRouterName": "r", "spec": {
                    "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}]}},
                {"meshName": "m", "virtualRouterName": "r", "routeName": "split", "spec": {
                    "httpRoute": {"match": {"prefix": "/api"}, "action": {"weightedTargets": [
                        {"virtualNode": "blue", "weight": 3},
                        {"virtualNode": "green", "weight": 1}]}}}},
                {"meshName": "m", "virtualServiceName": "api.local", "spec": {
                    "provider": {"virtualRouter": {"virtualRouterName": "r"}}}},
                {"meshName": "m", "virtualGatewayName": "gw", "spec": {
                    "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}},
                {"meshName": "m", "virtualGatewayName": "gw", "gatewayRouteName": "to-api",
                    "spec": {"httpRoute": {"match": {"prefix": "/shop"}, "action": {
                        "target": {"virtualService": {"virtualServiceName": "api.local"}}}}}},
            ]),
        )
        .unwrap();
        let topology = Topology::of(&store.snapshot(), "m");
        let named = |i: usize| topology.vertices[i].name.as_str();
        let edges: Vec<(&str, &str, &str)> = topology
            .edges
            .iter()
            .map(|e| (named(e.from), named(e.to), e.label.as_str()))
            .collect();
        assert_eq!(
            edges,
            [
                ("gw", "gw/to-api", ""),
                ("gw/to-api", "api.local", "http prefix /shop"),
                ("api.local", "r", ""),
                ("r", "r/split", "http prefix /api"),
                ("r/split", "blue", "weight 3"),
                ("r/split", "green", "weight 1"),
            ]
        );
        let blue = topology.vertices.iter().find(|v| v.name == "blue").unwrap();
        assert_eq!(blue.detail.as_deref(), Some("backends: db.local"));
    }
}
