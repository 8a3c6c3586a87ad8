//! Custom resource types of the `sluice.dev` API group. Types only: no I/O.

pub mod condition;
pub mod duration;
pub mod git_repository;
pub mod kustomization;

/// The API group of every sluice kind.
pub const GROUP: &str = "sluice.dev";
/// Annotation whose change forces an immediate reconcile.
pub const REQUESTED_AT_ANNOTATION: &str = "sluice.dev/requestedAt";

/// A reference to an object in the same namespace.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct LocalObjectReference {
    pub name: String,
}
