//! The generator step of a kustomization: reading the literals, files and env files of
//! configMapGenerator and secretGenerator through the build context, and adding, merging or
//! replacing the generated objects.

use std::path::Path;

use super::BuildError;
use super::generator;
use super::kustomization::{GeneratorSpec, Kustomization};
use super::kustomize::{Ctx, KFile, Seen};
use super::object::{Object, Resource};

impl Ctx<'_> {
    pub(super) fn generate(
        &self,
        kf: &KFile,
        k: &Kustomization,
        acc: &mut Vec<Resource>,
        seen: &mut Seen,
    ) -> Result<(), BuildError> {
        let specs = k
            .config_map_generator
            .iter()
            .map(|s| ("ConfigMap", s))
            .chain(k.secret_generator.iter().map(|s| ("Secret", s)));
        for (kind, spec) in specs {
            let at = kf.at(&format!("name: {}", spec.name));
            let opts =
                generator::merged_options(k.generator_options.as_ref(), spec.options.as_ref());
            let entries = self.entries(kf, spec)?;
            let value = generator::build(kind, spec, entries, &opts).map_err(|message| {
                BuildError::Generate {
                    at: at.clone(),
                    message: format!("{kind} {}: {message}", spec.name),
                }
            })?;
            let hash = !opts.disable_name_suffix_hash.unwrap_or(false);
            let ns = spec
                .namespace
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            let behavior = spec.behavior.as_deref().unwrap_or("create");
            // Only merge and replace look for the object they change.
            let existing = (behavior != "create")
                .then(|| {
                    acc.iter_mut().find(|r| {
                        r.obj.kind() == kind
                            && r.ids()
                                .any(|(n, s)| n == spec.name && s.unwrap_or("default") == ns)
                    })
                })
                .flatten();
            match (behavior, existing) {
                ("create", _) => {
                    let obj = Object::new(value).map_err(|message| BuildError::Generate {
                        at: at.clone(),
                        message,
                    })?;
                    let mut res = Resource::new(obj, at.clone());
                    res.needs_hash = hash;
                    seen.push(acc, res)?;
                }
                ("merge" | "replace", None) => {
                    return Err(BuildError::Generate {
                        at,
                        message: format!("{kind} {} does not exist to merge or replace", spec.name),
                    });
                }
                ("merge", Some(res)) => {
                    generator::merge_into(res.obj.value_mut(), &value);
                    res.needs_hash = res.needs_hash && hash;
                }
                ("replace", Some(res)) => {
                    // The data is replaced; name, namespace, labels and annotations carry over.
                    let mut replaced = res.obj.value().clone();
                    if let Some(map) = replaced.as_object_mut() {
                        map.remove("data");
                        map.remove("binaryData");
                    }
                    generator::merge_into(&mut replaced, &value);
                    *res.obj.value_mut() = replaced;
                    res.needs_hash = hash;
                }
                (other, _) => {
                    return Err(BuildError::Generate {
                        at,
                        message: format!(
                            "behavior must be create, merge or replace, not {other:?}"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn entries(
        &self,
        kf: &KFile,
        spec: &GeneratorSpec,
    ) -> Result<Vec<generator::Entry>, BuildError> {
        let mut out = Vec::new();
        for env in spec.envs.iter().chain(&spec.env) {
            let path = self.restricted_file(kf, env)?;
            let text = self.src.read_text(&path)?;
            let parsed =
                generator::parse_env(&text).map_err(|(line, message)| BuildError::Generate {
                    at: self.src.loc(&path, line),
                    message,
                })?;
            out.extend(parsed);
        }
        for lit in &spec.literals {
            out.push(
                generator::parse_literal(lit).map_err(|message| BuildError::Generate {
                    at: kf.at(lit),
                    message,
                })?,
            );
        }
        for file in &spec.files {
            let (key, rel) = match file.split_once('=') {
                Some((k, p)) => (k.to_string(), p),
                None => (
                    Path::new(file)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(file)
                        .to_string(),
                    file.as_str(),
                ),
            };
            let path = self.restricted_file(kf, rel)?;
            if path.is_dir() {
                return Err(BuildError::Generate {
                    at: kf.at(file),
                    message: format!("{rel} is a directory"),
                });
            }
            out.push(generator::Entry {
                key,
                value: self.src.read_bytes(&path)?,
            });
        }
        Ok(out)
    }
}
