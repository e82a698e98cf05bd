//! Why an apply or an export could not be done.

use super::desired::Origin;

/// Why `meshd apply` or `meshd export` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A file or directory could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The reason.
        source: std::io::Error,
    },
    /// A file is not YAML or JSON, or not one of the formats `apply` reads.
    #[error("{file}: {message}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A value of a resource is wrong or cannot be resolved.
    #[error("{origin}: {path}: {message}")]
    Invalid {
        /// Where the resource is defined.
        origin: Origin,
        /// The property path inside the resource.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The same resource is defined twice, differently.
    #[error("{key} is defined twice, differently: in {first} and in {second}")]
    Duplicate {
        /// The resource.
        key: String,
        /// The first definition.
        first: Origin,
        /// The second definition.
        second: Origin,
    },
    /// The App Mesh API answered with an error (while reading what meshd holds).
    #[error("{0}")]
    Api(#[from] super::client::ClientError),
    /// The API refused a change: the apply stopped there.
    #[error("{0}")]
    Refused(Box<Refusal>),
    /// Writing the export failed.
    #[error("{file}: {source}")]
    Write {
        /// The output file.
        file: String,
        /// The reason.
        source: std::io::Error,
    },
}

/// A change the API refused, and where the apply stopped.
#[derive(Debug, thiserror::Error)]
#[error(
    "{action} {key} ({origin}{at}) was refused: {error}\n  applied before it: {applied}\n  not applied: {not_applied}",
    at = path.as_ref().map(|p| format!(", {p}")).unwrap_or_default(),
    applied = list_or_none(.applied),
    not_applied = list_or_none(.not_applied)
)]
pub struct Refusal {
    /// "create", "update" or "delete".
    pub action: &'static str,
    /// The resource.
    pub key: String,
    /// Where it is defined (or "meshd" for a delete).
    pub origin: Origin,
    /// The property the API's answer names (the member holding a name the API reports
    /// missing), if one does.
    pub path: Option<String>,
    /// The API's answer.
    pub error: super::client::ClientError,
    /// The changes made before it, in order.
    pub applied: Vec<String>,
    /// The changes not made (this one and those after it).
    pub not_applied: Vec<String>,
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_string()
    } else {
        items.join(", ")
    }
}
