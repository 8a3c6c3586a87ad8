//! Traffic mirroring and session affinity at the object level on the real API server, with the
//! CRDs of the `istio.io/api`, `traefik/traefik` and `sigs.k8s.io/gateway-api` modules (no data
//! plane of theirs builds here, so there is no traffic; the pods run on kwok's node).
//! A mirrored progressive canary's route mirrors for one step with the canary at weight 0, then
//! shifts the step weights without mirroring, and mirrors nothing after the promotion (Istio
//! VirtualService, Gateway API HTTPRoute); a mirrored blue/green canary's TraefikService mirrors
//! during the iterations. Session affinity: while the canary takes traffic, the route sends
//! holders of the revision's cookie to the canary and the canary's answers set it; after the
//! analysis no cookie route remains. A Canary asking the kubernetes router to mirror says why it
//! cannot on its Ready condition, and runs once the spec is mended.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::canary::{self as c, Analyzer, api, wait_canary};
use support::node::eventually;

const LONG: Duration = Duration::from_secs(300);

fn canary(name: &str, provider: &str, service: Value, analysis: Value) -> Value {
    let mut service_spec = json!({"port": 9898, "targetPort": 8080});
    service_spec
        .as_object_mut()
        .unwrap()
        .extend(service.as_object().unwrap().clone());
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "provider": provider,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 60,
            "service": service_spec,
            "analysis": analysis,
        },
    })
}

/// Records each new value `pointers` read together from the object `name` of `api`.
fn watch(
    api: &kube::Api<kube::api::DynamicObject>,
    name: &'static str,
    pointers: &'static [&'static str],
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    tokio::task::JoinHandle<()>,
) {
    let api = api.clone();
    c::record(move || {
        let api = api.clone();
        Box::pin(async move {
            let object = api.get(name).await.ok()?;
            let read = pointers.iter().map(|p| object.data.pointer(p).cloned());
            Some(Value::from(
                read.map(|v| v.unwrap_or(Value::Null)).collect::<Vec<_>>(),
            ))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_mirrors_one_step_before_shifting_and_routes_session_cookies_during_the_analysis() {
    c::install_istio_crds();
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "mirror-istio").await;
    let n = ns.name().to_string();
    let _analyzer = Analyzer::start(&client, &n, None);
    let progressive = json!({"interval": "10s", "threshold": 2, "maxWeight": 20, "stepWeight": 10});
    let mut mirrored = progressive.clone();
    mirrored["mirror"] = json!(true);
    mirrored["mirrorWeight"] = json!(50);
    let mut sticky = progressive;
    sticky["sessionAffinity"] =
        json!({"cookieName": "canary", "primaryCookieName": "primary", "maxAge": 600});
    for (name, analysis) in [("web", mirrored), ("sticky", sticky)] {
        c::create(&client, &n, c::kwok_deployment(name)).await;
        let service = json!({"hosts": [format!("{name}.example.com")]});
        c::create(&client, &n, canary(name, "istio", service, analysis)).await;
    }
    for name in ["web", "sticky"] {
        wait_canary(&client, &n, name, LONG, "initialized and routed", |s| {
            c::phase(s) == "Initialized" && c::ready_message(s).starts_with("True")
        })
        .await;
    }
    let services = api(
        &client,
        &n,
        "networking.istio.io/v1",
        "VirtualService",
        "virtualservices",
    );
    let http = |name: &'static str| {
        let services = services.clone();
        async move {
            services
                .get(name)
                .await
                .map(|r| r.data["spec"]["http"].clone())
                .map_err(|e| e.to_string())
        }
    };
    let (seen, recorder) = watch(
        &services,
        "web",
        &[
            "/spec/http/0/route/1/weight",
            "/spec/http/0/mirror",
            "/spec/http/0/mirrorPercentage",
        ],
    );
    for name in ["web", "sticky"] {
        c::set_image(&client, &n, name, "example.com/app:v2").await;
    }

    // Session affinity: once the canary takes traffic, the cookie routes come first and the
    // weighted route's destinations hand the cookies out.
    let during = eventually(LONG, "the session affinity routes", || async {
        let http = http("sticky").await?;
        if http.as_array().map_or(0, Vec::len) == 3 {
            Ok(http)
        } else {
            Err(format!("{http:#}"))
        }
    })
    .await;
    let status = wait_canary(&client, &n, "sticky", LONG, "analysing", |s| {
        c::phase(s) == "Progressing" && !s.last_applied_spec.is_empty()
    })
    .await;
    let revision = status.last_applied_spec.clone();
    let weight = during[2]["route"][1]["weight"].as_u64().unwrap();
    assert!(weight > 0, "{during:#}");
    let cookie = |name: &str, value: &str| json!([{"headers": {"cookie": {"regex": format!("^(.*?;\\s*)?{}(;.*)?$", regex::escape(&format!("{name}={value}")))}}}]);
    let primary_value = format!("{revision}-{weight}");
    let set = |cookie: String| json!({"response": {"add": {"Set-Cookie": format!("{cookie}; Max-Age=600")}}});
    assert_eq!(
        during,
        json!([
            {"match": cookie("canary", &revision),
             "route": [{"destination": {"host": "sticky-canary"}, "weight": 100}]},
            {"match": cookie("primary", &primary_value),
             "route": [{"destination": {"host": "sticky-primary"}, "weight": 100}]},
            {"route": [
                {"destination": {"host": "sticky-primary"}, "weight": 100 - weight,
                 "headers": set(format!("primary={primary_value}"))},
                {"destination": {"host": "sticky-canary"}, "weight": weight,
                 "headers": set(format!("canary={revision}"))},
            ]},
        ]),
        "{during:#}"
    );

    for name in ["web", "sticky"] {
        wait_canary(&client, &n, name, LONG, "promoted", |s| {
            c::phase(s) == "Succeeded"
        })
        .await;
        let image = c::image_of(&client, &n, &format!("{name}-primary")).await;
        assert_eq!(image.as_deref(), Some("example.com/app:v2"));
    }
    // After the analysis: no cookie route, no cookie handed out, nothing mirrored.
    for name in ["web", "sticky"] {
        let canary = format!("{name}-canary");
        let primary = format!("{name}-primary");
        eventually(LONG, "the route back at rest", || async {
            let http = http(name).await?;
            let rest = json!([{"route": [
                {"destination": {"host": primary}, "weight": 100},
                {"destination": {"host": canary}, "weight": 0},
            ]}]);
            if http == rest {
                Ok(())
            } else {
                Err(format!("{http:#}"))
            }
        })
        .await;
    }
    recorder.abort();
    let seen = seen.lock().unwrap().clone();
    println!("the mirrored VirtualService's canary weight, mirror and percentage: {seen:?}");
    let mirror = json!({"host": "web-canary"});
    assert_eq!(
        seen,
        [
            json!([0, null, null]),
            json!([0, mirror, {"value": 50}]),
            json!([10, null, null]),
            json!([20, null, null]),
            json!([0, null, null]),
        ],
        "one mirrored step at weight 0, then every step weight, then back to the primary"
    );
    let events =
        c::events_including(&client, &n, "web", "Promotion completed! Scaling down web.").await;
    let start = format!("Start traffic mirroring to web-canary.{n} (50 percent of requests)");
    let stop = format!("Stop traffic mirroring to web-canary.{n}");
    let at = |text: &str| events.iter().position(|e| e.ends_with(text));
    assert!(
        matches!((at(&start), at(&stop)), (Some(a), Some(b)) if a < b),
        "{events:#?}"
    );

    let rules = api(
        &client,
        &n,
        "networking.istio.io/v1",
        "DestinationRule",
        "destinationrules",
    );
    c::delete_canaries_and_wait(
        &client,
        &n,
        &["web", "sticky"],
        &[(&services, &[]), (&rules, &[])],
    )
    .await;
    ns.cleanup(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_and_traefik_mirror_while_asked_and_the_kubernetes_router_refuses_to() {
    c::install_gateway_api_crds();
    c::install_traefik_crds();
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "mirror-gw").await;
    let n = ns.name().to_string();
    let _analyzer = Analyzer::start(&client, &n, None);
    let gateway = json!({"gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}]});
    let mirrored = json!({"interval": "10s", "threshold": 2, "maxWeight": 20, "stepWeight": 10,
        "mirror": true, "mirrorWeight": 25});
    let sticky = json!({"interval": "10s", "threshold": 2, "maxWeight": 20, "stepWeight": 10,
        "sessionAffinity": {"cookieName": "canary"}});
    let blue_green = json!({"interval": "10s", "threshold": 2, "iterations": 2, "mirror": true});
    let kubernetes = json!({"interval": "10s", "threshold": 2, "iterations": 2, "mirror": true});
    for (name, provider, service, analysis) in [
        ("route", "gatewayapi:v1", gateway.clone(), mirrored),
        ("route-sticky", "gatewayapi:v1", gateway, sticky),
        ("shadow", "traefik", json!({}), blue_green),
        ("plain", "kubernetes", json!({}), kubernetes),
    ] {
        c::create(&client, &n, c::kwok_deployment(name)).await;
        c::create(&client, &n, canary(name, provider, service, analysis)).await;
    }

    // Bad input: said on the Ready condition and in an Event; nothing is created.
    let status = wait_canary(&client, &n, "plain", LONG, "the spec refused", |s| {
        c::ready_message(s).starts_with("False")
    })
    .await;
    let said = c::ready_message(&status);
    println!("kubernetes asked to mirror: {said}");
    assert!(
        said.contains("spec.analysis.mirror: the kubernetes provider cannot mirror traffic"),
        "{said}"
    );
    c::events_including(&client, &n, "plain", "spec.analysis.mirror").await;
    assert_eq!(c::image_of(&client, &n, "plain-primary").await, None);

    for name in ["route", "route-sticky", "shadow"] {
        wait_canary(&client, &n, name, LONG, "initialized and routed", |s| {
            c::phase(s) == "Initialized" && c::ready_message(s).starts_with("True")
        })
        .await;
    }
    let routes = api(
        &client,
        &n,
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "httproutes",
    );
    let traefik = api(
        &client,
        &n,
        "traefik.io/v1alpha1",
        "TraefikService",
        "traefikservices",
    );
    let (route_seen, route_recorder) = watch(
        &routes,
        "route",
        &[
            "/spec/rules/0/backendRefs/1/weight",
            "/spec/rules/0/filters",
        ],
    );
    let (shadow_seen, shadow_recorder) = watch(
        &traefik,
        "shadow",
        &["/spec/weighted/services/1/weight", "/spec/mirroring"],
    );
    for name in ["route", "route-sticky", "shadow"] {
        c::set_image(&client, &n, name, "example.com/app:v2").await;
    }

    // Gateway API session affinity: a rule for the cookie's holders, the cookie on the canary's
    // answers.
    let during = eventually(LONG, "the session affinity rule", || async {
        let route = routes
            .get("route-sticky")
            .await
            .map_err(|e| e.to_string())?;
        let rules = route.data["spec"]["rules"].clone();
        if rules.as_array().map_or(0, Vec::len) == 2 {
            Ok(rules)
        } else {
            Err(format!("{rules:#}"))
        }
    })
    .await;
    let status = wait_canary(&client, &n, "route-sticky", LONG, "analysing", |s| {
        c::phase(s) == "Progressing" && !s.last_applied_spec.is_empty()
    })
    .await;
    let cookie = format!("canary={}", status.last_applied_spec);
    assert_eq!(
        during[1]["matches"][0]["headers"],
        json!([{"type": "RegularExpression", "name": "Cookie",
            "value": format!("^(.*?;\\s*)?{}(;.*)?$", regex::escape(&cookie))}]),
        "{during:#}"
    );
    assert_eq!(during[1]["backendRefs"][0]["name"], "route-sticky-canary");
    assert_eq!(
        during[0]["backendRefs"][1]["filters"],
        json!([{"type": "ResponseHeaderModifier", "responseHeaderModifier":
            {"add": [{"name": "Set-Cookie", "value": format!("{cookie}; Max-Age=86400")}]}}]),
        "{during:#}"
    );

    for name in ["route", "route-sticky", "shadow"] {
        wait_canary(&client, &n, name, LONG, "promoted", |s| {
            c::phase(s) == "Succeeded"
        })
        .await;
        let image = c::image_of(&client, &n, &format!("{name}-primary")).await;
        assert_eq!(image.as_deref(), Some("example.com/app:v2"));
    }
    eventually(LONG, "no session affinity rule left", || async {
        let route = routes
            .get("route-sticky")
            .await
            .map_err(|e| e.to_string())?;
        let rules = route.data["spec"]["rules"].clone();
        let cookies = rules.to_string().contains("Cookie");
        if rules.as_array().map_or(0, Vec::len) == 1 && !cookies {
            Ok(())
        } else {
            Err(format!("{rules:#}"))
        }
    })
    .await;
    route_recorder.abort();
    shadow_recorder.abort();

    let route_seen = route_seen.lock().unwrap().clone();
    println!("the mirrored HTTPRoute's canary weight and filters: {route_seen:?}");
    let mirror = json!([{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"group": "", "kind": "Service", "name": "route-canary", "port": 9898},
        "percent": 25}}]);
    assert_eq!(
        route_seen,
        [
            json!([0, null]),
            json!([0, mirror]),
            json!([10, null]),
            json!([20, null]),
            json!([0, null]),
        ],
        "one mirrored step at weight 0, then every step weight, then back to the primary"
    );
    let shadow_seen = shadow_seen.lock().unwrap().clone();
    println!("the blue/green TraefikService's canary weight and mirroring: {shadow_seen:?}");
    let mirroring = json!({"name": "shadow-primary", "port": 9898,
        "mirrors": [{"name": "shadow-canary", "port": 9898, "percent": 100}]});
    assert_eq!(
        shadow_seen,
        [json!([0, null]), json!([null, mirroring]), json!([0, null]),],
        "weighted, mirroring through the iterations, weighted again"
    );
    let events = c::events_including(
        &client,
        &n,
        "shadow",
        "Promotion completed! Scaling down shadow.",
    )
    .await;
    for said in [
        format!("Start traffic mirroring to shadow-canary.{n}"),
        format!("Stop traffic mirroring to shadow-canary.{n}"),
    ] {
        assert!(events.iter().any(|e| e.ends_with(&said)), "{events:#?}");
    }

    // The mended spec runs.
    c::patch_canary(&client, &n, "plain", json!({"analysis": {"mirror": false}})).await;
    wait_canary(&client, &n, "plain", LONG, "initialized once mended", |s| {
        c::phase(s) == "Initialized"
    })
    .await;

    c::delete_canaries_and_wait(
        &client,
        &n,
        &["route", "route-sticky", "shadow", "plain"],
        &[(&routes, &[]), (&traefik, &[])],
    )
    .await;
    ns.cleanup(&client).await;
}
