//! The `gatewayapi:v1` provider: an HTTPRoute named after the apex Service, attached to
//! `service.gatewayRefs`, whose first rule sends weighted traffic to the primary and canary
//! Services; for A/B testing the first rule carries the analysis matches and a second rule sends
//! everything else to the primary. Mirrored, the weighted rule has a `RequestMirror` filter; with
//! session affinity, rules matching the cookies follow it and its backends set them with a
//! `ResponseHeaderModifier` filter. The same objects Flagger generates. The Services' apex selects
//! the primary. `http_route` is pure; `route` and `observe` talk to the API server.

use serde_json::{Value, json};

use super::{Context, Live, Router, RouterError, Sticky, apply, canary_weight};
use crate::api::canary::{HttpMatch, StringMatch};
use crate::canary::machine::{Routes, Traffic};
use crate::canary::objects::Owner;
use crate::canary::spec::{Settings, Strategy};

pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";

pub struct GatewayApi;

fn string_match(m: &StringMatch, exact: &str, regex: &str) -> (String, String) {
    if let Some(v) = &m.exact {
        (exact.into(), v.clone())
    } else if let Some(v) = &m.regex {
        (regex.into(), v.clone())
    } else if let Some(v) = &m.prefix {
        (regex.into(), format!("^{}.*", regex::escape(v)))
    } else {
        let v = m.suffix.as_deref().unwrap_or_default();
        (regex.into(), format!(".*{}$", regex::escape(v)))
    }
}

/// One HTTPRouteMatch per request match.
fn route_matches(matches: &[HttpMatch]) -> Vec<Value> {
    matches
        .iter()
        .map(|m| {
            let mut out = serde_json::Map::new();
            if let Some(uri) = &m.uri {
                let (type_, value) = if let Some(p) = &uri.prefix {
                    ("PathPrefix".to_string(), p.clone())
                } else {
                    string_match(uri, "Exact", "RegularExpression")
                };
                out.insert("path".into(), json!({"type": type_, "value": value}));
            }
            if let Some(method) = m.method.as_ref().and_then(|m| m.exact.clone()) {
                out.insert("method".into(), json!(method));
            }
            let named = |map: &std::collections::BTreeMap<String, StringMatch>| -> Vec<Value> {
                map.iter()
                    .map(|(name, sm)| {
                        let (type_, value) = string_match(sm, "Exact", "RegularExpression");
                        json!({"type": type_, "name": name, "value": value})
                    })
                    .collect()
            };
            if !m.headers.is_empty() {
                out.insert("headers".into(), Value::from(named(&m.headers)));
            }
            if !m.query_params.is_empty() {
                out.insert("queryParams".into(), Value::from(named(&m.query_params)));
            }
            Value::Object(out)
        })
        .collect()
}

/// Each analysis match combined with each service match (the analysis's headers and query
/// parameters win), as Flagger merges them.
fn merged(analysis: &[Value], service: &[Value]) -> Vec<Value> {
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

fn backend(name: &str, port: i32, weight: u32) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight})
}

/// A backend whose answers give the client `cookie`.
fn setting_cookie(mut backend: Value, sticky: &Sticky, cookie: &str) -> Value {
    backend["filters"] = json!([{"type": "ResponseHeaderModifier", "responseHeaderModifier":
        {"add": [{"name": "Set-Cookie", "value": sticky.set_cookie(cookie)}]}}]);
    backend
}

/// The HTTPRoute for `traffic`: its weight on the canary; mirrored, the weighted rule copies
/// requests to the canary; with session affinity cookies, a rule matching the canary's cookie
/// sends its holders to the canary (and the primary's to the primary; a rule with more header
/// matches takes precedence), and the weighted rule's backends hand the cookies out.
pub fn http_route(
    s: &Settings,
    service: &crate::api::canary::CanaryService,
    owner: &Owner,
    traffic: &Traffic,
) -> Value {
    let weight = traffic.weight.min(100);
    let mut service_matches = route_matches(&service.matches);
    if service_matches.is_empty() {
        service_matches.push(json!({"path": {"type": "PathPrefix", "value": "/"}}));
    }
    let port = service.port;
    let rule = |matches: Vec<Value>, backends: Vec<Value>| {
        let mut rule = json!({"matches": matches, "backendRefs": backends});
        if let Some(timeout) = &service.timeout {
            rule["timeouts"] = json!({"request": timeout});
        }
        rule
    };
    let (primary, canary) = (s.primary_service(), s.canary_service());
    let mut weighted = vec![
        backend(&primary, port, 100 - weight),
        backend(&canary, port, weight),
    ];
    let mut sticky_rules = Vec::new();
    if let Some(sticky) = Sticky::of(s, traffic) {
        let sticky_rule = |cookie: &str, name: &str| {
            let header = json!({"headers": [{"type": "RegularExpression", "name": "Cookie",
                "value": Sticky::cookie_regex(cookie)}]});
            rule(
                merged(&[header], &service_matches),
                vec![backend(name, port, 100)],
            )
        };
        sticky_rules.push(sticky_rule(&sticky.canary, &canary));
        weighted[1] = setting_cookie(weighted[1].take(), &sticky, &sticky.canary);
        if let Some(cookie) = &sticky.primary {
            sticky_rules.push(sticky_rule(cookie, &primary));
            weighted[0] = setting_cookie(weighted[0].take(), &sticky, cookie);
        }
    }
    let mut rules = if matches!(s.strategy, Strategy::AbTesting { .. }) {
        let analysis = merged(&route_matches(&s.matches), &service_matches);
        vec![
            rule(analysis, weighted),
            rule(service_matches, vec![backend(&primary, port, 100)]),
        ]
    } else {
        let mut weighted = rule(service_matches, weighted);
        if traffic.mirror {
            let mut mirror = json!({"backendRef": {"group": "", "kind": "Service", "name": canary, "port": port}});
            if let Some(percent) = s.mirror.and_then(|m| m.percent) {
                mirror["percent"] = json!(percent);
            }
            weighted["filters"] = json!([{"type": "RequestMirror", "requestMirror": mirror}]);
        }
        vec![weighted]
    };
    rules.extend(sticky_rules);
    let parents: Vec<Value> = service
        .gateway_refs
        .iter()
        .map(|g| serde_json::to_value(g).expect("references serialize"))
        .collect();
    let mut metadata = owner.metadata(&s.apex);
    if let Some(apex) = &service.apex {
        if !apex.labels.is_empty() {
            metadata["labels"] = json!(apex.labels);
        }
        if !apex.annotations.is_empty() {
            metadata["annotations"] = json!(apex.annotations);
        }
    }
    let mut spec = json!({"parentRefs": parents, "rules": rules});
    if !service.hosts.is_empty() {
        spec["hostnames"] = json!(service.hosts);
    }
    json!({"apiVersion": API_VERSION, "kind": "HTTPRoute", "metadata": metadata, "spec": spec})
}

/// What a live HTTPRoute does with the canary: the first rule is the weighted one; a later rule
/// whose one backend is the canary is sticky.
fn live(route: &Value, s: &Settings) -> Live {
    let canary = s.canary_service();
    let rules = route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some((weighted, rest)) = rules.split_first() else {
        return Live::weighted(None);
    };
    let names_canary =
        |v: &Value, at: &str| v.pointer(at).and_then(Value::as_str) == Some(canary.as_str());
    let mirror = weighted
        .get("filters")
        .and_then(Value::as_array)
        .is_some_and(|filters| {
            filters
                .iter()
                .any(|f| names_canary(f, "/requestMirror/backendRef/name"))
        });
    let sticky = rest.iter().any(|r| {
        let backends = r.get("backendRefs").and_then(Value::as_array);
        backends.is_some_and(|b| b.len() == 1 && names_canary(&b[0], "/name"))
    });
    Live {
        weight: canary_weight(weighted.get("backendRefs"), "/name", &canary),
        mirror,
        sticky,
    }
}

/// A parent that has not accepted the route's current generation, if any.
fn not_accepted(route: &Value) -> Option<String> {
    let generation = route
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)?;
    let parents = route.pointer("/status/parents")?.as_array()?;
    parents.iter().find_map(|parent| {
        let accepted = parent
            .get("conditions")?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Accepted"))?;
        let ok = accepted.get("status").and_then(Value::as_str) == Some("True")
            && accepted
                .get("observedGeneration")
                .and_then(Value::as_i64)
                .is_none_or(|g| g >= generation);
        (!ok).then(|| {
            let name = parent
                .pointer("/parentRef/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            format!("Gateway {name} has not accepted generation {generation} of the HTTPRoute")
        })
    })
}

impl Router for GatewayApi {
    fn name(&self) -> &'static str {
        "gatewayapi:v1"
    }

    async fn route(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<(), RouterError> {
        ctx.apply_services(&ctx.primary_selector()?).await?;
        let route = http_route(ctx.settings, ctx.service, ctx.owner, traffic);
        apply(ctx.client, &route).await.map(drop)
    }

    async fn observe(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<Routes, RouterError> {
        let (live, routes) = ctx
            .read_apex_route(API_VERSION, "HTTPRoute", traffic, live)
            .await?;
        Ok(match (live, routes) {
            (Some(live), Routes::Converged) => {
                not_accepted(&live).map_or(Routes::Converged, Routes::Converging)
            }
            (_, routes) => routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, owner};
    use super::*;
    use crate::api::canary::CanarySpec;

    fn canary(analysis: Value) -> (Settings, CanarySpec) {
        testing::canary(json!({
            "provider": "gatewayapi:v1",
            "service": {"port": 9898, "targetPort": 9898, "hosts": ["app.example.com"],
                "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}]},
            "analysis": analysis,
        }))
    }

    #[test]
    fn a_progressive_route_weighs_primary_and_canary() {
        let (s, spec) =
            canary(json!({"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10}));
        let route = http_route(&s, &spec.service, &owner(), &Traffic::weight(10));
        assert_eq!(route["metadata"]["name"], "podinfo");
        assert_eq!(route["spec"]["hostnames"], json!(["app.example.com"]));
        assert_eq!(
            route["spec"]["parentRefs"],
            json!([{"name": "gateway", "namespace": "istio-ingress"}])
        );
        assert_eq!(
            route["spec"]["rules"],
            json!([{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"group": "", "kind": "Service", "name": "podinfo-primary", "port": 9898, "weight": 90},
                    {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898, "weight": 10},
                ],
            }])
        );
        assert_eq!(live(&route, &s), Live::weighted(Some(10)));
    }

    #[test]
    fn ab_testing_puts_header_and_cookie_matches_on_the_canary_rule() {
        let (s, spec) = canary(
            json!({"interval": "1m", "threshold": 5, "iterations": 10, "match": [
                {"headers": {"x-canary": {"exact": "insider"}}},
                {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
            ]}),
        );
        let route = http_route(&s, &spec.service, &owner(), &Traffic::weight(100));
        let rules = route["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0]["matches"],
            json!([
                {"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"type": "Exact", "name": "x-canary", "value": "insider"}]},
                {"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"type": "RegularExpression", "name": "cookie", "value": "^(.*?;)?(canary=always)(;.*)?$"}]},
            ])
        );
        assert_eq!(rules[0]["backendRefs"][0]["weight"], 0);
        assert_eq!(rules[0]["backendRefs"][1]["weight"], 100);
        assert_eq!(
            rules[1]["matches"],
            json!([{"path": {"type": "PathPrefix", "value": "/"}}])
        );
        assert_eq!(
            rules[1]["backendRefs"],
            json!([{"group": "", "kind": "Service", "name": "podinfo-primary", "port": 9898, "weight": 100}])
        );
    }

    #[test]
    fn prefixes_become_anchored_expressions_and_parents_must_accept() {
        let m = StringMatch {
            prefix: Some("a.b".into()),
            ..Default::default()
        };
        assert_eq!(string_match(&m, "Exact", "RegularExpression").1, "^a\\.b.*");
        let route = json!({"metadata": {"generation": 3}, "status": {"parents": [{"parentRef": {"name": "gw"},
            "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 2}]}]}});
        assert!(not_accepted(&route).unwrap().contains("generation 3"));
        assert_eq!(not_accepted(&json!({"metadata": {"generation": 3}})), None);
    }

    #[test]
    fn mirroring_adds_a_request_mirror_filter_to_the_weighted_rule() {
        let (s, spec) = canary(json!({"stepWeight": 10, "mirror": true, "mirrorWeight": 25}));
        let traffic = Traffic {
            mirror: true,
            ..Traffic::weight(0)
        };
        let route = http_route(&s, &spec.service, &owner(), &traffic);
        assert_eq!(
            route["spec"]["rules"][0]["filters"],
            json!([{"type": "RequestMirror", "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898},
                "percent": 25}}])
        );
        assert_eq!(route["spec"]["rules"][0]["backendRefs"][1]["weight"], 0);
        let want = Live {
            mirror: true,
            ..Live::weighted(Some(0))
        };
        assert_eq!(live(&route, &s), want);
        let done = http_route(&s, &spec.service, &owner(), &Traffic::weight(10));
        assert_eq!(done["spec"]["rules"][0].get("filters"), None);
        assert_eq!(live(&done, &s), Live::weighted(Some(10)));
    }

    #[test]
    fn session_affinity_adds_cookie_rules_and_response_headers() {
        let (s, spec) =
            canary(json!({"stepWeight": 10, "sessionAffinity": {"cookieName": "canary"}}));
        let traffic = Traffic {
            cookies: Some(crate::canary::machine::Cookies {
                canary: "abc".into(),
                primary: "abc-30".into(),
            }),
            ..Traffic::weight(30)
        };
        let route = http_route(&s, &spec.service, &owner(), &traffic);
        let rules = route["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2, "{rules:#?}");
        assert_eq!(
            rules[0]["backendRefs"],
            json!([
                {"group": "", "kind": "Service", "name": "podinfo-primary", "port": 9898, "weight": 70},
                {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898, "weight": 30,
                 "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier":
                    {"add": [{"name": "Set-Cookie", "value": "canary=abc; Max-Age=86400"}]}}]},
            ])
        );
        assert_eq!(
            rules[1],
            json!({
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [
                    {"type": "RegularExpression", "name": "Cookie", "value": "^(.*?;\\s*)?canary=abc(;.*)?$"}]}],
                "backendRefs": [{"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898, "weight": 100}],
            })
        );
        let want = Live {
            sticky: true,
            ..Live::weighted(Some(30))
        };
        assert_eq!(live(&route, &s), want);
        let rest = http_route(&s, &spec.service, &owner(), &Traffic::weight(0));
        assert_eq!(rest["spec"]["rules"].as_array().unwrap().len(), 1);
    }
}
