//! Envoy's JSON form of compiled configuration, for people (`meshd compile`), for golden
//! tests, and for a static bootstrap that `envoy --mode validate` can check.
//!
//! Protobuf messages are turned into JSON through their descriptors (compiled from the
//! Envoy protos at build time), so typed `Any`s are expanded with their `@type`.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Map, Value, json};

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

use super::output::ProxyConfig;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("the build script writes a valid descriptor set")
    })
}

/// `message` (of protobuf type `full_name`) as Envoy's JSON, with snake_case field names
/// as Envoy's own config dumps use.
pub fn message_json<M: Message>(full_name: &str, message: &M) -> Value {
    let descriptor = pool()
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is in the descriptor set; this is a bug"));
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message decodes with its own descriptor");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("dynamic messages serialise to JSON")
}

/// The whole configuration as JSON: `listeners`, `clusters`, `route_configs`,
/// `endpoints` (each in name order) and `diagnostics`.
pub fn config_json(config: &ProxyConfig) -> Value {
    json!({
        "listeners": config.listeners.values().map(|l| message_json("envoy.config.listener.v3.Listener", l.as_ref())).collect::<Vec<_>>(),
        "clusters": config.clusters.values().map(|c| message_json("envoy.config.cluster.v3.Cluster", c.as_ref())).collect::<Vec<_>>(),
        "route_configs": config.route_configs.values().map(|r| message_json("envoy.config.route.v3.RouteConfiguration", r.as_ref())).collect::<Vec<_>>(),
        "endpoints": config.endpoints.values().map(|e| message_json("envoy.config.endpoint.v3.ClusterLoadAssignment", e)).collect::<Vec<_>>(),
        "diagnostics": config.diagnostics,
    })
}

/// A static Envoy bootstrap holding the whole configuration, for `envoy --mode validate`:
/// route configurations are put inline where connection managers name them, EDS
/// clusters take their assignment inline, and the secrets served over ADS are static
/// secrets (`secrets`: what the certificate source would serve, or stand-ins), so that
/// every resource is checked.
pub fn static_bootstrap(
    config: &ProxyConfig,
    node_id: &str,
    secrets: &std::collections::BTreeMap<String, Secret>,
) -> Value {
    let routes: Map<String, Value> = config
        .route_configs
        .iter()
        .map(|(name, r)| {
            (
                name.clone(),
                message_json("envoy.config.route.v3.RouteConfiguration", r.as_ref()),
            )
        })
        .collect();
    let mut listeners: Vec<Value> = config
        .listeners
        .values()
        .map(|l| message_json("envoy.config.listener.v3.Listener", l.as_ref()))
        .collect();
    for listener in &mut listeners {
        inline_routes(listener, &routes);
        static_secret_references(listener);
    }
    let clusters: Vec<Value> = config
        .clusters
        .iter()
        .map(|(name, c)| {
            let mut cluster = message_json("envoy.config.cluster.v3.Cluster", c.as_ref());
            if cluster.get("type").and_then(Value::as_str) == Some("EDS") {
                let object = cluster.as_object_mut().expect("a cluster is an object");
                object.remove("eds_cluster_config");
                object.insert("type".into(), json!("STATIC"));
                let assignment = config
                    .endpoints
                    .get(name)
                    .map(|e| message_json("envoy.config.endpoint.v3.ClusterLoadAssignment", e))
                    .unwrap_or_else(|| json!({ "cluster_name": name }));
                object.insert("load_assignment".into(), assignment);
            }
            static_secret_references(&mut cluster);
            cluster
        })
        .collect();
    let mut all_clusters = clusters;
    all_clusters.push(sds_cluster("/tmp/meshd-sds.sock"));
    let secrets: Vec<Value> = secrets
        .values()
        .map(|secret| message_json("envoy.extensions.transport_sockets.tls.v3.Secret", secret))
        .collect();
    json!({
        "node": { "id": node_id, "cluster": node_id },
        "static_resources": { "listeners": listeners, "clusters": all_clusters, "secrets": secrets },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
    })
}

/// Makes every SDS reference to a secret served over ADS name a static secret instead
/// (an `SdsSecretConfig` without `sds_config` names one of `static_resources.secrets`).
fn static_secret_references(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object
                .get("sds_config")
                .is_some_and(|source| source.get("ads").is_some())
            {
                object.remove("sds_config");
            }
            for child in object.values_mut() {
                static_secret_references(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(static_secret_references),
        _ => {}
    }
}

fn inline_routes(value: &mut Value, routes: &Map<String, Value>) {
    match value {
        Value::Object(object) => {
            let name = object
                .get("rds")
                .and_then(|rds| rds.get("route_config_name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(name) = name {
                object.remove("rds");
                let route_config = routes
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| json!({ "name": name }));
                object.insert("route_config".into(), route_config);
            }
            for child in object.values_mut() {
                inline_routes(child, routes);
            }
        }
        Value::Array(items) => {
            for item in items {
                inline_routes(item, routes);
            }
        }
        _ => {}
    }
}

/// The bootstrap cluster through which listeners and clusters fetch their SDS secrets
/// ([`SDS_CLUSTER`](super::names::SDS_CLUSTER)): gRPC over the Unix socket at `path`, as
/// App Mesh's Envoy image defines it when `APPMESH_SDS_SOCKET_PATH` is set.
pub fn sds_cluster(path: &str) -> Value {
    json!({
        "name": super::names::SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        },
        "load_assignment": {
            "cluster_name": super::names::SDS_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": { "pipe": { "path": path } } } }] }]
        }
    })
}
