//! Object mechanics the API server applies on every write: identity (uid, name from
//! generateName, namespace), creationTimestamp, resourceVersion preconditions,
//! `metadata.generation`, and status subresource isolation.

use serde_json::{Map, Value, json};

use super::{
    error::{ApiResult, ApiServerError},
    resources::ResourceType,
};

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself (status ignored when the type has a status subresource).
    Main,
    /// `/status`: only status changes.
    Status,
}

/// Now, as Kubernetes renders `metav1.Time` (RFC 3339, seconds, UTC).
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `metadata.name`, or "".
pub fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.resourceVersion`, or "".
pub fn resource_version_of(object: &Value) -> &str {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The metadata map, created if missing.
pub fn metadata_mut(object: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiServerError::bad_request("the body is not a JSON object"))?;
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    metadata
        .as_object_mut()
        .ok_or_else(|| ApiServerError::bad_request("metadata is not an object"))
}

/// Whether the object is marked for deletion.
pub fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Whether the object carries finalizers.
pub fn has_finalizers(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(5)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// Checks apiVersion/kind and the namespace against the request, and fills them in.
pub fn check_type_and_namespace(
    rt: &ResourceType,
    object: &mut Value,
    namespace: &str,
) -> ApiResult<()> {
    let api_version = rt.api_version();
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiServerError::bad_request("the body is not a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            let msg = format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            );
            return Err(ApiServerError::bad_request(msg));
        }
        _ => {
            map.insert("apiVersion".into(), json!(api_version));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != rt.kind => {
            return Err(ApiServerError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        _ => {
            map.insert("kind".into(), json!(rt.kind));
        }
    }
    let metadata = metadata_mut(object)?;
    if rt.namespaced {
        match metadata.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                let msg = "the namespace of the provided object does not match the namespace sent on the request";
                return Err(ApiServerError::bad_request(msg));
            }
            _ => {
                metadata.insert("namespace".into(), json!(namespace));
            }
        }
    } else {
        metadata.remove("namespace");
    }
    Ok(())
}

/// Prepares an object for create: identity, timestamps, generation 1, no status when the
/// type isolates it (Kubernetes drops status on create for those types).
pub fn prepare_create(rt: &ResourceType, mut object: Value, namespace: &str) -> ApiResult<Value> {
    check_type_and_namespace(rt, &mut object, namespace)?;
    if rt.status
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    let metadata = metadata_mut(&mut object)?;
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        match metadata.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let generated = format!("{prefix}{}", random_suffix());
                metadata.insert("name".into(), json!(generated));
            }
            _ => {
                return Err(ApiServerError::invalid(
                    &rt.kind,
                    &rt.group,
                    "",
                    &[crate::admission::FieldError {
                        path: "metadata.name".into(),
                        kind: crate::admission::FieldErrorKind::Required,
                        value: String::new(),
                        detail: "name or generateName is required".into(),
                    }],
                ));
            }
        }
    }
    metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    metadata.insert("creationTimestamp".into(), json!(now()));
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        metadata.remove(field);
    }
    if rt.generation {
        metadata.insert("generation".into(), json!(1));
    } else {
        metadata.remove("generation");
    }
    Ok(object)
}

/// The part of an object whose change bumps `metadata.generation`. Kubernetes (the
/// custom resource strategy, and Deployment/NetworkPolicy strategies for their spec):
/// with a status subresource, everything but metadata and status; without one,
/// everything but metadata (status is then just more spec).
fn generation_relevant(rt: &ResourceType, object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        if rt.status {
            map.remove("status");
        }
    }
    copy
}

/// Prepares `new` to replace `old`: immutable identity from `old`, the resourceVersion
/// precondition (409 Conflict when stale; no precondition when empty), status isolation
/// and the generation bump.
pub fn prepare_update(
    rt: &ResourceType,
    mut new: Value,
    old: &Value,
    sub: Subresource,
) -> ApiResult<Value> {
    let namespace = old
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    check_type_and_namespace(rt, &mut new, &namespace)?;
    let name = name_of(old).to_owned();
    let requested_name = name_of(&new);
    if !requested_name.is_empty() && requested_name != name {
        return Err(ApiServerError::bad_request(format!(
            "the name of the object ({requested_name}) does not match the name on the URL ({name})"
        )));
    }
    let requested_rv = resource_version_of(&new);
    if !requested_rv.is_empty() && requested_rv != resource_version_of(old) {
        return Err(ApiServerError::conflict(
            rt,
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut result = match sub {
        // Status writes copy the old object and take only its status (and managedFields,
        // which record the status manager), as the custom resource status strategy does.
        Subresource::Status => {
            let mut result = old.clone();
            let map = result
                .as_object_mut()
                .ok_or_else(|| ApiServerError::bad_request("stored object is not an object"))?;
            match new.get("status") {
                Some(status) => map.insert("status".into(), status.clone()),
                None => map.remove("status"),
            };
            if let Some(managed) = new.pointer("/metadata/managedFields") {
                metadata_mut(&mut result)?.insert("managedFields".into(), managed.clone());
            }
            result
        }
        Subresource::Main => {
            if rt.status
                && let Some(map) = new.as_object_mut()
            {
                match old.get("status") {
                    Some(status) => map.insert("status".into(), status.clone()),
                    None => map.remove("status"),
                };
            }
            let old_meta = old.get("metadata").cloned().unwrap_or_default();
            let metadata = metadata_mut(&mut new)?;
            metadata.insert("name".into(), json!(name));
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(field) {
                    Some(v) => metadata.insert(field.into(), v.clone()),
                    None => metadata.remove(field),
                };
            }
            new
        }
    };
    if rt.generation && generation_relevant(rt, &result) != generation_relevant(rt, old) {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        metadata_mut(&mut result)?.insert("generation".into(), json!(generation));
    }
    Ok(result)
}

/// Drops the empty collections Go's `omitempty` leaves out of what the API server stores
/// and answers: metadata's labels, annotations, ownerReferences, finalizers and
/// managedFields on every object, and the data maps of ConfigMaps and Secrets. (Other
/// empty objects, such as `emptyDir: {}`, are pointers in Go and stay.)
pub fn drop_empty_collections(rt: &ResourceType, object: &mut Value) {
    let empty = |v: &Value| match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    };
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "labels",
            "annotations",
            "ownerReferences",
            "finalizers",
            "managedFields",
        ] {
            if metadata.get(key).is_some_and(empty) {
                metadata.remove(key);
            }
        }
    }
    let data_maps: &[&str] = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "configmaps") => &["data", "binaryData"],
        ("", "secrets") => &["data", "stringData"],
        _ => &[],
    };
    if let Some(map) = object.as_object_mut() {
        for key in data_maps {
            if map.get(*key).is_some_and(empty) {
                map.remove(*key);
            }
        }
    }
}
