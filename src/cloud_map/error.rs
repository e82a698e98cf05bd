//! Cloud Map's errors as its JSON 1.1 protocol sends them: HTTP 400 (AWS's model gives
//! its exceptions no other status), the exception's name in `__type` and in
//! `x-amzn-ErrorType`, `Message`, and the members some exceptions carry.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::store::{StoreError, TransactError};

/// An error answer of the Cloud Map API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudMapError {
    /// `InvalidInput`: the request breaks a rule of the API.
    #[error("{0}")]
    InvalidInput(String),
    /// `SerializationException`: the body is not the JSON of the operation's input.
    #[error("{0}")]
    Serialization(String),
    /// `UnknownOperationException`: no operation meshd serves has this name.
    #[error("{0}")]
    UnknownOperation(String),
    /// `NamespaceAlreadyExists`.
    #[error("{message}")]
    NamespaceAlreadyExists {
        /// For people.
        message: String,
        /// The existing namespace's creator request id.
        creator_request_id: Option<String>,
        /// The existing namespace's id.
        namespace_id: String,
    },
    /// `ServiceAlreadyExists`.
    #[error("{message}")]
    ServiceAlreadyExists {
        /// For people.
        message: String,
        /// The existing service's creator request id.
        creator_request_id: Option<String>,
        /// The existing service's id.
        service_id: String,
        /// The existing service's ARN.
        service_arn: String,
    },
    /// `NamespaceNotFound`.
    #[error("{0}")]
    NamespaceNotFound(String),
    /// `ServiceNotFound`.
    #[error("{0}")]
    ServiceNotFound(String),
    /// `InstanceNotFound`.
    #[error("{0}")]
    InstanceNotFound(String),
    /// `OperationNotFound`.
    #[error("{0}")]
    OperationNotFound(String),
    /// `ResourceNotFoundException` (tag operations on an unknown ARN).
    #[error("{0}")]
    ResourceNotFound(String),
    /// `CustomHealthNotFound`: the service has no custom health checks.
    #[error("{0}")]
    CustomHealthNotFound(String),
    /// `ResourceInUse`: a namespace with services, a service with instances.
    #[error("{0}")]
    ResourceInUse(String),
    /// `ResourceLimitExceeded`.
    #[error("{0}")]
    ResourceLimitExceeded(String),
    /// `TooManyTagsException`.
    #[error("{message}")]
    TooManyTags {
        /// For people.
        message: String,
        /// The resource's ARN.
        resource_name: String,
    },
    /// `RequestLimitExceeded`: other writers kept committing first.
    #[error("{0}")]
    RequestLimitExceeded(String),
    /// `ServiceUnavailable` (503): the store cannot take writes.
    #[error("{0}")]
    ServiceUnavailable(String),
}

impl CloudMapError {
    /// The exception's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "InvalidInput",
            Self::Serialization(_) => "SerializationException",
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::NamespaceAlreadyExists { .. } => "NamespaceAlreadyExists",
            Self::ServiceAlreadyExists { .. } => "ServiceAlreadyExists",
            Self::NamespaceNotFound(_) => "NamespaceNotFound",
            Self::ServiceNotFound(_) => "ServiceNotFound",
            Self::InstanceNotFound(_) => "InstanceNotFound",
            Self::OperationNotFound(_) => "OperationNotFound",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::CustomHealthNotFound(_) => "CustomHealthNotFound",
            Self::ResourceInUse(_) => "ResourceInUse",
            Self::ResourceLimitExceeded(_) => "ResourceLimitExceeded",
            Self::TooManyTags { .. } => "TooManyTagsException",
            Self::RequestLimitExceeded(_) => "RequestLimitExceeded",
            Self::ServiceUnavailable(_) => "ServiceUnavailable",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The exception's members besides `Message`.
    fn members(&self) -> Map<String, Value> {
        let mut members = Map::new();
        let mut set = |name: &str, value: &Option<String>| {
            if let Some(value) = value {
                members.insert(name.to_string(), Value::String(value.clone()));
            }
        };
        match self {
            Self::NamespaceAlreadyExists {
                creator_request_id,
                namespace_id,
                ..
            } => {
                set("CreatorRequestId", creator_request_id);
                set("NamespaceId", &Some(namespace_id.clone()));
            }
            Self::ServiceAlreadyExists {
                creator_request_id,
                service_id,
                service_arn,
                ..
            } => {
                set("CreatorRequestId", creator_request_id);
                set("ServiceId", &Some(service_id.clone()));
                set("ServiceArn", &Some(service_arn.clone()));
            }
            Self::TooManyTags { resource_name, .. } => {
                set("ResourceName", &Some(resource_name.clone()));
            }
            _ => {}
        }
        members
    }
}

impl From<TransactError<CloudMapError>> for CloudMapError {
    fn from(err: TransactError<CloudMapError>) -> Self {
        match err {
            TransactError::Refused(err) => err,
            TransactError::Store(StoreError::Contended { attempts }) => {
                CloudMapError::RequestLimitExceeded(format!(
                    "other writers committed first {attempts} times; try again"
                ))
            }
            TransactError::Store(err) => CloudMapError::ServiceUnavailable(err.to_string()),
        }
    }
}

impl IntoResponse for CloudMapError {
    fn into_response(self) -> Response {
        json_error(
            self.status(),
            self.name(),
            &self.to_string(),
            self.members(),
        )
    }
}

/// A JSON 1.1 error answer: `status`, exception `name` in `__type` and
/// `x-amzn-ErrorType`, `message`, and the exception's other `members`. Also what a
/// Cloud Map request refused before any operation ran gets (a bad signature, a body over
/// the limit), so that JSON 1.1 clients, which read `__type`, name it.
pub fn json_error(
    status: StatusCode,
    name: &'static str,
    message: &str,
    mut members: Map<String, Value>,
) -> Response {
    members.insert("__type".into(), Value::String(name.into()));
    members.insert("Message".into(), Value::String(message.into()));
    let mut response = (status, Value::Object(members).to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert("x-amzn-errortype", HeaderValue::from_static(name));
    response
}
