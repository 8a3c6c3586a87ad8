//! The `istio`, `nginx`, `contour` and `traefik` routers at the object level on the real API
//! server: the CRDs of the `istio.io/api`, `projectcontour/contour` and `traefik/traefik` modules,
//! ingress-nginx's canary Ingress on the built-in Ingress kind. No Envoy, Lua-enabled nginx or
//! current Traefik builds here, so there is no traffic; the pods run on kwok's node.
//! For each: a progressive canary's route holds every step weight in turn and returns to the
//! primary after the promotion; an A/B canary's route carries the header and cookie matches; the
//! objects have the shape Flagger's tutorials show for the same Canary; deleting the Canary
//! removes them and leaves the user's own objects as they were. A router whose CRDs are not
//! installed says so on the Canary, and the Canary proceeds once they are.

mod support;

use std::time::Duration;

use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};
use support::canary::{self as c, Analyzer, api, wait_canary};
use support::node::{self, eventually};

const LONG: Duration = Duration::from_secs(300);

fn destination(host: &str, weight: u64) -> Value {
    json!({"destination": {"host": host}, "weight": weight})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_virtual_services_hold_every_step_weight_and_the_ab_matches_on_the_real_crds() {
    let crds = c::module_file(
        c::ISTIO_API,
        "kubernetes/customresourcedefinitions.gen.yaml",
    );
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "istio").await;
    let n = ns.name().to_string();
    // Only this test uses Istio's kinds: start without them.
    let out = node::kubectl(&["delete", "--ignore-not-found", "--wait", "-f", &crds]);
    assert!(out.status.success(), "{out:?}");
    let _analyzer = Analyzer::start(&client, &n, None);
    for name in ["web", "ab"] {
        c::create(&client, &n, c::kwok_deployment(name)).await;
    }
    let canary = |name: &str, analysis: Value| {
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": name},
            "spec": {
                "provider": "istio",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "progressDeadlineSeconds": 60,
                "service": {
                    "port": 9898, "targetPort": 8080,
                    "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"],
                    "hosts": [format!("{name}.example.com")],
                    "trafficPolicy": {"tls": {"mode": "DISABLE"}},
                    "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream"},
                },
                "analysis": analysis,
            },
        })
    };
    c::create(
        &client,
        &n,
        canary(
            "web",
            json!({"interval": "10s", "threshold": 2, "maxWeight": 30, "stepWeight": 10}),
        ),
    )
    .await;

    // Without Istio's CRDs: a condition that says so, nothing else.
    let status = wait_canary(&client, &n, "web", LONG, "the missing CRDs named", |s| {
        c::ready_message(s).contains("does not serve networking.istio.io/v1")
    })
    .await;
    println!("without the CRDs: {}", c::ready_message(&status));
    c::install_istio_crds();

    let ab = json!({"interval": "10s", "threshold": 2, "iterations": 2, "match": [
        {"headers": {"x-canary": {"exact": "insider"}}},
        {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
    ]});
    c::create(&client, &n, canary("ab", ab)).await;
    // Ready once the routes went through (the phase alone may say Initialized before they did).
    for name in ["web", "ab"] {
        wait_canary(&client, &n, name, LONG, "initialized and routed", |s| {
            c::phase(s) == "Initialized" && c::ready_message(s).starts_with("True")
        })
        .await;
    }

    // At rest: everything to the primary, the objects Flagger's tutorial shows.
    let services = api(
        &client,
        &n,
        "networking.istio.io/v1",
        "VirtualService",
        "virtualservices",
    );
    let rules = api(
        &client,
        &n,
        "networking.istio.io/v1",
        "DestinationRule",
        "destinationrules",
    );
    let spec = |name: &'static str| {
        let services = services.clone();
        async move {
            services
                .get(name)
                .await
                .map(|r| r.data["spec"].clone())
                .map_err(|e| e.to_string())
        }
    };
    let rest = spec("web").await.unwrap();
    assert_eq!(
        rest,
        json!({
            "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"],
            "hosts": ["web.example.com", "web"],
            "http": [{
                "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream"},
                "route": [destination("web-primary", 100), destination("web-canary", 0)],
            }],
        })
    );
    for host in ["web-primary", "web-canary"] {
        let rule = rules.get(host).await.unwrap();
        assert_eq!(
            rule.data["spec"],
            json!({"host": host, "trafficPolicy": {"tls": {"mode": "DISABLE"}}})
        );
    }

    // Every weight the progressive route takes, in order.
    let (weights, watch) = {
        let services = services.clone();
        c::record(move || {
            let services = services.clone();
            Box::pin(async move {
                let vs = services.get("web").await.ok()?;
                vs.data.pointer("/spec/http/0/route/1/weight").cloned()
            })
        })
    };
    for name in ["web", "ab"] {
        c::set_image(&client, &n, name, "example.com/app:v2").await;
    }

    // A/B: the canary's route carries the matches and sends them all to the canary; the rest
    // goes to the primary.
    let during = eventually(
        LONG,
        "the A/B route sending the matches to the canary",
        || async {
            let spec = spec("ab").await?;
            if spec.pointer("/http/0/route/1/weight") == Some(&json!(100)) {
                Ok(spec)
            } else {
                Err(format!("{spec:#}"))
            }
        },
    )
    .await;
    assert_eq!(
        during["http"],
        json!([
            {"match": [
                {"headers": {"x-canary": {"exact": "insider"}}},
                {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
             ],
             "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream"},
             "route": [destination("ab-primary", 0), destination("ab-canary", 100)]},
            {"retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream"},
             "route": [destination("ab-primary", 100)]},
        ]),
        "{during:#}"
    );

    for name in ["web", "ab"] {
        let status = wait_canary(&client, &n, name, LONG, "promoted", |s| {
            c::phase(s) == "Succeeded"
        })
        .await;
        assert_eq!(status.canary_weight, 0);
        let image = c::image_of(&client, &n, &format!("{name}-primary")).await;
        assert_eq!(image.as_deref(), Some("example.com/app:v2"));
    }
    let after = spec("ab").await.unwrap();
    assert_eq!(
        after["http"][0]["route"],
        json!([destination("ab-primary", 100), destination("ab-canary", 0)])
    );
    watch.abort();
    let weights = weights.lock().unwrap().clone();
    println!("the progressive VirtualService's canary weights: {weights:?}");
    assert_eq!(
        weights,
        [json!(0), json!(10), json!(20), json!(30), json!(0)],
        "every step weight, then back to the primary"
    );

    // Cleanup: the VirtualServices and DestinationRules go with their Canaries.
    c::delete_canaries_and_wait(
        &client,
        &n,
        &["web", "ab"],
        &[(&services, &[]), (&rules, &[])],
    )
    .await;
    ns.cleanup(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_canary_ingresses_hold_every_step_weight_and_the_ab_header_and_cookie() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "nginx").await;
    let n = ns.name().to_string();
    let _analyzer = Analyzer::start(&client, &n, None);
    let ingress = |name: &str| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "labels": {"app": name},
                "annotations": {"kubernetes.io/ingress.class": "nginx"}},
            "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": [
                {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": name, "port": {"number": 80}}}},
            ]}}]},
        })
    };
    let canary = |name: &str, analysis: Value| {
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": name},
            "spec": {
                "provider": "nginx",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": name},
                "progressDeadlineSeconds": 60,
                "service": {"port": 80, "targetPort": 8080},
                "analysis": analysis,
            },
        })
    };
    for name in ["web", "ab"] {
        c::create(&client, &n, c::kwok_deployment(name)).await;
        c::create(&client, &n, ingress(name)).await;
    }
    let ingresses = api(&client, &n, "networking.k8s.io/v1", "Ingress", "ingresses");
    let original = ingresses.get("web").await.unwrap().data["spec"].clone();
    c::create(
        &client,
        &n,
        canary(
            "web",
            json!({"interval": "10s", "threshold": 2, "maxWeight": 30, "stepWeight": 10}),
        ),
    )
    .await;
    let ab = json!({"interval": "10s", "threshold": 2, "iterations": 2, "match": [
        {"headers": {"x-canary": {"exact": "insider"}}},
        {"headers": {"cookie": {"exact": "canary"}}},
    ]});
    c::create(&client, &n, canary("ab", ab)).await;
    // An Ingress that does not exist: said on the Canary.
    c::create(&client, &n, c::kwok_deployment("lost")).await;
    let mut lost = canary(
        "lost",
        json!({"interval": "10s", "maxWeight": 30, "stepWeight": 10}),
    );
    lost["spec"]["ingressRef"]["name"] = json!("nowhere");
    c::create(&client, &n, lost).await;
    let status = wait_canary(
        &client,
        &n,
        "lost",
        LONG,
        "the missing Ingress named",
        |s| c::ready_message(s).contains("nowhere does not exist"),
    )
    .await;
    println!("missing Ingress: {}", c::ready_message(&status));
    for name in ["web", "ab"] {
        wait_canary(&client, &n, name, LONG, "initialized", |s| {
            c::phase(s) == "Initialized"
        })
        .await;
    }

    // At rest: the canary Ingress copies the original towards the canary Service, weight 0.
    let annotations = |name: &'static str| {
        let ingresses = ingresses.clone();
        async move {
            ingresses
                .get(&format!("{name}-canary"))
                .await
                .map(|i| i.metadata.annotations.unwrap_or_default())
                .map_err(|e| e.to_string())
        }
    };
    let rest = ingresses.get("web-canary").await.unwrap();
    assert_eq!(
        rest.data["spec"]["rules"][0]["http"]["paths"][0]["backend"],
        json!({"service": {"name": "web-canary", "port": {"number": 80}}})
    );
    assert_eq!(rest.data["spec"]["rules"][0]["host"], "web.example.com");
    assert_eq!(
        serde_json::to_value(annotations("web").await.unwrap()).unwrap(),
        json!({"kubernetes.io/ingress.class": "nginx",
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "0"})
    );

    let (weights, watch) = {
        let ingresses = ingresses.clone();
        c::record(move || {
            let ingresses = ingresses.clone();
            Box::pin(async move {
                let canary = ingresses.get("web-canary").await.ok()?;
                let weight = canary
                    .metadata
                    .annotations?
                    .remove("nginx.ingress.kubernetes.io/canary-weight")?;
                Some(Value::from(weight))
            })
        })
    };
    for name in ["web", "ab"] {
        c::set_image(&client, &n, name, "example.com/app:v2").await;
    }

    // A/B: the header and the cookie send requests to the canary.
    let during = eventually(LONG, "the A/B canary Ingress routing by header", || async {
        let a = annotations("ab").await?;
        if a.contains_key("nginx.ingress.kubernetes.io/canary-by-header") {
            Ok(a)
        } else {
            Err(format!("{a:?}"))
        }
    })
    .await;
    assert_eq!(
        serde_json::to_value(&during).unwrap(),
        json!({"kubernetes.io/ingress.class": "nginx",
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-by-header": "x-canary",
            "nginx.ingress.kubernetes.io/canary-by-header-value": "insider",
            "nginx.ingress.kubernetes.io/canary-by-cookie": "canary"})
    );

    for name in ["web", "ab"] {
        let status = wait_canary(&client, &n, name, LONG, "promoted", |s| {
            c::phase(s) == "Succeeded"
        })
        .await;
        assert_eq!(status.canary_weight, 0);
        let image = c::image_of(&client, &n, &format!("{name}-primary")).await;
        assert_eq!(image.as_deref(), Some("example.com/app:v2"));
    }
    let after = annotations("ab").await.unwrap();
    assert_eq!(
        after
            .get("nginx.ingress.kubernetes.io/canary-weight")
            .map(String::as_str),
        Some("0")
    );
    assert!(!after.contains_key("nginx.ingress.kubernetes.io/canary-by-header"));
    watch.abort();
    let weights = weights.lock().unwrap().clone();
    println!("the canary Ingress's weights: {weights:?}");
    assert_eq!(
        weights,
        ["0", "10", "20", "30", "0"].map(Value::from),
        "every step weight, then back to the primary"
    );

    // The user's Ingress is as it was; the canary Ingresses go with their Canaries.
    assert_eq!(ingresses.get("web").await.unwrap().data["spec"], original);
    c::delete_canaries_and_wait(
        &client,
        &n,
        &["web", "ab", "lost"],
        &[(&ingresses, &["web", "ab"])],
    )
    .await;
    ns.cleanup(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contour_proxies_and_traefik_services_hold_every_step_weight_on_the_real_crds() {
    c::install_crds_from(
        &c::module_file(c::CONTOUR, "examples/contour/01-crds.yaml"),
        &["httpproxies.projectcontour.io"],
    );
    c::install_traefik_crds();
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "contour").await;
    let n = ns.name().to_string();
    let _analyzer = Analyzer::start(&client, &n, None);
    let canary = |name: &str, provider: &str, analysis: Value| {
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": name},
            "spec": {
                "provider": provider,
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "progressDeadlineSeconds": 60,
                "service": {"port": 80, "targetPort": 8080, "timeout": "15s"},
                "analysis": analysis,
            },
        })
    };
    let progressive = json!({"interval": "10s", "threshold": 2, "maxWeight": 30, "stepWeight": 10});
    let ab = json!({"interval": "10s", "threshold": 2, "iterations": 2, "match": [
        {"headers": {"x-canary": {"exact": "insider"}}},
    ]});
    for (name, provider, analysis) in [
        ("proxy", "contour", progressive.clone()),
        ("proxy-ab", "contour", ab),
        ("weighted", "traefik", progressive),
    ] {
        c::create(&client, &n, c::kwok_deployment(name)).await;
        c::create(&client, &n, canary(name, provider, analysis)).await;
    }
    for name in ["proxy", "proxy-ab", "weighted"] {
        wait_canary(&client, &n, name, LONG, "initialized", |s| {
            c::phase(s) == "Initialized"
        })
        .await;
    }
    let proxies = api(
        &client,
        &n,
        "projectcontour.io/v1",
        "HTTPProxy",
        "httpproxies",
    );
    let traefik = api(
        &client,
        &n,
        "traefik.io/v1alpha1",
        "TraefikService",
        "traefikservices",
    );
    let backend = |name: &str, weight: u64| json!({"name": name, "port": 80, "weight": weight});

    // At rest: everything to the primary, the objects Flagger's tutorials show.
    let rest = proxies.get("proxy").await.unwrap();
    assert_eq!(rest.data["spec"]["routes"].as_array().unwrap().len(), 1);
    assert_eq!(
        rest.data["spec"]["routes"][0]["conditions"],
        json!([{"prefix": "/"}])
    );
    assert_eq!(
        rest.data["spec"]["routes"][0]["timeoutPolicy"],
        json!({"response": "15s"})
    );
    assert_eq!(
        rest.data["spec"]["routes"][0]["services"],
        json!([backend("proxy-primary", 100), backend("proxy-canary", 0)])
    );
    let rest = traefik.get("weighted").await.unwrap();
    assert_eq!(
        rest.data["spec"],
        json!({"weighted": {"services": [backend("weighted-primary", 100), backend("weighted-canary", 0)]}})
    );

    let watch_weight = |api: Api<DynamicObject>, name: &'static str, pointer: &'static str| {
        c::record(move || {
            let api = api.clone();
            Box::pin(async move { api.get(name).await.ok()?.data.pointer(pointer).cloned() })
        })
    };
    let (proxy_weights, proxy_watch) =
        watch_weight(proxies.clone(), "proxy", "/spec/routes/0/services/1/weight");
    let (traefik_weights, traefik_watch) = watch_weight(
        traefik.clone(),
        "weighted",
        "/spec/weighted/services/1/weight",
    );
    for name in ["proxy", "proxy-ab", "weighted"] {
        c::set_image(&client, &n, name, "example.com/app:v2").await;
    }

    // A/B: the matching requests go to the canary, the rest to the primary.
    let during = eventually(
        LONG,
        "the A/B proxy sending the header to the canary",
        || async {
            let proxy = proxies.get("proxy-ab").await.map_err(|e| e.to_string())?;
            let routes = proxy.data["spec"]["routes"].clone();
            if routes.pointer("/0/services/1/weight") == Some(&json!(100)) {
                Ok(routes)
            } else {
                Err(format!("{routes:#}"))
            }
        },
    )
    .await;
    assert_eq!(
        during[0]["conditions"],
        json!([{"prefix": "/"}, {"header": {"name": "x-canary", "exact": "insider"}}])
    );
    assert_eq!(
        during[0]["services"],
        json!([
            backend("proxy-ab-primary", 0),
            backend("proxy-ab-canary", 100)
        ])
    );
    assert_eq!(during[1]["conditions"], json!([{"prefix": "/"}]));
    assert_eq!(
        during[1]["services"],
        json!([backend("proxy-ab-primary", 100)])
    );

    for name in ["proxy", "proxy-ab", "weighted"] {
        let status = wait_canary(&client, &n, name, LONG, "promoted", |s| {
            c::phase(s) == "Succeeded"
        })
        .await;
        assert_eq!(status.canary_weight, 0);
        let image = c::image_of(&client, &n, &format!("{name}-primary")).await;
        assert_eq!(image.as_deref(), Some("example.com/app:v2"));
    }
    proxy_watch.abort();
    traefik_watch.abort();
    for (what, weights) in [
        ("HTTPProxy", proxy_weights),
        ("TraefikService", traefik_weights),
    ] {
        let weights = weights.lock().unwrap().clone();
        println!("the progressive {what}'s canary weights: {weights:?}");
        assert_eq!(
            weights,
            [0, 10, 20, 30, 0].map(Value::from),
            "{what}: every step weight, then back to the primary"
        );
    }

    // Cleanup: the generated objects go with their Canaries.
    c::delete_canaries_and_wait(
        &client,
        &n,
        &["proxy", "proxy-ab", "weighted"],
        &[(&proxies, &[]), (&traefik, &[])],
    )
    .await;
    ns.cleanup(&client).await;
}
