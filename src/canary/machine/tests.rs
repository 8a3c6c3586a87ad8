//! The state machine, phase by phase and through whole analyses, with a simulator that answers
//! what the machine asks for and moves the clock.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::api::canary::CanarySpec;
use crate::api::condition::ConditionStatus;
use crate::canary::spec::{self, Settings};

fn settings(analysis: serde_json::Value) -> Settings {
    settings_with(json!({}), analysis)
}

fn settings_with(extra: serde_json::Value, analysis: serde_json::Value) -> Settings {
    let mut spec = json!({
        "targetRef": {"name": "web"},
        "service": {"port": 80},
        "analysis": analysis,
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let spec: CanarySpec = serde_json::from_value(spec).unwrap();
    spec::settings(&spec).unwrap()
}

fn pass(metric: &str, value: f64) -> Check {
    Check {
        metric: metric.into(),
        outcome: CheckOutcome::Value {
            value,
            accepted: true,
            range: ">= 99".into(),
        },
    }
}

fn fail(metric: &str, value: f64) -> Check {
    Check {
        metric: metric.into(),
        outcome: CheckOutcome::Value {
            value,
            accepted: false,
            range: ">= 99".into(),
        },
    }
}

fn no_data(metric: &str, pause: bool) -> Check {
    Check {
        metric: metric.into(),
        outcome: CheckOutcome::NoData {
            reason: "the query returned no data".into(),
            pause,
        },
    }
}

/// Drives the machine: answers its needs from the fields below, keeps the status, moves time.
struct Sim {
    s: Settings,
    status: CanaryStatus,
    now: Timestamp,
    revision: Revision,
    /// The revision the primary's template holds (set by Bootstrap and Promote).
    primary_revision: String,
    primary: Pods,
    canary: Pods,
    canary_running: bool,
    routes: Routes,
    hooks: BTreeMap<HookType, Vec<HookAnswer>>,
    checks: Vec<Check>,
    paused: bool,
    suspended: bool,
    manual: Option<(Manual, String)>,
    /// What the machine asked for in the last step.
    asked: Vec<Need>,
    events: Vec<String>,
}

impl Sim {
    fn new(s: Settings) -> Sim {
        Sim {
            s,
            status: CanaryStatus::default(),
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
            revision: rev("v1"),
            primary_revision: String::new(),
            primary: Pods::Ready,
            canary: Pods::Ready,
            canary_running: false,
            routes: Routes::Converged,
            hooks: BTreeMap::new(),
            checks: vec![pass("request-success-rate", 100.0)],
            paused: false,
            suspended: false,
            manual: None,
            asked: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A canary already initialized on `v1`.
    fn initialized(s: Settings) -> Sim {
        let mut sim = Sim::new(s);
        sim.tick();
        assert_eq!(sim.phase(), Phase::Initialized);
        sim
    }

    fn phase(&self) -> Phase {
        self.status.phase.unwrap()
    }

    fn later(&mut self, seconds: u64) {
        self.now = self.now.checked_add(Duration::from_secs(seconds)).unwrap();
    }

    /// The primary's pods, ready only at the revision being promoted, as the controller says.
    fn primary(&self) -> Pods {
        let promoting = matches!(
            self.status.phase,
            Some(Phase::Promoting | Phase::Finalising)
        );
        let wanted = if promoting {
            &self.status.last_applied_spec
        } else {
            &self.primary_revision
        };
        match &self.primary {
            Pods::Ready if self.primary_revision != *wanted => {
                Pods::NotReady(format!("web-primary holds {}", self.primary_revision))
            }
            other => other.clone(),
        }
    }

    fn observed(&self) -> Observed {
        Observed {
            now: self.now,
            generation: Some(1),
            namespace: "shop".into(),
            revision: self.revision.clone(),
            primary_revision: Some(self.primary_revision.clone()).filter(|r| !r.is_empty()),
            primary: self.primary(),
            canary: self.canary.clone(),
            canary_running: self.canary_running,
            suspended: self.suspended,
            paused: self.paused,
            manual: self.manual.clone(),
            routes: None,
            hooks: BTreeMap::new(),
            checks: None,
        }
    }

    /// One reconcile: answers every need, applies the status, returns the step.
    fn tick(&mut self) -> Step {
        let mut o = self.observed();
        self.asked.clear();
        loop {
            match step(&self.s, &self.status, &o) {
                Decision::Need(need) => {
                    assert!(!self.asked.contains(&need), "asked twice for {need:?}");
                    self.asked.push(need);
                    match need {
                        Need::Routes => o.routes = Some(self.routes.clone()),
                        Need::Checks => o.checks = Some(self.checks.clone()),
                        Need::Hooks(t) => {
                            let answers = self.hooks.get(&t).cloned().unwrap_or_else(|| {
                                self.s.hooks(t).map(|h| HookAnswer::yes(&h.name)).collect()
                            });
                            o.hooks.insert(t, answers);
                        }
                    }
                }
                Decision::Act(step) => {
                    if step.actions.contains(&Action::Bootstrap) {
                        self.primary_revision = self.revision.spec.clone();
                    }
                    if step.actions.contains(&Action::Promote) {
                        self.primary_revision = step.status.last_applied_spec.clone();
                    }
                    self.status = step.status.clone();
                    self.events
                        .extend(step.notes.iter().map(|n| n.message.clone()));
                    if step.actions.contains(&Action::Canary(Scale::Up)) {
                        self.canary_running = true;
                    }
                    if step.actions.contains(&Action::Canary(Scale::Zero)) {
                        self.canary_running = false;
                    }
                    if self.manual.is_some() && self.status.last_handled_gate.is_some() {
                        self.manual = None;
                    }
                    return *step;
                }
            }
        }
    }

    /// Ticks once per interval until `phase`, at most `limit` times; returns the steps.
    fn run_until(&mut self, phase: Phase, limit: usize) -> Vec<Step> {
        let mut steps = Vec::new();
        for _ in 0..limit {
            let step = self.tick();
            steps.push(step);
            if self.phase() == phase {
                return steps;
            }
            self.later(self.s.interval.as_secs());
        }
        panic!(
            "not {phase:?} after {limit} ticks; status {:#?}\nevents: {:#?}",
            self.status, self.events
        );
    }

    fn ready(&self) -> &condition::Condition {
        condition::find(&self.status.conditions, READY).unwrap()
    }

    fn promoted(&self) -> ConditionStatus {
        condition::find(&self.status.conditions, PROMOTED)
            .unwrap()
            .status
    }
}

fn rev(spec: &str) -> Revision {
    Revision {
        spec: spec.into(),
        configs: BTreeMap::new(),
    }
}

fn progressive() -> Settings {
    settings(
        json!({"interval": "10s", "threshold": 2, "stepWeights": [20, 50],
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]}),
    )
}

/// The weights traffic was routed to, each change once.
fn routes_of(steps: &[Step]) -> Vec<u32> {
    let mut weights: Vec<u32> = steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::Route(t) => Some(t.weight),
            _ => None,
        })
        .collect();
    weights.dedup();
    weights
}

#[test]
fn initialization_waits_for_the_primary_then_scales_the_target_down() {
    let mut sim = Sim::new(progressive());
    sim.primary = Pods::NotReady("0 of 2 updated replicas are available".into());
    let step = sim.tick();
    assert_eq!(sim.phase(), Phase::Initializing);
    assert_eq!(step.actions, vec![Action::Bootstrap]);
    assert_eq!(step.requeue, POD_POLL);
    assert_eq!(sim.ready().status, ConditionStatus::Unknown);
    assert!(sim.ready().message.contains("0 of 2"), "{:?}", sim.ready());
    assert_eq!(step.notes.len(), 1, "one Event when initialization starts");
    let again = sim.tick();
    assert!(again.notes.is_empty(), "no Event per poll");

    sim.primary = Pods::Ready;
    let step = sim.tick();
    assert_eq!(sim.phase(), Phase::Initialized);
    assert_eq!(
        step.actions,
        vec![
            Action::Bootstrap,
            Action::Route(Traffic::weight(0)),
            Action::Canary(Scale::Zero)
        ]
    );
    assert_eq!(sim.status.last_applied_spec, "v1");
    assert_eq!(sim.status.last_promoted_spec, "v1");
    assert_eq!(sim.ready().status, ConditionStatus::True);
    assert_eq!(sim.promoted(), ConditionStatus::True);
    assert!(
        sim.events
            .last()
            .unwrap()
            .starts_with("Initialization done! web.shop")
    );
}

#[test]
fn at_rest_nothing_changes_and_nothing_is_written() {
    let mut sim = Sim::initialized(progressive());
    let before = sim.status.clone();
    sim.later(3600);
    let step = sim.tick();
    assert_eq!(step.status, before, "a no-op step writes nothing");
    assert_eq!(step.actions, vec![Action::Route(Traffic::weight(0))]);
    assert!(step.notes.is_empty());
    assert!(
        sim.asked.is_empty(),
        "nothing to ask at rest: {:?}",
        sim.asked
    );
    assert_eq!(step.requeue, sim.s.interval);
}

#[test]
fn a_target_running_at_rest_is_scaled_down_once_traffic_left_it() {
    let mut sim = Sim::initialized(progressive());
    sim.canary_running = true;
    sim.routes = Routes::Converging("2 canary endpoints left".into());
    let step = sim.tick();
    assert_eq!(sim.asked, vec![Need::Routes]);
    assert!(!step.actions.contains(&Action::Canary(Scale::Zero)));
    assert_eq!(step.requeue, ROUTE_POLL);
    sim.routes = Routes::Converged;
    let step = sim.tick();
    assert!(step.actions.contains(&Action::Canary(Scale::Zero)));
}

#[test]
fn a_good_revision_climbs_every_weight_and_is_promoted() {
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    let start = sim.tick();
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(
        start.actions,
        vec![Action::Canary(Scale::Up), Action::Route(Traffic::weight(0))]
    );
    assert!(
        sim.events
            .last()
            .unwrap()
            .contains("New revision detected! Scaling up web.shop")
    );
    assert_eq!(sim.promoted(), ConditionStatus::Unknown);
    assert_eq!(sim.ready().status, ConditionStatus::Unknown);
    assert!(condition::is_true(&sim.status.conditions, RECONCILING));

    // Too early for a step: nothing but a requeue at the interval's end.
    sim.later(4);
    let early = sim.tick();
    assert_eq!(early.status, sim.status);
    assert_eq!(early.requeue, Duration::from_secs(6));

    let steps = sim.run_until(Phase::Succeeded, 12);
    assert_eq!(routes_of(&steps), vec![0, 20, 50, 0]);
    let events = sim.events.join("\n");
    assert!(
        events.contains("Advance web.shop canary weight 20\n"),
        "no metrics before traffic: {events}"
    );
    assert!(
        events.contains("Advance web.shop canary weight 50 (request-success-rate 100 (>= 99))"),
        "the values that decided: {events}"
    );
    assert!(events.contains("Copying web.shop template spec to web-primary.shop"));
    assert!(events.contains("Promotion completed! Scaling down web.shop"));
    let all: Vec<Action> = steps.iter().flat_map(|s| s.actions.clone()).collect();
    let promote = all.iter().position(|a| *a == Action::Promote).unwrap();
    let zero = all
        .iter()
        .position(|a| *a == Action::Canary(Scale::Zero))
        .unwrap();
    assert!(promote < zero, "{all:?}");
    assert!(all.contains(&Action::PostRollout));
    assert_eq!(sim.status.last_promoted_spec, "v2");
    assert_eq!(sim.status.canary_weight, 0);
    assert_eq!(sim.promoted(), ConditionStatus::True);
    assert_eq!(sim.ready().status, ConditionStatus::True);
    assert!(!sim.canary_running);
}

#[test]
fn a_tick_is_due_an_interval_after_the_last_step_and_says_how_late_it_runs() {
    let ten = Duration::from_secs(10);
    assert_eq!(
        tick(Duration::from_secs(4), ten),
        Tick::NotYet(Duration::from_secs(6))
    );
    assert_eq!(
        tick(ten, ten),
        Tick::Due {
            late: Duration::ZERO
        }
    );
    assert_eq!(
        tick(Duration::from_millis(12_250), ten),
        Tick::Due {
            late: Duration::from_millis(2_250)
        }
    );
    assert_eq!(
        tick(Duration::ZERO, Duration::ZERO),
        Tick::Due {
            late: Duration::ZERO
        }
    );
}

#[test]
fn only_analysis_ticks_report_their_lateness() {
    let on_time = |seconds| {
        Some(Lateness {
            late: Duration::from_secs(seconds),
            after_wait: false,
        })
    };
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    assert_eq!(sim.tick().late, None, "starting is no tick");
    sim.later(4);
    assert_eq!(sim.tick().late, None, "too early");
    sim.later(9);
    let step = sim.tick();
    assert_eq!(sim.status.canary_weight, 20);
    assert_eq!(step.late, on_time(3), "due 10 s after the start");
    // The next tick is due 10 s after this step, not after the previous due time.
    sim.later(10);
    let step = sim.tick();
    assert_eq!(sim.status.canary_weight, 50);
    assert_eq!(step.late, on_time(0));
    // The wait until the next tick counts from when the step was decided.
    sim.later(4);
    let early = sim.tick();
    assert_eq!(early.requeue, Duration::from_secs(6));
    assert_eq!(
        early.requeue_after(Duration::from_millis(1_500)),
        Duration::from_millis(4_500)
    );
    assert_eq!(early.requeue_after(Duration::from_secs(8)), Duration::ZERO);
    // Waiting for pods is no tick, however long it takes; the tick it held says so.
    sim.canary = Pods::NotReady("0 of 1 updated replicas are available".into());
    sim.later(21);
    assert_eq!(sim.tick().late, None);
    sim.canary = Pods::Ready;
    sim.later(1);
    let held = sim.tick().late.expect("a tick once the pods are ready");
    assert_eq!(held.late, Duration::from_secs(16));
    assert!(held.after_wait);
}

#[test]
fn failed_checks_reach_the_threshold_and_roll_back() {
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick(); // weight 20
    assert_eq!(sim.status.canary_weight, 20);
    sim.checks = vec![fail("request-success-rate", 61.39)];
    sim.later(10);
    let first = sim.tick();
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(sim.status.failed_checks, 1);
    assert_eq!(
        sim.status.canary_weight, 20,
        "a failed check holds the weight"
    );
    assert!(first.notes[0].warning);
    assert!(
        first.notes[0]
            .message
            .contains("request-success-rate 61.39 outside >= 99"),
        "{:?}",
        first.notes
    );
    // A reconcile before the next interval does not count the same failure again.
    sim.later(3);
    sim.tick();
    assert_eq!(sim.status.failed_checks, 1);
    sim.later(7);
    let second = sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
    assert_eq!(sim.status.canary_weight, 0);
    assert_eq!(
        second.actions,
        vec![Action::Route(Traffic::weight(0)), Action::PostRollout]
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.contains("Rolling back web.shop: failed checks threshold reached 2"))
    );
    assert_eq!(sim.promoted(), ConditionStatus::False);
    assert_eq!(sim.ready().status, ConditionStatus::False);
    // The check that decided stays in the condition, for the reports to Git.
    assert!(
        sim.ready()
            .message
            .contains("failed checks threshold reached 2 (last: request-success-rate"),
        "{}",
        sim.ready().message
    );
    // Traffic first, then the canary scales down.
    sim.routes = Routes::Converging("canary endpoints remain".into());
    let step = sim.tick();
    assert!(!step.actions.contains(&Action::Canary(Scale::Zero)));
    sim.routes = Routes::Converged;
    let step = sim.tick();
    assert!(step.actions.contains(&Action::Canary(Scale::Zero)));
    assert_eq!(
        sim.status.last_promoted_spec, "v1",
        "the primary never saw v2"
    );
    assert_eq!(sim.status.last_applied_spec, "v2");
    // The failed revision is not retried; the next one is.
    sim.later(60);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
    sim.revision = rev("v3");
    sim.tick();
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(sim.status.failed_checks, 0);
}

#[test]
fn no_data_is_a_failed_check_by_default_and_holds_with_pause() {
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    sim.checks = vec![no_data("request-success-rate", false)];
    sim.later(10);
    let step = sim.tick();
    assert_eq!(sim.status.failed_checks, 1);
    assert!(
        step.notes[0]
            .message
            .contains("no data for request-success-rate")
    );

    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    sim.checks = vec![
        pass("request-duration", 12.0),
        no_data("request-success-rate", true),
    ];
    for _ in 0..5 {
        sim.later(10);
        let step = sim.tick();
        assert_eq!(sim.phase(), Phase::Progressing);
        assert_eq!(sim.status.canary_weight, 20, "held where it was");
        assert_eq!(sim.status.failed_checks, 0, "a pause does not count");
        assert!(
            step.notes[0]
                .message
                .contains("Holding web.shop at weight 20")
        );
        assert_eq!(
            step.actions,
            vec![
                Action::Canary(Scale::Up),
                Action::Route(Traffic::weight(20))
            ]
        );
    }
    sim.checks = vec![pass("request-success-rate", 100.0)];
    sim.later(10);
    sim.tick();
    assert_eq!(
        sim.status.canary_weight, 50,
        "data is back: the analysis goes on"
    );
}

#[test]
fn a_broken_query_always_fails_the_check() {
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    sim.checks = vec![Check {
        metric: "errors".into(),
        outcome: CheckOutcome::Broken("bad_data: parse error at char 5".into()),
    }];
    sim.later(10);
    let step = sim.tick();
    assert_eq!(sim.status.failed_checks, 1);
    assert!(
        step.notes[0]
            .message
            .contains("errors: bad_data: parse error")
    );
}

#[test]
fn a_new_revision_mid_analysis_restarts_it() {
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    sim.checks = vec![fail("request-success-rate", 50.0)];
    sim.later(10);
    sim.tick();
    assert_eq!(
        (sim.status.canary_weight, sim.status.failed_checks),
        (20, 1)
    );
    sim.revision = rev("v3");
    sim.later(1);
    let step = sim.tick();
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!((sim.status.canary_weight, sim.status.failed_checks), (0, 0));
    assert_eq!(sim.status.last_applied_spec, "v3");
    assert_eq!(
        step.actions,
        vec![Action::Canary(Scale::Up), Action::Route(Traffic::weight(0))]
    );
    assert!(
        step.notes[0]
            .message
            .contains("Restarting analysis of web.shop")
    );
    // A changed ConfigMap is a new revision too.
    sim.revision
        .configs
        .insert("ConfigMap/settings".into(), "abc".into());
    sim.tick();
    assert!(sim.events.last().unwrap().contains("Restarting"));
    assert_eq!(sim.status.tracked_configs["ConfigMap/settings"], "abc");
}

#[test]
fn a_new_revision_while_promoting_starts_over() {
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.run_until(Phase::Promoting, 10);
    sim.revision = rev("v3");
    sim.tick();
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(sim.status.last_applied_spec, "v3");
}

#[test]
fn pods_or_traffic_that_never_get_ready_roll_back_at_the_deadline() {
    let mut sim = Sim::initialized(settings_with(
        json!({"progressDeadlineSeconds": 60}),
        json!({"interval": "10s", "stepWeight": 50, "maxWeight": 50}),
    ));
    sim.revision = rev("v2");
    sim.canary = Pods::NotReady("0 of 2 updated replicas are available".into());
    sim.tick();
    let mut waits = 0;
    for _ in 0..6 {
        sim.later(10);
        let step = sim.tick();
        waits += step.notes.len();
        assert_eq!(sim.phase(), Phase::Progressing);
        assert!(step.requeue <= POD_POLL);
    }
    assert_eq!(waits, 1, "one Event while the same wait goes on");
    sim.later(5);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
    assert!(
        sim.events.iter().any(
            |e| e.contains("progress deadline exceeded: the canary's pods not ready after 60s")
        )
    );

    // The same for traffic that never moves.
    let mut sim = Sim::initialized(settings_with(
        json!({"progressDeadlineSeconds": 30}),
        json!({"interval": "10s", "stepWeight": 50, "maxWeight": 50}),
    ));
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    sim.routes = Routes::Converging("1 of 2 canary pods ready".into());
    sim.later(20);
    let step = sim.tick();
    assert_eq!(step.requeue, ROUTE_POLL);
    sim.later(11);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
}

#[test]
fn a_target_that_fails_its_rollout_is_rolled_back_at_once() {
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.canary = Pods::Failed("ProgressDeadlineExceeded".into());
    sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
}

#[test]
fn webhooks_gate_start_traffic_and_promotion() {
    let mut sim = Sim::initialized(settings(
        json!({"interval": "10s", "threshold": 2, "stepWeight": 50, "maxWeight": 50,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
        "webhooks": [
            {"name": "approve", "type": "confirm-rollout", "url": "http://t/gate/check"},
            {"name": "more", "type": "confirm-traffic-increase", "url": "http://t/more"},
            {"name": "ship", "type": "confirm-promotion", "url": "http://t/ship"},
        ]}),
    ));
    sim.hooks.insert(
        HookType::ConfirmRollout,
        vec![HookAnswer::no("approve", "403 Forbidden")],
    );
    sim.revision = rev("v2");
    let step = sim.tick();
    assert_eq!(sim.phase(), Phase::Waiting);
    assert!(
        !step.actions.contains(&Action::Canary(Scale::Up)),
        "nothing scales before approval"
    );
    assert!(
        step.notes[0]
            .message
            .contains("approve said no: 403 Forbidden")
    );
    sim.later(10);
    let again = sim.tick();
    assert!(
        again.notes.is_empty(),
        "the same wait is not recorded twice"
    );
    sim.hooks.remove(&HookType::ConfirmRollout);
    sim.later(10);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Progressing);

    sim.hooks.insert(
        HookType::ConfirmTrafficIncrease,
        vec![HookAnswer::no("more", "closed")],
    );
    sim.later(10);
    sim.tick();
    assert_eq!(sim.status.canary_weight, 0, "no traffic before approval");
    assert!(
        sim.asked
            .contains(&Need::Hooks(HookType::ConfirmTrafficIncrease))
    );
    sim.hooks.remove(&HookType::ConfirmTrafficIncrease);
    sim.later(10);
    sim.tick();
    assert_eq!(sim.status.canary_weight, 50);

    sim.hooks.insert(
        HookType::ConfirmPromotion,
        vec![HookAnswer::no("ship", "closed")],
    );
    sim.later(10);
    sim.tick();
    assert_eq!(sim.phase(), Phase::WaitingPromotion);
    assert_eq!(sim.status.canary_weight, 50);
    // Checks go on while waiting: failures still count and roll back.
    sim.checks = vec![fail("request-success-rate", 10.0)];
    sim.later(10);
    sim.tick();
    assert_eq!(sim.status.failed_checks, 1);
    sim.checks = vec![pass("request-success-rate", 100.0)];
    sim.hooks.remove(&HookType::ConfirmPromotion);
    sim.later(10);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Promoting);
}

#[test]
fn pre_rollout_and_rollout_webhooks_are_checks() {
    let mut sim = Sim::initialized(settings(
        json!({"interval": "10s", "threshold": 3, "stepWeights": [10, 20],
        "webhooks": [
            {"name": "smoke", "type": "pre-rollout", "url": "http://t/smoke"},
            {"name": "load", "url": "http://t/"},
        ]}),
    ));
    sim.revision = rev("v2");
    sim.tick();
    sim.hooks.insert(
        HookType::PreRollout,
        vec![HookAnswer::no("smoke", "500: token missing")],
    );
    sim.later(10);
    sim.tick();
    assert_eq!((sim.status.failed_checks, sim.status.canary_weight), (1, 0));
    assert!(
        !sim.asked.contains(&Need::Hooks(HookType::Rollout)),
        "rollout hooks run once traffic flows"
    );
    sim.hooks.clear();
    sim.later(10);
    sim.tick();
    assert_eq!(sim.status.canary_weight, 10);
    sim.hooks.insert(
        HookType::Rollout,
        vec![
            HookAnswer::yes("load"),
            HookAnswer::no("load2", "timed out after 5s"),
        ],
    );
    sim.later(10);
    let step = sim.tick();
    assert_eq!(sim.status.failed_checks, 2);
    assert!(
        step.notes[0]
            .message
            .contains("rollout webhook load2 said no: timed out after 5s")
    );
}

#[test]
fn a_rollback_webhook_that_answers_yes_rolls_back() {
    let mut sim = Sim::initialized(settings(
        json!({"interval": "10s", "stepWeight": 50, "maxWeight": 50,
        "webhooks": [{"name": "stop", "type": "rollback", "url": "http://t/rollback/check"}]}),
    ));
    sim.hooks
        .insert(HookType::Rollback, vec![HookAnswer::no("stop", "403")]);
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    assert_eq!(sim.status.canary_weight, 50);
    sim.hooks
        .insert(HookType::Rollback, vec![HookAnswer::yes("stop")]);
    sim.later(10);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
    assert!(
        sim.events
            .iter()
            .any(|e| e.contains("rollback webhook stop asked for it"))
    );
}

#[test]
fn blue_green_switches_all_traffic_after_the_iterations() {
    let mut sim = Sim::initialized(settings(json!({"interval": "10s", "iterations": 3,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]})));
    assert_eq!(sim.s.routing, Routing::ServiceSelector);
    sim.revision = rev("v2");
    let steps = sim.run_until(Phase::Succeeded, 12);
    let all: Vec<Action> = steps.iter().flat_map(|s| s.actions.clone()).collect();
    assert_eq!(routes_of(&steps), vec![0, 100, 0]);
    let switch = all
        .iter()
        .position(|a| *a == Action::Route(Traffic::weight(100)))
        .unwrap();
    let promote = all.iter().position(|a| *a == Action::Promote).unwrap();
    let back = switch
        + all[switch..]
            .iter()
            .position(|a| *a == Action::Route(Traffic::weight(0)))
            .unwrap();
    assert!(
        switch < promote && promote < back,
        "switch, update the primary, switch back: {all:?}"
    );
    let events = sim.events.join("\n");
    for i in 1..=3 {
        assert!(
            events.contains(&format!("Advance web.shop canary iteration {i}/3")),
            "{events}"
        );
    }
    assert!(events.contains("Routing all traffic to canary web.shop"));
}

#[test]
fn the_switch_waits_for_traffic_before_the_primary_changes() {
    let mut sim = Sim::initialized(settings(json!({"interval": "10s", "iterations": 1})));
    sim.revision = rev("v2");
    sim.run_until(Phase::Promoting, 6);
    assert_eq!(sim.status.canary_weight, 100);
    sim.routes = Routes::Converging("primary endpoints remain".into());
    let step = sim.tick();
    assert!(
        !step.actions.contains(&Action::Promote),
        "{:?}",
        step.actions
    );
    sim.routes = Routes::Converged;
    sim.primary = Pods::NotReady("1 of 2 updated".into());
    let step = sim.tick();
    assert!(step.actions.contains(&Action::Promote));
    assert_eq!(
        sim.status.canary_weight, 100,
        "traffic stays on the canary while the primary rolls"
    );
    sim.primary = Pods::Ready;
    sim.tick();
    assert_eq!(sim.phase(), Phase::Finalising);
    assert_eq!(sim.status.canary_weight, 0);
    // Traffic has left the canary; it keeps serving what node proxies still send for an interval.
    sim.later(3);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Finalising);
    assert!(sim.canary_running);
    sim.later(7);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Succeeded);
    assert!(!sim.canary_running);
}

#[test]
fn ab_testing_routes_matching_requests_for_the_iterations() {
    let mut sim = Sim::initialized(settings_with(
        json!({"provider": "gatewayapi:v1", "service": {"port": 80, "gatewayRefs": [{"name": "gw"}]}}),
        json!({"interval": "10s", "iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}),
    ));
    sim.revision = rev("v2");
    let steps = sim.run_until(Phase::Succeeded, 10);
    assert_eq!(routes_of(&steps), vec![0, 100, 0]);
    assert!(sim.events.iter().any(|e| e.contains("iteration 2/2")));
}

#[test]
fn step_weight_promotion_moves_traffic_back_gradually() {
    let mut sim = Sim::initialized(settings_with(
        json!({"provider": "gatewayapi:v1", "service": {"port": 80, "gatewayRefs": [{"name": "gw"}]}}),
        json!({"interval": "10s", "stepWeight": 60, "maxWeight": 60, "stepWeightPromotion": 25}),
    ));
    sim.revision = rev("v2");
    let steps = sim.run_until(Phase::Succeeded, 12);
    assert_eq!(routes_of(&steps), vec![0, 60, 35, 10, 0]);
}

#[test]
fn manual_gates_promote_abort_and_pause() {
    // Abort rolls back at once.
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.manual = Some((Manual::Abort, "abort@1".into()));
    sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
    assert_eq!(sim.status.last_handled_gate.as_deref(), Some("abort@1"));
    assert!(
        sim.events
            .iter()
            .any(|e| e.contains("aborted with sluice canary abort"))
    );

    // Promote skips the remaining steps.
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    sim.manual = Some((Manual::Promote, "promote@1".into()));
    sim.checks = vec![fail("request-success-rate", 1.0)];
    sim.tick();
    assert_eq!(sim.phase(), Phase::Promoting);
    sim.run_until(Phase::Succeeded, 5);

    // Pause holds everything, resume goes on.
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    sim.paused = true;
    for _ in 0..3 {
        sim.later(10);
        let step = sim.tick();
        assert_eq!(
            step.actions,
            vec![
                Action::Canary(Scale::Up),
                Action::Route(Traffic::weight(20))
            ]
        );
        assert!(step.notes.is_empty());
    }
    assert_eq!(sim.status.canary_weight, 20);
    assert!(sim.ready().message.contains("paused at weight 20"));
    sim.paused = false;
    sim.tick();
    assert_eq!(sim.status.canary_weight, 50);

    // A gate with nothing running is recorded as handled, with an Event.
    let mut sim = Sim::initialized(progressive());
    sim.manual = Some((Manual::Promote, "promote@2".into()));
    sim.tick();
    assert_eq!(sim.status.last_handled_gate.as_deref(), Some("promote@2"));
    assert!(sim.events.last().unwrap().contains("nothing to promote"));

    // Promote after a rollback forces the revision onto the primary.
    let mut sim = Sim::initialized(progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.manual = Some((Manual::Abort, "abort@3".into()));
    sim.tick();
    sim.manual = Some((Manual::Promote, "promote@3".into()));
    let step = sim.tick();
    assert_eq!(sim.phase(), Phase::Promoting);
    assert!(step.actions.contains(&Action::Promote));
    sim.run_until(Phase::Succeeded, 5);
    assert_eq!(sim.status.last_promoted_spec, "v2");
}

#[test]
fn a_paused_canary_does_not_start_a_new_revision_and_abort_skips_it() {
    let mut sim = Sim::initialized(progressive());
    sim.paused = true;
    sim.revision = rev("v2");
    let step = sim.tick();
    assert_eq!(sim.phase(), Phase::Initialized);
    assert_eq!(step.actions, vec![Action::Route(Traffic::weight(0))]);
    sim.paused = false;
    sim.manual = Some((Manual::Abort, "abort@9".into()));
    sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
    assert_eq!(sim.status.last_applied_spec, "v2");
    assert_eq!(sim.status.last_promoted_spec, "v1");
}

#[test]
fn skip_analysis_promotes_once_the_canary_is_ready() {
    let mut sim = Sim::initialized(settings_with(
        json!({"skipAnalysis": true}),
        json!({"stepWeight": 10}),
    ));
    sim.revision = rev("v2");
    sim.tick();
    let step = sim.tick();
    assert_eq!(sim.phase(), Phase::Promoting);
    assert!(step.actions.contains(&Action::Promote));
    assert!(
        sim.asked.iter().all(|n| *n == Need::Routes),
        "{:?}",
        sim.asked
    );
}

#[test]
fn a_suspended_canary_does_nothing() {
    let mut sim = Sim::initialized(progressive());
    sim.suspended = true;
    sim.revision = rev("v2");
    let step = sim.tick();
    assert!(step.actions.is_empty());
    assert_eq!(sim.phase(), Phase::Initialized);
    assert_eq!(sim.ready().reason, "Suspended");
}

#[test]
fn every_phase_decides_without_panicking_and_writes_conditions() {
    let phases = [
        Phase::Initializing,
        Phase::Initialized,
        Phase::Waiting,
        Phase::Progressing,
        Phase::WaitingPromotion,
        Phase::Promoting,
        Phase::Finalising,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Terminating,
    ];
    for phase in phases {
        for new_revision in [false, true] {
            let mut sim = Sim::new(progressive());
            sim.status.phase = Some(phase);
            sim.status.last_applied_spec = "v1".into();
            sim.status.canary_weight = if phase == Phase::Progressing { 20 } else { 0 };
            if new_revision {
                sim.revision = rev("v2");
            }
            sim.later(100);
            let step = sim.tick();
            assert!(
                condition::find(&step.status.conditions, READY).is_some(),
                "{phase:?}"
            );
            assert_eq!(step.status.observed_generation, Some(1));
            assert!(step.requeue <= sim.s.interval, "{phase:?}");
        }
    }
}

#[test]
fn a_passed_analysis_outside_the_release_windows_waits_for_one_to_open() {
    let windowed = settings_with(
        json!({"releaseWindows": [{"schedule": "0 9 * * *", "duration": "1h", "timeZone": "Europe/Berlin"}]}),
        json!({"interval": "10s", "threshold": 2, "stepWeights": [20, 50],
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]}),
    );
    // 2026-01-01T00:00Z: the window opens at 08:00Z (09:00 in Berlin).
    let mut sim = Sim::initialized(windowed);
    sim.revision = rev("v2");
    let steps = sim.run_until(Phase::WaitingPromotion, 12);
    assert_eq!(routes_of(&steps), vec![0, 20, 50]);
    assert_eq!(sim.status.canary_weight, 50, "traffic stays where it was");
    let held = sim.events.last().unwrap().clone();
    assert_eq!(
        held,
        "Halt web.shop advancement: outside the release window, the next opens at 2026-01-01T08:00:00Z"
    );
    assert_eq!(sim.ready().message, held);

    // The checks go on every interval while it waits; the Event is said once.
    for _ in 0..3 {
        sim.later(10);
        let step = sim.tick();
        assert_eq!(sim.phase(), Phase::WaitingPromotion);
        assert!(step.requeue <= Duration::from_secs(10));
    }
    assert_eq!(sim.events.iter().filter(|e| **e == held).count(), 1);

    // Once the window is open, the next tick promotes.
    sim.now = "2026-01-01T08:00:05Z".parse().unwrap();
    sim.tick();
    assert_eq!(sim.phase(), Phase::Promoting);
    sim.run_until(Phase::Succeeded, 12);
    assert_eq!(sim.status.last_promoted_spec, "v2");
}

#[test]
fn a_manual_promotion_does_not_wait_for_the_window_and_skip_analysis_does() {
    let closed = json!({"releaseWindows": [{"schedule": "0 9 * * *", "duration": "1h"}]});
    let mut sim = Sim::initialized(settings_with(
        closed.clone(),
        json!({"interval": "10s", "threshold": 2, "stepWeights": [50]}),
    ));
    sim.revision = rev("v2");
    sim.run_until(Phase::WaitingPromotion, 12);
    sim.manual = Some((Manual::Promote, "now".into()));
    sim.later(1);
    sim.tick();
    assert_eq!(sim.phase(), Phase::Promoting);

    let mut skip = closed;
    skip["skipAnalysis"] = json!(true);
    let mut sim = Sim::initialized(settings_with(
        skip,
        json!({"interval": "10s", "stepWeight": 50}),
    ));
    sim.revision = rev("v2");
    sim.run_until(Phase::WaitingPromotion, 5);
    sim.now = "2026-01-01T09:00:01Z".parse().unwrap();
    sim.tick();
    assert_eq!(sim.phase(), Phase::Promoting);
}

#[test]
fn a_release_window_that_does_not_parse_is_an_invalid_spec() {
    let spec: CanarySpec = serde_json::from_value(json!({
        "targetRef": {"name": "web"}, "service": {"port": 80},
        "releaseWindows": [{"schedule": "0 9 * *", "duration": "1h"}],
    }))
    .unwrap();
    let err = spec::settings(&spec).unwrap_err();
    assert_eq!(err.field, "releaseWindows[0].schedule");
    assert!(
        err.to_string()
            .starts_with("spec.releaseWindows[0].schedule: \"0 9 * *\" is not a crontab schedule"),
        "{err}"
    );
}

mod mirror;
