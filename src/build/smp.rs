//! Strategic merge patches: maps merge, lists of built-in types merge by their merge key, and the
//! `$patch: delete|replace|merge`, `$retainKeys` and `$deleteFromPrimitiveList` directives. Pure.

use serde_json::{Map, Value};

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListMerge {
    Key(&'static str),
    Union,
    Replace,
}

/// Keys kustomize guesses for lists of objects it has no schema for, in its order.
const GUESSED_KEYS: [&str; 7] = ["mountPath", "devicePath", "ip", "type", "topologyKey", "name", "containerPort"];

fn list_merge(field: &str, path: &[String], builtin: bool) -> Option<ListMerge> {
    let in_container = path.iter().any(|p| p.ends_with("ontainers"));
    Some(match field {
        "containers" | "initContainers" | "ephemeralContainers" => ListMerge::Key("name"),
        "volumes" | "env" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" => ListMerge::Key("name"),
        "ports" if in_container => ListMerge::Key("containerPort"),
        "ports" if builtin => ListMerge::Key("port"),
        "volumeMounts" => ListMerge::Key("mountPath"),
        "volumeDevices" => ListMerge::Key("devicePath"),
        "hostAliases" => ListMerge::Key("ip"),
        "topologySpreadConstraints" => ListMerge::Key("topologyKey"),
        "conditions" => ListMerge::Key("type"),
        "ownerReferences" => ListMerge::Key("uid"),
        "resizePolicy" => ListMerge::Key("resourceName"),
        "readinessGates" => ListMerge::Key("conditionType"),
        "finalizers" => ListMerge::Union,
        _ if builtin => ListMerge::Replace,
        _ => return None,
    })
}

fn guess_key(a: &[Value], b: &[Value]) -> ListMerge {
    let all: Vec<&Value> = a.iter().chain(b).filter(|v| !is_directive_element(v)).collect();
    if all.is_empty() || !all.iter().all(|v| v.is_object()) {
        return ListMerge::Replace;
    }
    for key in GUESSED_KEYS {
        if all.iter().all(|v| v.get(key).is_some()) {
            return ListMerge::Key(key);
        }
    }
    ListMerge::Replace
}

fn is_directive_element(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.len() == 1 && m.contains_key("$patch"))
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// Removes directives and nulls from patch content that is inserted as it is.
pub fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items.iter().filter(|v| directive(v).is_none() || !is_directive_element(v)).map(clean).collect(),
        ),
        other => other.clone(),
    }
}

/// What a top-level patch does to its target.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Merged,
    Deleted,
}

/// Applies a strategic merge patch to an object. `builtin` says whether the object is of a
/// built-in kind (lists without a merge key are replaced) or a custom one (merge keys are guessed).
pub fn apply(target: &mut Value, patch: &Value, builtin: bool) -> Result<Outcome, String> {
    match directive(patch) {
        Some("delete") => return Ok(Outcome::Deleted),
        Some("replace") => {
            *target = clean(patch);
            return Ok(Outcome::Merged);
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown $patch directive {other:?}")),
    }
    let (Value::Object(t), Value::Object(p)) = (target, patch) else {
        return Err("a strategic merge patch must be a mapping".into());
    };
    merge_map(t, p, &mut Vec::new(), builtin)?;
    Ok(Outcome::Merged)
}

fn merge_map(t: &mut Map<String, Value>, p: &Map<String, Value>, path: &mut Vec<String>, builtin: bool) -> Result<(), String> {
    if directive(&Value::Object(p.clone())) == Some("replace") {
        *t = clean(&Value::Object(p.clone())).as_object().cloned().unwrap_or_default();
        return Ok(());
    }
    for (k, pv) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(del)) = (t.get_mut(field), pv) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            t.remove(k);
            continue;
        }
        path.push(k.clone());
        match (t.get_mut(k), pv) {
            (Some(tv @ Value::Object(_)), Value::Object(pm)) => {
                match directive(pv) {
                    Some("delete") => {
                        t.remove(k);
                    }
                    Some("replace") => *tv = clean(pv),
                    _ => {
                        let tm = tv.as_object_mut().expect("matched");
                        merge_map(tm, pm, path, builtin)?;
                        if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
                            tm.retain(|name, _| keep.iter().any(|r| r.as_str() == Some(name)));
                        }
                    }
                }
            }
            (Some(Value::Array(tl)), Value::Array(pl)) => {
                let mode = list_merge(k, path, builtin).unwrap_or_else(|| guess_key(tl, pl));
                merge_list(tl, pl, mode, path, builtin)?;
            }
            _ if directive(pv) == Some("delete") => {
                t.remove(k);
            }
            _ => {
                t.insert(k.clone(), clean(pv));
            }
        }
        path.pop();
    }
    Ok(())
}

fn merge_list(
    t: &mut Vec<Value>,
    p: &[Value],
    mode: ListMerge,
    path: &mut Vec<String>,
    builtin: bool,
) -> Result<(), String> {
    if p.iter().any(|v| directive(v) == Some("replace")) {
        *t = p.iter().filter(|v| directive(v) != Some("replace")).map(clean).collect();
        return Ok(());
    }
    match mode {
        ListMerge::Replace => *t = p.iter().map(clean).collect(),
        ListMerge::Union => {
            for v in p {
                if !t.contains(v) {
                    t.push(v.clone());
                }
            }
        }
        ListMerge::Key(key) => {
            for pv in p {
                let Some(kv) = pv.get(key) else {
                    if !is_directive_element(pv) {
                        t.push(clean(pv));
                    }
                    continue;
                };
                let pos = t.iter().position(|tv| tv.get(key) == Some(kv));
                match (pos, directive(pv)) {
                    (Some(i), Some("delete")) => {
                        t.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => {
                        if let (Value::Object(tm), Value::Object(pm)) = (&mut t[i], pv) {
                            merge_map(tm, pm, path, builtin)?;
                        } else {
                            t[i] = clean(pv);
                        }
                    }
                    (None, _) => t.push(clean(pv)),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 80}], "args": ["x"]},
                           {"name": "side", "image": "s:1"}],
            "tolerations": [{"key": "k"}]}}}})
    }

    #[test]
    fn merges_containers_by_name_and_env_by_name() {
        let mut d = deploy();
        let p = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a:2", "env": [{"name": "B", "value": "2"}], "args": ["y"]}]}}}});
        apply(&mut d, &p, true).unwrap();
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "a:2");
        assert_eq!(c[0]["env"], json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]));
        assert_eq!(c[0]["args"], json!(["y"]));
        assert_eq!(c[1]["image"], "s:1");
    }

    #[test]
    fn delete_and_replace_directives() {
        let mut d = deploy();
        let p = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "side", "$patch": "delete"}],
            "tolerations": [{"key": "n"}]}}}});
        apply(&mut d, &p, true).unwrap();
        assert_eq!(d["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(d["spec"]["template"]["spec"]["tolerations"], json!([{"key": "n"}]));
        let p = json!({"spec": {"template": {"spec": {"$patch": "replace", "containers": []}}}});
        apply(&mut d, &p, true).unwrap();
        assert_eq!(d["spec"]["template"]["spec"], json!({"containers": []}));
        assert_eq!(apply(&mut d, &json!({"$patch": "delete"}), true).unwrap(), Outcome::Deleted);
    }

    #[test]
    fn null_removes_a_field() {
        let mut d = json!({"a": {"b": 1, "c": 2}});
        apply(&mut d, &json!({"a": {"b": null}}), true).unwrap();
        assert_eq!(d, json!({"a": {"c": 2}}));
    }

    #[test]
    fn custom_resources_guess_merge_keys() {
        let mut d = json!({"spec": {"items": [{"name": "a", "v": 1}, {"name": "b", "v": 1}]}});
        apply(&mut d, &json!({"spec": {"items": [{"name": "b", "v": 2}]}}), false).unwrap();
        assert_eq!(d["spec"]["items"], json!([{"name": "a", "v": 1}, {"name": "b", "v": 2}]));
    }
}
