//! The agent's inventory store: a Kustomization's `status.inventory`. Does I/O (the status
//! subresource of one Kustomization).

use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::api::kustomization::Kustomization;
use crate::apply::inventory::Inventory;
use crate::apply::store::{InventoryStore, StoreError};

pub struct StatusStore {
    api: Api<Kustomization>,
    name: String,
    what: String,
}

impl StatusStore {
    pub fn new(api: Api<Kustomization>, namespace: &str, name: &str) -> StatusStore {
        StatusStore {
            api,
            name: name.into(),
            what: format!("status of Kustomization {namespace}/{name}"),
        }
    }
}

impl InventoryStore for StatusStore {
    async fn load(&self) -> Result<Inventory, StoreError> {
        let found = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| StoreError::Read {
                what: self.what.clone(),
                source: Box::new(source),
            })?;
        Ok(found
            .and_then(|k| k.status)
            .and_then(|s| s.inventory)
            .unwrap_or_default())
    }

    async fn save(&self, inventory: &Inventory) -> Result<(), StoreError> {
        let patch = serde_json::json!({ "status": { "inventory": inventory } });
        self.api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| StoreError::Write {
                what: self.what.clone(),
                source: Box::new(source),
            })?;
        Ok(())
    }
}
