//! Leader election on a `coordination.k8s.io` Lease, so that of several replicas exactly one runs
//! the controllers. The protocol is client-go's: the leader renews the Lease every retry period
//! and steps down (the process exits, to restart as a standby) when it could not renew for the
//! renew deadline, which is shorter than the lease duration; a standby takes over only when the
//! Lease has not changed for a whole lease duration by its own clock (no trust in the other
//! replica's clock). Every write is a replace guarded by the resourceVersion it read, so two
//! replicas can never both win. `decide` is pure; `Elector` does the I/O (the Lease).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;

use super::metrics::metrics;
use super::text::error_chain;

/// How the election runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the Lease lives (the agent's namespace).
    pub namespace: String,
    /// The Lease's name: replicas with the same name elect one leader.
    pub name: String,
    /// This replica's name in `holderIdentity` (the Pod's name).
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps running without a successful renewal; shorter than the lease.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby looks.
    pub retry_period: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("the settings cannot work: {0}")]
    Settings(String),
    #[error("lost the Lease {namespace}/{name}: {why}")]
    Lost {
        namespace: String,
        name: String,
        why: String,
    },
}

impl Settings {
    pub fn check(&self) -> Result<(), LeaderError> {
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(LeaderError::Settings(
                "the retry period must be shorter than the renew deadline".into(),
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(LeaderError::Settings(
                "the renew deadline must be shorter than the lease duration".into(),
            ));
        }
        Ok(())
    }
}

/// What to do with the Lease as last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// It is ours: renew it.
    Renew,
    /// Someone else holds it and it has not expired.
    Wait,
}

/// The decision for a Lease held by `holder`, whose record last changed (as this replica saw it)
/// `unchanged_for` ago and which holds for `duration` after a change.
pub fn decide(
    holder: Option<&str>,
    me: &str,
    unchanged_for: Duration,
    duration: Duration,
) -> Decision {
    match holder.filter(|h| !h.is_empty()) {
        None => Decision::Acquire,
        Some(h) if h == me => Decision::Renew,
        Some(_) if unchanged_for >= duration => Decision::Acquire,
        Some(_) => Decision::Wait,
    }
}

/// The part of a Lease whose change proves its holder alive.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Record {
        Record {
            holder: spec.holder_identity.clone(),
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions,
        }
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    settings: Settings,
    /// The record last read and when it was first seen.
    observed: Option<(Record, Instant)>,
}

impl Elector {
    pub fn new(client: Client, settings: Settings) -> Elector {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    /// Reads the Lease and takes or renews it when `decide` says so. `Ok(true)` while this
    /// replica holds it.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Instant::now();
        let stamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let me = self.settings.identity.clone();
        let seconds = i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(stamp.clone()),
                    renew_time: Some(stamp),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record::of(&spec);
        let seen_at = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => now,
        };
        self.observed = Some((record, seen_at));
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.settings.lease_duration, Duration::from_secs);
        let decision = decide(
            spec.holder_identity.as_deref(),
            &me,
            now - seen_at,
            duration,
        );
        let mut next = spec.clone();
        match decision {
            Decision::Wait => return Ok(false),
            Decision::Renew => next.renew_time = Some(stamp),
            Decision::Acquire => {
                next.holder_identity = Some(me);
                next.acquire_time = Some(stamp.clone());
                next.renew_time = Some(stamp);
                next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        next.lease_duration_seconds = Some(seconds);
        lease.spec = Some(next);
        // Guarded by the resourceVersion just read: of two replicas racing, one gets a conflict.
        match self
            .api
            .replace(&lease.name_any(), &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                let record = Record::of(&written.spec.unwrap_or_default());
                self.observed = Some((record, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&mut self) {
        let (ns, name) = (&self.settings.namespace, &self.settings.name);
        tracing::info!(lease = %format!("{ns}/{name}"), identity = %self.settings.identity, "waiting to lead");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "reading or taking the leader Lease failed")
                }
            }
            tokio::time::sleep(self.settings.retry_period).await;
        }
        metrics().set_leader(true);
        tracing::info!(
            lease = %format!("{}/{}", self.settings.namespace, self.settings.name),
            identity = %self.settings.identity,
            "became the leader"
        );
    }

    /// Renews the Lease every retry period. Returns when it is lost: another replica holds it, or
    /// no renewal succeeded for the renew deadline.
    pub async fn keep(&mut self) -> LeaderError {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            let why = match self.try_acquire_or_renew().await {
                Ok(true) => {
                    renewed = Instant::now();
                    continue;
                }
                Ok(false) => "another replica holds it".to_string(),
                Err(e) if renewed.elapsed() < self.settings.renew_deadline => {
                    tracing::warn!(error = %error_chain(&e), "renewing the leader Lease failed; retrying");
                    continue;
                }
                Err(e) => format!(
                    "no renewal for {:?}: {}",
                    self.settings.renew_deadline,
                    error_chain(&e)
                ),
            };
            metrics().set_leader(false);
            return LeaderError::Lost {
                namespace: self.settings.namespace.clone(),
                name: self.settings.name.clone(),
                why,
            };
        }
    }

    /// Gives the Lease up at a clean shutdown so a standby takes over at once.
    pub async fn release(&mut self) {
        metrics().set_leader(false);
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        match self
            .api
            .replace(&lease.name_any(), &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!("released the leader Lease"),
            Err(e) => tracing::warn!(error = %error_chain(&e), "releasing the leader Lease failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    #[test]
    fn a_free_or_expired_lease_is_taken_and_a_live_one_waited_for() {
        let s = Duration::from_secs;
        assert_eq!(decide(None, "a", s(0), LEASE), Decision::Acquire);
        assert_eq!(decide(Some(""), "a", s(0), LEASE), Decision::Acquire);
        assert_eq!(decide(Some("a"), "a", s(100), LEASE), Decision::Renew);
        assert_eq!(decide(Some("b"), "a", s(14), LEASE), Decision::Wait);
        assert_eq!(decide(Some("b"), "a", s(15), LEASE), Decision::Acquire);
    }

    #[test]
    fn the_leader_gives_up_before_a_standby_may_take_over() {
        let settings = |lease, deadline, retry| Settings {
            namespace: "n".into(),
            name: "l".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(deadline),
            retry_period: Duration::from_secs(retry),
        };
        assert!(settings(15, 10, 2).check().is_ok());
        assert!(settings(15, 15, 2).check().is_err());
        assert!(settings(15, 10, 10).check().is_err());
        assert!(settings(15, 10, 0).check().is_err());
    }
}
