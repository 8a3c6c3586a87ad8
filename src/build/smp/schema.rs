//! Which lists of built-in kinds a strategic merge patch merges, and by which keys: the merge
//! keys kustomize reads from the Kubernetes 1.21 schema it embeds. Every other list is replaced
//! by the patch's. Pure.

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMerge {
    /// Entries are objects identified by these fields.
    Keys(&'static [&'static str]),
    /// Entries are scalars, merged as a set (`finalizers`).
    Primitive,
    Replace,
}

const NAME: ListMerge = ListMerge::Keys(&["name"]);

/// Where a kind keeps its pod spec.
fn pod_spec(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "PodTemplate" => Some(&["template", "spec"]),
        "ReplicationController"
        | "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "Job" => Some(&["spec", "template", "spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// How the list at `path` (field names from the object's root) of an object of a built-in
/// `kind` merges.
pub fn list_merge(kind: &str, path: &[String]) -> ListMerge {
    let Some((field, parent)) = path.split_last() else {
        return ListMerge::Replace;
    };
    let parent: Vec<&str> = parent.iter().map(String::as_str).collect();
    let pod = pod_spec(kind);
    let is_pod = |p: &[&str]| pod.is_some_and(|pod| p == pod);
    match (parent.as_slice(), field.as_str()) {
        ([.., "metadata"], "finalizers") => return ListMerge::Primitive,
        ([.., "metadata"], "ownerReferences") => return ListMerge::Keys(&["uid"]),
        _ => {}
    }
    if is_pod(&parent) {
        return match field.as_str() {
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "imagePullSecrets" => NAME,
            "hostAliases" => ListMerge::Keys(&["ip"]),
            "topologySpreadConstraints" => ListMerge::Keys(&["topologyKey", "whenUnsatisfiable"]),
            _ => ListMerge::Replace,
        };
    }
    if let Some((container, pod_path)) = parent.split_last()
        && is_pod(pod_path)
        && matches!(
            *container,
            "containers" | "initContainers" | "ephemeralContainers"
        )
    {
        return match field.as_str() {
            "env" => NAME,
            "volumeMounts" => ListMerge::Keys(&["mountPath"]),
            "volumeDevices" => ListMerge::Keys(&["devicePath"]),
            "ports" if *container != "ephemeralContainers" => {
                ListMerge::Keys(&["containerPort", "protocol"])
            }
            _ => ListMerge::Replace,
        };
    }
    match (kind, parent.as_slice(), field.as_str()) {
        ("Service", ["spec"], "ports") => ListMerge::Keys(&["port", "protocol"]),
        ("ComponentStatus", [], "conditions") | (_, ["status"], "conditions") => {
            ListMerge::Keys(&["type"])
        }
        ("Node", ["status"], "addresses") => ListMerge::Keys(&["type"]),
        ("Node", ["spec"], "podCIDRs") => ListMerge::Primitive,
        ("Pod", ["status"], "podIPs") => ListMerge::Keys(&["ip"]),
        ("MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration", [], "webhooks")
        | ("ServiceAccount", [], "secrets")
        | ("CSINode", ["spec"], "drivers") => NAME,
        _ => ListMerge::Replace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: &str, path: &str) -> ListMerge {
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        list_merge(kind, &path)
    }

    #[test]
    fn merge_keys_follow_the_path_in_the_kind() {
        let c = "spec.template.spec.containers";
        assert_eq!(at("Deployment", c), NAME);
        assert_eq!(
            at("Deployment", &format!("{c}.ports")),
            ListMerge::Keys(&["containerPort", "protocol"])
        );
        assert_eq!(at("Pod", "spec.containers.env"), NAME);
        assert_eq!(
            at("CronJob", "spec.jobTemplate.spec.template.spec.volumes"),
            NAME
        );
        assert_eq!(
            at("Service", "spec.ports"),
            ListMerge::Keys(&["port", "protocol"])
        );
        assert_eq!(at("Namespace", "metadata.finalizers"), ListMerge::Primitive);
        // Lists the schema gives no merge key, or at other places, are replaced.
        assert_eq!(at("Namespace", "spec.finalizers"), ListMerge::Replace);
        assert_eq!(
            at("Deployment", "spec.template.spec.tolerations"),
            ListMerge::Replace
        );
        assert_eq!(
            at("Deployment", "spec.template.spec.schedulingGates"),
            ListMerge::Replace
        );
        assert_eq!(at("Deployment", "spec.containers"), ListMerge::Replace);
        assert_eq!(at("Endpoints", "subsets.ports"), ListMerge::Replace);
    }
}
