//! The compiler's view of the store for one proxy: typed look-ups that remember what
//! they read (so that a change can be traced to the proxies it affects), the output
//! being built, and the egress clusters shared by every route that targets them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;

use crate::model::spec::*;
use crate::model::{Resource, ResourceKey, ResourceKind, Spec};
use crate::store::Snapshot;

use super::backend::ServicePort;
use super::cloud_map::CloudMapTarget;
use super::cluster::{self, Discovery, EgressTarget};
use super::dependencies::Dependencies;
use super::names;
use super::output::ProxyConfig;
use super::shared::{SharedCluster, SharedClusters, SharedKey};
use super::shared_services::{CompiledService, ServiceKey, SharedServices, UsedCluster};
use super::shared_sides::{CompiledSide, EgressKey as SideKey, SharedEgress, SharedIngress};
use super::tls;

/// An egress cluster request: target node, requested port, and the client policy (by
/// address: backends that reach one target listener may carry different policies).
type EgressKey = (String, Option<i64>, Option<usize>);

/// One proxy's compilation in progress.
pub struct Context<'a> {
    snapshot: &'a Snapshot,
    /// The proxy's mesh.
    pub mesh: &'a str,
    /// The output so far.
    pub out: ProxyConfig,
    /// Every resource read (a route counts as its router, a gateway route as its gateway).
    pub dependencies: Dependencies,
    /// Egress clusters already resolved, by target node and requested port.
    egress: HashMap<EgressKey, Option<(String, PortProtocol)>>,
    /// The mesh's spec, once read.
    mesh_spec: Option<Option<&'a MeshSpec>>,
    /// Clusters shared with the other proxies of the same compilation.
    shared: Option<&'a SharedClusters>,
    /// Services compiled for the other proxies of the same pass.
    services: Option<&'a SharedServices>,
    /// Outbound sides compiled for the other proxies of the same pass.
    sides: Option<&'a SharedEgress>,
    /// Inbound sides kept from earlier compilations.
    inbound: Option<&'a SharedIngress>,
    /// The target node and port of each egress cluster used, by cluster name.
    egress_targets: BTreeMap<String, (String, i64)>,
}

impl<'a> Context<'a> {
    /// Starts compiling a proxy of `mesh`.
    pub fn new(snapshot: &'a Snapshot, mesh: &'a str) -> Self {
        Self {
            snapshot,
            mesh,
            out: ProxyConfig::default(),
            dependencies: Dependencies::default(),
            egress: HashMap::new(),
            mesh_spec: None,
            shared: None,
            services: None,
            sides: None,
            inbound: None,
            egress_targets: BTreeMap::new(),
        }
    }

    /// A fresh context for the same proxy's mesh, sharing what this one shares.
    fn child(&self) -> Context<'a> {
        Context {
            shared: self.shared,
            services: self.services,
            sides: self.sides,
            inbound: self.inbound,
            ..Context::new(self.snapshot, self.mesh)
        }
    }

    /// Records a problem: something left out of the configuration, and why.
    pub fn diagnose(&mut self, message: impl Into<String>) {
        self.out.diagnostics.push(message.into());
    }

    fn resource(&mut self, kind: ResourceKind, name: &str) -> Option<&'a Arc<Resource>> {
        let key = match kind {
            ResourceKind::Mesh => ResourceKey::mesh(self.mesh),
            kind => ResourceKey::in_mesh(kind, self.mesh, name),
        };
        let snapshot: &'a Snapshot = self.snapshot;
        let found = snapshot.get(&key);
        self.dependencies.insert(key);
        found
    }

    fn get(&mut self, kind: ResourceKind, name: &str) -> Option<&'a Spec> {
        self.resource(kind, name).map(|resource| &resource.spec)
    }

    /// Shares egress clusters with the other proxies compiled with `shared`.
    pub fn with_shared(mut self, shared: &'a SharedClusters) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Shares compiled virtual services with the other proxies compiled with `services`.
    pub fn with_services(mut self, services: &'a SharedServices) -> Self {
        self.services = Some(services);
        self
    }

    /// Shares virtual nodes' outbound sides with the other proxies compiled with `sides`.
    pub fn with_egress(mut self, sides: &'a SharedEgress) -> Self {
        self.sides = Some(sides);
        self
    }

    /// Takes virtual nodes' inbound sides from (and keeps them in) `inbound`.
    pub fn with_ingress(mut self, inbound: &'a SharedIngress) -> Self {
        self.inbound = Some(inbound);
        self
    }

    /// Virtual node `node`'s inbound side (listener, route configurations, local
    /// clusters), built by `build`; with kept inbound sides, built once for these very
    /// node and mesh resources (in a fresh context) and absorbed. Kept only when it is
    /// the first thing compiled into this proxy, so that absorbing it gives what
    /// building it here would.
    pub fn ingress_side(&mut self, node: &str, build: impl FnOnce(&mut Context<'a>)) {
        let empty = self.out.listeners.is_empty()
            && self.out.clusters.is_empty()
            && self.out.route_configs.is_empty()
            && self.out.endpoints.is_empty()
            && self.out.diagnostics.is_empty();
        let snapshot: &'a Snapshot = self.snapshot;
        let resources = snapshot
            .get(&ResourceKey::in_mesh(
                ResourceKind::VirtualNode,
                self.mesh,
                node,
            ))
            .zip(snapshot.get(&ResourceKey::mesh(self.mesh)));
        let (Some(inbound), Some((node, mesh)), true) = (self.inbound, resources, empty) else {
            build(self);
            return;
        };
        let side = inbound.get(node, mesh).unwrap_or_else(|| {
            let mut child = self.child();
            build(&mut child);
            let side = Arc::new(child.into_side());
            inbound.insert(node, mesh, side.clone());
            side
        });
        self.absorb_side(&side);
    }

    /// A virtual node's outbound side (listener, route configurations, clusters), built
    /// by `build`; with shared outbound sides, built once per pass for every node of
    /// the same `key` (in a fresh context) and absorbed into each. Shared only while
    /// this proxy has said nothing yet, so that the side's diagnostics follow the
    /// proxy's own as they would had it been built here.
    pub fn egress_side(
        &mut self,
        key: impl FnOnce() -> SideKey,
        build: impl FnOnce(&mut Context<'a>),
    ) {
        let Some(sides) = self.sides.filter(|_| self.out.diagnostics.is_empty()) else {
            build(self);
            return;
        };
        let key = key();
        let side = sides.get(&key).unwrap_or_else(|| {
            let mut child = self.child();
            build(&mut child);
            let side = Arc::new(child.into_side());
            sides.insert(key, side.clone());
            side
        });
        self.absorb_side(&side);
    }

    /// Adds a side compiled apart to this proxy (whose resources it does not name).
    fn absorb_side(&mut self, side: &CompiledSide) {
        let out = &mut self.out;
        out.listeners.extend(
            side.listeners
                .iter()
                .map(|(name, listener)| (name.clone(), listener.clone())),
        );
        out.route_configs.extend(
            side.route_configs
                .iter()
                .map(|(name, config)| (name.clone(), config.clone())),
        );
        out.clusters.extend(
            side.clusters
                .iter()
                .map(|(name, cluster)| (name.clone(), cluster.clone())),
        );
        out.endpoints.extend(
            side.endpoints
                .iter()
                .map(|(name, endpoints)| (name.clone(), endpoints.clone())),
        );
        out.cloud_map.extend(
            side.cloud_map
                .iter()
                .map(|(name, target)| (name.clone(), target.clone())),
        );
        out.diagnostics.extend(side.diagnostics.iter().cloned());
        self.dependencies.merge(&side.dependencies);
    }

    fn into_side(self) -> CompiledSide {
        CompiledSide {
            listeners: self.out.listeners,
            route_configs: self.out.route_configs,
            clusters: self.out.clusters,
            endpoints: self.out.endpoints,
            cloud_map: self.out.cloud_map,
            diagnostics: self.out.diagnostics,
            dependencies: self.dependencies,
        }
    }

    /// Records (once) that backends reach `target`'s listener on `port` with different
    /// client TLS: Envoy has one cluster per name, so `cluster` keeps the first's.
    fn diagnose_policy_conflict(&mut self, target: &str, port: i64, cluster: &str) {
        let message = format!(
            "backends of this proxy reach virtual node {target} on port {port} with different client policies; cluster {cluster} keeps the TLS settings of the first (by virtual service name)"
        );
        if !self.out.diagnostics.contains(&message) {
            self.diagnose(message);
        }
    }

    /// Virtual service `name` as a client with `policy` reaches it (on `port` only, when
    /// given): compiled by `build` in a fresh context, or taken from the pass's shared
    /// services, then absorbed into this proxy's output.
    pub fn service(
        &mut self,
        name: &str,
        policy: Option<&ClientPolicy>,
        port: Option<i64>,
        build: impl FnOnce(&mut Context<'a>) -> Vec<ServicePort>,
    ) -> Vec<ServicePort> {
        let key = self
            .services
            .map(|_| ServiceKey::new(self.mesh, name, port, policy));
        let known = self
            .services
            .zip(key.as_ref())
            .and_then(|(services, key)| services.get(key));
        let compiled = known.unwrap_or_else(|| {
            let mut child = self.child();
            let ports = build(&mut child);
            let compiled = Arc::new(child.into_service(ports));
            if let (Some(services), Some(key)) = (self.services, key) {
                services.insert(key, compiled.clone());
            }
            compiled
        });
        self.absorb(&compiled);
        compiled.ports.clone()
    }

    fn into_service(mut self, ports: Vec<ServicePort>) -> CompiledService {
        let clusters = std::mem::take(&mut self.out.clusters)
            .into_iter()
            .filter_map(|(name, cluster)| {
                let (target, port) = self.egress_targets.remove(&name)?;
                let endpoints = self.out.endpoints.remove(&name);
                let cloud_map = self.out.cloud_map.remove(&name);
                Some((
                    name,
                    UsedCluster {
                        cluster,
                        endpoints,
                        cloud_map,
                        target,
                        port,
                    },
                ))
            })
            .collect();
        CompiledService {
            ports,
            clusters,
            diagnostics: self.out.diagnostics,
            dependencies: Arc::new(self.dependencies.to_set()),
        }
    }

    /// Adds what compiling a service produced to this proxy: its dependencies, its
    /// problems (each once), and its clusters (a cluster this proxy already has from
    /// another backend keeps the first backend's TLS settings, as Envoy allows one
    /// cluster per name).
    fn absorb(&mut self, service: &Arc<CompiledService>) {
        self.dependencies.absorb(&service.dependencies);
        for message in &service.diagnostics {
            if !self.out.diagnostics.contains(message) {
                self.out.diagnostics.push(message.clone());
            }
        }
        for (name, used) in &service.clusters {
            match self.out.clusters.get(name) {
                Some(existing) => {
                    if existing.transport_socket != used.cluster.transport_socket {
                        self.diagnose_policy_conflict(&used.target, used.port, name);
                    }
                }
                None => {
                    self.out.clusters.insert(name.clone(), used.cluster.clone());
                    if let Some(endpoints) = &used.endpoints {
                        self.out.endpoints.insert(name.clone(), endpoints.clone());
                    }
                    if let Some(target) = &used.cloud_map {
                        self.out.cloud_map.insert(name.clone(), target.clone());
                    }
                }
            }
        }
    }

    /// The mesh's spec.
    pub fn mesh_spec(&mut self) -> Option<&'a MeshSpec> {
        if let Some(spec) = self.mesh_spec {
            return spec;
        }
        let spec = match self.get(ResourceKind::Mesh, "") {
            Some(Spec::Mesh(spec)) => Some(spec),
            _ => None,
        };
        self.mesh_spec = Some(spec);
        spec
    }

    /// A virtual node's spec.
    pub fn virtual_node(&mut self, name: &str) -> Option<&'a VirtualNodeSpec> {
        match self.get(ResourceKind::VirtualNode, name) {
            Some(Spec::VirtualNode(spec)) => Some(spec),
            _ => None,
        }
    }

    /// A virtual service's spec.
    pub fn virtual_service(&mut self, name: &str) -> Option<&'a VirtualServiceSpec> {
        match self.get(ResourceKind::VirtualService, name) {
            Some(Spec::VirtualService(spec)) => Some(spec),
            _ => None,
        }
    }

    /// A virtual router's spec.
    pub fn virtual_router(&mut self, name: &str) -> Option<&'a VirtualRouterSpec> {
        match self.get(ResourceKind::VirtualRouter, name) {
            Some(Spec::VirtualRouter(spec)) => Some(spec),
            _ => None,
        }
    }

    /// A virtual gateway's spec.
    pub fn virtual_gateway(&mut self, name: &str) -> Option<&'a VirtualGatewaySpec> {
        match self.get(ResourceKind::VirtualGateway, name) {
            Some(Spec::VirtualGateway(spec)) => Some(spec),
            _ => None,
        }
    }

    /// The routes of a virtual router, by name.
    pub fn routes(&mut self, router: &str) -> Vec<(&'a str, &'a RouteSpec)> {
        self.dependencies.insert(ResourceKey::in_mesh(
            ResourceKind::VirtualRouter,
            self.mesh,
            router,
        ));
        let snapshot: &'a Snapshot = self.snapshot;
        snapshot
            .list(self.mesh, ResourceKind::Route, router, None)
            .filter_map(|resource| match &resource.spec {
                Spec::Route(spec) => Some((resource.key.name.as_str(), spec)),
                _ => None,
            })
            .collect()
    }

    /// The gateway routes of a virtual gateway, by name.
    pub fn gateway_routes(&mut self, gateway: &str) -> Vec<(&'a str, &'a GatewayRouteSpec)> {
        self.dependencies.insert(ResourceKey::in_mesh(
            ResourceKind::VirtualGateway,
            self.mesh,
            gateway,
        ));
        let snapshot: &'a Snapshot = self.snapshot;
        snapshot
            .list(self.mesh, ResourceKind::GatewayRoute, gateway, None)
            .filter_map(|resource| match &resource.spec {
                Spec::GatewayRoute(spec) => Some((resource.key.name.as_str(), spec)),
                _ => None,
            })
            .collect()
    }

    /// The IP preference of a node: its service discovery's, else the mesh's.
    pub fn ip_preference(&mut self, node: Option<&VirtualNodeSpec>) -> Option<IpPreference> {
        let own = node
            .and_then(|n| n.service_discovery.as_ref())
            .and_then(|d| {
                d.dns
                    .as_ref()
                    .and_then(|dns| dns.ip_preference)
                    .or(d.aws_cloud_map.as_ref().and_then(|map| map.ip_preference))
            });
        own.or_else(|| {
            self.mesh_spec()
                .and_then(|m| m.service_discovery.as_ref())
                .and_then(|d| d.ip_preference)
        })
    }

    /// The client's cluster for virtual node `target`'s listener on `port` (its only
    /// listener when `port` is `None`), built once and shared. `policy` is the client
    /// policy that applies to the backend. Returns the cluster's name and the listener's
    /// protocol, or `None` (with a diagnostic) when there is no such listener.
    pub fn egress_cluster(
        &mut self,
        target: &str,
        port: Option<i64>,
        policy: Option<&ClientPolicy>,
    ) -> Option<(String, PortProtocol)> {
        // The policy is part of the key: backends that reach one target listener may carry
        // different client policies (compared by identity, which is enough for a memo).
        let memo = (
            target.to_string(),
            port,
            policy.map(|p| p as *const ClientPolicy as usize),
        );
        if let Some(known) = self.egress.get(&memo) {
            return known.clone();
        }
        let resolved = self.resolve_egress_cluster(target, port, policy);
        self.egress.insert(memo, resolved.clone());
        resolved
    }

    fn resolve_egress_cluster(
        &mut self,
        target: &str,
        port: Option<i64>,
        policy: Option<&ClientPolicy>,
    ) -> Option<(String, PortProtocol)> {
        let Some(node) = self.virtual_node(target) else {
            self.diagnose(format!(
                "virtual node {target} does not exist; traffic to it is left out"
            ));
            return None;
        };
        let listeners = node.listeners.as_deref().unwrap_or_default();
        let listener = match port {
            Some(port) => listeners.iter().find(|l| l.port_mapping.port == port),
            None => listeners.first(),
        };
        let Some(listener) = listener else {
            self.diagnose(format!(
                "virtual node {target} has no listener{}; traffic to it is left out",
                port.map(|p| format!(" on port {p}")).unwrap_or_default()
            ));
            return None;
        };
        if port.is_none() && listeners.len() > 1 {
            self.diagnose(format!(
                "virtual node {target} has several listeners and no port was named; using port {}",
                listener.port_mapping.port
            ));
        }
        let protocol = listener.port_mapping.protocol;
        let port = listener.port_mapping.port;
        let name = names::egress_cluster(self.mesh, target, protocol.as_str(), port);
        let Some(discovery) = node.service_discovery.as_ref() else {
            self.diagnose(format!(
                "virtual node {target} has no service discovery; traffic to it is left out"
            ));
            return None;
        };
        let (discovery, hostname) = match (&discovery.dns, &discovery.aws_cloud_map) {
            (Some(dns), _) => (
                Discovery::Dns {
                    hostname: &dns.hostname,
                    response_type: dns.response_type,
                },
                dns.hostname.clone(),
            ),
            (None, Some(map)) => (
                Discovery::CloudMap(map),
                format!("{}.{}", map.service_name, map.namespace_name),
            ),
            (None, None) => return None,
        };
        let transport_socket = match policy.and_then(|p| p.tls.as_ref()) {
            Some(tls)
                if tls.enforce != Some(false)
                    && tls
                        .ports
                        .as_ref()
                        .is_none_or(|ports| ports.is_empty() || ports.contains(&port)) =>
            {
                match tls::upstream(tls, Some(&hostname), &hostname) {
                    Ok(context) => Some(super::envoy::tls_transport_socket(&context)),
                    Err(err) => {
                        self.diagnose(format!(
                            "client policy TLS to virtual node {target}: {err}; traffic to it is left out rather than sent without TLS"
                        ));
                        return None;
                    }
                }
            }
            // No client policy applies: as on App Mesh, a client still speaks TLS to a
            // listener that serves it, without validating the server's certificate.
            _ => listener
                .tls
                .as_ref()
                .filter(|t| {
                    t.mode != ListenerTlsMode::Disabled
                        && (t.certificate.file.is_some()
                            || t.certificate.sds.is_some()
                            || t.certificate.acm.is_some())
                })
                .map(|_| super::envoy::tls_transport_socket(&tls::unvalidated_upstream(&hostname))),
        };
        self.egress_targets
            .insert(name.clone(), (target.to_string(), port));
        if let Some(existing) = self.out.clusters.get(&name) {
            if existing.transport_socket != transport_socket {
                self.diagnose_policy_conflict(target, port, &name);
            }
            return Some((name, protocol));
        }
        let shared_key = match (
            self.shared,
            self.resource(ResourceKind::VirtualNode, target).cloned(),
            self.resource(ResourceKind::Mesh, "").cloned(),
        ) {
            (Some(shared), Some(target_resource), Some(mesh_resource)) => {
                let key = SharedKey::new(
                    &name,
                    &target_resource,
                    &mesh_resource,
                    transport_socket.as_ref().map(Message::encode_to_vec),
                );
                if let Some(hit) = shared.get(&key) {
                    self.out.clusters.insert(name.clone(), hit.cluster);
                    if let Some(endpoints) = hit.endpoints {
                        self.out.endpoints.insert(name.clone(), endpoints);
                    }
                    if let Some(target) = hit.cloud_map {
                        self.out.cloud_map.insert(name.clone(), target);
                    }
                    self.out.diagnostics.extend(hit.diagnostics);
                    return Some((name, protocol));
                }
                Some((shared, key, target_resource, mesh_resource))
            }
            _ => None,
        };
        let diagnostics_before = self.out.diagnostics.len();
        let ip_preference = self.ip_preference(Some(node));
        let mut health_check = listener.health_check.as_ref();
        if health_check.is_some_and(|check| {
            check.protocol == PortProtocol::Grpc && !cluster::is_http2(protocol)
        }) {
            // Envoy refuses the whole cluster: a gRPC health check needs an HTTP/2 upstream.
            self.diagnose(format!(
                "virtual node {target}'s gRPC health check on port {port} cannot run over its {} listener (Envoy needs HTTP/2 for it); cluster {name} has no health check",
                protocol.as_str()
            ));
            health_check = None;
        }
        if let Some(outlier) = &listener.outlier_detection {
            for (what, value) in [
                ("interval", &outlier.interval),
                ("baseEjectionDuration", &outlier.base_ejection_duration),
            ] {
                if super::envoy::duration_millis(value) == Some(0) {
                    self.diagnose(format!(
                        "virtual node {target}'s outlier detection on port {port} has {what} 0, which Envoy does not accept; cluster {name} uses Envoy's default instead"
                    ));
                }
            }
        }
        let cloud_map = match discovery {
            Discovery::CloudMap(map) => Some(CloudMapTarget::new(
                &map.namespace_name,
                &map.service_name,
                map.attributes
                    .iter()
                    .flatten()
                    .map(|attribute| (attribute.key.clone(), attribute.value.clone())),
                ip_preference,
                port,
                health_check
                    .and_then(|check| check.port)
                    .map(|port| port as u32),
            )),
            Discovery::Dns { .. } => None,
        };
        let cluster = cluster::egress(&EgressTarget {
            name: name.clone(),
            discovery,
            port,
            protocol,
            ip_preference,
            health_check,
            outlier_detection: listener.outlier_detection.as_ref(),
            transport_socket,
        });
        let cluster = Arc::new(cluster);
        self.out.clusters.insert(name.clone(), cluster.clone());
        if let Some(cloud_map) = cloud_map {
            self.out
                .endpoints
                .insert(name.clone(), cluster::cloud_map_assignment(&name));
            self.out.cloud_map.insert(name.clone(), cloud_map);
        }
        if let Some((shared, key, target_resource, mesh_resource)) = shared_key {
            shared.insert(
                key,
                SharedCluster::new(
                    cluster,
                    self.out.endpoints.get(&name).cloned(),
                    self.out.cloud_map.get(&name).cloned(),
                    self.out.diagnostics[diagnostics_before..].to_vec(),
                    target_resource,
                    mesh_resource,
                ),
            );
        }
        Some((name, protocol))
    }
}
