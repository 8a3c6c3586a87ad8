//! The Git source: fetching repositories, choosing revisions, storing artifacts and verifying
//! signatures. The submodules say which of them do I/O.

pub mod artifact;
pub mod controller;
pub mod export;
pub mod ignore;
pub mod orphans;
pub mod revision;
pub mod status;
pub mod sync;
pub mod verify;
