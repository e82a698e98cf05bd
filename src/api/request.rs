//! Reading a request: its query string, its JSON body and the spec inside it, each
//! turned into typed values or a `BadRequestException` that names the field.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::spec::*;
use crate::model::validate::{check_count, check_length, check_range, check_resource_name};
use crate::model::{ResourceKind, Spec, Validate, rules};

use super::duplicates::duplicate_member;
use super::error::ApiError;

/// A request's query string, decoded.
#[derive(Debug, Default, Clone)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Decodes a raw query string (RFC 3986 percent-encoding).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned();
        Query(pairs.collect())
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit` between 1 and `max`, or `max` when absent.
    pub fn limit(&self, max: i64) -> Result<usize, ApiError> {
        let Some(raw) = self.get("limit") else {
            return Ok(max as usize);
        };
        let limit: i64 = raw.parse().map_err(|_| {
            ApiError::bad_request(format!("limit: must be a whole number, not {raw:?}"))
        })?;
        check_range(limit, 1, max, "limit")?;
        Ok(limit as usize)
    }

    /// The `meshOwner` parameter, checked to be an account id (12 characters).
    pub fn mesh_owner(&self) -> Result<Option<&str>, ApiError> {
        match self.get("meshOwner") {
            Some(owner) => {
                check_length(owner, 12, 12, "meshOwner")?;
                Ok(Some(owner))
            }
            None => Ok(None),
        }
    }
}

/// A JSON request body: an object whose members are the operation's input members.
#[derive(Debug, Clone)]
pub struct Body(Map<String, Value>);

impl Body {
    /// Parses `bytes` (empty means `{}`) and refuses members outside `allowed`.
    pub fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        if let Some(path) = duplicate_member(bytes) {
            return Err(ApiError::bad_request(format!(
                "{path}: duplicate member; each member may be given once"
            )));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|err| {
            ApiError::bad_request(format!("the request body is not valid JSON: {err}"))
        })?;
        let Value::Object(members) = value else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        if let Some(unknown) = members.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(ApiError::bad_request(format!(
                "{unknown}: unknown field, expected one of {}",
                allowed.join(", ")
            )));
        }
        Ok(Body(members))
    }

    /// Takes member `name` as a `T`, with errors naming the member's path.
    pub fn take<T: DeserializeOwned + Serialize>(
        &mut self,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => deserialize_at(value, name).map(Some),
        }
    }

    /// Takes member `name`, which the operation requires.
    pub fn require<T: DeserializeOwned + Serialize>(&mut self, name: &str) -> Result<T, ApiError> {
        self.take(name)?
            .ok_or_else(|| ApiError::bad_request(format!("{name}: must be set")))
    }

    /// A digest of everything in the body except the client token: two requests with the
    /// same token are the same request only if their digests (and targets) agree.
    pub fn fingerprint(&self, operation: &str, target: &str) -> String {
        let mut members = self.0.clone();
        members.remove("clientToken");
        let canonical = Value::Object(members).to_string();
        let mut hasher = Sha256::new();
        for part in [operation, target, canonical.as_str()] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }

    /// Takes and checks the optional `clientToken`.
    pub fn client_token(&mut self) -> Result<Option<String>, ApiError> {
        let token: Option<String> = self.take("clientToken")?;
        if let Some(token) = &token {
            check_length(token, 1, 36, "clientToken")?;
            if !token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ApiError::bad_request(
                    "clientToken: may contain only letters, numbers, hyphens and underscores",
                ));
            }
        }
        Ok(token)
    }
}

fn deserialize_at<T: DeserializeOwned + Serialize>(value: Value, at: &str) -> Result<T, ApiError> {
    let input = value.clone();
    let typed: T = serde_path_to_error::deserialize(value).map_err(|err| {
        let inner = err.path().to_string();
        let path = if inner == "." || inner.is_empty() {
            at.to_string()
        } else if inner.starts_with('[') {
            format!("{at}{inner}")
        } else {
            format!("{at}.{inner}")
        };
        ApiError::bad_request(format!("{path}: {}", err.into_inner()))
    })?;
    // serde's derived structs also accept a JSON array (their members in order); the
    // protocol only has objects for structures, so refuse an array wherever one was read.
    let read = serde_json::to_value(&typed)
        .map_err(|err| ApiError::bad_request(format!("{at}: {err}")))?;
    check_objects(&input, &read, at)?;
    Ok(typed)
}

/// Fails where `input` has an array and `read` (the same value as deserialised and
/// serialised again) has an object.
fn check_objects(input: &Value, read: &Value, at: &str) -> Result<(), ApiError> {
    match (input, read) {
        (Value::Array(_), Value::Object(_)) => Err(ApiError::bad_request(format!(
            "{at}: invalid type: sequence, expected a structure"
        ))),
        (Value::Object(input), Value::Object(read)) => {
            for (name, value) in read {
                if let Some(given) = input.get(name) {
                    check_objects(given, value, &format!("{at}.{name}"))?;
                }
            }
            Ok(())
        }
        (Value::Array(input), Value::Array(read)) => {
            for (index, (given, value)) in input.iter().zip(read).enumerate() {
                check_objects(given, value, &format!("{at}[{index}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A resource name, as [`check_resource_name`] constrains it.
pub fn check_name(name: &str, field: &str) -> Result<(), ApiError> {
    check_resource_name(name, field)?;
    Ok(())
}

/// Reads the spec of a `kind` resource from `body`'s `spec` member, validates it and fills
/// in the service's defaults. Only a mesh may leave the spec out.
pub fn take_spec(body: &mut Body, kind: ResourceKind) -> Result<Spec, ApiError> {
    let mut spec = match kind {
        ResourceKind::Mesh => Spec::Mesh(body.take::<MeshSpec>("spec")?.unwrap_or_default()),
        ResourceKind::VirtualNode => Spec::VirtualNode(body.require("spec")?),
        ResourceKind::VirtualRouter => Spec::VirtualRouter(body.require("spec")?),
        ResourceKind::Route => Spec::Route(body.require("spec")?),
        ResourceKind::VirtualService => Spec::VirtualService(body.require("spec")?),
        ResourceKind::VirtualGateway => Spec::VirtualGateway(body.require("spec")?),
        ResourceKind::GatewayRoute => Spec::GatewayRoute(body.require("spec")?),
    };
    rules::validate_spec(&spec, "spec")?;
    rules::fill_defaults(&mut spec);
    Ok(spec)
}

/// Reads and checks a list of at most 50 tags from member `name`.
pub fn take_tags(body: &mut Body, name: &str) -> Result<Vec<TagRef>, ApiError> {
    let tags: Vec<TagRef> = body.take(name)?.unwrap_or_default();
    // The model's TagList holds at most 50 tags. Create operations have no
    // TooManyTagsException, so a longer list is a bad request like any other constraint.
    check_count(tags.len(), 0, 50, name)?;
    check_tags(&tags, name)?;
    Ok(tags)
}

/// Checks each tag's key and value lengths.
pub fn check_tags(tags: &[TagRef], name: &str) -> Result<(), ApiError> {
    for (index, tag) in tags.iter().enumerate() {
        tag.validate(&format!("{name}[{index}]"))?;
    }
    Ok(())
}

/// Reads and checks the `tagKeys` of an untag request.
pub fn take_tag_keys(body: &mut Body) -> Result<Vec<String>, ApiError> {
    let keys: Vec<String> = body.require("tagKeys")?;
    check_count(keys.len(), 0, 50, "tagKeys")?;
    for (index, key) in keys.iter().enumerate() {
        check_length(key, 1, 128, &format!("tagKeys[{index}]"))?;
    }
    Ok(keys)
}
