//! AWS Certificate Manager as the certificate source (`meshd serve --acm aws`), as App
//! Mesh's control plane used it: a listener's `certificateArn` is exported with
//! `ExportCertificate` (a passphrase meshd makes for each call; the key is decrypted in
//! memory and never written anywhere), a client's `certificateAuthorityArns` are read
//! with ACM Private CA's `GetCertificateAuthorityCertificate` (the CA certificate and its
//! chain). Each is read again every [`REFRESH`] (`DescribeCertificate` first, so a
//! certificate is exported again only when ACM holds a newer one, or when the held one
//! is within a third of its life of expiring); a failure is retried with a doubling
//! backoff, the last secret kept.
//!
//! The clients are the AWS SDK for Rust with the standard credentials chain and
//! `--region`; `--acm-endpoint` and `--acm-pca-endpoint` point them elsewhere (moto, a
//! VPC endpoint).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_acm::primitives::Blob;
use pkcs8::der::pem::LineEnding;
use pkcs8::{EncryptedPrivateKeyInfo, SecretDocument};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::feed::{Schedule, error_chain};

use super::pem;
use super::{Certificates, SecretMaterial, SecretQuery};

/// How often a followed certificate or CA is checked again.
pub const REFRESH: Duration = Duration::from_secs(300);

/// How to reach ACM and ACM Private CA.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The region to call.
    pub region: String,
    /// An endpoint to call instead of ACM's (`--acm-endpoint`).
    pub acm_endpoint: Option<String>,
    /// An endpoint to call instead of ACM Private CA's (`--acm-pca-endpoint`).
    pub pca_endpoint: Option<String>,
    /// How often each is checked again.
    pub refresh: Duration,
}

/// The two clients.
#[derive(Clone)]
pub struct Clients {
    acm: aws_sdk_acm::Client,
    pca: aws_sdk_acmpca::Client,
}

/// Clients as `config` describes, with credentials from the standard chain.
pub async fn clients(config: &AwsConfig) -> Clients {
    let shared = crate::aws_sdk::config(&config.region).await;
    let mut acm = aws_sdk_acm::config::Builder::from(&shared);
    if let Some(endpoint) = &config.acm_endpoint {
        acm = acm.endpoint_url(endpoint);
    }
    let mut pca = aws_sdk_acmpca::config::Builder::from(&shared);
    if let Some(endpoint) = &config.pca_endpoint {
        pca = pca.endpoint_url(endpoint);
    }
    Clients {
        acm: aws_sdk_acm::Client::from_conf(acm.build()),
        pca: aws_sdk_acmpca::Client::from_conf(pca.build()),
    }
}

/// Why an exported key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// Not an encrypted PKCS #8 key in PEM.
    #[error("the exported private key is not an encrypted PKCS #8 key: {0}")]
    NotEncryptedPkcs8(String),
    /// The passphrase does not open it.
    #[error("the exported private key cannot be decrypted: {0}")]
    Decrypt(String),
}

/// The PEM (`PRIVATE KEY`) of the encrypted PKCS #8 key `encrypted` (PEM), opened with
/// `passphrase`.
pub fn decrypt_key(encrypted: &str, passphrase: &[u8]) -> Result<Zeroizing<String>, ExportError> {
    let (label, document) = SecretDocument::from_pem(encrypted)
        .map_err(|e| ExportError::NotEncryptedPkcs8(e.to_string()))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(ExportError::NotEncryptedPkcs8(format!("a {label} block")));
    }
    let info = EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|e| ExportError::NotEncryptedPkcs8(e.to_string()))?;
    let plain = info
        .decrypt(passphrase)
        .map_err(|e| ExportError::Decrypt(e.to_string()))?;
    plain
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|e| ExportError::Decrypt(e.to_string()))
}

/// A fresh passphrase for one export: 32 random bytes, hex.
fn passphrase() -> Zeroizing<String> {
    let bytes: Vec<u8> = uuid::Uuid::new_v4()
        .into_bytes()
        .into_iter()
        .chain(uuid::Uuid::new_v4().into_bytes())
        .collect();
    Zeroizing::new(hex::encode(bytes))
}

/// Exports certificate `arn` with its chain and decrypted key.
async fn export(clients: &Clients, arn: &str) -> Result<SecretMaterial, String> {
    let passphrase = passphrase();
    let exported = clients
        .acm
        .export_certificate()
        .certificate_arn(arn)
        .passphrase(Blob::new(passphrase.as_bytes().to_vec()))
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    let certificate = exported.certificate().unwrap_or_default();
    let mut chain = certificate.trim_end().to_string();
    chain.push('\n');
    if let Some(rest) = exported
        .certificate_chain()
        .filter(|c| !c.trim().is_empty())
    {
        chain.push_str(rest.trim_end());
        chain.push('\n');
    }
    let key = decrypt_key(
        exported.private_key().unwrap_or_default(),
        passphrase.as_bytes(),
    )
    .map_err(|err| err.to_string())?;
    let facts = pem::certificate_facts(certificate).map_err(|err| err.to_string())?;
    Ok(SecretMaterial::Certificate { chain, key, facts })
}

/// Whether ACM holds another certificate under `arn` than the one held (after a
/// renewal its validity ends later), or the held one has a third of its life left.
async fn needs_export(
    clients: &Clients,
    arn: &str,
    held: &pem::CertificateFacts,
) -> Result<bool, String> {
    let described = clients
        .acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    let not_after = described
        .certificate()
        .and_then(|c| c.not_after())
        .map(|at| at.secs());
    let now = crate::feed::now_epoch_seconds() as i64;
    let renew_at = held.not_after - (held.not_after - held.not_before) / 3;
    Ok(not_after.is_some_and(|at| at != held.not_after) || now >= renew_at)
}

/// The CA certificates of `arns`, each with its chain.
async fn trust(clients: &Clients, arns: &[String]) -> Result<SecretMaterial, String> {
    let mut bundle = String::new();
    for arn in arns {
        let ca = clients
            .pca
            .get_certificate_authority_certificate()
            .certificate_authority_arn(arn)
            .send()
            .await
            .map_err(|err| format!("{arn}: {}", error_chain(&err)))?;
        for part in [ca.certificate(), ca.certificate_chain()]
            .into_iter()
            .flatten()
        {
            if !part.trim().is_empty() {
                bundle.push_str(part.trim_end());
                bundle.push('\n');
            }
        }
    }
    let facts = pem::certificate_facts(&bundle).map_err(|err| err.to_string())?;
    Ok(SecretMaterial::Trust { bundle, facts })
}

/// Reads one query, or says that what is held stands.
async fn read(
    clients: &Clients,
    query: &SecretQuery,
    held: Option<Arc<SecretMaterial>>,
) -> Result<Option<SecretMaterial>, String> {
    match query {
        SecretQuery::Trust { arns } => trust(clients, arns).await.map(Some),
        SecretQuery::Certificate { arn, .. } => {
            if let Some(held) = held
                && !needs_export(clients, arn, held.facts()).await?
            {
                return Ok(None);
            }
            export(clients, arn).await.map(Some)
        }
    }
}

/// Follows what the hub wants from ACM, forever.
pub async fn follow(clients: Clients, certificates: Arc<Certificates>, refresh: Duration) {
    let mut wanted = certificates.wanted();
    let mut schedule: Schedule<SecretQuery> = Schedule::default();
    // One export per ARN however many proxies' subjects name it: ACM has one
    // certificate under an ARN.
    let mut exported: BTreeMap<String, Arc<SecretMaterial>> = BTreeMap::new();
    loop {
        let queries = wanted.borrow_and_update().clone();
        schedule.follow(&queries, Instant::now());
        exported.retain(|arn, _| {
            queries
                .iter()
                .any(|q| matches!(q, SecretQuery::Certificate { arn: a, .. } if a == arn))
        });
        let mut reads = tokio::task::JoinSet::new();
        for query in schedule.due(Instant::now()) {
            let held = certificates.material(&query);
            if let SecretQuery::Certificate { arn, .. } = &query
                && let Some(fresh) = exported.get(arn)
                && held.as_ref() != Some(fresh)
            {
                certificates.report(&query, (**fresh).clone());
                schedule.succeeded(&query, Instant::now(), refresh);
                continue;
            }
            let clients = clients.clone();
            reads.spawn(async move {
                let result = read(&clients, &query, held).await;
                (query, result)
            });
        }
        while let Some(read) = reads.join_next().await {
            let Ok((query, result)) = read else { continue };
            let now = Instant::now();
            match result {
                Ok(found) => {
                    if let Some(material) = found {
                        if let SecretQuery::Certificate { arn, .. } = &query {
                            exported.insert(arn.clone(), Arc::new(material.clone()));
                        }
                        certificates.report(&query, material);
                    } else if let Some(held) = certificates.material(&query) {
                        certificates.report(&query, (*held).clone());
                    }
                    schedule.succeeded(&query, now, refresh);
                }
                Err(error) => {
                    certificates.report_failure(&query, error);
                    schedule.failed(&query, now, refresh);
                }
            }
        }
        let sleep_until = schedule
            .earliest()
            .unwrap_or_else(|| Instant::now() + refresh);
        tokio::select! {
            () = tokio::time::sleep_until(sleep_until) => {}
            changed = wanted.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key encrypted as ACM exports them (PKCS #8, PBES2 with PBKDF2 and AES-256-CBC,
    /// here by the `pkcs8` crate) opens with its passphrase and not with another.
    #[test]
    fn an_exported_key_opens_with_its_passphrase_only() {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = key.serialize_der();
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16])
                .unwrap();
        let encrypted = info
            .encrypt_with_params(params, b"correct horse")
            .unwrap()
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .unwrap();
        let opened = decrypt_key(&encrypted, b"correct horse").unwrap();
        assert_eq!(*opened, key.serialize_pem());
        assert!(matches!(
            decrypt_key(&encrypted, b"wrong"),
            Err(ExportError::Decrypt(_))
        ));
        assert!(matches!(
            decrypt_key(&key.serialize_pem(), b"x"),
            Err(ExportError::NotEncryptedPkcs8(_))
        ));
    }
}
