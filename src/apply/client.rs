//! A client of meshd's App Mesh API (restJson1, `/v20190125/…`), making the calls any
//! user could make. Requests are signed with SigV4 when the standard AWS credentials
//! chain (environment, profile, …) yields credentials, and sent unsigned otherwise.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::Method;
use serde_json::{Value, json};

use super::desired::Tag;
use crate::api::list_member;
use crate::model::{ResourceKey, ResourceKind};

/// Why a call to the API failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// meshd could not be reached.
    #[error("{endpoint} cannot be reached: {message}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The transport's reason.
        message: String,
    },
    /// The API refused the call.
    #[error("{status} {error_type}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// `x-amzn-ErrorType`.
        error_type: String,
        /// The API's message.
        message: String,
    },
    /// The API's answer is not what the API model says.
    #[error("unexpected answer from {url}: {message}")]
    Answer {
        /// The request.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl ClientError {
    /// Whether this is the API's NotFoundException.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Refused { status: 404, .. })
    }
}

/// A connection to one meshd's App Mesh API.
pub struct Client {
    endpoint: String,
    http: reqwest::Client,
    credentials: Option<Credentials>,
    region: String,
}

/// The API path of a resource kind's collection in `key`'s mesh (or parent).
fn collection_path(key: &ResourceKey) -> String {
    let mesh = encode(&key.mesh);
    match key.kind {
        ResourceKind::Mesh => "/v20190125/meshes".to_string(),
        ResourceKind::Route => format!(
            "/v20190125/meshes/{mesh}/virtualRouter/{}/routes",
            encode(&key.parent)
        ),
        ResourceKind::GatewayRoute => format!(
            "/v20190125/meshes/{mesh}/virtualGateway/{}/gatewayRoutes",
            encode(&key.parent)
        ),
        kind => format!("/v20190125/meshes/{mesh}/{}", list_member(kind)),
    }
}

fn item_path(key: &ResourceKey) -> String {
    match key.kind {
        ResourceKind::Mesh => format!("/v20190125/meshes/{}", encode(&key.mesh)),
        _ => format!("{}/{}", collection_path(key), encode(&key.name)),
    }
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Client {
    /// A client of the API at `endpoint` (`http://127.0.0.1:8080`), with the credentials
    /// and region of the standard AWS chain (region `us-east-1` if none is configured).
    pub async fn connect(endpoint: &str) -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let region = config
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
        let credentials = match config.credentials_provider() {
            Some(provider) => provider.provide_credentials().await.ok(),
            None => None,
        };
        Client::new(endpoint, credentials, &region)
    }

    /// A client of the API at `endpoint` signing with `credentials` for `region` (unsigned
    /// without credentials).
    pub fn new(endpoint: &str, credentials: Option<Credentials>, region: &str) -> Client {
        Client {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            credentials,
            region: region.to_string(),
        }
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.endpoint);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut headers: Vec<(String, String)> = vec![];
        if !bytes.is_empty() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        if let Some(credentials) = &self.credentials {
            let host = url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default()
                .to_string();
            headers.push(("host".into(), host));
            let identity = credentials.clone().into();
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(&self.region)
                .name("appmesh")
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .map_err(|e| self.unreachable(e.to_string()))?
                .into();
            let signable = SignableRequest::new(
                method.as_str(),
                &url,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                SignableBody::Bytes(&bytes),
            )
            .map_err(|e| self.unreachable(e.to_string()))?;
            let (instructions, _) = sign(signable, &params)
                .map_err(|e| self.unreachable(e.to_string()))?
                .into_parts();
            for (name, value) in instructions.headers() {
                headers.push((name.to_string(), value.to_string()));
            }
            headers.retain(|(name, _)| name != "host");
        }
        let mut request = self.http.request(method, &url).body(bytes);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let text = response
            .text()
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| ClientError::Answer {
                url: url.clone(),
                message: format!("{e}: {text}"),
            })?
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(ClientError::Refused {
            status,
            error_type: error_type.unwrap_or_else(|| "UnknownError".into()),
            message: value
                .get("message")
                .or_else(|| value.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or(&text)
                .to_string(),
        })
    }

    fn unreachable(&self, message: String) -> ClientError {
        ClientError::Unreachable {
            endpoint: self.endpoint.clone(),
            message,
        }
    }

    /// `GET path` of meshd's own views (`/meshd/v1/...`), signed like every call.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// Describes one resource (its `*Data`), or `None` if it does not exist.
    pub async fn describe(&self, key: &ResourceKey) -> Result<Option<Value>, ClientError> {
        match self.call(Method::GET, &item_path(key), None).await {
            Ok(value) => Ok(Some(value)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Lists the names of the resources of `kind` in `mesh` (under `parent` for routes
    /// and gateway routes), every page.
    pub async fn list(
        &self,
        kind: ResourceKind,
        mesh: &str,
        parent: &str,
    ) -> Result<Vec<String>, ClientError> {
        let scope = ResourceKey::child(kind, mesh, parent, "");
        let base = collection_path(&scope);
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let path = match &token {
                Some(token) => format!("{base}?nextToken={}", encode(token)),
                None => base.clone(),
            };
            let page = self.call(Method::GET, &path, None).await?;
            let items = page
                .get(list_member(kind))
                .and_then(Value::as_array)
                .ok_or_else(|| ClientError::Answer {
                    url: path.clone(),
                    message: format!("no {} list", list_member(kind)),
                })?;
            let field = match kind {
                ResourceKind::Mesh => "meshName",
                kind => kind.name_field(),
            };
            names.extend(
                items
                    .iter()
                    .filter_map(|item| item.get(field)?.as_str().map(String::from)),
            );
            token = page
                .get("nextToken")
                .and_then(Value::as_str)
                .map(String::from);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// Creates `key` with `spec` and `tags`.
    pub async fn create(
        &self,
        key: &ResourceKey,
        spec: &Value,
        tags: &[Tag],
    ) -> Result<Value, ClientError> {
        let mut body = json!({ "spec": spec });
        let name_field = match key.kind {
            ResourceKind::Mesh => "meshName",
            kind => kind.name_field(),
        };
        body[name_field] = Value::String(key.name.clone());
        if !tags.is_empty() {
            body["tags"] = serde_json::to_value(tags).expect("tags serialise");
        }
        self.call(Method::PUT, &collection_path(key), Some(body))
            .await
    }

    /// Replaces the spec of `key`.
    pub async fn update(&self, key: &ResourceKey, spec: &Value) -> Result<Value, ClientError> {
        self.call(Method::PUT, &item_path(key), Some(json!({ "spec": spec })))
            .await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &ResourceKey) -> Result<Value, ClientError> {
        self.call(Method::DELETE, &item_path(key), None).await
    }
}
