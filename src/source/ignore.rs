//! Which files of a checked-out tree stay out of the artifact: default exclusions, `spec.ignore` and
//! `.sourceignore` files, all in gitignore syntax. Pure, no I/O.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The file name whose patterns apply to its directory and below.
pub const SOURCEIGNORE: &str = ".sourceignore";

/// Excluded unless `spec.ignore` replaces them: VCS metadata, CI configuration and binary media that
/// never belong in manifests.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    ".git/",
    ".gitignore",
    ".gitmodules",
    ".gitattributes",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
    "**/.goreleaser.yml",
    "**/.sops.yaml",
];

#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("{origin} line {line}: {pattern:?} is not a valid gitignore pattern")]
    Pattern {
        origin: String,
        line: usize,
        pattern: String,
        #[source]
        source: ignore::Error,
    },
}

/// Compiled ignore rules for one tree. Later sources win over earlier ones, as in gitignore:
/// defaults (or `spec.ignore` instead), then `.sourceignore` files from the root down.
pub struct IgnoreRules {
    layers: Vec<Gitignore>,
}

impl IgnoreRules {
    /// `spec_ignore` replaces the default exclusions when set (as in Flux). `sourceignores` are
    /// `(directory relative to the root, file content)` pairs.
    pub fn new(
        spec_ignore: Option<&str>,
        sourceignores: &[(PathBuf, String)],
    ) -> Result<Self, IgnoreError> {
        let root = Path::new("/");
        let mut layers = Vec::new();
        let base = match spec_ignore {
            Some(text) => compile(root, "spec.ignore", text)?,
            None => compile(root, "default exclusions", &DEFAULT_EXCLUDES.join("\n"))?,
        };
        layers.push(base);
        let mut rules = IgnoreRules { layers };
        let mut sorted: Vec<&(PathBuf, String)> = sourceignores.iter().collect();
        sorted.sort_by_key(|(dir, _)| dir.components().count());
        for (dir, text) in sorted {
            rules.add_sourceignore(dir, text)?;
        }
        Ok(rules)
    }

    /// Adds the `.sourceignore` of `dir` (relative to the root). A directory's file must come
    /// after its parents' (as a walk from the root down adds them).
    pub fn add_sourceignore(&mut self, dir: &Path, text: &str) -> Result<(), IgnoreError> {
        let origin = dir.join(SOURCEIGNORE).display().to_string();
        self.layers
            .push(compile(&Path::new("/").join(dir), &origin, text)?);
        Ok(())
    }

    /// Whether a path (relative to the root) or one of its parent directories is ignored.
    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        let abs = Path::new("/").join(path);
        let mut ignored = false;
        for layer in &self.layers {
            if !abs.starts_with(layer.path()) {
                continue;
            }
            let m = layer.matched_path_or_any_parents(&abs, is_dir);
            if m.is_ignore() {
                ignored = true;
            } else if m.is_whitelist() {
                ignored = false;
            }
        }
        ignored
    }
}

fn compile(root: &Path, origin: &str, text: &str) -> Result<Gitignore, IgnoreError> {
    let mut builder = GitignoreBuilder::new(root);
    for (i, line) in text.lines().enumerate() {
        builder
            .add_line(None, line)
            .map_err(|source| IgnoreError::Pattern {
                origin: origin.to_owned(),
                line: i + 1,
                pattern: line.to_owned(),
                source,
            })?;
    }
    builder.build().map_err(|source| IgnoreError::Pattern {
        origin: origin.to_owned(),
        line: 0,
        pattern: String::new(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_exclude_vcs_and_ci_files() {
        let rules = IgnoreRules::new(None, &[]).unwrap();
        assert!(rules.is_ignored(Path::new(".github/workflows/ci.yaml"), false));
        assert!(rules.is_ignored(Path::new("docs/logo.png"), false));
        assert!(!rules.is_ignored(Path::new("deploy/app.yaml"), false));
    }

    #[test]
    fn spec_ignore_replaces_defaults_and_sourceignore_applies_below_its_dir() {
        let rules = IgnoreRules::new(
            Some("/docs/\n*.md\n!keep.md"),
            &[
                (PathBuf::from("apps"), "secret.yaml\n".into()),
                (PathBuf::new(), "tmp/\n".into()),
            ],
        )
        .unwrap();
        assert!(
            !rules.is_ignored(Path::new("logo.png"), false),
            "defaults are replaced"
        );
        assert!(rules.is_ignored(Path::new("docs/x.yaml"), false));
        assert!(rules.is_ignored(Path::new("README.md"), false));
        assert!(!rules.is_ignored(Path::new("keep.md"), false));
        assert!(rules.is_ignored(Path::new("apps/a/secret.yaml"), false));
        assert!(
            !rules.is_ignored(Path::new("secret.yaml"), false),
            "apps/.sourceignore does not reach the root"
        );
        assert!(rules.is_ignored(Path::new("x/tmp/y"), false));
    }

    #[test]
    fn bad_pattern_names_its_origin_and_line() {
        let err = IgnoreRules::new(Some("ok\n[z-a]"), &[]).err().unwrap();
        assert!(err.to_string().starts_with("spec.ignore line 2"), "{err}");
    }
}
