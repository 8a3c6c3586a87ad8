//! The `nginx` provider (ingress-nginx): a copy of the Canary's `ingressRef` Ingress named
//! `<ingress>-canary`, whose backends are the canary Service, marked as ingress-nginx's canary of
//! the original with the `nginx.ingress.kubernetes.io/canary*` annotations: a weight for
//! progressive and blue/green analyses, a header and a cookie for A/B testing. The original
//! Ingress is left as the user wrote it (its backend, the apex Service, selects the primary). The
//! same objects Flagger generates. `canary_ingress` is pure; `route` and `observe` talk to the
//! API server.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Context, Router, RouterError, apply};
use crate::api::canary::HttpMatch;
use crate::canary::machine::{Routes, Traffic};
use crate::canary::objects::Owner;
use crate::canary::spec::{Settings, Strategy};

pub const API_VERSION: &str = "networking.k8s.io/v1";
/// The canary marker; every canary annotation's name starts with it.
const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
const BY_HEADER: &str = "nginx.ingress.kubernetes.io/canary-by-header";
const BY_HEADER_VALUE: &str = "nginx.ingress.kubernetes.io/canary-by-header-value";
const BY_HEADER_PATTERN: &str = "nginx.ingress.kubernetes.io/canary-by-header-pattern";
const BY_COOKIE: &str = "nginx.ingress.kubernetes.io/canary-by-cookie";

pub struct Nginx;

/// The name of the canary Ingress of `ingress`.
pub fn canary_name(ingress: &str) -> String {
    format!("{ingress}-canary")
}

/// The annotations that send traffic to the canary: `weight` percent, or for A/B testing (at a
/// weight above 0) the requests that match.
fn canary_annotations(s: &Settings, weight: u32) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([(CANARY.to_string(), "true".to_string())]);
    if matches!(s.strategy, Strategy::AbTesting { .. }) && weight > 0 {
        out.extend(match_annotations(&s.matches));
    } else {
        out.insert(WEIGHT.into(), weight.min(100).to_string());
    }
    out
}

/// A/B matches as annotations (the spec check allows one header and one cookie).
fn match_annotations(matches: &[HttpMatch]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in matches.iter().flat_map(|m| &m.headers) {
        if name.eq_ignore_ascii_case("cookie") {
            if let Some(cookie) = &value.exact {
                out.insert(BY_COOKIE.into(), cookie.clone());
            }
        } else {
            out.insert(BY_HEADER.into(), name.clone());
            if let Some(exact) = &value.exact {
                out.insert(BY_HEADER_VALUE.into(), exact.clone());
            } else if let Some(regex) = &value.regex {
                out.insert(BY_HEADER_PATTERN.into(), regex.clone());
            }
        }
    }
    out
}

/// Points every backend of an Ingress spec that names `from` at `to`.
fn retarget(spec: &mut Value, from: &str, to: &str) {
    let point = |backend: &mut Value| {
        if let Some(name) = backend.pointer_mut("/service/name")
            && name.as_str() == Some(from)
        {
            *name = Value::from(to);
        }
    };
    if let Some(default) = spec.get_mut("defaultBackend") {
        point(default);
    }
    let rules = spec.get_mut("rules").and_then(Value::as_array_mut);
    for rule in rules.into_iter().flatten() {
        let paths = rule
            .pointer_mut("/http/paths")
            .and_then(Value::as_array_mut);
        for backend in paths
            .into_iter()
            .flatten()
            .filter_map(|p| p.get_mut("backend"))
        {
            point(backend);
        }
    }
}

/// The canary Ingress for `weight` percent on the canary, from the user's `ingress`: its spec
/// with the apex Service's backends pointed at the canary Service, its annotations without any
/// canary ones of its own, and the canary annotations.
pub fn canary_ingress(s: &Settings, ingress: &Value, owner: &Owner, weight: u32) -> Value {
    let name = ingress
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = ingress
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter(|(k, _)| {
                    !k.starts_with(CANARY)
                        && *k != "kubectl.kubernetes.io/last-applied-configuration"
                })
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    annotations.extend(canary_annotations(s, weight));
    let mut spec = ingress.get("spec").cloned().unwrap_or_else(|| json!({}));
    retarget(&mut spec, &s.apex, &s.canary_service());
    let mut metadata = owner.metadata(&canary_name(name));
    metadata["annotations"] = json!(annotations);
    json!({"apiVersion": API_VERSION, "kind": "Ingress", "metadata": metadata, "spec": spec})
}

/// Whether a live canary Ingress carries the annotations of `weight`.
fn carries(live: &Value, wanted: &BTreeMap<String, String>) -> bool {
    let live: BTreeMap<&str, &str> = live
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter(|(k, _)| k.starts_with(CANARY))
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    live.len() == wanted.len()
        && wanted
            .iter()
            .all(|(k, v)| live.get(k.as_str()) == Some(&v.as_str()))
}

impl Nginx {
    /// The user's Ingress, or why it cannot be read.
    async fn ingress(&self, ctx: &Context<'_>) -> Result<Value, RouterError> {
        let name = ctx.settings.ingress.as_deref().unwrap_or_default();
        ctx.read(API_VERSION, "Ingress", name)
            .await?
            .ok_or_else(|| RouterError::Missing {
                what: format!("Ingress {}/{name}", ctx.namespace()),
            })
    }
}

impl Router for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }

    async fn route(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<(), RouterError> {
        let weight = traffic.weight;
        ctx.apply_services(&ctx.primary_selector()?).await?;
        let ingress = self.ingress(ctx).await?;
        let canary = canary_ingress(ctx.settings, &ingress, ctx.owner, weight);
        apply(ctx.client, &canary).await.map(drop)
    }

    async fn observe(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<Routes, RouterError> {
        let weight = traffic.weight;
        let name = canary_name(ctx.settings.ingress.as_deref().unwrap_or_default());
        let what = format!("Ingress {}/{name}", ctx.namespace());
        let Some(live) = ctx.read(API_VERSION, "Ingress", &name).await? else {
            return Ok(Routes::Converging(format!("{what} does not exist yet")));
        };
        if carries(&live, &canary_annotations(ctx.settings, weight)) {
            Ok(Routes::Converged)
        } else {
            Ok(Routes::Converging(format!(
                "{what} does not carry the canary annotations of weight {weight} yet"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, owner};
    use super::*;
    use crate::api::canary::CanarySpec;

    fn settings(analysis: Value) -> Settings {
        testing::canary(json!({
            "provider": "nginx",
            "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"},
            "service": {"port": 80, "targetPort": 9898},
            "analysis": analysis,
        }))
        .0
    }

    fn ingress() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"},
                "annotations": {"kubernetes.io/ingress.class": "nginx",
                    "nginx.ingress.kubernetes.io/canary-weight": "30",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
                {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
                {"pathType": "Prefix", "path": "/other", "backend": {"service": {"name": "other", "port": {"number": 80}}}},
            ]}}]},
        })
    }

    #[test]
    fn the_canary_ingress_copies_the_original_towards_the_canary_service() {
        let s =
            settings(json!({"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10}));
        let canary = canary_ingress(&s, &ingress(), &owner(), 10);
        assert_eq!(canary["metadata"]["name"], "podinfo-canary");
        assert_eq!(
            canary["metadata"]["annotations"],
            json!({"kubernetes.io/ingress.class": "nginx",
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "10"})
        );
        let paths = &canary["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(paths[0]["backend"]["service"]["name"], "podinfo-canary");
        assert_eq!(paths[1]["backend"]["service"]["name"], "other");
        assert_eq!(canary["metadata"]["ownerReferences"][0]["kind"], "Canary");
        assert!(carries(&canary, &canary_annotations(&s, 10)));
        assert!(!carries(&canary, &canary_annotations(&s, 20)));
    }

    #[test]
    fn ab_testing_routes_by_header_and_cookie_and_rests_at_weight_zero() {
        let s = settings(
            json!({"interval": "1m", "threshold": 5, "iterations": 10, "match": [
                {"headers": {"x-canary": {"exact": "insider"}}},
                {"headers": {"cookie": {"exact": "canary"}}},
            ]}),
        );
        let canary = canary_ingress(&s, &ingress(), &owner(), 100);
        assert_eq!(
            canary["metadata"]["annotations"],
            json!({"kubernetes.io/ingress.class": "nginx",
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-by-header": "x-canary",
                "nginx.ingress.kubernetes.io/canary-by-header-value": "insider",
                "nginx.ingress.kubernetes.io/canary-by-cookie": "canary"})
        );
        let rest = canary_ingress(&s, &ingress(), &owner(), 0);
        assert_eq!(
            rest["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
            "0"
        );
        assert!(rest["metadata"]["annotations"].get(BY_HEADER).is_none());
        let regex = settings(json!({"interval": "1m", "iterations": 2, "match": [
            {"headers": {"user-agent": {"regex": ".*Firefox.*"}}}]}));
        let canary = canary_ingress(&regex, &ingress(), &owner(), 100);
        assert_eq!(
            canary["metadata"]["annotations"][BY_HEADER_PATTERN],
            ".*Firefox.*"
        );
    }

    #[test]
    fn what_nginx_cannot_route_on_is_refused_naming_the_field() {
        let refused = |analysis: Value| {
            let spec: CanarySpec = serde_json::from_value(json!({
                "provider": "nginx",
                "targetRef": {"name": "podinfo"},
                "ingressRef": {"name": "podinfo"},
                "service": {"port": 80},
                "analysis": analysis,
            }))
            .unwrap();
            crate::canary::spec::settings(&spec)
                .unwrap_err()
                .to_string()
        };
        let two = refused(json!({"iterations": 2, "match": [
            {"headers": {"x-a": {"exact": "1"}}}, {"headers": {"x-b": {"exact": "2"}}}]}));
        assert!(
            two.contains("analysis.match") && two.contains("one header"),
            "{two}"
        );
        let uri = refused(json!({"iterations": 2, "match": [{"uri": {"prefix": "/api"}}]}));
        assert!(uri.contains("analysis.match[0]"), "{uri}");
        let prefix =
            refused(json!({"iterations": 2, "match": [{"headers": {"x-a": {"prefix": "a"}}}]}));
        assert!(prefix.contains("analysis.match[0].headers.x-a"), "{prefix}");
        let spec: CanarySpec = serde_json::from_value(json!({
            "provider": "nginx", "targetRef": {"name": "podinfo"}, "service": {"port": 80}}))
        .unwrap();
        let missing = crate::canary::spec::settings(&spec)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("ingressRef"), "{missing}");
    }
}
