//! Updating a remote: fetching whole branches (or other references, such as `refs/notes/*`)
//! into a bare cache and pushing commits to them, never forced. A push names the tip it expects
//! each remote reference to have; when the remote moved meanwhile (someone else pushed), the push
//! is refused, not overwritten. Network and disk I/O; libgit2 runs under `spawn_blocking`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use git2::{Direction, FetchOptions, Oid, PushOptions};

use super::callbacks::CallbackFailure;
use super::{GitError, GitRemote, open_cache};

/// One branch to update: the remote branch, the local commit to put there and the tip the remote
/// must still have (`None`: the branch must not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchUpdate {
    pub branch: String,
    pub commit: String,
    pub expected: Option<String>,
}

/// One reference to update, by its full name (`refs/notes/sluice`): as `BranchUpdate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub reference: String,
    pub commit: String,
    pub expected: Option<String>,
}

impl From<&BranchUpdate> for RefUpdate {
    fn from(u: &BranchUpdate) -> RefUpdate {
        RefUpdate {
            reference: format!("refs/heads/{}", u.branch),
            commit: u.commit.clone(),
            expected: u.expected.clone(),
        }
    }
}

/// How a push ended when nothing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Pushed,
    /// The remote refused or moved; nothing was overwritten. `branch` is the branch's name, or
    /// the reference's full name when it is not a branch.
    Rejected {
        branch: String,
        reason: String,
    },
}

impl GitRemote {
    /// Fetches `branches` with their whole history into the bare cache at `cache`, as local
    /// branches of the same names. Returns each branch's tip, or `None` when the remote has no
    /// such branch.
    pub async fn fetch_branches(
        &self,
        cache: &Path,
        branches: &[String],
    ) -> Result<BTreeMap<String, Option<String>>, GitError> {
        let references: Vec<String> = branches.iter().map(|b| format!("refs/heads/{b}")).collect();
        let tips = self.fetch_references(cache, &references).await?;
        Ok(branches
            .iter()
            .zip(references)
            .map(|(branch, reference)| (branch.clone(), tips.get(&reference).cloned().flatten()))
            .collect())
    }

    /// Fetches `references` (full names) with their whole history into the bare cache at
    /// `cache`, as local references of the same names; one the remote does not have is removed
    /// from the cache too, so the cache says what the remote has. Returns each reference's
    /// commit, or `None` when the remote has no such reference.
    pub async fn fetch_references(
        &self,
        cache: &Path,
        references: &[String],
    ) -> Result<BTreeMap<String, Option<String>>, GitError> {
        let this = self.clone();
        let cache = cache.to_owned();
        let references = references.to_vec();
        self.run(move |cancel| {
            let repo = open_cache(&cache)?;
            let what = references.join(", ");
            let mut remote = repo
                .remote_anonymous(this.url.as_libgit2())
                .map_err(|e| this.fetch_error(&what, e))?;
            let failure = CallbackFailure::default();
            let advertised: Vec<String> = {
                let callbacks = this.callbacks(cancel.clone(), failure.clone())?;
                let conn = remote
                    .connect_auth(Direction::Fetch, Some(callbacks), None)
                    .map_err(|e| failure.take().unwrap_or_else(|| this.fetch_error(&what, e)))?;
                conn.list()
                    .map_err(|e| this.fetch_error(&what, e))?
                    .iter()
                    .map(|h| h.name().to_owned())
                    .collect()
            };
            let present: Vec<&String> = references
                .iter()
                .filter(|r| advertised.contains(r))
                .collect();
            if !present.is_empty() {
                let refspecs: Vec<String> = present.iter().map(|r| format!("+{r}:{r}")).collect();
                let mut opts = FetchOptions::new();
                opts.remote_callbacks(this.callbacks(cancel.clone(), failure.clone())?);
                opts.download_tags(git2::AutotagOption::None);
                remote
                    .fetch(&refspecs, Some(&mut opts), None)
                    .map_err(|e| failure.take().unwrap_or_else(|| this.fetch_error(&what, e)))?;
            }
            let mut tips = BTreeMap::new();
            for reference in &references {
                let tip = if present.contains(&reference) {
                    let found = repo
                        .find_reference(reference)
                        .and_then(|r| r.peel_to_commit())
                        .map_err(|_| GitError::NotFound {
                            url: this.url.to_string(),
                            what: reference.clone(),
                        })?;
                    Some(found.id().to_string())
                } else {
                    if let Ok(mut stale) = repo.find_reference(reference) {
                        stale.delete().map_err(|e| this.fetch_error(&what, e))?;
                    }
                    None
                };
                tips.insert(reference.clone(), tip);
            }
            Ok(tips)
        })
        .await
    }

    /// Pushes each update's commit from the cache to its branch, only if every remote branch still
    /// has its expected tip and the update is a fast-forward. `options` are Git push options.
    pub async fn push(
        &self,
        cache: &Path,
        updates: &[BranchUpdate],
        options: &[String],
    ) -> Result<PushOutcome, GitError> {
        let updates: Vec<RefUpdate> = updates.iter().map(RefUpdate::from).collect();
        self.push_references(cache, &updates, options).await
    }

    /// `push`, for references given by their full names.
    pub async fn push_references(
        &self,
        cache: &Path,
        updates: &[RefUpdate],
        options: &[String],
    ) -> Result<PushOutcome, GitError> {
        let this = self.clone();
        let cache = cache.to_owned();
        let updates = updates.to_vec();
        let options = options.to_vec();
        self.run(move |cancel| this.push_blocking(&cache, &updates, &options, &cancel))
            .await
    }

    fn push_blocking(
        &self,
        cache: &Path,
        updates: &[RefUpdate],
        options: &[String],
        cancel: &Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<PushOutcome, GitError> {
        let repo = open_cache(cache)?;
        let what = "a push".to_owned();
        let push_error = |e: git2::Error| GitError::Push {
            url: self.url.to_string(),
            source: e,
        };
        // Local refs naming what to push (a refspec's source must be a reference).
        let mut refspecs = Vec::new();
        for u in updates {
            let oid = Oid::from_str(&u.commit).map_err(push_error)?;
            let name = u.reference.strip_prefix("refs/").unwrap_or(&u.reference);
            let local = format!("refs/sluice/push/{name}");
            repo.reference(&local, oid, true, "sluice: to push")
                .map_err(push_error)?;
            // Never `+`: libgit2 refuses a non-fast-forward itself, too.
            refspecs.push(format!("{local}:{}", u.reference));
        }
        let mut remote = repo
            .remote_anonymous(self.url.as_libgit2())
            .map_err(|e| self.fetch_error(&what, e))?;
        let failure = CallbackFailure::default();
        let callbacks = self.callbacks(cancel.clone(), failure.clone())?;
        let mut conn = remote
            .connect_auth(Direction::Push, Some(callbacks), None)
            .map_err(|e| failure.take().unwrap_or_else(|| push_error(e)))?;
        let advertised: BTreeMap<String, String> = conn
            .list()
            .map_err(push_error)?
            .iter()
            .map(|h| (h.name().to_owned(), h.oid().to_string()))
            .collect();
        for u in updates {
            let now = advertised.get(&u.reference);
            if now != u.expected.as_ref() {
                return Ok(PushOutcome::Rejected {
                    branch: short_name(&u.reference),
                    reason: format!(
                        "the remote branch moved to {} since it was fetched ({})",
                        now.map_or("nothing", String::as_str),
                        u.expected.as_deref().unwrap_or("absent")
                    ),
                });
            }
        }
        // The push reuses this connection, so the remote's tips it compares against are the
        // ones just checked; a push that lands in between makes the server refuse ours.
        let rejected: Arc<Mutex<Option<(String, String)>>> = Arc::default();
        let mut callbacks = self.callbacks(cancel.clone(), failure.clone())?;
        {
            let rejected = rejected.clone();
            callbacks.push_update_reference(move |refname, status| {
                if let Some(status) = status
                    && let Ok(mut slot) = rejected.lock()
                {
                    slot.get_or_insert((refname.to_owned(), status.to_owned()));
                }
                Ok(())
            });
        }
        let mut opts = PushOptions::new();
        opts.remote_callbacks(callbacks);
        let option_refs: Vec<&str> = options.iter().map(String::as_str).collect();
        if !option_refs.is_empty() {
            opts.remote_push_options(&option_refs);
        }
        let pushed = conn.remote().push(&refspecs, Some(&mut opts));
        drop(conn);
        if let Err(e) = pushed {
            if let Some(f) = failure.take() {
                return Err(f);
            }
            if e.code() == git2::ErrorCode::NotFastForward {
                return Ok(PushOutcome::Rejected {
                    branch: updates
                        .first()
                        .map(|u| short_name(&u.reference))
                        .unwrap_or_default(),
                    reason: e.message().to_owned(),
                });
            }
            return Err(self.classify(e).unwrap_or_else(push_error));
        }
        if let Some((refname, status)) = rejected.lock().ok().and_then(|mut s| s.take()) {
            return Ok(PushOutcome::Rejected {
                branch: short_name(&refname),
                reason: status,
            });
        }
        Ok(PushOutcome::Pushed)
    }
}

/// A branch's name without `refs/heads/`; other references by their full name.
fn short_name(reference: &str) -> String {
    reference
        .strip_prefix("refs/heads/")
        .unwrap_or(reference)
        .to_owned()
}
