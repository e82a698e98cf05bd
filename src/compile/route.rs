//! Routes: App Mesh routes (HTTP, HTTP/2, gRPC) and gateway routes become Envoy routes,
//! with App Mesh's defaults (15 s request timeout) and its retry-event mapping.

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RetryPolicy, Route, RouteAction, RouteMatch,
    WeightedCluster, header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier, retry_policy, route, route_action,
    route_match::PathSpecifier, weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use envoy_types::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

use crate::model::spec::*;

use super::envoy::{any, duration, seconds};

/// App Mesh's per-request timeout when a route or listener sets none.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: i64 = 15;

/// A weighted target already resolved to the client's cluster name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    /// The egress cluster of the target virtual node's listener.
    pub cluster: String,
    /// The App Mesh weight (0 to 100; zero weights are kept).
    pub weight: u32,
}

fn string_matcher(pattern: MatchPattern) -> Option<StringMatcher> {
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    })
}

fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_string(),
        ..Default::default()
    }
}

fn header_exact(name: &str, value: &str) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(
            string_matcher(MatchPattern::Exact(value.to_string())).expect("some"),
        )),
        ..Default::default()
    }
}

/// An App Mesh header (or gRPC metadata) match.
fn header(name: &str, method: Option<&HeaderMatchMethod>, invert: bool) -> HeaderMatcher {
    let specifier = match method {
        None => HeaderMatchSpecifier::PresentMatch(true),
        Some(method) => {
            if let Some(exact) = &method.exact {
                HeaderMatchSpecifier::StringMatch(
                    string_matcher(MatchPattern::Exact(exact.clone())).expect("some"),
                )
            } else if let Some(prefix) = &method.prefix {
                HeaderMatchSpecifier::StringMatch(
                    string_matcher(MatchPattern::Prefix(prefix.clone())).expect("some"),
                )
            } else if let Some(suffix) = &method.suffix {
                HeaderMatchSpecifier::StringMatch(
                    string_matcher(MatchPattern::Suffix(suffix.clone())).expect("some"),
                )
            } else if let Some(pattern) = &method.regex {
                HeaderMatchSpecifier::StringMatch(
                    string_matcher(MatchPattern::SafeRegex(regex(pattern))).expect("some"),
                )
            } else if let Some(range) = &method.range {
                HeaderMatchSpecifier::RangeMatch(Int64Range {
                    start: range.start,
                    end: range.end,
                })
            } else {
                HeaderMatchSpecifier::PresentMatch(true)
            }
        }
    };
    HeaderMatcher {
        name: name.to_string(),
        invert_match: invert,
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

fn query(parameters: &[HttpQueryParameter]) -> Vec<QueryParameterMatcher> {
    parameters
        .iter()
        .map(|parameter| QueryParameterMatcher {
            name: parameter.name.clone(),
            query_parameter_match_specifier: Some(
                match parameter.r#match.as_ref().and_then(|m| m.exact.clone()) {
                    Some(exact) => QueryParameterMatchSpecifier::StringMatch(
                        string_matcher(MatchPattern::Exact(exact)).expect("some"),
                    ),
                    None => QueryParameterMatchSpecifier::PresentMatch(true),
                },
            ),
        })
        .collect()
}

fn path_specifier(prefix: Option<&str>, path: Option<&HttpPathMatch>) -> PathSpecifier {
    match (prefix, path) {
        (
            _,
            Some(HttpPathMatch {
                exact: Some(exact), ..
            }),
        ) => PathSpecifier::Path(exact.clone()),
        (
            _,
            Some(HttpPathMatch {
                regex: Some(pattern),
                ..
            }),
        ) => PathSpecifier::SafeRegex(regex(pattern)),
        (Some(prefix), _) => PathSpecifier::Prefix(prefix.to_string()),
        _ => PathSpecifier::Prefix("/".to_string()),
    }
}

/// The match of an HTTP or HTTP/2 route.
pub fn http_match(m: &HttpRouteMatch) -> RouteMatch {
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .flatten()
        .map(|h| header(&h.name, h.r#match.as_ref(), h.invert.unwrap_or(false)))
        .collect();
    if let Some(method) = m.method {
        headers.push(header_exact(":method", method.as_str()));
    }
    if let Some(scheme) = m.scheme {
        headers.push(header_exact(":scheme", scheme.as_str()));
    }
    RouteMatch {
        path_specifier: Some(path_specifier(m.prefix.as_deref(), m.path.as_ref())),
        headers,
        query_parameters: query(m.query_parameters.as_deref().unwrap_or_default()),
        ..Default::default()
    }
}

/// The match of a gRPC route: `/<service>/<method>` paths and metadata as headers.
pub fn grpc_match(m: &GrpcRouteMatch) -> RouteMatch {
    let path = match (&m.service_name, &m.method_name) {
        (Some(service), Some(method)) => PathSpecifier::Path(format!("/{service}/{method}")),
        (Some(service), None) => PathSpecifier::Prefix(format!("/{service}/")),
        _ => PathSpecifier::Prefix("/".to_string()),
    };
    RouteMatch {
        path_specifier: Some(path),
        headers: m
            .metadata
            .iter()
            .flatten()
            .map(|h| {
                header(
                    &h.name,
                    grpc_method(h.r#match.as_ref()).as_ref(),
                    h.invert.unwrap_or(false),
                )
            })
            .collect(),
        ..Default::default()
    }
}

fn grpc_method(method: Option<&GrpcRouteMetadataMatchMethod>) -> Option<HeaderMatchMethod> {
    method.map(|m| HeaderMatchMethod {
        exact: m.exact.clone(),
        prefix: m.prefix.clone(),
        range: m.range.clone(),
        regex: m.regex.clone(),
        suffix: m.suffix.clone(),
    })
}

fn weighted(targets: &[ResolvedTarget]) -> route_action::ClusterSpecifier {
    route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
        clusters: targets
            .iter()
            .map(|target| ClusterWeight {
                name: target.cluster.clone(),
                weight: Some(UInt32Value {
                    value: target.weight,
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// App Mesh HTTP retry events as Envoy's `retry_on` conditions and status codes.
fn http_retry_events(events: &[String], retry_on: &mut Vec<&'static str>, codes: &mut Vec<u32>) {
    for event in events {
        match event.as_str() {
            "server-error" => {
                codes.extend([500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511]);
                retry_on.extend(["retriable-status-codes", "reset"]);
            }
            "gateway-error" => {
                codes.extend([502, 503, 504]);
                retry_on.extend(["retriable-status-codes", "reset"]);
            }
            "client-error" => {
                codes.push(409);
                retry_on.push("retriable-status-codes");
            }
            "stream-error" => retry_on.push("refused-stream"),
            _ => {}
        }
    }
}

fn retry_policy(
    retry_on: Vec<&'static str>,
    mut codes: Vec<u32>,
    retries: i64,
    per_try: Option<ProtoDuration>,
) -> RetryPolicy {
    let mut retry_on = retry_on;
    retry_on.sort_unstable();
    retry_on.dedup();
    codes.sort_unstable();
    codes.dedup();
    RetryPolicy {
        retry_on: retry_on.join(","),
        num_retries: Some(UInt32Value {
            value: retries.clamp(0, u32::MAX as i64) as u32,
        }),
        per_try_timeout: per_try,
        retry_host_predicate: vec![retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".to_string(),
            config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                any(&PreviousHostsPredicate {}),
            )),
        }],
        host_selection_retry_max_attempts: 5,
        retriable_status_codes: codes,
        ..Default::default()
    }
}

/// The retry policy of an HTTP or HTTP/2 route.
pub fn http_retry(policy: &HttpRetryPolicy) -> RetryPolicy {
    events_retry(
        &[],
        policy.http_retry_events.as_deref(),
        policy.tcp_retry_events.as_deref(),
        policy.max_retries,
        &policy.per_retry_timeout,
    )
}

/// The retry policy of a gRPC route.
pub fn grpc_retry(policy: &GrpcRetryPolicy) -> RetryPolicy {
    events_retry(
        policy.grpc_retry_events.as_deref().unwrap_or_default(),
        policy.http_retry_events.as_deref(),
        policy.tcp_retry_events.as_deref(),
        policy.max_retries,
        &policy.per_retry_timeout,
    )
}

/// A retry policy from App Mesh's gRPC, HTTP and TCP retry events.
fn events_retry(
    grpc: &[GrpcRetryPolicyEvent],
    http: Option<&[String]>,
    tcp: Option<&[TcpRetryPolicyEvent]>,
    max_retries: i64,
    per_retry_timeout: &Duration,
) -> RetryPolicy {
    let mut retry_on: Vec<&'static str> = grpc
        .iter()
        .map(|event| match event {
            GrpcRetryPolicyEvent::Cancelled => "cancelled",
            GrpcRetryPolicyEvent::DeadlineExceeded => "deadline-exceeded",
            GrpcRetryPolicyEvent::Internal => "internal",
            GrpcRetryPolicyEvent::ResourceExhausted => "resource-exhausted",
            GrpcRetryPolicyEvent::Unavailable => "unavailable",
        })
        .collect();
    let mut codes = Vec::new();
    http_retry_events(http.unwrap_or_default(), &mut retry_on, &mut codes);
    if tcp.is_some_and(|events| !events.is_empty()) {
        retry_on.push("connect-failure");
    }
    retry_policy(retry_on, codes, max_retries, duration(per_retry_timeout))
}

/// An Envoy route named `name` matching `route_match` and splitting traffic by weight.
pub fn weighted_route(
    name: &str,
    route_match: RouteMatch,
    targets: &[ResolvedTarget],
    timeout: Option<&HttpTimeout>,
    retry: Option<RetryPolicy>,
) -> Route {
    let per_request = timeout
        .and_then(|t| t.per_request.as_ref())
        .and_then(duration)
        .unwrap_or_else(|| seconds(DEFAULT_REQUEST_TIMEOUT_SECONDS));
    Route {
        name: name.to_string(),
        r#match: Some(route_match),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(weighted(targets)),
            timeout: Some(per_request),
            idle_timeout: timeout.and_then(|t| t.idle.as_ref()).and_then(duration),
            retry_policy: retry,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A gRPC timeout expressed as the HTTP timeout shape (the members are the same).
pub fn grpc_timeout(timeout: &GrpcTimeout) -> HttpTimeout {
    HttpTimeout {
        idle: timeout.idle.clone(),
        per_request: timeout.per_request.clone(),
    }
}

/// A route to a single cluster for everything (`/`), as a virtual service provided
/// directly by a virtual node gets.
pub fn catch_all(name: &str, cluster: &str, timeout: Option<&HttpTimeout>) -> Route {
    weighted_route(
        name,
        RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        },
        &[ResolvedTarget {
            cluster: cluster.to_string(),
            weight: 100,
        }],
        timeout,
        None,
    )
}

fn escape_regex(text: &str) -> String {
    regex::escape(text)
}

/// A Host match that also accepts the host with a port (`svc.example.com:80`).
fn hostname_matcher(hostname: &GatewayRouteHostnameMatch) -> Option<HeaderMatcher> {
    let pattern = match (&hostname.exact, &hostname.suffix) {
        (Some(exact), _) => format!("^{}(:[0-9]+)?$", escape_regex(exact)),
        (None, Some(suffix)) => format!("^.*{}(:[0-9]+)?$", escape_regex(suffix)),
        (None, None) => return None,
    };
    Some(HeaderMatcher {
        name: ":authority".to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(
            string_matcher(MatchPattern::SafeRegex(regex(&pattern))).expect("some"),
        )),
        ..Default::default()
    })
}

/// How a gateway route hands the request to its virtual service.
#[derive(Debug, Clone)]
pub struct GatewayTarget {
    /// The self-redirect cluster of the gateway listener.
    pub cluster: String,
    /// The target virtual service.
    pub virtual_service: String,
}

fn gateway_action(
    target: &GatewayTarget,
    host_rewrite: bool,
) -> (RouteAction, Vec<HeaderValueOption>) {
    let mut action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
            target.cluster.clone(),
        )),
        timeout: Some(seconds(DEFAULT_REQUEST_TIMEOUT_SECONDS)),
        ..Default::default()
    };
    let mut headers = Vec::new();
    if host_rewrite {
        action.host_rewrite_specifier = Some(
            route_action::HostRewriteSpecifier::HostRewriteLiteral(target.virtual_service.clone()),
        );
    } else {
        headers.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: super::names::VIRTUAL_SERVICE_HEADER.to_string(),
                value: target.virtual_service.clone(),
                ..Default::default()
            }),
            append_action: header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        });
    }
    (action, headers)
}

/// An HTTP or HTTP/2 gateway route: its matches, App Mesh's default rewrites (prefix to
/// `/`, Host to the virtual service) or the configured ones, to the self-redirect cluster.
pub fn http_gateway_route(name: &str, route: &HttpGatewayRoute, target: &GatewayTarget) -> Route {
    let m = &route.r#match;
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .flatten()
        .map(|h| header(&h.name, h.r#match.as_ref(), h.invert.unwrap_or(false)))
        .collect();
    if let Some(method) = m.method {
        headers.push(header_exact(":method", method.as_str()));
    }
    headers.extend(m.hostname.as_ref().and_then(hostname_matcher));
    let route_match = RouteMatch {
        path_specifier: Some(path_specifier(m.prefix.as_deref(), m.path.as_ref())),
        headers,
        query_parameters: query(m.query_parameters.as_deref().unwrap_or_default()),
        ..Default::default()
    };
    let rewrite = route.action.rewrite.as_ref();
    let host_rewrite = rewrite
        .and_then(|r| r.hostname.as_ref())
        .and_then(|h| h.default_target_hostname)
        != Some(DefaultGatewayRouteRewrite::Disabled);
    let (mut action, headers_to_add) = gateway_action(target, host_rewrite);
    if let Some(prefix) = &m.prefix {
        let prefix_rewrite = rewrite.and_then(|r| r.prefix.as_ref());
        match prefix_rewrite {
            Some(HttpGatewayRoutePrefixRewrite {
                value: Some(value), ..
            }) => action.prefix_rewrite = value.clone(),
            Some(HttpGatewayRoutePrefixRewrite {
                default_prefix: Some(DefaultGatewayRouteRewrite::Disabled),
                ..
            }) => {}
            _ if prefix != "/" => action.prefix_rewrite = "/".to_string(),
            _ => {}
        }
    }
    if let (Some(path), Some(exact)) = (
        &m.path,
        rewrite
            .and_then(|r| r.path.as_ref())
            .and_then(|p| p.exact.as_ref()),
    ) {
        match (&path.exact, &path.regex) {
            (Some(_), _) => action.prefix_rewrite = exact.clone(),
            (None, Some(pattern)) => {
                action.regex_rewrite = Some(RegexMatchAndSubstitute {
                    // Grouped, so that an alternation in the pattern still spans the whole path.
                    pattern: Some(regex(&format!("^(?:{pattern})$"))),
                    substitution: exact.clone(),
                })
            }
            _ => {}
        }
    }
    Route {
        name: name.to_string(),
        r#match: Some(route_match),
        action: Some(route::Action::Route(action)),
        request_headers_to_add: headers_to_add,
        ..Default::default()
    }
}

/// A gRPC gateway route.
pub fn grpc_gateway_route(name: &str, route: &GrpcGatewayRoute, target: &GatewayTarget) -> Route {
    let m = &route.r#match;
    let path = match &m.service_name {
        Some(service) => PathSpecifier::Prefix(format!("/{service}/")),
        None => PathSpecifier::Prefix("/".to_string()),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .metadata
        .iter()
        .flatten()
        .map(|h| {
            let method = h.r#match.as_ref().map(|m| HeaderMatchMethod {
                exact: m.exact.clone(),
                prefix: m.prefix.clone(),
                range: m.range.clone(),
                regex: m.regex.clone(),
                suffix: m.suffix.clone(),
            });
            header(&h.name, method.as_ref(), h.invert.unwrap_or(false))
        })
        .collect();
    headers.extend(m.hostname.as_ref().and_then(hostname_matcher));
    let host_rewrite = route
        .action
        .rewrite
        .as_ref()
        .and_then(|r| r.hostname.as_ref())
        .and_then(|h| h.default_target_hostname)
        != Some(DefaultGatewayRouteRewrite::Disabled);
    let (action, headers_to_add) = gateway_action(target, host_rewrite);
    Route {
        name: name.to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(path),
            headers,
            grpc: None,
            ..Default::default()
        }),
        action: Some(route::Action::Route(action)),
        request_headers_to_add: headers_to_add,
        ..Default::default()
    }
}

/// Adds a header match to every route: how a gateway's egress side picks the routes of
/// the virtual service named in `x-app-mesh-virtual-service`.
pub fn require_header(mut route: Route, name: &str, value: &str) -> Route {
    if let Some(m) = route.r#match.as_mut() {
        m.headers.push(header_exact(name, value));
    }
    route
}
