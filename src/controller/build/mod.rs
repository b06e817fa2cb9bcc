//! Pure builders: an McpServer (+ its effective policy, bindings and operator settings) →
//! the Kubernetes objects that should exist for it. No client, no I/O, no clock: the
//! same input always gives the same objects, so the runtime can compare them with what is
//! stored and apply only what differs, and golden files pin them down.
//!
//! Layout: [`labels`] labels, selectors, owner reference · [`deployment`] the server pod
//! (install-bridge init container, `mcp`, `gateway`) · [`service`] · [`gateway_secret`]
//! the gateway's configuration file · [`rbac`] ServiceAccount, Role, RoleBinding ·
//! [`network_policy`] · [`security`] the restricted Pod Security profile and the checks
//! of user security settings against it. Workload rules of policies live in
//! [`crate::controller::policy_rules`], checked before building.

pub mod deployment;
pub mod gateway_secret;
pub mod labels;
pub mod network_policy;
pub mod rbac;
pub mod security;
pub mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::policy_rules::{EffectiveEgress, merge_egress};
use crate::api::McpPolicySpec;
use crate::api::policy::EgressRule;
use crate::api::server::{
    ContainerSpec, GatewaySpec, McpServer, McpServerSpec, RemoteSpec, Transport,
};
use crate::gateway::config::BindingConfig;
use crate::policy::{EffectivePolicy, PolicyError};

/// Environment variable of the operator naming its own image (used for the
/// `install-bridge` init container and the `gateway` sidecar).
pub const OPERATOR_IMAGE_ENV: &str = "MCP_OPERATOR_IMAGE";

/// Kinds [`desired`] can produce. The reconcile reads, applies and prunes children by kind
/// and name (`server::dereference`), never by listing a label selector.
pub const CHILD_KINDS: &[&str] = &[
    "Deployment",
    "Service",
    "Secret",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
];

/// Everything besides the McpServer itself that decides its objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildContext {
    /// The operator's own image (`MCP_OPERATOR_IMAGE`): install-bridge and gateway.
    pub operator_image: String,
    /// Every McpPolicy targeting the server, merged (the gateway's view).
    pub policy: EffectivePolicy,
    /// Merged egress rules of those policies; None = no policy restricts egress.
    pub egress: Option<EffectiveEgress>,
    /// The server's consumers, from McpBindings (sorted by name when rendered).
    pub bindings: Vec<BindingConfig>,
    /// SHA-256 (hex) of the operator's probe tokens.
    pub probe_token_sha256: Vec<String>,
    /// Extra egress allowed when `egress` is set, so the gateway can reach the API server
    /// (Events, TokenReview) under a narrow policy: one host rule per address of the
    /// `kubernetes` Service's EndpointSlices (or Endpoints) with their ports, and its
    /// ClusterIP ([`crate::controller::api_server_egress`]). Empty when they cannot be read.
    pub api_server_egress: Vec<EgressRule>,
}

impl BuildContext {
    /// A context with the operator image and no policy, binding or probe token.
    pub fn new(operator_image: impl Into<String>) -> Self {
        Self {
            operator_image: operator_image.into(),
            ..Self::default()
        }
    }

    /// Sets `policy` and `egress` from the policies (name, spec) targeting the server.
    pub fn with_policies(
        mut self,
        policies: &[(&str, &McpPolicySpec)],
    ) -> Result<Self, PolicyError> {
        self.policy = EffectivePolicy::merge(policies.iter().copied())?;
        self.egress = merge_egress(policies);
        Ok(self)
    }
}

/// The objects that should exist for one McpServer. None = must not exist (prune it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub deployment: Option<Deployment>,
    pub service: Option<Service>,
    /// `<server>-gateway`, key `config.json`.
    pub gateway_secret: Option<Secret>,
    /// None also when the user names their own (spec.container.serviceAccountName).
    pub service_account: Option<ServiceAccount>,
    pub role: Option<Role>,
    pub role_binding: Option<RoleBinding>,
    pub network_policy: Option<NetworkPolicy>,
    /// status.url: the gateway's in-cluster URL, or the remote URL without a gateway.
    pub url: Option<String>,
}

impl Desired {
    /// (kind, name) of every wanted object, in apply order.
    pub fn children(&self) -> Vec<(&'static str, String)> {
        fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
            meta.name.clone().unwrap_or_default()
        }
        let Desired {
            deployment,
            service,
            gateway_secret,
            service_account,
            role,
            role_binding,
            network_policy,
            url: _,
        } = self;
        let mut out = Vec::new();
        if let Some(o) = service_account {
            out.push(("ServiceAccount", name(&o.metadata)));
        }
        if let Some(o) = role {
            out.push(("Role", name(&o.metadata)));
        }
        if let Some(o) = role_binding {
            out.push(("RoleBinding", name(&o.metadata)));
        }
        if let Some(o) = gateway_secret {
            out.push(("Secret", name(&o.metadata)));
        }
        if let Some(o) = network_policy {
            out.push(("NetworkPolicy", name(&o.metadata)));
        }
        if let Some(o) = deployment {
            out.push(("Deployment", name(&o.metadata)));
        }
        if let Some(o) = service {
            out.push(("Service", name(&o.metadata)));
        }
        out
    }
}

/// Why no objects could be built. Every variant but `MissingMetadata` is the user's to
/// fix: report it as Accepted=False with [`BuildError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the McpServer has no {field} (objects read from the API server always do)")]
    MissingMetadata { field: &'static str },
    #[error("{field}: {message}")]
    InvalidSpec { field: String, message: String },
    #[error(
        "{field}: {message}; server pods run under the restricted Pod Security profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted)"
    )]
    PodSecurity { field: String, message: String },
    #[error("cannot render the gateway configuration: {0}")]
    GatewayConfig(String),
}

impl BuildError {
    /// The condition reason (Accepted=False) and metric label of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            BuildError::InvalidSpec { .. } | BuildError::PodSecurity { .. } => "InvalidSpec",
            BuildError::MissingMetadata { .. } | BuildError::GatewayConfig(_) => "BuildFailed",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError::InvalidSpec {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn pod_security(field: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError::PodSecurity {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Port of the bridge on loopback, unless the gateway already uses it.
pub const BRIDGE_PORT: i32 = 8081;
/// The bridge's port when the gateway listens on [`BRIDGE_PORT`].
pub const BRIDGE_PORT_ALT: i32 = 8082;

/// How the server runs: in the pod, or elsewhere behind the gateway.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Workload<'a> {
    Container(&'a ContainerSpec),
    Remote(&'a RemoteSpec),
}

/// What the gateway forwards to.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    pub url: String,
    /// Legacy HTTP+SSE: `--upstream-transport Sse`.
    pub sse: bool,
    /// Stdio: the bridge's loopback port.
    pub bridge_port: Option<i32>,
}

/// A server with a pod, its facts resolved once (names, ports, upstream).
#[derive(Clone, Debug)]
pub(crate) struct Target<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub owner: OwnerReference,
    pub spec: &'a McpServerSpec,
    pub workload: Workload<'a>,
    pub gateway: GatewaySpec,
    pub upstream: Upstream,
    /// The pod's ServiceAccount: the user's, or `<server>`.
    pub service_account: String,
    /// Whether the user named the ServiceAccount (then the operator creates none).
    pub user_service_account: bool,
}

impl<'a> Target<'a> {
    fn new(
        server: &'a McpServer,
        name: &'a str,
        namespace: &'a str,
        workload: Workload<'a>,
        gateway: GatewaySpec,
    ) -> Result<Self, BuildError> {
        let spec = &server.spec;
        let owner = labels::owner_reference(server)?;
        let upstream = upstream(spec, workload, gateway.port)?;
        let user_sa = match workload {
            Workload::Container(c) => c.service_account_name.clone().filter(|s| !s.is_empty()),
            Workload::Remote(_) => None,
        };
        Ok(Target {
            name,
            namespace,
            owner,
            spec,
            workload,
            upstream,
            service_account: user_sa.clone().unwrap_or_else(|| name.to_owned()),
            user_service_account: user_sa.is_some(),
            gateway,
        })
    }

    pub fn gateway_secret_name(&self) -> String {
        format!("{}-gateway", self.name)
    }
}

fn upstream(
    spec: &McpServerSpec,
    workload: Workload<'_>,
    gateway_port: i32,
) -> Result<Upstream, BuildError> {
    match (workload, spec.transport) {
        (Workload::Remote(_), Transport::Stdio) => Err(BuildError::invalid(
            "spec.transport",
            "Stdio cannot be used with spec.remote: a remote server is reached over HTTP",
        )),
        (Workload::Remote(r), t) => Ok(Upstream {
            url: r.url.clone(),
            sse: t == Transport::Sse,
            bridge_port: None,
        }),
        (Workload::Container(c), Transport::Stdio) => {
            if c.command.is_empty() {
                return Err(BuildError::invalid(
                    "spec.container.command",
                    "transport Stdio needs the command that starts the stdio server",
                ));
            }
            let port = if gateway_port == BRIDGE_PORT {
                BRIDGE_PORT_ALT
            } else {
                BRIDGE_PORT
            };
            Ok(Upstream {
                url: format!("http://127.0.0.1:{port}/mcp"),
                sse: false,
                bridge_port: Some(port),
            })
        }
        (Workload::Container(c), t) => {
            let port = c.port.ok_or_else(|| {
                BuildError::invalid(
                    "spec.container.port",
                    "transport StreamableHttp or Sse needs the port the server listens on",
                )
            })?;
            if port == gateway_port {
                return Err(BuildError::invalid(
                    "spec.container.port",
                    format!(
                        "port {port} is the gateway's port (spec.gateway.port): both listen in the same pod"
                    ),
                ));
            }
            let sse = t == Transport::Sse;
            let path = c
                .path
                .clone()
                .unwrap_or_else(|| if sse { "/sse" } else { "/mcp" }.to_owned());
            Ok(Upstream {
                url: format!("http://127.0.0.1:{port}{path}"),
                sse,
                bridge_port: None,
            })
        }
    }
}

/// The objects that should exist for `server`.
pub fn desired(server: &McpServer, ctx: &BuildContext) -> Result<Desired, BuildError> {
    let name = server
        .metadata
        .name
        .as_deref()
        .ok_or(BuildError::MissingMetadata {
            field: "metadata.name",
        })?;
    let namespace = server
        .metadata
        .namespace
        .as_deref()
        .ok_or(BuildError::MissingMetadata {
            field: "metadata.namespace",
        })?;
    let spec = &server.spec;
    let gateway = spec.gateway.clone().unwrap_or_default();
    let workload = match (&spec.container, &spec.remote) {
        (Some(c), None) => Workload::Container(c),
        (None, Some(r)) => Workload::Remote(r),
        _ => {
            return Err(BuildError::invalid(
                "spec",
                "set exactly one of spec.container or spec.remote",
            ));
        }
    };
    if !gateway.enabled {
        return match workload {
            Workload::Remote(r) => Ok(Desired {
                url: Some(r.url.clone()),
                ..Desired::default()
            }),
            Workload::Container(_) => Err(BuildError::invalid(
                "spec.gateway.enabled",
                "false is only for remote servers; a server run in the cluster is always fronted by its gateway",
            )),
        };
    }
    if ctx.operator_image.is_empty() {
        return Err(BuildError::MissingMetadata {
            field: "operator image (MCP_OPERATOR_IMAGE)",
        });
    }
    let target = Target::new(server, name, namespace, workload, gateway)?;
    let deployment = deployment::deployment(&target, ctx)?;
    security::check_restricted(
        deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("the builder always sets a pod spec"),
    )
    .map_err(|problems| BuildError::pod_security("pod", problems.join("; ")))?;
    let (role, role_binding) = rbac::role_and_binding(&target);
    Ok(Desired {
        url: Some(format!(
            "http://{name}.{namespace}.svc:{}/mcp",
            target.gateway.port
        )),
        deployment: Some(deployment),
        service: Some(service::service(&target)),
        gateway_secret: Some(gateway_secret::gateway_secret(&target, ctx)?),
        service_account: (!target.user_service_account).then(|| rbac::service_account(&target)),
        role: Some(role),
        role_binding: Some(role_binding),
        network_policy: Some(network_policy::network_policy(&target, ctx)),
    })
}

#[cfg(test)]
mod tests;
