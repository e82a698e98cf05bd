//! What each connected proxy has been sent and has accepted or rejected, per type: the
//! view behind `GET /meshd/v1/proxies` and the Client Status Discovery Service.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::compile::ResourceType;

use super::snapshot::ProxySnapshot;

/// The xDS variant a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// State of the world (`StreamAggregatedResources`).
    Sotw,
    /// Incremental (`DeltaAggregatedResources`).
    Delta,
}

/// The most of a NACK's error text the status view keeps (Envoy's messages are short;
/// a client may send megabytes).
pub const NACK_DETAIL_LIMIT: usize = 4096;

/// A rejected configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nack {
    /// The version the proxy rejected.
    pub version: String,
    /// The nonce of the rejected response.
    pub nonce: String,
    /// Envoy's error message, cut to [`NACK_DETAIL_LIMIT`] bytes.
    pub message: String,
}

impl Nack {
    /// The rejection of `version` (sent with `nonce`), keeping at most
    /// [`NACK_DETAIL_LIMIT`] bytes of `message`.
    pub fn new(version: String, nonce: String, message: &str) -> Self {
        Self {
            version,
            nonce,
            message: truncated(message, NACK_DETAIL_LIMIT),
        }
    }
}

/// `text` cut to at most `limit` bytes (on a character boundary), saying how long it was
/// when it is cut.
pub fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// One type's state on one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeStatus {
    /// The version last sent (empty before anything is sent).
    pub sent_version: String,
    /// The version the proxy last accepted.
    pub acked_version: String,
    /// The last rejection, if the proxy has rejected a configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nack: Option<Nack>,
    /// How many responses of this type were sent.
    pub responses_sent: u64,
    /// Whether every resource of the type is subscribed.
    pub wildcard: bool,
    /// The names subscribed (empty with a wildcard).
    pub subscribed: Vec<String>,
}

/// One stream's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamStatus {
    /// The node id the proxy sent.
    pub node_id: String,
    /// The App Mesh resource it serves (`mesh/m/virtualNode/n`).
    pub resource: String,
    /// SotW or delta.
    pub stream: StreamKind,
    /// Per type (`cluster`, `endpoint`, `listener`, `route_configuration`).
    pub types: BTreeMap<&'static str, TypeStatus>,
    /// What the compiler left out of this proxy's configuration, and why.
    pub diagnostics: Vec<String>,
    /// The secrets this stream may be served (never their content).
    pub secrets: Vec<SecretStatus>,
}

/// One secret a stream may be served: its name, content version and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStatus {
    /// The secret's name (an ACM ARN, or CA ARNs joined by commas).
    pub name: String,
    /// Its content version.
    pub version: String,
    /// When its certificate expires (seconds since the epoch).
    pub not_after: Option<i64>,
}

/// A live stream whose status is put together only when asked for (by
/// `GET /meshd/v1/proxies` or CSDS), so that a push or an ACK costs the stream nothing
/// for the status view.
pub trait StatusSource: Send + Sync {
    /// The stream's status now.
    fn status(&self) -> StreamStatus;
    /// The stream's status now, and the snapshot it works from (for CSDS).
    fn status_and_snapshot(&self) -> (StreamStatus, Arc<ProxySnapshot>);
    /// The variant the stream speaks.
    fn kind(&self) -> StreamKind;
    /// The App Mesh resource it serves.
    fn resource(&self) -> &str;
    /// How long its oldest unacknowledged response has waited, if one waits.
    fn waiting_for_ack(&self) -> Option<std::time::Duration>;
}

/// The short name of a resource type in the status view.
pub fn type_label(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Cluster => "cluster",
        ResourceType::Endpoint => "endpoint",
        ResourceType::Secret => "secret",
        ResourceType::Listener => "listener",
        ResourceType::RouteConfiguration => "route_configuration",
    }
}
