//! Transformer configurations (`configurations:` files): more fields for the built-in
//! transformers to touch (namespaces, prefixes, labels, annotations, images, replica counts)
//! and more name references to follow. As in kustomize, a kustomization's transformers use the
//! built-in fields plus those of its own files and of every kustomization and component it
//! includes. Pure: parses text.

use serde::Deserialize;

use super::BuildError;
use super::fieldspec::FieldSpec;
use super::kustomization::nullable;
use super::object::Loc;
use super::yaml;

/// The fields a configuration file adds, by transformer.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformerConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub name_prefix: Vec<FieldSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub name_suffix: Vec<FieldSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: Vec<FieldSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub common_labels: Vec<FieldSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub template_labels: Vec<FieldSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub common_annotations: Vec<FieldSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub images: Vec<FieldSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub replicas: Vec<FieldSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub name_reference: Vec<NameReference>,
    /// Where `vars` are substituted; accepted and unused, as `vars` are not supported.
    #[serde(default, deserialize_with = "nullable")]
    pub var_reference: Vec<FieldSpec>,
}

/// Fields (`fieldSpecs`) that hold the name of an object of a kind: they follow it when it is
/// renamed.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameReference {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub field_specs: Vec<FieldSpec>,
}

fn extend_unique<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T]) {
    for item in from {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

impl TransformerConfig {
    /// Parses a configuration file.
    pub fn parse(text: &str, file: &str) -> Result<Self, BuildError> {
        let doc = yaml::parse_one(text, file)?;
        if doc.value.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(doc.value).map_err(|e| BuildError::Kustomization {
            at: Loc::new(file, doc.line),
            message: format!("transformer configuration: {e}"),
        })
    }

    /// Adds another configuration's fields (each once).
    pub fn merge(&mut self, other: &Self) {
        extend_unique(&mut self.name_prefix, &other.name_prefix);
        extend_unique(&mut self.name_suffix, &other.name_suffix);
        extend_unique(&mut self.namespace, &other.namespace);
        extend_unique(&mut self.common_labels, &other.common_labels);
        extend_unique(&mut self.template_labels, &other.template_labels);
        extend_unique(&mut self.common_annotations, &other.common_annotations);
        extend_unique(&mut self.images, &other.images);
        extend_unique(&mut self.replicas, &other.replicas);
        extend_unique(&mut self.name_reference, &other.name_reference);
        extend_unique(&mut self.var_reference, &other.var_reference);
    }
}

/// Built-in fields followed by those of a configuration.
pub fn with(builtin: Vec<FieldSpec>, extra: &[FieldSpec]) -> Vec<FieldSpec> {
    let mut all = builtin;
    extend_unique(&mut all, extra);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubebuilder_configurations() {
        let text = r"
nameReference:
- kind: Service
  version: v1
  fieldSpecs:
  - kind: CustomResourceDefinition
    group: apiextensions.k8s.io
    path: spec/conversion/webhook/clientConfig/service/name
namespace:
- kind: CustomResourceDefinition
  path: spec/x
  create: false
varReference:
- path: metadata/annotations
";
        let c = TransformerConfig::parse(text, "k.yaml").unwrap();
        assert_eq!(c.name_reference[0].kind, "Service");
        assert_eq!(c.namespace[0].path, "spec/x");
        let mut merged = c.clone();
        merged.merge(&c);
        assert_eq!(merged, c);
        let err = TransformerConfig::parse("nameRefs: []\n", "k.yaml").unwrap_err();
        assert!(err.to_string().contains("nameRefs"), "{err}");
    }
}
