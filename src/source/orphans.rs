//! Storage of GitRepositories that no longer exist: which directories are orphans (pure) and
//! removing them (`sweep`: lists objects from the API server and deletes directories).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::api::git_repository::GitRepository;

#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    #[error("listing GitRepositories failed")]
    List(#[source] kube::Error),
    #[error("reading or removing {path} failed")]
    Storage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `(namespace, name)` pairs that have storage but no object. With `namespace` set, only that
/// namespace's storage is considered (an agent watching one namespace leaves others alone).
pub fn orphans(
    existing: &BTreeSet<(String, String)>,
    on_disk: &BTreeSet<(String, String)>,
    namespace: Option<&str>,
) -> Vec<(String, String)> {
    on_disk
        .iter()
        .filter(|(ns, _)| namespace.is_none_or(|only| only == ns))
        .filter(|key| !existing.contains(*key))
        .cloned()
        .collect()
}

/// Removes the storage of GitRepositories that were deleted; returns what it removed.
pub async fn sweep(
    client: &Client,
    storage: &Path,
    namespace: Option<&str>,
) -> Result<Vec<(String, String)>, OrphanError> {
    let api: Api<GitRepository> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let existing: BTreeSet<(String, String)> = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(OrphanError::List)?
        .items
        .into_iter()
        .map(|o| (o.namespace().unwrap_or_default(), o.name_any()))
        .collect();
    let root = storage.join("gitrepository");
    let on_disk = tokio::task::spawn_blocking({
        let root = root.clone();
        move || list_storage(&root)
    })
    .await
    .map_err(|e| OrphanError::Storage {
        path: root.clone(),
        source: std::io::Error::other(e),
    })??;
    let removed = orphans(&existing, &on_disk, namespace);
    for (ns, name) in &removed {
        let dir = root.join(ns).join(name);
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(|source| OrphanError::Storage {
                path: dir.clone(),
                source,
            })?;
        tracing::info!(namespace = %ns, name = %name, "removed storage of a deleted GitRepository");
    }
    Ok(removed)
}

fn list_storage(root: &Path) -> Result<BTreeSet<(String, String)>, OrphanError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| OrphanError::Storage { path, source }
    };
    let mut found = BTreeSet::new();
    if !root.exists() {
        return Ok(found);
    }
    for ns in std::fs::read_dir(root).map_err(err(root))? {
        let ns = ns.map_err(err(root))?;
        if !ns.file_type().map_err(err(root))?.is_dir() {
            continue;
        }
        for obj in std::fs::read_dir(ns.path()).map_err(err(&ns.path()))? {
            let obj = obj.map_err(err(&ns.path()))?;
            found.insert((
                ns.file_name().to_string_lossy().into_owned(),
                obj.file_name().to_string_lossy().into_owned(),
            ));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn only_storage_without_an_object_is_orphaned() {
        let existing = set(&[("a", "app"), ("b", "web")]);
        let disk = set(&[("a", "app"), ("a", "old"), ("b", "web"), ("c", "gone")]);
        assert_eq!(
            orphans(&existing, &disk, None),
            vec![
                ("a".to_string(), "old".to_string()),
                ("c".to_string(), "gone".to_string())
            ]
        );
        assert_eq!(
            orphans(&existing, &disk, Some("a")),
            vec![("a".to_string(), "old".to_string())]
        );
    }
}
