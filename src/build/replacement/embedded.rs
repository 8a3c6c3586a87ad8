//! Replacement targets inside JSON text held by a string field (kustomize 5.8):
//! `data.config.json.server.port` writes `server.port` of the JSON in `data["config.json"]` and
//! writes the JSON back, indented as it was or compact, as Go's encoding/json would. YAML text
//! held by a field is refused. Pure.

use serde_json::Value;

use super::super::gojson;
use super::super::yaml;
use super::path::{self, Create};
use super::target::{self, Written};
use super::{Failure, FieldOptions};

/// Writes into the JSON text of the first string field on the path that holds a mapping or a
/// list, when the rest of the path is found (or created) there. Ok(false) when the path does not
/// go through such a field, so the plain path applies (and fails, as a path through a scalar
/// does).
pub fn write(
    obj: &mut Value,
    value: &Written,
    field_path: &str,
    create: Option<Create>,
) -> Result<bool, Failure> {
    let parts = path::split(field_path);
    for split_at in 1..parts.len() {
        let Ok(Some((pointer, field))) = path::lookup(obj, &parts[..split_at]) else {
            continue;
        };
        let original = match field {
            Value::String(s) => s.clone(),
            Value::Object(_) | Value::Array(_) => continue,
            // Other scalars read as YAML too, as scalars: nothing is under them.
            _ => return Ok(false),
        };
        let Ok(doc) = yaml::parse_one(&original, field_path) else {
            continue;
        };
        let mut doc = doc.value;
        if !doc.is_object() && !doc.is_array() {
            return Ok(false);
        }
        let Ok(hits) = path::find_all(&mut doc, &parts[split_at..], create) else {
            return Ok(false);
        };
        if hits.is_empty() {
            return Ok(false);
        }
        // Delimiters do not apply inside the text, as in kustomize.
        let plain = FieldOptions::default();
        for hit in hits {
            let slot = doc.pointer_mut(&hit.pointer).expect("found just now");
            if target::set(slot, hit.created, value, &plain).is_err() {
                return Ok(false);
            }
        }
        if !original.trim_start().starts_with(['{', '[']) {
            return Err(Failure::Unsupported(format!(
                "{field_path}: writing into YAML text held by a field is not supported, only \
                 into JSON text"
            )));
        }
        let rewritten = if original.contains('\n') && original.contains("  ") {
            gojson::pretty(&doc)
        } else {
            gojson::compact(&doc)
        };
        *obj.pointer_mut(&pointer).expect("looked up just now") = Value::String(rewritten);
        return Ok(true);
    }
    Ok(false)
}
