//! The bridge's two [`Backend`]s for the Streamable HTTP server: [`SharedBackend`] (every
//! session multiplexed onto one process) and [`PerSessionBackend`] (a process per session,
//! taken from a [`WarmPool`] of initialized processes that refills in the background).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use super::child::ChildConfig;
use super::metrics::ChildMetrics;
use super::mux::{ClientEra, Mux, SessionKey};
use super::supervisor::{StopHandle, supervise};
use crate::mcp_http::streamable::{Backend, BackendError, BackendSession, Outbox};

/// How long a session may wait for a process to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One supervised process and its multiplexer.
#[derive(Clone)]
pub struct Process {
    /// The process's multiplexer.
    pub mux: Arc<Mux>,
    /// Counters shared with every process of this bridge.
    pub metrics: Arc<ChildMetrics>,
    stop: StopHandle,
}

impl Process {
    /// Starts the process of `config` under supervision.
    pub fn start(config: &ChildConfig) -> Self {
        let mux = Arc::new(Mux::default());
        let stop = supervise(mux.clone(), config.clone());
        Self {
            mux,
            metrics: config.metrics.clone(),
            stop,
        }
    }

    /// Stops the process and waits until it is gone.
    pub async fn stop(&self) {
        self.stop.stop();
        self.stop.stopped().await;
    }

    async fn ready(&self) -> Result<(), BackendError> {
        tokio::time::timeout(READY_TIMEOUT, self.mux.wait_ready())
            .await
            .map_err(|_| BackendError::Unavailable("the MCP server process is not ready".into()))
    }
}

/// A session on a process's multiplexer.
pub struct MuxSession {
    process: Process,
    key: SessionKey,
    /// PerSession: the process is this session's alone and stops with it.
    owns_process: bool,
}

impl BackendSession for MuxSession {
    async fn send(&self, message: Value) -> Result<(), BackendError> {
        self.process.mux.send(self.key, message).await
    }

    fn close(&self) {
        self.process.mux.detach(self.key);
        if self.owns_process {
            self.process.stop.stop();
        }
    }
}

/// Shared mode: one process for every session.
pub struct SharedBackend {
    /// The one process.
    pub process: Process,
}

impl Backend for SharedBackend {
    type Session = MuxSession;

    async fn open(
        &self,
        initialize: Value,
        outbox: Arc<Outbox>,
    ) -> Result<(MuxSession, Value), BackendError> {
        let response = self.process.mux.initialize_response(&initialize)?;
        let key = self
            .process
            .mux
            .attach(outbox, ClientEra::legacy(&initialize));
        Ok((
            MuxSession {
                process: self.process.clone(),
                key,
                owns_process: false,
            },
            response,
        ))
    }

    fn serves_stateless(&self) -> bool {
        true
    }

    /// Like a client `initialize`, a session-less request does not wait for a process
    /// that is (re)starting: it is answered -32002 at once.
    async fn open_stateless(&self, outbox: Arc<Outbox>) -> Result<MuxSession, BackendError> {
        let key = self.process.mux.attach(outbox, ClientEra::Modern);
        Ok(MuxSession {
            process: self.process.clone(),
            key,
            owns_process: false,
        })
    }

    fn is_ready(&self) -> bool {
        self.process.mux.is_ready()
    }
}

/// Initialized processes waiting for a session.
pub struct WarmPool {
    config: ChildConfig,
    target: usize,
    ready: Mutex<VecDeque<Process>>,
    refill: Arc<Notify>,
    ever_ready: AtomicBool,
    /// Processes handed to sessions so far.
    pub taken: AtomicU64,
}

impl WarmPool {
    /// A pool keeping `target` processes ready; starts filling at once.
    pub fn start(config: ChildConfig, target: usize) -> Arc<Self> {
        let pool = Arc::new(Self {
            config,
            target,
            ready: Mutex::new(VecDeque::new()),
            refill: Arc::new(Notify::new()),
            ever_ready: AtomicBool::new(target == 0),
            taken: AtomicU64::new(0),
        });
        tokio::spawn(refill(Arc::downgrade(&pool)));
        pool
    }

    /// Counters of every process of this pool.
    pub fn metrics(&self) -> &ChildMetrics {
        &self.config.metrics
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Process>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready processes waiting now.
    pub fn ready_count(&self) -> usize {
        self.queue().len()
    }

    /// A ready process: from the pool, or a fresh one when the pool is empty.
    pub async fn take(&self) -> Result<Process, BackendError> {
        let pooled = self.queue().pop_front();
        self.refill.notify_one();
        self.taken.fetch_add(1, Ordering::Relaxed);
        if let Some(process) = pooled
            && process.mux.is_ready()
        {
            return Ok(process);
        }
        let process = Process::start(&self.config);
        if let Err(e) = process.ready().await {
            process.stop.stop();
            return Err(e);
        }
        Ok(process)
    }

    /// Stops every pooled process.
    pub async fn stop_all(&self) {
        let pooled: Vec<Process> = self.queue().drain(..).collect();
        for process in pooled {
            process.stop().await;
        }
    }
}

async fn refill(pool: std::sync::Weak<WarmPool>) {
    loop {
        let Some(strong) = pool.upgrade() else { return };
        while strong.ready_count() < strong.target {
            let process = Process::start(&strong.config);
            if process.ready().await.is_err() {
                process.stop.stop();
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            strong.ever_ready.store(true, Ordering::Relaxed);
            strong.queue().push_back(process);
        }
        let refill_wanted = strong.refill.clone();
        drop(strong);
        refill_wanted.notified().await;
    }
}

/// PerSession mode: each session gets its own process from the warm pool.
pub struct PerSessionBackend {
    /// Where processes come from.
    pub pool: Arc<WarmPool>,
}

impl Backend for PerSessionBackend {
    type Session = MuxSession;

    async fn open(
        &self,
        initialize: Value,
        outbox: Arc<Outbox>,
    ) -> Result<(MuxSession, Value), BackendError> {
        let process = self.pool.take().await?;
        let response = match process.mux.initialize_response(&initialize) {
            Ok(r) => r,
            Err(e) => {
                process.stop.stop();
                return Err(e);
            }
        };
        let key = process.mux.attach(outbox, ClientEra::legacy(&initialize));
        Ok((
            MuxSession {
                process,
                key,
                owns_process: true,
            },
            response,
        ))
    }

    fn serves_stateless(&self) -> bool {
        true
    }

    /// A session-less request gets a process of its own, stopped with its answer.
    async fn open_stateless(&self, outbox: Arc<Outbox>) -> Result<MuxSession, BackendError> {
        let process = self.pool.take().await?;
        let key = process.mux.attach(outbox, ClientEra::Modern);
        Ok(MuxSession {
            process,
            key,
            owns_process: true,
        })
    }

    fn is_ready(&self) -> bool {
        self.pool.ever_ready.load(Ordering::Relaxed)
    }
}
