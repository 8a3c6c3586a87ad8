//! Strategic merge patches: maps merge, lists of built-in types merge by their merge key, and the
//! `$patch: delete|replace|merge` directive. `$retainKeys`, `$setElementOrder` and
//! `$deleteFromPrimitiveList` are refused: kustomize copies them into the object. Pure.

use serde_json::{Map, Value};

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListMerge {
    Key(&'static str),
    Union,
    Replace,
}

/// Built-in kinds merge lists by the merge keys of their schema; custom resources (no schema
/// known) replace lists, as kustomize does.
fn list_merge(field: &str, path: &[String], builtin: bool) -> ListMerge {
    if !builtin {
        return ListMerge::Replace;
    }
    let in_container = path.iter().any(|p| p.ends_with("ontainers"));
    match field {
        "containers" | "initContainers" | "ephemeralContainers" => ListMerge::Key("name"),
        "volumes" | "env" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" => {
            ListMerge::Key("name")
        }
        "ports" if in_container => ListMerge::Key("containerPort"),
        "ports" => ListMerge::Key("port"),
        "volumeMounts" => ListMerge::Key("mountPath"),
        "volumeDevices" => ListMerge::Key("devicePath"),
        "hostAliases" => ListMerge::Key("ip"),
        "topologySpreadConstraints" => ListMerge::Key("topologyKey"),
        "conditions" => ListMerge::Key("type"),
        "ownerReferences" => ListMerge::Key("uid"),
        "resizePolicy" => ListMerge::Key("resourceName"),
        "readinessGates" => ListMerge::Key("conditionType"),
        "finalizers" => ListMerge::Union,
        _ => ListMerge::Replace,
    }
}

fn is_directive_element(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("$patch"))
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// Removes directives and nulls from patch content that is inserted as it is.
pub fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| *k != "$patch" && !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|v| directive(v).is_none() || !is_directive_element(v))
                .map(clean)
                .collect(),
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
    refuse_unsupported(patch)?;
    let (Value::Object(t), Value::Object(p)) = (target, patch) else {
        return Err("a strategic merge patch must be a mapping".into());
    };
    merge_map(t, p, &mut Vec::new(), builtin)?;
    Ok(Outcome::Merged)
}

fn merge_map(
    t: &mut Map<String, Value>,
    p: &Map<String, Value>,
    path: &mut Vec<String>,
    builtin: bool,
) -> Result<(), String> {
    if directive(&Value::Object(p.clone())) == Some("replace") {
        *t = clean(&Value::Object(p.clone()))
            .as_object()
            .cloned()
            .unwrap_or_default();
        return Ok(());
    }
    for (k, pv) in p {
        if k == "$patch" {
            continue;
        }
        if pv.is_null() {
            t.remove(k);
            continue;
        }
        path.push(k.clone());
        match (t.get_mut(k), pv) {
            (Some(tv @ Value::Object(_)), Value::Object(pm)) => match directive(pv) {
                Some("delete") => {
                    t.remove(k);
                }
                Some("replace") => *tv = clean(pv),
                _ => {
                    merge_map(tv.as_object_mut().expect("matched"), pm, path, builtin)?;
                }
            },
            (Some(Value::Array(tl)), Value::Array(pl)) => {
                let mode = list_merge(k, path, builtin);
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
        *t = p
            .iter()
            .filter(|v| directive(v) != Some("replace"))
            .map(clean)
            .collect();
        return Ok(());
    }
    match mode {
        ListMerge::Replace => *t = p.iter().map(clean).collect(),
        ListMerge::Union => {
            let in_patch: Vec<Value> = p
                .iter()
                .filter(|v| directive(v).is_none())
                .cloned()
                .collect();
            let server_only: Vec<Value> = t
                .iter()
                .filter(|v| !in_patch.contains(v))
                .cloned()
                .collect();
            let order = t.clone();
            *t = interleave(server_only, in_patch, &|v| {
                order.iter().position(|o| o == v)
            });
        }
        ListMerge::Key(key) => {
            let order: Vec<Value> = t
                .iter()
                .map(|v| v.get(key).cloned().unwrap_or(Value::Null))
                .collect();
            let mut in_patch = Vec::new();
            let mut touched = Vec::new();
            for pv in p {
                let Some(kv) = pv.get(key) else {
                    if !is_directive_element(pv) {
                        in_patch.push(clean(pv));
                    }
                    continue;
                };
                touched.push(kv.clone());
                let pos = t.iter().position(|tv| tv.get(key) == Some(kv));
                match (pos, directive(pv)) {
                    (_, Some("delete")) => {}
                    (Some(i), _) => {
                        let mut merged = t[i].clone();
                        if let (Value::Object(tm), Value::Object(pm)) = (&mut merged, pv) {
                            merge_map(tm, pm, path, builtin)?;
                        } else {
                            merged = clean(pv);
                        }
                        in_patch.push(merged);
                    }
                    (None, _) => in_patch.push(clean(pv)),
                }
            }
            let server_only: Vec<Value> = t
                .iter()
                .filter(|v| v.get(key).is_none_or(|k| !touched.contains(k)))
                .cloned()
                .collect();
            let index = |v: &Value| v.get(key).and_then(|k| order.iter().position(|o| o == k));
            *t = interleave(server_only, in_patch, &index);
        }
    }
    Ok(())
}

/// Orders a merged list the way Kubernetes' strategic merge does: elements named in the patch keep
/// the patch's order, elements only in the original keep theirs, and an original element goes
/// before a patch element only when both were in the original and it came first there.
fn interleave(
    left: Vec<Value>,
    right: Vec<Value>,
    index: &dyn Fn(&Value) -> Option<usize>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => matches!((index(a), index(b)), (Some(i), Some(j)) if i < j),
        };
        out.push(if take_left { l.next() } else { r.next() }.expect("peeked"));
    }
    out
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
        assert_eq!(
            c[0]["env"],
            json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
        );
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
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "n"}])
        );
        let p = json!({"spec": {"template": {"spec": {"$patch": "replace", "containers": []}}}});
        apply(&mut d, &p, true).unwrap();
        assert_eq!(d["spec"]["template"]["spec"], json!({"containers": []}));
        assert_eq!(
            apply(&mut d, &json!({"$patch": "delete"}), true).unwrap(),
            Outcome::Deleted
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
}
