//! The GitRepository controller: watches GitRepositories, polls their remotes, writes status and
//! Events. Talks to the API server and, through `sync`, to Git remotes and the storage directory.
//! Decisions come from `status::plan`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::time::Instant;

use crate::api::git_repository::{ArtifactStatus, DEFAULT_TIMEOUT, GitRepository};
use crate::api::{REQUESTED_AT_ANNOTATION, duration};
use crate::runtime::events;
use crate::runtime::text::error_chain;

use super::credentials;
use super::git::Credentials;
use super::revision::{RefSpec, Revision, Selection};
use super::status::{self, Outcome, Requeue};
use super::sync::{self, Current, PollOutcome, SourceSpec, SyncError, Verification, Workspace};
use super::url::RemoteUrl;
use super::verify::{TrustedKeys, VerifyMode};

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("writing the status of {object} failed")]
    PatchStatus {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("GitRepository has no namespace")]
    NoNamespace,
}

/// Shared state of the controller.
pub struct State {
    client: Client,
    recorder: Recorder,
    storage: PathBuf,
    max_artifact_size: u64,
    failures: Mutex<HashMap<ObjectRef<GitRepository>, u32>>,
    /// When each object is due next, and for which spec/trigger; events before that (such as our
    /// own status writes) do not poll again.
    schedule: Mutex<HashMap<ObjectRef<GitRepository>, (u64, Instant)>>,
}

impl State {
    pub fn new(client: Client, storage: PathBuf, max_artifact_size: u64) -> Self {
        let reporter = Reporter {
            controller: "sluice-source".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        State {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            storage,
            max_artifact_size,
            failures: Mutex::default(),
            schedule: Mutex::default(),
        }
    }
}

impl State {
    /// Drops the retry and schedule records of deleted objects.
    fn forget(&self, removed: &[(String, String)]) {
        let gone = |k: &ObjectRef<GitRepository>| {
            removed
                .iter()
                .any(|(ns, n)| k.namespace.as_deref() == Some(ns.as_str()) && &k.name == n)
        };
        if let Ok(mut f) = self.failures.lock() {
            f.retain(|k, _| !gone(k));
        }
        if let Ok(mut s) = self.schedule.lock() {
            s.retain(|k, _| !gone(k));
        }
    }
}

/// Runs until a shutdown signal. `namespace` limits the watch to one namespace.
/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directory holding Git caches and artifacts.
    pub storage: PathBuf,
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// Artifacts larger than this many bytes are refused.
    pub max_artifact_size: u64,
}

pub async fn run(client: Client, settings: Settings) {
    let Settings {
        storage,
        namespace,
        max_artifact_size,
    } = settings;
    let api: Api<GitRepository> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let state = Arc::new(State::new(
        client.clone(),
        storage.clone(),
        max_artifact_size,
    ));
    let controller = Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, state.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "GitRepository reconcile failed");
            }
        });
    let sweeper = async {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            match super::orphans::sweep(&client, &storage, namespace.as_deref()).await {
                Ok(removed) => state.forget(&removed),
                Err(e) => {
                    tracing::warn!(error = %e, "cleaning up storage of deleted GitRepositories failed")
                }
            }
        }
    };
    tokio::select! {
        () = controller => {}
        () = sweeper => {}
    }
}

/// How often storage of deleted GitRepositories is removed.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// What a reconcile was asked for: the spec generation and the manual trigger.
fn spec_or_trigger(obj: &GitRepository) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    obj.metadata.generation.hash(&mut h);
    obj.annotations().get(REQUESTED_AT_ANNOTATION).hash(&mut h);
    h.finish()
}

fn error_policy(_obj: Arc<GitRepository>, err: &ControllerError, _state: Arc<State>) -> Action {
    tracing::warn!(error = %err, "retrying GitRepository");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(obj: Arc<GitRepository>, state: Arc<State>) -> Result<Action, ControllerError> {
    let ns = obj.namespace().ok_or(ControllerError::NoNamespace)?;
    let name = obj.name_any();
    let key = ObjectRef::from_obj(&*obj);
    let asked = spec_or_trigger(&obj);
    let due = state
        .schedule
        .lock()
        .ok()
        .and_then(|s| s.get(&key).copied());
    if let Some((seen, at)) = due
        && seen == asked
        && at > Instant::now()
    {
        return Ok(Action::requeue(at - Instant::now()));
    }
    let interval = duration::parse(&obj.spec.interval).unwrap_or(Duration::from_secs(60));
    let outcome = gather(&obj, &ns, &name, &state).await;
    let current = obj.status.clone().unwrap_or_default();
    let failures = state
        .failures
        .lock()
        .map(|f| f.get(&key).copied().unwrap_or(0))
        .unwrap_or(0);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let ctx = status::Context {
        current: &current,
        generation: obj.metadata.generation,
        requested_at: obj
            .annotations()
            .get(REQUESTED_AT_ANNOTATION)
            .map(String::as_str),
        now: &now,
        interval,
        failures,
        verify_enabled: obj.spec.verify.is_some(),
    };
    let plan = status::plan(&ctx, outcome);

    if let Some(new_status) = &plan.status {
        let api: Api<GitRepository> = Api::namespaced(state.client.clone(), &ns);
        let patch = serde_json::json!({ "status": new_status });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| ControllerError::PatchStatus {
                object: format!("{ns}/{name}"),
                source,
            })?;
    }
    if let Some(event) = plan.event {
        events::publish(&state.recorder, &obj.object_ref(&()), event).await;
    }
    if let Ok(mut f) = state.failures.lock() {
        if plan.failures == 0 {
            f.remove(&key);
        } else {
            f.insert(key.clone(), plan.failures);
        }
    }
    let next = match plan.requeue {
        Requeue::After(d) => Some(d),
        Requeue::OnChange => None,
    };
    if let Ok(mut s) = state.schedule.lock() {
        match next {
            Some(d) => s.insert(key, (asked, Instant::now() + d)),
            None => s.insert(
                key,
                (asked, Instant::now() + Duration::from_secs(365 * 24 * 3600)),
            ),
        };
    }
    Ok(match next {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Reads the spec and Secrets, polls, and says how it went.
async fn gather(obj: &GitRepository, ns: &str, name: &str, state: &State) -> Outcome {
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

    let secrets: Api<Secret> = Api::namespaced(state.client.clone(), ns);
    let credentials = match &spec.secret_ref {
        None => Credentials::default(),
        Some(r) => match read_secret(&secrets, &r.name).await {
            Err(o) => return o,
            Ok(data) => {
                match credentials::from_secret_data(&url, &data, &format!("Secret {ns}/{}", r.name))
                {
                    Ok(c) => c,
                    Err(e) => {
                        return Outcome::Failed {
                            reason: "InvalidSecret",
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
                        reason: "InvalidSecret",
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

    let mut ws = Workspace::of_source(&state.storage, ns, name);
    ws.store.max_size = state.max_artifact_size;
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
                path: sync::artifact_path(&state.storage, ns, name, &a.digest).ok()?,
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
                .strip_prefix(&state.storage)
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
            reason: "AuthenticationFailed",
            message: error_chain(&e),
        },
        Err(e @ (SyncError::Git(_) | SyncError::Resolve(_))) => Outcome::Failed {
            reason: "GitOperationFailed",
            message: error_chain(&e),
        },
        Err(e @ SyncError::Verify(_)) => Outcome::Failed {
            reason: "VerificationError",
            message: error_chain(&e),
        },
        Err(e @ SyncError::Export(_)) => Outcome::Failed {
            reason: "ArtifactFailed",
            message: error_chain(&e),
        },
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
            reason: "SecretNotFound",
            message: format!("Secret {name:?} not found"),
        }),
        Err(e) => Err(Outcome::Failed {
            reason: "SecretNotFound",
            message: format!("reading Secret {name:?}: {e}"),
        }),
    }
}
