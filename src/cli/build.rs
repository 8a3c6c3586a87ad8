//! `sluice build DIR`: renders a directory the way the agent will (kustomization subset, Flux
//! Kustomization extras, post-build substitution) and prints it. Reads files only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::build::{self, BuildOptions, ImageSpec, Object};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

/// Arguments of `sluice build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to render: a kustomization or a directory of manifests.
    pub dir: PathBuf,

    /// Nothing outside this directory may be read (default: the enclosing Git work tree, or DIR).
    #[arg(long)]
    pub root: Option<PathBuf>,

    /// Output format: multi-document YAML, or a JSON `v1 List`.
    #[arg(long, short, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,

    /// Largest file read, in bytes.
    #[arg(long, default_value_t = build::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,

    /// A Flux or sluice Kustomization (YAML) whose spec fields to apply: targetNamespace,
    /// namePrefix, nameSuffix, patches, images, commonMetadata, postBuild.substitute.
    #[arg(long, value_name = "FILE")]
    pub kustomization: Option<PathBuf>,

    /// Set the namespace of every namespaced object (Flux `targetNamespace`).
    #[arg(long, value_name = "NAMESPACE")]
    pub set_namespace: Option<String>,

    /// Prefix every object's name (Flux `namePrefix`).
    #[arg(long)]
    pub name_prefix: Option<String>,

    /// Suffix every object's name (Flux `nameSuffix`).
    #[arg(long)]
    pub name_suffix: Option<String>,

    /// Replace an image: NAME=NEW_NAME[:TAG][@DIGEST] (Flux `images`).
    #[arg(long, value_name = "NAME=IMAGE")]
    pub image: Vec<String>,

    /// Add a label to every object's metadata (Flux `commonMetadata.labels`).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,

    /// Add an annotation to every object (Flux `commonMetadata.annotations`).
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,

    /// Substitute ${KEY} with VALUE after the build (Flux `postBuild.substitute`).
    #[arg(long, value_name = "KEY=VALUE")]
    pub substitute: Vec<String>,
}

fn pair(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("{what} {s:?} is not KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

fn image(s: &str) -> anyhow::Result<ImageSpec> {
    let (name, new) = pair(s, "--image")?;
    let (new_name, tag, digest) = build::split_image(&new);
    let owned = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    Ok(ImageSpec {
        name,
        new_name: owned(Some(new_name)),
        new_tag: owned(tag),
        digest: owned(digest),
        tag_suffix: None,
    })
}

/// The enclosing Git work tree of `dir`, if any.
fn git_work_tree(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

fn options(args: &Args) -> anyhow::Result<BuildOptions> {
    let mut opts = BuildOptions {
        max_file_size: args.max_file_size,
        ..Default::default()
    };
    if let Some(file) = &args.kustomization {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let doc: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let spec = doc.get("spec").unwrap_or(&doc);
        let (flux, vars) = build::flux_options_from_spec(spec)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        opts.flux = flux;
        opts.substitute = vars;
    }
    let f = &mut opts.flux;
    f.target_namespace = args.set_namespace.clone().or(f.target_namespace.take());
    f.name_prefix = args.name_prefix.clone().or(f.name_prefix.take());
    f.name_suffix = args.name_suffix.clone().or(f.name_suffix.take());
    for s in &args.image {
        f.images.push(image(s)?);
    }
    for s in &args.label {
        let (k, v) = pair(s, "--label")?;
        f.common_labels.insert(k, v);
    }
    for s in &args.annotation {
        let (k, v) = pair(s, "--annotation")?;
        f.common_annotations.insert(k, v);
    }
    if !args.substitute.is_empty() {
        let vars = opts.substitute.get_or_insert_with(BTreeMap::new);
        for s in &args.substitute {
            let (k, v) = pair(s, "--substitute")?;
            vars.insert(k, v);
        }
    }
    Ok(opts)
}

/// Renders objects as text in the chosen format.
pub fn render_output(objects: &[Object], output: Output) -> anyhow::Result<String> {
    let values: Vec<Value> = objects.iter().map(|o| o.value().clone()).collect();
    Ok(match output {
        Output::Yaml => build::to_yaml_stream(&values).map_err(anyhow::Error::msg)?,
        Output::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values});
            serde_json::to_string_pretty(&list)? + "\n"
        }
    })
}

/// Renders DIR as `sluice build` does, in apply order: the outer error is about the arguments,
/// the inner one about the input (file and line).
pub(super) fn render_objects(
    args: &Args,
) -> anyhow::Result<Result<Vec<Object>, build::BuildError>> {
    let opts = options(args)?;
    let root = match &args.root {
        Some(r) => r.clone(),
        None => git_work_tree(&args.dir).unwrap_or_else(|| args.dir.clone()),
    };
    let dir = std::env::current_dir()?.join(&args.dir);
    Ok(build::render(&root, &dir, &opts).map(|mut objects| {
        build::apply_order(&mut objects);
        objects
    }))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match render_objects(&args)? {
        Ok(objects) => {
            print!("{}", render_output(&objects, args.output)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{err}");
            Ok(ExitCode::from(1))
        }
    }
}
