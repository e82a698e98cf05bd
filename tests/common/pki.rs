//! Certificates made for one test (rcgen): a CA, and leaf certificates it signs for
//! servers (by DNS name or IP address) and for proxies (by SPIFFE URI SAN).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};

/// A CA and the PEM files of what it has signed, in a directory of their own.
pub struct Pki {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A fresh CA named `name`, its certificate written to `ca.pem`.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).unwrap();
        Pki { dir, issuer }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Signs a certificate for `names` (DNS names or IP addresses) and `uris`, for
    /// servers and clients alike, written to `<stem>.pem` and `<stem>-key.pem`; returns
    /// their paths.
    pub fn issue(&self, stem: &str, names: &[&str], uris: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into().unwrap()),
            })
            .chain(
                uris.iter()
                    .map(|uri| SanType::URI((*uri).try_into().unwrap())),
            )
            .collect();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = self.pair(stem);
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// The paths of `<stem>.pem` and `<stem>-key.pem`.
    pub fn pair(&self, stem: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}-key.pem")),
        )
    }

    /// A proxy's certificate: URI SAN `spiffe://<trust_domain>/<node_id>`.
    pub fn proxy(&self, stem: &str, trust_domain: &str, node_id: &str) -> (PathBuf, PathBuf) {
        self.issue(stem, &[], &[&format!("spiffe://{trust_domain}/{node_id}")])
    }
}
