//! The verbs on stored objects (get, list, create, update) and the commit step every
//! write goes through: admission of custom resources, finalizer-driven removal, and the
//! side effects of writing a CustomResourceDefinition (its resources become served).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::{
    error::{ApiResult, ApiServerError},
    events, managed_fields,
    meta::{self, Subresource},
    resources::{Registry, ResourceType},
    selectors::{FieldSelector, LabelSelector},
    store::{ObjectKey, Store},
};
use crate::admission::{Admission, AdmissionError};

/// Namespaces every cluster starts with.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Options of a list request.
#[derive(Debug, Default)]
pub struct ListOptions {
    /// labelSelector.
    pub labels: LabelSelector,
    /// fieldSelector.
    pub fields: FieldSelector,
    /// Page size; None or 0 means all.
    pub limit: Option<usize>,
    /// The continue token of the previous page.
    pub continue_token: Option<String>,
}

/// Everything behind the server's lock.
pub struct Inner {
    /// The objects.
    pub store: Store,
    /// The served types (built-ins + stored CRDs).
    pub registry: Registry,
    /// Schema + CEL validation of custom resources.
    pub admission: Admission,
}

impl Inner {
    /// An empty cluster with the usual namespaces.
    pub fn new(history_limit: usize) -> Self {
        let mut inner = Self {
            store: Store::new(history_limit),
            registry: Registry::new([]),
            admission: Admission::new(&[]),
        };
        let namespaces = inner.registry.find("", "v1", "namespaces").cloned();
        for (ns, rt) in INITIAL_NAMESPACES
            .iter()
            .zip(std::iter::repeat(namespaces).flatten())
        {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            if let Ok(object) = meta::prepare_create(&rt, object, "") {
                let mut object = object;
                object["status"] = json!({"phase": "Active"});
                inner.store.put(ObjectKey::new(&rt, "", ns), object);
            }
        }
        inner
    }

    /// One object.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> ApiResult<Value> {
        self.store
            .get(&ObjectKey::new(rt, namespace, name))
            .map(|stored| events::served(rt, stored.clone()))
            .ok_or_else(|| ApiServerError::not_found(rt, name))
    }

    /// A list object (`<Kind>List`), one page of it when `limit` is set.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> ApiResult<Value> {
        // The token names the last key returned; the next page starts after it in key
        // order (a string comparison of "ns/name" would misorder "a/x" and "a-b/y").
        let after = options
            .continue_token
            .as_deref()
            .map(|token| {
                token.split_once('/').ok_or_else(|| {
                    ApiServerError::bad_request(format!("invalid continue token {token:?}"))
                })
            })
            .transpose()?;
        let objects: Box<dyn Iterator<Item = (&ObjectKey, &Value)>> = match after {
            Some(after) => Box::new(self.store.list_after(rt, namespace, after)),
            None => Box::new(self.store.list(rt, namespace)),
        };
        // Selectors see the object as this type serves it (`involvedObject.name` on core
        // Events, `regarding.name` on events.k8s.io ones).
        let mut matching = objects
            .map(|(key, object)| (key, events::served(rt, object.clone())))
            .filter(|(_, object)| options.labels.matches(object) && options.fields.matches(object));
        let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last_key = None;
        for (key, mut object) in matching.by_ref().take(limit) {
            // The API server's list items carry no apiVersion and kind (the list has them).
            if let Some(map) = object.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
            items.push(object);
            last_key = Some(key);
        }
        let remaining = matching.count();
        let mut metadata = json!({"resourceVersion": self.store.revision().to_string()});
        if remaining > 0
            && let Some(key) = last_key
        {
            metadata["continue"] = json!(continue_token(key));
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(
            json!({"apiVersion": rt.api_version(), "kind": format!("{}List", rt.kind), "metadata": metadata, "items": items}),
        )
    }

    /// Creates an object.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        object: Value,
        manager: &str,
    ) -> ApiResult<Value> {
        let mut object = meta::prepare_create(rt, object, namespace)?;
        let key = ObjectKey::new(rt, namespace, meta::name_of(&object));
        if self.store.get(&key).is_some() {
            return Err(ApiServerError::already_exists(rt, &key.name));
        }
        // Go drops empty collections before fields are tracked: they own nothing.
        meta::drop_empty_collections(rt, &mut object);
        managed_fields::record_update(rt, None, &mut object, manager, Subresource::Main);
        self.commit(rt, key, object, None)
    }

    /// Replaces an object (or its status).
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
        sub: Subresource,
        manager: &str,
    ) -> ApiResult<Value> {
        let old = self.get(rt, namespace, name)?;
        let mut object = meta::prepare_update(rt, object, &old, sub)?;
        meta::drop_empty_collections(rt, &mut object);
        managed_fields::record_update(rt, Some(&old), &mut object, manager, sub);
        self.commit(rt, ObjectKey::new(rt, namespace, name), object, Some(&old))
    }

    /// The last step of every write: admission, removal of a deleting object whose
    /// finalizers are gone, storing, CRD side effects, and garbage collection of the
    /// object when its owners are gone. `object` and `old` are in `rt`'s form, and so is
    /// the answer; the store holds the storage form ([`events`]).
    pub fn commit(
        &mut self,
        rt: &ResourceType,
        key: ObjectKey,
        object: Value,
        old: Option<&Value>,
    ) -> ApiResult<Value> {
        if let Some(old) = old.filter(|o| meta::is_deleting(o)) {
            no_new_finalizers(rt, old, &object)?;
        }
        let api_version = rt.api_version();
        let mut object = if self.admission.serves(&api_version, &rt.kind) {
            self.admission
                .admit(&object, old)
                .map_err(|e| admission_error(rt, e))?
        } else {
            if old.is_none() {
                built_in_name(rt, &object)?;
            }
            object
        };
        if rt.is_crd() {
            establish(&mut object);
        }
        meta::drop_empty_collections(rt, &mut object);
        let object = events::to_storage(rt, object);
        if old.is_some_and(meta::is_deleting) && !meta::has_finalizers(&object) {
            // The answer is the object as the write left it (its last finalizer gone).
            let removed = self.store.remove(&key).unwrap_or_else(|| object.clone());
            self.after_removal(rt, &removed);
            return Ok(events::served(rt, object));
        }
        let stored = events::served(rt, self.store.put(key.clone(), object));
        if rt.is_crd() {
            self.refresh_crds();
        }
        // The answer is what was stored, as from a real server; the garbage collector
        // may remove it right after (its owners are gone).
        self.collect_if_orphaned(&key);
        Ok(stored)
    }

    /// Rebuilds the registry and admission from the stored CRDs.
    pub fn refresh_crds(&mut self) {
        let Some(rt) = self
            .registry
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .cloned()
        else {
            return;
        };
        let values: Vec<Value> = self.store.list(&rt, None).map(|(_, v)| v.clone()).collect();
        let crds: Vec<CustomResourceDefinition> = values
            .iter()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect();
        self.registry = Registry::new(&values);
        self.admission = Admission::new(&crds);
    }
}

/// Continue tokens name the last key returned (namespace/name): opaque to clients.
fn continue_token(key: &ObjectKey) -> String {
    format!("{}/{}", key.namespace, key.name)
}

fn admission_error(rt: &ResourceType, error: AdmissionError) -> ApiServerError {
    match error {
        AdmissionError::Invalid {
            kind,
            group,
            name,
            errors,
        } => ApiServerError::invalid(&kind, &group, &name, &errors),
        // Refused while decoding, as the API server does under fieldValidation=Strict.
        unknown @ AdmissionError::UnknownFields { .. } => {
            ApiServerError::bad_request(unknown.to_string())
        }
        other => ApiServerError::bad_request(format!("{} could not be admitted: {other}", rt.kind)),
    }
}

/// Marks a CRD accepted and established (what the apiextensions controllers do at once
/// for a CRD whose names do not clash), keeping existing transition times.
fn establish(crd: &mut Value) {
    if crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
    {
        return;
    }
    let now = meta::now();
    let condition = |type_: &str, reason: &str, message: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage") == Some(&json!(true)))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    crd["status"] = json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or_default(),
        "storedVersions": storage,
    });
}

/// An object being deleted takes no new finalizer (422, as the API server's
/// `ValidateObjectMetaUpdate` words it).
fn no_new_finalizers(rt: &ResourceType, old: &Value, object: &Value) -> ApiResult<()> {
    let finalizers = |o: &Value| -> Vec<String> {
        o.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let before = finalizers(old);
    let added: Vec<String> = finalizers(object)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
    let error = crate::admission::FieldError {
        path: "metadata.finalizers".into(),
        kind: crate::admission::FieldErrorKind::Forbidden,
        value: String::new(),
        detail: format!(
            "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
            quoted.join(", ")
        ),
    };
    Err(ApiServerError::invalid(
        &rt.kind,
        &rt.group,
        meta::name_of(object),
        &[error],
    ))
}

/// A new built-in object's name is a DNS subdomain, as the API server's `ValidateObjectMeta`
/// checks it for most kinds (422). RBAC kinds are left out (their names may hold `:`,
/// `system:…`); Namespaces and Services, which the API server holds to the stricter DNS
/// label rules, get the subdomain check only.
fn built_in_name(rt: &ResourceType, object: &Value) -> ApiResult<()> {
    if rt.group == "rbac.authorization.k8s.io" {
        return Ok(());
    }
    let errors: Vec<crate::admission::FieldError> = crate::admission::validate_metadata(object)
        .into_iter()
        .filter(|e| e.kind == crate::admission::FieldErrorKind::Invalid)
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiServerError::invalid(
        &rt.kind,
        &rt.group,
        meta::name_of(object),
        &errors,
    ))
}
