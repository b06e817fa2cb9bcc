//! One pod replica run on the host: its volumes written under its directory, its init
//! containers run to completion one after the other, then every container supervised in
//! parallel — started, probed (readiness marks it ready, liveness restarts it), restarted
//! with exponential backoff (1 s doubling to 30 s, reset after a minute of running) when
//! it exits, and stopped (SIGTERM, then SIGKILL) when the pod stops.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use tokio::{sync::watch, task::JoinHandle};

use super::{
    RunnerShared,
    probe::ProbeCheck,
    process::{self, Running},
    spec::{PodFacts, ProcessSpec, process_spec},
    volumes,
};

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Running this long resets the backoff.
const BACKOFF_RESET: Duration = Duration::from_secs(60);
/// Time given to a process between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);
/// Restarts in a row (each shorter than [`BACKOFF_RESET`]) that make a crash loop.
const CRASH_LOOP_RESTARTS: u32 = 3;

/// What the pod is.
#[derive(Clone, Debug)]
pub struct PodConfig {
    pub namespace: String,
    pub deployment: String,
    pub name: String,
    pub uid: String,
    pub ip: Ipv4Addr,
    pub template: PodTemplateSpec,
    pub template_hash: String,
    pub dir: PathBuf,
}

impl PodConfig {
    /// `<namespace>/<deployment>/<pod>`: the value of [`process::POD_MARKER_ENV`].
    pub fn marker(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.deployment, self.name)
    }
}

/// How the pod is doing (what a Deployment's status counts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodStatus {
    pub ready: bool,
    pub restarts: u32,
    pub crash_looping: bool,
    /// Why it is not running, e.g. a missing Secret.
    pub waiting: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct ContainerState {
    ready: bool,
    restarts: u32,
    crash_looping: bool,
    waiting: Option<String>,
}

#[derive(Default)]
struct States {
    initialized: bool,
    pod_waiting: Option<String>,
    containers: Vec<ContainerState>,
}

/// A running pod; stop it with [`Pod::stop`] (dropping it kills its processes).
pub struct Pod {
    pub config: Arc<PodConfig>,
    states: Arc<Mutex<States>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    token: Arc<Mutex<String>>,
}

impl Pod {
    /// Starts the pod in the background.
    pub fn start(config: PodConfig, shared: Arc<RunnerShared>) -> Pod {
        let config = Arc::new(config);
        let containers = config
            .template
            .spec
            .as_ref()
            .map_or(0, |s| s.containers.len());
        let states = Arc::new(Mutex::new(States {
            containers: vec![ContainerState::default(); containers],
            ..States::default()
        }));
        let (stop, stop_rx) = watch::channel(false);
        let token = Arc::new(Mutex::new(String::new()));
        tracing::info!(pod = %config.name, namespace = %config.namespace, ip = %config.ip, "starting pod");
        let task = tokio::spawn(run(
            config.clone(),
            shared,
            states.clone(),
            token.clone(),
            stop_rx,
        ));
        Pod {
            config,
            states,
            stop,
            task,
            token,
        }
    }

    /// The pod's status now.
    pub fn status(&self) -> PodStatus {
        let s = lock(&self.states);
        PodStatus {
            ready: s.initialized
                && !s.containers.is_empty()
                && s.containers.iter().all(|c| c.ready),
            restarts: s.containers.iter().map(|c| c.restarts).sum(),
            crash_looping: s.containers.iter().any(|c| c.crash_looping),
            waiting: s
                .pod_waiting
                .clone()
                .or_else(|| s.containers.iter().find_map(|c| c.waiting.clone())),
        }
    }

    /// Rewrites Secret, ConfigMap and projected volumes whose objects changed.
    pub fn refresh_volumes(&self, shared: &RunnerShared) {
        if !lock(&self.states).initialized {
            return;
        }
        let Some(spec) = self.config.template.spec.as_ref() else {
            return;
        };
        let dirs = volumes::directories(&self.config.dir, spec);
        let labels = labels(&self.config);
        let facts = facts(&self.config, shared, &dirs, &labels);
        let objects = shared.stores.objects(&self.config.namespace);
        let token = lock(&self.token).clone();
        if let Err(e) = volumes::write_all(spec, &dirs, &facts, &objects, &token) {
            tracing::debug!(pod = %self.config.name, error = %e, "volume not refreshed");
        }
    }

    /// Stops every process of the pod and removes its volumes (its logs stay).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(GRACE + Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
        let _ = std::fs::remove_dir_all(self.config.dir.join("volumes"));
        tracing::info!(pod = %self.config.name, namespace = %self.config.namespace, "pod stopped");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn labels(config: &PodConfig) -> BTreeMap<String, String> {
    config
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn facts<'a>(
    config: &'a PodConfig,
    shared: &'a RunnerShared,
    dirs: &'a BTreeMap<String, PathBuf>,
    labels: &'a BTreeMap<String, String>,
) -> PodFacts<'a> {
    PodFacts {
        namespace: &config.namespace,
        pod_name: &config.name,
        pod_uid: &config.uid,
        pod_ip: config.ip,
        service_account: service_account(config),
        labels,
        volumes: dirs,
        operator_image: &shared.operator_image,
        operator_binary: &shared.operator_binary,
    }
}

fn service_account(config: &PodConfig) -> &str {
    config
        .template
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default")
}

/// Completes once the pod is stopped.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `d`; false when the pod was stopped meanwhile.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        () = stopped(stop) => return false,
    }
    !*stop.borrow()
}

async fn run(
    config: Arc<PodConfig>,
    shared: Arc<RunnerShared>,
    states: Arc<Mutex<States>>,
    token_slot: Arc<Mutex<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(spec) = config.template.spec.clone() else {
        return;
    };
    let logs = config.dir.join("logs");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        lock(&states).pod_waiting = Some(format!("cannot create {}: {e}", logs.display()));
        return;
    }
    let token = shared
        .tokens
        .as_ref()
        .map(|t| t.issue(&config.namespace, service_account(&config)))
        .unwrap_or_default();
    *lock(&token_slot) = token.clone();
    let dirs = volumes::directories(&config.dir, &spec);
    let labels = labels(&config);
    loop {
        let facts = facts(&config, &shared, &dirs, &labels);
        let objects = shared.stores.objects(&config.namespace);
        match volumes::write_all(&spec, &dirs, &facts, &objects, &token) {
            Ok(()) => break,
            Err(e) => lock(&states).pod_waiting = Some(e),
        }
        if !pause(BACKOFF_START, &mut stop).await {
            return;
        }
    }
    lock(&states).pod_waiting = None;
    let kubeconfig = match (&shared.api_url, token.is_empty()) {
        (Some(url), false) => {
            let path = config.dir.join("kubeconfig");
            let _ = write_owner_only(
                &path,
                &kubeconfig(url, shared.api_ca.as_deref(), &config.namespace, &token),
            );
            Some(path)
        }
        _ => None,
    };
    let token_volumes = volumes::token_volumes(&spec);
    let ctx = Arc::new(ContainerCtx {
        config: config.clone(),
        shared: shared.clone(),
        dirs,
        labels,
        token_volumes,
        kubeconfig,
        logs,
    });
    for c in spec.init_containers.iter().flatten() {
        if !run_init(&ctx, c, &states, &mut stop).await {
            return;
        }
    }
    lock(&states).initialized = true;
    let tasks: Vec<_> = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(supervise(
                ctx.clone(),
                c.clone(),
                i,
                states.clone(),
                stop.clone(),
            ))
        })
        .collect();
    futures::future::join_all(tasks).await;
}

/// One container's entry in the pod's states.
struct Slot {
    states: Arc<Mutex<States>>,
    i: usize,
}

impl Slot {
    fn update(&self, f: &dyn Fn(&mut ContainerState)) {
        if let Some(s) = lock(&self.states).containers.get_mut(self.i) {
            f(s);
        }
    }
}

/// What every container of the pod shares.
struct ContainerCtx {
    config: Arc<PodConfig>,
    shared: Arc<RunnerShared>,
    dirs: BTreeMap<String, PathBuf>,
    labels: BTreeMap<String, String>,
    token_volumes: Vec<String>,
    kubeconfig: Option<PathBuf>,
    logs: PathBuf,
}

impl ContainerCtx {
    fn spec(&self, c: &Container) -> Result<ProcessSpec, String> {
        let facts = facts(&self.config, &self.shared, &self.dirs, &self.labels);
        let objects = self.shared.stores.objects(&self.config.namespace);
        process_spec(c, &facts, &objects, &self.token_volumes).map_err(|e| e.to_string())
    }

    fn spawn(&self, c: &Container, spec: &ProcessSpec) -> std::io::Result<Running> {
        let kubeconfig = spec
            .api_access
            .then_some(self.kubeconfig.as_deref())
            .flatten();
        let log = self.logs.join(format!("{}.log", c.name));
        let marker = self.config.marker();
        let pod = process::PodEnv {
            marker: &marker,
            ip: self.config.ip,
            kubeconfig,
        };
        process::spawn(spec, &self.shared.host, &pod, &log)
    }
}

/// Writes a file only its owner can read (a pod's kubeconfig holds its token).
fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file left by an earlier run keeps its mode through `open`: set it again.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

fn kubeconfig(url: &str, ca: Option<&Path>, namespace: &str, token: &str) -> String {
    let ca = ca
        .map(|ca| format!("\n    certificate-authority: {}", ca.display()))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: mcp-operator-dev\n  cluster:\n    server: {url}{ca}\nusers:\n- name: pod\n  user:\n    token: {token}\ncontexts:\n- name: mcp-operator-dev\n  context:\n    cluster: mcp-operator-dev\n    user: pod\n    namespace: {namespace}\ncurrent-context: mcp-operator-dev\n"
    )
}

/// Runs init container `c` until it succeeds; false when the pod was stopped.
async fn run_init(
    ctx: &ContainerCtx,
    c: &Container,
    states: &Mutex<States>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = BACKOFF_START;
    loop {
        let outcome = match ctx.spec(c) {
            Err(e) => Err(e),
            Ok(spec) => match ctx.spawn(c, &spec) {
                Err(e) => Err(format!("cannot start {}: {e}", spec.program)),
                Ok(mut running) => tokio::select! {
                    status = running.wait() => match status {
                        Ok(s) if s.success() => Ok(()),
                        Ok(s) => Err(format!("init container {} exited with {s}", c.name)),
                        Err(e) => Err(e.to_string()),
                    },
                    () = stopped(stop) => {
                        running.stop(GRACE).await;
                        return false;
                    }
                },
            },
        };
        match outcome {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(pod = %ctx.config.name, container = %c.name, error = %e, "init container failed");
                lock(states).pod_waiting = Some(e);
            }
        }
        if !pause(backoff, stop).await {
            return false;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Keeps container `c` (index `i`) running until the pod stops.
async fn supervise(
    ctx: Arc<ContainerCtx>,
    c: Container,
    i: usize,
    states: Arc<Mutex<States>>,
    mut stop: watch::Receiver<bool>,
) {
    let slot = Slot { states, i };
    let set = |f: &dyn Fn(&mut ContainerState)| slot.update(f);
    let mut backoff = BACKOFF_START;
    let mut quick_restarts = 0u32;
    loop {
        let spec = match ctx.spec(&c) {
            Ok(spec) => spec,
            Err(e) => {
                set(&|s| s.waiting = Some(e.clone()));
                if !pause(BACKOFF_START, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let started = Instant::now();
        let why = match ctx.spawn(&c, &spec) {
            Err(e) => format!("cannot start {}: {e}", spec.program),
            Ok(mut running) => {
                set(&|s| s.waiting = None);
                tracing::debug!(pod = %ctx.config.name, container = %c.name, pid = ?running.id(), "container started");
                let probes = probe_loop(&ctx, &c, &slot);
                tokio::select! {
                    status = running.wait() => {
                        format!("exited with {}", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))
                    }
                    () = probes => {
                        running.stop(GRACE).await;
                        "liveness probe failed".to_owned()
                    }
                    () = stopped(&mut stop) => {
                        running.stop(GRACE).await;
                        set(&|s| s.ready = false);
                        return;
                    }
                }
            }
        };
        set(&|s| s.ready = false);
        if started.elapsed() >= BACKOFF_RESET {
            backoff = BACKOFF_START;
            quick_restarts = 0;
        }
        quick_restarts += 1;
        let looping = quick_restarts >= CRASH_LOOP_RESTARTS;
        let message = format!(
            "container {} {why}; restarting in {}s (log: {})",
            c.name,
            backoff.as_secs(),
            ctx.logs.join(format!("{}.log", c.name)).display()
        );
        tracing::warn!(pod = %ctx.config.name, namespace = %ctx.config.namespace, "{message}");
        set(&|s| {
            s.restarts += 1;
            s.crash_looping = looping;
            s.waiting = Some(message.clone());
        });
        if !pause(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Runs the readiness and liveness probes of `c`; completes only when liveness fails.
async fn probe_loop(ctx: &ContainerCtx, c: &Container, slot: &Slot) {
    let set = |f: &dyn Fn(&mut ContainerState)| slot.update(f);
    let ip = ctx.config.ip;
    let http = &ctx.shared.http;
    let readiness = c
        .readiness_probe
        .as_ref()
        .map(|p| ProbeCheck::new(p, c, ip));
    let liveness = c.liveness_probe.as_ref().map(|p| ProbeCheck::new(p, c, ip));
    let ready_loop = async {
        let check = match readiness {
            None => {
                set(&|s| {
                    s.ready = true;
                    s.crash_looping = false;
                });
                return std::future::pending::<()>().await;
            }
            Some(Err(e)) => {
                set(&|s| s.waiting = Some(e.clone()));
                return std::future::pending::<()>().await;
            }
            Some(Ok(check)) => check,
        };
        tokio::time::sleep(check.initial_delay).await;
        let (mut ok, mut failed, mut ever_ready) = (0u32, 0u32, false);
        loop {
            if check.check(http).await {
                ok += 1;
                failed = 0;
                if ok >= check.success_threshold {
                    ever_ready = true;
                    set(&|s| {
                        s.ready = true;
                        s.crash_looping = false;
                    });
                }
            } else {
                failed += 1;
                ok = 0;
                if failed >= check.failure_threshold {
                    set(&|s| s.ready = false);
                }
            }
            // Until first ready, check often: a playground should not wait a period.
            let period = if ever_ready {
                check.period
            } else {
                check.period.min(Duration::from_millis(250))
            };
            tokio::time::sleep(period).await;
        }
    };
    let live_loop = async {
        let Some(Ok(check)) = liveness else {
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep(check.initial_delay.max(check.period)).await;
        let mut failed = 0u32;
        loop {
            if check.check(http).await {
                failed = 0;
            } else {
                failed += 1;
                if failed >= check.failure_threshold {
                    return;
                }
            }
            tokio::time::sleep(check.period).await;
        }
    };
    tokio::select! {
        () = ready_loop => {}
        () = live_loop => {}
    }
}

/// Log file of `container` in pod directory `dir`.
pub fn log_path(dir: &Path, container: &str) -> PathBuf {
    dir.join("logs").join(format!("{container}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_kubeconfig_names_the_ca_of_an_https_server_and_none_for_http() {
        let real = kubeconfig(
            "https://127.0.0.1:6443",
            Some(Path::new("/x/control-plane/ca.crt")),
            "ns",
            "tok",
        );
        let doc: serde_yaml::Value = serde_yaml::from_str(&real).expect("YAML");
        let cluster = &doc["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], "https://127.0.0.1:6443");
        assert_eq!(cluster["certificate-authority"], "/x/control-plane/ca.crt");
        assert_eq!(doc["users"][0]["user"]["token"], "tok");
        assert_eq!(doc["contexts"][0]["context"]["namespace"], "ns");

        let embedded = kubeconfig("http://127.0.0.1:1234", None, "ns", "tok");
        let doc: serde_yaml::Value = serde_yaml::from_str(&embedded).expect("YAML");
        assert!(doc["clusters"][0]["cluster"]["certificate-authority"].is_null());
    }

    #[test]
    fn a_pods_kubeconfig_is_readable_by_its_owner_only_even_over_an_old_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, "old").expect("old file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_owner_only(&path, "token: secret\n").expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "token: secret\n"
        );
    }
}
