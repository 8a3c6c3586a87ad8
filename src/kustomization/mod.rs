//! The Kustomization controller and its pure parts: `status` (what the status becomes),
//! `depends` (dependency readiness and cycles), `tenancy` (identity and namespace rules); `store` keeps the inventory in the status, and
//! `controller` does the I/O.

pub mod controller;
pub mod depends;
pub mod status;
pub mod store;
pub mod tenancy;
