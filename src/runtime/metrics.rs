//! The agent's Prometheus metrics: one registry for the process, written to by the controller
//! scaffold (reconciles, conditions), the Git source (fetches), the applier (API writes), the
//! canary analyzer (tick lateness) and leader election, and read by `/metrics`
//! (`runtime::server`). No I/O: counters in memory.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::condition::{Condition, ConditionStatus};

/// How a reconcile ended, as the `result` label says it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReconcileResult {
    /// The object ended `Ready=True`.
    success,
    /// The object ended `Ready=False` (or not ready yet): the reconcile said why.
    failure,
    /// Suspended, or without a Ready condition.
    unknown,
    /// The reconcile could not finish (writing the status failed).
    error,
    /// The reconcile panicked.
    panic,
}

impl ReconcileResult {
    /// The result a reconcile that ended with `conditions` had.
    pub fn of(conditions: &[Condition]) -> ReconcileResult {
        match crate::api::condition::find(conditions, crate::api::condition::READY) {
            Some(c) if c.status == ConditionStatus::True => ReconcileResult::success,
            Some(c) if c.status == ConditionStatus::False => ReconcileResult::failure,
            _ => ReconcileResult::unknown,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    result: ReconcileResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    kind: String,
    namespace: String,
    name: String,
    #[prometheus(flatten)]
    condition: ConditionKey,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionKey {
    r#type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: String,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    operation: String,
    result: String,
}

/// What came before a canary analysis tick, as the `after` label says it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum TickAfter {
    /// A step of the analysis: the tick ran on the analyzer's own schedule.
    step,
    /// A wait (for the canary's pods, for traffic, for an approval) held the tick.
    wait,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TickLabels {
    after: TickAfter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<ReconcileLabels, Histogram>,
    conditions: Family<ConditionLabels, Gauge>,
    suspended: Family<ObjectLabels, Gauge>,
    git: Family<ResultLabels, Counter>,
    api_writes: Family<ResultLabels, Counter>,
    notifications: Family<ResultLabels, Counter>,
    canary_ticks: Family<TickLabels, Histogram>,
    leader: Gauge,
}

/// Buckets of the canary tick lateness, in seconds: from a millisecond (a tick on time) to a
/// minute (an analyzer far behind).
const LATENESS_BUCKETS: [f64; 17] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0,
    120.0,
];

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The condition statuses a gauge is exported for: 1 for the current one, 0 for the others, so a
/// query never misses a series that was never set.
const STATUSES: [&str; 3] = ["True", "False", "Unknown"];

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        let durations = Family::<ReconcileLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles took, by kind and result",
            durations.clone(),
        );
        let conditions = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "condition",
            "The status of each condition of each object: 1 for the current status",
            conditions.clone(),
        );
        let suspended = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "suspended",
            "1 while an object is suspended",
            suspended.clone(),
        );
        let git = Family::<ResultLabels, Counter>::default();
        registry.register(
            "git_requests",
            "Requests to Git remotes (operation list-refs or fetch) by result",
            git.clone(),
        );
        let api_writes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "apply_requests",
            "Writes of the applier to the API server (operation apply, dry-run, delete) by result",
            api_writes.clone(),
        );
        let notifications = Family::<ResultLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications delivered (operation: the provider type) by result",
            notifications.clone(),
        );
        let canary_ticks = Family::<TickLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENESS_BUCKETS)
        });
        registry.register(
            "canary_tick_lateness_seconds",
            "How long after it was due (the last step plus the analysis interval) each canary \
             analysis tick ran, by what came before it (after=wait: pods, traffic or an approval held \
             it)",
            canary_ticks.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process holds the leader Lease and runs the controllers",
            leader.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register("build_info", "The version of sluice running", build);
        Metrics {
            registry,
            reconciles,
            durations,
            conditions,
            suspended,
            git,
            api_writes,
            notifications,
            canary_ticks,
            leader,
        }
    }

    /// Counts a reconcile of `kind` that took `elapsed`.
    pub fn reconciled(&self, kind: &str, result: ReconcileResult, elapsed: Duration) {
        let labels = ReconcileLabels {
            kind: kind.into(),
            result,
        };
        self.reconciles.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Records the conditions an object has now (and whether it is suspended).
    pub fn object_state(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        conditions: &[Condition],
        suspended: bool,
    ) {
        for condition in conditions {
            let current = status_name(condition.status);
            for status in STATUSES {
                let labels = condition_labels(kind, namespace, name, &condition.type_, status);
                self.conditions
                    .get_or_create(&labels)
                    .set(i64::from(status == current));
            }
        }
        self.suspended
            .get_or_create(&object_labels(kind, namespace, name))
            .set(i64::from(suspended));
    }

    /// Forgets a deleted object's series.
    pub fn forget_object(&self, kind: &str, namespace: &str, name: &str, conditions: &[Condition]) {
        for condition in conditions {
            for status in STATUSES {
                let labels = condition_labels(kind, namespace, name, &condition.type_, status);
                self.conditions.remove(&labels);
            }
        }
        self.suspended.remove(&object_labels(kind, namespace, name));
    }

    /// Counts a request to a Git remote.
    pub fn git_request(&self, operation: &str, ok: bool) {
        self.git.get_or_create(&result_labels(operation, ok)).inc();
    }

    /// Counts a write of the applier.
    pub fn apply_request(&self, operation: &str, ok: bool) {
        self.api_writes
            .get_or_create(&result_labels(operation, ok))
            .inc();
    }

    /// Counts a notification delivery to a provider of type `provider`.
    pub fn notification(&self, provider: &str, ok: bool) {
        self.notifications
            .get_or_create(&result_labels(provider, ok))
            .inc();
    }

    /// Records how late a canary analysis tick ran.
    pub fn canary_tick(&self, late: Duration, after: TickAfter) {
        self.canary_ticks
            .get_or_create(&TickLabels { after })
            .observe(late.as_secs_f64());
    }

    /// Says whether this process leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Counts `result` as a write of the applier (`apply`, `dry-run`, `delete`) and passes it on.
pub fn count_apply<T, E>(operation: &str, result: Result<T, E>) -> Result<T, E> {
    metrics().apply_request(operation, result.is_ok());
    result
}

/// Counts `result` as a request to a Git remote (`list-refs`, `fetch`) and passes it on.
pub fn count_git<T, E>(operation: &str, result: Result<T, E>) -> Result<T, E> {
    metrics().git_request(operation, result.is_ok());
    result
}

fn status_name(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

fn condition_labels(
    kind: &str,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> ConditionLabels {
    ConditionLabels {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
        condition: ConditionKey {
            r#type: type_.into(),
            status: status.into(),
        },
    }
}

fn object_labels(kind: &str, namespace: &str, name: &str) -> ObjectLabels {
    ObjectLabels {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn result_labels(operation: &str, ok: bool) -> ResultLabels {
    ResultLabels {
        operation: operation.into(),
        result: if ok { "success" } else { "failure" }.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: ConditionStatus) -> Condition {
        Condition {
            type_: "Ready".into(),
            status,
            ..Default::default()
        }
    }

    #[test]
    fn the_text_format_has_every_family() {
        let m = Metrics::new();
        m.reconciled(
            "Kustomization",
            ReconcileResult::success,
            Duration::from_millis(30),
        );
        m.object_state(
            "Kustomization",
            "team",
            "app",
            &[ready(ConditionStatus::False)],
            false,
        );
        m.git_request("fetch", true);
        m.apply_request("apply", false);
        m.canary_tick(Duration::from_millis(30), TickAfter::step);
        m.canary_tick(Duration::from_secs(25), TickAfter::wait);
        m.set_leader(true);
        let text = m.encode();
        for line in [
            r#"sluice_reconcile_total{kind="Kustomization",result="success"} 1"#,
            r#"sluice_reconcile_duration_seconds_count{kind="Kustomization",result="success"} 1"#,
            r#"sluice_condition{kind="Kustomization",namespace="team",name="app",type="Ready",status="False"} 1"#,
            r#"sluice_condition{kind="Kustomization",namespace="team",name="app",type="Ready",status="True"} 0"#,
            r#"sluice_git_requests_total{operation="fetch",result="success"} 1"#,
            r#"sluice_apply_requests_total{operation="apply",result="failure"} 1"#,
            r#"sluice_canary_tick_lateness_seconds_bucket{le="0.05",after="step"} 1"#,
            r#"sluice_canary_tick_lateness_seconds_bucket{le="0.02",after="step"} 0"#,
            r#"sluice_canary_tick_lateness_seconds_bucket{le="20.0",after="wait"} 0"#,
            r#"sluice_canary_tick_lateness_seconds_bucket{le="30.0",after="wait"} 1"#,
            r#"sluice_leader 1"#,
            r#"sluice_build_info{version=""#,
        ] {
            assert!(text.contains(line), "missing {line} in:\n{text}");
        }
        m.forget_object(
            "Kustomization",
            "team",
            "app",
            &[ready(ConditionStatus::False)],
        );
        assert!(!m.encode().contains(r#"name="app""#));
    }

    #[test]
    fn results_follow_the_ready_condition() {
        assert_eq!(
            ReconcileResult::of(&[ready(ConditionStatus::True)]),
            ReconcileResult::success
        );
        assert_eq!(
            ReconcileResult::of(&[ready(ConditionStatus::False)]),
            ReconcileResult::failure
        );
        assert_eq!(ReconcileResult::of(&[]), ReconcileResult::unknown);
    }
}
