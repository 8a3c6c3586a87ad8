//! Talking to Git remotes and the local object cache through libgit2: listing refs, fetching, reading
//! signed objects. Does network and disk I/O; every libgit2 call runs under `spawn_blocking` here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use git2::{
    CertificateCheckStatus, Cred, CredentialType, Direction, FetchOptions, ObjectType, Oid,
    RemoteCallbacks, Repository,
};

use super::artifact::{
    Artifact, ArtifactError, ArtifactStore, ContentDigest, EntryKind, is_safe_relative,
    symlink_stays_inside,
};
use super::ignore::IgnoreRules;
use super::known_hosts::{HostKeyCheck, KnownHosts, KnownHostsError};
use super::revision::{RemoteRef, Resolved, Revision, Selection};
use super::url::RemoteUrl;

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
    #[error("the blocking Git task stopped unexpectedly")]
    Join(#[source] tokio::task::JoinError),
}

impl GitError {
    /// Whether the failure is about identity: credentials, host keys or certificates.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            GitError::Authenticate { .. } | GitError::HostKey { .. } | GitError::Certificate { .. }
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
    pub async fn fetch(&self, cache: &Path, plan: FetchPlan) -> Result<Fetched, GitError> {
        let this = self.clone();
        let cache = cache.to_owned();
        self.run(move |cancel| this.fetch_blocking(&cache, &plan, &cancel))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Arc<AtomicBool>) -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, GitError> {
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
                        let tag = super::revision::SemverRange::parse(range)
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

    fn callbacks(
        &self,
        cancel: Arc<AtomicBool>,
        failure: CallbackFailure,
    ) -> Result<RemoteCallbacks<'static>, GitError> {
        let mut cb = RemoteCallbacks::new();
        let creds = self.credentials.clone();
        let attempts = Arc::new(AtomicUsize::new(0));
        let url_for_creds = self.url.to_string();
        let fail_creds = failure.clone();
        cb.credentials(move |_url, username_from_url, allowed| {
            // libgit2 asks again after a rejection; one try per kind is enough.
            if attempts.fetch_add(1, Ordering::SeqCst) >= 2 {
                let message = "the server rejected the credentials".to_owned();
                fail_creds.set(GitError::Authenticate {
                    url: url_for_creds.clone(),
                    message: message.clone(),
                });
                return Err(git2::Error::from_str(&message));
            }
            if allowed.contains(CredentialType::SSH_KEY)
                && let Some(ssh) = &creds.ssh
            {
                return Cred::ssh_key_from_memory(
                    username_from_url.unwrap_or("git"),
                    None,
                    &ssh.identity,
                    ssh.passphrase.as_deref(),
                );
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let Some((u, p)) = &creds.basic
            {
                return Cred::userpass_plaintext(u, p);
            }
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(username_from_url.unwrap_or("git"));
            }
            let message = "the server asks for credentials the Secret does not have".to_owned();
            fail_creds.set(GitError::Authenticate {
                url: url_for_creds.clone(),
                message: message.clone(),
            });
            Err(git2::Error::from_str(&message))
        });

        let known_hosts = match &self.credentials.ssh {
            Some(ssh) => Some(KnownHosts::parse(&ssh.known_hosts)?),
            None => None,
        };
        let ca = match &self.credentials.ca_pem {
            Some(pem) => Some(openssl::x509::X509::stack_from_pem(pem).map_err(GitError::ParseCa)?),
            None => None,
        };
        let port = self.url.effective_port();
        cb.certificate_check(move |cert, host| {
            if let Some(hostkey) = cert.as_hostkey() {
                let check = match (&known_hosts, hostkey.hostkey()) {
                    (Some(kh), Some(key)) => kh.check(host, port, key),
                    _ => HostKeyCheck::UnknownHost,
                };
                if check == HostKeyCheck::Trusted {
                    return Ok(CertificateCheckStatus::CertificateOk);
                }
                failure.set(GitError::HostKey {
                    host: format!("{host}:{port}"),
                    check,
                });
                return Err(git2::Error::from_str("host key not trusted"));
            }
            if let (Some(x509), Some(ca)) = (cert.as_x509(), &ca) {
                return match verify_with_ca(x509.data(), ca, host) {
                    Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                    Err(reason) => {
                        failure.set(GitError::Certificate {
                            host: host.to_owned(),
                            reason: reason.clone(),
                        });
                        Err(git2::Error::from_str(&reason))
                    }
                };
            }
            Ok(CertificateCheckStatus::CertificatePassthrough)
        });
        let c1 = cancel.clone();
        cb.transfer_progress(move |_| !c1.load(Ordering::SeqCst));
        cb.sideband_progress(move |_| !cancel.load(Ordering::SeqCst));
        Ok(cb)
    }
}

/// Checks a DER leaf certificate against a CA bundle and the host name.
fn verify_with_ca(der: &[u8], ca: &[openssl::x509::X509], host: &str) -> Result<(), String> {
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509, X509StoreContext};
    let leaf = X509::from_der(der).map_err(|e| format!("server certificate unreadable: {e}"))?;
    let mut store = X509StoreBuilder::new().map_err(|e| e.to_string())?;
    for c in ca {
        store.add_cert(c.clone()).map_err(|e| e.to_string())?;
    }
    let param = {
        let mut p = openssl::x509::verify::X509VerifyParam::new().map_err(|e| e.to_string())?;
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => p.set_ip(ip).map_err(|e| e.to_string())?,
            Err(_) => p.set_host(host).map_err(|e| e.to_string())?,
        }
        p
    };
    store.set_param(&param).map_err(|e| e.to_string())?;
    let store = store.build();
    let chain = openssl::stack::Stack::new().map_err(|e| e.to_string())?;
    let mut ctx = X509StoreContext::new().map_err(|e| e.to_string())?;
    let (ok, err) = ctx
        .init(&store, &leaf, &chain, |c| Ok((c.verify_cert()?, c.error())))
        .map_err(|e| e.to_string())?;
    if ok {
        Ok(())
    } else {
        Err(err.error_string().to_owned())
    }
}

/// The precise failure a callback saw, which libgit2 reports only as a generic error.
#[derive(Clone, Default)]
struct CallbackFailure(Arc<std::sync::Mutex<Option<GitError>>>);

impl CallbackFailure {
    fn set(&self, e: GitError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }

    fn take(&self) -> Option<GitError> {
        self.0.lock().ok().and_then(|mut s| s.take())
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

/// Lists the references of a local repository the way a remote advertises them.
pub async fn list_local_refs(path: &Path) -> Result<Vec<RemoteRef>, GitError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let repo = Repository::open(&path).map_err(|source| GitError::Cache {
            path: path.clone(),
            source,
        })?;
        let err = |source| GitError::Cache {
            path: path.clone(),
            source,
        };
        let mut refs = Vec::new();
        for r in repo.references().map_err(err)? {
            let r = r.map_err(err)?;
            let (Ok(name), Some(oid)) = (r.name(), r.target()) else {
                continue;
            };
            let peeled = r
                .peel_to_commit()
                .ok()
                .map(|c| c.id())
                .filter(|c| *c != oid)
                .map(|c| c.to_string());
            refs.push(RemoteRef {
                name: name.to_owned(),
                oid: oid.to_string(),
                peeled,
            });
        }
        Ok(refs)
    })
    .await
    .map_err(GitError::Join)?
}

/// A signed Git object's payload as verification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPayload {
    /// The armoured signature, `None` when the object is unsigned.
    pub signature: Option<Vec<u8>>,
    /// The bytes the signature covers.
    pub signed_data: Vec<u8>,
    /// Committer or tagger email.
    pub email: Option<String>,
}

/// What the fetched reference points at, for tag verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagObject {
    Annotated(SignedPayload),
    Lightweight,
    NotATag,
}

/// The commit and (if any) tag objects of a fetched revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedObjects {
    pub commit: SignedPayload,
    pub tag: TagObject,
}

/// Reads the commit and the tag a revision points at from a repository (bare cache or work tree).
pub async fn read_signed_objects(
    repo: &Path,
    commit: &str,
    refname: Option<&str>,
) -> Result<SignedObjects, GitError> {
    let (repo, commit, refname) = (
        repo.to_owned(),
        commit.to_owned(),
        refname.map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || read_signed_blocking(&repo, &commit, refname.as_deref()))
        .await
        .map_err(GitError::Join)?
}

fn read_signed_blocking(
    path: &Path,
    commit: &str,
    refname: Option<&str>,
) -> Result<SignedObjects, GitError> {
    let repo = Repository::open(path).map_err(|source| GitError::Cache {
        path: path.to_owned(),
        source,
    })?;
    let read_err = |oid: &str| {
        let oid = oid.to_owned();
        move |source| GitError::ReadObject { oid, source }
    };
    let oid = Oid::from_str(commit).map_err(read_err(commit))?;
    let c = repo.find_commit(oid).map_err(read_err(commit))?;
    let email = c.committer().email().ok().map(str::to_owned);
    let commit_payload = match repo.extract_signature(&oid, None) {
        Ok((sig, data)) => SignedPayload {
            signature: Some(sig.to_vec()),
            signed_data: data.to_vec(),
            email,
        },
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            let odb = repo.odb().map_err(read_err(commit))?;
            let raw = odb.read(oid).map_err(read_err(commit))?;
            SignedPayload {
                signature: None,
                signed_data: raw.data().to_vec(),
                email,
            }
        }
        Err(e) => return Err(read_err(commit)(e)),
    };
    let tag = match refname.filter(|r| r.starts_with("refs/tags/")) {
        None => TagObject::NotATag,
        Some(r) => {
            let reference = repo.find_reference(r).map_err(read_err(r))?;
            let target = reference
                .target()
                .ok_or_else(|| read_err(r)(git2::Error::from_str("symbolic tag")))?;
            let odb = repo.odb().map_err(read_err(r))?;
            let obj = odb.read(target).map_err(read_err(r))?;
            if obj.kind() == ObjectType::Tag {
                let tagger = repo
                    .find_tag(target)
                    .ok()
                    .and_then(|t| t.tagger().and_then(|s| s.email().ok().map(str::to_owned)));
                TagObject::Annotated(split_tag_signature(obj.data(), tagger))
            } else {
                TagObject::Lightweight
            }
        }
    };
    Ok(SignedObjects {
        commit: commit_payload,
        tag,
    })
}

/// Splits a raw tag object into the signed part and the trailing signature.
fn split_tag_signature(raw: &[u8], email: Option<String>) -> SignedPayload {
    const MARKERS: [&[u8]; 3] = [
        b"-----BEGIN PGP SIGNATURE-----",
        b"-----BEGIN SSH SIGNATURE-----",
        b"-----BEGIN PGP MESSAGE-----",
    ];
    let start = MARKERS
        .iter()
        .filter_map(|m| {
            raw.windows(m.len())
                .position(|w| w == *m)
                .filter(|&i| i == 0 || raw[i - 1] == b'\n')
        })
        .min();
    match start {
        Some(i) => SignedPayload {
            signature: Some(raw[i..].to_vec()),
            signed_data: raw[..i].to_vec(),
            email,
        },
        None => SignedPayload {
            signature: None,
            signed_data: raw.to_vec(),
            email,
        },
    }
}

/// Writes the tree of `commit` from the cache into the store, leaving out ignored entries,
/// submodules and symlinks that leave the tree, and returns the published artifact.
pub async fn export_artifact(
    cache: &Path,
    revision: Revision,
    store: &ArtifactStore,
    spec_ignore: Option<&str>,
) -> Result<Artifact, ExportError> {
    let (cache, store, spec_ignore) = (
        cache.to_owned(),
        store.clone(),
        spec_ignore.map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || {
        export_blocking(&cache, revision, &store, spec_ignore.as_deref())
    })
    .await
    .map_err(|e| ExportError::Git(GitError::Join(e)))?
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

struct Entry {
    path: PathBuf,
    kind: EntryKind,
    oid: Oid,
}

fn export_blocking(
    cache: &Path,
    revision: Revision,
    store: &ArtifactStore,
    spec_ignore: Option<&str>,
) -> Result<Artifact, ExportError> {
    let repo = Repository::open(cache).map_err(|source| GitError::Cache {
        path: cache.to_owned(),
        source,
    })?;
    let read_err = |oid: String| move |source| GitError::ReadObject { oid, source };
    let commit_oid = Oid::from_str(&revision.sha).map_err(read_err(revision.sha.clone()))?;
    let tree = repo
        .find_commit(commit_oid)
        .and_then(|c| c.tree())
        .map_err(read_err(revision.sha.clone()))?;

    let mut entries = Vec::new();
    let mut walk_err = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
        let Ok(name) = e.name() else {
            return git2::TreeWalkResult::Skip;
        };
        let path = Path::new(dir).join(name);
        let kind = match e.filemode() {
            0o100644 | 0o100664 => EntryKind::File { executable: false },
            0o100755 => EntryKind::File { executable: true },
            0o120000 => EntryKind::Symlink,
            0o160000 => EntryKind::Submodule,
            _ => return git2::TreeWalkResult::Ok,
        };
        if !is_safe_relative(&path) {
            walk_err.get_or_insert_with(|| path.display().to_string());
            return git2::TreeWalkResult::Abort;
        }
        entries.push(Entry {
            path,
            kind,
            oid: e.id(),
        });
        git2::TreeWalkResult::Ok
    })
    .map_err(read_err(tree.id().to_string()))
    .or_else(|e| if walk_err.is_some() { Ok(()) } else { Err(e) })?;
    if let Some(path) = walk_err {
        return Err(GitError::ReadObject {
            oid: tree.id().to_string(),
            source: git2::Error::from_str(&format!("unsafe path {path:?} in tree")),
        }
        .into());
    }

    let odb = repo.odb().map_err(read_err(tree.id().to_string()))?;
    let mut sourceignores = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.path.file_name() == Some(std::ffi::OsStr::new(super::ignore::SOURCEIGNORE)))
    {
        let blob = odb.read(e.oid).map_err(read_err(e.oid.to_string()))?;
        let dir = e.path.parent().unwrap_or(Path::new("")).to_owned();
        sourceignores.push((dir, String::from_utf8_lossy(blob.data()).into_owned()));
    }
    let rules = IgnoreRules::new(spec_ignore, &sourceignores).map_err(ArtifactError::from)?;

    let mut keep = Vec::new();
    let mut size = 0u64;
    for e in entries {
        let is_dir = false;
        if e.kind == EntryKind::Submodule || rules.is_ignored(&e.path, is_dir) {
            continue;
        }
        let (len, _) = odb
            .read_header(e.oid)
            .map_err(read_err(e.oid.to_string()))?;
        size += len as u64;
        keep.push(e);
    }
    store.check_size(size)?;

    let staging = store.staging()?;
    let mut digest = ContentDigest::default();
    for e in &keep {
        let blob = odb.read(e.oid).map_err(read_err(e.oid.to_string()))?;
        let dest = staging.path().join(&e.path);
        let write_err = |source| ArtifactError::Write {
            path: dest.clone(),
            source,
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        match e.kind {
            EntryKind::File { executable } => {
                std::fs::write(&dest, blob.data()).map_err(write_err)?;
                if executable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
                        .map_err(write_err)?;
                }
                digest.add_file(&e.path, executable, blob.data());
            }
            EntryKind::Symlink => {
                use std::os::unix::ffi::OsStrExt;
                let target = Path::new(std::ffi::OsStr::from_bytes(blob.data()));
                if !symlink_stays_inside(&e.path, target) {
                    tracing::warn!(path = %e.path.display(), target = %target.display(), "symlink points outside the tree; left out");
                    continue;
                }
                std::os::unix::fs::symlink(target, &dest).map_err(write_err)?;
                digest.add_symlink(&e.path, blob.data());
            }
            EntryKind::Submodule => {}
        }
    }
    let digest = digest.finish();
    let path = store.publish(staging, &digest)?;
    Ok(Artifact {
        revision,
        digest,
        path,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_signature_is_split_at_its_armour() {
        let raw = b"object abc\ntype commit\ntag v1\ntagger A <a@x> 1 +0000\n\nmsg\n-----BEGIN PGP SIGNATURE-----\nxyz\n-----END PGP SIGNATURE-----\n";
        let p = split_tag_signature(raw, None);
        assert!(p.signed_data.ends_with(b"msg\n"));
        assert!(
            p.signature
                .unwrap()
                .starts_with(b"-----BEGIN PGP SIGNATURE-----")
        );
        let unsigned = split_tag_signature(b"object abc\n\nmsg\n", None);
        assert_eq!(unsigned.signature, None);
    }
}
