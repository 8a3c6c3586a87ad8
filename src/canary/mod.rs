//! The canary analyzer: progressive delivery of Deployments that a `Canary` targets. Pure parts:
//! `spec` (settings from a Canary's spec), `machine` (the analysis as a state machine), `alerts`
//! (which of `analysis.alerts` hear an Event), `revision` (what counts as a new revision),
//! `objects` (the generated primary, autoscaler and Services), `report` (what a rollback writes
//! into Git). I/O: `controller` (the Canary controller), `router/` (one file per traffic
//! provider), `metrics/` (one file per metric provider), `webhooks`, `handoff` (what the applier
//! tells the analyzer and asks it), `cluster` (the analyzer's own writes), `report::write` (the
//! Git writes of a report).
pub mod alerts;
pub mod cluster;
pub mod controller;
pub mod execute;
pub mod handoff;
pub mod machine;
pub mod metrics;
pub mod objects;
pub mod observe;
pub mod report;
pub mod revision;
pub mod router;
pub mod spec;
pub mod status;
pub mod webhooks;
pub mod workload;
