//! The applier: the only code that writes to the API server. Decisions live in pure files
//! (`order`, `plan`, `unchanged`, `inventory`, `changeset`, the guard and decision of `prune`,
//! `contents::foreign`, `health::assess`, `health_exprs`); `discovery`, `desired`, `validate`,
//! `live`, `applier`, `prune`, `store`, `reconcile` and `health::wait` do the I/O.

pub mod applier;
pub mod changeset;
pub mod contents;
pub mod desired;
pub mod diff;
pub mod discovery;
pub mod handoff;
pub mod health;
pub mod health_exprs;
pub mod inventory;
mod live;
mod manifest;
pub mod order;
pub mod plan;
pub mod prune;
pub mod reconcile;
pub mod store;
pub mod unchanged;
pub mod validate;
