//! The App Mesh resource model: the API's spec shapes (generated from the API model),
//! their validation, and the resources the store keeps.

pub mod resource;
pub mod rules;
pub mod spec;
pub mod validate;

pub use resource::{Metadata, Resource, ResourceKey, ResourceKind, Spec, Status, Timestamp};
pub use validate::{FieldError, Validate};
