//! Server-side printing: `meta.k8s.io/v1` `Table` responses (what `kubectl get` asks for
//! with `Accept: application/json;as=Table;...`) built from a CRD's
//! `additionalPrinterColumns`, with cells rendered as the real server renders them
//! (dates as ages like `5m`, missing values as null). Built-in kinds are answered as
//! plain objects, which kubectl prints as NAME and AGE.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// Whether the request asks for a Table and this type has columns to show.
pub fn wanted(accept: &str, rt: &ResourceType) -> bool {
    accept.contains("as=Table") && !rt.printer_columns.is_empty()
}

/// A Table of `objects` of type `rt`; `list_metadata` carries resourceVersion/continue.
pub fn render(rt: &ResourceType, objects: &[Value], list_metadata: Value) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    columns.extend(rt.printer_columns.iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": "", "description": c.description, "priority": c.priority})
    }));
    let now = k8s_openapi::jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![object.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            cells.extend(rt.printer_columns.iter().map(|c| {
                // Like the real API server's CRD table convertor: the first match only.
                let value = evaluate(object, &c.json_path).into_iter().next();
                cell(&c.type_, value, now)
            }));
            let metadata = object.get("metadata").cloned().unwrap_or_default();
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata, "columnDefinitions": columns, "rows": rows})
}

fn cell(type_: &str, value: Option<&Value>, now: k8s_openapi::jiff::Timestamp) -> Value {
    match (type_, value) {
        (_, None) => Value::Null,
        ("date", Some(Value::String(s))) => match s.parse::<k8s_openapi::jiff::Timestamp>() {
            Ok(then) => json!(human_duration(now.as_second() - then.as_second())),
            Err(_) => json!(s),
        },
        (_, Some(v)) => v.clone(),
    }
}

/// `duration.HumanDuration` from apimachinery, in seconds.
pub fn human_duration(seconds: i64) -> String {
    let (minute, hour, day, year) = (60, 3600, 86_400, 365 * 86_400);
    match seconds {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 2 * minute => format!("{s}s"),
        s if s < 10 * minute => match s % minute {
            0 => format!("{}m", s / minute),
            r => format!("{}m{r}s", s / minute),
        },
        s if s < 3 * hour => format!("{}m", s / minute),
        s if s < 8 * hour => match (s % hour) / minute {
            0 => format!("{}h", s / hour),
            m => format!("{}h{m}m", s / hour),
        },
        s if s < 48 * hour => format!("{}h", s / hour),
        s if s < 8 * day => match (s % day) / hour {
            0 => format!("{}d", s / day),
            h => format!("{}d{h}h", s / day),
        },
        s if s < 2 * year => format!("{}d", s / day),
        s if s < 8 * year => match (s % year) / day {
            0 => format!("{}y", s / year),
            d => format!("{}y{d}d", s / year),
        },
        s => format!("{}y", s / year),
    }
}

/// A JSONPath step: a field, an index, every element (`[*]`), or a
/// `[?(@.key=="value")]` filter.
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn parse(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap_or(after.len());
            let inside = &after[..end];
            rest = after.get(end + 1..).unwrap_or_default();
            if let Some(filter) = inside
                .strip_prefix("?(@.")
                .and_then(|f| f.strip_suffix(')'))
            {
                if let Some((key, value)) = filter.split_once("==") {
                    steps.push(Step::Filter(
                        key.trim().into(),
                        value.trim().trim_matches(['"', '\'']).into(),
                    ));
                }
            } else if inside.trim() == "*" {
                steps.push(Step::All);
            } else if let Ok(index) = inside.parse() {
                steps.push(Step::Index(index));
            }
        } else {
            let body = rest.strip_prefix('.').unwrap_or(rest);
            let end = body.find(['.', '[']).unwrap_or(body.len());
            if end > 0 {
                steps.push(Step::Field(body[..end].to_owned()));
            }
            rest = &body[end..];
        }
    }
    steps
}

/// The values a (simple) JSONPath selects in `object`.
pub fn evaluate<'a>(object: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![object];
    for step in parse(path) {
        current = current
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match &step {
                    Step::Field(name) => v.get(name).into_iter().collect(),
                    Step::Index(i) => v.get(*i).into_iter().collect(),
                    Step::All => match v {
                        Value::Array(items) => items.iter().collect(),
                        Value::Object(fields) => fields.values().collect(),
                        _ => Vec::new(),
                    },
                    Step::Filter(key, want) => v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|item| item.get(key).and_then(Value::as_str) == Some(want.as_str()))
                        .collect(),
                }
            })
            .collect();
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_wildcard_selects_every_element() {
        let object = json!({"status": {"servers": [{"name": "a"}, {"name": "b"}]}});
        let names: Vec<&Value> = evaluate(&object, ".status.servers[*].name");
        assert_eq!(names, [&json!("a"), &json!("b")]);
    }

    #[test]
    fn jsonpath_fields_indexes_and_filters() {
        let object = json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            evaluate(&object, r#".status.conditions[?(@.type=="Ready")].status"#),
            [&json!("True")]
        );
        assert_eq!(
            evaluate(&object, ".status.conditions[0].type"),
            [&json!("Available")]
        );
        assert!(evaluate(&object, ".status.phase").is_empty());
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(303), "5m3s");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(3 * 86_400), "3d");
    }
}
