//! Which notifications an Alert sends: its severity, its event sources (kind; name or `*`;
//! namespace, by default the Alert's, or `*`; labels) and its inclusion and exclusion lists.
//! Pure.

use std::collections::BTreeMap;

use regex::Regex;

use super::{Notification, Severity};
use crate::api::notification::{AlertSpec, CrossNamespaceObjectReference, EventSeverity};
use crate::runtime::references::Reference;

/// An Alert's regular expressions, compiled once.
#[derive(Debug, Clone)]
pub struct Filters {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

/// Compiles the lists; the error names the field and the expression.
pub fn compile(spec: &AlertSpec) -> Result<Filters, String> {
    let list = |field: &str, patterns: &[String]| {
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| Regex::new(p).map_err(|e| format!("spec.{field}[{i}] {p:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Filters {
        include: list("inclusionList", &spec.inclusion_list)?,
        exclude: list("exclusionList", &spec.exclusion_list)?,
    })
}

/// The objects an Alert's event sources name, for the cross-namespace rule: an agent that
/// refuses them refuses the Alert (`AccessDenied`), and it sends nothing.
pub fn sources(spec: &AlertSpec) -> impl Iterator<Item = Reference<'_>> {
    super::references("spec.eventSources", &spec.event_sources)
}

/// Whether a source with `matchLabels` is among the Alert's, so the object's labels are needed.
pub fn needs_labels(spec: &AlertSpec) -> bool {
    spec.event_sources
        .iter()
        .any(|s| !s.match_labels.is_empty())
}

/// Whether the Alert in `namespace` sends `event`. `labels` are the object's, when read.
pub fn matches(
    spec: &AlertSpec,
    filters: &Filters,
    namespace: &str,
    event: &Notification,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if spec.suspend {
        return false;
    }
    if spec.event_severity == EventSeverity::Error && event.severity != Severity::Error {
        return false;
    }
    if !spec
        .event_sources
        .iter()
        .any(|s| source_matches(s, namespace, event, labels))
    {
        return false;
    }
    if !filters.include.is_empty() && !filters.include.iter().any(|r| r.is_match(&event.message)) {
        return false;
    }
    !filters.exclude.iter().any(|r| r.is_match(&event.message))
}

fn source_matches(
    source: &CrossNamespaceObjectReference,
    namespace: &str,
    event: &Notification,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let object = &event.involved_object;
    let source_ns = source.namespace.as_deref().unwrap_or(namespace);
    if source.kind != object.kind || (source_ns != "*" && source_ns != object.namespace) {
        return false;
    }
    if source.name != "*" && source.name != object.name {
        return false;
    }
    source.match_labels.is_empty()
        || labels.is_some_and(|l| source.match_labels.iter().all(|(k, v)| l.get(k) == Some(v)))
}

/// The notification as the Alert sends it: its metadata added, the Event's own keys winning.
pub fn decorate(spec: &AlertSpec, event: &Notification) -> Notification {
    let mut event = event.clone();
    for (k, v) in &spec.event_metadata {
        event.metadata.entry(k.clone()).or_insert_with(|| v.clone());
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::provider::tests::event;

    fn alert(json: serde_json::Value) -> AlertSpec {
        let mut base = serde_json::json!({"providerRef": {"name": "p"},
            "eventSources": [{"kind": "Kustomization", "name": "*"}]});
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn sends(spec: &AlertSpec, event: &Notification) -> bool {
        matches(spec, &compile(spec).unwrap(), "shop", event, None)
    }

    #[test]
    fn severity_sources_and_namespaces() {
        let info = event(Severity::Info, None);
        let error = event(Severity::Error, None);
        assert!(sends(&alert(serde_json::json!({})), &info));
        let errors_only = alert(serde_json::json!({"eventSeverity": "error"}));
        assert!(!sends(&errors_only, &info));
        assert!(sends(&errors_only, &error));
        let other_name =
            alert(serde_json::json!({"eventSources": [{"kind": "Kustomization", "name": "api"}]}));
        assert!(!sends(&other_name, &info));
        let other_kind =
            alert(serde_json::json!({"eventSources": [{"kind": "GitRepository", "name": "*"}]}));
        assert!(!sends(&other_kind, &info));
        let elsewhere = alert(
            serde_json::json!({"eventSources": [{"kind": "Kustomization", "name": "web", "namespace": "ops"}]}),
        );
        assert!(!sends(&elsewhere, &info));
        assert!(!sends(&alert(serde_json::json!({"suspend": true})), &info));
    }

    #[test]
    fn inclusion_exclusion_and_labels() {
        let info = event(Severity::Info, None);
        assert!(sends(
            &alert(serde_json::json!({"inclusionList": ["^Applied"]})),
            &info
        ));
        assert!(!sends(
            &alert(serde_json::json!({"inclusionList": ["^Health"]})),
            &info
        ));
        assert!(!sends(
            &alert(serde_json::json!({"exclusionList": ["sha1:0123$"]})),
            &info
        ));
        let bad = alert(serde_json::json!({"exclusionList": ["ok", "("]}));
        assert!(
            compile(&bad)
                .unwrap_err()
                .starts_with("spec.exclusionList[1]")
        );

        let labelled = alert(
            serde_json::json!({"eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "shop"}}]}),
        );
        assert!(needs_labels(&labelled));
        let filters = compile(&labelled).unwrap();
        let team = BTreeMap::from([("team".to_string(), "shop".to_string())]);
        assert!(matches(&labelled, &filters, "shop", &info, Some(&team)));
        assert!(!matches(
            &labelled,
            &filters,
            "shop",
            &info,
            Some(&BTreeMap::new())
        ));
        assert!(!matches(&labelled, &filters, "shop", &info, None));
    }

    #[test]
    fn sources_in_other_namespaces_or_all_are_refused_on_a_locked_agent() {
        use crate::runtime::references::CrossNamespaceRefs;
        let own = alert(serde_json::json!({"eventSources": [
            {"kind": "Kustomization", "name": "*"},
            {"kind": "GitRepository", "name": "app", "namespace": "shop"}]}));
        assert!(
            CrossNamespaceRefs::Refused
                .check("shop", sources(&own))
                .is_ok()
        );
        let wide = alert(serde_json::json!({"eventSources": [
            {"kind": "Kustomization", "name": "*", "namespace": "*"},
            {"kind": "GitRepository", "name": "app", "namespace": "ops"}]}));
        let err = CrossNamespaceRefs::Refused
            .check("shop", sources(&wide))
            .unwrap_err();
        assert!(
            err.ends_with("spec.eventSources[0] */*, spec.eventSources[1] ops/app"),
            "{err}"
        );
        assert!(
            CrossNamespaceRefs::Allowed
                .check("shop", sources(&wide))
                .is_ok()
        );
    }

    #[test]
    fn alert_metadata_never_overwrites_the_events() {
        let spec =
            alert(serde_json::json!({"eventMetadata": {"cluster": "prod", "revision": "x"}}));
        let decorated = decorate(&spec, &event(Severity::Info, Some("main@sha1:1")));
        assert_eq!(decorated.metadata["cluster"], "prod");
        assert_eq!(decorated.metadata["revision"], "main@sha1:1");
    }
}
