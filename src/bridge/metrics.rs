//! Counters about the stdio server process(es) that `/metrics` shows, shared by every
//! process of one bridge (the one Shared process, or all PerSession processes):
//! restarts, and protocol errors of the child by kind.

use std::sync::atomic::{AtomicU64, Ordering};

/// A way the child broke the stdio transport (one line of its stdout was dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A stdout line longer than `--max-line-bytes`.
    LineTooLong,
    /// A stdout line that is not UTF-8 (so it cannot be JSON-RPC).
    InvalidUtf8,
    /// A stdout line that is not a JSON value.
    NotJson,
}

impl ProtocolError {
    /// Every kind, in metric order.
    pub const ALL: [ProtocolError; 3] = [Self::LineTooLong, Self::InvalidUtf8, Self::NotJson];

    /// The `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::LineTooLong => "line_too_long",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::NotJson => "not_json",
        }
    }
}

/// Process counters of one bridge.
#[derive(Debug, Default)]
pub struct ChildMetrics {
    restarts: AtomicU64,
    protocol_errors: [AtomicU64; 3],
}

impl ChildMetrics {
    /// A process exited or failed to start (before or after `initialize`) and is restarted.
    pub fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Counts one protocol error of a child.
    pub fn protocol_error(&self, kind: ProtocolError) {
        self.protocol_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Protocol errors of `kind` so far.
    pub fn protocol_errors(&self, kind: ProtocolError) -> u64 {
        self.protocol_errors[kind as usize].load(Ordering::Relaxed)
    }
}
