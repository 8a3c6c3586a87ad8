//! Queries with Flagger's template variables (`{{ name }}`, `{{ namespace }}`, `{{ target }}`,
//! `{{ service }}`, `{{ ingress }}`, `{{ interval }}`, `{{ variables.NAME }}`), rendered
//! strictly: a variable that is not set is an error naming it. Also the built-in queries, over
//! the application's own metrics (`http_requests_total{code}`,
//! `http_request_duration_seconds`), which work for every provider implemented here since none
//! needs a mesh. Pure.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

use crate::canary::spec::Builtin;

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

/// The query of a built-in metric.
pub fn builtin(metric: Builtin) -> String {
    match metric {
        Builtin::RequestSuccessRate => format!(
            "sum(rate(http_requests_total{{{CANARY_PODS},code!~\"5..\"}}[{{{{ interval }}}}])) / sum(rate(http_requests_total{{{CANARY_PODS}}}[{{{{ interval }}}}])) * 100"
        ),
        Builtin::RequestDuration => format!(
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
        let rate = render(&builtin(Builtin::RequestSuccessRate), &vars()).unwrap();
        assert_eq!(
            rate,
            r#"sum(rate(http_requests_total{namespace="shop",pod=~"web-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",code!~"5.."}[30s])) / sum(rate(http_requests_total{namespace="shop",pod=~"web-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[30s])) * 100"#
        );
        let pods = regex::Regex::new(r"^(?:web-[0-9a-zA-Z]+(-[0-9a-zA-Z]+))$").unwrap();
        assert!(pods.is_match("web-7d9f8c-abcde"));
        assert!(!pods.is_match("web-primary-7d9f8c-abcde"));
        let duration = render(&builtin(Builtin::RequestDuration), &vars()).unwrap();
        assert!(duration.starts_with("histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{namespace=\"shop\""));
        assert!(duration.ends_with("[30s])) by (le)) * 1000"));
    }
}
