//! SigV4 on the App Mesh API (`meshd serve --auth sigv4`). Requests that the real AWS
//! SDK for Rust signs with a key from the credentials file are served, whatever the
//! names and query strings hold. Unsigned, mis-signed, unknown-key, other-region and
//! stale requests are refused with the exception AWS's front end answered with, and
//! change nothing.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_sdk_appmesh::Client;
use aws_sdk_appmesh::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_async::time::StaticTimeSource;
use common::sdk::{
    all_node_names, describe_mesh, describe_node, mesh_names, node_names, node_spec, tag_resource,
};

const KEY: &str = "AKIDMESHDTEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const OPS_KEY: &str = "AKIDMESHDOPS";
const OPS_SECRET: &str = "ops secret with spaces";

/// A credentials file with two profiles, as `~/.aws/credentials` holds them.
fn credentials_file(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("credentials");
    std::fs::write(
        &path,
        format!(
            "[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n\n\
             # the operators' key\n[ops]\naws_access_key_id={OPS_KEY}\naws_secret_access_key={OPS_SECRET}\nregion=us-east-1\n"
        ),
    )
    .unwrap();
    path
}

/// The real SDK client, signing with `key`/`secret` for `region` at the time `clock`
/// gives (now, if none).
fn client(
    server: &meshd::server::RunningServer,
    key: &str,
    secret: &str,
    region: &str,
    clock: Option<SystemTime>,
) -> Client {
    let credentials = aws_credential_types::Credentials::new(key, secret, None, None, "test");
    let mut config = common::sdk::sdk_config(server.api_addr)
        .credentials_provider(credentials)
        .region(aws_sdk_appmesh::config::Region::new(region.to_string()));
    if let Some(at) = clock {
        config = config.time_source(StaticTimeSource::new(at));
    }
    Client::from_conf(config.build())
}

/// Checks that `result` was refused with `code` and HTTP `status`, with a message and a
/// request id; returns the message.
#[track_caller]
fn refused<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E, aws_sdk_appmesh::config::http::HttpResponse>>,
    status: u16,
    code: &str,
) -> String {
    let err = result.expect_err("the request should be refused");
    let raw = err
        .raw_response()
        .unwrap_or_else(|| panic!("a response from meshd, got {err:?}"));
    assert_eq!(raw.status().as_u16(), status, "{err:?}");
    assert_eq!(raw.headers().get("x-amzn-errortype"), Some(code), "{err:?}");
    assert!(
        raw.headers().get("x-amzn-requestid").is_some(),
        "refusals carry a request id: {err:?}"
    );
    let service = match err {
        SdkError::ServiceError(context) => context.into_err(),
        other => panic!("a service error {code}, got {other:?}"),
    };
    assert_eq!(service.code(), Some(code), "{service:?}");
    let message = service.message().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{service:?}");
    message
}

#[tokio::test]
async fn requests_the_sdk_signs_with_a_known_key_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_signed_server(credentials_file(&dir)).await;
    let admin = client(&server, KEY, SECRET, common::REGION, None);
    let ops = client(&server, OPS_KEY, OPS_SECRET, common::REGION, None);

    // A name with a space and a colon: the path is signed encoded twice.
    let mesh = "my mesh";
    admin.create_mesh().mesh_name(mesh).send().await.unwrap();
    for name in ["node:1", "node:2", "node:3"] {
        admin
            .create_virtual_node()
            .mesh_name(mesh)
            .virtual_node_name(name)
            .spec(node_spec(8080, "n.local", &[]))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        describe_node(&ops, mesh, "node:2").await.virtual_node_name,
        "node:2"
    );

    // Paging: the next token travels in the query, signed sorted and re-encoded.
    let seen = all_node_names(&ops, mesh, Some(1)).await;
    assert_eq!(seen, ["node:1", "node:2", "node:3"]);
    assert_eq!(node_names(&admin, mesh).await, seen);

    // Tags: the ARN (with `:` and `/`) is a query parameter, the tags a body.
    let arn = describe_mesh(&admin, mesh).await.metadata.unwrap().arn;
    tag_resource(&ops, &arn, vec![common::sdk::tag("team", "mesh & ops")]).await;
    let tags = admin
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].value, "mesh & ops");

    admin
        .delete_virtual_node()
        .mesh_name(mesh)
        .virtual_node_name("node:3")
        .send()
        .await
        .unwrap();
    assert_eq!(node_names(&ops, mesh).await, ["node:1", "node:2"]);
}

#[tokio::test]
async fn unsigned_mis_signed_foreign_and_stale_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_signed_server(credentials_file(&dir)).await;
    let admin = client(&server, KEY, SECRET, common::REGION, None);
    admin.create_mesh().mesh_name("kept").send().await.unwrap();

    let create =
        |client: Client| async move { client.create_mesh().mesh_name("intruder").send().await };
    let message = refused(
        create(client(&server, KEY, "not the secret", common::REGION, None)).await,
        403,
        "InvalidSignatureException",
    );
    assert!(message.contains("does not match"), "{message}");
    let message = refused(
        create(client(&server, "AKIDUNKNOWN", SECRET, common::REGION, None)).await,
        403,
        "UnrecognizedClientException",
    );
    assert_eq!(
        message,
        "The security token included in the request is invalid."
    );
    let message = refused(
        create(client(&server, KEY, SECRET, "eu-west-1", None)).await,
        403,
        "InvalidSignatureException",
    );
    assert!(message.contains("'eu-west-1'"), "{message}");
    let twenty_minutes = Duration::from_secs(20 * 60);
    for (clock, says) in [
        (SystemTime::now() - twenty_minutes, "Signature expired: "),
        (
            SystemTime::now() + twenty_minutes,
            "Signature not yet current: ",
        ),
    ] {
        let stale = client(&server, KEY, SECRET, common::REGION, Some(clock));
        let message = refused(create(stale).await, 403, "InvalidSignatureException");
        assert!(message.starts_with(says), "{message}");
    }
    // Within the window, a client whose clock is a little off is served.
    let late_clock = client(
        &server,
        KEY,
        SECRET,
        common::REGION,
        Some(SystemTime::now() - Duration::from_secs(5 * 60)),
    );
    assert_eq!(mesh_names(&late_clock).await, ["kept"]);

    // Plain HTTP without a signature: the API, meshd's own status endpoint, its metrics.
    let http = reqwest::Client::new();
    for request in [
        http.put(format!("http://{}/v20190125/meshes", server.api_addr))
            .header("content-type", "application/json")
            .body(r#"{"meshName":"intruder"}"#),
        http.get(format!("http://{}/meshd/v1/proxies", server.api_addr)),
        http.get(format!("http://{}/metrics", server.api_addr)),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403);
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "MissingAuthenticationTokenException"
        );
        assert!(response.headers().contains_key("x-amzn-requestid"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"message": "Missing Authentication Token"})
        );
    }
    // A header that is not SigV4 at all.
    let response = http
        .get(format!("http://{}/v20190125/meshes", server.api_addr))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "IncompleteSignatureException"
    );

    // None of the refused creates got through.
    assert_eq!(mesh_names(&admin).await, ["kept"]);
}

/// `meshd serve --auth sigv4` needs a usable credentials file, and says what is wrong.
#[tokio::test]
async fn meshd_refuses_to_start_without_usable_credentials() {
    use common::process::MeshdProcess;
    let dir = tempfile::tempdir().unwrap();
    let memory = ["--store", "memory"];

    let (_, refusal) = MeshdProcess::refusal(&[&memory[..], &["--auth", "sigv4"]].concat()).await;
    assert!(refusal.contains("--credentials-file"), "{refusal}");

    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let (_, refusal) = MeshdProcess::refusal(
        &[
            &memory[..],
            &["--auth", "sigv4", "--credentials-file", missing],
        ]
        .concat(),
    )
    .await;
    assert!(
        refusal.contains(&format!("cannot read the credentials file {missing}")),
        "{refusal}"
    );

    let half = dir.path().join("half");
    std::fs::write(&half, "[default]\naws_access_key_id = AKID\n").unwrap();
    let (_, refusal) = MeshdProcess::refusal(
        &[
            &memory[..],
            &[
                "--auth",
                "sigv4",
                "--credentials-file",
                half.to_str().unwrap(),
            ],
        ]
        .concat(),
    )
    .await;
    assert!(
        refusal
            .contains("profile [default] needs both aws_access_key_id and aws_secret_access_key"),
        "{refusal}"
    );

    // With a usable file it serves, and only signed requests.
    let process = MeshdProcess::start(
        &[
            &memory[..],
            &[
                "--xds-addr",
                "127.0.0.1:0",
                "--auth",
                "sigv4",
                "--credentials-file",
                credentials_file(&dir).to_str().unwrap(),
            ],
        ]
        .concat(),
    )
    .await;
    let response = reqwest::get(format!("http://{}/v20190125/meshes", process.api))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let signed = common::sdk::sdk_client(process.api);
    // The tests' default client signs with a key this file does not hold.
    let err = signed.list_meshes().send().await.unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"), "{err:?}");
}

/// Signs `method url` as botocore does (it signs the path with its dot segments
/// removed) and returns the headers it adds.
fn botocore_signed_headers(
    method: &str,
    url: &str,
    key: &str,
    secret: &str,
) -> Vec<(String, String)> {
    let script = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
method, url, key, secret, region = sys.argv[1:]
request = AWSRequest(method=method, url=url)
SigV4Auth(Credentials(key, secret), "appmesh", region).add_auth(request)
print(json.dumps(dict(request.headers.items())))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script, method, url, key, secret, common::REGION])
        .output()
        .expect("python3 runs (boto3 is installed for these tests)");
    assert!(
        output.status.success(),
        "botocore could not sign: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let headers: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&output.stdout).expect("the headers as JSON");
    headers.into_iter().collect()
}

/// Sends `method raw_path` with `headers` over a plain TCP connection, the path bytes
/// exactly as given (HTTP clients would remove its dot segments); returns the status
/// line and the whole answer.
async fn send_raw(
    addr: std::net::SocketAddr,
    method: &str,
    raw_path: &str,
    headers: &[(String, String)],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {raw_path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A signed DeleteMesh sent to a path whose dot segments make it another operation
/// (`…/meshes/bodies/virtualNodes/..`: botocore signs `/meshes/bodies`, while the raw
/// path names the virtual node `..`) is refused as a bad request: what is verified and
/// what is routed are the same bytes, so no unsigned operation runs.
#[tokio::test]
async fn a_path_whose_dot_segments_change_the_operation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_signed_server(credentials_file(&dir)).await;
    let admin = client(&server, KEY, SECRET, common::REGION, None);
    admin
        .create_mesh()
        .mesh_name("bodies")
        .send()
        .await
        .unwrap();
    let revision = server.store.snapshot().revision();

    for raw_path in [
        "/v20190125/meshes/bodies/virtualNodes/..",
        "/v20190125/meshes/bodies/virtualNodes/%2E%2E",
        "/v20190125/meshes/other/../bodies",
        "/v20190125/meshes/./bodies",
    ] {
        let url = format!("http://{}{raw_path}", server.api_addr);
        let headers = botocore_signed_headers("DELETE", &url, KEY, SECRET);
        let answer = send_raw(server.api_addr, "DELETE", raw_path, &headers).await;
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(
            status_line.starts_with("HTTP/1.1 400"),
            "{raw_path}: {answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("x-amzn-errortype: badrequestexception"),
            "{raw_path}: {answer}"
        );
        assert_eq!(
            server.store.snapshot().revision(),
            revision,
            "{raw_path} changed the store"
        );
    }
    assert_eq!(describe_mesh(&admin, "bodies").await.mesh_name, "bodies");
}
