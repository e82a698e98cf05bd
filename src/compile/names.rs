//! Every Envoy resource name meshd gives, in one place, as App Mesh named them
//! (listeners `lds_*`, clusters `cds_*`, route configurations `rds_*`).

/// The port Envoy's inbound listener binds on a virtual node (iptables redirects to it).
pub const INGRESS_PORT: u32 = 15000;
/// The port of the outbound listener (virtual nodes and virtual gateways).
pub const EGRESS_PORT: u32 = 15001;

/// `lds_ingress_0.0.0.0_<port>`: a virtual node's inbound listener (port 15000) or a
/// virtual gateway's listener.
pub fn ingress_listener(port: u32) -> String {
    format!("lds_ingress_0.0.0.0_{port}")
}

/// `lds_egress_0.0.0.0_15001`: the outbound listener.
pub fn egress_listener() -> String {
    format!("lds_egress_0.0.0.0_{EGRESS_PORT}")
}

/// `cds_ingress_<mesh>_<vn>_<proto>_<port>`: the local application behind a listener.
pub fn local_cluster(mesh: &str, node: &str, protocol: &str, port: i64) -> String {
    format!("cds_ingress_{mesh}_{node}_{protocol}_{port}")
}

/// `cds_egress_<mesh>_<vn>_<proto>_<port>`: a target virtual node's listener, seen from a client.
pub fn egress_cluster(mesh: &str, node: &str, protocol: &str, port: i64) -> String {
    format!("cds_egress_{mesh}_{node}_{protocol}_{port}")
}

/// `cds_egress_<mesh>_amazonaws`: pass-through to AWS APIs, allowed even under `DROP_ALL`.
pub fn amazonaws_cluster(mesh: &str) -> String {
    format!("cds_egress_{mesh}_amazonaws")
}

/// `cds_egress_<mesh>_mesh-allow-all`: pass-through to anything, under `ALLOW_ALL`.
pub fn allow_all_cluster(mesh: &str) -> String {
    format!("cds_egress_{mesh}_mesh-allow-all")
}

/// `cds_ingress_<mesh>_<vg>_self_redirect_<proto>_15001`, or with several gateway listeners
/// `cds_ingress_<mesh>_<vg>_self_redirect_<listenerPort>_<proto>_15001`.
pub fn self_redirect_cluster(
    mesh: &str,
    gateway: &str,
    protocol: &str,
    listener_port: Option<i64>,
) -> String {
    match listener_port {
        Some(port) => {
            format!("cds_ingress_{mesh}_{gateway}_self_redirect_{port}_{protocol}_{EGRESS_PORT}")
        }
        None => format!("cds_ingress_{mesh}_{gateway}_self_redirect_{protocol}_{EGRESS_PORT}"),
    }
}

/// `rds_ingress_<proto>_<port>`: the inbound route configuration of a listener.
pub fn ingress_route_config(protocol: &str, port: i64) -> String {
    format!("rds_ingress_{protocol}_{port}")
}

/// `rds_egress_<proto>_<port>`: the outbound route configuration of a backend port.
pub fn egress_route_config(protocol: &str, port: i64) -> String {
    format!("rds_egress_{protocol}_{port}")
}

/// The cluster the Envoy bootstrap defines for SDS over a Unix socket.
pub const SDS_CLUSTER: &str = "static_cluster_sds_unix_socket";

/// The header a gateway sets instead of rewriting Host when hostname rewrite is disabled.
pub const VIRTUAL_SERVICE_HEADER: &str = "x-app-mesh-virtual-service";
