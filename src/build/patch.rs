//! Patches: telling JSON 6902 from strategic merge, choosing targets and applying them to the
//! accumulated objects. Pure.

use serde_json::Value;

use super::BuildError;
use super::kustomization::{PatchOptions, TargetSpec};
use super::object::{Loc, Object, Resource};
use super::selector::Selector;
use super::smp::{self, Outcome};
use super::yaml::{self, Document};

/// The content of one patch.
#[derive(Debug, Clone)]
pub enum Content {
    Strategic(Vec<Document>),
    Json(json_patch::Patch),
}

/// Parses patch text: a list is a JSON 6902 patch, mappings are strategic merge patches.
pub fn parse(text: &str, at: &Loc) -> Result<Content, BuildError> {
    let docs = yaml::parse(text, &at.file).map_err(|e| match e {
        BuildError::Parse { at: inner, message } => BuildError::Parse {
            at: Loc::new(inner.file, inner.line + at.line.saturating_sub(1)),
            message,
        },
        other => other,
    })?;
    if docs.len() == 1 && docs[0].value.is_array() {
        let patch =
            serde_json::from_value(docs[0].value.clone()).map_err(|e| BuildError::Patch {
                at: at.clone(),
                message: format!("invalid JSON 6902 patch: {e}"),
            })?;
        return Ok(Content::Json(patch));
    }
    for d in &docs {
        if !d.value.is_object() {
            return Err(BuildError::Patch {
                at: Loc::new(&at.file, at.line.max(d.line)),
                message: "a patch must be a mapping (strategic merge) or a list (JSON 6902)".into(),
            });
        }
    }
    Ok(Content::Strategic(docs))
}

fn is_builtin(obj: &Object) -> bool {
    !obj.group().contains('.') || obj.group().ends_with(".k8s.io")
}

fn rebuild(res: &mut Resource, value: Value, at: &Loc) -> Result<(), BuildError> {
    let obj = Object::new(value).map_err(|m| BuildError::Patch {
        at: at.clone(),
        message: format!("patched {}: {m}", res.obj.key()),
    })?;
    let name = obj.name().to_string();
    let ns = obj.namespace().map(str::to_string);
    // Renaming first records the identity the object had before the patch.
    res.rename(&name);
    res.set_namespace(ns.as_deref());
    res.obj = obj;
    Ok(())
}

fn apply_smp(
    res: &mut Resource,
    doc: &Value,
    opts: &PatchOptions,
    at: &Loc,
) -> Result<bool, BuildError> {
    let mut patch = doc.clone();
    if let Value::Object(p) = &mut patch {
        if !opts.allow_kind_change {
            p.insert("kind".into(), Value::String(res.obj.kind().into()));
            p.insert(
                "apiVersion".into(),
                Value::String(res.obj.api_version().into()),
            );
        }
        if let Some(Value::Object(meta)) = p.get_mut("metadata") {
            if !opts.allow_name_change {
                meta.insert("name".into(), Value::String(res.obj.name().into()));
            }
            if meta.get("namespace").is_some() {
                meta.remove("namespace");
            }
        }
    }
    let mut value = res.obj.value().clone();
    let builtin = is_builtin(&res.obj);
    match smp::apply(&mut value, &patch, builtin) {
        Ok(Outcome::Deleted) => Ok(false),
        Ok(Outcome::Merged) => {
            rebuild(res, value, at)?;
            Ok(true)
        }
        Err(message) => Err(BuildError::Patch {
            at: at.clone(),
            message: format!("{}: {message}", res.obj.key()),
        }),
    }
}

fn apply_json(res: &mut Resource, patch: &json_patch::Patch, at: &Loc) -> Result<(), BuildError> {
    let mut value = res.obj.value().clone();
    json_patch::patch(&mut value, patch).map_err(|e| BuildError::Patch {
        at: at.clone(),
        message: format!("{}: {e}", res.obj.key()),
    })?;
    rebuild(res, value, at)
}

/// Whether a patch document without a target names this object (kind, name and namespace, as
/// now or as before any rename).
fn names_object(doc: &Value, res: &Resource) -> bool {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ns = doc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let group = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|v| v.rsplit_once('/').map(|(g, _)| g).unwrap_or(""));
    let norm = |n: Option<&str>| n.unwrap_or("default").to_string();
    kind == res.obj.kind()
        && group.is_none_or(|g| g == res.obj.group())
        && res.ids().any(|(n, s)| n == name && norm(s) == norm(ns))
}

/// Applies one patch to the objects it targets. Without a target, a strategic merge patch applies
/// to the object it names, and naming no object is an error.
pub fn apply(
    resources: &mut Vec<Resource>,
    content: &Content,
    target: Option<&TargetSpec>,
    opts: &PatchOptions,
    at: &Loc,
) -> Result<(), BuildError> {
    let selector = target
        .map(Selector::new)
        .transpose()
        .map_err(|message| BuildError::Patch {
            at: at.clone(),
            message: format!("target: {message}"),
        })?;
    match (content, selector) {
        (Content::Json(_), None) => Err(BuildError::Patch {
            at: at.clone(),
            message: "a JSON 6902 patch needs a target".into(),
        }),
        (Content::Json(patch), Some(sel)) => {
            for res in resources.iter_mut().filter(|r| sel.matches(r)) {
                apply_json(res, patch, at)?;
            }
            Ok(())
        }
        (Content::Strategic(docs), Some(sel)) => {
            let mut i = 0;
            while i < resources.len() {
                let mut keep = true;
                if sel.matches(&resources[i]) {
                    for d in docs {
                        let doc_at = Loc::new(&at.file, at.line.max(d.line));
                        keep = apply_smp(&mut resources[i], &d.value, opts, &doc_at)?;
                        if !keep {
                            break;
                        }
                    }
                }
                if keep {
                    i += 1
                } else {
                    resources.remove(i);
                }
            }
            Ok(())
        }
        (Content::Strategic(docs), None) => {
            for d in docs {
                let doc_at = Loc::new(&at.file, at.line.max(d.line));
                let hits: Vec<usize> = resources
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| names_object(&d.value, r))
                    .map(|(i, _)| i)
                    .collect();
                let describe = || {
                    let kind = d
                        .value
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("(no kind)");
                    let name = d
                        .value
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("(no name)");
                    format!("{kind} {name}")
                };
                match hits.as_slice() {
                    [] => {
                        return Err(BuildError::Patch {
                            at: doc_at,
                            message: format!("patch target {} matches no object", describe()),
                        });
                    }
                    [i] => {
                        if !apply_smp(&mut resources[*i], &d.value, opts, &doc_at)? {
                            resources.remove(*i);
                        }
                    }
                    _ => {
                        return Err(BuildError::Patch {
                            at: doc_at,
                            message: format!(
                                "patch target {} matches {} objects",
                                describe(),
                                hits.len()
                            ),
                        });
                    }
                }
            }
            Ok(())
        }
    }
}
