//! Reading the files `-f` names (a file, every `.yaml`/`.yml`/`.json` file of a
//! directory, or `-` for standard input) and telling their formats apart.

use std::io::Read as _;
use std::path::Path;

use serde::Deserialize as _;
use serde_json::{Map, Value};

use super::ApplyError;
use super::desired::{Ignored, Origin};
use super::kubernetes::Document;
use super::{cli_input, cloudformation, kubernetes};

/// One input file's text.
#[derive(Debug, Clone)]
pub struct File {
    /// Its name as given (`-` for standard input).
    pub name: String,
    /// Its contents.
    pub text: String,
}

/// The documents of the files, by format.
#[derive(Debug, Default)]
pub struct Sources {
    /// CloudFormation templates: file and template.
    pub templates: Vec<(String, Value)>,
    /// Kubernetes objects, read together (references cross files).
    pub kubernetes: Vec<Document>,
    /// AWS CLI input objects: file, position, object.
    pub cli_inputs: Vec<(String, usize, Value)>,
    /// Documents in no format `apply` reads that are harmless (empty ones are skipped).
    pub ignored: Vec<Ignored>,
}

/// Reads what `paths` name, in order; a directory gives its `.yaml`, `.yml` and `.json`
/// files sorted by name.
pub fn read_paths(paths: &[String]) -> Result<Vec<File>, ApplyError> {
    let mut files = Vec::new();
    for path in paths {
        let read_error = |source| ApplyError::Read {
            file: path.clone(),
            source,
        };
        if path == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(read_error)?;
            files.push(File {
                name: "-".into(),
                text,
            });
            continue;
        }
        if Path::new(path).is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(read_error)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
                })
                .collect();
            entries.sort();
            for entry in entries {
                let name = entry.display().to_string();
                let text = std::fs::read_to_string(&entry).map_err(|source| ApplyError::Read {
                    file: name.clone(),
                    source,
                })?;
                files.push(File { name, text });
            }
            continue;
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        files.push(File {
            name: path.clone(),
            text,
        });
    }
    Ok(files)
}

/// The stack name a template gets without `--stack-name`: the file name without its
/// extensions (`mesh.yaml` → `mesh`).
pub fn stack_name(file: &str) -> String {
    let base = Path::new(file)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    match base.split('.').next() {
        Some(stem) if !stem.is_empty() && file != "-" => stem.to_string(),
        _ => "stdin".to_string(),
    }
}

/// Parses `text` as YAML documents (JSON is YAML too), the CloudFormation short forms
/// (`!Ref`, `!Sub`, `!GetAtt A.B`, …) turned into their long forms.
pub fn documents(file: &str, text: &str) -> Result<Vec<Value>, ApplyError> {
    let format_error = |message: String| ApplyError::Format {
        file: file.to_string(),
        message,
    };
    if text.trim_start().starts_with(['{', '['])
        && let Ok(value) = serde_json::from_str::<Value>(text)
    {
        return Ok(vec![value]);
    }
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value =
            serde_yaml_ng::Value::deserialize(document).map_err(|e| format_error(e.to_string()))?;
        let value = long_form(value).map_err(format_error)?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// YAML to JSON, CloudFormation's short-form tags to long forms.
fn long_form(value: serde_yaml_ng::Value) -> Result<Value, String> {
    use serde_yaml_ng::Value as Yaml;
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(flag) => Value::Bool(flag),
        Yaml::Number(number) => {
            if let Some(i) = number.as_i64() {
                Value::from(i)
            } else if let Some(u) = number.as_u64() {
                Value::from(u)
            } else {
                number
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Yaml::String(text) => Value::String(text),
        Yaml::Sequence(items) => {
            Value::Array(items.into_iter().map(long_form).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Yaml::String(text) => text,
                    Yaml::Number(number) => number.to_string(),
                    Yaml::Bool(flag) => flag.to_string(),
                    other => return Err(format!("a mapping key must be a scalar, not {other:?}")),
                };
                out.insert(key, long_form(value)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = long_form(tagged.value)?;
            let (function, argument) = match name {
                "Ref" | "Condition" => (name.to_string(), inner),
                "GetAtt" => match inner {
                    Value::String(text) => match text.split_once('.') {
                        Some((resource, attribute)) => (
                            "Fn::GetAtt".to_string(),
                            Value::Array(vec![
                                Value::String(resource.into()),
                                Value::String(attribute.into()),
                            ]),
                        ),
                        None => {
                            return Err(format!("!GetAtt {text}: expected LogicalId.Attribute"));
                        }
                    },
                    other => ("Fn::GetAtt".to_string(), other),
                },
                other => (format!("Fn::{other}"), inner),
            };
            let mut out = Map::new();
            out.insert(function, argument);
            Value::Object(out)
        }
    })
}

/// Sorts the documents of `files` by format.
pub fn classify(files: &[File]) -> Result<Sources, ApplyError> {
    let mut sources = Sources::default();
    for file in files {
        let documents = documents(&file.name, &file.text)?;
        for (index, document) in documents.into_iter().enumerate() {
            let index = index + 1;
            if cloudformation::is_template(&document) {
                sources.templates.push((file.name.clone(), document));
            } else if kubernetes::is_object(&document) {
                sources.kubernetes.push(Document {
                    file: file.name.clone(),
                    index,
                    value: document,
                });
            } else if cli_input::is_input(&document) {
                sources
                    .cli_inputs
                    .push((file.name.clone(), index, document));
            } else if let Value::Array(items) = &document {
                for (position, item) in items.iter().enumerate() {
                    if !cli_input::is_input(item) {
                        return Err(ApplyError::Format {
                            file: file.name.clone(),
                            message: format!(
                                "item {} of the list is not an AWS CLI input object (no meshName)",
                                position + 1
                            ),
                        });
                    }
                    sources
                        .cli_inputs
                        .push((file.name.clone(), position + 1, item.clone()));
                }
            } else if document.get("kind").and_then(Value::as_str) == Some("List") {
                sources.ignored.push(Ignored {
                    origin: Origin {
                        file: file.name.clone(),
                        place: format!("document {index}"),
                    },
                    what: "a Kubernetes List (give its items as documents)".into(),
                });
            } else {
                return Err(ApplyError::Format {
                    file: file.name.clone(),
                    message: format!(
                        "document {index} is neither a CloudFormation template (Resources), a Kubernetes object (apiVersion, kind) nor an AWS CLI input (meshName)"
                    ),
                });
            }
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_forms_become_long_forms() {
        let text = "A: !Ref P\nB: !GetAtt Mesh.MeshName\nC: !Sub '${P}-x'\nD: !If [c, 1, 2]\nE: !Condition c\nF: !Join ['', [a, !Ref P]]\n";
        let docs = documents("t.yaml", text).unwrap();
        assert_eq!(
            docs[0],
            json!({
                "A": {"Ref": "P"},
                "B": {"Fn::GetAtt": ["Mesh", "MeshName"]},
                "C": {"Fn::Sub": "${P}-x"},
                "D": {"Fn::If": ["c", 1, 2]},
                "E": {"Condition": "c"},
                "F": {"Fn::Join": ["", ["a", {"Ref": "P"}]]}
            })
        );
    }

    #[test]
    fn formats_are_told_apart_and_unknown_documents_refused() {
        let files = vec![
            File { name: "t.yaml".into(), text: "Resources: {}\n".into() },
            File { name: "k.yaml".into(), text: "apiVersion: v1\nkind: Namespace\n---\n---\napiVersion: appmesh.k8s.aws/v1beta2\nkind: Mesh\n".into() },
            File { name: "c.json".into(), text: "{\"meshName\": \"m\"}".into() },
        ];
        let sources = classify(&files).unwrap();
        assert_eq!(
            (
                sources.templates.len(),
                sources.kubernetes.len(),
                sources.cli_inputs.len()
            ),
            (1, 2, 1)
        );
        let bad = vec![File {
            name: "x.yaml".into(),
            text: "hello: world\n".into(),
        }];
        assert!(
            classify(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("x.yaml: document 1 is neither")
        );
        let broken = vec![File {
            name: "y.yaml".into(),
            text: "a: [\n".into(),
        }];
        assert!(
            classify(&broken)
                .unwrap_err()
                .to_string()
                .starts_with("y.yaml: ")
        );
        assert_eq!(stack_name("dir/mesh.yaml"), "mesh");
        assert_eq!(stack_name("manifest.yaml.template"), "manifest");
    }
}
