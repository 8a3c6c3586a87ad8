//! A Canary's spec, checked once and turned into the settings the analysis runs on: the strategy
//! and its steps, durations, thresholds, metrics, webhooks and alerts, mirroring and session
//! affinity (`traffic`); and the references it makes to other namespaces. Every mistake is
//! reported with the field that holds it. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use super::alerts::Alert;
use crate::api::canary::{
    CanaryAnalysis, CanaryMetric, CanarySpec, CanaryWebhook, HttpMatch, NoData, StringMatch,
    TemplateReference,
};
use crate::api::duration;
use crate::runtime::references::Reference;

mod traffic;
use crate::runtime::window::{self, Windows};
pub use traffic::{Affinity, DEFAULT_COOKIE_MAX_AGE, Mirror};

/// Flagger's floor for the analysis interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
pub const DEFAULT_METRIC_INTERVAL: &str = "1m";
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// A spec the analysis cannot run with; only a change of the spec helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct InvalidSpec {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// How traffic reaches the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Plain Services: blue/green by switching the apex Service's selector, or progressive
    /// weights by the ratio of canary to primary pods behind it.
    Kubernetes,
    /// Gateway API HTTPRoute weights and matches.
    GatewayApi,
    /// ingress-nginx: a canary Ingress with weight, header and cookie annotations.
    Nginx,
    /// Istio VirtualService weights and matches.
    Istio,
    /// Contour HTTPProxy weights and conditions.
    Contour,
    /// A weighted TraefikService.
    Traefik,
}

/// How a new revision is exposed while it is analysed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Traffic moves to the canary in these rising weights (percent).
    Progressive { weights: Vec<u32> },
    /// Requests that match go to the canary for this many steps.
    AbTesting { iterations: u32 },
    /// The canary is tested on its own Service for this many steps, then takes all traffic at once.
    BlueGreen { iterations: u32 },
}

/// The router a Canary needs: the provider with the strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// `kubernetes` blue/green: the apex Service selects the primary or the canary.
    ServiceSelector,
    /// `kubernetes` progressive: the apex Service selects both; weights are pod counts.
    PodRatio,
    /// `gatewayapi:v1`: HTTPRoute weights (and matches for A/B testing).
    GatewayApi,
    /// `nginx`: the canary Ingress's weight (or header and cookie for A/B testing).
    Nginx,
    /// `istio`: VirtualService weights (and matches for A/B testing).
    Istio,
    /// `contour`: HTTPProxy weights (and conditions for A/B testing).
    Contour,
    /// `traefik`: TraefikService weights.
    Traefik,
}

impl Routing {
    /// The provider's name, as `spec.provider` spells it.
    pub fn provider(self) -> &'static str {
        match self {
            Routing::ServiceSelector | Routing::PodRatio => "kubernetes",
            Routing::GatewayApi => "gatewayapi:v1",
            Routing::Nginx => "nginx",
            Routing::Istio => "istio",
            Routing::Contour => "contour",
            Routing::Traefik => "traefik",
        }
    }
}

/// A built-in metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Percentage of the canary's requests answered without a 5xx.
    RequestSuccessRate,
    /// The canary's 99th percentile request duration, in milliseconds.
    RequestDuration,
}

impl Builtin {
    pub fn name(self) -> &'static str {
        match self {
            Builtin::RequestSuccessRate => "request-success-rate",
            Builtin::RequestDuration => "request-duration",
        }
    }
}

/// Where a metric's query comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Builtin(Builtin),
    Template {
        name: String,
        namespace: Option<String>,
    },
    Inline(String),
}

/// One metric check.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub query: Query,
    /// `{{ interval }}`, as written (e.g. `1m`).
    pub interval: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub variables: BTreeMap<String, String>,
    pub no_data: NoData,
}

impl Metric {
    /// Whether a value is within the accepted range.
    pub fn accepts(&self, value: f64) -> bool {
        !value.is_nan()
            && self.min.is_none_or(|min| value >= min)
            && self.max.is_none_or(|max| value <= max)
    }

    /// The accepted range, for people: `>= 99`, `<= 500`, `99..100`.
    pub fn range(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("{min}..{max}"),
            (Some(min), None) => format!(">= {min}"),
            (None, Some(max)) => format!("<= {max}"),
            (None, None) => "any".into(),
        }
    }
}

/// Flagger's webhook types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookType {
    ConfirmRollout,
    PreRollout,
    Rollout,
    ConfirmTrafficIncrease,
    ConfirmPromotion,
    PostRollout,
    Rollback,
    Event,
}

impl HookType {
    pub const ALL: [HookType; 8] = [
        HookType::ConfirmRollout,
        HookType::PreRollout,
        HookType::Rollout,
        HookType::ConfirmTrafficIncrease,
        HookType::ConfirmPromotion,
        HookType::PostRollout,
        HookType::Rollback,
        HookType::Event,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookType::ConfirmRollout => "confirm-rollout",
            HookType::PreRollout => "pre-rollout",
            HookType::Rollout => "rollout",
            HookType::ConfirmTrafficIncrease => "confirm-traffic-increase",
            HookType::ConfirmPromotion => "confirm-promotion",
            HookType::PostRollout => "post-rollout",
            HookType::Rollback => "rollback",
            HookType::Event => "event",
        }
    }

    fn parse(text: &str) -> Option<HookType> {
        HookType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub type_: HookType,
    pub name: String,
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
    pub metadata: BTreeMap<String, String>,
}

/// The kind of a Canary's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Deployment,
    DaemonSet,
}

impl TargetKind {
    /// The kind `spec.targetRef` names; `None` for a kind a Canary cannot target.
    pub fn of(spec: &CanarySpec) -> Option<TargetKind> {
        match spec.target_ref.kind.as_deref() {
            None | Some("Deployment") => Some(TargetKind::Deployment),
            Some("DaemonSet") => Some(TargetKind::DaemonSet),
            Some(_) => None,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            TargetKind::Deployment => "Deployment",
            TargetKind::DaemonSet => "DaemonSet",
        }
    }
}

/// What the analysis runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub target: String,
    pub target_kind: TargetKind,
    pub apex: String,
    pub routing: Routing,
    pub strategy: Strategy,
    pub interval: Duration,
    pub threshold: u32,
    pub deadline: Duration,
    pub skip_analysis: bool,
    /// Percent of the primary's and the canary's pods that must be ready.
    pub primary_ready: u32,
    pub canary_ready: u32,
    /// Weight moved back to the primary per step while promoting; `None`: all at once.
    pub promotion_step: Option<u32>,
    pub metrics: Vec<Metric>,
    pub hooks: Vec<Hook>,
    /// `analysis.alerts`.
    pub alerts: Vec<Alert>,
    /// A/B testing matches.
    pub matches: Vec<HttpMatch>,
    /// The Ingress whose traffic is shifted (`nginx`).
    pub ingress: Option<String>,
    /// `analysis.mirror`; `None`: nothing is mirrored.
    pub mirror: Option<Mirror>,
    /// `analysis.sessionAffinity`; `None`: no cookies.
    pub affinity: Option<Affinity>,
    /// When a promotion may start.
    pub windows: Windows,
}

impl Settings {
    pub fn primary(&self) -> String {
        format!("{}-primary", self.target)
    }
    pub fn primary_service(&self) -> String {
        format!("{}-primary", self.apex)
    }
    pub fn canary_service(&self) -> String {
        format!("{}-canary", self.apex)
    }

    pub fn hooks(&self, type_: HookType) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.type_ == type_)
    }

    pub fn has_hooks(&self, type_: HookType) -> bool {
        self.hooks(type_).next().is_some()
    }

    /// The weight after `current` in a progressive analysis; `None` at the last step.
    pub fn next_weight(&self, current: u32) -> Option<u32> {
        match &self.strategy {
            Strategy::Progressive { weights } => weights.iter().copied().find(|&w| w > current),
            _ => None,
        }
    }

    /// Steps of a blue/green or A/B analysis.
    pub fn iterations(&self) -> Option<u32> {
        match self.strategy {
            Strategy::AbTesting { iterations } | Strategy::BlueGreen { iterations } => {
                Some(iterations)
            }
            Strategy::Progressive { .. } => None,
        }
    }
}

/// The objects in other namespaces a Canary may name, for the cross-namespace rule: its
/// metrics' MetricTemplates and its alerts' Providers. (Gateways it attaches routes to are the
/// Gateway's to admit, through its own `allowedRoutes`.)
pub fn references(spec: &CanarySpec) -> Vec<Reference<'_>> {
    let Some(analysis) = &spec.analysis else {
        return Vec::new();
    };
    let templates = analysis.metrics.iter().enumerate().filter_map(|(i, m)| {
        let template = m.template_ref.as_ref()?;
        Some(Reference::new(
            format!("spec.analysis.metrics[{i}].templateRef"),
            template.namespace.as_deref(),
            &template.name,
        ))
    });
    let providers = analysis.alerts.iter().enumerate().map(|(i, a)| {
        Reference::new(
            format!("spec.analysis.alerts[{i}].providerRef"),
            a.provider_ref.namespace.as_deref(),
            &a.provider_ref.name,
        )
    });
    templates.chain(providers).collect()
}

/// Checks `spec` and derives the settings.
pub fn settings(spec: &CanarySpec) -> Result<Settings, InvalidSpec> {
    let target = &spec.target_ref;
    if target.name.is_empty() {
        return Err(invalid("targetRef.name", "is empty"));
    }
    let Some(target_kind) = TargetKind::of(spec) else {
        return Err(invalid(
            "targetRef.kind",
            format!(
                "{} is not supported (Deployment and DaemonSet are)",
                target.kind.as_deref().unwrap_or_default()
            ),
        ));
    };
    if target_kind == TargetKind::DaemonSet && spec.autoscaler_ref.is_some() {
        return Err(invalid(
            "autoscalerRef",
            "a DaemonSet runs one pod per node and has no autoscaler",
        ));
    }
    if let Some(hpa) = &spec.autoscaler_ref
        && let Some(kind) = hpa
            .kind
            .as_deref()
            .filter(|k| *k != "HorizontalPodAutoscaler")
    {
        return Err(invalid(
            "autoscalerRef.kind",
            format!("{kind} is not supported (HorizontalPodAutoscaler is)"),
        ));
    }
    if !(1..=65535).contains(&spec.service.port) {
        return Err(invalid(
            "service.port",
            format!("{} is not a port number", spec.service.port),
        ));
    }
    let provider = match spec.provider.as_deref().unwrap_or("kubernetes") {
        "kubernetes" | "" => Provider::Kubernetes,
        "gatewayapi:v1" | "gatewayapi" => Provider::GatewayApi,
        "nginx" => Provider::Nginx,
        "istio" => Provider::Istio,
        "contour" => Provider::Contour,
        "traefik" => Provider::Traefik,
        other => {
            return Err(invalid(
                "provider",
                format!(
                    "{other:?} is not supported (kubernetes, gatewayapi:v1, istio, contour, traefik or nginx are)"
                ),
            ));
        }
    };
    if provider == Provider::GatewayApi && spec.service.gateway_refs.is_empty() {
        return Err(invalid(
            "service.gatewayRefs",
            "gatewayapi:v1 needs at least one Gateway to attach the HTTPRoute to",
        ));
    }
    let ingress = ingress(spec, provider)?;
    for (i, m) in spec.service.matches.iter().enumerate() {
        check_match(m, &format!("service.match[{i}]"))?;
    }
    let deadline = match spec.progress_deadline_seconds {
        None => DEFAULT_DEADLINE,
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        Some(s) => {
            return Err(invalid(
                "progressDeadlineSeconds",
                format!("{s} is not a positive number of seconds"),
            ));
        }
    };
    let default_analysis = CanaryAnalysis::default();
    let analysis = spec.analysis.as_ref().unwrap_or(&default_analysis);
    let skip_analysis = spec.skip_analysis || spec.analysis.is_none();
    for (i, m) in analysis.matches.iter().enumerate() {
        check_match(m, &format!("analysis.match[{i}]"))?;
    }
    let strategy = if skip_analysis && spec.analysis.is_none() {
        // Promoted at once; the routing of a blue/green switch.
        Strategy::BlueGreen { iterations: 0 }
    } else {
        strategy(analysis)?
    };
    let mut strategy = strategy;
    let routing = match (provider, &mut strategy) {
        (Provider::GatewayApi, _) => Routing::GatewayApi,
        (Provider::Nginx, Strategy::AbTesting { .. }) => {
            nginx_matches(&analysis.matches)?;
            Routing::Nginx
        }
        (Provider::Nginx, _) => Routing::Nginx,
        (Provider::Istio, _) => Routing::Istio,
        (Provider::Contour, _) => Routing::Contour,
        (Provider::Traefik, Strategy::AbTesting { .. }) => {
            return Err(invalid(
                "analysis.match",
                "A/B testing routes by headers and cookies, which traefik's weighted services cannot do; use provider gatewayapi:v1, istio, contour or nginx",
            ));
        }
        (Provider::Traefik, _) => Routing::Traefik,
        (Provider::Kubernetes, Strategy::BlueGreen { .. }) => Routing::ServiceSelector,
        (Provider::Kubernetes, Strategy::Progressive { weights }) => {
            // Without a maxWeight, the steps stop short of 100: the promotion moves the rest.
            if analysis.max_weight.is_none() && analysis.step_weights.is_empty() {
                weights.retain(|&w| w < 100);
            }
            if let Some(w) = weights.iter().find(|&&w| w >= 100) {
                return Err(invalid(
                    "analysis.maxWeight",
                    format!(
                        "the kubernetes provider shifts weight by pod counts and needs weights below 100 ({w} given); the promotion moves the rest"
                    ),
                ));
            }
            if target_kind == TargetKind::DaemonSet {
                return Err(invalid(
                    "analysis",
                    "a DaemonSet runs one pod per node, so the kubernetes provider cannot weigh traffic by pod counts; use iterations (blue/green) or a mesh or ingress provider",
                ));
            }
            Routing::PodRatio
        }
        (Provider::Kubernetes, Strategy::AbTesting { .. }) => {
            return Err(invalid(
                "analysis.match",
                "A/B testing routes by headers and cookies, which the kubernetes provider cannot do; use provider gatewayapi:v1, istio, contour or nginx",
            ));
        }
    };
    let interval = match analysis.interval.as_deref() {
        None => DEFAULT_INTERVAL,
        Some(text) => duration::parse(text)
            .map_err(|e| invalid("analysis.interval", e.to_string()))?
            .max(MIN_INTERVAL),
    };
    let threshold = match analysis.threshold {
        None => 1,
        Some(t) if t >= 1 => t as u32,
        Some(t) => {
            return Err(invalid(
                "analysis.threshold",
                format!("{t}: the number of failed checks that rolls back must be at least 1"),
            ));
        }
    };
    let percent = |field: &str, value: Option<i32>| match value {
        None => Ok(100),
        Some(v) if (0..=100).contains(&v) => Ok(v as u32),
        Some(v) => Err(invalid(
            format!("analysis.{field}"),
            format!("{v} is not a percentage"),
        )),
    };
    let promotion_step = match analysis.step_weight_promotion {
        None | Some(0) => None,
        Some(s) if (1..=100).contains(&s) => Some(s as u32),
        Some(s) => {
            return Err(invalid(
                "analysis.stepWeightPromotion",
                format!("{s} is not a percentage"),
            ));
        }
    };
    let default_no_data = analysis.no_data.unwrap_or_default();
    let metrics = analysis
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| metric(m, i, default_no_data))
        .collect::<Result<Vec<_>, _>>()?;
    let hooks = analysis
        .webhooks
        .iter()
        .enumerate()
        .map(|(i, w)| hook(w, i))
        .collect::<Result<Vec<_>, _>>()?;
    let alerts = analysis
        .alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            Alert::of(alert).ok_or_else(|| {
                invalid(
                    format!("analysis.alerts[{i}].severity"),
                    format!(
                        "{:?} is not info, warn or error",
                        alert.severity.as_deref().unwrap_or_default()
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mirror = traffic::mirror(analysis, routing, &strategy)?;
    let affinity = traffic::affinity(analysis.session_affinity.as_ref(), routing, &strategy)?;
    Ok(Settings {
        target: target.name.clone(),
        target_kind,
        apex: spec
            .service
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| target.name.clone()),
        routing,
        strategy,
        interval,
        threshold,
        deadline,
        skip_analysis,
        primary_ready: percent("primaryReadyThreshold", analysis.primary_ready_threshold)?,
        canary_ready: percent("canaryReadyThreshold", analysis.canary_ready_threshold)?,
        promotion_step,
        metrics,
        hooks,
        alerts,
        matches: analysis.matches.clone(),
        ingress,
        mirror,
        affinity,
        windows: window::parse(&spec.release_windows)
            .map_err(|e| invalid(e.field(), e.to_string()))?,
    })
}

/// The Ingress `nginx` shifts traffic of, checked; `None` for other providers.
fn ingress(spec: &CanarySpec, provider: Provider) -> Result<Option<String>, InvalidSpec> {
    let Some(reference) = &spec.ingress_ref else {
        if provider == Provider::Nginx {
            return Err(invalid(
                "ingressRef",
                "nginx needs the Ingress whose traffic it shifts",
            ));
        }
        return Ok(None);
    };
    if let Some(kind) = reference.kind.as_deref().filter(|k| *k != "Ingress") {
        return Err(invalid(
            "ingressRef.kind",
            format!("{kind} is not supported (Ingress is)"),
        ));
    }
    if reference.name.is_empty() {
        return Err(invalid("ingressRef.name", "is empty"));
    }
    Ok(Some(reference.name.clone()))
}

/// What ingress-nginx can route on in A/B testing: one header (exact or regex) and one cookie
/// (`cookie: {exact: NAME}`, the canary taking requests whose cookie NAME is `always`), nothing
/// else.
fn nginx_matches(matches: &[HttpMatch]) -> Result<(), InvalidSpec> {
    let (mut headers, mut cookies) = (0, 0);
    for (i, m) in matches.iter().enumerate() {
        let at = format!("analysis.match[{i}]");
        if m.uri.is_some() || m.method.is_some() || !m.query_params.is_empty() {
            return Err(invalid(
                at,
                "nginx routes A/B tests by one header and one cookie; uri, method and queryParams cannot be expressed",
            ));
        }
        for (name, value) in &m.headers {
            if name.eq_ignore_ascii_case("cookie") {
                cookies += 1;
                if value.exact.is_none() {
                    return Err(invalid(
                        format!("{at}.headers.cookie"),
                        "nginx matches a cookie by its exact name (the canary takes requests whose cookie of that name is `always`)",
                    ));
                }
            } else {
                headers += 1;
                if value.exact.is_none() && value.regex.is_none() {
                    return Err(invalid(
                        format!("{at}.headers.{name}"),
                        "nginx matches a header by exact value or regex",
                    ));
                }
            }
        }
    }
    if headers > 1 || cookies > 1 {
        return Err(invalid(
            "analysis.match",
            format!(
                "nginx routes A/B tests by one header and one cookie ({headers} header and {cookies} cookie matches given)"
            ),
        ));
    }
    Ok(())
}

/// The strategy, as Flagger picks it: iterations with matches is A/B testing, iterations alone
/// blue/green, otherwise progressive weights.
fn strategy(analysis: &CanaryAnalysis) -> Result<Strategy, InvalidSpec> {
    if let Some(iterations) = analysis.iterations.filter(|&i| i != 0) {
        if iterations < 0 {
            return Err(invalid(
                "analysis.iterations",
                format!("{iterations} is negative"),
            ));
        }
        let iterations = iterations as u32;
        return Ok(if analysis.matches.is_empty() {
            Strategy::BlueGreen { iterations }
        } else {
            Strategy::AbTesting { iterations }
        });
    }
    if !analysis.matches.is_empty() {
        return Err(invalid(
            "analysis.match",
            "A/B testing needs analysis.iterations",
        ));
    }
    let max = match analysis.max_weight {
        None => 100,
        Some(m) if (1..=100).contains(&m) => m as u32,
        Some(m) => {
            return Err(invalid(
                "analysis.maxWeight",
                format!("{m} is not a weight from 1 to 100"),
            ));
        }
    };
    let weights = if !analysis.step_weights.is_empty() {
        let mut previous = 0;
        for (i, &w) in analysis.step_weights.iter().enumerate() {
            if !(1..=100).contains(&w) {
                return Err(invalid(
                    format!("analysis.stepWeights[{i}]"),
                    format!("{w} is not a weight from 1 to 100"),
                ));
            }
            if w as u32 <= previous {
                return Err(invalid(
                    format!("analysis.stepWeights[{i}]"),
                    format!("step weights must rise, but {w} follows {previous}"),
                ));
            }
            previous = w as u32;
        }
        analysis.step_weights.iter().map(|&w| w as u32).collect()
    } else {
        match analysis.step_weight {
            Some(step) if (1..=100).contains(&step) => {
                let step = step as u32;
                let mut weights: Vec<u32> =
                    (1..).map(|n| n * step).take_while(|&w| w < max).collect();
                weights.push(max);
                weights
            }
            Some(step) => {
                return Err(invalid(
                    "analysis.stepWeight",
                    format!("{step} is not a weight from 1 to 100"),
                ));
            }
            None => {
                return Err(invalid(
                    "analysis",
                    "set stepWeight or stepWeights (progressive), or iterations (blue/green; with match, A/B testing)",
                ));
            }
        }
    };
    Ok(Strategy::Progressive { weights })
}

fn metric(m: &CanaryMetric, i: usize, default_no_data: NoData) -> Result<Metric, InvalidSpec> {
    let field = |rest: &str| format!("analysis.metrics[{i}]{rest}");
    if m.name.is_empty() {
        return Err(invalid(field(".name"), "is empty"));
    }
    let builtin = [Builtin::RequestSuccessRate, Builtin::RequestDuration]
        .into_iter()
        .find(|b| b.name() == m.name);
    let query = match (&m.template_ref, &m.query, builtin) {
        (Some(TemplateReference { name, namespace }), _, _) => {
            if name.is_empty() {
                return Err(invalid(field(".templateRef.name"), "is empty"));
            }
            Query::Template {
                name: name.clone(),
                namespace: namespace.clone(),
            }
        }
        (None, Some(query), _) if !query.trim().is_empty() => Query::Inline(query.clone()),
        (None, _, Some(builtin)) => Query::Builtin(builtin),
        (None, _, None) => {
            return Err(invalid(
                field(""),
                format!(
                    "{:?} is not a built-in metric (request-success-rate, request-duration) and has no templateRef",
                    m.name
                ),
            ));
        }
    };
    let interval = m
        .interval
        .clone()
        .unwrap_or_else(|| DEFAULT_METRIC_INTERVAL.into());
    duration::parse(&interval).map_err(|e| invalid(field(".interval"), e.to_string()))?;
    let (mut min, mut max) = m
        .threshold_range
        .as_ref()
        .map_or((None, None), |r| (r.min, r.max));
    if min.is_none() && max.is_none() {
        match (m.threshold, &query) {
            (Some(t), Query::Builtin(Builtin::RequestSuccessRate)) => min = Some(t),
            (Some(t), _) => max = Some(t),
            (None, _) => {
                return Err(invalid(
                    field(".thresholdRange"),
                    "needs min or max: a metric without a bound decides nothing",
                ));
            }
        }
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(invalid(
            field(".thresholdRange"),
            format!("min {lo} is above max {hi}"),
        ));
    }
    Ok(Metric {
        name: m.name.clone(),
        query,
        interval,
        min,
        max,
        variables: m.template_variables.clone(),
        no_data: m.no_data.unwrap_or(default_no_data),
    })
}

fn hook(w: &CanaryWebhook, i: usize) -> Result<Hook, InvalidSpec> {
    let field = |rest: &str| format!("analysis.webhooks[{i}]{rest}");
    let type_ = match w.type_.as_deref() {
        None | Some("") => HookType::Rollout,
        Some(t) => HookType::parse(t).ok_or_else(|| {
            invalid(
                field(".type"),
                format!(
                    "{t:?} is not one of {}",
                    HookType::ALL.map(HookType::as_str).join(", ")
                ),
            )
        })?,
    };
    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
        return Err(invalid(
            field(".url"),
            format!("{:?} is not an http:// or https:// URL", w.url),
        ));
    }
    let timeout = match w.timeout.as_deref() {
        None => DEFAULT_WEBHOOK_TIMEOUT,
        Some(t) => duration::parse(t).map_err(|e| invalid(field(".timeout"), e.to_string()))?,
    };
    if timeout.is_zero() {
        return Err(invalid(field(".timeout"), "must be above zero"));
    }
    let retries = match w.retries {
        None => 0,
        Some(r) if (0..=10).contains(&r) => r as u32,
        Some(r) => {
            return Err(invalid(
                field(".retries"),
                format!("{r} is not between 0 and 10"),
            ));
        }
    };
    Ok(Hook {
        type_,
        name: w.name.clone(),
        url: w.url.clone(),
        timeout,
        retries,
        metadata: w.metadata.clone(),
    })
}

fn check_match(m: &HttpMatch, field: &str) -> Result<(), InvalidSpec> {
    let one = |s: &StringMatch, at: String| {
        let set = [&s.exact, &s.prefix, &s.suffix, &s.regex]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if set == 1 {
            Ok(())
        } else {
            Err(invalid(
                at,
                "set exactly one of exact, prefix, suffix or regex",
            ))
        }
    };
    for (name, s) in &m.headers {
        one(s, format!("{field}.headers.{name}"))?;
    }
    for (name, s) in &m.query_params {
        one(s, format!("{field}.queryParams.{name}"))?;
    }
    if let Some(uri) = &m.uri {
        one(uri, format!("{field}.uri"))?;
    }
    if let Some(method) = &m.method
        && method.exact.is_none()
    {
        return Err(invalid(
            format!("{field}.method"),
            "only exact is supported",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn spec(analysis: serde_json::Value) -> CanarySpec {
        serde_json::from_value(json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "service": {"port": 80},
            "analysis": analysis,
        }))
        .unwrap()
    }

    fn error(analysis: serde_json::Value) -> String {
        settings(&spec(analysis)).unwrap_err().to_string()
    }

    #[test]
    fn a_daemon_set_target_runs_blue_green_or_on_a_mesh_never_by_pod_counts() {
        let daemon_set = |extra: serde_json::Value, analysis: serde_json::Value| {
            let mut canary = json!({"targetRef": {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent"},
                "service": {"port": 80}, "analysis": analysis});
            canary
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            settings(&serde_json::from_value(canary).unwrap())
        };
        let blue_green = daemon_set(json!({}), json!({"iterations": 3})).unwrap();
        assert_eq!(blue_green.target_kind, TargetKind::DaemonSet);
        assert_eq!(blue_green.routing, Routing::ServiceSelector);
        let mesh = daemon_set(json!({"provider": "istio"}), json!({"stepWeight": 10})).unwrap();
        assert_eq!(mesh.routing, Routing::Istio);
        let by_pods = daemon_set(json!({}), json!({"stepWeight": 10})).unwrap_err();
        assert_eq!(by_pods.field, "analysis");
        assert!(by_pods.message.contains("one pod per node"), "{by_pods}");
        let scaled = daemon_set(
            json!({"autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "agent"}}),
            json!({"iterations": 3}),
        )
        .unwrap_err();
        assert_eq!(scaled.field, "autoscalerRef");
        let stateful = serde_json::from_value(
            json!({"targetRef": {"kind": "StatefulSet", "name": "db"}, "service": {"port": 80}}),
        )
        .unwrap();
        assert_eq!(
            settings(&stateful).unwrap_err().to_string(),
            "spec.targetRef.kind: StatefulSet is not supported (Deployment and DaemonSet are)"
        );
    }

    #[test]
    fn templates_and_alert_providers_elsewhere_are_its_cross_namespace_references() {
        use crate::runtime::references::CrossNamespaceRefs;
        let canary = spec(json!({"stepWeight": 10,
            "metrics": [{"name": "rate", "thresholdRange": {"min": 99}},
                {"name": "latency", "templateRef": {"name": "latency", "namespace": "team-b"}}],
            "alerts": [{"name": "on-call", "providerRef": {"name": "slack", "namespace": "team-b"}},
                {"name": "team", "providerRef": {"name": "chat"}}]}));
        let err = CrossNamespaceRefs::Refused
            .check("team-a", references(&canary))
            .unwrap_err();
        assert!(
            err.ends_with(
                "spec.analysis.metrics[1].templateRef team-b/latency, spec.analysis.alerts[0].providerRef team-b/slack"
            ),
            "{err}"
        );
        assert!(
            CrossNamespaceRefs::Allowed
                .check("team-a", references(&canary))
                .is_ok()
        );
        assert!(
            CrossNamespaceRefs::Refused
                .check("team-b", references(&canary))
                .is_ok()
        );
    }

    #[test]
    fn step_weight_climbs_to_max_weight() {
        let s = settings(&spec(
            json!({"stepWeight": 20, "maxWeight": 50, "threshold": 2}),
        ))
        .unwrap();
        assert_eq!(
            s.strategy,
            Strategy::Progressive {
                weights: vec![20, 40, 50]
            }
        );
        assert_eq!(s.routing, Routing::PodRatio);
        assert_eq!(s.next_weight(0), Some(20));
        assert_eq!(s.next_weight(40), Some(50));
        assert_eq!(s.next_weight(50), None);
        assert_eq!(
            (s.apex.as_str(), s.primary().as_str()),
            ("web", "web-primary")
        );
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        assert_eq!(s.threshold, 2);
    }

    #[test]
    fn iterations_pick_blue_green_or_ab_testing_as_flagger_does() {
        let bg = settings(&spec(json!({"iterations": 3, "stepWeight": 10}))).unwrap();
        assert_eq!(bg.strategy, Strategy::BlueGreen { iterations: 3 });
        assert_eq!(bg.routing, Routing::ServiceSelector);
        let mut ab =
            spec(json!({"iterations": 3, "match": [{"headers": {"x-canary": {"exact": "1"}}}]}));
        ab.provider = Some("gatewayapi:v1".into());
        ab.service.gateway_refs = vec![Default::default()];
        ab.service.gateway_refs[0].name = "gw".into();
        let ab = settings(&ab).unwrap();
        assert_eq!(ab.strategy, Strategy::AbTesting { iterations: 3 });
        assert_eq!(ab.routing, Routing::GatewayApi);
    }

    #[test]
    fn bad_analyses_name_their_field() {
        assert!(
            error(json!({"stepWeight": 10, "threshold": 0})).contains("spec.analysis.threshold: 0")
        );
        let down = error(json!({"stepWeights": [10, 60, 50]}));
        assert!(
            down.contains("stepWeights[2]") && down.contains("50 follows 60"),
            "{down}"
        );
        assert!(error(json!({"stepWeight": 10, "interval": "soon"})).contains("analysis.interval"));
        assert!(error(json!({})).contains("stepWeight"));
        assert!(error(json!({"stepWeight": 10, "maxWeight": 100})).contains("below 100"));
        let ab = error(json!({"iterations": 2, "match": [{"headers": {"x": {"exact": "1"}}}]}));
        assert!(ab.contains("gatewayapi"), "{ab}");
        let metric = error(json!({"stepWeight": 10, "metrics": [{"name": "errors"}]}));
        assert!(
            metric.contains("metrics[0]") && metric.contains("templateRef"),
            "{metric}"
        );
        let unbounded = error(json!({"stepWeight": 10, "metrics": [{"name": "request-duration"}]}));
        assert!(unbounded.contains("thresholdRange"), "{unbounded}");
        let hook = error(
            json!({"stepWeight": 10, "webhooks": [{"name": "a", "url": "http://x/", "type": "pre"}]}),
        );
        assert!(hook.contains("webhooks[0].type"), "{hook}");
        let url = error(json!({"stepWeight": 10, "webhooks": [{"name": "a", "url": "x"}]}));
        assert!(url.contains("webhooks[0].url"), "{url}");
        let both = error(
            json!({"stepWeight": 10, "match": [{"headers": {"x": {"exact": "1", "regex": "1"}}}]}),
        );
        assert!(both.contains("match[0].headers.x"), "{both}");
        let gw = {
            let mut s = spec(json!({"stepWeight": 10}));
            s.provider = Some("gatewayapi:v1".into());
            settings(&s).unwrap_err().to_string()
        };
        assert!(gw.contains("gatewayRefs"), "{gw}");
        let mut linkerd = spec(json!({"stepWeight": 10}));
        linkerd.provider = Some("linkerd".into());
        assert!(
            settings(&linkerd)
                .unwrap_err()
                .to_string()
                .contains("provider")
        );
    }

    #[test]
    fn metrics_take_bounds_defaults_and_templates() {
        let s = settings(&spec(json!({"stepWeight": 50, "maxWeight": 50, "noData": "Pause", "metrics": [
            {"name": "request-success-rate", "threshold": 99},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "30s", "noData": "Fail"},
            {"name": "errors", "templateRef": {"name": "errors", "namespace": "ops"}, "thresholdRange": {"max": 1},
             "templateVariables": {"route": "web"}},
        ]}))).unwrap();
        let [rate, duration, errors] = &s.metrics[..] else {
            panic!()
        };
        assert_eq!((rate.min, rate.max), (Some(99.0), None));
        assert_eq!(rate.interval, "1m");
        assert_eq!(rate.no_data, NoData::Pause);
        assert_eq!(duration.no_data, NoData::Fail);
        assert!(duration.accepts(500.0) && !duration.accepts(500.1) && !duration.accepts(f64::NAN));
        assert_eq!(
            errors.query,
            Query::Template {
                name: "errors".into(),
                namespace: Some("ops".into())
            }
        );
        assert_eq!(errors.variables["route"], "web");
        assert_eq!(rate.range(), ">= 99");
    }

    #[test]
    fn short_intervals_are_raised_to_flaggers_floor_and_hooks_get_defaults() {
        let s = settings(&spec(json!({"stepWeight": 10, "interval": "1s",
            "webhooks": [{"name": "load", "url": "http://t/"}, {"name": "gate", "type": "confirm-promotion", "url": "http://t/gate", "timeout": "3s", "retries": 2}]}))).unwrap();
        assert_eq!(s.interval, MIN_INTERVAL);
        assert_eq!(s.hooks[0].type_, HookType::Rollout);
        assert_eq!(s.hooks[0].timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert_eq!(
            (s.hooks[1].timeout, s.hooks[1].retries),
            (Duration::from_secs(3), 2)
        );
        assert!(s.has_hooks(HookType::ConfirmPromotion) && !s.has_hooks(HookType::PreRollout));
    }

    #[test]
    fn no_analysis_means_promote_at_once() {
        let mut s = spec(json!(null));
        s.analysis = None;
        let s = settings(&s).unwrap();
        assert!(s.skip_analysis);
        assert_eq!(s.routing, Routing::ServiceSelector);
    }
}
