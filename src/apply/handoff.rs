//! What the applier tells another controller of the same process and asks it, without knowing
//! it: the canary analyzer implements `Handoff` (in `canary/`) and `cli/agent.rs` wires it in.
//! The applier leaves the fields that controller owns alone, tells it at once what it applied,
//! and lets it judge the health of what it manages. No I/O here.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::health::Health;
use super::inventory::ObjectId;

pub trait Handoff: Send + Sync {
    /// The field manager whose fields of `id` the applier leaves alone on update (where they
    /// differ from the manifest): another controller's, for objects it manages; `None` for the
    /// rest.
    fn yields_to(&self, id: &ObjectId) -> Option<&'static str>;

    /// The applier handled `id`: `desired` as built, `written` the API server's answer when the
    /// apply wrote it (`None` when nothing changed), and the source revision it applied, if any.
    fn handed(
        &self,
        id: &ObjectId,
        desired: &Value,
        written: Option<&Value>,
        revision: Option<&str>,
    );

    /// The health of `live` when that controller decides it.
    fn health(&self, id: &ObjectId, live: &Value) -> Option<Health>;
}

/// A shared `Handoff` that `ApplyOptions` can carry (cloned, printed).
#[derive(Clone)]
pub struct HandoffRef(pub Arc<dyn Handoff>);

impl fmt::Debug for HandoffRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handoff")
    }
}

impl std::ops::Deref for HandoffRef {
    type Target = dyn Handoff;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
