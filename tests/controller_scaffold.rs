//! The controller scaffold on the real control plane, with a reconcile defined here (over the
//! GitRepository kind, whose CRD the agent installs): a reconcile that panics is caught, logged and
//! reported on its own object while the others keep reconciling; a deleted object's schedule is
//! forgotten; Flux's `reconcile.fluxcd.io/requestedAt` triggers a reconcile and is reported as
//! `status.lastHandledReconcileAt`.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use sluice::api::condition::{self, ConditionStatus, READY};
use sluice::api::duration;
use sluice::api::git_repository::{GitRepository, GitRepositoryStatus};
use sluice::runtime::conditions::{Common, Stamp};
use sluice::runtime::controller::{Attempt, Plan, Reconciler, Scaffold};
use sluice::runtime::schedule::{Requeue, Schedule};

/// Says Ready=True on every object, reports the trigger it handled and looks again after
/// `spec.interval`, except that it panics on objects labelled `test.sluice.dev/panic`. Counts the
/// reconciles it starts, by name.
struct Probe {
    started: Arc<Mutex<HashMap<String, usize>>>,
}

impl Reconciler for Probe {
    type Object = GitRepository;
    type Inputs = ();
    type Error = std::convert::Infallible;
    const REPORTER: &'static str = "sluice-test-probe";

    async fn inputs(&self, _obj: &GitRepository) {}

    async fn reconcile(
        &self,
        obj: &GitRepository,
        (): (),
        attempt: &Attempt<'_>,
    ) -> Result<Plan<GitRepositoryStatus>, Self::Error> {
        *self
            .started
            .lock()
            .unwrap()
            .entry(obj.name_any())
            .or_default() += 1;
        tokio::task::yield_now().await;
        if obj.labels().contains_key("test.sluice.dev/panic") {
            panic!("test reconcile of {} panics", obj.name_any());
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let stamp = Stamp {
            generation: obj.metadata.generation,
            now: &now,
        };
        let mut status = obj.status.clone().unwrap_or_default();
        condition::set(
            &mut status.conditions,
            stamp.condition(READY, true, Common::Succeeded, "probed"),
        );
        condition::remove(&mut status.conditions, condition::RECONCILING);
        status.observed_generation = obj.metadata.generation;
        if let Some(requested) = attempt.requested_at {
            status.last_handled_reconcile_at = Some(requested.into());
        }
        let changed = obj.status.as_ref() != Some(&status);
        Ok(Plan {
            status: changed.then_some(status),
            event: None,
            requeue: Requeue::After(duration::parse(&obj.spec.interval).unwrap()),
        })
    }
}

struct Env {
    client: Client,
    ns: support::TestNamespace,
    api: Api<GitRepository>,
    started: Arc<Mutex<HashMap<String, usize>>>,
    schedule: Arc<Schedule<GitRepository>>,
    controller: tokio::task::JoinHandle<()>,
}

impl Env {
    async fn start(prefix: &str) -> Env {
        let client = support::client().await;
        support::install_crds(&client).await;
        let ns = support::TestNamespace::new(&client, prefix).await;
        let api: Api<GitRepository> = Api::namespaced(client.clone(), ns.name());
        let started = Arc::new(Mutex::new(HashMap::new()));
        let probe = Probe {
            started: started.clone(),
        };
        let scaffold = Scaffold::new(
            probe,
            client.clone(),
            api.clone(),
            watcher::Config::default(),
        );
        let schedule = scaffold.schedule();
        let controller = tokio::spawn(scaffold.run());
        Env {
            client,
            ns,
            api,
            started,
            schedule,
            controller,
        }
    }

    async fn create(&self, name: &str, interval: &str, panics: bool) {
        let labels = if panics {
            serde_json::json!({"test.sluice.dev/panic": "true"})
        } else {
            serde_json::json!({})
        };
        let repo: GitRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository",
            "metadata": {"name": name, "labels": labels},
            "spec": {"url": "https://git.example.com/never-fetched.git", "interval": interval}
        }))
        .unwrap();
        self.api
            .create(&PostParams::default(), &repo)
            .await
            .unwrap();
    }

    fn started(&self, name: &str) -> usize {
        self.started.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    async fn wait_for(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&GitRepositoryStatus) -> bool,
    ) -> GitRepositoryStatus {
        let mut last = None;
        for _ in 0..300 {
            let status = self.api.get(name).await.unwrap().status.unwrap_or_default();
            if check(&status) {
                return status;
            }
            last = Some(status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name}: never {what}; last status: {last:#?}");
    }

    async fn finish(self) {
        self.controller.abort();
        self.ns.cleanup(&self.client).await;
    }
}

/// Polls `check` every 100 ms, up to 30 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never {what}");
}

fn ready(status: &GitRepositoryStatus) -> Option<&condition::Condition> {
    condition::find(&status.conditions, READY)
}

#[tokio::test]
async fn a_panicking_reconcile_is_reported_on_its_object_and_the_others_keep_going() {
    let env = Env::start("scaffold-panic").await;
    env.create("calm", "1s", false).await;
    env.create("boom", "1s", true).await;

    let boom = env
        .wait_for("boom", "reported the panic", |s| {
            ready(s).is_some_and(|c| c.reason == "ReconcilePanicked")
        })
        .await;
    let cond = ready(&boom).unwrap();
    assert_eq!(cond.status, ConditionStatus::False);
    assert!(
        cond.message.contains("test reconcile of boom panics"),
        "{cond:#?}"
    );
    assert!(
        condition::is_true(&boom.conditions, condition::RECONCILING),
        "retrying: {boom:#?}"
    );
    env.wait_for("calm", "reconciled", |s| {
        ready(s).is_some_and(|c| c.is_true())
    })
    .await;

    // The controller lives on: the calm object keeps its one-second interval, the panicking one is
    // retried with backoff, and a new object is picked up.
    let (calm, panicked) = (env.started("calm"), env.started("boom"));
    eventually("reconciled calm twice more", || {
        env.started("calm") >= calm + 2
    })
    .await;
    eventually("retried boom", || env.started("boom") > panicked).await;
    env.create("late", "1s", false).await;
    env.wait_for("late", "reconciled", |s| {
        ready(s).is_some_and(|c| c.is_true())
    })
    .await;

    let events: Api<Event> = Api::namespaced(env.client.clone(), env.ns.name());
    let listed = events
        .list(&ListParams::default().fields("involvedObject.name=boom"))
        .await
        .unwrap();
    let warning = listed
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("ReconcilePanicked"))
        .unwrap_or_else(|| panic!("no ReconcilePanicked Event: {:#?}", listed.items));
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    env.finish().await;
}

#[tokio::test]
async fn a_deleted_object_is_forgotten() {
    let env = Env::start("scaffold-forget").await;
    for name in ["keep", "drop"] {
        env.create(name, "1s", false).await;
    }
    env.create("boom", "1s", true).await;
    eventually("remembered three objects", || env.schedule.len() == 3).await;

    for name in ["drop", "boom"] {
        env.api
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("forgot the deleted objects", || env.schedule.len() == 1).await;
    // The one left is still reconciled (and so remembered).
    let keep = env.started("keep");
    eventually("reconciled keep again", || env.started("keep") > keep).await;
    assert_eq!(env.schedule.len(), 1);
    env.finish().await;
}

#[tokio::test]
async fn flux_and_sluice_triggers_are_handled_and_reported() {
    let env = Env::start("scaffold-trigger").await;
    // With a one-hour interval only a trigger reconciles again.
    env.create("app", "1h", false).await;
    env.wait_for("app", "reconciled", |s| {
        ready(s).is_some_and(|c| c.is_true())
    })
    .await;

    for (annotation, value) in [
        ("reconcile.fluxcd.io/requestedAt", "2026-11-23T10:00:00Z"),
        ("sluice.dev/requestedAt", "by-sluice"),
        ("reconcile.fluxcd.io/requestedAt", "1795426800"),
    ] {
        let patch = serde_json::json!({"metadata": {"annotations": {annotation: value}}});
        env.api
            .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        env.wait_for("app", &format!("handled {annotation}={value}"), |s| {
            s.last_handled_reconcile_at.as_deref() == Some(value)
        })
        .await;
    }
    env.finish().await;
}
