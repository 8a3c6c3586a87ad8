//! Carrying out what the state machine decided: create the primary from the target (with its
//! autoscaler and configuration copies), size the canary, route traffic, promote the target's
//! template to the primary, call the post-rollout webhooks. Each action is idempotent and skips
//! its request when the cluster already is as wanted. Talks to the API server and webhooks.

use std::collections::BTreeSet;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use serde_json::Value;

use super::cluster;
use super::machine::{Action, Scale, Traffic};
use super::objects::{self, Owner};
use super::revision::{APEX_LABEL, ConfigKind, ConfigRef};
use super::router::{AnyRouter, Context, Router, RouterError};
use super::spec::{Settings, TargetKind};
use crate::api::canary::{Canary, CanaryStatus};

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("creating the primary {what} failed")]
    Bootstrap {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    Objects(#[from] objects::ObjectsError),
    #[error("the autoscaler {0} does not exist")]
    NoAutoscaler(String),
    #[error("scaling {what} failed")]
    Scale {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("routing traffic with {router} failed")]
    Route {
        router: &'static str,
        #[source]
        source: RouterError,
    },
    #[error("promoting the target's template to {what} failed")]
    Promote {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// What the last successful routing of each canary was, so an unchanged route costs nothing.
#[derive(Default)]
pub struct RouteMemo(Mutex<std::collections::HashMap<String, String>>);

impl RouteMemo {
    fn seen(&self, uid: &str, key: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uid)
            .is_some_and(|k| k == key)
    }

    fn remember(&self, uid: &str, key: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid.to_string(), key);
    }

    pub fn forget(&self, uid: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
    }
}

/// One canary's actions, with what they need.
pub struct Work<'a> {
    pub client: &'a Client,
    pub canary: &'a Canary,
    pub settings: &'a Settings,
    pub router: &'a AnyRouter,
    pub owner: Owner,
    /// The target as the analysis sees it (a DaemonSet as a Deployment: `workload`).
    pub target: &'a Deployment,
    /// The target itself, as JSON.
    pub target_object: &'a Value,
    pub primary: Option<&'a Deployment>,
    /// The configuration the target reads, tracked (`Kind/name`).
    pub tracked: BTreeSet<ConfigRef>,
    /// The replicas the target's manifest asks for, as the applier handed them over.
    pub intended: Option<i64>,
    /// The node selector a DaemonSet target's manifest asks for, as the applier handed it over.
    pub node_selector: Option<Value>,
    pub memo: &'a RouteMemo,
    pub now: k8s_openapi::jiff::Timestamp,
}

fn value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).expect("objects serialize")
}

fn replicas_of(deployment: &Deployment) -> i64 {
    deployment.spec.replicas.map_or(1, i64::from)
}

impl Work<'_> {
    fn namespace(&self) -> &str {
        &self.owner.namespace
    }

    fn target_value(&self) -> Value {
        self.target_object.clone()
    }

    /// The primary's replicas: an autoscaler's choice when one scales it, else what the
    /// manifest asks for, else what it has, else the target's at bootstrap.
    fn primary_replicas(&self) -> i64 {
        let live = self.primary.map(replicas_of);
        if self.canary.spec.autoscaler_ref.is_some() {
            return live.unwrap_or_else(|| replicas_of(self.target).max(1));
        }
        self.intended
            .or(live)
            .unwrap_or_else(|| replicas_of(self.target).max(1))
    }

    fn router_context(&self) -> (Value, i64) {
        (self.target_value(), self.primary.map_or(1, replicas_of))
    }

    /// Carries out `actions`, towards `status` (what the step ends with).
    pub async fn run(&self, actions: &[Action], status: &CanaryStatus) -> Result<(), ExecuteError> {
        for action in actions {
            match action {
                Action::Bootstrap => self.bootstrap().await?,
                Action::Canary(scale) => self.scale(*scale, status).await?,
                Action::Route(traffic) => self.route(traffic).await?,
                Action::Promote => self.promote(status).await?,
                // The controller calls the post-rollout webhooks, with the rest of them.
                Action::PostRollout => {}
            }
        }
        self.keep_primary_size().await
    }

    /// Copies the tracked configuration for the primary.
    async fn copy_configs(&self) -> Result<(), ExecuteError> {
        for reference in &self.tracked {
            let kind = match reference.kind {
                ConfigKind::ConfigMap => "ConfigMap",
                ConfigKind::Secret => "Secret",
            };
            let fail = |source| ExecuteError::Bootstrap {
                what: format!("{kind} {}", reference.primary_name()),
                source: Box::new(source),
            };
            let Some(config) =
                cluster::get(self.client, self.namespace(), "v1", kind, &reference.name)
                    .await
                    .map_err(fail)?
            else {
                continue;
            };
            let copy = objects::config_copy(&config, reference, &self.owner);
            cluster::apply(self.client, &copy).await.map_err(fail)?;
        }
        Ok(())
    }

    /// The primary at the target's current revision, and its autoscaler.
    async fn bootstrap(&self) -> Result<(), ExecuteError> {
        let wanted = super::revision::template_checksum(&super::observe::template(self.target));
        let held = self
            .primary
            .and_then(|p| objects::primary_revision(&value(p)).map(str::to_string));
        if held.as_deref() != Some(wanted.as_str()) {
            self.copy_configs().await?;
            let primary = objects::primary_workload(
                &self.target_value(),
                self.settings,
                &self.owner,
                &self.tracked,
                &wanted,
                Some(self.primary_replicas()),
            )?;
            cluster::apply(self.client, &primary)
                .await
                .map_err(|source| ExecuteError::Bootstrap {
                    what: format!(
                        "{} {}",
                        self.settings.target_kind.kind(),
                        self.settings.primary()
                    ),
                    source: Box::new(source),
                })?;
        }
        self.autoscaler().await
    }

    /// The primary's copy of the target's autoscaler.
    pub async fn autoscaler(&self) -> Result<(), ExecuteError> {
        let Some(reference) = &self.canary.spec.autoscaler_ref else {
            return Ok(());
        };
        let fail = |source| ExecuteError::Bootstrap {
            what: format!("HorizontalPodAutoscaler {}-primary", reference.name),
            source: Box::new(source),
        };
        let hpa = cluster::get(
            self.client,
            self.namespace(),
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            &reference.name,
        )
        .await
        .map_err(fail)?
        .ok_or_else(|| {
            ExecuteError::NoAutoscaler(format!("{}/{}", self.namespace(), reference.name))
        })?;
        let copy = objects::primary_autoscaler(&hpa, self.settings, &self.owner);
        cluster::apply(self.client, &copy).await.map_err(fail)?;
        Ok(())
    }

    /// Sizes the canary: zero, or what the router wants for the status's weight.
    async fn scale(&self, scale: Scale, status: &CanaryStatus) -> Result<(), ExecuteError> {
        let wanted = match scale {
            Scale::Zero => 0,
            Scale::Up => self.router.canary_replicas(
                status.canary_weight as u32,
                self.primary.map_or(1, replicas_of),
            ),
        };
        let label = self
            .router
            .labels_target()
            .then_some(self.settings.apex.as_str());
        let live_label = self
            .target
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.get(APEX_LABEL))
            .map(String::as_str);
        // A DaemonSet has a size of zero (scaled to zero) or one pod per node, and the node
        // selector its manifest asks for (none and empty are the same).
        let mut target = self.target_value();
        let selector = |target: &Value| {
            target
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let live_selector = selector(&target);
        if let Some(wanted) = &self.node_selector {
            target["spec"]["template"]["spec"]["nodeSelector"] = wanted.clone();
        }
        let sized = match self.settings.target_kind {
            TargetKind::Deployment => replicas_of(self.target) == wanted,
            TargetKind::DaemonSet => {
                (replicas_of(self.target) == 0) == (wanted == 0)
                    && live_selector == selector(&target)
            }
        };
        if sized && (label.is_none() || live_label == label) {
            return Ok(());
        }
        let fields = objects::target_fields(&target, wanted, label);
        cluster::apply(self.client, &fields)
            .await
            .map_err(|source| ExecuteError::Scale {
                what: format!(
                    "{} {}/{} to {wanted}",
                    self.settings.target_kind.kind(),
                    self.namespace(),
                    self.settings.target
                ),
                source: Box::new(source),
            })?;
        Ok(())
    }

    async fn route(&self, traffic: &Traffic) -> Result<(), ExecuteError> {
        let (target, primary_replicas) = self.router_context();
        // What the routing objects depend on: the traffic, the Canary's spec, the target's
        // selector and ports.
        let key = format!(
            "{traffic}/{}/{}/{}",
            self.canary.metadata.generation.unwrap_or(0),
            target
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or_default(),
            super::revision::template_checksum(
                target.pointer("/spec/template").unwrap_or(&Value::Null)
            ),
        );
        if self.memo.seen(&self.owner.uid, &key) {
            return Ok(());
        }
        let ctx = Context {
            client: self.client,
            settings: self.settings,
            service: &self.canary.spec.service,
            target: &target,
            owner: &self.owner,
            primary_replicas,
            now: self.now,
        };
        self.router
            .route(&ctx, traffic)
            .await
            .map_err(|source| ExecuteError::Route {
                router: self.router.name(),
                source,
            })?;
        self.memo.remember(&self.owner.uid, key);
        Ok(())
    }

    /// Whether traffic is as `traffic` says.
    pub async fn observe_routes(
        &self,
        traffic: &Traffic,
    ) -> Result<super::machine::Routes, RouterError> {
        let (target, primary_replicas) = self.router_context();
        let ctx = Context {
            client: self.client,
            settings: self.settings,
            service: &self.canary.spec.service,
            target: &target,
            owner: &self.owner,
            primary_replicas,
            now: self.now,
        };
        self.router.observe(&ctx, traffic).await
    }

    /// The target's template (and configuration) on the primary, when the target still holds
    /// the revision that was analysed.
    async fn promote(&self, status: &CanaryStatus) -> Result<(), ExecuteError> {
        let revision = &status.last_applied_spec;
        let current = super::revision::template_checksum(&super::observe::template(self.target));
        if current != *revision {
            // A newer revision arrived; the next step restarts the analysis.
            return Ok(());
        }
        let held = self
            .primary
            .and_then(|p| objects::primary_revision(&value(p)).map(str::to_string));
        if held.as_deref() == Some(revision.as_str()) {
            return Ok(());
        }
        self.copy_configs().await?;
        let primary = objects::primary_workload(
            &self.target_value(),
            self.settings,
            &self.owner,
            &self.tracked,
            revision,
            Some(self.primary_replicas()),
        )?;
        cluster::apply(self.client, &primary)
            .await
            .map_err(|source| ExecuteError::Promote {
                what: format!(
                    "{} {}/{}",
                    self.settings.target_kind.kind(),
                    self.namespace(),
                    self.settings.primary()
                ),
                source: Box::new(source),
            })?;
        Ok(())
    }

    /// Gives the primary the replicas the manifest asks for, when no autoscaler scales it.
    async fn keep_primary_size(&self) -> Result<(), ExecuteError> {
        let (Some(primary), Some(intended)) = (self.primary, self.intended) else {
            return Ok(());
        };
        if self.settings.target_kind == TargetKind::DaemonSet {
            return Ok(());
        }
        if self.canary.spec.autoscaler_ref.is_some() || replicas_of(primary) == intended {
            return Ok(());
        }
        let body = objects::rescaled_primary(&value(primary), intended);
        cluster::apply(self.client, &body)
            .await
            .map_err(|source| ExecuteError::Scale {
                what: format!(
                    "Deployment {}/{} to {intended}",
                    self.namespace(),
                    self.settings.primary()
                ),
                source: Box::new(source),
            })?;
        Ok(())
    }
}
