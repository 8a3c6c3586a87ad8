//! Writing a replacement's value into the fields its targets name: choosing the objects,
//! finding or creating the fields, keeping a scalar field's type. Pure.

use serde_json::Value;

use super::super::kustomization::TargetSpec;
use super::super::object::{Object, Resource};
use super::super::selector::{Id, Selector};
use super::super::yaml::plain_scalar;
use super::path::{self, Create, text};
use super::{Failure, FieldOptions, TargetSelector, embedded, invalid};

/// The value a replacement writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// A scalar: its text (what a scalar target receives) and its value with its type (what
    /// replaces a mapping or list).
    Scalar { text: String, typed: Value },
    /// A mapping or list, written whole.
    Node(Value),
}

impl Written {
    /// A source field's value.
    pub fn of(v: &Value) -> Self {
        match v {
            Value::Object(_) | Value::Array(_) => Written::Node(v.clone()),
            scalar => Written::Scalar {
                text: text(scalar),
                typed: scalar.clone(),
            },
        }
    }

    /// What a scalar target receives (nothing for a mapping or list, as in kustomize).
    pub fn text(&self) -> &str {
        match self {
            Written::Scalar { text, .. } => text,
            Written::Node(_) => "",
        }
    }

    /// The same kind of scalar with other text (a string stays a string).
    pub fn with_text(&self, new: String) -> Self {
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

    /// What a missing target field is created as.
    fn create(&self) -> Create {
        match self {
            Written::Scalar { .. } => Create::Scalar,
            Written::Node(Value::Array(_)) => Create::List,
            Written::Node(_) => Create::Mapping,
        }
    }
}

fn compile(spec: &TargetSpec) -> Result<Selector, Failure> {
    Selector::new(spec).map_err(|e| invalid(format!("target: {e}")))
}

/// Writes the value at every field path of a target in every object it selects (by its
/// current or an earlier name) and does not reject.
pub fn write_targets(
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
pub fn set(
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
