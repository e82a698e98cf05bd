//! The common form every input format is translated to: App Mesh resources with their
//! key, their spec in the API's own shapes (validated, defaults filled in as the service
//! fills them) and where each was defined.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use super::ApplyError;
use crate::model::{ResourceKey, ResourceKind, Spec, rules};

/// Where a resource is defined: a file and a place inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file (`-` for standard input).
    pub file: String,
    /// The place in the file: `Resources.ColorNode`, `VirtualNode yelb/yelb-ui (document 3)`.
    pub place: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.file, self.place)
    }
}

/// A tag to create a resource with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tag {
    /// The tag's key.
    pub key: String,
    /// The tag's value.
    pub value: String,
}

/// A resource as a format reader translated it, before its spec is checked.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The kind of resource.
    pub kind: ResourceKind,
    /// Its mesh.
    pub mesh: String,
    /// The virtual router of a route, the virtual gateway of a gateway route.
    pub parent: Option<String>,
    /// Its name (a mesh's own name for a mesh).
    pub name: String,
    /// The spec in the API's member names (letter case is repaired against the model).
    pub spec: Value,
    /// Tags to create it with.
    pub tags: Vec<Tag>,
    /// Where it is defined.
    pub origin: Origin,
    /// Whether members the model does not know are dropped (with a note) rather than
    /// refused: the Kubernetes API server prunes the fields a CRD does not define
    /// before the controller sees them.
    pub prune_unknown: bool,
}

/// A resource the files define, ready to be compared with what meshd holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Which resource.
    pub key: ResourceKey,
    /// Its spec, validated, with the defaults the service fills in.
    pub spec: Spec,
    /// Tags to create it with (tags are not compared or changed afterwards).
    pub tags: Vec<Tag>,
    /// Where it is defined.
    pub origin: Origin,
}

/// Something in the files that `apply` does not turn into an App Mesh resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Where it is.
    pub origin: Origin,
    /// What it is (`AWS::EC2::VPC`, `Deployment`, `podSelector`).
    pub what: String,
}

/// What a set of files defines.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The App Mesh resources, each once, in the order first defined.
    pub resources: Vec<Desired>,
    /// What was left out, and why.
    pub ignored: Vec<Ignored>,
}

impl Draft {
    /// The key this draft names.
    pub fn key(&self) -> ResourceKey {
        match (self.kind, &self.parent) {
            (ResourceKind::Mesh, _) => ResourceKey::mesh(self.mesh.clone()),
            (kind, Some(parent)) => {
                ResourceKey::child(kind, self.mesh.clone(), parent.clone(), self.name.clone())
            }
            (kind, None) => ResourceKey::in_mesh(kind, self.mesh.clone(), self.name.clone()),
        }
    }

    /// Checks the names and spec: no `${…}` left, a spec the API model accepts, the
    /// service's rules; fills in the service's defaults. Members dropped
    /// (`prune_unknown`) are noted in `ignored`.
    pub fn finish(self, ignored: &mut Vec<Ignored>) -> Result<Desired, ApplyError> {
        let invalid = |path: String, message: String| ApplyError::Invalid {
            origin: self.origin.clone(),
            path,
            message,
        };
        let mut names = vec![("meshName", &self.mesh)];
        if let (Some(parent_kind), Some(parent)) = (self.kind.parent_kind(), &self.parent) {
            names.push((parent_kind.name_field(), parent));
        }
        if self.kind != ResourceKind::Mesh {
            names.push((self.kind.name_field(), &self.name));
        }
        for (field, name) in names {
            if let Some(found) = placeholder(&Value::String(name.clone()), field) {
                return Err(invalid(found.0, found.1));
            }
            if name.is_empty() {
                return Err(invalid(field.into(), "the name is empty".into()));
            }
        }
        if let Some((path, message)) = placeholder(&self.spec, "spec") {
            return Err(invalid(path, message));
        }
        let mut pruned = Vec::new();
        let pruning = self.prune_unknown.then_some(&mut pruned);
        let mut spec = typed_spec(self.kind, self.spec.clone(), pruning)
            .map_err(|(path, message)| invalid(path, message))?;
        ignored.extend(pruned.into_iter().map(|path| Ignored {
            origin: self.origin.clone(),
            what: format!(
                "{path} (not in the resource's definition; the Kubernetes API server drops it)"
            ),
        }));
        rules::validate_spec(&spec, "spec")
            .map_err(|e| invalid(e.path.clone(), e.message.clone()))?;
        rules::fill_defaults(&mut spec);
        Ok(Desired {
            key: self.key(),
            spec,
            tags: self.tags,
            origin: self.origin,
        })
    }
}

/// The first `${…}` left in `value` (an unfilled template placeholder), as a path and message.
fn placeholder(value: &Value, path: &str) -> Option<(String, String)> {
    match value {
        Value::String(text) => {
            let start = text.find("${")?;
            let end = text[start..]
                .find('}')
                .map_or(text.len(), |i| start + i + 1);
            Some((
                path.to_string(),
                format!(
                    "{:?} holds the placeholder {}: fill the template first (for example with envsubst)",
                    text,
                    &text[start..end]
                ),
            ))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| placeholder(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, item)| placeholder(item, &format!("{path}.{k}"))),
        _ => None,
    }
}

/// Parses a spec of `kind` from JSON in the API's shapes. Member names that differ from
/// the model's only in letter case (`certificateAuthorityARNs`, `AWSCloudMap`) are
/// renamed to the model's, and numbers or booleans written as strings (as CloudFormation
/// allows) are converted, each guided by the model's own refusal. With `pruned`, other
/// unknown members are dropped and their paths pushed there. Errors carry the path.
pub fn typed_spec(
    kind: ResourceKind,
    value: Value,
    mut pruned: Option<&mut Vec<String>>,
) -> Result<Spec, (String, String)> {
    let p = &mut pruned;
    Ok(match kind {
        ResourceKind::Mesh => Spec::Mesh(typed(value, p)?),
        ResourceKind::VirtualNode => Spec::VirtualNode(typed(value, p)?),
        ResourceKind::VirtualRouter => Spec::VirtualRouter(typed(value, p)?),
        ResourceKind::Route => Spec::Route(typed(value, p)?),
        ResourceKind::VirtualService => Spec::VirtualService(typed(value, p)?),
        ResourceKind::VirtualGateway => Spec::VirtualGateway(typed(value, p)?),
        ResourceKind::GatewayRoute => Spec::GatewayRoute(typed(value, p)?),
    })
}

fn spec_path(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." {
        "spec".to_string()
    } else {
        format!("spec.{path}")
    }
}

fn typed<T: DeserializeOwned>(
    mut value: Value,
    pruned: &mut Option<&mut Vec<String>>,
) -> Result<T, (String, String)> {
    // Each repair renames one member or converts one scalar, so this ends.
    for _ in 0..100_000 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(typed) => return Ok(typed),
            Err(err) => {
                let segments: Vec<Segment> = err.path().iter().cloned().collect();
                let message = err.inner().to_string();
                if repair(&mut value, &segments, &message) {
                    continue;
                }
                if let Some(pruned) = pruned.as_deref_mut()
                    && let Some(member) = prune(&mut value, &segments, &message)
                {
                    pruned.push(format!("{}.{member}", spec_path(err.path())));
                    continue;
                }
                return Err((spec_path(err.path()), message));
            }
        }
    }
    Err(("spec".into(), "the spec could not be read".into()))
}

/// The unknown member an "unknown field" refusal names, and the object holding it.
fn unknown_member<'a>(
    root: &'a mut Value,
    segments: &[Segment],
    message: &'a str,
) -> Option<(&'a mut Map<String, Value>, &'a str, Vec<&'a str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let mut names = rest.split('`').step_by(2);
    let unknown = names.next()?;
    // The path ends at the unknown member or at the object holding it.
    let holder = match segments.last() {
        Some(Segment::Map { key }) if key == unknown => &segments[..segments.len() - 1],
        _ => segments,
    };
    match at(root, holder) {
        Some(Value::Object(map)) => Some((map, unknown, names.collect())),
        _ => None,
    }
}

/// Drops the unknown member a refusal names; returns its name.
fn prune(root: &mut Value, segments: &[Segment], message: &str) -> Option<String> {
    let (map, unknown, _) = unknown_member(root, segments, message)?;
    map.remove(unknown).map(|_| unknown.to_string())
}

fn repair(root: &mut Value, segments: &[Segment], message: &str) -> bool {
    if message.starts_with("unknown field `") {
        let Some((map, unknown, expected)) = unknown_member(root, segments, message) else {
            return false;
        };
        let Some(expected) = expected
            .into_iter()
            .find(|name| name.eq_ignore_ascii_case(unknown))
        else {
            return false;
        };
        if map.contains_key(expected) {
            return false;
        }
        let Some(moved) = map.remove(unknown) else {
            return false;
        };
        map.insert(expected.to_string(), moved);
        return true;
    }
    let Some(slot) = at(root, segments) else {
        return false;
    };
    if message.starts_with("invalid type: string") {
        let Value::String(text) = slot else {
            return false;
        };
        let converted = if let Ok(number) = text.trim().parse::<i64>() {
            Value::from(number)
        } else if let Ok(number) = text.trim().parse::<f64>() {
            serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        } else if text.eq_ignore_ascii_case("true") {
            Value::Bool(true)
        } else if text.eq_ignore_ascii_case("false") {
            Value::Bool(false)
        } else {
            return false;
        };
        if converted.is_null() {
            return false;
        }
        *slot = converted;
        return true;
    }
    if message.starts_with("invalid type:") && message.ends_with("expected a string") {
        let text = match slot {
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => return false,
        };
        *slot = Value::String(text);
        return true;
    }
    false
}

fn at<'a>(root: &'a mut Value, segments: &[Segment]) -> Option<&'a mut Value> {
    let mut here = root;
    for segment in segments {
        here = match (segment, here) {
            (Segment::Map { key }, Value::Object(map)) => map.get_mut(key)?,
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index)?,
            (Segment::Enum { .. }, value) => value,
            _ => return None,
        };
    }
    Some(here)
}

/// Merges what several files define: a resource defined twice must be defined the same
/// way both times (it is then kept once), else it is an error naming both places.
pub fn merge(drafts: Vec<Desired>) -> Result<Vec<Desired>, ApplyError> {
    let mut seen: BTreeMap<ResourceKey, usize> = BTreeMap::new();
    let mut out: Vec<Desired> = Vec::new();
    for desired in drafts {
        match seen.get(&desired.key) {
            Some(&index) => {
                let first = &out[index];
                if first.spec != desired.spec {
                    return Err(ApplyError::Duplicate {
                        key: desired.key.to_string(),
                        first: first.origin.clone(),
                        second: desired.origin,
                    });
                }
            }
            None => {
                seen.insert(desired.key.clone(), out.len());
                out.push(desired);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin() -> Origin {
        Origin {
            file: "f.yaml".into(),
            place: "Resources.Node".into(),
        }
    }

    fn node_draft(spec: Value) -> Draft {
        Draft {
            kind: ResourceKind::VirtualNode,
            mesh: "m".into(),
            parent: None,
            name: "n".into(),
            spec,
            tags: vec![],
            origin: origin(),
            prune_unknown: false,
        }
    }

    #[test]
    fn letter_case_and_string_scalars_are_repaired_against_the_model() {
        let draft = node_draft(json!({
            "listeners": [{"portMapping": {"port": "8080", "protocol": "http"},
                "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateARN": "arn:x"}}}}],
            "serviceDiscovery": {"DNS": {"hostname": "h"}}
        }));
        let desired = draft.finish(&mut Vec::new()).unwrap();
        let Spec::VirtualNode(spec) = desired.spec else {
            panic!()
        };
        let value = serde_json::to_value(&spec).unwrap();
        assert_eq!(value["listeners"][0]["portMapping"]["port"], json!(8080));
        assert_eq!(
            value["listeners"][0]["tls"]["certificate"]["acm"]["certificateArn"],
            json!("arn:x")
        );
        assert_eq!(value["serviceDiscovery"]["dns"]["hostname"], json!("h"));
        assert_eq!(
            value["backends"],
            json!([]),
            "the service's default is filled in"
        );
    }

    #[test]
    fn an_unknown_member_is_an_error_with_its_path() {
        let err = node_draft(
            json!({"listeners": [{"portMapping": {"port": 80, "protocol": "http"}, "colour": 1}]}),
        )
        .finish(&mut Vec::new())
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("f.yaml Resources.Node: spec.listeners[0]"),
            "{text}"
        );
        assert!(text.contains("colour"), "{text}");
    }

    #[test]
    fn kubernetes_drafts_drop_unknown_members_with_a_note() {
        let mut draft = node_draft(json!({"backendDefaults": {"clientPolicy": {"tls": {
            "enforce": true, "mode": "STRICT", "validation": {"trust": {"file": {"certificateChain": "/c.pem"}}}}}}}));
        assert!(
            draft.clone().finish(&mut Vec::new()).is_err(),
            "refused unless pruning"
        );
        draft.prune_unknown = true;
        let mut ignored = Vec::new();
        let desired = draft.finish(&mut ignored).unwrap();
        let Spec::VirtualNode(spec) = desired.spec else {
            panic!()
        };
        let tls = &serde_json::to_value(&spec).unwrap()["backendDefaults"]["clientPolicy"]["tls"];
        assert_eq!(tls.get("mode"), None);
        assert_eq!(tls["enforce"], json!(true));
        assert_eq!(ignored.len(), 1);
        assert!(
            ignored[0]
                .what
                .starts_with("spec.backendDefaults.clientPolicy.tls.mode"),
            "{:?}",
            ignored[0]
        );
    }

    #[test]
    fn a_placeholder_left_in_a_value_is_refused() {
        let err = node_draft(
            json!({"serviceDiscovery": {"dns": {"hostname": "color.${APP_NAMESPACE}.svc"}}}),
        )
        .finish(&mut Vec::new())
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("spec.serviceDiscovery.dns.hostname"),
            "{text}"
        );
        assert!(text.contains("${APP_NAMESPACE}"), "{text}");
        let mut draft = node_draft(json!({}));
        draft.mesh = "${MESH_NAME}".into();
        assert!(
            draft
                .finish(&mut Vec::new())
                .unwrap_err()
                .to_string()
                .contains("meshName")
        );
    }

    #[test]
    fn a_resource_defined_twice_must_be_identical() {
        let one = node_draft(json!({})).finish(&mut Vec::new()).unwrap();
        let mut same = one.clone();
        same.origin.file = "g.yaml".into();
        assert_eq!(merge(vec![one.clone(), same]).unwrap().len(), 1);
        let mut other =
            node_draft(json!({"backends": [{"virtualService": {"virtualServiceName": "s"}}]}))
                .finish(&mut Vec::new())
                .unwrap();
        other.origin.file = "g.yaml".into();
        let text = merge(vec![one, other]).unwrap_err().to_string();
        assert!(
            text.contains("f.yaml Resources.Node") && text.contains("g.yaml Resources.Node"),
            "{text}"
        );
    }
}
