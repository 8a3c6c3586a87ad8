//! `dependsOn`: whether a Kustomization's dependencies are ready, and whether they form a cycle.
//! Pure.

use std::collections::{BTreeMap, BTreeSet};

/// A Kustomization, by namespace and name.
pub type Key = (String, String);

/// What the controller knows about one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyState {
    pub ready: bool,
    pub last_applied_revision: Option<String>,
    /// The revision its source currently offers.
    pub source_revision: Option<String>,
}

/// `Err(message)` naming the first dependency that is missing or not ready: it must be Ready and
/// have applied its source's current revision, as in Flux.
pub fn check(dependencies: &[Key], states: &BTreeMap<Key, DependencyState>) -> Result<(), String> {
    for key in dependencies {
        let name = format!("{}/{}", key.0, key.1);
        let Some(state) = states.get(key) else {
            return Err(format!("dependency {name} not found"));
        };
        if !state.ready {
            return Err(format!("dependency {name} is not ready"));
        }
        if state.source_revision.is_some() && state.last_applied_revision != state.source_revision {
            return Err(format!(
                "dependency {name} has not applied its source's revision yet"
            ));
        }
    }
    Ok(())
}

/// A cycle through `start` in the dependency graph, as the list of keys along it.
pub fn cycle_through(start: &Key, edges: &BTreeMap<Key, Vec<Key>>) -> Option<Vec<Key>> {
    fn walk(
        node: &Key,
        start: &Key,
        edges: &BTreeMap<Key, Vec<Key>>,
        path: &mut Vec<Key>,
        seen: &mut BTreeSet<Key>,
    ) -> bool {
        for next in edges.get(node).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, edges, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.clone()];
    let mut seen = BTreeSet::from([start.clone()]);
    walk(start, start, edges, &mut path, &mut seen).then(|| {
        path.push(start.clone());
        path
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("ns".into(), name.into())
    }

    #[test]
    fn dependencies_must_be_ready_at_their_sources_revision() {
        let mut states = BTreeMap::new();
        states.insert(
            key("infra"),
            DependencyState {
                ready: true,
                last_applied_revision: Some("r2".into()),
                source_revision: Some("r2".into()),
            },
        );
        assert!(check(&[key("infra")], &states).is_ok());
        assert!(
            check(&[key("missing")], &states)
                .unwrap_err()
                .contains("not found")
        );
        states.insert(
            key("infra"),
            DependencyState {
                ready: true,
                last_applied_revision: Some("r1".into()),
                source_revision: Some("r2".into()),
            },
        );
        assert!(
            check(&[key("infra")], &states)
                .unwrap_err()
                .contains("revision")
        );
        states.insert(
            key("infra"),
            DependencyState {
                ready: false,
                last_applied_revision: None,
                source_revision: None,
            },
        );
        assert!(
            check(&[key("infra")], &states)
                .unwrap_err()
                .contains("not ready")
        );
    }

    #[test]
    fn cycles_are_found_and_named() {
        let edges = BTreeMap::from([
            (key("a"), vec![key("b")]),
            (key("b"), vec![key("c")]),
            (key("c"), vec![key("a")]),
            (key("d"), vec![key("a")]),
        ]);
        assert_eq!(
            cycle_through(&key("a"), &edges),
            Some(vec![key("a"), key("b"), key("c"), key("a")])
        );
        assert_eq!(
            cycle_through(&key("d"), &edges),
            None,
            "d depends on a cycle but is not in it"
        );
        let self_loop = BTreeMap::from([(key("x"), vec![key("x")])]);
        assert_eq!(
            cycle_through(&key("x"), &self_loop),
            Some(vec![key("x"), key("x")])
        );
    }
}
