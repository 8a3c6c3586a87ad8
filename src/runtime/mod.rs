//! Process-wide plumbing shared by the agent and the CLI: logging and crash points (no
//! Kubernetes I/O here yet).

pub mod crash;
pub mod logging;
