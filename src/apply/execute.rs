//! Carrying out a plan: one API call per change, in the plan's order, a progress line
//! per resource; at the first refusal it stops and says what was and was not applied.

use std::io::Write;

use super::ApplyError;
use super::client::Client;
use super::desired::Origin;
use super::error::Refusal;
use super::plan::{Action, Plan, Step};
use super::state::spec_value;

/// What an apply changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Resources created.
    pub created: usize,
    /// Resources updated.
    pub updated: usize,
    /// Resources deleted.
    pub deleted: usize,
    /// Resources left as they were.
    pub unchanged: usize,
}

fn describe(step: &Step) -> String {
    let word = match step.action {
        Action::Create => "create",
        Action::Update(_) => "update",
        Action::Delete => "delete",
        Action::Unchanged => "keep",
    };
    format!("{word} {}", step.key)
}

/// The path of the string in `value` that the API's `message` names (the longest such,
/// as a whole word), e.g. the route target the API reports missing.
fn culprit(value: &serde_json::Value, path: &str, message: &str) -> Option<String> {
    let mut found: Vec<(usize, String)> = Vec::new();
    collect(value, path, message, &mut found);
    found.sort_by_key(|(length, _)| std::cmp::Reverse(*length));
    found.into_iter().next().map(|(_, path)| path)
}

fn collect(value: &serde_json::Value, path: &str, message: &str, found: &mut Vec<(usize, String)>) {
    use serde_json::Value;
    match value {
        Value::String(text) if !text.is_empty() => {
            let bounded = message.match_indices(text.as_str()).any(|(start, _)| {
                let before = message[..start].chars().next_back();
                let after = message[start + text.len()..].chars().next();
                let edge = |c: Option<char>| {
                    c.is_none_or(|c| c.is_whitespace() || "\"'`,:;()".contains(c))
                };
                edge(before) && edge(after)
            });
            if bounded {
                found.push((text.len(), path.to_string()));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                collect(item, &format!("{path}[{index}]"), message, found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                collect(item, &format!("{path}.{key}"), message, found);
            }
        }
        _ => {}
    }
}

/// Makes the plan's changes, writing a line per resource to `progress`.
pub async fn execute(
    client: &Client,
    plan: &Plan,
    progress: &mut dyn Write,
) -> Result<Outcome, ApplyError> {
    let mut outcome = Outcome::default();
    let changes: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| s.action != Action::Unchanged)
        .collect();
    outcome.unchanged = plan.steps.len() - changes.len();
    let total = changes.len();
    let mut applied = Vec::new();
    for (done, step) in changes.iter().enumerate() {
        let result = match (&step.action, &step.desired) {
            (Action::Create, Some(desired)) => {
                client
                    .create(&step.key, &spec_value(&desired.spec), &desired.tags)
                    .await
            }
            (Action::Update(_), Some(desired)) => {
                client.update(&step.key, &spec_value(&desired.spec)).await
            }
            (Action::Delete, _) => client.delete(&step.key).await,
            _ => unreachable!("creates and updates carry their definition"),
        };
        if let Err(error) = result {
            let action = match step.action {
                Action::Create => "create",
                Action::Update(_) => "update",
                _ => "delete",
            };
            return Err(ApplyError::Refused(Box::new(Refusal {
                action,
                key: step.key.to_string(),
                origin: step.desired.as_ref().map_or_else(
                    || Origin {
                        file: "meshd".into(),
                        place: "(not in the files)".into(),
                    },
                    |d| d.origin.clone(),
                ),
                path: step
                    .desired
                    .as_ref()
                    .and_then(|d| culprit(&spec_value(&d.spec), "spec", &error.to_string())),
                error,
                applied,
                not_applied: changes[done..].iter().map(|s| describe(s)).collect(),
            })));
        }
        match step.action {
            Action::Create => outcome.created += 1,
            Action::Update(_) => outcome.updated += 1,
            _ => outcome.deleted += 1,
        }
        let past = match step.action {
            Action::Create => "created",
            Action::Update(_) => "updated",
            _ => "deleted",
        };
        let _ = writeln!(progress, "[{}/{total}] {past} {}", done + 1, step.key);
        applied.push(describe(step));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_property_an_api_refusal_names() {
        let spec = json!({"httpRoute": {"match": {"prefix": "/"},
            "action": {"weightedTargets": [{"virtualNode": "web-v1", "weight": 1}, {"virtualNode": "web", "weight": 1}]}}});
        assert_eq!(
            culprit(
                &spec,
                "spec",
                "404 NotFoundException: VirtualNode with name web is not present under mesh shop"
            )
            .as_deref(),
            Some("spec.httpRoute.action.weightedTargets[1].virtualNode")
        );
        assert_eq!(culprit(&spec, "spec", "409 ConflictException: busy"), None);
    }
}
