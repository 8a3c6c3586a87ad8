//! Queries with Flagger's template variables (`{{ name }}`, `{{ namespace }}`, `{{ target }}`,
//! `{{ service }}`, `{{ ingress }}`, `{{ interval }}`, `{{ variables.NAME }}`), rendered
//! strictly: a variable that is not set is an error naming it. Also the built-in queries: over
//! the router's own metrics where it has them (ingress-nginx's
//! `nginx_ingress_controller_requests` and response durations of the canary backend, Istio's
//! `istio_requests_total` and request durations of the canary workload, Envoy's upstream requests
//! of the canary Service under Contour, Traefik's service requests, as Flagger reads them), over the application's own metrics (`http_requests_total{code}`,
//! `http_request_duration_seconds`) for the routers that need no mesh or proxy. Pure.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

use crate::canary::spec::{Builtin, Routing};

/// The values a query template can use.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Variables {
    /// The Canary's name.
    pub name: String,
    pub namespace: String,
    /// The target Deployment.
    pub target: String,
    /// The apex Service.
    pub service: String,
    pub ingress: String,
    /// The metric's window, e.g. `1m`.
    pub interval: String,
    pub variables: BTreeMap<String, String>,
}

/// The pods of the canary (the target), not of the primary: `<target>-<replicaset>-<pod>`.
const CANARY_PODS: &str =
    r#"namespace="{{ namespace }}",pod=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)""#;

/// ingress-nginx's requests through the canary Ingress of `{{ ingress }}`.
const NGINX_CANARY: &str = r#"namespace="{{ namespace }}",ingress="{{ ingress }}",canary!="""#;

/// Istio's telemetry of requests received by the canary's workload (the target Deployment).
const ISTIO_CANARY: &str = r#"reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}""#;

/// Envoy's (Contour's) upstream cluster of the canary Service.
const ENVOY_CANARY: &str =
    r#"envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+""#;

/// Traefik's service of the canary Service.
const TRAEFIK_CANARY: &str =
    r#"service=~"{{ namespace }}-{{ service }}-canary-[0-9a-zA-Z-]+@kubernetes""#;

/// The query of a built-in metric for a router.
pub fn builtin(metric: Builtin, routing: Routing) -> String {
    match (metric, routing) {
        (Builtin::RequestSuccessRate, Routing::Nginx) => format!(
            "sum(rate(nginx_ingress_controller_requests{{{NGINX_CANARY},status!~\"5.*\"}}[{{{{ interval }}}}])) / sum(rate(nginx_ingress_controller_requests{{{NGINX_CANARY}}}[{{{{ interval }}}}])) * 100"
        ),
        (Builtin::RequestDuration, Routing::Nginx) => format!(
            "sum(rate(nginx_ingress_controller_response_duration_seconds_sum{{{NGINX_CANARY}}}[{{{{ interval }}}}])) / sum(rate(nginx_ingress_controller_response_duration_seconds_count{{{NGINX_CANARY}}}[{{{{ interval }}}}])) * 1000"
        ),
        (Builtin::RequestSuccessRate, Routing::Istio) => format!(
            "sum(rate(istio_requests_total{{{ISTIO_CANARY},response_code!~\"5.*\"}}[{{{{ interval }}}}])) / sum(rate(istio_requests_total{{{ISTIO_CANARY}}}[{{{{ interval }}}}])) * 100"
        ),
        (Builtin::RequestDuration, Routing::Istio) => format!(
            "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{{{ISTIO_CANARY}}}[{{{{ interval }}}}])) by (le))"
        ),
        (Builtin::RequestSuccessRate, Routing::Contour) => format!(
            "sum(rate(envoy_cluster_upstream_rq{{{ENVOY_CANARY},envoy_response_code!~\"5.*\"}}[{{{{ interval }}}}])) / sum(rate(envoy_cluster_upstream_rq{{{ENVOY_CANARY}}}[{{{{ interval }}}}])) * 100"
        ),
        (Builtin::RequestDuration, Routing::Contour) => format!(
            "histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{{{ENVOY_CANARY}}}[{{{{ interval }}}}])) by (le))"
        ),
        (Builtin::RequestSuccessRate, Routing::Traefik) => format!(
            "sum(rate(traefik_service_requests_total{{{TRAEFIK_CANARY},code!~\"5..\"}}[{{{{ interval }}}}])) / sum(rate(traefik_service_requests_total{{{TRAEFIK_CANARY}}}[{{{{ interval }}}}])) * 100"
        ),
        (Builtin::RequestDuration, Routing::Traefik) => format!(
            "histogram_quantile(0.99, sum(rate(traefik_service_request_duration_seconds_bucket{{{TRAEFIK_CANARY}}}[{{{{ interval }}}}])) by (le)) * 1000"
        ),
        (Builtin::RequestSuccessRate, _) => format!(
            "sum(rate(http_requests_total{{{CANARY_PODS},code!~\"5..\"}}[{{{{ interval }}}}])) / sum(rate(http_requests_total{{{CANARY_PODS}}}[{{{{ interval }}}}])) * 100"
        ),
        (Builtin::RequestDuration, _) => format!(
            "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{{{CANARY_PODS}}}[{{{{ interval }}}}])) by (le)) * 1000"
        ),
    }
}

/// Renders a query template.
pub fn render(template: &str, variables: &Variables) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.render_str(template, variables)
        .map_err(|e| format!("the query template does not render: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        Variables {
            name: "web".into(),
            namespace: "shop".into(),
            target: "web".into(),
            service: "web".into(),
            ingress: String::new(),
            interval: "30s".into(),
            variables: [("route".to_string(), "checkout".to_string())].into(),
        }
    }

    #[test]
    fn flagger_templates_render_with_their_variables() {
        let query = r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+",route="{{ variables.route }}"}[{{ interval }}]))"#;
        assert_eq!(
            render(query, &vars()).unwrap(),
            r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"shop_web-canary_[0-9a-zA-Z-]+",route="checkout"}[30s]))"#
        );
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_it() {
        let err = render("x{a=\"{{ variables.missing }}\"}", &vars()).unwrap_err();
        assert!(
            err.contains("undefined") || err.contains("missing"),
            "{err}"
        );
        assert!(render("{{ nope }}", &vars()).is_err());
        assert!(render("{{ unclosed", &vars()).is_err());
    }

    #[test]
    fn builtins_select_the_canary_pods_only() {
        let rate = render(
            &builtin(Builtin::RequestSuccessRate, Routing::PodRatio),
            &vars(),
        )
        .unwrap();
        assert_eq!(
            rate,
            r#"sum(rate(http_requests_total{namespace="shop",pod=~"web-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",code!~"5.."}[30s])) / sum(rate(http_requests_total{namespace="shop",pod=~"web-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[30s])) * 100"#
        );
        let pods = regex::Regex::new(r"^(?:web-[0-9a-zA-Z]+(-[0-9a-zA-Z]+))$").unwrap();
        assert!(pods.is_match("web-7d9f8c-abcde"));
        assert!(!pods.is_match("web-primary-7d9f8c-abcde"));
        let duration = render(
            &builtin(Builtin::RequestDuration, Routing::PodRatio),
            &vars(),
        )
        .unwrap();
        assert!(duration.starts_with("histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{namespace=\"shop\""));
        assert!(duration.ends_with("[30s])) by (le)) * 1000"));
    }

    #[test]
    fn istio_builtins_read_the_canary_workloads_telemetry() {
        let rate = render(
            &builtin(Builtin::RequestSuccessRate, Routing::Istio),
            &vars(),
        )
        .unwrap();
        assert_eq!(
            rate,
            r#"sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload=~"web",response_code!~"5.*"}[30s])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload=~"web"}[30s])) * 100"#
        );
        let duration = render(&builtin(Builtin::RequestDuration, Routing::Istio), &vars()).unwrap();
        assert_eq!(
            duration,
            r#"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="shop",destination_workload=~"web"}[30s])) by (le))"#
        );
    }

    #[test]
    fn contour_and_traefik_builtins_read_the_canary_service_upstream() {
        let rate = render(
            &builtin(Builtin::RequestSuccessRate, Routing::Contour),
            &vars(),
        )
        .unwrap();
        assert_eq!(
            rate,
            r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"shop_web-canary_[0-9a-zA-Z-]+",envoy_response_code!~"5.*"}[30s])) / sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"shop_web-canary_[0-9a-zA-Z-]+"}[30s])) * 100"#
        );
        let rate = render(
            &builtin(Builtin::RequestSuccessRate, Routing::Traefik),
            &vars(),
        )
        .unwrap();
        assert_eq!(
            rate,
            r#"sum(rate(traefik_service_requests_total{service=~"shop-web-canary-[0-9a-zA-Z-]+@kubernetes",code!~"5.."}[30s])) / sum(rate(traefik_service_requests_total{service=~"shop-web-canary-[0-9a-zA-Z-]+@kubernetes"}[30s])) * 100"#
        );
        for routing in [Routing::Contour, Routing::Traefik] {
            let duration = render(&builtin(Builtin::RequestDuration, routing), &vars()).unwrap();
            assert!(
                duration.starts_with("histogram_quantile(0.99, "),
                "{duration}"
            );
        }
    }

    #[test]
    fn nginx_builtins_read_the_canary_ingress_requests() {
        let vars = Variables {
            ingress: "web".into(),
            ..vars()
        };
        let rate = render(&builtin(Builtin::RequestSuccessRate, Routing::Nginx), &vars).unwrap();
        assert_eq!(
            rate,
            r#"sum(rate(nginx_ingress_controller_requests{namespace="shop",ingress="web",canary!="",status!~"5.*"}[30s])) / sum(rate(nginx_ingress_controller_requests{namespace="shop",ingress="web",canary!=""}[30s])) * 100"#
        );
        let duration = render(&builtin(Builtin::RequestDuration, Routing::Nginx), &vars).unwrap();
        assert!(duration.starts_with("sum(rate(nginx_ingress_controller_response_duration_seconds_sum{namespace=\"shop\",ingress=\"web\",canary!=\"\"}[30s]))"), "{duration}");
    }
}
