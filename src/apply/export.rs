//! `meshd export`: what meshd holds in a mesh, as a file `meshd apply` takes back — a
//! CloudFormation template, Kubernetes manifests for the App Mesh controller, or a JSON
//! list of AWS CLI input objects.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::ApplyError;
use super::client::{Client, ClientError};
use super::cloudformation::intrinsics::name_property;
use super::cloudformation::{cloudformation_name, rename_members};
use super::state::{self, Actual, spec_value};
use crate::api::Account;
use crate::model::{ResourceKey, ResourceKind, Spec, rules};

/// The formats `meshd export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A CloudFormation template (YAML) of `AWS::AppMesh::*` resources.
    CloudFormation,
    /// Kubernetes manifests (multi-document YAML) of `appmesh.k8s.aws/v1beta2`.
    Kubernetes,
    /// A JSON list of AWS CLI input objects.
    Json,
}

/// Reads mesh `mesh` through `client` and writes it in `format`.
pub async fn export(
    client: &Client,
    mesh: &str,
    format: Format,
    namespace: &str,
) -> Result<String, ApplyError> {
    let resources = state::read_mesh(client, mesh).await?.ok_or_else(|| {
        ApplyError::Api(ClientError::Refused {
            status: 404,
            error_type: "NotFoundException".into(),
            message: format!("meshd holds no mesh {mesh}"),
        })
    })?;
    let account = Account {
        region: client.region().to_string(),
        account_id: state::account_of(&resources[0].arn)
            .unwrap_or("111122223333")
            .to_string(),
    };
    Ok(render(&resources, format, namespace, &account))
}

/// `resources` (a mesh first) in `format`.
pub fn render(resources: &[Actual], format: Format, namespace: &str, account: &Account) -> String {
    match format {
        Format::Json => {
            let inputs: Vec<Value> = resources.iter().map(cli_input).collect();
            serde_json::to_string_pretty(&inputs).expect("JSON prints") + "\n"
        }
        Format::CloudFormation => {
            serde_yaml_ng::to_string(&template(resources)).expect("YAML prints")
        }
        Format::Kubernetes => {
            let documents = manifests(resources, namespace, account);
            documents
                .iter()
                .map(|d| serde_yaml_ng::to_string(d).expect("YAML prints"))
                .collect::<Vec<_>>()
                .join("---\n")
        }
    }
}

fn cli_input(actual: &Actual) -> Value {
    let key = &actual.key;
    let mut input = Map::new();
    input.insert("meshName".into(), json!(key.mesh));
    if let Some(parent) = key.kind.parent_kind() {
        input.insert(parent.name_field().into(), json!(key.parent));
    }
    if key.kind != ResourceKind::Mesh {
        input.insert(key.kind.name_field().into(), json!(key.name));
    }
    input.insert("spec".into(), spec_value(&actual.spec));
    Value::Object(input)
}

/// Identifiers made unique by a number.
struct Identifiers(BTreeSet<String>);

impl Identifiers {
    /// A CloudFormation logical id: `Prefix` + the name's letters and digits.
    fn make(&mut self, prefix: &str, name: &str) -> String {
        let mut base: String = prefix.to_string();
        let mut upper = true;
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                base.push(if upper { c.to_ascii_uppercase() } else { c });
                upper = false;
            } else {
                upper = true;
            }
        }
        self.unique(base)
    }

    /// `base`, or `base` and a number if it is taken.
    fn unique(&mut self, base: String) -> String {
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{base}{n}");
            n += 1;
        }
        id
    }
}

fn cloudformation_names(value: Value) -> Value {
    rename_members(value, &cloudformation_name)
}

fn template(resources: &[Actual]) -> Value {
    let mut ids = Identifiers(BTreeSet::new());
    let mut logical: Vec<(ResourceKey, String)> = Vec::new();
    let mut out = Map::new();
    for actual in resources {
        let key = &actual.key;
        let id = ids.make(
            key.kind.type_name(),
            &format!("{} {}", key.parent, key.name),
        );
        let get_att = |target: &ResourceKey, attribute: &str| -> Value {
            match logical.iter().find(|(k, _)| k == target) {
                Some((_, id)) => json!({"Fn::GetAtt": [id, attribute]}),
                None => json!(if attribute == "MeshName" {
                    &target.mesh
                } else {
                    &target.name
                }),
            }
        };
        let mut properties = Map::new();
        properties.insert("MeshName".into(), get_att(&key.mesh_key(), "MeshName"));
        if let Some(parent) = key.parent_key() {
            let attribute = name_property(parent.kind);
            properties.insert(attribute.into(), get_att(&parent, attribute));
        }
        if key.kind != ResourceKind::Mesh {
            properties.insert(name_property(key.kind).into(), json!(key.name));
        }
        properties.insert(
            "Spec".into(),
            cloudformation_names(spec_value(&actual.spec)),
        );
        out.insert(
            id.clone(),
            json!({"Type": format!("AWS::AppMesh::{}", key.kind.type_name()), "Properties": properties}),
        );
        logical.push((key.clone(), id));
    }
    // CloudFormation creates what a spec names first only when told (`DependsOn`).
    for actual in resources {
        let id = &logical
            .iter()
            .find(|(k, _)| *k == actual.key)
            .expect("every resource has an id")
            .1;
        let depends: Vec<Value> = named(&actual.key, &actual.spec)
            .iter()
            .filter_map(|target| logical.iter().find(|(k, _)| k == target))
            .map(|(_, id)| json!(id))
            .collect();
        if !depends.is_empty() {
            out[id.as_str()]["DependsOn"] = Value::Array(depends);
        }
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "App Mesh resources exported by meshd export",
        "Resources": out
    })
}

/// The resources `spec` names that must exist before it: a route's target nodes, a
/// service's provider, a gateway route's target service.
fn named(key: &ResourceKey, spec: &Spec) -> Vec<ResourceKey> {
    let in_mesh = |kind, name: &str| ResourceKey::in_mesh(kind, key.mesh.clone(), name);
    match spec {
        Spec::Route(route) => rules::route_targets(route)
            .into_iter()
            .map(|node| in_mesh(ResourceKind::VirtualNode, node))
            .collect(),
        Spec::GatewayRoute(route) => rules::gateway_route_target(route)
            .map(|service| in_mesh(ResourceKind::VirtualService, service))
            .into_iter()
            .collect(),
        Spec::VirtualService(service) => {
            let provider = service.provider.as_ref();
            let node = provider
                .and_then(|p| p.virtual_node.as_ref())
                .map(|n| in_mesh(ResourceKind::VirtualNode, &n.virtual_node_name));
            let router = provider
                .and_then(|p| p.virtual_router.as_ref())
                .map(|r| in_mesh(ResourceKind::VirtualRouter, &r.virtual_router_name));
            node.into_iter().chain(router).collect()
        }
        _ => Vec::new(),
    }
}

/// A Kubernetes object name (DNS-1123) for an App Mesh name; `awsName` keeps the real one.
fn object_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches('-').to_string();
    if out.is_empty() { "x".into() } else { out }
}

/// The controller's spelling of the few members it names differently from the API.
fn controller_names(value: Value) -> Value {
    rename_members(value, &|member| match member {
        "certificateArn" => "certificateARN".to_string(),
        "certificateAuthorityArns" => "certificateAuthorityARNs".to_string(),
        other => other.to_string(),
    })
}

/// Replaces `{<name_member>: name}` in `holder` with `{<arn_member>: ARN}`.
fn to_arn(
    holder: Option<&mut Value>,
    name_member: &str,
    arn_member: &str,
    kind: ResourceKind,
    mesh: &str,
    account: &Account,
) {
    if let Some(Value::Object(holder)) = holder
        && let Some(Value::String(name)) = holder.remove(name_member)
    {
        let arn = account.arn(&ResourceKey::in_mesh(kind, mesh, name));
        holder.insert(arn_member.into(), Value::String(arn));
    }
}

fn manifests(resources: &[Actual], namespace: &str, account: &Account) -> Vec<Value> {
    let mut names = Identifiers(BTreeSet::new());
    let mut k8s_name = |key: &ResourceKey| {
        names.unique(object_name(&format!(
            "{}-{}",
            key.kind.arn_segment(),
            key.name
        )))
    };
    let mut gateways: Vec<(String, String)> = Vec::new();
    let mut routers: Vec<(String, usize)> = Vec::new();
    let mut documents: Vec<Value> = Vec::new();
    let mesh_object = object_name(&resources[0].key.mesh);
    for actual in resources {
        let key = &actual.key;
        let mesh = &key.mesh;
        let mut spec = spec_value(&actual.spec);
        match key.kind {
            ResourceKind::VirtualNode => {
                if let Some(Value::Array(backends)) = spec.get_mut("backends") {
                    for backend in backends {
                        to_arn(
                            backend.get_mut("virtualService"),
                            "virtualServiceName",
                            "virtualServiceARN",
                            ResourceKind::VirtualService,
                            mesh,
                            account,
                        );
                    }
                }
            }
            ResourceKind::VirtualService => {
                if let Some(provider) = spec.get_mut("provider") {
                    to_arn(
                        provider.get_mut("virtualNode"),
                        "virtualNodeName",
                        "virtualNodeARN",
                        ResourceKind::VirtualNode,
                        mesh,
                        account,
                    );
                    to_arn(
                        provider.get_mut("virtualRouter"),
                        "virtualRouterName",
                        "virtualRouterARN",
                        ResourceKind::VirtualRouter,
                        mesh,
                        account,
                    );
                }
            }
            ResourceKind::Route => {
                for protocol in ["httpRoute", "http2Route", "grpcRoute", "tcpRoute"] {
                    if let Some(Value::Array(targets)) =
                        spec.pointer_mut(&format!("/{protocol}/action/weightedTargets"))
                    {
                        for target in targets {
                            to_arn(
                                Some(target),
                                "virtualNode",
                                "virtualNodeARN",
                                ResourceKind::VirtualNode,
                                mesh,
                                account,
                            );
                        }
                    }
                }
                spec["name"] = json!(key.name);
                if let Some((_, index)) = routers.iter().find(|(name, _)| *name == key.parent) {
                    let router = &mut documents[*index]["spec"];
                    if router.get("routes").is_none() {
                        router["routes"] = json!([]);
                    }
                    router["routes"]
                        .as_array_mut()
                        .expect("a list")
                        .push(controller_names(spec));
                }
                continue;
            }
            ResourceKind::GatewayRoute => {
                for protocol in ["httpRoute", "http2Route", "grpcRoute"] {
                    let service =
                        spec.pointer_mut(&format!("/{protocol}/action/target/virtualService"));
                    to_arn(
                        service,
                        "virtualServiceName",
                        "virtualServiceARN",
                        ResourceKind::VirtualService,
                        mesh,
                        account,
                    );
                }
                if let Some((_, gateway)) = gateways.iter().find(|(name, _)| *name == key.parent) {
                    spec["virtualGatewayRef"] = json!({"name": gateway, "namespace": namespace});
                }
            }
            _ => {}
        }
        let mut spec = controller_names(spec);
        spec["awsName"] = json!(key.name);
        let mut metadata = json!({"name": mesh_object});
        if key.kind != ResourceKind::Mesh {
            spec["meshRef"] = json!({"name": mesh_object});
            metadata = json!({"name": k8s_name(key), "namespace": namespace});
        }
        match key.kind {
            ResourceKind::VirtualGateway => gateways.push((
                key.name.clone(),
                metadata["name"].as_str().unwrap_or_default().to_string(),
            )),
            ResourceKind::VirtualRouter => routers.push((key.name.clone(), documents.len())),
            _ => {}
        }
        documents.push(json!({
            "apiVersion": "appmesh.k8s.aws/v1beta2",
            "kind": key.kind.type_name(),
            "metadata": metadata,
            "spec": spec,
        }));
    }
    documents
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn actual(key: ResourceKey, kind: ResourceKind, spec: Value) -> Actual {
        Actual {
            key,
            spec: crate::apply::desired::typed_spec(kind, spec, None).unwrap(),
            arn: String::new(),
            version: 1,
        }
    }

    #[test]
    fn a_template_refers_to_its_mesh_and_parents_and_depends_on_what_specs_name() {
        let resources = vec![
            actual(ResourceKey::mesh("m"), ResourceKind::Mesh, json!({})),
            actual(
                ResourceKey::in_mesh(ResourceKind::VirtualNode, "m", "web-1"),
                ResourceKind::VirtualNode,
                json!({"serviceDiscovery": {"awsCloudMap": {"namespaceName": "n", "serviceName": "s"}}}),
            ),
            actual(
                ResourceKey::in_mesh(ResourceKind::VirtualRouter, "m", "r"),
                ResourceKind::VirtualRouter,
                json!({"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}]}),
            ),
            actual(
                ResourceKey::child(ResourceKind::Route, "m", "r", "all"),
                ResourceKind::Route,
                json!({"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "web-1", "weight": 1}]}}}),
            ),
        ];
        let template = template(&resources);
        let route = &template["Resources"]["RouteRAll"];
        assert_eq!(route["Type"], "AWS::AppMesh::Route");
        assert_eq!(
            route["Properties"]["MeshName"],
            json!({"Fn::GetAtt": ["MeshM", "MeshName"]})
        );
        assert_eq!(
            route["Properties"]["VirtualRouterName"],
            json!({"Fn::GetAtt": ["VirtualRouterR", "VirtualRouterName"]})
        );
        assert_eq!(route["DependsOn"], json!(["VirtualNodeWeb1"]));
        let node = &template["Resources"]["VirtualNodeWeb1"]["Properties"]["Spec"];
        assert_eq!(
            node["ServiceDiscovery"]["AWSCloudMap"]["NamespaceName"],
            "n"
        );
    }

    #[test]
    fn kubernetes_objects_keep_the_app_mesh_names_and_refer_by_arn() {
        let account = Account {
            region: "us-east-1".into(),
            account_id: "111122223333".into(),
        };
        let resources = vec![
            actual(ResourceKey::mesh("m"), ResourceKind::Mesh, json!({})),
            actual(
                ResourceKey::in_mesh(ResourceKind::VirtualNode, "m", "Web_1"),
                ResourceKind::VirtualNode,
                json!({}),
            ),
            actual(
                ResourceKey::in_mesh(ResourceKind::VirtualService, "m", "web.local"),
                ResourceKind::VirtualService,
                json!({"provider": {"virtualNode": {"virtualNodeName": "Web_1"}}}),
            ),
        ];
        let objects = manifests(&resources, "prod", &account);
        assert_eq!(
            objects[1]["metadata"],
            json!({"name": "virtualnode-web-1", "namespace": "prod"})
        );
        assert_eq!(objects[1]["spec"]["awsName"], "Web_1");
        assert_eq!(objects[1]["spec"]["meshRef"], json!({"name": "m"}));
        assert_eq!(
            objects[2]["spec"]["provider"],
            json!({"virtualNode": {"virtualNodeARN": "arn:aws:appmesh:us-east-1:111122223333:mesh/m/virtualNode/Web_1"}})
        );
    }
}
