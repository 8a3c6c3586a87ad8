//! Rendering a kustomization directory with kustomize 5's order of steps: resources, generators,
//! components, transformers; then, at the top only, hash suffixes and name references. Reads
//! files through [`Source`] only.

use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};

use hashbrown::HashTable;

use super::builtin;
use super::config::{self, TransformerConfig};
use super::fieldspec;
use super::flux::FluxOptions;
use super::generator;
use super::kustomization::{self, FILE_NAMES, Kustomization, PatchOptions, PatchSpec};
use super::nameref;
use super::object::{Loc, Resource};
use super::patch;
use super::plain;
use super::source::{Source, is_within};
use super::transform::{self, SubjectMode};
use super::{BuildError, Cap};

/// A kustomization file being rendered: where it is and its text, for messages.
pub(crate) struct KFile {
    pub dir: PathBuf,
    pub file: String,
    pub text: String,
}

impl KFile {
    /// The location of the first line mentioning `needle` (the file when none does).
    pub fn at(&self, needle: &str) -> Loc {
        let line = self
            .text
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i as u64 + 1)
            .unwrap_or(0);
        Loc::new(&self.file, line)
    }
}

pub(crate) struct Ctx<'a> {
    pub src: &'a Source,
    /// The kustomizations being rendered, outermost first: (directory, file as shown). Every kind
    /// of include (resources, bases, components) is on it, so a cycle through any of them is
    /// found, and its length is capped.
    stack: Vec<(PathBuf, String)>,
    /// The transformer configuration of each kustomization being rendered, innermost last:
    /// its own `configurations` and those of everything it included so far.
    configs: Vec<TransformerConfig>,
}

fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.starts_with("github.com/")
        || entry.contains("?ref=")
}

/// Renders the top directory: a kustomization, or a plain directory of manifests.
pub fn build_top(
    src: &Source,
    dir: &Path,
    flux: &FluxOptions,
) -> Result<Vec<Resource>, BuildError> {
    let mut ctx = Ctx {
        src,
        stack: vec![(dir.to_path_buf(), src.display(dir))],
        configs: vec![TransformerConfig::default()],
    };
    let mut acc = Vec::new();
    match ctx.find(dir)? {
        Some(kf) => {
            ctx.stack[0].1 = kf.file.clone();
            // A Component at the top renders like a Kustomization, as kustomize does.
            let mut k = kustomization::parse(&kf.text, &kf.file)?;
            flux.merge_into(&mut k);
            ctx.accumulate(&kf, &k, &mut acc)?;
        }
        None => {
            let found = plain::read_dir(src, dir, &mut |sub| ctx.build_if_kustomization(sub))?;
            let kf = KFile {
                dir: dir.to_path_buf(),
                file: src.display(dir),
                text: String::new(),
            };
            let mut seen = Seen::of(&acc);
            for res in found {
                seen.push(&mut acc, res)?;
            }
            let mut k = Kustomization::default();
            flux.merge_into(&mut k);
            ctx.accumulate(&kf, &k, &mut acc)?;
        }
    }
    for res in acc.iter_mut().filter(|r| r.needs_hash) {
        let name = format!(
            "{}-{}",
            res.obj.name(),
            generator::content_hash(res.obj.value())
        );
        res.rename(&name);
    }
    nameref::fix(&mut acc, &ctx.config().name_reference);
    for res in &mut acc {
        res.obj.normalize_annotations();
    }
    Ok(acc)
}

/// What makes two objects of a build the same object: group, kind, namespace and name.
type IdKey<'a> = (&'a str, &'a str, &'a str, &'a str);

fn id_key(res: &Resource) -> IdKey<'_> {
    let o = &res.obj;
    (
        o.group(),
        o.kind(),
        o.namespace().unwrap_or_default(),
        o.name(),
    )
}

/// The identities of the objects accumulated so far, to refuse a second object with the same
/// group, kind, namespace and name. Holds only a hash and a position per object (the identity
/// is read back from the accumulated object), so a set of 10,000 objects costs no copy of their
/// names. Objects keep their identity while a `Seen` is in use: what changes accumulated objects
/// meanwhile (a generator's `merge` or `replace`) leaves name and namespace as they are.
pub(crate) struct Seen {
    table: HashTable<usize>,
    hasher: RandomState,
}

impl Seen {
    pub fn of(acc: &[Resource]) -> Self {
        let mut seen = Self {
            table: HashTable::with_capacity(acc.len()),
            hasher: RandomState::new(),
        };
        for (i, res) in acc.iter().enumerate() {
            let hash = seen.hasher.hash_one(id_key(res));
            seen.table
                .insert_unique(hash, i, |&j| seen.hasher.hash_one(id_key(&acc[j])));
        }
        seen
    }

    /// Appends an object unless one with the same identity is there.
    pub fn push(&mut self, acc: &mut Vec<Resource>, res: Resource) -> Result<(), BuildError> {
        let key = id_key(&res);
        let hash = self.hasher.hash_one(key);
        if let Some(&first) = self.table.find(hash, |&j| id_key(&acc[j]) == key) {
            return Err(BuildError::Duplicate {
                at: res.loc.clone(),
                message: format!(
                    "{} is defined twice: first at {}",
                    res.obj.key(),
                    acc[first].loc
                ),
            });
        }
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, acc.len(), |&j| hasher.hash_one(id_key(&acc[j])));
        acc.push(res);
        Ok(())
    }
}

impl Ctx<'_> {
    fn find(&self, dir: &Path) -> Result<Option<KFile>, BuildError> {
        let found: Vec<PathBuf> = FILE_NAMES
            .iter()
            .map(|n| dir.join(n))
            .filter(|p| p.is_file())
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => {
                let real = self.src.resolve(one, &self.src.loc(dir, 0))?;
                Ok(Some(KFile {
                    dir: dir.to_path_buf(),
                    file: self.src.display(one),
                    text: self.src.read_text(&real)?,
                }))
            }
            _ => Err(BuildError::Kustomization {
                at: self.src.loc(dir, 0),
                message: "found more than one kustomization file; keep one".into(),
            }),
        }
    }

    fn build_if_kustomization(&mut self, dir: &Path) -> Result<Option<Vec<Resource>>, BuildError> {
        if FILE_NAMES.iter().any(|n| dir.join(n).is_file()) {
            self.build_dir(dir, &Loc::default()).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Puts a kustomization on the include stack, refusing a cycle (named by the chain of files
    /// that leads back to it) and nesting beyond the cap. `leave` takes it off again.
    fn enter(&mut self, dir: &Path, file: &str, at: &Loc) -> Result<(), BuildError> {
        if let Some(pos) = self.stack.iter().position(|(d, _)| d == dir) {
            let mut chain: Vec<String> = self.stack[pos..].iter().map(|(_, f)| f.clone()).collect();
            chain.push(file.to_string());
            return Err(BuildError::Cycle {
                at: at.clone(),
                chain,
            });
        }
        let max = self.src.limits().max_depth;
        if self.stack.len() >= max {
            return Err(BuildError::Limit {
                at: at.clone(),
                cap: Cap::Depth(max),
            });
        }
        self.stack.push((dir.to_path_buf(), file.to_string()));
        Ok(())
    }

    fn leave(&mut self) {
        self.stack.pop();
    }

    /// Renders a kustomization directory named in `resources`.
    fn build_dir(&mut self, dir: &Path, at: &Loc) -> Result<Vec<Resource>, BuildError> {
        let Some(kf) = self.find(dir)? else {
            return Err(BuildError::Kustomization {
                at: at.clone(),
                message: format!(
                    "no kustomization.yaml, kustomization.yml or Kustomization in {}",
                    self.src.display(dir)
                ),
            });
        };
        let k = kustomization::parse(&kf.text, &kf.file)?;
        if k.is_component() {
            return Err(BuildError::Kustomization {
                at: at.clone(),
                message: format!("{} is a Component: list it under components", kf.file),
            });
        }
        self.enter(dir, &kf.file, at)?;
        self.configs.push(TransformerConfig::default());
        let mut acc = Vec::new();
        let result = self.accumulate(&kf, &k, &mut acc);
        self.leave();
        let config = self.configs.pop().unwrap_or_default();
        if let Some(parent) = self.configs.last_mut() {
            parent.merge(&config);
        }
        result.map(|_| acc)
    }

    /// The transformer configuration of the kustomization being rendered.
    fn config(&self) -> &TransformerConfig {
        self.configs
            .last()
            .expect("the top kustomization's is always there")
    }

    /// Reads a kustomization's `configurations` files into its transformer configuration.
    fn configure(&mut self, kf: &KFile, files: &[String]) -> Result<(), BuildError> {
        for file in files {
            let real = self.restricted_file(kf, file)?;
            let shown = self.src.display(&real);
            let config = TransformerConfig::parse(&self.src.read_text(&real)?, &shown)?;
            self.configs
                .last_mut()
                .expect("the top kustomization's is always there")
                .merge(&config);
        }
        Ok(())
    }

    /// Resolves a file a kustomization names: inside the source root, and in or below the
    /// kustomization's directory.
    pub fn restricted_file(&self, kf: &KFile, rel: &str) -> Result<PathBuf, BuildError> {
        let at = kf.at(rel);
        if is_remote(rel) {
            return Err(BuildError::Unsupported {
                at,
                field: "remote file".into(),
                detail: rel.into(),
            });
        }
        let real = self.src.resolve(&kf.dir.join(rel), &at)?;
        if !is_within(&real, &kf.dir) {
            return Err(BuildError::Restricted {
                at,
                path: rel.into(),
                dir: self.src.display(&kf.dir),
            });
        }
        Ok(real)
    }

    fn accumulate(
        &mut self,
        kf: &KFile,
        k: &Kustomization,
        acc: &mut Vec<Resource>,
    ) -> Result<(), BuildError> {
        let mut seen = Seen::of(acc);
        for entry in k.resources.iter().chain(&k.bases) {
            let at = kf.at(entry);
            if is_remote(entry) {
                return Err(BuildError::Unsupported {
                    at,
                    field: "resources".into(),
                    detail: format!("remote base {entry}"),
                });
            }
            let real = self.src.resolve(&kf.dir.join(entry), &at)?;
            let found = if real.is_dir() {
                self.build_dir(&real, &at)?
            } else {
                if !is_within(&real, &kf.dir) {
                    return Err(BuildError::Restricted {
                        at,
                        path: entry.clone(),
                        dir: self.src.display(&kf.dir),
                    });
                }
                plain::read_file(self.src, &real)?
            };
            for res in found {
                seen.push(acc, res)?;
            }
        }
        self.configure(kf, &k.configurations)?;
        self.generate(kf, k, acc, &mut seen)?;
        for entry in &k.components {
            let at = kf.at(entry);
            let real = self.src.resolve(&kf.dir.join(entry), &at)?;
            let ckf = self.find(&real)?.ok_or_else(|| BuildError::Kustomization {
                at: at.clone(),
                message: format!("component {entry} has no kustomization file"),
            })?;
            let ck = kustomization::parse(&ckf.text, &ckf.file)?;
            if !ck.is_component() {
                return Err(BuildError::Kustomization {
                    at,
                    message: format!("{} must have kind: Component", ckf.file),
                });
            }
            self.enter(&real, &ckf.file, &at)?;
            let result = self.accumulate(&ckf, &ck, acc);
            self.leave();
            result?;
        }
        self.transform(kf, k, acc)
    }

    /// Loads a patch given as a file path or inline text.
    pub fn patch_content(
        &self,
        kf: &KFile,
        spec: &PatchSpec,
    ) -> Result<(patch::Content, Loc), BuildError> {
        match (&spec.path, &spec.patch) {
            (Some(path), None) => {
                let real = self.restricted_file(kf, path)?;
                let text = self.src.read_text(&real)?;
                let at = self.src.loc(&real, 0);
                Ok((patch::parse(&text, &at)?, at))
            }
            (None, Some(text)) => {
                let first = text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim();
                let at = kf.at(first);
                Ok((patch::parse(text, &at)?, at))
            }
            _ => Err(BuildError::Patch {
                at: kf.at("patch"),
                message: "a patch needs exactly one of path and patch".into(),
            }),
        }
    }

    fn transform(
        &self,
        kf: &KFile,
        k: &Kustomization,
        acc: &mut Vec<Resource>,
    ) -> Result<(), BuildError> {
        for entry in &k.patches_strategic_merge {
            let spec = if entry.contains('\n') || entry.trim_start().starts_with("apiVersion") {
                PatchSpec {
                    patch: Some(entry.clone()),
                    ..Default::default()
                }
            } else {
                PatchSpec {
                    path: Some(entry.clone()),
                    ..Default::default()
                }
            };
            let (content, at) = self.patch_content(kf, &spec)?;
            if matches!(content, patch::Content::Json(_)) {
                return Err(BuildError::Patch {
                    at,
                    message: "patchesStrategicMerge entries must be strategic merge patches".into(),
                });
            }
            patch::apply(acc, &content, None, &PatchOptions::default(), &at)?;
        }
        for spec in &k.patches {
            let (content, at) = self.patch_content(kf, spec)?;
            patch::apply(acc, &content, spec.target.as_ref(), &spec.options, &at)?;
        }
        let cfg = self.config();
        if let Some(ns) = k.namespace.as_deref().filter(|s| !s.is_empty()) {
            let specs = config::with(fieldspec::namespace(), &cfg.namespace);
            transform::set_namespace(acc, ns, false, SubjectMode::DefaultOnly, &specs)?;
        }
        let prefix = k.name_prefix.as_deref().unwrap_or("");
        let suffix = k.name_suffix.as_deref().unwrap_or("");
        transform::add_prefix_suffix(acc, prefix, suffix, None);
        transform::affix_fields(acc, &cfg.name_prefix, prefix, "");
        transform::affix_fields(acc, &cfg.name_suffix, "", suffix);
        for l in &k.labels {
            let mut specs = if l.include_selectors {
                config::with(fieldspec::common_labels(), &cfg.common_labels)
            } else if l.include_templates {
                config::with(fieldspec::metadata_labels(true), &cfg.template_labels)
            } else {
                fieldspec::metadata_labels(false)
            };
            specs.extend(l.fields.iter().cloned());
            transform::add_pairs(acc, &l.pairs, &specs, &kf.at("labels"))?;
        }
        transform::add_pairs(
            acc,
            &k.common_labels,
            &config::with(fieldspec::common_labels(), &cfg.common_labels),
            &kf.at("commonLabels"),
        )?;
        transform::add_pairs(
            acc,
            &k.common_annotations,
            &config::with(fieldspec::common_annotations(), &cfg.common_annotations),
            &kf.at("commonAnnotations"),
        )?;
        for spec in &k.patches_json6902 {
            let (content, at) = self.patch_content(kf, spec)?;
            if spec.target.is_none() {
                return Err(BuildError::Patch {
                    at,
                    message: "patchesJson6902 entries need a target".into(),
                });
            }
            patch::apply(acc, &content, spec.target.as_ref(), &spec.options, &at)?;
        }
        let replicas = config::with(fieldspec::replicas(), &cfg.replicas);
        transform::set_replicas(acc, &k.replicas, &replicas, &kf.at("replicas"))?;
        transform::set_images(
            acc,
            &k.images,
            &config::with(fieldspec::images(), &cfg.images),
        );
        self.replace(kf, &k.replacements, acc)?;
        for entry in &k.transformers {
            builtin::run(self, kf, entry, acc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::build::{BuildError, BuildOptions, Cap, render};

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn error(dir: &tempfile::TempDir, path: &str, opts: &BuildOptions) -> String {
        render(dir.path(), std::path::Path::new(path), opts)
            .map(|o| format!("built {} objects", o.len()))
            .unwrap_or_else(|e| e.to_string())
    }

    const RESOURCE: &str = "resources: [cm.yaml]\n";
    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";

    #[test]
    fn a_base_that_includes_itself_is_a_cycle() {
        let dir = tree(&[("app/kustomization.yaml", "resources: [.]\n")]);
        let err = error(&dir, "app", &BuildOptions::default());
        assert!(
            err.ends_with("cycle: app/kustomization.yaml -> app/kustomization.yaml"),
            "{err}"
        );
    }

    #[test]
    fn a_base_cycle_through_several_directories_names_each_file() {
        let dir = tree(&[
            ("a/kustomization.yaml", "resources: [../b]\n"),
            ("b/kustomization.yaml", "resources: [../c]\n"),
            ("c/kustomization.yaml", "resources: [../a]\n"),
        ]);
        let err = error(&dir, "a", &BuildOptions::default());
        assert!(
            err.ends_with(
                "cycle: a/kustomization.yaml -> b/kustomization.yaml -> c/kustomization.yaml -> a/kustomization.yaml"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_component_that_includes_itself_is_a_cycle_not_a_crash() {
        let component =
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents: [.]\n";
        let dir = tree(&[
            (
                "app/kustomization.yaml",
                "resources: [cm.yaml]\ncomponents: [../comp]\n",
            ),
            ("app/cm.yaml", CM),
            ("comp/kustomization.yaml", component),
        ]);
        let err = error(&dir, "app", &BuildOptions::default());
        assert!(
            err.ends_with("cycle: comp/kustomization.yaml -> comp/kustomization.yaml"),
            "{err}"
        );
    }

    #[test]
    fn components_including_each_other_are_a_cycle() {
        let component = |next: &str| {
            format!(
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents: [../{next}]\n"
            )
        };
        let dir = tree(&[
            ("app/kustomization.yaml", "components: [../c1]\n"),
            ("c1/kustomization.yaml", &component("c2")),
            ("c2/kustomization.yaml", &component("c1")),
        ]);
        let err = error(&dir, "app", &BuildOptions::default());
        assert!(
            err.ends_with(
                "c1/kustomization.yaml -> c2/kustomization.yaml -> c1/kustomization.yaml"
            ),
            "{err}"
        );
    }

    #[test]
    fn include_depth_is_capped() {
        let mut files = vec![("k0/cm.yaml".to_string(), CM.to_string())];
        files.push(("k0/kustomization.yaml".into(), RESOURCE.into()));
        for i in 1..10 {
            files.push((
                format!("k{i}/kustomization.yaml"),
                format!("resources: [../k{}]\n", i - 1),
            ));
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let dir = tree(&refs);
        assert_eq!(
            error(&dir, "k9", &BuildOptions::default()),
            "built 1 objects"
        );
        let mut opts = BuildOptions::default();
        opts.limits.max_depth = 4;
        let err = render(dir.path(), std::path::Path::new("k9"), &opts).unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::Limit {
                    cap: Cap::Depth(4),
                    ..
                }
            ),
            "{err}"
        );
    }
}
