//! Whether the references an object makes may leave its namespace: Flux's
//! `--no-cross-namespace-refs`, decided here once for every controller (a Kustomization's
//! source and dependencies, an Alert's event sources, a Receiver's resources, a Canary's
//! MetricTemplates and alert Providers). Pure.

/// One reference an object makes to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The field that holds it, for people: `spec.sourceRef`, `spec.eventSources[1]`.
    pub field: String,
    /// `None`: the referring object's own namespace; `*`: every namespace.
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl<'a> Reference<'a> {
    pub fn new(field: impl Into<String>, namespace: Option<&'a str>, name: &'a str) -> Self {
        Reference {
            field: field.into(),
            namespace,
            name,
        }
    }
}

/// Whether references may leave the namespace of the object that makes them (the agent's
/// `--no-cross-namespace-refs` refuses them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CrossNamespaceRefs {
    #[default]
    Allowed,
    Refused,
}

impl CrossNamespaceRefs {
    /// `Refused` when the flag is set.
    pub fn refused_if(no_cross_namespace_refs: bool) -> Self {
        if no_cross_namespace_refs {
            CrossNamespaceRefs::Refused
        } else {
            CrossNamespaceRefs::Allowed
        }
    }

    /// `Err` naming every reference of an object in `namespace` that leaves it (another
    /// namespace, or `*`), when that is refused. The object's condition then says
    /// `AccessDenied`, and nothing it references is read.
    pub fn check<'a>(
        self,
        namespace: &str,
        references: impl IntoIterator<Item = Reference<'a>>,
    ) -> Result<(), String> {
        if self == CrossNamespaceRefs::Allowed {
            return Ok(());
        }
        let crossing: Vec<String> = references
            .into_iter()
            .filter_map(|r| {
                let ns = r.namespace.filter(|ns| *ns != namespace)?;
                Some(format!("{} {ns}/{}", r.field, r.name))
            })
            .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> Vec<Reference<'static>> {
        vec![
            Reference::new("spec.sourceRef", Some("team-b"), "repo"),
            Reference::new("spec.dependsOn[0]", None, "infra"),
            Reference::new("spec.dependsOn[1]", Some("team-a"), "db"),
            Reference::new("spec.eventSources[0]", Some("*"), "web"),
        ]
    }

    #[test]
    fn only_a_locked_agent_refuses_and_it_names_every_crossing_reference() {
        assert_eq!(CrossNamespaceRefs::Allowed.check("team-a", refs()), Ok(()));
        let err = CrossNamespaceRefs::Refused
            .check("team-a", refs())
            .unwrap_err();
        assert_eq!(
            err,
            "cross-namespace references are not allowed on this agent (--no-cross-namespace-refs): \
             spec.sourceRef team-b/repo, spec.eventSources[0] */web"
        );
        assert_eq!(
            CrossNamespaceRefs::Refused.check("team-a", refs().into_iter().skip(1).take(2)),
            Ok(()),
            "no namespace, or its own spelled out, stays"
        );
        assert_eq!(
            CrossNamespaceRefs::refused_if(true),
            CrossNamespaceRefs::Refused
        );
        assert_eq!(
            CrossNamespaceRefs::refused_if(false),
            CrossNamespaceRefs::Allowed
        );
    }
}
