//! Events are one set of objects served by two API groups, as in kube-apiserver: core
//! `v1` `events` is where they are stored, `events.k8s.io/v1` `events` reads and writes the
//! same objects through a conversion (kubernetes `pkg/apis/events/v1/conversion.go`):
//!
//! | events.k8s.io/v1 | core v1 |
//! |---|---|
//! | `regarding` | `involvedObject` |
//! | `note` | `message` |
//! | `deprecatedSource` | `source` |
//! | `deprecatedCount` | `count` |
//! | `deprecatedFirstTimestamp` | `firstTimestamp` |
//! | `deprecatedLastTimestamp` | `lastTimestamp` |
//! | `reportingController` | `reportingComponent` |
//!
//! and the rest under the same name (`related`, `reason`, `type`, `action`,
//! `reportingInstance`, `eventTime`, `series`, `metadata`). The conversion is by name only,
//! like the real one: no defaults are invented (a core Event without `eventTime` reads
//! without one through events.k8s.io).

use serde_json::{Map, Value};

use super::resources::ResourceType;

/// The API group whose `events` are converted copies of the stored core Events.
const EVENTS_GROUP: &str = "events.k8s.io";

/// (events.k8s.io/v1 field, core v1 field) pairs that differ in name.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("reportingController", "reportingComponent"),
];

/// Whether `rt` is events.k8s.io `events`, served from the core Events' storage.
pub fn is_events_k8s_io(rt: &ResourceType) -> bool {
    rt.group == EVENTS_GROUP && rt.plural == "events"
}

/// The (group, version) objects of `rt` are stored under.
pub fn storage_of(rt: &ResourceType) -> (&str, &str) {
    if is_events_k8s_io(rt) {
        ("", "v1")
    } else {
        (&rt.group, &rt.version)
    }
}

fn renamed(object: Value, api_version: &str, to_core: bool) -> Value {
    let Value::Object(fields) = object else {
        return object;
    };
    let mut out = Map::with_capacity(fields.len());
    for (key, value) in fields {
        let key = RENAMED
            .iter()
            .find_map(|(events, core)| match to_core {
                true if key == *events => Some((*core).to_owned()),
                false if key == *core => Some((*events).to_owned()),
                _ => None,
            })
            .unwrap_or(key);
        out.insert(key, value);
    }
    out.insert("apiVersion".into(), Value::String(api_version.to_owned()));
    Value::Object(out)
}

/// An object as written to `rt`, in the form it is stored in (identity except for
/// events.k8s.io Events, which become core Events).
pub fn to_storage(rt: &ResourceType, object: Value) -> Value {
    if is_events_k8s_io(rt) {
        renamed(object, "v1", true)
    } else {
        object
    }
}

/// A stored object as `rt` serves it (identity except for events.k8s.io Events).
pub fn served(rt: &ResourceType, object: Value) -> Value {
    if is_events_k8s_io(rt) {
        renamed(object, &rt.api_version(), false)
    } else {
        object
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::resources::builtins;

    fn events_rt() -> ResourceType {
        builtins()
            .into_iter()
            .find(is_events_k8s_io)
            .expect("events.k8s.io served")
    }

    #[test]
    fn events_k8s_io_and_core_events_convert_both_ways() {
        let events = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "eventTime": "2026-01-02T03:04:05.000000Z",
            "regarding": {"kind": "Pod", "name": "p"},
            "related": {"kind": "Node", "name": "n"},
            "note": "hello", "reason": "R", "type": "Warning", "action": "A",
            "reportingController": "ctl", "reportingInstance": "ctl-0",
            "series": {"count": 2, "lastObservedTime": "2026-01-02T03:04:06.000000Z"},
            "deprecatedSource": {"component": "c", "host": "h"},
            "deprecatedCount": 5,
            "deprecatedFirstTimestamp": "2026-01-02T03:04:05Z",
            "deprecatedLastTimestamp": "2026-01-02T03:05:05Z",
        });
        let rt = events_rt();
        let core = to_storage(&rt, events.clone());
        assert_eq!(
            core,
            json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "ns"},
                "eventTime": "2026-01-02T03:04:05.000000Z",
                "involvedObject": {"kind": "Pod", "name": "p"},
                "related": {"kind": "Node", "name": "n"},
                "message": "hello", "reason": "R", "type": "Warning", "action": "A",
                "reportingComponent": "ctl", "reportingInstance": "ctl-0",
                "series": {"count": 2, "lastObservedTime": "2026-01-02T03:04:06.000000Z"},
                "source": {"component": "c", "host": "h"},
                "count": 5,
                "firstTimestamp": "2026-01-02T03:04:05Z",
                "lastTimestamp": "2026-01-02T03:05:05Z",
            })
        );
        assert_eq!(served(&rt, core), events);
    }

    #[test]
    fn other_types_are_stored_as_written() {
        let core_events = builtins()
            .into_iter()
            .find(|t| t.group.is_empty() && t.plural == "events")
            .expect("core events");
        let object = json!({"apiVersion": "v1", "kind": "Event", "message": "m"});
        assert_eq!(to_storage(&core_events, object.clone()), object);
        assert_eq!(served(&core_events, object.clone()), object);
        assert_eq!(storage_of(&core_events), ("", "v1"));
        assert_eq!(storage_of(&events_rt()), ("", "v1"));
    }
}
