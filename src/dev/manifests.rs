//! `-f DIR|FILE`: manifests read (a directory's `*.yaml`, `*.yml` and `*.json` files in
//! name order, not recursive; every document of a multi-document YAML stream) and
//! server-side applied, like `kubectl apply --server-side -f`. Objects without a
//! namespace go to the default one; missing namespaces are created. Kustomization files
//! are skipped.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    discovery::{Discovery, Scope},
};
use serde_json::{Value, json};

/// Field manager of what `mcp-operator dev` applies.
pub const FIELD_MANAGER: &str = "mcp-operator-dev";

/// One manifest document and where it came from.
#[derive(Clone, Debug)]
pub struct Document {
    pub source: PathBuf,
    pub object: Value,
}

/// An applied object: `kind namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.to_lowercase(), self.name),
            None => write!(f, "{} {}", self.kind.to_lowercase(), self.name),
        }
    }
}

/// The documents of `paths` (files, or directories of files).
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Document>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_manifest(p))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        docs.extend(
            parse(&text)
                .with_context(|| format!("parsing {}", file.display()))?
                .into_iter()
                .map(|object| Document {
                    source: file.clone(),
                    object,
                }),
        );
    }
    Ok(docs)
}

/// The objects of a YAML (or JSON) stream; empty documents and Kustomizations skipped.
pub fn parse(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(doc)?;
        if value.is_null() || value["kind"] == "Kustomization" {
            continue;
        }
        anyhow::ensure!(
            value["kind"].is_string() && value["apiVersion"].is_string(),
            "a document without kind or apiVersion"
        );
        if value["kind"] == "List" {
            out.extend(value["items"].as_array().cloned().unwrap_or_default());
        } else {
            out.push(value);
        }
    }
    Ok(out)
}

/// Server-side applies `docs` in order; namespaced objects without a namespace go to
/// `default_namespace`.
pub async fn apply(
    client: &Client,
    docs: &[Document],
    default_namespace: &str,
) -> anyhow::Result<Vec<Applied>> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .context("API discovery")?;
    let mut applied = Vec::new();
    for doc in docs {
        let a = apply_one(client, &discovery, &doc.object, default_namespace)
            .await
            .with_context(|| format!("applying a document of {}", doc.source.display()))?;
        applied.push(a);
    }
    Ok(applied)
}

async fn apply_one(
    client: &Client,
    discovery: &Discovery,
    object: &Value,
    default_namespace: &str,
) -> anyhow::Result<Applied> {
    let mut obj: DynamicObject = serde_json::from_value(object.clone())?;
    let types = obj.types.clone().context("apiVersion and kind")?;
    let gvk = GroupVersionKind::try_from(&types)?;
    let (resource, caps) = discovery
        .resolve_gvk(&gvk)
        .with_context(|| format!("the API server does not serve {}", types.kind))?;
    let name = obj.metadata.name.clone().context("metadata.name")?;
    let namespace = match caps.scope {
        Scope::Cluster => None,
        Scope::Namespaced => {
            let ns = obj
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_owned());
            ensure_namespace(client, &ns).await?;
            obj.metadata.namespace = Some(ns.clone());
            Some(ns)
        }
    };
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("{} {name}", types.kind))?;
    Ok(Applied {
        kind: types.kind,
        namespace,
        name,
    })
}

/// Creates namespace `ns` unless it exists.
pub async fn ensure_namespace(client: &Client, ns: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(ns).await?.is_some() {
        return Ok(());
    }
    let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` looks like a manifest file.
pub fn is_manifest(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_streams_and_lists() {
        let docs = parse(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "ConfigMap");
        assert!(parse("a: 1\n").is_err());
    }

    #[test]
    fn the_examples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let docs = load(&[dir]).unwrap();
        assert!(
            docs.iter()
                .filter(|d| d.object["kind"] == "McpServer")
                .count()
                >= 6
        );
        assert!(docs.iter().all(|d| is_manifest(&d.source)));
    }
}
