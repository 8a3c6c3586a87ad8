//! The `transformers` field: configurations of kustomize's built-in transformers
//! (`apiVersion: builtin`) with their own field specs. Plugins are refused. Pure apart from
//! reading the configuration files through the build context.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::BuildError;
use super::fieldspec::FieldSpec;
use super::kustomization::{
    ImageSpec, PatchOptions, PatchSpec, ReplicaSpec, TargetSpec, scalar_map,
};
use super::kustomize::{Ctx, KFile};
use super::object::{Loc, Resource};
use super::patch;
use super::replacement::ReplacementField;
use super::transform::{self, SubjectMode};
use super::yaml;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default, deserialize_with = "scalar_map")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_map")]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    field_specs: Vec<FieldSpec>,
    #[serde(default)]
    unset_only: bool,
    #[serde(default)]
    set_role_binding_subjects: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(default)]
    image_tag: Option<ImageSpec>,
    #[serde(default)]
    replica: Option<ReplicaSpec>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    patch: Option<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    patches: Option<String>,
    #[serde(default)]
    target: Option<TargetSpec>,
    #[serde(default)]
    json_op: Option<String>,
    #[serde(default)]
    options: PatchOptions,
    #[serde(default)]
    replacements: Vec<ReplacementField>,
}

/// Runs one entry of `transformers`: a file of builtin configurations, or inline YAML.
pub fn run(ctx: &Ctx, kf: &KFile, entry: &str, acc: &mut Vec<Resource>) -> Result<(), BuildError> {
    let (text, file, base_line) = if entry.contains('\n') {
        let at = kf.at(entry.lines().next().unwrap_or_default());
        (entry.to_string(), at.file, at.line.saturating_sub(1))
    } else {
        let path = ctx.restricted_file(kf, entry)?;
        if path.is_dir() {
            return Err(BuildError::Unsupported {
                at: kf.at(entry),
                field: "transformers".into(),
                detail: format!(
                    "{entry} is a directory; only files of builtin transformer configurations are read"
                ),
            });
        }
        (ctx.src.read_text(&path)?, ctx.src.display(&path), 0)
    };
    for doc in yaml::parse(&text, &file)? {
        let at = Loc::new(&file, doc.line + base_line);
        let api = doc
            .value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if api != "builtin" {
            return Err(BuildError::Unsupported {
                at,
                field: "transformers".into(),
                detail: format!("plugin {api} {kind}: only apiVersion builtin is run"),
            });
        }
        let cfg: Config =
            serde_json::from_value(doc.value).map_err(|e| BuildError::Kustomization {
                at: at.clone(),
                message: format!("{kind}: {e}"),
            })?;
        apply(ctx, kf, &cfg, &at, acc)?;
    }
    Ok(())
}

fn apply(
    ctx: &Ctx,
    kf: &KFile,
    cfg: &Config,
    at: &Loc,
    acc: &mut Vec<Resource>,
) -> Result<(), BuildError> {
    let _ = (&cfg.api_version, &cfg.metadata);
    match cfg.kind.as_str() {
        "LabelTransformer" => transform::add_pairs(acc, &cfg.labels, &cfg.field_specs, at),
        "AnnotationsTransformer" => {
            transform::add_pairs(acc, &cfg.annotations, &cfg.field_specs, at)
        }
        "NamespaceTransformer" => {
            let ns = cfg
                .metadata
                .as_ref()
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mode = match cfg.set_role_binding_subjects.as_deref() {
                None | Some("") | Some("defaultOnly") => SubjectMode::DefaultOnly,
                Some("allServiceAccounts") => SubjectMode::AllServiceAccounts,
                Some("none") => SubjectMode::None,
                Some(other) => {
                    return Err(BuildError::Kustomization {
                        at: at.clone(),
                        message: format!("unknown setRoleBindingSubjects {other:?}"),
                    });
                }
            };
            if ns.is_empty() {
                return Err(BuildError::Kustomization {
                    at: at.clone(),
                    message: "NamespaceTransformer needs metadata.namespace".into(),
                });
            }
            transform::set_namespace(acc, ns, cfg.unset_only, mode, &cfg.field_specs)
        }
        "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
            let specs = (!cfg.field_specs.is_empty()).then_some(cfg.field_specs.as_slice());
            transform::add_prefix_suffix(
                acc,
                cfg.prefix.as_deref().unwrap_or(""),
                cfg.suffix.as_deref().unwrap_or(""),
                specs,
            );
            Ok(())
        }
        "ImageTagTransformer" => {
            let Some(image) = &cfg.image_tag else {
                return Err(BuildError::Kustomization {
                    at: at.clone(),
                    message: "ImageTagTransformer needs imageTag".into(),
                });
            };
            transform::set_images(acc, std::slice::from_ref(image), &cfg.field_specs);
            Ok(())
        }
        "ReplicaCountTransformer" => {
            let Some(replica) = &cfg.replica else {
                return Err(BuildError::Kustomization {
                    at: at.clone(),
                    message: "ReplicaCountTransformer needs replica".into(),
                });
            };
            transform::set_replicas(acc, std::slice::from_ref(replica), &cfg.field_specs, at)
        }
        "PatchTransformer" => {
            let spec = PatchSpec {
                path: cfg.path.clone(),
                patch: cfg.patch.clone(),
                target: cfg.target.clone(),
                options: cfg.options.clone(),
            };
            let (content, pat) = ctx.patch_content(kf, &spec)?;
            patch::apply(acc, &content, spec.target.as_ref(), &spec.options, &pat)
        }
        "PatchJson6902Transformer" => {
            let spec = PatchSpec {
                path: cfg.path.clone(),
                patch: cfg.json_op.clone(),
                target: cfg.target.clone(),
                options: cfg.options.clone(),
            };
            let (content, pat) = ctx.patch_content(kf, &spec)?;
            patch::apply(acc, &content, spec.target.as_ref(), &spec.options, &pat)
        }
        "PatchStrategicMergeTransformer" => {
            let mut specs: Vec<PatchSpec> = cfg
                .paths
                .iter()
                .map(|p| PatchSpec {
                    path: Some(p.clone()),
                    ..Default::default()
                })
                .collect();
            if let Some(p) = &cfg.patches {
                specs.push(PatchSpec {
                    patch: Some(p.clone()),
                    ..Default::default()
                });
            }
            for spec in specs {
                let (content, pat) = ctx.patch_content(kf, &spec)?;
                patch::apply(acc, &content, None, &PatchOptions::default(), &pat)?;
            }
            Ok(())
        }
        "ReplacementTransformer" => ctx.replace(kf, &cfg.replacements, acc),
        other => Err(BuildError::Unsupported {
            at: at.clone(),
            field: "transformers".into(),
            detail: format!("builtin {other} is not supported"),
        }),
    }
}
