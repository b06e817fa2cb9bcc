//! Session multiplexing onto one stdio process ([`Mux`]): every client request gets a
//! fresh child-side id (mapped back on the response, so ids never cross sessions),
//! progress tokens are rewritten the same way, `notifications/cancelled` follow the
//! rewrite, server requests go to the one session with requests in flight (or are refused
//! to the child), and server notifications without a routing key reach every legacy
//! session. When the process exits, every call in flight fails with a JSON-RPC error.
//!
//! Sessions are of either protocol era ([`ClientEra`]): a legacy session per client
//! `initialize`, a modern one per session-less 2026-07-28 request (attached for that one
//! request). Whatever the child speaks ([`ChildEra`]), the [`super::eras`] rewrites make
//! each request and response fit: `initialize` and `server/discover` are answered here from
//! the child's handshake result, the `_meta` envelope is stripped for a legacy child and
//! stamped for a modern one, versions the bridge cannot serve get -32022, and a legacy
//! child's server-to-client request that would have to reach a modern client is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::child::{INITIALIZE_ID, LineSender, encode_line};
use super::eras::{self, ChildEra};
use crate::mcp_http::era;
use crate::mcp_http::jsonrpc::{self, Kind, code};
use crate::mcp_http::negotiate_version;
use crate::mcp_http::streamable::{BackendError, Outbox};

/// A session attached to a [`Mux`].
pub type SessionKey = u64;

/// The protocol era of a session's client.
#[derive(Debug, Clone)]
pub enum ClientEra {
    /// A session opened by `initialize`, with its params (capabilities and `clientInfo`,
    /// stamped as the `_meta` envelope on its requests when the child is modern).
    Legacy { initialize_params: Value },
    /// One session-less 2026-07-28 request: its envelope travels with it.
    Modern,
}

impl ClientEra {
    /// The era of a client whose session starts with `initialize`.
    pub fn legacy(initialize: &Value) -> Self {
        ClientEra::Legacy {
            initialize_params: initialize.get("params").cloned().unwrap_or_default(),
        }
    }
}

/// A request the bridge answers itself instead of sending it to the child.
enum Local {
    /// This answer.
    Answer(Value),
    /// A `subscriptions/listen` for a legacy child, honored with this filter.
    Listen(Value),
}

/// What a response needs before it reaches its client.
#[derive(Debug, Clone, Copy)]
enum ResponseFix {
    /// Same era on both sides.
    AsIs,
    /// A legacy child's response to a modern client.
    ToModern { cacheable: bool },
    /// A modern child's response to a legacy client.
    ToLegacy,
}

/// One process's sessions and the id maps between them and the process.
pub struct Mux {
    state: Mutex<MuxState>,
    next_child_id: AtomicU64,
    next_session: AtomicU64,
    ready: watch::Sender<bool>,
    /// Process id of the current process (0 while none runs).
    pub pid: AtomicU64,
}

#[derive(Default)]
struct MuxState {
    /// Writer to the running process, `None` while it is down.
    writer: Option<LineSender>,
    /// The running process's era and handshake result (answers every client `initialize`
    /// and `server/discover` the bridge answers itself).
    child: Option<Arc<ChildEra>>,
    in_flight: HashMap<u64, InFlight>,
    /// Child-side progress token → (session, the client's token).
    progress: HashMap<u64, (SessionKey, Value)>,
    sessions: HashMap<SessionKey, AttachedSession>,
    /// Server request id key → the session it was sent to.
    server_requests: HashMap<String, SessionKey>,
}

struct InFlight {
    session: SessionKey,
    client_id: Value,
    progress_token: Option<u64>,
    fix: ResponseFix,
}

struct AttachedSession {
    outbox: Arc<Outbox>,
    client: ClientEra,
    /// A modern session's `subscriptions/listen` the bridge serves for a legacy child: the
    /// listen request's id and the honored filter.
    listen: Option<(Value, Value)>,
    /// Client request id key → child-side id, for requests in flight.
    requests: HashMap<String, u64>,
}

impl Default for Mux {
    fn default() -> Self {
        Self {
            state: Mutex::new(MuxState::default()),
            next_child_id: AtomicU64::new(INITIALIZE_ID + 1),
            next_session: AtomicU64::new(1),
            ready: watch::Sender::new(false),
            pid: AtomicU64::new(0),
        }
    }
}

impl Mux {
    fn lock(&self) -> MutexGuard<'_, MuxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the process is up and initialized.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the process is up and initialized.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Sessions attached now.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Calls sent to the process and not answered yet.
    pub fn calls_in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// The supervisor saw a fresh process finish its handshake.
    pub fn child_started(&self, writer: LineSender, child: ChildEra, pid: Option<u32>) {
        {
            let mut state = self.lock();
            state.writer = Some(writer);
            state.child = Some(Arc::new(child));
        }
        self.pid.store(pid.unwrap_or(0).into(), Ordering::Relaxed);
        self.ready.send_replace(true);
    }

    /// The process is gone: every call in flight fails with an error naming `how`.
    pub fn child_exited(&self, how: &str, restarting: bool) {
        self.ready.send_replace(false);
        self.pid.store(0, Ordering::Relaxed);
        let failed: Vec<(Arc<Outbox>, Value)> = {
            let mut state = self.lock();
            state.writer = None;
            state.progress.clear();
            state.server_requests.clear();
            let in_flight: Vec<InFlight> = state.in_flight.drain().map(|(_, f)| f).collect();
            for session in state.sessions.values_mut() {
                session.requests.clear();
            }
            in_flight
                .into_iter()
                .filter_map(|f| {
                    let outbox = state.sessions.get(&f.session)?.outbox.clone();
                    Some((outbox, f.client_id))
                })
                .collect()
        };
        let message = if restarting {
            format!("MCP server process exited ({how}); restarting")
        } else {
            format!("MCP server process stopped ({how})")
        };
        for (outbox, id) in failed {
            outbox.deliver(jsonrpc::error_response(
                id,
                code::UPSTREAM_UNAVAILABLE,
                message.as_str(),
            ));
        }
    }

    fn child(&self) -> Result<Arc<ChildEra>, BackendError> {
        self.lock().child.clone().ok_or_else(|| {
            BackendError::Unavailable("the MCP server process is not initialized yet".into())
        })
    }

    /// The answer to a client's `initialize`: the process's cached `initialize` result
    /// with the protocol version negotiated for this client, or for a modern child one
    /// made from its discover result.
    pub fn initialize_response(&self, request: &Value) -> Result<Value, BackendError> {
        let child = self.child()?;
        let requested = request
            .get("params")
            .and_then(|p| p.get("protocolVersion"))
            .and_then(Value::as_str);
        let result = match &*child {
            ChildEra::Legacy { initialize } => {
                let mut result = initialize.clone();
                let server_version = result["protocolVersion"]
                    .as_str()
                    .unwrap_or(era::LATEST_LEGACY);
                result["protocolVersion"] =
                    Value::String(negotiate_version(requested, server_version));
                result
            }
            ChildEra::Modern { discover, .. } => {
                eras::initialize_from_discover(discover, requested)
            }
        };
        let id = jsonrpc::id(request).cloned().unwrap_or_default();
        Ok(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    /// Attaches a session of `client`'s era whose server messages go to `outbox`.
    pub fn attach(&self, outbox: Arc<Outbox>, client: ClientEra) -> SessionKey {
        let key = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.lock().sessions.insert(
            key,
            AttachedSession {
                outbox,
                client,
                listen: None,
                requests: HashMap::new(),
            },
        );
        key
    }

    /// Delivers a message the bridge itself answers to session `key`.
    fn answer(&self, key: SessionKey, message: Value) {
        let outbox = self.lock().sessions.get(&key).map(|s| s.outbox.clone());
        if let Some(outbox) = outbox {
            outbox.deliver(message);
        }
    }

    /// Makes a client request fit the child's era. `Err`: the bridge answers it itself.
    fn translate_request(
        child: &ChildEra,
        client: &ClientEra,
        message: &mut Value,
    ) -> Result<ResponseFix, Local> {
        let id = || jsonrpc::id(message).cloned().unwrap_or_default();
        let method = jsonrpc::method(message).unwrap_or_default();
        match (client, child) {
            (ClientEra::Modern, child) => {
                let requested = era::declared_version(message).unwrap_or_default();
                let served = child.served_modern_versions();
                if !served.iter().any(|v| v == requested) {
                    let refusal = eras::unsupported_version(id(), requested, &served);
                    return Err(Local::Answer(refusal));
                }
                let ChildEra::Legacy { initialize } = child else {
                    return Ok(ResponseFix::AsIs);
                };
                if method == era::DISCOVER {
                    let result = eras::discover_from_initialize(initialize);
                    return Err(Local::Answer(
                        json!({"jsonrpc": "2.0", "id": id(), "result": result}),
                    ));
                }
                if method == era::SUBSCRIPTIONS_LISTEN {
                    let capabilities = &initialize["capabilities"];
                    return Err(match eras::listen_filter(message, capabilities) {
                        Some(filter) => Local::Listen(filter),
                        None => Local::Answer(jsonrpc::error_response(
                            id(),
                            code::INVALID_PARAMS,
                            "Invalid params: 'notifications' is required and must be a \
                             subscription filter",
                        )),
                    });
                }
                let cacheable = eras::is_cacheable(method);
                eras::strip_envelope(message);
                Ok(ResponseFix::ToModern { cacheable })
            }
            (ClientEra::Legacy { initialize_params }, ChildEra::Modern { version, .. }) => {
                if method == "ping" {
                    return Err(Local::Answer(
                        json!({"jsonrpc": "2.0", "id": id(), "result": {}}),
                    ));
                }
                let envelope = eras::legacy_client_envelope(version, initialize_params);
                era::stamp_envelope(message, &envelope);
                Ok(ResponseFix::ToLegacy)
            }
            (ClientEra::Legacy { .. }, ChildEra::Legacy { .. }) => {
                eras::strip_envelope(message);
                Ok(ResponseFix::AsIs)
            }
        }
    }

    /// Detaches a session; its calls still in flight are cancelled at the process.
    pub fn detach(&self, key: SessionKey) {
        let mut state = self.lock();
        let Some(session) = state.sessions.remove(&key) else {
            return;
        };
        state.server_requests.retain(|_, s| *s != key);
        for child_id in session.requests.into_values() {
            if let Some(f) = state.in_flight.remove(&child_id)
                && let Some(token) = f.progress_token
            {
                state.progress.remove(&token);
            }
            if let Some(writer) = &state.writer {
                let cancel = jsonrpc::cancelled(json!(child_id), "client session ended");
                let _ = writer.try_send(encode_line(&cancel));
            }
        }
    }

    /// Sends one client message from session `key` to the process.
    pub async fn send(&self, key: SessionKey, mut message: Value) -> Result<(), BackendError> {
        let line = match jsonrpc::kind(&message) {
            Kind::Request => return self.send_request(key, message).await,
            Kind::Notification => match jsonrpc::method(&message) {
                // The bridge initialized the process itself.
                Some("notifications/initialized") => return Ok(()),
                Some("notifications/cancelled") => {
                    if !self.rewrite_cancellation(key, &mut message) {
                        return Ok(());
                    }
                    encode_line(&message)
                }
                _ => encode_line(&message),
            },
            Kind::Response | Kind::Error => {
                let Some(id_key) = jsonrpc::id(&message).map(jsonrpc::id_key) else {
                    return Ok(());
                };
                let mut state = self.lock();
                if state.server_requests.get(&id_key) != Some(&key) {
                    tracing::debug!("dropping a client response to no request of its session");
                    return Ok(());
                }
                state.server_requests.remove(&id_key);
                encode_line(&message)
            }
            Kind::Invalid => return Ok(()),
        };
        self.write(line).await
    }

    async fn send_request(&self, key: SessionKey, mut message: Value) -> Result<(), BackendError> {
        if jsonrpc::method(&message) == Some("initialize") {
            let response = self.initialize_response(&message)?;
            self.answer(key, response);
            return Ok(());
        }
        let (child, client) = {
            let state = self.lock();
            let client = state.sessions.get(&key).map(|s| s.client.clone());
            (state.child.clone(), client)
        };
        let child = child.ok_or_else(|| {
            BackendError::Unavailable("the MCP server process is restarting; retry".into())
        })?;
        let client = client.ok_or_else(|| BackendError::SessionClosed("detached".into()))?;
        let fix = match Self::translate_request(&child, &client, &mut message) {
            Ok(fix) => fix,
            Err(Local::Answer(answer)) => {
                self.answer(key, answer);
                return Ok(());
            }
            Err(Local::Listen(filter)) => {
                // Open until the client goes away: change notifications of the child that
                // the filter wants are copied to it (see dispatch_notification).
                let listen_id = jsonrpc::id(&message).cloned().unwrap_or_default();
                let ack = eras::listen_acknowledged(&listen_id, &filter);
                let outbox = {
                    let mut state = self.lock();
                    let session = state
                        .sessions
                        .get_mut(&key)
                        .ok_or_else(|| BackendError::SessionClosed("detached".into()))?;
                    session.listen = Some((listen_id, filter));
                    session.outbox.clone()
                };
                outbox.deliver(ack);
                return Ok(());
            }
        };
        let child_id = self.next_child_id.fetch_add(1, Ordering::Relaxed);
        let client_id = message.get_mut("id").map(Value::take).unwrap_or_default();
        let progress_token = message
            .pointer_mut("/params/_meta/progressToken")
            .map(|token| {
                let child_token = self.next_child_id.fetch_add(1, Ordering::Relaxed);
                (child_token, std::mem::replace(token, json!(child_token)))
            });
        message["id"] = json!(child_id);
        let line = encode_line(&message);
        let writer = {
            let mut state = self.lock();
            let writer = state.writer.clone().ok_or_else(|| {
                BackendError::Unavailable("the MCP server process is restarting; retry".into())
            })?;
            let session = state
                .sessions
                .get_mut(&key)
                .ok_or_else(|| BackendError::SessionClosed("detached".into()))?;
            session
                .requests
                .insert(jsonrpc::id_key(&client_id), child_id);
            if let Some((child_token, client_token)) = progress_token.clone() {
                state.progress.insert(child_token, (key, client_token));
            }
            state.in_flight.insert(
                child_id,
                InFlight {
                    session: key,
                    client_id,
                    progress_token: progress_token.map(|(t, _)| t),
                    fix,
                },
            );
            writer
        };
        // A failed write leaves the call in flight: the exit of the process answers it.
        let _ = writer.send(line).await;
        Ok(())
    }

    /// Rewrites a client's `notifications/cancelled` to the child-side id; false when the
    /// request is not in flight (nothing to cancel).
    fn rewrite_cancellation(&self, key: SessionKey, message: &mut Value) -> bool {
        let Some(request_key) = jsonrpc::cancelled_request_id(message).map(jsonrpc::id_key) else {
            return false;
        };
        let mut state = self.lock();
        let Some(child_id) = state
            .sessions
            .get_mut(&key)
            .and_then(|s| s.requests.remove(&request_key))
        else {
            return false;
        };
        // The server need not answer a cancelled request: forget it now.
        if let Some(f) = state.in_flight.remove(&child_id)
            && let Some(token) = f.progress_token
        {
            state.progress.remove(&token);
        }
        message["params"]["requestId"] = json!(child_id);
        true
    }

    async fn write(&self, line: Vec<u8>) -> Result<(), BackendError> {
        let writer = self.lock().writer.clone().ok_or_else(|| {
            BackendError::Unavailable("the MCP server process is restarting; retry".into())
        })?;
        writer
            .send(line)
            .await
            .map_err(|_| BackendError::Unavailable("the MCP server process exited".into()))
    }

    /// Routes one message the process wrote (a line of `size` bytes) to the session(s) it
    /// belongs to; `size` counts against each session's byte limit.
    pub fn dispatch(&self, message: Value, size: usize) {
        match jsonrpc::kind(&message) {
            Kind::Response | Kind::Error => self.dispatch_response(message, size),
            Kind::Notification => self.dispatch_notification(message, size),
            Kind::Request => self.dispatch_server_request(message, size),
            Kind::Invalid => tracing::debug!("ignoring an invalid message from the process"),
        }
    }

    fn dispatch_response(&self, mut message: Value, size: usize) {
        let Some(child_id) = message.get("id").and_then(Value::as_u64) else {
            return;
        };
        let target = {
            let mut state = self.lock();
            let Some(f) = state.in_flight.remove(&child_id) else {
                return;
            };
            if let Some(token) = f.progress_token {
                state.progress.remove(&token);
            }
            state.sessions.get_mut(&f.session).map(|s| {
                s.requests.remove(&jsonrpc::id_key(&f.client_id));
                (s.outbox.clone(), f.client_id, f.fix)
            })
        };
        if let Some((outbox, client_id, fix)) = target {
            message["id"] = client_id;
            match fix {
                ResponseFix::AsIs => {}
                ResponseFix::ToModern { cacheable } => {
                    eras::to_modern_response(&mut message, cacheable)
                }
                ResponseFix::ToLegacy => eras::to_legacy_response(&mut message),
            }
            outbox.deliver_sized(message, size);
        }
    }

    fn dispatch_notification(&self, mut message: Value, size: usize) {
        if let Some(child_id) = era::subscription_id(&message).and_then(Value::as_u64) {
            // A modern child's subscription notification: to the client whose
            // subscriptions/listen it belongs to, under the client's id for it.
            let target = {
                let state = self.lock();
                state.in_flight.get(&child_id).and_then(|f| {
                    let outbox = state.sessions.get(&f.session)?.outbox.clone();
                    Some((outbox, f.client_id.clone()))
                })
            };
            if let Some((outbox, client_id)) = target {
                message["params"]["_meta"][era::META_SUBSCRIPTION_ID] = client_id;
                outbox.deliver_sized(message, size);
            }
            return;
        }
        let mut listeners: Vec<(Arc<Outbox>, Value)> = Vec::new();
        let outboxes: Vec<Arc<Outbox>> = {
            let mut state = self.lock();
            match jsonrpc::method(&message) {
                Some("notifications/progress") => {
                    let token =
                        jsonrpc::progress_notification_token(&message).and_then(Value::as_u64);
                    let Some((session, client_token)) =
                        token.and_then(|t| state.progress.get(&t)).cloned()
                    else {
                        return;
                    };
                    message["params"]["progressToken"] = client_token;
                    state
                        .sessions
                        .get(&session)
                        .map(|s| s.outbox.clone())
                        .into_iter()
                        .collect()
                }
                Some("notifications/cancelled") => {
                    let request = jsonrpc::cancelled_request_id(&message).map(jsonrpc::id_key);
                    let Some(session) = request.and_then(|r| state.server_requests.remove(&r))
                    else {
                        return;
                    };
                    state
                        .sessions
                        .get(&session)
                        .map(|s| s.outbox.clone())
                        .into_iter()
                        .collect()
                }
                // Modern clients get no unsolicited notifications, only the changes their
                // subscriptions/listen asked for.
                method => {
                    let method = method.unwrap_or_default();
                    for session in state.sessions.values() {
                        if let Some((listen_id, filter)) = &session.listen
                            && eras::listen_accepts(filter, method)
                        {
                            listeners.push((session.outbox.clone(), listen_id.clone()));
                        }
                    }
                    state
                        .sessions
                        .values()
                        .filter(|s| matches!(s.client, ClientEra::Legacy { .. }))
                        .map(|s| s.outbox.clone())
                        .collect()
                }
            }
        };
        for (outbox, listen_id) in listeners {
            outbox.deliver_sized(eras::for_subscription(&message, &listen_id), size);
        }
        if let Some((last, rest)) = outboxes.split_last() {
            for outbox in rest {
                outbox.deliver_sized(message.clone(), size);
            }
            last.deliver_sized(message, size);
        }
    }

    fn dispatch_server_request(&self, message: Value, size: usize) {
        let id = jsonrpc::id(&message).cloned().unwrap_or_default();
        let mut state = self.lock();
        if jsonrpc::method(&message) == Some("ping") {
            let pong = json!({"jsonrpc": "2.0", "id": id, "result": {}});
            if let Some(writer) = &state.writer {
                let _ = writer.try_send(encode_line(&pong));
            }
            return;
        }
        let mut busy = state
            .sessions
            .iter()
            .filter(|(_, s)| !s.requests.is_empty());
        let target = match (busy.next(), busy.next()) {
            (Some((key, session)), None) => Some((
                *key,
                session.outbox.clone(),
                matches!(session.client, ClientEra::Modern),
            )),
            _ => None,
        };
        match target {
            Some((_, _, true)) => {
                let method = jsonrpc::method(&message).unwrap_or_default();
                let refusal = eras::server_request_refusal(id, method);
                if let Some(writer) = &state.writer {
                    let _ = writer.try_send(encode_line(&refusal));
                }
            }
            Some((key, outbox, false)) => {
                state.server_requests.insert(jsonrpc::id_key(&id), key);
                drop(state);
                outbox.deliver_sized(message, size);
            }
            None => {
                let refusal = jsonrpc::error_response(
                    id,
                    code::INTERNAL_ERROR,
                    "mcp-operator bridge: cannot tell which client session this request is for \
                     (none or several have calls in flight)",
                );
                if let Some(writer) = &state.writer {
                    let _ = writer.try_send(encode_line(&refusal));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn dispatch(mux: &Mux, message: Value) {
        let size = crate::mcp_http::streamable::outbox::serialized_len(&message);
        mux.dispatch(message, size);
    }

    fn started_mux() -> (Mux, mpsc::Receiver<Vec<u8>>) {
        let mux = Mux::default();
        let (writer, lines) = mpsc::channel(16);
        mux.child_started(
            writer,
            ChildEra::Legacy {
                initialize: json!({"protocolVersion": "2025-11-25"}),
            },
            Some(1),
        );
        (mux, lines)
    }

    fn written(lines: &mut mpsc::Receiver<Vec<u8>>) -> Value {
        serde_json::from_slice(&lines.try_recv().expect("a line")).unwrap()
    }

    fn answers(outbox: &Outbox, id: Value) -> crate::mcp_http::streamable::queue::StreamReceiver {
        let (tx, rx) = outbox.new_stream();
        let request = crate::mcp_http::streamable::outbox::RegisteredRequest {
            id,
            progress_token: Some(jsonrpc::id_key(&json!("tok"))),
        };
        outbox.register(1, &[request], &tx).unwrap();
        rx
    }

    #[tokio::test]
    async fn same_client_ids_in_two_sessions_get_distinct_child_ids_and_map_back() {
        let (mux, mut lines) = started_mux();
        let (a, b) = (Arc::new(Outbox::new(8)), Arc::new(Outbox::new(8)));
        let (ka, kb) = (
            mux.attach(a.clone(), ClientEra::legacy(&json!({}))),
            mux.attach(b.clone(), ClientEra::legacy(&json!({}))),
        );
        let (mut a_rx, mut b_rx) = (answers(&a, json!(1)), answers(&b, json!(1)));
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"tok"}}});
        mux.send(ka, call.clone()).await.unwrap();
        mux.send(kb, call).await.unwrap();
        let (to_a, to_b) = (written(&mut lines), written(&mut lines));
        assert_ne!(to_a["id"], to_b["id"]);
        assert_ne!(
            to_a["params"]["_meta"]["progressToken"],
            to_b["params"]["_meta"]["progressToken"]
        );

        let progress_b = to_b["params"]["_meta"]["progressToken"].clone();
        dispatch(
            &mux,
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":progress_b,"progress":1}}),
        );
        dispatch(
            &mux,
            json!({"jsonrpc":"2.0","id":to_b["id"],"result":{"who":"b"}}),
        );
        dispatch(
            &mux,
            json!({"jsonrpc":"2.0","id":to_a["id"],"result":{"who":"a"}}),
        );
        assert_eq!(b_rx.try_recv().unwrap()["params"]["progressToken"], "tok");
        let answer_b = b_rx.try_recv().unwrap();
        assert_eq!(
            (answer_b["id"].clone(), answer_b["result"]["who"].clone()),
            (json!(1), json!("b"))
        );
        assert_eq!(a_rx.try_recv().unwrap()["result"]["who"], "a");
        assert!(a_rx.try_recv().is_err());
        assert_eq!(mux.calls_in_flight(), 0);
    }

    #[tokio::test]
    async fn cancellation_is_rewritten_and_exit_fails_calls_in_flight() {
        let (mux, mut lines) = started_mux();
        let a = Arc::new(Outbox::new(8));
        let ka = mux.attach(a.clone(), ClientEra::legacy(&json!({})));
        let mut a_rx = answers(&a, json!("x"));
        mux.send(ka, json!({"jsonrpc":"2.0","id":"x","method":"tools/call"}))
            .await
            .unwrap();
        let child_id = written(&mut lines)["id"].clone();
        mux.send(ka, jsonrpc::cancelled(json!("x"), "bye"))
            .await
            .unwrap();
        assert_eq!(written(&mut lines)["params"]["requestId"], child_id);
        assert_eq!(mux.calls_in_flight(), 0);

        mux.send(ka, json!({"jsonrpc":"2.0","id":"y","method":"tools/call"}))
            .await
            .unwrap();
        let _ = written(&mut lines);
        let mut y_rx = answers(&a, json!("y"));
        mux.child_exited("exit status: 3", true);
        let error = y_rx.try_recv().unwrap();
        assert_eq!(error["error"]["code"], code::UPSTREAM_UNAVAILABLE);
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("restarting")
        );
        assert!(
            a_rx.try_recv().is_err(),
            "a cancelled call is not failed again"
        );
        assert!(
            mux.send(ka, json!({"jsonrpc":"2.0","id":"z","method":"ping"}))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn server_requests_go_to_the_busy_session_or_are_refused() {
        let (mux, mut lines) = started_mux();
        let (a, b) = (Arc::new(Outbox::new(8)), Arc::new(Outbox::new(8)));
        let (ka, kb) = (
            mux.attach(a.clone(), ClientEra::legacy(&json!({}))),
            mux.attach(b.clone(), ClientEra::legacy(&json!({}))),
        );
        let _a_rx = answers(&a, json!(1));
        mux.send(ka, json!({"jsonrpc":"2.0","id":1,"method":"tools/call"}))
            .await
            .unwrap();
        let _ = written(&mut lines);
        dispatch(
            &mux,
            json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage"}),
        );
        let mut a_get = a.open_get_stream().unwrap();
        let mut b_get = b.open_get_stream().unwrap();
        // a has one POST in flight: the request went to that stream, not to GET.
        assert!(a_get.try_recv().is_err() && b_get.try_recv().is_err());
        // b's reply to a request that was not sent to it is dropped; a's goes through.
        mux.send(kb, json!({"jsonrpc":"2.0","id":"s1","result":{}}))
            .await
            .unwrap();
        assert!(lines.try_recv().is_err());
        mux.send(ka, json!({"jsonrpc":"2.0","id":"s1","result":{}}))
            .await
            .unwrap();
        assert_eq!(written(&mut lines)["id"], "s1");

        mux.send(kb, json!({"jsonrpc":"2.0","id":1,"method":"tools/call"}))
            .await
            .unwrap();
        let _ = written(&mut lines);
        dispatch(
            &mux,
            json!({"jsonrpc":"2.0","id":"s2","method":"roots/list"}),
        );
        let refusal = written(&mut lines);
        assert_eq!(refusal["id"], "s2");
        assert!(refusal["error"].is_object());
    }
}
