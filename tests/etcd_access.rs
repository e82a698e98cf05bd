//! meshd on a secured etcd, as production etcd clusters run: TLS with client-certificate
//! authentication, and etcd's user/password authentication. Real `etcd` processes on
//! loopback, real `meshd serve --store etcd` processes and the real AWS SDK. Needs the
//! `etcd` binary (Debian's `etcd-server`); fails without it.
#![cfg(feature = "etcd")]

mod common;

use std::time::Duration;

use common::envoy::eventually;
use common::etcd::{ClientTls, TestPki, endpoints, etcd_cluster, etcd_cluster_with};
use common::process::MeshdProcess;

const WAIT: Duration = Duration::from_secs(30);

/// Creates mesh `mesh` through `a` and waits until `b` lists it (it came through etcd).
async fn a_write_through_one_reaches_the_other(a: &MeshdProcess, b: &MeshdProcess, mesh: &str) {
    common::sdk_client(a.api)
        .create_mesh()
        .mesh_name(mesh)
        .send()
        .await
        .unwrap_or_else(|err| panic!("create mesh {mesh}: {err:?}"));
    let other = common::sdk_client(b.api);
    eventually(
        &format!("mesh {mesh} on the other replica"),
        WAIT,
        || async {
            match other.describe_mesh().mesh_name(mesh).send().await {
                Ok(found) => Ok(found),
                Err(err) => Err(format!("{err:?}")),
            }
        },
    )
    .await;
}

/// A replica on the etcd at `endpoints`, reached with the `access` flags.
async fn replica(endpoints: &str, access: &[&str]) -> MeshdProcess {
    let mut args = vec![
        "--xds-addr",
        "127.0.0.1:0",
        "--store",
        "etcd",
        "--etcd-endpoints",
        endpoints,
    ];
    args.extend_from_slice(access);
    MeshdProcess::start(&args).await
}

/// What meshd says when, on the etcd at `endpoints` with the `access` flags, it refuses
/// to start (it must).
async fn refusal(endpoints: &str, access: &[&str]) -> String {
    let mut args = vec!["--store", "etcd", "--etcd-endpoints", endpoints];
    args.extend_from_slice(access);
    let (status, stderr) = MeshdProcess::refusal(&args).await;
    assert!(!status.success(), "meshd should refuse to start: {stderr}");
    stderr
}

/// Two replicas on an etcd that accepts only clients with a certificate of its CA share
/// their writes; a meshd without a client certificate, or without a CA to check etcd's
/// certificate against, refuses to start and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_reach_an_etcd_that_requires_client_certificates() {
    let pki = TestPki::new();
    let (server_cert, server_key) = pki.server();
    let etcd = etcd_cluster_with(
        1,
        ClientTls::Required {
            ca: pki.ca(),
            cert: server_cert,
            key: server_key,
        },
    )
    .await;
    let all = endpoints(&etcd);
    assert!(all.starts_with("https://"), "{all}");
    let ca = pki.ca().display().to_string();
    let (client_cert, client_key) = pki.client();
    let (client_cert, client_key) = (
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    let tls = [
        "--etcd-cacert",
        &ca,
        "--etcd-cert",
        &client_cert,
        "--etcd-key",
        &client_key,
    ];
    let a = replica(&all, &tls).await;
    let b = replica(&all, &tls).await;
    a_write_through_one_reaches_the_other(&a, &b, "over-tls").await;

    // Without a client certificate, etcd refuses the connection.
    let said = refusal(&all, &["--etcd-cacert", &ca]).await;
    assert!(said.contains("cannot load the store from etcd"), "{said}");

    // An https:// endpoint without a CA to check it against is refused before connecting.
    let said = refusal(&all, &[]).await;
    assert!(said.contains("--etcd-cacert"), "{said}");

    // A CA file that cannot be read is named.
    let said = refusal(&all, &["--etcd-cacert", "/nonexistent/ca.pem"]).await;
    assert!(said.contains("/nonexistent/ca.pem"), "{said}");
}

/// With etcd's authentication on, replicas with the user's password share their writes,
/// even when one of three members is down as they start; a wrong password is refused
/// with etcd's own reason, and the password never appears in meshd's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_authenticate_with_a_user_and_password() {
    let mut etcd = etcd_cluster(3).await;
    let all = endpoints(&etcd);
    let mut admin = etcd_client::Client::connect([etcd[1].endpoint()], None)
        .await
        .expect("etcd answers");
    admin
        .user_add("root", "root-password", None)
        .await
        .expect("root user");
    admin
        .user_grant_role("root", "root")
        .await
        .expect("root role");
    admin
        .user_add("meshd", "meshd-password", None)
        .await
        .expect("meshd user");
    admin.role_add("meshd").await.expect("meshd role");
    admin
        .role_grant_permission(
            "meshd",
            etcd_client::Permission::read_write("/meshd/").with_prefix(),
        )
        .await
        .expect("the meshd role may read and write /meshd/");
    admin
        .user_grant_role("meshd", "meshd")
        .await
        .expect("meshd is given its role");
    admin.auth_enable().await.expect("authentication on");

    // Anonymous clients are refused now.
    let said = refusal(&all, &[]).await;
    assert!(said.contains("cannot load the store from etcd"), "{said}");

    // A wrong password is refused with etcd's reason.
    let said = refusal(
        &all,
        &[
            "--etcd-username",
            "meshd",
            "--etcd-password",
            "not-the-password",
        ],
    )
    .await;
    assert!(said.contains("authentication failed"), "{said}");
    assert!(!said.contains("not-the-password"), "{said}");

    // The first member is down while the replicas start: they authenticate with the
    // others.
    etcd[0].kill();
    etcd[1].wait_healthy().await;
    etcd[2].wait_healthy().await;
    let user = [
        "--etcd-username",
        "meshd",
        "--etcd-password",
        "meshd-password",
    ];
    let a = replica(&all, &user).await;
    let b = replica(&all, &user).await;
    a_write_through_one_reaches_the_other(&a, &b, "authenticated").await;
    for replica in [&a, &b] {
        assert!(
            !replica.logged("meshd-password"),
            "the password is in meshd's log"
        );
    }
}

/// The TLS and authentication flags as `meshd serve` reads them; a certificate without
/// its key, or a user without a password, is a usage error.
#[test]
fn meshd_serve_reads_the_etcd_access_flags() {
    use clap::Parser;
    use meshd::cli::{Cli, Command as MeshdCommand};
    use meshd::store::{EtcdAccess, StoreConfig};
    let parse = |args: &[&str]| {
        let mut full = vec!["meshd", "serve", "--store", "etcd"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).map(|cli| match cli.command {
            MeshdCommand::Serve(args) => args.server_config().store,
            other => panic!("{other:?}"),
        })
    };
    let access = |store: StoreConfig| match store {
        StoreConfig::Etcd { access, .. } => access,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        access(
            parse(&[
                "--etcd-endpoints",
                "https://10.0.0.1:2379",
                "--etcd-cacert",
                "/etc/etcd/ca.pem",
                "--etcd-cert",
                "/etc/meshd/etcd.pem",
                "--etcd-key",
                "/etc/meshd/etcd-key.pem",
                "--etcd-username",
                "meshd",
                "--etcd-password",
                "pw",
            ])
            .unwrap()
        ),
        EtcdAccess {
            ca_file: Some("/etc/etcd/ca.pem".into()),
            cert_file: Some("/etc/meshd/etcd.pem".into()),
            key_file: Some("/etc/meshd/etcd-key.pem".into()),
            username: Some("meshd".into()),
            password: Some("pw".into()),
        }
    );
    assert_eq!(access(parse(&[]).unwrap()), EtcdAccess::default());
    for incomplete in [
        &["--etcd-cert", "/c.pem"][..],
        &["--etcd-key", "/k.pem"][..],
        &["--etcd-username", "meshd"][..],
        &["--etcd-password", "pw"][..],
    ] {
        let err = parse(incomplete).expect_err("an incomplete pair is refused");
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{incomplete:?}: {err}"
        );
    }
}
