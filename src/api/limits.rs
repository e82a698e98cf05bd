//! The bounds of one API request, checked before it reaches the signature check or a
//! handler, each refusal in App Mesh's error shape with the HTTP status that names it:
//! a URI over [`MAX_URI_BYTES`] (414), headers over [`MAX_HEADER_BYTES`] (431), a body
//! over [`MAX_BODY_BYTES`] (413) or one that does not arrive within
//! [`BODY_TIMEOUT`] (408). The body is read here, whole, so that a slow sender holds
//! nothing beyond its own connection for longer than that.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorType};

/// The longest request URI (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// The most bytes of header names and values in one request.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The largest request body (App Mesh specs are far smaller).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// The longest a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

fn refusal(status: StatusCode, message: String) -> Response {
    let mut response = ApiError::new(ErrorType::BadRequest, message).into_response();
    *response.status_mut() = status;
    response
}

/// Middleware: refuses a request that passes a bound; reads the body of every other
/// one before passing it on.
pub async fn within_limits(request: Request, next: Next) -> Response {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return refusal(
            StatusCode::URI_TOO_LONG,
            format!("the request URI is {uri} bytes long, over the limit of {MAX_URI_BYTES}"),
        );
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request headers are {headers} bytes, over the limit of {MAX_HEADER_BYTES}"
            ),
        );
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES));
    let body = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is over the limit of {MAX_BODY_BYTES} bytes, or could not be read"
                ),
            );
        }
        Err(_) => {
            return refusal(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
}
