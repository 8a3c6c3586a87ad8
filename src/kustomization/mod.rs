//! The Kustomization controller and its pure parts: `status` (what the status becomes),
//! `changes` (what an apply and prune amount to, a failed prune included), `depends`
//! (dependency readiness and cycles), `tenancy` (identity and namespace rules), `deletion` (what
//! deleting one does to what it applied); `store` keeps the inventory in the status, and
//! `controller` does the I/O.

pub mod changes;
pub mod controller;
pub mod deletion;
pub mod depends;
pub mod status;
pub mod store;
pub mod tenancy;
