//! The `istio` provider: a VirtualService named after the apex Service, for the hosts and
//! gateways of `service`, whose first HTTP route sends weighted traffic to the primary and canary
//! Services; for A/B testing the first route carries the analysis matches and a second one sends
//! everything else to the primary. Mirrored, the weighted route copies requests to the canary
//! (`mirror`, `mirrorPercentage`); with session affinity, routes before it send the holders of the
//! cookies to the canary (and the primary), and its destinations set them. Two DestinationRules (`<apex>-primary`, `<apex>-canary`) carry
//! `service.trafficPolicy`; every route carries the service's `match`, `rewrite`, `timeout`,
//! `retries`, `headers` and `corsPolicy`. The same objects Flagger generates. The builders are
//! pure; `route` and `observe` talk to the API server.

use serde_json::{Map, Value, json};

use super::{Context, Live, Router, RouterError, Sticky, apply, canary_weight};
use crate::api::canary::{CanaryService, HttpMatch, StringMatch};
use crate::canary::machine::{Routes, Traffic};
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

/// A destination whose answers give the client `cookie`.
fn setting_cookie(mut destination: Value, sticky: &Sticky, cookie: &str) -> Value {
    destination["headers"] =
        json!({"response": {"add": {"Set-Cookie": sticky.set_cookie(cookie)}}});
    destination
}

/// A match on the `Cookie` header carrying `cookie` (Istio's header names are lower case).
fn cookie_match(cookie: &str) -> Value {
    json!({"headers": {"cookie": {"regex": Sticky::cookie_regex(cookie)}}})
}

/// The VirtualService for `traffic`: its weight on the canary; mirrored, the weighted route
/// copies requests to the canary; with session affinity cookies, a route before it sends the
/// holders of the canary's cookie to the canary (and of the primary's to the primary), and the
/// weighted route's destinations hand the cookies out.
pub fn virtual_service(
    s: &Settings,
    service: &CanaryService,
    owner: &Owner,
    traffic: &Traffic,
) -> Value {
    let weight = traffic.weight.min(100);
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
    let (primary, canary) = (s.primary_service(), s.canary_service());
    let mut weighted = vec![
        destination(&primary, 100 - weight),
        destination(&canary, weight),
    ];
    let mut http = Vec::new();
    if let Some(sticky) = Sticky::of(s, traffic) {
        let sticky_route = |cookie: &str, host: &str| {
            let matches = merged(&[cookie_match(cookie)], &service_matches);
            route(matches, vec![destination(host, 100)])
        };
        http.push(sticky_route(&sticky.canary, &canary));
        weighted[1] = setting_cookie(weighted[1].take(), &sticky, &sticky.canary);
        if let Some(cookie) = &sticky.primary {
            http.push(sticky_route(cookie, &primary));
            weighted[0] = setting_cookie(weighted[0].take(), &sticky, cookie);
        }
    }
    if matches!(s.strategy, Strategy::AbTesting { .. }) {
        let analysis = merged(&http_matches(&s.matches), &service_matches);
        http.push(route(analysis, weighted));
        http.push(route(service_matches, vec![destination(&primary, 100)]));
    } else {
        let mut weighted = route(service_matches, weighted);
        if traffic.mirror {
            weighted["mirror"] = json!({"host": canary});
            if let Some(percent) = s.mirror.and_then(|m| m.percent) {
                weighted["mirrorPercentage"] = json!({"value": percent});
            }
        }
        http.push(weighted);
    }
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

/// What a live VirtualService does with the canary: the weighted route is the first with more
/// than one destination; a route before it whose one destination is the canary is sticky.
fn live(vs: &Value, s: &Settings) -> Live {
    let canary = s.canary_service();
    let http = vs
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let destinations = |route: &Value| {
        route
            .get("route")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let weighted = http.iter().position(|r| destinations(r) > 1);
    let Some(at) = weighted else {
        return Live::weighted(None);
    };
    let route = &http[at];
    let to_canary = |r: &&Value| {
        destinations(r) == 1
            && r.pointer("/route/0/destination/host")
                .and_then(Value::as_str)
                == Some(canary.as_str())
    };
    Live {
        weight: canary_weight(route.get("route"), "/destination/host", &canary),
        mirror: route.pointer("/mirror/host").and_then(Value::as_str) == Some(canary.as_str()),
        sticky: http[..at].iter().any(|r| to_canary(&r)),
    }
}

impl Router for Istio {
    fn name(&self) -> &'static str {
        "istio"
    }

    async fn route(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<(), RouterError> {
        ctx.apply_services(&ctx.primary_selector()?).await?;
        for rule in destination_rules(ctx.settings, ctx.service, ctx.owner) {
            apply(ctx.client, &rule).await?;
        }
        let vs = virtual_service(ctx.settings, ctx.service, ctx.owner, traffic);
        apply(ctx.client, &vs).await.map(drop)
    }

    async fn observe(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<Routes, RouterError> {
        ctx.observe_apex_route(API_VERSION, "VirtualService", traffic, live)
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
        let vs = virtual_service(&s, &spec.service, &owner(), &Traffic::weight(10));
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
        assert_eq!(live(&vs, &s), Live::weighted(Some(10)));
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
        let vs = virtual_service(&s, &spec.service, &owner(), &Traffic::weight(100));
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

    #[test]
    fn mirroring_copies_the_weighted_routes_requests_to_the_canary() {
        let (s, spec) = canary(
            json!({"port": 9898}),
            json!({"stepWeight": 10, "mirror": true, "mirrorWeight": 40}),
        );
        let traffic = Traffic {
            mirror: true,
            ..Traffic::weight(0)
        };
        let vs = virtual_service(&s, &spec.service, &owner(), &traffic);
        assert_eq!(
            vs["spec"]["http"],
            json!([{
                "route": [destination("podinfo-primary", 100), destination("podinfo-canary", 0)],
                "mirror": {"host": "podinfo-canary"},
                "mirrorPercentage": {"value": 40},
            }])
        );
        let want = Live {
            mirror: true,
            ..Live::weighted(Some(0))
        };
        assert_eq!(live(&vs, &s), want);
        let (all, _) = canary(
            json!({"port": 9898}),
            json!({"stepWeight": 10, "mirror": true}),
        );
        let vs = virtual_service(&all, &spec.service, &owner(), &traffic);
        assert_eq!(vs["spec"]["http"][0].get("mirrorPercentage"), None);
        assert_eq!(
            vs["spec"]["http"][0]["mirror"],
            json!({"host": "podinfo-canary"})
        );
        let done = virtual_service(&s, &spec.service, &owner(), &Traffic::weight(0));
        assert_eq!(done["spec"]["http"][0].get("mirror"), None);
        assert!(matches!(
            live(&done, &s).routes("vs", &traffic),
            Routes::Converging(why) if why.contains("does not mirror")
        ));
    }

    #[test]
    fn session_affinity_routes_cookie_holders_first_and_hands_the_cookies_out() {
        let (s, spec) = canary(
            json!({"port": 9898, "match": [{"uri": {"prefix": "/api"}}]}),
            json!({"stepWeight": 10, "sessionAffinity": {"cookieName": "canary", "maxAge": 600,
                "primaryCookieName": "primary"}}),
        );
        let traffic = Traffic {
            cookies: Some(crate::canary::machine::Cookies {
                canary: "abc".into(),
                primary: "abc-10".into(),
            }),
            ..Traffic::weight(10)
        };
        let vs = virtual_service(&s, &spec.service, &owner(), &traffic);
        let set = |cookie: &str| json!({"response": {"add": {"Set-Cookie": format!("{cookie}; Max-Age=600")}}});
        assert_eq!(
            vs["spec"]["http"],
            json!([
                {"match": [{"uri": {"prefix": "/api"}, "headers": {"cookie": {"regex": "^(.*?;\\s*)?canary=abc(;.*)?$"}}}],
                 "route": [destination("podinfo-canary", 100)]},
                {"match": [{"uri": {"prefix": "/api"}, "headers": {"cookie": {"regex": "^(.*?;\\s*)?primary=abc\\-10(;.*)?$"}}}],
                 "route": [destination("podinfo-primary", 100)]},
                {"match": [{"uri": {"prefix": "/api"}}],
                 "route": [
                    {"destination": {"host": "podinfo-primary"}, "weight": 90, "headers": set("primary=abc-10")},
                    {"destination": {"host": "podinfo-canary"}, "weight": 10, "headers": set("canary=abc")},
                 ]},
            ])
        );
        let regex = regex::Regex::new(
            vs["spec"]["http"][0]["match"][0]["headers"]["cookie"]["regex"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert!(regex.is_match("session=1; canary=abc"));
        assert!(regex.is_match("canary=abc; theme=dark"));
        assert!(!regex.is_match("canary=abcd") && !regex.is_match("xcanary=abc"));
        let want = Live {
            sticky: true,
            ..Live::weighted(Some(10))
        };
        assert_eq!(live(&vs, &s), want);
        assert_eq!(live(&vs, &s).routes("vs", &traffic), Routes::Converged);
        // Without cookies (weight 0, or after the analysis) no route routes by them.
        let rest = virtual_service(&s, &spec.service, &owner(), &Traffic::weight(0));
        assert_eq!(rest["spec"]["http"].as_array().unwrap().len(), 1);
        assert_eq!(live(&rest, &s), Live::weighted(Some(0)));
    }
}
