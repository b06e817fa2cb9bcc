//! Kubernetes Events on McpServers, through one shared kube-runtime [`Recorder`]
//! (events.k8s.io/v1, aggregated into series by the recorder). Notes are cut to 1 KiB and
//! are built only from names, codes and server-chosen text — never a credential.
//! Failing to record an Event is logged, never a reconcile error.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::prober::InventoryDiff;

/// Most bytes of an Event note (the API's limit).
pub const MAX_NOTE_BYTES: usize = 1024;

/// Publishes Events for the controller.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// A recorder reporting as controller `mcp-operator`, instance `instance` (pod name).
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "mcp-operator".to_owned(),
            instance,
        };
        Self {
            recorder: Recorder::new(client, reporter),
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
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(truncate(note.into())),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(%error, reason, "cannot record Event");
        }
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
