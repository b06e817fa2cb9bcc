//! Deletion: finalizers and deletionTimestamp (an object with finalizers is only marked;
//! it disappears when an update clears them), propagation policies, ownerReference
//! garbage collection, and the cascades Kubernetes controllers perform (a deleted
//! namespace takes its objects, a deleted CRD takes its custom resources).
//!
//! Garbage collection runs synchronously after each removal, where the real garbage
//! collector is an asynchronous controller: clients observe the same end state, sooner.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{
    error::{ApiResult, ApiServerError},
    meta,
    ops::Inner,
    resources::ResourceType,
    store::ObjectKey,
};

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete the owner now, dependents right after (the default).
    #[default]
    Background,
    /// Dependents first, then the owner (here: same end state as Background).
    Foreground,
    /// Keep dependents, removing their ownerReferences to the owner.
    Orphan,
}

impl Propagation {
    /// Parses `propagationPolicy`.
    pub fn parse(value: &str) -> ApiResult<Self> {
        match value {
            "" | "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(ApiServerError::bad_request(format!(
                "unknown propagationPolicy {other:?}"
            ))),
        }
    }
}

fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn owner_uids(object: &Value) -> Vec<&str> {
    let refs = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    refs.into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
        .collect()
}

impl Inner {
    /// Deletes an object: marks it when finalizers hold it, removes it otherwise.
    /// Returns the object's last state, as the real server does.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        propagation: Propagation,
    ) -> ApiResult<Value> {
        let key = ObjectKey::new(rt, namespace, name);
        let object = self.get(rt, namespace, name)?;
        if meta::has_finalizers(&object) {
            if meta::is_deleting(&object) {
                return Ok(object);
            }
            let mut marked = object;
            let metadata = meta::metadata_mut(&mut marked)?;
            metadata.insert("deletionTimestamp".into(), json!(meta::now()));
            metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
            return Ok(self.store.put(key, marked));
        }
        let removed = self
            .store
            .remove(&key)
            .ok_or_else(|| ApiServerError::not_found(rt, name))?;
        if propagation == Propagation::Orphan {
            self.orphan_dependents(uid_of(&removed));
        }
        self.after_removal(rt, &removed);
        Ok(removed)
    }

    /// Cascades after an object left the store.
    pub fn after_removal(&mut self, rt: &ResourceType, removed: &Value) {
        if rt.group.is_empty() && rt.plural == "namespaces" {
            let ns = meta::name_of(removed).to_owned();
            let keys: Vec<ObjectKey> = self
                .store
                .iter()
                .filter(|(k, _)| k.namespace == ns)
                .map(|(k, _)| k.clone())
                .collect();
            self.remove_all(keys);
        }
        if rt.is_crd() {
            let group = removed
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let plural = removed
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let keys: Vec<ObjectKey> = self
                .store
                .iter()
                .filter(|(k, _)| k.group == group && k.resource == plural)
                .map(|(k, _)| k.clone())
                .collect();
            self.remove_all(keys);
            self.refresh_crds();
        }
        self.collect_garbage();
    }

    fn remove_all(&mut self, keys: Vec<ObjectKey>) {
        for key in keys {
            self.store.remove(&key);
        }
    }

    /// Deletes, until nothing changes, every object all of whose owners are gone (an
    /// object with finalizers is marked instead, as a background deletion would).
    pub fn collect_garbage(&mut self) {
        loop {
            let present: HashSet<&str> = self.store.iter().map(|(_, v)| uid_of(v)).collect();
            let orphans: Vec<ObjectKey> = self
                .store
                .iter()
                .filter(|(_, v)| {
                    let owners = owner_uids(v);
                    !owners.is_empty()
                        && !meta::is_deleting(v)
                        && owners.iter().all(|uid| !present.contains(uid))
                })
                .map(|(k, _)| k.clone())
                .collect();
            if orphans.is_empty() {
                return;
            }
            for key in orphans {
                let Some(rt) = self
                    .registry
                    .find(&key.group, &key.version, &key.resource)
                    .cloned()
                else {
                    self.store.remove(&key);
                    continue;
                };
                // A dependent that finalizers hold is marked; it stays until they clear.
                let _ = self.delete(&rt, &key.namespace, &key.name, Propagation::Background);
            }
        }
    }

    fn orphan_dependents(&mut self, owner_uid: &str) {
        let dependents: Vec<(ObjectKey, Value)> = self
            .store
            .iter()
            .filter(|(_, v)| owner_uids(v).contains(&owner_uid))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, mut object) in dependents {
            if let Some(refs) = object
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            }
            self.store.put(key, object);
        }
    }
}
