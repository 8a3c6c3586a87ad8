//! Manifest files and plain directories: documents to objects (flattening `List`s), recursive
//! directory reading with `.sourceignore`. Reads through [`Source`] only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde_json::Value;

use super::object::{Loc, Object, Resource};
use super::source::Source;
use super::yaml;
use super::{BuildError, Cap};

/// The objects in one manifest file (already resolved).
pub fn read_file(src: &Source, path: &Path) -> Result<Vec<Resource>, BuildError> {
    let text = src.read_text(path)?;
    let file = src.display(path);
    // Every document is at least one object: a file with more documents than the build may
    // still hold is refused before it is parsed (parsing first costs memory and minutes).
    let documents = text.lines().filter(|l| l.starts_with("---")).count();
    src.check_room_for(documents, &Loc::new(&file, 0))?;
    let mut out = Vec::new();
    for doc in yaml::parse(&text, &file)? {
        let at = Loc::new(&file, doc.line);
        push_objects(doc.value, &at, &mut out)?;
    }
    src.count_objects(out.len(), &Loc::new(&file, 0))?;
    Ok(out)
}

pub(crate) fn push_objects(
    value: Value,
    at: &Loc,
    out: &mut Vec<Resource>,
) -> Result<(), BuildError> {
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Some(Value::Array(items)) = value.get("items") {
            for item in items {
                push_objects(item.clone(), at, out)?;
            }
        }
        return Ok(());
    }
    let obj = Object::new(value).map_err(|message| BuildError::NotAnObject {
        at: at.clone(),
        message,
    })?;
    out.push(Resource::new(obj, at.clone()));
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

fn load_ignore(src: &Source, dir: &Path) -> Result<Option<Gitignore>, BuildError> {
    let file = dir.join(".sourceignore");
    if !file.is_file() {
        return Ok(None);
    }
    let real = src.resolve(&file, &src.loc(dir, 0))?;
    let text = src.read_text(&real)?;
    let mut builder = GitignoreBuilder::new(dir);
    for (i, line) in text.lines().enumerate() {
        builder
            .add_line(None, line)
            .map_err(|e| BuildError::Parse {
                at: src.loc(&file, i as u64 + 1),
                message: format!("invalid pattern: {e}"),
            })?;
    }
    builder.build().map(Some).map_err(|e| BuildError::Parse {
        at: src.loc(&file, 0),
        message: e.to_string(),
    })
}

/// Renders a subdirectory when it holds a kustomization file.
pub type KustomizationDir<'a> = dyn FnMut(&Path) -> Result<Option<Vec<Resource>>, BuildError> + 'a;

/// Reads a directory recursively: manifest files in name order; a subdirectory holding a
/// kustomization is rendered by `kustomization`; dot-entries and `.sourceignore` matches skipped.
/// Symlinked directories are followed once: a directory reached again through a symlink is a
/// cycle (when it is being read) or an error naming both ways to it, and nesting is capped.
pub fn read_dir(
    src: &Source,
    dir: &Path,
    kustomization: &mut KustomizationDir,
) -> Result<Vec<Resource>, BuildError> {
    let mut walk = Walk {
        src,
        ignores: Vec::new(),
        stack: Vec::new(),
        visited: HashMap::new(),
        kustomization,
        out: Vec::new(),
    };
    walk.dir(dir, &src.display(dir))?;
    Ok(walk.out)
}

struct Walk<'s, 'k, 'c> {
    src: &'s Source,
    ignores: Vec<Gitignore>,
    /// The directories being read, outermost first: (resolved path, path as reached).
    stack: Vec<(PathBuf, String)>,
    /// Every directory read so far (resolved), with the path it was first reached by.
    visited: HashMap<PathBuf, String>,
    kustomization: &'k mut KustomizationDir<'c>,
    out: Vec<Resource>,
}

impl Walk<'_, '_, '_> {
    /// Enters `dir` (resolved), reached as `shown`.
    fn dir(&mut self, dir: &Path, shown: &str) -> Result<(), BuildError> {
        let at = self.src.loc(dir, 0);
        if let Some(pos) = self.stack.iter().position(|(d, _)| d == dir) {
            let mut chain: Vec<String> = self.stack[pos..].iter().map(|(_, s)| s.clone()).collect();
            chain.push(format!("{shown} (a symlink to {})", self.stack[pos].1));
            return Err(BuildError::Cycle { at, chain });
        }
        if let Some(first) = self.visited.get(dir) {
            return Err(BuildError::Duplicate {
                at,
                message: format!(
                    "directory {} is reached twice: as {first} and as {shown}",
                    self.src.display(dir)
                ),
            });
        }
        if self.stack.len() >= self.src.limits().max_depth {
            return Err(BuildError::Limit {
                at,
                cap: Cap::Depth(self.src.limits().max_depth),
            });
        }
        self.visited.insert(dir.to_path_buf(), shown.to_string());
        self.stack.push((dir.to_path_buf(), shown.to_string()));
        let result = self.entries(dir, shown);
        self.stack.pop();
        result
    }

    fn entries(&mut self, dir: &Path, shown: &str) -> Result<(), BuildError> {
        let pushed = match load_ignore(self.src, dir)? {
            Some(g) => {
                self.ignores.push(g);
                true
            }
            None => false,
        };
        let result = self.each_entry(dir, shown);
        if pushed {
            self.ignores.pop();
        }
        result
    }

    fn each_entry(&mut self, dir: &Path, shown: &str) -> Result<(), BuildError> {
        for entry in self.src.list_dir(dir)? {
            let name = entry
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            let is_dir = entry.is_dir();
            if self
                .ignores
                .iter()
                .any(|g| g.matched_path_or_any_parents(&entry, is_dir).is_ignore())
            {
                continue;
            }
            let at = self.src.loc(dir, 0);
            let real = self.src.resolve(&entry, &at)?;
            let entry_shown = if shown == "." {
                name.to_string()
            } else {
                format!("{shown}/{name}")
            };
            if is_dir {
                match (self.kustomization)(&real)? {
                    Some(resources) => self.out.extend(resources),
                    None => self.dir(&real, &entry_shown)?,
                }
            } else if is_manifest(&entry) {
                self.out.extend(read_file(self.src, &real)?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use crate::build::{BuildError, BuildOptions, Cap, Limits, render};

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\n";

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn build(dir: &tempfile::TempDir, opts: &BuildOptions) -> Result<usize, BuildError> {
        render(dir.path(), std::path::Path::new("."), opts).map(|o| o.len())
    }

    #[test]
    fn a_symlink_to_its_own_directory_is_a_cycle_not_a_crash() {
        let dir = tree(&[("app/cm.yaml", &CM.replace("NAME", "a"))]);
        symlink(".", dir.path().join("app/self")).unwrap();
        let err = build(&dir, &BuildOptions::default()).unwrap_err();
        assert!(matches!(err, BuildError::Cycle { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("app -> app/self (a symlink to app)"),
            "{err}"
        );
    }

    #[test]
    fn a_symlink_chain_back_to_an_ancestor_is_a_cycle_naming_each_step() {
        let dir = tree(&[
            ("a/cm.yaml", &CM.replace("NAME", "a")),
            ("b/cm.yaml", &CM.replace("NAME", "b")),
        ]);
        symlink("../b", dir.path().join("a/to-b")).unwrap();
        symlink("../a", dir.path().join("b/to-a")).unwrap();
        let err = build(&dir, &BuildOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, BuildError::Cycle { .. }), "{text}");
        assert!(
            text.contains("a -> a/to-b -> a/to-b/to-a (a symlink to a)"),
            "{text}"
        );
    }

    #[test]
    fn a_diamond_of_symlinks_is_read_once_not_exponentially() {
        // Each level links twice to the next: 2^40 paths if followed blindly.
        let dir = tree(&[("l40/cm.yaml", &CM.replace("NAME", "x"))]);
        for level in 0..40 {
            let here = dir.path().join(format!("l{level}"));
            std::fs::create_dir_all(&here).unwrap();
            for side in ["x", "y"] {
                symlink(format!("../l{}", level + 1), here.join(side)).unwrap();
            }
        }
        let err = build(&dir, &BuildOptions::default()).unwrap_err();
        assert!(err.to_string().contains("is reached twice"), "{err}");
    }

    #[test]
    fn nesting_deeper_than_the_cap_is_refused() {
        let deep = (0..10)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join("/");
        let dir = tree(&[(&format!("{deep}/cm.yaml"), &CM.replace("NAME", "x"))]);
        let mut opts = BuildOptions::default();
        assert_eq!(build(&dir, &opts).unwrap(), 1);
        opts.limits.max_depth = 5;
        let err = build(&dir, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::Limit {
                    cap: Cap::Depth(5),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn object_and_byte_caps_name_themselves() {
        let many: String = (0..50)
            .map(|i| format!("---\n{}", CM.replace("NAME", &format!("c{i}"))))
            .collect();
        let dir = tree(&[("all.yaml", &many)]);
        let opts = |limits: Limits| BuildOptions {
            limits,
            ..Default::default()
        };
        assert_eq!(build(&dir, &BuildOptions::default()).unwrap(), 50);
        let err = build(
            &dir,
            &opts(Limits {
                max_objects: 10,
                ..Default::default()
            }),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "all.yaml: the build is over its limit of 10 objects"
        );
        let err = build(
            &dir,
            &opts(Limits {
                max_bytes: 100,
                ..Default::default()
            }),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "all.yaml: the build is over its limit of 100 bytes read"
        );
        // Documents are counted before parsing: a file of more than fit is refused unread.
        let err = build(
            &dir,
            &opts(Limits {
                max_objects: 49,
                max_bytes: u64::MAX,
                ..Default::default()
            }),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::Limit {
                    cap: Cap::Objects(49),
                    ..
                }
            ),
            "{err}"
        );
        let err = build(
            &dir,
            &opts(Limits {
                max_time: std::time::Duration::ZERO,
                ..Default::default()
            }),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::Limit {
                    cap: Cap::Time(_),
                    ..
                }
            ),
            "{err}"
        );
    }
}
