//! The `kubernetes` provider's blue/green routing: the apex Service selects the primary's pods,
//! or, once the analysis passed, the canary's, all at once; the canary runs as many pods as the
//! primary so it can take all the traffic. Talks to the API server.

use std::collections::BTreeMap;

use super::endpoints::{self, Want};
use super::{Context, Router, RouterError};
use crate::canary::machine::Routes;

pub struct Kubernetes;

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

    fn canary_replicas(&self, _weight: u32, primary_replicas: i64) -> i64 {
        primary_replicas.max(1)
    }

    async fn route(&self, ctx: &Context<'_>, weight: u32) -> Result<(), RouterError> {
        ctx.apply_services(&Kubernetes::apex_selector(ctx, weight)?)
            .await
    }

    async fn observe(&self, ctx: &Context<'_>, weight: u32) -> Result<Routes, RouterError> {
        let endpoints = endpoints::read(ctx).await?;
        let (primary, canary) = if weight >= 100 {
            (Want::None, Want::Some)
        } else {
            (Want::Some, Want::None)
        };
        Ok(endpoints::judge(&endpoints, primary, canary, ctx.now))
    }
}
