//! meshd's own CA as the certificate source (`meshd serve --acm local`, the default):
//! each certificate ARN a proxy's listener names gets a leaf issued for that proxy's
//! virtual node or gateway (see [`Authority::issue`]), valid `--cert-ttl` and issued again
//! at two thirds of its life; each CA ARN a client trusts stands for the CA that issues
//! (meshd's, or the one imported under that ARN). The root is generated when a proxy
//! first needs an ACM secret, not before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::store::{RecordSpace, Snapshot, Store};

use super::authority::{self, Authority, AuthorityError, StoredAuthority};
use super::pem;
use super::{Certificates, LocalConfig, SecretMaterial, SecretQuery};

/// How long to wait before trying again after the CA could not be had.
const RETRY: Duration = Duration::from_secs(5);

/// The CAs in force: the default one and those imported under ARNs.
struct Authorities {
    default: Arc<Authority>,
    imported: BTreeMap<String, Arc<Authority>>,
}

impl Authorities {
    fn read(default: Arc<Authority>, snapshot: &Snapshot) -> Self {
        let mut imported = BTreeMap::new();
        for arn in authority::imported_arns(snapshot) {
            match authority::imported(snapshot, &arn)
                .and_then(|stored| stored.map(|s| Authority::new(&arn, s)).transpose())
            {
                Ok(Some(ca)) => {
                    imported.insert(arn, Arc::new(ca));
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(%arn, "the CA imported under this ARN cannot be used: {err}")
                }
            }
        }
        Self { default, imported }
    }

    /// The CA `arn` stands for.
    fn for_arn(&self, arn: &str) -> &Arc<Authority> {
        self.imported.get(arn).unwrap_or(&self.default)
    }
}

/// A leaf issued for a query: by which CA, and when to issue it again.
struct Issued {
    issuer: String,
    renew_at: SystemTime,
}

/// The default CA: the intermediate given, or the root kept in the store.
fn default_authority(store: &Store, config: &LocalConfig) -> Result<Authority, AuthorityError> {
    match &config.intermediate {
        Some((cert, key)) => Authority::from_files(cert, key),
        None => {
            let stored: StoredAuthority = authority::ensure_root(store)?;
            Authority::new("meshd's root CA", stored)
        }
    }
}

/// The trust bundle of `arns`: each CA's certificates once, in the order named.
fn trust(authorities: &Authorities, arns: &[String]) -> Result<SecretMaterial, AuthorityError> {
    let mut seen = BTreeSet::new();
    let mut bundle = String::new();
    for arn in arns {
        let ca = authorities.for_arn(arn);
        if seen.insert(ca.fingerprint.clone()) {
            bundle.push_str(ca.bundle());
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
        }
    }
    let facts = pem::certificate_facts(&bundle).map_err(|source| AuthorityError::Pem {
        what: "the trust bundle".into(),
        source,
    })?;
    Ok(SecretMaterial::Trust { bundle, facts })
}

/// Follows what the hub wants until the store is gone: issues, renews and re-issues
/// (when the CA behind an ARN changes) every certificate, and reports every trust.
pub async fn follow(store: Arc<Store>, certificates: Arc<Certificates>, config: LocalConfig) {
    // The root is made (and its key stored) only once a proxy needs an ACM secret: a
    // mesh without ACM keeps no CA key.
    if config.intermediate.is_none()
        && authority::stored_root(&store.snapshot())
            .ok()
            .flatten()
            .is_none()
        && certificates
            .wanted()
            .wait_for(|wanted| !wanted.is_empty())
            .await
            .is_err()
    {
        return;
    }
    let default = loop {
        let (store, config) = (store.clone(), config.clone());
        match tokio::task::spawn_blocking(move || default_authority(&store, &config)).await {
            Ok(Ok(ca)) => break Arc::new(ca),
            Ok(Err(err)) => {
                for query in certificates.wanted().borrow().iter() {
                    certificates.report_failure(query, err.to_string());
                }
                tracing::error!("meshd's CA cannot be used: {err}");
            }
            Err(err) => tracing::error!("reading meshd's CA failed: {err}"),
        }
        tokio::time::sleep(RETRY).await;
    };
    certificates.set_bundle(default.bundle().to_string());
    let mut feed = store.subscribe();
    let mut wanted = certificates.wanted();
    let mut issued: BTreeMap<SecretQuery, Issued> = BTreeMap::new();
    let mut read_at: Option<Arc<Snapshot>> = None;
    let mut authorities = Authorities::read(default.clone(), &store.snapshot());
    loop {
        let snapshot = feed.borrow_and_update().clone();
        let queries = wanted.borrow_and_update().clone();
        let cas_changed = read_at.as_ref().is_some_and(|earlier| {
            !snapshot
                .record_changes_since(earlier, RecordSpace::Authority)
                .is_empty()
        });
        if cas_changed {
            authorities = Authorities::read(default.clone(), &snapshot);
        }
        read_at = Some(snapshot);
        issued.retain(|query, _| queries.contains(query));
        let now = SystemTime::now();
        for query in &queries {
            let outcome = match query {
                SecretQuery::Trust { arns } => Some(trust(&authorities, arns)),
                SecretQuery::Certificate { arn, subject } => {
                    let ca = authorities.for_arn(arn);
                    let current = issued
                        .get(query)
                        .is_some_and(|held| held.issuer == ca.fingerprint && now < held.renew_at);
                    (!current).then(|| {
                        let material =
                            ca.issue(subject, &config.trust_domain, config.cert_ttl, now);
                        if material.is_ok() {
                            issued.insert(
                                query.clone(),
                                Issued {
                                    issuer: ca.fingerprint.clone(),
                                    renew_at: now + config.cert_ttl.mul_f64(2.0 / 3.0),
                                },
                            );
                            tracing::debug!(%query, "issued a certificate");
                        }
                        material
                    })
                }
            };
            match outcome {
                Some(Ok(material)) => certificates.report(query, material),
                Some(Err(err)) => certificates.report_failure(query, err.to_string()),
                None => {}
            }
        }
        let next_renewal = issued.values().map(|held| held.renew_at).min();
        let sleep = next_renewal
            .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            changed = feed.changed() => if changed.is_err() { return },
            changed = wanted.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(sleep) => {}
        }
    }
}
