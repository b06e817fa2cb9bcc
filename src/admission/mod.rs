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

pub use structural::{
    FieldError, FieldErrorKind, check_structural_schema, validate_metadata, validate_schema,
};

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
    /// The object has fields its schema does not declare: the API server refuses it while
    /// decoding (400 BadRequest, before any validation) when the client asks for
    /// `fieldValidation=Strict`, as kubectl does.
    #[error(
        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
        join_unknown(.fields)
    )]
    UnknownFields {
        /// Kind of the object.
        kind: String,
        /// Version of the object (`v1alpha1`).
        version: String,
        /// Paths of the undeclared fields (`spec.container.comand`).
        fields: Vec<String>,
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

fn join_unknown(fields: &[String]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    parts.join(", ")
}

/// The API server's aggregate: one error as it is, several in brackets.
fn join_errors(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    match parts.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
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
        let schema_errors = validate_schema(&served.schema, object);
        let unknown: Vec<String> = schema_errors
            .iter()
            .filter(|e| e.kind == FieldErrorKind::Unknown)
            .map(|e| e.path.clone())
            .collect();
        if !unknown.is_empty() {
            return Err(AdmissionError::UnknownFields {
                kind: kind.to_owned(),
                version: api_version
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                fields: unknown,
            });
        }
        errors.extend(schema_errors);
        if errors.iter().any(FieldError::blocks_rules) {
            // As on the API server (apiextensions-apiserver, `hasBlockingErr`): a missing,
            // mistyped, unsupported or oversized value stops the CEL rules, and one more
            // error says so. Other errors (a range, a pattern, an invalid name, a duplicate)
            // do not: the rules run and their errors are added.
            errors.push(FieldError::rules_not_checked());
            return Err(invalid(errors));
        }
        let defaulted = kube::core::cel::apply_defaults(&served.schema, object);
        if let Err(cel_errors) = self
            .validator
            .validate_compiled(&served.compiled, &defaulted, old)
        {
            errors.extend(cel_errors.iter().map(|e| {
                FieldError::cel(&defaulted, &e.field_path, &cel_message(&e.rule, &e.message))
            }));
        }
        if errors.is_empty() {
            Ok(defaulted)
        } else {
            Err(invalid(errors))
        }
    }
}

/// The message of a failed rule as the API server shows it: a messageExpression that
/// evaluates to a blank string or one with a line break (a name may hold one) is ignored
/// and the default `failed rule: <rule>` is shown instead.
fn cel_message(rule: &str, message: &str) -> String {
    if message.trim().is_empty() || message.contains(['\n', '\r']) {
        format!("failed rule: {}", rule.trim())
    } else {
        message.to_owned()
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
    fn a_type_error_stops_the_rules_and_says_so() {
        let mut object = stdio_server();
        object["spec"]["replicas"] = json!("three");
        object["spec"]["remote"] = json!({"url": "https://example.com/mcp"});
        let err = Admission::for_own_kinds().admit(&object, None).unwrap_err();
        assert_eq!(err.field_errors().len(), 2, "{err}");
        assert_eq!(err.field_errors()[0].path, "spec.replicas");
        assert_eq!(err.field_errors()[1], FieldError::rules_not_checked());
        assert!(
            err.to_string().ends_with(
                "<nil>: Invalid value: \"null\": some validation rules were not checked because \
                 the object was invalid; correct the existing errors to complete validation]"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_range_error_does_not_stop_the_rules() {
        // What kube-apiserver v1.33 answers (checked with `kubectl create --dry-run=server`):
        // the minimum, and both rules the object breaks.
        let mut object = stdio_server();
        object["spec"]["replicas"] = json!(-1);
        object["spec"]["remote"] = json!({"url": "https://example.com/mcp"});
        let err = Admission::for_own_kinds().admit(&object, None).unwrap_err();
        let paths: Vec<&str> = err.field_errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["spec.replicas", "spec", "spec"], "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_while_decoding() {
        let mut object = stdio_server();
        object["spec"]["container"]["comand"] = json!(["npx"]);
        object["spec"]["replicas"] = json!(-1);
        let err = Admission::for_own_kinds().admit(&object, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "McpServer in version \"v1alpha1\" cannot be handled as a McpServer: strict \
             decoding error: unknown field \"spec.container.comand\""
        );
    }
}

/// Names that fit (issue 13, item 9): the root rules about `metadata.name`.
#[cfg(test)]
mod name_tests {
    use super::*;
    use serde_json::json;

    fn server(name: &str) -> Value {
        json!({
            "apiVersion": "mcp-operator.dev/v1alpha1",
            "kind": "McpServer",
            "metadata": {"name": name},
            "spec": {"transport": "StreamableHttp", "remote": {"url": "https://example.com/mcp"}},
        })
    }

    fn binding(name: &str) -> Value {
        json!({
            "apiVersion": "mcp-operator.dev/v1alpha1",
            "kind": "McpBinding",
            "metadata": {"name": name},
            "spec": {"servers": [{"name": "memory"}]},
        })
    }

    fn name_of_length(len: usize) -> String {
        let mut name = "a".repeat(len - 1);
        name.push('z');
        name
    }

    #[test]
    fn server_name_of_63_characters_is_admitted() {
        let admission = Admission::for_own_kinds();
        admission.admit(&server(&name_of_length(63)), None).unwrap();
        admission.admit(&server("m"), None).unwrap();
        admission.admit(&server("memory-2"), None).unwrap();
    }

    #[test]
    fn server_name_of_64_characters_is_refused_saying_the_longest_allowed() {
        let name = name_of_length(64);
        let err = Admission::for_own_kinds()
            .admit(&server(&name), None)
            .unwrap_err();
        assert_eq!(err.field_errors().len(), 1, "{err}");
        assert_eq!(
            err.field_errors()[0].to_string(),
            format!(
                "<nil>: Invalid value: \"object\": metadata.name may be at most 63 \
                 characters: the operator creates a Service with the McpServer's name, and \
                 Service names are DNS-1035 labels of at most 63 characters"
            )
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("McpServer.mcp-operator.dev {name:?} is invalid: ")),
            "{text}"
        );
    }

    #[test]
    fn server_name_that_is_no_dns_1035_label_is_refused() {
        // Each is a valid DNS-1123 subdomain (what the metadata check allows), but no
        // Service can carry it.
        for name in ["1memory", "memory.v2", "-memory"] {
            let err = Admission::for_own_kinds()
                .admit(&server(name), None)
                .unwrap_err();
            let wanted = "<nil>: Invalid value: \"object\": metadata.name must be a DNS-1035 label";
            assert!(err.to_string().contains(wanted), "{name}: {err}");
        }
    }

    #[test]
    fn an_invalid_name_gets_the_metadata_error_and_the_rule() {
        // As on the API server: an invalid name does not stop the CEL rules.
        let err = Admission::for_own_kinds()
            .admit(&server("Memory_Server"), None)
            .unwrap_err();
        let errors = err.field_errors();
        assert_eq!(errors.len(), 2, "{err}");
        assert_eq!(errors[0].path, "metadata.name");
        assert_eq!(errors[1].path, "<nil>");
        assert!(
            errors[1].detail.contains("must be a DNS-1035 label"),
            "{err}"
        );
    }

    #[test]
    fn a_type_error_leaves_the_name_rules_unchecked() {
        // A mistyped field stops every CEL rule on the API server, the name rules too.
        let mut object = server("1memory");
        object["spec"]["replicas"] = json!("three");
        let err = Admission::for_own_kinds().admit(&object, None).unwrap_err();
        assert_eq!(err.field_errors()[0].path, "spec.replicas", "{err}");
        assert!(!err.to_string().contains("DNS-1035"), "{err}");
    }

    #[test]
    fn binding_names_are_limited_to_label_values() {
        let admission = Admission::for_own_kinds();
        admission
            .admit(&binding(&name_of_length(63)), None)
            .unwrap();
        // A dot is fine in a label value and a Secret name.
        admission.admit(&binding("agent.v2"), None).unwrap();
        let name = name_of_length(64);
        let err = admission.admit(&binding(&name), None).unwrap_err();
        let wanted = "<nil>: Invalid value: \"object\": metadata.name may be at most 63 \
                      characters: the operator labels the McpBinding's Secret with its name";
        assert!(err.to_string().contains(wanted), "{err}");
    }

    #[test]
    fn a_message_with_a_line_break_falls_back_to_the_rule() {
        assert_eq!(
            cel_message(" size(x) < 3 ", "a\nb"),
            "failed rule: size(x) < 3"
        );
        assert_eq!(cel_message("r", "  "), "failed rule: r");
        assert_eq!(cel_message("r", "fine"), "fine");
    }
}
