//! The fields of a Flux Kustomization that change what is built (targetNamespace, namePrefix,
//! nameSuffix, patches, images, commonMetadata). As Flux does, they are merged into the top
//! kustomization before it is rendered. Pure.

use std::collections::BTreeMap;

use super::kustomization::{ImageSpec, Kustomization, LabelSpec, PatchSpec};

/// Flux Kustomization fields applied on top of the directory being built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FluxOptions {
    pub target_namespace: Option<String>,
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    /// Inline patches with optional targets.
    pub patches: Vec<PatchSpec>,
    pub images: Vec<ImageSpec>,
    /// Components added after the directory's own (paths relative to it).
    pub components: Vec<String>,
    /// commonMetadata.labels: set on every object's metadata (not on selectors or templates).
    pub common_labels: BTreeMap<String, String>,
    /// commonMetadata.annotations.
    pub common_annotations: BTreeMap<String, String>,
}

impl FluxOptions {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Merges these fields into a kustomization: Flux's values replace namespace, prefix and
    /// suffix; patches, images and components are appended after the directory's own.
    pub fn merge_into(&self, k: &mut Kustomization) {
        if let Some(ns) = self.target_namespace.as_ref().filter(|s| !s.is_empty()) {
            k.namespace = Some(ns.clone());
        }
        if let Some(p) = self.name_prefix.as_ref().filter(|s| !s.is_empty()) {
            k.name_prefix = Some(p.clone());
        }
        if let Some(s) = self.name_suffix.as_ref().filter(|s| !s.is_empty()) {
            k.name_suffix = Some(s.clone());
        }
        k.patches.extend(self.patches.iter().cloned());
        k.images.extend(self.images.iter().cloned());
        k.components.extend(self.components.iter().cloned());
        if !self.common_labels.is_empty() {
            k.labels.push(LabelSpec {
                pairs: self.common_labels.clone(),
                ..Default::default()
            });
        }
        k.common_annotations.extend(self.common_annotations.clone());
    }
}

/// The build-related fields of a Flux (or sluice) Kustomization `spec`: the extras and
/// `postBuild.substitute`. `substituteFrom` needs the cluster and is left to the caller.
pub fn from_spec(
    spec: &serde_json::Value,
) -> Result<(FluxOptions, Option<BTreeMap<String, String>>), String> {
    use super::kustomization::scalar_string;
    use serde_json::Value;
    let string = |key: &str| spec.get(key).and_then(Value::as_str).map(str::to_string);
    let map = |v: Option<&Value>| -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        if let Some(Value::Object(m)) = v {
            for (k, v) in m {
                out.insert(
                    k.clone(),
                    scalar_string(v).map_err(|e| format!("{k}: {e}"))?,
                );
            }
        }
        Ok(out)
    };
    let list = |key: &str| spec.get(key).cloned().unwrap_or(Value::Array(vec![]));
    let opts = FluxOptions {
        target_namespace: string("targetNamespace"),
        name_prefix: string("namePrefix"),
        name_suffix: string("nameSuffix"),
        patches: serde_json::from_value(list("patches")).map_err(|e| format!("patches: {e}"))?,
        images: serde_json::from_value(list("images")).map_err(|e| format!("images: {e}"))?,
        components: serde_json::from_value(list("components"))
            .map_err(|e| format!("components: {e}"))?,
        common_labels: map(spec.pointer("/commonMetadata/labels"))
            .map_err(|e| format!("commonMetadata.labels: {e}"))?,
        common_annotations: map(spec.pointer("/commonMetadata/annotations"))
            .map_err(|e| format!("commonMetadata.annotations: {e}"))?,
    };
    let substitute = match spec.get("postBuild") {
        Some(pb) => {
            Some(map(pb.get("substitute")).map_err(|e| format!("postBuild.substitute: {e}"))?)
        }
        None => None,
    };
    Ok((opts, substitute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_flux_kustomization_spec() {
        let spec = json!({"targetNamespace": "prod", "namePrefix": "p-",
            "patches": [{"patch": "- op: remove\n  path: /spec/replicas", "target": {"kind": "Deployment"}}],
            "images": [{"name": "nginx", "newTag": "1.25"}],
            "commonMetadata": {"labels": {"team": "a"}},
            "postBuild": {"substitute": {"ENV": "prod", "N": 3}}});
        let (opts, vars) = from_spec(&spec).unwrap();
        assert_eq!(opts.target_namespace.as_deref(), Some("prod"));
        assert_eq!(
            opts.patches[0].target.as_ref().unwrap().kind.as_deref(),
            Some("Deployment")
        );
        assert_eq!(opts.images[0].new_tag.as_deref(), Some("1.25"));
        assert_eq!(vars.unwrap()["N"], "3");
        let mut k = Kustomization::default();
        opts.merge_into(&mut k);
        assert_eq!(k.namespace.as_deref(), Some("prod"));
        assert_eq!(k.labels[0].pairs["team"], "a");
    }

    #[test]
    fn spec_components_join_the_build_of_a_kustomization_and_of_a_plain_directory() {
        let repo = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let file = repo.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        };
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {a: '1'}\n";
        write("app/cm.yaml", cm);
        write("app/kustomization.yaml", "resources: [cm.yaml]\n");
        write("plain/cm.yaml", cm);
        write(
            "components/extra/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n\
             patches:\n- patch: '{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \
             \"metadata\": {\"name\": \"app\"}, \"data\": {\"b\": \"2\"}}'\n",
        );
        let spec = json!({"components": ["../components/extra"]});
        let (flux, _) = from_spec(&spec).unwrap();
        let options = crate::build::BuildOptions {
            flux,
            ..Default::default()
        };
        for dir in ["app", "plain"] {
            let objects =
                crate::build::render(repo.path(), std::path::Path::new(dir), &options).unwrap();
            assert_eq!(objects.len(), 1, "{dir}");
            assert_eq!(
                objects[0].value()["data"],
                json!({"a": "1", "b": "2"}),
                "{dir}"
            );
        }
    }
}
