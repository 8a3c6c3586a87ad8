//! The ImageUpdateAutomation controller: whenever a selected ImagePolicy chooses a new image (and
//! every interval), runs the Setters over the GitRepository's files, commits and pushes, then asks
//! the GitRepositories tracking the pushed branch to reconcile at once, so the new image reaches
//! the cluster without waiting for their interval. Runs on the `runtime::controller` scaffold;
//! talks to the API server and, through `run`, to the Git remote. Decisions come from `plan`.

pub mod message;
pub mod plan;
pub mod run;
pub mod signing;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::setters::Scope;
use super::status::{self, Outcome};
use crate::api::REQUESTED_AT_ANNOTATION;
use crate::api::duration;
use crate::api::git_repository::{DEFAULT_TIMEOUT, GitRepository};
use crate::api::image_policy::{ImagePolicy, ImageRef};
use crate::api::image_update_automation::{ImageUpdateAutomation, ImageUpdateAutomationStatus};
use crate::git::url::RemoteUrl;
use crate::git::{Credentials, GitRemote, credentials};
use crate::runtime::conditions::{Stamp, reasons};
use crate::runtime::controller::{Attempt, Plan, Reconciler, Scaffold};
use crate::runtime::text::error_chain;
use crate::runtime::window::{self, State, WindowError};
use run::{Ran, Run, RunError};
use signing::SigningKey;

reasons! {
    /// Reasons of an ImageUpdateAutomation's conditions and Events, besides the `Common` ones.
    pub enum AutomationReason {
        /// Event: a commit was pushed.
        Pushed,
        /// The GitRepository is missing or unusable.
        DependencyNotReady,
        SecretNotFound,
        InvalidSecret,
        AuthenticationFailed,
        GitOperationFailed,
        /// A marker or file could not be updated (the message names the file and line).
        UpdateFailed,
        /// The remote refused the push (after re-applying on its new tip).
        PushRejected,
        SigningFailed,
    }
}

/// The ImageUpdateAutomation reconciler.
pub struct Automations {
    client: Client,
    storage: PathBuf,
}

impl Reconciler for Automations {
    type Object = ImageUpdateAutomation;
    /// The latest images of the ImagePolicies the automation selects.
    type Inputs = BTreeMap<String, Option<ImageRef>>;
    type Error = std::convert::Infallible;
    const REPORTER: &'static str = "sluice-image-automation";

    async fn inputs(&self, obj: &ImageUpdateAutomation) -> Self::Inputs {
        match self.policies(obj).await {
            Ok((selected, _)) => selected,
            Err(_) => BTreeMap::new(),
        }
    }

    fn suspended(obj: &ImageUpdateAutomation) -> bool {
        obj.spec.suspend
    }

    async fn reconcile(
        &self,
        obj: &ImageUpdateAutomation,
        selected: Self::Inputs,
        attempt: &Attempt<'_>,
    ) -> Result<Plan<ImageUpdateAutomationStatus>, Self::Error> {
        let interval = duration::parse(&obj.spec.interval).unwrap_or(Duration::from_secs(600));
        let current = obj.status.clone().unwrap_or_default();
        let mut status = current.clone();
        status.observed_generation = obj.metadata.generation;
        if let Some(r) = attempt.requested_at {
            status.last_handled_reconcile_at = Some(r.to_owned());
        }
        let now = Timestamp::now();
        let window = window::parse(&obj.spec.release_windows).map(|w| w.at(now));
        // Outside every window, look again when the next opens (or at the interval).
        let interval = match &window {
            Ok(state) => state
                .opens_in(now)
                .map_or(interval, |d| interval.min(d + Duration::from_secs(1))),
            Err(_) => interval,
        };
        let now = now.to_string();
        let outcome = self
            .automate(obj, selected, &mut status, &now, window)
            .await;
        if matches!(outcome, Outcome::Failed { .. }) {
            status.last_automation_run_time = Some(now.clone());
        }
        let ctx = status::Context {
            stamp: Stamp {
                generation: obj.metadata.generation,
                now: &now,
            },
            interval,
            failures: attempt.failures,
        };
        let (event, requeue) = status::settle(&mut status.conditions, &ctx, outcome);
        Ok(Plan {
            status: (status != current).then_some(status),
            event,
            requeue,
        })
    }
}

/// Runs until a shutdown signal.
pub async fn run(client: Client, storage: PathBuf, namespace: Option<String>) {
    let (automations, policies): (Api<ImageUpdateAutomation>, Api<ImagePolicy>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let reconciler = Automations {
        client: client.clone(),
        storage,
    };
    let scaffold = Scaffold::new(reconciler, client, automations, watcher::Config::default());
    let store = scaffold.store();
    scaffold
        .watches(policies, move |policy: ImagePolicy| {
            let ns = policy.namespace();
            store
                .state()
                .into_iter()
                .filter(|a| a.namespace() == ns)
                .map(|a| ObjectRef::from_obj(&*a))
                .collect::<Vec<_>>()
        })
        .run()
        .await;
}

impl Automations {
    /// The selected policies' latest images, and the names of every policy of the namespace.
    async fn policies(
        &self,
        obj: &ImageUpdateAutomation,
    ) -> Result<(BTreeMap<String, Option<ImageRef>>, BTreeSet<String>), kube::Error> {
        let ns = obj.namespace().unwrap_or_default();
        let api: Api<ImagePolicy> = Api::namespaced(self.client.clone(), &ns);
        let all = api.list(&Default::default()).await?;
        let mut selected = BTreeMap::new();
        let mut existing = BTreeSet::new();
        for p in all {
            let name = p.name_any();
            if plan::selects(obj.spec.policy_selector.as_ref(), p.labels()) {
                selected.insert(name.clone(), p.status.and_then(|s| s.latest_ref));
            }
            existing.insert(name);
        }
        Ok((selected, existing))
    }

    async fn automate(
        &self,
        obj: &ImageUpdateAutomation,
        selected: BTreeMap<String, Option<ImageRef>>,
        status: &mut ImageUpdateAutomationStatus,
        now: &str,
        window: Result<State, WindowError>,
    ) -> Outcome<AutomationReason> {
        let spec = &obj.spec;
        if spec.suspend {
            return Outcome::Suspended;
        }
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        if let Err(e) = duration::parse(&spec.interval) {
            return Outcome::InvalidSpec {
                message: format!("spec.interval: {e}"),
            };
        }
        if spec.source_ref.namespace.as_ref().is_some_and(|n| *n != ns) {
            return Outcome::InvalidSpec {
                message: "spec.sourceRef.namespace: only GitRepositories of the automation's own namespace can be used".into(),
            };
        }
        match window {
            Err(e) => {
                return Outcome::InvalidSpec {
                    message: e.message(),
                };
            }
            Ok(state) => {
                if let Some(why) = state.closed_message() {
                    return Outcome::Ready {
                        message: format!("No commits are pushed: {why}"),
                        event: None,
                    };
                }
            }
        }
        let failed = |reason, message: String| Outcome::Failed { reason, message };
        let sources: Api<GitRepository> = Api::namespaced(self.client.clone(), &ns);
        let source = match sources.get_opt(&spec.source_ref.name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return failed(
                    AutomationReason::DependencyNotReady,
                    format!("GitRepository {ns}/{} not found", spec.source_ref.name),
                );
            }
            Err(e) => {
                return failed(
                    AutomationReason::DependencyNotReady,
                    format!("reading GitRepository {ns}/{}: {e}", spec.source_ref.name),
                );
            }
        };
        let source_branch = source
            .spec
            .reference
            .as_ref()
            .and_then(|r| r.branch.clone());
        let settings = match plan::settings(spec, source_branch.as_deref()) {
            Ok(s) => s,
            Err(message) => return Outcome::InvalidSpec { message },
        };
        let url = match RemoteUrl::parse(&source.spec.url) {
            Ok(u) => u,
            Err(e) => {
                return failed(
                    AutomationReason::DependencyNotReady,
                    format!("GitRepository {ns}/{}: spec.url: {e}", source.name_any()),
                );
            }
        };
        let credentials = match &source.spec.secret_ref {
            None => Credentials::default(),
            Some(r) => match self.secret(&ns, &r.name).await {
                Err(o) => return o,
                Ok(data) => match credentials::from_secret_data(
                    &url,
                    &data,
                    &format!("Secret {ns}/{}", r.name),
                ) {
                    Ok(c) => c,
                    Err(e) => return failed(AutomationReason::InvalidSecret, e.to_string()),
                },
            },
        };
        let signing_key = match &spec.git.commit.signing_key {
            None => None,
            Some(k) => match self.secret(&ns, &k.secret_ref.name).await {
                Err(o) => return o,
                Ok(data) => match data.get("git.asc") {
                    None => {
                        return failed(
                            AutomationReason::InvalidSecret,
                            format!("Secret {ns}/{} has no \"git.asc\"", k.secret_ref.name),
                        );
                    }
                    Some(armoured) => Some(SigningKey {
                        armoured: armoured.clone(),
                        passphrase: data
                            .get("passphrase")
                            .map(|p| String::from_utf8_lossy(p).trim_end_matches('\n').to_owned()),
                    }),
                },
            },
        };
        let existing = match self.policies(obj).await {
            Ok((_, existing)) => existing,
            Err(e) => {
                return failed(
                    AutomationReason::DependencyNotReady,
                    format!("listing ImagePolicies: {e}"),
                );
            }
        };
        let timeout = duration::parse(source.spec.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT))
            .unwrap_or(Duration::from_secs(60));
        let run = Run {
            remote: GitRemote {
                url: url.clone(),
                credentials,
                timeout,
                insecure: source.spec.insecure,
            },
            cache: self
                .storage
                .join("imageupdateautomation")
                .join(&ns)
                .join(&name)
                .join("cache.git"),
            settings: &settings,
            automation: format!("{ns}/{name}"),
            scope: Scope {
                namespace: ns.clone(),
                selected: selected.clone(),
                existing: Some(existing),
            },
            signing_key,
        };
        let ran = match run.run().await {
            Ok(r) => r,
            Err(e) => return run_failure(&e),
        };
        let Ran {
            checkout_tip,
            pushed,
        } = ran;
        status.observed_source_revision =
            Some(format!("{}@sha1:{checkout_tip}", settings.checkout));
        status.observed_policies = selected
            .into_iter()
            .filter_map(|(n, latest)| Some((n, latest?)))
            .collect();
        if pushed.is_empty() {
            return Outcome::Ready {
                message: format!(
                    "repository up-to-date at {}@sha1:{checkout_tip}",
                    settings.checkout
                ),
                event: None,
            };
        }
        let mut lines = Vec::new();
        for p in &pushed {
            status.last_push_commit = Some(p.commit.clone());
            lines.push(format!(
                "committed and pushed commit {} to branch {} ({} change{})",
                p.commit,
                p.branch,
                p.changes.len(),
                if p.changes.len() == 1 { "" } else { "s" }
            ));
        }
        status.last_push_time = Some(now.to_owned());
        status.last_automation_run_time = Some(now.to_owned());
        let branches: BTreeSet<&str> = pushed.iter().map(|p| p.branch.as_str()).collect();
        self.close_the_loop(&ns, &url, &branches, now).await;
        let message = lines.join("; ");
        Outcome::Ready {
            message: message.clone(),
            event: Some((AutomationReason::Pushed, message)),
        }
    }

    /// Asks every GitRepository of the namespace that tracks a pushed branch of `url` to
    /// reconcile now.
    async fn close_the_loop(
        &self,
        ns: &str,
        url: &RemoteUrl,
        branches: &BTreeSet<&str>,
        now: &str,
    ) {
        let api: Api<GitRepository> = Api::namespaced(self.client.clone(), ns);
        let repositories = match api.list(&Default::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(error = %e, "listing GitRepositories to reconcile after a push failed");
                return;
            }
        };
        for repo in repositories {
            if !tracks(&repo, url, branches) {
                continue;
            }
            let patch =
                serde_json::json!({"metadata": {"annotations": {REQUESTED_AT_ANNOTATION: now}}});
            let name = repo.name_any();
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => tracing::info!(gitrepository = %name, "asked to reconcile after a push"),
                Err(e) => {
                    tracing::warn!(gitrepository = %name, error = %e, "asking to reconcile after a push failed")
                }
            }
        }
    }

    async fn secret(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, Outcome<AutomationReason>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        match api.get_opt(name).await {
            Ok(Some(s)) => Ok(s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()),
            Ok(None) => Err(Outcome::Failed {
                reason: AutomationReason::SecretNotFound,
                message: format!("Secret {ns}/{name} not found"),
            }),
            Err(e) => Err(Outcome::Failed {
                reason: AutomationReason::SecretNotFound,
                message: format!("reading Secret {ns}/{name}: {e}"),
            }),
        }
    }
}

/// Whether `repo` follows one of `branches` of `url` (a branch ref, or the default branch).
fn tracks(repo: &GitRepository, url: &RemoteUrl, branches: &BTreeSet<&str>) -> bool {
    let same_url = RemoteUrl::parse(&repo.spec.url).is_ok_and(|u| u == *url);
    let r = repo.spec.reference.clone().unwrap_or_default();
    let pinned = r.tag.is_some() || r.semver.is_some() || r.name.is_some() || r.commit.is_some();
    let branch = r.branch.as_deref().unwrap_or(plan::DEFAULT_BRANCH);
    same_url && !pinned && branches.contains(branch)
}

fn run_failure(e: &RunError) -> Outcome<AutomationReason> {
    let reason = match e {
        RunError::Git(g) if g.is_auth() => AutomationReason::AuthenticationFailed,
        RunError::Git(crate::git::GitError::Sign { .. }) => AutomationReason::SigningFailed,
        RunError::Git(_) | RunError::NoBranch { .. } => AutomationReason::GitOperationFailed,
        RunError::Setter(_) | RunError::Template(_) => AutomationReason::UpdateFailed,
        RunError::Rejected { .. } => AutomationReason::PushRejected,
    };
    Outcome::Failed {
        reason,
        message: error_chain(e),
    }
}
