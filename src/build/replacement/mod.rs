//! `replacements`: copying one object's field (or a fixed value) into fields of other objects,
//! as kustomize's replacement transformer does. Sources and targets are chosen by identity,
//! labels and annotations, fields are named by paths ([`path`]) and may be split and joined by a
//! delimiter, created when missing, or sit inside JSON text held by a field ([`embedded`]).
//! Reading replacement files goes through the build context; the rest is pure.

mod embedded;
mod path;

use serde::Deserialize;
use serde_json::Value;

use super::BuildError;
use super::fieldspec::is_cluster_scoped_kind;
use super::kustomization::{TargetSpec, nullable, scalar_string};
use super::kustomize::{Ctx, KFile};
use super::object::{Loc, Object, Resource};
use super::selector::{Id, Selector};
use super::yaml::{self, plain_scalar};

use path::{Create, text};

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

/// The value a replacement writes.
#[derive(Debug, Clone, PartialEq)]
enum Written {
    /// A scalar: its text (what a scalar target receives) and its value with its type (what
    /// replaces a mapping or list).
    Scalar { text: String, typed: Value },
    /// A mapping or list, written whole.
    Node(Value),
}

impl Written {
    fn of(v: &Value) -> Self {
        match v {
            Value::Object(_) | Value::Array(_) => Written::Node(v.clone()),
            scalar => Written::Scalar {
                text: text(scalar),
                typed: scalar.clone(),
            },
        }
    }

    fn text(&self) -> &str {
        match self {
            Written::Scalar { text, .. } => text,
            Written::Node(_) => "",
        }
    }

    /// The same kind of scalar with other text (a string stays a string).
    fn with_text(&self, new: String) -> Self {
        let typed = match self {
            Written::Scalar {
                typed: Value::String(_),
                ..
            }
            | Written::Node(_) => Value::String(new.clone()),
            Written::Scalar { .. } => plain_scalar(&new),
        };
        Written::Scalar { text: new, typed }
    }

    fn create(&self) -> Create {
        match self {
            Written::Scalar { .. } => Create::Scalar,
            Written::Node(Value::Array(_)) => Create::List,
            Written::Node(_) => Create::Mapping,
        }
    }
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
            apply(acc, &r).map_err(|failure| match failure {
                Failure::Invalid(message) => BuildError::Transform {
                    at,
                    message: format!("replacements[{i}]: {message}"),
                },
                Failure::Unsupported(detail) => BuildError::Unsupported {
                    at,
                    field: "replacements".into(),
                    detail,
                },
            })?;
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
            let doc = yaml::parse_one(&self.src.read_text(&real)?, &shown)?;
            let at = Loc::new(&shown, doc.line);
            let parsed = match doc.value {
                Value::Array(_) => serde_json::from_value::<Vec<Replacement>>(doc.value),
                Value::Object(_) => {
                    serde_json::from_value::<Replacement>(doc.value).map(|r| vec![r])
                }
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
            let list = parsed.map_err(|e| BuildError::Kustomization {
                at: at.clone(),
                message: format!("replacements: {e}"),
            })?;
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

fn compile(spec: &TargetSpec) -> Result<Selector, Failure> {
    Selector::new(spec).map_err(|e| invalid(format!("target: {e}")))
}

fn write_targets(
    resources: &mut [Resource],
    value: &Written,
    target: &TargetSelector,
) -> Result<(), Failure> {
    let select = target
        .select
        .as_ref()
        .ok_or_else(|| invalid("a target needs select"))?;
    let select = compile(select)?;
    let rejects = target
        .reject
        .iter()
        .map(compile)
        .collect::<Result<Vec<_>, _>>()?;
    let default_path = ["metadata.name".to_string()];
    let field_paths = if target.field_paths.is_empty() {
        &default_path[..]
    } else {
        &target.field_paths[..]
    };
    let options = target.options.clone().unwrap_or_default();
    for res in resources.iter_mut() {
        let obj = &res.obj;
        let by_metadata = select.selects_metadata(obj)
            && !rejects
                .iter()
                .any(|r| r.has_metadata() && r.selects_metadata(obj));
        if !by_metadata {
            continue;
        }
        let ids: Vec<Id> = res
            .ids()
            .map(|(name, ns)| Id {
                group: obj.group(),
                version: obj.version(),
                kind: obj.kind(),
                name,
                namespace: ns.unwrap_or_default(),
            })
            .collect();
        let rejected = rejects
            .iter()
            .any(|r| r.has_id() && ids.iter().any(|id| r.selects_id(id)));
        if rejected || !ids.iter().any(|id| select.selects_id(id)) {
            continue;
        }
        let key = obj.key();
        let mut changed = obj.value().clone();
        for field_path in field_paths {
            write_field(&mut changed, value, field_path, &options).map_err(|f| match f {
                Failure::Invalid(m) => Failure::Invalid(format!("target {key}: {m}")),
                unsupported => unsupported,
            })?;
        }
        res.obj = Object::new(changed).map_err(|m| invalid(format!("target {key}: {m}")))?;
    }
    Ok(())
}

/// Writes the value at every field a path names in one object.
fn write_field(
    obj: &mut Value,
    value: &Written,
    field_path: &str,
    options: &FieldOptions,
) -> Result<(), Failure> {
    let create = options.create.then(|| value.create());
    if embedded::write(obj, value, field_path, create)? {
        return Ok(());
    }
    let unable = |detail: Option<String>| {
        let verb = if create.is_some() {
            "find or create"
        } else {
            "find"
        };
        let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
        invalid(format!("unable to {verb} field {field_path}{detail}"))
    };
    let hits =
        path::find_all(obj, &path::split(field_path), create).map_err(|e| unable(Some(e)))?;
    if hits.is_empty() {
        return Err(unable(None));
    }
    for hit in hits {
        let slot = obj.pointer_mut(&hit.pointer).expect("found just now");
        set(slot, hit.created, value, options)
            .map_err(|e| invalid(format!("{field_path}: {e}")))?;
    }
    Ok(())
}

/// Writes the value into one field: a scalar field keeps its type and takes the value's text, a
/// created scalar reads the text as YAML would, a mapping or list is replaced by the value.
fn set(
    slot: &mut Value,
    created: bool,
    value: &Written,
    options: &FieldOptions,
) -> Result<(), String> {
    let joined;
    let value = match options.delimiter() {
        Some(delimiter) => {
            let current = match (&*slot, created) {
                (_, true) | (Value::Null, false) => String::new(),
                (Value::Object(_) | Value::Array(_), false) => {
                    return Err("the delimiter option needs a scalar field".into());
                }
                (scalar, false) => text(scalar),
            };
            let mut parts: Vec<&str> = current.split(delimiter).collect();
            let v = value.text();
            match usize::try_from(options.index) {
                Err(_) => parts.insert(0, v),
                Ok(i) if i >= parts.len() => parts.push(v),
                Ok(i) => parts[i] = v,
            }
            joined = value.with_text(parts.join(delimiter));
            &joined
        }
        None => value,
    };
    let text = value.text().to_string();
    *slot = match (&*slot, created) {
        (Value::Null, true) => plain_scalar(&text),
        (_, true) | (Value::Object(_) | Value::Array(_), false) => match value {
            Written::Scalar { typed, .. } => typed.clone(),
            Written::Node(node) => node.clone(),
        },
        (Value::String(_), false) => Value::String(text),
        (Value::Number(_), false) => match plain_scalar(&text) {
            n @ Value::Number(_) => n,
            _ => return Err(format!("{text:?} is not a number, as the field is")),
        },
        (Value::Bool(_), false) => match plain_scalar(&text) {
            b @ Value::Bool(_) => b,
            _ => return Err(format!("{text:?} is not a boolean, as the field is")),
        },
        (Value::Null, false) => return Err("the field is null".into()),
    };
    Ok(())
}

#[cfg(test)]
mod tests;
