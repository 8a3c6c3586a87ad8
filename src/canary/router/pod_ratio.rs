//! Progressive weights without a mesh or gateway: the apex Service selects the pods of both the
//! primary and the canary (through the apex label both carry), and the share of traffic the
//! canary gets is its share of the ready pods, as kube-proxy spreads connections evenly. The
//! primary keeps its size; the canary runs `round(P·w / (100 − w))` pods for weight `w` (at
//! least one). At weight 0 the apex selects the primary's pods only, so traffic leaves the canary
//! before it scales down. Talks to the API server; the sizing is pure.

use std::collections::BTreeMap;

use super::endpoints::{self, Want};
use super::{Context, Router, RouterError};
use crate::canary::machine::{Routes, Traffic};
use crate::canary::revision::APEX_LABEL;

pub struct PodRatio;

/// The canary pods that give the canary `weight` percent of the endpoints next to `primary`.
pub fn canary_pods(weight: u32, primary: i64) -> i64 {
    if weight == 0 || weight >= 100 {
        return primary.max(1);
    }
    let exact = primary.max(1) as f64 * f64::from(weight) / f64::from(100 - weight);
    (exact.round() as i64).max(1)
}

impl Router for PodRatio {
    fn name(&self) -> &'static str {
        "kubernetes (pod ratio)"
    }

    fn canary_replicas(&self, weight: u32, primary_replicas: i64) -> i64 {
        if weight == 0 {
            // Running and ready to be measured, but outside the apex Service.
            1
        } else {
            canary_pods(weight, primary_replicas)
        }
    }

    fn labels_target(&self) -> bool {
        true
    }

    async fn route(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<(), RouterError> {
        let weight = traffic.weight;
        let selector = if weight == 0 {
            ctx.primary_selector()?
        } else {
            BTreeMap::from([(APEX_LABEL.to_string(), ctx.settings.apex.clone())])
        };
        ctx.apply_services(&selector).await
    }

    async fn observe(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<Routes, RouterError> {
        let weight = traffic.weight;
        let endpoints = endpoints::read(ctx).await?;
        let canary = if weight == 0 {
            Want::None
        } else {
            Want::Exactly(canary_pods(weight, ctx.primary_replicas) as usize)
        };
        Ok(endpoints::judge(&endpoints, Want::Some, canary, ctx.now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_pods_give_the_weight_as_a_share_of_pods() {
        assert_eq!(canary_pods(20, 4), 1); // 1 of 5 = 20%
        assert_eq!(canary_pods(50, 4), 4); // 4 of 8 = 50%
        assert_eq!(canary_pods(40, 4), 3); // 3 of 7 = 43%
        assert_eq!(canary_pods(5, 2), 1, "never fewer than one");
        assert_eq!(canary_pods(80, 1), 4);
        assert_eq!(PodRatio.canary_replicas(0, 4), 1);
    }
}
