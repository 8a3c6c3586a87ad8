//! The GitRepository controller: polls each GitRepository's remote and stores the artifact of the
//! selected revision. Runs on the `runtime::controller` scaffold; talks to the API server (Secrets)
//! and, through `sync`, to Git remotes and the storage directory. Decisions come from
//! `status::plan`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::api::duration;
use crate::api::git_repository::{
    ArtifactStatus, DEFAULT_TIMEOUT, GitRepository, GitRepositoryStatus,
};
use crate::runtime::conditions::Stamp;
use crate::runtime::controller::{Attempt, Plan, Reconciler, Scaffold};
use crate::runtime::text::error_chain;

use super::credentials;
use super::git::Credentials;
use super::revision::{RefSpec, Revision, Selection};
use super::status::{self, Outcome, SourceReason};
use super::sync::{self, Current, PollOutcome, SourceSpec, SyncError, Verification, Workspace};
use super::url::RemoteUrl;
use super::verify::{TrustedKeys, VerifyMode};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directory holding Git caches and artifacts.
    pub storage: PathBuf,
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// Artifacts larger than this many bytes are refused.
    pub max_artifact_size: u64,
    /// Artifacts with more files than this are refused.
    pub max_artifact_files: usize,
    /// Reconcile only GitRepositories whose labels match.
    pub label_selector: Option<String>,
}

impl Settings {
    /// The defaults of `sluice agent` for a storage directory: every namespace, default caps.
    pub fn new(storage: PathBuf) -> Settings {
        Settings {
            storage,
            namespace: None,
            max_artifact_size: super::artifact::DEFAULT_MAX_SIZE,
            max_artifact_files: super::artifact::DEFAULT_MAX_FILES,
            label_selector: None,
        }
    }
}

/// The GitRepository reconciler.
pub struct Sources {
    client: Client,
    storage: PathBuf,
    max_artifact_size: u64,
    max_artifact_files: usize,
}

impl Reconciler for Sources {
    type Object = GitRepository;
    type Inputs = ();
    type Error = std::convert::Infallible;
    const REPORTER: &'static str = "sluice-source";

    async fn inputs(&self, _obj: &GitRepository) {}

    async fn reconcile(
        &self,
        obj: &GitRepository,
        (): (),
        attempt: &Attempt<'_>,
    ) -> Result<Plan<GitRepositoryStatus>, Self::Error> {
        let interval = duration::parse(&obj.spec.interval).unwrap_or(Duration::from_secs(60));
        let outcome = self.gather(obj).await;
        let current = obj.status.clone().unwrap_or_default();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let ctx = status::Context {
            current: &current,
            stamp: Stamp {
                generation: obj.metadata.generation,
                now: &now,
            },
            requested_at: attempt.requested_at,
            interval,
            failures: attempt.failures,
            verify_enabled: obj.spec.verify.is_some(),
        };
        Ok(status::plan(&ctx, outcome))
    }
}

/// Runs until a shutdown signal.
pub async fn run(client: Client, settings: Settings) {
    let Settings {
        storage,
        namespace,
        max_artifact_size,
        max_artifact_files,
        label_selector,
    } = settings;
    let api: Api<GitRepository> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let selected = match &label_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let sources = Sources {
        client: client.clone(),
        storage: storage.clone(),
        max_artifact_size,
        max_artifact_files,
    };
    let controller = Scaffold::new(sources, client.clone(), api, selected);
    let sweeper = async {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            if let Err(e) = super::orphans::sweep(&client, &storage, namespace.as_deref()).await {
                tracing::warn!(error = %e, "cleaning up storage of deleted GitRepositories failed")
            }
        }
    };
    tokio::select! {
        () = controller.run() => {}
        () = sweeper => {}
    }
}

/// How often storage of deleted GitRepositories is removed.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

impl Sources {
    /// Reads the spec and Secrets, polls, and says how it went.
    async fn gather(&self, obj: &GitRepository) -> Outcome {
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        let (ns, name) = (ns.as_str(), name.as_str());
        let spec = &obj.spec;
        if spec.suspend {
            return Outcome::Suspended;
        }
        let invalid = |message: String| Outcome::InvalidSpec { message };
        let url = match RemoteUrl::parse(&spec.url) {
            Ok(u) => u,
            Err(e) => return invalid(format!("spec.url: {e}")),
        };
        let r = spec.reference.clone().unwrap_or_default();
        let selection = match Selection::from_spec(&RefSpec {
            branch: r.branch,
            tag: r.tag,
            semver: r.semver,
            name: r.name,
            commit: r.commit,
        }) {
            Ok(s) => s,
            Err(e) => return invalid(format!("spec.ref: {e}")),
        };
        if let Err(e) = duration::parse(&spec.interval) {
            return invalid(format!("spec.interval: {e}"));
        }
        let timeout = match duration::parse(spec.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT)) {
            Ok(t) => t,
            Err(e) => return invalid(format!("spec.timeout: {e}")),
        };
        let mode = match spec
            .verify
            .as_ref()
            .map(|v| VerifyMode::parse(&v.mode))
            .transpose()
        {
            Ok(m) => m,
            Err(e) => return invalid(format!("spec.verify.mode: {e}")),
        };

        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let credentials = match &spec.secret_ref {
            None => Credentials::default(),
            Some(r) => match read_secret(&secrets, &r.name).await {
                Err(o) => return o,
                Ok(data) => {
                    match credentials::from_secret_data(
                        &url,
                        &data,
                        &format!("Secret {ns}/{}", r.name),
                    ) {
                        Ok(c) => c,
                        Err(e) => {
                            return Outcome::Failed {
                                reason: SourceReason::InvalidSecret,
                                message: e.to_string(),
                            };
                        }
                    }
                }
            },
        };
        let verification = match (&spec.verify, mode) {
            (Some(v), Some(mode)) => match read_secret(&secrets, &v.secret_ref.name).await {
                Err(o) => return o,
                Ok(data) => match TrustedKeys::from_entries(data) {
                    Ok(keys) => Some(Verification { mode, keys }),
                    Err(e) => {
                        return Outcome::Failed {
                            reason: SourceReason::InvalidSecret,
                            message: format!("Secret {ns}/{}: {e}", v.secret_ref.name),
                        };
                    }
                },
            },
            _ => None,
        };
        let verify_enabled = verification.is_some();
        let source = SourceSpec {
            url,
            selection,
            credentials,
            timeout,
            ignore: spec.ignore.clone(),
            verification,
            insecure: spec.insecure,
        };

        let mut ws = Workspace::of_source(&self.storage, ns, name);
        ws.store.max_size = self.max_artifact_size;
        ws.store.max_files = self.max_artifact_files;
        let status = obj.status.clone().unwrap_or_default();
        // After a spec change the current artifact is re-checked against the new spec.
        let spec_unchanged = status.observed_generation == obj.metadata.generation;
        let current = status
            .artifact
            .as_ref()
            .filter(|_| spec_unchanged)
            .and_then(|a| {
                Some(Current {
                    revision: Revision::parse(&a.revision).ok()?,
                    path: sync::artifact_path(&self.storage, ns, name, &a.digest).ok()?,
                    verified_with: a.verified_with.clone(),
                })
            });

        match sync::poll(&source, &ws, current.as_ref()).await {
            Ok(PollOutcome::Unchanged(rev)) => Outcome::Unchanged {
                revision: rev.to_string(),
                verified: verify_enabled,
            },
            Ok(PollOutcome::Updated {
                artifact,
                signers,
                verified_with,
            }) => {
                let path = artifact
                    .path
                    .strip_prefix(&self.storage)
                    .unwrap_or(&artifact.path)
                    .display()
                    .to_string();
                let verified = verify_enabled.then(|| {
                    let by: Vec<String> = signers
                        .iter()
                        .map(|s| format!("{} by {} ({})", s.subject, s.key_name, s.fingerprint))
                        .collect();
                    format!(
                        "verified signature of revision '{}': {}",
                        artifact.revision,
                        by.join(", ")
                    )
                });
                Outcome::Updated {
                    artifact: ArtifactStatus {
                        revision: artifact.revision.to_string(),
                        digest: artifact.digest,
                        path,
                        size: artifact.size,
                        last_update_time: k8s_openapi::jiff::Timestamp::now().to_string(),
                        verified_with,
                    },
                    verified,
                }
            }
            Err(SyncError::Untrusted { revision, reason }) => Outcome::Untrusted {
                revision: revision.to_string(),
                reason,
            },
            Err(SyncError::Git(e)) if e.is_auth() => Outcome::Failed {
                reason: SourceReason::AuthenticationFailed,
                message: error_chain(&e),
            },
            Err(e @ (SyncError::Git(_) | SyncError::Resolve(_))) => Outcome::Failed {
                reason: SourceReason::GitOperationFailed,
                message: error_chain(&e),
            },
            Err(e @ SyncError::Verify(_)) => Outcome::Failed {
                reason: SourceReason::VerificationError,
                message: error_chain(&e),
            },
            Err(e @ SyncError::Export(_)) => Outcome::Failed {
                reason: SourceReason::ArtifactFailed,
                message: error_chain(&e),
            },
        }
    }
}

async fn read_secret(api: &Api<Secret>, name: &str) -> Result<BTreeMap<String, Vec<u8>>, Outcome> {
    match api.get_opt(name).await {
        Ok(Some(secret)) => Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()),
        Ok(None) => Err(Outcome::Failed {
            reason: SourceReason::SecretNotFound,
            message: format!("Secret {name:?} not found"),
        }),
        Err(e) => Err(Outcome::Failed {
            reason: SourceReason::SecretNotFound,
            message: format!("reading Secret {name:?}: {e}"),
        }),
    }
}
