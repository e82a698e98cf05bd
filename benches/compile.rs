//! Compiling every proxy of a large mesh, and recompiling after one route change.
//!
//! The mesh: 1,000 virtual nodes (each with an HTTP listener and 10 backends),
//! 1,000 virtual services (100 provided by virtual routers, 900 by virtual nodes),
//! 100 virtual routers with 10 routes each (3 weighted targets per route).
//! Also encoding every proxy's resources for xDS, as the hub does.
//! Run: `cargo bench --bench compile`.

use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use meshd::compile::{self, Compiled};
use meshd::definition::put;
use meshd::store::Store;
use serde_json::json;

const NODES: usize = 1_000;
const SERVICES: usize = 1_000;
const ROUTERS: usize = 100;
const ROUTES_PER_ROUTER: usize = 10;
const BACKENDS_PER_NODE: usize = 10;

fn create(store: &Store, value: serde_json::Value) {
    put(store, &value).expect("the benchmark mesh loads");
}

fn route(router: usize, route: usize, weight: i64) -> serde_json::Value {
    let target = |k: usize| format!("node-{}", (router * 7 + route * 3 + k * 11) % NODES);
    json!({"meshName": "bench", "virtualRouterName": format!("router-{router}"), "routeName": format!("route-{route}"),
        "spec": {"priority": route, "httpRoute": {
            "match": {"prefix": format!("/r{route}")},
            "action": {"weightedTargets": [
                {"virtualNode": target(0), "weight": weight},
                {"virtualNode": target(1), "weight": 1},
                {"virtualNode": target(2), "weight": 1}]},
            "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "ms", "value": 500}, "httpRetryEvents": ["gateway-error"]}}}})
}

fn build() -> Store {
    let store = Store::in_memory(Default::default());
    create(&store, json!({"meshName": "bench"}));
    for n in 0..NODES {
        let backends: Vec<_> = (0..BACKENDS_PER_NODE)
            .map(|b| json!({"virtualService": {"virtualServiceName": format!("svc-{}.local", (n * 13 + b * 97) % SERVICES)}}))
            .collect();
        create(
            &store,
            json!({"meshName": "bench", "virtualNodeName": format!("node-{n}"), "spec": {
            "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                "healthCheck": {"protocol": "http", "path": "/health", "healthyThreshold": 2, "unhealthyThreshold": 3, "intervalMillis": 5000, "timeoutMillis": 2000}}],
            "serviceDiscovery": {"dns": {"hostname": format!("node-{n}.bench.local")}},
            "backends": backends}}),
        );
    }
    for r in 0..ROUTERS {
        create(
            &store,
            json!({"meshName": "bench", "virtualRouterName": format!("router-{r}"),
            "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}}),
        );
        for k in 0..ROUTES_PER_ROUTER {
            create(&store, route(r, k, 1));
        }
    }
    for s in 0..SERVICES {
        let provider = if s < ROUTERS {
            json!({"virtualRouter": {"virtualRouterName": format!("router-{s}")}})
        } else {
            json!({"virtualNode": {"virtualNodeName": format!("node-{s}")}})
        };
        create(
            &store,
            json!({"meshName": "bench", "virtualServiceName": format!("svc-{s}.local"), "spec": {"provider": provider}}),
        );
    }
    store
}

fn benchmarks(c: &mut Criterion) {
    let store = build();
    let snapshot = store.snapshot();
    let started = Instant::now();
    let all = compile::compile_all(&snapshot);
    let resources: usize = all
        .values()
        .map(|c| c.listeners.len() + c.clusters.len() + c.route_configs.len() + c.endpoints.len())
        .sum();
    println!(
        "compile: mesh of {NODES} nodes, {SERVICES} services, {ROUTERS}x{ROUTES_PER_ROUTER} routes -> {} proxies, {resources} Envoy resources; first full compile {:.1} ms",
        all.len(),
        started.elapsed().as_secs_f64() * 1e3
    );

    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("all_proxies", |b| {
        b.iter(|| compile::compile_all(&snapshot))
    });
    // What the xDS hub does on start: every proxy, plus the dependency index that lets
    // later changes recompile only the proxies they reach.
    group.bench_function("all_proxies_with_index", |b| {
        b.iter(|| Compiled::new(snapshot.clone()))
    });

    // What the xDS hub does with every proxy's configuration: encode each resource and
    // intern the bytes (equal resources held once).
    group.bench_function("encode_all_proxies", |b| {
        b.iter(|| {
            let interner = meshd::xds::Interner::default();
            let encoded: Vec<_> = all.values().map(|c| interner.snapshot(c)).collect();
            (encoded, interner)
        })
    });

    let mut compiled = Compiled::new(snapshot.clone());
    let mut weight = 1;
    let mut affected_counts = Vec::new();
    group.bench_function("one_route_change", |b| {
        b.iter(|| {
            weight = weight % 100 + 1;
            put(&store, &route(42, 3, weight)).expect("update");
            let affected = compiled.update(store.snapshot());
            affected_counts.push(affected.len());
        })
    });
    group.finish();
    let reached = affected_counts.first().copied().unwrap_or(0);
    println!(
        "compile: one route change recompiled {reached} of {} proxies (those with a backend routed by router-42)",
        all.len()
    );
    let check = Arc::new(store.snapshot());
    let from_scratch = compile::compile_all(&check);
    let same = from_scratch
        .iter()
        .all(|(proxy, config)| compiled.get(proxy).as_ref() == config);
    println!("compile: incremental result equals a full recompile: {same}");
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
