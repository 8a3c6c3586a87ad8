//! The analysis itself: each interval's checks (metrics, webhooks, manual gates), then the next
//! weight, iteration or A/B step, or a failed check counted towards the threshold.

use super::*;

impl Run<'_> {
    /// Progressing or WaitingPromotion: one step per interval, once the canary is ready and
    /// traffic is where the status says.
    pub(super) fn progressing(&mut self) -> Decided {
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
    pub(super) fn wait_for(&mut self, what: &str, why: String, poll: Duration) -> Decided {
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
