//! Waiting for facts, not time: [`eventually`] polls an observation until it holds (short
//! backoff, bounded by a timeout) and panics with what was awaited and the last thing
//! seen; [`settle`] and [`assert_settled`] wait until a counter stops moving and check it
//! stays put. Tests use these instead of hand-written deadline loops and fixed sleeps, so
//! a slow machine makes a test slower, never wrong, and a failure says what never came.

use std::fmt::Debug;
use std::time::Duration;

use tokio::time::Instant;

/// The first pause between two polls; doubled after each miss up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between two polls.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// One poll's outcome: the awaited value, or what was seen instead (for the panic message).
pub trait Attempt {
    type Value;
    fn into_attempt(self) -> Result<Self::Value, String>;
}

impl<T> Attempt for Option<T> {
    type Value = T;
    fn into_attempt(self) -> Result<T, String> {
        self.ok_or_else(|| "None".to_owned())
    }
}

impl<T, E: Debug> Attempt for Result<T, E> {
    type Value = T;
    fn into_attempt(self) -> Result<T, String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

impl Attempt for bool {
    type Value = ();
    fn into_attempt(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".to_owned())
        }
    }
}

fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// Keeps `last` bounded so a huge observation (a whole log) cannot flood the panic
/// message: its head and its tail, where a log's news is.
fn bounded(seen: String) -> String {
    const HALF: usize = 2048;
    if seen.len() <= 2 * HALF {
        return seen;
    }
    let mut head = HALF;
    while !seen.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = seen.len() - HALF;
    while !seen.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n… ({} bytes left out) …\n{}",
        &seen[..head],
        tail - head,
        &seen[tail..]
    )
}

/// Polls `attempt` until it yields a value (`Some`, `Ok` or `true`), at least once and for
/// at most `timeout` (an attempt that hangs is cut off at the deadline too). Panics with
/// `what` and the last observation when the time is up.
pub async fn eventually<A: Attempt>(
    what: &str,
    timeout: Duration,
    attempt: impl AsyncFnMut() -> A,
) -> A::Value {
    match poll(timeout, attempt).await {
        Ok(value) => value,
        Err(missed) => panic!("waiting for {what}: {missed}"),
    }
}

/// [`eventually`] without the panic, for a caller with cleanup to do first: the value, or
/// a description of the miss (how long, how many tries, the last observation).
pub async fn poll<A: Attempt>(
    timeout: Duration,
    mut attempt: impl AsyncFnMut() -> A,
) -> Result<A::Value, String> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let last = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(outcome) => match outcome.into_attempt() {
                Ok(value) => return Ok(value),
                Err(seen) => seen,
            },
            Err(_) => "the attempt itself was still running at the deadline".to_owned(),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "timed out after {:?} ({tries} tries); last seen: {}",
                now - started,
                bounded(last)
            ));
        }
        tokio::time::sleep(backoff.min(deadline - now)).await;
        backoff = next_backoff(backoff);
    }
}

/// [`eventually`] for threads without a runtime (blocking sleeps between polls; a
/// hanging attempt is not cut off).
pub fn eventually_blocking<A: Attempt>(
    what: &str,
    timeout: Duration,
    attempt: impl FnMut() -> A,
) -> A::Value {
    match poll_blocking(timeout, attempt) {
        Ok(value) => value,
        Err(missed) => panic!("waiting for {what}: {missed}"),
    }
}

/// [`poll`] for threads without a runtime.
pub fn poll_blocking<A: Attempt>(
    timeout: Duration,
    mut attempt: impl FnMut() -> A,
) -> Result<A::Value, String> {
    let started = std::time::Instant::now();
    let deadline = started + timeout;
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let last = match attempt().into_attempt() {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(format!(
                "timed out after {:?} ({tries} tries); last seen: {}",
                now - started,
                bounded(last)
            ));
        }
        std::thread::sleep(backoff.min(deadline - now));
        backoff = next_backoff(backoff);
    }
}

/// How often [`settle`] and [`assert_settled`] look at the observation.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// Waits (at most `timeout`) until `observe` has returned the same value for a whole
/// `quiet` period, and returns that value. Panics with `what` and the last two values seen
/// when it keeps changing.
pub async fn settle<T: PartialEq + Debug>(
    what: &str,
    quiet: Duration,
    timeout: Duration,
    mut observe: impl AsyncFnMut() -> T,
) -> T {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut value = observe().await;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(SETTLE_POLL).await;
        let now_value = observe().await;
        let now = Instant::now();
        if now_value != value {
            assert!(
                now < deadline,
                "{what} never settled within {timeout:?}: still changing, {value:?} -> {now_value:?}"
            );
            value = now_value;
            since = now;
        } else if now - since >= quiet {
            return value;
        }
    }
}

/// The "settled" assertion: waits until `observe` has not changed for a second (at most
/// a minute), then checks it stays unchanged for two more, failing at the first change.
pub async fn assert_settled<T: PartialEq + Debug>(what: &str, mut observe: impl AsyncFnMut() -> T) {
    let settled = settle(
        what,
        Duration::from_secs(1),
        Duration::from_secs(60),
        &mut observe,
    )
    .await;
    assert_unchanged(what, Duration::from_secs(2), settled, observe).await;
}

/// Checks `observe` keeps returning `expected` for the whole `period` (polled, so a change
/// fails at once with the value it changed to).
pub async fn assert_unchanged<T: PartialEq + Debug>(
    what: &str,
    period: Duration,
    expected: T,
    mut observe: impl AsyncFnMut() -> T,
) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        tokio::time::sleep(SETTLE_POLL.min(end - Instant::now())).await;
        let now = observe().await;
        assert!(
            now == expected,
            "{what} changed while idle: {expected:?} -> {now:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_fact_holds() {
        let mut n = 0;
        let got = eventually("n reaches 3", Duration::from_secs(5), async || {
            n += 1;
            (n >= 3).then_some(n)
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the impossible: timed out")]
    async fn panics_with_what_and_the_last_observation() {
        let mut n = 0;
        eventually("the impossible", Duration::from_millis(5), async || {
            n += 1;
            Err::<(), _>(format!("nope {n}"))
        })
        .await;
    }

    #[test]
    fn a_long_observation_keeps_its_head_and_tail() {
        let long = format!("start{}end", "x".repeat(10_000));
        let short = bounded(long);
        assert!(short.len() < 4200, "{}", short.len());
        assert!(short.starts_with("start") && short.ends_with("end"));
        assert!(short.contains("bytes left out"));
    }

    #[tokio::test]
    #[should_panic(expected = "still running at the deadline")]
    async fn a_hanging_attempt_is_cut_off_at_the_deadline() {
        eventually("a reply", Duration::from_millis(50), async || {
            std::future::pending::<Option<()>>().await
        })
        .await;
    }

    #[test]
    fn blocking_variant_polls_too() {
        let mut n = 0;
        eventually_blocking("n reaches 2", Duration::from_secs(5), || {
            n += 1;
            n >= 2
        });
        assert_eq!(n, 2);
    }

    #[tokio::test]
    #[should_panic(expected = "changed while idle: 0 -> 1")]
    async fn assert_unchanged_fails_at_a_change() {
        let mut n = 0;
        assert_unchanged("writes", Duration::from_secs(5), 0, async || {
            n += 1;
            n / 3
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "never settled")]
    async fn settle_fails_when_it_keeps_changing() {
        let mut n = 0;
        settle(
            "writes",
            Duration::from_millis(300),
            Duration::from_millis(500),
            async || {
                n += 1;
                n
            },
        )
        .await;
    }
}
