//! YAML and JSON documents to values and back, with line numbers in errors and budgets against
//! alias bombs. Pure: works on strings.

use serde_json::Value;
use serde_saphyr::Spanned;

use super::BuildError;
use super::object::Loc;

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        legacy_octal_numbers: true,
        with_snippet: false,
        budget: serde_saphyr::budget! {
            // One file: far beyond real manifests, small enough that parsing cannot take the
            // agent's memory (a node costs tens of bytes once it is a value).
            max_documents: 100_000,
            max_nodes: 1_000_000,
            max_events: 3_000_000,
            max_aliases: 10_000,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: 4 * 1024 * 1024,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 200_000,
            max_replay_stack_depth: 32,
            max_alias_expansions_per_anchor: 10_000,
        },
    }
}

/// A document and the line it starts on.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub line: u64,
}

/// Parses a YAML stream into documents, skipping empty ones. JSON files are read as YAML too,
/// as kustomize does (so a trailing comma is accepted).
pub fn parse(text: &str, file: &str) -> Result<Vec<Document>, BuildError> {
    let docs: Vec<Spanned<Value>> = serde_saphyr::from_str_multiple_with_options(text, options())
        .map_err(|e| yaml_error(&e, file))?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.value.is_null())
        .map(|mut d| {
            normalize_numbers(&mut d.value);
            d
        })
        .map(|d| Document {
            line: d.referenced.line().max(1),
            value: d.value,
        })
        .collect())
}

/// Floats with an integral value become integers, as they do in kustomize's JSON round trip
/// (`1e3` is `1000`).
fn normalize_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            let integral = n
                .as_f64()
                .filter(|f| !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15);
            if let Some(f) = integral {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Value::Object(map) => map.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

/// Parses a single YAML (or JSON) document; an empty text is null.
pub fn parse_one(text: &str, file: &str) -> Result<Document, BuildError> {
    let mut docs = parse(text, file)?;
    match docs.len() {
        0 => Ok(Document {
            value: Value::Null,
            line: 1,
        }),
        1 => Ok(docs.remove(0)),
        _ => Err(BuildError::Parse {
            at: Loc::new(file, docs[1].line),
            message: "expected one YAML document".into(),
        }),
    }
}

fn yaml_error(e: &serde_saphyr::Error, file: &str) -> BuildError {
    let line = e.location().map(|l| l.line()).unwrap_or(0);
    let mut message = e.to_string();
    // The location is already in front of the message.
    if let Some(rest) = message.strip_prefix("error: ") {
        message = rest.to_string();
    }
    let located = message
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("line ") && head.contains(" column "));
    if let Some((_, rest)) = located {
        message = rest.to_string();
    }
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    let what = if file.ends_with(".json") {
        "JSON"
    } else {
        "YAML"
    };
    BuildError::Parse {
        at: Loc::new(file, line),
        message: format!("invalid {what}: {message}"),
    }
}

/// Writes values as a multi-document YAML stream.
pub fn to_yaml_stream(values: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    for v in values {
        out.push_str("---\n");
        out.push_str(&to_yaml(v)?);
    }
    Ok(out)
}

/// Writes one value as YAML.
pub fn to_yaml(v: &Value) -> Result<String, String> {
    let mut s = serde_saphyr::to_string(v).map_err(|e| e.to_string())?;
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_carry_their_line() {
        let docs = parse("a: 1\n---\n---\nb: 2\n", "f.yaml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, json!({"b": 2}));
        assert_eq!(docs[1].line, 4);
    }

    #[test]
    fn malformed_yaml_names_the_line() {
        let err = parse("a: 1\nb: [\n", "f.yaml").unwrap_err().to_string();
        assert!(err.starts_with("f.yaml:"), "{err}");
        let err = parse("a: 1\n  b: 2\n", "f.yaml").unwrap_err().to_string();
        assert!(err.starts_with("f.yaml:2:"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n", "f.yaml").unwrap_err().to_string();
        assert!(err.starts_with("f.yaml:2:"), "{err}");
    }

    #[test]
    fn malformed_json_names_the_line() {
        let err = parse("{\n\"a\": 1,\n\"b\": [\n", "f.json")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.json:"), "{err}");
        assert_eq!(
            parse("{\"a\": [1, 2],}", "f.json").unwrap()[0].value,
            json!({"a": [1, 2]})
        );
    }

    #[test]
    fn alias_bomb_is_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&text, "bomb.yaml").unwrap_err().to_string();
        assert!(err.starts_with("bomb.yaml:"), "{err}");
    }

    #[test]
    fn yaml_round_trips() {
        let v = json!({"a": "yes", "y": "y", "n": "no", "b": "1", "c": 1, "d": [true, null], "e": "multi\nline\n"});
        let text = to_yaml(&v).unwrap();
        assert_eq!(parse(&text, "x").unwrap()[0].value, v);
    }
}
