//! Endpoint discovery: where the instances of Cloud Map services come from, behind one
//! seam. The hub says which services its proxies need ([`Endpoints::want`]); one source
//! (meshd's own registry, [`local`], or AWS Cloud Map, [`aws`]) follows exactly those
//! and reports what it finds ([`Endpoints::report`]); the hub is told of each change
//! ([`Endpoints::changed`]) and republishes the endpoint assignments of the proxies that
//! use the service, nothing else.
//!
//! A source that cannot be read leaves the last instances it reported in force, marked
//! stale ([`Endpoints::report_failure`]); `GET /meshd/v1/cloud-map` shows each service
//! followed ([`Endpoints::status`]).

pub mod aws;
pub mod local;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use crate::feed::Feed;

/// What the hub asks a source for: the instances of one Cloud Map service that carry
/// every one of `attributes` (a virtual node's `awsCloudMap`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceQuery {
    /// The Cloud Map namespace's name.
    pub namespace: String,
    /// The Cloud Map service's name.
    pub service: String,
    /// Attributes an instance must carry, with these values.
    pub attributes: BTreeMap<String, String>,
}

/// Whether `attributes` carry every one of `wanted`, with its value.
pub fn carries(attributes: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted
        .iter()
        .all(|(key, value)| attributes.get(key) == Some(value))
}

impl ServiceQuery {
    /// Whether `instance` carries every attribute this query names, with its value.
    pub fn selects(&self, instance: &DiscoveredInstance) -> bool {
        carries(&instance.attributes, &self.attributes)
    }
}

impl std::fmt::Display for ServiceQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.service, self.namespace)?;
        for (key, value) in &self.attributes {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

/// A healthy instance a source found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiscoveredInstance {
    /// The instance id.
    pub id: String,
    /// Its attributes (`AWS_INSTANCE_IPV4`, `AWS_INSTANCE_PORT`, custom ones).
    pub attributes: BTreeMap<String, String>,
}

/// Where endpoints come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum SourceKind {
    /// meshd's own Cloud Map registry, in its store.
    Local,
    /// AWS Cloud Map (or anything that speaks its API), polled.
    Aws,
}

/// Which source `meshd serve` follows, and how it reaches it.
#[derive(Debug, Clone, Default)]
pub enum SourceConfig {
    /// meshd's own registry (`--cloud-map local`, the default).
    #[default]
    Local,
    /// AWS Cloud Map, or what `--cloud-map-endpoint` names (`--cloud-map aws`).
    Aws(aws::AwsConfig),
}

impl SourceConfig {
    /// Which kind of source this is.
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::Local => SourceKind::Local,
            SourceConfig::Aws(_) => SourceKind::Aws,
        }
    }
}

/// The instances each followed query has, shared by the hub and the source.
pub struct Endpoints {
    source: SourceKind,
    feed: Feed<ServiceQuery, Vec<DiscoveredInstance>>,
}

/// One Cloud Map service meshd follows, for `GET /meshd/v1/cloud-map`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowedService {
    /// The namespace's name.
    pub namespace: String,
    /// The service's name.
    pub service: String,
    /// Where its instances come from.
    pub source: SourceKind,
    /// Distinct instances found, over every attribute filter followed.
    pub instances: usize,
    /// The attribute filters followed (each a virtual node's `attributes`), as
    /// `key=value` lists; one empty list for a node without attributes.
    pub filters: Vec<Vec<String>>,
    /// When every filter was last read successfully (the oldest of their last
    /// successes, seconds since the epoch); `None` until each has been read once.
    pub last_success: Option<u64>,
    /// Whether the source cannot be read now (the instances shown are the last known).
    pub stale: bool,
    /// Why the source could not be read, while it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Endpoints {
    /// No query followed yet; instances will come from `source`.
    pub fn new(source: SourceKind) -> Arc<Self> {
        Arc::new(Self {
            source,
            feed: Feed::default(),
        })
    }

    /// The source in use.
    pub fn source(&self) -> SourceKind {
        self.source
    }

    /// The instances found for `query`: empty until the source has been read.
    pub fn instances(&self, query: &ServiceQuery) -> Arc<Vec<DiscoveredInstance>> {
        self.feed.answer(query).unwrap_or_default()
    }

    /// The hub's needs: exactly `queries` are followed from now on (what is known of
    /// the others is forgotten).
    pub fn want(&self, queries: BTreeSet<ServiceQuery>) {
        self.feed.want(queries);
    }

    /// What the hub needs, for a source to follow: the receiver is told of each change.
    pub fn wanted(&self) -> watch::Receiver<BTreeSet<ServiceQuery>> {
        self.feed.wanted()
    }

    /// A successful read of `query`: its instances now. The hub is told if they differ
    /// from the last read's. A query no longer wanted is ignored.
    pub fn report(&self, query: &ServiceQuery, mut instances: Vec<DiscoveredInstance>) {
        instances.sort();
        instances.dedup();
        if self
            .feed
            .report(query, instances)
            .is_some_and(|reported| reported.recovered)
        {
            tracing::info!(%query, "Cloud Map can be read again");
        }
    }

    /// A failed read of `query`: the last instances stay in force, marked stale.
    pub fn report_failure(&self, query: &ServiceQuery, error: String) {
        let message = error.clone();
        if self.feed.report_failure(query, error) == Some(true) {
            tracing::warn!(%query, "cannot read Cloud Map, keeping the last instances: {message}");
        }
    }

    /// Waits until some query's instances changed; returns those queries.
    pub async fn changed(&self) -> BTreeSet<ServiceQuery> {
        self.feed.changed().await
    }

    /// Every service followed, by namespace and name.
    pub fn status(&self) -> Vec<FollowedService> {
        let entries = self.feed.entries();
        let mut services: BTreeMap<(&str, &str), FollowedService> = BTreeMap::new();
        let mut instance_ids: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
        let mut unread: BTreeSet<(&str, &str)> = BTreeSet::new();
        for (query, state) in &entries {
            let key = (query.namespace.as_str(), query.service.as_str());
            let entry = services.entry(key).or_insert_with(|| FollowedService {
                namespace: query.namespace.clone(),
                service: query.service.clone(),
                source: self.source,
                instances: 0,
                filters: Vec::new(),
                last_success: None,
                stale: false,
                error: None,
            });
            entry.filters.push(
                query
                    .attributes
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect(),
            );
            match state.last_success {
                Some(at) => entry.last_success = Some(entry.last_success.map_or(at, |s| s.min(at))),
                None => {
                    unread.insert(key);
                }
            }
            if let Some(failure) = &state.failure {
                entry.stale = true;
                entry.error.get_or_insert_with(|| failure.clone());
            }
            instance_ids.entry(key).or_default().extend(
                state
                    .answer
                    .iter()
                    .flat_map(|i| i.iter())
                    .map(|i| i.id.as_str()),
            );
        }
        for (key, entry) in services.iter_mut() {
            entry.instances = instance_ids.get(key).map_or(0, BTreeSet::len);
            if unread.contains(key) {
                entry.last_success = None;
            }
        }
        services.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(service: &str) -> ServiceQuery {
        ServiceQuery {
            namespace: "ns".into(),
            service: service.into(),
            attributes: BTreeMap::new(),
        }
    }

    fn instance(id: &str) -> DiscoveredInstance {
        DiscoveredInstance {
            id: id.into(),
            attributes: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn a_change_is_reported_once_and_a_failure_keeps_the_last_instances() {
        let endpoints = Endpoints::new(SourceKind::Aws);
        endpoints.want([query("a"), query("b")].into());
        assert_eq!(endpoints.wanted().borrow().len(), 2);
        endpoints.report(&query("a"), vec![instance("2"), instance("1")]);
        endpoints.report(&query("b"), vec![]);
        assert_eq!(
            endpoints.changed().await,
            [query("a"), query("b")].into(),
            "a first read is a change, even when empty"
        );
        endpoints.report(&query("a"), vec![instance("1"), instance("2")]);
        endpoints.report_failure(&query("a"), "connection refused".into());
        assert_eq!(endpoints.instances(&query("a")).len(), 2);
        let status = endpoints.status();
        assert_eq!(status.len(), 2);
        assert_eq!((status[0].instances, status[0].stale), (2, true));
        assert!(!status[1].stale);
        // A query not wanted any more is forgotten and its reports ignored.
        endpoints.want([query("b")].into());
        endpoints.report(&query("a"), vec![instance("3")]);
        assert!(endpoints.instances(&query("a")).is_empty());
        endpoints.report(&query("b"), vec![instance("9")]);
        assert_eq!(endpoints.changed().await, [query("b")].into());
    }
}
