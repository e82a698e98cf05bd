//! AWS Cloud Map as the endpoint source (`meshd serve --cloud-map aws`): each followed
//! query is read with `DiscoverInstances` (its attributes as `QueryParameters`,
//! `HealthStatus` `HEALTHY`, as App Mesh did; see `docs/envoy-mapping.md`) at once when
//! a proxy first needs it, then every `--cloud-map-interval`; a query that fails is tried
//! again after a backoff that doubles up to [`crate::feed::MAX_BACKOFF`], its last instances kept.
//!
//! The client is the AWS SDK for Rust with the standard credentials chain and
//! `--region`; `--cloud-map-endpoint` points it elsewhere (moto, a VPC endpoint), and
//! then the `data-` host prefix of `DiscoverInstances` is not prepended.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_servicediscovery::Client;
use aws_sdk_servicediscovery::types::HealthStatusFilter;
use tokio::time::Instant;

use crate::feed::{Schedule, error_chain};

use super::{DiscoveredInstance, Endpoints, ServiceQuery};

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
    let shared = crate::aws_sdk::config(&config.region).await;
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
    let response = request.send().await.map_err(|err| error_chain(&err))?;
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
