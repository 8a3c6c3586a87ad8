//! The Kustomization controller: on a new artifact of its source, a spec change, the interval or
//! a manual trigger, it checks dependencies, builds the artifact's path, reconciles the objects
//! (validate, apply, prune; see `apply::reconcile`) and waits for health. Runs on the
//! `runtime::controller` scaffold, which writes the status and Events it plans. Talks to the API
//! server and reads the artifact storage; decisions come from `status::plan` and `depends`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::changes::Changes;
use super::depends::{self, DependencyState, Key};
use super::status::{self, KustomizationReason as Reason, Outcome};
use super::store::StatusStore;
use super::tenancy::{Tenancy, service_account_user};
use crate::api::condition::{self, READY, RECONCILING};
use crate::api::duration;
use crate::api::git_repository::{ArtifactStatus, GitRepository};
use crate::api::kustomization::{Kustomization, KustomizationSpec, KustomizationStatus};
use crate::api::window::OPEN_UNTIL_ANNOTATION;
use crate::apply::applier::{Applier, ApplyOptions, Owner};
use crate::apply::discovery::Discovery;
use crate::apply::handoff::HandoffRef;
use crate::apply::health;
use crate::apply::health_exprs::HealthExprs;
use crate::apply::inventory::ObjectId;
use crate::apply::reconcile::{ReconcileOptions, reconcile as reconcile_objects};
use crate::build::{self, BuildOptions};
use crate::runtime::conditions::{Common, Reason as _, Stamp};
use crate::runtime::controller::{Attempt, Plan, Reconciler, Scaffold, patch_status};
use crate::runtime::events::EventPlan;
use crate::runtime::text::error_chain;
use crate::runtime::window::{self, State};
use crate::source::sync::artifact_path;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("marking the Kustomization as reconciling failed")]
    MarkReconciling(#[source] Box<kube::Error>),
    #[error("Kustomization has no namespace")]
    NoNamespace,
    #[error("{0}")]
    Impersonate(String),
    #[error(transparent)]
    Finalize(#[from] super::deletion::FinalizeError),
}

/// How the controller runs (`sluice agent`'s flags).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Directory holding the artifacts (written by the GitRepository controller).
    pub storage: PathBuf,
    /// Watch only this namespace: no cluster-wide list or watch anywhere.
    pub namespace: Option<String>,
    /// Reconcile only Kustomizations (and watch only sources) whose labels match.
    pub label_selector: Option<String>,
    /// Which identity a reconcile acts as; whether references may leave the namespace.
    pub tenancy: Tenancy,
}

/// The Kustomization reconciler.
pub struct Kustomizations {
    client: Client,
    /// The agent's own client configuration, the base of impersonating clients.
    config: kube::Config,
    storage: PathBuf,
    tenancy: Tenancy,
    /// Discovery shared by every reconcile.
    discovery: Arc<Discovery>,
    /// One client per impersonated ServiceAccount, made once.
    clients: Mutex<HashMap<String, Client>>,
    /// The canary analyzer, when it runs in the same process.
    handoff: Option<HandoffRef>,
}

impl Kustomizations {
    pub fn new(
        client: Client,
        config: kube::Config,
        storage: PathBuf,
        tenancy: Tenancy,
    ) -> Kustomizations {
        Kustomizations {
            discovery: Arc::new(Discovery::new(client.clone())),
            client,
            config,
            storage,
            tenancy,
            clients: Mutex::default(),
            handoff: None,
        }
    }

    /// The client of the identity `obj`'s reconcile acts as: its ServiceAccount (named, or the
    /// agent's default), or the agent itself when neither is set. Everything the reconcile reads
    /// or writes goes through it, except the Kustomization's own status and Events and a source
    /// in its own namespace.
    fn tenant_client(&self, obj: &Kustomization) -> Result<Client, String> {
        let Some(account) = self.tenancy.service_account(&obj.spec) else {
            return Ok(self.client.clone());
        };
        let user = service_account_user(&obj.namespace().unwrap_or_default(), account);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&user) {
            return Ok(client.clone());
        }
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(user.clone());
        let client = Client::try_from(config).map_err(|e| format!("impersonating {user}: {e}"))?;
        clients.insert(user, client.clone());
        Ok(client)
    }
}

/// Runs until a shutdown signal.
pub async fn run(client: Client, config: kube::Config, settings: Settings) {
    run_with_handoff(client, config, settings, None).await
}

/// `run`, applying with a hand-off to the canary analyzer of the same process.
pub async fn run_with_handoff(
    client: Client,
    config: kube::Config,
    settings: Settings,
    handoff: Option<HandoffRef>,
) {
    let Settings {
        storage,
        namespace,
        label_selector,
        tenancy,
    } = settings;
    let (kustomizations, sources): (Api<Kustomization>, Api<GitRepository>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let selected = match &label_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let reconciler = Kustomizations {
        handoff,
        ..Kustomizations::new(client.clone(), config, storage, tenancy)
    };
    let controller = Scaffold::new(reconciler, client, kustomizations, selected);
    let store = controller.store();
    // A new artifact of a source wakes the Kustomizations built from it.
    let built_from = move |source: GitRepository| {
        let (ns, name) = (source.namespace().unwrap_or_default(), source.name_any());
        store
            .state()
            .iter()
            .filter(|k| {
                let r = &k.spec.source_ref;
                r.kind == "GitRepository"
                    && r.name == name
                    && r.namespace.clone().or_else(|| k.namespace()).as_deref() == Some(ns.as_str())
            })
            .map(|k| ObjectRef::from_obj(&**k))
            .collect::<Vec<_>>()
    };
    controller.watches(sources, built_from).run().await;
}

/// The artifact of a Kustomization's source, read once per reconcile: `Ok(None)` when the source
/// has none yet, `Err` saying why it could not be read. Its revision is part of the trigger: a new
/// one makes a reconcile due at once.
pub struct SourceArtifact(Result<Option<ArtifactStatus>, String>);

impl SourceArtifact {
    fn revision(&self) -> Option<&str> {
        match &self.0 {
            Ok(Some(artifact)) => Some(&artifact.revision),
            _ => None,
        }
    }
}

impl Hash for SourceArtifact {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.revision().hash(state);
    }
}

impl Reconciler for Kustomizations {
    type Object = Kustomization;
    type Inputs = SourceArtifact;
    type Error = ControllerError;
    const REPORTER: &'static str = "sluice-kustomize";
    const FINALIZER: Option<&'static str> = Some(crate::api::FINALIZER);

    fn suspended(obj: &Kustomization) -> bool {
        obj.spec.suspend
    }

    async fn cleanup(&self, obj: &Kustomization) -> Result<Option<EventPlan>, ControllerError> {
        let ns = obj.namespace().ok_or(ControllerError::NoNamespace)?;
        // Its service account is gone (e.g. its namespace is being deleted): nothing can be
        // deleted in its name, and waiting would block the namespace forever.
        if let Some(account) = &obj.spec.service_account_name
            && let Ok(None) = Api::<ServiceAccount>::namespaced(self.client.clone(), &ns)
                .get_opt(account)
                .await
        {
            let why = format!("its service account {account} no longer exists");
            return Ok(super::deletion::orphaned(obj, &why));
        }
        let client = self
            .tenant_client(obj)
            .map_err(ControllerError::Impersonate)?;
        let interval = duration::parse(&obj.spec.interval).unwrap_or(Duration::from_secs(600));
        let timeout = obj
            .spec
            .timeout
            .as_deref()
            .and_then(|t| duration::parse(t).ok())
            .unwrap_or(interval);
        Ok(super::deletion::finalize(&client, &self.discovery, obj, timeout).await?)
    }

    async fn inputs(&self, obj: &Kustomization) -> SourceArtifact {
        let ns = obj.namespace().unwrap_or_default();
        // A reference the agent forbids is not read at all (the reconcile says why).
        if self.tenancy.check_references(&obj.spec, &ns).is_err() {
            return SourceArtifact(Ok(None));
        }
        // A source in another namespace is read as the tenant: only one whose identity may read
        // it can build from it. The agent reads sources of the Kustomization's own namespace
        // (which it watches anyway), so tenants need no rights on them.
        let other_namespace = obj
            .spec
            .source_ref
            .namespace
            .as_deref()
            .is_some_and(|source_ns| source_ns != ns);
        let client = if other_namespace {
            match self.tenant_client(obj) {
                Ok(client) => client,
                Err(message) => return SourceArtifact(Err(message)),
            }
        } else {
            self.client.clone()
        };
        SourceArtifact(read_artifact(obj, &client).await)
    }

    async fn reconcile(
        &self,
        obj: &Kustomization,
        artifact: SourceArtifact,
        attempt: &Attempt<'_>,
    ) -> Result<Plan<KustomizationStatus>, ControllerError> {
        let started = tokio::time::Instant::now();
        let ns = obj.namespace().ok_or(ControllerError::NoNamespace)?;
        let mut current = obj.status.clone().unwrap_or_default();
        let open_until = obj.annotations().get(OPEN_UNTIL_ANNOTATION);
        let window = window::parse(&obj.spec.release_windows)
            .map(|w| w.at_opened(open_until.map(String::as_str), Timestamp::now()))
            .map_err(|e| e.message());
        if let Some(revision) = artifact.revision()
            && window.as_ref().is_ok_and(State::is_open)
        {
            self.mark_reconciling(obj, &mut current, revision).await?;
        }
        let interval = duration::parse(&obj.spec.interval);
        let retry = obj.spec.retry_interval.as_deref().map(duration::parse);
        let outcome = match (&interval, &retry) {
            (Err(e), _) => Outcome::InvalidSpec {
                message: format!("spec.interval: {e}"),
            },
            (_, Some(Err(e))) => Outcome::InvalidSpec {
                message: format!("spec.retryInterval: {e}"),
            },
            (Ok(interval), _) => self.gather(obj, &ns, *interval, artifact.0, window).await,
        };
        let interval = interval.unwrap_or(Duration::from_secs(600));
        let now = Timestamp::now().to_string();
        let ctx = status::Context {
            current: &current,
            stamp: Stamp {
                generation: obj.metadata.generation,
                now: &now,
            },
            requested_at: attempt.requested_at,
            interval,
            retry_interval: retry.and_then(Result::ok).unwrap_or(interval),
            elapsed: started.elapsed(),
        };
        Ok(status::plan(&ctx, outcome))
    }
}

/// What a reconcile outside every release window says: whether a revision or spec waits (it
/// differs from what was applied, or it already waited), and nothing else.
fn outside_window(
    obj: &Kustomization,
    revision: &str,
    why: &str,
    opens_in: Option<Duration>,
) -> Outcome {
    let status = obj.status.clone().unwrap_or_default();
    let waited = condition::find(&status.conditions, RECONCILING)
        .is_some_and(|c| c.reason == Reason::OutsideReleaseWindow.as_str());
    let pending = waited
        || status.last_applied_revision.as_deref() != Some(revision)
        || status.observed_generation != obj.metadata.generation;
    let message = if pending {
        format!("Revision {revision} waits: {why}")
    } else {
        format!("Nothing is applied or corrected: {why}")
    };
    Outcome::OutsideWindow {
        message,
        pending,
        opens_in,
    }
}

/// Reads the artifact of `obj`'s source. Only GitRepository sources are read.
async fn read_artifact(
    obj: &Kustomization,
    client: &Client,
) -> Result<Option<ArtifactStatus>, String> {
    let reference = &obj.spec.source_ref;
    if reference.kind != "GitRepository" {
        return Ok(None);
    }
    let own = obj.namespace().unwrap_or_default();
    let source_ns = reference.namespace.as_deref().unwrap_or(&own);
    let what = format!("GitRepository {source_ns}/{}", reference.name);
    match Api::<GitRepository>::namespaced(client.clone(), source_ns)
        .get_opt(&reference.name)
        .await
    {
        Ok(Some(source)) => Ok(source.status.and_then(|s| s.artifact)),
        Ok(None) => Err(format!("{what} not found")),
        Err(e) => Err(format!("reading {what}: {e}")),
    }
}

impl Kustomizations {
    /// Says `Reconciling=True` while a new revision or spec is being worked on (one status write;
    /// an interval's re-check of the same revision and spec writes nothing here), and updates
    /// `current` to match what was written.
    async fn mark_reconciling(
        &self,
        obj: &Kustomization,
        current: &mut KustomizationStatus,
        revision: &str,
    ) -> Result<(), ControllerError> {
        let new_work = current.last_attempted_revision.as_deref() != Some(revision)
            || current.observed_generation != obj.metadata.generation;
        if !new_work || obj.spec.suspend {
            return Ok(());
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let stamp = Stamp {
            generation: obj.metadata.generation,
            now: &now,
        };
        let message = format!("Reconciling revision {revision}");
        let reconciling = stamp.condition(RECONCILING, true, Common::Progressing, message);
        condition::set(&mut current.conditions, reconciling);
        let status = serde_json::json!({ "conditions": current.conditions });
        patch_status(&self.client, obj, &status)
            .await
            .map(drop)
            .map_err(|e| ControllerError::MarkReconciling(Box::new(e)))
    }

    /// Does the work of one reconcile and says how it went.
    async fn gather(
        &self,
        obj: &Kustomization,
        ns: &str,
        interval: Duration,
        artifact: Result<Option<ArtifactStatus>, String>,
        window: Result<State, String>,
    ) -> Outcome {
        let name = obj.name_any();
        let name = name.as_str();
        let spec = &obj.spec;
        if spec.suspend {
            return Outcome::Suspended;
        }
        let timeout = match spec.timeout.as_deref().map(duration::parse).transpose() {
            Ok(timeout) => timeout.unwrap_or(interval),
            Err(e) => {
                return Outcome::InvalidSpec {
                    message: format!("spec.timeout: {e}"),
                };
            }
        };
        // Expressions that do not compile stop the reconcile before anything is read or applied.
        let exprs = match HealthExprs::compile(&spec.health_check_exprs) {
            Ok(exprs) => exprs,
            Err(e) => {
                return Outcome::InvalidSpec {
                    message: e.to_string(),
                };
            }
        };
        let window = match window {
            Ok(window) => window,
            Err(message) => return Outcome::InvalidSpec { message },
        };
        if let Err(message) = self.tenancy.check_references(spec, ns) {
            return Outcome::AccessDenied { message };
        }
        // From here on, everything is read and written as the tenant.
        let client = match self.tenant_client(obj) {
            Ok(client) => client,
            Err(message) => {
                return Outcome::Waiting {
                    reason: Reason::ReconciliationFailed,
                    message,
                };
            }
        };
        if !spec.depends_on.is_empty()
            && let Some(outcome) = self.dependencies(obj, ns, &client).await
        {
            return outcome;
        }

        // The source and its artifact.
        if spec.source_ref.kind != "GitRepository" {
            let message = format!(
                "spec.sourceRef.kind {} is not supported (GitRepository is)",
                spec.source_ref.kind
            );
            return Outcome::InvalidSpec { message };
        }
        let artifact = match artifact {
            Ok(artifact) => artifact,
            Err(message) => {
                return Outcome::Waiting {
                    reason: Reason::ArtifactFailed,
                    message,
                };
            }
        };
        let Some(artifact) = artifact else {
            let source_ns = spec.source_ref.namespace.as_deref().unwrap_or(ns);
            let message = format!(
                "GitRepository {source_ns}/{} has no artifact yet",
                spec.source_ref.name
            );
            return Outcome::Waiting {
                reason: Reason::ArtifactFailed,
                message,
            };
        };
        let revision = artifact.revision.clone();
        if let Some(why) = window.closed_message() {
            return outside_window(obj, &revision, &why, window.opens_in(Timestamp::now()));
        }
        let failed = |digest: &str, reason, message| Outcome::Failed {
            revision: revision.clone(),
            digest: digest.into(),
            reason,
            message,
        };

        // Build, from where the storage layout and the digest say (never a path from a status).
        let source_ns = spec.source_ref.namespace.as_deref().unwrap_or(ns);
        let root = match artifact_path(
            &self.storage,
            source_ns,
            &spec.source_ref.name,
            &artifact.digest,
        ) {
            Ok(root) => root,
            Err(e) => return failed("", Reason::ArtifactFailed, e.to_string()),
        };
        if !tokio::fs::try_exists(&root).await.unwrap_or(false) {
            let message = format!(
                "artifact {} of GitRepository {source_ns}/{} is not in storage",
                artifact.digest, spec.source_ref.name
            );
            return failed("", Reason::ArtifactFailed, message);
        }
        let objects = match self.build_objects(spec, ns, &root, &client).await {
            Ok(objects) => objects,
            Err(message) => return failed("", Reason::BuildFailed, message),
        };
        let digest = format!(
            "sha256:{:x}",
            Sha256::digest(serde_json::to_vec(&objects).expect("objects serialize"))
        );

        // Apply and prune, as the tenant.
        let applier = Applier::with_discovery(client.clone(), self.discovery.clone());
        let store = StatusStore::new(Api::namespaced(self.client.clone(), ns), ns, name);
        let owner = Owner {
            name: name.into(),
            namespace: ns.into(),
        };
        let options = ReconcileOptions {
            apply: ApplyOptions {
                force: spec.force,
                crd_timeout: timeout,
                handoff: self.handoff.clone(),
                revision: Some(revision.clone()),
                ..Default::default()
            },
            owner,
            prune: spec.prune,
            allow_empty: false,
        };
        let report = match reconcile_objects(&applier, &store, objects, &options).await {
            Ok(report) => report,
            Err(e) => return failed(&digest, Reason::ReconciliationFailed, error_chain(&e)),
        };
        let changes = Changes::of(&report);
        if let Some(message) = changes.prune_failed() {
            return failed(&digest, Reason::PruneFailed, message);
        }

        // Health.
        let checks: Vec<(ObjectId, String)> = if spec.wait {
            report.applied_objects()
        } else {
            spec.health_checks
                .iter()
                .map(|c| {
                    let (group, version) = c
                        .api_version
                        .split_once('/')
                        .unwrap_or(("", &c.api_version));
                    let namespace = c.namespace.clone().unwrap_or_default();
                    (
                        ObjectId {
                            namespace,
                            name: c.name.clone(),
                            group: group.into(),
                            kind: c.kind.clone(),
                        },
                        version.into(),
                    )
                })
                .collect()
        };
        if !checks.is_empty()
            && let Err(e) = health::wait_with(
                &client,
                applier.discovery(),
                &checks,
                timeout,
                self.handoff.as_deref(),
                &exprs,
                |_| {},
            )
            .await
        {
            let message = if changes.summary.is_empty() {
                e.to_string()
            } else {
                format!("{e}\n{}", changes.summary)
            };
            return failed(&digest, Reason::HealthCheckFailed, message);
        }
        Outcome::Applied {
            revision,
            digest,
            summary: changes.summary,
            checked_health: !checks.is_empty(),
            warnings: changes.warnings,
        }
    }

    /// `None` when every dependency is ready; otherwise the outcome that says why not. The
    /// dependency graph is walked with gets as the tenant (no cluster-wide list), up to
    /// `MAX_DEPENDENCY_GRAPH` Kustomizations; a transitive one the tenant cannot read ends its
    /// branch of the walk.
    async fn dependencies(
        &self,
        obj: &Kustomization,
        ns: &str,
        client: &Client,
    ) -> Option<Outcome> {
        let deps_of = |k: &Kustomization| -> Vec<Key> {
            let own = k.namespace().unwrap_or_default();
            k.spec
                .depends_on
                .iter()
                .map(|d| {
                    (
                        d.namespace.clone().unwrap_or_else(|| own.clone()),
                        d.name.clone(),
                    )
                })
                .collect()
        };
        let me = (ns.to_string(), obj.name_any());
        let direct = deps_of(obj);
        let mut edges: BTreeMap<Key, Vec<Key>> = BTreeMap::from([(me.clone(), direct.clone())]);
        let mut found: BTreeMap<Key, Kustomization> = BTreeMap::new();
        let mut queue: VecDeque<Key> = direct.iter().cloned().collect();
        while let Some(key) = queue.pop_front() {
            if edges.contains_key(&key) || edges.len() >= MAX_DEPENDENCY_GRAPH {
                continue;
            }
            let got = Api::<Kustomization>::namespaced(client.clone(), &key.0)
                .get_opt(&key.1)
                .await;
            match got {
                Ok(Some(k)) => {
                    let next = deps_of(&k);
                    queue.extend(next.iter().cloned());
                    edges.insert(key.clone(), next);
                    found.insert(key, k);
                }
                Ok(None) => {
                    edges.insert(key, Vec::new());
                }
                Err(e) if direct.contains(&key) => {
                    return Some(Outcome::Waiting {
                        reason: Reason::DependencyNotReady,
                        message: format!("reading dependency {}/{}: {e}", key.0, key.1),
                    });
                }
                Err(_) => {
                    edges.insert(key, Vec::new());
                }
            }
        }
        if let Some(cycle) = depends::cycle_through(&me, &edges) {
            let path: Vec<String> = cycle.iter().map(|(n, k)| format!("{n}/{k}")).collect();
            return Some(Outcome::Stalled {
                reason: Reason::DependencyCycle,
                message: format!("dependsOn cycle: {}", path.join(" -> ")),
            });
        }
        let mut states = BTreeMap::new();
        for key in &direct {
            let Some(k) = found.get(key) else {
                continue;
            };
            let status = k.status.clone().unwrap_or_default();
            let ready = condition::is_true(&status.conditions, READY)
                && status.observed_generation == k.metadata.generation;
            let source_ns = k
                .spec
                .source_ref
                .namespace
                .clone()
                .or_else(|| k.namespace())
                .unwrap_or_default();
            let source = Api::<GitRepository>::namespaced(client.clone(), &source_ns)
                .get_opt(&k.spec.source_ref.name)
                .await;
            let source_revision = source
                .ok()
                .flatten()
                .and_then(|s| s.status?.artifact)
                .map(|a| a.revision);
            states.insert(
                key.clone(),
                DependencyState {
                    ready,
                    last_applied_revision: status.last_applied_revision,
                    source_revision,
                },
            );
        }
        depends::check(&direct, &states)
            .err()
            .map(|message| Outcome::Waiting {
                reason: Reason::DependencyNotReady,
                message,
            })
    }

    /// Renders the artifact's path with the spec's Flux extras and post-build variables.
    async fn build_objects(
        &self,
        spec: &KustomizationSpec,
        ns: &str,
        root: &std::path::Path,
        client: &Client,
    ) -> Result<Vec<Value>, String> {
        let spec_value = serde_json::to_value(spec).expect("specs serialize");
        let (flux, substitute) =
            build::flux_options_from_spec(&spec_value).map_err(|e| format!("spec: {e}"))?;
        let mut vars: Option<BTreeMap<String, String>> = None;
        if let Some(post_build) = &spec.post_build {
            let mut merged = BTreeMap::new();
            for reference in &post_build.substitute_from {
                merged.extend(
                    substitute_from(
                        client,
                        ns,
                        &reference.kind,
                        &reference.name,
                        reference.optional,
                    )
                    .await?,
                );
            }
            merged.extend(substitute.unwrap_or_default());
            vars = Some(merged);
        }
        let options = BuildOptions {
            flux,
            substitute: vars,
            ..Default::default()
        };
        let path = root.join(spec.path.as_deref().unwrap_or("./"));
        let root = root.to_path_buf();
        // Building reads files: keep it off the async workers.
        let built = tokio::task::spawn_blocking(move || {
            build::render(&root, &path, &options).map(|mut objects| {
                build::apply_order(&mut objects);
                objects
            })
        })
        .await
        .map_err(|e| format!("the build task failed: {e}"))?;
        built
            .map(|objects| objects.into_iter().map(|o| o.into_value()).collect())
            .map_err(|e| e.to_string())
    }
}

/// The variables of one `postBuild.substituteFrom` entry.
async fn substitute_from(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, String>, String> {
    let missing = || {
        if optional {
            Ok(BTreeMap::new())
        } else {
            Err(format!(
                "postBuild.substituteFrom: {kind} {ns}/{name} not found"
            ))
        }
    };
    match kind {
        "ConfigMap" => match Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
        {
            Ok(Some(cm)) => Ok(cm.data.unwrap_or_default()),
            Ok(None) => missing(),
            Err(e) => Err(format!("reading ConfigMap {ns}/{name}: {e}")),
        },
        "Secret" => match Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
        {
            Ok(Some(secret)) => Ok(secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect()),
            Ok(None) => missing(),
            Err(e) => Err(format!("reading Secret {ns}/{name}: {e}")),
        },
        other => Err(format!(
            "postBuild.substituteFrom: kind {other} is not ConfigMap or Secret"
        )),
    }
}

/// The most Kustomizations a dependency walk reads.
const MAX_DEPENDENCY_GRAPH: usize = 1000;
