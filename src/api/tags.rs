//! `TagResource`, `UntagResource` and `ListTagsForResource`: tags addressed by ARN.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::model::ResourceKey;
use crate::store::{StoreError, Write};

use super::App;
use super::error::{ApiError, ErrorType};
use super::pagination;
use super::request::{Body, Query, check_tags, take_tag_keys};

fn resource_key(app: &App, query: &Query) -> Result<ResourceKey, ApiError> {
    let arn = query
        .get("resourceArn")
        .ok_or_else(|| ApiError::bad_request("resourceArn: must be set"))?;
    app.account.parse_arn(arn).ok_or_else(|| {
        ApiError::new(
            ErrorType::NotFound,
            format!("resource with ARN {arn} is not present"),
        )
    })
}

/// `TagResource`: `PUT /v20190125/tag?resourceArn=…` with `{"tags": […]}`.
pub fn tag(app: &App, query: &Query, bytes: &[u8]) -> Result<Json<Value>, ApiError> {
    let key = resource_key(app, query)?;
    let mut body = Body::parse(bytes, &["tags"])?;
    let tags: Vec<crate::model::spec::TagRef> = body.require("tags")?;
    check_tags(&tags, "tags")?;
    app.store.apply(Write::Tag { key, tags }, None)?;
    Ok(Json(json!({})))
}

/// `UntagResource`: `PUT /v20190125/untag?resourceArn=…` with `{"tagKeys": […]}`.
pub fn untag(app: &App, query: &Query, bytes: &[u8]) -> Result<Json<Value>, ApiError> {
    let key = resource_key(app, query)?;
    let mut body = Body::parse(bytes, &["tagKeys"])?;
    let keys = take_tag_keys(&mut body)?;
    app.store.apply(Write::Untag { key, keys }, None)?;
    Ok(Json(json!({})))
}

/// `ListTagsForResource`: `GET /v20190125/tags?resourceArn=…`, `limit` 1 to 50 at a time.
pub fn list(app: &App, query: &Query) -> Result<Json<Value>, ApiError> {
    let key = resource_key(app, query)?;
    let limit = query.limit(50)?;
    let after: Option<usize> = query
        .get("nextToken")
        .map(|token| {
            pagination::decode(token)?.parse().map_err(|_| {
                ApiError::bad_request("nextToken: is not a token that this service issued")
            })
        })
        .transpose()?;
    let snapshot = app.store.snapshot();
    let resource = snapshot
        .get(&key)
        .ok_or_else(|| ApiError::from(StoreError::NotFound(key.clone())))?;
    let start = after.map_or(0, |last| last + 1);
    let tags = resource.tags.iter().enumerate().skip(start);
    let (page, next) = pagination::page(tags, limit, |(index, _)| index.to_string());
    let mut out = Map::new();
    let tags: Vec<Value> = page
        .into_iter()
        .map(|(_, tag)| json!({ "key": tag.key, "value": tag.value }))
        .collect();
    out.insert("tags".into(), Value::Array(tags));
    if let Some(next) = next {
        out.insert("nextToken".into(), json!(next));
    }
    Ok(Json(Value::Object(out)))
}
