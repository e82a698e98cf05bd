//! The classic App Mesh color app on one machine, with real Envoys (run as root; see
//! `README.md` here, or `run.sh`): a virtual gateway in front of the `front` service, which
//! calls the `colorteller` service, split across three versions (red, blue, green). It
//! prints what a visitor of the gateway sees while it changes the route's weights through
//! meshd's App Mesh API.

#[path = "../../tests/localmesh/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::PathBuf;

use harness::{Bins, LocalMesh, TaskConfig};
use serde_json::{Value, json};

const MESH: &str = "colorapp";
const ROUTE_PATH: &str =
    "/v20190125/meshes/colorapp/virtualRouter/colorteller-router/routes/colorteller-route";

fn main() {
    let hold = std::env::args().any(|a| a == "--hold");
    // target/<profile>/examples/colorapp → target/<profile>
    let exe = std::env::current_exe().expect("the example's path");
    let profile = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("the profile directory")
        .to_path_buf();
    let bins = Bins {
        meshd: profile.join("meshd"),
        testapp: profile.join("examples/testapp"),
        envoy: harness::envoy_binary(&profile.join("localmesh-bin")),
    };
    for bin in [&bins.meshd, &bins.testapp] {
        assert!(
            bin.is_file(),
            "{} is missing: build it first with `cargo build --bin meshd --example testapp --example colorapp` (run.sh does)",
            bin.display()
        );
    }
    let work = profile.join("colorapp-run");
    let mut mesh = LocalMesh::start("colorapp", MESH, bins, &work);
    println!(
        "meshd: App Mesh API on http://{} (xDS on {})",
        mesh.api, mesh.xds
    );
    let definition: Value =
        serde_json::from_str(include_str!("mesh.json")).expect("mesh.json is JSON");
    mesh.load(&definition);
    mesh.add_names(&["colorteller.colorapp.local", "front.colorapp.local"]);
    let color = |name: &str| TaskConfig::node(name, name, &[9080]);
    let mut front = TaskConfig::node("front", "front", &[8080]);
    front.app_args = vec![
        "--upstream".into(),
        "http://colorteller.colorapp.local:9080/".into(),
    ];
    println!("starting 6 tasks (namespaces, apps, Envoys as uid 1337, iptables) ...");
    mesh.add_tasks(vec![
        color("colorteller-red"),
        color("colorteller-blue"),
        color("colorteller-green"),
        front,
        TaskConfig::gateway("colorgateway", "colorgateway"),
        TaskConfig::plain("visitor", &[]),
    ]);
    mesh.wait_synced();
    for task in [
        "colorteller-red",
        "colorteller-blue",
        "colorteller-green",
        "front",
        "colorgateway",
        "visitor",
    ] {
        println!("  {task:<18} {}", mesh.address(task));
    }

    for (red, blue, green) in [(1, 1, 1), (0, 1, 1), (0, 0, 1), (3, 0, 1)] {
        let spec = json!({"httpRoute": {
            "match": {"prefix": "/"},
            "action": {"weightedTargets": [
                {"virtualNode": "colorteller-red", "weight": red},
                {"virtualNode": "colorteller-blue", "weight": blue},
                {"virtualNode": "colorteller-green", "weight": green}]},
            "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "s", "value": 2}, "httpRetryEvents": ["server-error"]},
        }});
        let (status, answer) = mesh.api("PUT", ROUTE_PATH, Some(json!({ "spec": spec })));
        assert_eq!(status, 200, "UpdateRoute: {answer}");
        mesh.wait_synced();
        let lines = mesh.client(
            "visitor",
            &["http", "http://colorgateway.local:8088/", "--count", "60"],
        );
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for line in &lines {
            // "200 name=front ... -> 200 name=colorteller-red ..."
            let color = line
                .split(" -> ")
                .nth(1)
                .and_then(|answer| answer.split_whitespace().nth(1))
                .map(|n| n.trim_start_matches("name=colorteller-").to_string())
                .unwrap_or_else(|| format!("error: {line}"));
            *seen.entry(color).or_default() += 1;
        }
        println!(
            "weights red:blue:green = {red}:{blue}:{green} → 60 requests via the gateway: {seen:?}"
        );
    }
    println!(
        "e.g. {}",
        mesh.client("visitor", &["http", "http://colorgateway.local:8088/"])[0]
    );
    if hold {
        println!(
            "holding the mesh; try: ip netns exec {}-visitor curl -s http://colorgateway.local:8088/  (Enter to tear down)",
            mesh.label
        );
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    drop(mesh);
    let _ = std::fs::remove_dir_all(PathBuf::from(&work));
    println!("torn down");
}
