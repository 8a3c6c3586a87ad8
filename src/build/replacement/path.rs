//! Field paths of `replacements` (`spec.containers.[name=app].image`, `spec.dnsNames.0`,
//! `metadata.annotations.[cert-manager.io/inject-ca-from]`): splitting them, reading the one
//! field a source names, and finding (or creating) every field a target names. Pure.

use serde_json::{Map, Value};

use super::super::object::type_name;

/// Splits a path on `.`, keeping `\.` and bracketed parts (`[name=a.b]`) whole; brackets around
/// a plain key (`[example.com/x]`) are dropped. A leading `.` is allowed.
pub fn split(path: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut raw = path.split('.').collect::<Vec<_>>();
    if raw.len() > 1 && raw[0].is_empty() {
        raw.remove(0);
    }
    for piece in raw {
        match pieces.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('.');
                last.push_str(piece);
            }
            _ => pieces.push(piece.to_string()),
        }
    }
    let mut out = Vec::with_capacity(pieces.len());
    let mut i = 0;
    while i < pieces.len() {
        let piece = &pieces[i];
        if piece.starts_with('[') && !piece.ends_with(']') {
            let mut joined = vec![piece.clone()];
            while i + 1 < pieces.len() {
                i += 1;
                joined.push(pieces[i].clone());
                if pieces[i].ends_with(']') {
                    break;
                }
            }
            let joined = joined.join(".");
            if joined.contains('=') {
                out.push(joined);
            } else {
                out.push(joined.trim_matches(['[', ']']).to_string());
            }
        } else {
            out.push(piece.clone());
        }
        i += 1;
    }
    out
}

fn is_list_match(part: &str) -> bool {
    part.starts_with('[') && part.ends_with(']')
}

/// `[field=value]` into its field (empty for a list of scalars) and value.
fn list_match(part: &str) -> Result<(&str, &str), String> {
    let inner = part.strip_prefix('[').unwrap_or(part);
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    inner
        .split_once('=')
        .ok_or_else(|| format!("{part}: a list entry must be selected as [field=value]"))
}

/// The text of a scalar, as compared and written by replacements.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !v.is_array() && !v.is_object()
}

fn wrong_kind(expected: &str, found: &Value) -> String {
    format!("expected {expected}, found {}", type_name(found))
}

/// The field a source path names, with its JSON pointer: None when it is missing. Numbers index
/// lists, `-` is a list's last entry, `[field=value]` the first entry whose field has exactly
/// that value.
pub fn lookup<'a>(
    node: &'a Value,
    parts: &[String],
) -> Result<Option<(String, &'a Value)>, String> {
    let mut current = node;
    let mut at = String::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let next = if let Ok(index) = part.parse::<i64>() {
            let index = usize::try_from(index)
                .map_err(|_| format!("list index {index} cannot be negative"))?;
            items(current)?.and_then(|l| l.get(index).map(|v| (index.to_string(), v)))
        } else if part == "-" {
            items(current)?.and_then(|l| l.last().map(|v| ((l.len() - 1).to_string(), v)))
        } else if part == "*" {
            return Err("a wildcard (*) cannot select a source field".into());
        } else if is_list_match(part) {
            let (field, value) = list_match(part)?;
            items(current)?.and_then(|l| {
                l.iter()
                    .enumerate()
                    .find(|(_, e)| {
                        if field.is_empty() {
                            is_scalar(e) && text(e) == value
                        } else {
                            e.get(field).is_some_and(|f| text(f) == value)
                        }
                    })
                    .map(|(i, v)| (i.to_string(), v))
            })
        } else {
            match current {
                Value::Null => None,
                Value::Object(m) => m.get(part).map(|v| (pointer_segment(part), v)),
                other => return Err(format!("{part}: {}", wrong_kind("a mapping", other))),
            }
        };
        match next {
            Some((segment, v)) => {
                at.push('/');
                at.push_str(&segment);
                current = v;
            }
            None => return Ok(None),
        }
    }
    Ok(Some((at, current)))
}

/// The entries of a list; a null counts as an empty list.
fn items(v: &Value) -> Result<Option<&Vec<Value>>, String> {
    match v {
        Value::Array(items) => Ok(Some(items)),
        Value::Null => Ok(None),
        other => Err(wrong_kind("a list", other)),
    }
}

/// What a missing field at the end of a target path is created as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Create {
    Scalar,
    Mapping,
    List,
}

/// A field a target path names: its JSON pointer, and whether it was just created.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub pointer: String,
    pub created: bool,
}

/// Every field a target path names. Numbers index lists, `*` is every entry, `[field=value]`
/// every entry whose field matches the regular expression `value` anywhere in its text (as
/// kustomize matches). With `create`, missing fields and entries are made on the way.
pub fn find_all(
    node: &mut Value,
    parts: &[String],
    create: Option<Create>,
) -> Result<Vec<Hit>, String> {
    let mut hits = Vec::new();
    walk(node, parts, create, String::new(), false, &mut hits)?;
    Ok(hits)
}

/// What to create for the field named by `next` (the part after it): a list before an index or
/// an entry match, a mapping before a field, `create` at the end.
fn fresh(next: Option<&String>, create: Create) -> (Value, bool) {
    let kind = match next {
        None => create,
        Some(p) if is_list_match(p) || p.parse::<usize>().is_ok() => Create::List,
        Some(_) => Create::Mapping,
    };
    let value = match kind {
        Create::Scalar => Value::Null,
        Create::Mapping => Value::Object(Map::new()),
        Create::List => Value::Array(Vec::new()),
    };
    (value, next.is_none())
}

fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn walk(
    node: &mut Value,
    parts: &[String],
    create: Option<Create>,
    at: String,
    created: bool,
    hits: &mut Vec<Hit>,
) -> Result<(), String> {
    let Some((part, rest)) = parts.split_first() else {
        hits.push(Hit {
            pointer: at,
            created,
        });
        return Ok(());
    };
    if let Ok(index) = part.parse::<usize>() {
        let len = match node {
            Value::Array(list) => list.len(),
            Value::Null => 0,
            other => return Err(format!("{part}: {}", wrong_kind("a list", other))),
        };
        if let (true, Some(create)) = (len == index, create) {
            let (value, leaf) = fresh(rest.first(), create);
            let list = entries_mut(node, part)?;
            list.push(value);
            return walk(
                &mut list[index],
                rest,
                Some(create),
                format!("{at}/{index}"),
                leaf,
                hits,
            );
        }
        let entry = match node {
            Value::Array(list) if index < len => &mut list[index],
            _ => {
                return Err(format!(
                    "index {index} specified but only {len} elements found"
                ));
            }
        };
        return walk(entry, rest, create, format!("{at}/{index}"), false, hits);
    }
    if is_list_match(part) {
        let (field, pattern) = list_match(part)?;
        let re = regex::Regex::new(pattern)
            .map_err(|e| format!("{part}: invalid regular expression: {e}"))?;
        let before = hits.len();
        match_entries(node, part, field, &re, rest, create, &at, hits)?;
        if hits.len() > before || create.is_none() {
            return Ok(());
        }
        // Nothing matched: add an entry with the value and match again.
        let entry = if field.is_empty() {
            super::super::yaml::plain_scalar(pattern)
        } else {
            let mut m = Map::new();
            m.insert(field.to_string(), super::super::yaml::plain_scalar(pattern));
            Value::Object(m)
        };
        entries_mut(node, part)?.push(entry);
        return match_entries(node, part, field, &re, rest, create, &at, hits);
    }
    if part == "*" {
        let list = match node {
            Value::Array(list) => list,
            Value::Null => return Ok(()),
            other => return Err(format!("*: {}", wrong_kind("a list", other))),
        };
        for (i, entry) in list.iter_mut().enumerate() {
            walk(entry, rest, create, format!("{at}/{i}"), false, hits)?;
        }
        return Ok(());
    }
    let here = format!("{at}/{}", pointer_segment(part));
    match node {
        Value::Object(m) => {
            if let Some(child) = m.get_mut(part) {
                return walk(child, rest, create, here, false, hits);
            }
            let Some(create) = create else {
                return Ok(());
            };
            let (value, leaf) = fresh(rest.first(), create);
            let child = m.entry(part.clone()).or_insert(value);
            walk(child, rest, Some(create), here, leaf, hits)
        }
        Value::Null if create.is_none() => Ok(()),
        other => Err(format!("{part}: {}", wrong_kind("a mapping", other))),
    }
}

/// A list to add an entry to; a null becomes an empty list.
fn entries_mut<'a>(node: &'a mut Value, part: &str) -> Result<&'a mut Vec<Value>, String> {
    if node.is_null() {
        *node = Value::Array(Vec::new());
    }
    match node {
        Value::Array(list) => Ok(list),
        other => Err(format!("{part}: {}", wrong_kind("a list", other))),
    }
}

#[allow(clippy::too_many_arguments)]
fn match_entries(
    node: &mut Value,
    part: &str,
    field: &str,
    re: &regex::Regex,
    rest: &[String],
    create: Option<Create>,
    at: &str,
    hits: &mut Vec<Hit>,
) -> Result<(), String> {
    let list = match node {
        Value::Array(list) => list,
        Value::Null => return Ok(()),
        other => return Err(format!("{part}: {}", wrong_kind("a list", other))),
    };
    for (i, entry) in list.iter_mut().enumerate() {
        let here = format!("{at}/{i}");
        if field.is_empty() {
            // A list of scalars: the entry itself, whatever follows in the path.
            if is_scalar(entry) && re.is_match(text(entry).trim()) {
                hits.push(Hit {
                    pointer: here,
                    created: false,
                });
            }
            continue;
        }
        let selected = entry
            .get(field)
            .is_some_and(|f| is_scalar(f) && !f.is_null() && re.is_match(text(f).trim()));
        if selected {
            walk(entry, rest, create, here, false, hits)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(p: &str) -> Vec<String> {
        split(p)
    }

    #[test]
    fn splits_kustomize_paths() {
        assert_eq!(split(".spec.dnsNames.0"), ["spec", "dnsNames", "0"]);
        assert_eq!(
            split("metadata.annotations.[cert-manager.io/inject-ca-from]"),
            ["metadata", "annotations", "cert-manager.io/inject-ca-from"]
        );
        assert_eq!(
            split("spec.containers.[name=a.b].image"),
            ["spec", "containers", "[name=a.b]", "image"]
        );
        assert_eq!(split(r"data.a\.b"), ["data", "a.b"]);
        assert_eq!(split("a.[x]"), ["a", "[x]"]);
    }

    #[test]
    fn lookup_reads_one_field() {
        let v = json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                        "args": ["-a", "-b"]}});
        let get = |p: &str| {
            lookup(&v, &parts(p))
                .unwrap()
                .map(|(at, v)| (at, v.clone()))
        };
        assert_eq!(
            get("spec.ports.1.port"),
            Some(("/spec/ports/1/port".into(), json!(443)))
        );
        assert_eq!(get("spec.ports.[name=http].port").unwrap().1, json!(80));
        assert_eq!(get("spec.ports.[name=htt].port"), None);
        assert_eq!(
            get("spec.args.-"),
            Some(("/spec/args/1".into(), json!("-b")))
        );
        assert_eq!(get("spec.args.[=-a]").unwrap().1, json!("-a"));
        assert_eq!(get("spec.missing.x"), None);
        assert!(lookup(&v, &parts("spec.ports.name")).is_err());
        assert!(lookup(&v, &parts("spec.ports.*.port")).is_err());
    }

    #[test]
    fn find_all_matches_entries_by_unanchored_regex() {
        let mut v = json!({"c": [{"name": "app"}, {"name": "app-sidecar"}, {"name": "other"}]});
        let hits = find_all(&mut v, &parts("c.[name=app].image"), None).unwrap();
        assert!(hits.is_empty());
        let hits = find_all(&mut v, &parts("c.[name=app].name"), None).unwrap();
        let pointers: Vec<&str> = hits.iter().map(|h| h.pointer.as_str()).collect();
        assert_eq!(pointers, ["/c/0/name", "/c/1/name"]);
        let hits = find_all(&mut v, &parts("c.*.name"), None).unwrap();
        assert_eq!(hits.len(), 3);
    }

    #[test]
    fn find_all_creates_what_is_missing() {
        let mut v = json!({"metadata": {}, "spec": {}});
        let hits = find_all(
            &mut v,
            &parts("metadata.annotations.[example.com/a]"),
            Some(Create::Scalar),
        )
        .unwrap();
        assert_eq!(
            hits,
            [Hit {
                pointer: "/metadata/annotations/example.com~1a".into(),
                created: true
            }]
        );
        find_all(&mut v, &parts("spec.dnsNames.0"), Some(Create::Scalar)).unwrap();
        find_all(
            &mut v,
            &parts("spec.c.[name=x].image"),
            Some(Create::Scalar),
        )
        .unwrap();
        assert_eq!(v["spec"]["dnsNames"], json!([null]));
        assert_eq!(v["spec"]["c"], json!([{"name": "x", "image": null}]));
        let err = find_all(&mut v, &parts("spec.dnsNames.3"), Some(Create::Scalar)).unwrap_err();
        assert!(err.contains("only 1 elements"), "{err}");
    }
}
