//! Keeps one stdio process alive for a [`Mux`]: start, initialize, pump its stdout into
//! the mux, and when it exits fail the calls in flight and restart it with exponential
//! backoff (100 ms doubling to 30 s, back to 100 ms after a minute of stable running).
//! A process that fails to start or dies before answering `initialize` is restarted the
//! same way, and every restart counts in `mcp_bridge_child_restarts_total`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::child::{ChildConfig, RunningChild};
use super::mux::Mux;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A process that ran this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Exponential backoff between restarts.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_DELAY }
    }
}

impl Backoff {
    /// The delay before the next attempt; doubles each call up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.next = FIRST_DELAY;
    }
}

/// A handle that stops a supervised process.
#[derive(Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    /// Asks the supervisor to stop the process (stdin closed, then killed) and not restart.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Waits until the supervisor has stopped the process.
    pub async fn stopped(&self) {
        self.0.closed().await;
    }
}

/// Starts supervising `command` for `mux` in the background.
pub fn supervise(mux: Arc<Mux>, config: ChildConfig) -> StopHandle {
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(run(mux, config, stop_rx));
    StopHandle(stop)
}

async fn run(mux: Arc<Mux>, config: ChildConfig, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            started = RunningChild::start(&config) => Some(started),
            _ = stop.wait_for(|s| *s) => None,
        };
        match outcome {
            None => return,
            Some(Ok(mut child)) => {
                let Some(writer) = child.writer() else {
                    continue;
                };
                tracing::info!(
                    pid = child.pid,
                    era = child.era.era().as_str(),
                    "MCP server process initialized"
                );
                mux.child_started(writer, child.era.clone(), child.pid);
                let stopping = pump(&mux, &mut child, &mut stop).await;
                let how = child.stop().await;
                mux.child_exited(&how, !stopping);
                if stopping {
                    tracing::info!(%how, "MCP server process stopped");
                    return;
                }
                config.metrics.restarted();
                tracing::warn!(%how, "MCP server process exited; restarting");
            }
            Some(Err(e)) => {
                config.metrics.restarted();
                tracing::warn!(error = %e, "MCP server process failed to start; restarting");
            }
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Feeds the process's messages to the mux until stdout ends (false) or a stop is asked
/// (true).
async fn pump(mux: &Mux, child: &mut RunningChild, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            message = child.next_message() => match message {
                Some((message, len)) => mux.dispatch(message, len),
                None => return false,
            },
            _ = stop.wait_for(|s| *s) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        assert_eq!(b.next_delay(), Duration::from_millis(200));
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), MAX_DELAY);
        b.reset();
        assert_eq!(b.next_delay(), FIRST_DELAY);
    }
}
