//! Refused streams: counted by reason, the latest kept for the status view, and
//! logged at a bounded rate (a client that is refused in a loop must not fill the log).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;

use crate::xds::truncated;

/// Why a stream was refused: the label it is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// No credential where one is required.
    NoCredential,
    /// A bearer token that is not in the token file.
    UnknownToken,
    /// A client certificate that does not chain to the client CA.
    UntrustedCertificate,
    /// A trusted certificate that names no proxy of the trust domain.
    CertificateIdentity,
    /// A node id that names no App Mesh resource.
    InvalidNodeId,
    /// A credential that may not stream the node it asked for.
    NotPermitted,
    /// Too many streams for one identity.
    TooManyStreams,
}

impl RefusalReason {
    /// Every reason, in the order the status view lists them.
    pub const ALL: [RefusalReason; 7] = [
        RefusalReason::NoCredential,
        RefusalReason::UnknownToken,
        RefusalReason::UntrustedCertificate,
        RefusalReason::CertificateIdentity,
        RefusalReason::InvalidNodeId,
        RefusalReason::NotPermitted,
        RefusalReason::TooManyStreams,
    ];

    /// The label it is counted under.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::NoCredential => "no_credential",
            RefusalReason::UnknownToken => "unknown_token",
            RefusalReason::UntrustedCertificate => "untrusted_certificate",
            RefusalReason::CertificateIdentity => "certificate_identity",
            RefusalReason::InvalidNodeId => "invalid_node_id",
            RefusalReason::NotPermitted => "not_permitted",
            RefusalReason::TooManyStreams => "too_many_streams",
        }
    }
}

/// One refused stream, as the status view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedStream {
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// Why.
    pub reason: RefusalReason,
    /// Where it came from (`unix` or `ip:port`).
    pub remote: String,
    /// The node id it sent (cut to 256 bytes), if it got that far.
    pub node_id: String,
    /// What it was told.
    pub message: String,
}

/// How many refusals are kept for the status view.
const KEPT: usize = 32;
/// How many refusals are logged per second at most; the rest are counted and the count
/// is logged with the next one.
const LOGGED_PER_SECOND: u32 = 5;

#[derive(Debug)]
struct LogBudget {
    window: Instant,
    logged: u32,
    suppressed: u64,
}

/// Every refusal since meshd started.
#[derive(Debug)]
pub struct Refusals {
    counts: [AtomicU64; RefusalReason::ALL.len()],
    recent: Mutex<VecDeque<RefusedStream>>,
    budget: Mutex<LogBudget>,
}

impl Default for Refusals {
    fn default() -> Self {
        Self {
            counts: Default::default(),
            recent: Mutex::new(VecDeque::with_capacity(KEPT)),
            budget: Mutex::new(LogBudget {
                window: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }
}

impl Refusals {
    /// Records a refusal.
    pub fn record(&self, reason: RefusalReason, remote: String, node_id: &str, message: &str) {
        let index = RefusalReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("every reason is listed");
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        crate::metrics::xds_refused(reason);
        let refused = RefusedStream {
            at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            reason,
            remote,
            node_id: truncated(node_id, 256),
            message: truncated(message, 1024),
        };
        self.log(&refused);
        let mut recent = self.recent.lock();
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(refused);
    }

    fn log(&self, refused: &RefusedStream) {
        let mut budget = self.budget.lock();
        if budget.window.elapsed() >= Duration::from_secs(1) {
            budget.window = Instant::now();
            budget.logged = 0;
        }
        if budget.logged >= LOGGED_PER_SECOND {
            budget.suppressed += 1;
            return;
        }
        budget.logged += 1;
        let suppressed = std::mem::take(&mut budget.suppressed);
        tracing::warn!(
            reason = refused.reason.label(),
            remote = %refused.remote,
            node_id = %refused.node_id,
            suppressed_since_last = suppressed,
            "refused an xDS stream: {}",
            refused.message
        );
    }

    /// How many streams were refused, by reason (every reason, zeros included).
    pub fn counts(&self) -> Vec<(RefusalReason, u64)> {
        RefusalReason::ALL
            .iter()
            .zip(&self.counts)
            .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// The latest refusals, oldest first.
    pub fn recent(&self) -> Vec<RefusedStream> {
        self.recent.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_reason_and_the_latest_kept() {
        let refusals = Refusals::default();
        for i in 0..40 {
            refusals.record(
                RefusalReason::UnknownToken,
                "127.0.0.1:1".into(),
                &format!("mesh/m/virtualNode/n{i}"),
                "no",
            );
        }
        refusals.record(RefusalReason::NotPermitted, "unix".into(), "x", "no");
        let counts = refusals.counts();
        assert!(counts.contains(&(RefusalReason::UnknownToken, 40)));
        assert!(counts.contains(&(RefusalReason::NotPermitted, 1)));
        assert!(counts.contains(&(RefusalReason::NoCredential, 0)));
        let recent = refusals.recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent.last().unwrap().reason, RefusalReason::NotPermitted);
        assert_eq!(recent[0].node_id, "mesh/m/virtualNode/n9");
    }
}
