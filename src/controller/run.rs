//! `mcp-operator run`: command-line arguments, start-up (client, CRD check), the admin
//! endpoint, leader election, and the McpServer, McpPolicy and McpBinding controllers
//! (one each per watched namespace, or one cluster-wide). [`run_with`] is the in-process
//! entry point tests use.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Client, Resource, ResourceExt,
    runtime::{Controller, reflector::ObjectRef, watcher},
};
use tokio::sync::watch;

use super::{
    api_server_egress::ApiServerEgress,
    binding,
    context::Context,
    error::Error,
    events::Events,
    leader::{self, LeaseSettings},
    metrics::{self, Metrics},
    policy::{self, PolicyContext},
    server::{
        self, ServerContext,
        probe_target::ProbeEnv,
        probes::{ProbeLimits, Prober},
    },
    shared::{
        DEFAULT_RECONCILE_CONCURRENCY, ProbeToken, ServiceProxy, ServiceResolver,
        controller_config, scoped, stopped, synced,
    },
    startup,
};
use crate::{
    api::{McpBinding, McpPolicy, McpServer},
    prober::{CidrList, DestinationPolicy, destination::DEFAULT_DENIED_CIDRS},
    telemetry::{LogFormat, init_logging},
};

/// Default of `--probe-concurrency`. A probe mostly waits on the network (an
/// unreachable server holds its permit for the whole `spec.probe.timeout`), so this is
/// well above the CPU count: 100 servers that never answer still leave 28 permits to the
/// healthy ones. Each probe in flight costs one connection and an inventory bounded by
/// the prober's limits.
pub const DEFAULT_PROBE_CONCURRENCY: usize = 128;

/// Arguments of `mcp-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Hold a Lease (in POD_NAMESPACE) before reconciling; only the holder writes.
    #[arg(long)]
    pub leader_elect: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Address of /metrics, /livez and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Maximum concurrent server probes (attempts in flight; a probe waiting for its
    /// retry holds none). Probes run beside the reconciles, never inside one; servers
    /// whose last probe failed get at most half of these.
    #[arg(long, default_value_t = DEFAULT_PROBE_CONCURRENCY)]
    pub probe_concurrency: usize,
    /// Address ranges (comma-separated CIDRs) that probes of remote servers without a
    /// gateway never connect to; the API server's own addresses are always added. An
    /// empty value denies nothing but the API server. Default: loopback, "this host",
    /// link-local (incl. 169.254.169.254), IPv4 and IPv6.
    #[arg(long, value_name = "CIDRS", default_value = DEFAULT_DENIED_CIDRS)]
    pub probe_denied_cidrs: CidrList,
    /// Address ranges (comma-separated CIDRs) excepted from the denied ones, the API
    /// server's included (e.g. 127.0.0.0/8 for remote servers on the operator's host).
    #[arg(long, value_name = "CIDRS", default_value = "")]
    pub probe_allowed_cidrs: CidrList,
    /// Maximum concurrent reconciles per controller (McpServer, McpPolicy, McpBinding).
    /// Bounds API connections and memory when many objects change at once.
    #[arg(long, default_value_t = DEFAULT_RECONCILE_CONCURRENCY)]
    pub reconcile_concurrency: u16,
    /// Watch only these namespaces (repeatable). Default: every namespace.
    #[arg(long = "watch-namespace", value_name = "NS")]
    pub watch_namespaces: Vec<String>,
    /// The operator's namespace (Lease, probe token Secret).
    #[arg(long, env = "POD_NAMESPACE", default_value = "mcp-operator-system")]
    pub pod_namespace: String,
    /// This replica's name (Lease holder identity, Event reporting instance).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Image of the gateway sidecar and install-bridge init container.
    #[arg(
        long,
        env = "MCP_OPERATOR_IMAGE",
        default_value = "ghcr.io/mcp-operator/mcp-operator:0.1.0"
    )]
    pub operator_image: String,
}

/// Everything [`run_with`] needs besides the client.
#[derive(Clone)]
pub struct RunConfig {
    /// The operator's namespace.
    pub pod_namespace: String,
    /// This replica's name.
    pub pod_name: Option<String>,
    /// Image of the gateway sidecar and install-bridge init container.
    pub operator_image: String,
    /// Namespaces to watch; empty = all.
    pub watch_namespaces: Vec<String>,
    /// Maximum concurrent probes.
    pub probe_concurrency: usize,
    /// Where probes of remote servers without a gateway may connect (the API server's
    /// addresses are denied on top unless allowed here).
    pub probe_destinations: DestinationPolicy,
    /// Maximum concurrent reconciles per controller.
    pub reconcile_concurrency: u16,
    /// Some = leader election with these settings.
    pub leader_election: Option<LeaseSettings>,
    /// Some = serve the admin endpoint there.
    pub admin_addr: Option<SocketAddr>,
    /// Some = reach `*.svc` through the API server (outside the cluster).
    pub service_proxy: Option<ServiceProxy>,
    /// Some = Services resolve to these addresses (probes, status.url): `mcp-operator dev`.
    pub service_addresses: Option<Arc<dyn ServiceResolver>>,
    /// Metrics (shared so callers can read them).
    pub metrics: Arc<Metrics>,
}

impl RunConfig {
    /// Defaults for tests and development: all namespaces, no election, no admin port.
    pub fn new(pod_namespace: impl Into<String>, operator_image: impl Into<String>) -> Self {
        Self {
            pod_namespace: pod_namespace.into(),
            pod_name: None,
            operator_image: operator_image.into(),
            watch_namespaces: Vec::new(),
            probe_concurrency: DEFAULT_PROBE_CONCURRENCY,
            // The production default: tests and `mcp-operator dev`, whose remote servers
            // listen on loopback, allow it explicitly.
            probe_destinations: DestinationPolicy::default(),
            reconcile_concurrency: DEFAULT_RECONCILE_CONCURRENCY,
            leader_election: None,
            admin_addr: None,
            service_proxy: None,
            service_addresses: None,
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// `mcp-operator run`.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = kube::Config::infer().await?;
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        let service_proxy = (!in_cluster).then(|| ServiceProxy {
            api_server: config.cluster_url.to_string(),
        });
        let client = Client::try_from(config)?;
        let identity = args
            .pod_name
            .clone()
            .unwrap_or_else(|| format!("mcp-operator-{}", uuid::Uuid::new_v4().simple()));
        let run_config = RunConfig {
            pod_namespace: args.pod_namespace.clone(),
            pod_name: args.pod_name.clone(),
            operator_image: args.operator_image.clone(),
            watch_namespaces: args.watch_namespaces.clone(),
            probe_concurrency: args.probe_concurrency,
            probe_destinations: DestinationPolicy::new(
                args.probe_denied_cidrs.0.clone(),
                args.probe_allowed_cidrs.0.clone(),
            ),
            reconcile_concurrency: args.reconcile_concurrency,
            leader_election: args
                .leader_elect
                .then(|| LeaseSettings::new(&args.pod_namespace, identity)),
            admin_addr: Some(args.admin_addr),
            service_proxy,
            service_addresses: None,
            metrics: Arc::new(Metrics::default()),
        };
        run_with(client, run_config, shutdown_signal()).await?;
        Ok(())
    })
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing in-flight reconciles");
}

/// Runs the operator until `shutdown` completes: checks the CRDs, serves the admin
/// endpoint, takes part in leader election and runs the controllers while leading.
pub async fn run_with(
    client: Client,
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    startup::check_crds(&client).await?;
    let metrics = config.metrics.clone();
    let _admin = match config.admin_addr {
        Some(addr) => {
            let (bound, task) = metrics::serve_admin(addr, metrics.clone()).await?;
            tracing::info!(%bound, "admin endpoint: /metrics /livez /readyz");
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let leader = Arc::new(AtomicBool::new(false));
    let Some(settings) = config.leader_election.clone() else {
        leader.store(true, Ordering::Release);
        metrics.set_leader(true);
        return lead(&client, &config, leader, stop_rx).await;
    };
    let election = leader::start(client.clone(), &settings).await?;
    let _mirror = AbortOnDrop(leader::mirror(election.changes.clone(), leader.clone()));
    let mut changes = election.changes;
    let mut stop = stop_rx.clone();
    let result = loop {
        metrics.set_leader(false);
        // Standby replicas have no watches to sync: they are ready to take over.
        metrics.set_ready(true);
        tokio::select! {
            r = changes.wait_for(|l| *l) => if r.is_err() { break Err(Error::Controller("leader election stopped".into())) },
            _ = stop.wait_for(|s| *s) => break Ok(()),
        }
        tracing::info!(identity = %settings.identity, "acquired the Lease: reconciling");
        metrics.set_leader(true);
        metrics.set_ready(false);
        // Stop leading when the Lease is lost or on shutdown.
        let (lead_tx, lead_rx) = watch::channel(false);
        let mut lost = changes.clone();
        let mut stop2 = stop.clone();
        let watcher = tokio::spawn(async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => {}
                _ = stop2.wait_for(|s| *s) => {}
            }
            let _ = lead_tx.send(true);
        });
        let r = lead(&client, &config, leader.clone(), lead_rx).await;
        watcher.abort();
        leader.store(*changes.borrow(), Ordering::Release);
        if let Err(e) = r {
            break Err(e);
        }
        if *stop.borrow() {
            break Ok(());
        }
        tracing::warn!(identity = %settings.identity, "lost the Lease: stopped writing");
    };
    leader.store(false, Ordering::Release);
    drop(changes);
    drop(_mirror);
    // Dropping every receiver makes the lease manager release the Lease and return.
    let _ = election.task.await;
    result
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the controllers (one per scope) until `stop` turns true; in-flight reconciles
/// finish first.
async fn lead(
    client: &Client,
    config: &RunConfig,
    leader: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let probe_token = startup::ensure_probe_token(client, &config.pod_namespace).await?;
    let events = Events::new(client.clone(), config.pod_name.clone());
    let probe_limits = ProbeLimits::new(config.probe_concurrency);
    let scopes: Vec<Option<String>> = if config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        config.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let shared = Shared {
        client: client.clone(),
        config: config.clone(),
        leader,
        events,
        probe_token,
        probe_limits,
        api_server_egress: Arc::new(ApiServerEgress::new(client.clone())),
        retries: Arc::default(),
    };
    let policy_ctx = Arc::new(PolicyContext {
        client: client.clone(),
        events: shared.events.clone(),
        metrics: config.metrics.clone(),
        leader: shared.leader.clone(),
        retries: shared.retries.clone(),
    });
    let mut controllers = Vec::new();
    let mut readiness = Vec::new();
    // The ClusterRoleBinding letting gateways review ServiceAccount tokens.
    controllers
        .push(super::token_review::run(client.clone(), scopes.clone(), stop.clone()).boxed());
    for scope in scopes {
        let (future, ready) = controller(&shared, scope.as_deref(), stop.clone());
        controllers.push(future);
        readiness.push(ready);
        let (future, ready) =
            policy::controller(policy_ctx.clone(), scope.as_deref(), stop.clone());
        controllers.push(future);
        readiness.push(ready);
    }
    let metrics = config.metrics.clone();
    let ready_task = tokio::spawn(async move {
        futures::future::join_all(readiness).await;
        metrics.set_ready(true);
    });
    futures::future::join_all(controllers).await;
    ready_task.abort();
    Ok(())
}

struct Shared {
    client: Client,
    config: RunConfig,
    leader: Arc<AtomicBool>,
    events: Events,
    probe_token: ProbeToken,
    probe_limits: ProbeLimits,
    api_server_egress: Arc<ApiServerEgress>,
    retries: Arc<super::retry::Retries>,
}

/// One McpServer controller for `ns` (None: every namespace): the future running it and
/// a future that completes once its caches have synced.
fn controller(
    shared: &Shared,
    ns: Option<&str>,
    stop: watch::Receiver<bool>,
) -> (BoxFuture<'static, ()>, BoxFuture<'static, ()>) {
    let client = &shared.client;
    let cfg = watcher::Config::default();
    let controller = Controller::new(scoped::<McpServer>(client, ns), cfg.clone())
        .with_config(controller_config(shared.config.reconcile_concurrency));
    let servers = controller.store();
    let by_policy = servers.clone();
    let by_secret = servers.clone();
    let by_binding = servers.clone();
    // The McpBinding controller of this scope; its cache also maps binding Secrets to
    // the servers they concern.
    let bindings_controller = Controller::new(scoped::<McpBinding>(client, ns), cfg.clone())
        .with_config(controller_config(shared.config.reconcile_concurrency));
    let bindings = bindings_controller.store();
    let secret_bindings = bindings.clone();
    // Children: by their McpServer ownerReference (what `owns` does) and by name, so an
    // object holding a server's child name without being its child (ChildConflict)
    // re-reconciles that server when it changes or goes away.
    let controller = controller
        .watches(
            scoped::<Deployment>(client, ns),
            cfg.clone(),
            child_trigger(servers.clone()),
        )
        .watches(
            scoped::<Service>(client, ns),
            cfg.clone(),
            child_trigger(servers.clone()),
        )
        .watches(
            scoped::<Secret>(client, ns),
            cfg.clone(),
            child_trigger(servers.clone()),
        )
        .watches(
            scoped::<ServiceAccount>(client, ns),
            cfg.clone(),
            child_trigger(servers.clone()),
        )
        .watches(
            scoped::<Role>(client, ns),
            cfg.clone(),
            child_trigger(servers.clone()),
        )
        .watches(
            scoped::<RoleBinding>(client, ns),
            cfg.clone(),
            child_trigger(servers.clone()),
        )
        .watches(
            scoped::<NetworkPolicy>(client, ns),
            cfg.clone(),
            child_trigger(servers.clone()),
        )
        // A policy change (or deletion) re-reconciles exactly the servers it targets now
        // and those it stops targeting (its previous status.targets, appliedPolicies).
        .watches(
            scoped::<McpPolicy>(client, ns),
            cfg.clone(),
            move |policy: McpPolicy| policy::affected_servers(&policy, &by_policy.state()),
        )
        // A binding change (or deletion) re-reconciles the servers it targets now and
        // those it reached before (its status.servers).
        .watches(
            scoped::<McpBinding>(client, ns),
            cfg.clone(),
            move |b: McpBinding| binding::triggers::servers_of_binding(&b, &by_binding.state()),
        )
        // A Secret a server references may appear (SecretNotFound) or change; a binding
        // Secret's token changes reach the gateways of that binding's servers.
        .watches(scoped::<Secret>(client, ns), cfg, move |secret: Secret| {
            let ns = secret.namespace();
            let name = secret.name_any();
            let servers = by_secret.state();
            let mut refs =
                binding::triggers::servers_of_secret(&secret, &secret_bindings.state(), &servers);
            refs.extend(
                servers
                    .iter()
                    .filter(|s| {
                        s.namespace() == ns && server::referenced_secret_names(s).contains(&name)
                    })
                    .map(|s| ObjectRef::from_obj(&**s)),
            );
            refs
        })
        .graceful_shutdown_on(stopped(stop.clone()));
    // Probes run in the prober's own task; a finished probe wakes its server's reconcile.
    let (prober, probed) = Prober::new(
        ProbeEnv {
            client: client.clone(),
            probe_token: shared.probe_token.clone(),
            service_proxy: shared.config.service_proxy.clone(),
            api_server_egress: shared.api_server_egress.clone(),
            probe_destinations: Arc::new(shared.config.probe_destinations.clone()),
            metrics: shared.config.metrics.clone(),
        },
        servers.clone(),
        &shared.probe_limits,
        stop.clone(),
    );
    let controller = controller.reconcile_on(probed);
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: shared.events.clone(),
        metrics: shared.config.metrics.clone(),
        leader: shared.leader.clone(),
        servers: servers.clone(),
        operator_image: shared.config.operator_image.clone(),
        probe_token: shared.probe_token.clone(),
        service_addresses: shared.config.service_addresses.clone(),
        api_server_egress: shared.api_server_egress.clone(),
        retries: shared.retries.clone(),
    });
    let bindings_run =
        binding::controller(bindings_controller, client, ns, ctx.clone(), stopped(stop));
    let run = controller
        .run(
            server::reconcile,
            server::error_policy,
            Arc::new(ServerContext {
                shared: ctx,
                prober,
            }),
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        });
    let run = futures::future::join(run, bindings_run).map(|_| ()).boxed();
    let ready = async move {
        synced(&servers).await;
        synced(&bindings).await;
    }
    .boxed();
    (run, ready)
}

/// Maps an object of a child kind to the McpServers it concerns: those named by its
/// McpServer ownerReferences, and the server (if one exists) whose child of this kind
/// would have its name ([`super::ownership::server_for_child`]).
fn child_trigger<K>(
    servers: kube::runtime::reflector::Store<McpServer>,
) -> impl Fn(K) -> Vec<ObjectRef<McpServer>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()>,
{
    move |obj: K| {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        let api_version = McpServer::api_version(&());
        let mut refs: Vec<ObjectRef<McpServer>> = obj
            .owner_references()
            .iter()
            .filter(|o| o.kind == "McpServer" && o.api_version == api_version)
            .map(|o| ObjectRef::new(&o.name).within(&ns))
            .collect();
        let name = obj.name_any();
        if let Some(server) = super::ownership::server_for_child(&K::kind(&()), &name) {
            let r = ObjectRef::new(server).within(&ns);
            if !refs.contains(&r) && servers.get(&r).is_some() {
                refs.push(r);
            }
        }
        refs
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> RunArgs {
        let mut argv = vec!["mcp-operator"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("arguments parse").run
    }

    #[test]
    fn probe_destination_flags_default_to_the_denied_ranges() {
        let args = parse(&[]);
        assert_eq!(args.probe_denied_cidrs.to_string(), DEFAULT_DENIED_CIDRS);
        assert!(args.probe_allowed_cidrs.0.is_empty());
        let args = parse(&[
            "--probe-denied-cidrs=10.0.0.0/8,fd00::/8",
            "--probe-allowed-cidrs",
            "10.1.0.0/16",
        ]);
        assert_eq!(args.probe_denied_cidrs.to_string(), "10.0.0.0/8,fd00::/8");
        assert_eq!(args.probe_allowed_cidrs.to_string(), "10.1.0.0/16");
        assert!(
            parse(&["--probe-denied-cidrs="])
                .probe_denied_cidrs
                .0
                .is_empty()
        );
        let bad = Cli::try_parse_from(["x", "--probe-denied-cidrs=10.0.0.0/33"]);
        assert!(bad.is_err());
    }

    #[test]
    fn the_shipped_manifests_carry_the_default_denied_ranges() {
        let read = |p: &str| {
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p))
                .expect("manifest readable")
        };
        let kustomize = read("config/manager/deployment.yaml");
        assert!(kustomize.contains(&format!("--probe-denied-cidrs={DEFAULT_DENIED_CIDRS}")));
        let values = read("charts/mcp-operator/values.yaml");
        let listed: Vec<&str> = values
            .split("probeDeniedCIDRs:\n")
            .nth(1)
            .expect("probeDeniedCIDRs in values.yaml")
            .lines()
            .map_while(|l| l.strip_prefix("  - "))
            .collect();
        assert_eq!(listed.join(","), DEFAULT_DENIED_CIDRS);
    }
}
