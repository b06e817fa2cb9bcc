//! Kubernetes Events (events.k8s.io/v1) on McpServers and McpPolicies. Repeats of the
//! same Event (same object, type, reason, action and note) within six minutes become one
//! Event with a growing `series.count`, as kube-runtime's `Recorder` does — but keyed by
//! the note too, so an Event that names different tools than the last one is a new
//! Event rather than a bump of the old one's count under its old note. Notes are cut to
//! 1 KiB and are built only from names, codes and server-chosen text — never a
//! credential. Failing to record an Event is logged, never a reconcile error.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};

use crate::prober::InventoryDiff;

/// Most bytes of an Event note (the API's limit).
pub const MAX_NOTE_BYTES: usize = 1024;

/// How long a published Event absorbs identical repeats into its series.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// Publishes Events for the controllers.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    controller: String,
    instance: String,
    recent: Arc<Mutex<HashMap<SeriesKey, Published>>>,
}

/// What makes two Events the same Event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    regarding: (String, String, String, String),
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

#[derive(Clone, Debug)]
struct Published {
    name: String,
    count: i32,
    last: Timestamp,
}

impl Events {
    /// A publisher reporting as controller `mcp-operator`, instance `instance` (pod name).
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        let controller = "mcp-operator".to_owned();
        Self {
            client,
            instance: instance.unwrap_or_else(|| controller.clone()),
            controller,
            recent: Arc::default(),
        }
    }

    /// Publishes one Event about `regarding`.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let note = truncate(note.into());
        if let Err(error) = self.send(regarding, warning, reason, action, note).await {
            tracing::warn!(%error, reason, "cannot record Event");
        }
    }

    async fn send(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = SeriesKey {
            regarding: (
                regarding.namespace.clone().unwrap_or_default(),
                regarding.kind.clone().unwrap_or_default(),
                regarding.name.clone().unwrap_or_default(),
                regarding.uid.clone().unwrap_or_default(),
            ),
            warning,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: note.clone(),
        };
        let previous = {
            let mut recent = self.recent.lock().expect("event cache lock");
            recent.retain(|_, p| p.last + SERIES_WINDOW > now);
            recent.get(&key).cloned()
        };
        let namespace = key.regarding.0.clone();
        let namespace = if namespace.is_empty() {
            "default".to_owned()
        } else {
            namespace
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(p) = previous {
            let count = p.count + 1;
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(now),
            };
            let patch = serde_json::json!({ "series": series });
            // A failed bump (the Event expired meanwhile) falls back to a new Event.
            if api
                .patch(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                let bumped = Published {
                    count,
                    last: now,
                    ..p
                };
                self.recent
                    .lock()
                    .expect("event cache lock")
                    .insert(key, bumped);
                return Ok(());
            }
        }
        // Object names are at most 253 characters: keep room for the suffix.
        let base: String = regarding
            .name
            .as_deref()
            .unwrap_or(&self.controller)
            .chars()
            .take(200)
            .collect();
        let name = format!("{base}.{:x}", now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            ..Event::default()
        };
        api.create(&PostParams::default(), &event).await?;
        let published = Published {
            name,
            count: 1,
            last: now,
        };
        self.recent
            .lock()
            .expect("event cache lock")
            .insert(key, published);
        Ok(())
    }
}

/// `note` cut to [`MAX_NOTE_BYTES`] on a character boundary.
pub fn truncate(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

/// The note of a ToolsChanged Event: which tools were added, removed and changed.
pub fn tools_changed_note(diff: &InventoryDiff) -> String {
    let mut parts = Vec::new();
    for (label, names) in [
        ("added", &diff.added),
        ("removed", &diff.removed),
        ("changed", &diff.changed),
    ] {
        if !names.is_empty() {
            parts.push(format!("{label}: {}", names.join(", ")));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_to_one_kib() {
        let note = truncate("é".repeat(2000));
        assert!(note.len() <= MAX_NOTE_BYTES);
        assert!(note.ends_with("..."));
        assert_eq!(truncate("short".into()), "short");
    }

    #[test]
    fn tools_changed_names_each_kind() {
        let diff = InventoryDiff {
            added: vec!["a".into()],
            removed: vec![],
            changed: vec!["c".into(), "d".into()],
        };
        assert_eq!(tools_changed_note(&diff), "added: a; changed: c, d");
    }
}
