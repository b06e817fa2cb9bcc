//! The OpenAPI v3 structural-schema part of admission: validating a value against a CRD
//! schema (types, nullability, enums, ranges, lengths, patterns, list-map keys, unknown
//! fields as kubectl's strict field validation reports them), and checking that a schema
//! is structural at all (every node typed, no untyped `anyOf`).

use std::{collections::HashSet, fmt};

use regex::Regex;
use serde_json::{Map, Value};

/// What kind of violation a [`FieldError`] is, mirroring `field.ErrorType` of the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing.
    Required,
    /// The value is malformed or out of range (also CEL rule failures).
    Invalid,
    /// The value is not one of an enum's values.
    Unsupported,
    /// A string is longer than allowed.
    TooLong,
    /// A list has more items than allowed.
    TooMany,
    /// A list-map key or set item repeats.
    Duplicate,
    /// A field the schema does not declare (strict field validation).
    Unknown,
    /// A value the request may not set now (`field.Forbidden`), e.g. a new finalizer on
    /// an object being deleted.
    Forbidden,
}

/// One violation, worded as the API server words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.container.port`.
    pub path: String,
    /// Kind of violation.
    pub kind: FieldErrorKind,
    /// The offending value, rendered as the API server does (JSON, or a type name).
    pub value: String,
    /// What is wrong.
    pub detail: String,
}

impl FieldError {
    fn new(path: &str, kind: FieldErrorKind, value: String, detail: String) -> Self {
        Self {
            path: path.to_owned(),
            kind,
            value,
            detail,
        }
    }

    /// Whether this error keeps the API server from running the CEL rules: Required,
    /// Unsupported, TooLong, TooMany and type mismatches (`hasBlockingErr`).
    pub fn blocks_rules(&self) -> bool {
        match self.kind {
            FieldErrorKind::Required
            | FieldErrorKind::Unsupported
            | FieldErrorKind::TooLong
            | FieldErrorKind::TooMany => true,
            FieldErrorKind::Invalid => self.detail.contains("must be of type"),
            FieldErrorKind::Duplicate | FieldErrorKind::Unknown | FieldErrorKind::Forbidden => {
                false
            }
        }
    }

    /// The error the API server adds when a blocking error kept it from running the rules.
    pub fn rules_not_checked() -> Self {
        Self::new(
            "<nil>",
            FieldErrorKind::Invalid,
            "\"null\"".into(),
            "some validation rules were not checked because the object was invalid; correct \
             the existing errors to complete validation"
                .into(),
        )
    }

    /// A failed CEL rule at `path` of `object` (the API server shows the value's type).
    pub fn cel(object: &Value, path: &str, message: &str) -> Self {
        // `spec.to[0].cidr` → `/spec/to/0/cidr`.
        let pointer = format!("/{}", path.replace(['.', '['], "/").replace(']', ""));
        let type_name = match object.pointer(&pointer) {
            Some(Value::Object(_)) | None => "object",
            Some(Value::Array(_)) => "array",
            Some(Value::String(_)) => "string",
            Some(Value::Number(_)) => "number",
            Some(Value::Bool(_)) => "boolean",
            Some(Value::Null) => "null",
        };
        // A rule at the schema root is reported without a field path, which the API
        // server prints as `<nil>`.
        let path = if path.is_empty() { "<nil>" } else { path };
        Self::new(
            path,
            FieldErrorKind::Invalid,
            format!("\"{type_name}\""),
            message.to_owned(),
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, value, detail) = (&self.path, &self.value, &self.detail);
        match self.kind {
            FieldErrorKind::Required if detail.is_empty() => write!(f, "{path}: Required value"),
            FieldErrorKind::Required => write!(f, "{path}: Required value: {detail}"),
            FieldErrorKind::Invalid => write!(f, "{path}: Invalid value: {value}: {detail}"),
            FieldErrorKind::Unsupported => {
                write!(f, "{path}: Unsupported value: {value}: {detail}")
            }
            FieldErrorKind::TooLong => write!(f, "{path}: Too long: {detail}"),
            FieldErrorKind::TooMany => write!(f, "{path}: Too many: {value}: {detail}"),
            FieldErrorKind::Duplicate => write!(f, "{path}: Duplicate value: {value}"),
            FieldErrorKind::Unknown => write!(f, "unknown field \"{path}\""),
            FieldErrorKind::Forbidden => write!(f, "{path}: Forbidden: {detail}"),
        }
    }
}

/// Checks `metadata` the way the API server does for every object: a name (or
/// generateName) that is a DNS subdomain.
pub fn validate_metadata(object: &Value) -> Vec<FieldError> {
    let metadata = object.get("metadata");
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str);
    let generate_name = metadata
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str);
    match (name, generate_name) {
        (None, None) => vec![FieldError::new(
            "metadata.name",
            FieldErrorKind::Required,
            String::new(),
            "name or generateName is required".into(),
        )],
        (Some(name), _) if !is_dns_subdomain(name) => vec![FieldError::new(
            "metadata.name",
            FieldErrorKind::Invalid,
            json_repr(&Value::String(name.to_owned())),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into(),
        )],
        _ => Vec::new(),
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Validates `value` against an OpenAPI v3 `schema` (the CRD's openAPIV3Schema).
/// `metadata` at the root is left to `validate_metadata`, as the API server does.
pub fn validate_schema(schema: &Value, value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(schema, value, "", true, &mut errors);
    errors
}

fn child_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

fn json_repr(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn walk(schema: &Value, value: &Value, path: &str, root: bool, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        // Nulls in non-nullable fields are pruned by the API server, not refused; the
        // parent's `required` check reports them if they mattered.
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            errors.push(type_error(path, value, "integer or string"));
        }
        return;
    }
    let Some(expected) = schema.get("type").and_then(Value::as_str) else {
        // Untyped nodes only occur with x-kubernetes-preserve-unknown-fields.
        return;
    };
    let type_ok = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(type_error(path, value, expected));
        return;
    }
    check_enum(schema, value, path, errors);
    match value {
        Value::Object(fields) => walk_object(schema, fields, path, root, errors),
        Value::Array(items) => walk_array(schema, items, path, errors),
        Value::String(s) => check_string(schema, s, path, errors),
        Value::Number(n) => {
            check_number(schema, n.as_f64().unwrap_or_default(), value, path, errors)
        }
        _ => {}
    }
}

fn type_error(path: &str, value: &Value, expected: &str) -> FieldError {
    let actual = match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    };
    FieldError::new(
        path,
        FieldErrorKind::Invalid,
        format!("\"{actual}\""),
        format!("{path} in body must be of type {expected}: \"{actual}\""),
    )
}

fn check_enum(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if !allowed.contains(value) {
        let list: Vec<String> = allowed.iter().map(json_repr).collect();
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Unsupported,
            json_repr(value),
            format!("supported values: {}", list.join(", ")),
        ));
    }
}

fn walk_object(
    schema: &Value,
    fields: &Map<String, Value>,
    path: &str,
    root: bool,
    errors: &mut Vec<FieldError>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields");
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = required.as_str() else {
            continue;
        };
        if fields.get(name).is_none_or(Value::is_null) {
            errors.push(FieldError::new(
                &child_path(path, name),
                FieldErrorKind::Required,
                String::new(),
                String::new(),
            ));
        }
    }
    for (name, field_value) in fields {
        if root && matches!(name.as_str(), "metadata" | "apiVersion" | "kind") {
            continue;
        }
        if let Some(field_schema) = properties.and_then(|p| p.get(name)) {
            walk(
                field_schema,
                field_value,
                &child_path(path, name),
                false,
                errors,
            );
        } else if let Some(value_schema) = additional {
            walk(
                value_schema,
                field_value,
                &format!("{path}[{name}]"),
                false,
                errors,
            );
        } else if !preserve_unknown {
            errors.push(FieldError::new(
                &child_path(path, name),
                FieldErrorKind::Unknown,
                String::new(),
                String::new(),
            ));
        }
    }
}

fn walk_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TooMany,
            items.len().to_string(),
            format!("must have at most {max} items"),
        ));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            items.len().to_string(),
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (index, item) in items.iter().enumerate() {
            walk(
                item_schema,
                item,
                &format!("{path}[{index}]"),
                false,
                errors,
            );
        }
    }
    check_list_uniqueness(schema, items, path, errors);
}

/// `x-kubernetes-list-type: map` keys and `set` items must be unique.
fn check_list_uniqueness(
    schema: &Value,
    items: &[Value],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let keys: Vec<&str> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        Some("set") => Vec::new(),
        _ => return,
    };
    let mut seen = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let identity = if keys.is_empty() {
            item.clone()
        } else {
            Value::Object(
                keys.iter()
                    .filter_map(|k| Some(((*k).to_owned(), item.get(*k)?.clone())))
                    .collect(),
            )
        };
        if !seen.insert(json_repr(&identity)) {
            errors.push(FieldError::new(
                &format!("{path}[{index}]"),
                FieldErrorKind::Duplicate,
                go_value_repr(&identity),
                String::new(),
            ));
        }
    }
}

/// A duplicate's identity as the API server prints it: Go's `%#v` of the map of list-map
/// keys (`map[string]interface {}{"name":"memory"}`, keys sorted), a set item as JSON.
fn go_value_repr(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", json_repr(&Value::String((*k).clone())), map[*k]))
                .collect();
            format!("map[string]interface {{}}{{{}}}", fields.join(", "))
        }
        other => json_repr(other),
    }
}

fn check_string(schema: &Value, s: &str, path: &str, errors: &mut Vec<FieldError>) {
    let length = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TooLong,
            String::new(),
            format!("may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            json_repr(&Value::String(s.to_owned())),
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let matches = Regex::new(pattern)
            .map(|re| re.is_match(s))
            .unwrap_or(false);
        if !matches {
            errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                json_repr(&Value::String(s.to_owned())),
                format!("{path} in body should match '{pattern}'"),
            ));
        }
    }
}

fn check_number(schema: &Value, n: f64, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            json_repr(value),
            format!("{path} in body should be less than or equal to {max}"),
        ));
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            json_repr(value),
            format!("{path} in body should be greater than or equal to {min}"),
        ));
    }
}

/// Lists the places where `schema` is not structural in the Kubernetes sense: a node
/// without `type` (unless int-or-string or preserve-unknown-fields), `$ref`, both
/// `properties` and `additionalProperties`, an array without `items`, or an
/// `anyOf`/`allOf`/`oneOf`/`not` branch that sets a type, default or description.
pub fn check_structural_schema(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    structural_walk(schema, "", &mut problems);
    problems
}

fn structural_walk(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        problems.push(format!("{path}: schema node is not an object"));
        return;
    };
    let exempt = flag(schema, "x-kubernetes-int-or-string")
        || flag(schema, "x-kubernetes-preserve-unknown-fields");
    if node.contains_key("$ref") {
        problems.push(format!("{path}: $ref is not allowed"));
    }
    if !node.contains_key("type") && !exempt {
        problems.push(format!("{path}: type is missing"));
    }
    if node.contains_key("properties")
        && node
            .get("additionalProperties")
            .is_some_and(Value::is_object)
    {
        problems.push(format!(
            "{path}: properties and additionalProperties are mutually exclusive"
        ));
    }
    if node.get("type").and_then(Value::as_str) == Some("array") && !node.contains_key("items") {
        problems.push(format!("{path}: array without items"));
    }
    for combinator in ["anyOf", "allOf", "oneOf", "not"] {
        let branches: Vec<&Value> = match node.get(combinator) {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(single @ Value::Object(_)) => vec![single],
            _ => continue,
        };
        for branch in branches {
            for forbidden in [
                "type",
                "default",
                "description",
                "nullable",
                "additionalProperties",
            ] {
                // int-or-string's own `anyOf: [{type: integer}, {type: string}]` is the one
                // typed combinator Kubernetes allows.
                if branch.get(forbidden).is_some() && !(forbidden == "type" && exempt) {
                    problems.push(format!("{path}.{combinator}: sets {forbidden}"));
                }
            }
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            structural_walk(child, &child_path(path, name), problems);
        }
    }
    if let Some(items) = node.get("items") {
        structural_walk(items, &format!("{path}[]"), problems);
    }
    if let Some(additional) = node.get("additionalProperties").filter(|a| a.is_object()) {
        structural_walk(additional, &format!("{path}{{}}"), problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "count": {"type": "integer", "minimum": 0, "maximum": 3},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "size": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "items": {
                    "type": "array", "maxItems": 2,
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["key"],
                    "items": {"type": "object", "properties": {"key": {"type": "string"}}},
                },
            },
        })
    }

    fn errors(value: Value) -> Vec<String> {
        validate_schema(&schema(), &value)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn accepts_a_fitting_value() {
        assert!(
            errors(
                json!({"name": "abc", "mode": "A", "count": 3, "labels": {"x": "y"}, "size": "1Mi"})
            )
            .is_empty()
        );
        assert!(errors(json!({"name": "abc", "size": 5, "mode": null})).is_empty());
    }

    #[test]
    fn reports_each_violation_in_api_server_wording() {
        let cases = [
            (json!({}), "name: Required value"),
            (
                json!({"name": 5}),
                "name: Invalid value: \"integer\": name in body must be of type string: \"integer\"",
            ),
            (
                json!({"name": "abcdef"}),
                "name: Too long: may not be more than 5 bytes",
            ),
            (
                json!({"name": "ABC"}),
                "name: Invalid value: \"ABC\": name in body should match '^[a-z]+$'",
            ),
            (
                json!({"name": "a", "mode": "C"}),
                "mode: Unsupported value: \"C\": supported values: \"A\", \"B\"",
            ),
            (
                json!({"name": "a", "count": 4}),
                "count: Invalid value: 4: count in body should be less than or equal to 3",
            ),
            (
                json!({"name": "a", "count": -1}),
                "count: Invalid value: -1: count in body should be greater than or equal to 0",
            ),
            (
                json!({"name": "a", "labels": {"x": 1}}),
                "labels[x]: Invalid value: \"integer\": labels[x] in body must be of type string: \"integer\"",
            ),
            (
                json!({"name": "a", "size": true}),
                "size: Invalid value: \"boolean\": size in body must be of type integer or string: \"boolean\"",
            ),
            (json!({"name": "a", "extra": 1}), "unknown field \"extra\""),
            (
                json!({"name": "a", "items": [{"key": "k"}, {"key": "k"}]}),
                "items[1]: Duplicate value: map[string]interface {}{\"key\":\"k\"}",
            ),
            (
                json!({"name": "a", "items": [{}, {"key": "a"}, {"key": "b"}]}),
                "items: Too many: 3: must have at most 2 items",
            ),
        ];
        for (value, expected) in cases {
            let got = errors(value.clone());
            assert!(
                got.iter().any(|e| e == expected),
                "{value}: expected {expected:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn structural_check_finds_untyped_nodes() {
        assert!(check_structural_schema(&schema()).is_empty());
        let bad = json!({"type": "object", "properties": {"x": {"anyOf": [{"type": "string"}]}, "y": {"type": "array"}}});
        let problems = check_structural_schema(&bad);
        assert!(
            problems.iter().any(|p| p == "x: type is missing"),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p == "x.anyOf: sets type"),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p == "y: array without items"),
            "{problems:?}"
        );
    }

    #[test]
    fn metadata_name_must_be_a_dns_subdomain() {
        assert!(validate_metadata(&json!({"metadata": {"name": "ok-name.x"}})).is_empty());
        assert_eq!(
            validate_metadata(&json!({"metadata": {"name": "Bad_Name"}}))[0].kind,
            FieldErrorKind::Invalid
        );
        assert_eq!(
            validate_metadata(&json!({"metadata": {}}))[0].kind,
            FieldErrorKind::Required
        );
    }
}
