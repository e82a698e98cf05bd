//! The Cloud Map API on meshd's API port, on AWS's JSON 1.1 protocol: `POST /` with
//! `X-Amz-Target: Route53AutoNaming_v20170314.<Operation>` and a JSON body, as boto3,
//! the AWS CLI and the AWS SDKs send it. Requests on Smithy's RPC v2 CBOR protocol get
//! a clear refusal. Every answer is JSON 1.1: `application/x-amz-json-1.1`, errors with
//! `__type` (see [`super::error`]).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::discover::Discovery;
use super::error::CloudMapError;
use super::input::Filter;
use super::records::{
    InstanceRecord, NamespaceRecord, NamespaceType, OperationRecord, ServiceRecord, Tag,
};
use super::registry::{NewNamespace, NewService, Registry};
use crate::store::Store;

/// The target prefix of Cloud Map's operations.
pub const TARGET_PREFIX: &str = "Route53AutoNaming_v20170314.";

/// The start of the paths of Cloud Map's operations on RPC v2 CBOR.
pub const CBOR_PATH_PREFIX: &str = "/service/Route53AutoNaming_v20170314/";

/// Whether `headers` are those of a Cloud Map JSON 1.1 request.
pub fn is_cloud_map_request(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|target| target.starts_with(TARGET_PREFIX))
}

/// Answers one Cloud Map request (blocking: writes wait for the store).
pub fn handle(
    store: &Store,
    region: &str,
    account: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let registry = Registry {
        store,
        region,
        account,
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    match answer(&registry, operation, body) {
        Ok(answer) => {
            let mut response = (StatusCode::OK, answer.to_string()).into_response();
            response.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            response
        }
        Err(err) => {
            tracing::debug!(operation, "Cloud Map request refused: {err}");
            err.into_response()
        }
    }
}

/// The refusal of a request on Smithy's RPC v2 CBOR protocol, which meshd does not
/// serve: a CBOR error body (`__type`, `message`), as such a client reads it.
pub fn refuse_cbor(operation: &str) -> Response {
    let message = format!(
        "meshd serves Cloud Map's {operation} on AWS's JSON 1.1 protocol (X-Amz-Target: {TARGET_PREFIX}{operation}), not on RPC v2 CBOR; configure the client for awsJson1_1"
    );
    let kind = "UnknownOperationException";
    let mut body = vec![0xa2];
    for text in ["__type", kind, "message", &message] {
        cbor_text(&mut body, text);
    }
    let mut response = (StatusCode::BAD_REQUEST, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/cbor"));
    headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    headers.insert("x-amzn-errortype", HeaderValue::from_static(kind));
    response
}

/// Appends `text` as a CBOR text string (major type 3).
fn cbor_text(out: &mut Vec<u8>, text: &str) {
    let length = text.len();
    match length {
        0..=23 => out.push(0x60 | length as u8),
        24..=0xff => out.extend([0x78, length as u8]),
        0x100..=0xffff => {
            out.push(0x79);
            out.extend((length as u16).to_be_bytes());
        }
        _ => {
            out.push(0x7a);
            out.extend((length as u32).to_be_bytes());
        }
    }
    out.extend(text.as_bytes());
}

fn input<T: DeserializeOwned>(body: &[u8]) -> Result<T, CloudMapError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|err| {
        let message = err.to_string();
        if message.starts_with("missing field") {
            CloudMapError::InvalidInput(format!("the request is missing a member: {message}"))
        } else {
            CloudMapError::Serialization(format!("the request body cannot be read: {message}"))
        }
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateNamespaceInput {
    name: String,
    creator_request_id: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    vpc: Option<String>,
    properties: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdInput {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i32>,
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateServiceInput {
    name: String,
    namespace_id: Option<String>,
    creator_request_id: Option<String>,
    description: Option<String>,
    dns_config: Option<Value>,
    health_check_config: Option<Value>,
    health_check_custom_config: Option<Value>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceChange {
    description: Option<String>,
    dns_config: Option<Value>,
    health_check_config: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateServiceInput {
    id: String,
    service: ServiceChange,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceInput {
    service_id: String,
    instance_id: String,
    creator_request_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceInstancesInput {
    service_id: String,
    instances: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DiscoverInput {
    namespace_name: String,
    service_name: String,
    max_results: Option<i32>,
    #[serde(default)]
    query_parameters: BTreeMap<String, String>,
    #[serde(default)]
    optional_parameters: BTreeMap<String, String>,
    health_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OperationInput {
    operation_id: String,
}

#[derive(Deserialize)]
struct TagsInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    #[serde(rename = "Tags", default)]
    tags: Vec<Tag>,
    #[serde(rename = "TagKeys", default)]
    tag_keys: Vec<String>,
}

/// Fails with `InvalidInput` when `present` is false.
fn require(present: bool, member: &str) -> Result<(), CloudMapError> {
    if present {
        Ok(())
    } else {
        Err(CloudMapError::InvalidInput(format!(
            "the request is missing the member {member}"
        )))
    }
}

fn namespace_json(registry: &Registry<'_>, namespace: &NamespaceRecord, services: usize) -> Value {
    let properties = match namespace.kind {
        NamespaceType::Http => json!({ "HttpProperties": { "HttpName": namespace.name } }),
        _ => {
            let mut dns = json!({});
            if let Some(ttl) = namespace.soa_ttl {
                dns["SOA"] = json!({ "TTL": ttl });
            }
            json!({ "DnsProperties": dns, "HttpProperties": { "HttpName": namespace.name } })
        }
    };
    let mut out = json!({
        "Id": namespace.id,
        "Arn": registry.namespace_arn(&namespace.id),
        "ResourceOwner": registry.account,
        "Name": namespace.name,
        "Type": namespace.kind.as_str(),
        "ServiceCount": services,
        "Properties": properties,
        "CreateDate": namespace.create_date,
    });
    set_optional(&mut out, "Description", namespace.description.as_deref());
    set_optional(
        &mut out,
        "CreatorRequestId",
        namespace.creator_request_id.as_deref(),
    );
    out
}

fn service_json(registry: &Registry<'_>, service: &ServiceRecord, instances: usize) -> Value {
    let mut out = json!({
        "Id": service.id,
        "Arn": registry.service_arn(&service.id),
        "ResourceOwner": registry.account,
        "CreatedByAccount": registry.account,
        "Name": service.name,
        "NamespaceId": service.namespace_id,
        "Type": service.kind,
        "InstanceCount": instances,
        "CreateDate": service.create_date,
    });
    set_optional(&mut out, "Description", service.description.as_deref());
    set_optional(
        &mut out,
        "CreatorRequestId",
        service.creator_request_id.as_deref(),
    );
    for (name, value) in [
        ("DnsConfig", &service.dns_config),
        ("HealthCheckConfig", &service.health_check_config),
        (
            "HealthCheckCustomConfig",
            &service.health_check_custom_config,
        ),
    ] {
        if let Some(value) = value {
            out[name] = value.clone();
        }
    }
    out
}

fn instance_json(registry: &Registry<'_>, instance: &InstanceRecord) -> Value {
    let mut out = json!({
        "Id": instance.id,
        "Attributes": instance.attributes,
        "CreatedByAccount": registry.account,
    });
    set_optional(
        &mut out,
        "CreatorRequestId",
        instance.creator_request_id.as_deref(),
    );
    out
}

fn operation_json(registry: &Registry<'_>, operation: &OperationRecord) -> Value {
    json!({
        "Id": operation.id,
        "OwnerAccount": registry.account,
        "Type": operation.kind,
        "Status": "SUCCESS",
        "CreateDate": operation.date,
        "UpdateDate": operation.date,
        "Targets": operation.targets,
    })
}

fn set_optional(out: &mut Value, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        out[name] = json!(value);
    }
}

fn with_token(mut out: Value, next: Option<String>) -> Value {
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    out
}

fn create_namespace(
    registry: &Registry<'_>,
    kind: NamespaceType,
    body: &[u8],
) -> Result<Value, CloudMapError> {
    let input: CreateNamespaceInput = input(body)?;
    let soa_ttl = input
        .properties
        .as_ref()
        .and_then(|p| p.pointer("/DnsProperties/SOA/TTL"))
        .and_then(Value::as_i64);
    let operation = registry.create_namespace(NewNamespace {
        name: input.name,
        kind,
        creator_request_id: input.creator_request_id,
        description: input.description,
        tags: input.tags,
        vpc: input.vpc,
        soa_ttl,
    })?;
    Ok(json!({ "OperationId": operation }))
}

/// Runs `operation` with the JSON `body`; its JSON answer.
fn answer(registry: &Registry<'_>, operation: &str, body: &[u8]) -> Result<Value, CloudMapError> {
    match operation {
        "CreateHttpNamespace" => create_namespace(registry, NamespaceType::Http, body),
        "CreatePrivateDnsNamespace" => create_namespace(registry, NamespaceType::DnsPrivate, body),
        "CreatePublicDnsNamespace" => create_namespace(registry, NamespaceType::DnsPublic, body),
        "GetNamespace" => {
            let input: IdInput = input(body)?;
            let (namespace, services) = registry.get_namespace(&input.id)?;
            Ok(json!({ "Namespace": namespace_json(registry, &namespace, services) }))
        }
        "ListNamespaces" => {
            let input: ListInput = input(body)?;
            let (page, next) = registry.list_namespaces(
                &input.filters,
                input.next_token.as_deref(),
                input.max_results,
            )?;
            let namespaces: Vec<Value> = page
                .iter()
                .map(|(namespace, services)| namespace_json(registry, namespace, *services))
                .collect();
            Ok(with_token(json!({ "Namespaces": namespaces }), next))
        }
        "DeleteNamespace" => {
            let input: IdInput = input(body)?;
            Ok(json!({ "OperationId": registry.delete_namespace(&input.id)? }))
        }
        "CreateService" => {
            let input: CreateServiceInput = input(body)?;
            let namespace_id = input
                .namespace_id
                .clone()
                .or_else(|| {
                    input
                        .dns_config
                        .as_ref()
                        .and_then(|c| c.get("NamespaceId"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            require(!namespace_id.is_empty(), "NamespaceId")?;
            if let Some(kind) = input.kind.as_deref().filter(|kind| *kind != "HTTP") {
                return Err(CloudMapError::InvalidInput(format!(
                    "Type is HTTP, not {kind:?}"
                )));
            }
            let service = registry.create_service(NewService {
                name: input.name,
                namespace_id,
                creator_request_id: input.creator_request_id,
                description: input.description,
                dns_config: input.dns_config,
                health_check_config: input.health_check_config,
                health_check_custom_config: input.health_check_custom_config,
                http_only: input.kind.is_some(),
                tags: input.tags,
            })?;
            Ok(json!({ "Service": service_json(registry, &service, 0) }))
        }
        "GetService" => {
            let input: IdInput = input(body)?;
            let (service, instances) = registry.get_service(&input.id)?;
            Ok(json!({ "Service": service_json(registry, &service, instances) }))
        }
        "ListServices" => {
            let input: ListInput = input(body)?;
            let (page, next) = registry.list_services(
                &input.filters,
                input.next_token.as_deref(),
                input.max_results,
            )?;
            let services: Vec<Value> = page
                .iter()
                .map(|(service, instances)| service_json(registry, service, *instances))
                .collect();
            Ok(with_token(json!({ "Services": services }), next))
        }
        "UpdateService" => {
            let input: UpdateServiceInput = input(body)?;
            let dns_records = input
                .service
                .dns_config
                .as_ref()
                .and_then(|c| c.get("DnsRecords"))
                .cloned();
            let operation = registry.update_service(
                &input.id,
                input.service.description,
                dns_records,
                input.service.health_check_config,
            )?;
            Ok(json!({ "OperationId": operation }))
        }
        "DeleteService" => {
            let input: IdInput = input(body)?;
            registry.delete_service(&input.id)?;
            Ok(json!({}))
        }
        "RegisterInstance" => {
            let input: InstanceInput = input(body)?;
            require(!input.attributes.is_empty(), "Attributes")?;
            let operation = registry.register_instance(
                &input.service_id,
                &input.instance_id,
                input.creator_request_id,
                input.attributes,
            )?;
            Ok(json!({ "OperationId": operation }))
        }
        "DeregisterInstance" => {
            let input: InstanceInput = input(body)?;
            let operation = registry.deregister_instance(&input.service_id, &input.instance_id)?;
            Ok(json!({ "OperationId": operation }))
        }
        "GetInstance" => {
            let input: InstanceInput = input(body)?;
            let instance = registry.get_instance(&input.service_id, &input.instance_id)?;
            Ok(json!({
                "ResourceOwner": registry.account,
                "Instance": instance_json(registry, &instance),
            }))
        }
        "ListInstances" => {
            let input: ServiceInstancesInput = input(body)?;
            let (page, next) = registry.list_instances(
                &input.service_id,
                input.next_token.as_deref(),
                input.max_results,
            )?;
            let instances: Vec<Value> = page.iter().map(|i| instance_json(registry, i)).collect();
            Ok(with_token(
                json!({ "ResourceOwner": registry.account, "Instances": instances }),
                next,
            ))
        }
        "DiscoverInstances" => {
            let input: DiscoverInput = input(body)?;
            let (found, revision) = registry.discover(&Discovery {
                namespace: input.namespace_name.clone(),
                service: input.service_name.clone(),
                query: input.query_parameters,
                optional: input.optional_parameters,
                health_status: input.health_status,
                max_results: input.max_results,
            })?;
            let instances: Vec<Value> = found
                .iter()
                .map(|found| {
                    json!({
                        "InstanceId": found.instance.id,
                        "NamespaceName": input.namespace_name,
                        "ServiceName": input.service_name,
                        "HealthStatus": found.health.as_str(),
                        "Attributes": found.instance.attributes,
                    })
                })
                .collect();
            Ok(json!({ "Instances": instances, "InstancesRevision": revision }))
        }
        "DiscoverInstancesRevision" => {
            let input: DiscoverInput = input(body)?;
            let (_, revision) = registry.discover(&Discovery {
                namespace: input.namespace_name,
                service: input.service_name,
                ..Discovery::default()
            })?;
            Ok(json!({ "InstancesRevision": revision }))
        }
        "GetInstancesHealthStatus" => {
            let input: ServiceInstancesInput = input(body)?;
            let (page, next) = registry.instances_health(
                &input.service_id,
                input.instances.as_deref(),
                input.next_token.as_deref(),
                input.max_results,
            )?;
            let status: BTreeMap<String, &str> = page
                .into_iter()
                .map(|(id, health)| (id, health.as_str()))
                .collect();
            Ok(with_token(json!({ "Status": status }), next))
        }
        "UpdateInstanceCustomHealthStatus" => {
            let input: InstanceInput = input(body)?;
            let status = input.status.unwrap_or_default();
            require(!status.is_empty(), "Status")?;
            registry.update_custom_health(&input.service_id, &input.instance_id, &status)?;
            Ok(json!({}))
        }
        "GetOperation" => {
            let input: OperationInput = input(body)?;
            let operation = registry.get_operation(&input.operation_id)?;
            Ok(json!({ "Operation": operation_json(registry, &operation) }))
        }
        "ListOperations" => {
            let input: ListInput = input(body)?;
            let (page, next) = registry.list_operations(
                &input.filters,
                input.next_token.as_deref(),
                input.max_results,
            )?;
            let operations: Vec<Value> = page
                .iter()
                .map(|operation| json!({ "Id": operation.id, "Status": "SUCCESS" }))
                .collect();
            Ok(with_token(json!({ "Operations": operations }), next))
        }
        "TagResource" => {
            let input: TagsInput = input(body)?;
            registry.retag(&input.resource_arn, input.tags, &[])?;
            Ok(json!({}))
        }
        "UntagResource" => {
            let input: TagsInput = input(body)?;
            registry.retag(&input.resource_arn, Vec::new(), &input.tag_keys)?;
            Ok(json!({}))
        }
        "ListTagsForResource" => {
            let input: TagsInput = input(body)?;
            Ok(json!({ "Tags": registry.list_tags(&input.resource_arn)? }))
        }
        "" => Err(CloudMapError::UnknownOperation(format!(
            "a Cloud Map request names its operation in X-Amz-Target: {TARGET_PREFIX}<Operation>"
        ))),
        other => Err(CloudMapError::UnknownOperation(format!(
            "meshd's Cloud Map registry does not serve the operation {other:?}"
        ))),
    }
}
