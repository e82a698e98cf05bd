//! Request paths as they are routed: a path with a `.` or `..` segment (also
//! percent-encoded) is refused before anything else looks at it. AWS clients sign such a
//! path with its dot segments removed, while the router would take them as names, so the
//! operation that was signed and the one that would run could differ; refusing them
//! keeps what the signature check verifies and what is routed the same bytes.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::error::ApiError;

/// The first segment of `raw_path` that is `.` or `..` once percent-decoded.
pub fn dot_segment(raw_path: &str) -> Option<&str> {
    raw_path.split('/').find(|segment| {
        let decoded = percent_decode_str(segment).collect::<Vec<u8>>();
        decoded == b"." || decoded == b".."
    })
}

/// Middleware: answers a request whose path has a dot segment with a
/// `BadRequestException`; serves every other one.
pub async fn refuse_dot_segments(request: Request, next: Next) -> Response {
    if let Some(segment) = dot_segment(request.uri().path()) {
        return ApiError::bad_request(format!(
            "the request path has a {segment:?} segment; paths name resources as they are, \
             without . or .. segments"
        ))
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_also_encoded() {
        assert_eq!(
            dot_segment("/v20190125/meshes/m/virtualNodes/.."),
            Some("..")
        );
        assert_eq!(dot_segment("/v20190125/meshes/%2e/x"), Some("%2e"));
        assert_eq!(dot_segment("/v20190125/meshes/%2E%2E"), Some("%2E%2E"));
        assert_eq!(dot_segment("/v20190125/meshes/a.b/virtualNodes/..."), None);
        assert_eq!(dot_segment("/v20190125/meshes/.hidden"), None);
    }
}
