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
    let mut docs: Vec<Spanned<Value>> =
        serde_saphyr::from_str_multiple_with_options(text, options())
            .map_err(|e| yaml_error(&e, file))?;
    if !text.ends_with(['\n', '\r']) {
        unbreak_last_block_scalar(text, &mut docs);
    }
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

/// One step of the way to a node: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(Option<String>),
    Index(usize),
}

/// A block scalar (`|` or `>`) on the last line of a text without a final line break has no
/// final line break either, as libyaml (and so kustomize) reads it; the parser adds one, as the
/// YAML test suite expects. Finds that scalar again with the libyaml reading and puts its value
/// in place.
fn unbreak_last_block_scalar(text: &str, docs: &mut [Spanned<Value>]) {
    let Some((doc, path, value)) = last_block_scalar(text) else {
        return;
    };
    let mut slot = docs.get_mut(doc).map(|d| &mut d.value);
    for step in &path {
        slot = match (step, slot) {
            (Step::Key(Some(k)), Some(Value::Object(m))) => m.get_mut(k),
            (Step::Index(i), Some(Value::Array(items))) => items.get_mut(*i),
            _ => None,
        };
    }
    if let Some(slot) = slot {
        let read_with_break = slot
            .as_str()
            .is_some_and(|s| s.len() > value.len() && s.starts_with(&value));
        if read_with_break {
            *slot = Value::String(value);
        }
    }
}

/// The document index, path and libyaml value of the last scalar value of a YAML stream, when it
/// is a block scalar.
fn last_block_scalar(text: &str) -> Option<(usize, Vec<Step>, String)> {
    use granit_parser::{Event, Parser, ScalarStyle};
    let options = granit_parser::options! { block_scalar_eof_without_line_feed: true };
    let mut stack: Vec<(Step, Frame)> = Vec::new();
    let (mut doc, mut last) = (0, None);
    for event in Parser::new_from_str_with_options(text, options) {
        let (event, _) = event.ok()?;
        match event {
            Event::DocumentEnd => doc += 1,
            Event::Scalar(value, style, _, _) => {
                if matches!(stack.last(), Some((_, Frame::Map(None)))) {
                    finish(&mut stack, Some(value.to_string()));
                    continue;
                }
                last = matches!(style, ScalarStyle::Literal | ScalarStyle::Folded).then(|| {
                    let mut path: Vec<Step> =
                        stack.iter().skip(1).map(|(s, _)| s.clone()).collect();
                    if let Some((_, frame)) = stack.last() {
                        path.push(frame.step());
                    }
                    (doc, path, value.to_string())
                });
                finish(&mut stack, None);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let step = stack
                    .last()
                    .map(|(_, f)| f.step())
                    .unwrap_or(Step::Key(None));
                let frame = match event {
                    Event::SequenceStart(..) => Frame::Seq(0),
                    _ => Frame::Map(None),
                };
                stack.push((step, frame));
                last = None;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                finish(&mut stack, None);
            }
            Event::Alias(_) => {
                finish(&mut stack, None);
                last = None;
            }
            _ => {}
        }
    }
    last
}

/// A collection being read: the next index of a sequence, or for a mapping None while a key is
/// expected and the key (None when not a plain scalar) while its value is.
enum Frame {
    Seq(usize),
    Map(Option<Option<String>>),
}

impl Frame {
    /// The step to the node that starts now in this collection.
    fn step(&self) -> Step {
        match self {
            Frame::Seq(i) => Step::Index(*i),
            Frame::Map(Some(key)) => Step::Key(key.clone()),
            Frame::Map(None) => Step::Key(None),
        }
    }
}

/// Moves past a node that ended in the innermost collection (`key`: its text, when it was a
/// mapping key).
fn finish(stack: &mut [(Step, Frame)], key: Option<String>) {
    match stack.last_mut() {
        Some((_, Frame::Seq(i))) => *i += 1,
        Some((_, Frame::Map(state @ None))) => *state = Some(key),
        Some((_, Frame::Map(state))) => *state = None,
        None => {}
    }
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

/// What YAML reads `text` as when it is written without quotes (YAML 1.2 core schema, with Go's
/// integer syntax as kustomize reads it): null, a boolean, a number, or the string itself.
pub fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let plain = text.replace('_', "");
    if let Some(n) = go_integer(&plain) {
        return n;
    }
    let float = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    let (mantissa, exponent) = match float.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (float, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.is_empty() && digits(frac)) || (digits(int) && (frac.is_empty() || digits(frac)))
        }
        None => digits(mantissa),
    };
    if mantissa_ok
        && exponent.is_none_or(digits)
        && let Ok(f) = plain.parse::<f64>()
    {
        let mut v = Value::from(f);
        normalize_numbers(&mut v);
        return v;
    }
    Value::String(text.to_string())
}

/// An integer in Go's syntax with prefixes (`0x`, `0o`, `0b`, a leading `0` for octal).
fn go_integer(s: &str) -> Option<Value> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let n = i64::try_from(magnitude).ok()?;
        Some(Value::from(-n))
    } else {
        Some(Value::from(magnitude))
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
    fn block_scalar_at_end_without_line_break_keeps_its_text() {
        let docs = parse("a:\n  b: |\n    one\n    two", "f.yaml").unwrap();
        assert_eq!(docs[0].value, json!({"a": {"b": "one\ntwo"}}));
        let docs = parse("x: 1\n---\nl:\n- k: v\n- >\n  folded\n  text", "f.yaml").unwrap();
        assert_eq!(docs[1].value, json!({"l": [{"k": "v"}, "folded text"]}));
        // With a final line break, or a comment after the scalar, the break stays.
        let docs = parse("a: |\n  one\n", "f.yaml").unwrap();
        assert_eq!(docs[0].value, json!({"a": "one\n"}));
        let docs = parse("a: |\n  one\n# end", "f.yaml").unwrap();
        assert_eq!(docs[0].value, json!({"a": "one\n"}));
        let docs = parse("? [k]\n: v\nb: |+\n  kept", "f.yaml");
        assert!(docs.is_err() || docs.unwrap()[0].value["b"] == "kept");
    }

    #[test]
    fn plain_scalars_resolve_as_yaml_reads_them() {
        assert_eq!(plain_scalar("8080"), json!(8080));
        assert_eq!(plain_scalar("-3"), json!(-3));
        assert_eq!(plain_scalar("0x1f"), json!(31));
        assert_eq!(plain_scalar("1.5"), json!(1.5));
        assert_eq!(plain_scalar("1e3"), json!(1000));
        assert_eq!(plain_scalar("true"), json!(true));
        assert_eq!(plain_scalar(""), json!(null));
        for s in ["TCP", "1.2.3", "0x", "yes", "1e", ".", "web-1"] {
            assert_eq!(plain_scalar(s), json!(s), "{s}");
        }
    }

    #[test]
    fn yaml_round_trips() {
        let v = json!({"a": "yes", "y": "y", "n": "no", "b": "1", "c": 1, "d": [true, null], "e": "multi\nline\n"});
        let text = to_yaml(&v).unwrap();
        assert_eq!(parse(&text, "x").unwrap()[0].value, v);
    }
}
