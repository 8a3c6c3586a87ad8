//! The `Canary` kind: which Deployment to analyse, how to route traffic to it (`service`), how to
//! judge it (`analysis`: steps, metrics, webhooks) and where the analysis stands (`status`). Field
//! names follow Flagger's flagger.app/v1beta1, so a Flagger Canary migrates by changing its
//! apiVersion. No I/O.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::{Condition, ReconcileStatus};
use super::window::ReleaseWindow;

/// Condition type saying whether the last revision was promoted (Flagger's).
pub const PROMOTED: &str = "Promoted";
/// Annotation asking the analyzer to act on a Canary once: `promote` or `abort`, followed by `@`
/// and a value that makes each request new (`sluice canary promote` writes the time). The value
/// acted on is reported as `status.lastHandledGate`.
pub const GATE_ANNOTATION: &str = "sluice.dev/canary-gate";
/// Annotation holding a Canary where it is while `true` (`sluice canary pause|resume`).
pub const PAUSED_ANNOTATION: &str = "sluice.dev/canary-paused";
/// Condition type saying whether the last rolled-back revision was reported to Git
/// (`spec.gitReport`).
pub const GIT_REPORTED: &str = "GitReported";

/// Progressive delivery of a Deployment: a new revision of the target is rolled out gradually,
/// measured, and promoted or rolled back.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Canary",
    namespaced,
    status = "CanaryStatus",
    category = "sluice",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"FailedChecks","type":"integer","jsonPath":".status.failedChecks"}"#,
    printcolumn = r#"{"name":"LastTransitionTime","type":"string","jsonPath":".status.lastTransitionTime"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// How traffic is shifted: `kubernetes` (the default: blue/green by Service selectors, or
    /// progressive weights by the ratio of canary to primary pods), `gatewayapi:v1` (HTTPRoute
    /// weights and matches), `istio` (VirtualService weights and matches) or `nginx` (a canary
    /// Ingress with ingress-nginx's canary annotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Prometheus address for the built-in metrics (default: the agent's `--metrics-server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The Deployment to analyse.
    pub target_ref: TargetReference,
    /// A HorizontalPodAutoscaler (autoscaling/v2) of the target; the primary gets a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<TargetReference>,
    /// The Ingress whose traffic is shifted (`nginx`): a copy of it named `<name>-canary` sends
    /// to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<TargetReference>,
    /// The Services (and routes) generated for the target.
    pub service: CanaryService,
    /// How a new revision is judged; without it the canary is promoted at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,
    /// Seconds a rollout may wait for pods or routes before it is rolled back (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Promote new revisions without analysing them.
    #[serde(default)]
    pub skip_analysis: bool,
    /// When the Canary is deleted, give the target its traffic and replicas back.
    #[serde(default)]
    pub revert_on_deletion: bool,
    /// Leave the canary alone while true: no routing, scaling or analysis.
    #[serde(default)]
    pub suspend: bool,
    /// What to write into the Git repository a rolled-back revision came from (when the target
    /// was applied by a Kustomization): nothing unless asked, since it pushes to the user's
    /// repository with the GitRepository's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_report: Option<GitReport>,
    /// When a promotion may start: an analysis that passes outside every window waits in
    /// `WaitingPromotion` until one opens (none: at any time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_windows: Vec<ReleaseWindow>,
}

/// Writes into Git when an analysis fails, on the commit the Kustomization applied the target at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitReport {
    /// Add a note to the commit in `refs/notes/sluice` (the Canary, the failed check and its
    /// values, the time), appended to what the note already says.
    #[serde(default)]
    pub note: bool,
    /// Push a branch `sluice/revert-<short sha>` holding a commit that reverts the commit, for
    /// review; an existing branch of that name is left alone.
    #[serde(default)]
    pub revert_branch: bool,
}

/// A reference to the target Deployment or its autoscaler, in the Canary's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
}

/// How the Services `<name>`, `<name>-primary` and `<name>-canary` (and routes) are generated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryService {
    /// Name of the apex Service (default: the target's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port of the generated Services.
    pub port: i32,
    /// Name of that port (default `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Container port, by number or name (default: `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_string")]
    pub target_port: Option<IntOrString>,
    /// Also expose every other container port of the target.
    #[serde(default)]
    pub port_discovery: bool,
    /// Request timeout of the generated routes (e.g. `15s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub timeout: Option<String>,
    /// Gateways the generated HTTPRoute attaches to (`gatewayapi:v1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_refs: Vec<GatewayReference>,
    /// Gateways of the generated VirtualService (`istio`; `mesh` for traffic inside the mesh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Host names of the generated HTTPRoute or VirtualService.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Istio's `trafficPolicy` of the generated DestinationRules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub traffic_policy: Option<serde_json::Value>,
    /// Istio's `retries` of the generated VirtualService's routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub retries: Option<serde_json::Value>,
    /// Istio's `headers` (request and response manipulation) of the generated routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub headers: Option<serde_json::Value>,
    /// Istio's `corsPolicy` of the generated routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub cors_policy: Option<serde_json::Value>,
    /// Istio's `rewrite` of the generated routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub rewrite: Option<serde_json::Value>,
    /// Request matches every generated route rule carries (default: path prefix `/`).
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    /// Labels and annotations of the apex Service (and route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex: Option<CustomMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<CustomMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CustomMetadata>,
}

fn int_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-int-or-string": true})
}

/// An object passed on to a router as written (its fields are the router's to check).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A Gateway API parent reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// An HTTP request match, in Flagger's (Istio's) shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    /// Header name to value match; cookies are matched through the `cookie` header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
}

/// One of `exact`, `prefix`, `suffix` or `regex`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// How a new revision is judged. `iterations` alone is blue/green; `iterations` with `match` is
/// A/B testing; `stepWeight` or `stepWeights` is a progressive canary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysis {
    /// Time between two steps (default `60s`, at least `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub interval: Option<String>,
    /// Failed checks after which the canary is rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i32>,
    /// Steps of a blue/green or A/B analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<i32>,
    /// Highest canary weight of a progressive analysis, in percent (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<i32>,
    /// Weight added at each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<i32>,
    /// The weights to step through, rising (instead of `stepWeight`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_weights: Vec<i32>,
    /// Weight moved back to the primary at each step of the promotion (default: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight_promotion: Option<i32>,
    /// Percentage of the primary's pods that must be ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_ready_threshold: Option<i32>,
    /// Percentage of the canary's pods that must be ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ready_threshold: Option<i32>,
    /// A/B testing: requests that go to the canary.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<CanaryMetric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<CanaryWebhook>,
    /// Alerts about this canary (delivered through notification providers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<CanaryAlert>,
    /// What a metric without data counts as, unless the metric says (default `Fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<NoData>,
    /// Copy requests to the canary, whose answers are dropped: in a progressive analysis for one
    /// step before traffic shifts, in blue/green for every iteration (`istio`, `gatewayapi:v1`,
    /// `traefik`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror: bool,
    /// Percentage of requests mirrored (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_weight: Option<i32>,
    /// Keeps a client that reached the canary on it for the rest of the analysis, by a cookie
    /// (progressive analyses on `istio` and `gatewayapi:v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
}

/// The cookies of a canary with session affinity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// The cookie set on the canary's responses; requests carrying it go to the canary.
    pub cookie_name: String,
    /// Lifetime of the cookies, in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// A cookie set on the primary's responses, keeping those clients on the primary until the
    /// next step of the analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,
}

/// What a metric query that returns no data (or cannot be asked) counts as. It is never a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NoData {
    /// A failed check.
    #[default]
    Fail,
    /// Hold the canary where it is, without counting a failed check.
    Pause,
}

/// A metric check: a built-in (`request-success-rate`, `request-duration`) or a MetricTemplate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryMetric {
    pub name: String,
    /// Window of the query, `{{ interval }}` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub interval: Option<String>,
    /// Accepted range of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<ThresholdRange>,
    /// Deprecated by Flagger: the built-ins' bound (a minimum for the success rate, a maximum
    /// for the duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Deprecated by Flagger: an inline PromQL query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<TemplateReference>,
    /// Values of `{{ variables.NAME }}` in the template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_variables: BTreeMap<String, String>,
    /// What no data counts as (default: `analysis.noData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<NoData>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A MetricTemplate, in the Canary's namespace unless `namespace` says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A webhook the analysis calls; Flagger's types and payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryWebhook {
    /// `confirm-rollout`, `pre-rollout`, `rollout` (the default), `confirm-traffic-increase`,
    /// `confirm-promotion`, `post-rollout`, `rollback` or `event`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub name: String,
    pub url: String,
    /// Request timeout (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub timeout: Option<String>,
    /// Attempts after the first one fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    /// Don't alert when this gate halts the rollout.
    #[serde(default)]
    pub mute_alert: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAlert {
    pub name: String,
    /// `info` (the default), `warn` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    pub provider_ref: TemplateReference,
}

/// Where a canary analysis stands (Flagger's phases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// The primary Deployment, Services and routes are being created.
    #[default]
    Initializing,
    /// Bootstrapped; no revision analysed yet.
    Initialized,
    /// A new revision waits for `confirm-rollout` approval.
    Waiting,
    /// A new revision is being analysed.
    Progressing,
    /// The analysis passed; the promotion waits for `confirm-promotion` approval.
    WaitingPromotion,
    /// The primary is being updated to the new revision.
    Promoting,
    /// Traffic returns to the primary and the canary scales down.
    Finalising,
    /// The last revision was promoted.
    Succeeded,
    /// The last revision was rolled back.
    Failed,
    /// The Canary is being deleted.
    Terminating,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initializing => "Initializing",
            Phase::Initialized => "Initialized",
            Phase::Waiting => "Waiting",
            Phase::Progressing => "Progressing",
            Phase::WaitingPromotion => "WaitingPromotion",
            Phase::Promoting => "Promoting",
            Phase::Finalising => "Finalising",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Terminating => "Terminating",
        }
    }

    /// A revision is under analysis or being promoted.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            Phase::Waiting
                | Phase::Progressing
                | Phase::WaitingPromotion
                | Phase::Promoting
                | Phase::Finalising
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub canary_weight: i32,
    #[serde(default)]
    pub failed_checks: i32,
    #[serde(default)]
    pub iterations: i32,
    /// Checksum of the target's pod template the analysis is about.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_applied_spec: String,
    /// Checksum of the pod template last promoted to the primary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_promoted_spec: String,
    /// ConfigMaps and Secrets the target reads (`ConfigMap/name`), with their checksums.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tracked_configs: BTreeMap<String, String>,
    /// RFC 3339 time of the last change of phase, weight, iteration or failed checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The manual-trigger annotation value last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// The `sluice.dev/canary-gate` annotation value last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_gate: Option<String>,
    /// Checksum of the rolled-back pod template whose failure `spec.gitReport` is done with
    /// (written to Git, or found to come from no Kustomization).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_reported_spec: String,
}

impl ReconcileStatus for CanaryStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn last_handled_reconcile_at(&self) -> Option<&str> {
        self.last_handled_reconcile_at.as_deref()
    }
}

/// A query the analysis can reference from `metrics[].templateRef`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "MetricTemplate",
    namespaced,
    category = "sluice",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider.type"}"#,
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.provider.address"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateSpec {
    pub provider: MetricProvider,
    /// The query, with Flagger's variables: `{{ name }}`, `{{ namespace }}`, `{{ target }}`,
    /// `{{ service }}`, `{{ interval }}`, `{{ variables.NAME }}`.
    pub query: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// `prometheus`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The server's URL (default: the agent's `--metrics-server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Secret with `username` and `password` (basic auth) or `token` (bearer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<super::LocalObjectReference>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn a_flagger_canary_spec_parses_unchanged() {
        let spec: CanarySpec = serde_json::from_value(serde_json::json!({
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"},
            "progressDeadlineSeconds": 60,
            "service": {
                "port": 9898, "targetPort": 9898, "portDiscovery": true,
                "hosts": ["app.example.com"],
                "gatewayRefs": [{"name": "gw", "namespace": "infra"}],
                "apex": {"annotations": {"a": "b"}},
            },
            "analysis": {
                "interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
                "match": [{"headers": {"x-canary": {"exact": "insider"}, "cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}],
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
                    {"name": "latency", "templateRef": {"name": "latency", "namespace": "flagger-system"},
                     "templateVariables": {"route": "podinfo"}, "thresholdRange": {"max": 0.5}, "interval": "30s"},
                ],
                "webhooks": [
                    {"name": "load-test", "url": "http://loadtester.test/", "timeout": "5s",
                     "metadata": {"cmd": "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"}},
                    {"name": "gate", "type": "confirm-promotion", "url": "http://loadtester.test/gate/check"},
                ],
                "alerts": [{"name": "on-call", "severity": "error", "providerRef": {"name": "slack"}}],
            },
        }))
        .unwrap();
        assert_eq!(spec.target_ref.name, "podinfo");
        assert_eq!(spec.service.target_port, Some(IntOrString::Int(9898)));
        let analysis = spec.analysis.unwrap();
        assert_eq!(
            analysis.matches[0].headers["x-canary"].exact.as_deref(),
            Some("insider")
        );
        assert_eq!(analysis.metrics[1].template_variables["route"], "podinfo");
        assert_eq!(
            analysis.webhooks[1].type_.as_deref(),
            Some("confirm-promotion")
        );
        assert_eq!(analysis.alerts[0].provider_ref.name, "slack");
        assert_eq!(Canary::crd().spec.names.kind, "Canary");
        assert_eq!(MetricTemplate::crd().spec.names.kind, "MetricTemplate");
    }

    #[test]
    fn a_flagger_status_parses_and_phases_are_written_as_flagger_does() {
        let status: CanaryStatus = serde_json::from_value(serde_json::json!({
            "phase": "Succeeded", "canaryWeight": 0, "failedChecks": 0, "iterations": 0,
            "lastAppliedSpec": "5d8f7", "lastTransitionTime": "2026-01-01T00:00:00Z",
            "trackedConfigs": {"configmap/podinfo-config": "abc"},
            "conditions": [{"type": "Promoted", "status": "True", "reason": "Succeeded",
                "message": "Canary analysis completed successfully, promotion finished.",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }))
        .unwrap();
        assert_eq!(status.phase, Some(Phase::Succeeded));
        let written = serde_json::to_value(Phase::WaitingPromotion).unwrap();
        assert_eq!(written, "WaitingPromotion");
        assert_eq!(Phase::WaitingPromotion.as_str(), "WaitingPromotion");
    }
}
