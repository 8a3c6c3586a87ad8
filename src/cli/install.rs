//! `sluice install`: puts the agent (and the CRDs) into a cluster, cluster-wide or for one
//! namespace, and waits until it is Ready, saying what it does as it goes; with `--export`, only
//! prints the manifests. Refuses (changing nothing) when an agent already there would conflict.
//! Talks to the API server.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::api::duration;
use crate::apply::applier::{Applier, ApplyOptions};
use crate::install::conflict::{self, Existing};
use crate::install::{self, APP_SELECTOR, DEPLOYMENT, MODE_LABEL, Mode, Options};

/// Arguments of `sluice install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Namespace of the agent (and, in namespace mode, the only one it reconciles).
    #[arg(long, short = 'n', default_value = install::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// `cluster`: one agent for every namespace (ClusterRoleBinding to cluster-admin);
    /// `namespace`: an agent for its own namespace only (a Role there; CRDs must be installable
    /// or installed).
    #[arg(long, value_enum, default_value_t = Mode::Cluster)]
    pub mode: Mode,
    /// Print the manifests instead of applying them.
    #[arg(long)]
    pub export: bool,
    /// The agent's image (build it from the Dockerfile and push it where the cluster pulls from).
    #[arg(long, default_value = concat!("sluice:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Secret for pulling the image (repeatable).
    #[arg(long = "image-pull-secret")]
    pub image_pull_secrets: Vec<String>,
    /// Replicas; more than one take turns through leader election.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// Node label the agent's Pods must match, KEY=VALUE (repeatable).
    #[arg(long = "node-selector", value_parser = key_value)]
    pub node_selector: Vec<(String, String)>,
    /// Toleration of the agent's Pods, KEY[=VALUE]:EFFECT (repeatable).
    #[arg(long = "toleration")]
    pub tolerations: Vec<String>,
    /// Extra argument of `sluice agent` (repeatable), e.g. `--agent-arg=--log-level=debug`.
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
    /// How long to wait for the agent to be Ready.
    #[arg(long, default_value = "5m", value_parser = duration::parse)]
    pub timeout: Duration,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options {
        mode: args.mode,
        namespace: args.namespace.clone(),
        image: args.image.clone(),
        replicas: args.replicas,
        image_pull_secrets: args.image_pull_secrets.clone(),
        node_selector: args.node_selector.clone(),
        tolerations: args.tolerations.clone(),
        agent_args: args.agent_args.clone(),
    };
    let objects = install::render(&options)?;
    if args.export {
        print!(
            "{}",
            crate::build::to_yaml_stream(&objects).map_err(anyhow::Error::msg)?
        );
        return Ok(ExitCode::SUCCESS);
    }

    let ns = args.namespace.as_str();
    let mode = args.mode.as_str();
    let client = Client::try_default().await?;
    step(&format!(
        "installing sluice {} ({mode} mode) into namespace {ns}, image {}",
        env!("CARGO_PKG_VERSION"),
        args.image
    ));
    let existing = existing_agents(&client, ns).await?;
    if let Err(why) = conflict::check(args.mode, ns, &existing) {
        bail!("refusing to install: {why}; nothing was changed");
    }
    let upgrade = existing.iter().any(|a| a.namespace == ns);
    done(if upgrade {
        "an agent of the same mode is there: upgrading it"
    } else {
        "no conflicting agent"
    });
    if args.mode == Mode::Namespace {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        if let Ok(None) = namespaces.get_opt(ns).await {
            bail!(
                "namespace {ns} does not exist: a namespace-mode agent is installed into an existing namespace"
            );
        }
    }

    step(&format!("applying {} objects", objects.len()));
    let applier = Applier::new(client.clone());
    let options = ApplyOptions {
        crd_timeout: args.timeout,
        ..Default::default()
    };
    match applier.apply(objects, &options).await {
        Ok(changeset) => {
            for line in changeset.to_string().lines() {
                eprintln!("  {line}");
            }
        }
        Err(failure) => {
            for line in failure.changeset.to_string().lines() {
                eprintln!("  {line}");
            }
            return Err(failure.error).context("applying the install manifests");
        }
    }
    done("applied");

    step(&format!(
        "waiting for Deployment {ns}/{DEPLOYMENT} to be ready"
    ));
    wait_ready(&client, ns, args.timeout).await?;
    Ok(ExitCode::SUCCESS)
}

fn step(message: &str) {
    eprintln!("► {message}");
}

fn done(message: &str) {
    eprintln!("✔ {message}");
}

/// The agents in the cluster, or in `ns` only when listing every namespace is not allowed.
async fn existing_agents(client: &Client, ns: &str) -> anyhow::Result<Vec<Existing>> {
    let selector = ListParams::default().labels(APP_SELECTOR);
    let listed = match Api::<Deployment>::all(client.clone()).list(&selector).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            Api::<Deployment>::namespaced(client.clone(), ns)
                .list(&selector)
                .await
                .with_context(|| format!("listing Deployments in {ns}"))?
                .items
        }
        Err(e) => return Err(e).context("listing Deployments"),
    };
    // An agent being deleted is on its way out, not a conflict.
    let mut existing: Vec<Existing> = listed
        .iter()
        .filter(|d| d.name_any() == DEPLOYMENT && d.metadata.deletion_timestamp.is_none())
        .map(|d| Existing {
            namespace: d.namespace().unwrap_or_default(),
            mode: d.labels().get(MODE_LABEL).and_then(|m| Mode::parse(m)),
        })
        .collect();
    // A Deployment of the agent's name without its labels: someone else's.
    let theirs = |d: &Deployment| {
        d.metadata.deletion_timestamp.is_none() && !d.labels().contains_key(MODE_LABEL)
    };
    if Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(DEPLOYMENT)
        .await
        .with_context(|| format!("reading Deployment {ns}/{DEPLOYMENT}"))?
        .is_some_and(|d| theirs(&d))
    {
        existing.push(Existing {
            namespace: ns.into(),
            mode: None,
        });
    }
    Ok(existing)
}

/// Polls the agent's Deployment until every replica is updated and available, saying what
/// changes (and what its Pods wait for) as it goes.
async fn wait_ready(client: &Client, ns: &str, timeout: Duration) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut said = String::new();
    loop {
        let d = deployments
            .get(DEPLOYMENT)
            .await
            .with_context(|| format!("reading Deployment {ns}/{DEPLOYMENT}"))?;
        let want = d.spec.replicas.unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        let current = status.observed_generation >= d.metadata.generation;
        let updated = status.updated_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let total = status.replicas.unwrap_or(0);
        if current && updated == want && available == want && total == want {
            done(&format!(
                "sluice is ready ({available}/{want} replicas available)"
            ));
            return Ok(());
        }
        let waiting = pod_states(&pods).await;
        let now = format!("{available}/{want} available, {updated} updated{waiting}");
        if now != said {
            eprintln!("◎ {now}");
            said = now;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the agent was not ready within {timeout:?}: {said}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What the agent's Pods wait for (e.g. `ImagePullBackOff`), for the progress line.
async fn pod_states(pods: &Api<Pod>) -> String {
    let Ok(list) = pods.list(&ListParams::default().labels(APP_SELECTOR)).await else {
        return String::new();
    };
    let states: Vec<String> = list
        .items
        .iter()
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let waiting = status
                .container_statuses
                .iter()
                .flatten()
                .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
            let phase = status.phase.clone().unwrap_or_default();
            Some(format!("{} {}", pod.name_any(), waiting.unwrap_or(phase)))
        })
        .collect();
    if states.is_empty() {
        String::new()
    } else {
        format!("; pods: {}", states.join(", "))
    }
}
