//! The canary analysis as a pure state machine: from the status, the settings and what was
//! observed (revision, pods, routes, webhook answers, metric values, manual gates, the time) to
//! the next status, the actions that get there (bootstrap, scale, route, promote), the Events to
//! record and when to look again. When a decision needs something not observed yet (the routes,
//! a webhook type's answers, the metric checks), it says so (`Decision::Need`) and the caller asks
//! and calls again: the machine alone decides what to ask. No I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::spec::{HookType, Routing, Settings, Strategy};
use crate::api::canary::{CanaryStatus, PROMOTED, Phase};
use crate::api::condition::{self, READY, RECONCILING, STALLED};
use crate::runtime::conditions::{Reason, Stamp, reasons};

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

    /// Creates the primary from the target; once it is ready, the target scales down.
    fn initialize(&mut self) -> Decided {
        if self.was.phase.is_none() {
            self.set_phase(Phase::Initializing);
            let message = format!(
                "New Deployment detected, starting initialization of {}",
                self.name()
            );
            self.note(false, CanaryReason::Initializing, message);
        }
        self.actions.push(Action::Bootstrap);
        match self.o.primary.clone() {
            Pods::Ready => {
                self.actions.push(Action::Canary(Scale::Zero));
                self.status.canary_weight = 0;
                self.take_revision();
                self.status.last_promoted_spec = self.o.revision.spec.clone();
                self.set_phase(Phase::Initialized);
                let message = format!("Initialization done! {}", self.name());
                self.note(false, CanaryReason::Initialized, message);
            }
            Pods::NotReady(why) | Pods::Failed(why) => {
                self.detail = Some(format!(
                    "Waiting for {} to be ready: {why}",
                    self.s.primary()
                ));
                self.wait(POD_POLL);
            }
        }
        Ok(())
    }

    /// Initialized, Succeeded or Failed: start on a new revision; otherwise keep traffic on the
    /// primary and the canary scaled down once traffic has left it.
    fn at_rest(&mut self) -> Decided {
        if self.new_revision() {
            if self.gate() == Some(Manual::Abort) {
                // Nothing runs yet: aborting means not starting this revision.
                self.handled_gate();
                return self.reject_revision(ABORTED.into());
            }
            if self.o.paused {
                self.detail = Some(format!(
                    "paused before analysing the new revision of {}",
                    self.name()
                ));
                return Ok(());
            }
            return self.confirm_start();
        }
        match self.gate() {
            Some(Manual::Promote) if self.phase() == Phase::Failed => {
                self.handled_gate();
                let message = format!(
                    "Promoting the rolled back revision of {} with sluice canary promote",
                    self.name()
                );
                self.note(false, CanaryReason::ManualGate, message);
                return self.promote(false);
            }
            Some(_) => {
                self.handled_gate();
                let message = format!(
                    "No analysis of {} is running: nothing to promote or abort",
                    self.name()
                );
                self.note(false, CanaryReason::ManualGate, message);
            }
            None => {}
        }
        self.status.canary_weight = 0;
        if self.o.canary_running {
            match self.routes()? {
                Routes::Converged => self.actions.push(Action::Canary(Scale::Zero)),
                Routes::Converging(_) => self.wait(ROUTE_POLL),
            }
        }
        Ok(())
    }

    /// A new revision the analysis will not run: recorded as failed; the canary stays down.
    fn reject_revision(&mut self, why: String) -> Decided {
        self.take_revision();
        self.status.iterations = 0;
        self.rollback(why)
    }

    /// Asks `confirm-rollout`, then starts (or restarts) the analysis of the new revision.
    fn confirm_start(&mut self) -> Decided {
        if let Some(why) = self.refused(HookType::ConfirmRollout)? {
            if self.phase() != Phase::Waiting {
                self.set_phase(Phase::Waiting);
                self.status.canary_weight = 0;
            }
            self.stepped();
            let message = format!(
                "Halt advancement of {}: waiting for approval ({why})",
                self.name()
            );
            self.note_once(CanaryReason::Waiting, message);
            return Ok(());
        }
        self.start(false)
    }

    fn start(&mut self, approved_by_hand: bool) -> Decided {
        let restart = matches!(
            self.phase(),
            Phase::Progressing | Phase::WaitingPromotion | Phase::Promoting | Phase::Finalising
        );
        self.take_revision();
        self.status.canary_weight = 0;
        self.status.iterations = 0;
        self.status.failed_checks = 0;
        self.set_phase(Phase::Progressing);
        let message = if approved_by_hand {
            format!(
                "Approved with sluice canary promote: scaling up {}",
                self.name()
            )
        } else if restart {
            format!(
                "New revision detected! Restarting analysis of {}",
                self.name()
            )
        } else {
            format!("New revision detected! Scaling up {}", self.name())
        };
        self.note(false, CanaryReason::NewRevision, message);
        self.wait(POD_POLL);
        Ok(())
    }

    /// Waiting for `confirm-rollout`.
    fn waiting(&mut self) -> Decided {
        match self.gate() {
            Some(Manual::Abort) => {
                self.handled_gate();
                return self.rollback(ABORTED.into());
            }
            Some(Manual::Promote) => {
                self.handled_gate();
                return self.start(true);
            }
            None => {}
        }
        if self.o.paused || !self.step_due() {
            return Ok(());
        }
        if let Some(hook) = self.rollback_asked()? {
            return self.rollback(format!("rollback webhook {hook} asked for it"));
        }
        self.confirm_start()
    }

    fn rollback(&mut self, why: String) -> Decided {
        self.status.canary_weight = 0;
        self.set_phase(Phase::Failed);
        self.actions.push(Action::PostRollout);
        let name = self.name();
        self.note(
            true,
            CanaryReason::RolledBack,
            format!("Rolling back {name}: {why}"),
        );
        self.note(
            true,
            CanaryReason::Failed,
            format!("Canary failed! Scaling down {name}"),
        );
        self.detail = Some(format!("Rolled back {name}: {why}"));
        self.wait(ROUTE_POLL);
        Ok(())
    }

    /// Progressing or WaitingPromotion: one step per interval, once the canary is ready and
    /// traffic is where the status says.
    fn progressing(&mut self) -> Decided {
        if self.new_revision() {
            return self.confirm_start();
        }
        match self.gate() {
            Some(Manual::Abort) => {
                self.handled_gate();
                return self.rollback(ABORTED.into());
            }
            Some(Manual::Promote) => {
                self.handled_gate();
                let message = format!("Promoting {} with sluice canary promote", self.name());
                self.note(false, CanaryReason::ManualGate, message);
                return self.promote(true);
            }
            None => {}
        }
        if self.o.paused {
            self.detail = Some(format!("paused at weight {}", self.status.canary_weight));
            return Ok(());
        }
        if self.status.failed_checks >= self.s.threshold as i32 {
            let why = format!(
                "failed checks threshold reached {}",
                self.status.failed_checks
            );
            return self.rollback(why);
        }
        match self.o.canary.clone() {
            Pods::Ready => {}
            Pods::Failed(why) => {
                return self.rollback(format!("{} will not get ready: {why}", self.s.target));
            }
            Pods::NotReady(why) => return self.wait_for("the canary's pods", why, POD_POLL),
        }
        if let Routes::Converging(why) = self.routes()? {
            return self.wait_for("traffic", why, ROUTE_POLL);
        }
        if self.s.skip_analysis {
            if self.outside_window() {
                return Ok(());
            }
            let message = format!("Skipping the analysis of {}", self.name());
            self.note(false, CanaryReason::Promoting, message);
            return self.promote(true);
        }
        if !self.step_due() {
            return Ok(());
        }
        if let Some(hook) = self.rollback_asked()? {
            return self.rollback(format!("rollback webhook {hook} asked for it"));
        }
        let first = self.status.canary_weight == 0 && self.status.iterations == 0;
        if first {
            // Nothing has reached the canary yet: nothing to measure.
            if let Some(why) = self.refused(HookType::PreRollout)? {
                return self.failed_check(format!("pre-rollout webhook {why}"));
            }
        } else {
            if let Some(why) = self.refused(HookType::Rollout)? {
                return self.failed_check(format!("rollout webhook {why}"));
            }
            if !self.s.metrics.is_empty() {
                let checks = self.o.checks.as_ref().ok_or(Need::Checks)?;
                if let Some(failure) = checks.iter().find(|c| fails(c)) {
                    return self.failed_check(failure.summary());
                }
                if let Some(held) = checks.iter().find(|c| holds(c)) {
                    self.stepped();
                    let message = format!(
                        "Holding {} at weight {}: {} (noData: Pause)",
                        self.name(),
                        self.status.canary_weight,
                        held.summary()
                    );
                    self.note(false, CanaryReason::Paused, message);
                    return Ok(());
                }
            }
        }
        self.advance()
    }

    /// The metric values that passed, for the Event of an advance.
    fn decided_by(&self) -> String {
        match &self.o.checks {
            Some(checks) if !checks.is_empty() => format!(
                " ({})",
                checks
                    .iter()
                    .map(Check::summary)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        }
    }

    /// Waits for pods or traffic, up to the progress deadline counted from the last step.
    fn wait_for(&mut self, what: &str, why: String, poll: Duration) -> Decided {
        let since = self.since_step();
        if since > self.s.deadline {
            let why = format!(
                "progress deadline exceeded: {what} not ready after {}s: {why}",
                self.s.deadline.as_secs()
            );
            return self.rollback(why);
        }
        let message = format!("{WAITING_FOR}{what} of {}: {why}", self.name());
        self.note_once(CanaryReason::Waiting, message);
        self.wait(poll);
        self.wait(self.s.deadline - since + Duration::from_secs(1));
        Ok(())
    }

    fn failed_check(&mut self, why: String) -> Decided {
        self.status.failed_checks += 1;
        self.stepped();
        let message = format!(
            "Halt {} advancement: {why} (failed checks {}/{})",
            self.name(),
            self.status.failed_checks,
            self.s.threshold
        );
        self.note(true, CanaryReason::Halted, message);
        if self.status.failed_checks >= self.s.threshold as i32 {
            // The check that decided stays in the rollback's message (and the Ready condition),
            // where the reports to Git read it.
            let why = format!(
                "failed checks threshold reached {} (last: {why})",
                self.status.failed_checks
            );
            return self.rollback(why);
        }
        Ok(())
    }

    /// Moves the analysis one step on, or to the promotion after the last step.
    fn advance(&mut self) -> Decided {
        let decided_by = self.decided_by();
        match &self.s.strategy {
            Strategy::Progressive { .. } => {
                if self.s.mirror.is_some()
                    && self.status.canary_weight == 0
                    && self.status.iterations == 0
                {
                    // A step of mirrored requests before any answer comes from the canary.
                    self.status.iterations = 1;
                    self.stepped();
                    self.note_mirroring();
                    return Ok(());
                }
                if let Some(next) = self.s.next_weight(self.status.canary_weight as u32) {
                    if let Some(why) = self.refused(HookType::ConfirmTrafficIncrease)? {
                        self.stepped();
                        let message = format!(
                            "Halt {} advancement: waiting for approval to increase traffic ({why})",
                            self.name()
                        );
                        self.note_once(CanaryReason::Halted, message);
                        return Ok(());
                    }
                    self.status.canary_weight = next as i32;
                    self.stepped();
                    let message =
                        format!("Advance {} canary weight {next}{decided_by}", self.name());
                    self.note(false, CanaryReason::Advanced, message);
                    self.wait(ROUTE_POLL);
                    return Ok(());
                }
            }
            Strategy::AbTesting { iterations } | Strategy::BlueGreen { iterations } => {
                let iterations = *iterations as i32;
                if self.status.iterations < iterations {
                    if matches!(self.s.strategy, Strategy::AbTesting { .. }) {
                        // Matching requests go to the canary from the first iteration on.
                        self.status.canary_weight = 100;
                    }
                    self.status.iterations += 1;
                    self.stepped();
                    if self.status.iterations == 1 && self.s.mirror.is_some() {
                        self.note_mirroring();
                    }
                    let message = format!(
                        "Advance {} canary iteration {}/{iterations}{decided_by}",
                        self.name(),
                        self.status.iterations
                    );
                    self.note(false, CanaryReason::Advanced, message);
                    return Ok(());
                }
            }
        }
        if self.outside_window() {
            return Ok(());
        }
        if let Some(why) = self.refused(HookType::ConfirmPromotion)? {
            self.set_phase(Phase::WaitingPromotion);
            let message = format!(
                "Halt {} advancement: waiting for promotion approval ({why})",
                self.name()
            );
            self.note_once(CanaryReason::WaitingPromotion, message);
            return Ok(());
        }
        self.promote(true)
    }

    /// Holds the promotion in `WaitingPromotion` while every release window is closed, looking
    /// again when the next opens (or an interval later, when the analysis checks again); `true`
    /// when held. A promotion asked for by hand does not wait.
    fn outside_window(&mut self) -> bool {
        let state = self.s.windows.at(self.o.now);
        let Some(why) = state.closed_message() else {
            return false;
        };
        self.set_phase(Phase::WaitingPromotion);
        let message = format!("Halt {} advancement: {why}", self.name());
        self.note_once(CanaryReason::WaitingPromotion, message);
        if let Some(opens_in) = state.opens_in(self.o.now) {
            self.wait(opens_in + Duration::from_secs(1));
        }
        true
    }

    /// Says that traffic is mirrored to the canary from this step on.
    fn note_mirroring(&mut self) {
        let percent = self
            .s
            .mirror
            .and_then(|m| m.percent)
            .map_or(String::new(), |p| format!(" ({p} percent of requests)"));
        let message = format!(
            "Start traffic mirroring to {}.{}{percent}",
            self.s.canary_service(),
            self.o.namespace
        );
        self.note(false, CanaryReason::Advanced, message);
    }

    /// Starts the promotion. A blue/green switch (`switch`) moves all traffic to the running
    /// canary first, so the primary is updated while it serves nothing.
    fn promote(&mut self, switch: bool) -> Decided {
        self.set_phase(Phase::Promoting);
        if switch && self.s.routing == Routing::ServiceSelector && self.status.canary_weight != 100
        {
            self.status.canary_weight = 100;
            let message = format!("Routing all traffic to canary {}", self.name());
            self.note(false, CanaryReason::Promoting, message);
            self.wait(ROUTE_POLL);
            return Ok(());
        }
        self.copy_to_primary();
        Ok(())
    }

    /// Copies the analysed template to the primary, once.
    fn copy_to_primary(&mut self) {
        self.actions.push(Action::Promote);
        if self.o.primary_revision.as_deref() != Some(self.status.last_applied_spec.as_str()) {
            let message = format!(
                "Copying {} template spec to {}.{}",
                self.name(),
                self.s.primary(),
                self.o.namespace
            );
            self.note(false, CanaryReason::Promoting, message);
        }
        self.wait(POD_POLL);
    }

    /// Promoting: the primary takes the new template; once it is ready, traffic returns to it
    /// (all at once, or `stepWeightPromotion` per interval).
    fn promoting(&mut self) -> Decided {
        if self.new_revision() {
            return self.confirm_start();
        }
        match self.gate() {
            Some(Manual::Abort) => {
                self.handled_gate();
                return self.rollback(ABORTED.into());
            }
            Some(Manual::Promote) => self.handled_gate(),
            None => {}
        }
        if let Routes::Converging(why) = self.routes()? {
            return self.wait_for("traffic", why, ROUTE_POLL);
        }
        if self.o.primary_revision.as_deref() != Some(self.status.last_applied_spec.as_str()) {
            self.copy_to_primary();
            return Ok(());
        }
        self.actions.push(Action::Promote);
        match self.o.primary.clone() {
            Pods::Ready => {}
            Pods::NotReady(why) => return self.wait_for("the primary's rollout", why, POD_POLL),
            Pods::Failed(why) => {
                return self.rollback(format!("{} will not get ready: {why}", self.s.primary()));
            }
        }
        let weight = self.status.canary_weight as u32;
        let next = match self.s.promotion_step {
            Some(step) if weight > step => {
                if !self.step_due() {
                    return Ok(());
                }
                weight - step
            }
            _ => 0,
        };
        self.status.canary_weight = next as i32;
        self.stepped();
        if next == 0 {
            self.status.phase = Some(Phase::Finalising);
            self.detail = Some(format!(
                "Routing all traffic to the primary of {}",
                self.name()
            ));
        } else {
            let message = format!("Advance {} primary weight {}", self.name(), 100 - next);
            self.note(false, CanaryReason::Promoting, message);
        }
        self.wait(ROUTE_POLL);
        Ok(())
    }

    /// Finalising: once traffic is back on the primary, and an interval after it left the
    /// canary (node proxies follow the EndpointSlices with a lag of their own, and requests in
    /// flight finish), scale the canary down, as Flagger's next analysis step does.
    fn finalising(&mut self) -> Decided {
        if self.new_revision() {
            return self.confirm_start();
        }
        if let Routes::Converging(why) = self.routes()? {
            return self.wait_for("traffic", why, ROUTE_POLL);
        }
        let since = self.since_step();
        if since < self.s.interval {
            self.wait(self.s.interval - since);
            return Ok(());
        }
        self.handled_gate();
        self.actions.push(Action::Canary(Scale::Zero));
        self.actions.push(Action::PostRollout);
        self.status.last_promoted_spec = self.status.last_applied_spec.clone();
        self.set_phase(Phase::Succeeded);
        let message = format!("Promotion completed! Scaling down {}", self.name());
        self.note(false, CanaryReason::Succeeded, message);
        Ok(())
    }

    /// Where traffic and the canary's size should be, from the status this step ends with: stated
    /// every step, so whatever was lost (a failed write, a restart) converges. Actions come in
    /// the order they are carried out: the canary is up before traffic moves to it, and traffic
    /// has left it before it scales down.
    fn levels(&mut self) {
        if self.o.suspended {
            return;
        }
        let phase = self.phase();
        let routed = !matches!(phase, Phase::Initializing | Phase::Terminating)
            || self.actions.contains(&Action::Canary(Scale::Zero));
        if routed {
            self.actions
                .push(Action::Route(traffic(self.s, &self.status)));
        }
        let running = matches!(
            phase,
            Phase::Progressing | Phase::WaitingPromotion | Phase::Promoting | Phase::Finalising
        );
        if running && !self.actions.contains(&Action::Canary(Scale::Zero)) {
            self.actions.push(Action::Canary(Scale::Up));
        }
        let rank = |a: &Action| match a {
            Action::Bootstrap => 0,
            Action::Canary(Scale::Up) => 1,
            Action::Route(_) => 2,
            Action::Promote => 3,
            Action::Canary(Scale::Zero) => 4,
            Action::PostRollout => 5,
        };
        self.actions.sort_by_key(rank);
    }

    /// Says that mirroring stopped, whichever way the step left it (the next weight, the
    /// promotion, a rollback, a new revision), before what the step says; the Ready condition
    /// keeps the step's message.
    fn mirroring_stopped(&mut self) {
        if !self.o.suspended && mirroring(self.s, self.was) && !mirroring(self.s, &self.status) {
            let message = format!(
                "Stop traffic mirroring to {}.{}",
                self.s.canary_service(),
                self.o.namespace
            );
            let note = Note {
                warning: false,
                reason: CanaryReason::Advanced,
                message,
            };
            self.notes.insert(0, note);
        }
    }

    /// Ready, Reconciling, Stalled and Promoted, from the phase.
    fn conditions(&mut self) {
        let phase = self.phase();
        let name = self.name();
        let stamp = Stamp {
            generation: self.o.generation,
            now: &self.now_text,
        };
        self.status.observed_generation = self.o.generation;
        let previous = condition::find(&self.was.conditions, READY)
            .map(|c| (c.reason.clone(), c.message.clone()));
        let detail = self.detail.clone();
        // What the step said, else what was said before in the same phase for the same reason
        // (not a failure's message once the step went through), else the phase.
        let said = |reason: CanaryReason, fallback: String| {
            detail
                .clone()
                .or_else(|| {
                    (self.was.phase == Some(phase))
                        .then(|| previous.clone())
                        .flatten()
                        .filter(|(was, _)| was == reason.as_str())
                        .map(|(_, message)| message)
                })
                .unwrap_or(fallback)
        };
        use condition::ConditionStatus::{False, True, Unknown};
        let (ready, reason, message) = if self.o.suspended {
            (
                Unknown,
                CanaryReason::Suspended,
                format!("{name}: suspended"),
            )
        } else {
            match phase {
                Phase::Initialized => (
                    True,
                    CanaryReason::Initialized,
                    format!("{name} initialized"),
                ),
                Phase::Succeeded => (
                    True,
                    CanaryReason::Succeeded,
                    "Canary analysis completed successfully, promotion finished.".into(),
                ),
                Phase::Failed => (
                    False,
                    CanaryReason::Failed,
                    said(
                        CanaryReason::Failed,
                        "Canary analysis failed, Deployment scaled to zero.".into(),
                    ),
                ),
                Phase::Initializing => (
                    Unknown,
                    CanaryReason::Initializing,
                    said(CanaryReason::Initializing, format!("initializing {name}")),
                ),
                Phase::Waiting => (
                    Unknown,
                    CanaryReason::Waiting,
                    said(CanaryReason::Waiting, "waiting for approval".into()),
                ),
                Phase::WaitingPromotion => (
                    Unknown,
                    CanaryReason::WaitingPromotion,
                    said(
                        CanaryReason::WaitingPromotion,
                        "waiting for promotion approval".into(),
                    ),
                ),
                Phase::Progressing => (
                    Unknown,
                    CanaryReason::Progressing,
                    said(
                        CanaryReason::Progressing,
                        format!("analysing {name} at weight {}", self.status.canary_weight),
                    ),
                ),
                Phase::Promoting => (
                    Unknown,
                    CanaryReason::Promoting,
                    said(CanaryReason::Promoting, format!("promoting {name}")),
                ),
                Phase::Finalising => (
                    Unknown,
                    CanaryReason::Finalising,
                    said(CanaryReason::Finalising, format!("finalising {name}")),
                ),
                Phase::Terminating => (
                    Unknown,
                    CanaryReason::Finalising,
                    format!("{name}: terminating"),
                ),
            }
        };
        let conditions = &mut self.status.conditions;
        condition::remove(conditions, STALLED);
        condition::set(conditions, stamp.condition(READY, ready, reason, &message));
        if ready == Unknown && !self.o.suspended {
            condition::set(
                conditions,
                stamp.condition(RECONCILING, true, reason, &message),
            );
        } else {
            condition::remove(conditions, RECONCILING);
        }
        let (promoted, promoted_reason, promoted_message) = match phase {
            Phase::Initialized => (
                True,
                CanaryReason::Initialized,
                "Deployment initialization completed.",
            ),
            Phase::Succeeded => (
                True,
                CanaryReason::Succeeded,
                "Canary analysis completed successfully, promotion finished.",
            ),
            Phase::Failed => (
                False,
                CanaryReason::Failed,
                "Canary analysis failed, Deployment scaled to zero.",
            ),
            Phase::Initializing => (
                Unknown,
                CanaryReason::Initializing,
                "New Deployment detected, starting initialization.",
            ),
            Phase::Waiting | Phase::WaitingPromotion => {
                (Unknown, CanaryReason::Waiting, "Waiting for approval.")
            }
            Phase::Promoting | Phase::Finalising | Phase::Terminating => (
                Unknown,
                CanaryReason::Promoting,
                "Canary analysis completed, starting primary rolling update.",
            ),
            Phase::Progressing => (
                Unknown,
                CanaryReason::Progressing,
                "New revision detected, progressing canary analysis.",
            ),
        };
        condition::set(
            conditions,
            stamp.condition(PROMOTED, promoted, promoted_reason, promoted_message),
        );
    }
}

fn fails(check: &Check) -> bool {
    match &check.outcome {
        CheckOutcome::Value { accepted, .. } => !accepted,
        CheckOutcome::NoData { pause, .. } => !pause,
        CheckOutcome::Broken(_) => true,
    }
}

fn holds(check: &Check) -> bool {
    matches!(&check.outcome, CheckOutcome::NoData { pause: true, .. })
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
