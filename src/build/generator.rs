//! configMapGenerator and secretGenerator: building ConfigMaps and Secrets from literals, files
//! and env files, merging them with `behavior`, and kustomize's content-hash name suffix. Pure:
//! file contents are passed in.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::gojson;
use super::kustomization::{GeneratorOptions, GeneratorSpec};

/// One key of generated data: text goes to `data`, other bytes to `binaryData` (ConfigMaps).
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
}

/// Parses a `KEY=VALUE` literal; a value in matching quotes loses them.
pub fn parse_literal(s: &str) -> Result<Entry, String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("literal {s:?} is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("literal {s:?} has an empty key"));
    }
    let v = if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Ok(Entry {
        key: k.to_string(),
        value: v.as_bytes().to_vec(),
    })
}

/// Parses an env file: `KEY=VALUE` lines, `#` comments and blank lines skipped. Returns the
/// entries or the 1-based line of the first bad one.
pub fn parse_env(text: &str) -> Result<Vec<Entry>, (u64, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err((
                i as u64 + 1,
                format!(
                    "{line:?} is not KEY=VALUE (reading variables from the environment is not supported)"
                ),
            ));
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err((i as u64 + 1, format!("invalid key {k:?}")));
        }
        out.push(Entry {
            key: k.to_string(),
            value: v.as_bytes().to_vec(),
        });
    }
    Ok(out)
}

/// Base64 as kustomize writes generated values: an encoding of 70 characters or more is cut
/// into lines of 70, each ending with a line break; a shorter one stays on one line.
pub fn wrapped_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let encoded = BASE64.encode(bytes);
    if encoded.len() < LINE {
        return encoded;
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE + 1);
    for chunk in encoded.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// Generator options with the kustomization-wide ones folded in.
pub fn merged_options(
    global: Option<&GeneratorOptions>,
    local: Option<&GeneratorOptions>,
) -> GeneratorOptions {
    let mut out = global.cloned().unwrap_or_default();
    if let Some(l) = local {
        out.labels.extend(l.labels.clone());
        out.annotations.extend(l.annotations.clone());
        if l.disable_name_suffix_hash.is_some() && out.disable_name_suffix_hash != Some(true) {
            out.disable_name_suffix_hash = l.disable_name_suffix_hash;
        }
        if l.immutable.is_some() && out.immutable != Some(true) {
            out.immutable = l.immutable;
        }
    }
    out
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Builds the ConfigMap or Secret for a generator from its entries.
pub fn build(
    kind: &str,
    spec: &GeneratorSpec,
    entries: Vec<Entry>,
    opts: &GeneratorOptions,
) -> Result<Value, String> {
    let mut data = Map::new();
    let mut binary = Map::new();
    for e in entries {
        if data.contains_key(&e.key) || binary.contains_key(&e.key) {
            return Err(format!("key {:?} is defined twice", e.key));
        }
        if kind == "Secret" {
            data.insert(e.key, Value::String(wrapped_base64(&e.value)));
        } else {
            match String::from_utf8(e.value) {
                Ok(s) => data.insert(e.key, Value::String(s)),
                Err(e2) => binary.insert(e.key, Value::String(wrapped_base64(e2.as_bytes()))),
            };
        }
    }
    let mut meta = Map::new();
    meta.insert("name".into(), Value::String(spec.name.clone()));
    if let Some(ns) = spec.namespace.as_deref().filter(|s| !s.is_empty()) {
        meta.insert("namespace".into(), Value::String(ns.into()));
    }
    if !opts.labels.is_empty() {
        meta.insert("labels".into(), string_map(&opts.labels));
    }
    if !opts.annotations.is_empty() {
        meta.insert("annotations".into(), string_map(&opts.annotations));
    }
    let mut obj = json!({"apiVersion": "v1", "kind": kind, "metadata": meta});
    let map = obj.as_object_mut().expect("literal object");
    if kind == "Secret" {
        map.insert(
            "type".into(),
            Value::String(spec.type_.clone().unwrap_or_else(|| "Opaque".into())),
        );
    }
    if !data.is_empty() {
        map.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        map.insert("binaryData".into(), Value::Object(binary));
    }
    if opts.immutable == Some(true) {
        map.insert("immutable".into(), Value::Bool(true));
    }
    Ok(obj)
}

/// Merges a generator's result into an existing object of the same name (`behavior: merge`).
pub fn merge_into(existing: &mut Value, new: &Value) {
    for field in ["data", "binaryData"] {
        if let Some(Value::Object(n)) = new.get(field) {
            let e = existing.as_object_mut().expect("objects are mappings");
            let slot = e.entry(field).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = slot {
                m.extend(n.clone());
            }
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(n)) = new.pointer(&format!("/metadata/{field}")) {
            let meta = existing
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .expect("objects have metadata");
            let slot = meta
                .entry(field)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = slot {
                m.extend(n.clone());
            }
        }
    }
}

/// kustomize's content hash of a ConfigMap or Secret, as used in its name suffix.
pub fn content_hash(obj: &Value) -> String {
    let field = |name: &str| {
        obj.get(name)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::String(String::new()))
    };
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let mut m = Map::new();
    m.insert("kind".into(), Value::String(kind.into()));
    // kustomize 5 hashes with an empty name, so a prefix or suffix does not change the hash.
    m.insert("name".into(), Value::String(String::new()));
    m.insert("data".into(), field("data"));
    if kind == "Secret" {
        m.insert("type".into(), field("type"));
        if let Some(sd) = obj.get("stringData").filter(|v| v.is_object()) {
            m.insert("stringData".into(), sd.clone());
        }
    } else if let Some(bd) = obj.get("binaryData").filter(|v| v.is_object()) {
        m.insert("binaryData".into(), bd.clone());
    }
    let text = gojson::compact(&Value::Object(m));
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    hex.chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_lose_matching_quotes() {
        assert_eq!(parse_literal("A=\"x y\"").unwrap().value, b"x y");
        assert_eq!(parse_literal("A=b=c").unwrap().value, b"b=c");
        assert!(parse_literal("novalue").is_err());
    }

    #[test]
    fn env_files_skip_comments() {
        let e = parse_env("# c\n\nA=1\n  B=two words\n").unwrap();
        assert_eq!(
            e.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert_eq!(parse_env("A=1\nB\n").unwrap_err().0, 2);
    }

    #[test]
    fn base64_wraps_at_seventy_characters() {
        assert_eq!(wrapped_base64(b"short"), "c2hvcnQ=");
        // 51 bytes encode to 68 characters, 52 bytes to 72: the shortest value that wraps.
        assert!(!wrapped_base64(&[b'b'; 51]).contains('\n'));
        let wrapped = wrapped_base64(&[b'b'; 52]);
        assert_eq!(
            wrapped.lines().map(str::len).collect::<Vec<_>>(),
            [70, 2]
        );
        let long = wrapped_base64(&[b'a'; 120]);
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(
            lines.iter().map(|l| l.len()).collect::<Vec<_>>(),
            [70, 70, 20]
        );
        assert!(long.ends_with('\n'));
        let exact = wrapped_base64(&[b'x'; 105]);
        assert_eq!(exact.len(), 140 + 2);
    }

    #[test]
    fn hash_is_ten_characters_of_the_kustomize_alphabet() {
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}});
        let h = content_hash(&cm);
        assert_eq!(h.len(), 10);
        assert!(!h.contains(['0', '1', '3', 'a', 'e']));
    }
}
