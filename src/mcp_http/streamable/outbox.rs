//! One session's server-to-client side: [`Outbox`] routes each message a backend delivers
//! to the HTTP stream waiting for it. Responses go to the POST that carried their request,
//! progress to the POST whose request asked for it, server requests to the only POST in
//! flight (else the GET stream), everything else to the GET stream (buffered, bounded,
//! while no GET stream is open).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::mcp_http::jsonrpc::{self, Kind, code};

/// Messages for one HTTP response stream (a POST's or the GET's).
pub type StreamSender = mpsc::UnboundedSender<Value>;
/// The receiving end of a [`StreamSender`].
pub type StreamReceiver = mpsc::UnboundedReceiver<Value>;

/// Where a session's server-to-client messages go. Backends call [`Outbox::deliver`]
/// (never blocks) and [`Outbox::close`] when their side of the session is gone.
pub struct Outbox {
    routes: Mutex<Routes>,
    get_backlog_limit: usize,
    dropped: AtomicU64,
}

struct Routes {
    /// Client request id key → the POST stream waiting for its response.
    pending: HashMap<String, Pending>,
    /// Progress token key → request id key.
    progress: HashMap<String, String>,
    get_stream: Option<StreamSender>,
    backlog: VecDeque<Value>,
    closed: Option<String>,
}

struct Pending {
    id: Value,
    stream: StreamSender,
    post: u64,
    progress_token: Option<String>,
}

/// One request of a POST, as registered with [`Outbox::register`].
pub(crate) struct RegisteredRequest {
    pub id: Value,
    pub progress_token: Option<String>,
}

impl Outbox {
    /// An open outbox; at most `get_backlog_limit` messages wait for a GET stream.
    pub fn new(get_backlog_limit: usize) -> Self {
        Self {
            routes: Mutex::new(Routes {
                pending: HashMap::new(),
                progress: HashMap::new(),
                get_stream: None,
                backlog: VecDeque::new(),
                closed: None,
            }),
            get_backlog_limit,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes one server-to-client message (ids already in the client's id space).
    pub fn deliver(&self, message: Value) {
        let mut routes = self.lock();
        if routes.closed.is_some() {
            return;
        }
        let target = match jsonrpc::kind(&message) {
            Kind::Response | Kind::Error => {
                let key = jsonrpc::id(&message).map(jsonrpc::id_key);
                match key.and_then(|k| routes.pending.remove(&k)) {
                    Some(p) => {
                        if let Some(t) = &p.progress_token {
                            routes.progress.remove(t);
                        }
                        Some(p.stream)
                    }
                    None => {
                        tracing::debug!("dropping a response nobody waits for");
                        return;
                    }
                }
            }
            Kind::Notification if jsonrpc::method(&message) == Some("notifications/progress") => {
                jsonrpc::progress_notification_token(&message)
                    .map(jsonrpc::id_key)
                    .and_then(|t| routes.progress.get(&t))
                    .and_then(|request| routes.pending.get(request))
                    .map(|p| p.stream.clone())
            }
            Kind::Request if routes.pending.len() == 1 => {
                routes.pending.values().next().map(|p| p.stream.clone())
            }
            _ => None,
        };
        let message = match target {
            Some(stream) => match stream.send(message) {
                Ok(()) => return,
                // The POST's client went away: responses are dropped, the rest may still
                // reach the GET stream.
                Err(mpsc::error::SendError(m)) if !jsonrpc::is_response(&m) => m,
                Err(_) => return,
            },
            None => message,
        };
        routes.send_to_get_stream(message, self.get_backlog_limit, &self.dropped);
    }

    /// Ends the session from the backend's side: every waiting request gets a JSON-RPC
    /// error naming `reason`, the GET stream ends, and later use of the session fails.
    pub fn close(&self, reason: &str) {
        let mut routes = self.lock();
        if routes.closed.is_some() {
            return;
        }
        routes.closed = Some(reason.to_owned());
        routes.get_stream = None;
        routes.backlog.clear();
        routes.progress.clear();
        for (_, pending) in routes.pending.drain() {
            let _ = pending.stream.send(jsonrpc::error_response(
                pending.id,
                code::UPSTREAM_UNAVAILABLE,
                reason,
            ));
        }
    }

    /// Why the session was closed, if it was.
    pub fn closed_reason(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    /// Messages dropped because no GET stream drained the backlog.
    pub fn dropped_messages(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Registers a POST's requests; their responses go to `stream`. Fails when closed.
    pub(crate) fn register(
        &self,
        post: u64,
        requests: &[RegisteredRequest],
        stream: &StreamSender,
    ) -> Result<(), String> {
        let mut routes = self.lock();
        if let Some(reason) = &routes.closed {
            return Err(reason.clone());
        }
        for request in requests {
            let key = jsonrpc::id_key(&request.id);
            if let Some(token) = &request.progress_token {
                routes.progress.insert(token.clone(), key.clone());
            }
            routes.pending.insert(
                key,
                Pending {
                    id: request.id.clone(),
                    stream: stream.clone(),
                    post,
                    progress_token: request.progress_token.clone(),
                },
            );
        }
        Ok(())
    }

    /// Forgets a POST's requests that are still unanswered (its stream ended).
    pub(crate) fn unregister(&self, post: u64, ids: &[Value]) {
        let mut routes = self.lock();
        for id in ids {
            let key = jsonrpc::id_key(id);
            if routes.pending.get(&key).is_some_and(|p| p.post == post)
                && let Some(p) = routes.pending.remove(&key)
                && let Some(t) = p.progress_token
            {
                routes.progress.remove(&t);
            }
        }
    }

    /// Opens (or replaces) the GET stream; the backlog is flushed into it first.
    pub(crate) fn open_get_stream(&self) -> Option<StreamReceiver> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut routes = self.lock();
        if routes.closed.is_some() {
            return None;
        }
        for message in routes.backlog.drain(..) {
            let _ = tx.send(message);
        }
        routes.get_stream = Some(tx);
        Some(rx)
    }

    /// Ends the GET stream (shutdown); the session stays usable.
    pub(crate) fn end_get_stream(&self) {
        self.lock().get_stream = None;
    }

    /// Requests waiting for an answer.
    pub(crate) fn pending_requests(&self) -> usize {
        self.lock().pending.len()
    }

    /// Whether a client holds a GET stream open.
    pub(crate) fn has_live_get_stream(&self) -> bool {
        self.lock()
            .get_stream
            .as_ref()
            .is_some_and(|s| !s.is_closed())
    }
}

impl Routes {
    fn send_to_get_stream(&mut self, message: Value, limit: usize, dropped: &AtomicU64) {
        let message = match &self.get_stream {
            Some(stream) => match stream.send(message) {
                Ok(()) => return,
                Err(mpsc::error::SendError(m)) => {
                    self.get_stream = None;
                    m
                }
            },
            None => message,
        };
        if self.backlog.len() >= limit {
            self.backlog.pop_front();
            dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.backlog.push_back(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(id: Value, token: Option<&str>) -> RegisteredRequest {
        RegisteredRequest {
            id,
            progress_token: token.map(|t| jsonrpc::id_key(&json!(t))),
        }
    }

    #[test]
    fn responses_and_progress_reach_their_post() {
        let outbox = Outbox::new(8);
        let (a_tx, mut a_rx) = mpsc::unbounded_channel();
        let (b_tx, mut b_rx) = mpsc::unbounded_channel();
        outbox
            .register(1, &[request(json!(1), Some("p"))], &a_tx)
            .unwrap();
        outbox
            .register(2, &[request(json!("1"), None)], &b_tx)
            .unwrap();
        outbox.deliver(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}));
        outbox.deliver(json!({"jsonrpc":"2.0","id":"1","result":{}}));
        outbox.deliver(json!({"jsonrpc":"2.0","id":1,"result":{}}));
        assert_eq!(a_rx.try_recv().unwrap()["method"], "notifications/progress");
        assert_eq!(a_rx.try_recv().unwrap()["id"], 1);
        assert_eq!(b_rx.try_recv().unwrap()["id"], "1");
        assert_eq!(outbox.pending_requests(), 0);
    }

    #[test]
    fn unrouted_messages_wait_for_the_get_stream_bounded() {
        let outbox = Outbox::new(2);
        for n in 0..3 {
            outbox.deliver(
                json!({"jsonrpc":"2.0","method":"notifications/message","params":{"n":n}}),
            );
        }
        let mut get = outbox.open_get_stream().unwrap();
        assert_eq!(get.try_recv().unwrap()["params"]["n"], 1);
        assert_eq!(get.try_recv().unwrap()["params"]["n"], 2);
        assert_eq!(outbox.dropped_messages(), 1);
    }

    #[test]
    fn closing_fails_waiting_requests() {
        let outbox = Outbox::new(2);
        let (tx, mut rx) = mpsc::unbounded_channel();
        outbox.register(1, &[request(json!(7), None)], &tx).unwrap();
        outbox.close("gone");
        assert_eq!(rx.try_recv().unwrap()["error"]["message"], "gone");
        assert!(outbox.register(2, &[request(json!(8), None)], &tx).is_err());
    }
}
