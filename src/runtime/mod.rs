//! What every controller and the CLI share: the controller scaffold (`controller`, with its
//! `schedule`, `trigger` and typed `conditions`), what a controller last wrote (`written`),
//! Events, logging, crash points, the cross-namespace rule (`references`) and text for people.

pub mod conditions;
pub mod controller;
pub mod crash;
pub mod events;
pub mod finalizer;
pub mod http;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod references;
pub mod schedule;
pub mod server;
pub mod text;
pub mod trigger;
pub mod window;
pub mod written;
