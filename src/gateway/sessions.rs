//! Who owns each MCP session opened through this gateway, and how many may live: the
//! session table ([`Sessions`]). The rules that apply it to requests, and the expiry task,
//! are in [`session_gate`](super::session_gate).
//!
//! A session belongs to the principal whose `initialize` answer carried its new
//! `Mcp-Session-Id` ([`Owner`]: a binding, a ServiceAccount, the probe, or anonymous). A
//! request naming a session the gateway did not open for that caller — another
//! principal's, one opened directly at the upstream, or one from before a gateway
//! restart — gets HTTP 404 and the JSON-RPC error the MCP SDKs give for an unknown
//! session, so a caller cannot tell a foreign session from a missing one; per the
//! transport spec a client re-initializes on 404. The owner's DELETE forgets the session.
//!
//! Bounds: at most `per_principal` live sessions per owner and `total` in all (an
//! `initialize` beyond them is refused before it reaches the upstream: 429 for the
//! caller's own cap, 503 for the gateway's), and a session without a request for `idle`
//! (and no open stream) expires: it is forgotten and the gateway ends it upstream with a
//! DELETE ([`spawn_expiry`](super::session_gate::spawn_expiry)).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use tokio::time::Instant;

use super::refusal::{Refusal, Rule};
use crate::mcp_http::SESSION_ID;

/// Default live sessions per principal.
pub const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 64;
/// Default live sessions in all.
pub const DEFAULT_MAX_SESSIONS: usize = 1024;
/// Default idle time after which a session expires.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Longest session id the gateway records (longer ones are never recorded, so unusable).
const MAX_SESSION_ID_LEN: usize = 256;

/// The session bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub per_principal: usize,
    pub total: usize,
    pub idle: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            per_principal: DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
            total: DEFAULT_MAX_SESSIONS,
            idle: DEFAULT_SESSION_IDLE,
        }
    }
}

/// Who a session belongs to. Typed, so a binding named `probe` is not the probe. The
/// holders of a binding's tokens are one owner (the current and the previous token of a
/// rotation keep its sessions); each ServiceAccount a binding lists is its own owner
/// (another pod with the same rights still does not read this pod's results).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Binding(String),
    /// `system:serviceaccount:<ns>:<name>`, as TokenReview named it.
    ServiceAccount(String),
    Probe,
    Anonymous,
}

struct Entry {
    owner: Owner,
    last_used: Instant,
    /// Requests and streams open in the session: it does not expire while any is.
    in_use: u32,
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Entry>,
    /// Live sessions plus reserved slots, per owner.
    per_owner: HashMap<Owner, usize>,
    /// Live sessions plus reserved slots.
    total: usize,
}

impl Table {
    fn release(&mut self, owner: &Owner) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_owner.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_owner.remove(owner);
            }
        }
    }
}

/// The session table of one gateway.
pub struct Sessions {
    limits: SessionLimits,
    table: Mutex<Table>,
    expired: AtomicU64,
    not_found: AtomicU64,
    limited: AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(SessionLimits::default())
    }
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Sessions {
            limits,
            table: Mutex::default(),
            expired: AtomicU64::new(0),
            not_found: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live sessions.
    pub fn live(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Ok when `owner` owns session `id` (and marks it used), else SessionNotFound.
    pub fn check(&self, id: &str, owner: &Owner) -> Result<(), Refusal> {
        let mut t = self.lock();
        match t.by_id.get_mut(id) {
            Some(e) if e.owner == *owner => {
                e.last_used = Instant::now();
                Ok(())
            }
            _ => {
                drop(t);
                Err(self.refuse_unknown())
            }
        }
    }

    /// SessionNotFound for a session this gateway does not hold for the caller (counted).
    pub fn refuse_unknown(&self) -> Refusal {
        self.not_found.fetch_add(1, Ordering::Relaxed);
        Refusal::new(Rule::SessionNotFound, "Session not found")
    }

    /// A slot for a new session of `owner`, or the cap that is reached.
    pub fn reserve(self: &Arc<Self>, owner: &Owner) -> Result<SessionSlot, Refusal> {
        let mut t = self.lock();
        let mine = t.per_owner.get(owner).copied().unwrap_or(0);
        let refusal = if mine >= self.limits.per_principal {
            Some(Refusal::new(
                Rule::SessionLimit,
                format!(
                    "too many open sessions for this caller (limit {}); end one with DELETE or retry after an idle one expires",
                    self.limits.per_principal
                ),
            ))
        } else if t.total >= self.limits.total {
            let mut r = Refusal::new(
                Rule::SessionsFull,
                format!(
                    "the gateway holds its maximum of {} open sessions; retry later",
                    self.limits.total
                ),
            );
            r.retry_after_secs = Some(5);
            Some(r)
        } else {
            None
        };
        if let Some(r) = refusal {
            drop(t);
            self.limited.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        *t.per_owner.entry(owner.clone()).or_default() += 1;
        t.total += 1;
        Ok(SessionSlot {
            sessions: self.clone(),
            owner: Some(owner.clone()),
        })
    }

    /// Forgets session `id` (ended by its owner, or unknown upstream).
    pub fn forget(&self, id: &str) {
        let mut t = self.lock();
        if let Some(e) = t.by_id.remove(id) {
            t.release(&e.owner);
        }
    }

    /// Marks session `id` in use until the guard drops (a request or stream).
    pub fn hold(self: &Arc<Self>, id: &str) -> Option<InUse> {
        let mut t = self.lock();
        let e = t.by_id.get_mut(id)?;
        e.in_use += 1;
        e.last_used = Instant::now();
        Some(InUse {
            sessions: self.clone(),
            id: id.to_owned(),
        })
    }

    /// Forgets and returns the sessions idle (and not in use) for longer than the limit.
    pub fn expire(&self, now: Instant) -> Vec<(String, Owner)> {
        let idle = self.limits.idle;
        let mut t = self.lock();
        let gone: Vec<String> = t
            .by_id
            .iter()
            .filter(|(_, e)| e.in_use == 0 && now.saturating_duration_since(e.last_used) >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(gone.len());
        for id in gone {
            if let Some(e) = t.by_id.remove(&id) {
                t.release(&e.owner);
                out.push((id, e.owner));
            }
        }
        drop(t);
        self.expired.fetch_add(out.len() as u64, Ordering::Relaxed);
        out
    }

    /// Prometheus text of the session metrics.
    pub fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP mcp_gateway_sessions MCP sessions the gateway holds an owner for.\n# TYPE mcp_gateway_sessions gauge\nmcp_gateway_sessions {}\n\
             # HELP mcp_gateway_sessions_expired_total Sessions ended by the gateway after the idle limit.\n# TYPE mcp_gateway_sessions_expired_total counter\nmcp_gateway_sessions_expired_total {}\n\
             # HELP mcp_gateway_session_refusals_total Requests refused by session rules (not_found: unknown or another caller's session; limit: a session cap).\n# TYPE mcp_gateway_session_refusals_total counter\n\
             mcp_gateway_session_refusals_total{{reason=\"not_found\"}} {}\nmcp_gateway_session_refusals_total{{reason=\"limit\"}} {}",
            self.live(),
            load(&self.expired),
            load(&self.not_found),
            load(&self.limited),
        );
    }
}

/// A reserved place for a session being opened; released unless [`SessionSlot::open`]
/// records the upstream's session id.
pub struct SessionSlot {
    sessions: Arc<Sessions>,
    owner: Option<Owner>,
}

impl SessionSlot {
    /// Records session `id` for the slot's owner. An id already recorded keeps its owner
    /// (the slot is released), and so does an id too long to record.
    pub fn open(mut self, id: &str) {
        let Some(owner) = self.owner.take() else {
            return;
        };
        let mut t = self.sessions.lock();
        if id.len() > MAX_SESSION_ID_LEN || t.by_id.contains_key(id) {
            t.release(&owner);
            return;
        }
        t.by_id.insert(
            id.to_owned(),
            Entry {
                owner,
                last_used: Instant::now(),
                in_use: 0,
            },
        );
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            self.sessions.lock().release(&owner);
        }
    }
}

/// A session in use (see [`Sessions::hold`]).
pub struct InUse {
    sessions: Arc<Sessions>,
    id: String,
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut t = self.sessions.lock();
        if let Some(e) = t.by_id.get_mut(&self.id) {
            e.in_use = e.in_use.saturating_sub(1);
            e.last_used = Instant::now();
        }
    }
}

/// The caller's `Mcp-Session-Id`, if any. A value that is not text never matches, and
/// neither do several values: upstreams differ in which one they take (the first, the
/// last, or all joined), so the gateway could not know which session it checked.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(SESSION_ID).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some("\u{0}several");
    }
    Some(first.to_str().unwrap_or("\u{0}invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per: usize, total: usize) -> SessionLimits {
        SessionLimits {
            per_principal: per,
            total,
            idle: Duration::from_secs(60),
        }
    }

    #[test]
    fn sessions_belong_to_their_owner() {
        let s = Arc::new(Sessions::new(limits(4, 8)));
        let a = Owner::Binding("a".into());
        let probe_named = Owner::Binding("probe".into());
        s.reserve(&a).unwrap().open("s1");
        assert!(s.check("s1", &a).is_ok());
        for other in [
            Owner::Binding("b".into()),
            probe_named,
            Owner::ServiceAccount("system:serviceaccount:ns:a".into()),
            Owner::Probe,
            Owner::Anonymous,
        ] {
            assert_eq!(
                s.check("s1", &other).unwrap_err().rule,
                Rule::SessionNotFound
            );
        }
        assert_eq!(
            s.check("never", &a).unwrap_err().rule,
            Rule::SessionNotFound
        );
        // A second initialize answered with the same id does not change its owner.
        s.reserve(&Owner::Probe).unwrap().open("s1");
        assert!(s.check("s1", &Owner::Probe).is_err());
        s.forget("s1");
        assert!(s.check("s1", &a).is_err());
        assert_eq!(s.live(), 0);
    }

    #[test]
    fn caps_count_reservations_and_release_them() {
        let s = Arc::new(Sessions::new(limits(2, 3)));
        let a = Owner::Binding("a".into());
        let b = Owner::Binding("b".into());
        let a1 = s.reserve(&a).unwrap();
        let _a2 = s.reserve(&a).unwrap();
        assert_eq!(
            s.reserve(&a).err().map(|r| r.rule),
            Some(Rule::SessionLimit)
        );
        let _b1 = s.reserve(&b).unwrap();
        assert_eq!(
            s.reserve(&b).err().map(|r| r.rule),
            Some(Rule::SessionsFull)
        );
        drop(a1); // a stateless upstream: no session id, the slot comes back
        assert!(s.reserve(&b).is_ok());
    }

    #[test]
    fn idle_sessions_expire_unless_in_use() {
        let s = Arc::new(Sessions::new(limits(4, 8)));
        let a = Owner::Anonymous;
        let idle = Duration::from_secs(61);
        s.reserve(&a).unwrap().open("idle");
        s.reserve(&a).unwrap().open("streaming");
        let held = s.hold("streaming").unwrap();
        let gone = s.expire(Instant::now() + idle);
        assert_eq!(gone, vec![("idle".to_owned(), a.clone())]);
        drop(held);
        assert!(s.expire(Instant::now()).is_empty(), "just used");
        assert_eq!(s.expire(Instant::now() + idle).len(), 1);
        assert_eq!(s.live(), 0);
        assert!(s.reserve(&a).is_ok());
    }
}
