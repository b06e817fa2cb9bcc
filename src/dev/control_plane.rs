//! The real control plane under the playground (`mcp-operator dev --control-plane BIN`):
//! etcd, kube-apiserver and kube-controller-manager v1.33 as built by `make control-plane`
//! into `.peers/control-plane/bin/`, instead of the embedded API server. The pod runner
//! still plays kubelet and Deployment controller; the controller manager runs the garbage
//! collector, namespace, ServiceAccount, ServiceAccount-token and root-CA publisher
//! (`kube-root-ca.crt`) controllers.
//!
//! The integration tests' real-cluster fixture (tests/it/support/control_plane.rs) starts
//! its control plane with this module too ([`ControlPlane::start_with`], [`Options`]): the
//! same certificates (a CA made at start, ECDSA P-256), ServiceAccount signing key, static
//! tokens (an admin in `system:masters`, the controller manager's user) and flags; the
//! tests add an audit log and leave out the root-CA publisher. Files go under
//! `<dir>/control-plane/`.
//!
//! Teardown: the processes join the process group of a keeper, a small `sh` whose stdin
//! is a pipe only this process holds. When this process exits — normally, on a panic or
//! killed by SIGKILL — the kernel closes the pipe; the keeper stops the processes (SIGTERM,
//! then SIGKILL to the whole group after at most 5 s) and removes etcd's data (or all of
//! `dir`, [`Options::remove_on_exit`]).
//! [`ControlPlane::stop`] closes the pipe itself and waits for the components.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The binaries `make control-plane` builds.
pub const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];
/// The API server's post-start hooks take seconds on an idle machine, much longer on a
/// loaded one.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// How much of a component's log a start failure quotes.
const LOG_TAIL: u64 = 4_000;
/// Lifetime asked for ServiceAccount tokens of pods (the API server's minimum is 10 min).
const TOKEN_SECONDS: i64 = 3600;

/// Stops the group when its stdin closes; `$1` is what it removes then (etcd's data, or
/// all of the control plane's folder).
const KEEPER: &str = r#"trap '' INT HUP TERM
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

/// What differs between the playground's control plane and the integration tests'.
#[derive(Debug, Clone)]
pub struct Options {
    /// An audit policy (YAML): the API server then writes every request it records, as
    /// JSON lines, to [`ControlPlane::audit_log`] (blocking mode, never rotated). None
    /// (the default): no audit log.
    pub audit_policy: Option<String>,
    /// Whether the controller manager runs the root-CA publisher (the `kube-root-ca.crt`
    /// ConfigMap in every namespace). Default true.
    pub root_ca_publisher: bool,
    /// Whether the keeper removes all of `dir` (keys, tokens, logs) when this process
    /// exits, not only etcd's data. Default false.
    pub remove_on_exit: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            audit_policy: None,
            root_ca_publisher: true,
            remove_on_exit: false,
        }
    }
}

/// A running control plane.
pub struct ControlPlane {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// Admin kubeconfig (static token in `system:masters`, the CA by path).
    pub kubeconfig: PathBuf,
    /// The CA of the API server's serving certificate.
    pub ca_file: PathBuf,
    /// `<dir>/control-plane`: certificates, keys, tokens, logs.
    pub dir: PathBuf,
    /// The API server's audit log (JSON lines), when [`Options::audit_policy`] was set.
    pub audit_log: Option<PathBuf>,
    /// How long the start took.
    pub startup: Duration,
    keeper: Mutex<Option<(Child, ChildStdin)>>,
    components: Mutex<Vec<Child>>,
}

impl ControlPlane {
    /// Starts etcd, the API server (until /readyz) and the controller manager (until its
    /// ServiceAccount controller made `default/default`), binaries from `bin`; the
    /// playground's [`Options::default`].
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<ControlPlane> {
        ControlPlane::start_with(bin, dir, &Options::default()).await
    }

    /// [`ControlPlane::start`] with `options`.
    pub async fn start_with(
        bin: &Path,
        dir: &Path,
        options: &Options,
    ) -> anyhow::Result<ControlPlane> {
        let began = Instant::now();
        for name in BINARIES {
            if !bin.join(name).is_file() {
                bail!(
                    "{} is missing: run `make control-plane` (builds etcd, kube-apiserver and \
                     kube-controller-manager v1.33 from source; needs Go >= 1.24)",
                    bin.join(name).display()
                );
            }
        }
        let removed = if options.remove_on_exit {
            dir.to_owned()
        } else {
            dir.join("control-plane/etcd")
        };
        let dir = dir.join("control-plane");
        let _ = std::fs::remove_dir_all(dir.join("etcd"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut group = ProcessGroup::start(&dir, &removed)?;
        let files = Files::write(&dir)?;

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
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
        group
            .wait("etcd", || async move { port_open(etcd_port) })
            .await?;

        let port = free_port()?;
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
            ]);
        let audit_log = match &options.audit_policy {
            Some(policy) => {
                std::fs::write(dir.join("audit-policy.yaml"), policy)
                    .context("writing audit-policy.yaml")?;
                apiserver
                    .arg(format!("--audit-policy-file={}", d("audit-policy.yaml")))
                    .arg(format!("--audit-log-path={}", d("audit.log")))
                    .args(["--audit-log-mode=blocking", "--audit-log-maxsize=0"]);
                Some(dir.join("audit.log"))
            }
            None => None,
        };
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
            .arg(format!(
                "--controllers=garbagecollector,namespace,serviceaccount-token,serviceaccount{}",
                if options.root_ca_publisher {
                    ",root-ca-cert-publisher"
                } else {
                    ""
                }
            ))
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
            ca_file: files.ca,
            dir,
            audit_log,
            startup: began.elapsed(),
            keeper: Mutex::new(Some(keeper)),
            components: Mutex::new(components),
        })
    }

    /// A new admin client.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_for(&self.kubeconfig).await
    }

    /// A ServiceAccount token from the API server (TokenRequest), blocking: asked on a
    /// thread of its own with its own runtime and client, so it works from any runtime.
    /// Empty when the request fails (the pod then gets no credentials; logged).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let kubeconfig = self.kubeconfig.clone();
        let (ns, sa) = (namespace.to_owned(), name.to_owned());
        let asked = std::thread::spawn(move || -> anyhow::Result<String> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async move {
                    let client = client_for(&kubeconfig).await?;
                    let api: Api<ServiceAccount> = Api::namespaced(client, &ns);
                    let request: TokenRequest = serde_json::from_value(serde_json::json!({
                        "spec": {"expirationSeconds": TOKEN_SECONDS}
                    }))?;
                    let answer = tokio::time::timeout(
                        Duration::from_secs(30),
                        api.create_token_request(&sa, &PostParams::default(), &request),
                    )
                    .await
                    .map_err(|_| anyhow!("no answer in 30 s"))??;
                    answer
                        .status
                        .map(|s| s.token)
                        .ok_or_else(|| anyhow!("TokenRequest answered without a token"))
                })
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow!("the token request panicked")));
        asked.unwrap_or_else(|error| {
            tracing::warn!(namespace, name, %error, "no ServiceAccount token");
            String::new()
        })
    }

    /// Stops the components (SIGTERM, SIGKILL after 5 s) and waits for them.
    pub fn stop(&self) {
        let keeper = self
            .keeper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((mut keeper, stdin)) = keeper {
            drop(stdin);
            let _ = keeper.wait();
        }
        for child in self
            .components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter_mut()
        {
            let _ = child.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .context("finding a free port")?
        .local_addr()?
        .port())
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = Kubeconfig::read_from(kubeconfig).context("reading the control plane's kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Whether /readyz answers `ok`. The kube client logs every failed request at ERROR; the
/// expected 500s and refused connections of the start are not shown.
async fn readyz(client: &kube::Client) -> bool {
    use tracing::instrument::WithSubscriber as _;
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    client
        .request_text(request)
        .with_subscriber(tracing::subscriber::NoSubscriber::default())
        .await
        .is_ok_and(|body| body.trim() == "ok")
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
    /// Starts the keeper; components log into `dir`; the keeper removes `removed` after
    /// stopping the group.
    pub fn start(dir: &Path, removed: &Path) -> anyhow::Result<ProcessGroup> {
        let mut keeper = Command::new("sh")
            .arg("-c")
            .arg(KEEPER)
            .arg("control-plane-keeper")
            .arg(removed)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the keeper (sh)")?;
        let keeper_stdin = keeper.stdin.take().context("keeper stdin")?;
        Ok(ProcessGroup {
            dir: dir.to_owned(),
            keeper,
            keeper_stdin,
            components: Vec::new(),
        })
    }

    /// Starts `cmd` in the keeper's process group, output to `<dir>/<name>.log`; returns
    /// its pid.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> anyhow::Result<u32> {
        let log = File::create(self.dir.join(format!("{name}.log")))
            .with_context(|| format!("{name} log"))?;
        let err = log.try_clone()?;
        let pgid = i32::try_from(self.keeper.id())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(pgid)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id();
        writeln!(self.keeper_stdin, "{pid}").context("keeper")?;
        self.components.push((name.to_owned(), child));
        Ok(pid)
    }

    /// Polls `ready` until true; fails when a component exits or at the deadline.
    async fn wait<F, Fut>(&mut self, what: &str, ready: F) -> anyhow::Result<()>
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
                    return Err(anyhow!(self.failure(&msg)));
                }
            }
            if Instant::now() > deadline {
                let msg = format!("{what} not ready after {STARTUP_TIMEOUT:?}");
                return Err(anyhow!(self.failure(&msg)));
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
    let _ = std::io::Read::take(&mut file, LOG_TAIL).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A CA and the API server's serving certificate, the ServiceAccount signing key pair,
/// static tokens.
struct Files {
    ca: PathBuf,
    admin_token: String,
    kcm_token: String,
}

impl Files {
    fn write(dir: &Path) -> anyhow::Result<Files> {
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
            .args(["-subj", "/CN=mcp-operator-dev-ca"])
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
        )?;
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
        write_private(
            &dir.join("tokens.csv"),
            &format!(
                "{admin_token},admin,admin,system:masters\n\
                 {kcm_token},system:kube-controller-manager,kube-controller-manager\n"
            ),
        )?;
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

    fn run(mut self) -> anyhow::Result<()> {
        let out = self
            .0
            .stdin(Stdio::null())
            .output()
            .context("openssl (needed for the control plane's keys)")?;
        if !out.status.success() {
            let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            stderr.truncate(2_000);
            bail!("{:?} failed: {stderr}", self.0);
        }
        Ok(())
    }
}

/// Writes a file readable by its owner only (it holds a token).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// A kubeconfig for `url` with the CA by path and a bearer token (owner-only file).
pub fn write_kubeconfig(path: &Path, url: &str, ca: &Path, token: &str) -> anyhow::Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: mcp-operator-dev\n  cluster:\n    server: {url}\n    certificate-authority: {}\n\
         users:\n- name: admin\n  user:\n    token: {token}\n\
         contexts:\n- name: mcp-operator-dev\n  context:\n    cluster: mcp-operator-dev\n    user: admin\n    namespace: default\n\
         current-context: mcp-operator-dev\n",
        ca.display()
    );
    write_private(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_binaries_are_refused_saying_how_to_build_them() {
        let bin = tempfile::tempdir().expect("temp dir");
        let dir = tempfile::tempdir().expect("temp dir");
        let error = match ControlPlane::start(bin.path(), dir.path()).await {
            Ok(_) => panic!("started without binaries"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains("etcd is missing"), "{error}");
        assert!(error.contains("make control-plane"), "{error}");
        assert!(
            !dir.path().join("control-plane").exists(),
            "nothing written before the check"
        );
    }
}
