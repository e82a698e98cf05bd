//! The API's HTTP layer as a client sees it: refusals made before any operation runs
//! (body too large, URI too long, headers too large, a path that is not UTF-8) and
//! faults inside a handler come back in App Mesh's error shape (the status kept,
//! `x-amzn-ErrorType`, a JSON `message`), and the server keeps serving.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 answer: status, headers (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Fails unless this is App Mesh's error shape with `status` and `exception`.
    #[track_caller]
    fn assert_app_mesh_error(&self, status: u16, exception: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("x-amzn-errortype"), Some(exception), "{self:?}");
        let body: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("the body is not JSON ({err}): {self:?}"));
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` over a
/// new connection, the bytes exactly as given, and reads the answer to the end.
async fn exchange(addr: SocketAddr, head: &[u8], body: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = head.to_vec();
    request.extend_from_slice(b"connection: close\r\n\r\n");
    // The server may answer (and close) before it has read all of a refused request.
    let _ = stream.write_all(&request).await;
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The server still answers an ordinary request.
async fn still_serves(addr: SocketAddr) {
    let answer = exchange(
        addr,
        b"GET /v20190125/meshes HTTP/1.1\r\nhost: meshd\r\n",
        b"",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn http_layer_refusals_have_the_app_mesh_error_shape() {
    let server = common::start_server().await;
    let addr = server.api_addr;

    // A body over the limit.
    let body = vec![b' '; 3 << 20];
    let head = format!(
        "PUT /v20190125/meshes HTTP/1.1\r\nhost: meshd\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    exchange(addr, head.as_bytes(), &body)
        .await
        .assert_app_mesh_error(413, "BadRequestException");

    // A path that is not UTF-8 once decoded.
    exchange(
        addr,
        b"GET /v20190125/meshes/%FF%FE HTTP/1.1\r\nhost: meshd\r\n",
        b"",
    )
    .await
    .assert_app_mesh_error(400, "BadRequestException");

    // A URI too long.
    let head = format!(
        "GET /v20190125/meshes?nextToken={} HTTP/1.1\r\nhost: meshd\r\n",
        "a".repeat(20_000)
    );
    exchange(addr, head.as_bytes(), b"")
        .await
        .assert_app_mesh_error(414, "BadRequestException");

    // Headers too large.
    let head = format!(
        "GET /v20190125/meshes HTTP/1.1\r\nhost: meshd\r\nx-large: {}\r\n",
        "a".repeat(100_000)
    );
    exchange(addr, head.as_bytes(), b"")
        .await
        .assert_app_mesh_error(431, "BadRequestException");

    still_serves(addr).await;
}

/// A handler that panics is answered with a 500 `InternalServerErrorException`, and the
/// server (the same connection, too) keeps serving.
#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
    let routes = axum::Router::new()
        .route(
            "/v20190125/meshes/panic",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("injected by the test");
                }
                "unreachable"
            }),
        )
        .route("/v20190125/meshes", axum::routing::get(|| async { "[]" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(meshd::listen::serve(
        listener,
        meshd::api::served(routes, None),
        meshd::listen::ConnectionLimits::default(),
        std::future::pending(),
    ));

    exchange(
        addr,
        b"GET /v20190125/meshes/panic HTTP/1.1\r\nhost: meshd\r\n",
        b"",
    )
    .await
    .assert_app_mesh_error(500, "InternalServerErrorException");
    still_serves(addr).await;

    // Two requests on one connection: the panic does not drop it.
    let client = reqwest::Client::new();
    let first = client
        .get(format!("http://{addr}/v20190125/meshes/panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 500);
    let second = client
        .get(format!("http://{addr}/v20190125/meshes"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
}
