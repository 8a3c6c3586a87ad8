//! Flux post-build variable substitution: `${VAR}`, `${VAR:=default}` (and `:-`, `=`, `-`),
//! `$${VAR}` for a literal `${VAR}`, and the opt-out annotation. Pure.

use std::collections::BTreeMap;

use super::BuildError;
use super::object::{Loc, Object};
use super::yaml;

/// Annotations or labels that turn substitution off for one object.
const OPT_OUT: [&str; 2] = [
    "kustomize.toolkit.fluxcd.io/substitute",
    "sluice.dev/substitute",
];

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Substitutes variables in text. Unset variables without a default become empty, as in Flux.
pub fn substitute_text(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let end = body_start
            .find('}')
            .ok_or_else(|| format!("unterminated variable in {:?}", truncate(after)))?;
        let body = &body_start[..end];
        let (name, default) = match body.find([':', '=', '-']) {
            Some(j) => {
                let op_len = if body[j..].starts_with(":=") || body[j..].starts_with(":-") {
                    2
                } else {
                    1
                };
                (
                    &body[..j],
                    Some((&body[j..j + op_len], &body[j + op_len..])),
                )
            }
            None => (body, None),
        };
        if !valid_name(name) {
            return Err(format!("invalid variable name {name:?} in ${{{body}}}"));
        }
        let value = match (vars.get(name), default) {
            (Some(v), Some((op, d))) if op.starts_with(':') && v.is_empty() => d.to_string(),
            (Some(v), _) => v.clone(),
            (None, Some((_, d))) => d.to_string(),
            (None, None) => String::new(),
        };
        out.push_str(&value);
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Substitutes variables in one object (through its YAML text, as Flux does) unless it opts out.
pub fn apply(obj: Object, at: &Loc, vars: &BTreeMap<String, String>) -> Result<Object, BuildError> {
    let disabled = |map: Option<&serde_json::Map<String, serde_json::Value>>| {
        OPT_OUT
            .iter()
            .any(|k| map.and_then(|m| m.get(*k)).and_then(|v| v.as_str()) == Some("disabled"))
    };
    if disabled(obj.annotations()) || disabled(obj.labels()) {
        return Ok(obj);
    }
    let key = obj.key();
    let fail = |message: String| BuildError::Substitute {
        at: at.clone(),
        message: format!("{key}: {message}"),
    };
    let text = yaml::to_yaml(obj.value()).map_err(&fail)?;
    if !text.contains('$') {
        return Ok(obj);
    }
    let replaced = substitute_text(&text, vars).map_err(&fail)?;
    let doc = yaml::parse_one(&replaced, &at.file)
        .map_err(|e| fail(format!("after substitution: {e}")))?;
    Object::new(doc.value).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("APP".to_string(), "web".to_string()),
            ("EMPTY".to_string(), String::new()),
        ]
        .into()
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        let t = "a: ${APP}\nb: ${MISSING:=dflt}\nc: $${APP}\nd: ${EMPTY:=x}\ne: ${EMPTY=x}\nf: $APP\ng: ${MISSING}\n";
        let out = substitute_text(t, &vars()).unwrap();
        assert_eq!(out, "a: web\nb: dflt\nc: ${APP}\nd: x\ne: \nf: $APP\ng: \n");
    }

    #[test]
    fn rejects_bad_names_and_unterminated() {
        assert!(substitute_text("${1X}", &vars()).is_err());
        assert!(substitute_text("${APP", &vars()).is_err());
    }
}
