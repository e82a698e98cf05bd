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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/aws-app-mesh-examples/walkthroughs")
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
    ("CERTIFICATE_ARN", "arn:aws:acm:us-east-1:111122223333:certificate/abc"),
    ("ROOT_CA_ARN", "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/root"),
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

const fn cfn(stages: &'static [&'static [&'static str]], parameters: &'static [(&'static str, &'static str)]) -> Walkthrough {
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
    ("howto-alb:Mesh", "howto-alb"),
    ("howto-alb:DnsNamespaceName", "howto-alb.local"),
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
                &[("EnvironmentName", "fargate"), ("ServicesDomain", "fargate.local"), ("AppMeshMeshName", "fargate-mesh")],
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
                ("mtls-ec2-appmesh-example:AcmPcaColorTellerRootCAArn", "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/teller"),
                ("mtls-ec2-appmesh-example:AcmPcaColorTellerEndpointCertArn", "arn:aws:acm:us-east-1:111122223333:certificate/teller"),
            ],
        ),
        "howto-servicediscovery-cloudmap" => cfn(&[&["mesh.yaml"]], &[]),
        "tls-with-acm" => cfn(
            &[&["mesh/mesh.yaml"]],
            &[
                ("MeshName", "tls-mesh"),
                ("ServicesDomain", "tls.local"),
                ("CertificateAuthorityArn", "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca"),
                ("CertificateArn", "arn:aws:acm:us-east-1:111122223333:certificate/cert"),
            ],
        ),
        "howto-k8s-multiple-listeners" => k8s(&[&["manifest.yaml"]]),
        k8s_walkthrough => {
            assert!(k8s_walkthrough.starts_with("howto-k8s-"), "{k8s_walkthrough}");
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
            let mut text = std::fs::read_to_string(base.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !left_out.is_empty() {
                let kind = format!("kind: {left_out}");
                let documents: Vec<&str> = text.split("\n---").filter(|d| !d.lines().any(|l| l.trim() == kind)).collect();
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
        parameters: parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..ApplyOptions::default()
    }
}

async fn apply(server: &meshd::server::RunningServer, options: &ApplyOptions) -> Result<(Outcome, String), ApplyError> {
    let mut out = Vec::new();
    let outcome = meshd::apply::apply(&client(server), options, &mut out).await?;
    Ok((outcome, String::from_utf8(out).unwrap()))
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let response = reqwest::get(format!("http://{addr}/v20190125/{path}")).await.unwrap();
    assert!(response.status().is_success(), "GET {path}: {}", response.status());
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
            ("virtualRouters", "virtualRouterName", Some(("virtualRouter", "routes", "routeName"))),
            ("virtualGateways", "virtualGatewayName", Some(("virtualGateway", "gatewayRoutes", "gatewayRouteName"))),
            ("virtualServices", "virtualServiceName", None),
        ] {
            let list = get(addr, &format!("meshes/{mesh}/{collection}?limit=100")).await;
            for item in list[collection].as_array().unwrap() {
                let name = item[name_field].as_str().unwrap();
                paths.push(format!("meshes/{mesh}/{collection}/{name}"));
                if let Some((segment, child_collection, child_field)) = children {
                    let children = get(addr, &format!("meshes/{mesh}/{segment}/{name}/{child_collection}?limit=100")).await;
                    for child in children[child_collection].as_array().unwrap() {
                        let child = child[child_field].as_str().unwrap();
                        paths.push(format!("meshes/{mesh}/{segment}/{name}/{child_collection}/{child}"));
                    }
                }
            }
        }
        for path in paths {
            let mut data = get(addr, &path).await;
            let version = data["metadata"]["version"].as_i64().unwrap();
            let arn = data["metadata"]["arn"].as_str().unwrap().to_string();
            data.as_object_mut().unwrap().remove("metadata");
            let key = arn.split_once(":mesh/").map(|(_, rest)| format!("mesh/{rest}")).unwrap();
            out.insert(key, (data, version));
        }
    }
    out
}

/// Names and specs only (no versions).
fn specs(described: &BTreeMap<String, (Value, i64)>) -> BTreeMap<String, Value> {
    described.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect()
}

async fn create_mesh(server: &meshd::server::RunningServer, mesh: &str) {
    common::sdk_client(server.api_addr).create_mesh().mesh_name(mesh).send().await.unwrap();
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
        let (outcome, output) = apply(&server, &options).await.unwrap_or_else(|e| panic!("{name} stage {index}: {e}"));
        let after = described(server.api_addr).await.len();
        assert_eq!(after - before, outcome.created, "{name} stage {index}: every resource created:\n{output}");
        assert!(outcome.created + outcome.updated > 0, "{name} stage {index} changed nothing:\n{output}");
        last = Some(options);
    }
    (server, last.expect("a walkthrough has a stage"))
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
    assert_eq!(described(server.api_addr).await, first, "{name}: no version moved");

    let meshes: Vec<String> = first.keys().filter(|k| k.matches('/').count() == 1).map(|k| k[5..].to_string()).collect();
    for format in [Format::CloudFormation, Format::Kubernetes, Format::Json] {
        let fresh = common::start_server().await;
        for mesh in &meshes {
            let text = meshd::apply::export::export(&client(&server), mesh, format, "exported").await.unwrap();
            let file = dir.path().join(format!("{mesh}.{format:?}.export"));
            std::fs::write(&file, &text).unwrap();
            let (outcome, output) = apply(&fresh, &options_for(&file))
                .await
                .unwrap_or_else(|e| panic!("{name}: {format:?} export of {mesh} applies: {e}\n{text}"));
            assert!(outcome.created > 0, "{output}");
        }
        assert_eq!(specs(&described(fresh.api_addr).await), specs(&first), "{name}: {format:?} round trip");
    }
}

fn options_for(file: &Path) -> ApplyOptions {
    options(vec![file.display().to_string()], &[])
}

/// The number of resource lines in a printed plan.
fn count_planned(output: &str) -> usize {
    output.lines().filter(|l| l.starts_with("  ") && !l.starts_with("    ")).count()
}

macro_rules! walkthroughs {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                walkthrough_round_trip($name).await;
            }
        )*
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
