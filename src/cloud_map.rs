//! meshd's own Cloud Map registry (`meshd serve --cloud-map local`, the default): the
//! Cloud Map API that registration tools call ([`api`], on the API port), kept in the
//! store beside the mesh ([`records`]: durable, shared by etcd replicas), and what the
//! hub reads of it ([`discover`]). meshd serves no DNS: instances are found by API
//! calls (`DiscoverInstances`) and by meshd's own EDS.

pub mod api;
pub mod discover;
pub mod error;
pub mod input;
pub mod records;
pub mod registry;

use crate::discovery::DiscoveredInstance;
use crate::store::Snapshot;

pub use error::CloudMapError;

/// The instances of service `service` in namespace `namespace` that `DiscoverInstances`
/// returns with `HealthStatus` `HEALTHY` (what App Mesh asked for), sorted by id;
/// `None` when the namespace or the service does not exist.
pub fn discover(
    snapshot: &Snapshot,
    namespace: &str,
    service: &str,
) -> Option<Vec<DiscoveredInstance>> {
    let view = records::View::new(snapshot);
    let discovery = discover::Discovery {
        namespace: namespace.to_string(),
        service: service.to_string(),
        ..discover::Discovery::default()
    };
    let (found, _) = discover::discover_all(&view, &discovery).ok()?;
    Some(
        found
            .into_iter()
            .map(|found| DiscoveredInstance {
                id: found.instance.id,
                attributes: found.instance.attributes,
            })
            .collect(),
    )
}
