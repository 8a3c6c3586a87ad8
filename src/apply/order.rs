//! The order objects are applied in: definitions and namespaces first, then classes, then the
//! rest. Pure.

/// Apply stages, in order. Objects of a stage are applied concurrently; a stage starts when the
/// one before it is applied (and its CustomResourceDefinitions are Established).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// CustomResourceDefinitions, Namespaces and cluster-wide RBAC: what later objects need to exist.
    Definitions,
    /// `*Class` kinds (StorageClass, IngressClass, PriorityClass, ...), which workloads refer to.
    Classes,
    /// Everything else.
    Resources,
}

pub fn stage_of(group: &str, kind: &str) -> Stage {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") | ("", "Namespace") => {
            Stage::Definitions
        }
        ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding") => Stage::Definitions,
        (_, kind) if kind.ends_with("Class") => Stage::Classes,
        _ => Stage::Resources,
    }
}

/// Where a kind goes in a printed or applied list: by stage, then a fixed rank for common kinds
/// that others depend on (ServiceAccounts before the workloads using them), then by name.
pub fn rank_of(group: &str, kind: &str) -> (Stage, u8) {
    let within = match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ClusterRole" => 2,
        "ClusterRoleBinding" => 3,
        "ServiceAccount" => 10,
        "Role" => 11,
        "RoleBinding" => 12,
        "Secret" => 13,
        "ConfigMap" => 14,
        "PersistentVolumeClaim" => 15,
        "Service" => 16,
        _ => 50,
    };
    (stage_of(group, kind), within)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_come_before_classes_before_the_rest() {
        assert_eq!(
            stage_of("apiextensions.k8s.io", "CustomResourceDefinition"),
            Stage::Definitions
        );
        assert_eq!(stage_of("", "Namespace"), Stage::Definitions);
        assert_eq!(
            stage_of("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            Stage::Definitions
        );
        assert_eq!(stage_of("storage.k8s.io", "StorageClass"), Stage::Classes);
        assert_eq!(
            stage_of("networking.k8s.io", "IngressClass"),
            Stage::Classes
        );
        assert_eq!(stage_of("apps", "Deployment"), Stage::Resources);
        // Namespaced RBAC needs its namespace first; it is not a definition.
        assert_eq!(
            stage_of("rbac.authorization.k8s.io", "Role"),
            Stage::Resources
        );
        assert!(Stage::Definitions < Stage::Classes && Stage::Classes < Stage::Resources);
    }

    #[test]
    fn service_accounts_rank_before_workloads() {
        assert!(rank_of("", "ServiceAccount") < rank_of("apps", "Deployment"));
        assert!(
            rank_of("", "Namespace") < rank_of("apiextensions.k8s.io", "CustomResourceDefinition")
        );
    }
}
