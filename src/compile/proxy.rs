//! Who a proxy is: the App Mesh resource an Envoy serves, from its `node.id`.

use std::fmt;

/// What kind of App Mesh resource a proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyKind {
    /// A virtual node's sidecar.
    VirtualNode,
    /// A virtual gateway.
    VirtualGateway,
}

/// A proxy's identity: `mesh/<mesh>/virtualNode/<name>` or `mesh/<mesh>/virtualGateway/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyId {
    /// The mesh.
    pub mesh: String,
    /// Virtual node or virtual gateway.
    pub kind: ProxyKind,
    /// The resource's name.
    pub name: String,
}

/// The longest mesh or resource name App Mesh allows.
pub const MAX_NAME_LENGTH: usize = 255;

/// The most of a refused node id an error quotes.
const QUOTED_ID_LENGTH: usize = 300;

/// A node id that names no App Mesh resource (quoted, cut to 300 bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "node id {0:?} is not of the form mesh/<mesh>/virtualNode/<name> or mesh/<mesh>/virtualGateway/<name> (or the full ARN), names of at most 255 characters"
)]
pub struct InvalidProxyId(pub String);

impl InvalidProxyId {
    fn of(node_id: &str) -> Self {
        let mut end = node_id.len().min(QUOTED_ID_LENGTH);
        while !node_id.is_char_boundary(end) {
            end -= 1;
        }
        Self(node_id[..end].to_string())
    }
}

impl ProxyId {
    /// A virtual node's proxy.
    pub fn virtual_node(mesh: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            mesh: mesh.into(),
            kind: ProxyKind::VirtualNode,
            name: name.into(),
        }
    }

    /// A virtual gateway's proxy.
    pub fn virtual_gateway(mesh: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            mesh: mesh.into(),
            kind: ProxyKind::VirtualGateway,
            name: name.into(),
        }
    }

    /// Parses `mesh/<m>/virtualNode/<n>`, `mesh/<m>/virtualGateway/<n>`, or a full ARN
    /// ending in either (`arn:aws:appmesh:<region>:<account>:mesh/…`).
    pub fn parse(node_id: &str) -> Result<Self, InvalidProxyId> {
        let invalid = || InvalidProxyId::of(node_id);
        let path = match node_id.strip_prefix("arn:") {
            Some(rest) => rest.splitn(5, ':').nth(4).ok_or_else(invalid)?,
            None => node_id,
        };
        let parts: Vec<&str> = path.split('/').collect();
        let [mesh_word, mesh, kind, name] = parts.as_slice() else {
            return Err(invalid());
        };
        let well_sized = |name: &str| !name.is_empty() && name.len() <= MAX_NAME_LENGTH;
        if *mesh_word != "mesh" || !well_sized(mesh) || !well_sized(name) {
            return Err(invalid());
        }
        let kind = match *kind {
            "virtualNode" => ProxyKind::VirtualNode,
            "virtualGateway" => ProxyKind::VirtualGateway,
            _ => return Err(invalid()),
        };
        Ok(Self {
            mesh: mesh.to_string(),
            kind,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for ProxyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ProxyKind::VirtualNode => "virtualNode",
            ProxyKind::VirtualGateway => "virtualGateway",
        };
        write!(f, "mesh/{}/{kind}/{}", self.mesh, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_arn_forms() {
        assert_eq!(
            ProxyId::parse("mesh/m/virtualNode/a").unwrap(),
            ProxyId::virtual_node("m", "a")
        );
        assert_eq!(
            ProxyId::parse("arn:aws:appmesh:us-east-1:111122223333:mesh/m/virtualGateway/g")
                .unwrap(),
            ProxyId::virtual_gateway("m", "g")
        );
        assert!(ProxyId::parse("mesh/m/virtualRouter/r").is_err());
        assert!(ProxyId::parse("node-1").is_err());
        let long = "n".repeat(MAX_NAME_LENGTH);
        assert!(ProxyId::parse(&format!("mesh/m/virtualNode/{long}")).is_ok());
        let refused = ProxyId::parse(&format!("mesh/m/virtualNode/{long}n")).unwrap_err();
        assert!(
            refused.0.len() <= QUOTED_ID_LENGTH,
            "the error quotes a cut id"
        );
        assert_eq!(
            ProxyId::virtual_node("m", "a").to_string(),
            "mesh/m/virtualNode/a"
        );
    }
}
