//! `replacements`: copying one object's field (or a fixed value) into fields of other objects,
//! as kustomize's replacement transformer does. Sources and targets are chosen by identity,
//! labels and annotations, fields are named by paths ([`path`]) and may be split and joined by a
//! delimiter, created when missing, or sit inside JSON text held by a field ([`embedded`]).
//! This file reads replacements (files through the build context) and their sources;
//! [`target`] writes them. Pure apart from reading files.

mod embedded;
mod path;
mod target;

use serde::Deserialize;
use serde_json::Value;

use super::BuildError;
use super::fieldspec::is_cluster_scoped_kind;
use super::kustomization::{TargetSpec, nullable, scalar_string};
use super::kustomize::{Ctx, KFile};
use super::object::{Loc, Resource};
use super::yaml::{self, plain_scalar};

use target::{Written, write_targets};

/// One entry of `replacements`: a replacement, or the `path` of a file holding one or a list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacementField {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub source: Option<SourceSelector>,
    #[serde(default, deserialize_with = "opt_scalar")]
    pub source_value: Option<String>,
    #[serde(default)]
    pub targets: Option<Vec<TargetSelector>>,
}

/// A replacement: where the value comes from and where it goes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replacement {
    #[serde(default)]
    pub source: Option<SourceSelector>,
    /// A fixed value instead of a source object's field.
    #[serde(default, deserialize_with = "opt_scalar")]
    pub source_value: Option<String>,
    #[serde(default)]
    pub targets: Option<Vec<TargetSelector>>,
}

/// The object (exactly one) and field a value is read from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSelector {
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
    /// Default: `metadata.name`.
    #[serde(default)]
    pub field_path: Option<String>,
    #[serde(default)]
    pub options: Option<FieldOptions>,
}

/// The objects and fields a value is written to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetSelector {
    #[serde(default)]
    pub select: Option<TargetSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub reject: Vec<TargetSpec>,
    /// Default: `metadata.name`.
    #[serde(default, deserialize_with = "nullable")]
    pub field_paths: Vec<String>,
    #[serde(default)]
    pub options: Option<FieldOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldOptions {
    /// Splits the field; `index` picks (source) or replaces (target) one part.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// A negative index prepends to a target, one past the end appends.
    #[serde(default, deserialize_with = "nullable")]
    pub index: i64,
    /// Accepted and, as in kustomize, not used.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Create a missing target field.
    #[serde(default, deserialize_with = "nullable")]
    pub create: bool,
}

impl FieldOptions {
    fn delimiter(&self) -> Option<&str> {
        self.delimiter.as_deref().filter(|d| !d.is_empty())
    }
}

fn opt_scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<Value> = Option::deserialize(d)?;
    v.map(|v| scalar_string(&v).map_err(serde::de::Error::custom))
        .transpose()
}

/// Why a replacement could not be carried out.
#[derive(Debug, PartialEq)]
pub enum Failure {
    Invalid(String),
    /// Something kustomize does and sluice does not.
    Unsupported(String),
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::Invalid(message.into())
}

impl Failure {
    /// The build error for the `index`th replacement, written at `at`.
    pub fn into_error(self, at: Loc, index: usize) -> BuildError {
        match self {
            Failure::Invalid(message) => BuildError::Transform {
                at,
                message: format!("replacements[{index}]: {message}"),
            },
            Failure::Unsupported(detail) => BuildError::Unsupported {
                at,
                field: "replacements".into(),
                detail,
            },
        }
    }
}

/// The replacements in a file's text: one replacement, or a list.
pub fn parse_list(text: &str, file: &str) -> Result<Vec<Replacement>, BuildError> {
    let doc = yaml::parse_one(text, file)?;
    let at = Loc::new(file, doc.line);
    let parsed = match doc.value {
        Value::Array(_) => serde_json::from_value::<Vec<Replacement>>(doc.value),
        Value::Object(_) => serde_json::from_value::<Replacement>(doc.value).map(|r| vec![r]),
        other => {
            return Err(BuildError::Kustomization {
                at,
                message: format!(
                    "expected a replacement or a list of replacements, found {}",
                    super::object::type_name(&other)
                ),
            });
        }
    };
    parsed.map_err(|e| BuildError::Kustomization {
        at,
        message: format!("replacements: {e}"),
    })
}

impl Ctx<'_> {
    /// Runs the `replacements` of a kustomization (or of a ReplacementTransformer) on the objects
    /// accumulated so far, in order.
    pub(super) fn replace(
        &self,
        kf: &KFile,
        fields: &[ReplacementField],
        acc: &mut [Resource],
    ) -> Result<(), BuildError> {
        for (i, (r, at)) in self.load_replacements(kf, fields)?.into_iter().enumerate() {
            apply(acc, &r).map_err(|failure| failure.into_error(at, i))?;
        }
        Ok(())
    }

    /// The replacements of the entries, those of files included, with where each was written.
    fn load_replacements(
        &self,
        kf: &KFile,
        fields: &[ReplacementField],
    ) -> Result<Vec<(Replacement, Loc)>, BuildError> {
        let mut out = Vec::new();
        for field in fields {
            let Some(file) = &field.path else {
                let inline = Replacement {
                    source: field.source.clone(),
                    source_value: field.source_value.clone(),
                    targets: field.targets.clone(),
                };
                out.push((inline, kf.at("replacements")));
                continue;
            };
            if field.source.is_some() || field.source_value.is_some() || field.targets.is_some() {
                return Err(BuildError::Kustomization {
                    at: kf.at(file),
                    message: "a replacements entry has a path or an inline replacement, not both"
                        .into(),
                });
            }
            let real = self.restricted_file(kf, file)?;
            let shown = self.src.display(&real);
            let list = parse_list(&self.src.read_text(&real)?, &shown)?;
            let at = Loc::new(&shown, 0);
            out.extend(list.into_iter().map(|r| (r, at.clone())));
        }
        Ok(out)
    }
}

/// Carries out one replacement on the objects.
pub fn apply(resources: &mut [Resource], r: &Replacement) -> Result<(), Failure> {
    let value = match (&r.source, &r.source_value, &r.targets) {
        (_, _, None) | (None, None, _) => {
            return Err(invalid(
                "a replacement needs a source (or sourceValue) and targets",
            ));
        }
        (Some(_), Some(_), _) => return Err(invalid("source and sourceValue exclude each other")),
        (None, Some(v), _) => Written::Scalar {
            text: v.clone(),
            typed: plain_scalar(v),
        },
        (Some(source), None, _) => read_source(resources, source)?,
    };
    for target in r.targets.iter().flatten() {
        write_targets(resources, &value, target)?;
    }
    Ok(())
}

fn describe(parts: &[(&str, &Option<String>)]) -> String {
    let set: Vec<String> = parts
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={v}"))
        })
        .collect();
    if set.is_empty() {
        "(any object)".into()
    } else {
        set.join(" ")
    }
}

/// The namespace an identity is in for comparisons: cluster-scoped kinds are in none, and no
/// namespace is `default`.
fn effective_namespace<'a>(group: &str, kind: &str, namespace: &'a str) -> &'a str {
    if is_cluster_scoped_kind(group, kind) {
        "~cluster"
    } else if namespace.is_empty() {
        "default"
    } else {
        namespace
    }
}

/// Whether a source selector names the object (by any name it had): every field set must be
/// equal; namespaces are compared as effective namespaces.
fn is_source(s: &SourceSelector, res: &Resource) -> bool {
    let o = &res.obj;
    let same = |want: &Option<String>, have: &str| {
        want.as_deref().is_none_or(|w| w.is_empty() || w == have)
    };
    if !(same(&s.group, o.group()) && same(&s.version, o.version()) && same(&s.kind, o.kind())) {
        return false;
    }
    res.ids().any(|(name, ns)| {
        let namespace_matches = s.namespace.as_deref().is_none_or(|want| {
            want.is_empty()
                || effective_namespace(
                    s.group.as_deref().unwrap_or_default(),
                    s.kind.as_deref().unwrap_or_default(),
                    want,
                ) == effective_namespace(o.group(), o.kind(), ns.unwrap_or_default())
        });
        same(&s.name, name) && namespace_matches
    })
}

fn read_source(resources: &[Resource], s: &SourceSelector) -> Result<Written, Failure> {
    let described = describe(&[
        ("group", &s.group),
        ("version", &s.version),
        ("kind", &s.kind),
        ("name", &s.name),
        ("namespace", &s.namespace),
    ]);
    let mut found = resources.iter().filter(|r| is_source(s, r));
    let res = match (found.next(), found.next()) {
        (Some(one), None) => one,
        (None, _) => return Err(invalid(format!("source {described}: no object matches"))),
        (Some(a), Some(b)) => {
            return Err(invalid(format!(
                "source {described}: more than one object matches ({} and {})",
                a.obj.key(),
                b.obj.key()
            )));
        }
    };
    let field_path = s
        .field_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("metadata.name");
    let value = path::lookup(res.obj.value(), &path::split(field_path))
        .map_err(|e| invalid(format!("source {described}: {field_path}: {e}")))?
        .map(|(_, v)| v);
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    let Some(value) = value.filter(|v| !empty(v)) else {
        return Err(invalid(format!(
            "source {described}: fieldPath {field_path} is missing or empty in {}",
            res.obj.key()
        )));
    };
    let written = Written::of(value);
    let Some(delimiter) = s.options.as_ref().and_then(FieldOptions::delimiter) else {
        return Ok(written);
    };
    if matches!(written, Written::Node(_)) {
        return Err(invalid(format!(
            "source {described}: the delimiter option needs a scalar field, {field_path} is not"
        )));
    }
    let index = s.options.as_ref().map(|o| o.index).unwrap_or_default();
    let parts: Vec<&str> = written.text().split(delimiter).collect();
    let part = usize::try_from(index)
        .ok()
        .and_then(|i| parts.get(i))
        .ok_or_else(|| {
            invalid(format!(
                "source {described}: options.index {index} is out of bounds for value {:?}",
                written.text()
            ))
        })?;
    Ok(written.with_text(part.to_string()))
}

#[cfg(test)]
mod tests;
