//! `meshd apply` and `meshd export`: bringing meshes kept as CloudFormation templates,
//! Kubernetes manifests of the App Mesh controller or AWS CLI input files into meshd
//! through its own App Mesh API, after showing a plan, and writing what meshd holds back
//! out in those formats.
//!
//! Every format reader produces `desired::Draft`s; `desired` checks them against the
//! API model; `plan` compares them with what meshd describes (`state`); `execute` makes
//! the calls (`client`) in dependency order; `export` writes a mesh out.

pub mod cli_input;
pub mod client;
pub mod cloudformation;
pub mod desired;
mod error;
pub mod execute;
pub mod export;
pub mod kubernetes;
pub mod plan;
pub mod source;
pub mod state;

use std::collections::BTreeMap;
use std::io::Write;

pub use error::{ApplyError, Refusal};

use crate::api::Account;
use client::Client;
use desired::{Desired, Loaded};

/// The account meshd answers as when it holds no mesh to learn it from (meshd's default).
const DEFAULT_ACCOUNT_ID: &str = "111122223333";

/// What `meshd apply` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// `-f`: files, directories, `-`.
    pub files: Vec<String>,
    /// `--parameter Key=Value`.
    pub parameters: BTreeMap<String, String>,
    /// `--stack-name` (else each template's file name).
    pub stack_name: Option<String>,
    /// `--mesh` and `--namespace`, for Kubernetes manifests.
    pub kubernetes: kubernetes::Options,
    /// `--dry-run`: show the plan only.
    pub dry_run: bool,
    /// `--prune`: delete what the files no longer define in the meshes they name.
    pub prune: bool,
}

/// Reads and checks every resource the files define, against `account` (for ARNs and
/// the pseudo-parameters).
pub fn load(
    files: &[source::File],
    options: &ApplyOptions,
    account: &Account,
) -> Result<Loaded, ApplyError> {
    let sources = source::classify(files)?;
    let mut drafts = Vec::new();
    let mut ignored = sources.ignored;
    let environment = |file: &str| cloudformation::Environment {
        overrides: options.parameters.clone(),
        account: account.clone(),
        stack_name: options
            .stack_name
            .clone()
            .unwrap_or_else(|| source::stack_name(file)),
        exports: Default::default(),
    };
    let mut exports = std::collections::BTreeMap::new();
    for (file, template) in &sources.templates {
        exports.extend(cloudformation::exports(template, &environment(file)));
    }
    for (file, template) in &sources.templates {
        let env = cloudformation::Environment {
            exports: exports.clone(),
            ..environment(file)
        };
        let (found, left_out) = cloudformation::read(file, template, &env)?;
        drafts.extend(found);
        ignored.extend(left_out);
    }
    if !sources.kubernetes.is_empty() {
        let (found, left_out) = kubernetes::read(&sources.kubernetes, &options.kubernetes)?;
        drafts.extend(found);
        ignored.extend(left_out);
    }
    for (file, index, input) in &sources.cli_inputs {
        drafts.push(cli_input::read(file, *index, input)?);
    }
    let checked: Vec<Desired> = drafts
        .into_iter()
        .map(|draft| draft.finish(&mut ignored))
        .collect::<Result<_, _>>()?;
    Ok(Loaded {
        resources: desired::merge(checked)?,
        ignored,
    })
}

/// meshd's region and account: the client's region; the account from
/// `--parameter AWS::AccountId=…`, else from the ARN of a mesh meshd holds, else meshd's default.
async fn account(
    client: &Client,
    parameters: &BTreeMap<String, String>,
) -> Result<Account, ApplyError> {
    let region = parameters
        .get("AWS::Region")
        .cloned()
        .unwrap_or_else(|| client.region().to_string());
    if let Some(account_id) = parameters.get("AWS::AccountId") {
        return Ok(Account {
            region,
            account_id: account_id.clone(),
        });
    }
    let meshes = client
        .list(crate::model::ResourceKind::Mesh, "", "")
        .await?;
    let mut account_id = DEFAULT_ACCOUNT_ID.to_string();
    if let Some(mesh) = meshes.first()
        && let Some(held) =
            state::describe(client, &crate::model::ResourceKey::mesh(mesh.as_str())).await?
        && let Some(id) = state::account_of(&held.arn)
    {
        account_id = id.to_string();
    }
    Ok(Account { region, account_id })
}

/// `meshd apply`: reads the files, prints the plan to `out`, and unless it is a dry
/// run makes the changes, a progress line per resource. A dry run's outcome counts
/// what the plan would change.
pub async fn apply(
    client: &Client,
    options: &ApplyOptions,
    out: &mut dyn Write,
) -> Result<execute::Outcome, ApplyError> {
    let files = source::read_paths(&options.files)?;
    let account = account(client, &options.parameters).await?;
    let loaded = load(&files, options, &account)?;
    let plan = plan::make(client, &loaded.resources, loaded.ignored, options.prune).await?;
    let _ = write!(out, "{}", plan.render());
    if options.dry_run {
        let (created, updated, unchanged, deleted) = plan.counts();
        return Ok(execute::Outcome {
            created,
            updated,
            unchanged,
            deleted,
        });
    }
    let outcome = execute::execute(client, &plan, out).await?;
    let _ = writeln!(
        out,
        "Applied: {} created, {} updated, {} unchanged, {} deleted.",
        outcome.created, outcome.updated, outcome.unchanged, outcome.deleted
    );
    Ok(outcome)
}
