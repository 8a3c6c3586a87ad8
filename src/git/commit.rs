//! Reading files of a commit and writing a commit that changes some of them, or that reverts
//! another, in a bare cache without a work tree: blobs go in and out byte for byte (no
//! line-ending conversion), file modes are kept, and the commit is signed by a caller-supplied
//! signer. Disk I/O under `spawn_blocking`.

use std::path::Path;

use git2::{FileMode, ObjectType, Oid, Repository, Signature, TreeWalkMode, TreeWalkResult};

use super::{GitError, open_cache};

/// A regular file of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path from the repository root, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
    /// Whether the executable bit is set.
    pub executable: bool,
}

/// Signs a commit's bytes, returning an armoured signature.
pub type Signer = Box<dyn FnOnce(&[u8]) -> Result<String, String> + Send>;

/// A commit to write on top of `parent`.
pub struct NewCommit {
    pub parent: String,
    /// Files whose content changes (paths that exist in the parent).
    pub files: Vec<TreeFile>,
    pub author_name: String,
    pub author_email: String,
    pub message: String,
    pub signer: Option<Signer>,
}

/// The regular files under `dir` (a `/`-separated path, empty for the root) of `commit` whose
/// names end in one of `suffixes`. Symlinks and submodules are left out.
pub async fn read_files(
    cache: &Path,
    commit: &str,
    dir: &str,
    suffixes: &'static [&'static str],
) -> Result<Vec<TreeFile>, GitError> {
    let (cache, commit, dir) = (cache.to_owned(), commit.to_owned(), dir.to_owned());
    blocking(move || {
        let repo = open_cache(&cache)?;
        let tree = commit_of(&repo, &cache, &commit)?
            .tree()
            .map_err(|e| read_error(&commit, e))?;
        let root = if dir.is_empty() {
            tree
        } else {
            let entry = tree
                .get_path(Path::new(&dir))
                .map_err(|_| GitError::NotFound {
                    url: cache.display().to_string(),
                    what: format!("directory {dir:?} in commit {commit}"),
                })?;
            repo.find_tree(entry.id()).map_err(|_| GitError::NotFound {
                url: cache.display().to_string(),
                what: format!("{dir:?} as a directory in commit {commit}"),
            })?
        };
        let mut found: Vec<(String, Oid, bool)> = Vec::new();
        root.walk(TreeWalkMode::PreOrder, |parent, entry| {
            let (Ok(name), Some(ObjectType::Blob)) = (entry.name(), entry.kind()) else {
                return TreeWalkResult::Ok;
            };
            let mode = entry.filemode();
            let regular = mode == i32::from(FileMode::Blob);
            let executable = mode == i32::from(FileMode::BlobExecutable);
            if (regular || executable) && suffixes.iter().any(|s| name.ends_with(s)) {
                let path = [dir.as_str(), parent, name]
                    .iter()
                    .map(|p| p.trim_matches('/'))
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join("/");
                found.push((path, entry.id(), executable));
            }
            TreeWalkResult::Ok
        })
        .map_err(|e| read_error(&commit, e))?;
        found
            .into_iter()
            .map(|(path, oid, executable)| {
                let blob = repo
                    .find_blob(oid)
                    .map_err(|e| read_error(&oid.to_string(), e))?;
                Ok(TreeFile {
                    path,
                    bytes: blob.content().to_vec(),
                    executable,
                })
            })
            .collect()
    })
    .await
}

/// Writes `new` into the cache and returns the commit's id. The author is the committer too.
pub async fn write_commit(cache: &Path, new: NewCommit) -> Result<String, GitError> {
    let cache = cache.to_owned();
    blocking(move || {
        let repo = open_cache(&cache)?;
        let fail = |e: git2::Error| GitError::Commit {
            path: cache.clone(),
            source: e,
        };
        let parent = commit_of(&repo, &cache, &new.parent)?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        for file in &new.files {
            let blob = repo.blob(&file.bytes).map_err(fail)?;
            let mode = if file.executable {
                FileMode::BlobExecutable
            } else {
                FileMode::Blob
            };
            update.upsert(&file.path, blob, mode);
        }
        let tree_id = update
            .create_updated(&repo, &parent.tree().map_err(fail)?)
            .map_err(fail)?;
        let tree = repo.find_tree(tree_id).map_err(fail)?;
        let who = Signature::now(&new.author_name, &new.author_email).map_err(fail)?;
        let oid = match new.signer {
            None => repo
                .commit(None, &who, &who, &new.message, &tree, &[&parent])
                .map_err(fail)?,
            Some(sign) => {
                let buffer = repo
                    .commit_create_buffer(&who, &who, &new.message, &tree, &[&parent])
                    .map_err(fail)?;
                let signature = sign(&buffer).map_err(|reason| GitError::Sign { reason })?;
                let content = std::str::from_utf8(&buffer)
                    .map_err(|_| fail(git2::Error::from_str("the commit is not UTF-8")))?;
                repo.commit_signed(content, &signature, None)
                    .map_err(fail)?
            }
        };
        Ok(oid.to_string())
    })
    .await
}

/// How a revert went: the commit written, or the paths that conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    Committed(String),
    Conflicts(Vec<String>),
}

/// Writes a commit on top of `onto` that undoes what `commit` changed (against its first
/// parent), with `message`, unless the change does not revert cleanly there.
pub async fn write_revert(
    cache: &Path,
    commit: &str,
    onto: &str,
    author: (&str, &str),
    message: &str,
) -> Result<Revert, GitError> {
    let (cache, commit, onto) = (cache.to_owned(), commit.to_owned(), onto.to_owned());
    let (name, email, message) = (author.0.to_owned(), author.1.to_owned(), message.to_owned());
    blocking(move || {
        let repo = open_cache(&cache)?;
        let fail = |e: git2::Error| GitError::Commit {
            path: cache.clone(),
            source: e,
        };
        let reverted = commit_of(&repo, &cache, &commit)?;
        let base = commit_of(&repo, &cache, &onto)?;
        // A merge is reverted against its first parent, as `git revert -m 1` does.
        let mainline = u32::from(reverted.parent_count() > 1);
        let mut index = repo
            .revert_commit(&reverted, &base, mainline, None)
            .map_err(fail)?;
        if index.has_conflicts() {
            let mut paths: Vec<String> = index
                .conflicts()
                .map_err(fail)?
                .filter_map(Result::ok)
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
                .collect();
            paths.dedup();
            return Ok(Revert::Conflicts(paths));
        }
        let tree = repo
            .find_tree(index.write_tree_to(&repo).map_err(fail)?)
            .map_err(fail)?;
        let who = Signature::now(&name, &email).map_err(fail)?;
        let oid = repo
            .commit(None, &who, &who, &message, &tree, &[&base])
            .map_err(fail)?;
        Ok(Revert::Committed(oid.to_string()))
    })
    .await
}

/// Whether `ancestor` is `descendant` or one of its ancestors, in the cache.
pub async fn is_ancestor(cache: &Path, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
    let (cache, a, d) = (cache.to_owned(), ancestor.to_owned(), descendant.to_owned());
    blocking(move || {
        let repo = open_cache(&cache)?;
        let (a_oid, d_oid) = (oid(&a)?, oid(&d)?);
        Ok(a_oid == d_oid
            || repo
                .graph_descendant_of(d_oid, a_oid)
                .map_err(|e| read_error(&d, e))?)
    })
    .await
}

pub(super) fn oid(sha: &str) -> Result<Oid, GitError> {
    Oid::from_str(sha).map_err(|e| read_error(sha, e))
}

pub(super) fn commit_of<'r>(
    repo: &'r Repository,
    cache: &Path,
    sha: &str,
) -> Result<git2::Commit<'r>, GitError> {
    repo.find_commit(oid(sha)?).map_err(|_| GitError::NotFound {
        url: cache.display().to_string(),
        what: format!("commit {sha}"),
    })
}

fn read_error(oid: &str, source: git2::Error) -> GitError {
    GitError::ReadObject {
        oid: oid.to_owned(),
        source,
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(GitError::Join)?
}
