//! Probing with a policy: [`ProbeOptions`] (timeout per attempt, retries, delay), the
//! resulting [`ProbeReport`], and [`probe_many`] for many targets with bounded concurrency.
//!
//! Only transient failures are retried (`ConnectionFailed`, `Timeout`, `ServerError`);
//! the others (`InvalidUrl`, `TlsError`, `AuthRequired`, `NotMcpServer`, `ProtocolError`)
//! will not change by trying again, so the first one is final.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::error::{ProbeError, ProbeErrorCode};
use super::inventory::ToolInventory;
use super::session;
use super::target::ProbeTarget;

/// How hard to try (`spec.probe`, docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeOptions {
    /// One attempt: connect + initialize + lists. Default 10 s.
    pub timeout: Duration,
    /// Extra attempts after a transient failure. Default 1.
    pub retries: u32,
    /// Pause between attempts. Default 3 s.
    pub retry_delay: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 1,
            retry_delay: Duration::from_secs(3),
        }
    }
}

/// `Succeeded` with the inventory, or `Failed` with the last attempt's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "PascalCase")]
pub enum ProbeOutcome {
    /// The last attempt completed initialize and every list.
    Succeeded {
        /// What the server offers.
        inventory: ToolInventory,
    },
    /// Every attempt failed (or the first failure was not transient).
    Failed {
        /// Code and message of the last attempt.
        error: ProbeError,
    },
}

/// The result of [`probe`]: outcome, attempts made and the last attempt's latency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// Credential-free description of the target.
    pub target: String,
    /// Attempts made (1 + retries used).
    pub attempts: u32,
    /// Duration of the last attempt in milliseconds (until the inventory was complete;
    /// closing the session is not counted).
    pub latency_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ProbeOutcome,
}

impl ProbeReport {
    /// The inventory when the probe succeeded.
    pub fn inventory(&self) -> Option<&ToolInventory> {
        match &self.outcome {
            ProbeOutcome::Succeeded { inventory } => Some(inventory),
            ProbeOutcome::Failed { .. } => None,
        }
    }

    /// The error when the probe failed.
    pub fn error(&self) -> Option<&ProbeError> {
        match &self.outcome {
            ProbeOutcome::Succeeded { .. } => None,
            ProbeOutcome::Failed { error } => Some(error),
        }
    }

    /// The error code when the probe failed.
    pub fn code(&self) -> Option<ProbeErrorCode> {
        self.error().map(ProbeError::code)
    }

    /// The outcome as a `Result`.
    pub fn into_result(self) -> Result<ToolInventory, ProbeError> {
        match self.outcome {
            ProbeOutcome::Succeeded { inventory } => Ok(inventory),
            ProbeOutcome::Failed { error } => Err(error),
        }
    }
}

/// Probes `target`, retrying transient failures as `opts` says.
pub async fn probe(target: &ProbeTarget, opts: &ProbeOptions) -> ProbeReport {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let started = Instant::now();
        let result = session::attempt(target, opts.timeout).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = match result {
            Ok(inventory) => ProbeOutcome::Succeeded { inventory },
            Err(error) if error.is_transient() && attempts <= opts.retries => {
                tracing::debug!(target = %target.describe(), attempt = attempts, %error, "probe attempt failed; retrying");
                tokio::time::sleep(opts.retry_delay).await;
                continue;
            }
            Err(error) => ProbeOutcome::Failed { error },
        };
        return ProbeReport {
            target: target.describe(),
            attempts,
            latency_ms,
            outcome,
        };
    }
}

/// Probes every target with at most `concurrency` probes in flight (at least 1). Reports
/// arrive as they finish, each with the index of its target; nothing runs until polled.
pub fn probe_many(
    targets: Vec<ProbeTarget>,
    opts: ProbeOptions,
    concurrency: usize,
) -> impl Stream<Item = (usize, ProbeReport)> {
    futures::stream::iter(targets.into_iter().enumerate())
        .map(move |(i, target)| async move { (i, probe(&target, &opts).await) })
        .buffer_unordered(concurrency.max(1))
}

/// Like [`probe_many`], but the bound is a semaphore shared with other callers (e.g. one
/// per controller, so that concurrent reconciles together stay under the limit).
pub fn probe_many_shared(
    targets: Vec<ProbeTarget>,
    opts: ProbeOptions,
    limit: Arc<Semaphore>,
) -> impl Stream<Item = (usize, ProbeReport)> {
    futures::stream::iter(targets.into_iter().enumerate())
        .map(move |(i, target)| {
            let limit = limit.clone();
            async move {
                // A closed semaphore means the owner is shutting down: probe unbounded
                // rather than hang or panic.
                let _permit = limit.acquire_owned().await.ok();
                (i, probe(&target, &opts).await)
            }
        })
        .buffer_unordered(usize::MAX)
}

/// [`probe_many`] collected into a `Vec` in target order.
pub async fn probe_all(
    targets: Vec<ProbeTarget>,
    opts: ProbeOptions,
    concurrency: usize,
) -> Vec<ProbeReport> {
    let n = targets.len();
    let mut out: Vec<Option<ProbeReport>> = vec![None; n];
    let mut stream = std::pin::pin!(probe_many(targets, opts, concurrency));
    while let Some((i, report)) = stream.next().await {
        out[i] = Some(report);
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_serializes_like_last_probe() {
        let r = ProbeReport {
            target: "http://h/mcp".into(),
            attempts: 2,
            latency_ms: 42,
            outcome: ProbeOutcome::Failed {
                error: ProbeError::Timeout("slow".into()),
            },
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["result"], "Failed");
        assert_eq!(v["error"]["code"], "Timeout");
        assert_eq!(v["latencyMs"], 42);
        assert_eq!(serde_json::from_value::<ProbeReport>(v).unwrap(), r);
    }

    #[tokio::test]
    async fn invalid_targets_fail_once_without_retry() {
        let opts = ProbeOptions {
            retries: 3,
            retry_delay: Duration::from_secs(60),
            ..Default::default()
        };
        let reports = probe_all(vec![ProbeTarget::http("ftp://example.com/mcp"); 3], opts, 2).await;
        assert_eq!(reports.len(), 3);
        for r in reports {
            assert_eq!(r.code(), Some(ProbeErrorCode::InvalidUrl));
            assert_eq!(r.attempts, 1);
        }
    }
}
