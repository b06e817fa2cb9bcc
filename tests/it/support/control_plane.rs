//! The real control plane of the real-cluster tier (tests/it/real_cluster): etcd,
//! kube-apiserver and kube-controller-manager v1.33, built from source by `make
//! control-plane` into `.peers/control-plane/bin/`. A missing binary fails the test with
//! "run `make control-plane`", never a skip.
//!
//! One control plane per test-binary run, started by the first test that asks
//! ([`control_plane`]); a namespace per test ([`RealCluster::new`]). The API server runs
//! with RBAC (`Node,RBAC`), a ServiceAccount issuer and an ECDSA signing key made at start,
//! static tokens (an admin in `system:masters`, and the controller manager's user), and a
//! serving certificate from a CA made at start; the controller manager runs the garbage
//! collector, namespace, ServiceAccount and ServiceAccount-token controllers only.
//!
//! Teardown without `Drop` (statics are never dropped): the processes join the process
//! group of a keeper, a small `sh` whose stdin is a pipe only this process holds. When the
//! test binary exits — normally, on a panic, or killed by SIGKILL — the kernel closes the
//! pipe; the keeper reads EOF, stops the processes (SIGTERM, then SIGKILL to the whole
//! group after at most 5 s) and removes the temporary directory (keys, tokens, etcd data).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use super::peers::{free_port, peers_dir, wait_for_port};

/// The binaries `make control-plane` builds.
const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];
/// Generous: the API server's post-start hooks take a few seconds on an idle machine and
/// much longer on 2 cores shared with a Rust build.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// How much of a component's log a startup failure quotes.
const LOG_TAIL: u64 = 6_000;

/// The stopping half of the keeper: reads one pid a line until EOF (this process is gone,
/// or the start failed), then stops them, removes `$1` and kills what is left of its group.
const KEEPER: &str = r#"trap '' INT HUP
pids=
while read -r pid; do pids="$pids $pid"; done
[ -n "$pids" ] && kill -TERM $pids 2>/dev/null
i=0
while [ $i -lt 50 ]; do
  alive=
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && break
  sleep 0.1
  i=$((i + 1))
done
rm -rf "$1"
kill -KILL 0"#;

/// What the API server's audit log records: every request at `Metadata` level (verb,
/// user, object, response code) except those of the control plane's own components and
/// health and discovery paths, so that tests can count an operator's writes and refusals.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:apiserver, system:kube-controller-manager]
- level: None
  userGroups: [system:serviceaccounts:kube-system]
- level: None
  nonResourceURLs: ['/readyz*', '/livez*', '/healthz*', '/version', '/openapi*', '/api', '/apis', '/apis/*']
- level: Metadata
";

/// `.peers/control-plane/bin` (under `$MCP_OPERATOR_PEERS` when set).
pub fn control_plane_bin() -> PathBuf {
    peers_dir().join("control-plane/bin")
}

/// A running control plane, shared by every test of this run.
pub struct ControlPlane {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// An admin kubeconfig (token in `system:masters`; RBAC does not apply to it).
    pub kubeconfig: PathBuf,
    /// The temporary directory (certificates, keys, tokens, etcd data, logs).
    pub dir: PathBuf,
    /// The CA that signed the API server's serving certificate.
    pub ca_file: PathBuf,
    /// The API server's audit log (JSON lines, [`AUDIT_POLICY`]): who asked what, and the
    /// answer's code.
    pub audit_log: PathBuf,
    /// How long the start took.
    pub startup: Duration,
    /// The keeper's stdin: closed when this process exits, which stops everything.
    _keeper: Mutex<(Child, ChildStdin)>,
    _components: Mutex<Vec<Child>>,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The control plane of this run, started on first use (blocking, on a thread of its own).
/// Panics — failing the test — when it cannot start, e.g. `make control-plane` was not run.
pub fn control_plane() -> &'static ControlPlane {
    let started = CONTROL_PLANE.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?
                .block_on(start())
        })
        .join()
        .unwrap_or_else(|_| Err("the control-plane start panicked".into()))
    });
    match started {
        Ok(cp) => cp,
        Err(e) => panic!("real control plane: {e}"),
    }
}

impl ControlPlane {
    /// A new admin client (one per test: a client is bound to the runtime it first runs on).
    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// What one test gets: an admin client, the kubeconfig, and a namespace of its own.
pub struct RealCluster {
    /// Admin client.
    pub client: kube::Client,
    /// The admin kubeconfig (for kubectl).
    pub kubeconfig: PathBuf,
    /// A namespace created for this test.
    pub namespace: String,
}

impl RealCluster {
    /// Starts the shared control plane if needed and creates a namespace named after `test`.
    pub async fn new(test: &str) -> RealCluster {
        let cp = control_plane();
        let client = cp.client().await;
        let namespace = namespace_name(test);
        create_namespace(&client, &namespace).await;
        RealCluster {
            client,
            kubeconfig: cp.kubeconfig.clone(),
            namespace,
        }
    }

    /// The pinned kubectl (`make peers`) pointed at this cluster.
    pub fn kubectl(&self) -> Command {
        let kubectl = super::peers::peer_path("bin/kubectl");
        let mut cmd = Command::new(kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }
}

/// Creates namespace `name` (on any API server, real or embedded); panics on failure.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace object");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
}

/// Creates namespace `name` unless it exists (namespaces several tests of one run share,
/// such as `mcp-operator-system`); panics on any other failure.
pub async fn ensure_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace object");
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// `<test>-<n>`: a DNS label unique in this run.
pub fn namespace_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut base: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(50);
    format!("{}-{n}", base.trim_matches('-'))
}

async fn client_for(kubeconfig: &Path) -> Result<kube::Client, String> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| format!("kubeconfig: {e}"))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("kubeconfig: {e}"))?;
    kube::Client::try_from(config).map_err(|e| format!("client: {e}"))
}

/// Starting: files, then etcd, the API server (until /readyz), the controller manager
/// (until its ServiceAccount controller made `default/default`).
async fn start() -> Result<ControlPlane, String> {
    let began = Instant::now();
    let bin = control_plane_bin();
    for name in BINARIES {
        if !bin.join(name).is_file() {
            return Err(format!(
                "{} is missing: run `make control-plane` (builds etcd, kube-apiserver and \
                 kube-controller-manager v1.33 from source; needs Go >= 1.24, minutes the \
                 first time)",
                bin.join(name).display()
            ));
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("mcp-control-plane-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let mut group = ProcessGroup::start(&dir)?;
    let files = Files::write(&dir)?;

    let etcd_port = free_port();
    let peer_port = free_port();
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = Command::new(bin.join("etcd"));
    etcd.args([
        "--name",
        "default",
        "--log-level",
        "warn",
        "--unsafe-no-fsync",
    ])
    .arg(format!("--data-dir={}", dir.join("etcd").display()))
    .arg(format!("--listen-client-urls={etcd_url}"))
    .arg(format!("--advertise-client-urls={etcd_url}"))
    .arg(format!("--listen-peer-urls={peer_url}"))
    .arg(format!("--initial-advertise-peer-urls={peer_url}"))
    .arg(format!("--initial-cluster=default={peer_url}"));
    group.spawn("etcd", etcd)?;
    if !wait_for_port(etcd_port, STARTUP_TIMEOUT) {
        return Err(group.failure("etcd did not listen"));
    }

    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let d = |f: &str| dir.join(f).display().to_string();
    let mut apiserver = Command::new(bin.join("kube-apiserver"));
    apiserver
        .arg(format!("--etcd-servers={etcd_url}"))
        .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
        .arg(format!("--secure-port={port}"))
        .arg(format!("--cert-dir={}", d("apiserver-certs")))
        .arg(format!("--tls-cert-file={}", d("server.crt")))
        .arg(format!("--tls-private-key-file={}", d("server.key")))
        .arg(format!("--client-ca-file={}", d("ca.crt")))
        .arg("--authorization-mode=Node,RBAC")
        .arg(format!("--token-auth-file={}", d("tokens.csv")))
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg(format!("--service-account-key-file={}", d("sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            d("sa.key")
        ))
        .args([
            "--service-cluster-ip-range=10.96.0.0/16",
            "--profiling=false",
        ])
        .arg(format!("--audit-policy-file={}", d("audit-policy.yaml")))
        .arg(format!("--audit-log-path={}", d("audit.log")))
        .args(["--audit-log-mode=blocking", "--audit-log-maxsize=0"]);
    group.spawn("kube-apiserver", apiserver)?;
    let kubeconfig = dir.join("admin.kubeconfig");
    write_kubeconfig(&kubeconfig, &url, &files.ca, &files.admin_token)?;
    let client = client_for(&kubeconfig).await?;
    group
        .wait("kube-apiserver /readyz", || readyz(&client))
        .await?;

    let kcm_kubeconfig = dir.join("kcm.kubeconfig");
    write_kubeconfig(&kcm_kubeconfig, &url, &files.ca, &files.kcm_token)?;
    let mut kcm = Command::new(bin.join("kube-controller-manager"));
    kcm.arg(format!("--kubeconfig={}", kcm_kubeconfig.display()))
        .arg("--controllers=garbagecollector,namespace,serviceaccount-token,serviceaccount")
        .arg(format!(
            "--service-account-private-key-file={}",
            d("sa.key")
        ))
        .arg(format!("--root-ca-file={}", d("ca.crt")))
        .args([
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--secure-port=0",
        ]);
    group.spawn("kube-controller-manager", kcm)?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    group
        .wait(
            "kube-controller-manager (ServiceAccount default/default)",
            || {
                let accounts = accounts.clone();
                async move { matches!(accounts.get_opt("default").await, Ok(Some(_))) }
            },
        )
        .await?;

    let (keeper, components) = group.into_parts();
    Ok(ControlPlane {
        url,
        kubeconfig,
        audit_log: dir.join("audit.log"),
        ca_file: files.ca,
        dir,
        startup: began.elapsed(),
        _keeper: Mutex::new(keeper),
        _components: Mutex::new(components),
    })
}

async fn readyz(client: &kube::Client) -> bool {
    let request = http::Request::get("/readyz").body(Vec::new());
    match request {
        Ok(request) => client
            .request_text(request)
            .await
            .is_ok_and(|body| body.trim() == "ok"),
        Err(_) => false,
    }
}

/// The keeper and the components in its process group: everything started with
/// [`ProcessGroup::spawn`] is stopped when this process exits, however it exits.
pub struct ProcessGroup {
    dir: PathBuf,
    keeper: Child,
    keeper_stdin: ChildStdin,
    components: Vec<(String, Child)>,
}

impl ProcessGroup {
    /// Starts the keeper; it removes `dir` after stopping the group.
    pub fn start(dir: &Path) -> Result<ProcessGroup, String> {
        let mut keeper = Command::new("sh")
            .arg("-c")
            .arg(KEEPER)
            .arg("control-plane-keeper")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting the keeper (sh): {e}"))?;
        let keeper_stdin = keeper.stdin.take().ok_or("keeper stdin")?;
        Ok(ProcessGroup {
            dir: dir.to_owned(),
            keeper,
            keeper_stdin,
            components: Vec::new(),
        })
    }

    /// Starts `cmd` in the keeper's process group, output to `<dir>/<name>.log`; returns
    /// its pid.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<u32, String> {
        let log = File::create(self.dir.join(format!("{name}.log")))
            .map_err(|e| format!("{name} log: {e}"))?;
        let err = log.try_clone().map_err(|e| format!("{name} log: {e}"))?;
        let pgid = i32::try_from(self.keeper.id()).map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(pgid)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let pid = child.id();
        writeln!(self.keeper_stdin, "{pid}").map_err(|e| format!("keeper: {e}"))?;
        self.components.push((name.to_owned(), child));
        Ok(pid)
    }

    /// Polls `ready` until true; fails when a component exits or at the deadline.
    async fn wait<F, Fut>(&mut self, what: &str, ready: F) -> Result<(), String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if ready().await {
                return Ok(());
            }
            for (name, child) in &mut self.components {
                if let Ok(Some(status)) = child.try_wait() {
                    let msg = format!("{name} exited with {status} while waiting for {what}");
                    return Err(self.failure(&msg));
                }
            }
            if Instant::now() > deadline {
                let msg = format!("{what} not ready after {STARTUP_TIMEOUT:?}");
                return Err(self.failure(&msg));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `msg` with the end of every component's log.
    fn failure(&self, msg: &str) -> String {
        let mut out = msg.to_owned();
        for (name, _) in &self.components {
            out.push_str(&format!("\n--- {name} (end of log) ---\n"));
            out.push_str(&log_tail(&self.dir.join(format!("{name}.log"))));
        }
        out
    }

    fn into_parts(self) -> ((Child, ChildStdin), Vec<Child>) {
        let components = self.components.into_iter().map(|(_, c)| c).collect();
        ((self.keeper, self.keeper_stdin), components)
    }
}

fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What the start writes into the temporary directory: a CA and the API server's serving
/// certificate, the ServiceAccount signing key pair, static tokens.
struct Files {
    ca: PathBuf,
    admin_token: String,
    kcm_token: String,
}

impl Files {
    fn write(dir: &Path) -> Result<Files, String> {
        // ECDSA P-256 throughout: key generation is instant, unlike RSA.
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(dir, &["req", "-x509"])
            .args(ec)
            .args(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"])
            .args(["-subj", "/CN=mcp-operator-test-ca"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .run()?;
        openssl(dir, &["req"])
            .args(ec)
            .args(["-keyout", "server.key", "-out", "server.csr"])
            .args(["-subj", "/CN=kube-apiserver"])
            .run()?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n\
             extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\n",
        )
        .map_err(|e| format!("server.ext: {e}"))?;
        openssl(dir, &["x509", "-req", "-in", "server.csr"])
            .args(["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"])
            .args(["-days", "2", "-extfile", "server.ext", "-out", "server.crt"])
            .run()?;
        openssl(dir, &["genpkey", "-algorithm", "EC"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "sa.key"])
            .run()?;
        openssl(dir, &["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]).run()?;

        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let kcm_token = uuid::Uuid::new_v4().simple().to_string();
        std::fs::write(
            dir.join("tokens.csv"),
            format!(
                "{admin_token},admin,admin,system:masters\n\
                 {kcm_token},system:kube-controller-manager,kube-controller-manager\n"
            ),
        )
        .map_err(|e| format!("tokens.csv: {e}"))?;
        std::fs::write(dir.join("audit-policy.yaml"), AUDIT_POLICY)
            .map_err(|e| format!("audit-policy.yaml: {e}"))?;
        Ok(Files {
            ca: dir.join("ca.crt"),
            admin_token,
            kcm_token,
        })
    }
}

struct Openssl(Command);

fn openssl(dir: &Path, args: &[&str]) -> Openssl {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    Openssl(cmd)
}

impl Openssl {
    fn args<const N: usize>(mut self, args: [&str; N]) -> Self {
        self.0.args(args);
        self
    }

    fn run(mut self) -> Result<(), String> {
        let out = self
            .0
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("openssl (needed for the control plane's keys): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{:?} failed: {}",
                self.0,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

fn write_kubeconfig(path: &Path, url: &str, ca: &Path, token: &str) -> Result<(), String> {
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: real\n  cluster:\n    server: {url}\n    certificate-authority: {}\n\
         users:\n- name: user\n  user:\n    token: {token}\n\
         contexts:\n- name: real\n  context:\n    cluster: real\n    user: user\n\
         current-context: real\n",
        ca.display()
    );
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
