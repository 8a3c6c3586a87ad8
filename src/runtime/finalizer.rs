//! Finalizers: what the scaffold does with an object whose controller cleans up after deletion
//! (`decide`, pure), and the two patches that add and remove the finalizer (one request each,
//! guarded by a JSON-patch `test` so another writer's finalizers are never lost).

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::core::ObjectMeta;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// What to do with an object before (or instead of) reconciling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not being deleted and the finalizer is there: reconcile.
    Reconcile,
    /// Not being deleted and the finalizer is missing: add it, then reconcile.
    Add,
    /// Being deleted with the finalizer on: clean up, then remove it.
    Cleanup,
    /// Being deleted and the finalizer is already gone: nothing is ours to do.
    Gone,
}

/// The step for an object with `meta`, for a controller whose finalizer is `finalizer`.
pub fn decide(meta: &ObjectMeta, finalizer: &str) -> Step {
    let has = meta
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == finalizer));
    match (meta.deletion_timestamp.is_some(), has) {
        (false, true) => Step::Reconcile,
        (false, false) => Step::Add,
        (true, true) => Step::Cleanup,
        (true, false) => Step::Gone,
    }
}

/// The JSON patch that adds `finalizer` to the object `meta` describes. It holds only while the
/// object is unchanged (a `test` of its resourceVersion), so another writer's finalizers are never
/// overwritten; a stale view fails and is retried.
pub fn add_patch(meta: &ObjectMeta, finalizer: &str) -> serde_json::Value {
    let guard = version_test(meta);
    match &meta.finalizers {
        None => {
            serde_json::json!([guard, {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}])
        }
        Some(_) => {
            serde_json::json!([guard, {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}])
        }
    }
}

/// The JSON patch that removes `finalizer` from the object `meta` describes (guarded the same
/// way); `None` when it is not there.
pub fn remove_patch(meta: &ObjectMeta, finalizer: &str) -> Option<serde_json::Value> {
    let index = meta
        .finalizers
        .as_ref()?
        .iter()
        .position(|f| f == finalizer)?;
    Some(serde_json::json!([
        version_test(meta),
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]))
}

fn version_test(meta: &ObjectMeta) -> serde_json::Value {
    serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": meta.resource_version})
}

/// Applies one of the patches above to `obj`.
pub async fn patch<K>(client: &Client, obj: &K, patch: serde_json::Value) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("finalizer patches parse");
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "finalizers.sluice.dev";

    fn meta(deleting: bool, finalizers: Option<Vec<&str>>) -> ObjectMeta {
        ObjectMeta {
            deletion_timestamp: deleting.then_some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            ),
            finalizers: finalizers.map(|f| f.into_iter().map(String::from).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn the_step_follows_deletion_and_the_finalizer() {
        assert_eq!(decide(&meta(false, None), F), Step::Add);
        assert_eq!(decide(&meta(false, Some(vec!["other"])), F), Step::Add);
        assert_eq!(decide(&meta(false, Some(vec![F])), F), Step::Reconcile);
        assert_eq!(
            decide(&meta(true, Some(vec!["other", F])), F),
            Step::Cleanup
        );
        assert_eq!(decide(&meta(true, Some(vec!["other"])), F), Step::Gone);
    }

    #[test]
    fn patches_keep_other_finalizers_and_fail_on_a_stale_view() {
        let apply = |object: &mut serde_json::Value, patch: serde_json::Value| {
            let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
            json_patch::patch(object, &patch)
        };
        let mut seen = meta(false, Some(vec!["other"]));
        seen.resource_version = Some("7".into());
        let mut object =
            serde_json::json!({"metadata": {"resourceVersion": "7", "finalizers": ["other"]}});
        apply(&mut object, add_patch(&seen, F)).unwrap();
        assert_eq!(
            object["metadata"]["finalizers"],
            serde_json::json!(["other", F])
        );

        let mut deleting = meta(true, Some(vec!["other", F]));
        deleting.resource_version = Some("7".into());
        apply(&mut object, remove_patch(&deleting, F).unwrap()).unwrap();
        assert_eq!(
            object["metadata"]["finalizers"],
            serde_json::json!(["other"])
        );
        assert_eq!(remove_patch(&seen, F), None);

        // Changed since it was seen: the patch fails, nothing is lost.
        let mut changed = serde_json::json!({"metadata": {"resourceVersion": "8", "finalizers": ["other", "third"]}});
        assert!(apply(&mut changed, add_patch(&seen, F)).is_err());

        let mut bare = meta(false, None);
        bare.resource_version = Some("1".into());
        let mut none = serde_json::json!({"metadata": {"resourceVersion": "1"}});
        apply(&mut none, add_patch(&bare, F)).unwrap();
        assert_eq!(none["metadata"]["finalizers"], serde_json::json!([F]));
    }
}
