//! Traffic routing of canaries: one trait (`Router`), one file per provider, one factory
//! (`for_routing`). Every router keeps the apex, primary and canary Services; `kubernetes`
//! switches the apex Service's selector (blue/green), `pod_ratio` weighs by the number of canary
//! and primary pods behind it, `gateway_api` sets HTTPRoute weights and matches. Talks to the API
//! server; the objects come from `objects` and each router's pure builder.

mod endpoints;
pub mod gateway_api;
pub mod kubernetes;
pub mod pod_ratio;

use std::collections::BTreeMap;

use kube::Client;
use serde_json::Value;

use super::cluster;
use super::machine::Routes;
use super::objects::{self, ObjectsError, Owner};
use super::spec::{Routing, Settings};
use crate::api::canary::CanaryService;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    #[error("applying {what} failed")]
    Apply {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("reading {what} failed")]
    Read {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// What a router needs to know about one canary.
pub struct Context<'a> {
    pub client: &'a Client,
    pub settings: &'a Settings,
    pub service: &'a CanaryService,
    /// The target Deployment, as last read.
    pub target: &'a Value,
    pub owner: &'a Owner,
    /// The primary's replicas (what the canary is sized against).
    pub primary_replicas: i64,
    pub now: k8s_openapi::jiff::Timestamp,
}

impl Context<'_> {
    pub fn namespace(&self) -> &str {
        &self.owner.namespace
    }

    pub fn target_selector(&self) -> Result<BTreeMap<String, String>, ObjectsError> {
        objects::target_selector(self.target)
    }

    pub fn primary_selector(&self) -> Result<BTreeMap<String, String>, ObjectsError> {
        Ok(objects::primary_selector(&self.target_selector()?))
    }

    /// Applies the three Services, the apex selecting `apex_selector`.
    pub async fn apply_services(
        &self,
        apex_selector: &BTreeMap<String, String>,
    ) -> Result<(), RouterError> {
        let services = objects::services(
            self.settings,
            self.service,
            self.target,
            self.owner,
            apex_selector,
        )?;
        for service in &services {
            apply(self.client, service).await?;
        }
        Ok(())
    }
}

/// Applies one generated object, naming it in the error.
pub(super) async fn apply(client: &Client, object: &Value) -> Result<Value, RouterError> {
    cluster::apply(client, object)
        .await
        .map_err(|source| RouterError::Apply {
            what: describe(object),
            source: Box::new(source),
        })
}

fn describe(object: &Value) -> String {
    let field = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("?");
    format!(
        "{} {}/{}",
        field("/kind"),
        field("/metadata/namespace"),
        field("/metadata/name")
    )
}

/// Sends traffic between a canary's primary and canary.
pub trait Router: Send + Sync {
    /// The provider's name, for messages.
    fn name(&self) -> &'static str;

    /// How many pods the canary runs while it is analysed at `weight`, given the primary's.
    fn canary_replicas(&self, weight: u32, primary_replicas: i64) -> i64;

    /// Whether the target's pods must carry the apex label (the apex Service selects them).
    fn labels_target(&self) -> bool {
        false
    }

    /// Sends `weight` percent of the traffic to the canary and the rest to the primary,
    /// creating what is missing.
    fn route(
        &self,
        ctx: &Context<'_>,
        weight: u32,
    ) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// Whether traffic is at `weight` (what clients see, as far as the cluster tells).
    fn observe(
        &self,
        ctx: &Context<'_>,
        weight: u32,
    ) -> impl Future<Output = Result<Routes, RouterError>> + Send;
}

/// The router a canary's routing needs.
pub enum AnyRouter {
    Kubernetes(kubernetes::Kubernetes),
    PodRatio(pod_ratio::PodRatio),
    GatewayApi(gateway_api::GatewayApi),
}

/// The factory: one router per routing.
pub fn for_routing(routing: Routing) -> AnyRouter {
    match routing {
        Routing::ServiceSelector => AnyRouter::Kubernetes(kubernetes::Kubernetes),
        Routing::PodRatio => AnyRouter::PodRatio(pod_ratio::PodRatio),
        Routing::GatewayApi => AnyRouter::GatewayApi(gateway_api::GatewayApi),
    }
}

impl Router for AnyRouter {
    fn name(&self) -> &'static str {
        match self {
            AnyRouter::Kubernetes(r) => r.name(),
            AnyRouter::PodRatio(r) => r.name(),
            AnyRouter::GatewayApi(r) => r.name(),
        }
    }

    fn canary_replicas(&self, weight: u32, primary_replicas: i64) -> i64 {
        match self {
            AnyRouter::Kubernetes(r) => r.canary_replicas(weight, primary_replicas),
            AnyRouter::PodRatio(r) => r.canary_replicas(weight, primary_replicas),
            AnyRouter::GatewayApi(r) => r.canary_replicas(weight, primary_replicas),
        }
    }

    fn labels_target(&self) -> bool {
        matches!(self, AnyRouter::PodRatio(_))
    }

    async fn route(&self, ctx: &Context<'_>, weight: u32) -> Result<(), RouterError> {
        match self {
            AnyRouter::Kubernetes(r) => r.route(ctx, weight).await,
            AnyRouter::PodRatio(r) => r.route(ctx, weight).await,
            AnyRouter::GatewayApi(r) => r.route(ctx, weight).await,
        }
    }

    async fn observe(&self, ctx: &Context<'_>, weight: u32) -> Result<Routes, RouterError> {
        match self {
            AnyRouter::Kubernetes(r) => r.observe(ctx, weight).await,
            AnyRouter::PodRatio(r) => r.observe(ctx, weight).await,
            AnyRouter::GatewayApi(r) => r.observe(ctx, weight).await,
        }
    }
}
