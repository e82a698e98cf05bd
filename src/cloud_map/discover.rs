//! What `DiscoverInstances` finds: the instances of a service that carry the wanted
//! attributes, with their health, filtered by `HealthStatus`.

use std::collections::BTreeMap;

use super::error::CloudMapError;
use super::input::{invalid, quoted};
use super::records::{InstanceRecord, ServiceRecord, View};
use crate::discovery::carries;

/// The health an instance has, as `DiscoverInstances` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Receives traffic.
    Healthy,
    /// Reported unhealthy with `UpdateInstanceCustomHealthStatus`.
    Unhealthy,
}

impl Health {
    /// The name the API gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "HEALTHY",
            Health::Unhealthy => "UNHEALTHY",
        }
    }
}

/// The health of `instance` of `service`: what its custom health check last said
/// (`HEALTHY` until then, or `AWS_INIT_HEALTH_STATUS` at registration), `HEALTHY` for a
/// service without custom health checks (meshd runs no Route 53 health checks).
pub fn health(service: &ServiceRecord, instance: &InstanceRecord) -> Health {
    match instance.custom_health.as_deref() {
        Some("UNHEALTHY") if service.has_custom_health() => Health::Unhealthy,
        _ => Health::Healthy,
    }
}

/// What DiscoverInstances asks for.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The namespace's name.
    pub namespace: String,
    /// The service's name.
    pub service: String,
    /// Attributes every instance returned carries.
    pub query: BTreeMap<String, String>,
    /// Attributes preferred: used when some instances carry them too.
    pub optional: BTreeMap<String, String>,
    /// `HEALTHY` (the default), `UNHEALTHY`, `ALL` or `HEALTHY_OR_ELSE_ALL`.
    pub health_status: Option<String>,
    /// At most this many (1–1,000, 100 by default).
    pub max_results: Option<i32>,
}

/// A discovered instance with the health reported for it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The instance.
    pub instance: InstanceRecord,
    /// Its health.
    pub health: Health,
}

/// Every instance `discovery` selects in `view` (`MaxResults` aside), by id, with the
/// service's revision.
pub fn discover_all(
    view: &View<'_>,
    discovery: &Discovery,
) -> Result<(Vec<Found>, u64), CloudMapError> {
    let namespace = view.namespace_named(&discovery.namespace).ok_or_else(|| {
        CloudMapError::NamespaceNotFound(format!(
            "no namespace is called {}",
            quoted(&discovery.namespace)
        ))
    })?;
    let service = view
        .service_named(&namespace.id, &discovery.service)
        .ok_or_else(|| {
            CloudMapError::ServiceNotFound(format!(
                "namespace {} has no service called {}",
                namespace.name,
                quoted(&discovery.service)
            ))
        })?;
    let filter = discovery.health_status.as_deref().unwrap_or("HEALTHY");
    if !["HEALTHY", "UNHEALTHY", "ALL", "HEALTHY_OR_ELSE_ALL"].contains(&filter) {
        return Err(invalid(format!(
            "HealthStatus is HEALTHY, UNHEALTHY, ALL or HEALTHY_OR_ELSE_ALL, not {}",
            quoted(filter)
        )));
    }
    let mut found: Vec<Found> = view
        .instances(&service.id)
        .into_iter()
        .filter(|instance| carries(&instance.attributes, &discovery.query))
        .map(|instance| Found {
            health: health(&service, &instance),
            instance,
        })
        .collect();
    if !discovery.optional.is_empty()
        && found
            .iter()
            .any(|f| carries(&f.instance.attributes, &discovery.optional))
    {
        found.retain(|f| carries(&f.instance.attributes, &discovery.optional));
    }
    // Health filters apply to services with health checks; others return every instance.
    if service.has_custom_health() {
        let healthy = found.iter().any(|f| f.health == Health::Healthy);
        match filter {
            "HEALTHY" => found.retain(|f| f.health == Health::Healthy),
            "UNHEALTHY" => found.retain(|f| f.health == Health::Unhealthy),
            "HEALTHY_OR_ELSE_ALL" if healthy => found.retain(|f| f.health == Health::Healthy),
            _ => {}
        }
    }
    Ok((found, service.revision))
}

/// The first `MaxResults` (1–1,000, 100 by default) of the instances `discovery`
/// selects in `view`, with the service's revision: `DiscoverInstances`.
pub fn discover(
    view: &View<'_>,
    discovery: &Discovery,
) -> Result<(Vec<Found>, u64), CloudMapError> {
    let limit = match discovery.max_results {
        None => 100,
        Some(n @ 1..=1000) => n as usize,
        Some(n) => {
            return Err(invalid(format!(
                "MaxResults must be from 1 to 1000, not {n}"
            )));
        }
    };
    let (mut found, revision) = discover_all(view, discovery)?;
    found.truncate(limit);
    Ok((found, revision))
}
