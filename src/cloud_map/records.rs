//! How meshd's Cloud Map registry is kept in the store: one JSON record per namespace,
//! service, instance and operation in [`RecordSpace::CloudMap`], plus two name indices,
//! and a read-only view of them in one snapshot ([`View`]).
//!
//! Record ids, chosen so that what is read together is one prefix scan:
//! `ns/<id>`, `svc/<id>`, `inst/<service id>/<instance id>`, `op/<id>` (operation ids
//! sort by time), `nsname/<name>` → namespace id, `svcname/<namespace id>/<name>` →
//! service id.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::{RecordKey, RecordSpace, RecordWrite, Snapshot};

/// A namespace's type, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceType {
    /// Found by API calls only.
    #[serde(rename = "HTTP")]
    Http,
    /// A private DNS namespace (meshd serves no DNS: found by API calls only).
    #[serde(rename = "DNS_PRIVATE")]
    DnsPrivate,
    /// A public DNS namespace (likewise).
    #[serde(rename = "DNS_PUBLIC")]
    DnsPublic,
}

impl NamespaceType {
    /// The name the API gives the type.
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceType::Http => "HTTP",
            NamespaceType::DnsPrivate => "DNS_PRIVATE",
            NamespaceType::DnsPublic => "DNS_PUBLIC",
        }
    }
}

/// A tag on a namespace or a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// A stored namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRecord {
    /// `ns-…`.
    pub id: String,
    /// Its name (for HTTP namespaces also its `HttpName`).
    pub name: String,
    /// HTTP or DNS.
    pub kind: NamespaceType,
    /// What its creator said of it.
    pub description: Option<String>,
    /// The creator's idempotency token.
    pub creator_request_id: Option<String>,
    /// When it was created, in seconds since the epoch.
    pub create_date: f64,
    /// The operation that created it (answered again to a repeated request).
    pub operation_id: String,
    /// The VPC a private DNS namespace was created for.
    pub vpc: Option<String>,
    /// The SOA record's TTL of a DNS namespace.
    pub soa_ttl: Option<i64>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// A stored service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRecord {
    /// `srv-…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The namespace it is in.
    pub namespace_id: String,
    /// `HTTP` or `DNS_HTTP`.
    pub kind: String,
    /// What its creator said of it.
    pub description: Option<String>,
    /// The creator's idempotency token.
    pub creator_request_id: Option<String>,
    /// When it was created, in seconds since the epoch.
    pub create_date: f64,
    /// `DnsConfig` as given (meshd serves no DNS; it is kept and shown).
    pub dns_config: Option<serde_json::Value>,
    /// `HealthCheckConfig` (Route 53 health checks) as given.
    pub health_check_config: Option<serde_json::Value>,
    /// `HealthCheckCustomConfig` as given: instances' health is then what
    /// `UpdateInstanceCustomHealthStatus` last said.
    pub health_check_custom_config: Option<serde_json::Value>,
    /// Counts every change of its instances (`InstancesRevision`).
    pub revision: u64,
    /// Its tags.
    pub tags: Vec<Tag>,
}

impl ServiceRecord {
    /// Whether instances' health is reported by `UpdateInstanceCustomHealthStatus`.
    pub fn has_custom_health(&self) -> bool {
        self.health_check_custom_config.is_some()
    }
}

/// A stored instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    /// The id its registrant chose.
    pub id: String,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// The registrant's idempotency token.
    pub creator_request_id: Option<String>,
    /// The health last reported with `UpdateInstanceCustomHealthStatus`.
    pub custom_health: Option<String>,
}

/// A stored operation: every one completes when it is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationRecord {
    /// Its id (32 characters, sorting by time).
    pub id: String,
    /// `CREATE_NAMESPACE`, `REGISTER_INSTANCE`, …
    pub kind: String,
    /// When it was accepted (and completed), in seconds since the epoch.
    pub date: f64,
    /// What it acted on: `NAMESPACE`, `SERVICE`, `INSTANCE` → id.
    pub targets: BTreeMap<String, String>,
}

fn key(id: String) -> RecordKey {
    RecordKey::new(RecordSpace::CloudMap, id)
}

/// The record id of namespace `id`.
pub fn namespace_key(id: &str) -> RecordKey {
    key(format!("ns/{id}"))
}

/// The record id of service `id`.
pub fn service_key(id: &str) -> RecordKey {
    key(format!("svc/{id}"))
}

/// The record id of instance `instance` of service `service`.
pub fn instance_key(service: &str, instance: &str) -> RecordKey {
    key(format!("inst/{service}/{instance}"))
}

/// The record id of operation `id`.
pub fn operation_key(id: &str) -> RecordKey {
    key(format!("op/{id}"))
}

/// The index record naming the namespace called `name`.
pub fn namespace_name_key(name: &str) -> RecordKey {
    key(format!("nsname/{name}"))
}

/// The index record naming the service called `name` in namespace `namespace`.
pub fn service_name_key(namespace: &str, name: &str) -> RecordKey {
    key(format!("svcname/{namespace}/{name}"))
}

/// The prefix under which operations' records sort by time.
pub const OPERATION_PREFIX: &str = "op/";

/// Encodes a record.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("registry records are plain data")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(record) => Some(record),
        Err(err) => {
            tracing::error!("a Cloud Map registry record cannot be read, ignored: {err}");
            None
        }
    }
}

/// Puts `record` under `key` in `write`.
pub fn put<T: Serialize>(write: &mut RecordWrite, key: RecordKey, record: &T) {
    write.put(key, encode(record));
}

/// The registry as one snapshot holds it.
#[derive(Clone, Copy)]
pub struct View<'s> {
    snapshot: &'s Snapshot,
}

impl<'s> View<'s> {
    /// The registry in `snapshot`.
    pub fn new(snapshot: &'s Snapshot) -> Self {
        Self { snapshot }
    }

    fn get<T: DeserializeOwned>(&self, key: &RecordKey) -> Option<T> {
        self.snapshot
            .record(key)
            .and_then(|bytes| decode(bytes.as_ref()))
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &str, most: usize) -> Vec<T> {
        self.snapshot
            .records(RecordSpace::CloudMap, prefix)
            .take(most)
            .filter_map(|(_, bytes)| decode(bytes.as_ref()))
            .collect()
    }

    /// Namespace `id`.
    pub fn namespace(&self, id: &str) -> Option<NamespaceRecord> {
        self.get(&namespace_key(id))
    }

    /// The namespace called `name`.
    pub fn namespace_named(&self, name: &str) -> Option<NamespaceRecord> {
        let id: String = self.get(&namespace_name_key(name))?;
        self.namespace(&id)
    }

    /// Every namespace, by id.
    pub fn namespaces(&self) -> Vec<NamespaceRecord> {
        self.scan("ns/", usize::MAX)
    }

    /// Service `id`.
    pub fn service(&self, id: &str) -> Option<ServiceRecord> {
        self.get(&service_key(id))
    }

    /// The service called `name` in namespace `namespace`.
    pub fn service_named(&self, namespace: &str, name: &str) -> Option<ServiceRecord> {
        let id: String = self.get(&service_name_key(namespace, name))?;
        self.service(&id)
    }

    /// Every service, by id.
    pub fn services(&self) -> Vec<ServiceRecord> {
        self.scan("svc/", usize::MAX)
    }

    /// How many services namespace `namespace` has.
    pub fn service_count(&self, namespace: &str) -> usize {
        self.snapshot
            .records(RecordSpace::CloudMap, &format!("svcname/{namespace}/"))
            .count()
    }

    /// Instance `instance` of service `service`.
    pub fn instance(&self, service: &str, instance: &str) -> Option<InstanceRecord> {
        self.get(&instance_key(service, instance))
    }

    /// The instances of service `service`, by id.
    pub fn instances(&self, service: &str) -> Vec<InstanceRecord> {
        self.scan(&format!("inst/{service}/"), usize::MAX)
    }

    /// How many instances service `service` has.
    pub fn instance_count(&self, service: &str) -> usize {
        self.snapshot
            .records(RecordSpace::CloudMap, &format!("inst/{service}/"))
            .count()
    }

    /// Operation `id`.
    pub fn operation(&self, id: &str) -> Option<OperationRecord> {
        self.get(&operation_key(id))
    }

    /// The `most` oldest operations kept, oldest first.
    pub fn operations(&self, most: usize) -> Vec<OperationRecord> {
        self.scan(OPERATION_PREFIX, most)
    }
}
