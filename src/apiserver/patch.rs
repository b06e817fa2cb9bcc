//! Non-apply patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and the common
//! subset of strategic merge patch that kubectl sends for built-in kinds (client-side
//! apply, label, annotate, edit): lists of containers, env, volumes, ports, conditions
//! and the like merge by their patch merge key; `$patch: delete` / `$patch: replace`
//! directives are honoured; other `$` directives (`$setElementOrder`, `$retainKeys`)
//! are ignored; everything else merges as a JSON merge patch. Custom resources refuse
//! strategic merge patches, as on a real cluster.

use serde_json::Value;

use super::error::{ApiResult, ApiServerError};

/// A patch body's type, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json` (applied as a merge patch).
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// The patch type of a Content-Type header value.
    pub fn from_content_type(content_type: &str) -> ApiResult<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(ApiServerError::unknown_media_type()),
        }
    }
}

/// `old` with a merge or JSON patch applied.
pub fn patched(kind: PatchType, old: &Value, body: &[u8]) -> ApiResult<Value> {
    let mut doc = old.clone();
    match kind {
        PatchType::Merge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiServerError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::merge(&mut doc, &patch);
        }
        PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiServerError::bad_request(format!("error decoding patch: {e}")))?;
            strategic_merge(&mut doc, &patch);
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiServerError::bad_request(format!("error decoding patch: {e}")))?;
            // The API server answers a failed operation (a `test` that does not hold, a
            // path that is not there) with a bare 422, naming neither.
            json_patch::patch(&mut doc, &patch).map_err(|_| ApiServerError::patch_rejected())?;
        }
        PatchType::Apply => {
            return Err(ApiServerError::bad_request(
                "apply patches are handled by server-side apply",
            ));
        }
    }
    Ok(doc)
}

/// The patch merge key of the list at field `field` whose items look like `items`, as the
/// built-in types declare them (`x-kubernetes-patch-merge-key`); None: replace the list.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let has = |key: &str| items.iter().all(|i| i.get(key).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "envFrom" => Some("name"),
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "ports" if has("containerPort") => Some("containerPort"),
        "ports" if has("port") => Some("port"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        _ => None,
    }
}

fn directive(value: &Value) -> Option<&str> {
    value.get("$patch").and_then(Value::as_str)
}

/// Strategic merge of `patch` into `doc`.
fn strategic_merge(doc: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *doc = patch.clone();
        return;
    };
    if directive(patch) == Some("replace") {
        let mut replaced = patch.clone();
        if let Some(map) = replaced.as_object_mut() {
            map.remove("$patch");
        }
        *doc = replaced;
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(serde_json::Map::new());
    }
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        let Some(target) = doc.as_object_mut() else {
            return;
        };
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(_) if directive(value) == Some("delete") => {
                target.remove(key);
            }
            Value::Object(_) => {
                strategic_merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
            Value::Array(items) => {
                let merged = merge_list(target.get(key), items, key);
                target.insert(key.clone(), merged);
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// A list after a strategic merge: by merge key when the field has one, else replaced.
fn merge_list(old: Option<&Value>, items: &[Value], field: &str) -> Value {
    if items.iter().any(|i| directive(i) == Some("replace")) {
        let kept = items.iter().filter(|i| directive(i).is_none()).cloned();
        return Value::Array(kept.collect());
    }
    let Some(key) = merge_key(field, items) else {
        return Value::Array(items.to_vec());
    };
    let mut merged: Vec<Value> = old.and_then(Value::as_array).cloned().unwrap_or_default();
    for item in items {
        let id = item.get(key);
        let existing = merged.iter().position(|m| m.get(key) == id);
        match (directive(item), existing) {
            (Some("delete"), Some(index)) => {
                merged.remove(index);
            }
            (Some("delete"), None) => {}
            (_, Some(index)) => strategic_merge(&mut merged[index], item),
            (_, None) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item);
                merged.push(fresh);
            }
        }
    }
    Value::Array(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_null_deletes_and_objects_merge() {
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "y"}});
        let new = patched(
            PatchType::Merge,
            &old,
            br#"{"metadata": {"labels": {"a": null, "c": "3"}}}"#,
        )
        .unwrap();
        assert_eq!(new["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(new["data"], json!({"x": "y"}));
    }

    #[test]
    fn json_patch_test_failure_is_refused() {
        let old = json!({"spec": {"replicas": 1}});
        let body = br#"[{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 3}]"#;
        assert!(patched(PatchType::Json, &old, body).is_err());
        let body = br#"[{"op": "replace", "path": "/spec/replicas", "value": 3}]"#;
        assert_eq!(
            patched(PatchType::Json, &old, body).unwrap()["spec"]["replicas"],
            json!(3)
        );
    }

    #[test]
    fn strategic_merge_merges_lists_by_key_and_honours_directives() {
        let old = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "s:1"},
        ], "volumes": [{"name": "v1"}, {"name": "v2"}]}}}});
        let patch = br#"{"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [
                {"name": "app", "image": "a:2", "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}]},
                {"name": "sidecar", "$patch": "delete"}
            ],
            "volumes": [{"name": "v3"}]
        }}}}"#;
        let new = patched(PatchType::Strategic, &old, patch).unwrap();
        let spec = &new["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"],
            json!([{"name": "app", "image": "a:2", "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]}])
        );
        assert_eq!(
            spec["volumes"],
            json!([{"name": "v1"}, {"name": "v2"}, {"name": "v3"}])
        );

        let replace = br#"{"spec": {"template": {"spec": {"volumes": [{"name": "only"}, {"$patch": "replace"}], "nodeSelector": {"$patch": "replace", "disk": "ssd"}}}}}"#;
        let new = patched(PatchType::Strategic, &old, replace).unwrap();
        assert_eq!(
            new["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "only"}])
        );
        assert_eq!(
            new["spec"]["template"]["spec"]["nodeSelector"],
            json!({"disk": "ssd"})
        );
        // Lists without a merge key (args, finalizers) are replaced; null deletes.
        let old = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x", "y"]}});
        let new = patched(
            PatchType::Strategic,
            &old,
            br#"{"metadata": {"labels": {"a": null}, "finalizers": ["z"]}}"#,
        )
        .unwrap();
        assert_eq!(new["metadata"], json!({"labels": {}, "finalizers": ["z"]}));
    }
}
