//! The Git transport every part of sluice shares: remote URLs, credentials, known_hosts, and
//! libgit2 calls to list refs, fetch, commit and push (`commit`, `push`). Does network and disk
//! I/O; every libgit2 call in `git/` runs under `spawn_blocking`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;

use git2::{Direction, FetchOptions, Oid, Repository};

use self::known_hosts::{HostKeyCheck, KnownHostsError};
use self::url::RemoteUrl;
use crate::source::revision::{RemoteRef, Resolved, Revision, Selection};

mod callbacks;
pub mod commit;
pub mod credentials;
pub mod known_hosts;
pub mod notes;
mod objects;
mod push;
pub mod url;

use callbacks::CallbackFailure;
pub use objects::{
    SignedObjects, SignedPayload, TagHeaders, TagObject, list_local_refs, read_signed_objects,
};
pub use push::{BranchUpdate, PushOutcome, RefUpdate};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("authentication to {url} failed: {message}")]
    Authenticate { url: String, message: String },
    #[error("host key of {host} is not in known_hosts ({check:?}); refusing to connect")]
    HostKey { host: String, check: HostKeyCheck },
    #[error("TLS certificate of {host} is not trusted by the given CA: {reason}")]
    Certificate { host: String, reason: String },
    #[error("the CA certificate (ca.crt) is not valid PEM")]
    ParseCa(#[source] openssl::error::ErrorStack),
    #[error(transparent)]
    KnownHosts(#[from] KnownHostsError),
    #[error("listing references of {url} failed")]
    ListRefs {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("fetching {what} from {url} failed")]
    Fetch {
        url: String,
        what: String,
        #[source]
        source: git2::Error,
    },
    #[error("{what} was not found in what {url} sent")]
    NotFound { url: String, what: String },
    #[error("commit {commit} is not on branch {branch}")]
    CommitNotOnBranch { commit: String, branch: String },
    #[error(
        "history of {branch} was rewritten: {new} does not descend from the current revision {old}; the current artifact is kept until the GitRepository spec changes"
    )]
    HistoryRewritten {
        branch: String,
        old: String,
        new: String,
    },
    #[error("talking to {url} took longer than the timeout of {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("the Git object cache at {path} cannot be opened")]
    Cache {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("reading object {oid} from the cache failed")]
    ReadObject {
        oid: String,
        #[source]
        source: git2::Error,
    },
    #[error("pushing to {url} failed")]
    Push {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("writing a commit in {path} failed")]
    Commit {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("signing the commit failed: {reason}")]
    Sign { reason: String },
    #[error("the blocking Git task stopped unexpectedly")]
    Join(#[source] tokio::task::JoinError),
    #[error(
        "the Git object cache at {path} is still in use by an earlier operation after {timeout:?}"
    )]
    CacheBusy { path: PathBuf, timeout: Duration },
    #[error(
        "refusing to send the {what} of the Secret to {url} in the clear; use https:// or ssh://, or set spec.insecure: true to allow it"
    )]
    InsecureCredentials { url: String, what: &'static str },
    #[error("{url} redirected to {to}; credentials are only sent to the URL's own host")]
    CrossHostCredentials { url: String, to: String },
    #[error("setting libgit2's network timeouts failed")]
    Configure(#[source] git2::Error),
}

/// How long libgit2 waits for a connection, and for data on an open connection, unless
/// [`configure_network_timeouts`] said otherwise first. Without them a server that accepts and
/// then stays silent holds a blocking thread (and the cache it writes) forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

static NETWORK_TIMEOUTS: OnceLock<Result<(), String>> = OnceLock::new();

/// Sets libgit2's process-wide connect and read timeouts, once: the first call wins (the first
/// network operation makes it with the defaults). Later calls return the first call's result.
pub fn configure_network_timeouts(connect: Duration, read: Duration) -> Result<(), GitError> {
    NETWORK_TIMEOUTS
        .get_or_init(|| set_network_timeouts(connect, read).map_err(|e| e.message().to_owned()))
        .clone()
        .map_err(|message| GitError::Configure(git2::Error::from_str(&message)))
}

#[allow(unsafe_code)]
fn set_network_timeouts(connect: Duration, read: Duration) -> Result<(), git2::Error> {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1);
    // SAFETY: git_libgit2_opts writes process-wide settings that are not synchronised with
    // network operations in flight. This runs exactly once (behind the OnceLock above), before
    // the first network operation of the process, which calls it.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect))?;
        git2::opts::set_server_timeout_in_milliseconds(ms(read))?;
    }
    Ok(())
}

/// One lock per cache directory, shared by every operation of the process on it.
static CACHE_LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// Exclusive use of one Git object cache. A blocking Git call keeps a clone until it really
/// ends, so a fetch that outlived its timeout still holds the cache and a later poll waits
/// instead of working in a cache that is being written.
#[derive(Clone)]
pub struct CacheLock(#[allow(dead_code)] Arc<tokio::sync::OwnedMutexGuard<()>>);

impl CacheLock {
    /// Waits up to `timeout` for the cache at `path`.
    pub async fn acquire(path: &Path, timeout: Duration) -> Result<CacheLock, GitError> {
        let mutex = {
            let mut locks = CACHE_LOCKS.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(path.to_owned()).or_default().clone()
        };
        match tokio::time::timeout(timeout, mutex.lock_owned()).await {
            Ok(guard) => Ok(CacheLock(Arc::new(guard))),
            Err(_) => Err(GitError::CacheBusy {
                path: path.to_owned(),
                timeout,
            }),
        }
    }
}

impl GitError {
    /// Whether the failure is about identity: credentials, host keys or certificates.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            GitError::Authenticate { .. }
                | GitError::HostKey { .. }
                | GitError::Certificate { .. }
                | GitError::InsecureCredentials { .. }
                | GitError::CrossHostCredentials { .. }
        )
    }
}

/// What the remote needs to let us in. Built from a Secret or from files.
#[derive(Clone, Default)]
pub struct Credentials {
    pub basic: Option<(String, String)>,
    pub bearer_token: Option<String>,
    /// PEM bundle the server's TLS certificate must chain to.
    pub ca_pem: Option<Vec<u8>>,
    pub ssh: Option<SshCredentials>,
}

#[derive(Clone)]
pub struct SshCredentials {
    pub identity: String,
    pub passphrase: Option<String>,
    pub known_hosts: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("basic", &self.basic.as_ref().map(|(u, _)| u))
            .field("bearer_token", &self.bearer_token.is_some())
            .field("ca_pem", &self.ca_pem.is_some())
            .field("ssh", &self.ssh.is_some())
            .finish()
    }
}

/// What to fetch, decided by the caller from a `Resolved` selection.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    pub selection: Selection,
    pub resolved: Option<Resolved>,
    /// The commit of the current artifact, to detect rewritten history on branches.
    pub previous_commit: Option<String>,
}

/// The result of a fetch: where the revision points in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub revision: Revision,
    pub commit: String,
    /// The local ref the fetch wrote, used to read tags for verification.
    pub local_ref: Option<String>,
}

/// A remote and how to reach it.
#[derive(Debug, Clone)]
pub struct GitRemote {
    pub url: RemoteUrl,
    pub credentials: Credentials,
    pub timeout: Duration,
    /// Send basic auth and bearer tokens over plain `http://` and `git://` too.
    pub insecure: bool,
}

impl GitRemote {
    /// Lists the remote's references without downloading objects. `None` when the transport cannot
    /// list with these credentials (bearer tokens are only sent on fetch).
    pub async fn list_refs(&self) -> Result<Option<Vec<RemoteRef>>, GitError> {
        if self.credentials.bearer_token.is_some() {
            return Ok(None);
        }
        let this = self.clone();
        self.run(move |cancel| this.list_refs_blocking(&cancel))
            .await
            .map(Some)
    }

    /// Fetches into the bare cache repository at `cache`, shallow where the ref kind allows.
    /// `lock` is the caller's hold on the cache; the blocking fetch keeps it until it ends.
    pub async fn fetch(
        &self,
        cache: &Path,
        plan: FetchPlan,
        lock: &CacheLock,
    ) -> Result<Fetched, GitError> {
        let this = self.clone();
        let cache = cache.to_owned();
        let lock = lock.clone();
        self.run(move |cancel| {
            let _held = lock;
            this.fetch_blocking(&cache, &plan, &cancel)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Arc<AtomicBool>) -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, GitError> {
        configure_network_timeouts(CONNECT_TIMEOUT, READ_TIMEOUT)?;
        if let Some(what) = credentials::sent_in_clear(&self.url, &self.credentials)
            && !self.insecure
        {
            return Err(GitError::InsecureCredentials {
                url: self.url.to_string(),
                what,
            });
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let task = tokio::task::spawn_blocking({
            let cancel = cancel.clone();
            move || work(cancel)
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(joined) => joined.map_err(GitError::Join)?,
            Err(_) => {
                // The blocking call stops at its next progress callback.
                cancel.store(true, Ordering::SeqCst);
                Err(GitError::Timeout {
                    url: self.url.to_string(),
                    timeout: self.timeout,
                })
            }
        }
    }

    fn list_refs_blocking(&self, cancel: &Arc<AtomicBool>) -> Result<Vec<RemoteRef>, GitError> {
        let mut remote =
            git2::Remote::create_detached(self.url.as_libgit2()).map_err(|e| self.list_error(e))?;
        let failure = CallbackFailure::default();
        let callbacks = self.callbacks(cancel.clone(), failure.clone())?;
        let conn = remote
            .connect_auth(Direction::Fetch, Some(callbacks), None)
            .map_err(|e| failure.take().unwrap_or_else(|| self.list_error(e)))?;
        let heads = conn.list().map_err(|e| self.list_error(e))?;
        let mut refs: Vec<RemoteRef> = Vec::new();
        for head in heads {
            let name = head.name();
            if let Some(base) = name.strip_suffix("^{}") {
                if let Some(r) = refs.iter_mut().find(|r| r.name == base) {
                    r.peeled = Some(head.oid().to_string());
                }
                continue;
            }
            refs.push(RemoteRef {
                name: name.to_owned(),
                oid: head.oid().to_string(),
                peeled: None,
            });
        }
        Ok(refs)
    }

    fn list_error(&self, source: git2::Error) -> GitError {
        self.classify(source)
            .unwrap_or_else(|source| GitError::ListRefs {
                url: self.url.to_string(),
                source,
            })
    }

    fn fetch_error(&self, what: &str, source: git2::Error) -> GitError {
        self.classify(source)
            .unwrap_or_else(|source| GitError::Fetch {
                url: self.url.to_string(),
                what: what.to_owned(),
                source,
            })
    }

    /// Turns libgit2's authentication errors into `Authenticate`, leaves others to the caller.
    fn classify(&self, source: git2::Error) -> Result<GitError, git2::Error> {
        let auth = matches!(source.code(), git2::ErrorCode::Auth)
            || matches!(source.class(), git2::ErrorClass::Http) && source.message().contains("401")
            || source.message().contains("authentication");
        if auth {
            Ok(GitError::Authenticate {
                url: self.url.to_string(),
                message: source.message().to_owned(),
            })
        } else {
            Err(source)
        }
    }

    fn fetch_blocking(
        &self,
        cache: &Path,
        plan: &FetchPlan,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Fetched, GitError> {
        let repo = open_cache(cache)?;
        // What to ask for, and whether a single commit of history is enough.
        let (refspecs, shallow, what): (Vec<String>, bool, String) = match &plan.selection {
            Selection::Commit {
                sha,
                branch: Some(b),
            } => (
                vec![format!("+refs/heads/{b}:refs/heads/{b}")],
                false,
                format!("commit {sha} on branch {b}"),
            ),
            Selection::Commit { sha, branch: None } => (
                vec!["+refs/heads/*:refs/heads/*".into()],
                false,
                format!("commit {sha}"),
            ),
            Selection::Branch(b) => {
                let keep_history = plan
                    .previous_commit
                    .as_deref()
                    .is_some_and(|c| has_commit(&repo, c));
                (
                    vec![format!("+refs/heads/{b}:refs/heads/{b}")],
                    !keep_history,
                    format!("branch {b}"),
                )
            }
            Selection::Tag(t) => (
                vec![format!("+refs/tags/{t}:refs/tags/{t}")],
                true,
                format!("tag {t}"),
            ),
            Selection::Name(n) => (vec![format!("+{n}:{n}")], true, format!("reference {n}")),
            Selection::Semver(range) => {
                let refname = plan.resolved.as_ref().and_then(|r| r.refname.clone());
                match refname {
                    Some(r) => (
                        vec![format!("+{r}:{r}")],
                        true,
                        format!("tag {r} for range {range}"),
                    ),
                    None => (
                        vec!["+refs/tags/*:refs/tags/*".into()],
                        true,
                        format!("tags for range {range}"),
                    ),
                }
            }
        };
        let failure = CallbackFailure::default();
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(self.callbacks(cancel.clone(), failure.clone())?);
        opts.download_tags(git2::AutotagOption::None);
        if self.credentials.basic.is_some() || self.credentials.bearer_token.is_some() {
            // A header or password must never follow a redirect to another host.
            opts.follow_redirects(git2::RemoteRedirect::None);
        }
        if shallow {
            opts.depth(1);
        }
        let header;
        if let Some(token) = &self.credentials.bearer_token {
            header = format!("Authorization: Bearer {token}");
            opts.custom_headers(&[header.as_str()]);
        }
        let mut remote = repo
            .remote_anonymous(self.url.as_libgit2())
            .map_err(|e| self.fetch_error(&what, e))?;
        let refspec_strs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
        remote
            .fetch(&refspec_strs, Some(&mut opts), None)
            .map_err(|e| failure.take().unwrap_or_else(|| self.fetch_error(&what, e)))?;
        drop(remote);
        self.locate(&repo, plan, &what)
    }

    /// Finds the fetched revision in the cache and checks branch history.
    fn locate(&self, repo: &Repository, plan: &FetchPlan, what: &str) -> Result<Fetched, GitError> {
        let not_found = || GitError::NotFound {
            url: self.url.to_string(),
            what: what.to_owned(),
        };
        let peel = |refname: &str| -> Result<String, GitError> {
            let r = repo.find_reference(refname).map_err(|_| not_found())?;
            let c = r.peel_to_commit().map_err(|_| not_found())?;
            Ok(c.id().to_string())
        };
        match &plan.selection {
            Selection::Commit { sha, branch } => {
                let oid = Oid::from_str(sha).map_err(|_| not_found())?;
                repo.find_commit(oid).map_err(|_| not_found())?;
                if let Some(b) = branch {
                    let tip = Oid::from_str(&peel(&format!("refs/heads/{b}"))?)
                        .map_err(|_| not_found())?;
                    let on_branch =
                        tip == oid || repo.graph_descendant_of(tip, oid).unwrap_or(false);
                    if !on_branch {
                        return Err(GitError::CommitNotOnBranch {
                            commit: sha.clone(),
                            branch: b.clone(),
                        });
                    }
                }
                let revision = match branch {
                    Some(b) => Revision::named(b, sha),
                    None => Revision {
                        name: None,
                        sha: sha.clone(),
                    },
                };
                Ok(Fetched {
                    revision,
                    commit: sha.clone(),
                    local_ref: None,
                })
            }
            Selection::Branch(b) => {
                let local = format!("refs/heads/{b}");
                let commit = peel(&local)?;
                if let Some(old) = plan
                    .previous_commit
                    .as_deref()
                    .filter(|o| *o != commit && has_commit(repo, o))
                {
                    let (new_oid, old_oid) = (Oid::from_str(&commit), Oid::from_str(old));
                    let descends = match (new_oid, old_oid) {
                        (Ok(n), Ok(o)) => repo.graph_descendant_of(n, o).unwrap_or(false),
                        _ => false,
                    };
                    if !descends {
                        return Err(GitError::HistoryRewritten {
                            branch: b.clone(),
                            old: old.to_owned(),
                            new: commit,
                        });
                    }
                }
                Ok(Fetched {
                    revision: Revision::named(b, &commit),
                    commit,
                    local_ref: Some(local),
                })
            }
            Selection::Tag(t) => {
                let local = format!("refs/tags/{t}");
                let commit = peel(&local)?;
                Ok(Fetched {
                    revision: Revision::named(t, &commit),
                    commit,
                    local_ref: Some(local),
                })
            }
            Selection::Name(n) => {
                let commit = peel(n)?;
                Ok(Fetched {
                    revision: Revision::named(n, &commit),
                    commit,
                    local_ref: Some(n.clone()),
                })
            }
            Selection::Semver(range) => {
                let local = match plan.resolved.as_ref().and_then(|r| r.refname.clone()) {
                    Some(r) => r,
                    None => {
                        let names = repo
                            .tag_names(None)
                            .map_err(|e| self.fetch_error(what, e))?;
                        let tag = crate::semver_range::SemverRange::parse(range)
                            .ok()
                            .and_then(|sr| sr.highest(names.iter().flatten().flatten()))
                            .ok_or_else(not_found)?;
                        format!("refs/tags/{tag}")
                    }
                };
                let commit = peel(&local)?;
                let name = local.trim_start_matches("refs/tags/").to_owned();
                Ok(Fetched {
                    revision: Revision::named(&name, &commit),
                    commit,
                    local_ref: Some(local),
                })
            }
        }
    }
}

fn open_cache(path: &Path) -> Result<Repository, GitError> {
    let err = |source| GitError::Cache {
        path: path.to_owned(),
        source,
    };
    if path.join("HEAD").exists() {
        Repository::open_bare(path).map_err(err)
    } else {
        std::fs::create_dir_all(path).map_err(|e| err(git2::Error::from_str(&e.to_string())))?;
        Repository::init_bare(path).map_err(err)
    }
}

fn has_commit(repo: &Repository, sha: &str) -> bool {
    Oid::from_str(sha).is_ok_and(|oid| repo.find_commit(oid).is_ok())
}
