//! Reading PEM certificates: what the status view and the renewal schedule need of them.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;

/// A certificate's serial number and validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateFacts {
    /// The serial number, lower-case hex, without separators (as Envoy's `/certs` shows it).
    pub serial: String,
    /// Valid from (seconds since the epoch).
    pub not_before: i64,
    /// Valid until (seconds since the epoch): for a bundle, the earliest of its
    /// certificates'.
    pub not_after: i64,
}

/// Why PEM text cannot be used as certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// No `CERTIFICATE` block.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// A block that is not an X.509 certificate.
    #[error("a PEM certificate cannot be read: {0}")]
    Unreadable(String),
}

/// The DER certificates of PEM `text`, in order.
pub fn certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| PemError::Unreadable(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certs)
}

/// The first certificate's serial and validity start, with the earliest expiry of all
/// the certificates of PEM `text`.
pub fn certificate_facts(text: &str) -> Result<CertificateFacts, PemError> {
    let mut facts: Option<CertificateFacts> = None;
    for der in certificates(text)? {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| PemError::Unreadable(e.to_string()))?;
        let validity = cert.validity();
        let not_after = validity.not_after.timestamp();
        match &mut facts {
            None => {
                facts = Some(CertificateFacts {
                    serial: hex::encode(cert.raw_serial())
                        .trim_start_matches("00")
                        .to_string(),
                    not_before: validity.not_before.timestamp(),
                    not_after,
                })
            }
            Some(facts) => facts.not_after = facts.not_after.min(not_after),
        }
    }
    facts.ok_or(PemError::NoCertificate)
}
