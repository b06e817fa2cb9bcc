//! Writing children: server-side apply (field manager `mcp-operator`, force) only when the
//! desired object differs from what is stored, and pruning owned children the spec no
//! longer wants. "Differs" means: the hash of the desired object (kept in an annotation)
//! changed, or a field we set was changed by someone else. Fields we never set (server
//! defaults, other managers) are ignored, so a settled cluster sees no writes. Neither
//! path ever writes or deletes an object without the McpServer's controller
//! ownerReference ([`super::ownership`]).

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    context::Context,
    error::{Error, is_not_found},
    ownership::{self, ChildConflict, Holder},
    shared::FIELD_MANAGER,
};
use crate::api::McpServer;

/// Annotation holding the SHA-256 of the object as last applied.
pub const HASH_ANNOTATION: &str = "mcp-operator.dev/applied-hash";
/// Label every child carries.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label naming the McpServer a child belongs to.
pub const INSTANCE: &str = "app.kubernetes.io/instance";

/// A kind of child the controller applies and prunes.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// What happened to one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// It did not exist and was applied.
    Created,
    /// It differed and was applied.
    Updated,
    /// It was up to date: nothing sent.
    Unchanged,
}

/// The stored object of kind `K` named `name` in `ns`, as JSON (None: absent).
pub async fn read<K: Child>(ctx: &Context, ns: &str, name: &str) -> Result<Option<Value>, Error> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match api.get(name).await {
        Ok(obj) => Ok(Some(
            serde_json::to_value(&obj).map_err(|e| Error::serde(name, e))?,
        )),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Applies `desired` (in `server`'s namespace) when it differs from what is stored;
/// reads the stored object first.
pub async fn apply<K: Child>(
    ctx: &Context,
    server: &McpServer,
    desired: K,
) -> Result<(Change, Value), Error> {
    let ns = server.namespace().unwrap_or_default();
    let current = read::<K>(ctx, &ns, &desired.name_any()).await?;
    apply_read(ctx, server, desired, current.as_ref()).await
}

/// Applies `desired` when it differs from `current`, the stored object as read by the
/// caller ([`read`]), and returns what happened with the object as stored now (the
/// API server's answer, or `current` when nothing was sent). Never writes over an object
/// `server` does not control ([`Error::ChildConflict`]): callers check with
/// [`ownership::first_conflict`] first, this is the last line.
pub async fn apply_read<K: Child>(
    ctx: &Context,
    server: &McpServer,
    desired: K,
    current: Option<&Value>,
) -> Result<(Change, Value), Error> {
    let ns = server.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let name = desired.name_any();
    let uid = server.uid().unwrap_or_default();
    if let Some(current) = current
        && ownership::holder(Some(current), &uid) != Holder::Ours
    {
        return Err(ChildConflict::new(K::kind(&()), name, current).into());
    }
    let mut value = serde_json::to_value(&desired).map_err(|e| Error::serde(&name, e))?;
    ensure_owned(&mut value, server);
    let hash = hash_of(&value);
    set_annotation(&mut value, HASH_ANNOTATION, &hash);
    let change = match current {
        None => Change::Created,
        Some(current) if needs_apply(&value, current, &hash) => Change::Updated,
        Some(current) => return Ok((Change::Unchanged, current.clone())),
    };
    ctx.may_write()?;
    let stored = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await?;
    let stored = serde_json::to_value(&stored).map_err(|e| Error::serde(&name, e))?;
    Ok((change, stored))
}

/// Deletes `current`, the stored child of kind `K` named `name` that the spec no longer
/// wants, when it is owned by `server` (controller ownerReference with the server's uid)
/// and not already being deleted; the delete is conditional on its uid. Every child kind
/// has one deterministic name per server (`<server>` or `<server>-gateway`), read once
/// per reconcile, so pruning needs no list. Returns whether it was deleted.
pub async fn prune_read<K: Child>(
    ctx: &Context,
    server: &McpServer,
    name: &str,
    current: &Value,
) -> Result<bool, Error> {
    let uid = server.uid().unwrap_or_default();
    if !ownership::may_delete(current, &uid) {
        return Ok(false);
    }
    ctx.may_write()?;
    let ns = server.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let precondition = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: current
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_owned),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &precondition).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the stored object must be re-applied: our last-applied hash differs, or a
/// field we set was changed.
pub fn needs_apply(desired: &Value, current: &Value, hash: &str) -> bool {
    let stored_hash = current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(HASH_ANNOTATION))
        .and_then(Value::as_str);
    stored_hash != Some(hash) || !is_subset(desired, current)
}

/// Whether every field set in `want` has the same value in `have`. Empty lists, empty
/// maps and nulls in `want` match a missing field (servers drop them).
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, wv)| match h.get(k) {
            Some(hv) => is_subset(wv, hv),
            None => is_empty(wv),
        }),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (w, Value::Null) => is_empty(w),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (w, h) => w == h,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}

/// Lowercase hex SHA-256 of the JSON of `value`.
pub fn hash_of(value: &Value) -> String {
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
}

fn set_annotation(value: &mut Value, key: &str, v: &str) {
    let meta = &mut value["metadata"];
    if !meta["annotations"].is_object() {
        meta["annotations"] = Value::Object(Default::default());
    }
    meta["annotations"][key] = Value::String(v.to_owned());
}

/// Makes sure the child names `server` as its controller and carries the `managed-by` and
/// `instance` labels (the builders set them; this only fills gaps). Pruning goes by name
/// and ownerReference, not by these labels.
fn ensure_owned(value: &mut Value, server: &McpServer) {
    let meta = &mut value["metadata"];
    if !meta["labels"].is_object() {
        meta["labels"] = Value::Object(Default::default());
    }
    let labels = meta["labels"].as_object_mut().expect("object");
    labels
        .entry(MANAGED_BY)
        .or_insert_with(|| Value::String("mcp-operator".into()));
    labels
        .entry(INSTANCE)
        .or_insert_with(|| Value::String(server.name_any()));
    let uid = server.uid().unwrap_or_default();
    let has_owner = meta["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()));
    if !has_owner && let Some(owner) = server.controller_owner_ref(&()) {
        let owner = serde_json::to_value(owner).expect("owner reference serializes");
        match meta["ownerReferences"].as_array_mut() {
            Some(refs) => refs.push(owner),
            None => meta["ownerReferences"] = Value::Array(vec![owner]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_defaults_and_empty_fields() {
        let want = json!({"spec": {"replicas": 1, "ports": [{"port": 8080}], "x": []}});
        let have = json!({"spec": {"replicas": 1, "ports": [{"port": 8080, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}});
        assert!(is_subset(&want, &have));
        let drifted = json!({"spec": {"replicas": 2, "ports": [{"port": 8080}]}});
        assert!(!is_subset(&want, &drifted));
        let fewer = json!({"spec": {"replicas": 1, "ports": []}});
        assert!(!is_subset(&want, &fewer));
    }

    #[test]
    fn hash_change_forces_apply() {
        let want = json!({"metadata": {"name": "a"}});
        let have = json!({"metadata": {"name": "a", "annotations": {HASH_ANNOTATION: "old"}}});
        assert!(needs_apply(&want, &have, "new"));
        assert!(!needs_apply(&want, &have, "old"));
    }
}
