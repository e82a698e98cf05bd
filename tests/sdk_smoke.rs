mod common;

#[tokio::test]
async fn sdk_creates_and_describes_a_mesh() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    let created = client.create_mesh().mesh_name("m1").send().await.unwrap();
    let mesh = created.mesh.unwrap();
    assert_eq!(mesh.mesh_name, "m1");
    assert_eq!(mesh.metadata.unwrap().version, 1);
    let err = client
        .describe_mesh()
        .mesh_name("nope")
        .send()
        .await
        .unwrap_err();
    let service_err = err.into_service_error();
    assert!(service_err.is_not_found_exception(), "{service_err:?}");
}
