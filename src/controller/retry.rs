//! What every controller does around a reconcile: time it and count failures in the
//! metrics, and back off per object after failed reconciles (500 ms doubling up to
//! 5 minutes, as controller-runtime's per-item backoff does; reset on success), so a
//! transient API error is retried quickly and a persistent one does not hammer the API
//! server. A replica that lost the Lease just waits: its controller is being stopped.

use std::{
    collections::HashMap,
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

use kube::runtime::controller::Action;

use super::{error::Failure, metrics::Metrics, shared::jittered};

/// Consecutive failed reconciles per object (`Kind/namespace/name`).
#[derive(Debug, Default)]
pub struct Retries(Mutex<HashMap<String, u32>>);

impl Retries {
    /// Forgets the failures of `key` (its reconcile succeeded).
    fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.0.lock() {
            failures.remove(key);
        }
    }

    /// Counts one more failure of `key`; returns how many in a row.
    fn failed(&self, key: &str) -> u32 {
        self.0.lock().map_or(1, |mut failures| {
            let n = failures.entry(key.to_owned()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
    }
}

/// Runs one reconcile of the object `key`: records its duration (and the error, if any)
/// in `metrics`, and resets the object's backoff when it succeeds.
pub async fn measured<E: Failure>(
    metrics: &Metrics,
    retries: &Retries,
    key: &str,
    reconcile: impl Future<Output = Result<Action, E>>,
) -> Result<Action, E> {
    let started = Instant::now();
    metrics.in_flight(1);
    let result = reconcile.await;
    metrics.in_flight(-1);
    metrics.reconciled(started.elapsed());
    match &result {
        Err(error) => metrics.reconcile_failed(error.step(), error.reason()),
        Ok(_) => retries.succeeded(key),
    }
    result
}

/// The error policy of every controller: wait for a change when no longer leading,
/// otherwise requeue after the object's jittered backoff.
pub fn on_error(retries: &Retries, key: &str, error: &impl Failure) -> Action {
    if error.is_not_leader() {
        return Action::await_change();
    }
    tracing::warn!(object = %key, %error, "reconcile failed");
    Action::requeue(jittered(retry_delay(retries.failed(key))))
}

/// Retry delay after `failures` consecutive failed reconciles: 500 ms doubling up to
/// 5 minutes.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(Duration::from_secs(300))
}

/// The key of an object in [`Retries`]: `Kind/namespace/name`.
pub fn key<K: kube::Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_reconciles_back_off_from_half_a_second_to_five_minutes() {
        let ms = |n| retry_delay(n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(10), ms(11), ms(40)],
            [500, 1000, 2000, 4000, 256_000, 300_000, 300_000]
        );
    }

    #[test]
    fn failures_count_per_object_and_reset_on_success() {
        let retries = Retries::default();
        assert_eq!([retries.failed("a"), retries.failed("a")], [1, 2]);
        assert_eq!(retries.failed("b"), 1);
        retries.succeeded("a");
        assert_eq!(retries.failed("a"), 1);
    }
}
