//! Choosing the objects a patch targets: group/version/kind, name and namespace regexes, and
//! Kubernetes label and annotation selectors. Pure.

use serde_json::{Map, Value};

use super::fieldspec::is_cluster_scoped;
use super::kustomization::TargetSpec;
use super::object::Resource;

/// A compiled target selector.
#[derive(Debug)]
pub struct Selector {
    spec: TargetSpec,
    gvk: [Option<regex::Regex>; 3],
    name: Option<regex::Regex>,
    namespace: Option<regex::Regex>,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
}

fn anchored(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

impl Selector {
    pub fn new(spec: &TargetSpec) -> Result<Self, String> {
        let pattern = |p: &Option<String>| {
            p.as_deref()
                .filter(|s| !s.is_empty())
                .map(anchored)
                .transpose()
        };
        Ok(Self {
            gvk: [
                pattern(&spec.group)?,
                pattern(&spec.version)?,
                pattern(&spec.kind)?,
            ],
            name: spec
                .name
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(anchored)
                .transpose()?,
            namespace: spec
                .namespace
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(anchored)
                .transpose()?,
            labels: parse_selector(spec.label_selector.as_deref().unwrap_or(""))?,
            annotations: parse_selector(spec.annotation_selector.as_deref().unwrap_or(""))?,
            spec: spec.clone(),
        })
    }

    pub fn matches(&self, res: &Resource) -> bool {
        let o = &res.obj;
        let gvk = self
            .spec
            .kind
            .as_deref()
            .is_none_or(|k| k.is_empty() || k == o.kind())
            && self
                .spec
                .group
                .as_deref()
                .is_none_or(|g| g.is_empty() || g == o.group())
            && self
                .spec
                .version
                .as_deref()
                .is_none_or(|v| v.is_empty() || v == o.version());
        if !gvk {
            return false;
        }
        if let Some(re) = &self.name {
            let names = [res.original.0.as_str(), o.name()];
            if !names.iter().any(|n| re.is_match(n)) {
                return false;
            }
        }
        if let Some(re) = &self.namespace {
            let cluster = is_cluster_scoped(o);
            let effective = |ns: Option<&str>| {
                if cluster {
                    String::new()
                } else {
                    ns.unwrap_or("default").to_string()
                }
            };
            let both = [
                effective(res.original.1.as_deref()),
                effective(o.namespace()),
            ];
            if !both.iter().any(|n| re.is_match(n)) {
                return false;
            }
        }
        self.selects_metadata(o)
    }
}

/// An identity as replacement targets match it: group, version, kind, name and namespace (empty
/// when none).
pub struct Id<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
}

impl Selector {
    /// Whether any of group, version, kind, name or namespace is set.
    pub fn has_id(&self) -> bool {
        self.gvk.iter().any(Option::is_some) || self.name.is_some() || self.namespace.is_some()
    }

    /// Whether every field set in the selector matches the identity as a regular expression over
    /// the whole value (replacement targets; the namespace as written, not defaulted).
    pub fn selects_id(&self, id: &Id) -> bool {
        let fields = [id.group, id.version, id.kind, id.name, id.namespace];
        let patterns = self.gvk.iter().chain([&self.name, &self.namespace]);
        patterns
            .zip(fields)
            .all(|(re, value)| re.as_ref().is_none_or(|re| re.is_match(value)))
    }

    /// Whether the object's labels and annotations satisfy the selector's label and annotation
    /// selectors (true when it has none).
    pub fn selects_metadata(&self, obj: &super::object::Object) -> bool {
        let empty = Map::new();
        selects(&self.labels, obj.labels().unwrap_or(&empty))
            && selects(&self.annotations, obj.annotations().unwrap_or(&empty))
    }

    /// Whether the selector has a label or annotation selector.
    pub fn has_metadata(&self) -> bool {
        !self.labels.is_empty() || !self.annotations.is_empty()
    }
}

#[derive(Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn selects(reqs: &[Requirement], map: &Map<String, Value>) -> bool {
    let get = |k: &str| map.get(k).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Requirement::Equals(k, v) => get(k) == Some(v),
        Requirement::NotEquals(k, v) => get(k) != Some(v),
        Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        Requirement::Exists(k) => map.contains_key(k),
        Requirement::NotExists(k) => !map.contains_key(k),
    })
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut reqs = Vec::new();
    for part in split_top(s)
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'));
            let inner =
                inner.ok_or_else(|| format!("invalid selector {part:?}: expected (values)"))?;
            Ok(inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect())
        };
        let req = if let Some(k) = part.strip_prefix('!') {
            Requirement::NotExists(k.trim().into())
        } else if let Some((k, v)) = part.split_once("!=") {
            Requirement::NotEquals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==") {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once('=') {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = part.split_once(" notin ") {
            Requirement::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = part.split_once(" in ") {
            Requirement::In(k.trim().into(), set(rest)?)
        } else if part.contains(char::is_whitespace) || part.contains('(') {
            return Err(format!("invalid selector {part:?}"));
        } else {
            Requirement::Exists(part.into())
        };
        reqs.push(req);
    }
    Ok(reqs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_equality_and_set_selectors() {
        let r = parse_selector("app=web, tier!=db,env in (a, b),!legacy,team").unwrap();
        assert_eq!(r.len(), 5);
        let labels = json!({"app": "web", "env": "b", "team": "x"});
        assert!(selects(&r, labels.as_object().unwrap()));
        let labels = json!({"app": "web", "env": "c", "team": "x"});
        assert!(!selects(&r, labels.as_object().unwrap()));
    }

    #[test]
    fn rejects_bad_selectors() {
        assert!(parse_selector("env in a").is_err());
    }
}
