//! Certificates and trust for ACM-backed TLS, behind one seam ([`Certificates`], a
//! [`Feed`]): the hub says which secrets its proxies' configurations name (a listener's
//! `certificate.acm.certificateArn`, a client policy's
//! `validation.trust.acm.certificateAuthorityArns`), one source provides them, and the
//! hub serves each as an SDS secret over ADS to exactly the proxies that name it.
//!
//! Sources: meshd's own certificate authority ([`local`], `--acm local`, the default),
//! which issues a short-lived leaf per certificate ARN and virtual node and trusts
//! itself for every CA ARN; or AWS Certificate Manager ([`aws`], `--acm aws`), which
//! exports the certificate named and fetches the CA certificates named.
//!
//! A certificate that cannot be had leaves the last one in force (marked failing in the
//! status and the proxy's diagnostics); a proxy never loses a good secret for a failure.

pub mod authority;
pub mod aws;
pub mod local;
mod pem;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::compile::ProxyId;
use crate::feed::{EntryState, Feed};

pub use pem::{CertificateFacts, PemError, certificate_facts};

/// The separator between the CA ARNs of one trust secret's name.
pub const TRUST_NAME_SEPARATOR: char = ',';

/// Who a certificate is for: what its SANs name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    /// The proxy whose listener serves it (its SPIFFE id is a URI SAN).
    pub proxy: ProxyId,
    /// DNS names: the virtual node's service-discovery name (a DNS hostname, or
    /// `<service>.<namespace>` for Cloud Map), what App Mesh's clients check by default.
    pub dns_names: Vec<String>,
}

/// One secret a proxy's configuration names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretQuery {
    /// A listener's certificate chain and private key: ACM certificate `arn`, served by
    /// `subject`'s proxy.
    Certificate {
        /// The certificate's ARN (the secret's name).
        arn: String,
        /// Who serves it.
        subject: Subject,
    },
    /// The CA certificates a client trusts: ACM Private CA `arns` (the secret's name is
    /// them joined with [`TRUST_NAME_SEPARATOR`]).
    Trust {
        /// The CAs' ARNs, in the order the spec names them.
        arns: Vec<String>,
    },
}

impl SecretQuery {
    /// The name of the secret this query is served as.
    pub fn secret_name(&self) -> String {
        match self {
            SecretQuery::Certificate { arn, .. } => arn.clone(),
            SecretQuery::Trust { arns } => trust_secret_name(arns),
        }
    }
}

/// The name of the trust secret of `arns`.
pub fn trust_secret_name(arns: &[String]) -> String {
    arns.join(&TRUST_NAME_SEPARATOR.to_string())
}

impl fmt::Display for SecretQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretQuery::Certificate { arn, subject } => {
                write!(f, "certificate {arn} for {}", subject.proxy)
            }
            SecretQuery::Trust { arns } => write!(f, "trust in {}", trust_secret_name(arns)),
        }
    }
}

/// What a source found for a query.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretMaterial {
    /// A certificate chain (leaf first, PEM) and its private key (PEM, unencrypted; held
    /// in memory only, wiped when dropped).
    Certificate {
        /// The leaf and the certificates that chain it to its CA, PEM.
        chain: String,
        /// The leaf's private key, PEM.
        key: Zeroizing<String>,
        /// The leaf's serial number and validity.
        facts: CertificateFacts,
    },
    /// CA certificates to trust, PEM.
    Trust {
        /// The CA certificates, PEM, one after another.
        bundle: String,
        /// The earliest expiry and the first certificate's serial.
        facts: CertificateFacts,
    },
}

impl fmt::Debug for SecretMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretMaterial::Certificate { facts, .. } => f
                .debug_struct("Certificate")
                .field("facts", facts)
                .finish_non_exhaustive(),
            SecretMaterial::Trust { facts, .. } => {
                f.debug_struct("Trust").field("facts", facts).finish()
            }
        }
    }
}

impl SecretMaterial {
    /// The serial number and validity of the leaf (or of the first CA certificate).
    pub fn facts(&self) -> &CertificateFacts {
        match self {
            SecretMaterial::Certificate { facts, .. } | SecretMaterial::Trust { facts, .. } => {
                facts
            }
        }
    }
}

/// Which certificate source `meshd serve` uses (`--acm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum SourceKind {
    /// meshd's own certificate authority, kept in the store.
    Local,
    /// AWS Certificate Manager and ACM Private CA (or anything that speaks their APIs).
    Aws,
}

/// The default lifetime of a leaf meshd's own CA issues.
pub const DEFAULT_CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// meshd's own CA: which one, and what it issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// An intermediate CA to issue from (`--ca-cert`, `--ca-key`: PEM files), instead of
    /// the root meshd generates and keeps in the store.
    pub intermediate: Option<(PathBuf, PathBuf)>,
    /// How long a leaf is valid; it is issued again at two thirds of that.
    pub cert_ttl: Duration,
    /// The SPIFFE trust domain of leaves' URI SANs.
    pub trust_domain: String,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            intermediate: None,
            cert_ttl: DEFAULT_CERT_TTL,
            trust_domain: crate::access::DEFAULT_TRUST_DOMAIN.into(),
        }
    }
}

/// Which source `meshd serve` follows, and how.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// meshd's own CA (`--acm local`).
    Local(LocalConfig),
    /// AWS Certificate Manager (`--acm aws`).
    Aws(aws::AwsConfig),
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Local(LocalConfig::default())
    }
}

impl SourceConfig {
    /// Which kind of source this is.
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::Local(_) => SourceKind::Local,
            SourceConfig::Aws(_) => SourceKind::Aws,
        }
    }
}

/// The secrets each followed query has, shared by the hub and the source.
pub struct Certificates {
    source: SourceKind,
    feed: Feed<SecretQuery, SecretMaterial>,
    /// meshd's own CA's certificates, once the local source has it.
    bundle: parking_lot::Mutex<Option<String>>,
}

/// One secret meshd follows, for `GET /meshd/v1/certificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowedSecret {
    /// The secret's name (the ARN, or the CA ARNs joined by commas).
    pub name: String,
    /// `certificate` or `trust`.
    pub kind: &'static str,
    /// The proxy a certificate is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Where it comes from.
    pub source: SourceKind,
    /// The leaf's (or first CA certificate's) serial number, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// When it expires (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// When the source was last read successfully (seconds since the epoch).
    pub last_success: Option<u64>,
    /// Why it cannot be had now (the proxies keep the last one), while it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Certificates {
    /// No query followed yet; secrets will come from `source`.
    pub fn new(source: SourceKind) -> Arc<Self> {
        Arc::new(Self {
            source,
            feed: Feed::default(),
            bundle: parking_lot::Mutex::new(None),
        })
    }

    /// The source in use.
    pub fn source(&self) -> SourceKind {
        self.source
    }

    /// meshd's own CA's certificates (PEM), with `--acm local` once it is ready.
    pub fn bundle(&self) -> Option<String> {
        self.bundle.lock().clone()
    }

    /// Records the CA bundle of meshd's own CA.
    pub fn set_bundle(&self, bundle: String) {
        *self.bundle.lock() = Some(bundle);
    }

    /// The material found for `query`, if any yet.
    pub fn material(&self, query: &SecretQuery) -> Option<Arc<SecretMaterial>> {
        self.feed.answer(query)
    }

    /// What is known of `query`: the material found, and why it cannot be had now
    /// (while it cannot).
    pub fn state(&self, query: &SecretQuery) -> Option<EntryState<SecretMaterial>> {
        self.feed.state(query)
    }

    /// The hub's needs: exactly `queries` are followed from now on.
    pub fn want(&self, queries: BTreeSet<SecretQuery>) {
        self.feed.want(queries);
    }

    /// What the hub needs, for a source to follow.
    pub fn wanted(&self) -> watch::Receiver<BTreeSet<SecretQuery>> {
        self.feed.wanted()
    }

    /// A successful fetch or issue of `query`.
    pub fn report(&self, query: &SecretQuery, material: SecretMaterial) {
        if let Some(reported) = self.feed.report(query, material)
            && reported.recovered
        {
            tracing::info!(%query, "the certificate can be had again");
        }
    }

    /// A failed fetch: the last material stays in force.
    pub fn report_failure(&self, query: &SecretQuery, error: String) {
        let message = error.clone();
        if self.feed.report_failure(query, error) == Some(true) {
            tracing::warn!(%query, "cannot get the certificate, proxies keep the last one: {message}");
        }
    }

    /// Waits until some query's material changed; returns those queries.
    pub async fn changed(&self) -> BTreeSet<SecretQuery> {
        self.feed.changed().await
    }

    /// Every secret followed, in query order. Never any key material.
    pub fn status(&self) -> Vec<FollowedSecret> {
        self.feed
            .entries()
            .into_iter()
            .map(|(query, state)| {
                let facts = state.answer.as_ref().map(|m| m.facts().clone());
                FollowedSecret {
                    name: query.secret_name(),
                    kind: match query {
                        SecretQuery::Certificate { .. } => "certificate",
                        SecretQuery::Trust { .. } => "trust",
                    },
                    proxy: match &query {
                        SecretQuery::Certificate { subject, .. } => Some(subject.proxy.to_string()),
                        SecretQuery::Trust { .. } => None,
                    },
                    source: self.source,
                    serial: facts.as_ref().map(|f| f.serial.clone()),
                    not_after: facts.as_ref().map(|f| f.not_after),
                    last_success: state.last_success,
                    error: state.failure,
                }
            })
            .collect()
    }
}

/// Stand-ins for the secrets `config` names, from a CA made for the purpose and then
/// forgotten: what `meshd compile --bootstrap` puts in a static bootstrap so that
/// `envoy --mode validate` checks listeners and clusters with real certificates.
pub fn stand_in_secrets(
    config: &crate::compile::ProxyConfig,
) -> Result<
    std::collections::BTreeMap<
        String,
        envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret,
    >,
    authority::AuthorityError,
> {
    let now = std::time::SystemTime::now();
    let ca = authority::Authority::new("a stand-in CA", authority::generate_root(now)?)?;
    let mut secrets = std::collections::BTreeMap::new();
    for (name, query) in &config.secrets {
        let material = match query {
            SecretQuery::Certificate { subject, .. } => ca.issue(
                subject,
                crate::access::DEFAULT_TRUST_DOMAIN,
                DEFAULT_CERT_TTL,
                now,
            )?,
            SecretQuery::Trust { .. } => SecretMaterial::Trust {
                bundle: ca.bundle().to_string(),
                facts: certificate_facts(ca.bundle()).map_err(|source| {
                    authority::AuthorityError::Pem {
                        what: "the stand-in CA".into(),
                        source,
                    }
                })?,
            },
        };
        secrets.insert(
            name.clone(),
            crate::compile::secrets::secret(name, &material),
        );
    }
    Ok(secrets)
}
