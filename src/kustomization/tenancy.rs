//! Multi-tenancy rules of the Kustomization controller: which identity a reconcile acts as, and
//! whether its references may leave its namespace. Flux's lockdown flags mean the same here.
//! Pure.

use crate::api::kustomization::KustomizationSpec;

/// The agent's multi-tenancy settings (`sluice agent --default-service-account`,
/// `--no-cross-namespace-refs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenancy {
    /// Impersonated when a Kustomization names no `serviceAccountName`; without it such a
    /// Kustomization acts as the agent itself.
    pub default_service_account: Option<String>,
    /// `sourceRef` and `dependsOn` must stay in the Kustomization's namespace
    /// (`postBuild.substituteFrom` always does: it has no namespace field).
    pub no_cross_namespace_refs: bool,
}

impl Tenancy {
    /// The ServiceAccount (in the Kustomization's namespace) a reconcile acts as, or `None` for
    /// the agent's own identity.
    pub fn service_account<'a>(&'a self, spec: &'a KustomizationSpec) -> Option<&'a str> {
        spec.service_account_name
            .as_deref()
            .or(self.default_service_account.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// `Err` naming every reference that leaves `namespace`, when that is not allowed.
    pub fn check_references(
        &self,
        spec: &KustomizationSpec,
        namespace: &str,
    ) -> Result<(), String> {
        if !self.no_cross_namespace_refs {
            return Ok(());
        }
        let mut crossing = Vec::new();
        if let Some(ns) = spec
            .source_ref
            .namespace
            .as_deref()
            .filter(|ns| *ns != namespace)
        {
            crossing.push(format!("spec.sourceRef {ns}/{}", spec.source_ref.name));
        }
        for (i, dep) in spec.depends_on.iter().enumerate() {
            if let Some(ns) = dep.namespace.as_deref().filter(|ns| *ns != namespace) {
                crossing.push(format!("spec.dependsOn[{i}] {ns}/{}", dep.name));
            }
        }
        if crossing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "cross-namespace references are not allowed on this agent (--no-cross-namespace-refs): {}",
                crossing.join(", ")
            ))
        }
    }
}

/// The user name Kubernetes gives ServiceAccount `account` of `namespace`, for impersonation.
pub fn service_account_user(namespace: &str, account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{account}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kustomization::{DependencyReference, SourceReference};

    fn spec(
        source_ns: Option<&str>,
        dep_ns: Option<&str>,
        account: Option<&str>,
    ) -> KustomizationSpec {
        KustomizationSpec {
            source_ref: SourceReference {
                kind: "GitRepository".into(),
                name: "repo".into(),
                namespace: source_ns.map(Into::into),
            },
            depends_on: vec![DependencyReference {
                name: "infra".into(),
                namespace: dep_ns.map(Into::into),
            }],
            service_account_name: account.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn the_named_account_wins_then_the_default_then_the_agent() {
        let open = Tenancy::default();
        let locked = Tenancy {
            default_service_account: Some("tenant".into()),
            ..Default::default()
        };
        assert_eq!(open.service_account(&spec(None, None, None)), None);
        assert_eq!(
            locked.service_account(&spec(None, None, None)),
            Some("tenant")
        );
        assert_eq!(
            locked.service_account(&spec(None, None, Some("deployer"))),
            Some("deployer")
        );
        assert_eq!(
            service_account_user("team-a", "deployer"),
            "system:serviceaccount:team-a:deployer"
        );
    }

    #[test]
    fn cross_namespace_references_are_refused_only_when_locked_down() {
        let locked = Tenancy {
            no_cross_namespace_refs: true,
            ..Default::default()
        };
        let crossing = spec(Some("team-b"), Some("team-c"), None);
        assert!(
            Tenancy::default()
                .check_references(&crossing, "team-a")
                .is_ok()
        );
        let err = locked.check_references(&crossing, "team-a").unwrap_err();
        assert!(
            err.contains("spec.sourceRef team-b/repo")
                && err.contains("spec.dependsOn[0] team-c/infra"),
            "{err}"
        );
        assert!(
            locked
                .check_references(&spec(Some("team-a"), None, None), "team-a")
                .is_ok(),
            "its own namespace, spelled out, is fine"
        );
    }
}
