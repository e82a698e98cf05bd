//! How long a stream's proxy takes to take up what it is sent: per type, the nonce and
//! store change of the latest response, and since when a sent response has waited for
//! its ACK. The stream loop tells it of every response and request; it records the
//! push and ACK latencies and says whether the proxy is out of sync.

use std::time::{Duration, Instant};

use crate::compile::ResourceType;

use super::status::type_label;

/// One type's latest response and whether it was taken up.
#[derive(Debug, Default)]
struct TypeClock {
    /// The latest response's nonce.
    nonce: String,
    /// The store change it carried, until it is acknowledged.
    change: Option<Instant>,
    /// Since when a response has been waiting for its ACK (the first unacknowledged
    /// one: a NACK or newer responses do not restart the wait).
    waiting_since: Option<Instant>,
}

/// The clocks of one stream, by type.
#[derive(Debug, Default)]
pub struct SyncClock {
    types: [TypeClock; ResourceType::ALL.len()],
}

fn index(type_url: &str) -> Option<usize> {
    ResourceType::ALL
        .iter()
        .position(|kind| kind.type_url() == type_url)
}

impl SyncClock {
    /// A response of `type_url` with `nonce` was sent, carrying the store change seen at
    /// `change` (if it was pushed for one).
    pub fn sent(&mut self, type_url: &str, nonce: &str, change: Option<Instant>) {
        let Some(index) = index(type_url) else {
            return;
        };
        let now = Instant::now();
        crate::metrics::xds_push(
            type_label(ResourceType::ALL[index]),
            change.map(|change| now.duration_since(change)),
        );
        let clock = &mut self.types[index];
        clock.nonce = nonce.to_string();
        clock.change = change;
        clock.waiting_since.get_or_insert(now);
    }

    /// A request of `type_url` answering `nonce` came in: an ACK, or a NACK if
    /// `rejected`.
    pub fn answered(&mut self, type_url: &str, nonce: &str, rejected: bool) {
        let Some(index) = index(type_url) else {
            return;
        };
        if rejected {
            crate::metrics::xds_nack(type_label(ResourceType::ALL[index]));
            return;
        }
        let clock = &mut self.types[index];
        if nonce.is_empty() || clock.nonce != nonce {
            // A subscription change, or an answer to an older response.
            return;
        }
        if let Some(change) = clock.change.take() {
            crate::metrics::xds_ack(change.elapsed());
        }
        clock.waiting_since = None;
    }

    /// How long the longest-waiting sent response has waited for its ACK, if any waits.
    pub fn waiting_for(&self) -> Option<Duration> {
        self.types
            .iter()
            .filter_map(|clock| clock.waiting_since)
            .min()
            .map(|since| since.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

    #[test]
    fn an_ack_of_the_latest_nonce_ends_the_wait_and_a_nack_does_not() {
        let mut clock = SyncClock::default();
        assert_eq!(clock.waiting_for(), None);
        clock.sent(LISTENER, "1", None);
        assert!(clock.waiting_for().is_some());
        clock.answered(LISTENER, "1", true);
        assert!(clock.waiting_for().is_some(), "a NACK leaves it waiting");
        clock.sent(LISTENER, "2", Some(Instant::now()));
        clock.answered(LISTENER, "1", false);
        assert!(clock.waiting_for().is_some(), "an older nonce is no ACK");
        clock.answered(LISTENER, "2", false);
        assert_eq!(clock.waiting_for(), None);
    }
}
