//! Where an owner's inventory is kept between runs. One trait, one implementation per place:
//! a ConfigMap for the CLI here; the Kustomization's status for the agent. Does I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use super::inventory::Inventory;
use super::plan::FIELD_MANAGER;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading the inventory {what} failed")]
    Read {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("the inventory in {what} is not valid JSON")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing the inventory {what} failed")]
    Write {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
}

pub trait InventoryStore {
    fn load(&self) -> impl Future<Output = Result<Inventory, StoreError>> + Send;
    fn save(&self, inventory: &Inventory) -> impl Future<Output = Result<(), StoreError>> + Send;
}

const KEY: &str = "inventory.json";

/// The inventory of `sluice apply --name NAME` in ConfigMap `sluice-inventory-NAME`.
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    name: String,
    what: String,
}

impl ConfigMapStore {
    pub fn new(client: Client, namespace: &str, owner_name: &str) -> ConfigMapStore {
        let name = format!("sluice-inventory-{owner_name}");
        let what = format!("ConfigMap {namespace}/{name}");
        ConfigMapStore {
            api: Api::namespaced(client, namespace),
            name,
            what,
        }
    }
}

impl InventoryStore for ConfigMapStore {
    async fn load(&self) -> Result<Inventory, StoreError> {
        let found = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| StoreError::Read {
                what: self.what.clone(),
                source: Box::new(source),
            })?;
        let Some(text) = found
            .and_then(|cm| cm.data)
            .and_then(|mut data| data.remove(KEY))
        else {
            return Ok(Inventory::default());
        };
        serde_json::from_str(&text).map_err(|source| StoreError::Decode {
            what: self.what.clone(),
            source,
        })
    }

    async fn save(&self, inventory: &Inventory) -> Result<(), StoreError> {
        let config_map = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".into(),
                    "sluice".into(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                KEY.to_string(),
                serde_json::to_string(inventory).expect("inventories serialize"),
            )])),
            ..Default::default()
        };
        let mut value = serde_json::to_value(&config_map).expect("ConfigMaps serialize");
        value["apiVersion"] = "v1".into();
        value["kind"] = "ConfigMap".into();
        self.api
            .patch(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&value),
            )
            .await
            .map_err(|source| StoreError::Write {
                what: self.what.clone(),
                source: Box::new(source),
            })?;
        Ok(())
    }
}
