//! The analyzer's side of the applier's hand-off (`apply::handoff::Handoff`): the applier yields
//! to the analyzer's field manager on the objects a Canary manages (its target's replicas, the
//! generated Services), wakes the analysis at once when it writes a target or a configuration
//! it tracks (no waiting for a watch), tells it the replicas the manifest wants, and asks it the
//! health of a target: healthy once its Canary promoted or initialized the applied revision,
//! failed when the analysis rolled it back, in progress meanwhile. It also remembers the source
//! revision (the Git commit) each target's analysed revision came from, for the reports to Git.
//! No I/O besides waking the controller; `target_health` is pure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::objects::FIELD_MANAGER;
use super::revision;
use super::spec::TargetKind;
use super::workload;
use crate::api::canary::{Canary, Phase};
use crate::api::condition::{self, READY, STALLED};
use crate::apply::handoff::Handoff;
use crate::apply::health::Health;
use crate::apply::inventory::ObjectId;

type Key = (String, String);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the applier handed over, shared with the controller.
#[derive(Default)]
pub struct Handed {
    /// The target Deployments the applier wrote, newer than the watch may have seen.
    targets: Mutex<HashMap<Key, Arc<Deployment>>>,
    /// The replicas each target's manifest asks for (the primary gets them).
    intended: Mutex<HashMap<Key, i64>>,
    /// The node selector each DaemonSet target's manifest asks for (the analyzer writes it, with
    /// its scale-to-zero key while the target is scaled to zero: the map is written whole).
    node_selectors: Mutex<HashMap<Key, Value>>,
    /// Checksums of the ConfigMaps and Secrets the applier wrote, by `namespace`, `Kind/name`.
    configs: Mutex<HashMap<Key, String>>,
    /// The source revision at which the applier last changed what each target's analysis looks
    /// at (its template as built, or a configuration its Canary tracks).
    sources: Mutex<HashMap<Key, Source>>,
}

/// Where a target's manifest last changed: the checksum of its template as built, the checksum
/// of the template the API server stored when the applier last wrote it, and the source
/// revision that built it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    template: String,
    live: Option<String>,
    revision: String,
}

impl Handed {
    /// The newer of the watched target and the one the applier wrote (by generation).
    pub fn newest(
        &self,
        namespace: &str,
        name: &str,
        watched: Option<Arc<Deployment>>,
    ) -> Option<Arc<Deployment>> {
        let key = (namespace.to_string(), name.to_string());
        let mut targets = lock(&self.targets);
        let Some(written) = targets.get(&key).cloned() else {
            return watched;
        };
        let generation = |d: &Deployment| d.metadata.generation.unwrap_or(0);
        match watched {
            Some(watched) if generation(&watched) >= generation(&written) => {
                targets.remove(&key);
                Some(watched)
            }
            _ => Some(written),
        }
    }

    pub fn intended_replicas(&self, namespace: &str, name: &str) -> Option<i64> {
        lock(&self.intended)
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    pub fn intended_node_selector(&self, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.node_selectors)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The source revision (`main@sha1:<sha>`) that brought the target's revision `analysed`
    /// (the checksum of its live template), as far as this process applied it; `None` when the
    /// applier did not write that template (someone changed the target by hand).
    pub fn source_revision(&self, namespace: &str, target: &str, analysed: &str) -> Option<String> {
        lock(&self.sources)
            .get(&(namespace.to_string(), target.to_string()))
            .filter(|s| s.live.as_ref().is_none_or(|live| live == analysed))
            .map(|s| s.revision.clone())
    }

    /// Remembers that the applier applied `target` with `template` at `revision` (`live`: the
    /// checksum of what it wrote, if it wrote): a new source revision only when the template
    /// changed (a later commit that leaves it alone did not bring it).
    fn applied_target(&self, key: Key, template: String, live: Option<String>, revision: &str) {
        let mut sources = lock(&self.sources);
        match sources.get_mut(&key) {
            Some(source) if source.template == template => {
                if live.is_some() {
                    source.live = live;
                }
            }
            _ => {
                sources.insert(
                    key,
                    Source {
                        template,
                        live,
                        revision: revision.to_string(),
                    },
                );
            }
        }
    }

    /// Remembers that a configuration `target` reads changed at `revision`.
    fn changed_config(&self, key: Key, revision: &str) {
        let mut sources = lock(&self.sources);
        let source = sources.entry(key).or_insert_with(|| Source {
            template: String::new(),
            live: None,
            revision: String::new(),
        });
        source.revision = revision.to_string();
    }

    fn written_config(&self, namespace: &str, key: &str) -> Option<String> {
        lock(&self.configs)
            .get(&(namespace.to_string(), key.to_string()))
            .cloned()
    }
}

/// The names a Canary's analysis manages.
struct Names {
    target: String,
    primary: String,
    apex: String,
}

fn names(canary: &Canary) -> Names {
    let target = canary.spec.target_ref.name.clone();
    let apex = canary
        .spec
        .service
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| target.clone());
    Names {
        primary: format!("{target}-primary"),
        target,
        apex,
    }
}

pub struct CanaryHandoff {
    canaries: Store<Canary>,
    handed: Arc<Handed>,
    wake: UnboundedSender<ObjectRef<Canary>>,
}

impl CanaryHandoff {
    pub fn new(
        canaries: Store<Canary>,
        handed: Arc<Handed>,
        wake: UnboundedSender<ObjectRef<Canary>>,
    ) -> CanaryHandoff {
        CanaryHandoff {
            canaries,
            handed,
            wake,
        }
    }

    fn in_namespace(&self, namespace: &str) -> impl Iterator<Item = Arc<Canary>> {
        let namespace = namespace.to_string();
        self.canaries
            .state()
            .into_iter()
            .filter(move |c| c.namespace().as_deref() == Some(namespace.as_str()))
    }

    /// The Canaries whose target is this Deployment or DaemonSet.
    fn targeting(&self, id: &ObjectId) -> Vec<Arc<Canary>> {
        if id.group != "apps" {
            return Vec::new();
        }
        self.in_namespace(&id.namespace)
            .filter(|c| {
                c.spec.target_ref.name == id.name
                    && TargetKind::of(&c.spec).is_some_and(|k| k.kind() == id.kind)
            })
            .collect()
    }

    /// Whether a Canary manages (fields of) this object.
    fn manages(&self, id: &ObjectId) -> bool {
        self.in_namespace(&id.namespace).any(|c| {
            let n = names(&c);
            match (id.group.as_str(), id.kind.as_str()) {
                ("apps", "Deployment" | "DaemonSet") => {
                    TargetKind::of(&c.spec).is_some_and(|k| k.kind() == id.kind)
                        && (id.name == n.target || id.name == n.primary)
                }
                ("", "Service") => {
                    id.name == n.apex
                        || id.name == format!("{}-primary", n.apex)
                        || id.name == format!("{}-canary", n.apex)
                }
                ("gateway.networking.k8s.io", "HTTPRoute")
                | ("networking.istio.io", "VirtualService")
                | ("projectcontour.io", "HTTPProxy")
                | ("traefik.io", "TraefikService") => id.name == n.apex,
                ("networking.istio.io", "DestinationRule") => {
                    id.name == format!("{}-primary", n.apex)
                        || id.name == format!("{}-canary", n.apex)
                }
                ("networking.k8s.io", "Ingress") => c
                    .spec
                    .ingress_ref
                    .as_ref()
                    .is_some_and(|i| id.name == super::router::nginx::canary_name(&i.name)),
                _ => false,
            }
        })
    }

    fn wake(&self, canary: &Canary) {
        // The controller is gone only when the agent stops.
        let _ = self.wake.unbounded_send(ObjectRef::from_obj(canary));
    }
}

impl Handoff for CanaryHandoff {
    fn yields_to(&self, id: &ObjectId) -> Option<&'static str> {
        self.manages(id).then_some(FIELD_MANAGER)
    }

    fn handed(
        &self,
        id: &ObjectId,
        desired: &Value,
        written: Option<&Value>,
        source: Option<&str>,
    ) {
        let key = (id.namespace.clone(), id.name.clone());
        if matches!(id.kind.as_str(), "ConfigMap" | "Secret") && id.group.is_empty() {
            let Some(written) = written else {
                return;
            };
            let config = format!("{}/{}", id.kind, id.name);
            lock(&self.handed.configs).insert(
                (id.namespace.clone(), config.clone()),
                revision::config_checksum(written),
            );
            for canary in self.in_namespace(&id.namespace).filter(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| s.tracked_configs.contains_key(&config))
            }) {
                if let Some(source) = source {
                    let target = (id.namespace.clone(), canary.spec.target_ref.name.clone());
                    self.handed.changed_config(target, source);
                }
                self.wake(&canary);
            }
            return;
        }
        let canaries = self.targeting(id);
        if canaries.is_empty() {
            return;
        }
        // What a Deployment's manifest asks for, and the Deployment written (a DaemonSet's
        // analysis reads the watch); a DaemonSet's node selector.
        if id.kind == "DaemonSet" {
            let selector = desired
                .pointer("/spec/template/spec/nodeSelector")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            lock(&self.handed.node_selectors).insert(key.clone(), selector);
        }
        if let Some(source) = source {
            let checksum =
                |object: &Value| revision::template_checksum(&workload::template(object));
            let live = written.map(checksum);
            self.handed
                .applied_target(key.clone(), checksum(desired), live, source);
        }
        if id.kind == "Deployment" {
            if let Some(replicas) = desired.pointer("/spec/replicas").and_then(Value::as_i64) {
                lock(&self.handed.intended).insert(key.clone(), replicas);
            }
            if let Some(written) = written.and_then(|w| serde_json::from_value(w.clone()).ok()) {
                lock(&self.handed.targets).insert(key, Arc::new(written));
            }
        }
        for canary in canaries {
            self.wake(&canary);
        }
    }

    fn health(&self, id: &ObjectId, live: &Value) -> Option<Health> {
        let canary = self.targeting(id).into_iter().find(|c| !c.spec.suspend)?;
        let checksum = revision::template_checksum(&workload::template(live));
        let tracked = canary
            .status
            .as_ref()
            .map(|s| s.tracked_configs.clone())
            .unwrap_or_default();
        let configs_moved = tracked.iter().any(|(key, sum)| {
            self.handed
                .written_config(&id.namespace, key)
                .is_some_and(|written| written != *sum)
        });
        Some(target_health(&canary, &checksum, configs_moved))
    }
}

/// The health of a canary's target holding the template with `checksum`: what the Canary says
/// about that revision. `configs_moved`: a configuration it tracks was written since.
pub fn target_health(canary: &Canary, checksum: &str, configs_moved: bool) -> Health {
    let name = format!(
        "Canary {}/{}",
        canary.namespace().unwrap_or_default(),
        canary.name_any()
    );
    let Some(status) = &canary.status else {
        return Health::InProgress(format!("{name} has not started"));
    };
    if condition::is_true(&status.conditions, STALLED) {
        let message = condition::find(&status.conditions, READY)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return Health::Failed(format!("{name} cannot run: {message}"));
    }
    if status.observed_generation != canary.meta().generation {
        return Health::InProgress(format!("{name} has not seen its latest spec yet"));
    }
    if status.last_applied_spec != checksum || configs_moved {
        return Health::InProgress(format!(
            "{name} has not started analysing this revision yet"
        ));
    }
    match status.phase.unwrap_or_default() {
        Phase::Initialized | Phase::Succeeded => Health::Current,
        Phase::Failed => {
            let message = condition::find(&status.conditions, READY)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            Health::Failed(format!("{name} rolled this revision back: {message}"))
        }
        phase => Health::InProgress(format!(
            "{name} is {} (weight {}, iteration {})",
            phase.as_str(),
            status.canary_weight,
            status.iterations
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary::CanaryStatus;
    use serde_json::json;

    fn canary(status: Option<CanaryStatus>) -> Canary {
        let mut canary: Canary = serde_json::from_value(json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": "web", "namespace": "shop", "generation": 3},
            "spec": {"targetRef": {"name": "web"}, "service": {"port": 80}},
        }))
        .unwrap();
        canary.status = status;
        canary
    }

    fn at(phase: Phase, spec: &str) -> CanaryStatus {
        CanaryStatus {
            phase: Some(phase),
            last_applied_spec: spec.into(),
            observed_generation: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn the_target_is_healthy_when_its_revision_is_promoted() {
        assert_eq!(
            target_health(&canary(Some(at(Phase::Succeeded, "a"))), "a", false),
            Health::Current
        );
        assert_eq!(
            target_health(&canary(Some(at(Phase::Initialized, "a"))), "a", false),
            Health::Current
        );
        let progressing = target_health(&canary(Some(at(Phase::Progressing, "a"))), "a", false);
        assert!(matches!(progressing, Health::InProgress(m) if m.contains("Progressing")));
        assert!(matches!(
            target_health(&canary(Some(at(Phase::Failed, "a"))), "a", false),
            Health::Failed(_)
        ));
    }

    #[test]
    fn the_source_revision_is_the_one_that_last_changed_the_target() {
        let handed = Handed::default();
        let key = || ("shop".to_string(), "web".to_string());
        let source = |analysed| handed.source_revision("shop", "web", analysed);
        assert_eq!(source("live1"), None);
        handed.applied_target(key(), "t1".into(), Some("live1".into()), "main@sha1:1");
        // A later commit that leaves the template alone did not bring it.
        handed.applied_target(key(), "t1".into(), None, "main@sha1:2");
        assert_eq!(source("live1").as_deref(), Some("main@sha1:1"));
        // A template the applier did not write came from no commit.
        assert_eq!(source("by-hand"), None);
        handed.applied_target(key(), "t2".into(), Some("live2".into()), "main@sha1:3");
        assert_eq!(source("live2").as_deref(), Some("main@sha1:3"));
        // A configuration the Canary tracks changed: that commit brought the new revision.
        handed.changed_config(key(), "main@sha1:4");
        handed.applied_target(key(), "t2".into(), None, "main@sha1:4");
        assert_eq!(source("live2").as_deref(), Some("main@sha1:4"));
        assert_eq!(handed.source_revision("shop", "api", "live2"), None);
    }

    #[test]
    fn a_revision_the_canary_has_not_seen_is_in_progress_even_after_a_promotion() {
        let older = target_health(&canary(Some(at(Phase::Succeeded, "a"))), "b", false);
        assert!(matches!(older, Health::InProgress(m) if m.contains("not started analysing")));
        let config = target_health(&canary(Some(at(Phase::Succeeded, "a"))), "a", true);
        assert!(matches!(config, Health::InProgress(_)));
        assert!(matches!(
            target_health(&canary(None), "a", false),
            Health::InProgress(_)
        ));
        let mut stale = at(Phase::Succeeded, "a");
        stale.observed_generation = Some(2);
        assert!(matches!(
            target_health(&canary(Some(stale)), "a", false),
            Health::InProgress(_)
        ));
    }
}
