//! Process-wide plumbing shared by the agent and the CLI: logging (no Kubernetes I/O here yet).

pub mod logging;
