//! A state-of-the-world ADS stream as a state machine with no I/O: requests and new
//! snapshots go in, responses come out. It tracks nonces, versions, ACKs and NACKs per
//! type, never sends a version the proxy rejected (no NACK loop), and sends nothing a
//! reconnecting proxy already holds.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;

use crate::compile::ResourceType;

use super::snapshot::{ProxySnapshot, XdsResource};
use super::status::{Nack, TypeStatus};

/// Which resources of a type a proxy asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Every resource (LDS and CDS with no names, or `*`).
    Wildcard,
    /// These names only (RDS and EDS name what they need).
    Names(BTreeSet<String>),
}

impl Subscription {
    fn from_names(kind: ResourceType, names: &[String]) -> Self {
        let wildcard_type = matches!(kind, ResourceType::Cluster | ResourceType::Listener);
        if names.iter().any(|n| n == "*") || (names.is_empty() && wildcard_type) {
            Subscription::Wildcard
        } else {
            Subscription::Names(names.iter().cloned().collect())
        }
    }
}

#[derive(Debug, Clone, Default)]
struct TypeState {
    subscription: Option<Subscription>,
    sent_version: Option<String>,
    sent_nonce: Option<String>,
    acked_version: Option<String>,
    nack: Option<Nack>,
    rejected: HashSet<String>,
    responses_sent: u64,
}

/// One SotW stream's state.
#[derive(Debug, Default)]
pub struct SotwStream {
    types: BTreeMap<ResourceType, TypeState>,
    next_nonce: u64,
}

/// A request that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A type URL meshd does not serve.
    #[error("meshd does not serve resources of type {0}")]
    UnknownType(String),
}

fn selected<'a>(
    snapshot: &'a ProxySnapshot,
    kind: ResourceType,
    subscription: &'a Subscription,
) -> Vec<&'a Arc<XdsResource>> {
    let resources = &snapshot.of(kind).resources;
    match subscription {
        Subscription::Wildcard => resources.values().collect(),
        Subscription::Names(names) => names
            .iter()
            .filter_map(|name| resources.get(name))
            .collect(),
    }
}

impl SotwStream {
    /// A new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one request; returns the responses to send (zero or one).
    pub fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &ProxySnapshot,
    ) -> Result<Vec<DiscoveryResponse>, ProtocolError> {
        let kind = ResourceType::ALL
            .into_iter()
            .find(|kind| kind.type_url() == request.type_url)
            .ok_or_else(|| ProtocolError::UnknownType(request.type_url.clone()))?;
        let state = self.types.entry(kind).or_default();
        if !request.response_nonce.is_empty() {
            if state.sent_nonce.as_deref() != Some(request.response_nonce.as_str()) {
                // A stale nonce: the proxy answers an older response; a newer one is on its way.
                return Ok(Vec::new());
            }
            match &request.error_detail {
                Some(status) => {
                    let version = state.sent_version.clone().unwrap_or_default();
                    state.rejected.insert(version.clone());
                    state.nack = Some(Nack::new(
                        version,
                        request.response_nonce.clone(),
                        &status.message,
                    ));
                    if !request.version_info.is_empty() {
                        state.acked_version = Some(request.version_info.clone());
                    }
                }
                None => state.acked_version = Some(request.version_info.clone()),
            }
        } else if !request.version_info.is_empty() {
            // A reconnecting proxy says what it already holds.
            state.acked_version = Some(request.version_info.clone());
            state.sent_version = Some(request.version_info.clone());
        }
        state.subscription = Some(Subscription::from_names(kind, &request.resource_names));
        Ok(self.respond(kind, snapshot).into_iter().collect())
    }

    /// Handles a new snapshot: the responses to send, clusters and endpoints before the
    /// listeners and routes that use them.
    pub fn on_snapshot(&mut self, snapshot: &ProxySnapshot) -> Vec<DiscoveryResponse> {
        ResourceType::ALL
            .into_iter()
            .filter_map(|kind| self.respond(kind, snapshot))
            .collect()
    }

    /// The response for `kind` if the proxy's subscription selects something it does not
    /// hold yet and has not rejected.
    fn respond(
        &mut self,
        kind: ResourceType,
        snapshot: &ProxySnapshot,
    ) -> Option<DiscoveryResponse> {
        let nonce_number = self.next_nonce + 1;
        if !snapshot.exists {
            return None;
        }
        let state = self.types.get_mut(&kind)?;
        let subscription = state.subscription.as_ref()?;
        let resources = selected(snapshot, kind, subscription);
        let version = snapshot.of(kind).version_of(resources.iter().copied());
        if state.sent_version.as_deref() == Some(version.as_str())
            || state.rejected.contains(&version)
        {
            return None;
        }
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: resources
                .iter()
                .map(|r| Any {
                    type_url: kind.type_url().to_string(),
                    value: r.bytes.clone(),
                })
                .collect(),
            type_url: kind.type_url().to_string(),
            nonce: nonce_number.to_string(),
            ..Default::default()
        };
        state.sent_version = Some(version);
        state.sent_nonce = Some(response.nonce.clone());
        state.responses_sent += 1;
        self.next_nonce = nonce_number;
        Some(response)
    }

    /// The per-type status of this stream.
    pub fn status(&self) -> BTreeMap<ResourceType, TypeStatus> {
        self.types
            .iter()
            .map(|(kind, state)| {
                let (wildcard, subscribed) = match &state.subscription {
                    Some(Subscription::Wildcard) => (true, Vec::new()),
                    Some(Subscription::Names(names)) => (false, names.iter().cloned().collect()),
                    None => (false, Vec::new()),
                };
                (
                    *kind,
                    TypeStatus {
                        sent_version: state.sent_version.clone().unwrap_or_default(),
                        acked_version: state.acked_version.clone().unwrap_or_default(),
                        nack: state.nack.clone(),
                        responses_sent: state.responses_sent,
                        wildcard,
                        subscribed,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::google::rpc::Status as RpcStatus;

    /// A snapshot with the given `(type, name, version)` resources.
    pub(crate) fn snapshot(resources: &[(ResourceType, &str, &str)]) -> ProxySnapshot {
        let mut out = ProxySnapshot {
            exists: true,
            ..Default::default()
        };
        for (kind, name, version) in resources {
            out.types.entry(*kind).or_default().resources.insert(
                name.to_string(),
                Arc::new(XdsResource {
                    name: name.to_string(),
                    version: version.to_string(),
                    bytes: format!("{name}@{version}").into_bytes(),
                }),
            );
        }
        out
    }

    fn request(kind: ResourceType, version: &str, nonce: &str, names: &[&str]) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: version.into(),
            node: Some(Node {
                id: "mesh/m/virtualNode/a".into(),
                ..Default::default()
            }),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            type_url: kind.type_url().into(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn nack(kind: ResourceType, version: &str, nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            error_detail: Some(RpcStatus {
                code: 3,
                message: "bad config".into(),
                ..Default::default()
            }),
            ..request(kind, version, nonce, &[])
        }
    }

    use ResourceType::{Cluster, Endpoint, Listener, RouteConfiguration};

    #[test]
    fn test_wildcard_request_gets_everything_and_ack_records_version() {
        let snap = snapshot(&[(Cluster, "a", "1"), (Cluster, "b", "1")]);
        let mut stream = SotwStream::new();
        let responses = stream
            .on_request(&request(Cluster, "", "", &[]), &snap)
            .unwrap();
        assert_eq!(responses.len(), 1);
        assert_eq!(responses[0].resources.len(), 2);
        let (version, nonce) = (
            responses[0].version_info.clone(),
            responses[0].nonce.clone(),
        );
        assert!(
            stream
                .on_request(&request(Cluster, &version, &nonce, &[]), &snap)
                .unwrap()
                .is_empty()
        );
        let status = &stream.status()[&Cluster];
        assert_eq!(status.acked_version, version);
        assert_eq!(status.sent_version, version);
        assert!(status.nack.is_none());
    }

    #[test]
    fn test_nack_is_recorded_and_the_rejected_version_never_resent() {
        let snap = snapshot(&[(Listener, "l", "bad")]);
        let mut stream = SotwStream::new();
        let first = stream
            .on_request(&request(Listener, "", "", &[]), &snap)
            .unwrap();
        let rejected = first[0].version_info.clone();
        assert!(
            stream
                .on_request(&nack(Listener, "", &first[0].nonce), &snap)
                .unwrap()
                .is_empty()
        );
        assert!(
            stream.on_snapshot(&snap).is_empty(),
            "a rejected version must not be sent again"
        );
        let status = &stream.status()[&Listener];
        assert_eq!(status.nack.as_ref().unwrap().version, rejected);
        assert_eq!(status.nack.as_ref().unwrap().message, "bad config");
        // A new configuration is sent as usual.
        let fixed = snapshot(&[(Listener, "l", "good")]);
        let next = stream.on_snapshot(&fixed);
        assert_eq!(next.len(), 1);
        assert_ne!(next[0].version_info, rejected);
    }

    #[test]
    fn test_stale_nonce_is_ignored() {
        let mut stream = SotwStream::new();
        let one = snapshot(&[(Cluster, "a", "1")]);
        let first = stream
            .on_request(&request(Cluster, "", "", &[]), &one)
            .unwrap();
        let two = snapshot(&[(Cluster, "a", "2")]);
        let second = stream.on_snapshot(&two);
        assert_eq!(second.len(), 1);
        // The proxy NACKs the first response only after the second was sent: stale, ignored.
        assert!(
            stream
                .on_request(&nack(Cluster, "", &first[0].nonce), &two)
                .unwrap()
                .is_empty()
        );
        assert!(stream.status()[&Cluster].nack.is_none());
        assert!(
            stream
                .on_request(
                    &request(Cluster, &second[0].version_info, &second[0].nonce, &[]),
                    &two
                )
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            stream.status()[&Cluster].acked_version,
            second[0].version_info
        );
    }

    #[test]
    fn test_named_subscription_changes_and_unsubscribe() {
        let snap = snapshot(&[
            (RouteConfiguration, "r1", "1"),
            (RouteConfiguration, "r2", "1"),
        ]);
        let mut stream = SotwStream::new();
        let first = stream
            .on_request(&request(RouteConfiguration, "", "", &["r1"]), &snap)
            .unwrap();
        assert_eq!(first[0].resources.len(), 1);
        let both = stream
            .on_request(
                &request(
                    RouteConfiguration,
                    &first[0].version_info,
                    &first[0].nonce,
                    &["r1", "r2"],
                ),
                &snap,
            )
            .unwrap();
        assert_eq!(both[0].resources.len(), 2);
        let none = stream
            .on_request(
                &request(
                    RouteConfiguration,
                    &both[0].version_info,
                    &both[0].nonce,
                    &[],
                ),
                &snap,
            )
            .unwrap();
        assert_eq!(
            none.len(),
            1,
            "unsubscribing from everything gets an empty response"
        );
        assert!(none[0].resources.is_empty());
    }

    #[test]
    fn test_reconnect_with_current_version_gets_nothing_resent() {
        let snap = snapshot(&[(Cluster, "a", "1"), (Listener, "l", "1")]);
        let mut first = SotwStream::new();
        let clusters = first
            .on_request(&request(Cluster, "", "", &[]), &snap)
            .unwrap();
        let listeners = first
            .on_request(&request(Listener, "", "", &[]), &snap)
            .unwrap();
        // A new stream (meshd restarted) where the proxy says what it holds.
        let mut second = SotwStream::new();
        assert!(
            second
                .on_request(&request(Cluster, &clusters[0].version_info, "", &[]), &snap)
                .unwrap()
                .is_empty()
        );
        assert!(
            second
                .on_request(
                    &request(Listener, &listeners[0].version_info, "", &[]),
                    &snap
                )
                .unwrap()
                .is_empty()
        );
        // With an older version it gets the current one.
        let mut third = SotwStream::new();
        assert_eq!(
            third
                .on_request(&request(Cluster, "stale", "", &[]), &snap)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn test_snapshot_responses_come_clusters_first() {
        let mut stream = SotwStream::new();
        let empty = snapshot(&[]);
        for kind in [Listener, RouteConfiguration, Endpoint, Cluster] {
            let names: &[&str] = if matches!(kind, Endpoint | RouteConfiguration) {
                &["x"]
            } else {
                &[]
            };
            let sent = stream
                .on_request(&request(kind, "", "", names), &empty)
                .unwrap();
            for response in sent {
                stream
                    .on_request(
                        &request(kind, &response.version_info, &response.nonce, names),
                        &empty,
                    )
                    .unwrap();
            }
        }
        let full = snapshot(&[
            (Listener, "l", "1"),
            (RouteConfiguration, "x", "1"),
            (Endpoint, "x", "1"),
            (Cluster, "c", "1"),
        ]);
        let order: Vec<String> = stream
            .on_snapshot(&full)
            .into_iter()
            .map(|r| r.type_url)
            .collect();
        let expected: Vec<String> = [Cluster, Endpoint, Listener, RouteConfiguration]
            .iter()
            .map(|k| k.type_url().to_string())
            .collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn test_a_proxy_whose_resource_does_not_exist_is_sent_nothing_until_it_does() {
        let mut stream = SotwStream::new();
        let absent = ProxySnapshot::default();
        assert!(
            stream
                .on_request(&request(Cluster, "", "", &[]), &absent)
                .unwrap()
                .is_empty()
        );
        assert!(stream.on_snapshot(&absent).is_empty());
        let created = snapshot(&[(Cluster, "a", "1")]);
        assert_eq!(stream.on_snapshot(&created).len(), 1);
    }

    #[test]
    fn test_unknown_type_is_an_error() {
        let mut stream = SotwStream::new();
        let mut req = request(Cluster, "", "", &[]);
        req.type_url = "type.googleapis.com/envoy.service.runtime.v3.Runtime".into();
        assert!(stream.on_request(&req, &snapshot(&[])).is_err());
    }
}
