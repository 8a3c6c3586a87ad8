//! `sluice diff DIR --name N`: what `sluice apply` would change, from a server-side dry run,
//! including what `--prune` would delete; Secret values are masked. Exit 0 when nothing would
//! change, 1 when something would, 2 or more on errors (like `flux diff kustomization`).

use std::process::ExitCode;

use crate::apply::applier::{Applier, ApplyOptions};
use crate::apply::changeset::Action;
use crate::apply::diff::render;
use crate::apply::store::InventoryStore;

/// Arguments of `sluice diff`.
#[derive(Debug, clap::Args)]
#[group(id = "diff")]
pub struct Args {
    #[command(flatten)]
    pub render: super::build::Args,

    /// The set, as named to `sluice apply`.
    #[command(flatten)]
    pub owner: super::apply::OwnerArgs,

    /// Also show what pruning would delete.
    #[arg(long)]
    pub prune: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let objects = match super::build::render_objects(&args.render)? {
        Ok(objects) => objects,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::from(2));
        }
    };
    let objects: Vec<_> = objects.into_iter().map(|o| o.into_value()).collect();
    let client = kube::Client::try_default().await?;
    let applier = Applier::new(client.clone());
    let owner = args.owner.owner();
    let next = applier.inventory_of(&objects).await?;
    let options = ApplyOptions {
        owner: Some(owner),
        ..Default::default()
    };
    let previews = applier.preview(objects, &options).await?;

    let mut changes = 0;
    for preview in &previews {
        match preview.action {
            Action::Created | Action::Configured => {
                changes += 1;
                println!(
                    "► {} {}",
                    preview.id,
                    if preview.action == Action::Created {
                        "created"
                    } else {
                        "drifted"
                    }
                );
                print!(
                    "{}",
                    render(&preview.id, preview.live.as_ref(), &preview.merged)
                );
            }
            _ => {}
        }
    }
    if args.prune {
        let previous = args.owner.store(client).load().await?;
        for entry in previous.stale_against(&next) {
            if let Some(id) = entry.object_id() {
                changes += 1;
                println!("► {id} deleted");
            }
        }
    }
    Ok(if changes == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
