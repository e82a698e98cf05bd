//! Authentication of API requests: none (anyone who can reach the port may call it), or
//! AWS Signature Version 4 against a set of access keys, refusing what AWS refused with
//! the exceptions AWS answered with.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::credentials::{Credentials, CredentialsError};
use super::error::{ApiError, ErrorType};
use super::sigv4::{self, SignatureError, SignedRequest};

use super::limits::MAX_BODY_BYTES;

/// How API requests are authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Authentication {
    /// Every request is served.
    #[default]
    None,
    /// Only requests signed (SigV4, scope `<region>/appmesh`) with a key pair from this
    /// file (AWS shared credentials format), read when meshd starts.
    SigV4 {
        /// The credentials file.
        credentials_file: PathBuf,
    },
}

impl Authentication {
    /// The check that requests must pass in `region`, if any: the credentials file read.
    pub fn verifier(&self, region: &str) -> Result<Option<Verifier>, CredentialsError> {
        match self {
            Authentication::None => Ok(None),
            Authentication::SigV4 { credentials_file } => Ok(Some(Verifier {
                credentials: Arc::new(Credentials::load(credentials_file)?),
                region: region.to_string(),
            })),
        }
    }
}

/// What the SigV4 check needs: the keys and the region requests must be scoped to.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// The accepted key pairs.
    pub credentials: Arc<Credentials>,
    /// The region meshd answers as.
    pub region: String,
}

/// The exception AWS's front end answered a request refused for `err` with.
fn exception(err: &SignatureError) -> ErrorType {
    match err {
        SignatureError::Missing => ErrorType::MissingAuthenticationToken,
        SignatureError::Incomplete(_) => ErrorType::IncompleteSignature,
        SignatureError::UnknownAccessKey => ErrorType::UnrecognizedClient,
        SignatureError::BadScope(_) | SignatureError::Expired(_) | SignatureError::Mismatch => {
            ErrorType::InvalidSignature
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

/// Serves `request` only if its signature verifies; otherwise answers with the
/// exception AWS gave, and the request never reaches a handler.
pub async fn require_signature(
    State(verifier): State<Arc<Verifier>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::bad_request(format!(
                "the request body is over {MAX_BODY_BYTES} bytes or could not be read"
            ))
            .into_response();
        }
    };
    let mut headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    // HTTP/2 carries the host as `:authority`, which is not among the headers.
    if !parts.headers.contains_key("host")
        && let Some(authority) = parts.uri.authority()
    {
        headers.push(("host", authority.as_str().as_bytes()));
    }
    let signed = SignedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or_default(),
        headers: &headers,
        body: &body,
    };
    // Cloud Map's requests (meshd's registry, on the same port) are scoped to its service.
    let cloud_map = crate::cloud_map::api::is_cloud_map_request(&parts.headers);
    let service = if cloud_map
        || parts
            .uri
            .path()
            .starts_with(crate::cloud_map::api::CBOR_PATH_PREFIX)
    {
        sigv4::CLOUD_MAP_SERVICE
    } else {
        sigv4::SERVICE
    };
    let verdict = sigv4::verify(&signed, &verifier.region, service, now(), |key| {
        verifier.credentials.secret_of(key).map(str::to_string)
    });
    match verdict {
        Ok(verified) => {
            tracing::debug!(access_key = %verified.access_key, method = %parts.method, path = parts.uri.path(), "signature verified");
        }
        Err(err) => {
            tracing::info!(method = %parts.method, path = parts.uri.path(), "refused: {err}");
            let refusal = ApiError::new(exception(&err), err.to_string());
            if cloud_map {
                return crate::cloud_map::error::json_error(
                    refusal.kind.status(),
                    refusal.kind.name(),
                    &refusal.message,
                    Default::default(),
                );
            }
            return refusal.into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}
