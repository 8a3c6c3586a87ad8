//! Process-wide plumbing shared by the agent and the CLI: logging, crash points and text for
//! people (no Kubernetes I/O here yet).

pub mod crash;
pub mod logging;
pub mod text;
