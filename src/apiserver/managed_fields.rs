//! `managedFields`, simplified but honest: which manager owns which fields of an object.
//! - a field set is the set of leaf paths of an object (maps are walked, lists and
//!   scalars are atomic leaves: no `k:`/`v:` list-item keys yet), rendered as FieldsV1;
//! - non-apply writes (create, update, patch) record an `Update` entry owning the
//!   leaves they changed, taking them from other managers, as the real server does
//!   ([`record_update`], called by `ops` on every write);
//! - `apply` reads and rewrites the entries for server-side apply.
//!
//! A leaf below `ops` and `apply`, so neither imports the other back.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    meta::{self, Subresource},
    resources::ResourceType,
};

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Metadata fields a manager can own; the rest is server-managed identity.
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// One managedFields entry.
#[derive(Clone, Debug)]
pub struct Managed {
    pub manager: String,
    pub operation: String,
    pub subresource: Option<String>,
    api_version: String,
    time: String,
    pub fields: FieldSet,
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
pub fn leaves(rt: &ResourceType, object: &Value, sub: Subresource) -> FieldSet {
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

pub fn value_at<'a>(object: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

pub fn set_at(object: &mut Value, path: &Path, value: Value) {
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

pub fn remove_at(object: &mut Value, path: &Path) {
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
pub fn changes(current: &Value, applied: &Value, path: &Path) -> bool {
    match (value_at(current, path), value_at(applied, path)) {
        (Some(Value::Object(_)), Some(Value::Object(a))) if a.is_empty() => false,
        (now, wanted) => now != wanted,
    }
}

pub fn overlaps(a: &Path, b: &Path) -> bool {
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

pub fn managers(object: &Value) -> Vec<Managed> {
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

pub fn set_managers(object: &mut Value, entries: &[Managed]) {
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

pub fn sub_name(sub: Subresource) -> Option<String> {
    (sub == Subresource::Status).then(|| "status".to_owned())
}

pub fn entry_mut<'a>(
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
