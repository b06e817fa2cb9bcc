//! Deletion: finalizers and deletionTimestamp (an object with finalizers is only marked;
//! it disappears when an update clears them), propagation policies, ownerReference
//! garbage collection, and the cascades Kubernetes controllers perform (a deleted
//! namespace takes its objects, a deleted CRD takes its custom resources).
//!
//! Garbage collection follows kube-controller-manager's collector: an ownerReference is
//! resolved by kind and name in the dependent's namespace (cluster-scoped owners: no
//! namespace), and the owner is there only if it has the referenced uid. An object all
//! of whose owners are absent is deleted (background); one with some owners absent
//! loses those references; one with a reference that cannot be resolved (a kind nobody
//! serves, a namespaced owner of a cluster-scoped object) is left alone. The collector
//! looks at every object after each removal, and at each created or updated object
//! (a child written after its owner's deletion, or pointing at an old uid of a name
//! taken again, would otherwise live forever). It runs synchronously, where the real one
//! is an asynchronous controller: clients observe the same end state, sooner.

use serde_json::{Value, json};

use crate::admission::FieldErrorKind;

use super::{
    error::{ApiResult, ApiServerError},
    events, meta,
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
            other => Err(ApiServerError::invalid_options(
                "DeleteOptions",
                "propagationPolicy",
                FieldErrorKind::Unsupported,
                &format!("{other:?}"),
                "supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"",
            )),
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
    owner_references(object)
        .iter()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
        .collect()
}

fn owner_references(object: &Value) -> &[Value] {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// What the collector finds behind one ownerReference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// An object of that kind and name with that uid exists.
    Present,
    /// None does: deleted, recreated under another uid, or in another namespace.
    Absent,
    /// The reference cannot be looked up; the real collector retries, never deletes.
    Unresolvable,
}

/// What the collector does with one object.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing.
    Keep,
    /// Every owner is absent: delete it.
    Collect,
    /// Some owners are absent, some present: drop the references to these uids.
    DropReferences(Vec<String>),
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
            let stored = self.store.put(key, events::to_storage(rt, marked));
            return Ok(events::served(rt, stored));
        }
        let removed = self
            .store
            .remove(&key)
            .ok_or_else(|| ApiServerError::not_found(rt, name))?;
        if propagation == Propagation::Orphan {
            self.orphan_dependents(uid_of(&removed));
        }
        self.after_removal(rt, &removed);
        Ok(events::served(rt, removed))
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

    /// Applies the collector to every object until nothing changes: deletes each object
    /// all of whose owners are absent (one with finalizers is marked instead, as a
    /// background deletion would) and drops references to absent owners of the others.
    pub fn collect_garbage(&mut self) {
        loop {
            let work: Vec<(ObjectKey, Verdict)> = self
                .store
                .iter()
                .map(|(k, v)| (k.clone(), self.verdict(&k.namespace, v)))
                .filter(|(_, verdict)| *verdict != Verdict::Keep)
                .collect();
            if work.is_empty() {
                return;
            }
            for (key, verdict) in work {
                self.carry_out(&key, verdict);
            }
        }
    }

    /// Applies the collector to one object just written: a dependent created or updated
    /// after its owners were deleted goes at once.
    pub fn collect_if_orphaned(&mut self, key: &ObjectKey) {
        let Some(object) = self.store.get(key) else {
            return;
        };
        let verdict = self.verdict(&key.namespace, object);
        if verdict != Verdict::Keep {
            self.carry_out(key, verdict);
        }
    }

    fn carry_out(&mut self, key: &ObjectKey, verdict: Verdict) {
        match verdict {
            Verdict::Keep => {}
            Verdict::Collect => {
                let Some(rt) = self
                    .registry
                    .find(&key.group, &key.version, &key.resource)
                    .cloned()
                else {
                    self.store.remove(key);
                    return;
                };
                // A dependent that finalizers hold is marked; it stays until they clear.
                let _ = self.delete(&rt, &key.namespace, &key.name, Propagation::Background);
            }
            Verdict::DropReferences(uids) => {
                let Some(mut object) = self.store.get(key).cloned() else {
                    return;
                };
                if let Some(refs) = object
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| {
                        !uids
                            .iter()
                            .any(|uid| r.get("uid").and_then(Value::as_str) == Some(uid))
                    });
                }
                self.store.put(key.clone(), object);
            }
        }
    }

    /// The collector's decision for `object` (stored in `namespace`).
    fn verdict(&self, namespace: &str, object: &Value) -> Verdict {
        let refs = owner_references(object);
        if refs.is_empty() || meta::is_deleting(object) {
            return Verdict::Keep;
        }
        let owners: Vec<Owner> = refs.iter().map(|r| self.owner(namespace, r)).collect();
        if owners.contains(&Owner::Unresolvable) {
            return Verdict::Keep;
        }
        if owners.iter().all(|o| *o == Owner::Absent) {
            return Verdict::Collect;
        }
        let absent: Vec<String> = refs
            .iter()
            .zip(&owners)
            .filter(|(_, o)| **o == Owner::Absent)
            .filter_map(|(r, _)| r.get("uid").and_then(Value::as_str).map(str::to_owned))
            .collect();
        if absent.is_empty() {
            Verdict::Keep
        } else {
            Verdict::DropReferences(absent)
        }
    }

    /// Looks up the owner a reference names, as the real collector does: by kind and
    /// name, in the dependent's namespace unless the kind is cluster-scoped, then the uid.
    fn owner(&self, namespace: &str, reference: &Value) -> Owner {
        let field = |key: &str| {
            reference
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let group = field("apiVersion")
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        let kind = field("kind");
        let types: Vec<&ResourceType> = self
            .registry
            .all()
            .iter()
            .filter(|t| t.group == group && t.kind == kind)
            .collect();
        let Some(first) = types.first() else {
            return Owner::Unresolvable;
        };
        if first.namespaced && namespace.is_empty() {
            return Owner::Unresolvable;
        }
        let found = types.iter().find_map(|rt| {
            self.store
                .get(&ObjectKey::new(rt, namespace, field("name")))
        });
        match found {
            Some(owner) if uid_of(owner) == field("uid") => Owner::Present,
            _ => Owner::Absent,
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
            // The last reference gone, the field goes too (as Go leaves an empty list out).
            if object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
                && let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
            {
                metadata.remove("ownerReferences");
            }
            self.store.put(key, object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Inner {
        Inner::new(1000)
    }

    fn rt(inner: &Inner, group: &str, plural: &str) -> ResourceType {
        inner.registry.find(group, "v1", plural).cloned().unwrap()
    }

    /// Creates a ConfigMap; returns its ownerReference.
    fn owner(inner: &mut Inner, namespace: &str, name: &str) -> Value {
        let rt = rt(inner, "", "configmaps");
        let created = inner
            .create(
                &rt,
                namespace,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
                "test",
            )
            .unwrap();
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid_of(&created), "controller": true, "blockOwnerDeletion": true})
    }

    fn secret(name: &str, owners: &[&Value], finalizers: &[&str]) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers}})
    }

    fn create_secret(inner: &mut Inner, namespace: &str, object: Value) {
        let rt = rt(inner, "", "secrets");
        inner.create(&rt, namespace, object, "test").unwrap();
    }

    fn stored(inner: &Inner, namespace: &str, name: &str) -> Option<Value> {
        let rt = rt(inner, "", "secrets");
        inner.get(&rt, namespace, name).ok()
    }

    fn delete_configmap(inner: &mut Inner, namespace: &str, name: &str) {
        let rt = rt(inner, "", "configmaps");
        inner
            .delete(&rt, namespace, name, Propagation::Background)
            .unwrap();
    }

    #[test]
    fn a_dependent_created_after_its_owner_was_deleted_is_collected() {
        let mut inner = inner();
        let gone = owner(&mut inner, "default", "server");
        delete_configmap(&mut inner, "default", "server");
        create_secret(&mut inner, "default", secret("child", &[&gone], &[]));
        assert_eq!(stored(&inner, "default", "child"), None);
    }

    #[test]
    fn an_owner_recreated_under_the_same_name_is_another_owner() {
        let mut inner = inner();
        let old = owner(&mut inner, "default", "server");
        delete_configmap(&mut inner, "default", "server");
        let new = owner(&mut inner, "default", "server");
        create_secret(&mut inner, "default", secret("stale", &[&old], &[]));
        create_secret(&mut inner, "default", secret("fresh", &[&new], &[]));
        assert_eq!(stored(&inner, "default", "stale"), None);
        assert!(stored(&inner, "default", "fresh").is_some());
    }

    #[test]
    fn an_update_that_points_at_an_absent_owner_collects_the_object() {
        let mut inner = inner();
        let gone = owner(&mut inner, "default", "server");
        delete_configmap(&mut inner, "default", "server");
        create_secret(&mut inner, "default", secret("child", &[], &[]));
        let rt = rt(&inner, "", "secrets");
        let mut object = stored(&inner, "default", "child").unwrap();
        object["metadata"]["ownerReferences"] = json!([gone]);
        inner
            .update(
                &rt,
                "default",
                "child",
                object,
                meta::Subresource::Main,
                "test",
            )
            .unwrap();
        assert_eq!(stored(&inner, "default", "child"), None);
    }

    #[test]
    fn an_owner_in_another_namespace_counts_as_absent() {
        let mut inner = inner();
        let elsewhere = owner(&mut inner, "kube-system", "server");
        create_secret(&mut inner, "default", secret("child", &[&elsewhere], &[]));
        assert_eq!(stored(&inner, "default", "child"), None);
        // The owner itself is untouched.
        let cm = rt(&inner, "", "configmaps");
        assert!(inner.get(&cm, "kube-system", "server").is_ok());
    }

    #[test]
    fn dangling_references_are_dropped_while_another_owner_lives() {
        let mut inner = inner();
        let gone = owner(&mut inner, "default", "old");
        delete_configmap(&mut inner, "default", "old");
        let alive = owner(&mut inner, "default", "alive");
        create_secret(
            &mut inner,
            "default",
            secret("child", &[&gone, &alive], &[]),
        );
        let kept = stored(&inner, "default", "child").expect("a live owner keeps it");
        assert_eq!(
            kept.pointer("/metadata/ownerReferences"),
            Some(&json!([alive]))
        );
    }

    #[test]
    fn a_collected_dependent_with_finalizers_is_only_marked() {
        let mut inner = inner();
        let gone = owner(&mut inner, "default", "server");
        delete_configmap(&mut inner, "default", "server");
        create_secret(
            &mut inner,
            "default",
            secret("held", &[&gone], &["example.com/hold"]),
        );
        let held = stored(&inner, "default", "held").expect("finalizers hold it");
        assert!(meta::is_deleting(&held));
    }

    #[test]
    fn references_the_collector_cannot_resolve_keep_the_object() {
        // Not a bug to fix: the real collector cannot look such owners up and never
        // deletes the dependent (an unknown kind; a namespaced owner of a cluster-scoped
        // object).
        let mut inner = inner();
        let unknown =
            json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "name": "g", "uid": "0000"});
        create_secret(&mut inner, "default", secret("child", &[&unknown], &[]));
        assert!(stored(&inner, "default", "child").is_some());
        let namespaced = owner(&mut inner, "default", "server");
        let ns = rt(&inner, "", "namespaces");
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "ownerReferences": [namespaced]}});
        inner.create(&ns, "", object, "test").unwrap();
        delete_configmap(&mut inner, "default", "server");
        assert!(inner.get(&ns, "", "team").is_ok());
    }

    #[test]
    fn deleting_an_owner_still_cascades() {
        let mut inner = inner();
        let server = owner(&mut inner, "default", "server");
        create_secret(&mut inner, "default", secret("child", &[&server], &[]));
        assert!(stored(&inner, "default", "child").is_some());
        delete_configmap(&mut inner, "default", "server");
        assert_eq!(stored(&inner, "default", "child"), None);
    }
}
