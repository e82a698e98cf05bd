//! The App Mesh error shape: an HTTP status, the `x-amzn-ErrorType` header naming the
//! exception, and a `{"message": …}` body, as botocore and the AWS SDKs parse them.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
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

/// The most of an unshaped error body that is kept as the message.
const MAX_QUOTED_BODY: usize = 1024;

/// Middleware: gives App Mesh's error shape to an error answer made without it (by
/// the HTTP layer before any operation ran: a body over the limit, a path that is not
/// UTF-8, …), keeping its status: `BadRequestException` for a 4xx,
/// `InternalServerErrorException` for a 5xx, the text it had (or the status's reason)
/// as the message. A Cloud Map request's gets JSON 1.1's shape (`InvalidInput`,
/// `InternalFailure`).
pub async fn in_app_mesh_shape(request: Request, next: Next) -> Response {
    let cloud_map = crate::cloud_map::api::is_cloud_map_request(request.headers());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key("x-amzn-errortype")
    {
        return response;
    }
    let shaped = shaped(status, response.into_body()).await;
    if !cloud_map {
        return shaped;
    }
    // Cloud Map's clients read JSON 1.1's `__type`.
    let name = if status.is_server_error() {
        "InternalFailure"
    } else {
        "InvalidInput"
    };
    let message = axum::body::to_bytes(shaped.into_body(), MAX_QUOTED_BODY * 8)
        .await
        .ok()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .and_then(|body| body["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    crate::cloud_map::error::json_error(status, name, &message, Default::default())
}

/// App Mesh's error answer with `status`, quoting (the start of) `body` as its message.
pub async fn shaped(status: StatusCode, body: Body) -> Response {
    let text = match axum::body::to_bytes(body, MAX_QUOTED_BODY * 4).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text.chars().take(MAX_QUOTED_BODY).collect()
    };
    let kind = if status.is_server_error() {
        ErrorType::InternalServerError
    } else {
        ErrorType::BadRequest
    };
    let mut response = ApiError::new(kind, message).into_response();
    *response.status_mut() = status;
    response
}

/// The answer to a request whose handler panicked: an `InternalServerErrorException`
/// (500), with the panic logged. The server keeps serving (see `api::served`).
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!("a request handler panicked: {what}");
    ApiError::new(
        ErrorType::InternalServerError,
        "meshd failed to handle the request: an internal fault, logged",
    )
    .into_response()
}
