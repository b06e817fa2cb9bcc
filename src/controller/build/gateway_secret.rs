//! The Secret `<server>-gateway`: the gateway's configuration file (key `config.json`),
//! the JSON form of [`GatewayConfig`]. It holds no credential: bindings and probe tokens
//! appear as SHA-256 hashes, upstream headers as names of the gateway's environment
//! variables (filled from the user's Secrets by the Deployment).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::{BuildContext, BuildError, Target, Workload, labels};
use crate::gateway::config::{
    CONFIG_KEY, GatewayConfig, ServerIdentity, UpstreamConfig, UpstreamHeader,
};

/// Type of the gateway Secret (immutable once created: do not change it).
pub const SECRET_TYPE: &str = "mcp-operator.dev/gateway-config";
/// The remote server's CA bundle inside the gateway container.
pub const UPSTREAM_CA_FILE: &str = "/etc/mcp-operator/upstream-ca/ca.crt";

/// The gateway's environment variable holding `remote.headersFrom[index]`.
pub fn upstream_header_env(index: usize) -> String {
    format!("MCP_UPSTREAM_HEADER_{index}")
}

/// The gateway configuration for the server. Bindings are sorted by name and probe
/// hashes sorted and deduplicated, so the rendered file only changes when its content does.
pub(crate) fn gateway_config(target: &Target<'_>, ctx: &BuildContext) -> GatewayConfig {
    let mut bindings = ctx.bindings.clone();
    bindings.sort_by(|a, b| a.name.cmp(&b.name));
    let mut probe = ctx.probe_token_sha256.clone();
    probe.sort();
    probe.dedup();
    GatewayConfig {
        server: ServerIdentity {
            name: target.name.to_owned(),
            namespace: target.namespace.to_owned(),
            uid: target.owner.uid.clone(),
        },
        auth: target.gateway.auth,
        probe_token_sha256: probe,
        tool_prefix: target.spec.tool_prefix.clone(),
        pinned_tools: target.spec.pinned_tools.clone(),
        policy: ctx.policy.clone(),
        bindings,
        upstream: upstream(target),
        allowed_hosts: service_names(target),
        allowed_origins: Vec::new(),
    }
}

/// The names the gateway is addressed by in the cluster: its Service's DNS names (the
/// gateway refuses other `Host` names than these, `localhost` and IP literals).
fn service_names(target: &Target<'_>) -> Vec<String> {
    let (svc, ns) = (target.name, target.namespace);
    vec![
        svc.to_owned(),
        format!("{svc}.{ns}"),
        format!("{svc}.{ns}.svc"),
        format!("{svc}.{ns}.svc.cluster.local"),
    ]
}

fn upstream(target: &Target<'_>) -> UpstreamConfig {
    let Workload::Remote(remote) = target.workload else {
        return UpstreamConfig::default();
    };
    let tls = remote.tls.clone().unwrap_or_default();
    UpstreamConfig {
        headers: remote
            .headers_from
            .iter()
            .enumerate()
            .map(|(i, h)| UpstreamHeader {
                name: h.name.clone(),
                prefix: h.prefix.clone(),
                value_from_env: upstream_header_env(i),
            })
            .collect(),
        ca_file: tls.ca_secret_ref.map(|_| UPSTREAM_CA_FILE.to_owned()),
        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
    }
}

/// The Secret `<server>-gateway`.
pub(crate) fn gateway_secret(
    target: &Target<'_>,
    ctx: &BuildContext,
) -> Result<Secret, BuildError> {
    let config = gateway_config(target, ctx);
    let json =
        serde_json::to_vec_pretty(&config).map_err(|e| BuildError::GatewayConfig(e.to_string()))?;
    Ok(Secret {
        metadata: labels::child_meta(target.gateway_secret_name(), target),
        type_: Some(SECRET_TYPE.into()),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), ByteString(json))])),
        ..Secret::default()
    })
}
