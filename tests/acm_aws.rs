//! `meshd serve --acm aws` against moto's server, standing in for AWS Certificate
//! Manager and ACM Private CA: a private CA and a certificate made with the AWS CLI in
//! moto, the certificate's ARN on a listener, and a real Envoy then serves that very
//! certificate, exported by meshd over SDS on the ADS stream.

mod common;

use serde_json::{Value, json};

use common::cli::{AwsCli, SECRET, require_cli};
use common::envoy::{Envoy, Mode, eventually, meshd_view, require_envoy};
use common::moto::{Moto, meshd_for_moto};

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// The serial numbers of the certificates Envoy serves, lower-case hex without leading
/// zeros.
async fn served_serials(envoy: &Envoy) -> Vec<String> {
    let Some((200, text)) = envoy.get_with_status("/certs").await else {
        return Vec::new();
    };
    let certs: Value = serde_json::from_str(&text).unwrap_or_default();
    certs["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|entry| entry["cert_chain"].as_array().cloned().unwrap_or_default())
        .filter_map(|cert| cert["serial_number"].as_str().map(normal_serial))
        .collect()
}

fn normal_serial(serial: &str) -> String {
    serial
        .replace(':', "")
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_string()
}

async fn run(meshd_args: &[&str], moto: &Moto, mode: Mode) {
    let acm = AwsCli::at(&moto.endpoint(), "acm", SECRET);
    let pca = AwsCli::at(&moto.endpoint(), "acm-pca", SECRET);
    let authority = pca
        .ok(&[
            "create-certificate-authority",
            "--certificate-authority-type",
            "ROOT",
            "--certificate-authority-configuration",
            &json!({"KeyAlgorithm": "RSA_2048", "SigningAlgorithm": "SHA256WITHRSA",
                    "Subject": {"CommonName": "mesh root"}})
            .to_string(),
        ])
        .await["CertificateAuthorityArn"]
        .as_str()
        .unwrap()
        .to_string();
    let certificate = acm
        .ok(&[
            "request-certificate",
            "--domain-name",
            "front.local",
            "--certificate-authority-arn",
            &authority,
        ])
        .await["CertificateArn"]
        .as_str()
        .unwrap()
        .to_string();
    let issued = acm
        .ok(&["get-certificate", "--certificate-arn", &certificate])
        .await;
    let issued_serial =
        meshd::certificates::certificate_facts(issued["Certificate"].as_str().unwrap())
            .unwrap()
            .serial;

    let endpoint = moto.endpoint();
    let mut args = vec![
        "--store",
        "memory",
        "--xds-addr",
        "127.0.0.1:0",
        "--region",
        common::REGION,
        "--acm",
        "aws",
        "--acm-endpoint",
        &endpoint,
        "--acm-pca-endpoint",
        &endpoint,
    ];
    args.extend_from_slice(meshd_args);
    let meshd = meshd_for_moto(&args).await;
    let appmesh = AwsCli::at(&format!("http://{}", meshd.api), "appmesh", SECRET);
    appmesh.ok(&["create-mesh", "--mesh-name", "m"]).await;
    let spec = json!({
        "listeners": [{"portMapping": {"port": 9080, "protocol": "http"},
                       "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": certificate}}}}],
        "serviceDiscovery": {"dns": {"hostname": "front.local"}},
    });
    appmesh
        .ok(&[
            "create-virtual-node",
            "--mesh-name",
            "m",
            "--virtual-node-name",
            "front",
            "--spec",
            &spec.to_string(),
        ])
        .await;
    let xds = meshd.xds_addr().await.to_string();
    let envoy = Envoy::start(&common::arn("mesh/m/virtualNode/front"), &xds, mode).await;
    let serials = eventually("Envoy to serve the ACM certificate", WAIT, || async {
        let serials = served_serials(&envoy).await;
        if serials.is_empty() {
            Err(envoy.log_tail(20))
        } else {
            Ok(serials)
        }
    })
    .await;
    assert_eq!(
        serials,
        std::slice::from_ref(&issued_serial),
        "Envoy serves the certificate moto issued"
    );
    // The listener is active (its secret arrived), and meshd says what it serves.
    let stats = envoy.stats().await;
    assert_eq!(
        common::envoy::stat(&stats, "listener_manager.total_listeners_warming"),
        0
    );
    let followed = meshd_view(meshd.api, "certificates").await;
    assert_eq!(followed[0]["name"], certificate, "{followed}");
    assert_eq!(followed[0]["source"], "aws", "{followed}");
    assert_eq!(
        normal_serial(followed[0]["serial"].as_str().unwrap()),
        issued_serial,
        "{followed}"
    );
    assert!(followed[0].get("key").is_none() && !followed.to_string().contains("PRIVATE"));
}

#[tokio::test]
async fn envoy_serves_the_certificate_exported_from_acm_sotw() {
    require_cli().await;
    require_envoy();
    let _serial = common::envoy::ENVOY_LOCK.lock().await;
    let moto = Moto::start().await;
    run(&[], &moto, Mode::Sotw).await;
}

#[tokio::test]
async fn envoy_serves_the_certificate_exported_from_acm_delta() {
    require_cli().await;
    require_envoy();
    let _serial = common::envoy::ENVOY_LOCK.lock().await;
    let moto = Moto::start().await;
    run(&[], &moto, Mode::Delta).await;
}
