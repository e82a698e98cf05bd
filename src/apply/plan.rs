//! The plan: what an apply changes, compared with what meshd holds, in the order the
//! changes must be made, with a readable diff of each changed spec.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::ApplyError;
use super::client::Client;
use super::desired::{Desired, Ignored};
use super::state::{self, Actual, spec_value};
use crate::model::{ResourceKey, ResourceKind};

/// What happens to one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// It is created.
    Create,
    /// Its spec is replaced; the diff of the spec (`-` meshd's, `+` the files').
    Update(String),
    /// It stays as it is.
    Unchanged,
    /// It is deleted (`--prune`: meshd holds it in a mesh the files name, the files no longer define it).
    Delete,
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub struct Step {
    /// Which resource.
    pub key: ResourceKey,
    /// What happens to it.
    pub action: Action,
    /// The files' definition (none for a delete).
    pub desired: Option<Desired>,
}

/// A plan: the steps in the order they are carried out (creates and updates parents
/// first, then deletes in the reverse order), and what the files hold that is ignored.
#[derive(Debug, Default)]
pub struct Plan {
    /// The steps.
    pub steps: Vec<Step>,
    /// What the files hold that is not applied.
    pub ignored: Vec<Ignored>,
}

/// The order in which kinds are created: what a resource names exists before it.
pub fn rank(kind: ResourceKind) -> u8 {
    match kind {
        ResourceKind::Mesh => 0,
        ResourceKind::VirtualNode | ResourceKind::VirtualRouter | ResourceKind::VirtualGateway => 1,
        ResourceKind::Route => 2,
        ResourceKind::VirtualService => 3,
        ResourceKind::GatewayRoute => 4,
    }
}

/// A line diff of two specs, each as pretty JSON.
pub fn spec_diff(old: &serde_json::Value, new: &serde_json::Value) -> String {
    let old = serde_json::to_string_pretty(old).expect("JSON prints");
    let new = serde_json::to_string_pretty(new).expect("JSON prints");
    let diff = similar::TextDiff::from_lines(&old, &new);
    let mut out = String::new();
    for group in diff.grouped_ops(2) {
        for op in group {
            for change in diff.iter_changes(&op) {
                let sign = match change.tag() {
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                    similar::ChangeTag::Equal => ' ',
                };
                let _ = write!(out, "      {sign} {}", change.value());
                if change.missing_newline() {
                    out.push('\n');
                }
            }
        }
        out.push_str("      …\n");
    }
    out
}

/// The first resource whose mesh, or router or gateway, neither the files define nor
/// meshd holds: it could not be created.
fn orphan(desired: &[Desired], actual: &BTreeMap<ResourceKey, Actual>) -> Option<ApplyError> {
    let defined: BTreeSet<&ResourceKey> = desired.iter().map(|d| &d.key).collect();
    let exists = |key: &ResourceKey| defined.contains(key) || actual.contains_key(key);
    desired.iter().find_map(|d| {
        let parents = [Some(d.key.mesh_key()), d.key.parent_key()];
        let missing = parents
            .into_iter()
            .flatten()
            .find(|parent| !exists(parent))?;
        let field = match missing.kind {
            ResourceKind::Mesh => "meshName",
            kind => kind.name_field(),
        };
        Some(ApplyError::Invalid {
            origin: d.origin.clone(),
            path: field.to_string(),
            message: format!(
                "{} {:?} is neither in the files nor in meshd",
                missing.kind.words(),
                missing.name
            ),
        })
    })
}

/// Compares `desired` with what meshd holds and orders the changes. With `prune`, the
/// resources meshd holds in the meshes the files name and the files do not define are
/// deleted (never a mesh). A resource whose mesh (or router, or gateway) neither the
/// files define nor meshd holds makes the plan fail.
pub async fn make(
    client: &Client,
    desired: &[Desired],
    ignored: Vec<Ignored>,
    prune: bool,
) -> Result<Plan, ApplyError> {
    let meshes: BTreeSet<&str> = desired.iter().map(|d| d.key.mesh.as_str()).collect();
    let mut actual: BTreeMap<ResourceKey, Actual> = BTreeMap::new();
    for mesh in meshes {
        if let Some(resources) = state::read_mesh(client, mesh).await? {
            actual.extend(resources.into_iter().map(|a| (a.key.clone(), a)));
        }
    }
    if let Some(error) = orphan(desired, &actual) {
        return Err(error);
    }
    let mut steps: Vec<Step> = desired
        .iter()
        .map(|d| {
            let action = match actual.get(&d.key) {
                None => Action::Create,
                Some(held) if held.spec == d.spec => Action::Unchanged,
                Some(held) => {
                    Action::Update(spec_diff(&spec_value(&held.spec), &spec_value(&d.spec)))
                }
            };
            Step {
                key: d.key.clone(),
                action,
                desired: Some(d.clone()),
            }
        })
        .collect();
    steps.sort_by_key(|s| rank(s.key.kind));
    if prune {
        let wanted: BTreeSet<&ResourceKey> = desired.iter().map(|d| &d.key).collect();
        let mut deletes: Vec<Step> = actual
            .keys()
            .filter(|key| key.kind != ResourceKind::Mesh && !wanted.contains(key))
            .map(|key| Step {
                key: key.clone(),
                action: Action::Delete,
                desired: None,
            })
            .collect();
        deletes.sort_by_key(|s| std::cmp::Reverse(rank(s.key.kind)));
        steps.extend(deletes);
    }
    Ok(Plan { steps, ignored })
}

impl Plan {
    /// How many steps create, update, leave unchanged and delete.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let count = |f: fn(&Action) -> bool| self.steps.iter().filter(|s| f(&s.action)).count();
        (
            count(|a| *a == Action::Create),
            count(|a| matches!(a, Action::Update(_))),
            count(|a| *a == Action::Unchanged),
            count(|a| *a == Action::Delete),
        )
    }

    /// The plan as text: one line per resource, the diff under each update, the ignored
    /// resources, and the totals.
    pub fn render(&self) -> String {
        let mut out = String::from("Plan:\n");
        for step in &self.steps {
            let (sign, word) = match &step.action {
                Action::Create => ('+', "create"),
                Action::Update(_) => ('~', "update"),
                Action::Unchanged => ('=', "unchanged"),
                Action::Delete => ('-', "delete"),
            };
            let origin = step
                .desired
                .as_ref()
                .map(|d| format!("  ({})", d.origin))
                .unwrap_or_default();
            let _ = writeln!(out, "  {sign} {word:<9} {}{origin}", step.key);
            if let Action::Update(diff) = &step.action {
                out.push_str(diff);
            }
        }
        if !self.ignored.is_empty() {
            out.push_str("Ignored:\n");
            for ignored in &self.ignored {
                let _ = writeln!(out, "    {}: {}", ignored.origin, ignored.what);
            }
        }
        let (create, update, unchanged, delete) = self.counts();
        let _ = writeln!(
            out,
            "{create} to create, {update} to update, {unchanged} unchanged, {delete} to delete."
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_are_ordered_so_that_what_a_spec_names_comes_first() {
        let mut kinds = ResourceKind::ALL.to_vec();
        kinds.sort_by_key(|k| rank(*k));
        assert_eq!(kinds[0], ResourceKind::Mesh);
        assert!(rank(ResourceKind::VirtualNode) < rank(ResourceKind::Route));
        assert!(rank(ResourceKind::VirtualRouter) < rank(ResourceKind::Route));
        assert!(rank(ResourceKind::Route) < rank(ResourceKind::VirtualService));
        assert!(rank(ResourceKind::VirtualService) < rank(ResourceKind::GatewayRoute));
        assert!(rank(ResourceKind::VirtualGateway) < rank(ResourceKind::GatewayRoute));
    }

    #[test]
    fn a_diff_shows_the_changed_lines_with_context() {
        let old = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}, "e": true});
        let new = json!({"a": 1, "b": {"c": [1, 3], "d": "x"}, "e": true});
        let diff = spec_diff(&old, &new);
        assert!(
            diff.contains("      -       2\n") && diff.contains("      +       3\n"),
            "{diff}"
        );
        assert!(
            !diff.contains("\"a\""),
            "lines far from the change are left out:\n{diff}"
        );
        assert_eq!(spec_diff(&old, &old), "");
    }

    #[test]
    fn a_plan_renders_a_line_per_resource_and_the_totals() {
        let plan = Plan {
            steps: vec![
                Step {
                    key: ResourceKey::mesh("m"),
                    action: Action::Unchanged,
                    desired: None,
                },
                Step {
                    key: ResourceKey::in_mesh(ResourceKind::VirtualNode, "m", "n"),
                    action: Action::Update("      - x\n".into()),
                    desired: None,
                },
                Step {
                    key: ResourceKey::in_mesh(ResourceKind::VirtualRouter, "m", "r"),
                    action: Action::Delete,
                    desired: None,
                },
            ],
            ignored: vec![Ignored {
                origin: super::super::desired::Origin {
                    file: "t.yaml".into(),
                    place: "Resources.Vpc".into(),
                },
                what: "AWS::EC2::VPC".into(),
            }],
        };
        assert_eq!(
            plan.render(),
            "Plan:\n  = unchanged mesh/m\n  ~ update    mesh/m/virtualNode/n\n      - x\n  - delete    mesh/m/virtualRouter/r\n\
             Ignored:\n    t.yaml Resources.Vpc: AWS::EC2::VPC\n0 to create, 1 to update, 1 unchanged, 1 to delete.\n"
        );
    }
}
