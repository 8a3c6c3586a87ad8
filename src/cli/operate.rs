//! How `sluice agent` is operated: where its metrics, health and webhook endpoints listen and how
//! its replicas elect a leader. Flags only (flattened into `sluice agent`); no I/O.

use std::net::SocketAddr;
use std::time::Duration;

use crate::api::duration;
use crate::runtime::leader;

#[derive(Debug, clap::Args)]
pub struct OperateArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "SLUICE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Address of the webhook receivers (`Receiver` objects, under /hook/).
    #[arg(long, env = "SLUICE_RECEIVER_ADDR", default_value = "0.0.0.0:9292")]
    pub receiver_addr: SocketAddr,

    /// Run the controllers only while holding a Lease, so that replicas take turns.
    #[arg(long, env = "SLUICE_LEADER_ELECT")]
    pub leader_elect: bool,

    /// Name of the leader Lease.
    #[arg(long, default_value = "sluice-leader")]
    pub leader_election_id: String,

    /// Namespace of the leader Lease (default: the agent's own, from POD_NAMESPACE or the
    /// client configuration).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// How long the Lease holds without renewal; a standby takes over after it.
    #[arg(long, default_value = "15s", value_parser = duration::parse)]
    pub leader_election_lease_duration: Duration,

    /// How long the leader keeps running without renewing; shorter than the lease duration.
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    pub leader_election_renew_deadline: Duration,

    /// How often the leader renews and a standby looks.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    pub leader_election_retry_period: Duration,
}

impl OperateArgs {
    /// The election's settings, when asked for one. `default_namespace` is the client
    /// configuration's namespace (the Pod's, in a cluster).
    pub fn leader(
        &self,
        default_namespace: &str,
    ) -> Result<Option<leader::Settings>, leader::LeaderError> {
        if !self.leader_elect {
            return Ok(None);
        }
        let settings = leader::Settings {
            namespace: self
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_string()),
            name: self.leader_election_id.clone(),
            identity: identity(),
            lease_duration: self.leader_election_lease_duration,
            renew_deadline: self.leader_election_renew_deadline,
            retry_period: self.leader_election_retry_period,
        };
        settings.check()?;
        Ok(Some(settings))
    }
}

/// This replica's name: the Pod's, or host and process id outside a cluster.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "sluice".into());
        format!("{host}-{}", std::process::id())
    })
}
