//! The kustomization.yaml file: which fields sluice supports, parsed into typed settings, and the
//! errors for unknown or unsupported fields. Pure: works on the file's text.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::BuildError;
use super::fieldspec::FieldSpec;
use super::object::Loc;
use super::replacement::ReplacementField;
use super::yaml;

/// The file names kustomize looks for, in its order.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields kustomize has and sluice does not render, with why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("helmCharts", "Helm charts are not rendered"),
    ("helmGlobals", "Helm charts are not rendered"),
    (
        "helmChartInflationGenerator",
        "Helm charts are not rendered",
    ),
    ("generators", "generator plugins are not run"),
    ("validators", "validator plugins are not run"),
    ("vars", "not implemented"),
    ("openapi", "custom OpenAPI schemas are not read"),
    ("crds", "custom OpenAPI schemas are not read"),
    ("buildMetadata", "not implemented"),
    ("inventory", "not implemented"),
];

/// A target selector of a patch (kustomize's `Selector`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetSpec {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub label_selector: Option<String>,
    #[serde(default)]
    pub annotation_selector: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchOptions {
    #[serde(default, deserialize_with = "nullable")]
    pub allow_name_change: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub allow_kind_change: bool,
}

/// One entry of `patches` / `patchesJson6902`: inline or from a file, with an optional target.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchSpec {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub patch: Option<String>,
    #[serde(default)]
    pub target: Option<TargetSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub options: PatchOptions,
}

/// One entry of `images`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpec {
    pub name: String,
    #[serde(default)]
    pub new_name: Option<String>,
    #[serde(default, deserialize_with = "opt_scalar")]
    pub new_tag: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    /// Appended to the image's tag when neither newTag nor digest is set (kustomize 5).
    #[serde(default, deserialize_with = "opt_scalar")]
    pub tag_suffix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSpec {
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSpec {
    #[serde(default, deserialize_with = "scalar_map")]
    pub pairs: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub include_selectors: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub include_templates: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorOptions {
    #[serde(default, deserialize_with = "scalar_map")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub disable_name_suffix_hash: Option<bool>,
    #[serde(default)]
    pub immutable: Option<bool>,
}

/// One entry of `configMapGenerator` or `secretGenerator`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorSpec {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub behavior: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub files: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub literals: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub envs: Vec<String>,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub options: Option<GeneratorOptions>,
}

/// The supported part of a kustomization file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kustomization {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub resources: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub bases: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub components: Vec<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name_prefix: Option<String>,
    #[serde(default)]
    pub name_suffix: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: Vec<LabelSpec>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub images: Vec<ImageSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub replicas: Vec<ReplicaSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub patches: Vec<PatchSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub patches_strategic_merge: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub patches_json6902: Vec<PatchSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub config_map_generator: Vec<GeneratorSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub secret_generator: Vec<GeneratorSpec>,
    #[serde(default)]
    pub generator_options: Option<GeneratorOptions>,
    #[serde(default, deserialize_with = "nullable")]
    pub transformers: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub replacements: Vec<ReplacementField>,
    #[serde(default, deserialize_with = "nullable")]
    pub configurations: Vec<String>,
    #[serde(default)]
    pub sort_options: Option<Value>,
}

impl Kustomization {
    pub fn is_component(&self) -> bool {
        self.kind.as_deref() == Some("Component")
    }
}

/// A field written as `null` (or with every entry commented out) has its default value, as in
/// kustomize.
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string map whose values may be written as YAML scalars of any type.
pub fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (k, v) in map.unwrap_or_default() {
        out.insert(k, scalar_string(&v).map_err(serde::de::Error::custom)?);
    }
    Ok(out)
}

fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<Value> = Option::deserialize(d)?;
    v.map(|v| scalar_string(&v).map_err(serde::de::Error::custom))
        .transpose()
}

pub fn scalar_string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        other => Err(format!(
            "expected a string, found {}",
            super::object::type_name(other)
        )),
    }
}

/// The line of a top-level field in the file's text, for messages.
pub fn field_line(text: &str, field: &str) -> u64 {
    let prefix = format!("{field}:");
    text.lines()
        .position(|l| l.starts_with(&prefix) || l.starts_with(&format!("\"{field}\":")))
        .map(|i| i as u64 + 1)
        .unwrap_or(0)
}

/// Parses a kustomization file, naming unknown and unsupported fields.
pub fn parse(text: &str, file: &str) -> Result<Kustomization, BuildError> {
    let doc = yaml::parse_one(text, file)?;
    let map = match doc.value {
        Value::Object(map) => map,
        Value::Null => return Ok(Kustomization::default()),
        other => {
            return Err(BuildError::Kustomization {
                at: Loc::new(file, doc.line),
                message: format!(
                    "expected a mapping, found {}",
                    super::object::type_name(&other)
                ),
            });
        }
    };
    for key in map.keys() {
        if let Some((_, why)) = UNSUPPORTED.iter().find(|(f, _)| f == key) {
            return Err(BuildError::Unsupported {
                at: Loc::new(file, field_line(text, key)),
                field: key.clone(),
                detail: why.to_string(),
            });
        }
    }
    let k: Kustomization = serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
        let message = e.to_string();
        let field = message.split('`').nth(1).unwrap_or_default().to_string();
        let line = map
            .keys()
            .find(|k| **k == field)
            .map(|k| field_line(text, k))
            .unwrap_or(0);
        BuildError::Kustomization {
            at: Loc::new(file, line.max(doc.line)),
            message: format!("kustomization: {message}"),
        }
    })?;
    if let Some(kind) = k
        .kind
        .as_ref()
        .filter(|k| *k != "Kustomization" && *k != "Component")
    {
        return Err(BuildError::Kustomization {
            at: Loc::new(file, field_line(text, "kind")),
            message: format!("kind must be Kustomization or Component, not {kind}"),
        });
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_fields() {
        let k = parse(
            "resources: [a.yaml]\ncommonLabels: {app: web, n: 1}\nnamePrefix: p-\n",
            "k.yaml",
        )
        .unwrap();
        assert_eq!(k.resources, ["a.yaml"]);
        assert_eq!(k.common_labels["n"], "1");
        assert_eq!(k.name_prefix.as_deref(), Some("p-"));
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let err = parse("resources: []\nresourcez: [a]\n", "dir/kustomization.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dir/kustomization.yaml:2:"), "{err}");
        assert!(err.contains("resourcez"), "{err}");
    }

    #[test]
    fn unsupported_field_is_named() {
        for field in ["helmCharts", "vars", "openapi", "generators"] {
            let text = format!("resources: []\n{field}: []\n");
            let err = parse(&text, "k.yaml").unwrap_err().to_string();
            assert!(err.starts_with("k.yaml:2: field `"), "{err}");
            assert!(err.contains(field), "{err}");
        }
    }
}
