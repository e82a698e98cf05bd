//! The operations of meshd's Cloud Map registry: each checks its input as AWS Cloud Map
//! does, then reads, or decides and commits a write through [`Store::transact`] (one
//! revision, durable, seen by every replica). An operation completes when it is
//! accepted: its `OperationId` reports `SUCCESS` at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use super::discover::{Discovery, Found, Health, discover, health};
use super::error::CloudMapError;
use super::input::{
    Filter, Page, check_attributes, check_optional_length, check_printable, check_service_name,
    check_tags, invalid, is_dns_name, merge_tags, page, quoted,
};
use super::records::{
    self, InstanceRecord, NamespaceRecord, NamespaceType, OperationRecord, ServiceRecord, Tag, View,
};
use crate::store::{RecordWrite, Snapshot, Store};

/// How long an operation can be read back with `GetOperation`.
pub const OPERATION_RETENTION_SECONDS: f64 = 15.0 * 60.0;

/// The most namespaces the registry holds.
pub const MAX_NAMESPACES: usize = 1_000;
/// The most services the registry holds, over every namespace.
pub const MAX_SERVICES: usize = 10_000;
/// The most instances one service has.
pub const MAX_INSTANCES_PER_SERVICE: usize = 10_000;
fn now() -> f64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (elapsed.as_millis() as f64) / 1000.0
}

/// `length` random characters of `[0-9a-z]`.
fn random_chars(length: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(length);
    while out.len() < length {
        for byte in uuid::Uuid::new_v4().as_bytes() {
            if out.len() < length {
                out.push(ALPHABET[usize::from(*byte) % ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// A new operation id: the time in milliseconds (13 hex digits), then 19 random
/// characters, so that operations sort by time.
fn operation_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{millis:013x}{}", random_chars(19))
}

/// The id an `Id` or `ServiceId` member names: an id, or an ARN ending in
/// `/<id>` (AWS accepts both).
pub fn id_of(given: &str) -> &str {
    if given.starts_with("arn:") {
        given.rsplit('/').next().unwrap_or(given)
    } else {
        given
    }
}

/// What a Create…Namespace request asks for.
#[derive(Debug, Clone)]
pub struct NewNamespace {
    /// Its name.
    pub name: String,
    /// HTTP, private or public DNS.
    pub kind: NamespaceType,
    /// The creator's idempotency token.
    pub creator_request_id: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// Its tags.
    pub tags: Vec<Tag>,
    /// The VPC of a private DNS namespace.
    pub vpc: Option<String>,
    /// The SOA TTL of a DNS namespace.
    pub soa_ttl: Option<i64>,
}

/// What a CreateService request asks for.
#[derive(Debug, Clone, Default)]
pub struct NewService {
    /// Its name.
    pub name: String,
    /// The namespace it goes in (an id or an ARN).
    pub namespace_id: String,
    /// The creator's idempotency token.
    pub creator_request_id: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// `DnsConfig`.
    pub dns_config: Option<serde_json::Value>,
    /// `HealthCheckConfig`.
    pub health_check_config: Option<serde_json::Value>,
    /// `HealthCheckCustomConfig`.
    pub health_check_custom_config: Option<serde_json::Value>,
    /// `Type`: `HTTP` makes a service that only API calls find.
    pub http_only: bool,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// meshd's Cloud Map registry over one store, answering as `region` and `account`.
pub struct Registry<'a> {
    /// Where the registry is kept.
    pub store: &'a Store,
    /// The region in ARNs.
    pub region: &'a str,
    /// The account id in ARNs and owners.
    pub account: &'a str,
}

/// A decision of a write: its records and its answer.
type Decision<T> = Result<(RecordWrite, T), CloudMapError>;

impl Registry<'_> {
    /// The ARN of namespace `id`.
    pub fn namespace_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:servicediscovery:{}:{}:namespace/{id}",
            self.region, self.account
        )
    }

    /// The ARN of service `id`.
    pub fn service_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:servicediscovery:{}:{}:service/{id}",
            self.region, self.account
        )
    }

    /// Decides and commits one write.
    fn write<T>(&self, decide: impl Fn(&Snapshot) -> Decision<T>) -> Result<T, CloudMapError> {
        Ok(self.store.transact(decide)?)
    }

    /// Reads the latest registry.
    pub fn read<T>(&self, read: impl FnOnce(View<'_>) -> T) -> T {
        let snapshot = self.store.snapshot();
        read(View::new(&snapshot))
    }

    /// Records operation `id` of `kind` on `targets` in `write`, and drops operations
    /// older than [`OPERATION_RETENTION_SECONDS`].
    fn record_operation(
        view: &View<'_>,
        write: &mut RecordWrite,
        id: &str,
        kind: &str,
        targets: &[(&str, &str)],
    ) {
        let date = now();
        for old in view.operations(16) {
            if old.date + OPERATION_RETENTION_SECONDS >= date {
                break;
            }
            write.delete(records::operation_key(&old.id));
        }
        let operation = OperationRecord {
            id: id.to_string(),
            kind: kind.to_string(),
            date,
            targets: targets
                .iter()
                .map(|(target, id)| (target.to_string(), id.to_string()))
                .collect(),
        };
        records::put(write, records::operation_key(id), &operation);
    }

    /// Records operation `id` of `kind` on instance `instance` of `service`.
    fn record_instance_operation(
        view: &View<'_>,
        write: &mut RecordWrite,
        id: &str,
        kind: &str,
        service: &ServiceRecord,
        instance: &str,
    ) {
        Self::record_operation(
            view,
            write,
            id,
            kind,
            &[
                ("NAMESPACE", &service.namespace_id),
                ("SERVICE", &service.id),
                ("INSTANCE", instance),
            ],
        );
    }

    /// Creates a namespace; answers its operation's id. A repeated request (same name
    /// and creator request id) answers the first one's operation.
    pub fn create_namespace(&self, new: NewNamespace) -> Result<String, CloudMapError> {
        let name_ok = match new.kind {
            NamespaceType::Http => new.name.len() <= 1024,
            NamespaceType::DnsPrivate => new.name.len() <= 253,
            NamespaceType::DnsPublic => is_dns_name(&new.name),
        };
        check_printable("Name", &new.name, 1024)?;
        if !name_ok || new.name.starts_with("arn:") {
            return Err(invalid(format!(
                "Name {} is not a name for a {} namespace",
                quoted(&new.name),
                new.kind.as_str()
            )));
        }
        check_optional_length("Description", new.description.as_deref(), 1024)?;
        check_optional_length("CreatorRequestId", new.creator_request_id.as_deref(), 64)?;
        if new.kind == NamespaceType::DnsPrivate && new.vpc.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("a private DNS namespace needs a Vpc"));
        }
        let id = format!("ns-{}", random_chars(16));
        check_tags(&new.tags, &self.namespace_arn(&id))?;
        let operation = operation_id();
        self.write(|snapshot| {
            let view = View::new(snapshot);
            if let Some(existing) = view.namespace_named(&new.name) {
                if new.creator_request_id.is_some()
                    && existing.creator_request_id == new.creator_request_id
                {
                    return Ok((RecordWrite::none(), existing.operation_id));
                }
                return Err(CloudMapError::NamespaceAlreadyExists {
                    message: format!("a namespace called {} exists: {}", new.name, existing.id),
                    creator_request_id: existing.creator_request_id,
                    namespace_id: existing.id,
                });
            }
            if view.namespaces().len() >= MAX_NAMESPACES {
                return Err(CloudMapError::ResourceLimitExceeded(format!(
                    "meshd's registry holds at most {MAX_NAMESPACES} namespaces"
                )));
            }
            let namespace = NamespaceRecord {
                id: id.clone(),
                name: new.name.clone(),
                kind: new.kind,
                description: new.description.clone(),
                creator_request_id: new.creator_request_id.clone(),
                create_date: now(),
                operation_id: operation.clone(),
                vpc: new.vpc.clone(),
                soa_ttl: new.soa_ttl,
                tags: new.tags.clone(),
            };
            let mut write = RecordWrite::none();
            records::put(&mut write, records::namespace_key(&id), &namespace);
            records::put(&mut write, records::namespace_name_key(&new.name), &id);
            Self::record_operation(
                &view,
                &mut write,
                &operation,
                "CREATE_NAMESPACE",
                &[("NAMESPACE", &id)],
            );
            Ok((write, operation.clone()))
        })
    }

    fn namespace_in(view: &View<'_>, id: &str) -> Result<NamespaceRecord, CloudMapError> {
        view.namespace(id_of(id)).ok_or_else(|| {
            CloudMapError::NamespaceNotFound(format!("no namespace has the id {}", quoted(id)))
        })
    }

    fn service_in(view: &View<'_>, id: &str) -> Result<ServiceRecord, CloudMapError> {
        view.service(id_of(id)).ok_or_else(|| {
            CloudMapError::ServiceNotFound(format!("no service has the id {}", quoted(id)))
        })
    }

    fn instance_in(
        view: &View<'_>,
        service: &ServiceRecord,
        id: &str,
    ) -> Result<InstanceRecord, CloudMapError> {
        view.instance(&service.id, id).ok_or_else(|| {
            CloudMapError::InstanceNotFound(format!(
                "service {} has no instance {}",
                service.id,
                quoted(id)
            ))
        })
    }

    /// Namespace `id` and how many services it has.
    pub fn get_namespace(&self, id: &str) -> Result<(NamespaceRecord, usize), CloudMapError> {
        self.read(|view| {
            let namespace = Self::namespace_in(&view, id)?;
            let services = view.service_count(&namespace.id);
            Ok((namespace, services))
        })
    }

    /// A page of the namespaces `filters` select, each with its service count.
    pub fn list_namespaces(
        &self,
        filters: &[Filter],
        token: Option<&str>,
        max: Option<i32>,
    ) -> Page<(NamespaceRecord, usize)> {
        for filter in filters {
            match filter.name.as_str() {
                "TYPE" => filter.check(&["EQ", "IN"])?,
                "NAME" | "HTTP_NAME" => filter.check(&["EQ", "BEGINS_WITH"])?,
                "RESOURCE_OWNER" => filter.check(&["EQ"])?,
                other => return Err(invalid(format!("no namespace filter is called {other}"))),
            };
        }
        self.read(|view| {
            let selected: Vec<NamespaceRecord> = view
                .namespaces()
                .into_iter()
                .filter(|namespace| {
                    filters.iter().all(|filter| match filter.name.as_str() {
                        "TYPE" => filter.admits(namespace.kind.as_str()),
                        "RESOURCE_OWNER" => filter.admits(self.account),
                        _ => filter.admits(&namespace.name),
                    })
                })
                .collect();
            let (page, next) = page(selected, |n| n.id.as_str(), token, max, 100)?;
            let counted = page
                .into_iter()
                .map(|namespace| {
                    let count = view.service_count(&namespace.id);
                    (namespace, count)
                })
                .collect();
            Ok((counted, next))
        })
    }

    /// Deletes a namespace that has no services; answers the operation's id.
    pub fn delete_namespace(&self, id: &str) -> Result<String, CloudMapError> {
        let operation = operation_id();
        self.write(|snapshot| {
            let view = View::new(snapshot);
            let namespace = Self::namespace_in(&view, id)?;
            let services = view.service_count(&namespace.id);
            if services > 0 {
                return Err(CloudMapError::ResourceInUse(format!(
                    "namespace {} still has {services} services",
                    namespace.id
                )));
            }
            let mut write = RecordWrite::none();
            write.delete(records::namespace_key(&namespace.id));
            write.delete(records::namespace_name_key(&namespace.name));
            Self::record_operation(
                &view,
                &mut write,
                &operation,
                "DELETE_NAMESPACE",
                &[("NAMESPACE", &namespace.id)],
            );
            Ok((write, operation.clone()))
        })
    }

    /// Creates a service; a repeated request (same name and creator request id)
    /// answers the service it made.
    pub fn create_service(&self, new: NewService) -> Result<ServiceRecord, CloudMapError> {
        check_service_name(&new.name)?;
        check_optional_length("Description", new.description.as_deref(), 1024)?;
        check_optional_length("CreatorRequestId", new.creator_request_id.as_deref(), 64)?;
        let id = format!("srv-{}", random_chars(16));
        check_tags(&new.tags, &self.service_arn(&id))?;
        self.write(|snapshot| {
            let view = View::new(snapshot);
            let namespace = Self::namespace_in(&view, &new.namespace_id)?;
            if let Some(existing) = view.service_named(&namespace.id, &new.name) {
                if new.creator_request_id.is_some()
                    && existing.creator_request_id == new.creator_request_id
                {
                    return Ok((RecordWrite::none(), existing));
                }
                return Err(CloudMapError::ServiceAlreadyExists {
                    message: format!(
                        "namespace {} has a service called {}: {}",
                        namespace.name, new.name, existing.id
                    ),
                    creator_request_id: existing.creator_request_id,
                    service_arn: self.service_arn(&existing.id),
                    service_id: existing.id,
                });
            }
            if namespace.kind == NamespaceType::Http && new.dns_config.is_some() {
                return Err(invalid(format!(
                    "namespace {} is an HTTP namespace: its services have no DnsConfig",
                    namespace.name
                )));
            }
            if view.services().len() >= MAX_SERVICES {
                return Err(CloudMapError::ResourceLimitExceeded(format!(
                    "meshd's registry holds at most {MAX_SERVICES} services"
                )));
            }
            let kind = if namespace.kind == NamespaceType::Http || new.http_only {
                "HTTP"
            } else if new.dns_config.is_some() {
                "DNS_HTTP"
            } else {
                "HTTP"
            };
            let service = ServiceRecord {
                id: id.clone(),
                name: new.name.clone(),
                namespace_id: namespace.id.clone(),
                kind: kind.to_string(),
                description: new.description.clone(),
                creator_request_id: new.creator_request_id.clone(),
                create_date: now(),
                dns_config: new.dns_config.clone(),
                health_check_config: new.health_check_config.clone(),
                health_check_custom_config: new.health_check_custom_config.clone(),
                revision: 0,
                tags: new.tags.clone(),
            };
            let mut write = RecordWrite::none();
            records::put(&mut write, records::service_key(&id), &service);
            records::put(
                &mut write,
                records::service_name_key(&namespace.id, &new.name),
                &id,
            );
            Ok((write, service))
        })
    }

    /// Service `id` and how many instances it has.
    pub fn get_service(&self, id: &str) -> Result<(ServiceRecord, usize), CloudMapError> {
        self.read(|view| {
            let service = Self::service_in(&view, id)?;
            let count = view.instance_count(&service.id);
            Ok((service, count))
        })
    }

    /// A page of the services `filters` select, each with its instance count.
    pub fn list_services(
        &self,
        filters: &[Filter],
        token: Option<&str>,
        max: Option<i32>,
    ) -> Page<(ServiceRecord, usize)> {
        for filter in filters {
            match filter.name.as_str() {
                "NAMESPACE_ID" => filter.check(&["EQ", "IN"])?,
                "RESOURCE_OWNER" => filter.check(&["EQ"])?,
                other => return Err(invalid(format!("no service filter is called {other}"))),
            };
        }
        self.read(|view| {
            let selected: Vec<ServiceRecord> = view
                .services()
                .into_iter()
                .filter(|service| {
                    filters.iter().all(|filter| match filter.name.as_str() {
                        "NAMESPACE_ID" => filter
                            .values
                            .iter()
                            .any(|value| id_of(value) == service.namespace_id),
                        _ => filter.admits(self.account),
                    })
                })
                .collect();
            let (page, next) = page(selected, |s| s.id.as_str(), token, max, 100)?;
            let counted = page
                .into_iter()
                .map(|service| {
                    let count = view.instance_count(&service.id);
                    (service, count)
                })
                .collect();
            Ok((counted, next))
        })
    }

    /// Changes a service's description, DNS records' TTLs or health check; answers the
    /// operation's id.
    pub fn update_service(
        &self,
        id: &str,
        description: Option<String>,
        dns_records: Option<serde_json::Value>,
        health_check_config: Option<serde_json::Value>,
    ) -> Result<String, CloudMapError> {
        check_optional_length("Description", description.as_deref(), 1024)?;
        let operation = operation_id();
        self.write(|snapshot| {
            let view = View::new(snapshot);
            let mut service = Self::service_in(&view, id)?;
            if let Some(description) = &description {
                service.description = Some(description.clone());
            }
            if let Some(records) = &dns_records {
                let Some(config) = service
                    .dns_config
                    .as_mut()
                    .and_then(serde_json::Value::as_object_mut)
                else {
                    return Err(invalid(format!(
                        "service {} has no DNS records to change",
                        service.id
                    )));
                };
                config.insert("DnsRecords".into(), records.clone());
            }
            if let Some(check) = &health_check_config {
                service.health_check_config = Some(check.clone());
            }
            let mut write = RecordWrite::none();
            records::put(&mut write, records::service_key(&service.id), &service);
            Self::record_operation(
                &view,
                &mut write,
                &operation,
                "UPDATE_SERVICE",
                &[("SERVICE", &service.id)],
            );
            Ok((write, operation.clone()))
        })
    }

    /// Deletes a service that has no instances.
    pub fn delete_service(&self, id: &str) -> Result<(), CloudMapError> {
        self.write(|snapshot| {
            let view = View::new(snapshot);
            let service = Self::service_in(&view, id)?;
            let instances = view.instance_count(&service.id);
            if instances > 0 {
                return Err(CloudMapError::ResourceInUse(format!(
                    "service {} still has {instances} instances",
                    service.id
                )));
            }
            let mut write = RecordWrite::none();
            write.delete(records::service_key(&service.id));
            write.delete(records::service_name_key(
                &service.namespace_id,
                &service.name,
            ));
            Ok((write, ()))
        })
    }

    /// Registers an instance, or replaces the attributes of one registered with this id;
    /// answers the operation's id.
    pub fn register_instance(
        &self,
        service_id: &str,
        instance_id: &str,
        creator_request_id: Option<String>,
        attributes: BTreeMap<String, String>,
    ) -> Result<String, CloudMapError> {
        if instance_id.is_empty()
            || instance_id.len() > 64
            || !instance_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_/:.@-".contains(&b))
        {
            return Err(invalid(format!(
                "InstanceId must be 1 to 64 of [0-9a-zA-Z_/:.@-], not {}",
                quoted(instance_id)
            )));
        }
        check_optional_length("CreatorRequestId", creator_request_id.as_deref(), 64)?;
        let operation = operation_id();
        self.write(|snapshot| {
            let view = View::new(snapshot);
            let mut service = Self::service_in(&view, service_id)?;
            check_attributes(&attributes, &service)?;
            let existing = view.instance(&service.id, instance_id);
            if existing.is_none() && view.instance_count(&service.id) >= MAX_INSTANCES_PER_SERVICE {
                return Err(CloudMapError::ResourceLimitExceeded(format!(
                    "a service has at most {MAX_INSTANCES_PER_SERVICE} instances"
                )));
            }
            let custom_health = match existing {
                Some(existing) => existing.custom_health,
                None => attributes
                    .get("AWS_INIT_HEALTH_STATUS")
                    .filter(|_| service.has_custom_health())
                    .cloned(),
            };
            let instance = InstanceRecord {
                id: instance_id.to_string(),
                attributes: attributes.clone(),
                creator_request_id: creator_request_id.clone(),
                custom_health,
            };
            let mut write = RecordWrite::none();
            write_instance(&mut write, &mut service, instance_id, Some(&instance));
            Self::record_instance_operation(
                &view,
                &mut write,
                &operation,
                "REGISTER_INSTANCE",
                &service,
                instance_id,
            );
            Ok((write, operation.clone()))
        })
    }

    /// Deregisters an instance; answers the operation's id.
    pub fn deregister_instance(
        &self,
        service_id: &str,
        instance_id: &str,
    ) -> Result<String, CloudMapError> {
        let operation = operation_id();
        self.write(|snapshot| {
            let view = View::new(snapshot);
            let mut service = Self::service_in(&view, service_id)?;
            Self::instance_in(&view, &service, instance_id)?;
            let mut write = RecordWrite::none();
            write_instance(&mut write, &mut service, instance_id, None);
            Self::record_instance_operation(
                &view,
                &mut write,
                &operation,
                "DEREGISTER_INSTANCE",
                &service,
                instance_id,
            );
            Ok((write, operation.clone()))
        })
    }

    /// One instance of a service.
    pub fn get_instance(
        &self,
        service_id: &str,
        instance_id: &str,
    ) -> Result<InstanceRecord, CloudMapError> {
        self.read(|view| {
            let service = Self::service_in(&view, service_id)?;
            Self::instance_in(&view, &service, instance_id)
        })
    }

    /// A page of a service's instances.
    pub fn list_instances(
        &self,
        service_id: &str,
        token: Option<&str>,
        max: Option<i32>,
    ) -> Page<InstanceRecord> {
        self.read(|view| {
            let service = Self::service_in(&view, service_id)?;
            page(
                view.instances(&service.id),
                |i| i.id.as_str(),
                token,
                max,
                100,
            )
        })
    }

    /// The instances `discovery` selects, with the service's revision.
    pub fn discover(&self, discovery: &Discovery) -> Result<(Vec<Found>, u64), CloudMapError> {
        self.read(|view| discover(&view, discovery))
    }

    /// The health of a page of a service's instances (those named, or all).
    pub fn instances_health(
        &self,
        service_id: &str,
        named: Option<&[String]>,
        token: Option<&str>,
        max: Option<i32>,
    ) -> Page<(String, Health)> {
        self.read(|view| {
            let service = Self::service_in(&view, service_id)?;
            let instances = match named {
                None => view.instances(&service.id),
                Some(ids) => {
                    let ids: BTreeSet<&String> = ids.iter().collect();
                    ids.into_iter()
                        .map(|id| Self::instance_in(&view, &service, id))
                        .collect::<Result<_, _>>()?
                }
            };
            let (page, next) = page(instances, |i| i.id.as_str(), token, max, 100)?;
            let health = page
                .into_iter()
                .map(|instance| {
                    let health = health(&service, &instance);
                    (instance.id, health)
                })
                .collect();
            Ok((health, next))
        })
    }

    /// Sets an instance's health, reported by a custom health check.
    pub fn update_custom_health(
        &self,
        service_id: &str,
        instance_id: &str,
        status: &str,
    ) -> Result<(), CloudMapError> {
        if status != "HEALTHY" && status != "UNHEALTHY" {
            return Err(invalid(format!(
                "Status is HEALTHY or UNHEALTHY, not {}",
                quoted(status)
            )));
        }
        self.write(|snapshot| {
            let view = View::new(snapshot);
            let mut service = Self::service_in(&view, service_id)?;
            let mut instance = Self::instance_in(&view, &service, instance_id)?;
            if !service.has_custom_health() {
                return Err(CloudMapError::CustomHealthNotFound(format!(
                    "service {} has no HealthCheckCustomConfig",
                    service.id
                )));
            }
            if instance.custom_health.as_deref() == Some(status) {
                return Ok((RecordWrite::none(), ()));
            }
            instance.custom_health = Some(status.to_string());
            let mut write = RecordWrite::none();
            write_instance(&mut write, &mut service, instance_id, Some(&instance));
            Ok((write, ()))
        })
    }

    /// Operation `id`.
    pub fn get_operation(&self, id: &str) -> Result<OperationRecord, CloudMapError> {
        self.read(|view| view.operation(id)).ok_or_else(|| {
            CloudMapError::OperationNotFound(format!(
                "no operation has the id {} (meshd keeps operations for {} minutes)",
                quoted(id),
                OPERATION_RETENTION_SECONDS / 60.0
            ))
        })
    }

    /// A page of the operations `filters` select.
    pub fn list_operations(
        &self,
        filters: &[Filter],
        token: Option<&str>,
        max: Option<i32>,
    ) -> Page<OperationRecord> {
        let mut between = None;
        for filter in filters {
            match filter.name.as_str() {
                "NAMESPACE_ID" | "SERVICE_ID" | "STATUS" | "TYPE" => {
                    filter.check(&["EQ", "IN"])?;
                }
                "UPDATE_DATE" => {
                    filter.check(&["BETWEEN"])?;
                    let bound = |value: &String| {
                        value.parse::<f64>().map_err(|_| {
                            invalid(format!(
                                "UPDATE_DATE takes Unix times, not {}",
                                quoted(value)
                            ))
                        })
                    };
                    between = Some((bound(&filter.values[0])?, bound(&filter.values[1])?));
                }
                other => return Err(invalid(format!("no operation filter is called {other}"))),
            }
        }
        self.read(|view| {
            let selected: Vec<OperationRecord> = view
                .operations(usize::MAX)
                .into_iter()
                .filter(|operation| {
                    filters.iter().all(|filter| match filter.name.as_str() {
                        "NAMESPACE_ID" => operation
                            .targets
                            .get("NAMESPACE")
                            .is_some_and(|id| filter.values.iter().any(|v| id_of(v) == id)),
                        "SERVICE_ID" => operation
                            .targets
                            .get("SERVICE")
                            .is_some_and(|id| filter.values.iter().any(|v| id_of(v) == id)),
                        "STATUS" => filter.admits("SUCCESS"),
                        "TYPE" => filter.admits(&operation.kind),
                        _ => between.is_none_or(|(from, to)| (from..=to).contains(&operation.date)),
                    })
                })
                .collect();
            page(selected, |o| o.id.as_str(), token, max, 100)
        })
    }

    /// What `arn` names: a namespace's or a service's record key and tags.
    fn tagged(&self, view: &View<'_>, arn: &str) -> Result<Tagged, CloudMapError> {
        let not_found =
            || CloudMapError::ResourceNotFound(format!("no resource has the ARN {}", quoted(arn)));
        let id = id_of(arn);
        if arn == self.namespace_arn(id)
            && let Some(namespace) = view.namespace(id)
        {
            return Ok(Tagged::Namespace(namespace));
        }
        if arn == self.service_arn(id)
            && let Some(service) = view.service(id)
        {
            return Ok(Tagged::Service(service));
        }
        Err(not_found())
    }

    /// The tags of the namespace or service `arn` names.
    pub fn list_tags(&self, arn: &str) -> Result<Vec<Tag>, CloudMapError> {
        self.read(|view| {
            Ok(match self.tagged(&view, arn)? {
                Tagged::Namespace(namespace) => namespace.tags,
                Tagged::Service(service) => service.tags,
            })
        })
    }

    /// Changes the tags of the namespace or service `arn` names: `add` set, then
    /// `remove` removed.
    pub fn retag(&self, arn: &str, add: Vec<Tag>, remove: &[String]) -> Result<(), CloudMapError> {
        self.write(|snapshot| {
            let view = View::new(snapshot);
            let mut tagged = self.tagged(&view, arn)?;
            let tags = match &mut tagged {
                Tagged::Namespace(namespace) => &mut namespace.tags,
                Tagged::Service(service) => &mut service.tags,
            };
            merge_tags(tags, add.clone());
            tags.retain(|tag| !remove.contains(&tag.key));
            check_tags(tags, arn)?;
            let mut write = RecordWrite::none();
            match &tagged {
                Tagged::Namespace(namespace) => {
                    records::put(&mut write, records::namespace_key(&namespace.id), namespace);
                }
                Tagged::Service(service) => {
                    records::put(&mut write, records::service_key(&service.id), service);
                }
            }
            Ok((write, ()))
        })
    }
}

/// Writes a change of instance `instance_id` of `service` (its new record, or `None`
/// when it is removed), and the service with its next revision (`InstancesRevision`).
fn write_instance(
    write: &mut RecordWrite,
    service: &mut ServiceRecord,
    instance_id: &str,
    instance: Option<&InstanceRecord>,
) {
    service.revision += 1;
    let key = records::instance_key(&service.id, instance_id);
    match instance {
        Some(instance) => records::put(write, key, instance),
        None => {
            write.delete(key);
        }
    }
    records::put(write, records::service_key(&service.id), service);
}

/// A resource that has tags.
enum Tagged {
    Namespace(NamespaceRecord),
    Service(ServiceRecord),
}
