//! The `traefik` provider: a TraefikService named after the apex Service whose weighted round
//! robin sends traffic to the primary and canary Services; the user's IngressRoute sends to it
//! (`kind: TraefikService`). Traefik routes no A/B tests here (the spec check refuses them), as in
//! Flagger. The same objects Flagger generates. The builder is pure; `route` and `observe` talk to
//! the API server.

use serde_json::{Value, json};

use super::{Context, Router, RouterError, apply, canary_weight};
use crate::api::canary::CanaryService;
use crate::canary::machine::Routes;
use crate::canary::objects::Owner;
use crate::canary::spec::Settings;

pub const API_VERSION: &str = "traefik.io/v1alpha1";

pub struct Traefik;

/// The TraefikService for `weight` percent on the canary.
pub fn traefik_service(s: &Settings, service: &CanaryService, owner: &Owner, weight: u32) -> Value {
    let weight = weight.min(100);
    let port = service.port;
    json!({
        "apiVersion": API_VERSION, "kind": "TraefikService",
        "metadata": owner.metadata(&s.apex),
        "spec": {"weighted": {"services": [
            {"name": s.primary_service(), "port": port, "weight": 100 - weight},
            {"name": s.canary_service(), "port": port, "weight": weight},
        ]}},
    })
}

/// The canary's weight in a live TraefikService.
fn live_weight(ts: &Value, canary_service: &str) -> Option<u64> {
    canary_weight(
        ts.pointer("/spec/weighted/services"),
        "/name",
        canary_service,
    )
}

impl Router for Traefik {
    fn name(&self) -> &'static str {
        "traefik"
    }

    async fn route(&self, ctx: &Context<'_>, weight: u32) -> Result<(), RouterError> {
        ctx.apply_services(&ctx.primary_selector()?).await?;
        let ts = traefik_service(ctx.settings, ctx.service, ctx.owner, weight);
        apply(ctx.client, &ts).await.map(drop)
    }

    async fn observe(&self, ctx: &Context<'_>, weight: u32) -> Result<Routes, RouterError> {
        ctx.observe_apex_route(API_VERSION, "TraefikService", weight, live_weight)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary::CanarySpec;

    fn spec(analysis: Value) -> CanarySpec {
        serde_json::from_value(json!({
            "provider": "traefik",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"name": "podinfo", "port": 80, "targetPort": 9898},
            "analysis": analysis,
        }))
        .unwrap()
    }

    #[test]
    fn the_weighted_service_sends_the_step_weight_to_the_canary() {
        let spec =
            spec(json!({"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 5}));
        let s = crate::canary::spec::settings(&spec).unwrap();
        let ts = traefik_service(&s, &spec.service, &super::super::testing::owner(), 5);
        assert_eq!(
            ts["spec"],
            json!({"weighted": {"services": [
                {"name": "podinfo-primary", "port": 80, "weight": 95},
                {"name": "podinfo-canary", "port": 80, "weight": 5},
            ]}})
        );
        assert_eq!(live_weight(&ts, "podinfo-canary"), Some(5));
    }

    #[test]
    fn ab_testing_is_refused() {
        let spec = spec(
            json!({"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}),
        );
        let err = crate::canary::spec::settings(&spec)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("analysis.match") && err.contains("traefik"),
            "{err}"
        );
    }
}
