//! The tags of each ImageRepository's last scan, shared by the ImageRepository controller (which
//! writes them) and the ImagePolicy controller (which reads them): kept in memory and in a file
//! under the storage directory, so a restarted agent chooses without rescanning. Disk I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// One scan's tags and their revision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tags {
    /// `sha256:<hex>` of the sorted tags, one per line.
    pub revision: String,
    /// Sorted, without duplicates.
    pub tags: Vec<String>,
}

impl Tags {
    pub fn new(mut tags: Vec<String>) -> Tags {
        tags.sort();
        tags.dedup();
        let mut hasher = Sha256::new();
        for tag in &tags {
            hasher.update(tag.as_bytes());
            hasher.update(b"\n");
        }
        Tags {
            revision: format!("sha256:{}", hex::encode(hasher.finalize())),
            tags,
        }
    }
}

/// Tags by ImageRepository (namespace, name).
pub struct TagStore {
    dir: PathBuf,
    memory: Mutex<HashMap<(String, String), Arc<Tags>>>,
}

impl TagStore {
    /// Keeps files under `<storage>/imagerepository/<namespace>/<name>/tags.json`.
    pub fn new(storage: &Path) -> TagStore {
        TagStore {
            dir: storage.join("imagerepository"),
            memory: Mutex::default(),
        }
    }

    fn file(&self, ns: &str, name: &str) -> PathBuf {
        self.dir.join(ns).join(name).join("tags.json")
    }

    /// Stores a scan's tags.
    pub async fn put(&self, ns: &str, name: &str, tags: Tags) -> std::io::Result<()> {
        let file = self.file(ns, name);
        let json = serde_json::to_vec(&tags).map_err(std::io::Error::other)?;
        if let Some(dir) = file.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = file.with_extension("json.tmp");
        tokio::fs::write(&tmp, json).await?;
        tokio::fs::rename(&tmp, &file).await?;
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((ns.to_owned(), name.to_owned()), Arc::new(tags));
        Ok(())
    }

    /// The tags last stored for a repository, from memory or its file.
    pub async fn get(&self, ns: &str, name: &str) -> Option<Arc<Tags>> {
        let key = (ns.to_owned(), name.to_owned());
        if let Some(tags) = self
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Some(tags.clone());
        }
        let bytes = tokio::fs::read(self.file(ns, name)).await.ok()?;
        let tags: Arc<Tags> = Arc::new(serde_json::from_slice(&bytes).ok()?);
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, tags.clone());
        Some(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_ignores_order_and_duplicates() {
        let a = Tags::new(vec!["b".into(), "a".into(), "a".into()]);
        let b = Tags::new(vec!["a".into(), "b".into()]);
        assert_eq!(a, b);
        assert_ne!(a.revision, Tags::new(vec!["a".into()]).revision);
    }

    #[tokio::test]
    async fn tags_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = TagStore::new(dir.path());
        store
            .put("ns", "app", Tags::new(vec!["1.0.0".into()]))
            .await
            .unwrap();
        let restarted = TagStore::new(dir.path());
        assert_eq!(restarted.get("ns", "app").await.unwrap().tags, ["1.0.0"]);
        assert!(restarted.get("ns", "other").await.is_none());
    }
}
