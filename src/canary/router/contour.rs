//! The `contour` provider: an HTTPProxy named after the apex Service (with no virtual host of its
//! own: the user's root HTTPProxy includes it) whose route sends weighted traffic to the primary
//! and canary Services; for A/B testing one route per analysis match sends the matching requests
//! to the canary and a last route sends the rest to the primary. Every route carries the
//! service's `match` as conditions, `timeout` as `timeoutPolicy.response` and `retries`
//! (`attempts`, `perTryTimeout`) as `retryPolicy`. The same objects Flagger generates. The builder
//! is pure; `route` and `observe` talk to the API server.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Context, Live, Router, RouterError, apply, canary_weight};
use crate::api::canary::{CanaryService, HttpMatch, StringMatch};
use crate::canary::machine::{Routes, Traffic};
use crate::canary::objects::Owner;
use crate::canary::spec::{Settings, Strategy};

pub const API_VERSION: &str = "projectcontour.io/v1";

pub struct Contour;

/// A path condition.
fn path(m: &StringMatch) -> Value {
    if let Some(v) = &m.prefix {
        json!({"prefix": v})
    } else if let Some(v) = &m.exact {
        json!({"exact": v})
    } else {
        json!({"regex": regex_of(m)})
    }
}

/// A string match as a regular expression (Contour's headers match `exact` or `regex`).
fn regex_of(m: &StringMatch) -> String {
    if let Some(v) = &m.regex {
        v.clone()
    } else if let Some(v) = &m.exact {
        format!("^{}$", regex::escape(v))
    } else if let Some(v) = &m.prefix {
        format!("^{}.*", regex::escape(v))
    } else {
        format!(
            ".*{}$",
            regex::escape(m.suffix.as_deref().unwrap_or_default())
        )
    }
}

fn named(kind: &str, name: &str, m: &StringMatch) -> Value {
    let condition = match &m.exact {
        Some(v) => json!({"name": name, "exact": v}),
        None => json!({"name": name, "regex": regex_of(m)}),
    };
    json!({ kind: condition })
}

/// The conditions of one request match (all must hold).
fn conditions(m: &HttpMatch) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(uri) = &m.uri {
        out.push(path(uri));
    }
    if let Some(method) = &m.method {
        out.push(named("header", ":method", method));
    }
    let each = |kind: &str, map: &BTreeMap<String, StringMatch>| -> Vec<Value> {
        map.iter().map(|(n, sm)| named(kind, n, sm)).collect()
    };
    out.extend(each("header", &m.headers));
    out.extend(each("queryParameter", &m.query_params));
    out
}

fn backend(name: &str, port: i32, weight: u32) -> Value {
    json!({"name": name, "port": port, "weight": weight})
}

/// The HTTPProxy for `weight` percent on the canary.
pub fn http_proxy(s: &Settings, service: &CanaryService, owner: &Owner, weight: u32) -> Value {
    let weight = weight.min(100);
    let port = service.port;
    // One condition set per service match; a prefix `/` when it has none.
    let service_conditions: Vec<Vec<Value>> = if service.matches.is_empty() {
        vec![vec![json!({"prefix": "/"})]]
    } else {
        service.matches.iter().map(conditions).collect()
    };
    let route = |conditions: Vec<Value>, services: Vec<Value>| {
        let mut route = Map::new();
        route.insert("conditions".into(), Value::from(conditions));
        if let Some(timeout) = &service.timeout {
            route.insert("timeoutPolicy".into(), json!({"response": timeout}));
        }
        if let Some(retries) = &service.retries {
            let mut policy = Map::new();
            if let Some(count) = retries.get("attempts") {
                policy.insert("count".into(), count.clone());
            }
            if let Some(per_try) = retries.get("perTryTimeout") {
                policy.insert("perTryTimeout".into(), per_try.clone());
            }
            route.insert("retryPolicy".into(), Value::Object(policy));
        }
        route.insert("services".into(), Value::from(services));
        Value::Object(route)
    };
    let weighted = || {
        vec![
            backend(&s.primary_service(), port, 100 - weight),
            backend(&s.canary_service(), port, weight),
        ]
    };
    let mut routes = Vec::new();
    if matches!(s.strategy, Strategy::AbTesting { .. }) {
        for analysis in &s.matches {
            for base in &service_conditions {
                let mut all = base.clone();
                all.extend(conditions(analysis));
                routes.push(route(all, weighted()));
            }
        }
        for base in &service_conditions {
            routes.push(route(
                base.clone(),
                vec![backend(&s.primary_service(), port, 100)],
            ));
        }
    } else {
        for base in &service_conditions {
            routes.push(route(base.clone(), weighted()));
        }
    }
    json!({"apiVersion": API_VERSION, "kind": "HTTPProxy",
        "metadata": owner.metadata(&s.apex), "spec": {"routes": routes}})
}

/// The canary's weight in a live HTTPProxy's first route.
fn live(proxy: &Value, s: &Settings) -> Live {
    Live::weighted(canary_weight(
        proxy.pointer("/spec/routes/0/services"),
        "/name",
        &s.canary_service(),
    ))
}

impl Router for Contour {
    fn name(&self) -> &'static str {
        "contour"
    }

    async fn route(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<(), RouterError> {
        let weight = traffic.weight;
        ctx.apply_services(&ctx.primary_selector()?).await?;
        let proxy = http_proxy(ctx.settings, ctx.service, ctx.owner, weight);
        apply(ctx.client, &proxy).await.map(drop)
    }

    async fn observe(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<Routes, RouterError> {
        ctx.observe_apex_route(API_VERSION, "HTTPProxy", traffic, live)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, owner};
    use super::*;
    use crate::api::canary::CanarySpec;

    fn canary(service: Value, analysis: Value) -> (Settings, CanarySpec) {
        testing::canary(json!({"provider": "contour", "service": service, "analysis": analysis}))
    }

    #[test]
    fn a_progressive_proxy_weighs_primary_and_canary_with_timeouts_and_retries() {
        let (s, spec) = canary(
            json!({"port": 9898, "timeout": "15s", "retries": {"attempts": 10, "perTryTimeout": "5s"}}),
            json!({"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10}),
        );
        let proxy = http_proxy(&s, &spec.service, &owner(), 10);
        assert_eq!(proxy["metadata"]["name"], "podinfo");
        assert_eq!(
            proxy["spec"],
            json!({"routes": [{
                "conditions": [{"prefix": "/"}],
                "timeoutPolicy": {"response": "15s"},
                "retryPolicy": {"count": 10, "perTryTimeout": "5s"},
                "services": [
                    {"name": "podinfo-primary", "port": 9898, "weight": 90},
                    {"name": "podinfo-canary", "port": 9898, "weight": 10},
                ],
            }]})
        );
        assert_eq!(live(&proxy, &s), Live::weighted(Some(10)));
    }

    #[test]
    fn ab_testing_has_a_route_per_match_then_the_primary() {
        let (s, spec) = canary(
            json!({"port": 9898}),
            json!({"interval": "1m", "threshold": 5, "iterations": 10, "match": [
                {"headers": {"x-canary": {"exact": "insider"}}},
                {"headers": {"cookie": {"suffix": "canary=always"}}},
            ]}),
        );
        let proxy = http_proxy(&s, &spec.service, &owner(), 100);
        assert_eq!(
            proxy["spec"]["routes"],
            json!([
                {"conditions": [{"prefix": "/"}, {"header": {"name": "x-canary", "exact": "insider"}}],
                 "services": [{"name": "podinfo-primary", "port": 9898, "weight": 0},
                    {"name": "podinfo-canary", "port": 9898, "weight": 100}]},
                {"conditions": [{"prefix": "/"}, {"header": {"name": "cookie", "regex": ".*canary=always$"}}],
                 "services": [{"name": "podinfo-primary", "port": 9898, "weight": 0},
                    {"name": "podinfo-canary", "port": 9898, "weight": 100}]},
                {"conditions": [{"prefix": "/"}],
                 "services": [{"name": "podinfo-primary", "port": 9898, "weight": 100}]},
            ])
        );
    }
}
