//! AWS Cloud Map as the endpoint source (`meshd serve --cloud-map aws`): each followed
//! query is read with `DiscoverInstances` (its attributes as `QueryParameters`,
//! `HealthStatus` `HEALTHY`, as App Mesh did; see `docs/envoy-mapping.md`) at once when
//! a proxy first needs it, then every `--cloud-map-interval`; a query that fails is tried
//! again after a backoff that doubles up to [`MAX_BACKOFF`], its last instances kept.
//!
//! The client is the AWS SDK for Rust with the standard credentials chain and
//! `--region`; `--cloud-map-endpoint` points it elsewhere (moto, a VPC endpoint), and
//! then the `data-` host prefix of `DiscoverInstances` is not prepended.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_servicediscovery::Client;
use aws_sdk_servicediscovery::types::HealthStatusFilter;
use tokio::time::Instant;

use super::{DiscoveredInstance, Endpoints, ServiceQuery};

/// The longest wait before a failing query is read again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The most instances one `DiscoverInstances` call returns (Cloud Map's own maximum).
const MAX_RESULTS: i32 = 1000;

/// How to reach AWS Cloud Map.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The region to call.
    pub region: String,
    /// An endpoint to call instead of AWS's (`--cloud-map-endpoint`).
    pub endpoint: Option<String>,
    /// How often each followed query is read again.
    pub interval: Duration,
}

/// A Cloud Map client as `config` describes, with credentials from the standard chain.
pub async fn client(config: &AwsConfig) -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .load()
        .await;
    let mut builder = aws_sdk_servicediscovery::config::Builder::from(&shared);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint).interceptor(NoHostPrefix);
    }
    Client::from_conf(builder.build())
}

/// Leaves the host as the endpoint override names it: removes the `data-` prefix that
/// `DiscoverInstances` puts before it (the SDK for Rust has no setting for that, unlike
/// `AWS_DISABLE_HOST_PREFIX_INJECTION` for the others).
#[derive(Debug)]
struct NoHostPrefix;

impl aws_sdk_servicediscovery::config::Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }

    fn modify_before_serialization(
        &self,
        _context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        cfg.interceptor_state()
            .unset::<aws_smithy_runtime_api::client::endpoint::EndpointPrefix>();
        Ok(())
    }
}

/// Reads one query: every healthy instance carrying its attributes.
async fn discover(
    client: &Client,
    query: &ServiceQuery,
) -> Result<Vec<DiscoveredInstance>, String> {
    let mut request = client
        .discover_instances()
        .namespace_name(&query.namespace)
        .service_name(&query.service)
        .health_status(HealthStatusFilter::Healthy)
        .max_results(MAX_RESULTS);
    for (key, value) in &query.attributes {
        request = request.query_parameters(key, value);
    }
    let response = request.send().await.map_err(|err| {
        use std::error::Error;
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    })?;
    Ok(response
        .instances()
        .iter()
        .map(|instance| DiscoveredInstance {
            id: instance.instance_id().unwrap_or_default().to_string(),
            attributes: instance
                .attributes()
                .map(|attributes| {
                    attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

/// When each query is read next, and how long its current backoff is.
#[derive(Debug, Default)]
struct Schedule {
    next: BTreeMap<ServiceQuery, (Instant, Option<Duration>)>,
}

impl Schedule {
    /// Follows exactly `wanted`; a new query is due at once.
    fn follow(&mut self, wanted: &BTreeSet<ServiceQuery>, now: Instant) {
        self.next.retain(|query, _| wanted.contains(query));
        for query in wanted {
            self.next.entry(query.clone()).or_insert((now, None));
        }
    }

    fn due(&self, now: Instant) -> Vec<ServiceQuery> {
        self.next
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(query, _)| query.clone())
            .collect()
    }

    fn earliest(&self) -> Option<Instant> {
        self.next.values().map(|(at, _)| *at).min()
    }

    fn succeeded(&mut self, query: &ServiceQuery, now: Instant, interval: Duration) {
        if let Some(entry) = self.next.get_mut(query) {
            *entry = (now + interval, None);
        }
    }

    fn failed(&mut self, query: &ServiceQuery, now: Instant, interval: Duration) {
        if let Some(entry) = self.next.get_mut(query) {
            let backoff = entry
                .1
                .map_or(interval.min(Duration::from_secs(1)), |last| {
                    (last * 2).min(MAX_BACKOFF)
                })
                .max(Duration::from_millis(100));
            *entry = (now + backoff, Some(backoff));
        }
    }
}

/// Follows what the hub wants from AWS Cloud Map, forever.
pub async fn follow(client: Client, endpoints: Arc<Endpoints>, interval: Duration) {
    let mut wanted = endpoints.wanted();
    let mut schedule = Schedule::default();
    loop {
        schedule.follow(&wanted.borrow_and_update(), Instant::now());
        let now = Instant::now();
        let mut reads = tokio::task::JoinSet::new();
        for query in schedule.due(now) {
            let client = client.clone();
            reads.spawn(async move {
                let result = discover(&client, &query).await;
                (query, result)
            });
        }
        while let Some(read) = reads.join_next().await {
            let Ok((query, result)) = read else { continue };
            let query = &query;
            let now = Instant::now();
            match result {
                Ok(instances) => {
                    endpoints.report(query, instances);
                    schedule.succeeded(query, now, interval);
                }
                Err(error) => {
                    endpoints.report_failure(query, error);
                    schedule.failed(query, now, interval);
                }
            }
        }
        let sleep_until = schedule
            .earliest()
            .unwrap_or_else(|| Instant::now() + interval);
        tokio::select! {
            () = tokio::time::sleep_until(sleep_until) => {}
            changed = wanted.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str) -> ServiceQuery {
        ServiceQuery {
            namespace: "ns".into(),
            service: name.into(),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn failures_back_off_doubling_and_a_success_returns_to_the_interval() {
        let interval = Duration::from_secs(5);
        let start = Instant::now();
        let mut schedule = Schedule::default();
        schedule.follow(&[query("a")].into(), start);
        assert_eq!(schedule.due(start), [query("a")]);
        let mut waits = Vec::new();
        let mut now = start;
        for _ in 0..9 {
            schedule.failed(&query("a"), now, interval);
            let next = schedule.earliest().unwrap();
            waits.push((next - now).as_secs_f64());
            now = next;
        }
        assert_eq!(waits, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
        schedule.succeeded(&query("a"), now, interval);
        assert_eq!(schedule.earliest().unwrap() - now, interval);
        schedule.follow(&[query("b")].into(), now);
        assert_eq!(
            schedule.due(now),
            [query("b")],
            "a dropped query is no longer read"
        );
    }
}
