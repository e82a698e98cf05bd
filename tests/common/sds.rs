//! A small SDS server of the tests' own (as SPIRE's agent is to App Mesh's Envoy): on a
//! Unix socket, it answers every secret a proxy asks for with one TLS certificate.

use std::path::Path;
use std::pin::Pin;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    Secret, TlsCertificate, secret,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use tokio_stream::{Stream, StreamExt};

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

struct Server {
    certificate: String,
    key: String,
}

fn inline(text: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_string())),
        ..Default::default()
    })
}

impl Server {
    fn answer(&self, request: &DiscoveryRequest) -> DiscoveryResponse {
        let resources = request
            .resource_names
            .iter()
            .map(|name| {
                let secret = Secret {
                    name: name.clone(),
                    r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                        certificate_chain: inline(&self.certificate),
                        private_key: inline(&self.key),
                        ..Default::default()
                    })),
                };
                Any {
                    type_url: Secret::type_url(),
                    value: secret.encode_to_vec(),
                }
            })
            .collect();
        DiscoveryResponse {
            version_info: "1".into(),
            resources,
            type_url: Secret::type_url(),
            nonce: format!("n-{}", request.resource_names.join(",")),
            ..Default::default()
        }
    }
}

/// The server as tonic serves it.
#[derive(Clone)]
struct Sds(std::sync::Arc<Server>);

#[tonic::async_trait]
impl SecretDiscoveryService for Sds {
    type DeltaSecretsStream = Responses<DeltaDiscoveryResponse>;
    type StreamSecretsStream = Responses<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        _: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaSecretsStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("state of the world only"))
    }

    async fn stream_secrets(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamSecretsStream>, tonic::Status> {
        let server = self.0.clone();
        let responses = request
            .into_inner()
            .filter_map(move |request| match request {
                // An ACK of what was sent asks for nothing new.
                Ok(request)
                    if request.version_info == "1" && !request.response_nonce.is_empty() =>
                {
                    None
                }
                Ok(request) => Some(Ok(server.answer(&request))),
                Err(status) => Some(Err(status)),
            });
        Ok(tonic::Response::new(Box::pin(responses)))
    }

    async fn fetch_secrets(
        &self,
        request: tonic::Request<DiscoveryRequest>,
    ) -> Result<tonic::Response<DiscoveryResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.0.answer(request.get_ref())))
    }
}

/// Starts the SDS server on a Unix socket at `path`, serving a fresh self-signed
/// certificate for `localhost`; it runs until the test's runtime ends.
pub fn start(path: &Path) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("a certificate can be generated");
    let server = std::sync::Arc::new(Server {
        certificate: certified.cert.pem(),
        key: certified.signing_key.serialize_pem(),
    });
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path).expect("the SDS socket can be bound");
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SecretDiscoveryServiceServer::new(Sds(server)))
            .serve_with_incoming(incoming),
    );
}
