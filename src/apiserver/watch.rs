//! Watches: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) streamed from the store's history and live changes.
//! - No resourceVersion (or "0"): synthetic ADDED events for the current objects, then
//!   changes ("get state and start at most recent").
//! - A resourceVersion: every change after it, or one ERROR event with a 410 `Status`
//!   when the history no longer reaches back that far (the client must relist).
//! - `Accept: ...;as=Table` (kubectl get -w) on a type with printer columns: each
//!   event's object is a one-row `Table`, as the real server sends them.
//! - events.k8s.io/v1 and core v1 Events are one stored set: a watch of either group sees
//!   the writes made through the other, converted ([`super::events`]).
//! - Selector transitions: an object that starts matching arrives as ADDED, one that stops
//!   matching as DELETED, as the real watch cache reports them.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::{
    error::{ApiResult, ApiServerError},
    events,
    ops::ListOptions,
    resources::ResourceType,
    state::State,
    store::{Change, EventType},
    table,
};

/// A watch request.
pub struct WatchRequest {
    /// The watched type.
    pub rt: ResourceType,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// Selectors.
    pub options: ListOptions,
    /// Start after this revision; None for "current state first".
    pub since: Option<u64>,
    /// When the server ends the watch.
    pub timeout: Duration,
    /// Whether to send BOOKMARK events.
    pub bookmarks: bool,
    /// Whether event objects are rendered as `Table`s.
    pub table: bool,
}

impl WatchRequest {
    fn matches(&self, object: &Value) -> bool {
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.namespace
            .as_deref()
            .is_none_or(|want| want == ns || !self.rt.namespaced)
            && self.options.labels.matches(object)
            && self.options.fields.matches(object)
    }

    /// One event line, its object rendered as a Table when the client asked for one.
    fn encode(&self, kind: &str, object: &Value) -> Bytes {
        if !self.table {
            return line(kind, object);
        }
        let metadata = json!({"resourceVersion": object.pointer("/metadata/resourceVersion")});
        line(
            kind,
            &table::render(&self.rt, std::slice::from_ref(object), metadata),
        )
    }

    /// The event this watcher sees for a change, if any.
    fn event_for(&self, change: &Change) -> Option<(&'static str, Value)> {
        if !change.key.is_of(&self.rt) {
            return None;
        }
        // Changes carry the stored form; this watcher sees (and selects on) its type's.
        let object = events::served(&self.rt, change.object.clone());
        let now = self.matches(&object);
        let before = change
            .old
            .as_ref()
            .is_some_and(|o| self.matches(&events::served(&self.rt, o.clone())));
        let kind = match (change.kind, before, now) {
            (EventType::Added, _, true) | (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, true, false) => {
                // As the watch cache reports it: the object as it last matched, at the
                // change's resourceVersion.
                let mut old = events::served(&self.rt, change.old.clone()?);
                if let Some(rv) = object.pointer("/metadata/resourceVersion").cloned() {
                    old["metadata"]["resourceVersion"] = rv;
                }
                return Some((EventType::Deleted.as_str(), old));
            }
            (EventType::Deleted, _, true) => EventType::Deleted,
            _ => return None,
        };
        Some((kind.as_str(), object))
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Starts a watch and returns its streaming response.
pub fn watch(state: &Arc<State>, request: WatchRequest) -> ApiResult<Response> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let (initial, live, start) = {
        let inner = state.lock();
        let store = &inner.store;
        let initial: Vec<Bytes> = match request.since {
            None | Some(0) => store
                .list(&request.rt, request.namespace.as_deref())
                .map(|(_, o)| events::served(&request.rt, o.clone()))
                .filter(|o| request.matches(o))
                .map(|o| request.encode("ADDED", &o))
                .collect(),
            Some(rv) => match store.changes_since(rv) {
                Some(changes) => changes
                    .iter()
                    .filter_map(|c| request.event_for(c))
                    .map(|(k, o)| request.encode(k, &o))
                    .collect(),
                None => {
                    let message =
                        format!("too old resource version: {rv} ({})", store.compacted() + 1);
                    vec![line("ERROR", &ApiServerError::gone(message).to_status())]
                }
            },
        };
        let expired = request
            .since
            .is_some_and(|rv| rv > 0 && store.changes_since(rv).is_none());
        (
            initial,
            (!expired).then(|| store.subscribe()),
            store.revision(),
        )
    };
    let bookmark_every = state.options.bookmark_interval;
    tokio::spawn(async move {
        for bytes in initial {
            if tx.send(bytes).await.is_err() {
                return;
            }
        }
        if let Some(live) = live {
            stream_live(&request, live, start, &tx, bookmark_every).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiServerError::bad_request(e.to_string()))
}

async fn stream_live(
    request: &WatchRequest,
    mut live: broadcast::Receiver<Arc<Change>>,
    mut revision: u64,
    tx: &mpsc::Sender<Bytes>,
    bookmark_every: Duration,
) {
    let deadline = tokio::time::sleep(request.timeout);
    tokio::pin!(deadline);
    let mut bookmarks = tokio::time::interval(bookmark_every);
    bookmarks.tick().await;
    loop {
        let bytes = tokio::select! {
            () = &mut deadline => return,
            _ = bookmarks.tick(), if request.bookmarks => {
                let object = json!({"kind": request.rt.kind, "apiVersion": request.rt.api_version(), "metadata": {"resourceVersion": revision.to_string()}});
                line("BOOKMARK", &object)
            }
            received = live.recv() => match received {
                Ok(change) => {
                    revision = change.revision;
                    match request.event_for(&change) {
                        Some((kind, object)) => request.encode(kind, &object),
                        None => continue,
                    }
                }
                // A watcher too slow for the change stream is cut off like one whose
                // revision was compacted: it relists.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(line("ERROR", &ApiServerError::gone("too old resource version: watcher fell behind").to_status())).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        };
        if tx.send(bytes).await.is_err() {
            return;
        }
    }
}
