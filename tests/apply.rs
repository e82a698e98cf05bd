//! `meshd apply` and `meshd export` against an in-process meshd, with the App Mesh
//! definitions of AWS's own walkthroughs (`../shared/corpus/aws-app-mesh-examples`):
//! each walkthrough applied into a fresh meshd, applied again (nothing changes, no
//! version moves), exported in all three formats and applied into another fresh meshd
//! (identical describes); a changed weight, `--prune`, broken files and refused calls;
//! and the result compared with the same resources sent by boto3.
//!
//! What meshd holds is read back with plain HTTP GETs of the App Mesh API (list and
//! describe), not through the code under test.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use meshd::apply::client::Client;
use meshd::apply::export::Format;
use meshd::apply::{ApplyError, ApplyOptions, execute::Outcome};
use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/aws-app-mesh-examples/walkthroughs")
}

/// One walkthrough: its stages (files applied together), the values its README has the
/// user pass (`--parameter-overrides`, envsubst variables), and a mesh created beforehand
/// when its files hold none.
struct Walkthrough {
    stages: &'static [&'static [&'static str]],
    parameters: &'static [(&'static str, &'static str)],
    variables: &'static [(&'static str, &'static str)],
    existing_mesh: Option<&'static str>,
    mesh_flag: Option<&'static str>,
}

const K8S_VARIABLES: &[(&str, &str)] = &[
    ("APP_NAMESPACE", "howto"),
    ("MESH_NAME", "howto-mesh"),
    ("ENVOY_IMAGE", "envoy:v1"),
    ("AWS_ACCOUNT_ID", "111122223333"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    (
        "CERTIFICATE_ARN",
        "arn:aws:acm:us-east-1:111122223333:certificate/abc",
    ),
    (
        "ROOT_CA_ARN",
        "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/root",
    ),
    ("CLIENT_APP_IMAGE", "client:v1"),
    ("CLOUDMAP_NAMESPACE", "howto.local"),
    ("COLORAPP_BLUE_SVID", "spiffe://howto.aws/blue"),
    ("COLORAPP_GREEN_SVID", "spiffe://howto.aws/green"),
    ("COLORAPP_RED_SVID", "spiffe://howto.aws/red"),
    ("COLOR_APP_IMAGE", "color:v1"),
    ("FRONTEND_APP_SVID", "spiffe://howto.aws/front"),
    ("FRONT_APP_CA_CERT", "ca-cert"),
    ("FRONT_APP_IMAGE", "front:v1"),
    ("FRONT_APP_K8S_SECRET", "front-secret"),
    ("SVID_CA_TRUST_DOMAIN", "howto.aws"),
];

const fn k8s(file: &'static [&'static [&'static str]]) -> Walkthrough {
    Walkthrough {
        stages: file,
        parameters: &[],
        variables: K8S_VARIABLES,
        existing_mesh: None,
        mesh_flag: None,
    }
}

const fn cfn(
    stages: &'static [&'static [&'static str]],
    parameters: &'static [(&'static str, &'static str)],
) -> Walkthrough {
    Walkthrough {
        stages,
        parameters,
        variables: &[],
        existing_mesh: None,
        mesh_flag: None,
    }
}

const ALB_PARAMETERS: &[(&str, &str)] = &[
    ("ProjectName", "howto-alb"),
    ("EnvoyImage", "envoy:v1"),
    ("FrontAppImage", "front:v1"),
    ("ColorAppImage", "color:v1"),
    ("AppMeshXdsEndpoint", "unix:///tmp/xds"),
    ("ContainerPort", "8080"),
    ("BackendV1LoadBalancer.DNSName", "backend-v1.elb.example"),
    ("BackendV2ServiceRegistry.Name", "backend-v2"),
    ("BackendRecordSet", "backend.howto-alb.local"),
    ("PublicLoadBalancer.DNSName", "front.elb.example"),
];

fn walkthrough(name: &str) -> Walkthrough {
    match name {
        // The walkthrough's `kubectl apply`s, each stage as the cluster then holds it: a
        // later router file replaces the router of appmesh-yelb-appserver.yaml
        // (`!VirtualRouter` leaves that document out).
        "eks-getting-started" => Walkthrough {
            stages: &[
                &[
                    "appmesh-yelb-db.yaml",
                    "appmesh-yelb-redis.yaml",
                    "appmesh-yelb-ui.yaml",
                    "appmesh-yelb-appserver.yaml",
                ],
                &[
                    "appmesh-yelb-db.yaml",
                    "appmesh-yelb-redis.yaml",
                    "appmesh-yelb-ui.yaml",
                    "appmesh-yelb-appserver.yaml!VirtualRouter",
                    "appmesh-yelb-appserver-v2.yaml",
                    "appmesh-virtual-router-appserver-v1-v2.yaml",
                ],
                &[
                    "appmesh-yelb-db.yaml",
                    "appmesh-yelb-redis.yaml",
                    "appmesh-yelb-ui.yaml",
                    "appmesh-yelb-appserver.yaml!VirtualRouter",
                    "appmesh-yelb-appserver-v2.yaml",
                    "appmesh-virtual-router-appserver-v2.yaml",
                ],
            ],
            parameters: &[],
            variables: &[],
            existing_mesh: Some("yelb"),
            mesh_flag: Some("yelb"),
        },
        "fargate" => Walkthrough {
            existing_mesh: Some("fargate-mesh"),
            ..cfn(
                &[&["appmesh-colorapp.yaml"]],
                &[
                    ("EnvironmentName", "fargate"),
                    ("ServicesDomain", "fargate.local"),
                    ("AppMeshMeshName", "fargate-mesh"),
                ],
            )
        },
        "howto-alb" => cfn(&[&["infra.yaml", "app.yaml"]], ALB_PARAMETERS),
        "howto-ecs-basics" => cfn(
            &[&["deploy/2-meshify.yaml"], &["deploy/3-routing.yaml"]],
            &[
                ("ProjectName", "howto-ecs"),
                ("ColorAppImage", "color:v1"),
                ("FrontAppImage", "front:v1"),
                ("EnvoyImage", "envoy:v1"),
                ("CloudWatchAgentImage", "cwagent:v1"),
                ("ContainerPort", "8080"),
                ("ColorServiceRegistry.Name", "color"),
                ("PublicLoadBalancer.DNSName", "front.elb.example"),
            ],
        ),
        "howto-grpc" => cfn(&[&["mesh.yaml"]], &[("ProjectName", "howto-grpc")]),
        "howto-http-headers" => cfn(
            &[&["app.yaml"]],
            &[
                ("ProjectName", "howto-headers"),
                ("EnvoyImage", "envoy:v1"),
                ("FrontAppImage", "front:v1"),
                ("ColorAppImage", "color:v1"),
                ("AppMeshXdsEndpoint", "unix:///tmp/xds"),
            ],
        ),
        "howto-http2" => cfn(&[&["mesh.yaml"]], &[("ProjectName", "howto-http2")]),
        "howto-mutual-tls-file-provided-by-acm" => cfn(
            &[&["infrastructure/mesh.yaml"]],
            &[
                (
                    "mtls-ec2-appmesh-example:AcmPcaColorTellerRootCAArn",
                    "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/teller",
                ),
                (
                    "mtls-ec2-appmesh-example:AcmPcaColorTellerEndpointCertArn",
                    "arn:aws:acm:us-east-1:111122223333:certificate/teller",
                ),
            ],
        ),
        "howto-servicediscovery-cloudmap" => cfn(&[&["mesh.yaml"]], &[]),
        "tls-with-acm" => cfn(
            &[&["mesh/mesh.yaml"]],
            &[
                ("MeshName", "tls-mesh"),
                ("ServicesDomain", "tls.local"),
                (
                    "CertificateAuthorityArn",
                    "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca",
                ),
                (
                    "CertificateArn",
                    "arn:aws:acm:us-east-1:111122223333:certificate/cert",
                ),
            ],
        ),
        "howto-k8s-multiple-listeners" => k8s(&[&["manifest.yaml"]]),
        k8s_walkthrough => {
            assert!(
                k8s_walkthrough.starts_with("howto-k8s-"),
                "{k8s_walkthrough}"
            );
            k8s(&[&["v1beta2/manifest.yaml.template"]])
        }
    }
}

/// The files of one stage, templates filled in as envsubst fills them, in `dir`;
/// `file!Kind` leaves out the file's documents of that kind.
fn stage_files(name: &str, files: &[&str], variables: &[(&str, &str)], dir: &Path) -> Vec<String> {
    let base = match name {
        "eks-getting-started" => corpus().join(name).join("infrastructure/appmesh_templates"),
        _ => corpus().join(name),
    };
    files
        .iter()
        .map(|file| {
            let (file, left_out) = file.split_once('!').unwrap_or((file, ""));
            let mut text =
                std::fs::read_to_string(base.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !left_out.is_empty() {
                let kind = format!("kind: {left_out}");
                let documents: Vec<&str> = text
                    .split("\n---")
                    .filter(|d| !d.lines().any(|l| l.trim() == kind))
                    .collect();
                text = documents.join("\n---");
            }
            if file.ends_with(".template") {
                for (variable, value) in variables {
                    text = text.replace(&format!("${{{variable}}}"), value);
                }
            }
            let path = dir.join(file.replace('/', "_").trim_end_matches(".template"));
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        })
        .collect()
}

fn client(server: &meshd::server::RunningServer) -> Client {
    Client::new(&format!("http://{}", server.api_addr), None, common::REGION)
}

fn options(files: Vec<String>, parameters: &[(&str, &str)]) -> ApplyOptions {
    ApplyOptions {
        files,
        parameters: parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ApplyOptions::default()
    }
}

async fn apply(
    server: &meshd::server::RunningServer,
    options: &ApplyOptions,
) -> Result<(Outcome, String), ApplyError> {
    let mut out = Vec::new();
    let outcome = meshd::apply::apply(&client(server), options, &mut out).await?;
    Ok((outcome, String::from_utf8(out).unwrap()))
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let response = reqwest::get(format!("http://{addr}/v20190125/{path}"))
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Every resource meshd holds, by ARN path, as described: (names and spec, version).
async fn described(addr: SocketAddr) -> BTreeMap<String, (Value, i64)> {
    let mut out = BTreeMap::new();
    let meshes = get(addr, "meshes").await;
    for mesh in meshes["meshes"].as_array().unwrap() {
        let mesh = mesh["meshName"].as_str().unwrap().to_string();
        let mut paths = vec![format!("meshes/{mesh}")];
        for (collection, name_field, children) in [
            ("virtualNodes", "virtualNodeName", None),
            (
                "virtualRouters",
                "virtualRouterName",
                Some(("virtualRouter", "routes", "routeName")),
            ),
            (
                "virtualGateways",
                "virtualGatewayName",
                Some(("virtualGateway", "gatewayRoutes", "gatewayRouteName")),
            ),
            ("virtualServices", "virtualServiceName", None),
        ] {
            let list = get(addr, &format!("meshes/{mesh}/{collection}?limit=100")).await;
            for item in list[collection].as_array().unwrap() {
                let name = item[name_field].as_str().unwrap();
                paths.push(format!("meshes/{mesh}/{collection}/{name}"));
                if let Some((segment, child_collection, child_field)) = children {
                    let children = get(
                        addr,
                        &format!("meshes/{mesh}/{segment}/{name}/{child_collection}?limit=100"),
                    )
                    .await;
                    for child in children[child_collection].as_array().unwrap() {
                        let child = child[child_field].as_str().unwrap();
                        paths.push(format!(
                            "meshes/{mesh}/{segment}/{name}/{child_collection}/{child}"
                        ));
                    }
                }
            }
        }
        for path in paths {
            let mut data = get(addr, &path).await;
            let version = data["metadata"]["version"].as_i64().unwrap();
            let arn = data["metadata"]["arn"].as_str().unwrap().to_string();
            data.as_object_mut().unwrap().remove("metadata");
            let key = arn
                .split_once(":mesh/")
                .map(|(_, rest)| format!("mesh/{rest}"))
                .unwrap();
            out.insert(key, (data, version));
        }
    }
    out
}

/// Names and specs only (no versions).
fn specs(described: &BTreeMap<String, (Value, i64)>) -> BTreeMap<String, Value> {
    described
        .iter()
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

async fn create_mesh(server: &meshd::server::RunningServer, mesh: &str) {
    common::sdk_client(server.api_addr)
        .create_mesh()
        .mesh_name(mesh)
        .send()
        .await
        .unwrap();
}

/// Applies every stage of `name` into a fresh meshd; returns the server, the last
/// stage's files (in `dir`) and options.
async fn apply_walkthrough(name: &str, dir: &Path) -> (meshd::server::RunningServer, ApplyOptions) {
    let walkthrough = walkthrough(name);
    let server = common::start_server().await;
    if let Some(mesh) = walkthrough.existing_mesh {
        create_mesh(&server, mesh).await;
    }
    let mut last = None;
    for (index, stage) in walkthrough.stages.iter().enumerate() {
        let stage_dir = dir.join(format!("stage{index}"));
        std::fs::create_dir_all(&stage_dir).unwrap();
        let files = stage_files(name, stage, walkthrough.variables, &stage_dir);
        let mut options = options(files, walkthrough.parameters);
        options.kubernetes.mesh = walkthrough.mesh_flag.map(String::from);
        let before = described(server.api_addr).await.len();
        let (outcome, output) = apply(&server, &options)
            .await
            .unwrap_or_else(|e| panic!("{name} stage {index}: {e}"));
        let after = described(server.api_addr).await.len();
        assert_eq!(
            after - before,
            outcome.created,
            "{name} stage {index}: every resource created:\n{output}"
        );
        assert!(
            outcome.created + outcome.updated > 0,
            "{name} stage {index} changed nothing:\n{output}"
        );
        last = Some(options);
    }
    let last = last.expect("a walkthrough has a stage");
    let expected =
        app_mesh_definitions(&last.files) + usize::from(walkthrough.existing_mesh.is_some());
    assert_eq!(
        described(server.api_addr).await.len(),
        expected,
        "{name}: meshd holds every App Mesh resource of the files, and nothing else"
    );
    (server, last)
}

/// How many App Mesh resources `files` define, counted from their text alone: lines
/// `Type: AWS::AppMesh::…` of templates; documents of the controller's kinds, plus the
/// inline routes (`    - name:` under `routes:`) of virtual routers.
fn app_mesh_definitions(files: &[String]) -> usize {
    let kinds = [
        "Mesh",
        "VirtualNode",
        "VirtualService",
        "VirtualRouter",
        "VirtualGateway",
        "GatewayRoute",
    ];
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            let templates = text
                .lines()
                .filter(|l| {
                    l.trim_start()
                        .trim_start_matches("Type:")
                        .trim()
                        .trim_matches(['\'', '"'])
                        .starts_with("AWS::AppMesh::")
                })
                .count();
            let objects: usize = text
                .split("\n---")
                .filter(|doc| doc.contains("apiVersion: appmesh.k8s.aws/"))
                .map(|doc| {
                    let kind = doc
                        .lines()
                        .find_map(|l| l.strip_prefix("kind: "))
                        .unwrap_or_default()
                        .trim();
                    if !kinds.contains(&kind) {
                        return 0;
                    }
                    let routes = if kind == "VirtualRouter" {
                        let after = doc.split("\n  routes:").nth(1).unwrap_or_default();
                        after
                            .lines()
                            .filter(|l| l.starts_with("    - name:"))
                            .count()
                    } else {
                        0
                    };
                    1 + routes
                })
                .sum();
            templates + objects
        })
        .sum()
}

/// A walkthrough applied, applied again (nothing changes), exported in each format and
/// applied into a fresh meshd (identical describes).
async fn walkthrough_round_trip(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (server, options) = apply_walkthrough(name, dir.path()).await;
    let first = described(server.api_addr).await;
    assert!(first.len() > 1, "{name}: {first:?}");

    let (again, output) = apply(&server, &options).await.unwrap();
    assert_eq!(
        (again.created, again.updated, again.deleted),
        (0, 0, 0),
        "{name}: a second apply changes nothing:\n{output}"
    );
    assert_eq!(again.unchanged, count_planned(&output), "{output}");
    assert_eq!(
        described(server.api_addr).await,
        first,
        "{name}: no version moved"
    );

    let meshes: Vec<String> = first
        .keys()
        .filter(|k| k.matches('/').count() == 1)
        .map(|k| k[5..].to_string())
        .collect();
    for format in [Format::CloudFormation, Format::Kubernetes, Format::Json] {
        let fresh = common::start_server().await;
        for mesh in &meshes {
            let text = meshd::apply::export::export(&client(&server), mesh, format, "exported")
                .await
                .unwrap();
            let file = dir.path().join(format!("{mesh}.{format:?}.export"));
            std::fs::write(&file, &text).unwrap();
            let (outcome, output) = apply(&fresh, &options_for(&file))
                .await
                .unwrap_or_else(|e| {
                    panic!("{name}: {format:?} export of {mesh} applies: {e}\n{text}")
                });
            assert!(outcome.created > 0, "{output}");
        }
        assert_eq!(
            specs(&described(fresh.api_addr).await),
            specs(&first),
            "{name}: {format:?} round trip"
        );
    }
}

fn options_for(file: &Path) -> ApplyOptions {
    options(vec![file.display().to_string()], &[])
}

/// The number of resource lines in a printed plan.
fn count_planned(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .count()
}

/// Per walkthrough, a test of its round trip (`round_trip::…`) and one of its proxies'
/// ACKs (`envoy_acks::…`).
macro_rules! walkthroughs {
    ($($test:ident => $name:literal,)*) => {
        mod round_trip {
            $(
                #[tokio::test]
                async fn $test() {
                    super::walkthrough_round_trip($name).await;
                }
            )*
        }
        mod envoy_acks {
            $(
                #[tokio::test]
                async fn $test() {
                    super::every_proxy_acked($name).await;
                }
            )*
        }
    };
}

walkthroughs! {
    eks_getting_started => "eks-getting-started",
    fargate => "fargate",
    howto_alb => "howto-alb",
    howto_ecs_basics => "howto-ecs-basics",
    howto_grpc => "howto-grpc",
    howto_http_headers => "howto-http-headers",
    howto_http2 => "howto-http2",
    howto_mutual_tls_file_provided_by_acm => "howto-mutual-tls-file-provided-by-acm",
    howto_servicediscovery_cloudmap => "howto-servicediscovery-cloudmap",
    tls_with_acm => "tls-with-acm",
    howto_k8s_alb => "howto-k8s-alb",
    howto_k8s_cloudmap => "howto-k8s-cloudmap",
    howto_k8s_egress => "howto-k8s-egress",
    howto_k8s_grpc => "howto-k8s-grpc",
    howto_k8s_http_headers => "howto-k8s-http-headers",
    howto_k8s_http2 => "howto-k8s-http2",
    howto_k8s_ingress_gateway => "howto-k8s-ingress-gateway",
    howto_k8s_mtls_file_based => "howto-k8s-mtls-file-based",
    howto_k8s_mtls_sds_based => "howto-k8s-mtls-sds-based",
    howto_k8s_multiple_listeners => "howto-k8s-multiple-listeners",
    howto_k8s_retry_policy => "howto-k8s-retry-policy",
    howto_k8s_tls_acm => "howto-k8s-tls-acm",
}

/// `text` with the CloudFormation resources `ids` (top-level entries of `Resources`,
/// indented two spaces) left out.
fn without_resources(text: &str, ids: &[&str]) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let top_level_entry =
            line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':');
        if top_level_entry {
            skipping = ids.iter().any(|id| line.trim() == format!("{id}:"));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn corpus_text(path: &str) -> String {
    std::fs::read_to_string(corpus().join(path)).unwrap()
}

const GRPC: &[(&str, &str)] = &[("ProjectName", "howto-grpc")];

#[tokio::test]
async fn a_changed_weight_is_exactly_one_update() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server().await;
    let text = corpus_text("howto-grpc/mesh.yaml");
    let file = write(dir.path(), "mesh.yaml", &text);
    apply(&server, &options(vec![file.clone()], GRPC))
        .await
        .unwrap();
    let before = described(server.api_addr).await;

    assert_eq!(text.matches("Weight: 100").count(), 1);
    write(
        dir.path(),
        "mesh.yaml",
        &text.replace("Weight: 100", "Weight: 50"),
    );
    let mut dry = options(vec![file.clone()], GRPC);
    dry.dry_run = true;
    let (planned, plan) = apply(&server, &dry).await.unwrap();
    assert_eq!(
        (planned.created, planned.updated, planned.deleted),
        (0, 1, 0),
        "{plan}"
    );
    assert!(
        plan.contains("~ update    mesh/howto-grpc-mesh/virtualRouter/virtual-router/route/route"),
        "{plan}"
    );
    assert!(
        plan.contains("-           \"weight\": 100") && plan.contains("+           \"weight\": 50"),
        "{plan}"
    );
    assert_eq!(
        described(server.api_addr).await,
        before,
        "a dry run changes nothing"
    );

    let (outcome, output) = apply(&server, &options(vec![file], GRPC)).await.unwrap();
    assert_eq!(
        (outcome.created, outcome.updated, outcome.deleted),
        (0, 1, 0),
        "{output}"
    );
    assert!(
        output.contains(
            "[1/1] updated mesh/howto-grpc-mesh/virtualRouter/virtual-router/route/route"
        ),
        "{output}"
    );
    let after = described(server.api_addr).await;
    let moved: Vec<&String> = after
        .keys()
        .filter(|k| after[*k].1 != before[*k].1)
        .collect();
    assert_eq!(
        moved,
        ["mesh/howto-grpc-mesh/virtualRouter/virtual-router/route/route"]
    );
    let route = &after["mesh/howto-grpc-mesh/virtualRouter/virtual-router/route/route"];
    assert_eq!(
        route.0["spec"]["grpcRoute"]["action"]["weightedTargets"][0]["weight"],
        50
    );
    assert_eq!(route.1, 2);
}

#[tokio::test]
async fn prune_deletes_only_what_is_gone_in_a_safe_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server().await;
    // Its names come from AWS::StackName: the file's name, `mesh`.
    let text = corpus_text("howto-servicediscovery-cloudmap/mesh.yaml");
    let file = write(dir.path(), "mesh.yaml", &text);
    apply(&server, &options(vec![file.clone()], &[]))
        .await
        .unwrap();
    let before = described(server.api_addr).await;
    assert_eq!(before.len(), 8);

    let gone = [
        "ColorGatewayRoute",
        "ColorTellerService",
        "ColorTellerRoute",
        "ColorTellerRouter",
    ];
    write(dir.path(), "mesh.yaml", &without_resources(&text, &gone));
    let (kept, output) = apply(&server, &options(vec![file.clone()], &[]))
        .await
        .unwrap();
    assert_eq!(
        (kept.created, kept.updated, kept.deleted, kept.unchanged),
        (0, 0, 0, 4),
        "without --prune nothing is deleted:\n{output}"
    );
    assert_eq!(described(server.api_addr).await, before);

    let mut prune = options(vec![file], &[]);
    prune.prune = true;
    let (outcome, output) = apply(&server, &prune).await.unwrap();
    assert_eq!(
        (
            outcome.created,
            outcome.updated,
            outcome.deleted,
            outcome.unchanged
        ),
        (0, 0, 4, 4),
        "{output}"
    );
    let deleted: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("] deleted "))
        .map(|l| l.split("deleted ").nth(1).unwrap())
        .collect();
    assert_eq!(
        deleted,
        [
            "mesh/mesh/virtualGateway/colorgateway/gatewayRoute/gatewayroute",
            "mesh/mesh/virtualService/colorteller.mesh.local",
            "mesh/mesh/virtualRouter/colorteller-virtual-router/route/colorteller-route",
            "mesh/mesh/virtualRouter/colorteller-virtual-router",
        ],
        "dependents before what they name:\n{output}"
    );
    let after = described(server.api_addr).await;
    let mut expected = before.clone();
    for key in &deleted {
        expected.remove(*key);
    }
    assert_eq!(after, expected, "the rest is untouched (same versions)");
}

#[tokio::test]
async fn a_broken_file_is_an_error_with_file_and_path_and_nothing_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server().await;
    let text = corpus_text("howto-grpc/mesh.yaml");
    // The second listener port of the file (ColorServerNode's) is broken.
    let broken = text.replacen(
        "Port: 8080\n            Protocol: grpc",
        "Port: eighty\n            Protocol: grpc",
        1,
    );
    assert_ne!(broken, text);
    let good = write(
        dir.path(),
        "a-good.yaml",
        &corpus_text("howto-http2/mesh.yaml"),
    );
    let bad = write(dir.path(), "b-broken.yaml", &broken);
    let parameters = [("ProjectName", "howto-grpc")];
    let err = apply(
        &server,
        &options(vec![good.clone(), bad.clone()], &parameters),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!(
            "{bad} Resources.ColorServerNode: spec.listeners[0].portMapping.port: "
        )),
        "{err}"
    );
    assert!(
        described(server.api_addr).await.is_empty(),
        "nothing applied, not even the good file"
    );

    let no_parameter = apply(&server, &options(vec![bad.clone()], &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        no_parameter.contains("Properties.MeshName")
            && no_parameter.contains("--parameter ProjectName=VALUE"),
        "{no_parameter}"
    );

    let template = write(
        dir.path(),
        "manifest.yaml",
        &corpus_text("howto-k8s-grpc/v1beta2/manifest.yaml.template"),
    );
    let err = apply(&server, &options(vec![template.clone()], &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&template) && err.contains("${") && err.contains("envsubst"),
        "{err}"
    );
    assert!(described(server.api_addr).await.is_empty());

    let not_yaml = write(dir.path(), "x.yaml", "Resources: [\n");
    let err = apply(&server, &options(vec![not_yaml.clone()], &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("{not_yaml}: ")), "{err}");
}

#[tokio::test]
async fn a_resource_defined_twice_differently_names_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server().await;
    let text = corpus_text("howto-grpc/mesh.yaml");
    let one = write(dir.path(), "one.yaml", &text);
    let same = write(dir.path(), "same.yaml", &text);
    let (outcome, _) = apply(&server, &options(vec![one.clone(), same], GRPC))
        .await
        .unwrap();
    assert_eq!(outcome.created, 6, "identical definitions are one resource");
    let other = write(
        dir.path(),
        "other.yaml",
        &text.replace("MethodName: GetColor", "MethodName: SetColor"),
    );
    let err = apply(&server, &options(vec![one.clone(), other.clone()], GRPC))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "mesh/howto-grpc-mesh/virtualRouter/virtual-router/route/route is defined twice, differently: in {one} Resources.Route and in {other} Resources.Route"
        )
    );
}

fn cli_input(dir: &Path, name: &str, value: Value) -> String {
    write(dir, name, &value.to_string())
}

#[tokio::test]
async fn at_the_first_refused_call_it_stops_and_a_second_run_completes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server().await;
    let mesh = cli_input(
        dir.path(),
        "1-mesh.json",
        serde_json::json!({"meshName": "shop"}),
    );
    let node = cli_input(
        dir.path(),
        "2-node.json",
        serde_json::json!({"meshName": "shop", "virtualNodeName": "web",
        "spec": {"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}], "serviceDiscovery": {"dns": {"hostname": "web.shop"}}}}),
    );
    let router = cli_input(
        dir.path(),
        "3-router.json",
        serde_json::json!({"meshName": "shop", "virtualRouterName": "r",
        "spec": {"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}]}}),
    );
    let route_spec = |node: &str| {
        serde_json::json!({"meshName": "shop", "virtualRouterName": "r", "routeName": "all",
        "spec": {"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": node, "weight": 1}]}}}})
    };
    let route = cli_input(dir.path(), "4-route.json", route_spec("wbe"));
    let service = cli_input(
        dir.path(),
        "5-service.json",
        serde_json::json!({"meshName": "shop", "virtualServiceName": "web.shop",
        "spec": {"provider": {"virtualRouter": {"virtualRouterName": "r"}}}}),
    );
    let files = vec![dir.path().display().to_string()];
    let err = apply(&server, &options(files.clone(), &[]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "create mesh/shop/virtualRouter/r/route/all ({route} input 1 (Route), spec.httpRoute.action.weightedTargets[0].virtualNode) was refused: "
        )),
        "{text}"
    );
    assert!(
        text.contains("wbe"),
        "the API's reason names the missing node: {text}"
    );
    assert!(
        text.contains("applied before it: create mesh/shop, create mesh/shop/virtualNode/web, create mesh/shop/virtualRouter/r\n"),
        "{text}"
    );
    assert!(text.contains("not applied: create mesh/shop/virtualRouter/r/route/all, create mesh/shop/virtualService/web.shop"), "{text}");
    let held: Vec<String> = described(server.api_addr).await.into_keys().collect();
    assert_eq!(
        held,
        [
            "mesh/shop",
            "mesh/shop/virtualNode/web",
            "mesh/shop/virtualRouter/r"
        ]
    );
    let _ = (mesh, node, router, service);

    cli_input(dir.path(), "4-route.json", route_spec("web"));
    let (outcome, output) = apply(&server, &options(files, &[])).await.unwrap();
    assert_eq!(
        (outcome.created, outcome.updated, outcome.unchanged),
        (2, 0, 3),
        "{output}"
    );
    assert_eq!(described(server.api_addr).await.len(), 5);
}

#[tokio::test]
async fn an_apply_may_name_a_mesh_that_meshd_holds_and_kubernetes_needs_a_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server().await;
    let file = write(
        dir.path(),
        "db.yaml",
        &corpus_text("eks-getting-started/infrastructure/appmesh_templates/appmesh-yelb-db.yaml"),
    );
    let err = apply(&server, &options(vec![file.clone()], &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "spec.meshRef: is missing and the files hold no Mesh: name the mesh with --mesh"
        ),
        "{err}"
    );
    let mut with_mesh = options(vec![file], &[]);
    with_mesh.kubernetes.mesh = Some("yelb".into());
    let err = apply(&server, &with_mesh).await.unwrap_err().to_string();
    assert!(
        err.ends_with("/db.yaml VirtualNode yelb/yelb-db (document 1): meshName: mesh \"yelb\" is neither in the files nor in meshd"),
        "{err}"
    );
    assert!(described(server.api_addr).await.is_empty());
    create_mesh(&server, "yelb").await;
    let (outcome, output) = apply(&server, &with_mesh).await.unwrap();
    assert_eq!(outcome.created, 2, "{output}");
    assert!(
        output.contains("spec.podSelector (the controller's own matching of pods and namespaces)"),
        "{output}"
    );
}

/// A meshd that wants requests signed with `key`/`secret`, and howto-grpc's template in `dir`.
async fn signed_server(
    dir: &Path,
    key: &str,
    secret: &str,
) -> (meshd::server::RunningServer, String) {
    let credentials = dir.join("credentials");
    let profile =
        format!("[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n");
    std::fs::write(&credentials, profile).unwrap();
    let server = common::start_signed_server(credentials).await;
    (
        server,
        write(dir, "mesh.yaml", &corpus_text("howto-grpc/mesh.yaml")),
    )
}

#[tokio::test]
async fn apply_signs_its_requests_for_a_meshd_with_sigv4() {
    let dir = tempfile::tempdir().unwrap();
    let (server, file) = signed_server(dir.path(), "AKIDAPPLY", "applysecret").await;
    let endpoint = format!("http://{}", server.api_addr);
    let unsigned = Client::new(&endpoint, None, common::REGION);
    let err = meshd::apply::apply(
        &unsigned,
        &options(vec![file.clone()], GRPC),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let keys =
        aws_credential_types::Credentials::new("AKIDAPPLY", "applysecret", None, None, "test");
    let signed = Client::new(&endpoint, Some(keys), common::REGION);
    let outcome = meshd::apply::apply(&signed, &options(vec![file], GRPC), &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(outcome.created, 6);
}

/// Sends a walkthrough's resources with boto3, as transcribed in `apply/boto3_walkthroughs.py`.
async fn send_with_boto3(server: &meshd::server::RunningServer, walkthrough: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apply/boto3_walkthroughs.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", server.api_addr))
        .arg(walkthrough)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .await
        .expect("python3 runs (boto3 from PyPI)");
    assert!(
        output.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn applied_walkthroughs_equal_the_same_resources_sent_with_boto3() {
    for walkthrough in [
        "howto-grpc",
        "eks-getting-started",
        "howto-mutual-tls-file-provided-by-acm",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let case = self::walkthrough(walkthrough);
        let applied = common::start_server().await;
        if let Some(mesh) = case.existing_mesh {
            create_mesh(&applied, mesh).await;
        }
        let files = stage_files(walkthrough, case.stages[0], case.variables, dir.path());
        let mut options = options(files, case.parameters);
        options.kubernetes.mesh = case.mesh_flag.map(String::from);
        apply(&applied, &options).await.unwrap();
        let sent = common::start_server().await;
        send_with_boto3(&sent, walkthrough).await;
        let (applied, sent) = (
            specs(&described(applied.api_addr).await),
            specs(&described(sent.api_addr).await),
        );
        assert!(sent.len() >= 5, "{sent:?}");
        assert_eq!(
            applied.keys().collect::<Vec<_>>(),
            sent.keys().collect::<Vec<_>>(),
            "{walkthrough}"
        );
        for (key, value) in &sent {
            assert_eq!(&applied[key], value, "{walkthrough}: {key}");
        }
    }
}

/// Whether meshd's status shows the proxy's stream with every type it was sent ACKed
/// and none rejected.
fn all_acked(status: &Value) -> Result<(), String> {
    let types = status["types"].as_object().ok_or("no types")?;
    let mut sent = 0;
    for (name, state) in types {
        if let Some(nack) = state.get("nack") {
            return Err(format!("{name} NACKed: {nack}"));
        }
        let version = state["sent_version"].as_str().unwrap_or_default();
        if !version.is_empty() {
            sent += 1;
            if state["acked_version"] != state["sent_version"] {
                return Err(format!(
                    "{name}: sent {version}, acked {}",
                    state["acked_version"]
                ));
            }
        }
    }
    if sent == 0 {
        return Err("nothing sent yet".into());
    }
    Ok(())
}

/// The walkthrough's proxies get certificate files mounted at `prefix` (`/certs/`,
/// `/keys/`); here a CA and a certificate signed by it are written into `dir` under the
/// names the files use, and the files' `prefix` points there.
fn mount_certificates(files: &[String], prefix: &str, dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["howto.svc.cluster.local".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for path in text.split(prefix).skip(1) {
            let name: String = path
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect();
            let pem = if name.contains("key") {
                key.serialize_pem()
            } else if name.contains("cert_chain") {
                leaf.pem()
            } else {
                ca.pem()
            };
            if !name.is_empty() {
                std::fs::write(dir.join(&name), pem).unwrap();
            }
        }
        std::fs::write(file, text.replace(prefix, &format!("{}/", dir.display()))).unwrap();
    }
}

/// Applies `walkthrough` into a meshd serving xDS, starts a real Envoy for every virtual
/// node and virtual gateway, and waits until each has ACKed its configuration.
async fn every_proxy_acked(walkthrough: &str) {
    use common::envoy::{Envoy, Mode, eventually, meshd_proxies};
    let dir = tempfile::tempdir().unwrap();
    let case = self::walkthrough(walkthrough);
    let server = common::start_server_with_xds(Some("127.0.0.1:0".parse().unwrap()), None).await;
    if let Some(mesh) = case.existing_mesh {
        create_mesh(&server, mesh).await;
    }
    let stage = case.stages[case.stages.len() - 1];
    let files = stage_files(walkthrough, stage, case.variables, dir.path());
    // Certificate files the walkthroughs' users mounted into their Envoys.
    match walkthrough {
        "howto-k8s-mtls-file-based" => {
            mount_certificates(&files, "/certs/", &dir.path().join("certs"))
        }
        "howto-mutual-tls-file-provided-by-acm" => {
            mount_certificates(&files, "/keys/", &dir.path().join("keys"))
        }
        _ => {}
    }
    let mut options = options(files, case.parameters);
    options.kubernetes.mesh = case.mesh_flag.map(String::from);
    apply(&server, &options).await.unwrap();
    let proxies: Vec<String> = described(server.api_addr)
        .await
        .into_keys()
        .filter(|k| {
            let parts: Vec<&str> = k.split('/').collect();
            parts.len() == 4 && (parts[2] == "virtualNode" || parts[2] == "virtualGateway")
        })
        .collect();
    assert!(!proxies.is_empty(), "{walkthrough} has proxies");
    let xds = server.xds_addr.expect("xDS is served").to_string();
    let mut envoys = Vec::new();
    for proxy in &proxies {
        envoys.push(Envoy::start(&common::arn(proxy), &xds, Mode::Sotw).await);
    }
    for proxy in &proxies {
        eventually(
            &format!("{walkthrough}: Envoy of {proxy} to ACK"),
            std::time::Duration::from_secs(30),
            || async {
                let statuses = meshd_proxies(server.api_addr).await;
                let status = statuses
                    .iter()
                    .find(|s| s["resource"] == proxy.as_str())
                    .ok_or("no stream")?;
                all_acked(status)?;
                // ACM certificates and trust are served (by meshd's own CA here), never
                // left out.
                let diagnostics = status["diagnostics"].to_string();
                if diagnostics.contains("ACM") || diagnostics.contains("secret") {
                    return Err(format!("{proxy}: {diagnostics}"));
                }
                Ok(())
            },
        )
        .await;
    }
    if walkthrough.contains("acm") {
        for (proxy, envoy) in proxies.iter().zip(&envoys) {
            eventually(
                &format!("{walkthrough}: every listener of {proxy} active"),
                std::time::Duration::from_secs(30),
                || async {
                    let stats = envoy.stats().await;
                    let warming =
                        common::envoy::stat(&stats, "listener_manager.total_listeners_warming");
                    let active =
                        common::envoy::stat(&stats, "listener_manager.total_listeners_active");
                    if warming == 0 && active > 0 {
                        Ok(())
                    } else {
                        Err(format!("{warming} warming, {active} active"))
                    }
                },
            )
            .await;
        }
    }
    drop(envoys);
}

/// Runs the `meshd` binary (`apply` or `export`) against `server` with no AWS setup of
/// the environment but `env`; standard input from `stdin`.
async fn meshd_cli(
    server: &meshd::server::RunningServer,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshd"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(&name);
        }
    }
    command
        .args(args)
        .args(["--endpoint-url", &format!("http://{}", server.api_addr)])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("meshd runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

#[tokio::test]
async fn the_cli_plans_applies_from_stdin_and_exports_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server().await;
    let file = write(
        dir.path(),
        "mesh.yaml",
        &corpus_text("howto-grpc/mesh.yaml"),
    );

    let dry = meshd_cli(
        &server,
        &[
            "apply",
            "-f",
            &file,
            "--parameter",
            "ProjectName=howto-grpc",
            "--dry-run",
        ],
        &[],
        "",
    )
    .await;
    let printed = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        printed.contains("+ create    mesh/howto-grpc-mesh/virtualNode/color_server"),
        "{printed}"
    );
    assert!(
        printed.contains("6 to create, 0 to update, 0 unchanged, 0 to delete."),
        "{printed}"
    );
    assert!(
        described(server.api_addr).await.is_empty(),
        "--dry-run changes nothing"
    );

    let missing = meshd_cli(&server, &["apply", "-f", &file, "--dry-run"], &[], "").await;
    assert!(
        !missing.status.success(),
        "a plan that cannot be made exits non-zero"
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--parameter ProjectName=VALUE"));

    let text = corpus_text("howto-grpc/mesh.yaml");
    let applied = meshd_cli(
        &server,
        &[
            "apply",
            "-f",
            "-",
            "--stack-name",
            "grpc",
            "--parameter",
            "ProjectName=howto-grpc",
        ],
        &[],
        &text,
    )
    .await;
    let printed = String::from_utf8_lossy(&applied.stdout);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert!(printed.contains("[6/6] created "), "{printed}");
    assert_eq!(described(server.api_addr).await.len(), 6);

    let out = dir.path().join("exported.json");
    let exported = meshd_cli(
        &server,
        &[
            "export",
            "--mesh",
            "howto-grpc-mesh",
            "--format",
            "json",
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
        "",
    )
    .await;
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert!(exported.stdout.is_empty());
    let inputs: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(inputs.as_array().unwrap().len(), 6);
    assert_eq!(
        inputs[0],
        serde_json::json!({"meshName": "howto-grpc-mesh", "spec": {"egressFilter": {"type": "DROP_ALL"}}})
    );

    let unknown = meshd_cli(
        &server,
        &["export", "--mesh", "nope", "--format", "kubernetes"],
        &[],
        "",
    )
    .await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nope"));
}

#[tokio::test]
async fn the_cli_signs_with_the_standard_credentials_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (server, file) = signed_server(dir.path(), "AKIDCLI", "clisecret").await;
    let args = [
        "apply",
        "-f",
        &file,
        "--parameter",
        "ProjectName=howto-grpc",
    ];
    let unsigned = meshd_cli(&server, &args, &[], "").await;
    assert!(!unsigned.status.success());
    let keys = [
        ("AWS_ACCESS_KEY_ID", "AKIDCLI"),
        ("AWS_SECRET_ACCESS_KEY", "clisecret"),
        ("AWS_REGION", common::REGION),
    ];
    let signed = meshd_cli(&server, &args, &keys, "").await;
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    assert!(String::from_utf8_lossy(&signed.stdout).contains("Applied: 6 created"));
}

#[tokio::test]
async fn tags_are_set_when_a_resource_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_server().await;
    let template = "Resources:\n  Mesh:\n    Type: AWS::AppMesh::Mesh\n    Properties:\n      MeshName: tagged\n      Tags:\n        - Key: team\n          Value: !Sub '${AWS::StackName}-owners'\n";
    let file = write(dir.path(), "shop.yaml", template);
    apply(&server, &options(vec![file], &[])).await.unwrap();
    let arn = common::arn("mesh/tagged");
    let encoded: String = form_urlencoded::byte_serialize(arn.as_bytes()).collect();
    let tags = get(server.api_addr, &format!("tags?resourceArn={encoded}")).await;
    assert_eq!(
        tags["tags"],
        serde_json::json!([{"key": "team", "value": "shop-owners"}])
    );
}

#[tokio::test]
async fn import_value_takes_what_another_template_of_the_apply_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = apply_walkthrough("howto-alb", dir.path()).await;
    let held = described(server.api_addr).await;
    let node = &held["mesh/howto-alb/virtualNode/howto-alb-backend-v2-node"].0;
    // infra.yaml exports howto-alb:DnsNamespaceName as !Sub '${ProjectName}.pvt.local'.
    assert_eq!(
        node["spec"]["serviceDiscovery"]["awsCloudMap"]["namespaceName"],
        "howto-alb.pvt.local"
    );
    let alone = write(dir.path(), "app.yaml", &corpus_text("howto-alb/app.yaml"));
    let err = apply(&server, &options(vec![alone], ALB_PARAMETERS))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no template of this apply exports it: pass --parameter howto-alb:Mesh=VALUE"),
        "{err}"
    );
}
