//! `meshd serve --cloud-map aws` against moto's server, standing in for AWS Cloud Map:
//! meshd polls `DiscoverInstances` for what its proxies need, a real Envoy gets the
//! instances by EDS, and when Cloud Map cannot be reached meshd keeps the last ones and
//! says it is stale, then catches up once it is back.

mod common;

use serde_json::Value;

use common::cli::{AwsCli, SECRET, require_cli};
use common::cloud_map::{
    WAIT, cluster_of, create_mesh, create_service, deregister, namespace_id, register,
    wait_for_endpoints,
};
use common::envoy::{Envoy, Mode, eventually, meshd_view, require_envoy};
use common::moto::{Moto, meshd_for_moto};

/// Namespace `local.test` with service `backend` in moto; the service's id.
async fn create_backend(moto: &AwsCli) -> String {
    moto.ok(&["create-http-namespace", "--name", "local.test"])
        .await;
    let namespace = namespace_id(moto, "local.test").await;
    create_service(moto, &namespace, "backend").await
}

/// meshd's status of Cloud Map service `backend`, once it satisfies `check`.
async fn backend_status(
    api: std::net::SocketAddr,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, WAIT, || async {
        let status = meshd_view(api, "cloud-map").await;
        match status
            .as_array()
            .and_then(|list| list.iter().find(|s| s["service"] == "backend"))
        {
            Some(backend) if check(backend) => Ok(backend.clone()),
            _ => Err(status.to_string()),
        }
    })
    .await
}

#[tokio::test]
async fn instances_in_aws_cloud_map_reach_envoy_and_survive_an_outage() {
    require_cli().await;
    require_envoy();
    let _serial = common::envoy::ENVOY_LOCK.lock().await;
    let mut moto = Moto::start().await;
    let cloud_map = AwsCli::at(&moto.endpoint(), "servicediscovery", SECRET);
    let service = create_backend(&cloud_map).await;
    register(
        &cloud_map,
        &service,
        "i1",
        "AWS_INSTANCE_IPV4=127.0.0.11,AWS_INSTANCE_PORT=8080,version=v1",
    )
    .await;
    register(
        &cloud_map,
        &service,
        "i2",
        "AWS_INSTANCE_IPV4=127.0.0.12,AWS_INSTANCE_PORT=8080,version=v2",
    )
    .await;

    let endpoint = moto.endpoint();
    let meshd = meshd_for_moto(&[
        "--store",
        "memory",
        "--xds-addr",
        "127.0.0.1:0",
        "--region",
        common::REGION,
        "--cloud-map",
        "aws",
        "--cloud-map-endpoint",
        &endpoint,
        "--cloud-map-interval",
        "1s",
    ])
    .await;
    let appmesh = AwsCli::at(&format!("http://{}", meshd.api), "appmesh", SECRET);
    create_mesh(&appmesh).await;
    let xds = meshd.xds_addr().await.to_string();
    let envoy = Envoy::start(&common::arn("mesh/m/virtualNode/client"), &xds, Mode::Sotw).await;
    let v1 = cluster_of(&envoy, "v1").await;

    // The node's attributes are DiscoverInstances' QueryParameters.
    wait_for_endpoints(&envoy, &v1, &["127.0.0.11:8080"]).await;
    register(
        &cloud_map,
        &service,
        "i3",
        "AWS_INSTANCE_IPV4=127.0.0.13,AWS_INSTANCE_PORT=8080,version=v1",
    )
    .await;
    wait_for_endpoints(&envoy, &v1, &["127.0.0.11:8080", "127.0.0.13:8080"]).await;
    deregister(&cloud_map, &service, "i1").await;
    wait_for_endpoints(&envoy, &v1, &["127.0.0.13:8080"]).await;
    // i2 and i3: one query follows every instance, the v1 one only i3. Each
    // query polls on its own schedule, so the unfiltered one may still hold i1
    // for up to an interval after Envoy lost it.
    let status = backend_status(meshd.api, "meshd to follow i2 and i3", |s| {
        s["stale"] == false && s["lastSuccess"].is_u64() && s["instances"] == 2
    })
    .await;
    assert_eq!(status["namespace"], "local.test", "{status}");
    assert_eq!(status["source"], "aws", "{status}");

    // Cloud Map unreachable: the last endpoints stay, and the status says stale.
    moto.stop().await;
    let status = backend_status(meshd.api, "the status to say stale", |s| s["stale"] == true).await;
    assert!(status["error"].is_string(), "{status}");
    wait_for_endpoints(&envoy, &v1, &["127.0.0.13:8080"]).await;

    // Back (empty, as moto keeps nothing): meshd catches up with what it holds now.
    moto.restart().await;
    let service = create_backend(&cloud_map).await;
    register(
        &cloud_map,
        &service,
        "i4",
        "AWS_INSTANCE_IPV4=127.0.0.14,AWS_INSTANCE_PORT=8080,version=v1",
    )
    .await;
    wait_for_endpoints(&envoy, &v1, &["127.0.0.14:8080"]).await;
    backend_status(meshd.api, "the status to be fresh again", |s| {
        s["stale"] == false && s["instances"] == 1
    })
    .await;
}
