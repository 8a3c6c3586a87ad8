//! The `kubernetes` provider's blue/green routing: the apex Service selects the primary's pods,
//! or, once the analysis passed, the canary's, all at once; the canary runs as many pods as the
//! primary so it can take all the traffic. A switch goes through both: the apex selects the pods
//! of both sides (the apex label both carry) until the side traffic moves to has ready endpoints
//! in it (waiting within the route, at most `BOTH_AT_MOST`), so a new connection never meets a
//! Service whose endpoints are being swapped. Talks to the API server.

use std::collections::BTreeMap;
use std::time::Duration;

use super::endpoints::{self, Want};
use super::{Context, Router, RouterError};
use crate::canary::machine::{Routes, Traffic};
use crate::canary::revision::APEX_LABEL;

pub struct Kubernetes;

/// How long a switch holds both sides in the apex Service waiting for the arriving side's
/// endpoints.
const BOTH_AT_MOST: Duration = Duration::from_secs(15);

impl Kubernetes {
    fn apex_selector(
        ctx: &Context<'_>,
        weight: u32,
    ) -> Result<BTreeMap<String, String>, RouterError> {
        Ok(if weight >= 100 {
            ctx.target_selector()?
        } else {
            ctx.primary_selector()?
        })
    }
}

impl Router for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn labels_target(&self) -> bool {
        true
    }

    async fn route(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<(), RouterError> {
        let weight = traffic.weight;
        let arrived = |e: &endpoints::Endpoints| {
            if weight >= 100 {
                e.canary > 0
            } else {
                e.primary > 0
            }
        };
        if !arrived(&endpoints::read(ctx).await?) {
            let both = BTreeMap::from([(APEX_LABEL.to_string(), ctx.settings.apex.clone())]);
            ctx.apply_services(&both).await?;
            // The EndpointSlice controller adds the pods within a moment; past the bound the
            // switch goes on regardless (the side has no ready pod to add).
            let deadline = tokio::time::Instant::now() + BOTH_AT_MOST;
            while tokio::time::Instant::now() < deadline && !arrived(&endpoints::read(ctx).await?) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        ctx.apply_services(&Kubernetes::apex_selector(ctx, weight)?)
            .await
    }

    async fn observe(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<Routes, RouterError> {
        let weight = traffic.weight;
        let endpoints = endpoints::read(ctx).await?;
        let (primary, canary) = if weight >= 100 {
            (Want::None, Want::Some)
        } else {
            (Want::Some, Want::None)
        };
        Ok(endpoints::judge(&endpoints, primary, canary, ctx.now))
    }
}
