//! Merging lists whose entries have merge keys, the way kustomize's strategic merge does it:
//! entries are identified by the text of their key fields, the patch's entries come first in
//! the patch's order, then the entries only in the object. With several keys (container
//! `ports` by `containerPort` and `protocol`) an empty key matches any value, as in kustomize.
//! Pure.

use serde_json::Value;

/// The values of an entry's key fields, as text; "" for a missing or empty field.
type KeyValues = Vec<String>;

/// The text of a scalar as compared by merge keys.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
    }
}

fn key_values(entry: &Value, keys: &[&str]) -> KeyValues {
    keys.iter()
        .map(|k| match entry.get(k) {
            Some(Value::Object(m)) if m.is_empty() => String::new(),
            Some(Value::Array(a)) if a.is_empty() => String::new(),
            Some(v) => text(v),
            None => String::new(),
        })
        .collect()
}

/// Whether field `key` of `entry` has the text `value` (any value when `value` is empty);
/// with an empty key, whether the scalar entry itself has that text.
fn field_matches(entry: &Value, key: &str, value: &str) -> bool {
    if key.is_empty() {
        return !entry.is_array() && !entry.is_object() && text(entry) == value;
    }
    match entry.get(key) {
        Some(v) => value.is_empty() || text(v) == value,
        None => false,
    }
}

/// The first entry (a mapping) whose key fields have exactly these values; for an empty key,
/// the first scalar with that text.
pub fn find(list: &[Value], keys: &[String], values: &[String]) -> Option<usize> {
    if keys.len() != values.len() {
        return None;
    }
    if keys.first().is_none_or(String::is_empty) {
        let want = values.first().map(String::as_str).unwrap_or_default();
        return list
            .iter()
            .position(|e| !e.is_object() && !e.is_array() && text(e) == want);
    }
    list.iter().position(|e| {
        e.is_object()
            && keys
                .iter()
                .zip(values)
                .all(|(k, v)| e.get(k).is_some_and(|f| text(f) == *v))
    })
}

/// Replaces every entry matching `keys`/`values` by `entry`, or appends it when none matches;
/// without an entry, removes the matching ones. Null and empty entries are dropped on the way,
/// and a value list shorter than the keys reuses the last comparison, as kustomize's
/// element setter does.
pub fn set(list: &mut Vec<Value>, entry: Option<Value>, keys: &[String], values: &[String]) {
    let mapping = keys.first().is_some_and(|k| !k.is_empty())
        && values.first().is_some_and(|v| !v.is_empty());
    let mut found = false;
    let mut out = Vec::with_capacity(list.len() + 1);
    for e in list.drain(..) {
        if e.is_null() || e.as_object().is_some_and(|m| m.is_empty()) {
            continue;
        }
        if !e.is_object() && mapping {
            out.push(e);
            continue;
        }
        let mut matched = false;
        let mut all = true;
        for (j, key) in keys.iter().enumerate() {
            if let Some(v) = values.get(j) {
                matched = field_matches(&e, key, v);
            }
            if !matched {
                all = false;
                break;
            }
        }
        if !all {
            if !values.is_empty() {
                out.push(e);
            }
            continue;
        }
        found = true;
        if let Some(new) = &entry {
            out.push(new.clone());
        }
    }
    *list = out;
    if let (Some(new), false) = (entry, found) {
        list.push(new);
    }
}

/// The key values of every entry, the patch's first, each once.
pub fn all_key_values(patch: &[Value], object: &[Value], keys: &[&str]) -> Vec<KeyValues> {
    let mut out: Vec<KeyValues> = Vec::new();
    for entry in patch.iter().chain(object) {
        let values = key_values(entry, keys);
        if !out.contains(&values) {
            out.push(values);
        }
    }
    if keys.len() > 1 {
        merge_partial(&mut out);
    }
    out
}

/// The primitive values of both lists, the patch's first, each once.
pub fn all_scalars(patch: &[Value], object: &[Value]) -> Vec<KeyValues> {
    let mut out: Vec<KeyValues> = Vec::new();
    for entry in patch.iter().chain(object) {
        let value = vec![text(entry)];
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// Key values that agree where both are set and share at least one value stand for the same
/// entry (a port without a protocol matches the same port with one).
fn merge_partial(list: &mut [KeyValues]) {
    for i in 0..list.len() {
        for j in 0..list.len() {
            if let Some(merged) = agree(&list[i], &list[j]) {
                list[i] = merged.clone();
                list[j] = merged;
            }
        }
    }
}

fn agree(a: &[String], b: &[String]) -> Option<KeyValues> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut out = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            out.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else {
            out.push(if x.is_empty() { y.clone() } else { x.clone() });
        }
    }
    common.then_some(out)
}

/// The keys that have a value in some entry, and this entry's values for them (all keys when
/// none has one).
pub fn valid_keys(
    all: &[KeyValues],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    let valid: Vec<&String> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            all.iter()
                .any(|vs| vs.get(*i).is_some_and(|v| !v.is_empty()))
        })
        .map(|(_, k)| k)
        .collect();
    if valid.is_empty() {
        return (keys.to_vec(), values.to_vec());
    }
    let kept_keys = keys.iter().filter(|k| valid.contains(k)).cloned().collect();
    let kept_values = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !v.is_empty() || keys.get(*i).is_some_and(|k| valid.contains(&k)))
        .map(|(_, v)| v.clone())
        .collect();
    (kept_keys, kept_values)
}

/// Puts the object's entries (already merged) back over the merged list: each replaces the
/// entry with its key values, or is appended; an entry missing a key is appended as it is.
pub fn put_back(mut merged: Vec<Value>, object: Vec<Value>, keys: &[String]) -> Vec<Value> {
    for entry in object {
        if keys.first().is_none_or(String::is_empty) {
            let value = vec![text(&entry)];
            set(&mut merged, Some(entry), &[String::new()], &value);
            continue;
        }
        let mut values = Vec::new();
        for key in keys {
            match entry.get(key) {
                Some(v) => values.push(text(v)),
                None => merged.push(entry.clone()),
            }
        }
        if keys.len() > 1 {
            set(&mut merged, None, keys, &values);
        }
        set(&mut merged, Some(entry), keys, &values);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_port_without_protocol_stands_for_the_same_port_with_one() {
        let patch = [json!({"port": 80})];
        let object = [json!({"port": 80, "protocol": "TCP"}), json!({"port": 81})];
        let all = all_key_values(&patch, &object, &["port", "protocol"]);
        assert_eq!(all[0], strings(&["80", "TCP"]));
        assert_eq!(all[2], strings(&["81", ""]));
    }

    #[test]
    fn set_replaces_appends_and_removes() {
        let keys = strings(&["name"]);
        let mut list = vec![json!({"name": "a"}), json!({"name": "b", "v": 1})];
        set(
            &mut list,
            Some(json!({"name": "b", "v": 2})),
            &keys,
            &strings(&["b"]),
        );
        set(
            &mut list,
            Some(json!({"name": "c"})),
            &keys,
            &strings(&["c"]),
        );
        set(&mut list, None, &keys, &strings(&["a"]));
        assert_eq!(
            list,
            vec![json!({"name": "b", "v": 2}), json!({"name": "c"})]
        );
    }
}
