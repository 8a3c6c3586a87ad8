//! Rendering manifests without kustomize: a plain directory of YAML/JSON files or a
//! kustomization (a subset, with kustomize 5 semantics), then the Flux Kustomization extras and
//! post-build substitution. Pure apart from reading files under a given source root.

mod builtin;
mod config;
mod fieldspec;
mod flux;
mod generate;
mod generator;
mod gojson;
mod kustomization;
mod kustomize;
mod nameref;
mod object;
mod order;
mod patch;
mod plain;
mod replacement;
mod selector;
mod smp;
mod source;
mod substitute;
mod transform;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use flux::{FluxOptions, from_spec as flux_options_from_spec};
pub use kustomization::{ImageSpec, PatchSpec, TargetSpec};
pub use object::{Loc, Object, ObjectKey};
pub use order::apply_order;
pub use substitute::substitute_text;
pub use transform::split_image;
pub use yaml::{to_yaml, to_yaml_stream};

/// Everything a build can fail on; each variant names the step and where (file and line).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{at}: {source}")]
    Read {
        at: Loc,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Parse { at: Loc, message: String },
    #[error("{at}: {message}")]
    NotAnObject { at: Loc, message: String },
    #[error("{at}: {message}")]
    Kustomization { at: Loc, message: String },
    #[error("{at}: field `{field}` is not supported by sluice{}", hint(.detail))]
    Unsupported {
        at: Loc,
        field: String,
        detail: String,
    },
    #[error("{at}: {path} is outside the source root {root}")]
    OutsideRoot { at: Loc, path: String, root: String },
    #[error("{at}: {path} is not in or below {dir} (kustomize load restrictions)")]
    Restricted { at: Loc, path: String, dir: String },
    #[error("{at}: file is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { at: Loc, size: u64, limit: u64 },
    #[error("{at}: {message}")]
    Duplicate { at: Loc, message: String },
    #[error("{at}: {message}")]
    Patch { at: Loc, message: String },
    #[error("{at}: {message}")]
    Generate { at: Loc, message: String },
    #[error("{at}: {message}")]
    Transform { at: Loc, message: String },
    #[error("{at}: {message}")]
    Substitute { at: Loc, message: String },
    #[error("{at}: cycle: {}", .chain.join(" -> "))]
    Cycle { at: Loc, chain: Vec<String> },
    #[error("{at}: the build is over its limit of {cap}")]
    Limit { at: Loc, cap: Cap },
}

/// A cap of one build that was reached, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Objects(usize),
    Bytes(u64),
    Time(Duration),
    Depth(usize),
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Objects(n) => write!(f, "{n} objects"),
            Cap::Bytes(n) => write!(f, "{n} bytes read"),
            Cap::Time(d) => write!(f, "{}s of build time", d.as_secs_f64()),
            Cap::Depth(n) => write!(f, "{n} nested directories or kustomizations"),
        }
    }
}

fn hint(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl BuildError {
    /// The file and line the error is about.
    pub fn location(&self) -> &Loc {
        match self {
            BuildError::Read { at, .. }
            | BuildError::Parse { at, .. }
            | BuildError::NotAnObject { at, .. }
            | BuildError::Kustomization { at, .. }
            | BuildError::Unsupported { at, .. }
            | BuildError::OutsideRoot { at, .. }
            | BuildError::Restricted { at, .. }
            | BuildError::TooLarge { at, .. }
            | BuildError::Patch { at, .. }
            | BuildError::Generate { at, .. }
            | BuildError::Transform { at, .. }
            | BuildError::Substitute { at, .. }
            | BuildError::Cycle { at, .. }
            | BuildError::Limit { at, .. }
            | BuildError::Duplicate { at, .. } => at,
        }
    }
}

/// The default largest file a build reads.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 32 * 1024 * 1024;

/// The caps of one build, so that no repository can make a build run away with the agent's
/// memory or time. Reaching one is an error that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Objects rendered (files' objects as they are read, and the final set).
    pub max_objects: usize,
    /// Bytes of all files read together.
    pub max_bytes: u64,
    /// Wall-clock time of the whole build, checked at every file and directory read.
    pub max_time: Duration,
    /// Directories nested in a plain directory, and kustomizations (resources and components)
    /// included in one another.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_objects: 20_000,
            max_bytes: 256 * 1024 * 1024,
            max_time: Duration::from_secs(120),
            max_depth: 64,
        }
    }
}

/// How to build: limits, and the Flux Kustomization fields applied on top of the directory.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Files larger than this are an error.
    pub max_file_size: u64,
    /// Caps of the whole build.
    pub limits: Limits,
    /// Flux Kustomization extras (targetNamespace, prefix/suffix, patches, images, commonMetadata).
    pub flux: FluxOptions,
    /// postBuild.substitute and the resolved postBuild.substituteFrom, merged by the caller
    /// (`substitute` wins over `substituteFrom`, as in Flux). None: no postBuild substitution.
    pub substitute: Option<BTreeMap<String, String>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            limits: Limits::default(),
            flux: FluxOptions::default(),
            substitute: None,
        }
    }
}

/// Parses the text of a manifest file into objects, as files are read during a build (`List`s
/// flattened, empty documents skipped). `file` names the text in errors.
pub fn parse_manifests(text: &str, file: &str) -> Result<Vec<Object>, BuildError> {
    let mut out = Vec::new();
    for doc in yaml::parse(text, file)? {
        plain::push_objects(doc.value, &Loc::new(file, doc.line), &mut out)?;
    }
    Ok(out.into_iter().map(|r| r.obj).collect())
}

/// Applies a patch (strategic merge mapping(s) or a JSON 6902 list, as text) to one object, as a
/// `patches` entry whose target selects it. Returns the object, or nothing when the patch deletes it.
pub fn apply_patch(object: &Object, patch_text: &str) -> Result<Option<Object>, BuildError> {
    let at = Loc::new("(patch)", 1);
    let content = patch::parse(patch_text, &at)?;
    let mut resources = vec![object::Resource::new(
        object.clone(),
        Loc::new("(object)", 1),
    )];
    let target = TargetSpec::default();
    patch::apply(
        &mut resources,
        &content,
        Some(&target),
        &Default::default(),
        &at,
    )?;
    Ok(resources.pop().map(|r| r.obj))
}

/// Carries out `replacements` (YAML text: one replacement or a list, as in a kustomization's
/// replacement file) on objects, as a kustomization's `replacements` field does.
pub fn apply_replacements(objects: &[Object], text: &str) -> Result<Vec<Object>, BuildError> {
    let at = Loc::new("(replacements)", 1);
    let list = replacement::parse_list(text, &at.file)?;
    let mut resources: Vec<object::Resource> = objects
        .iter()
        .map(|o| object::Resource::new(o.clone(), Loc::new("(object)", 1)))
        .collect();
    for (i, r) in list.iter().enumerate() {
        replacement::apply(&mut resources, r)
            .map_err(|failure| failure.into_error(at.clone(), i))?;
    }
    Ok(resources.into_iter().map(|r| r.obj).collect())
}

/// Renders the directory `path` (inside `root`) into objects. Kustomization directories follow
/// kustomize 5; a directory without a kustomization file is read recursively as plain manifests.
/// The Flux extras are merged into the top kustomization as Flux does, then variables are
/// substituted. The result is in kustomize's order; use [`apply_order`] to sort for applying.
pub fn render(root: &Path, path: &Path, opts: &BuildOptions) -> Result<Vec<Object>, BuildError> {
    let source = source::Source::new(root, opts.max_file_size, opts.limits)?;
    let top = if path.is_absolute() {
        path.to_path_buf()
    } else {
        source.root().join(path)
    };
    let at = Loc::new("(build)", 0);
    let top = source.resolve(&top, &at)?;
    if !top.is_dir() {
        return Err(BuildError::Kustomization {
            at: source.loc(&top, 0),
            message: "expected a directory to build".into(),
        });
    }
    let resources = kustomize::build_top(&source, &top, &opts.flux)?;
    // Generators and patches make objects too: the final set is held to the same cap.
    if resources.len() > opts.limits.max_objects {
        return Err(BuildError::Limit {
            at: source.loc(&top, 0),
            cap: Cap::Objects(opts.limits.max_objects),
        });
    }
    let mut objects = Vec::with_capacity(resources.len());
    for res in resources {
        match &opts.substitute {
            Some(vars) => objects.push(substitute::apply(res.obj, &res.loc, vars)?),
            None => objects.push(res.obj),
        }
    }
    Ok(objects)
}
