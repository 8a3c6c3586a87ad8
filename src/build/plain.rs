//! Manifest files and plain directories: documents to objects (flattening `List`s), recursive
//! directory reading with `.sourceignore`. Reads through [`Source`] only.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde_json::Value;

use super::BuildError;
use super::object::{Loc, Object, Resource};
use super::source::Source;
use super::yaml;

/// The objects in one manifest file (already resolved).
pub fn read_file(src: &Source, path: &Path) -> Result<Vec<Resource>, BuildError> {
    let text = src.read_text(path)?;
    let file = src.display(path);
    let mut out = Vec::new();
    for doc in yaml::parse(&text, &file)? {
        let at = Loc::new(&file, doc.line);
        push_objects(doc.value, &at, &mut out)?;
    }
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
    let text = src.read_text(&file)?;
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
pub fn read_dir(
    src: &Source,
    dir: &Path,
    kustomization: &mut KustomizationDir,
) -> Result<Vec<Resource>, BuildError> {
    let mut out = Vec::new();
    let mut ignores = Vec::new();
    walk(src, dir, &mut ignores, kustomization, &mut out)?;
    Ok(out)
}

fn walk(
    src: &Source,
    dir: &Path,
    ignores: &mut Vec<Gitignore>,
    kustomization: &mut KustomizationDir,
    out: &mut Vec<Resource>,
) -> Result<(), BuildError> {
    let pushed = match load_ignore(src, dir)? {
        Some(g) => {
            ignores.push(g);
            true
        }
        None => false,
    };
    for entry in src.list_dir(dir)? {
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let is_dir = entry.is_dir();
        if ignores
            .iter()
            .any(|g| g.matched_path_or_any_parents(&entry, is_dir).is_ignore())
        {
            continue;
        }
        let at = src.loc(dir, 0);
        let real = src.resolve(&entry, &at)?;
        if is_dir {
            match kustomization(&real)? {
                Some(resources) => out.extend(resources),
                None => walk(src, &real, ignores, kustomization, out)?,
            }
        } else if is_manifest(&entry) {
            out.extend(read_file(src, &real)?);
        }
    }
    if pushed {
        ignores.pop();
    }
    Ok(())
}
