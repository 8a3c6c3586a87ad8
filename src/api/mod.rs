//! Custom resource types of the `sluice.dev` API group. Types only: no I/O.

pub mod canary;
pub mod condition;
pub mod duration;
pub mod git_repository;
pub mod image_policy;
pub mod image_repository;
pub mod image_update_automation;
pub mod inventory;
pub mod kustomization;
pub mod notification;
pub mod window;

/// The API group of every sluice kind.
pub const GROUP: &str = "sluice.dev";
/// Annotation whose change forces an immediate reconcile; the value acted on is reported as
/// `status.lastHandledReconcileAt`.
pub const REQUESTED_AT_ANNOTATION: &str = "sluice.dev/requestedAt";
/// Flux's spelling of `REQUESTED_AT_ANNOTATION` (what `flux reconcile` sets), honoured the same way.
pub const FLUX_REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

/// The finalizer sluice's controllers keep on objects they clean up after.
pub const FINALIZER: &str = "finalizers.sluice.dev";

/// A reference to an object in the same namespace.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct LocalObjectReference {
    pub name: String,
}

#[cfg(test)]
mod tests {
    /// `api/` is the leaf every other module builds on: it must not import from them.
    #[test]
    fn api_imports_nothing_else_from_the_crate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(concat!("crate", "::")),
                "{} imports from the rest of the crate",
                path.display()
            );
        }
    }
}
