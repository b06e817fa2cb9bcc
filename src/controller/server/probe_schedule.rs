//! When a server is probed, pure: when its spec changed, when its Deployment became
//! Available, and every `spec.probe.interval` (jittered ±10%); after a failed probe
//! sooner (5 s doubling, capped at the interval). A reconcile decides with [`schedule`]
//! from the server's status and hands the answer to the prober ([`super::probes`]).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::probes::{ProbeReason, ProbeWhen};
use crate::{
    api::{McpServer, server::ProbeSpec},
    controller::shared::jittered,
    prober::ProbeOptions,
};

/// Interval used when `spec.probe.interval` cannot be parsed (admission prevents it).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// First retry delay after a failed probe; doubles per consecutive failure.
const RETRY_BASE: Duration = Duration::from_secs(5);

/// When `server` is probed next. `available_now` says the Deployment is Available (or
/// there is none to wait for); `was_available` whether status said so.
pub fn schedule(
    server: &McpServer,
    available_now: bool,
    was_available: bool,
    now: Timestamp,
) -> ProbeWhen {
    let probe = server.spec.probe.clone().unwrap_or_default();
    if probe.disabled || !available_now {
        return ProbeWhen::Never;
    }
    let status = server.status.clone().unwrap_or_default();
    let Some(last) = status.last_probe.as_ref() else {
        return ProbeWhen::Now(ProbeReason::FirstProbe);
    };
    if status.observed_generation != server.metadata.generation {
        return ProbeWhen::Now(ProbeReason::SpecChanged);
    }
    if !was_available {
        return ProbeWhen::Now(ProbeReason::BecameAvailable);
    }
    let interval = next_interval(&probe, status.consecutive_failures.unwrap_or(0));
    let elapsed = now.duration_since(last.time.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or_default();
    let earliest = interval.mul_f64(0.9);
    if elapsed >= earliest {
        ProbeWhen::Now(ProbeReason::IntervalElapsed)
    } else {
        ProbeWhen::After(
            jittered(interval)
                .saturating_sub(elapsed)
                .max(earliest - elapsed),
        )
    }
}

/// When the next probe is due after `failures` consecutive failures: the interval when
/// the last probe succeeded, else 5 s, 10 s, 20 s … capped at the interval. A server that
/// is still starting (a stdio child initializing behind a ready gateway) is therefore
/// re-probed within seconds instead of after a whole interval.
pub fn next_interval(probe: &ProbeSpec, failures: i32) -> Duration {
    let interval = interval(probe);
    if failures <= 0 {
        return interval;
    }
    let factor = 1u32 << (failures - 1).clamp(0, 16);
    RETRY_BASE.saturating_mul(factor).min(interval)
}

/// `spec.probe.interval`, parsed.
pub fn interval(probe: &ProbeSpec) -> Duration {
    probe
        .interval
        .parse()
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_INTERVAL)
}

/// Probe options from the spec.
pub fn options(probe: &ProbeSpec) -> ProbeOptions {
    let d = ProbeOptions::default();
    ProbeOptions {
        timeout: probe.timeout.parse().unwrap_or(d.timeout),
        retries: u32::try_from(probe.retries).unwrap_or(d.retries),
        retry_delay: probe.retry_delay.parse().unwrap_or(d.retry_delay),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_probes_retry_with_backoff_capped_at_the_interval() {
        let probe = ProbeSpec {
            interval: crate::api::common::GoDuration("1m".into()),
            ..ProbeSpec::default()
        };
        let secs = |f| next_interval(&probe, f).as_secs();
        assert_eq!(
            [
                secs(0),
                secs(1),
                secs(2),
                secs(3),
                secs(4),
                secs(5),
                secs(40)
            ],
            [60, 5, 10, 20, 40, 60, 60]
        );
    }
}
