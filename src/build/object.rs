//! Rendered Kubernetes objects: a `serde_json::Value` with accessors for the identity fields, and the
//! bookkeeping the renderer keeps about each one (where it came from, earlier names). No I/O.

use std::fmt;

use serde_json::{Map, Value};

/// One Kubernetes object, always a JSON object with a string `kind` and `metadata.name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Object(Value);

/// What identifies an object in a cluster: group, kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{}{group} {ns}/{}", self.kind, self.name),
            None => write!(f, "{}{group} {}", self.kind, self.name),
        }
    }
}

impl Object {
    /// Wraps a value, checking that it has the shape of a Kubernetes object.
    pub fn new(value: Value) -> Result<Self, String> {
        let Value::Object(map) = &value else {
            return Err(format!(
                "not a Kubernetes object: expected a mapping, found {}",
                type_name(&value)
            ));
        };
        match map.get("apiVersion") {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err("not a Kubernetes object: missing apiVersion".into()),
        }
        match map.get("kind") {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err("not a Kubernetes object: missing kind".into()),
        }
        match map.get("metadata").and_then(|m| m.get("name")) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err("not a Kubernetes object: missing metadata.name".into()),
        }
        let ns = map.get("metadata").and_then(|m| m.get("namespace"));
        if ns.is_some_and(|ns| !ns.is_string() && !ns.is_null()) {
            return Err("metadata.namespace must be a string".into());
        }
        Ok(Self(value))
    }

    pub fn value(&self) -> &Value {
        &self.0
    }

    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.0
    }

    pub fn into_value(self) -> Value {
        self.0
    }

    fn str_at(&self, path: &[&str]) -> Option<&str> {
        let mut v = &self.0;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str()
    }

    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"]).unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.str_at(&["kind"]).unwrap_or_default()
    }

    /// The API group: the part of apiVersion before `/`, empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    pub fn version(&self) -> &str {
        let v = self.api_version();
        v.rsplit_once('/').map(|(_, v)| v).unwrap_or(v)
    }

    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"]).unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.str_at(&["metadata", "namespace"])
            .filter(|s| !s.is_empty())
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: self.group().to_string(),
            kind: self.kind().to_string(),
            namespace: self.namespace().map(str::to_string),
            name: self.name().to_string(),
        }
    }

    pub fn labels(&self) -> Option<&Map<String, Value>> {
        self.0.get("metadata")?.get("labels")?.as_object()
    }

    pub fn annotations(&self) -> Option<&Map<String, Value>> {
        self.0.get("metadata")?.get("annotations")?.as_object()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations()?.get(key)?.as_str()
    }

    pub(crate) fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let root = self.0.as_object_mut().expect("checked in Object::new");
        let meta = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        meta.as_object_mut().expect("just made an object")
    }

    /// Writes `metadata.annotations` as kustomize does on output: removed when null or empty,
    /// every scalar value as a string (`5` becomes `"5"`, null `"null"`). Labels are left as
    /// they are, as kustomize leaves them.
    pub(crate) fn normalize_annotations(&mut self) {
        let meta = self.metadata_mut();
        match meta.get_mut("annotations") {
            Some(Value::Object(m)) if !m.is_empty() => {
                for v in m.values_mut() {
                    let text = match v {
                        Value::Null => "null".to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => continue,
                    };
                    *v = Value::String(text);
                }
            }
            Some(Value::Null | Value::Object(_)) => {
                meta.remove("annotations");
            }
            _ => {}
        }
    }

    pub(crate) fn set_name(&mut self, name: &str) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name.into()));
    }

    pub(crate) fn set_namespace(&mut self, namespace: Option<&str>) {
        match namespace {
            Some(ns) => {
                self.metadata_mut()
                    .insert("namespace".into(), Value::String(ns.into()));
            }
            None => {
                self.metadata_mut().remove("namespace");
            }
        }
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Where an object or setting was read from: a file shown relative to the source root, and a
/// 1-based line (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loc {
    pub file: String,
    pub line: u64,
}

impl Loc {
    pub fn new(file: impl Into<String>, line: u64) -> Self {
        Self {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}", self.file, self.line)
        } else {
            write!(f, "{}", self.file)
        }
    }
}

/// An object during rendering, with the identity it had when it was read and every identity it had
/// since (kustomize resolves name references through this history).
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub obj: Object,
    pub loc: Loc,
    pub original: (String, Option<String>),
    pub previous: Vec<(String, Option<String>)>,
    /// A generated ConfigMap or Secret whose name gets a content hash suffix at the end.
    pub needs_hash: bool,
}

impl Resource {
    pub fn new(obj: Object, loc: Loc) -> Self {
        let original = (obj.name().to_string(), obj.namespace().map(str::to_string));
        Self {
            obj,
            loc,
            original,
            previous: Vec::new(),
            needs_hash: false,
        }
    }

    /// Renames the object, remembering the identity it had.
    pub fn rename(&mut self, name: &str) {
        if name != self.obj.name() {
            self.remember();
            self.obj.set_name(name);
        }
    }

    pub fn set_namespace(&mut self, ns: Option<&str>) {
        if ns != self.obj.namespace() {
            self.remember();
            self.obj.set_namespace(ns);
        }
    }

    fn remember(&mut self) {
        let id = (
            self.obj.name().to_string(),
            self.obj.namespace().map(str::to_string),
        );
        if !self.previous.contains(&id) {
            self.previous.push(id);
        }
    }

    /// Every (name, namespace) this object had, the original first and the current last.
    pub fn ids(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        std::iter::once((self.original.0.as_str(), self.original.1.as_deref()))
            .chain(
                self.previous
                    .iter()
                    .map(|(n, ns)| (n.as_str(), ns.as_deref())),
            )
            .chain(std::iter::once((self.obj.name(), self.obj.namespace())))
    }

    /// Every name this object had, the original first and the current last.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.original.0.as_str())
            .chain(self.previous.iter().map(|(n, _)| n.as_str()))
            .chain(std::iter::once(self.obj.name()))
    }

    /// Every namespace this object was in.
    pub fn namespaces(&self) -> impl Iterator<Item = Option<&str>> {
        std::iter::once(self.original.1.as_deref())
            .chain(self.previous.iter().map(|(_, n)| n.as_deref()))
            .chain(std::iter::once(self.obj.namespace()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_read_identity() {
        let o = Object::new(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod"}}))
        .unwrap();
        assert_eq!(
            (o.group(), o.version(), o.kind()),
            ("apps", "v1", "Deployment")
        );
        assert_eq!((o.name(), o.namespace()), ("web", Some("prod")));
        assert_eq!(o.key().to_string(), "Deployment.apps prod/web");
    }

    #[test]
    fn rejects_non_objects() {
        assert!(
            Object::new(json!([1]))
                .unwrap_err()
                .contains("found a list")
        );
        assert!(
            Object::new(json!({"apiVersion": "v1", "kind": "X"}))
                .unwrap_err()
                .contains("metadata.name")
        );
    }

    #[test]
    fn history_keeps_every_name() {
        let o = Object::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        )
        .unwrap();
        let mut r = Resource::new(o, Loc::default());
        r.rename("p-a");
        r.rename("p-a-s");
        assert_eq!(r.names().collect::<Vec<_>>(), ["a", "a", "p-a", "p-a-s"]);
    }
}
