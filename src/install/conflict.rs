//! Whether installing an agent would conflict with agents already in the cluster: two agents
//! that reconcile the same objects would fight over them. Pure.

use super::Mode;

/// An agent found in the cluster: its namespace and how it was installed (`None`: a Deployment
/// named like the agent that `sluice install` did not make).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub namespace: String,
    pub mode: Option<Mode>,
}

/// `Err` says which agent conflicts and why; `Ok` when the install may go ahead (an agent of the
/// same mode in the same namespace is upgraded in place).
pub fn check(mode: Mode, namespace: &str, existing: &[Existing]) -> Result<(), String> {
    for agent in existing {
        let here = agent.namespace == namespace;
        let conflict = match (agent.mode, here) {
            (None, true) => Some(format!(
                "Deployment {namespace}/{} exists and was not installed by sluice install",
                super::DEPLOYMENT
            )),
            (None, false) => None,
            (Some(theirs), true) if theirs != mode => Some(format!(
                "namespace {namespace} already runs a sluice agent in {} mode; uninstall it or install in {} mode",
                theirs.as_str(),
                theirs.as_str()
            )),
            (Some(_), true) => None,
            (Some(Mode::Cluster), false) => Some(format!(
                "a cluster-wide sluice agent runs in namespace {}: it already reconciles every namespace",
                agent.namespace
            )),
            (Some(Mode::Namespace), false) if mode == Mode::Cluster => Some(format!(
                "a sluice agent runs in namespace {} (namespace mode): a cluster-wide agent would reconcile its objects too",
                agent.namespace
            )),
            (Some(Mode::Namespace), false) => None,
        };
        if let Some(why) = conflict {
            return Err(why);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(namespace: &str, mode: Option<Mode>) -> Existing {
        Existing {
            namespace: namespace.into(),
            mode,
        }
    }

    #[test]
    fn same_mode_same_namespace_is_an_upgrade() {
        assert!(check(Mode::Cluster, "ops", &[agent("ops", Some(Mode::Cluster))]).is_ok());
        assert!(check(Mode::Namespace, "a", &[agent("a", Some(Mode::Namespace))]).is_ok());
        assert!(check(Mode::Namespace, "a", &[agent("b", Some(Mode::Namespace))]).is_ok());
    }

    #[test]
    fn agents_that_would_share_objects_conflict() {
        let err = check(Mode::Namespace, "a", &[agent("a", Some(Mode::Cluster))]).unwrap_err();
        assert!(err.contains("cluster mode"), "{err}");
        let err = check(Mode::Namespace, "a", &[agent("ops", Some(Mode::Cluster))]).unwrap_err();
        assert!(err.contains("ops"), "{err}");
        let err = check(Mode::Cluster, "ops", &[agent("a", Some(Mode::Namespace))]).unwrap_err();
        assert!(err.contains("namespace a"), "{err}");
        let err = check(Mode::Cluster, "ops", &[agent("ops", None)]).unwrap_err();
        assert!(err.contains("not installed by sluice install"), "{err}");
        assert!(check(Mode::Cluster, "ops", &[agent("x", None)]).is_ok());
    }
}
