//! Commit messages and branch names from Go templates (text/template syntax, rendered by gtmpl)
//! with Flux's template data: `.AutomationObject`, `.Changed.Changes`, `.Changed.FileChanges`,
//! `.Values`. Pure.

use std::collections::{BTreeMap, HashMap};

use gtmpl::Value;

use crate::image::setters::Change;

/// The message when `messageTemplate` is not set (Flux's).
pub const DEFAULT_MESSAGE: &str = "Update from image update automation";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TemplateError {
    pub field: &'static str,
    pub reason: String,
}

/// What a template sees.
#[derive(Debug, Clone)]
pub struct TemplateData<'a> {
    /// `namespace/name` of the ImageUpdateAutomation.
    pub automation: String,
    pub changes: &'a [Change],
    pub values: &'a BTreeMap<String, String>,
    /// Set when naming a branch of its own for one policy: `.Policy.Name`, `.Policy.Namespace`,
    /// `.Tag`, `.Image`.
    pub policy: Option<PolicyData>,
}

#[derive(Debug, Clone, Default)]
pub struct PolicyData {
    pub namespace: String,
    pub name: String,
    pub image: String,
    pub tag: String,
}

/// Checks that `template` parses, naming `field` otherwise.
pub fn check(field: &'static str, template: &str) -> Result<(), TemplateError> {
    let mut t = gtmpl::Template::default();
    t.parse(template).map_err(|e| TemplateError {
        field,
        reason: e.to_string(),
    })
}

/// Renders `template` (the spec field `field`) with `data`.
pub fn render(
    field: &'static str,
    template: &str,
    data: &TemplateData<'_>,
) -> Result<String, TemplateError> {
    let fail = |reason: String| TemplateError { field, reason };
    let mut t = gtmpl::Template::default();
    t.parse(template).map_err(|e| fail(e.to_string()))?;
    t.render(&gtmpl::Context::from(value(data)))
        .map_err(|e| fail(e.to_string()))
}

fn value(data: &TemplateData<'_>) -> Value {
    let change = |c: &Change, with_place: bool| {
        let mut m: HashMap<String, Value> = HashMap::new();
        m.insert("OldValue".into(), c.old.clone().into());
        m.insert("NewValue".into(), c.new.clone().into());
        m.insert("Setter".into(), c.setter.clone().into());
        if with_place {
            m.insert("File".into(), c.file.clone().into());
            m.insert("Line".into(), Value::from(c.line as u64));
        }
        Value::Object(m)
    };
    let mut by_file: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for c in data.changes {
        by_file.entry(&c.file).or_default().push(change(c, false));
    }
    let mut changed: HashMap<String, Value> = HashMap::new();
    changed.insert(
        "Changes".into(),
        Value::Array(data.changes.iter().map(|c| change(c, true)).collect()),
    );
    changed.insert(
        "FileChanges".into(),
        Value::Object(
            by_file
                .into_iter()
                .map(|(f, cs)| (f.to_owned(), Value::Array(cs)))
                .collect(),
        ),
    );
    let mut root: HashMap<String, Value> = HashMap::new();
    root.insert("AutomationObject".into(), data.automation.clone().into());
    root.insert("Changed".into(), Value::Object(changed));
    root.insert(
        "Values".into(),
        Value::Object(
            data.values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect(),
        ),
    );
    if let Some(p) = &data.policy {
        let mut policy: HashMap<String, Value> = HashMap::new();
        policy.insert("Name".into(), p.name.clone().into());
        policy.insert("Namespace".into(), p.namespace.clone().into());
        root.insert("Policy".into(), Value::Object(policy));
        root.insert("Tag".into(), p.tag.clone().into());
        root.insert("Image".into(), p.image.clone().into());
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(file: &str, old: &str, new: &str) -> Change {
        Change {
            file: file.into(),
            line: 3,
            setter: "apps:web".into(),
            policy: "web".into(),
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn flux_templates_render() {
        let changes = [
            change("a.yaml", "web:1.0.0", "web:1.1.0"),
            change("b.yaml", "1.0.0", "1.1.0"),
        ];
        let mut values = BTreeMap::new();
        values.insert("env".to_string(), "prod".to_string());
        let data = TemplateData {
            automation: "apps/auto".into(),
            changes: &changes,
            values: &values,
            policy: None,
        };
        let template = "Automated image update by {{ .AutomationObject }} for {{ .Values.env }}\n\
{{ range .Changed.Changes -}}\n\
- {{ .File }}: {{ .OldValue }} -> {{ .NewValue }}\n\
{{ end -}}\n\
files: {{ len .Changed.FileChanges }}";
        assert_eq!(
            render("spec.git.commit.messageTemplate", template, &data).unwrap(),
            "Automated image update by apps/auto for prod\n\
- a.yaml: web:1.0.0 -> web:1.1.0\n\
- b.yaml: 1.0.0 -> 1.1.0\n\
files: 2"
        );
        let one = [change("a.yaml", "x", "y")];
        let data = TemplateData {
            changes: &one,
            ..data
        };
        assert_eq!(
            render(
                "m",
                "{{ range $file, $changes := .Changed.FileChanges }}{{ $file }}{{ range $changes }} {{ .Setter }}{{ end }}{{ end }}",
                &data
            )
            .unwrap(),
            "a.yaml apps:web"
        );
    }

    #[test]
    fn branch_names_and_errors() {
        let values = BTreeMap::new();
        let data = TemplateData {
            automation: "apps/auto".into(),
            changes: &[],
            values: &values,
            policy: Some(PolicyData {
                namespace: "apps".into(),
                name: "web".into(),
                image: "reg/web".into(),
                tag: "1.1.0".into(),
            }),
        };
        assert_eq!(
            render("b", "image-updates/{{ .Policy.Name }}-{{ .Tag }}", &data).unwrap(),
            "image-updates/web-1.1.0"
        );
        let e = check("spec.git.commit.messageTemplate", "{{ range }").unwrap_err();
        assert_eq!(e.field, "spec.git.commit.messageTemplate");
    }
}
