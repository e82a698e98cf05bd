//! AWS CLI input files (`aws appmesh create-virtual-node --cli-input-json file://…`):
//! `{"meshName": …, "virtualNodeName": …, "spec": …, "tags": …}`, the kind recognised by
//! its name members. A JSON list of such objects (what `meshd export --format json`
//! writes) is read too.

use serde_json::Value;

use super::ApplyError;
use super::desired::{Draft, Origin, Tag};
use crate::model::ResourceKind;

/// Whether a document is a CLI input object.
pub fn is_input(document: &Value) -> bool {
    document.get("meshName").is_some_and(Value::is_string)
}

/// The kind an input creates: the most specific name member decides (a route carries
/// `meshName`, `virtualRouterName` and `routeName`).
fn kind_of(input: &Value) -> ResourceKind {
    input
        .as_object()
        .and_then(crate::definition::kind_of)
        .unwrap_or(ResourceKind::Mesh)
}

/// The resource one CLI input object (the `index`-th of `file`, from 1) creates or updates.
pub fn read(file: &str, index: usize, input: &Value) -> Result<Draft, ApplyError> {
    let kind = kind_of(input);
    let origin = Origin {
        file: file.to_string(),
        place: format!("input {index} ({})", kind.type_name()),
    };
    let invalid = |path: &str, message: &str| ApplyError::Invalid {
        origin: origin.clone(),
        path: path.to_string(),
        message: message.to_string(),
    };
    let text = |field: &str| -> Result<String, ApplyError> {
        input
            .get(field)
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| invalid(field, "is missing or not a string"))
    };
    let mesh = text("meshName")?;
    let parent = kind
        .parent_kind()
        .map(|p| text(p.name_field()))
        .transpose()?;
    let name = if kind == ResourceKind::Mesh {
        mesh.clone()
    } else {
        text(kind.name_field())?
    };
    let tags = match input.get("tags") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = |f: &str| {
                    item.get(f)
                        .and_then(Value::as_str)
                        .map(String::from)
                        .ok_or_else(|| invalid(&format!("tags[{i}].{f}"), "is missing"))
                };
                Ok(Tag {
                    key: field("key")?,
                    value: field("value")?,
                })
            })
            .collect::<Result<_, ApplyError>>()?,
        Some(_) => return Err(invalid("tags", "is a list of {key, value}")),
    };
    Ok(Draft {
        kind,
        mesh,
        parent,
        name,
        spec: input
            .get("spec")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default())),
        tags,
        origin,
        prune_unknown: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_kind_comes_from_the_name_members() {
        let route =
            json!({"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {}});
        let draft = read("route.json", 1, &route).unwrap();
        assert_eq!(draft.key().to_string(), "mesh/m/virtualRouter/r/route/x");
        let mesh = read(
            "mesh.json",
            1,
            &json!({"meshName": "m", "tags": [{"key": "a", "value": "b"}]}),
        )
        .unwrap();
        assert_eq!(mesh.key().to_string(), "mesh/m");
        assert_eq!(mesh.tags.len(), 1);
        let gateway_route =
            json!({"meshName": "m", "virtualGatewayName": "g", "gatewayRouteName": "x"});
        assert_eq!(
            read("f", 1, &gateway_route).unwrap().key().to_string(),
            "mesh/m/virtualGateway/g/gatewayRoute/x"
        );
        let err = read("f.json", 2, &json!({"meshName": "m", "routeName": "x"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.json input 2 (Route): virtualRouterName: is missing or not a string"
        );
    }
}
