//! The order objects are applied in: Namespaces and CRDs first, workloads after what they use,
//! webhooks last. Pure.

use super::object::Object;

const FIRST: [&str; 22] = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const LAST: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn rank(o: &Object) -> usize {
    if let Some(i) = FIRST.iter().position(|k| *k == o.kind()) {
        return i;
    }
    match LAST.iter().position(|k| *k == o.kind()) {
        Some(i) => FIRST.len() + 1 + i,
        None => FIRST.len(),
    }
}

/// Sorts objects into apply order; ties keep a stable order by kind, namespace and name.
pub fn apply_order(objects: &mut [Object]) {
    objects.sort_by_cached_key(|o| (rank(o), o.key()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str) -> Object {
        Object::new(json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}})).unwrap()
    }

    #[test]
    fn namespaces_and_crds_first_webhooks_last() {
        let mut v = vec![
            obj("ValidatingWebhookConfiguration", "w"),
            obj("Widget", "x"),
            obj("Deployment", "d"),
            obj("CustomResourceDefinition", "c"),
            obj("Namespace", "n"),
        ];
        apply_order(&mut v);
        let kinds: Vec<&str> = v.iter().map(Object::kind).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "Deployment",
                "Widget",
                "ValidatingWebhookConfiguration"
            ]
        );
    }
}
