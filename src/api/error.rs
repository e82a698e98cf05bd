//! The App Mesh error shape: an HTTP status, the `x-amzn-ErrorType` header naming the
//! exception, and a `{"message": …}` body, as botocore and the AWS SDKs parse them.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::model::FieldError;
use crate::store::StoreError;

/// The exceptions of the App Mesh API, plus the protocol's own `UnknownOperationException`
/// and the ones AWS's front end answered requests it could not authenticate with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// 400: the request breaks a rule.
    BadRequest,
    /// 409: a duplicate name, or a client token reused for another request.
    Conflict,
    /// 403: not allowed.
    Forbidden,
    /// 500: a fault of meshd.
    InternalServerError,
    /// 400: a configured limit would be passed.
    LimitExceeded,
    /// 404: the resource does not exist.
    NotFound,
    /// 409: the resource is still in use.
    ResourceInUse,
    /// 503: the durable store cannot take writes (its disk failed, etcd is unreachable).
    ServiceUnavailable,
    /// 429: too many requests.
    TooManyRequests,
    /// 400: more than 50 tags.
    TooManyTags,
    /// 404: no operation has this method and path.
    UnknownOperation,
    /// 403: a request without an `Authorization` header (SigV4 required).
    MissingAuthenticationToken,
    /// 400: an `Authorization` header that is not a complete SigV4 one.
    IncompleteSignature,
    /// 403: an access key meshd does not know.
    UnrecognizedClient,
    /// 403: a wrong signature, a scope of another region or service, or a stale time.
    InvalidSignature,
}

impl ErrorType {
    /// The exception's name, as sent in `x-amzn-ErrorType`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequestException",
            Self::Conflict => "ConflictException",
            Self::Forbidden => "ForbiddenException",
            Self::InternalServerError => "InternalServerErrorException",
            Self::LimitExceeded => "LimitExceededException",
            Self::NotFound => "NotFoundException",
            Self::ResourceInUse => "ResourceInUseException",
            Self::ServiceUnavailable => "ServiceUnavailableException",
            Self::TooManyRequests => "TooManyRequestsException",
            Self::TooManyTags => "TooManyTagsException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature => "IncompleteSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::InvalidSignature => "InvalidSignatureException",
        }
    }

    /// The HTTP status the API model gives the exception.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest
            | Self::LimitExceeded
            | Self::TooManyTags
            | Self::IncompleteSignature => StatusCode::BAD_REQUEST,
            Self::Forbidden
            | Self::MissingAuthenticationToken
            | Self::UnrecognizedClient
            | Self::InvalidSignature => StatusCode::FORBIDDEN,
            Self::NotFound | Self::UnknownOperation => StatusCode::NOT_FOUND,
            Self::Conflict | Self::ResourceInUse => StatusCode::CONFLICT,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error response of the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.name())]
pub struct ApiError {
    /// Which exception.
    pub kind: ErrorType,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A `BadRequestException`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadRequest, message)
    }
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        ApiError::bad_request(err.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let kind = match &err {
            StoreError::NotFound(_) => ErrorType::NotFound,
            StoreError::AlreadyExists(_) | StoreError::TokenReused { .. } => ErrorType::Conflict,
            StoreError::InUse { .. } => ErrorType::ResourceInUse,
            StoreError::LimitExceeded { .. } => ErrorType::LimitExceeded,
            StoreError::TooManyTags { .. } => ErrorType::TooManyTags,
            StoreError::Invalid(_) => ErrorType::BadRequest,
            StoreError::Unavailable(_) => ErrorType::ServiceUnavailable,
            StoreError::Contended { .. } => ErrorType::TooManyRequests,
        };
        ApiError::new(kind, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        let mut response = (self.kind.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.kind.name()),
        );
        response
    }
}
