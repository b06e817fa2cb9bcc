//! Admission checks as the Kubernetes API server does them for custom resources: the
//! structural OpenAPI schema (types, enums, ranges, lengths, unknown fields), schema
//! defaults, then the CEL `x-kubernetes-validations` rules. Messages follow the API
//! server's wording so what a test or `mcp-operator dev` prints is what a cluster prints.
//!
//! Pure: no client, no I/O. Used by the manifest tests and by the embedded API server.

mod structural;

use std::collections::HashMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde_json::Value;

pub use structural::{FieldError, FieldErrorKind, check_structural_schema, validate_schema};

/// Why an object was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The document is not an object with apiVersion and kind.
    #[error("not a Kubernetes object: {0}")]
    NotAnObject(&'static str),
    /// No CRD serves this apiVersion/kind.
    #[error("no kind {kind} is served at {api_version}")]
    UnknownKind {
        /// apiVersion of the object.
        api_version: String,
        /// kind of the object.
        kind: String,
    },
    /// The object breaks its schema or a CEL rule.
    #[error("{kind}.{group} {name:?} is invalid: {}", join_errors(.errors))]
    Invalid {
        /// Kind of the object.
        kind: String,
        /// API group of the object.
        group: String,
        /// metadata.name (empty when missing).
        name: String,
        /// Each violation, in API server wording.
        errors: Vec<FieldError>,
    },
}

impl AdmissionError {
    /// The individual violations, if the object was invalid.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }
}

fn join_errors(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// One served kind: its schema, and its CEL rules compiled once.
struct ServedKind {
    group: String,
    schema: Value,
    compiled: CompiledSchema,
}

/// Validates objects of the kinds defined by a set of CRDs (the served, storage version).
pub struct Admission {
    kinds: HashMap<(String, String), ServedKind>,
    validator: Validator,
}

impl Admission {
    /// Admission for the given CRDs.
    pub fn new(crds: &[CustomResourceDefinition]) -> Self {
        let mut kinds = HashMap::new();
        for crd in crds {
            for version in crd.spec.versions.iter().filter(|v| v.served) {
                let Some(schema) = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                else {
                    continue;
                };
                let schema = serde_json::to_value(schema).unwrap_or(Value::Null);
                let api_version = format!("{}/{}", crd.spec.group, version.name);
                let served = ServedKind {
                    group: crd.spec.group.clone(),
                    compiled: compile_schema(&schema),
                    schema,
                };
                kinds.insert((api_version, crd.spec.names.kind.clone()), served);
            }
        }
        Self {
            kinds,
            validator: Validator::new(),
        }
    }

    /// Admission for mcp-operator's own kinds.
    pub fn for_own_kinds() -> Self {
        Self::new(&crate::api::crd::all())
    }

    /// Whether this admission knows the apiVersion/kind.
    pub fn serves(&self, api_version: &str, kind: &str) -> bool {
        self.kinds
            .contains_key(&(api_version.to_owned(), kind.to_owned()))
    }

    /// Checks `object` as a create would; `old` is the stored object for an update
    /// (transition rules see it as `oldSelf`). Returns the object with schema defaults
    /// applied, as the API server would store it.
    pub fn admit(&self, object: &Value, old: Option<&Value>) -> Result<Value, AdmissionError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or(AdmissionError::NotAnObject("apiVersion is missing"))?;
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .ok_or(AdmissionError::NotAnObject("kind is missing"))?;
        let served = self
            .kinds
            .get(&(api_version.to_owned(), kind.to_owned()))
            .ok_or_else(|| AdmissionError::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })?;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let invalid = |errors| AdmissionError::Invalid {
            kind: kind.to_owned(),
            group: served.group.clone(),
            name: name.clone(),
            errors,
        };

        let mut errors = structural::validate_metadata(object);
        errors.extend(validate_schema(&served.schema, object));
        if !errors.is_empty() {
            // Like the API server, CEL rules only run on objects that fit the schema: a
            // rule over a mistyped field would only add noise to the real error.
            return Err(invalid(errors));
        }
        let defaulted = kube::core::cel::apply_defaults(&served.schema, object);
        if let Err(cel_errors) = self
            .validator
            .validate_compiled(&served.compiled, &defaulted, old)
        {
            let errors = cel_errors
                .iter()
                .map(|e| FieldError::cel(&defaulted, &e.field_path, &e.message))
                .collect();
            return Err(invalid(errors));
        }
        Ok(defaulted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stdio_server() -> Value {
        json!({
            "apiVersion": "mcp-operator.dev/v1alpha1",
            "kind": "McpServer",
            "metadata": {"name": "memory"},
            "spec": {
                "transport": "Stdio",
                "container": {"image": "node:22-alpine", "command": ["npx", "-y", "@modelcontextprotocol/server-memory"]},
            },
        })
    }

    #[test]
    fn valid_object_is_admitted_with_defaults() {
        let admitted = Admission::for_own_kinds()
            .admit(&stdio_server(), None)
            .unwrap();
        assert_eq!(admitted.pointer("/spec/replicas"), Some(&json!(1)));
    }

    #[test]
    fn unknown_kind_is_refused() {
        let mut object = stdio_server();
        object["kind"] = json!("McpThing");
        let err = Admission::for_own_kinds().admit(&object, None).unwrap_err();
        assert!(matches!(err, AdmissionError::UnknownKind { .. }), "{err}");
    }

    #[test]
    fn cel_message_carries_the_field_path() {
        let mut object = stdio_server();
        object["spec"]["remote"] = json!({"url": "https://example.com/mcp"});
        let err = Admission::for_own_kinds().admit(&object, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("spec: Invalid value: \"object\": set exactly one of spec.container"),
            "{text}"
        );
    }

    #[test]
    fn schema_errors_come_before_cel() {
        let mut object = stdio_server();
        object["spec"]["replicas"] = json!("three");
        let err = Admission::for_own_kinds().admit(&object, None).unwrap_err();
        assert_eq!(err.field_errors().len(), 1, "{err}");
        assert_eq!(err.field_errors()[0].path, "spec.replicas");
    }
}
