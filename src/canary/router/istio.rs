//! The `istio` provider: a VirtualService named after the apex Service, for the hosts and
//! gateways of `service`, whose first HTTP route sends weighted traffic to the primary and canary
//! Services; for A/B testing the first route carries the analysis matches and a second one sends
//! everything else to the primary. Two DestinationRules (`<apex>-primary`, `<apex>-canary`) carry
//! `service.trafficPolicy`; every route carries the service's `match`, `rewrite`, `timeout`,
//! `retries`, `headers` and `corsPolicy`. The same objects Flagger generates. The builders are
//! pure; `route` and `observe` talk to the API server.

use serde_json::{Map, Value, json};

use super::{Context, Router, RouterError, apply, canary_weight};
use crate::api::canary::{CanaryService, HttpMatch, StringMatch};
use crate::canary::machine::Routes;
use crate::canary::objects::Owner;
use crate::canary::spec::{Settings, Strategy};

pub const API_VERSION: &str = "networking.istio.io/v1";

pub struct Istio;

/// An Istio StringMatch (exact, prefix or regex; a suffix becomes an anchored regex).
fn string_match(m: &StringMatch) -> Value {
    if let Some(v) = &m.exact {
        json!({"exact": v})
    } else if let Some(v) = &m.prefix {
        json!({"prefix": v})
    } else if let Some(v) = &m.regex {
        json!({"regex": v})
    } else {
        let v = m.suffix.as_deref().unwrap_or_default();
        json!({"regex": format!(".*{}$", regex::escape(v))})
    }
}

/// One HTTPMatchRequest per request match.
fn http_matches(matches: &[HttpMatch]) -> Vec<Value> {
    let named = |map: &std::collections::BTreeMap<String, StringMatch>| -> Value {
        Value::Object(
            map.iter()
                .map(|(name, m)| (name.clone(), string_match(m)))
                .collect(),
        )
    };
    matches
        .iter()
        .map(|m| {
            let mut out = Map::new();
            if let Some(uri) = &m.uri {
                out.insert("uri".into(), string_match(uri));
            }
            if let Some(method) = &m.method {
                out.insert("method".into(), string_match(method));
            }
            if !m.headers.is_empty() {
                out.insert("headers".into(), named(&m.headers));
            }
            if !m.query_params.is_empty() {
                out.insert("queryParams".into(), named(&m.query_params));
            }
            Value::Object(out)
        })
        .collect()
}

/// Each analysis match combined with each service match (the analysis's headers and query
/// parameters win); the analysis matches alone when the service has none.
fn merged(analysis: &[Value], service: &[Value]) -> Vec<Value> {
    if service.is_empty() {
        return analysis.to_vec();
    }
    let mut out = Vec::new();
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            for key in ["headers", "queryParams"] {
                if let Some(v) = a.get(key) {
                    m[key] = v.clone();
                }
            }
            out.push(m);
        }
    }
    out
}

fn destination(host: &str, weight: u32) -> Value {
    json!({"destination": {"host": host}, "weight": weight})
}

/// The VirtualService for `weight` percent on the canary.
pub fn virtual_service(s: &Settings, service: &CanaryService, owner: &Owner, weight: u32) -> Value {
    let weight = weight.min(100);
    let service_matches = http_matches(&service.matches);
    // What every route of the service carries besides its matches and destinations.
    let route = |matches: Vec<Value>, destinations: Vec<Value>| {
        let mut route = Map::new();
        if !matches.is_empty() {
            route.insert("match".into(), Value::from(matches));
        }
        for (key, value) in [
            ("rewrite", &service.rewrite),
            ("retries", &service.retries),
            ("headers", &service.headers),
            ("corsPolicy", &service.cors_policy),
        ] {
            if let Some(value) = value {
                route.insert(key.into(), value.clone());
            }
        }
        if let Some(timeout) = &service.timeout {
            route.insert("timeout".into(), Value::from(timeout.as_str()));
        }
        route.insert("route".into(), Value::from(destinations));
        Value::Object(route)
    };
    let weighted = vec![
        destination(&s.primary_service(), 100 - weight),
        destination(&s.canary_service(), weight),
    ];
    let http = if matches!(s.strategy, Strategy::AbTesting { .. }) {
        let analysis = merged(&http_matches(&s.matches), &service_matches);
        vec![
            route(analysis, weighted),
            route(
                service_matches,
                vec![destination(&s.primary_service(), 100)],
            ),
        ]
    } else {
        vec![route(service_matches, weighted)]
    };
    let mut hosts = service.hosts.clone();
    if !hosts.contains(&s.apex) {
        hosts.push(s.apex.clone());
    }
    let mut spec = json!({"hosts": hosts, "http": http});
    if !service.gateways.is_empty() {
        spec["gateways"] = json!(service.gateways);
    }
    let mut metadata = owner.metadata(&s.apex);
    if let Some(apex) = &service.apex {
        if !apex.labels.is_empty() {
            metadata["labels"] = json!(apex.labels);
        }
        if !apex.annotations.is_empty() {
            metadata["annotations"] = json!(apex.annotations);
        }
    }
    json!({"apiVersion": API_VERSION, "kind": "VirtualService", "metadata": metadata, "spec": spec})
}

/// The DestinationRules of the primary and canary Services.
pub fn destination_rules(s: &Settings, service: &CanaryService, owner: &Owner) -> [Value; 2] {
    [s.primary_service(), s.canary_service()].map(|host| {
        let mut spec = json!({"host": host});
        if let Some(policy) = &service.traffic_policy {
            spec["trafficPolicy"] = policy.clone();
        }
        json!({"apiVersion": API_VERSION, "kind": "DestinationRule",
            "metadata": owner.metadata(&host), "spec": spec})
    })
}

/// The canary's weight in a live VirtualService's first HTTP route.
fn live_weight(vs: &Value, canary_service: &str) -> Option<u64> {
    canary_weight(
        vs.pointer("/spec/http/0/route"),
        "/destination/host",
        canary_service,
    )
}

impl Router for Istio {
    fn name(&self) -> &'static str {
        "istio"
    }

    async fn route(&self, ctx: &Context<'_>, weight: u32) -> Result<(), RouterError> {
        ctx.apply_services(&ctx.primary_selector()?).await?;
        for rule in destination_rules(ctx.settings, ctx.service, ctx.owner) {
            apply(ctx.client, &rule).await?;
        }
        let vs = virtual_service(ctx.settings, ctx.service, ctx.owner, weight);
        apply(ctx.client, &vs).await.map(drop)
    }

    async fn observe(&self, ctx: &Context<'_>, weight: u32) -> Result<Routes, RouterError> {
        ctx.observe_apex_route(API_VERSION, "VirtualService", weight, live_weight)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, owner};
    use super::*;
    use crate::api::canary::CanarySpec;

    fn canary(service: Value, analysis: Value) -> (Settings, CanarySpec) {
        testing::canary(json!({"provider": "istio", "service": service, "analysis": analysis}))
    }

    #[test]
    fn a_progressive_virtual_service_weighs_primary_and_canary_with_the_service_options() {
        let (s, spec) = canary(
            json!({"port": 9898, "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"],
                "hosts": ["app.example.com"], "timeout": "15s",
                "trafficPolicy": {"tls": {"mode": "DISABLE"}},
                "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream"},
                "headers": {"request": {"add": {"x-envoy-upstream-rq-timeout-ms": "15000"}}},
                "match": [{"uri": {"prefix": "/"}}], "rewrite": {"uri": "/"}}),
            json!({"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10}),
        );
        let vs = virtual_service(&s, &spec.service, &owner(), 10);
        assert_eq!(vs["metadata"]["name"], "podinfo");
        assert_eq!(
            vs["spec"]["gateways"],
            json!(["public-gateway.istio-system.svc.cluster.local", "mesh"])
        );
        assert_eq!(vs["spec"]["hosts"], json!(["app.example.com", "podinfo"]));
        assert_eq!(
            vs["spec"]["http"],
            json!([{
                "match": [{"uri": {"prefix": "/"}}],
                "rewrite": {"uri": "/"},
                "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream"},
                "headers": {"request": {"add": {"x-envoy-upstream-rq-timeout-ms": "15000"}}},
                "timeout": "15s",
                "route": [
                    {"destination": {"host": "podinfo-primary"}, "weight": 90},
                    {"destination": {"host": "podinfo-canary"}, "weight": 10},
                ],
            }])
        );
        assert_eq!(live_weight(&vs, "podinfo-canary"), Some(10));
        let [primary, canary] = destination_rules(&s, &spec.service, &owner());
        assert_eq!(primary["metadata"]["name"], "podinfo-primary");
        assert_eq!(
            canary["spec"],
            json!({"host": "podinfo-canary", "trafficPolicy": {"tls": {"mode": "DISABLE"}}})
        );
    }

    #[test]
    fn ab_testing_puts_the_matches_on_the_canary_route() {
        let (s, spec) = canary(
            json!({"port": 9898, "hosts": ["app.example.com"]}),
            json!({"interval": "1m", "threshold": 5, "iterations": 10, "match": [
                {"headers": {"x-canary": {"exact": "insider"}}},
                {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
                {"headers": {"user-agent": {"suffix": "Firefox"}}},
            ]}),
        );
        let vs = virtual_service(&s, &spec.service, &owner(), 100);
        assert_eq!(
            vs["spec"]["http"],
            json!([
                {"match": [
                    {"headers": {"x-canary": {"exact": "insider"}}},
                    {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
                    {"headers": {"user-agent": {"regex": ".*Firefox$"}}},
                 ],
                 "route": [
                    {"destination": {"host": "podinfo-primary"}, "weight": 0},
                    {"destination": {"host": "podinfo-canary"}, "weight": 100},
                 ]},
                {"route": [{"destination": {"host": "podinfo-primary"}, "weight": 100}]},
            ])
        );
        assert_eq!(vs["spec"].get("gateways"), None);
    }
}
