//! An incremental (delta) ADS stream as a state machine with no I/O. It tracks, per type,
//! the subscription and the version of each resource the proxy holds, sends only what
//! changed (and the names of what was removed), and never resends a resource version
//! the proxy rejected.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;

use crate::compile::ResourceType;

use super::snapshot::ProxySnapshot;
use super::sotw::ProtocolError;
use super::status::{Nack, TypeStatus};

#[derive(Debug, Clone, Default)]
struct TypeState {
    started: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// The version of each resource the proxy holds (or was sent and has not rejected).
    held: BTreeMap<String, String>,
    /// Responses awaiting an answer: nonce → the versions they replaced (None: newly added).
    in_flight: BTreeMap<String, BTreeMap<String, Option<String>>>,
    rejected: HashSet<(String, String)>,
    nack: Option<Nack>,
    last_sent_version: String,
    last_acked_version: String,
    responses_sent: u64,
}

/// One delta stream's state.
#[derive(Debug, Default)]
pub struct DeltaStream {
    types: BTreeMap<ResourceType, TypeState>,
    next_nonce: u64,
}

impl DeltaStream {
    /// A new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one request; returns the responses to send (zero or one).
    pub fn on_request(
        &mut self,
        request: &DeltaDiscoveryRequest,
        snapshot: &ProxySnapshot,
    ) -> Result<Vec<DeltaDiscoveryResponse>, ProtocolError> {
        let kind = ResourceType::ALL
            .into_iter()
            .find(|kind| kind.type_url() == request.type_url)
            .ok_or_else(|| ProtocolError::UnknownType(request.type_url.clone()))?;
        let state = self.types.entry(kind).or_default();
        if !state.started {
            state.started = true;
            let wildcard_type = matches!(kind, ResourceType::Cluster | ResourceType::Listener);
            state.wildcard = wildcard_type && request.resource_names_subscribe.is_empty();
            let mut initial: Vec<_> = request.initial_resource_versions.iter().collect();
            initial.sort();
            for (name, version) in initial {
                state.held.insert(name.clone(), version.clone());
            }
        }
        if !request.response_nonce.is_empty()
            && let Some(replaced) = state.in_flight.remove(&request.response_nonce)
        {
            match &request.error_detail {
                Some(status) => {
                    for (name, previous) in replaced {
                        if let Some(version) = state.held.get(&name).cloned() {
                            state.rejected.insert((name.clone(), version));
                        }
                        match previous {
                            Some(version) => state.held.insert(name, version),
                            None => state.held.remove(&name),
                        };
                    }
                    state.nack = Some(Nack::new(
                        state.last_sent_version.clone(),
                        request.response_nonce.clone(),
                        &status.message,
                    ));
                }
                None => state.last_acked_version = state.last_sent_version.clone(),
            }
        }
        for name in &request.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else {
                state.names.insert(name.clone());
            }
        }
        for name in &request.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.names.remove(name);
            }
            state.held.remove(name);
        }
        Ok(self.respond(kind, snapshot).into_iter().collect())
    }

    /// Handles a new snapshot: the responses to send, clusters and endpoints first.
    pub fn on_snapshot(&mut self, snapshot: &ProxySnapshot) -> Vec<DeltaDiscoveryResponse> {
        ResourceType::ALL
            .into_iter()
            .filter_map(|kind| self.respond(kind, snapshot))
            .collect()
    }

    fn respond(
        &mut self,
        kind: ResourceType,
        snapshot: &ProxySnapshot,
    ) -> Option<DeltaDiscoveryResponse> {
        if !snapshot.exists {
            return None;
        }
        let state = self.types.get_mut(&kind)?;
        if !state.started {
            return None;
        }
        let available = &snapshot.of(kind).resources;
        let wanted = |name: &str| state.wildcard || state.names.contains(name);
        let mut changed = Vec::new();
        let mut withheld = false;
        for (name, resource) in available {
            if !wanted(name) || state.held.get(name) == Some(&resource.version) {
                continue;
            }
            if state
                .rejected
                .contains(&(name.clone(), resource.version.clone()))
            {
                withheld = true;
                continue;
            }
            changed.push(resource.clone());
        }
        let removed: Vec<String> = state
            .held
            .keys()
            .filter(|name| !available.contains_key(*name) && wanted(name))
            .cloned()
            .collect();
        // A first answer is owed even when there is nothing to send, so that Envoy's
        // initialisation of the type completes (it waits for one response).
        let first_answer = state.responses_sent == 0 && state.held.is_empty();
        if changed.is_empty() && removed.is_empty() && !first_answer {
            if !withheld && state.in_flight.is_empty() {
                // The proxy holds exactly what it should, with nothing to send: after a
                // reconnect that already had everything, or a change reverted after a
                // NACK (the proxy kept the previous version). Say it is in sync.
                let version = snapshot.of(kind).version_of(available.values());
                state.last_sent_version = version.clone();
                state.last_acked_version = version;
            }
            return None;
        }
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let mut replaced = BTreeMap::new();
        for resource in &changed {
            let previous = state
                .held
                .insert(resource.name.clone(), resource.version.clone());
            replaced.insert(resource.name.clone(), previous);
        }
        for name in &removed {
            state.held.remove(name);
        }
        state.in_flight.insert(nonce.clone(), replaced);
        let version = snapshot.of(kind).version_of(available.values());
        state.last_sent_version = version.clone();
        state.responses_sent += 1;
        Some(DeltaDiscoveryResponse {
            system_version_info: version,
            resources: changed
                .iter()
                .map(|r| Resource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(Any {
                        type_url: kind.type_url().to_string(),
                        value: r.bytes.clone(),
                    }),
                    ..Default::default()
                })
                .collect(),
            type_url: kind.type_url().to_string(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        })
    }

    /// The per-type status of this stream.
    pub fn status(&self) -> BTreeMap<ResourceType, TypeStatus> {
        self.types
            .iter()
            .map(|(kind, state)| {
                (
                    *kind,
                    TypeStatus {
                        sent_version: state.last_sent_version.clone(),
                        acked_version: state.last_acked_version.clone(),
                        nack: state.nack.clone(),
                        responses_sent: state.responses_sent,
                        wildcard: state.wildcard,
                        subscribed: state.names.iter().cloned().collect(),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::sotw::tests::snapshot;
    use ResourceType::{Cluster, Listener, RouteConfiguration};
    use envoy_types::pb::google::rpc::Status as RpcStatus;

    fn request(
        kind: ResourceType,
        nonce: &str,
        subscribe: &[&str],
        unsubscribe: &[&str],
    ) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: kind.type_url().into(),
            response_nonce: nonce.into(),
            resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn names(response: &DeltaDiscoveryResponse) -> Vec<String> {
        response.resources.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn test_only_changes_and_removals_are_sent() {
        let mut stream = DeltaStream::new();
        let one = snapshot(&[(Cluster, "a", "1"), (Cluster, "b", "1")]);
        let first = stream
            .on_request(&request(Cluster, "", &[], &[]), &one)
            .unwrap();
        assert_eq!(names(&first[0]), ["a", "b"]);
        assert!(
            stream
                .on_request(&request(Cluster, &first[0].nonce, &[], &[]), &one)
                .unwrap()
                .is_empty()
        );
        let two = snapshot(&[(Cluster, "a", "2")]);
        let update = stream.on_snapshot(&two);
        assert_eq!(names(&update[0]), ["a"]);
        assert_eq!(update[0].removed_resources, ["b"]);
        assert!(stream.on_snapshot(&two).is_empty());
    }

    #[test]
    fn test_nack_keeps_the_previous_version_and_never_resends_the_rejected_one() {
        let mut stream = DeltaStream::new();
        let good = snapshot(&[(Listener, "l", "good")]);
        let first = stream
            .on_request(&request(Listener, "", &[], &[]), &good)
            .unwrap();
        stream
            .on_request(&request(Listener, &first[0].nonce, &[], &[]), &good)
            .unwrap();
        let bad = snapshot(&[(Listener, "l", "bad")]);
        let sent = stream.on_snapshot(&bad);
        let nack = DeltaDiscoveryRequest {
            error_detail: Some(RpcStatus {
                code: 3,
                message: "rejected".into(),
                ..Default::default()
            }),
            ..request(Listener, &sent[0].nonce, &[], &[])
        };
        assert!(stream.on_request(&nack, &bad).unwrap().is_empty());
        assert!(stream.on_snapshot(&bad).is_empty(), "no NACK loop");
        assert_eq!(
            stream.status()[&Listener].nack.as_ref().unwrap().message,
            "rejected"
        );
        let status = &stream.status()[&Listener];
        assert_ne!(status.acked_version, status.sent_version, "not in sync");
        // Going back to the good version is a change from what the proxy holds? No: it still
        // holds good, so nothing is sent, and the status says the proxy is in sync again.
        assert!(stream.on_snapshot(&good).is_empty());
        let status = &stream.status()[&Listener];
        assert_eq!(status.acked_version, status.sent_version);
        assert_eq!(status.responses_sent, 2);
        let newer = snapshot(&[(Listener, "l", "newer")]);
        assert_eq!(names(&stream.on_snapshot(&newer)[0]), ["l"]);
    }

    #[test]
    fn test_an_empty_type_still_gets_a_first_answer() {
        let mut stream = DeltaStream::new();
        let empty = snapshot(&[(RouteConfiguration, "r", "1")]);
        let first = stream
            .on_request(&request(Cluster, "", &[], &[]), &empty)
            .unwrap();
        assert_eq!(first.len(), 1);
        assert!(first[0].resources.is_empty() && first[0].removed_resources.is_empty());
        assert!(
            stream
                .on_request(&request(Cluster, &first[0].nonce, &[], &[]), &empty)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn test_named_subscribe_unsubscribe_and_reconnect() {
        let snap = snapshot(&[
            (RouteConfiguration, "r1", "1"),
            (RouteConfiguration, "r2", "1"),
        ]);
        let mut stream = DeltaStream::new();
        let first = stream
            .on_request(&request(RouteConfiguration, "", &["r1"], &[]), &snap)
            .unwrap();
        assert_eq!(names(&first[0]), ["r1"]);
        let more = stream
            .on_request(
                &request(RouteConfiguration, &first[0].nonce, &["r2"], &[]),
                &snap,
            )
            .unwrap();
        assert_eq!(names(&more[0]), ["r2"]);
        assert!(
            stream
                .on_request(
                    &request(RouteConfiguration, &more[0].nonce, &[], &["r1"]),
                    &snap
                )
                .unwrap()
                .is_empty()
        );
        // Reconnect: the proxy tells what it holds; nothing is resent.
        let mut again = DeltaStream::new();
        let mut hello = request(Cluster, "", &[], &[]);
        hello
            .initial_resource_versions
            .insert("c".into(), "1".into());
        assert!(
            again
                .on_request(&hello, &snapshot(&[(Cluster, "c", "1")]))
                .unwrap()
                .is_empty()
        );
        let status = &again.status()[&Cluster];
        assert_eq!(status.responses_sent, 0);
        assert!(!status.sent_version.is_empty());
        assert_eq!(status.acked_version, status.sent_version, "in sync");
    }
}
