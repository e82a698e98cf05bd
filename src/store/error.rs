//! Why a write to the store was refused.

use crate::model::{FieldError, ResourceKey, ResourceKind};

/// A write the store refused, or could not make durable. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The resource, or a resource it names, does not exist.
    #[error("{}", not_found_message(.0))]
    NotFound(ResourceKey),
    /// A resource with this name already exists.
    #[error("{} with name {} already exists{}", .0.kind.type_name(), .0.name, scope(.0))]
    AlreadyExists(ResourceKey),
    /// The resource cannot be deleted while another one refers to it or lives under it.
    #[error("{} with name {}{} cannot be deleted because it is in use by {} {}", .resource.kind.type_name(), .resource.name, scope(.resource), .user.kind.words(), .user.name)]
    InUse {
        /// What was to be deleted.
        resource: Box<ResourceKey>,
        /// One resource that depends on it.
        user: Box<ResourceKey>,
    },
    /// The client token was already used for a different request.
    #[error("the client token {token} was already used with a different request")]
    TokenReused {
        /// The reused token.
        token: String,
    },
    /// A configured limit on the number of resources would be passed.
    #[error("cannot create more than {limit} {what}")]
    LimitExceeded {
        /// What is counted, in words (`virtual nodes in mesh m`).
        what: String,
        /// The configured limit.
        limit: usize,
    },
    /// A resource would carry more user tags than allowed.
    #[error(
        "a resource can have at most {limit} tags; it would have {count}, so none of the tags were applied"
    )]
    TooManyTags {
        /// The limit (50).
        limit: usize,
        /// How many it would have had.
        count: usize,
    },
    /// The spec breaks a rule that depends on other resources.
    #[error("{0}")]
    Invalid(FieldError),
    /// The durable backend did not take the write (its disk failed, or etcd is
    /// unreachable); answered with `ServiceUnavailableException` (503).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Other replicas kept committing first: the write was checked and tried `attempts`
    /// times and never committed. Answered with `TooManyRequestsException` (429).
    #[error(
        "the write was tried {attempts} times and each time another meshd replica wrote first; retry it"
    )]
    Contended {
        /// How many times it was tried.
        attempts: u32,
    },
}

fn scope(key: &ResourceKey) -> String {
    match key.kind {
        ResourceKind::Mesh => String::new(),
        ResourceKind::Route | ResourceKind::GatewayRoute => {
            let parent = key.kind.parent_kind().expect("routes have parents");
            format!(
                " under {} {} in mesh {}",
                parent.words(),
                key.parent,
                key.mesh
            )
        }
        _ => format!(" under mesh {}", key.mesh),
    }
}

fn not_found_message(key: &ResourceKey) -> String {
    format!(
        "{} with name {} is not present{}",
        key.kind.type_name(),
        key.name,
        scope(key)
    )
}
