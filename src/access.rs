//! Who may stream what from the xDS server: proxies prove who they are with a client
//! certificate (its SPIFFE URI SAN names the node) or a bearer token (the token file
//! names the nodes it may stream), and may stream only those nodes. The ADS shell
//! (`xds`) asks [`Gate`] once per stream, before anything is compiled or sent.
//!
//! The rules:
//! - A Unix-socket peer (`--xds-uds`) may stream any node: only local processes that
//!   may open the socket file reach it.
//! - Over TCP, when neither a client CA nor a token file is configured, any peer may
//!   stream any node (meshd refuses to start so on a non-loopback address unless
//!   `--xds-insecure`).
//! - Otherwise a TCP peer must present a client certificate that chains to the client
//!   CA and names `spiffe://<trust domain>/mesh/<mesh>/virtualNode/<name>` (or
//!   `virtualGateway`), or a token of the token file; either suffices. It may stream a
//!   node its certificate names or its token allows; anything else is
//!   `PERMISSION_DENIED`, and no credential (or only bad ones) `UNAUTHENTICATED`.
//! - CSDS (every proxy's status) is for operators: a certificate naming
//!   `spiffe://<trust domain>/operator`, or a token allowed `*`.
//! - At most `max_streams_per_identity` streams at once per identity (a certificate's
//!   identity, a token, or, for an unauthenticated peer, the node id it claims).

mod identity;
mod refusals;
mod secret;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;

use dashmap::DashMap;
use envoy_types::pb::envoy::config::core::v3::Node;
use serde::Serialize;
use tonic::Status;

use crate::compile::ProxyId;
use crate::hub::{Hub, HubCounts};
use crate::net::{ClientCertificate, Remote};
use crate::xds::{Admission, Control, Peer};

pub use identity::{
    CertificateIdentity, CertificateIdentityError, MAX_NODE_ID_LENGTH, NodeIdError,
    certificate_identity, identify,
};
pub use refusals::{RefusalReason, Refusals, RefusedStream};
pub use secret::SecretDigest;
pub use tokens::{NodePattern, Segment, TokenFile, TokenFileError, TokenGrant};

/// The default SPIFFE trust domain of proxies' certificates.
pub const DEFAULT_TRUST_DOMAIN: &str = "meshd";
/// The default most streams one identity may hold at once.
pub const DEFAULT_MAX_STREAMS_PER_IDENTITY: usize = 10_000;

/// How the xDS server authenticates and authorizes proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// Whether client certificates are checked (a client CA is configured on TLS).
    pub client_certificates: bool,
    /// The token file, if tokens are accepted.
    pub tokens_file: Option<PathBuf>,
    /// The SPIFFE trust domain of certificates' identities.
    pub trust_domain: String,
    /// The most streams one identity may hold at once.
    pub max_streams_per_identity: usize,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            client_certificates: false,
            tokens_file: None,
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            max_streams_per_identity: DEFAULT_MAX_STREAMS_PER_IDENTITY,
        }
    }
}

impl AccessConfig {
    /// Whether TCP peers must present a credential.
    pub fn requires_credentials(&self) -> bool {
        self.client_certificates || self.tokens_file.is_some()
    }
}

/// Who a stream's peer proved to be.
#[derive(Debug, Clone, Default)]
struct Principal {
    /// Not asked to prove anything (a Unix socket, or no credentials configured).
    open: bool,
    certificate: Option<CertificateIdentity>,
    token: Option<Arc<TokenGrant>>,
}

/// A refusal: why, and what the peer is told.
struct Refused {
    reason: RefusalReason,
    message: String,
}

impl Refused {
    fn new(reason: RefusalReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    fn status(&self) -> Status {
        match self.reason {
            RefusalReason::NoCredential
            | RefusalReason::UnknownToken
            | RefusalReason::UntrustedCertificate
            | RefusalReason::CertificateIdentity => Status::unauthenticated(&self.message),
            RefusalReason::InvalidNodeId => Status::invalid_argument(&self.message),
            RefusalReason::NotPermitted => Status::permission_denied(&self.message),
            RefusalReason::TooManyStreams => Status::resource_exhausted(&self.message),
        }
    }
}

/// The identity streams are counted under for the per-identity limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IdentityKey {
    Certificate(CertificateIdentity),
    Token(usize),
    Claimed(ProxyId),
}

/// What an admitted stream holds: its proxy's configuration and its place under its
/// identity's limit.
struct StreamLease {
    _proxy: crate::hub::ProxyLease,
    _identity: IdentityLease,
}

struct IdentityLease {
    counts: Arc<DashMap<IdentityKey, usize>>,
    key: IdentityKey,
}

impl Drop for IdentityLease {
    fn drop(&mut self) {
        self.counts.remove_if_mut(&self.key, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

/// Everything the status view shows of the xDS server's gate and hub.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateView {
    /// Whether TCP peers must present a credential.
    pub credentials_required: bool,
    /// The hub's counts.
    pub hub: HubCounts,
    /// Refused streams by reason.
    pub refused_streams: std::collections::BTreeMap<&'static str, u64>,
    /// The latest refusals, oldest first.
    pub recent_refusals: Vec<RefusedStream>,
}

/// The xDS server's [`Control`]: authenticates and authorizes each stream, then hands
/// it its proxy's configuration from the hub.
pub struct Gate {
    hub: Arc<Hub>,
    config: AccessConfig,
    tokens: Option<TokenFile>,
    refusals: Refusals,
    streams: Arc<DashMap<IdentityKey, usize>>,
}

impl Gate {
    /// The gate of `config` in front of `hub`; reads the token file.
    pub fn new(hub: Arc<Hub>, config: AccessConfig) -> Result<Self, TokenFileError> {
        let tokens = config
            .tokens_file
            .as_deref()
            .map(TokenFile::open)
            .transpose()?;
        Ok(Self {
            hub,
            config,
            tokens,
            refusals: Refusals::default(),
            streams: Arc::default(),
        })
    }

    /// Reads the token file again (on SIGHUP); a file that cannot be used keeps the
    /// tokens in force. Returns how many tokens are in force, `None` without a file.
    pub fn reload_tokens(&self) -> Option<Result<usize, TokenFileError>> {
        self.tokens.as_ref().map(TokenFile::reload)
    }

    /// The refusals so far.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// The status view of the gate and the hub.
    pub fn view(&self) -> GateView {
        GateView {
            credentials_required: self.config.requires_credentials(),
            hub: self.hub.counts(),
            refused_streams: self
                .refusals
                .counts()
                .into_iter()
                .map(|(reason, count)| (reason.label(), count))
                .collect(),
            recent_refusals: self.refusals.recent(),
        }
    }

    fn authenticate(&self, peer: &Peer) -> Result<Principal, Refused> {
        if peer.connection.remote == Remote::Unix || !self.config.requires_credentials() {
            return Ok(Principal {
                open: true,
                ..Principal::default()
            });
        }
        let certificate = match &peer.connection.client_certificate {
            ClientCertificate::None => None,
            ClientCertificate::Untrusted(reason) => Some(Err(Refused::new(
                RefusalReason::UntrustedCertificate,
                format!(
                    "the client certificate does not chain to meshd's --xds-client-ca: {reason}"
                ),
            ))),
            ClientCertificate::Verified(chain) => Some(
                certificate_identity(&chain[0], &self.config.trust_domain)
                    .map_err(|e| Refused::new(RefusalReason::CertificateIdentity, e.to_string())),
            ),
        };
        let token = peer.bearer_token.as_deref().map(|token| {
            let grant = self.tokens.as_ref().and_then(|tokens| tokens.lookup(token));
            grant.ok_or_else(|| {
                Refused::new(
                    RefusalReason::UnknownToken,
                    "the bearer token is not one of meshd's --xds-tokens",
                )
            })
        });
        match (certificate, token) {
            (None, None) => Err(Refused::new(
                RefusalReason::NoCredential,
                "meshd requires a credential: a client certificate (spiffe://<trust domain>/mesh/<mesh>/virtualNode/<name>) or `authorization: Bearer <token>` metadata",
            )),
            (Some(Err(refused)), None | Some(Err(_))) | (None, Some(Err(refused))) => Err(refused),
            (certificate, token) => Ok(Principal {
                open: false,
                certificate: certificate.and_then(Result::ok),
                token: token.and_then(Result::ok),
            }),
        }
    }

    fn authorize(&self, principal: &Principal, proxy: &ProxyId) -> Result<(), Refused> {
        let by_certificate =
            principal.certificate.as_ref() == Some(&CertificateIdentity::Proxy(proxy.clone()));
        let by_token = principal
            .token
            .as_ref()
            .is_some_and(|grant| grant.allows(proxy));
        if principal.open || by_certificate || by_token {
            return Ok(());
        }
        let who = match (&principal.certificate, &principal.token) {
            (Some(CertificateIdentity::Proxy(named)), _) => {
                format!("the client certificate names {named}")
            }
            (Some(CertificateIdentity::Operator), _) => {
                "the client certificate is an operator's".to_string()
            }
            (None, Some(grant)) => format!(
                "the bearer token (line {} of the token file) does not allow it",
                grant.line
            ),
            (None, None) => "no credential allows it".to_string(),
        };
        Err(Refused::new(
            RefusalReason::NotPermitted,
            format!("this stream may not stream {proxy}: {who}"),
        ))
    }

    fn identity_key(principal: &Principal, proxy: &ProxyId) -> IdentityKey {
        match (&principal.certificate, &principal.token) {
            (Some(identity), _) => IdentityKey::Certificate(identity.clone()),
            (None, Some(grant)) => IdentityKey::Token(grant.line),
            (None, None) => IdentityKey::Claimed(proxy.clone()),
        }
    }

    fn hold_identity(&self, key: IdentityKey) -> Result<IdentityLease, Refused> {
        let mut count = self.streams.entry(key.clone()).or_insert(0);
        if *count >= self.config.max_streams_per_identity {
            return Err(Refused::new(
                RefusalReason::TooManyStreams,
                format!(
                    "this identity holds {} streams already, the most meshd allows (--xds-max-streams-per-identity)",
                    *count
                ),
            ));
        }
        *count += 1;
        Ok(IdentityLease {
            counts: self.streams.clone(),
            key,
        })
    }

    fn admit_stream(&self, peer: &Peer, node: Option<&Node>) -> Result<Admission, Refused> {
        let principal = self.authenticate(peer)?;
        let proxy = identify(node)
            .map_err(|e| Refused::new(RefusalReason::InvalidNodeId, e.to_string()))?;
        self.authorize(&principal, &proxy)?;
        let identity = self.hold_identity(Self::identity_key(&principal, &proxy))?;
        let lease = self.hub.watch(&proxy);
        // Key material only to a peer that proved it is this proxy, or to one on this
        // host when no proof is asked (a Unix socket, a loopback address); never to an
        // open stream from elsewhere (`--xds-insecure`).
        let secrets = !principal.open
            || match peer.connection.remote {
                Remote::Unix => true,
                Remote::Tcp(addr) => addr.ip().to_canonical().is_loopback(),
            };
        Ok(Admission {
            resource: proxy.to_string(),
            updates: lease.updates.clone(),
            secrets,
            lease: Box::new(StreamLease {
                _proxy: lease,
                _identity: identity,
            }),
        })
    }

    fn refuse(&self, peer: &Peer, node: Option<&Node>, refused: Refused) -> Status {
        let remote = match peer.connection.remote {
            Remote::Unix => "unix".to_string(),
            Remote::Tcp(addr) => addr.to_string(),
        };
        let node_id = node.map(|n| n.id.as_str()).unwrap_or_default();
        self.refusals
            .record(refused.reason, remote, node_id, &refused.message);
        refused.status()
    }
}

impl Control for Gate {
    fn admit(&self, peer: &Peer, node: Option<&Node>) -> Result<Admission, Status> {
        self.admit_stream(peer, node)
            .map_err(|refused| self.refuse(peer, node, refused))
    }

    fn admit_operator(&self, peer: &Peer) -> Result<(), Status> {
        let principal = self
            .authenticate(peer)
            .map_err(|refused| self.refuse(peer, None, refused))?;
        let by_certificate = principal.certificate == Some(CertificateIdentity::Operator);
        let by_token = principal
            .token
            .as_ref()
            .is_some_and(|grant| grant.allows_every_node());
        if principal.open || by_certificate || by_token {
            return Ok(());
        }
        Err(self.refuse(
            peer,
            None,
            Refused::new(
                RefusalReason::NotPermitted,
                "the status of every proxy (CSDS) is for operators: a certificate naming spiffe://<trust domain>/operator or a token allowed *",
            ),
        ))
    }
}
