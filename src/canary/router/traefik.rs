//! The `traefik` provider: a TraefikService named after the apex Service whose weighted round
//! robin sends traffic to the primary and canary Services, or, while traffic is mirrored, whose
//! mirroring service sends it to the primary and copies it to the canary; the user's
//! IngressRoute sends to it (`kind: TraefikService`). Traefik routes no A/B tests here (the spec check refuses them), as in
//! Flagger. The same objects Flagger generates. The builder is pure; `route` and `observe` talk to
//! the API server.

use serde_json::{Value, json};

use super::{Context, Live, Router, RouterError, apply, canary_weight};
use crate::api::canary::CanaryService;
use crate::canary::machine::{Routes, Traffic};
use crate::canary::objects::Owner;
use crate::canary::spec::Settings;

pub const API_VERSION: &str = "traefik.io/v1alpha1";

pub struct Traefik;

/// The TraefikService for `traffic`: weighted, or mirroring to the canary (all requests unless
/// `mirrorWeight` says; Traefik's own default copies none) while the primary answers them all.
pub fn traefik_service(
    s: &Settings,
    service: &CanaryService,
    owner: &Owner,
    traffic: &Traffic,
) -> Value {
    let weight = traffic.weight.min(100);
    let port = service.port;
    let spec = if traffic.mirror {
        let percent = s.mirror.and_then(|m| m.percent).unwrap_or(100);
        json!({"mirroring": {"name": s.primary_service(), "port": port, "mirrors": [
            {"name": s.canary_service(), "port": port, "percent": percent},
        ]}})
    } else {
        json!({"weighted": {"services": [
            {"name": s.primary_service(), "port": port, "weight": 100 - weight},
            {"name": s.canary_service(), "port": port, "weight": weight},
        ]}})
    };
    json!({
        "apiVersion": API_VERSION, "kind": "TraefikService",
        "metadata": owner.metadata(&s.apex),
        "spec": spec,
    })
}

/// What a live TraefikService does with the canary: its weight, or, mirroring, none of the
/// answers (weight 0) and copies of the requests.
fn live(ts: &Value, s: &Settings) -> Live {
    let canary = s.canary_service();
    if let Some(mirroring) = ts.pointer("/spec/mirroring") {
        let mirrors = mirroring.get("mirrors").and_then(Value::as_array);
        let to_primary =
            mirroring.get("name").and_then(Value::as_str) == Some(s.primary_service().as_str());
        return Live {
            weight: to_primary.then_some(0),
            mirror: mirrors.is_some_and(|m| {
                m.iter()
                    .any(|m| m.get("name").and_then(Value::as_str) == Some(canary.as_str()))
            }),
            sticky: false,
        };
    }
    Live::weighted(canary_weight(
        ts.pointer("/spec/weighted/services"),
        "/name",
        &canary,
    ))
}

impl Router for Traefik {
    fn name(&self) -> &'static str {
        "traefik"
    }

    async fn route(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<(), RouterError> {
        ctx.apply_services(&ctx.primary_selector()?).await?;
        let ts = traefik_service(ctx.settings, ctx.service, ctx.owner, traffic);
        apply(ctx.client, &ts).await.map(drop)
    }

    async fn observe(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<Routes, RouterError> {
        ctx.observe_apex_route(API_VERSION, "TraefikService", traffic, live)
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
        let ts = traefik_service(
            &s,
            &spec.service,
            &super::super::testing::owner(),
            &Traffic::weight(5),
        );
        assert_eq!(
            ts["spec"],
            json!({"weighted": {"services": [
                {"name": "podinfo-primary", "port": 80, "weight": 95},
                {"name": "podinfo-canary", "port": 80, "weight": 5},
            ]}})
        );
        assert_eq!(live(&ts, &s), Live::weighted(Some(5)));
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

    #[test]
    fn mirroring_replaces_the_weights_with_a_mirroring_service() {
        let spec = spec(json!({"stepWeight": 10, "mirror": true}));
        let s = crate::canary::spec::settings(&spec).unwrap();
        let traffic = Traffic {
            mirror: true,
            ..Traffic::weight(0)
        };
        let ts = traefik_service(&s, &spec.service, &super::super::testing::owner(), &traffic);
        assert_eq!(
            ts["spec"],
            json!({"mirroring": {"name": "podinfo-primary", "port": 80, "mirrors": [
                {"name": "podinfo-canary", "port": 80, "percent": 100},
            ]}})
        );
        let want = Live {
            mirror: true,
            ..Live::weighted(Some(0))
        };
        assert_eq!(live(&ts, &s), want);
        assert!(matches!(
            Live::weighted(Some(0)).routes("ts", &traffic),
            Routes::Converging(why) if why.contains("does not mirror")
        ));
        let mut spec = spec;
        spec.analysis.as_mut().unwrap().mirror_weight = Some(30);
        let s = crate::canary::spec::settings(&spec).unwrap();
        let ts = traefik_service(&s, &spec.service, &super::super::testing::owner(), &traffic);
        assert_eq!(ts["spec"]["mirroring"]["mirrors"][0]["percent"], 30);
    }
}
