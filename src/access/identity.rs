//! Who a proxy says it is (its `node.id`) and who a certificate says it is (its SPIFFE
//! URI SAN).

use envoy_types::pb::envoy::config::core::v3::Node;
use rustls_pki_types::CertificateDer;

use crate::compile::{InvalidProxyId, ProxyId};

/// The longest node id read at all: an ARN of a resource with App Mesh's longest names
/// (255 characters for the mesh and for the resource) is about 600 bytes.
pub const MAX_NODE_ID_LENGTH: usize = 1024;

/// Why a stream's node names no proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// The first request carried no node.
    #[error("the first request of a stream must carry node")]
    Missing,
    /// `node.id` (or `node.cluster`) is too long to be an App Mesh resource.
    #[error(
        "node.id is {0} bytes long; an App Mesh node id (names of at most 255 characters) is at most 1024"
    )]
    TooLong(usize),
    /// Neither `node.id` nor `node.cluster` names a proxy.
    #[error("{0}")]
    Invalid(InvalidProxyId),
}

/// The proxy a node says it is: `node.id`, else `node.cluster` (the App Mesh image sets
/// either). A refusal quotes the id that was sent.
pub fn identify(node: Option<&Node>) -> Result<ProxyId, NodeIdError> {
    let node = node.ok_or(NodeIdError::Missing)?;
    for id in [&node.id, &node.cluster] {
        if id.len() > MAX_NODE_ID_LENGTH {
            return Err(NodeIdError::TooLong(id.len()));
        }
    }
    ProxyId::parse(&node.id)
        .or_else(|err| ProxyId::parse(&node.cluster).map_err(|_| err))
        .map_err(NodeIdError::Invalid)
}

/// Who a client certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertificateIdentity {
    /// One proxy: `spiffe://<trust domain>/mesh/<mesh>/virtualNode/<name>` (or
    /// `virtualGateway`).
    Proxy(ProxyId),
    /// An operator, who may read every proxy's status: `spiffe://<trust domain>/operator`.
    Operator,
}

/// Why a trusted certificate names nobody meshd knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateIdentityError {
    /// The certificate cannot be parsed.
    #[error("the client certificate cannot be read: {0}")]
    Unreadable(String),
    /// No URI SAN of the trust domain names a proxy or the operator.
    #[error(
        "the client certificate has no URI SAN spiffe://{trust_domain}/mesh/<mesh>/virtualNode/<name> (or /virtualGateway/<name>, or /operator); it has {found:?}"
    )]
    NoIdentity {
        /// The trust domain meshd expects.
        trust_domain: String,
        /// The URI SANs it has.
        found: Vec<String>,
    },
}

/// The identity of a client certificate (`der`, already checked to chain to the client
/// CA): its first URI SAN in `trust_domain` that names a proxy or the operator.
pub fn certificate_identity(
    der: &CertificateDer<'_>,
    trust_domain: &str,
) -> Result<CertificateIdentity, CertificateIdentityError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| CertificateIdentityError::Unreadable(e.to_string()))?;
    let uris: Vec<String> = cert
        .subject_alternative_name()
        .map_err(|e| CertificateIdentityError::Unreadable(e.to_string()))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let prefix = format!("spiffe://{trust_domain}/");
    uris.iter()
        .filter_map(|uri| uri.strip_prefix(&prefix))
        .find_map(|path| match path {
            "operator" => Some(CertificateIdentity::Operator),
            path if !path.starts_with("arn:") => {
                ProxyId::parse(path).ok().map(CertificateIdentity::Proxy)
            }
            _ => None,
        })
        .ok_or_else(|| CertificateIdentityError::NoIdentity {
            trust_domain: trust_domain.to_string(),
            found: uris.iter().take(8).cloned().collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, cluster: &str) -> Node {
        Node {
            id: id.into(),
            cluster: cluster.into(),
            ..Default::default()
        }
    }

    #[test]
    fn identify_accepts_app_mesh_ids_and_quotes_the_id_it_refuses() {
        assert_eq!(
            identify(Some(&node("mesh/m/virtualNode/a", ""))).unwrap(),
            ProxyId::virtual_node("m", "a")
        );
        let arn = "arn:aws:appmesh:us-east-1:111122223333:mesh/m/virtualGateway/g";
        assert_eq!(
            identify(Some(&node(arn, ""))).unwrap(),
            ProxyId::virtual_gateway("m", "g")
        );
        // node.cluster is the fallback, as the App Mesh image may set either.
        assert_eq!(
            identify(Some(&node("sidecar-1", "mesh/m/virtualNode/b"))).unwrap(),
            ProxyId::virtual_node("m", "b")
        );
        let refused = identify(Some(&node("garbage", ""))).unwrap_err();
        let message = refused.to_string();
        assert!(message.contains("\"garbage\""), "{message}");
        assert!(
            message.contains("mesh/<mesh>/virtualNode/<name>"),
            "{message}"
        );
        assert_eq!(identify(None).unwrap_err(), NodeIdError::Missing);
    }

    #[test]
    fn identify_refuses_ids_longer_than_app_mesh_names_allow_without_quoting_them() {
        let huge = format!("mesh/m/virtualNode/{}", "n".repeat(1 << 20));
        let refused = identify(Some(&node(&huge, ""))).unwrap_err();
        assert_eq!(refused, NodeIdError::TooLong(huge.len()));
        assert!(refused.to_string().len() < 200);
        let long_name = format!("mesh/m/virtualNode/{}", "n".repeat(256));
        assert!(matches!(
            identify(Some(&node(&long_name, ""))),
            Err(NodeIdError::Invalid(_))
        ));
    }

    fn certificate_with_uris(uris: &[&str]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = uris
            .iter()
            .map(|uri| rcgen::SanType::URI((*uri).try_into().unwrap()))
            .collect();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_certificate_names_its_proxy_or_the_operator_by_a_spiffe_uri_of_the_trust_domain() {
        let cert = certificate_with_uris(&[
            "spiffe://other/mesh/m/virtualNode/x",
            "spiffe://meshd/mesh/m/virtualNode/a",
        ]);
        assert_eq!(
            certificate_identity(&cert, "meshd").unwrap(),
            CertificateIdentity::Proxy(ProxyId::virtual_node("m", "a"))
        );
        let gateway = certificate_with_uris(&["spiffe://prod.example/mesh/m/virtualGateway/in"]);
        assert_eq!(
            certificate_identity(&gateway, "prod.example").unwrap(),
            CertificateIdentity::Proxy(ProxyId::virtual_gateway("m", "in"))
        );
        let operator = certificate_with_uris(&["spiffe://meshd/operator"]);
        assert_eq!(
            certificate_identity(&operator, "meshd").unwrap(),
            CertificateIdentity::Operator
        );
        let foreign = certificate_with_uris(&["spiffe://other/mesh/m/virtualNode/a"]);
        let refused = certificate_identity(&foreign, "meshd").unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("spiffe://other/mesh/m/virtualNode/a"),
            "{refused}"
        );
        assert!(certificate_identity(&certificate_with_uris(&[]), "meshd").is_err());
    }
}
