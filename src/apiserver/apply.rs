//! Server-side apply (the field bookkeeping is in `managed_fields`):
//! - apply creates a missing object, merges the applied leaves into an existing one, and
//!   removes leaves the same manager applied before but now omits (unless another
//!   manager owns them);
//! - a leaf another manager owns and the apply changes to a different value is a 409
//!   conflict unless `force`, which moves the ownership.

use serde_json::Value;

use super::{
    error::{ApiResult, ApiServerError},
    managed_fields::{
        FieldSet, Managed, changes, entry_mut, leaves, managers, overlaps, remove_at, set_at,
        set_managers, sub_name, value_at,
    },
    meta::{self, Subresource},
    ops::Inner,
    resources::ResourceType,
    store::ObjectKey,
};

/// Parses an apply body (YAML, of which JSON is a subset).
pub fn parse_body(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| ApiServerError::bad_request(format!("error decoding YAML: {e}")))
}

/// Options of an apply request.
pub struct ApplyRequest<'a> {
    /// `fieldManager` (required for apply).
    pub manager: &'a str,
    /// `force`: take ownership of conflicting fields.
    pub force: bool,
    /// Which part of the object.
    pub sub: Subresource,
}

impl Inner {
    /// Server-side apply of `applied` to `namespace/name`.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut applied: Value,
        req: &ApplyRequest<'_>,
    ) -> ApiResult<Value> {
        if req.manager.is_empty() {
            return Err(ApiServerError::bad_request(
                "PATCH, application/apply-patch+yaml requests must have a fieldManager",
            ));
        }
        meta::check_type_and_namespace(rt, &mut applied, namespace)?;
        // A body without a name takes the URL's (clients such as kube-lease-manager send
        // apply patches that way, and real clusters accept them).
        if meta::name_of(&applied).is_empty()
            && let Some(meta) = applied.get_mut("metadata").and_then(|m| m.as_object_mut())
        {
            meta.insert("name".into(), Value::String(name.to_owned()));
        }
        if meta::name_of(&applied) != name {
            return Err(ApiServerError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name_of(&applied)
            )));
        }
        let applied_leaves = leaves(rt, &applied, req.sub);
        let key = ObjectKey::new(rt, namespace, name);
        let Some(old) = self.get(rt, namespace, name).ok() else {
            if req.sub == Subresource::Status {
                return Err(ApiServerError::not_found(rt, name));
            }
            let mut object = applied.clone();
            let mut entries = Vec::new();
            entry_mut(&mut entries, rt, req.manager, "Apply", req.sub).fields = applied_leaves;
            set_managers(&mut object, &entries);
            let object = meta::prepare_create(rt, object, namespace)?;
            return self.commit(rt, key, object, None);
        };
        let mut entries = managers(&old);
        let mine = |e: &Managed| {
            e.manager == req.manager && e.operation == "Apply" && e.subresource == sub_name(req.sub)
        };
        let mut conflicts = Vec::new();
        for entry in entries.iter_mut().filter(|e| !mine(e)) {
            let taken: FieldSet = entry
                .fields
                .iter()
                .filter(|owned| {
                    applied_leaves
                        .iter()
                        .any(|p| changes(&old, &applied, p) && overlaps(p, owned))
                })
                .cloned()
                .collect();
            for path in &taken {
                conflicts.push((entry.manager.clone(), format!(".{}", path.join("."))));
                entry.fields.remove(path);
            }
        }
        if !conflicts.is_empty() && !req.force {
            return Err(ApiServerError::apply_conflict(&conflicts));
        }
        let previous = entries
            .iter()
            .find(|e| mine(e))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let mut object = old.clone();
        for path in previous.difference(&applied_leaves) {
            let owned_elsewhere = entries
                .iter()
                .filter(|e| !mine(e))
                .any(|e| e.fields.iter().any(|p| overlaps(p, path)));
            if !owned_elsewhere {
                remove_at(&mut object, path);
            }
        }
        for path in &applied_leaves {
            if let Some(value) = value_at(&applied, path)
                && changes(&object, &applied, path)
            {
                set_at(&mut object, path, value.clone());
            }
        }
        entry_mut(&mut entries, rt, req.manager, "Apply", req.sub).fields = applied_leaves;
        set_managers(&mut object, &entries);
        let object = meta::prepare_update(rt, object, &old, req.sub)?;
        self.commit(rt, key, object, Some(&old))
    }
}
