//! The steps before an analysis and its end by rollback: creating the primary, a new revision
//! seen at rest, the confirm-rollout gate, starting, the Waiting phase, and rolling back.

use super::*;

impl Run<'_> {
    /// Creates the primary from the target; once it is ready, the target scales down.
    pub(super) fn initialize(&mut self) -> Decided {
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
    pub(super) fn at_rest(&mut self) -> Decided {
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
    pub(super) fn confirm_start(&mut self) -> Decided {
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
    pub(super) fn waiting(&mut self) -> Decided {
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

    pub(super) fn rollback(&mut self, why: String) -> Decided {
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
}
