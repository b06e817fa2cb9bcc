//! Token-bucket rate limiting: one bucket per binding (or one for the whole server, per
//! the policy's `rateLimit.per`), `burst` tokens deep, refilled at `requestsPerMinute`.
//! Each JSON-RPC request message takes one token; notifications and responses are free.
//! Probes are not limited (the controller paces them).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::policy::RateLimitScope;
use crate::policy::EffectiveRateLimit;

/// The buckets of one gateway. They survive config reloads; a bucket whose rate changed
/// starts again full at the new rate.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    limit: EffectiveRateLimit,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// Takes `n` tokens from the principal's bucket, or returns how long until `n` are
    /// available.
    pub fn take(
        &self,
        limit: &EffectiveRateLimit,
        principal: &str,
        n: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        let key = match limit.per {
            RateLimitScope::Binding => principal,
            RateLimitScope::Server => "",
        };
        let capacity = f64::from(limit.burst.max(1));
        let per_second = f64::from(limit.requests_per_minute.max(1)) / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            limit: *limit,
            tokens: capacity,
            last: now,
        });
        if bucket.limit != *limit {
            *bucket = Bucket {
                limit: *limit,
                tokens: capacity,
                last: now,
            };
        }
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.last = now;
        let wanted = f64::from(n);
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (wanted - bucket.tokens) / per_second,
            ))
        }
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let rl = RateLimiter::default();
        let limit = EffectiveRateLimit {
            requests_per_minute: 60,
            burst: 2,
            per: RateLimitScope::Binding,
        };
        let t0 = Instant::now();
        assert!(rl.take(&limit, "a", 1, t0).is_ok());
        assert!(rl.take(&limit, "a", 1, t0).is_ok());
        let wait = rl.take(&limit, "a", 1, t0).unwrap_err();
        assert_eq!(retry_after_secs(wait), 1);
        assert!(rl.take(&limit, "b", 1, t0).is_ok(), "per binding");
        assert!(rl.take(&limit, "a", 1, t0 + Duration::from_secs(1)).is_ok());
        let server = EffectiveRateLimit {
            per: RateLimitScope::Server,
            ..limit
        };
        assert!(rl.take(&server, "x", 2, t0).is_ok());
        assert!(rl.take(&server, "y", 1, t0).is_err(), "one shared bucket");
    }
}
