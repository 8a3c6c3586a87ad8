//! The Git source: fetching repositories, choosing revisions, storing artifacts and verifying
//! signatures. The submodules say which of them do I/O.

pub mod artifact;
pub mod controller;
pub mod credentials;
pub mod git;
pub mod ignore;
pub mod known_hosts;
pub mod orphans;
pub mod revision;
pub mod semver_range;
pub mod status;
pub mod sync;
pub mod url;
pub mod verify;
