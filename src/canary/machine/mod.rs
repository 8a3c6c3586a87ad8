//! The canary analysis as a pure state machine: from the status, the settings and what was
//! observed (revision, pods, routes, webhook answers, metric values, manual gates, the time) to
//! the next status, the actions that get there (bootstrap, scale, route, promote), the Events to
//! record and when to look again. When a decision needs something not observed yet (the routes,
//! a webhook type's answers, the metric checks), it says so (`Decision::Need`) and the caller asks
//! and calls again: the machine alone decides what to ask. No I/O.
//!
//! This file holds what goes in and out and the phase dispatch; the phases' steps are in `start`
//! (before an analysis, and rollback), `progress` (the analysis) and `finish` (promotion and the
//! conditions).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::spec::{HookType, Routing, Settings, Strategy};
use crate::api::canary::{CanaryStatus, PROMOTED, Phase};
use crate::api::condition::{self, READY, RECONCILING, STALLED};
use crate::runtime::conditions::{Reason, Stamp, reasons};

mod finish;
mod progress;
mod start;

reasons! {
    /// Reasons of a Canary's conditions and Events (Flagger's phases where it has one).
    pub enum CanaryReason {
        Initializing,
        Initialized,
        NewRevision,
        Waiting,
        Progressing,
        Advanced,
        Halted,
        Paused,
        WaitingPromotion,
        Promoting,
        Finalising,
        Succeeded,
        Failed,
        RolledBack,
        ManualGate,
        Suspended,
        TargetNotFound,
        MetricTemplateNotFound,
        /// Carrying out a step failed (a route the API server refused); it is retried.
        Retrying,
        /// Events of `spec.gitReport`: the rollback was written to Git, writing it failed, or a
        /// part of it was skipped.
        GitReported,
        GitReportFailed,
        GitReportSkipped,
    }
}

/// What the target's pod template (and the configuration it reads) is: a new revision when it
/// differs from `status.lastAppliedSpec` and `status.trackedConfigs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revision {
    pub spec: String,
    pub configs: BTreeMap<String, String>,
}

/// Readiness of a Deployment's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pods {
    Ready,
    NotReady(String),
    /// It will not get ready (its progress deadline passed, its pods cannot be created).
    Failed(String),
}

/// Whether traffic is where `status.canaryWeight` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routes {
    Converged,
    Converging(String),
}

/// What one webhook answered: yes (a 2xx), or no with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAnswer {
    pub name: String,
    pub refusal: Option<String>,
}

impl HookAnswer {
    pub fn yes(name: &str) -> HookAnswer {
        HookAnswer {
            name: name.into(),
            refusal: None,
        }
    }
    pub fn no(name: &str, why: &str) -> HookAnswer {
        HookAnswer {
            name: name.into(),
            refusal: Some(why.into()),
        }
    }
}

/// A manual gate asked for with `sluice canary promote|abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manual {
    Promote,
    Abort,
}

/// The result of one metric check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub metric: String,
    pub outcome: CheckOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// A value, within (`accepted`) or outside `range`.
    Value {
        value: f64,
        accepted: bool,
        range: String,
    },
    /// No data (an empty result, or the server could not be asked); `pause` holds the canary
    /// instead of failing the check. Never a pass.
    NoData { reason: String, pause: bool },
    /// The query itself is wrong (invalid PromQL, a missing template): always a failed check.
    Broken(String),
}

impl Check {
    fn summary(&self) -> String {
        match &self.outcome {
            CheckOutcome::Value {
                value,
                accepted: true,
                range,
            } => format!("{} {} ({range})", self.metric, number(*value)),
            CheckOutcome::Value { value, range, .. } => {
                format!("{} {} outside {range}", self.metric, number(*value))
            }
            CheckOutcome::NoData { reason, .. } => format!("no data for {}: {reason}", self.metric),
            CheckOutcome::Broken(reason) => format!("{}: {reason}", self.metric),
        }
    }
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// What the caller observed; `routes`, `hooks` and `checks` only once the machine asked.
#[derive(Debug, Clone)]
pub struct Observed {
    pub now: Timestamp,
    pub generation: Option<i64>,
    /// `namespace`, for Event messages (`web.namespace`).
    pub namespace: String,
    pub revision: Revision,
    /// The revision the primary's template holds, if it exists.
    pub primary_revision: Option<String>,
    pub primary: Pods,
    pub canary: Pods,
    /// The target runs pods (it should not, at rest).
    pub canary_running: bool,
    pub suspended: bool,
    pub paused: bool,
    /// A gate not handled yet, with the annotation value to record as handled.
    pub manual: Option<(Manual, String)>,
    pub routes: Option<Routes>,
    /// The answers of every webhook of a type, once asked.
    pub hooks: BTreeMap<HookType, Vec<HookAnswer>>,
    pub checks: Option<Vec<Check>>,
}

/// What to observe before the machine can decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Routes,
    Hooks(HookType),
    Checks,
}

/// How the canary's Deployment should be sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Zero,
    /// Running, sized for `status.canaryWeight` (the router says what that means).
    Up,
}

/// Where the router sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// Percent of requests served by the canary, the rest by the primary.
    pub weight: u32,
    /// Requests are also copied to the canary (its answers dropped).
    pub mirror: bool,
    /// Session affinity's cookie values, while the canary takes traffic.
    pub cookies: Option<Cookies>,
}

/// The values of the session affinity cookies. The canary's is the revision under analysis,
/// so each revision gets its own and a client that reached an earlier one starts afresh; the
/// primary's also names the weight, so its holders are shared out again at every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookies {
    pub canary: String,
    pub primary: String,
}

impl Traffic {
    /// `weight` percent on the canary, nothing mirrored, no cookies.
    pub fn weight(weight: u32) -> Traffic {
        Traffic {
            weight,
            mirror: false,
            cookies: None,
        }
    }
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "weight {}", self.weight)?;
        if self.mirror {
            write!(f, ", mirrored")?;
        }
        if let Some(cookies) = &self.cookies {
            write!(f, ", cookies {}/{}", cookies.canary, cookies.primary)?;
        }
        Ok(())
    }
}

/// Whether a status mirrors traffic to the canary: a progressive analysis in its mirroring step
/// (weight 0 after the first tick, which counts one iteration), a blue/green analysis from its
/// first iteration until the promotion.
pub fn mirroring(s: &Settings, status: &CanaryStatus) -> bool {
    let analysing = matches!(
        status.phase,
        Some(Phase::Progressing | Phase::WaitingPromotion)
    );
    let stage = match s.strategy {
        Strategy::Progressive { .. } => status.canary_weight == 0,
        Strategy::BlueGreen { .. } => true,
        Strategy::AbTesting { .. } => false,
    };
    s.mirror.is_some() && analysing && status.iterations > 0 && stage
}

/// Where traffic goes in `status`: its canary weight, mirrored (see `mirroring`), with the session
/// affinity cookies while a progressive canary takes traffic.
pub fn traffic(s: &Settings, status: &CanaryStatus) -> Traffic {
    let weight = status.canary_weight.clamp(0, 100) as u32;
    let sticky = s.affinity.is_some()
        && matches!(s.strategy, Strategy::Progressive { .. })
        && weight > 0
        && !status.last_applied_spec.is_empty();
    Traffic {
        weight,
        mirror: mirroring(s, status),
        cookies: sticky.then(|| Cookies {
            canary: status.last_applied_spec.clone(),
            primary: format!("{}-{weight}", status.last_applied_spec),
        }),
    }
}

/// A change to make in the cluster; each is idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create what the canary needs (primary Deployment from the target, its autoscaler, the
    /// Services, the routes) where missing.
    Bootstrap,
    Canary(Scale),
    /// Send traffic as said: the weight to the canary, the rest to the primary.
    Route(Traffic),
    /// Copy the target's pod template (and configuration) to the primary.
    Promote,
    /// Call the post-rollout webhooks.
    PostRollout,
}

/// An Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: CanaryReason,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub status: CanaryStatus,
    pub actions: Vec<Action>,
    pub notes: Vec<Note>,
    pub requeue: Duration,
    /// When this step is an analysis tick (one step per interval): how long after it was due
    /// (the last step plus the interval) it ran.
    pub late: Option<Lateness>,
}

/// How late an analysis tick ran, and whether a wait held it (the reconcile before it waited for
/// the canary's pods, for traffic or for an approval) rather than the analyzer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lateness {
    pub late: Duration,
    pub after_wait: bool,
}

impl Step {
    /// How long to wait before looking again once carrying out the step took `spent`: the
    /// step's waits count from when it was decided (`Observed::now`), so a tick stays due an
    /// interval after the last step however long the reconcile that scheduled it took.
    pub fn requeue_after(&self, spent: Duration) -> Duration {
        self.requeue.saturating_sub(spent)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Need(Need),
    Act(Box<Step>),
}

/// How often to look while waiting for pods (their watch usually wakes the analysis first).
pub const POD_POLL: Duration = Duration::from_secs(5);
/// How often to look while traffic moves (endpoints are not watched).
pub const ROUTE_POLL: Duration = Duration::from_secs(1);

/// How the Ready message of an analysis waiting (for pods, traffic, an approval) begins.
const WAITING_FOR: &str = "Waiting for ";

/// Whether the analysis tick that follows a step is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Due: it runs `late` after the last step plus the interval.
    Due { late: Duration },
    /// Not yet: due in this long.
    NotYet(Duration),
}

/// Whether a tick is due `since` the last step, with one tick per `interval`.
pub fn tick(since: Duration, interval: Duration) -> Tick {
    match since.checked_sub(interval) {
        Some(late) => Tick::Due { late },
        None => Tick::NotYet(interval - since),
    }
}

/// The next step of the analysis.
pub fn step(s: &Settings, current: &CanaryStatus, o: &Observed) -> Decision {
    let mut run = Run {
        s,
        o,
        was: current,
        now_text: o.now.to_string(),
        status: current.clone(),
        actions: Vec::new(),
        notes: Vec::new(),
        detail: None,
        requeue: s.interval,
        late: None,
    };
    match run.decide() {
        Ok(()) => {
            run.levels();
            run.mirroring_stopped();
            run.conditions();
            Decision::Act(Box::new(Step {
                status: run.status,
                actions: run.actions,
                notes: run.notes,
                requeue: run.requeue,
                late: run.late,
            }))
        }
        Err(need) => Decision::Need(need),
    }
}

struct Run<'a> {
    s: &'a Settings,
    o: &'a Observed,
    /// The status this step started from.
    was: &'a CanaryStatus,
    now_text: String,
    status: CanaryStatus,
    actions: Vec<Action>,
    notes: Vec<Note>,
    /// What the Ready condition says, when not the last note.
    detail: Option<String>,
    requeue: Duration,
    /// How late the tick this step runs is, once one is due.
    late: Option<Lateness>,
}

type Decided = Result<(), Need>;

const ABORTED: &str = "aborted with sluice canary abort";

impl Run<'_> {
    fn phase(&self) -> Phase {
        self.status.phase.unwrap_or_default()
    }

    fn name(&self) -> String {
        format!("{}.{}", self.s.target, self.o.namespace)
    }

    fn note(&mut self, warning: bool, reason: CanaryReason, message: String) {
        self.detail = Some(message.clone());
        self.notes.push(Note {
            warning,
            reason,
            message,
        });
    }

    /// Notes what the Ready condition does not say yet (a wait repeats every poll; its Event
    /// is recorded once).
    fn note_once(&mut self, reason: CanaryReason, message: String) {
        let said =
            condition::find(&self.was.conditions, READY).is_some_and(|c| c.message == message);
        if said {
            self.detail = Some(message);
        } else {
            self.note(false, reason, message);
        }
    }

    fn wait(&mut self, after: Duration) {
        self.requeue = self.requeue.min(after);
    }

    /// Marks a step of the analysis: the time of the last step paces the next one and starts
    /// the progress deadline of waits.
    fn stepped(&mut self) {
        self.status.last_transition_time = Some(self.now_text.clone());
    }

    fn set_phase(&mut self, phase: Phase) {
        self.status.phase = Some(phase);
        self.stepped();
    }

    /// Time since the last step.
    fn since_step(&self) -> Duration {
        let last = self
            .status
            .last_transition_time
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok());
        match last {
            Some(last) if last < self.o.now => {
                Duration::try_from(self.o.now.duration_since(last)).unwrap_or_default()
            }
            _ => Duration::ZERO,
        }
    }

    /// Whether a step of the analysis is due; if not, when to look again.
    fn step_due(&mut self) -> bool {
        match tick(self.since_step(), self.s.interval) {
            Tick::Due { late } => {
                // The Ready message of the reconcile before says whether it waited.
                let after_wait = condition::find(&self.was.conditions, READY)
                    .is_some_and(|c| c.message.starts_with(WAITING_FOR));
                self.late = Some(Lateness { late, after_wait });
                true
            }
            Tick::NotYet(wait) => {
                self.wait(wait);
                false
            }
        }
    }

    fn new_revision(&self) -> bool {
        self.o.revision.spec != self.status.last_applied_spec
            || self.o.revision.configs != self.status.tracked_configs
    }

    fn take_revision(&mut self) {
        self.status.last_applied_spec = self.o.revision.spec.clone();
        self.status.tracked_configs = self.o.revision.configs.clone();
    }

    /// The answers of the webhooks of a type (none when there are none); asks for them first.
    fn answers(&self, type_: HookType) -> Result<&[HookAnswer], Need> {
        if !self.s.has_hooks(type_) {
            return Ok(&[]);
        }
        self.o
            .hooks
            .get(&type_)
            .map(Vec::as_slice)
            .ok_or(Need::Hooks(type_))
    }

    /// `Some(refusal)` when a webhook of this type said no.
    fn refused(&self, type_: HookType) -> Result<Option<String>, Need> {
        Ok(self.answers(type_)?.iter().find_map(|a| {
            a.refusal
                .as_ref()
                .map(|why| format!("{} said no: {why}", a.name))
        }))
    }

    /// The name of a rollback webhook that asked for a rollback (answered yes).
    fn rollback_asked(&self) -> Result<Option<String>, Need> {
        Ok(self
            .answers(HookType::Rollback)?
            .iter()
            .find(|a| a.refusal.is_none())
            .map(|a| a.name.clone()))
    }

    fn routes(&self) -> Result<Routes, Need> {
        self.o.routes.clone().ok_or(Need::Routes)
    }

    fn gate(&self) -> Option<Manual> {
        self.o.manual.as_ref().map(|(gate, _)| *gate)
    }

    fn handled_gate(&mut self) {
        if let Some((_, value)) = &self.o.manual {
            self.status.last_handled_gate = Some(value.clone());
        }
    }

    fn decide(&mut self) -> Decided {
        if self.o.suspended {
            return Ok(());
        }
        match self.phase() {
            Phase::Initializing => self.initialize(),
            Phase::Initialized | Phase::Succeeded | Phase::Failed => self.at_rest(),
            Phase::Waiting => self.waiting(),
            Phase::Progressing | Phase::WaitingPromotion => self.progressing(),
            Phase::Promoting => self.promoting(),
            Phase::Finalising => self.finalising(),
            Phase::Terminating => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
