//! Labels, selectors, object metadata and the controller owner reference shared by every
//! object built for an McpServer.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::BuildError;
use crate::api::McpServer;

/// `app.kubernetes.io/managed-by`: every object the operator creates.
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_KEY`]; also the server-side-apply field manager.
pub const MANAGED_BY: &str = "mcp-operator";
/// `app.kubernetes.io/instance`: the McpServer's name.
pub const INSTANCE_KEY: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/name`: what the object is part of (the MCP server workload).
pub const NAME_KEY: &str = "app.kubernetes.io/name";
/// Value of [`NAME_KEY`] on objects built for an McpServer.
pub const NAME: &str = "mcp-server";
/// `app.kubernetes.io/part-of`.
pub const PART_OF_KEY: &str = "app.kubernetes.io/part-of";
/// Value of [`PART_OF_KEY`].
pub const PART_OF: &str = "mcp-operator";

/// Every label of an object built for the server `server`.
pub fn labels(server: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_KEY.to_owned(), MANAGED_BY.to_owned()),
        (INSTANCE_KEY.to_owned(), server.to_owned()),
        (NAME_KEY.to_owned(), NAME.to_owned()),
        (PART_OF_KEY.to_owned(), PART_OF.to_owned()),
    ])
}

/// The pod selector of the Deployment and the Service: name + instance. A Deployment's
/// selector is immutable, so it never grows.
pub fn selector(server: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_KEY.to_owned(), NAME.to_owned()),
        (INSTANCE_KEY.to_owned(), server.to_owned()),
    ])
}

/// Label selector (string form) matching every child of one server (e.g. for `kubectl get
/// -l`; the controller reads and prunes children by name, not by this selector). It names
/// `app.kubernetes.io/name: mcp-server` so a binding's Secret labelled with the same
/// instance name is never matched; only the owner reference proves a child is the server's.
pub fn children_selector(server: &str) -> String {
    format!("{MANAGED_BY_KEY}={MANAGED_BY},{NAME_KEY}={NAME},{INSTANCE_KEY}={server}")
}

/// The controller owner reference to the server (blockOwnerDeletion: foreground deletion
/// of the server waits for its children).
pub fn owner_reference(server: &McpServer) -> Result<OwnerReference, BuildError> {
    let mut owner = server
        .controller_owner_ref(&())
        .ok_or(BuildError::MissingMetadata {
            field: "metadata.uid",
        })?;
    owner.block_owner_deletion = Some(true);
    Ok(owner)
}

/// Metadata of a child object: name, namespace, labels, owner.
pub(crate) fn child_meta(name: impl Into<String>, target: &super::Target<'_>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(target.namespace.to_owned()),
        labels: Some(labels(target.name)),
        owner_references: Some(vec![target.owner.clone()]),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_is_a_subset_of_labels() {
        let all = labels("memory");
        for (k, v) in selector("memory") {
            assert_eq!(all.get(&k), Some(&v));
        }
        assert_eq!(
            children_selector("memory"),
            "app.kubernetes.io/managed-by=mcp-operator,app.kubernetes.io/name=mcp-server,app.kubernetes.io/instance=memory"
        );
    }

    #[test]
    fn owner_reference_needs_a_uid_and_blocks_deletion() {
        let mut server: McpServer = serde_yaml::from_str(
            "apiVersion: mcp-operator.dev/v1alpha1\nkind: McpServer\nmetadata: {name: m}\nspec: {transport: Stdio}",
        )
        .unwrap();
        assert!(owner_reference(&server).is_err());
        server.metadata.uid = Some("u-1".into());
        let owner = owner_reference(&server).unwrap();
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(owner.api_version, "mcp-operator.dev/v1alpha1");
        assert_eq!(owner.kind, "McpServer");
    }
}
