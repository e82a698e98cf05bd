//! The secrets a compiled proxy names over ADS (ACM certificates on its listeners, ACM
//! trust on its clusters), found in its compiled listeners and clusters, so that the
//! hub can serve exactly those, and only to this proxy.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, Secret, TlsCertificate,
    UpstreamTlsContext, common_tls_context::ValidationContextType, secret,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use crate::certificates::{SecretMaterial, SecretQuery, Subject, TRUST_NAME_SEPARATOR};

use super::output::ProxyConfig;
use super::tls::is_ads_secret;

fn decoded<M: Message + Name + Default>(any: &Any) -> Option<M> {
    (any.type_url == M::type_url())
        .then(|| M::decode(any.value.as_slice()).ok())
        .flatten()
}

/// Adds the ADS secrets `common` names to `found`: certificates for `subject`, trusts.
fn collect(
    common: &CommonTlsContext,
    subject: &Subject,
    found: &mut BTreeMap<String, SecretQuery>,
) {
    for secret in &common.tls_certificate_sds_secret_configs {
        if is_ads_secret(secret) {
            found.insert(
                secret.name.clone(),
                SecretQuery::Certificate {
                    arn: secret.name.clone(),
                    subject: subject.clone(),
                },
            );
        }
    }
    let trust = match &common.validation_context_type {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(secret)) => Some(secret),
        Some(ValidationContextType::CombinedValidationContext(combined)) => {
            combined.validation_context_sds_secret_config.as_ref()
        }
        _ => None,
    };
    if let Some(secret) = trust.filter(|secret| is_ads_secret(secret)) {
        found.insert(
            secret.name.clone(),
            SecretQuery::Trust {
                arns: secret
                    .name
                    .split(TRUST_NAME_SEPARATOR)
                    .map(str::to_string)
                    .collect(),
            },
        );
    }
}

/// Every ADS secret `config`'s listeners and clusters name, by name; certificates are
/// issued for `subject`.
pub fn named(config: &ProxyConfig, subject: &Subject) -> BTreeMap<String, SecretQuery> {
    let mut found = BTreeMap::new();
    let downstream = config
        .listeners
        .values()
        .flat_map(|listener| &listener.filter_chains)
        .filter_map(|chain| chain.transport_socket.as_ref());
    for socket in downstream {
        if let Some(context) = socket_config(socket).and_then(decoded::<DownstreamTlsContext>)
            && let Some(common) = &context.common_tls_context
        {
            collect(common, subject, &mut found);
        }
    }
    let upstream = config
        .clusters
        .values()
        .filter_map(|cluster| cluster.transport_socket.as_ref());
    for socket in upstream {
        if let Some(context) = socket_config(socket).and_then(decoded::<UpstreamTlsContext>)
            && let Some(common) = &context.common_tls_context
        {
            collect(common, subject, &mut found);
        }
    }
    found
}

fn socket_config(
    socket: &envoy_types::pb::envoy::config::core::v3::TransportSocket,
) -> Option<&Any> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    match &socket.config_type {
        Some(ConfigType::TypedConfig(any)) => Some(any),
        None => None,
    }
}

/// The SDS secret `name` serving `material`: a certificate chain and key, or a
/// validation context trusting the CA certificates (both inline: they never touch the
/// proxy's disk).
pub fn secret(name: &str, material: &SecretMaterial) -> Secret {
    let inline = |text: &str| {
        Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString(text.to_string())),
            ..Default::default()
        })
    };
    let r#type = match material {
        SecretMaterial::Certificate { chain, key, .. } => {
            secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: inline(chain),
                private_key: inline(key),
                ..Default::default()
            })
        }
        SecretMaterial::Trust { bundle, .. } => {
            secret::Type::ValidationContext(CertificateValidationContext {
                trusted_ca: inline(bundle),
                ..Default::default()
            })
        }
    };
    Secret {
        name: name.to_string(),
        r#type: Some(r#type),
    }
}
