//! Kubernetes manifests of the App Mesh controller (`appmesh.k8s.aws/v1beta2`),
//! translated as the controller translated them: App Mesh names from `awsName` or the
//! controller's defaults, references (`meshRef`, `virtualServiceRef`, `virtualNodeRef`,
//! `virtualRouterRef`, `virtualGatewayRef`) resolved to names, a virtual router's
//! inline routes turned into routes. The controller's own matching of pods and
//! namespaces (`podSelector`, `namespaceSelector`, `gatewayRouteSelector`) is left out
//! with a note.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ApplyError;
use super::desired::{Draft, Ignored, Origin};
use crate::model::ResourceKind;

/// One document of a manifest.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it is in.
    pub file: String,
    /// Its position in the file, from 1.
    pub index: usize,
    /// The document.
    pub value: Value,
}

/// Command-line choices that the manifests leave open.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--mesh`: the mesh of resources without `meshRef` when the files hold not exactly one Mesh.
    pub mesh: Option<String>,
    /// `--namespace`: replaces every resource's `metadata.namespace`.
    pub namespace: Option<String>,
}

/// The API group of the controller's resources.
const GROUP: &str = "appmesh.k8s.aws/";

/// Whether a document is a Kubernetes object.
pub fn is_object(document: &Value) -> bool {
    document.get("apiVersion").is_some_and(Value::is_string)
        && document.get("kind").is_some_and(Value::is_string)
}

fn kind_of(document: &Value) -> Option<ResourceKind> {
    let api_version = document.get("apiVersion")?.as_str()?;
    if !api_version.starts_with(GROUP) {
        return None;
    }
    let kind = document.get("kind")?.as_str()?;
    [
        ResourceKind::Mesh,
        ResourceKind::VirtualNode,
        ResourceKind::VirtualService,
        ResourceKind::VirtualRouter,
        ResourceKind::VirtualGateway,
        ResourceKind::GatewayRoute,
    ]
    .into_iter()
    .find(|k| k.type_name() == kind)
}

/// The App Mesh name the controller gives a resource of `kind` named `name` in
/// `namespace` without `awsName`: `<name>_<namespace>` for virtual nodes, routers,
/// gateways and gateway routes, `<name>.<namespace>` for virtual services, the name
/// itself for a mesh (which has no namespace).
pub fn default_aws_name(kind: ResourceKind, name: &str, namespace: &str) -> String {
    match kind {
        ResourceKind::Mesh => name.to_string(),
        ResourceKind::VirtualService => format!("{name}.{namespace}"),
        _ => format!("{name}_{namespace}"),
    }
}

/// The name at the end of an App Mesh ARN (`…:mesh/m/virtualNode/n` → `n`).
fn name_from_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

struct Object {
    kind: ResourceKind,
    name: String,
    namespace: String,
    spec: Map<String, Value>,
    origin: Origin,
}

impl Object {
    fn aws_name(&self) -> String {
        match self.spec.get("awsName").and_then(Value::as_str) {
            Some(name) => name.to_string(),
            None => default_aws_name(self.kind, &self.name, &self.namespace),
        }
    }
}

struct Translator {
    objects: Vec<Object>,
    /// (kind, namespace, name) → App Mesh name, for the objects in the files.
    names: BTreeMap<(ResourceKind, String, String), String>,
    options: Options,
}

fn invalid(origin: &Origin, path: &str, message: impl Into<String>) -> ApplyError {
    ApplyError::Invalid {
        origin: origin.clone(),
        path: path.to_string(),
        message: message.into(),
    }
}

impl Translator {
    /// The App Mesh name a reference `{name, namespace}` (namespace defaulting to the
    /// referring object's) to an object of `kind` stands for.
    fn resolve(
        &self,
        kind: ResourceKind,
        reference: &Value,
        from: &Object,
        path: &str,
    ) -> Result<String, ApplyError> {
        let Some(name) = reference.get("name").and_then(Value::as_str) else {
            return Err(invalid(&from.origin, path, "a reference needs a name"));
        };
        let namespace = match kind {
            ResourceKind::Mesh => String::new(),
            _ => reference
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|_| self.options.namespace.is_none())
                .unwrap_or(&from.namespace)
                .to_string(),
        };
        Ok(self
            .names
            .get(&(kind, namespace.clone(), name.to_string()))
            .cloned()
            .unwrap_or_else(|| default_aws_name(kind, name, &namespace)))
    }

    fn mesh_of(&self, object: &Object) -> Result<String, ApplyError> {
        if let Some(reference) = object.spec.get("meshRef") {
            return self.resolve(ResourceKind::Mesh, reference, object, "spec.meshRef");
        }
        let meshes: Vec<&Object> = self
            .objects
            .iter()
            .filter(|o| o.kind == ResourceKind::Mesh)
            .collect();
        match (meshes.as_slice(), &self.options.mesh) {
            ([only], _) => Ok(only.aws_name()),
            (_, Some(mesh)) => Ok(mesh.clone()),
            ([], None) => Err(invalid(
                &object.origin,
                "spec.meshRef",
                "is missing and the files hold no Mesh: name the mesh with --mesh",
            )),
            (_, None) => Err(invalid(
                &object.origin,
                "spec.meshRef",
                format!(
                    "is missing and the files hold {} Meshes: name the mesh with --mesh",
                    meshes.len()
                ),
            )),
        }
    }

    /// Replaces `{<ref_member>: {name, namespace}}` / `{<arn_member>: arn}` in `holder`
    /// with `{<name_member>: name}`.
    fn replace_ref(
        &self,
        holder: &mut Map<String, Value>,
        kind: ResourceKind,
        members: (&str, &str),
        from: &Object,
        path: &str,
    ) -> Result<(), ApplyError> {
        let (reference, arn) = members;
        let name = if let Some(value) = holder.remove(reference) {
            self.resolve(kind, &value, from, &format!("{path}.{reference}"))?
        } else if let Some(value) = holder.remove(arn) {
            let Some(text) = value.as_str() else {
                return Err(invalid(&from.origin, &format!("{path}.{arn}"), "is an ARN"));
            };
            name_from_arn(text).to_string()
        } else {
            return Err(invalid(
                &from.origin,
                path,
                format!("needs {reference} or {arn}"),
            ));
        };
        let member = match kind {
            ResourceKind::VirtualNode if path.contains("weightedTargets") => "virtualNode",
            kind => kind.name_field(),
        };
        holder.insert(member.to_string(), Value::String(name));
        Ok(())
    }

    fn translate(
        &self,
        object: &Object,
        ignored: &mut Vec<Ignored>,
    ) -> Result<Vec<Draft>, ApplyError> {
        let mut spec = object.spec.clone();
        for member in ["awsName", "meshRef", "virtualGatewayRef"] {
            spec.remove(member);
        }
        for selector in ["podSelector", "namespaceSelector", "gatewayRouteSelector"] {
            if spec.remove(selector).is_some() {
                ignored.push(Ignored {
                    origin: object.origin.clone(),
                    what: format!(
                        "spec.{selector} (the controller's own matching of pods and namespaces)"
                    ),
                });
            }
        }
        let mesh = match object.kind {
            ResourceKind::Mesh => object.aws_name(),
            _ => self.mesh_of(object)?,
        };
        let draft = |kind,
                     parent: Option<String>,
                     name: String,
                     spec: Map<String, Value>,
                     origin: Origin| Draft {
            kind,
            mesh: mesh.clone(),
            parent,
            name,
            spec: Value::Object(spec),
            tags: Vec::new(),
            origin,
            prune_unknown: true,
        };
        let mut drafts = Vec::new();
        match object.kind {
            ResourceKind::Mesh => {
                return Ok(vec![draft(
                    ResourceKind::Mesh,
                    None,
                    mesh.clone(),
                    spec,
                    object.origin.clone(),
                )]);
            }
            ResourceKind::VirtualNode => {
                if let Some(Value::Array(backends)) = spec.get_mut("backends") {
                    for (index, backend) in backends.iter_mut().enumerate() {
                        if let Some(Value::Object(service)) = backend.get_mut("virtualService") {
                            let path = format!("spec.backends[{index}].virtualService");
                            self.replace_ref(
                                service,
                                ResourceKind::VirtualService,
                                ("virtualServiceRef", "virtualServiceARN"),
                                object,
                                &path,
                            )?;
                        }
                    }
                }
            }
            ResourceKind::VirtualService => {
                if let Some(Value::Object(provider)) = spec.get_mut("provider") {
                    for (member, kind, members) in [
                        (
                            "virtualNode",
                            ResourceKind::VirtualNode,
                            ("virtualNodeRef", "virtualNodeARN"),
                        ),
                        (
                            "virtualRouter",
                            ResourceKind::VirtualRouter,
                            ("virtualRouterRef", "virtualRouterARN"),
                        ),
                    ] {
                        if let Some(Value::Object(holder)) = provider.get_mut(member) {
                            self.replace_ref(
                                holder,
                                kind,
                                members,
                                object,
                                &format!("spec.provider.{member}"),
                            )?;
                        }
                    }
                }
            }
            ResourceKind::VirtualRouter => {
                let routes = spec.remove("routes");
                if let Some(Value::Array(routes)) = routes {
                    for (index, route) in routes.into_iter().enumerate() {
                        let path = format!("spec.routes[{index}]");
                        let origin = Origin {
                            file: object.origin.file.clone(),
                            place: format!("{} {path}", object.origin.place),
                        };
                        let Value::Object(mut route) = route else {
                            return Err(invalid(&object.origin, &path, "a route is an object"));
                        };
                        let Some(Value::String(name)) = route.remove("name") else {
                            return Err(invalid(
                                &object.origin,
                                &format!("{path}.name"),
                                "a route needs a name",
                            ));
                        };
                        for protocol in ["httpRoute", "http2Route", "grpcRoute", "tcpRoute"] {
                            let targets = route
                                .get_mut(protocol)
                                .and_then(|r| r.get_mut("action"))
                                .and_then(|a| a.get_mut("weightedTargets"))
                                .and_then(Value::as_array_mut);
                            for (t, target) in targets.into_iter().flatten().enumerate() {
                                if let Value::Object(target) = target {
                                    self.replace_ref(
                                        target,
                                        ResourceKind::VirtualNode,
                                        ("virtualNodeRef", "virtualNodeARN"),
                                        object,
                                        &format!("{path}.{protocol}.action.weightedTargets[{t}]"),
                                    )?;
                                }
                            }
                        }
                        drafts.push(draft(
                            ResourceKind::Route,
                            Some(object.aws_name()),
                            name,
                            route,
                            origin,
                        ));
                    }
                }
            }
            ResourceKind::GatewayRoute => {
                for protocol in ["httpRoute", "http2Route", "grpcRoute"] {
                    let service = spec
                        .get_mut(protocol)
                        .and_then(|r| r.get_mut("action"))
                        .and_then(|a| a.get_mut("target"))
                        .and_then(|t| t.get_mut("virtualService"))
                        .and_then(Value::as_object_mut);
                    if let Some(service) = service {
                        self.replace_ref(
                            service,
                            ResourceKind::VirtualService,
                            ("virtualServiceRef", "virtualServiceARN"),
                            object,
                            &format!("spec.{protocol}.action.target.virtualService"),
                        )?;
                    }
                }
                let gateway = self.gateway_of(object, &mesh)?;
                drafts.insert(
                    0,
                    draft(
                        ResourceKind::GatewayRoute,
                        Some(gateway),
                        object.aws_name(),
                        spec,
                        object.origin.clone(),
                    ),
                );
                return Ok(drafts);
            }
            ResourceKind::VirtualGateway | ResourceKind::Route => {}
        }
        drafts.insert(
            0,
            draft(
                object.kind,
                None,
                object.aws_name(),
                spec,
                object.origin.clone(),
            ),
        );
        Ok(drafts)
    }

    /// A gateway route's virtual gateway: `virtualGatewayRef`, else the one virtual
    /// gateway of its mesh in the files (the controller matched it by the gateway's
    /// `namespaceSelector`).
    fn gateway_of(&self, object: &Object, mesh: &str) -> Result<String, ApplyError> {
        if let Some(reference) = object.spec.get("virtualGatewayRef") {
            return self.resolve(
                ResourceKind::VirtualGateway,
                reference,
                object,
                "spec.virtualGatewayRef",
            );
        }
        let mut gateways = Vec::new();
        for candidate in self
            .objects
            .iter()
            .filter(|o| o.kind == ResourceKind::VirtualGateway)
        {
            if self.mesh_of(candidate)? == mesh {
                gateways.push(candidate.aws_name());
            }
        }
        match gateways.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(invalid(
                &object.origin,
                "spec.virtualGatewayRef",
                "is missing and the files hold no VirtualGateway in its mesh",
            )),
            _ => Err(invalid(
                &object.origin,
                "spec.virtualGatewayRef",
                format!(
                    "is missing and the files hold {} VirtualGateways in its mesh: name one",
                    gateways.len()
                ),
            )),
        }
    }
}

/// The App Mesh resources the controller's objects among `documents` stand for, and
/// what is left out.
pub fn read(
    documents: &[Document],
    options: &Options,
) -> Result<(Vec<Draft>, Vec<Ignored>), ApplyError> {
    let mut ignored = Vec::new();
    let mut objects = Vec::new();
    for document in documents {
        let what = document
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let name = document
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let Some(kind) = kind_of(&document.value) else {
            ignored.push(Ignored {
                origin: Origin {
                    file: document.file.clone(),
                    place: format!("{what} {name} (document {})", document.index),
                },
                what,
            });
            continue;
        };
        let namespace = match (kind, &options.namespace) {
            (ResourceKind::Mesh, _) => String::new(),
            (_, Some(namespace)) => namespace.clone(),
            _ => document
                .value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
        };
        let qualified = if namespace.is_empty() {
            name.clone()
        } else {
            format!("{namespace}/{name}")
        };
        let origin = Origin {
            file: document.file.clone(),
            place: format!("{what} {qualified} (document {})", document.index),
        };
        if name.is_empty() {
            return Err(invalid(&origin, "metadata.name", "is missing"));
        }
        let spec = match document.value.get("spec") {
            Some(Value::Object(spec)) => spec.clone(),
            None => Map::new(),
            Some(_) => return Err(invalid(&origin, "spec", "is not an object")),
        };
        objects.push(Object {
            kind,
            name,
            namespace,
            spec,
            origin,
        });
    }
    let names = objects
        .iter()
        .map(|o| ((o.kind, o.namespace.clone(), o.name.clone()), o.aws_name()))
        .collect();
    let translator = Translator {
        objects,
        names,
        options: options.clone(),
    };
    let mut drafts = Vec::new();
    for object in &translator.objects {
        drafts.extend(translator.translate(object, &mut ignored)?);
    }
    Ok((drafts, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn documents(values: Vec<Value>) -> Vec<Document> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| Document {
                file: "m.yaml".into(),
                index: i + 1,
                value,
            })
            .collect()
    }

    fn object(kind: &str, name: &str, namespace: Option<&str>, spec: Value) -> Value {
        let mut metadata = json!({"name": name});
        if let Some(namespace) = namespace {
            metadata["namespace"] = json!(namespace);
        }
        json!({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": kind, "metadata": metadata, "spec": spec})
    }

    fn names(drafts: &[Draft]) -> Vec<String> {
        drafts.iter().map(|d| d.key().to_string()).collect()
    }

    #[test]
    fn the_controllers_default_names() {
        for (kind, name, expected) in [
            (ResourceKind::VirtualNode, "front", "front_shop"),
            (ResourceKind::VirtualRouter, "r", "r_shop"),
            (ResourceKind::VirtualGateway, "gw", "gw_shop"),
            (ResourceKind::GatewayRoute, "gr", "gr_shop"),
            (ResourceKind::VirtualService, "color", "color.shop"),
        ] {
            assert_eq!(default_aws_name(kind, name, "shop"), expected, "{kind:?}");
        }
        assert_eq!(default_aws_name(ResourceKind::Mesh, "m", ""), "m");
    }

    #[test]
    fn names_come_from_aws_name_else_the_default_and_namespace_defaults_to_default() {
        let (drafts, _) = read(
            &documents(vec![
                object("Mesh", "m", None, json!({"awsName": "real-mesh"})),
                object("VirtualNode", "a", None, json!({})),
                object("VirtualNode", "b", Some("shop"), json!({"awsName": "bee"})),
                object("VirtualService", "s", Some("shop"), json!({})),
            ]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            names(&drafts),
            [
                "mesh/real-mesh",
                "mesh/real-mesh/virtualNode/a_default",
                "mesh/real-mesh/virtualNode/bee",
                "mesh/real-mesh/virtualService/s.shop"
            ]
        );
        let (drafts, _) = read(
            &documents(vec![object("VirtualNode", "a", Some("x"), json!({}))]),
            &Options {
                mesh: Some("m".into()),
                namespace: Some("prod".into()),
            },
        )
        .unwrap();
        assert_eq!(names(&drafts), ["mesh/m/virtualNode/a_prod"]);
    }

    #[test]
    fn references_resolve_to_the_names_of_the_objects_or_the_default() {
        let (drafts, ignored) = read(
            &documents(vec![
                object("Mesh", "m", None, json!({"namespaceSelector": {"matchLabels": {"mesh": "m"}}})),
                object("VirtualNode", "front", Some("shop"), json!({
                    "podSelector": {"matchLabels": {"app": "front"}},
                    "backends": [
                        {"virtualService": {"virtualServiceRef": {"name": "color"}}},
                        {"virtualService": {"virtualServiceRef": {"name": "other", "namespace": "ext"}}},
                        {"virtualService": {"virtualServiceARN": "arn:aws:appmesh:r:1:mesh/m/virtualService/by-arn"}}
                    ]})),
                object("VirtualService", "color", Some("shop"), json!({"awsName": "color.example",
                    "provider": {"virtualRouter": {"virtualRouterRef": {"name": "router"}}}})),
                object("VirtualRouter", "router", Some("shop"), json!({
                    "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                    "routes": [{"name": "to-front", "httpRoute": {"match": {"prefix": "/"},
                        "action": {"weightedTargets": [{"virtualNodeRef": {"name": "front"}, "weight": 1}]}}}]})),
                object("VirtualGateway", "gw", Some("shop"), json!({"listeners": []})),
                object("GatewayRoute", "gr", Some("shop"), json!({"httpRoute": {"match": {"prefix": "/"},
                    "action": {"target": {"virtualService": {"virtualServiceRef": {"name": "color"}}}}}})),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "front"}}),
            ]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            names(&drafts),
            [
                "mesh/m",
                "mesh/m/virtualNode/front_shop",
                "mesh/m/virtualService/color.example",
                "mesh/m/virtualRouter/router_shop",
                "mesh/m/virtualRouter/router_shop/route/to-front",
                "mesh/m/virtualGateway/gw_shop",
                "mesh/m/virtualGateway/gw_shop/gatewayRoute/gr_shop"
            ]
        );
        assert_eq!(
            drafts[1].spec["backends"],
            json!([
                {"virtualService": {"virtualServiceName": "color.example"}},
                {"virtualService": {"virtualServiceName": "other.ext"}},
                {"virtualService": {"virtualServiceName": "by-arn"}}
            ])
        );
        assert_eq!(
            drafts[2].spec["provider"],
            json!({"virtualRouter": {"virtualRouterName": "router_shop"}})
        );
        assert_eq!(drafts[3].spec.get("routes"), None);
        assert_eq!(
            drafts[4].spec["httpRoute"]["action"]["weightedTargets"],
            json!([{"virtualNode": "front_shop", "weight": 1}])
        );
        assert_eq!(
            drafts[6].spec["httpRoute"]["action"]["target"]["virtualService"],
            json!({"virtualServiceName": "color.example"})
        );
        let what: Vec<&str> = ignored.iter().map(|i| i.what.as_str()).collect();
        assert_eq!(what[0], "Deployment");
        assert!(what.iter().any(|w| w.starts_with("spec.podSelector")));
        assert!(what.iter().any(|w| w.starts_with("spec.namespaceSelector")));
    }

    #[test]
    fn a_resource_without_mesh_ref_needs_exactly_one_mesh_or_the_mesh_flag() {
        let node = object("VirtualNode", "a", None, json!({}));
        let err = read(&documents(vec![node.clone()]), &Options::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.yaml VirtualNode default/a (document 1): spec.meshRef")
                && err.contains("--mesh"),
            "{err}"
        );
        let two = vec![
            object("Mesh", "x", None, json!({})),
            object("Mesh", "y", None, json!({})),
            node.clone(),
        ];
        assert!(
            read(&documents(two.clone()), &Options::default())
                .unwrap_err()
                .to_string()
                .contains("2 Meshes")
        );
        let (drafts, _) = read(
            &documents(two),
            &Options {
                mesh: Some("y".into()),
                namespace: None,
            },
        )
        .unwrap();
        assert_eq!(names(&drafts)[2], "mesh/y/virtualNode/a_default");
        let referred = object(
            "VirtualNode",
            "a",
            None,
            json!({"meshRef": {"name": "k8s-mesh", "uid": "u"}}),
        );
        let (drafts, _) = read(
            &documents(vec![
                object("Mesh", "k8s-mesh", None, json!({"awsName": "aws-mesh"})),
                object("Mesh", "other", None, json!({})),
                referred,
            ]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(names(&drafts)[2], "mesh/aws-mesh/virtualNode/a_default");
    }
}
