//! The prune guard of containers: a Namespace or a CustomResourceDefinition that left the set is
//! only deleted when everything it still holds belongs to the same owner (or the object says
//! `sluice.dev/prune: delete-contents`), because deleting it deletes all it holds. `foreign` is
//! pure; `find_foreign` lists the container's contents (I/O, with the pruning client).

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::applier::{OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, Owner};
use super::inventory::ObjectId;

/// Kinds whose deletion deletes other objects wholesale.
pub fn is_container(id: &ObjectId) -> bool {
    matches!(
        (id.group.as_str(), id.kind.as_str()),
        ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

/// Whether deleting a container would take `object` (one of its contents) with it although
/// `owner` does not own it. Objects on their way out, objects another object owns (a
/// ReplicaSet's Pods: they go with their owner), Events and what Kubernetes puts in every
/// namespace do not count.
pub fn foreign(object: &Value, owner: &Owner) -> bool {
    let meta = |p: &str| object.pointer(&format!("/metadata/{p}"));
    if meta("deletionTimestamp").is_some()
        || meta("ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| !refs.is_empty())
    {
        return false;
    }
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = meta("name").and_then(Value::as_str).unwrap_or("");
    if kind == "Event"
        || (kind, name) == ("ServiceAccount", "default")
        || (kind, name) == ("ConfigMap", "kube-root-ca.crt")
    {
        return false;
    }
    let label = |key: &str| {
        meta("labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
    };
    label(OWNER_NAME_LABEL) != Some(owner.name.as_str())
        || label(OWNER_NAMESPACE_LABEL) != Some(owner.namespace.as_str())
}

/// The first object `container` (live) holds that `owner` does not own, as `Kind namespace/name`;
/// `None` when there is none. An error when the contents cannot be listed (then the caller must
/// not delete: it cannot tell).
pub async fn find_foreign(
    client: &Client,
    id: &ObjectId,
    container: &Value,
    owner: &Owner,
) -> Result<Option<String>, String> {
    let mut kinds: Vec<(ApiResource, Option<String>)> = Vec::new();
    if id.kind == "Namespace" {
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .map_err(|e| format!("discovering the kinds it may hold failed: {e}"))?;
        for group in discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                if caps.scope == Scope::Namespaced
                    && caps.supports_operation(verbs::LIST)
                    && resource.kind != "Event"
                {
                    kinds.push((resource, Some(id.name.clone())));
                }
            }
        }
    } else {
        let str_at = |p: &str| container.pointer(p).and_then(Value::as_str);
        let (Some(group), Some(kind)) = (str_at("/spec/group"), str_at("/spec/names/kind")) else {
            return Err("its spec has no group or kind".into());
        };
        let served = container
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v.get("served").and_then(Value::as_bool) == Some(true))
            .and_then(|v| v.get("name")?.as_str());
        let Some(version) = served else {
            // No version is served: there is nothing to read, and nothing to lose.
            return Ok(None);
        };
        let plural = str_at("/spec/names/plural").unwrap_or_default();
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        };
        kinds.push((resource, None));
    }
    for (resource, namespace) in kinds {
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let listed = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing its {} failed: {e}", resource.plural))?;
        for item in listed.items {
            let mut value = serde_json::to_value(&item).expect("objects serialize");
            value["kind"] = Value::from(resource.kind.clone());
            if foreign(&value, owner) {
                let at = match item.namespace() {
                    Some(ns) => format!("{ns}/{}", item.name_any()),
                    None => item.name_any(),
                };
                return Ok(Some(format!("{} {at}", resource.kind)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> Owner {
        Owner {
            name: "app".into(),
            namespace: "team".into(),
        }
    }

    #[test]
    fn only_unowned_user_objects_count_as_foreign() {
        let ours = json!({"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"sluice.dev/name": "app", "sluice.dev/namespace": "team"}}});
        let other_owner = json!({"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"sluice.dev/name": "other", "sluice.dev/namespace": "team"}}});
        let hand_made = json!({"kind": "Secret", "metadata": {"name": "db"}});
        let generated = json!({"kind": "Pod", "metadata": {"name": "web-1", "ownerReferences": [{"kind": "ReplicaSet"}]}});
        let going = json!({"kind": "Secret", "metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        let defaults = [
            json!({"kind": "ServiceAccount", "metadata": {"name": "default"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}}),
            json!({"kind": "Event", "metadata": {"name": "e"}}),
        ];
        assert!(!foreign(&ours, &owner()));
        assert!(foreign(&other_owner, &owner()));
        assert!(foreign(&hand_made, &owner()));
        assert!(!foreign(&generated, &owner()));
        assert!(!foreign(&going, &owner()));
        for d in defaults {
            assert!(!foreign(&d, &owner()), "{d}");
        }
    }

    #[test]
    fn namespaces_and_crds_are_containers() {
        let id = |group: &str, kind: &str| ObjectId {
            namespace: String::new(),
            name: "x".into(),
            group: group.into(),
            kind: kind.into(),
        };
        assert!(is_container(&id("", "Namespace")));
        assert!(is_container(&id(
            "apiextensions.k8s.io",
            "CustomResourceDefinition"
        )));
        assert!(!is_container(&id("", "ConfigMap")));
        assert!(!is_container(&id("example.com", "Namespace")));
    }
}
