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
