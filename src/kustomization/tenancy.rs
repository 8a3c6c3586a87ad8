//! Multi-tenancy rules of the Kustomization controller: which identity a reconcile acts as, and
//! which of its references the agent's cross-namespace rule (`runtime::references`) looks at.
//! Flux's lockdown flags mean the same here. Pure.

use crate::api::kustomization::KustomizationSpec;
use crate::runtime::references::{CrossNamespaceRefs, Reference};

/// The agent's multi-tenancy settings (`sluice agent --default-service-account`,
/// `--no-cross-namespace-refs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenancy {
    /// Impersonated when a Kustomization names no `serviceAccountName`; without it such a
    /// Kustomization acts as the agent itself.
    pub default_service_account: Option<String>,
    /// Whether `sourceRef` and `dependsOn` may leave the Kustomization's namespace
    /// (`postBuild.substituteFrom` never does: it has no namespace field).
    pub cross_namespace_refs: CrossNamespaceRefs,
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
        let source = &spec.source_ref;
        let source = Reference::new("spec.sourceRef", source.namespace.as_deref(), &source.name);
        let dependencies = spec.depends_on.iter().enumerate().map(|(i, dep)| {
            Reference::new(
                format!("spec.dependsOn[{i}]"),
                dep.namespace.as_deref(),
                &dep.name,
            )
        });
        self.cross_namespace_refs
            .check(namespace, std::iter::once(source).chain(dependencies))
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
            cross_namespace_refs: CrossNamespaceRefs::Refused,
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
