//! What `sluice install` installs: the manifests of `manifests/` (embedded in the binary), an
//! overlay for the chosen namespace, image and scheduling, rendered with sluice's own build
//! (`render`); and whether an agent already in the cluster conflicts (`conflict`, pure). I/O: the
//! manifests are written to a temporary directory to be built.

pub mod conflict;

use std::path::Path;

use serde_json::{Value, json};

use crate::build::{self, BuildOptions};

/// Every file under `manifests/`, by path. A test keeps this list equal to the directory.
pub const MANIFESTS: &[(&str, &str)] = &[
    (
        "kustomization.yaml",
        include_str!("../../manifests/kustomization.yaml"),
    ),
    ("crds.yaml", include_str!("../../manifests/crds.yaml")),
    (
        "agent/kustomization.yaml",
        include_str!("../../manifests/agent/kustomization.yaml"),
    ),
    (
        "agent/serviceaccount.yaml",
        include_str!("../../manifests/agent/serviceaccount.yaml"),
    ),
    (
        "agent/deployment.yaml",
        include_str!("../../manifests/agent/deployment.yaml"),
    ),
    (
        "agent/service.yaml",
        include_str!("../../manifests/agent/service.yaml"),
    ),
    (
        "cluster/kustomization.yaml",
        include_str!("../../manifests/cluster/kustomization.yaml"),
    ),
    (
        "cluster/namespace.yaml",
        include_str!("../../manifests/cluster/namespace.yaml"),
    ),
    (
        "cluster/rbac.yaml",
        include_str!("../../manifests/cluster/rbac.yaml"),
    ),
    (
        "namespace/kustomization.yaml",
        include_str!("../../manifests/namespace/kustomization.yaml"),
    ),
    (
        "namespace/rbac.yaml",
        include_str!("../../manifests/namespace/rbac.yaml"),
    ),
];

/// The namespace of the manifests as written.
pub const DEFAULT_NAMESPACE: &str = "sluice-system";
/// The name of the agent's Deployment.
pub const DEPLOYMENT: &str = "sluice";
/// Label on the agent's Deployment saying how it was installed.
pub const MODE_LABEL: &str = "sluice.dev/install-mode";
/// Label selecting the agent's Deployment and Pods.
pub const APP_SELECTOR: &str = "app.kubernetes.io/name=sluice";

/// Cluster-wide (ClusterRoleBinding to cluster-admin, CRDs included) or one namespace (a Role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Cluster,
    Namespace,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cluster => "cluster",
            Mode::Namespace => "namespace",
        }
    }

    pub fn parse(label: &str) -> Option<Mode> {
        match label {
            "cluster" => Some(Mode::Cluster),
            "namespace" => Some(Mode::Namespace),
            _ => None,
        }
    }
}

/// What to install where.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub namespace: String,
    /// The agent's image, `name[:tag]` or `name@digest`.
    pub image: String,
    pub replicas: u32,
    pub image_pull_secrets: Vec<String>,
    pub node_selector: Vec<(String, String)>,
    /// Tolerations as `KEY[=VALUE]:EFFECT`.
    pub tolerations: Vec<String>,
    /// Extra arguments of `sluice agent`.
    pub agent_args: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("writing the manifests to a temporary directory failed")]
    Write(#[source] std::io::Error),
    #[error("--toleration {0:?} is not KEY[=VALUE]:EFFECT")]
    Toleration(String),
    #[error("rendering the install manifests failed: {0}")]
    Render(String),
}

/// The objects to install, in apply order: the CRDs first (namespace mode renders them from
/// `manifests/` too, since the namespace kustomization assumes them), then the agent.
pub fn render(options: &Options) -> Result<Vec<Value>, InstallError> {
    let dir = tempfile::tempdir().map_err(InstallError::Write)?;
    for (path, content) in MANIFESTS {
        write(&dir.path().join("manifests").join(path), content)?;
    }
    let overlay = overlay(options)?;
    let text = serde_json::to_string_pretty(&overlay).expect("overlays serialize");
    write(&dir.path().join("install/kustomization.yaml"), &text)?;
    let build = |path: &str| {
        build::render(dir.path(), &dir.path().join(path), &BuildOptions::default())
            .map_err(|e| InstallError::Render(e.to_string()))
    };
    let mut objects = build("install")?;
    if options.mode == Mode::Namespace {
        objects.extend(build("manifests")?);
    }
    build::apply_order(&mut objects);
    Ok(objects.into_iter().map(|o| o.into_value()).collect())
}

fn write(path: &Path, content: &str) -> Result<(), InstallError> {
    std::fs::create_dir_all(path.parent().expect("paths have a parent"))
        .map_err(InstallError::Write)?;
    std::fs::write(path, content).map_err(InstallError::Write)
}

/// The kustomization over `manifests/<mode>` that sets what the options say.
fn overlay(options: &Options) -> Result<Value, InstallError> {
    let (name, tag, digest) = split_image(&options.image);
    let mut image = json!({"name": "sluice", "newName": name});
    if let Some(tag) = tag {
        image["newTag"] = tag.into();
    }
    if let Some(digest) = digest {
        image["digest"] = digest.into();
    }
    let mut ops =
        vec![json!({"op": "replace", "path": "/spec/replicas", "value": options.replicas})];
    if !options.image_pull_secrets.is_empty() {
        let secrets: Vec<Value> = options
            .image_pull_secrets
            .iter()
            .map(|s| json!({"name": s}))
            .collect();
        ops.push(
            json!({"op": "add", "path": "/spec/template/spec/imagePullSecrets", "value": secrets}),
        );
    }
    if !options.node_selector.is_empty() {
        let selector: serde_json::Map<String, Value> = options
            .node_selector
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        ops.push(
            json!({"op": "add", "path": "/spec/template/spec/nodeSelector", "value": selector}),
        );
    }
    for arg in &options.agent_args {
        ops.push(
            json!({"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": arg}),
        );
    }
    if !options.tolerations.is_empty() {
        let tolerations = options
            .tolerations
            .iter()
            .map(|t| toleration(t))
            .collect::<Result<Vec<_>, _>>()?;
        ops.push(
            json!({"op": "add", "path": "/spec/template/spec/tolerations", "value": tolerations}),
        );
    }
    let mut patches = vec![json!({
        "target": {"kind": "Deployment", "name": DEPLOYMENT},
        "patch": serde_json::to_string(&ops).expect("patches serialize"),
    })];
    if options.mode == Mode::Cluster {
        let rename =
            json!([{"op": "replace", "path": "/metadata/name", "value": options.namespace}]);
        patches.push(json!({
            "target": {"kind": "Namespace", "name": DEFAULT_NAMESPACE},
            "patch": rename.to_string(),
        }));
    }
    Ok(json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": options.namespace,
        "resources": [format!("../manifests/{}", options.mode.as_str())],
        "images": [image],
        "patches": patches,
    }))
}

/// `name[:tag][@digest]`, with a registry port (`host:5000/name`) not taken for a tag.
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].split_once(':') {
        Some((_, tag)) => (
            &rest[..slash + rest[slash..].len() - tag.len() - 1],
            Some(tag),
            digest,
        ),
        None => (rest, None, digest),
    }
}

/// `KEY[=VALUE]:EFFECT` as a toleration.
fn toleration(text: &str) -> Result<Value, InstallError> {
    let bad = || InstallError::Toleration(text.into());
    let (key_value, effect) = text.rsplit_once(':').ok_or_else(bad)?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") || key_value.is_empty() {
        return Err(bad());
    }
    Ok(match key_value.split_once('=') {
        Some((key, value)) => {
            json!({"key": key, "operator": "Equal", "value": value, "effect": effect})
        }
        None => json!({"key": key_value, "operator": "Exists", "effect": effect}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(mode: Mode) -> Options {
        Options {
            mode,
            namespace: "ops".into(),
            image: "registry.test:5000/team/sluice:v1".into(),
            replicas: 2,
            image_pull_secrets: vec!["registry".into()],
            node_selector: vec![("sluice.dev/node".into(), "real".into())],
            tolerations: vec!["sluice.dev/node=real:NoSchedule".into()],
            agent_args: vec!["--log-level=debug".into()],
        }
    }

    fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
        objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    #[test]
    fn every_manifest_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let mut on_disk: Vec<String> = ignore::WalkBuilder::new(&root)
            .build()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
            .map(|e| e.path().strip_prefix(&root).unwrap().display().to_string())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = MANIFESTS.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn a_cluster_install_carries_the_options() {
        let objects = render(&options(Mode::Cluster)).unwrap();
        assert_eq!(objects[0]["kind"], "Namespace", "namespaces and CRDs first");
        assert_eq!(find(&objects, "Namespace")[0]["metadata"]["name"], "ops");
        assert_eq!(
            find(&objects, "CustomResourceDefinition").len(),
            crate::cli::crds::all().len()
        );
        let binding = find(&objects, "ClusterRoleBinding")[0];
        assert_eq!(binding["subjects"][0]["namespace"], "ops");
        let deployment = find(&objects, "Deployment")[0];
        assert_eq!(deployment["metadata"]["namespace"], "ops");
        assert_eq!(deployment["metadata"]["labels"][MODE_LABEL], "cluster");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["image"],
            "registry.test:5000/team/sluice:v1"
        );
        assert_eq!(pod["imagePullSecrets"][0]["name"], "registry");
        assert_eq!(pod["nodeSelector"]["sluice.dev/node"], "real");
        assert_eq!(pod["tolerations"][0]["operator"], "Equal");
        let args = pod["containers"][0]["args"].as_array().unwrap();
        assert_eq!(args.last().unwrap(), "--log-level=debug");
        assert!(find(&objects, "Role").is_empty());
    }

    #[test]
    fn a_namespace_install_has_a_role_and_watches_its_namespace() {
        let objects = render(&options(Mode::Namespace)).unwrap();
        assert!(find(&objects, "ClusterRoleBinding").is_empty());
        assert!(
            find(&objects, "Namespace").is_empty(),
            "the namespace exists already"
        );
        assert_eq!(find(&objects, "Role")[0]["metadata"]["namespace"], "ops");
        assert_eq!(
            find(&objects, "RoleBinding")[0]["subjects"][0]["namespace"],
            "ops"
        );
        let deployment = find(&objects, "Deployment")[0];
        assert_eq!(deployment["metadata"]["labels"][MODE_LABEL], "namespace");
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap();
        assert!(env.iter().any(|e| e["name"] == "SLUICE_WATCH_NAMESPACE"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"));
        assert!(!find(&objects, "CustomResourceDefinition").is_empty());
    }

    #[test]
    fn image_references_and_tolerations_parse() {
        assert_eq!(split_image("sluice"), ("sluice", None, None));
        assert_eq!(split_image("h:5000/s:v1"), ("h:5000/s", Some("v1"), None));
        assert_eq!(split_image("h:5000/s"), ("h:5000/s", None, None));
        assert_eq!(split_image("s@sha256:ab"), ("s", None, Some("sha256:ab")));
        assert_eq!(toleration("k:NoSchedule").unwrap()["operator"], "Exists");
        assert!(toleration("k=v").is_err());
        assert!(toleration("k=v:Sometimes").is_err());
    }
}
