//! Promotion and after: switching traffic for blue/green, copying the canary to the primary,
//! routing back, scaling the canary down, and the status conditions every step ends with.

use super::*;

impl Run<'_> {
    /// Starts the promotion. A blue/green switch (`switch`) moves all traffic to the running
    /// canary first, so the primary is updated while it serves nothing.
    pub(super) fn promote(&mut self, switch: bool) -> Decided {
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
    pub(super) fn promoting(&mut self) -> Decided {
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
    pub(super) fn finalising(&mut self) -> Decided {
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
    pub(super) fn levels(&mut self) {
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
    pub(super) fn mirroring_stopped(&mut self) {
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
    pub(super) fn conditions(&mut self) {
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
