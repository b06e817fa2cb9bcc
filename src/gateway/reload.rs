//! Live reload of the configuration file. Kubelet updates a mounted Secret by swapping a
//! symlink, which file-change notifications on the file itself miss, so the file is read
//! and its SHA-256 compared every [`POLL_INTERVAL`]. A new valid file is compiled and
//! swapped in atomically (sessions are upstream's and are untouched); a broken one keeps
//! the last good configuration and logs why, without quoting the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::config::{ConfigError, GatewayConfig};
use super::live::ConfigHandle;
use super::metrics::Metrics;

/// How often the file is checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Watches one file and installs its changes.
pub struct ConfigWatcher {
    path: PathBuf,
    handle: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    /// Hash of the content last looked at (good or bad), so a broken file is reported once.
    last_seen: Option<[u8; 32]>,
}

impl ConfigWatcher {
    pub fn new(path: &Path, handle: Arc<ConfigHandle>, metrics: Arc<Metrics>) -> Self {
        ConfigWatcher {
            path: path.to_owned(),
            handle,
            metrics,
            last_seen: None,
        }
    }

    /// Reads the file and installs it when it changed and is valid. Returns whether a new
    /// configuration was installed.
    pub fn check(&mut self) -> bool {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(source) => {
                let hash = [0u8; 32];
                if self.last_seen != Some(hash) {
                    self.last_seen = Some(hash);
                    self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                    let e = ConfigError::Read {
                        path: self.path.display().to_string(),
                        source,
                    };
                    tracing::error!(error = %e, "gateway config not loaded; keeping the last good one");
                }
                return false;
            }
        };
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if self.last_seen == Some(hash) {
            return false;
        }
        self.last_seen = Some(hash);
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| ConfigError::Parse {
                path: String::new(),
                message: "not UTF-8 text".into(),
            })
            .and_then(GatewayConfig::parse);
        match parsed {
            Ok(config) => {
                let bindings = config.bindings.len();
                self.handle.install(config);
                self.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %self.path.display(), bindings, sha256 = %hex::encode(hash), "gateway config loaded");
                true
            }
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    path = %self.path.display(),
                    error = %describe(&e),
                    "gateway config is not valid; keeping the last good one"
                );
                false
            }
        }
    }

    /// Checks the file every [`POLL_INTERVAL`] forever.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let path = self.path.clone();
            // File reads are blocking; keep them off the async workers.
            let (w, _) = tokio::task::spawn_blocking(move || {
                let changed = self.check();
                (self, changed)
            })
            .await
            .unwrap_or_else(|e| panic!("config watcher panicked on {}: {e}", path.display()));
            self = w;
        }
    }
}

/// An error message that does not quote the file: quoted values are elided (field names,
/// positions and the reason remain).
pub fn describe(e: &ConfigError) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(text.len());
    let mut in_quotes = false;
    for c in text.chars() {
        if c == '"' {
            if !in_quotes {
                out.push_str("\"…\"");
            }
            in_quotes = !in_quotes;
        } else if !in_quotes {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_do_not_quote_values() {
        let e = GatewayConfig::parse(
            r#"{"server": {"name": "a", "namespace": "b"}, "toolPrefix": ["s3cr3t-value"]}"#,
        )
        .unwrap_err();
        let d = describe(&e);
        assert!(!d.contains("s3cr3t-value"), "{d}");
    }

    #[test]
    fn installs_good_files_and_keeps_them_over_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"server": {"name": "a", "namespace": "b"}, "toolPrefix": "x_"}"#,
        )
        .unwrap();
        let handle = Arc::new(ConfigHandle::default());
        let metrics = Arc::new(Metrics::default());
        let mut w = ConfigWatcher::new(&path, handle.clone(), metrics.clone());
        assert!(w.check());
        assert!(!w.check(), "unchanged");
        std::fs::write(&path, "{ not json").unwrap();
        assert!(!w.check());
        assert_eq!(handle.current().unwrap().file.tool_prefix, "x_");
        assert_eq!(metrics.reloads_failed.load(Ordering::Relaxed), 1);
    }
}
