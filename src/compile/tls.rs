//! TLS: a listener's `tls` becomes a downstream TLS context on its filter chain; a client
//! policy becomes an upstream TLS context on the egress cluster.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, TlsCertificate, UpstreamTlsContext,
    common_tls_context::ValidationContextType, subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::BoolValue;

use crate::model::spec::{
    ClientPolicyTls, ClientTlsCertificate, ListenerTlsCertificate, ListenerTlsValidationContext,
    SubjectAlternativeNames, TlsValidationContext,
};

use super::envoy::{ads_config_source, sds_config_source};
use crate::certificates::trust_secret_name;

fn file(path: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    })
}

fn sds_secret(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(sds_config_source()),
    }
}

/// A secret meshd serves itself over the ADS stream (an ACM certificate or trust).
fn ads_secret(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ads_config_source()),
    }
}

/// Whether `secret` is one meshd serves over ADS (not the local SDS server's).
pub fn is_ads_secret(secret: &SdsSecretConfig) -> bool {
    use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
    secret
        .sds_config
        .as_ref()
        .and_then(|source| source.config_source_specifier.as_ref())
        .is_some_and(|specifier| matches!(specifier, ConfigSourceSpecifier::Ads(_)))
}

/// Each name matched exactly as a DNS or a URI SAN (App Mesh does not say which kind a
/// name is; SPIFFE ids are URIs, hostnames are DNS names).
fn san_matchers(names: &[String]) -> Vec<SubjectAltNameMatcher> {
    names
        .iter()
        .flat_map(|name| {
            [SanType::Dns, SanType::Uri].map(|san_type| SubjectAltNameMatcher {
                san_type: san_type as i32,
                matcher: Some(StringMatcher {
                    match_pattern: Some(MatchPattern::Exact(name.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
        .collect()
}

fn exact_sans(names: &Option<SubjectAlternativeNames>) -> Vec<String> {
    names
        .as_ref()
        .map(|n| n.r#match.exact.clone())
        .unwrap_or_default()
}

/// Why a TLS setting cannot be given to Envoy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A union with no member set: validation refuses it, but a spec built in code
    /// without validation can still hold one.
    #[error("the {0} sets none of its members")]
    EmptyUnion(&'static str),
}

fn tls_certificate(certificate: &ListenerTlsCertificate) -> Result<CertificateSource, TlsError> {
    if let Some(file_cert) = &certificate.file {
        return Ok(CertificateSource::File(Box::new(TlsCertificate {
            certificate_chain: file(&file_cert.certificate_chain),
            private_key: file(&file_cert.private_key),
            ..Default::default()
        })));
    }
    if let Some(sds) = &certificate.sds {
        return Ok(CertificateSource::Sds(Box::new(sds_secret(
            &sds.secret_name,
        ))));
    }
    match &certificate.acm {
        // Served over ADS by meshd from its certificate source, named after the ARN.
        Some(acm) => Ok(CertificateSource::Sds(Box::new(ads_secret(
            &acm.certificate_arn,
        )))),
        None => Err(TlsError::EmptyUnion("listener TLS certificate")),
    }
}

enum CertificateSource {
    File(Box<TlsCertificate>),
    Sds(Box<SdsSecretConfig>),
}

fn with_certificate(context: &mut CommonTlsContext, source: CertificateSource) {
    match source {
        CertificateSource::File(certificate) => context.tls_certificates.push(*certificate),
        CertificateSource::Sds(secret) => context.tls_certificate_sds_secret_configs.push(*secret),
    }
}

/// The downstream context of a listener's TLS (mode STRICT or PERMISSIVE): its certificate
/// and, with `validation`, mutual TLS checking the client's certificate and SANs.
pub fn downstream(
    certificate: &ListenerTlsCertificate,
    validation: Option<&ListenerTlsValidationContext>,
) -> Result<DownstreamTlsContext, TlsError> {
    let mut common = CommonTlsContext::default();
    with_certificate(&mut common, tls_certificate(certificate)?);
    let mut require_client_certificate = None;
    if let Some(validation) = validation {
        let sans = san_matchers(&exact_sans(&validation.subject_alternative_names));
        common.validation_context_type =
            Some(match (&validation.trust.file, &validation.trust.sds) {
                (Some(trust), _) => {
                    ValidationContextType::ValidationContext(CertificateValidationContext {
                        trusted_ca: file(&trust.certificate_chain),
                        match_typed_subject_alt_names: sans,
                        ..Default::default()
                    })
                }
                (None, Some(sds)) if sans.is_empty() => {
                    ValidationContextType::ValidationContextSdsSecretConfig(sds_secret(
                        &sds.secret_name,
                    ))
                }
                (None, Some(sds)) => combined(sds_secret(&sds.secret_name), sans),
                (None, None) => return Err(TlsError::EmptyUnion("listener TLS trust")),
            });
        require_client_certificate = Some(BoolValue { value: true });
    }
    Ok(DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate,
        ..Default::default()
    })
}

fn combined(secret: SdsSecretConfig, sans: Vec<SubjectAltNameMatcher>) -> ValidationContextType {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::CombinedCertificateValidationContext;
    ValidationContextType::CombinedValidationContext(CombinedCertificateValidationContext {
        default_validation_context: Some(CertificateValidationContext {
            match_typed_subject_alt_names: sans,
            ..Default::default()
        }),
        validation_context_sds_secret_config: Some(secret),
        ..Default::default()
    })
}

/// The upstream context of a client policy: validate the server against the trust with
/// the policy's SANs (by default, the target's DNS hostname), and present the client
/// certificate when there is one. `sni` is the target's hostname.
pub fn upstream(
    policy: &ClientPolicyTls,
    default_san: Option<&str>,
    sni: &str,
) -> Result<UpstreamTlsContext, TlsError> {
    let mut common = CommonTlsContext::default();
    if let Some(certificate) = &policy.certificate {
        with_certificate(&mut common, client_certificate(certificate)?);
    }
    let validation: &TlsValidationContext = &policy.validation;
    let mut sans = exact_sans(&validation.subject_alternative_names);
    if sans.is_empty() {
        sans.extend(default_san.map(str::to_string));
    }
    let sans = san_matchers(&sans);
    common.validation_context_type = Some(match (&validation.trust.file, &validation.trust.sds) {
        (Some(trust), _) => {
            ValidationContextType::ValidationContext(CertificateValidationContext {
                trusted_ca: file(&trust.certificate_chain),
                match_typed_subject_alt_names: sans,
                ..Default::default()
            })
        }
        (None, Some(sds)) => combined(sds_secret(&sds.secret_name), sans),
        (None, None) => match &validation.trust.acm {
            // The CAs' certificates, served over ADS by meshd as one secret.
            Some(acm) => combined(
                ads_secret(&trust_secret_name(&acm.certificate_authority_arns)),
                sans,
            ),
            None => return Err(TlsError::EmptyUnion("client policy TLS trust")),
        },
    });
    Ok(UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: sni.to_string(),
        ..Default::default()
    })
}

fn client_certificate(certificate: &ClientTlsCertificate) -> Result<CertificateSource, TlsError> {
    match (&certificate.file, &certificate.sds) {
        (Some(file_cert), _) => Ok(CertificateSource::File(Box::new(TlsCertificate {
            certificate_chain: file(&file_cert.certificate_chain),
            private_key: file(&file_cert.private_key),
            ..Default::default()
        }))),
        (None, Some(sds)) => Ok(CertificateSource::Sds(Box::new(sds_secret(
            &sds.secret_name,
        )))),
        (None, None) => Err(TlsError::EmptyUnion("client TLS certificate")),
    }
}

/// The upstream context a client uses towards a TLS listener when no client policy
/// applies: TLS with the target's hostname as SNI, the certificate not validated.
pub fn unvalidated_upstream(sni: &str) -> UpstreamTlsContext {
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext::default()),
        sni: sni.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::{
        ClientTlsCertificate, ListenerTlsCertificate, ListenerTlsFileCertificate,
        ListenerTlsValidationContextTrust, TlsValidationContextTrust,
    };

    /// Unions built in code without validation, with no member set, are errors (they
    /// were `unreachable!` panics).
    #[test]
    fn empty_unions_are_errors_not_panics() {
        let certificate = ListenerTlsCertificate {
            file: Some(ListenerTlsFileCertificate {
                certificate_chain: "/c.pem".into(),
                private_key: "/k.pem".into(),
            }),
            ..Default::default()
        };
        let validation = ListenerTlsValidationContext {
            subject_alternative_names: None,
            trust: ListenerTlsValidationContextTrust::default(),
        };
        assert_eq!(
            downstream(&certificate, Some(&validation)),
            Err(TlsError::EmptyUnion("listener TLS trust"))
        );
        let policy = ClientPolicyTls {
            certificate: Some(ClientTlsCertificate::default()),
            enforce: None,
            ports: None,
            validation: TlsValidationContext {
                subject_alternative_names: None,
                trust: TlsValidationContextTrust::default(),
            },
        };
        assert_eq!(
            upstream(&policy, None, "a.local"),
            Err(TlsError::EmptyUnion("client TLS certificate"))
        );
    }
}
