//! The Envoy bootstrap a sidecar or gateway needs to get its configuration from meshd,
//! built from the same environment variables the App Mesh Envoy image reads.

use serde_json::{Value, json};

/// Where a proxy finds meshd's xDS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdsEndpoint {
    /// `host:port` over TCP.
    Tcp {
        /// A hostname or IP address.
        host: String,
        /// The port.
        port: u16,
    },
    /// `unix:///path/to/socket`.
    Unix(String),
}

impl XdsEndpoint {
    /// Parses `host:port`, `[v6]:port` or `unix://path`.
    pub fn parse(text: &str) -> Result<Self, BootstrapError> {
        if let Some(path) = text.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(BootstrapError::Endpoint(text.to_string()));
            }
            return Ok(XdsEndpoint::Unix(path.to_string()));
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| BootstrapError::Endpoint(text.to_string()))?;
        let port: u16 = port
            .parse()
            .map_err(|_| BootstrapError::Endpoint(text.to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(BootstrapError::Endpoint(text.to_string()));
        }
        Ok(XdsEndpoint::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

/// Why a bootstrap cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// No node id was given.
    #[error(
        "no node id: set APPMESH_RESOURCE_ARN (or APPMESH_RESOURCE_NAME or APPMESH_VIRTUAL_NODE_NAME) to mesh/<mesh>/virtualNode/<name> or mesh/<mesh>/virtualGateway/<name>, or pass --node-id"
    )]
    MissingNodeId,
    /// The xDS endpoint is not `host:port` or `unix://path`.
    #[error("APPMESH_XDS_ENDPOINT {0:?} is not host:port or unix:///path")]
    Endpoint(String),
    /// A TLS file or the token file cannot be read.
    #[error("{name} {path:?} cannot be read: {reason}")]
    File {
        /// The flag or variable.
        name: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The token file does not hold one token.
    #[error("{0:?} must hold one token (a single word)")]
    Token(String),
    /// TLS was asked for with a Unix-socket endpoint, or a client certificate without
    /// the CA that meshd's certificate is checked against.
    #[error("{0}")]
    Tls(&'static str),
    /// A numeric variable is not a number.
    #[error("{name} {value:?} is not a number")]
    Number {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

/// Everything a bootstrap is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSettings {
    /// `node.id`.
    pub node_id: String,
    /// `node.cluster`.
    pub node_cluster: String,
    /// meshd's xDS server.
    pub xds: XdsEndpoint,
    /// Envoy's admin port.
    pub admin_port: u16,
    /// Envoy's admin access log.
    pub admin_access_log: String,
    /// Seconds Envoy waits for its first listeners and clusters (0: forever).
    pub initial_fetch_timeout_seconds: u64,
    /// Whether to tag stats with the mesh and the resource.
    pub stats_tags: bool,
    /// Incremental (delta) xDS instead of state of the world.
    pub delta: bool,
    /// The SDS server's Unix socket (`APPMESH_SDS_SOCKET_PATH`, e.g. SPIRE's agent),
    /// from which listeners and clusters with SDS certificates fetch their secrets.
    pub sds_socket: Option<String>,
    /// How Envoy proves to meshd who it is, and checks who meshd is.
    pub credentials: XdsCredentials,
}

/// How the proxy talks to a secured xDS server (`meshd serve --xds-tls-cert …`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdsCredentials {
    /// TLS to meshd, verifying its certificate against this CA file (and its name
    /// against the endpoint's host).
    pub ca: Option<String>,
    /// A client certificate and its key (files), presented to meshd.
    pub client_certificate: Option<(String, String)>,
    /// The bearer token sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true"
    )
}

impl BootstrapSettings {
    /// Reads the App Mesh Envoy image's variables through `var`; `overrides` (the
    /// command's flags) win.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        overrides: &BootstrapOverrides,
    ) -> Result<Self, BootstrapError> {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| var(name).filter(|v| !v.is_empty()))
        };
        let node_id = overrides
            .node_id
            .clone()
            .or_else(|| {
                first(&[
                    "APPMESH_RESOURCE_ARN",
                    "APPMESH_RESOURCE_NAME",
                    "APPMESH_VIRTUAL_NODE_NAME",
                ])
            })
            .ok_or(BootstrapError::MissingNodeId)?;
        let node_cluster = overrides
            .node_cluster
            .clone()
            .or_else(|| first(&["APPMESH_RESOURCE_CLUSTER", "APPMESH_VIRTUAL_NODE_CLUSTER"]))
            .unwrap_or_else(|| node_id.clone());
        let endpoint = overrides
            .xds_endpoint
            .clone()
            .or_else(|| first(&["APPMESH_XDS_ENDPOINT"]))
            .unwrap_or_else(|| "127.0.0.1:18000".to_string());
        let number = |name: &'static str, default: u64| -> Result<u64, BootstrapError> {
            match first(&[name]) {
                None => Ok(default),
                Some(value) => value
                    .trim()
                    .parse()
                    .map_err(|_| BootstrapError::Number { name, value }),
            }
        };
        let admin_port = number("ENVOY_ADMIN_ACCESS_PORT", 9901)?;
        let admin_port = match overrides.admin_port {
            Some(port) => port,
            None => u16::try_from(admin_port).map_err(|_| BootstrapError::Number {
                name: "ENVOY_ADMIN_ACCESS_PORT",
                value: admin_port.to_string(),
            })?,
        };
        Ok(Self {
            node_id,
            node_cluster,
            xds: XdsEndpoint::parse(&endpoint)?,
            admin_port,
            admin_access_log: first(&["ENVOY_ADMIN_ACCESS_LOG_FILE"])
                .unwrap_or_else(|| "/tmp/envoy_admin_access.log".into()),
            initial_fetch_timeout_seconds: number("ENVOY_INITIAL_FETCH_TIMEOUT", 0)?,
            stats_tags: first(&["ENABLE_ENVOY_STATS_TAGS"]).is_some_and(|v| truthy(&v)),
            delta: overrides.delta,
            sds_socket: first(&["APPMESH_SDS_SOCKET_PATH"]),
            credentials: XdsCredentials::from_env(&first, overrides)?,
        })
    }
}

/// The absolute path of a file the proxy will read, checked to be readable now.
fn readable_file(name: &'static str, path: &str) -> Result<String, BootstrapError> {
    let file_error = |reason: String| BootstrapError::File {
        name,
        path: path.to_string(),
        reason,
    };
    std::fs::File::open(path).map_err(|e| file_error(e.to_string()))?;
    let absolute = std::path::absolute(path).map_err(|e| file_error(e.to_string()))?;
    Ok(absolute.to_string_lossy().into_owned())
}

impl XdsCredentials {
    fn from_env(
        first: &impl Fn(&[&str]) -> Option<String>,
        overrides: &BootstrapOverrides,
    ) -> Result<Self, BootstrapError> {
        let path = |flag: &Option<String>, name: &'static str| {
            flag.clone()
                .or_else(|| first(&[name]))
                .map(|path| readable_file(name, &path))
                .transpose()
        };
        let ca = path(&overrides.xds_ca, "MESHD_XDS_CA")?;
        let cert = path(&overrides.xds_cert, "MESHD_XDS_CERT")?;
        let key = path(&overrides.xds_key, "MESHD_XDS_KEY")?;
        let client_certificate = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(BootstrapError::Tls(
                    "--xds-cert and --xds-key (MESHD_XDS_CERT, MESHD_XDS_KEY) go together",
                ));
            }
        };
        if client_certificate.is_some() && ca.is_none() {
            return Err(BootstrapError::Tls(
                "a client certificate needs TLS: give --xds-ca (MESHD_XDS_CA), the CA that meshd's certificate chains to",
            ));
        }
        let token = match overrides
            .xds_token_file
            .clone()
            .or_else(|| first(&["MESHD_XDS_TOKEN_FILE"]))
        {
            None => None,
            Some(file) => {
                let text = std::fs::read_to_string(&file).map_err(|e| BootstrapError::File {
                    name: "MESHD_XDS_TOKEN_FILE",
                    path: file.clone(),
                    reason: e.to_string(),
                })?;
                let token = text.trim();
                if token.is_empty() || token.contains(char::is_whitespace) {
                    return Err(BootstrapError::Token(file));
                }
                Some(token.to_string())
            }
        };
        Ok(Self {
            ca,
            client_certificate,
            token,
        })
    }
}

/// What the `meshd bootstrap` flags set over the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootstrapOverrides {
    /// `--node-id`.
    pub node_id: Option<String>,
    /// `--node-cluster`.
    pub node_cluster: Option<String>,
    /// `--xds-endpoint`.
    pub xds_endpoint: Option<String>,
    /// `--admin-port`.
    pub admin_port: Option<u16>,
    /// `--delta`.
    pub delta: bool,
    /// `--xds-ca`.
    pub xds_ca: Option<String>,
    /// `--xds-cert`.
    pub xds_cert: Option<String>,
    /// `--xds-key`.
    pub xds_key: Option<String>,
    /// `--xds-token-file`.
    pub xds_token_file: Option<String>,
}

const XDS_CLUSTER: &str = "meshd_xds";

/// The upstream TLS of the `meshd_xds` cluster: meshd's certificate checked against the
/// CA and its name against the endpoint's host; the client certificate, if any.
fn xds_transport_socket(credentials: &XdsCredentials, host: &str) -> Option<Value> {
    let ca = credentials.ca.as_ref()?;
    let san = if host.parse::<std::net::IpAddr>().is_ok() {
        json!({ "san_type": "IP_ADDRESS", "matcher": { "exact": host } })
    } else {
        json!({ "san_type": "DNS", "matcher": { "exact": host } })
    };
    let mut common = json!({
        "alpn_protocols": ["h2"],
        "validation_context": {
            "trusted_ca": { "filename": ca },
            "match_typed_subject_alt_names": [san],
        },
    });
    if let Some((cert, key)) = &credentials.client_certificate {
        common["tls_certificates"] = json!([{
            "certificate_chain": { "filename": cert },
            "private_key": { "filename": key },
        }]);
    }
    let mut context = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": common,
    });
    if host.parse::<std::net::IpAddr>().is_err() {
        context["sni"] = json!(host);
    }
    Some(json!({ "name": "envoy.transport_sockets.tls", "typed_config": context }))
}

/// Checks that the credentials fit the endpoint: TLS is for TCP endpoints.
pub fn check_credentials(settings: &BootstrapSettings) -> Result<(), BootstrapError> {
    if settings.credentials.ca.is_some() && matches!(settings.xds, XdsEndpoint::Unix(_)) {
        return Err(BootstrapError::Tls(
            "--xds-ca turns on TLS, which meshd serves on its TCP port, not on the Unix socket",
        ));
    }
    Ok(())
}

/// The bootstrap as JSON (which is also YAML).
pub fn bootstrap(settings: &BootstrapSettings) -> Value {
    let address = match &settings.xds {
        XdsEndpoint::Tcp { host, port } => {
            json!({ "socket_address": { "address": host, "port_value": port } })
        }
        XdsEndpoint::Unix(path) => json!({ "pipe": { "path": path } }),
    };
    let discovery = match &settings.xds {
        XdsEndpoint::Tcp { host, .. } if host.parse::<std::net::IpAddr>().is_err() => "STRICT_DNS",
        _ => "STATIC",
    };
    let config_source = json!({
        "ads": {},
        "resource_api_version": "V3",
        "initial_fetch_timeout": format!("{}s", settings.initial_fetch_timeout_seconds),
    });
    let mut grpc_service = json!({ "envoy_grpc": { "cluster_name": XDS_CLUSTER } });
    if let Some(token) = &settings.credentials.token {
        grpc_service["initial_metadata"] =
            json!([{ "key": "authorization", "value": format!("Bearer {token}") }]);
    }
    let mut bootstrap = json!({
        "node": { "id": settings.node_id, "cluster": settings.node_cluster },
        "dynamic_resources": {
            "ads_config": {
                "api_type": if settings.delta { "DELTA_GRPC" } else { "GRPC" },
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [grpc_service],
            },
            "lds_config": config_source,
            "cds_config": config_source,
        },
        "static_resources": {
            "clusters": [{
                "name": XDS_CLUSTER,
                "type": discovery,
                // A name such as `localhost` may resolve to ::1 first while meshd
                // listens on IPv4: try IPv4 first, then IPv6.
                "dns_lookup_family": "V4_PREFERRED",
                "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http2_protocol_options": {
                            "connection_keepalive": { "interval": "10s", "timeout": "20s" }
                        } },
                    }
                },
                "load_assignment": {
                    "cluster_name": XDS_CLUSTER,
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address } }] }],
                },
            }],
        },
        "admin": {
            "access_log": [{
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": settings.admin_access_log,
                },
            }],
            "address": { "socket_address": { "address": "0.0.0.0", "port_value": settings.admin_port } },
        },
        "layered_runtime": {
            "layers": [
                { "name": "static_layer_0", "static_layer": { "re2.max_program_size.error_level": 1000 } },
                { "name": "admin_layer", "admin_layer": {} },
            ],
        },
    });
    if let XdsEndpoint::Tcp { host, .. } = &settings.xds
        && let Some(socket) = xds_transport_socket(&settings.credentials, host)
    {
        bootstrap["static_resources"]["clusters"][0]["transport_socket"] = socket;
    }
    if let Some(path) = &settings.sds_socket
        && let Some(clusters) = bootstrap["static_resources"]["clusters"].as_array_mut()
    {
        clusters.push(crate::compile::json::sds_cluster(path));
    }
    if settings.stats_tags
        && let Some((mesh, kind, name)) = mesh_resource(&settings.node_id)
    {
        let tag = if kind == "virtualGateway" {
            "appmesh.virtual_gateway"
        } else {
            "appmesh.virtual_node"
        };
        bootstrap["stats_config"] = json!({
            "stats_tags": [
                { "tag_name": "appmesh.mesh", "fixed_value": mesh },
                { "tag_name": tag, "fixed_value": name },
            ],
        });
    }
    bootstrap
}

/// `(mesh, kind, name)` of a node id, as the App Mesh agent reads it (the last
/// `mesh/<m>/<kind>/<n>` of the id, so full ARNs work too).
fn mesh_resource(node_id: &str) -> Option<(String, String, String)> {
    let path = node_id.rsplit_once(':').map_or(node_id, |(_, path)| path);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["mesh", mesh, kind, name] => Some((mesh.to_string(), kind.to_string(), name.to_string())),
        _ => None,
    }
}

/// The bootstrap as YAML.
pub fn bootstrap_yaml(settings: &BootstrapSettings) -> String {
    serde_yaml_ng::to_string(&bootstrap(settings)).expect("JSON values serialise to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(
        vars: &[(&str, &str)],
        overrides: &BootstrapOverrides,
    ) -> Result<BootstrapSettings, BootstrapError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BootstrapSettings::from_env(|name| vars.get(name).cloned(), overrides)
    }

    #[test]
    fn reads_the_app_mesh_variables_in_their_order() {
        let s = settings(
            &[
                ("APPMESH_VIRTUAL_NODE_NAME", "mesh/m/virtualNode/legacy"),
                ("APPMESH_RESOURCE_ARN", "mesh/m/virtualNode/a"),
                ("APPMESH_VIRTUAL_NODE_CLUSTER", "c"),
                ("APPMESH_XDS_ENDPOINT", "unix:///tmp/xds.sock"),
                ("ENVOY_ADMIN_ACCESS_PORT", "9902"),
                ("ENABLE_ENVOY_STATS_TAGS", "1"),
            ],
            &BootstrapOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.node_id, "mesh/m/virtualNode/a");
        assert_eq!(s.node_cluster, "c");
        assert_eq!(s.xds, XdsEndpoint::Unix("/tmp/xds.sock".into()));
        assert_eq!(s.admin_port, 9902);
        let b = bootstrap(&s);
        assert_eq!(b["stats_config"]["stats_tags"][1]["fixed_value"], "a");
        assert_eq!(b["dynamic_resources"]["ads_config"]["api_type"], "GRPC");
    }

    #[test]
    fn flags_win_and_a_missing_node_id_names_the_variables() {
        let overrides = BootstrapOverrides {
            node_id: Some("mesh/m/virtualGateway/g".into()),
            xds_endpoint: Some("meshd.local:18000".into()),
            delta: true,
            ..Default::default()
        };
        let s = settings(
            &[("APPMESH_RESOURCE_ARN", "mesh/m/virtualNode/a")],
            &overrides,
        )
        .unwrap();
        assert_eq!(s.node_id, "mesh/m/virtualGateway/g");
        let b = bootstrap(&s);
        assert_eq!(
            b["dynamic_resources"]["ads_config"]["api_type"],
            "DELTA_GRPC"
        );
        assert_eq!(b["static_resources"]["clusters"][0]["type"], "STRICT_DNS");
        let err = settings(&[], &BootstrapOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("APPMESH_RESOURCE_ARN"), "{err}");
        assert!(
            settings(
                &[
                    ("APPMESH_RESOURCE_ARN", "x"),
                    ("APPMESH_XDS_ENDPOINT", "nope")
                ],
                &BootstrapOverrides::default()
            )
            .is_err()
        );
    }

    #[test]
    fn credentials_turn_on_tls_with_the_server_name_checked_and_send_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        };
        let (ca, cert, key) = (file("ca.pem", "ca"), file("c.pem", "c"), file("k.pem", "k"));
        let token = file("token", "  s3cr3t\n");
        let vars = [
            ("APPMESH_RESOURCE_ARN", "mesh/m/virtualNode/a"),
            ("APPMESH_XDS_ENDPOINT", "meshd.example:18000"),
            ("MESHD_XDS_CA", ca.as_str()),
            ("MESHD_XDS_TOKEN_FILE", token.as_str()),
        ];
        let overrides = BootstrapOverrides {
            xds_cert: Some(cert.clone()),
            xds_key: Some(key.clone()),
            ..Default::default()
        };
        let b = bootstrap(&settings(&vars, &overrides).unwrap());
        let cluster = &b["static_resources"]["clusters"][0];
        let context = &cluster["transport_socket"]["typed_config"];
        assert_eq!(context["sni"], "meshd.example");
        let common = &context["common_tls_context"];
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            ca.as_str()
        );
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"][0],
            json!({ "san_type": "DNS", "matcher": { "exact": "meshd.example" } })
        );
        assert_eq!(
            common["tls_certificates"][0]["private_key"]["filename"],
            key.as_str()
        );
        assert_eq!(
            b["dynamic_resources"]["ads_config"]["grpc_services"][0]["initial_metadata"][0],
            json!({ "key": "authorization", "value": "Bearer s3cr3t" })
        );

        // A client certificate needs the CA; a missing file is named.
        let no_ca = [("APPMESH_RESOURCE_ARN", "mesh/m/virtualNode/a")];
        assert!(matches!(
            settings(&no_ca, &overrides),
            Err(BootstrapError::Tls(_))
        ));
        let missing = BootstrapOverrides {
            xds_ca: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = settings(&no_ca, &missing).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        // Without credentials, no TLS and no metadata.
        let plain = bootstrap(&settings(&no_ca, &BootstrapOverrides::default()).unwrap());
        assert!(
            plain["static_resources"]["clusters"][0]
                .get("transport_socket")
                .is_none()
        );
    }
}
