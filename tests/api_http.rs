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

/// A well-behaved client's ListMeshes is answered with 200 within a second.
async fn served_within_a_second(addr: SocketAddr) {
    let answer = tokio::time::timeout(Duration::from_secs(1), async {
        exchange(
            addr,
            b"GET /v20190125/meshes HTTP/1.1\r\nhost: meshd\r\n",
            b"",
        )
        .await
    })
    .await
    .expect("a well-behaved client is served within a second");
    assert_eq!(answer.status, 200, "{answer:?}");
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

    let body = vec![b' '; 3 << 20];
    let cases: [(&str, String, &[u8], u16); 4] = [
        (
            "a body over the limit",
            format!(
                "PUT /v20190125/meshes HTTP/1.1\r\nhost: meshd\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ),
            &body,
            413,
        ),
        (
            "a path that is not UTF-8 once decoded",
            "GET /v20190125/meshes/%FF%FE HTTP/1.1\r\nhost: meshd\r\n".to_string(),
            b"",
            400,
        ),
        (
            "a URI too long",
            format!(
                "GET /v20190125/meshes?nextToken={} HTTP/1.1\r\nhost: meshd\r\n",
                "a".repeat(20_000)
            ),
            b"",
            414,
        ),
        (
            "headers too large",
            format!(
                "GET /v20190125/meshes HTTP/1.1\r\nhost: meshd\r\nx-large: {}\r\n",
                "a".repeat(100_000)
            ),
            b"",
            431,
        ),
    ];
    for (what, head, body, status) in cases {
        eprintln!("{what}");
        exchange(addr, head.as_bytes(), body)
            .await
            .assert_app_mesh_error(status, "BadRequestException");
    }

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

/// Starts meshd's API with `limits` on its connections.
async fn start_with_connection_limits(
    limits: meshd::listen::ConnectionLimits,
) -> meshd::server::RunningServer {
    let account = meshd::api::Account {
        region: common::REGION.into(),
        account_id: common::ACCOUNT_ID.into(),
    };
    let config = meshd::server::ServerConfig {
        api_connections: limits,
        ..meshd::server::ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    meshd::server::start(config).await.unwrap()
}

/// Whether the server has closed `stream` (a read sees the end, or a reset).
async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Many idle connections and slowloris connections (a request head sent a byte at a
/// time) at once: the limit holds, the idle ones are closed first to make room, and a
/// well-behaved client is served within a second all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_do_not_lock_out_a_well_behaved_client() {
    let limits = meshd::listen::ConnectionLimits {
        max_connections: 64,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    };
    let server = start_with_connection_limits(limits).await;
    let addr = server.api_addr;

    // 300 connections that never send anything, well over the limit.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // 30 slowloris connections, each sending a little of a request head now and then.
    let slowloris = tokio::spawn(async move {
        let mut streams = Vec::new();
        for _ in 0..30 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
                let _ = stream
                    .write_all(b"GET /v20190125/meshes HTTP/1.1\r\n")
                    .await;
                streams.push(stream);
            }
        }
        for round in 0.. {
            for stream in &mut streams {
                let _ = stream
                    .write_all(format!("x-{round}: y\r\n").as_bytes())
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    for _ in 0..10 {
        served_within_a_second(addr).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The oldest idle connections were closed to make room.
    let mut closed = 0;
    for stream in idle.iter_mut().take(100) {
        if closed_by_server(stream, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 90,
        "only {closed} of the 100 oldest idle connections were closed"
    );
    slowloris.abort();
}

/// A request head that does not arrive within the header timeout, and a connection
/// idle for longer than the idle timeout, are closed.
#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed_after_their_timeouts() {
    let limits = meshd::listen::ConnectionLimits {
        max_connections: 64,
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
    };
    let server = start_with_connection_limits(limits).await;
    let addr = server.api_addr;

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /v20190125/meshes HTTP/1.1\r\nhost: meshd\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut slow, Duration::from_secs(4)).await,
        "the slow head's connection was not closed"
    );

    // A kept-alive connection that served a request, then went quiet.
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /v20190125/meshes HTTP/1.1\r\nhost: meshd\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = kept.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    assert!(
        closed_by_server(&mut kept, Duration::from_secs(6)).await,
        "the idle connection was not closed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
}

/// Under an open-files limit of 1,024, 1,100 idle connections to the real `meshd serve`
/// do not make API requests fail: its connection limit stays below the open-files limit,
/// and the idle connections are closed to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_under_an_open_files_limit_does_not_stop_the_api() {
    // This test's own side of 1,100 connections needs more than 1,024 descriptors.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .expect("the open-files limit can be raised to its maximum");
    let meshd = common::process::MeshdProcess::start_under(
        &["prlimit", "--nofile=1024:1024", "--"],
        &["--store", "memory", "--xds-addr", "127.0.0.1:0"],
    )
    .await;
    let addr = meshd.api;
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..5 {
        served_within_a_second(addr).await;
    }
    drop(idle);
}
