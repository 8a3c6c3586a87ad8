//! The `gatewayapi:v1` router at the object level on the real API server, with the Gateway API
//! CRDs of the `sigs.k8s.io/gateway-api` module (no Gateway API data plane can be built here, so
//! no traffic; the pods run on kwok's node): a progressive canary's HTTPRoute holds every step
//! weight in turn and returns to the primary after the promotion; an A/B canary's HTTPRoute
//! carries the header and cookie matches on the canary's rule; the objects have the shape
//! Flagger's Gateway API tutorial shows for the same Canary; deleting the Canary removes them.

mod support;

use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use support::canary::{self as c, Analyzer, wait_canary};
use support::node::eventually;

const LONG: Duration = Duration::from_secs(300);

fn routes(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// A Deployment on kwok's node (its pods are Ready at once and run nothing).
fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "containers": [{"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 9898}]}],
            }},
        },
    })
}

fn canary(name: &str, analysis: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 60,
            "service": {
                "port": 9898, "targetPort": 9898, "hosts": [format!("{name}.example.com")],
                "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}],
            },
            "analysis": analysis,
        },
    })
}

/// A backend reference as Flagger's tutorial shows it.
fn backend(name: &str, weight: u64) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": 9898, "weight": weight})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_hold_every_step_weight_and_the_ab_matches_on_the_real_crds() {
    c::install_gateway_api_crds();
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "gatewayapi").await;
    let n = ns.name().to_string();
    let _analyzer = Analyzer::start(&client, &n, None);
    for name in ["web", "ab"] {
        c::create(&client, &n, deployment(name, "example.com/app:v1")).await;
    }
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
        {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
    ]});
    c::create(&client, &n, canary("ab", ab)).await;
    for name in ["web", "ab"] {
        wait_canary(&client, &n, name, LONG, "initialized", |s| {
            c::phase(s) == "Initialized"
        })
        .await;
    }

    // At rest: everything to the primary, the objects Flagger's tutorial shows.
    let api = routes(&client, &n);
    let spec = |name: &'static str| {
        let api = api.clone();
        async move {
            api.get(name)
                .await
                .map(|r| r.data["spec"].clone())
                .map_err(|e| e.to_string())
        }
    };
    let rest = spec("web").await.unwrap();
    assert_eq!(rest["hostnames"], json!(["web.example.com"]));
    assert_eq!(rest["parentRefs"][0]["name"], "gateway");
    assert_eq!(rest["parentRefs"][0]["namespace"], "istio-ingress");
    assert_eq!(rest["rules"].as_array().unwrap().len(), 1, "{rest:#}");
    assert_eq!(
        rest["rules"][0]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}])
    );
    assert_eq!(
        rest["rules"][0]["backendRefs"],
        json!([backend("web-primary", 100), backend("web-canary", 0)])
    );

    // Every weight the progressive route takes, in order.
    let (weights, watch) = {
        let api = api.clone();
        c::record(move || {
            let api = api.clone();
            Box::pin(async move {
                let route = api.get("web").await.ok()?;
                route
                    .data
                    .pointer("/spec/rules/0/backendRefs/1/weight")
                    .cloned()
            })
        })
    };
    for name in ["web", "ab"] {
        c::set_image(&client, &n, name, "example.com/app:v2").await;
    }

    // A/B: the canary's rule carries the matches and sends them all to the canary; the rest
    // goes to the primary.
    let during = eventually(
        LONG,
        "the A/B route sending the matches to the canary",
        || async {
            let spec = spec("ab").await?;
            if spec.pointer("/rules/0/backendRefs/1/weight") == Some(&json!(100)) {
                Ok(spec)
            } else {
                Err(format!("{spec:#}"))
            }
        },
    )
    .await;
    assert_eq!(
        during["rules"][0]["matches"],
        json!([
            {"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"type": "Exact", "name": "x-canary", "value": "insider"}]},
            {"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"type": "RegularExpression", "name": "cookie", "value": "^(.*?;)?(canary=always)(;.*)?$"}]},
        ]),
        "{during:#}"
    );
    assert_eq!(
        during["rules"][0]["backendRefs"],
        json!([backend("ab-primary", 0), backend("ab-canary", 100)])
    );
    assert_eq!(
        during["rules"][1]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}])
    );
    assert_eq!(
        during["rules"][1]["backendRefs"],
        json!([backend("ab-primary", 100)])
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
        after["rules"][0]["backendRefs"],
        json!([backend("ab-primary", 100), backend("ab-canary", 0)])
    );
    let after = spec("web").await.unwrap();
    assert_eq!(
        after["rules"][0]["backendRefs"],
        json!([backend("web-primary", 100), backend("web-canary", 0)])
    );
    watch.abort();
    let weights = weights.lock().unwrap().clone();
    println!("the progressive HTTPRoute's canary weights: {weights:?}");
    assert_eq!(
        weights,
        [0, 10, 20, 30, 0].map(Value::from),
        "every step weight, then back to the primary"
    );

    // Cleanup: the routes go with their Canaries.
    c::delete_canaries_and_wait(&client, &n, &["web", "ab"], &[(&api, &[])]).await;
    ns.cleanup(&client).await;
}
