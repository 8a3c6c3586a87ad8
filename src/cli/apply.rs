//! `sluice apply DIR --name N`: one reconcile of a local directory, as the agent does for a
//! Kustomization: render, validate the whole set with a server-side dry run, apply in stages,
//! prune what left (with `--prune`), optionally wait for health, and print the ChangeSet. The
//! inventory lives in ConfigMap `sluice-inventory-N` in `--namespace`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use crate::api::duration;
use crate::apply::applier::{Applier, ApplyOptions, Owner};
use crate::apply::health;
use crate::apply::inventory::ObjectId;
use crate::apply::reconcile::{ReconcileError, ReconcileOptions, reconcile};
use crate::apply::store::ConfigMapStore;

/// Arguments of `sluice apply`.
#[derive(Debug, clap::Args)]
#[group(id = "apply")]
pub struct Args {
    #[command(flatten)]
    pub render: super::build::Args,

    #[command(flatten)]
    pub owner: OwnerArgs,

    /// Delete objects applied before under this name that are no longer in DIR.
    #[arg(long)]
    pub prune: bool,

    /// With --prune, allow an empty DIR to delete everything applied before.
    #[arg(long)]
    pub allow_empty: bool,

    /// Recreate objects whose immutable fields changed.
    #[arg(long)]
    pub force: bool,

    /// Wait until every applied object is healthy.
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits (and CRDs may take to be Established), e.g. 90s or 5m.
    #[arg(long, default_value = "5m", value_parser = duration::parse)]
    pub timeout: Duration,

    /// API requests the applier keeps in flight at once (dry runs, reads, applies).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// Who owns the applied objects: `sluice apply` and `sluice diff` name the set alike.
#[derive(Debug, clap::Args)]
pub struct OwnerArgs {
    /// Name of this set of objects: the owner label on every object and the inventory's name.
    #[arg(long)]
    pub name: String,

    /// Namespace of the inventory ConfigMap (and the owner label's namespace).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
}

impl OwnerArgs {
    pub fn owner(&self) -> Owner {
        Owner {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// The ConfigMap holding this set's inventory.
    pub fn store(&self, client: kube::Client) -> ConfigMapStore {
        ConfigMapStore::new(client, &self.namespace, &self.name)
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let objects = match super::build::render_objects(&args.render)? {
        Ok(objects) => objects,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::from(1));
        }
    };
    let objects: Vec<_> = objects.into_iter().map(|o| o.into_value()).collect();
    let client = kube::Client::try_default().await?;
    let applier = Applier::new(client.clone());
    let store = args.owner.store(client.clone());
    let options = ReconcileOptions {
        apply: ApplyOptions {
            force: args.force,
            crd_timeout: args.timeout,
            concurrency: args.concurrency.into(),
            ..Default::default()
        },
        owner: args.owner.owner(),
        prune: args.prune,
        allow_empty: args.allow_empty,
    };
    let report = match reconcile(&applier, &store, objects, &options).await {
        Ok(report) => report,
        Err(ReconcileError::Apply(failure)) => {
            print!("{}", failure.changeset);
            return Err(failure.error.into());
        }
        Err(err) => return Err(err.into()),
    };
    print!("{}{}", report.applied, report.pruned);
    for entry in &report.unreadable {
        eprintln!(
            "warning: inventory entry {:?} cannot be read; it stays in the inventory and nothing was pruned for it",
            entry.id
        );
    }
    // A deletion the server refused leaves the object in the inventory (the next run tries it
    // again), and the command fails like a refused apply does.
    let refused = report.pruned.failures();
    if !refused.is_empty() {
        anyhow::bail!(
            "{} object(s) could not be pruned and stay in the inventory: {}",
            refused.len(),
            refused.join("; ")
        );
    }

    if args.wait {
        let ids: Vec<(ObjectId, String)> = report.applied_objects();
        let terminal = std::io::stderr().is_terminal();
        let progress = |waiting: &[String]| {
            if terminal {
                eprintln!(
                    "waiting for {} object(s): {}",
                    waiting.len(),
                    waiting.join("; ")
                );
            } else {
                tracing::info!(waiting = waiting.len(), first = %waiting[0], "waiting for health");
            }
        };
        health::wait(&client, applier.discovery(), &ids, args.timeout, progress).await?;
        eprintln!("all {} object(s) are healthy", ids.len());
    }
    Ok(ExitCode::SUCCESS)
}
