//! Process-wide plumbing shared by the agent and the CLI: logging, crash points, Events and
//! text for people.

pub mod crash;
pub mod events;
pub mod logging;
pub mod text;
