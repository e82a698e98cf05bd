//! The fan-out benchmark (`examples/fanout`) runs end to end at small N in both ADS
//! variants against the real meshd binary, every proxy gets every change, and its result
//! line is well-formed. Figures are measured with the tool, not asserted here.

#[allow(dead_code)]
#[path = "../examples/fanout/load.rs"]
mod load;

use load::{Args, Mode};

const BASELINE: [&str; 2] = ["baseline_p99_ms", "ratio"];

const FIELDS: [&str; 8] = [
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "bytes_per_push",
    "server_rss_mib",
    "rss_per_proxy_kib",
    "server_cpu_s",
];

async fn run_small(mode: Mode, label: &str, baseline: bool) {
    let args = Args {
        proxies: 20,
        nodes: 5,
        changes: 2,
        mode,
        meshd: env!("CARGO_BIN_EXE_meshd").into(),
        debounce_ms: None,
        baseline: baseline.then(|| env!("CARGO_BIN_EXE_xds_replay").into()),
    };
    let report = load::run(args).await.expect("the fan-out tool runs");
    assert_eq!(report.missing, 0, "every proxy gets every change");
    assert_eq!(report.failed_streams, 0, "no stream fails");
    assert_eq!(
        report.receipt_ms.len(),
        20 * 2,
        "one receipt per proxy and change"
    );
    assert_eq!(report.ack_ms.len(), 20 * 2, "one ACK per proxy and change");

    let line = report.line();
    let mut words = line.split(' ');
    assert_eq!(words.next(), Some("fanout"), "{line}");
    let pairs: Vec<(&str, &str)> = words
        .map(|word| word.split_once('=').expect("key=value"))
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(key, _)| *key).collect();
    let mut expected = vec!["mode", "proxies", "nodes", "changes"];
    expected.extend(FIELDS);
    if baseline {
        expected.extend(BASELINE);
    }
    assert_eq!(keys, expected, "{line}");
    assert_eq!(
        &pairs[..4],
        &[
            ("mode", label),
            ("proxies", "20"),
            ("nodes", "5"),
            ("changes", "2")
        ]
    );
    let figure = |name: &str| -> f64 {
        let (_, value) = pairs.iter().find(|(key, _)| *key == name).unwrap();
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number in {line}"))
    };
    for name in FIELDS
        .iter()
        .chain(if baseline { &BASELINE[..] } else { &[] })
    {
        let value = figure(name);
        assert!(
            value.is_finite() && value >= 0.0,
            "{name}={value} in {line}"
        );
    }
    assert!(figure("p50_ms") <= figure("p90_ms"), "{line}");
    assert!(figure("p90_ms") <= figure("p99_ms"), "{line}");
    assert!(figure("p99_ms") <= figure("max_ms"), "{line}");
    assert!(figure("bytes_per_push") > 0.0, "{line}");
    assert!(figure("server_rss_mib") > 0.0, "{line}");

    assert_eq!(
        report.first_config_s.len(),
        20,
        "every proxy of the cold start got its first configuration"
    );
    let cold = report.cold_start_line();
    assert!(
        cold.starts_with("cold_start proxies=20 configured=20 all_configured_s="),
        "{cold}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_fanout_tool_runs_end_to_end_in_sotw() {
    run_small(Mode::Sotw, "sotw", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_fanout_tool_runs_end_to_end_in_sotw_with_the_baseline() {
    run_small(Mode::Sotw, "sotw", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_fanout_tool_runs_end_to_end_in_delta_with_the_baseline() {
    run_small(Mode::Delta, "delta", true).await;
}
