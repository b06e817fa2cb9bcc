//! One session's server-to-client side: [`Outbox`] routes each message a backend delivers
//! to the HTTP stream waiting for it. Responses go to the POST that carried their request,
//! progress to the POST whose request asked for it, notifications of a 2026-07-28
//! subscription (`_meta` `io.modelcontextprotocol/subscriptionId`) to the POST of its
//! `subscriptions/listen` request, server requests to the only POST in flight (else the GET
//! stream), everything else to the GET stream (buffered, bounded, while no GET stream is
//! open).
//!
//! What a session holds for its client is bounded in bytes, not only in messages: every
//! message waiting in the GET backlog or in a stream's queue counts against the session's
//! byte limit. A message that would pass it first drops the oldest backlog messages, then
//! cuts the session's stream with the most bytes queued (a client that stopped reading:
//! its queue is discarded and its stream ends). A message is always taken when nothing is
//! left to evict, so a session holds at most the limit plus one message. Both are counted
//! ([`OutboxCounters`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::queue::stream_queue;
pub use super::queue::{QueueEmpty, StreamReceiver, StreamSender};
use crate::mcp_http::jsonrpc::{self, Kind, code};

/// Default per-session byte limit on messages waiting for the client.
pub const DEFAULT_SESSION_BACKLOG_BYTES: usize = 8 << 20;

/// How much a session may hold for its client.
#[derive(Clone, Copy, Debug)]
pub struct OutboxLimits {
    /// Messages kept while no GET stream is open.
    pub backlog_messages: usize,
    /// Bytes (serialized JSON) of every message waiting in the backlog or a stream queue.
    pub bytes: usize,
}

/// Server-wide counts of what the byte and message limits threw away.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Backlog messages dropped (oldest first) for the message or byte limit.
    pub messages_dropped: AtomicU64,
    /// Streams cut because their client did not read them.
    pub streams_cut: AtomicU64,
}

/// Where a session's server-to-client messages go. Backends call [`Outbox::deliver`]
/// (never blocks) and [`Outbox::close`] when their side of the session is gone.
pub struct Outbox {
    routes: Mutex<Routes>,
    limits: OutboxLimits,
    /// Bytes waiting in the backlog and in every stream queue of this session.
    bytes: Arc<AtomicUsize>,
    dropped: AtomicU64,
    counters: Arc<OutboxCounters>,
}

struct Routes {
    /// Client request id key → the POST stream waiting for its response.
    pending: HashMap<String, Pending>,
    /// Progress token key → request id key.
    progress: HashMap<String, String>,
    get_stream: Option<StreamSender>,
    backlog: VecDeque<(Value, usize)>,
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
    /// An open outbox; at most `get_backlog_limit` messages wait for a GET stream, and
    /// the default byte limit applies.
    pub fn new(get_backlog_limit: usize) -> Self {
        let limits = OutboxLimits {
            backlog_messages: get_backlog_limit,
            bytes: DEFAULT_SESSION_BACKLOG_BYTES,
        };
        Self::with_limits(limits, Arc::default())
    }

    /// An open outbox with `limits`, counting what they drop in `counters`.
    pub fn with_limits(limits: OutboxLimits, counters: Arc<OutboxCounters>) -> Self {
        Self {
            routes: Mutex::new(Routes {
                pending: HashMap::new(),
                progress: HashMap::new(),
                get_stream: None,
                backlog: VecDeque::new(),
                closed: None,
            }),
            limits,
            bytes: Arc::default(),
            dropped: AtomicU64::new(0),
            counters,
        }
    }

    /// A stream queue counted against this session's byte limit, for a POST's answer.
    pub(crate) fn new_stream(&self) -> (StreamSender, StreamReceiver) {
        stream_queue(self.bytes.clone())
    }

    /// Bytes waiting for the client now (backlog and stream queues).
    pub fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes one server-to-client message (ids already in the client's id space).
    pub fn deliver(&self, message: Value) {
        let size = serialized_len(&message);
        self.deliver_sized(message, size);
    }

    /// [`Outbox::deliver`] for a message whose size is known (`size` bytes of JSON, as
    /// the backend read it).
    pub fn deliver_sized(&self, message: Value, size: usize) {
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
            Kind::Notification if crate::mcp_http::era::subscription_id(&message).is_some() => {
                crate::mcp_http::era::subscription_id(&message)
                    .map(jsonrpc::id_key)
                    .and_then(|request| routes.pending.get(&request))
                    .map(|p| p.stream.clone())
            }
            Kind::Request if routes.pending.len() == 1 => {
                routes.pending.values().next().map(|p| p.stream.clone())
            }
            _ => None,
        };
        self.make_room(&mut routes, size);
        let message = match target {
            Some(stream) => match stream.send(message, size) {
                Ok(()) => return,
                // The POST's client went away: responses are dropped, the rest may still
                // reach the GET stream.
                Err(m) if !jsonrpc::is_response(&m) => m,
                Err(_) => return,
            },
            None => message,
        };
        self.send_to_get_stream(&mut routes, message, size);
    }

    /// Evicts until `size` more bytes fit the session's limit, or nothing is left to
    /// evict: oldest backlog messages first, then the stream with the most bytes queued.
    fn make_room(&self, routes: &mut Routes, size: usize) {
        while self.queued_bytes() + size > self.limits.bytes {
            if let Some((_, dropped)) = routes.backlog.pop_front() {
                self.bytes.fetch_sub(dropped, Ordering::Relaxed);
                self.count_dropped();
                continue;
            }
            let fullest = routes
                .get_stream
                .iter()
                .chain(routes.pending.values().map(|p| &p.stream))
                .map(|s| (s.queued_bytes(), s))
                .filter(|(bytes, _)| *bytes > 0)
                .max_by_key(|(bytes, _)| *bytes)
                .map(|(_, s)| s.clone());
            let Some(stream) = fullest else { return };
            tracing::warn!(
                queued = stream.queued_bytes(),
                limit = self.limits.bytes,
                "cutting a stream its client does not read (session byte limit)"
            );
            stream.cut();
            self.counters.streams_cut.fetch_add(1, Ordering::Relaxed);
            if routes
                .get_stream
                .as_ref()
                .is_some_and(|g| g.same_queue(&stream))
            {
                routes.get_stream = None;
            }
        }
    }

    fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.counters
            .messages_dropped
            .fetch_add(1, Ordering::Relaxed);
    }

    fn send_to_get_stream(&self, routes: &mut Routes, message: Value, size: usize) {
        let message = match &routes.get_stream {
            Some(stream) => match stream.send(message, size) {
                Ok(()) => return,
                Err(m) => {
                    routes.get_stream = None;
                    m
                }
            },
            None => message,
        };
        if routes.backlog.len() >= self.limits.backlog_messages {
            if let Some((_, dropped)) = routes.backlog.pop_front() {
                self.bytes.fetch_sub(dropped, Ordering::Relaxed);
            }
            self.count_dropped();
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        routes.backlog.push_back((message, size));
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
        let backlog: usize = routes.backlog.drain(..).map(|(_, size)| size).sum();
        self.bytes.fetch_sub(backlog, Ordering::Relaxed);
        routes.progress.clear();
        for (_, pending) in routes.pending.drain() {
            let error = jsonrpc::error_response(pending.id, code::UPSTREAM_UNAVAILABLE, reason);
            let size = serialized_len(&error);
            let _ = pending.stream.send(error, size);
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
        let (tx, rx) = self.new_stream();
        let mut routes = self.lock();
        if routes.closed.is_some() {
            return None;
        }
        for (message, size) in routes.backlog.drain(..) {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            let _ = tx.send(message, size);
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

/// The length of `message` as JSON, without building the text.
pub fn serialized_len(message: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, message);
    count.0
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
        let (a_tx, mut a_rx) = outbox.new_stream();
        let (b_tx, mut b_rx) = outbox.new_stream();
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
    fn subscription_notifications_reach_their_listen_post() {
        let outbox = Outbox::new(8);
        let (listen_tx, mut listen_rx) = outbox.new_stream();
        let (call_tx, mut call_rx) = outbox.new_stream();
        outbox
            .register(1, &[request(json!("listen-1"), None)], &listen_tx)
            .unwrap();
        outbox
            .register(2, &[request(json!(2), None)], &call_tx)
            .unwrap();
        let sub = "io.modelcontextprotocol/subscriptionId";
        outbox.deliver(
            json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed",
            "params":{"_meta":{sub:"listen-1"}}}),
        );
        // A subscription nobody listens to any more: not to another POST.
        outbox.deliver(
            json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed",
            "params":{"_meta":{sub:"gone"}}}),
        );
        assert_eq!(
            listen_rx.try_recv().unwrap()["method"],
            "notifications/tools/list_changed"
        );
        assert!(listen_rx.try_recv().is_err());
        assert!(call_rx.try_recv().is_err());
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

    fn note(n: usize, bytes: usize) -> Value {
        json!({"jsonrpc":"2.0","method":"notifications/message","params":{"n":n,"data":"y".repeat(bytes)}})
    }

    #[test]
    fn the_backlog_is_bounded_in_bytes_dropping_the_oldest() {
        let limits = OutboxLimits {
            backlog_messages: 1000,
            bytes: 10_000,
        };
        let counters = Arc::new(OutboxCounters::default());
        let outbox = Outbox::with_limits(limits, counters.clone());
        for n in 0..100 {
            outbox.deliver(note(n, 1000));
        }
        assert!(outbox.queued_bytes() <= 10_000, "{}", outbox.queued_bytes());
        let mut get = outbox.open_get_stream().unwrap();
        let first = get.try_recv().unwrap()["params"]["n"].as_u64().unwrap();
        assert!(first > 90, "the newest messages are kept, first is {first}");
        assert_eq!(counters.messages_dropped.load(Ordering::Relaxed), first);
    }

    #[test]
    fn a_stream_nobody_reads_is_cut_and_a_read_stream_keeps_working() {
        let limits = OutboxLimits {
            backlog_messages: 1000,
            bytes: 10_000,
        };
        let counters = Arc::new(OutboxCounters::default());
        let outbox = Outbox::with_limits(limits, counters.clone());
        let mut stalled = outbox.open_get_stream().unwrap();
        let (post, mut answers) = outbox.new_stream();
        outbox
            .register(1, &[request(json!(1), Some("p"))], &post)
            .unwrap();
        drop(post);
        for n in 0..100 {
            outbox.deliver(note(n, 1000));
            let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":n}});
            outbox.deliver(progress);
            assert_eq!(answers.try_recv().unwrap()["params"]["progress"], n);
            assert!(outbox.queued_bytes() <= 11_000, "{}", outbox.queued_bytes());
        }
        assert_eq!(counters.streams_cut.load(Ordering::Relaxed), 1);
        // The cut stream ends after what it was given before the cut was discarded.
        assert!(stalled.try_recv().is_err());
        outbox.deliver(json!({"jsonrpc":"2.0","id":1,"result":{}}));
        assert_eq!(answers.try_recv().unwrap()["id"], 1);
    }

    #[test]
    fn closing_fails_waiting_requests() {
        let outbox = Outbox::new(2);
        let (tx, mut rx) = outbox.new_stream();
        outbox.register(1, &[request(json!(7), None)], &tx).unwrap();
        outbox.close("gone");
        assert_eq!(rx.try_recv().unwrap()["error"]["message"], "gone");
        assert!(outbox.register(2, &[request(json!(8), None)], &tx).is_err());
    }
}
