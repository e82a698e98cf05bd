//! CloudFormation's intrinsic functions, conditions, parameters and pseudo-parameters,
//! evaluated as CloudFormation evaluates them, over a template in long form
//! (`{"Fn::Sub": …}`; the YAML short forms are turned into these when the file is read).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::api::Account;
use crate::model::{ResourceKey, ResourceKind};

/// A value that cannot be evaluated, at a property path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct EvalError {
    /// Where, in the resource (`Properties.Spec.Listeners[0].PortMapping.Port`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn fail<T>(path: &str, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError {
        path: path.to_string(),
        message: message.into(),
    })
}

/// What the template does not hold itself: values given on the command line and the
/// pseudo-parameters.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `--parameter Key=Value`: template parameters, exports (`!ImportValue`), and
    /// `LogicalId` / `LogicalId.Attribute` of resources that are not App Mesh's.
    pub overrides: BTreeMap<String, String>,
    /// `AWS::Region` and `AWS::AccountId`: meshd's.
    pub account: Account,
    /// `AWS::StackName`.
    pub stack_name: String,
    /// What the templates of the same apply export (`Outputs.*.Export.Name` → value),
    /// for `!ImportValue` (a `--parameter` of the same name wins).
    pub exports: BTreeMap<String, String>,
}

/// The CloudFormation type of an App Mesh resource (`AWS::AppMesh::VirtualNode`).
pub fn appmesh_kind(type_name: &str) -> Option<ResourceKind> {
    let name = type_name.strip_prefix("AWS::AppMesh::")?;
    ResourceKind::ALL
        .into_iter()
        .find(|kind| kind.type_name() == name)
}

/// The CloudFormation property that holds a name member (`VirtualNodeName`).
pub fn name_property(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Mesh => "MeshName",
        ResourceKind::VirtualNode => "VirtualNodeName",
        ResourceKind::VirtualRouter => "VirtualRouterName",
        ResourceKind::Route => "RouteName",
        ResourceKind::VirtualService => "VirtualServiceName",
        ResourceKind::VirtualGateway => "VirtualGatewayName",
        ResourceKind::GatewayRoute => "GatewayRouteName",
    }
}

/// Evaluates values of one template.
pub struct Evaluator<'t> {
    parameters: &'t Map<String, Value>,
    conditions: &'t Map<String, Value>,
    mappings: &'t Map<String, Value>,
    resources: &'t Map<String, Value>,
    env: &'t Environment,
    condition_values: RefCell<BTreeMap<String, bool>>,
    in_progress: RefCell<BTreeSet<String>>,
}

fn section<'t>(
    template: &'t Map<String, Value>,
    name: &str,
    empty: &'t Map<String, Value>,
) -> &'t Map<String, Value> {
    template
        .get(name)
        .and_then(Value::as_object)
        .unwrap_or(empty)
}

impl<'t> Evaluator<'t> {
    /// An evaluator over `template` (its top-level object) with `env`.
    pub fn new(
        template: &'t Map<String, Value>,
        env: &'t Environment,
        empty: &'t Map<String, Value>,
    ) -> Self {
        Evaluator {
            parameters: section(template, "Parameters", empty),
            conditions: section(template, "Conditions", empty),
            mappings: section(template, "Mappings", empty),
            resources: section(template, "Resources", empty),
            env,
            condition_values: RefCell::default(),
            in_progress: RefCell::default(),
        }
    }

    /// The template's exports that can be evaluated (`Outputs.*.Export.Name` → `Value`);
    /// those that cannot (a VPC's id, say) are left out: importing them is an error then.
    pub fn exports(&self, template: &Map<String, Value>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let outputs = template.get("Outputs").and_then(Value::as_object);
        for (id, output) in outputs.into_iter().flatten() {
            let path = format!("Outputs.{id}");
            let (Some(name), Some(value)) = (output.pointer("/Export/Name"), output.get("Value"))
            else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (self.string(name, &path), self.string(value, &path)) {
                out.insert(name, value);
            }
        }
        out
    }

    /// Evaluates `value`; `None` is `AWS::NoValue` (the property is removed).
    pub fn eval(&self, value: &Value, path: &str) -> Result<Option<Value>, EvalError> {
        match value {
            Value::Object(map) if map.len() == 1 => {
                let (name, argument) = map.iter().next().expect("one member");
                if name == "Ref" || name.starts_with("Fn::") {
                    return self.function(name, argument, &format!("{path}.{name}"));
                }
                self.object(map, path)
            }
            Value::Object(map) => self.object(map, path),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    if let Some(value) = self.eval(item, &format!("{path}[{index}]"))? {
                        out.push(value);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    fn object(&self, map: &Map<String, Value>, path: &str) -> Result<Option<Value>, EvalError> {
        let mut out = Map::new();
        for (key, item) in map {
            if let Some(value) = self.eval(item, &format!("{path}.{key}"))? {
                out.insert(key.clone(), value);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    /// Evaluates `value`, which must give a value (not `AWS::NoValue`).
    fn value(&self, value: &Value, path: &str) -> Result<Value, EvalError> {
        match self.eval(value, path)? {
            Some(value) => Ok(value),
            None => fail(path, "AWS::NoValue is not allowed here"),
        }
    }

    /// Evaluates `value` to a string (numbers and booleans are written out).
    pub fn string(&self, value: &Value, path: &str) -> Result<String, EvalError> {
        match self.value(value, path)? {
            Value::String(text) => Ok(text),
            Value::Number(number) => Ok(number.to_string()),
            Value::Bool(flag) => Ok(flag.to_string()),
            other => fail(path, format!("expected a string, found {other}")),
        }
    }

    fn list(&self, value: &Value, path: &str) -> Result<Vec<Value>, EvalError> {
        match self.value(value, path)? {
            Value::Array(items) => Ok(items),
            other => fail(path, format!("expected a list, found {other}")),
        }
    }

    fn arguments<'v>(
        &self,
        argument: &'v Value,
        path: &str,
        count: usize,
    ) -> Result<&'v [Value], EvalError> {
        match argument {
            Value::Array(items) if items.len() == count => Ok(items),
            _ => fail(path, format!("takes a list of {count} arguments")),
        }
    }

    fn function(
        &self,
        name: &str,
        argument: &Value,
        path: &str,
    ) -> Result<Option<Value>, EvalError> {
        match name {
            "Ref" => {
                let target = self.string(argument, path)?;
                self.reference(&target, path)
            }
            "Fn::GetAtt" => {
                let (resource, attribute) = match argument {
                    Value::String(text) => match text.split_once('.') {
                        Some((resource, attribute)) => {
                            (resource.to_string(), attribute.to_string())
                        }
                        None => return fail(path, "takes LogicalId.Attribute"),
                    },
                    Value::Array(items) if items.len() == 2 => {
                        (self.string(&items[0], path)?, self.string(&items[1], path)?)
                    }
                    _ => return fail(path, "takes [LogicalId, Attribute]"),
                };
                self.get_att(&resource, &attribute, path).map(Some)
            }
            "Fn::Sub" => {
                let (text, variables) = match argument {
                    Value::String(text) => (text.clone(), Map::new()),
                    Value::Array(items) if items.len() == 2 => {
                        let text = self.string(&items[0], path)?;
                        let Value::Object(variables) = self.value(&items[1], path)? else {
                            return fail(path, "the second argument is a map of variables");
                        };
                        (text, variables)
                    }
                    _ => return fail(path, "takes a string or [string, variables]"),
                };
                self.sub(&text, &variables, path)
                    .map(|s| Some(Value::String(s)))
            }
            "Fn::Join" => {
                let items = self.arguments(argument, path, 2)?;
                let delimiter = self.string(&items[0], path)?;
                let parts = self.list(&items[1], path)?;
                let mut strings = Vec::with_capacity(parts.len());
                for (index, part) in parts.iter().enumerate() {
                    strings.push(self.string(part, &format!("{path}[1][{index}]"))?);
                }
                Ok(Some(Value::String(strings.join(&delimiter))))
            }
            "Fn::Select" => {
                let items = self.arguments(argument, path, 2)?;
                let index = self.string(&items[0], path)?;
                let index: usize = index
                    .parse()
                    .or_else(|_| fail(path, format!("the index {index:?} is not a number")))?;
                let list = self.list(&items[1], path)?;
                match list.into_iter().nth(index) {
                    Some(value) => Ok(Some(value)),
                    None => fail(path, format!("the list has no item {index}")),
                }
            }
            "Fn::Split" => {
                let items = self.arguments(argument, path, 2)?;
                let delimiter = self.string(&items[0], path)?;
                let text = self.string(&items[1], path)?;
                if delimiter.is_empty() {
                    return fail(path, "the delimiter is empty");
                }
                Ok(Some(Value::Array(
                    text.split(delimiter.as_str())
                        .map(|s| Value::String(s.into()))
                        .collect(),
                )))
            }
            "Fn::FindInMap" => {
                let items = self.arguments(argument, path, 3)?;
                let map = self.string(&items[0], path)?;
                let top = self.string(&items[1], path)?;
                let second = self.string(&items[2], path)?;
                match self
                    .mappings
                    .get(&map)
                    .and_then(|m| m.get(&top))
                    .and_then(|m| m.get(&second))
                {
                    Some(value) => Ok(Some(value.clone())),
                    None => fail(path, format!("the mapping {map} has no {top}.{second}")),
                }
            }
            "Fn::ImportValue" => {
                let export = self.string(argument, path)?;
                let value = self.env.overrides.get(&export);
                match value.or_else(|| self.env.exports.get(&export)) {
                    Some(value) => Ok(Some(Value::String(value.clone()))),
                    None => fail(
                        path,
                        format!(
                            "the export {export:?} is another stack's and no template of this apply exports it: pass --parameter {export}=VALUE"
                        ),
                    ),
                }
            }
            "Fn::If" => {
                let items = self.arguments(argument, path, 3)?;
                let Value::String(condition) = &items[0] else {
                    return fail(path, "the first argument names a condition");
                };
                if self.condition(condition, path)? {
                    self.eval(&items[1], &format!("{path}[1]"))
                } else {
                    self.eval(&items[2], &format!("{path}[2]"))
                }
            }
            "Fn::Equals" | "Fn::And" | "Fn::Or" | "Fn::Not" => {
                let mut wrapped = Map::new();
                wrapped.insert(name.to_string(), argument.clone());
                self.boolean(&Value::Object(wrapped), path)
                    .map(|b| Some(Value::Bool(b)))
            }
            "Fn::Base64" => {
                let text = self.string(argument, path)?;
                Ok(Some(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(text),
                )))
            }
            other => fail(path, format!("{other} is not supported by meshd apply")),
        }
    }

    /// Evaluates a condition expression.
    fn boolean(&self, value: &Value, path: &str) -> Result<bool, EvalError> {
        if let Value::Object(map) = value
            && map.len() == 1
        {
            let (name, argument) = map.iter().next().expect("one member");
            match name.as_str() {
                "Condition" => {
                    let Value::String(condition) = argument else {
                        return fail(path, "Condition names a condition");
                    };
                    return self.condition(condition, path);
                }
                "Fn::Equals" => {
                    let items = self.arguments(argument, path, 2)?;
                    let left = self.value(&items[0], path)?;
                    let right = self.value(&items[1], path)?;
                    return Ok(scalar_text(&left) == scalar_text(&right));
                }
                "Fn::And" | "Fn::Or" => {
                    let Value::Array(items) = argument else {
                        return fail(path, format!("{name} takes a list of conditions"));
                    };
                    let mut values = Vec::with_capacity(items.len());
                    for item in items {
                        values.push(self.boolean(item, path)?);
                    }
                    return Ok(if name == "Fn::And" {
                        values.iter().all(|b| *b)
                    } else {
                        values.iter().any(|b| *b)
                    });
                }
                "Fn::Not" => {
                    let items = self.arguments(argument, path, 1)?;
                    return Ok(!self.boolean(&items[0], path)?);
                }
                _ => {}
            }
        }
        match self.value(value, path)? {
            Value::Bool(flag) => Ok(flag),
            Value::String(text) if text == "true" => Ok(true),
            Value::String(text) if text == "false" => Ok(false),
            other => fail(path, format!("expected a condition, found {other}")),
        }
    }

    /// The value of the template's condition `name` (evaluated once).
    pub fn condition(&self, name: &str, path: &str) -> Result<bool, EvalError> {
        if let Some(value) = self.condition_values.borrow().get(name) {
            return Ok(*value);
        }
        let Some(expression) = self.conditions.get(name) else {
            return fail(path, format!("there is no condition {name:?}"));
        };
        let guard = format!("Conditions.{name}");
        self.enter(&guard, path)?;
        let value = self.boolean(expression, &guard);
        self.in_progress.borrow_mut().remove(&guard);
        let value = value?;
        self.condition_values
            .borrow_mut()
            .insert(name.to_string(), value);
        Ok(value)
    }

    fn enter(&self, what: &str, path: &str) -> Result<(), EvalError> {
        if !self.in_progress.borrow_mut().insert(what.to_string()) {
            return fail(path, format!("{what} refers to itself"));
        }
        Ok(())
    }

    fn sub(
        &self,
        text: &str,
        variables: &Map<String, Value>,
        path: &str,
    ) -> Result<String, EvalError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return fail(path, format!("{text:?} has an unclosed ${{"));
            };
            let name = after[..end].trim();
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&self.string(value, path)?);
            } else if let Some((resource, attribute)) = name.split_once('.') {
                out.push_str(&scalar_text(&self.get_att(resource, attribute, path)?));
            } else {
                match self.reference(name, path)? {
                    Some(value) => out.push_str(&scalar_text(&value)),
                    None => return fail(path, format!("${{{name}}} is AWS::NoValue")),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `Ref name`: a parameter, a pseudo-parameter, an App Mesh resource (its ARN), or a
    /// value given with `--parameter name=…`.
    pub fn reference(&self, name: &str, path: &str) -> Result<Option<Value>, EvalError> {
        match name {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => return Ok(Some(Value::String(self.env.account.region.clone()))),
            "AWS::AccountId" => {
                return Ok(Some(Value::String(self.env.account.account_id.clone())));
            }
            "AWS::StackName" => return Ok(Some(Value::String(self.env.stack_name.clone()))),
            "AWS::Partition" => return Ok(Some(Value::String("aws".into()))),
            "AWS::URLSuffix" => return Ok(Some(Value::String("amazonaws.com".into()))),
            _ => {}
        }
        if let Some(declaration) = self.parameters.get(name) {
            return self.parameter(name, declaration, path).map(Some);
        }
        if let Some(resource) = self.resources.get(name)
            && self.appmesh_resource(resource).is_some()
        {
            return self.get_att(name, "Arn", path).map(Some);
        }
        match self.env.overrides.get(name) {
            Some(value) => Ok(Some(Value::String(value.clone()))),
            None if self.resources.contains_key(name) => fail(
                path,
                format!(
                    "Ref {name} names a resource that is not App Mesh's: pass --parameter {name}=VALUE"
                ),
            ),
            None => fail(
                path,
                format!("Ref {name}: no parameter or resource has this name"),
            ),
        }
    }

    fn parameter(&self, name: &str, declaration: &Value, path: &str) -> Result<Value, EvalError> {
        let text = match (self.env.overrides.get(name), declaration.get("Default")) {
            (Some(value), _) => value.clone(),
            (None, Some(default)) => match default {
                Value::String(text) => text.clone(),
                Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
                other => scalar_text(other),
            },
            (None, None) => {
                return fail(
                    path,
                    format!("the parameter {name} has no Default: pass --parameter {name}=VALUE"),
                );
            }
        };
        if let Some(Value::Array(allowed)) = declaration.get("AllowedValues")
            && !allowed.iter().any(|a| scalar_text(a) == text)
        {
            let allowed: Vec<String> = allowed.iter().map(scalar_text).collect();
            return fail(
                path,
                format!(
                    "the parameter {name} is {text:?}, not one of its AllowedValues {}",
                    allowed.join(", ")
                ),
            );
        }
        let kind = declaration
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("String");
        coerce(name, kind, &text).or_else(|message| fail(path, message))
    }

    fn appmesh_resource(&self, resource: &Value) -> Option<ResourceKind> {
        appmesh_kind(resource.get("Type")?.as_str()?)
    }

    /// The key of the App Mesh resource `logical_id`, from its name properties.
    pub fn appmesh_key(&self, logical_id: &str, path: &str) -> Result<ResourceKey, EvalError> {
        let Some(resource) = self.resources.get(logical_id) else {
            return fail(path, format!("there is no resource {logical_id}"));
        };
        let Some(kind) = self.appmesh_resource(resource) else {
            return fail(path, format!("{logical_id} is not an App Mesh resource"));
        };
        let guard = format!("Resources.{logical_id}");
        self.enter(&guard, path)?;
        let key = self.key_of(kind, resource, logical_id);
        self.in_progress.borrow_mut().remove(&guard);
        key
    }

    fn key_of(
        &self,
        kind: ResourceKind,
        resource: &Value,
        logical_id: &str,
    ) -> Result<ResourceKey, EvalError> {
        let empty = Map::new();
        let properties = resource
            .get("Properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let name = |property: &str| -> Result<String, EvalError> {
            let path = format!("Resources.{logical_id}.Properties.{property}");
            match properties.get(property) {
                Some(value) => self.string(value, &path),
                None => fail(
                    &path,
                    "is missing (CloudFormation would make up a name; meshd apply needs it named)",
                ),
            }
        };
        let mesh = name("MeshName")?;
        Ok(match kind {
            ResourceKind::Mesh => ResourceKey::mesh(mesh),
            ResourceKind::Route | ResourceKind::GatewayRoute => {
                let parent = kind.parent_kind().expect("routes have parents");
                ResourceKey::child(
                    kind,
                    mesh,
                    name(name_property(parent))?,
                    name(name_property(kind))?,
                )
            }
            kind => ResourceKey::in_mesh(kind, mesh, name(name_property(kind))?),
        })
    }

    /// `Fn::GetAtt resource.attribute`.
    pub fn get_att(&self, resource: &str, attribute: &str, path: &str) -> Result<Value, EvalError> {
        let is_appmesh = self
            .resources
            .get(resource)
            .and_then(|r| self.appmesh_resource(r))
            .is_some();
        if !is_appmesh {
            let name = format!("{resource}.{attribute}");
            return match self.env.overrides.get(&name) {
                Some(value) => Ok(Value::String(value.clone())),
                None if self.resources.contains_key(resource) => fail(
                    path,
                    format!(
                        "{name} is an attribute of a resource that is not App Mesh's: pass --parameter {name}=VALUE"
                    ),
                ),
                None => fail(
                    path,
                    format!("GetAtt {name}: there is no resource {resource}"),
                ),
            };
        }
        let key = self.appmesh_key(resource, path)?;
        let text = match attribute {
            "Arn" => self.env.account.arn(&key),
            "MeshName" => key.mesh.clone(),
            "MeshOwner" | "ResourceOwner" => self.env.account.account_id.clone(),
            "VirtualRouterName" if key.kind == ResourceKind::Route => key.parent.clone(),
            "VirtualGatewayName" if key.kind == ResourceKind::GatewayRoute => key.parent.clone(),
            other if key.kind != ResourceKind::Mesh && other == name_property(key.kind) => {
                key.name.clone()
            }
            "Uid" => {
                return fail(
                    path,
                    format!("{resource}.Uid is known only once meshd has created it"),
                );
            }
            other => {
                return fail(
                    path,
                    format!(
                        "{resource} ({}) has no attribute {other}",
                        key.kind.type_name()
                    ),
                );
            }
        };
        Ok(Value::String(text))
    }
}

/// A scalar as CloudFormation writes it into a string.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A parameter's value (given as text) as its `Type` makes it.
pub fn coerce(name: &str, kind: &str, text: &str) -> Result<Value, String> {
    let number = |item: &str| -> Result<Value, String> {
        let item = item.trim();
        if let Ok(integer) = item.parse::<i64>() {
            return Ok(Value::from(integer));
        }
        item.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| {
                format!("the parameter {name} is a {kind}, and {item:?} is not a number")
            })
    };
    if kind == "Number" {
        return number(text);
    }
    if kind == "List<Number>" {
        return text
            .split(',')
            .map(number)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if kind == "CommaDelimitedList" || kind.starts_with("List<") {
        return Ok(Value::Array(
            text.split(',')
                .map(|s| Value::String(s.trim().to_string()))
                .collect(),
        ));
    }
    Ok(Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(overrides: &[(&str, &str)]) -> Environment {
        Environment {
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            account: Account {
                region: "eu-west-1".into(),
                account_id: "123456789012".into(),
            },
            stack_name: "stack".into(),
            exports: [("other:Vpc".to_string(), "vpc-1".to_string())]
                .into_iter()
                .collect(),
        }
    }

    fn template() -> Map<String, Value> {
        json!({
            "Parameters": {
                "Project": {"Type": "String", "Default": "demo"},
                "Port": {"Type": "Number", "Default": "8080"},
                "Weights": {"Type": "List<Number>", "Default": "1,2"},
                "Names": {"Type": "CommaDelimitedList", "Default": "a, b"},
                "Tls": {"Type": "String", "Default": "mtls", "AllowedValues": ["none", "mtls"]},
                "Required": {"Type": "String"}
            },
            "Conditions": {
                "IsMtls": {"Fn::Equals": [{"Ref": "Tls"}, "mtls"]},
                "IsNone": {"Fn::Not": [{"Condition": "IsMtls"}]},
                "Either": {"Fn::Or": [{"Condition": "IsMtls"}, {"Condition": "IsNone"}]},
                "Both": {"Fn::And": [{"Condition": "IsMtls"}, {"Condition": "IsNone"}]},
                "Loop": {"Fn::Not": [{"Condition": "Loop"}]}
            },
            "Mappings": {"Ports": {"web": {"http": 80}}},
            "Resources": {
                "Mesh": {"Type": "AWS::AppMesh::Mesh", "Properties": {"MeshName": {"Fn::Sub": "${Project}-mesh"}}},
                "Node": {"Type": "AWS::AppMesh::VirtualNode",
                    "Properties": {"MeshName": {"Fn::GetAtt": ["Mesh", "MeshName"]}, "VirtualNodeName": "web"}},
                "Route": {"Type": "AWS::AppMesh::Route",
                    "Properties": {"MeshName": {"Ref": "Project"}, "VirtualRouterName": "r", "RouteName": "x"}},
                "Unnamed": {"Type": "AWS::AppMesh::VirtualRouter", "Properties": {"MeshName": "m"}},
                "Lb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer"}
            }
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn eval(value: Value, overrides: &[(&str, &str)]) -> Result<Option<Value>, EvalError> {
        let template = template();
        let env = env(overrides);
        let empty = Map::new();
        let evaluator = Evaluator::new(&template, &env, &empty);
        evaluator.eval(&value, "P")
    }

    fn ok(value: Value) -> Value {
        eval(value, &[]).unwrap().unwrap()
    }

    fn err(value: Value) -> String {
        eval(value, &[]).unwrap_err().to_string()
    }

    #[test]
    fn ref_gives_parameters_coerced_by_type_pseudo_parameters_and_arns() {
        assert_eq!(ok(json!({"Ref": "Project"})), json!("demo"));
        assert_eq!(
            eval(json!({"Ref": "Project"}), &[("Project", "x")])
                .unwrap()
                .unwrap(),
            json!("x")
        );
        assert_eq!(ok(json!({"Ref": "Port"})), json!(8080));
        assert_eq!(ok(json!({"Ref": "Weights"})), json!([1, 2]));
        assert_eq!(ok(json!({"Ref": "Names"})), json!(["a", "b"]));
        assert_eq!(ok(json!({"Ref": "AWS::Region"})), json!("eu-west-1"));
        assert_eq!(ok(json!({"Ref": "AWS::AccountId"})), json!("123456789012"));
        assert_eq!(ok(json!({"Ref": "AWS::StackName"})), json!("stack"));
        assert_eq!(
            ok(json!({"Ref": "Node"})),
            json!("arn:aws:appmesh:eu-west-1:123456789012:mesh/demo-mesh/virtualNode/web")
        );
        assert!(err(json!({"Ref": "Required"})).contains("--parameter Required=VALUE"));
        assert!(err(json!({"Ref": "Missing"})).contains("no parameter or resource"));
        assert!(
            eval(json!({"Ref": "Tls"}), &[("Tls", "1way")])
                .unwrap_err()
                .to_string()
                .contains("AllowedValues")
        );
        assert!(
            eval(json!({"Ref": "Port"}), &[("Port", "eighty")])
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
    }

    #[test]
    fn no_value_removes_the_property_and_the_list_item() {
        assert_eq!(
            ok(json!({"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}, 2]})),
            json!({"B": [1, 2]})
        );
    }

    #[test]
    fn get_att_gives_app_mesh_attributes_and_others_from_parameters() {
        assert_eq!(
            ok(json!({"Fn::GetAtt": ["Node", "VirtualNodeName"]})),
            json!("web")
        );
        assert_eq!(
            ok(json!({"Fn::GetAtt": "Node.MeshName"})),
            json!("demo-mesh")
        );
        assert_eq!(
            ok(json!({"Fn::GetAtt": "Route.VirtualRouterName"})),
            json!("r")
        );
        assert_eq!(ok(json!({"Fn::GetAtt": "Route.RouteName"})), json!("x"));
        assert_eq!(
            ok(json!({"Fn::GetAtt": "Mesh.MeshOwner"})),
            json!("123456789012")
        );
        assert_eq!(
            ok(json!({"Fn::GetAtt": "Mesh.Arn"})),
            json!("arn:aws:appmesh:eu-west-1:123456789012:mesh/demo-mesh")
        );
        assert!(err(json!({"Fn::GetAtt": "Mesh.Uid"})).contains("Uid"));
        assert!(err(json!({"Fn::GetAtt": "Node.Colour"})).contains("no attribute Colour"));
        assert!(
            err(json!({"Fn::GetAtt": "Unnamed.Arn"}))
                .contains("Resources.Unnamed.Properties.VirtualRouterName")
        );
        assert!(err(json!({"Fn::GetAtt": "Lb.DNSName"})).contains("--parameter Lb.DNSName=VALUE"));
        assert_eq!(
            eval(
                json!({"Fn::GetAtt": "Lb.DNSName"}),
                &[("Lb.DNSName", "lb.example")]
            )
            .unwrap()
            .unwrap(),
            json!("lb.example")
        );
        assert_eq!(
            eval(json!({"Ref": "Lb"}), &[("Lb", "arn:lb")])
                .unwrap()
                .unwrap(),
            json!("arn:lb")
        );
        assert!(err(json!({"Ref": "Lb"})).contains("--parameter Lb=VALUE"));
    }

    #[test]
    fn sub_replaces_parameters_attributes_variables_and_keeps_literals() {
        assert_eq!(
            ok(
                json!({"Fn::Sub": "${Project}.${Node.VirtualNodeName}:${Port}/${!Literal}/${AWS::Region}"})
            ),
            json!("demo.web:8080/${Literal}/eu-west-1")
        );
        assert_eq!(
            ok(json!({"Fn::Sub": ["${Name}-x", {"Name": {"Ref": "Project"}}]})),
            json!("demo-x")
        );
        assert!(err(json!({"Fn::Sub": "${Project"})).contains("unclosed"));
    }

    #[test]
    fn join_select_split_find_in_map_and_base64() {
        assert_eq!(
            ok(json!({"Fn::Join": ["-", ["a", {"Ref": "Project"}, 3]]})),
            json!("a-demo-3")
        );
        assert_eq!(
            ok(json!({"Fn::Join": [",", {"Ref": "Names"}]})),
            json!("a,b")
        );
        assert_eq!(ok(json!({"Fn::Select": ["1", ["x", "y"]]})), json!("y"));
        assert_eq!(
            ok(json!({"Fn::Select": [0, {"Fn::Split": [".", "a.b.c"]}]})),
            json!("a")
        );
        assert!(err(json!({"Fn::Select": [5, ["x"]]})).contains("no item 5"));
        assert_eq!(ok(json!({"Fn::Split": ["/", "p/q"]})), json!(["p", "q"]));
        assert_eq!(
            ok(json!({"Fn::FindInMap": ["Ports", "web", "http"]})),
            json!(80)
        );
        assert!(
            err(json!({"Fn::FindInMap": ["Ports", "web", "grpc"]})).contains("has no web.grpc")
        );
        assert_eq!(ok(json!({"Fn::Base64": "hi"})), json!("aGk="));
        assert!(err(json!({"Fn::GetAZs": ""})).contains("not supported"));
    }

    #[test]
    fn import_value_comes_from_a_parameter_or_another_templates_export() {
        assert_eq!(ok(json!({"Fn::ImportValue": "other:Vpc"})), json!("vpc-1"));
        assert_eq!(
            eval(
                json!({"Fn::ImportValue": "other:Vpc"}),
                &[("other:Vpc", "vpc-2")]
            )
            .unwrap()
            .unwrap(),
            json!("vpc-2"),
            "a parameter wins"
        );
        assert!(
            err(json!({"Fn::ImportValue": {"Fn::Sub": "${Project}:Mesh"}}))
                .contains("--parameter demo:Mesh=VALUE")
        );
        assert_eq!(
            eval(
                json!({"Fn::ImportValue": {"Fn::Sub": "${Project}:Mesh"}}),
                &[("demo:Mesh", "m")]
            )
            .unwrap()
            .unwrap(),
            json!("m")
        );
    }

    #[test]
    fn conditions_and_if() {
        assert_eq!(ok(json!({"Fn::If": ["IsMtls", "yes", "no"]})), json!("yes"));
        assert_eq!(
            eval(
                json!({"Fn::If": ["IsMtls", "yes", "no"]}),
                &[("Tls", "none")]
            )
            .unwrap()
            .unwrap(),
            json!("no")
        );
        assert_eq!(
            eval(
                json!({"Fn::If": ["IsNone", "yes", {"Ref": "AWS::NoValue"}]}),
                &[]
            )
            .unwrap(),
            None
        );
        assert_eq!(ok(json!({"Fn::If": ["Either", 1, 2]})), json!(1));
        assert_eq!(ok(json!({"Fn::If": ["Both", 1, 2]})), json!(2));
        assert_eq!(
            ok(json!({"Fn::Equals": ["8080", {"Ref": "Port"}]})),
            json!(true)
        );
        assert!(err(json!({"Fn::If": ["Loop", 1, 2]})).contains("refers to itself"));
        assert!(err(json!({"Fn::If": ["Nope", 1, 2]})).contains("no condition"));
    }

    #[test]
    fn errors_name_the_property_path() {
        let e = eval(
            json!({"Spec": {"Listeners": [{"Port": {"Ref": "Required"}}]}}),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.path, "P.Spec.Listeners[0].Port.Ref");
    }
}
