//! Properties of the compiler over random valid meshes (see `common_compile::mesh`):
//! every proxy compiles without panicking, to the same bytes every time (and in a second
//! store loaded from the same definition), with no dangling reference; and incremental
//! compilation after one random change gives exactly what compiling from scratch gives,
//! recompiling only the proxies it reports.

mod common_compile;

use std::collections::BTreeMap;
use std::sync::Arc;

use common_compile::{CertPaths, GeneratedMesh, MESH, load, load_store, mesh};
use meshd::compile::{
    Compiled, ProxyConfig, ProxyId, ResourceType, check_references, compile_all, compile_proxy,
};
use meshd::definition::parse_resource;
use meshd::model::{ResourceKey, ResourceKind};
use meshd::store::{Store, Write};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

/// Every resource of every type, encoded, with its version; plus the type versions.
fn encodings(config: &ProxyConfig) -> BTreeMap<(ResourceType, String), (Vec<u8>, String)> {
    let mut out = BTreeMap::new();
    for kind in ResourceType::ALL {
        for resource in config.encoded(kind) {
            out.insert((kind, resource.name), (resource.bytes, resource.version));
        }
        out.insert((kind, "*".into()), (Vec::new(), config.type_version(kind)));
    }
    out
}

/// What differs between two configurations, resource by resource (empty when equal).
fn differences(a: &ProxyConfig, b: &ProxyConfig) -> Vec<String> {
    let (a_encoded, b_encoded) = (encodings(a), encodings(b));
    let mut out: Vec<String> = a_encoded
        .keys()
        .chain(b_encoded.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|key| a_encoded.get(key) != b_encoded.get(key))
        .map(|(kind, name)| {
            match (
                a_encoded.contains_key(&(*kind, name.clone())),
                b_encoded.contains_key(&(*kind, name.clone())),
            ) {
                (true, true) => format!("{kind:?} {name} differs"),
                (true, false) => format!("{kind:?} {name} only in the first"),
                _ => format!("{kind:?} {name} only in the second"),
            }
        })
        .collect();
    if a.diagnostics != b.diagnostics {
        out.push(format!(
            "diagnostics {:?} != {:?}",
            a.diagnostics, b.diagnostics
        ));
    }
    out
}

fn definition_text(generated: &GeneratedMesh) -> String {
    serde_json::to_string_pretty(&generated.definition()).unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// Each proxy of a random mesh compiles, twice to identical bytes and versions (also
    /// from a second store loaded from the same definition), and names only resources
    /// its configuration defines.
    #[test]
    fn random_meshes_compile_deterministically_without_dangling_references(
        generated in mesh(CertPaths::placeholder())
    ) {
        let definition = generated.definition();
        let first = load(&definition);
        let second = load(&definition);
        let all = compile_all(&first);
        prop_assert!(!all.is_empty());
        for (proxy, config) in &all {
            let again = compile_proxy(&first, proxy);
            let elsewhere = compile_proxy(&second, proxy);
            let twice = differences(config, &again);
            prop_assert!(twice.is_empty(), "{} compiled twice differs: {:?}", proxy, twice);
            let other_store = differences(config, &elsewhere);
            prop_assert!(
                other_store.is_empty(),
                "{} from a second store differs: {:?}", proxy, other_store
            );
            if let Err(dangling) = check_references(config) {
                prop_assert!(
                    false,
                    "{} has dangling references {:?}\n{}",
                    proxy,
                    dangling,
                    definition_text(&generated)
                );
            }
            prop_assert!(
                !config.listeners.is_empty() || !config.diagnostics.is_empty(),
                "{} compiled to no listener and said nothing", proxy
            );
        }
    }

    /// After one random change (a resource of another random mesh created or updated
    /// into this one, or one resource deleted), the incremental compiler holds for every
    /// proxy exactly what compiling the new snapshot from scratch gives; the proxies it
    /// did not report as affected keep the very configuration they had; and a proxy of
    /// another mesh is never affected.
    #[test]
    fn incremental_compilation_after_one_change_equals_compiling_from_scratch(
        before in mesh(CertPaths::placeholder()),
        other in mesh(CertPaths::placeholder()),
        kind in 0u8..3,
        pick in any::<Index>(),
    ) {
        let store = load_store(&before.definition());
        load_into(&store, &bystander_mesh());
        let mut compiled = Compiled::new(store.snapshot());
        let old: BTreeMap<ProxyId, Arc<ProxyConfig>> = compiled
            .proxies()
            .map(|(proxy, config)| (proxy.clone(), config.clone()))
            .collect();
        prop_assert_eq!(old.len(), compile_all(&store.snapshot()).len());

        let change = match kind {
            0 => delete_one(&store, pick),
            1 => write_one(&store, &other, pick),
            _ => tweak_one(&store, &before, pick),
        };
        let after = store.snapshot();
        let affected = compiled.update(after.clone());

        let scratch = compile_all(&after);
        for (proxy, config) in &scratch {
            let incremental = compiled.get(proxy);
            let stale = differences(&incremental, config);
            prop_assert!(
                stale.is_empty() && *incremental == *config,
                "after {:?}, {} differs from a compilation from scratch: {:?} (affected: {:?})",
                change, proxy, stale, affected
            );
        }
        for (proxy, config) in compiled.proxies() {
            if !scratch.contains_key(proxy) {
                // A proxy whose resource was deleted keeps a configuration: the empty one.
                let stale = differences(config, &compile_proxy(&after, proxy));
                prop_assert!(stale.is_empty(), "{} (deleted) differs: {:?}", proxy, stale);
            }
            if !affected.contains(proxy) {
                let previous = old.get(proxy).expect("an unaffected proxy existed before");
                prop_assert!(
                    Arc::ptr_eq(previous, config),
                    "{} was recompiled but not reported as affected", proxy
                );
            }
        }
        prop_assert!(
            affected.iter().all(|proxy| proxy.mesh == MESH),
            "a change in mesh {} affected {:?}", MESH, affected
        );
    }
}

/// A small mesh beside the generated one, which no change in mesh `m` may affect.
fn bystander_mesh() -> Value {
    json!([
        {"meshName": "bystander", "spec": {}},
        {"meshName": "bystander", "virtualNodeName": "app", "spec": {
            "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
            "serviceDiscovery": {"dns": {"hostname": "app.bystander.local"}},
            "backends": [{"virtualService": {"virtualServiceName": "s0.mesh.local"}}]}},
        {"meshName": "bystander", "virtualServiceName": "s0.mesh.local", "spec": {
            "provider": {"virtualNode": {"virtualNodeName": "app"}}}},
    ])
}

fn load_into(store: &Store, definition: &Value) {
    meshd::definition::load(store, definition).expect("the bystander mesh loads");
}

/// What was changed, for failure messages.
#[derive(Debug)]
#[allow(dead_code)]
enum Change {
    Wrote(Value),
    Deleted(ResourceKey),
    Nothing,
}

/// Creates or updates, into the store, the first resource of `other` (from `pick` on)
/// that the store accepts (the mesh itself is updated with the other mesh's spec).
fn write_one(store: &Store, other: &GeneratedMesh, pick: Index) -> Change {
    let candidates: Vec<&Value> = other.resources.iter().collect();
    let start = pick.index(candidates.len());
    for offset in 0..candidates.len() {
        let resource = candidates[(start + offset) % candidates.len()];
        let (key, spec) = parse_resource(resource).expect("generated resources parse");
        let write = if store.snapshot().get(&key).is_some() {
            Write::Update { key, spec }
        } else {
            Write::Create {
                key,
                spec,
                tags: Vec::new(),
            }
        };
        if store.apply(write, None).is_ok() {
            return Change::Wrote(resource.clone());
        }
    }
    Change::Nothing
}

/// Updates one route or gateway route of `generated` in place, as an operator most often
/// does: other weights (never all zero) and another priority.
fn tweak_one(store: &Store, generated: &GeneratedMesh, pick: Index) -> Change {
    let candidates: Vec<&Value> = generated
        .resources
        .iter()
        .filter(|r| r.get("routeName").is_some() || r.get("gatewayRouteName").is_some())
        .collect();
    if candidates.is_empty() {
        return write_one(store, generated, pick);
    }
    let mut resource = candidates[pick.index(candidates.len())].clone();
    let spec = &mut resource["spec"];
    match spec.get("priority").and_then(Value::as_i64) {
        Some(_) => {
            spec.as_object_mut().unwrap().remove("priority");
        }
        None => spec["priority"] = json!(7),
    }
    for kind in ["httpRoute", "http2Route", "grpcRoute", "tcpRoute"] {
        if let Some(targets) = spec
            .get_mut(kind)
            .and_then(|r| r["action"].get_mut("weightedTargets"))
            .and_then(Value::as_array_mut)
        {
            for target in targets.iter_mut() {
                let weight = target["weight"].as_i64().unwrap();
                target["weight"] = json!((weight + 37) % 101);
            }
            if targets.iter().all(|t| t["weight"] == 0) {
                targets[0]["weight"] = json!(1);
            }
        }
    }
    let (key, spec) = parse_resource(&resource).expect("a tweaked route parses");
    match store.apply(Write::Update { key, spec }, None) {
        Ok(_) => Change::Wrote(resource),
        Err(_) => Change::Nothing,
    }
}

/// Deletes the first resource of mesh `m` (from `pick` on) that the store lets go.
fn delete_one(store: &Store, pick: Index) -> Change {
    let snapshot = store.snapshot();
    let keys: Vec<ResourceKey> = snapshot
        .iter()
        .filter(|r| r.key.mesh == MESH && r.key.kind != ResourceKind::Mesh)
        .map(|r| r.key.clone())
        .collect();
    if keys.is_empty() {
        return Change::Nothing;
    }
    let start = pick.index(keys.len());
    for offset in 0..keys.len() {
        let key = keys[(start + offset) % keys.len()].clone();
        if store
            .apply(Write::Delete { key: key.clone() }, None)
            .is_ok()
        {
            return Change::Deleted(key);
        }
    }
    Change::Nothing
}

/// The generator only produces meshes that load, and they use every kind of resource
/// and both kinds of proxy often enough for the properties above to mean something.
#[test]
fn the_generator_produces_loadable_meshes_of_every_kind() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = mesh(CertPaths::placeholder());
    let mut kinds = BTreeMap::<&str, usize>::new();
    let mut gateways = 0;
    for _ in 0..64 {
        let generated = strategy.new_tree(&mut runner).unwrap().current();
        let snapshot = load(&generated.definition());
        for resource in snapshot.iter() {
            *kinds.entry(resource.key.kind.type_name()).or_default() += 1;
        }
        gateways += compile_all(&snapshot)
            .keys()
            .filter(|p| p.kind == meshd::compile::ProxyKind::VirtualGateway)
            .count();
    }
    for kind in [
        ResourceKind::Mesh,
        ResourceKind::VirtualNode,
        ResourceKind::VirtualRouter,
        ResourceKind::Route,
        ResourceKind::VirtualService,
        ResourceKind::VirtualGateway,
        ResourceKind::GatewayRoute,
    ] {
        assert!(
            kinds.get(kind.type_name()).copied().unwrap_or(0) >= 10,
            "too few {} in 64 generated meshes: {kinds:?}",
            kind.type_name()
        );
    }
    assert!(gateways >= 10, "too few gateway proxies: {gateways}");
}
