//! Test harnesses shared by the integration tests.

pub mod git_servers;
pub mod git_signing;
