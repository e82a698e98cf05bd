//! CloudFormation templates: the `AWS::AppMesh::*` resources, their intrinsic functions
//! evaluated (`intrinsics.rs`), their property names mapped onto the API's member names
//! by letter case. Other resources are listed as ignored.

pub mod intrinsics;

use serde_json::{Map, Value};

use super::ApplyError;
use super::desired::{Draft, Ignored, Origin, Tag};
use crate::model::ResourceKind;
pub use intrinsics::Environment;
use intrinsics::{EvalError, Evaluator, appmesh_kind};

/// Whether a document is a CloudFormation template.
pub fn is_template(document: &Value) -> bool {
    document.get("Resources").is_some_and(Value::is_object)
        || document.get("AWSTemplateFormatVersion").is_some()
}

/// What `template` exports that can be evaluated, for the other templates of an apply.
pub fn exports(template: &Value, env: &Environment) -> std::collections::BTreeMap<String, String> {
    let empty = Map::new();
    let top = template.as_object().unwrap_or(&empty);
    Evaluator::new(top, env, &empty).exports(top)
}

/// The App Mesh resources of `template` (in `file`), and the resources it ignores.
pub fn read(
    file: &str,
    template: &Value,
    env: &Environment,
) -> Result<(Vec<Draft>, Vec<Ignored>), ApplyError> {
    let empty = Map::new();
    let top = template.as_object().unwrap_or(&empty);
    let evaluator = Evaluator::new(top, env, &empty);
    let resources = top
        .get("Resources")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut drafts = Vec::new();
    let mut ignored = Vec::new();
    for (logical_id, resource) in resources {
        let origin = Origin {
            file: file.to_string(),
            place: format!("Resources.{logical_id}"),
        };
        let invalid = |e: EvalError| ApplyError::Invalid {
            origin: origin.clone(),
            path: e.path,
            message: e.message,
        };
        let type_name = resource
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("(no Type)");
        let Some(kind) = appmesh_kind(type_name) else {
            ignored.push(Ignored {
                origin,
                what: type_name.to_string(),
            });
            continue;
        };
        if let Some(Value::String(condition)) = resource.get("Condition")
            && !evaluator
                .condition(condition, "Condition")
                .map_err(invalid)?
        {
            ignored.push(Ignored {
                origin,
                what: format!("{type_name} (its condition {condition} is false)"),
            });
            continue;
        }
        let key = evaluator
            .appmesh_key(logical_id, &format!("Resources.{logical_id}"))
            .map_err(|e| invalid(strip_resource(e, logical_id)))?;
        let properties = resource
            .get("Properties")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let spec = match properties.get("Spec") {
            Some(spec) => evaluator
                .eval(spec, "Properties.Spec")
                .map_err(invalid)?
                .unwrap_or(Value::Object(Map::new())),
            None if kind == ResourceKind::Mesh => Value::Object(Map::new()),
            None => {
                return Err(invalid(EvalError {
                    path: "Properties.Spec".into(),
                    message: "is missing".into(),
                }));
            }
        };
        let tags = match properties.get("Tags") {
            Some(tags) => read_tags(&evaluator, tags).map_err(invalid)?,
            None => Vec::new(),
        };
        drafts.push(Draft {
            kind,
            mesh: key.mesh.clone(),
            parent: (!key.parent.is_empty()).then(|| key.parent.clone()),
            name: key.name.clone(),
            spec: api_names(spec),
            tags,
            origin,
            prune_unknown: false,
        });
    }
    Ok((drafts, ignored))
}

/// A name property's error is about this resource: its path starts at `Properties`.
fn strip_resource(error: EvalError, logical_id: &str) -> EvalError {
    let prefix = format!("Resources.{logical_id}.");
    EvalError {
        path: error
            .path
            .strip_prefix(&prefix)
            .map(String::from)
            .unwrap_or(error.path),
        message: error.message,
    }
}

fn read_tags(evaluator: &Evaluator, tags: &Value) -> Result<Vec<Tag>, EvalError> {
    let path = "Properties.Tags";
    let Some(Value::Array(items)) = evaluator.eval(tags, path)? else {
        return Err(EvalError {
            path: path.into(),
            message: "is a list of Key/Value pairs".into(),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let field = |name: &str| {
                item.get(name)
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .ok_or_else(|| EvalError {
                        path: format!("{path}[{index}].{name}"),
                        message: "is missing".into(),
                    })
            };
            Ok(Tag {
                key: field("Key")?,
                value: field("Value")?,
            })
        })
        .collect()
}

/// CloudFormation's name of a member (`AWSCloudMap`, `HttpRoute`, `TLS`) as the API
/// spells it (`awsCloudMap`, `httpRoute`, `tls`): the leading capitals in lower case,
/// except the last when a lower-case letter follows it. Names this misses differ from
/// the model's in letter case only and are repaired against it (`desired::typed_spec`).
pub fn api_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let run = chars.iter().take_while(|c| c.is_ascii_uppercase()).count();
    let lower_up_to = if run > 1 && chars.get(run).is_some_and(|c| c.is_ascii_lowercase()) {
        run - 1
    } else {
        run.max(1).min(chars.len())
    };
    chars
        .iter()
        .enumerate()
        .map(|(index, c)| {
            if index < lower_up_to {
                c.to_ascii_lowercase()
            } else {
                *c
            }
        })
        .collect()
}

/// `value` with every member of every object renamed by `rename`.
pub fn rename_members(value: Value, rename: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (rename(&k), rename_members(v, rename)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| rename_members(item, rename))
                .collect(),
        ),
        scalar => scalar,
    }
}

fn api_names(value: Value) -> Value {
    rename_members(value, &api_name)
}

/// The API's member name as CloudFormation spells it (`awsCloudMap` → `AWSCloudMap`).
pub fn cloudformation_name(name: &str) -> String {
    const CAPITALS: [(&str, &str); 9] = [
        ("awsCloudMap", "AWSCloudMap"),
        ("dns", "DNS"),
        ("tls", "TLS"),
        ("acm", "ACM"),
        ("sds", "SDS"),
        ("grpc", "GRPC"),
        ("http", "HTTP"),
        ("http2", "HTTP2"),
        ("tcp", "TCP"),
    ];
    if let Some((_, cfn)) = CAPITALS.iter().find(|(api, _)| *api == name) {
        return cfn.to_string();
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Account;
    use serde_json::json;

    #[test]
    fn property_names_map_onto_member_names_by_letter_case() {
        for (cfn, api) in [
            ("AWSCloudMap", "awsCloudMap"),
            ("HttpRoute", "httpRoute"),
            ("Http2Route", "http2Route"),
            ("TLS", "tls"),
            ("HTTP2", "http2"),
            ("DNS", "dns"),
            ("PortMapping", "portMapping"),
            ("IpPreference", "ipPreference"),
            ("CertificateAuthorityArns", "certificateAuthorityArns"),
        ] {
            assert_eq!(api_name(cfn), api, "{cfn}");
            assert!(cloudformation_name(api).eq_ignore_ascii_case(cfn), "{api}");
        }
    }

    #[test]
    fn a_template_gives_its_app_mesh_resources_and_lists_the_others() {
        let template = json!({
            "Parameters": {"Project": {"Type": "String"}},
            "Conditions": {"Never": {"Fn::Equals": ["a", "b"]}},
            "Resources": {
                "Mesh": {"Type": "AWS::AppMesh::Mesh", "Properties": {"MeshName": {"Fn::Sub": "${Project}-mesh"}}},
                "Node": {"Type": "AWS::AppMesh::VirtualNode", "Properties": {
                    "MeshName": {"Fn::GetAtt": ["Mesh", "MeshName"]}, "VirtualNodeName": "web",
                    "Spec": {"ServiceDiscovery": {"DNS": {"Hostname": {"Fn::GetAtt": ["Lb", "DNSName"]}}}},
                    "Tags": [{"Key": "team", "Value": "a"}]}},
                "Skipped": {"Type": "AWS::AppMesh::VirtualNode", "Condition": "Never", "Properties": {}},
                "Lb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer"}
            }
        });
        let env = Environment {
            overrides: [("Project", "demo"), ("Lb.DNSName", "lb.example")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            account: Account {
                region: "us-east-1".into(),
                account_id: "111122223333".into(),
            },
            stack_name: "s".into(),
            exports: Default::default(),
        };
        let (drafts, ignored) = read("t.yaml", &template, &env).unwrap();
        assert_eq!(drafts.len(), 2);
        assert_eq!(drafts[1].mesh, "demo-mesh");
        assert_eq!(
            drafts[1].spec,
            json!({"serviceDiscovery": {"dns": {"hostname": "lb.example"}}})
        );
        assert_eq!(
            drafts[1].tags,
            vec![Tag {
                key: "team".into(),
                value: "a".into()
            }]
        );
        let what: Vec<&str> = ignored.iter().map(|i| i.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "AWS::ElasticLoadBalancingV2::LoadBalancer",
                "AWS::AppMesh::VirtualNode (its condition Never is false)"
            ]
        );
        let mut env = env;
        env.overrides.remove("Lb.DNSName");
        let err = read("t.yaml", &template, &env).unwrap_err().to_string();
        assert!(
            err.starts_with("t.yaml Resources.Node: Properties.Spec.ServiceDiscovery.DNS.Hostname"),
            "{err}"
        );
    }
}
