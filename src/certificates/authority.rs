//! meshd's own certificate authorities: the root generated when a proxy first needs one and kept in
//! the store (record `authority/root`, so every replica issues from the same one and a
//! restart keeps it), an intermediate given with `--ca-cert`/`--ca-key` instead, and CAs
//! imported under an ARN (`meshd ca import`, records `authority/import/<arn>`), which
//! stand for that ARN: a listener whose `certificateArn` is an imported ARN gets leaves
//! issued by that CA, and a client trusting an imported CA ARN trusts that CA.
//!
//! Every private key here lives in the store (or the given file) and in memory; none is
//! ever logged or shown.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::store::{RecordKey, RecordSpace, RecordWrite, Snapshot, Store, TransactError};

use super::pem::{self, PemError};
use super::{SecretMaterial, Subject};

/// The record of the generated root.
const ROOT_RECORD: &str = "root";
/// The prefix of imported CAs' records.
const IMPORT_PREFIX: &str = "import/";
/// How long the generated root is valid.
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far back a leaf's validity starts, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(60);

/// Why a CA cannot be used, generated, stored or issue.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate text is not usable.
    #[error("{what}: {source}")]
    Pem {
        /// Which certificate.
        what: String,
        /// Why.
        source: PemError,
    },
    /// The key, or the certificate with it, is not a usable CA.
    #[error("{what}: {reason}")]
    Unusable {
        /// Which CA.
        what: String,
        /// Why.
        reason: String,
    },
    /// A stored CA record cannot be read.
    #[error("the stored CA record {key} is damaged: {reason}")]
    Damaged {
        /// The record.
        key: String,
        /// Why.
        reason: String,
    },
    /// The store could not commit.
    #[error("cannot store the CA: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl From<TransactError<AuthorityError>> for AuthorityError {
    fn from(err: TransactError<AuthorityError>) -> Self {
        match err {
            TransactError::Refused(err) => err,
            TransactError::Store(err) => AuthorityError::Store(err),
        }
    }
}

/// A CA as stored: its certificate (with the chain to its root, PEM) and private key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredAuthority {
    /// The CA certificate first, then the certificates up to its root, PEM.
    pub certificate: String,
    /// Its private key, PEM.
    pub key: Zeroizing<String>,
}

impl std::fmt::Debug for StoredAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAuthority").finish_non_exhaustive()
    }
}

/// A CA ready to issue.
pub struct Authority {
    stored: StoredAuthority,
    issuer: Issuer<'static, KeyPair>,
    /// A digest of the certificate: a CA that changes has another.
    pub fingerprint: String,
}

impl Authority {
    /// `stored`, checked: the certificate a CA's, the key its own.
    pub fn new(what: &str, stored: StoredAuthority) -> Result<Self, AuthorityError> {
        let unusable = |reason: String| AuthorityError::Unusable {
            what: what.to_string(),
            reason,
        };
        let certs =
            pem::certificates(&stored.certificate).map_err(|source| AuthorityError::Pem {
                what: what.to_string(),
                source,
            })?;
        let key = KeyPair::from_pem(&stored.key).map_err(|e| unusable(format!("the key: {e}")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref())
            .map_err(|e| unusable(e.to_string()))?;
        if !cert.is_ca() {
            return Err(unusable("the certificate is not a CA's".into()));
        }
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(unusable("the key is not the certificate's".into()));
        }
        let issuer =
            Issuer::from_ca_cert_der(&certs[0], key).map_err(|e| unusable(e.to_string()))?;
        Ok(Self {
            fingerprint: hex::encode(&Sha256::digest(certs[0].as_ref())[..8]),
            stored,
            issuer,
        })
    }

    /// The CA given as two PEM files (`--ca-cert`, `--ca-key`).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, AuthorityError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| AuthorityError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        Self::new(
            &cert.display().to_string(),
            StoredAuthority {
                certificate: read(cert)?,
                key: Zeroizing::new(read(key)?),
            },
        )
    }

    /// The CA certificates clients trust: this CA's and those up to its root, PEM.
    pub fn bundle(&self) -> &str {
        &self.stored.certificate
    }

    /// A leaf for `subject`, valid from `now` for `ttl`: its SANs the subject's DNS
    /// names and `spiffe://<trust_domain>/mesh/<m>/virtualNode/<n>`, usable for server
    /// and client authentication, with a fresh P-256 key.
    pub fn issue(
        &self,
        subject: &Subject,
        trust_domain: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<SecretMaterial, AuthorityError> {
        let unusable = |e: rcgen::Error| AuthorityError::Unusable {
            what: format!("issuing for {}", subject.proxy),
            reason: e.to_string(),
        };
        let mut params = CertificateParams::default();
        let spiffe = format!("spiffe://{trust_domain}/{}", subject.proxy);
        for name in &subject.dns_names {
            let san = match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into().map_err(unusable)?),
            };
            params.subject_alt_names.push(san);
        }
        params
            .subject_alt_names
            .push(SanType::URI(spiffe.try_into().map_err(unusable)?));
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            subject
                .dns_names
                .first()
                .cloned()
                .unwrap_or_else(|| subject.proxy.name.clone()),
        );
        params.distinguished_name = name;
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + ttl).into();
        params.serial_number = Some(random_serial().into());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(unusable)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(unusable)?;
        let chain = format!("{}{}", cert.pem(), self.leaf_chain());
        let facts = pem::certificate_facts(&chain).map_err(|source| AuthorityError::Pem {
            what: "an issued leaf".into(),
            source,
        })?;
        Ok(SecretMaterial::Certificate {
            chain,
            key: Zeroizing::new(key.serialize_pem()),
            facts,
        })
    }

    /// What follows a leaf in its chain: the CA's certificates without a self-signed
    /// root (clients hold the root).
    fn leaf_chain(&self) -> String {
        pem::certificates(&self.stored.certificate)
            .unwrap_or_default()
            .iter()
            .filter(|der| !is_self_signed(der))
            .map(|der| pem_of(der))
            .collect()
    }
}

fn is_self_signed(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert.subject() == cert.issuer())
        .unwrap_or(false)
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str("-----END CERTIFICATE-----\n");
    text
}

fn random_serial() -> Vec<u8> {
    let mut serial = uuid::Uuid::new_v4().into_bytes().to_vec();
    // Positive, and never starting with a zero byte (DER would drop it).
    serial[0] = (serial[0] & 0x7f) | 0x40;
    serial
}

/// A new self-signed root (P-256, valid ten years).
pub fn generate_root(now: SystemTime) -> Result<StoredAuthority, AuthorityError> {
    let unusable = |e: rcgen::Error| AuthorityError::Unusable {
        what: "generating meshd's root CA".into(),
        reason: e.to_string(),
    };
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "meshd");
    name.push(
        DnType::CommonName,
        format!(
            "meshd root CA {}",
            now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
        ),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + ROOT_LIFETIME).into();
    params.serial_number = Some(random_serial().into());
    let key = KeyPair::generate().map_err(unusable)?;
    let cert = params.self_signed(&key).map_err(unusable)?;
    Ok(StoredAuthority {
        certificate: cert.pem(),
        key: Zeroizing::new(key.serialize_pem()),
    })
}

fn decode(key: &RecordKey, bytes: &[u8]) -> Result<StoredAuthority, AuthorityError> {
    serde_json::from_slice(bytes).map_err(|e| AuthorityError::Damaged {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn encode(stored: &StoredAuthority) -> Vec<u8> {
    serde_json::to_vec(stored).unwrap_or_default()
}

/// The root kept in `snapshot`, if one was generated.
pub fn stored_root(snapshot: &Snapshot) -> Result<Option<StoredAuthority>, AuthorityError> {
    let key = RecordKey::new(RecordSpace::Authority, ROOT_RECORD);
    snapshot
        .record(&key)
        .map(|bytes| decode(&key, bytes))
        .transpose()
}

/// The root kept in `store`, generated and stored first if there is none (one replica
/// wins; the others read what it stored).
pub fn ensure_root(store: &Store) -> Result<StoredAuthority, AuthorityError> {
    if let Some(root) = stored_root(&store.snapshot())? {
        return Ok(root);
    }
    let generated = generate_root(SystemTime::now())?;
    Ok(store.transact(|snapshot| {
        if let Some(root) = stored_root(snapshot)? {
            return Ok((RecordWrite::none(), root));
        }
        let mut write = RecordWrite::none();
        write.put(
            RecordKey::new(RecordSpace::Authority, ROOT_RECORD),
            encode(&generated),
        );
        tracing::info!("generated meshd's root CA and stored it");
        Ok((write, generated.clone()))
    })?)
}

/// The CA imported under `arn`, if any.
pub fn imported(snapshot: &Snapshot, arn: &str) -> Result<Option<StoredAuthority>, AuthorityError> {
    let key = RecordKey::new(RecordSpace::Authority, format!("{IMPORT_PREFIX}{arn}"));
    snapshot
        .record(&key)
        .map(|bytes| decode(&key, bytes))
        .transpose()
}

/// Every ARN a CA was imported under, in order.
pub fn imported_arns(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .records(RecordSpace::Authority, IMPORT_PREFIX)
        .map(|(id, _)| id[IMPORT_PREFIX.len()..].to_string())
        .collect()
}

/// Stores `stored` (checked first) as the CA `arn` stands for, replacing any.
pub fn import(store: &Store, arn: &str, stored: StoredAuthority) -> Result<(), AuthorityError> {
    Authority::new(arn, stored.clone())?;
    let bytes = encode(&stored);
    Ok(store.transact(|_| {
        let mut write = RecordWrite::none();
        write.put(
            RecordKey::new(RecordSpace::Authority, format!("{IMPORT_PREFIX}{arn}")),
            bytes.clone(),
        );
        Ok::<_, AuthorityError>((write, ()))
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ProxyId;

    #[test]
    fn a_leaf_names_its_proxy_and_chains_to_the_root() {
        let now = SystemTime::now();
        let root = Authority::new("root", generate_root(now).unwrap()).unwrap();
        let subject = Subject {
            proxy: ProxyId::virtual_node("m", "colorteller"),
            dns_names: vec!["colorteller.local".into()],
        };
        let SecretMaterial::Certificate { chain, key, facts } = root
            .issue(&subject, "meshd", Duration::from_secs(60), now)
            .unwrap()
        else {
            panic!("a certificate")
        };
        assert!(key.contains("PRIVATE KEY"));
        assert_eq!(
            pem::certificates(&chain).unwrap().len(),
            1,
            "the root is not in the chain"
        );
        let der = &pem::certificates(&chain).unwrap()[0];
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert_eq!(
            sans,
            [
                "DNSName(colorteller.local)",
                "URI(spiffe://meshd/mesh/m/virtualNode/colorteller)"
            ]
        );
        let root_der = &pem::certificates(root.bundle()).unwrap()[0];
        let (_, root_cert) = x509_parser::parse_x509_certificate(root_der.as_ref()).unwrap();
        assert!(cert.verify_signature(Some(root_cert.public_key())).is_ok());
        let lifetime = facts.not_after - facts.not_before;
        assert_eq!(lifetime, 120, "ttl plus the minute it is backdated");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let now = SystemTime::now();
        let (a, b) = (generate_root(now).unwrap(), generate_root(now).unwrap());
        let mixed = StoredAuthority {
            certificate: a.certificate,
            key: b.key,
        };
        let err = Authority::new("ca.pem", mixed).err().unwrap();
        assert_eq!(err.to_string(), "ca.pem: the key is not the certificate's");
    }

    #[test]
    fn an_imported_ca_stands_for_its_arn_and_a_bad_one_is_refused_unstored() {
        let store = Store::in_memory(Default::default());
        let arn = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/prod";
        let ca = generate_root(SystemTime::now()).unwrap();
        import(&store, arn, ca.clone()).unwrap();
        let snapshot = store.snapshot();
        assert_eq!(imported_arns(&snapshot), [arn]);
        assert_eq!(imported(&snapshot, arn).unwrap(), Some(ca.clone()));
        assert_eq!(stored_root(&snapshot).unwrap(), None, "no root was made");

        let other = generate_root(SystemTime::now()).unwrap();
        let mixed = StoredAuthority {
            certificate: other.certificate,
            key: ca.key,
        };
        assert!(import(&store, "arn:other", mixed).is_err());
        assert_eq!(imported_arns(&store.snapshot()), [arn]);
        // The root, once made, is the same for every later ask.
        let root = ensure_root(&store).unwrap();
        assert_eq!(ensure_root(&store).unwrap(), root);
    }
}
