//! Decisions of the applier that need no API server: per-object policy from annotations, whether
//! a dry-run result differs from the live object, and how to take fields over from kubectl's
//! managers. Pure.

use kube::api::PatchParams;
use serde_json::{Map, Value};

use super::changeset::Action;

/// The field manager sluice applies with.
pub const FIELD_MANAGER: &str = "sluice";

/// How the applier writes (and dry-runs): server-side apply as `FIELD_MANAGER`, taking
/// conflicting fields over, with `fieldValidation=Ignore`. Server-side apply refuses a field the
/// kind's schema does not declare (`.spec.replica: field not declared in schema`) whatever the
/// directive; what `Strict` (kubectl's default) adds for an apply is a second, strict YAML parse
/// of the body to find a field given twice, which JSON serialized from a parsed value cannot
/// hold (the build refuses duplicate keys). In a profile of a cold apply that parse was 6.3% of
/// the API server's CPU (about 15% of its apply handling), so it is not asked for.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_ignore()
}

/// The API server's reason for refusing an apply, without the frame server-side apply puts
/// around schema errors (the rejection names the object already): `failed to create typed
/// patch object (shop/web; apps/v1, Kind=Deployment): .spec.replica: field not declared in
/// schema` becomes `.spec.replica: field not declared in schema`.
pub fn refusal(message: &str) -> &str {
    message
        .strip_prefix("failed to create typed patch object (")
        .and_then(|rest| rest.split_once("): "))
        .map_or(message, |(_, reason)| reason)
}

/// Managers whose fields sluice takes over on the objects it manages, so that a hand edit made with
/// kubectl can't hide from drift correction behind another manager.
pub const TAKEOVER_MANAGERS: &[&str] = &[
    "before-first-apply",
    "kubectl",
    "kubectl-client-side-apply",
    "kubectl-create",
    "kubectl-edit",
    "kubectl-patch",
    "kubectl-replace",
    "kubectl-set",
    "kubectl-label",
    "kubectl-annotate",
];

/// How the applier treats an object, from `sluice.dev/ssa` (or its Flux spelling).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SsaMode {
    /// Apply and take over fields edited by others (the default).
    #[default]
    Override,
    /// Apply, but leave fields other managers own alone (no takeover of kubectl's fields).
    Merge,
    /// Create the object when it is missing; never change it afterwards.
    IfNotPresent,
    /// Never apply it.
    Ignore,
}

/// What the annotations of one desired object ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub ssa: SsaMode,
    pub reconcile_disabled: bool,
    pub prune_disabled: bool,
    /// `prune: delete-contents`: prune a Namespace or CustomResourceDefinition even when it
    /// still holds objects this owner does not own.
    pub prune_contents: bool,
    pub force: bool,
}

const PREFIXES: &[&str] = &["sluice.dev/", "kustomize.toolkit.fluxcd.io/"];

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    let annotations = object.pointer("/metadata/annotations")?;
    PREFIXES
        .iter()
        .find_map(|prefix| annotations.get(format!("{prefix}{key}"))?.as_str())
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    let labels = object.pointer("/metadata/labels")?;
    PREFIXES
        .iter()
        .find_map(|prefix| labels.get(format!("{prefix}{key}"))?.as_str())
}

impl Policy {
    /// The object is never applied (`reconcile: disabled` or `ssa: Ignore`).
    pub fn never_applied(&self) -> bool {
        self.reconcile_disabled || self.ssa == SsaMode::Ignore
    }

    /// Reads the policy of an object (desired or live); values are compared case-insensitively.
    pub fn of(object: &Value) -> Policy {
        let is = |key: &str, value: &str| {
            annotation(object, key)
                .or_else(|| label(object, key))
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        };
        let ssa = match annotation(object, "ssa")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("merge") => SsaMode::Merge,
            Some("ifnotpresent") => SsaMode::IfNotPresent,
            Some("ignore") => SsaMode::Ignore,
            _ => SsaMode::Override,
        };
        Policy {
            ssa,
            reconcile_disabled: is("reconcile", "disabled"),
            prune_disabled: is("prune", "disabled"),
            prune_contents: is("prune", "delete-contents"),
            force: is("force", "enabled"),
        }
    }
}

/// The object without what the server maintains, for comparing a dry-run result with the live
/// object: status, managedFields, resourceVersion, generation, uid, timestamps.
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            for key in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
                "selfLink",
            ] {
                metadata.remove(key);
            }
        }
    }
    object
}

/// Created when nothing is live; Unchanged when the dry-run result equals the live object;
/// Configured otherwise.
pub fn decide(dry_run: &Value, live: Option<&Value>) -> Action {
    match live {
        None => Action::Created,
        Some(live) if comparable(live) == comparable(dry_run) => Action::Unchanged,
        Some(_) => Action::Configured,
    }
}

/// When the live object has fields owned by one of `TAKEOVER_MANAGERS` (through an Update of the
/// main resource), the managedFields to write instead: those entries merged into sluice's Apply
/// entry. `None` when there is nothing to take over.
pub fn takeover(managed_fields: &[Value]) -> Option<Vec<Value>> {
    let is_foreign = |entry: &Value| {
        let manager = entry.get("manager").and_then(Value::as_str).unwrap_or("");
        TAKEOVER_MANAGERS.contains(&manager)
            && entry.get("operation").and_then(Value::as_str) == Some("Update")
            && entry
                .get("subresource")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
    };
    let is_ours = |entry: &Value| {
        entry.get("manager").and_then(Value::as_str) == Some(FIELD_MANAGER)
            && entry.get("operation").and_then(Value::as_str) == Some("Apply")
    };
    if !managed_fields.iter().any(is_foreign) {
        return None;
    }
    let mut merged: Option<Value> = None;
    let mut rest = Vec::new();
    for entry in managed_fields {
        if is_foreign(entry) || is_ours(entry) {
            let fields = entry
                .get("fieldsV1")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            match &mut merged {
                None => {
                    let mut ours = entry.clone();
                    ours["manager"] = Value::from(FIELD_MANAGER);
                    ours["operation"] = Value::from("Apply");
                    ours["fieldsV1"] = fields;
                    merged = Some(ours);
                }
                Some(ours) => union_into(&mut ours["fieldsV1"], &fields),
            }
        } else {
            rest.push(entry.clone());
        }
    }
    rest.extend(merged);
    Some(rest)
}

/// Whether a managedFields entry is an autoscaler's: written through the `scale` subresource by
/// a controller (not by hand with kubectl, which is drift).
pub fn is_autoscaler(entry: &Value) -> bool {
    let manager = entry.get("manager").and_then(Value::as_str).unwrap_or("");
    entry.get("subresource").and_then(Value::as_str) == Some("scale")
        && !manager.starts_with("kubectl")
}

/// Leaves to other managers the fields they own on `live`: every field of `desired` that a
/// managedFields entry matching `owner` holds on `live` with a different value is removed from
/// `desired` (only fields reached through object keys; list items are not yielded). Returns the
/// removed fields as JSON pointers.
pub fn yield_fields(
    desired: &mut Value,
    live: &Value,
    owner: impl Fn(&Value) -> bool,
) -> Vec<String> {
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut paths = Vec::new();
    for entry in entries.iter().filter(|e| owner(e)) {
        if let Some(fields) = entry.get("fieldsV1") {
            leaf_paths(fields, &mut Vec::new(), &mut paths);
        }
    }
    paths.sort();
    paths.dedup();
    let mut yielded = Vec::new();
    for path in paths {
        let pointer: String = path.iter().map(|k| format!("/{}", escape(k))).collect();
        let Some(wanted) = desired.pointer(&pointer) else {
            continue;
        };
        if live.pointer(&pointer) == Some(wanted) {
            continue;
        }
        let (parent, key) = pointer.rsplit_once('/').expect("pointers start with /");
        if let Some(map) = desired.pointer_mut(parent).and_then(Value::as_object_mut) {
            map.remove(&unescape(key));
            yielded.push(pointer);
        }
    }
    yielded
}

/// The leaves of a fieldsV1 set reached through `f:` keys only.
fn leaf_paths(fields: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(map) = fields.as_object() else {
        return;
    };
    let children: Vec<(&String, &Value)> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() {
        if !at.is_empty() {
            out.push(at.clone());
        }
        return;
    }
    for (key, value) in children {
        if let Some(name) = key.strip_prefix("f:") {
            at.push(name.to_string());
            leaf_paths(value, at, out);
            at.pop();
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(key: &str) -> String {
    key.replace("~1", "/").replace("~0", "~")
}

/// Deep union of two fieldsV1 sets (objects whose leaves are `{}`).
fn union_into(into: &mut Value, from: &Value) {
    let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) else {
        return;
    };
    for (key, value) in from {
        match into.get_mut(key) {
            Some(existing) => union_into(existing, value),
            None => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_lose_the_typed_patch_frame() {
        assert_eq!(
            refusal(
                "failed to create typed patch object (shop/web; apps/v1, Kind=Deployment): .spec.replica: field not declared in schema"
            ),
            ".spec.replica: field not declared in schema"
        );
        let other = "admission webhook \"x\" denied the request: no";
        assert_eq!(refusal(other), other);
        assert!(matches!(
            apply_params().field_validation,
            Some(kube::api::ValidationDirective::Ignore)
        ));
    }

    #[test]
    fn policy_reads_both_spellings_case_insensitively() {
        let object = json!({"metadata": {"annotations": {
            "kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent",
            "sluice.dev/prune": "Disabled",
            "sluice.dev/force": "enabled",
        }}});
        let policy = Policy::of(&object);
        assert_eq!(policy.ssa, SsaMode::IfNotPresent);
        assert!(policy.prune_disabled && policy.force && !policy.reconcile_disabled);
        let labelled =
            json!({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}}});
        assert!(Policy::of(&labelled).reconcile_disabled);
        assert_eq!(Policy::of(&json!({})), Policy::default());
    }

    #[test]
    fn server_maintained_fields_do_not_count_as_changes() {
        let live = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "7", "uid": "u",
            "managedFields": [{}], "creationTimestamp": "t"}, "data": {"k": "v"}});
        let same = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "8"}, "data": {"k": "v"}});
        let other = json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "w"}});
        assert_eq!(decide(&same, Some(&live)), Action::Unchanged);
        assert_eq!(decide(&other, Some(&live)), Action::Configured);
        assert_eq!(decide(&other, None), Action::Created);
    }

    #[test]
    fn fields_another_manager_owns_at_another_value_are_yielded() {
        let live = json!({
            "metadata": {"managedFields": [
                {"manager": "sluice", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}},
                {"manager": "sluice-canary", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {},
                    "f:template": {"f:metadata": {"f:labels": {"f:sluice.dev/canary-apex": {}}}}}}},
            ]},
            "spec": {"replicas": 0, "template": {"metadata": {"labels": {"app": "web", "sluice.dev/canary-apex": "web"}}}},
        });
        let mut desired =
            json!({"spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web"}}}}});
        let yielded = yield_fields(&mut desired, &live, |e| e["manager"] == "sluice-canary");
        assert_eq!(yielded, ["/spec/replicas"]);
        assert_eq!(
            desired,
            json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}})
        );
        // The same value is kept: nothing to yield.
        let mut same = json!({"spec": {"replicas": 0}});
        assert!(yield_fields(&mut same, &live, |e| e["manager"] == "sluice-canary").is_empty());
        assert_eq!(same["spec"]["replicas"], 0);
    }

    #[test]
    fn autoscalers_own_replicas_through_the_scale_subresource() {
        let hpa = json!({"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale"});
        let by_hand =
            json!({"manager": "kubectl-scale", "operation": "Update", "subresource": "scale"});
        assert!(is_autoscaler(&hpa));
        assert!(!is_autoscaler(&by_hand));
        assert!(!is_autoscaler(
            &json!({"manager": "kube-controller-manager", "operation": "Update"})
        ));
    }

    #[test]
    fn kubectl_fields_are_merged_into_the_sluice_apply_entry() {
        let managed = vec![
            json!({"manager": "sluice", "operation": "Apply", "apiVersion": "v1",
                   "fieldsV1": {"f:data": {"f:a": {}}}}),
            json!({"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1",
                   "fieldsV1": {"f:data": {"f:b": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}}),
            json!({"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                   "fieldsV1": {"f:status": {}}}),
            json!({"manager": "kubectl", "operation": "Update", "subresource": "scale",
                   "fieldsV1": {"f:spec": {"f:replicas": {}}}}),
        ];
        let result = takeover(&managed).expect("something to take over");
        assert_eq!(result.len(), 3, "{result:#?}");
        let ours = result.iter().find(|e| e["manager"] == "sluice").unwrap();
        assert_eq!(ours["operation"], "Apply");
        assert_eq!(
            ours["fieldsV1"],
            json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:x": {}}}})
        );
        assert!(
            result
                .iter()
                .any(|e| e["manager"] == "kube-controller-manager")
        );
        assert!(
            result.iter().any(|e| e["subresource"] == "scale"),
            "subresource entries stay"
        );
        assert!(takeover(&managed[2..3]).is_none());
    }
}
