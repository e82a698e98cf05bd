//! What the store holds: resource kinds, their keys, their specs and their metadata.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::spec::{
    GatewayRouteSpec, MeshSpec, RouteSpec, TagRef, VirtualGatewaySpec, VirtualNodeSpec,
    VirtualRouterSpec, VirtualServiceSpec,
};

/// The seven kinds of App Mesh resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceKind {
    /// A service mesh: the parent of every other kind.
    Mesh,
    /// A virtual node: one workload and its Envoy sidecar.
    VirtualNode,
    /// A virtual router: routes traffic for a virtual service.
    VirtualRouter,
    /// A route of a virtual router.
    Route,
    /// A virtual service: the name clients call.
    VirtualService,
    /// A virtual gateway: an ingress Envoy.
    VirtualGateway,
    /// A gateway route of a virtual gateway.
    GatewayRoute,
}

impl ResourceKind {
    /// Every kind, parents before children.
    pub const ALL: [ResourceKind; 7] = [
        ResourceKind::Mesh,
        ResourceKind::VirtualNode,
        ResourceKind::VirtualRouter,
        ResourceKind::Route,
        ResourceKind::VirtualService,
        ResourceKind::VirtualGateway,
        ResourceKind::GatewayRoute,
    ];

    /// The kind as the API's messages and type names spell it (`VirtualNode`).
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Mesh => "Mesh",
            Self::VirtualNode => "VirtualNode",
            Self::VirtualRouter => "VirtualRouter",
            Self::Route => "Route",
            Self::VirtualService => "VirtualService",
            Self::VirtualGateway => "VirtualGateway",
            Self::GatewayRoute => "GatewayRoute",
        }
    }

    /// The JSON member that carries this kind's name (`virtualNodeName`).
    pub fn name_field(self) -> &'static str {
        match self {
            Self::Mesh => "meshName",
            Self::VirtualNode => "virtualNodeName",
            Self::VirtualRouter => "virtualRouterName",
            Self::Route => "routeName",
            Self::VirtualService => "virtualServiceName",
            Self::VirtualGateway => "virtualGatewayName",
            Self::GatewayRoute => "gatewayRouteName",
        }
    }

    /// The segment that names this kind in an ARN (`virtualNode`).
    pub fn arn_segment(self) -> &'static str {
        match self {
            Self::Mesh => "mesh",
            Self::VirtualNode => "virtualNode",
            Self::VirtualRouter => "virtualRouter",
            Self::Route => "route",
            Self::VirtualService => "virtualService",
            Self::VirtualGateway => "virtualGateway",
            Self::GatewayRoute => "gatewayRoute",
        }
    }

    /// The kind whose resource is this kind's parent below the mesh, if any.
    pub fn parent_kind(self) -> Option<ResourceKind> {
        match self {
            Self::Route => Some(Self::VirtualRouter),
            Self::GatewayRoute => Some(Self::VirtualGateway),
            _ => None,
        }
    }

    /// The kind of a route-like child of this kind, if it has one.
    pub fn child_kind(self) -> Option<ResourceKind> {
        match self {
            Self::VirtualRouter => Some(Self::Route),
            Self::VirtualGateway => Some(Self::GatewayRoute),
            _ => None,
        }
    }

    /// Words for messages: `virtual node`.
    pub fn words(self) -> &'static str {
        match self {
            Self::Mesh => "mesh",
            Self::VirtualNode => "virtual node",
            Self::VirtualRouter => "virtual router",
            Self::Route => "route",
            Self::VirtualService => "virtual service",
            Self::VirtualGateway => "virtual gateway",
            Self::GatewayRoute => "gateway route",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// Identifies one resource. The field order gives the store's order: a mesh, then its
/// resources kind by kind, each kind sorted by parent and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceKey {
    /// The mesh the resource belongs to (for a mesh, its own name).
    pub mesh: String,
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The virtual router or virtual gateway of a route or gateway route; empty otherwise.
    pub parent: String,
    /// The resource's own name.
    pub name: String,
}

impl ResourceKey {
    /// The key of mesh `name`.
    pub fn mesh(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            mesh: name.clone(),
            kind: ResourceKind::Mesh,
            parent: String::new(),
            name,
        }
    }

    /// The key of a resource that sits directly in `mesh`.
    pub fn in_mesh(kind: ResourceKind, mesh: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            mesh: mesh.into(),
            kind,
            parent: String::new(),
            name: name.into(),
        }
    }

    /// The key of a route or gateway route under `parent` in `mesh`.
    pub fn child(
        kind: ResourceKind,
        mesh: impl Into<String>,
        parent: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            mesh: mesh.into(),
            kind,
            parent: parent.into(),
            name: name.into(),
        }
    }

    /// The key of this resource's mesh.
    pub fn mesh_key(&self) -> ResourceKey {
        ResourceKey::mesh(self.mesh.clone())
    }

    /// The key of this route's router or gateway route's gateway.
    pub fn parent_key(&self) -> Option<ResourceKey> {
        self.kind
            .parent_kind()
            .map(|kind| ResourceKey::in_mesh(kind, self.mesh.clone(), self.parent.clone()))
    }

    /// The resource's path inside the account: `mesh/m/virtualRouter/r/route/x`.
    pub fn arn_resource(&self) -> String {
        match self.kind {
            ResourceKind::Mesh => format!("mesh/{}", self.mesh),
            ResourceKind::Route | ResourceKind::GatewayRoute => {
                let parent = self
                    .kind
                    .parent_kind()
                    .expect("routes have parents")
                    .arn_segment();
                format!(
                    "mesh/{}/{}/{}/{}/{}",
                    self.mesh,
                    parent,
                    self.parent,
                    self.kind.arn_segment(),
                    self.name
                )
            }
            kind => format!("mesh/{}/{}/{}", self.mesh, kind.arn_segment(), self.name),
        }
    }

    /// Parses `mesh/m`, `mesh/m/virtualNode/n` or `mesh/m/virtualRouter/r/route/x`.
    pub fn from_arn_resource(resource: &str) -> Option<ResourceKey> {
        let parts: Vec<&str> = resource.split('/').collect();
        let kind_of = |segment: &str| {
            ResourceKind::ALL
                .into_iter()
                .find(|kind| kind.arn_segment() == segment)
        };
        match parts.as_slice() {
            ["mesh", mesh] => Some(ResourceKey::mesh(*mesh)),
            ["mesh", mesh, kind, name] => {
                let kind = kind_of(kind)?;
                (kind != ResourceKind::Mesh && kind.parent_kind().is_none())
                    .then(|| ResourceKey::in_mesh(kind, *mesh, *name))
            }
            ["mesh", mesh, parent_kind, parent, kind, name] => {
                let kind = kind_of(kind)?;
                (kind.parent_kind() == Some(kind_of(parent_kind)?))
                    .then(|| ResourceKey::child(kind, *mesh, *parent, *name))
            }
            _ => None,
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn_resource())
    }
}

/// The spec of a resource, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "spec")]
pub enum Spec {
    /// A mesh's spec.
    Mesh(MeshSpec),
    /// A virtual node's spec.
    VirtualNode(VirtualNodeSpec),
    /// A virtual router's spec.
    VirtualRouter(VirtualRouterSpec),
    /// A route's spec.
    Route(RouteSpec),
    /// A virtual service's spec.
    VirtualService(VirtualServiceSpec),
    /// A virtual gateway's spec.
    VirtualGateway(VirtualGatewaySpec),
    /// A gateway route's spec.
    GatewayRoute(GatewayRouteSpec),
}

impl Spec {
    /// The kind of resource this spec belongs to.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Spec::Mesh(_) => ResourceKind::Mesh,
            Spec::VirtualNode(_) => ResourceKind::VirtualNode,
            Spec::VirtualRouter(_) => ResourceKind::VirtualRouter,
            Spec::Route(_) => ResourceKind::Route,
            Spec::VirtualService(_) => ResourceKind::VirtualService,
            Spec::VirtualGateway(_) => ResourceKind::VirtualGateway,
            Spec::GatewayRoute(_) => ResourceKind::GatewayRoute,
        }
    }
}

/// A point in time, in milliseconds since the Unix epoch. The API shows it as
/// fractional epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since_epoch.as_millis() as u64)
    }

    /// Epoch seconds with a millisecond fraction, as the API's JSON carries them.
    pub fn epoch_seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

/// What the service keeps about a resource besides its spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// A UUID, fixed at creation.
    pub uid: String,
    /// 1 at creation, one more at every update.
    pub version: i64,
    /// When the resource was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub last_updated_at: Timestamp,
}

/// The lifecycle status the API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// In the store and in effect.
    Active,
    /// Removed (only ever seen in a delete's response).
    Deleted,
}

impl Status {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Deleted => "DELETED",
        }
    }
}

/// One stored resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Which resource this is.
    pub key: ResourceKey,
    /// Its spec, with the service's defaults filled in.
    pub spec: Spec,
    /// uid, version and timestamps.
    pub metadata: Metadata,
    /// User tags, in the order they were applied.
    pub tags: Vec<TagRef>,
    /// Active, or deleted in a delete's response.
    pub status: Status,
}
