//! Strategic merge patches as kustomize applies them: maps merge field by field, `null` removes
//! a field, lists of built-in kinds merge by the merge keys of their schema ([`schema`]) and
//! other lists are replaced, and `$patch: delete|replace|merge` directives apply. Merged lists
//! hold the patch's entries first ([`list`]). `$retainKeys`, `$setElementOrder` and
//! `$deleteFromPrimitiveList` are refused: kustomize copies them into the object. Pure.

mod list;
mod schema;

use serde_json::{Map, Value};

use schema::ListMerge;

/// What a top-level patch does to its target.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Merged,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

const DIRECTIVE: &str = "$patch";

fn map_directive(m: &Map<String, Value>) -> Result<Directive, String> {
    match m.get(DIRECTIVE) {
        None => Ok(Directive::Merge),
        Some(v) => parse_directive(v),
    }
}

fn parse_directive(v: &Value) -> Result<Directive, String> {
    match v.as_str() {
        Some("merge") => Ok(Directive::Merge),
        Some("replace") => Ok(Directive::Replace),
        Some("delete") => Ok(Directive::Delete),
        _ => Err(format!("unknown $patch directive {v}")),
    }
}

/// A list entry that is only a directive for the list (`- $patch: replace`).
fn is_list_directive(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key(DIRECTIVE))
}

/// The directive for a whole list: the first entry with a `$patch` field, when that is its only
/// field.
fn list_directive(items: &[Value]) -> Result<Directive, String> {
    match items
        .iter()
        .find_map(|v| v.as_object().filter(|m| m.contains_key(DIRECTIVE)))
    {
        Some(m) if m.len() == 1 => parse_directive(&m[DIRECTIVE]),
        _ => Ok(Directive::Merge),
    }
}

/// Directives kustomize does not carry out (it leaves them in the object, which the API server
/// then refuses), so sluice refuses the patch.
fn refuse_unsupported(v: &Value) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let unsupported = k == "$retainKeys"
                    || k.starts_with("$setElementOrder/")
                    || k.starts_with("$deleteFromPrimitiveList/");
                if unsupported {
                    return Err(format!(
                        "the strategic merge directive {k} is not supported"
                    ));
                }
                refuse_unsupported(child)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(refuse_unsupported),
        _ => Ok(()),
    }
}

/// The kind whose schema says how lists merge; None for kinds without one (custom resources),
/// whose lists are all replaced.
struct Schema<'a> {
    kind: Option<&'a str>,
}

impl Schema<'_> {
    fn list_merge(&self, path: &[String]) -> ListMerge {
        match self.kind {
            Some(kind) => schema::list_merge(kind, path),
            None => ListMerge::Replace,
        }
    }
}

/// Applies a strategic merge patch to an object. `builtin` says whether the object is of a
/// built-in kind (whose schema gives lists merge keys) or a custom one (lists are replaced).
pub fn apply(target: &mut Value, patch: &Value, builtin: bool) -> Result<Outcome, String> {
    refuse_unsupported(patch)?;
    if !patch.is_object() || !target.is_object() {
        return Err("a strategic merge patch must be a mapping".into());
    }
    let kind = target
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let schema = Schema {
        kind: builtin.then_some(kind.as_str()),
    };
    match merge(Some(target.take()), patch, &mut Vec::new(), &schema)? {
        Some(merged) => {
            *target = merged;
            Ok(Outcome::Merged)
        }
        None => Ok(Outcome::Deleted),
    }
}

fn is_scalar(v: &Value) -> bool {
    !v.is_object() && !v.is_array()
}

fn type_name(v: &Value) -> &'static str {
    super::object::type_name(v)
}

/// Merges `patch` into `object` (None when the field is missing) at `path`; None when the
/// field goes away.
fn merge(
    object: Option<Value>,
    patch: &Value,
    path: &mut Vec<String>,
    schema: &Schema,
) -> Result<Option<Value>, String> {
    let object = object.filter(|o| !o.is_null());
    match (object, patch) {
        (_, Value::Null) => Ok(None),
        (None, Value::Object(p)) => match map_directive(p)? {
            Directive::Delete => Ok(None),
            _ => merge_self(patch, path, schema).map(Some),
        },
        (Some(Value::Object(mut o)), Value::Object(p)) => match map_directive(p)? {
            Directive::Delete => Ok(None),
            Directive::Replace => merge_self(patch, path, schema).map(Some),
            Directive::Merge => {
                o.remove(DIRECTIVE);
                merge_fields(&mut o, p, path, schema)?;
                Ok(Some(Value::Object(o)))
            }
        },
        (object, Value::Array(p)) if object.as_ref().is_none_or(Value::is_array) => {
            let object = object.map(|o| match o {
                Value::Array(items) => items,
                _ => unreachable!("checked to be a list"),
            });
            merge_list(object, p, path, schema)
        }
        (None, scalar) => Ok(Some(scalar.clone())),
        (Some(o), scalar) if is_scalar(&o) && is_scalar(scalar) => Ok(Some(scalar.clone())),
        (Some(o), p) => Err(format!(
            "{}: cannot merge {} into {}",
            path.join("."),
            type_name(p),
            type_name(&o)
        )),
    }
}

/// A patch merged with itself, as kustomize inserts new content: directives carried out,
/// null fields and deleted entries dropped.
fn merge_self(patch: &Value, path: &mut Vec<String>, schema: &Schema) -> Result<Value, String> {
    let mut base = patch.clone();
    if let Value::Object(m) = &mut base {
        m.remove(DIRECTIVE);
    }
    match patch {
        Value::Object(p) => {
            let Value::Object(mut o) = base else {
                unreachable!("cloned from a mapping")
            };
            merge_fields(&mut o, p, path, schema)?;
            Ok(Value::Object(o))
        }
        _ => Ok(base),
    }
}

fn merge_fields(
    object: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
    schema: &Schema,
) -> Result<(), String> {
    for (k, pv) in patch {
        if k == DIRECTIVE {
            continue;
        }
        path.push(k.clone());
        let merged = merge(object.remove(k), pv, path, schema);
        path.pop();
        if let Some(v) = merged? {
            object.insert(k.clone(), v);
        }
    }
    Ok(())
}

/// Merges a patch list into the object's list (None when the object has none).
fn merge_list(
    object: Option<Vec<Value>>,
    patch: &[Value],
    path: &mut Vec<String>,
    schema: &Schema,
) -> Result<Option<Value>, String> {
    let mode = schema.list_merge(path);
    if mode == ListMerge::Replace {
        return Ok(Some(Value::Array(patch.to_vec())));
    }
    let patch: Vec<Value> = match list_directive(patch)? {
        Directive::Delete if object.is_some() => return Ok(None),
        directive => {
            let rest = patch.iter().filter(|v| !is_list_directive(v)).cloned();
            let rest: Vec<Value> = rest.collect();
            if directive == Directive::Replace && object.is_some() {
                return merge_list(None, &rest, path, schema);
            }
            rest
        }
    };
    // New content merges with itself.
    let new = object.is_none();
    let object = object.unwrap_or_else(|| patch.clone());
    let object: Vec<Value> = object
        .into_iter()
        .filter(|v| !is_list_directive(v))
        .collect();
    let merged = match mode {
        ListMerge::Keys(keys) => merge_keyed(object, &patch, keys, new, path, schema)?,
        ListMerge::Primitive => merge_primitive(object, &patch),
        ListMerge::Replace => unreachable!("handled above"),
    };
    Ok(Some(Value::Array(merged)))
}

/// Merges lists whose entries are identified by `keys` (see [`list`]). `new`: the object's list
/// is the patch's own (new content merging with itself).
fn merge_keyed(
    mut object: Vec<Value>,
    patch: &[Value],
    keys: &[&str],
    new: bool,
    path: &mut Vec<String>,
    schema: &Schema,
) -> Result<Vec<Value>, String> {
    let keys_owned: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let all = list::all_key_values(patch, &object, keys);
    let mut merged_list = Vec::new();
    let mut last_keys = keys_owned.clone();
    for values in &all {
        let (vk, vv) = list::valid_keys(&all, values, &keys_owned);
        let (fk, fv) = list::valid_keys(std::slice::from_ref(&vv), &vv, &vk);
        let in_object = list::find(&object, &fk, &fv);
        let in_patch = list::find(patch, &fk, &fv).map(|i| &patch[i]);
        let (entry, merged_in_place) =
            merge_entry(in_object.map(|i| object[i].clone()), in_patch, path, schema)?;
        let entry = entry.filter(|e| !e.as_object().is_some_and(Map::is_empty));
        let Some(mut entry) = entry else {
            list::set(&mut object, None, &vk, &vv);
            continue;
        };
        if let (Some(i), true) = (in_object, merged_in_place || new) {
            object[i] = entry.clone();
        }
        if let Value::Object(m) = &mut entry {
            for (k, v) in vk.iter().zip(&vv) {
                if !m.contains_key(k) && !v.is_empty() {
                    m.insert(k.clone(), plain_scalar(v));
                }
            }
        }
        list::set(&mut merged_list, Some(entry), &vk, &vv);
        last_keys = vk;
    }
    if all.is_empty() {
        return Ok(object);
    }
    Ok(list::put_back(merged_list, object, &last_keys))
}

/// Merges one entry of a keyed list; also says whether the result is the object's entry
/// changed in place (the object's list then carries it), rather than new content.
fn merge_entry(
    object: Option<Value>,
    patch: Option<&Value>,
    path: &mut Vec<String>,
    schema: &Schema,
) -> Result<(Option<Value>, bool), String> {
    match (object, patch) {
        (None, None) => Ok((None, false)),
        (Some(o), None) => Ok((Some(o), true)),
        (None, Some(p)) => Ok((merge(None, p, path, schema)?, false)),
        (Some(o), Some(p)) => {
            let in_place = p
                .as_object()
                .is_none_or(|m| map_directive(m).is_ok_and(|d| d == Directive::Merge));
            Ok((merge(Some(o), p, path, schema)?, in_place))
        }
    }
}

/// Merges lists of scalars: the patch's values, then the object's others.
fn merge_primitive(object: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let empty = [String::new()];
    let mut merged = Vec::new();
    for values in list::all_scalars(patch, &object) {
        let found = list::find(patch, &empty, &values)
            .map(|i| &patch[i])
            .or_else(|| list::find(&object, &empty, &values).map(|i| &object[i]));
        if let Some(v) = found {
            list::set(&mut merged, Some(v.clone()), &empty, &values);
        }
    }
    list::put_back(merged, object, &empty)
}

/// A scalar written without quotes: what YAML reads `text` as.
fn plain_scalar(text: &str) -> Value {
    super::yaml::plain_scalar(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 80}], "args": ["x"]},
                           {"name": "side", "image": "s:1"}],
            "tolerations": [{"key": "k"}]}}}})
    }

    fn containers(d: &Value) -> &Value {
        &d["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn merges_by_key_with_the_patch_entries_first() {
        let mut d = deploy();
        let p = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "side", "image": "s:2", "env": [{"name": "B", "value": "2"}]}]}}}});
        apply(&mut d, &p, true).unwrap();
        let c = containers(&d);
        assert_eq!(c[0]["name"], "side");
        assert_eq!(c[0]["image"], "s:2");
        assert_eq!(c[1]["name"], "app");
        assert_eq!(c[1]["args"], json!(["x"]));
    }

    #[test]
    fn several_patches_put_their_entries_first_each_time() {
        let mut d = deploy();
        for (name, value) in [("B", "b"), ("C", "c")] {
            let p = json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": name, "value": value}]}]}}}});
            apply(&mut d, &p, true).unwrap();
        }
        let names: Vec<&str> = containers(&d)[0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["C", "B", "A"]);
    }

    #[test]
    fn delete_and_replace_directives() {
        let mut d = deploy();
        let p = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "side", "$patch": "delete"}],
            "tolerations": [{"key": "n"}]}}}});
        apply(&mut d, &p, true).unwrap();
        assert_eq!(containers(&d).as_array().unwrap().len(), 1);
        assert_eq!(
            d["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "n"}])
        );
        let p = json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "new"}]}}}});
        apply(&mut d, &p, true).unwrap();
        assert_eq!(*containers(&d), json!([{"name": "new"}]));
        let p = json!({"spec": {"template": {"spec": {"$patch": "replace", "containers": []}}}});
        apply(&mut d, &p, true).unwrap();
        assert_eq!(d["spec"]["template"]["spec"], json!({"containers": []}));
        assert_eq!(
            apply(&mut d, &json!({"$patch": "delete"}), true).unwrap(),
            Outcome::Deleted
        );
    }

    #[test]
    fn new_content_loses_its_directives_and_nulls() {
        let mut d = json!({"kind": "Pod", "spec": {}});
        let p = json!({"spec": {"containers": [{"name": "c", "env": [
            {"name": "X", "$patch": "delete"}, {"name": "Y", "value": null}]}]}});
        apply(&mut d, &p, true).unwrap();
        assert_eq!(
            d["spec"]["containers"],
            json!([{"name": "c", "env": [{"name": "Y"}]}])
        );
    }

    #[test]
    fn refuses_directives_kustomize_leaves_in_the_object() {
        let mut d = deploy();
        let p = json!({"spec": {"$retainKeys": ["template"]}});
        assert!(apply(&mut d, &p, true).unwrap_err().contains("$retainKeys"));
    }

    #[test]
    fn null_removes_a_field() {
        let mut d = json!({"a": {"b": 1, "c": 2}});
        apply(&mut d, &json!({"a": {"b": null}}), true).unwrap();
        assert_eq!(d, json!({"a": {"c": 2}}));
    }

    #[test]
    fn mismatched_types_are_errors() {
        let mut d = json!({"a": {"b": 1}});
        let err = apply(&mut d, &json!({"a": "x"}), true).unwrap_err();
        assert!(err.contains("a: cannot merge"), "{err}");
        let mut d = json!({"a": "x"});
        assert!(apply(&mut d, &json!({"a": ["y"]}), true).is_err());
    }

    #[test]
    fn custom_resources_replace_lists() {
        let mut d = json!({"spec": {"items": [{"name": "a", "v": 1}, {"name": "b", "v": 1}]}});
        apply(
            &mut d,
            &json!({"spec": {"items": [{"name": "b", "v": 2}]}}),
            false,
        )
        .unwrap();
        assert_eq!(d["spec"]["items"], json!([{"name": "b", "v": 2}]));
    }

    #[test]
    fn finalizers_merge_as_a_set_with_the_patch_first() {
        let mut d = json!({"kind": "Namespace", "metadata": {"finalizers": ["a", "b"]}});
        apply(
            &mut d,
            &json!({"metadata": {"finalizers": ["b", "c"]}}),
            true,
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["b", "c", "a"]));
    }
}
