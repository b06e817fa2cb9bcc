//! Server-side apply and `managedFields`, simplified but honest:
//! - a field set is the set of leaf paths of an object (maps are walked, lists and
//!   scalars are atomic leaves: no `k:`/`v:` list-item keys yet), rendered as FieldsV1;
//! - apply creates a missing object, merges the applied leaves into an existing one, and
//!   removes leaves the same manager applied before but now omits (unless another
//!   manager owns them);
//! - a leaf another manager owns and the apply changes to a different value is a 409
//!   conflict unless `force`, which moves the ownership;
//! - non-apply writes (create, update, patch) record an `Update` entry owning the
//!   leaves they changed, taking them from other managers, as the real server does.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    error::{ApiResult, ApiServerError},
    meta::{self, Subresource},
    ops::Inner,
    resources::ResourceType,
    store::ObjectKey,
};

type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

/// Metadata fields a manager can own; the rest is server-managed identity.
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// One managedFields entry.
#[derive(Clone, Debug)]
struct Managed {
    manager: String,
    operation: String,
    subresource: Option<String>,
    api_version: String,
    time: String,
    fields: FieldSet,
}

fn collect_leaves(value: &Value, prefix: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                collect_leaves(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The leaves of `object` a manager can own in `sub`.
fn leaves(rt: &ResourceType, object: &Value, sub: Subresource) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (key, value) in map {
        let in_scope = match sub {
            Subresource::Status => key == "status",
            Subresource::Main => {
                !(rt.status && key == "status") && key != "apiVersion" && key != "kind"
            }
        };
        if !in_scope {
            continue;
        }
        if key == "metadata" {
            for field in OWNED_METADATA {
                if let Some(v) = value.get(field) {
                    collect_leaves(v, &mut vec!["metadata".into(), field.into()], &mut out);
                }
            }
        } else {
            collect_leaves(value, &mut vec![key.clone()], &mut out);
        }
    }
    out
}

fn value_at<'a>(object: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

fn set_at(object: &mut Value, path: &Path, value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = object;
    for key in parents {
        if !cursor.get(key).is_some_and(Value::is_object) {
            cursor[key.as_str()] = json!({});
        }
        cursor = &mut cursor[key.as_str()];
    }
    cursor[last.as_str()] = value;
}

fn remove_at(object: &mut Value, path: &Path) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let parent = parents.iter().try_fold(&mut *object, |v, k| v.get_mut(k));
    if let Some(map) = parent.and_then(Value::as_object_mut) {
        map.remove(last);
    }
}

/// Whether applying `path` changes `current`. An empty map applied over a map only
/// asserts the map exists: it merges, it does not wipe (or conflict with) its children.
fn changes(current: &Value, applied: &Value, path: &Path) -> bool {
    match (value_at(current, path), value_at(applied, path)) {
        (Some(Value::Object(_)), Some(Value::Object(a))) if a.is_empty() => false,
        (now, wanted) => now != wanted,
    }
}

fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn to_fields_v1(fields: &FieldSet) -> Value {
    let mut root = json!({});
    for path in fields {
        let keys: Path = path.iter().map(|k| format!("f:{k}")).collect();
        set_at(&mut root, &keys, json!({}));
    }
    root
}

fn from_fields_v1(value: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Some(map) = value.as_object() else { return };
    let children: Vec<(&String, &Value)> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
    // A leaf, or list-item keys (`k:`, `v:`, `i:`) from a real server: owned as a whole.
    if children.is_empty() || children.iter().any(|(k, _)| !k.starts_with("f:")) {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (key, child) in children {
        prefix.push(key.trim_start_matches("f:").to_owned());
        from_fields_v1(child, prefix, out);
        prefix.pop();
    }
}

fn managers(object: &Value) -> Vec<Managed> {
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    let str_of = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    entries
        .into_iter()
        .flatten()
        .map(|e| {
            let mut fields = FieldSet::new();
            from_fields_v1(
                e.get("fieldsV1").unwrap_or(&Value::Null),
                &mut Vec::new(),
                &mut fields,
            );
            Managed {
                manager: str_of(e, "manager"),
                operation: str_of(e, "operation"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                api_version: str_of(e, "apiVersion"),
                time: str_of(e, "time"),
                fields,
            }
        })
        .collect()
}

fn set_managers(object: &mut Value, entries: &[Managed]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version, "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields)});
            if let Some(sub) = &e.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    if let Ok(metadata) = meta::metadata_mut(object) {
        metadata.insert("managedFields".into(), Value::Array(rendered));
    }
}

fn sub_name(sub: Subresource) -> Option<String> {
    (sub == Subresource::Status).then(|| "status".to_owned())
}

fn entry_mut<'a>(
    entries: &'a mut Vec<Managed>,
    rt: &ResourceType,
    manager: &str,
    operation: &str,
    sub: Subresource,
) -> &'a mut Managed {
    let subresource = sub_name(sub);
    let index = entries.iter().position(|e| {
        e.manager == manager && e.operation == operation && e.subresource == subresource
    });
    let index = index.unwrap_or_else(|| {
        let fields = FieldSet::new();
        entries.push(Managed {
            manager: manager.into(),
            operation: operation.into(),
            subresource,
            api_version: rt.api_version(),
            time: String::new(),
            fields,
        });
        entries.len() - 1
    });
    let entry = &mut entries[index];
    entry.time = meta::now();
    entry
}

/// Records a non-apply write by `manager`: it owns the leaves it changed.
pub fn record_update(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    sub: Subresource,
) {
    let mut entries = old.map(managers).unwrap_or_default();
    let new_leaves = leaves(rt, new, sub);
    let changed: FieldSet = new_leaves
        .iter()
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    for entry in entries.iter_mut() {
        // Ownership moves to the writer; leaves that no longer exist are owned by nobody.
        entry.fields.retain(|p| {
            !changed.iter().any(|c| overlaps(c, p))
                && (value_at(new, p).is_some() || !in_sub(rt, p, sub))
        });
    }
    if !changed.is_empty() {
        entry_mut(&mut entries, rt, manager, "Update", sub)
            .fields
            .extend(changed);
    }
    set_managers(new, &entries);
}

fn in_sub(rt: &ResourceType, path: &Path, sub: Subresource) -> bool {
    let is_status = rt.status && path.first().is_some_and(|k| k == "status");
    is_status == (sub == Subresource::Status)
}

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
