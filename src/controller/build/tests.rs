//! Tests of the builders: golden files of every McpServer in examples/, the restricted
//! profile on every built pod, and one test per rule.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;

use super::deployment::{BRIDGE_BINARY, GATEWAY_CONTAINER, MCP_CONTAINER};
use super::*;
use crate::api::McpPolicy;
use crate::api::policy::EgressRule;
use crate::gateway::config::{GatewayConfig, token_sha256};

const IMAGE: &str = "ghcr.io/mcp-operator/mcp-operator:test";

fn examples() -> (Vec<McpServer>, Vec<McpPolicy>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let (mut servers, mut policies): (Vec<McpServer>, Vec<McpPolicy>) = (Vec::new(), Vec::new());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).unwrap();
            match value.get("kind").and_then(|k| k.as_str()) {
                Some("McpServer") => servers.push(serde_yaml::from_value(value).unwrap()),
                Some("McpPolicy") => policies.push(serde_yaml::from_value(value).unwrap()),
                _ => {}
            }
        }
    }
    for (i, s) in servers.iter_mut().enumerate() {
        s.metadata.namespace = Some("agents".into());
        s.metadata.uid = Some(format!("00000000-0000-0000-0000-{:012}", i + 1));
    }
    (servers, policies)
}

use serde::Deserialize as _;

/// Whether a policy targets a server (targetRefs, or a selector by matchLabels).
fn targets(policy: &McpPolicy, server: &McpServer) -> bool {
    let name = server.metadata.name.as_deref().unwrap_or("");
    if policy.spec.target_refs.iter().any(|r| r.name == name) {
        return true;
    }
    let Some(sel) = &policy.spec.server_selector else {
        return false;
    };
    let labels = server.metadata.labels.clone().unwrap_or_default();
    sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        && sel
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v))
}

fn context_for(server: &McpServer, policies: &[McpPolicy]) -> BuildContext {
    let applied: Vec<(&str, &McpPolicySpec)> = policies
        .iter()
        .filter(|p| targets(p, server))
        .map(|p| (p.metadata.name.as_deref().unwrap(), &p.spec))
        .collect();
    let mut ctx = BuildContext::new(IMAGE).with_policies(&applied).unwrap();
    ctx.probe_token_sha256 = vec![token_sha256("probe-token")];
    ctx
}

/// The built objects as one YAML-able value, the gateway config decoded.
fn view(d: &Desired) -> Value {
    let Desired {
        deployment,
        service,
        gateway_secret,
        service_account,
        role,
        role_binding,
        network_policy,
        url,
    } = d;
    let mut secret = serde_json::to_value(gateway_secret).unwrap();
    if let Some(data) = gateway_secret.as_ref().and_then(|s| s.data.as_ref()) {
        let decoded: BTreeMap<&String, Value> = data
            .iter()
            .map(|(k, v)| (k, serde_json::from_slice(&v.0).unwrap()))
            .collect();
        secret.as_object_mut().unwrap().remove("data");
        secret["decodedData"] = serde_json::to_value(decoded).unwrap();
    }
    serde_json::json!({
        "url": url,
        "serviceAccount": service_account,
        "role": role,
        "roleBinding": role_binding,
        "gatewaySecret": secret,
        "networkPolicy": network_policy,
        "deployment": deployment,
        "service": service,
    })
}

#[test]
fn golden_files_of_the_examples() {
    let (servers, policies) = examples();
    assert!(
        servers.len() >= 7,
        "examples/ has {} McpServers",
        servers.len()
    );
    for server in &servers {
        let ctx = context_for(server, &policies);
        let desired = desired(server, &ctx).unwrap();
        let name = server.metadata.name.clone().unwrap();
        insta::assert_yaml_snapshot!(name, view(&desired));
    }
}

#[test]
fn examples_meet_the_baseline_workload_rules() {
    let (servers, policies) = examples();
    for server in &servers {
        let applied: Vec<(&str, &McpPolicySpec)> = policies
            .iter()
            .filter(|p| targets(p, server))
            .map(|p| (p.metadata.name.as_deref().unwrap(), &p.spec))
            .collect();
        assert!(!applied.is_empty());
        let v = crate::controller::policy_rules::workload_violations(server, &applied);
        assert!(v.is_empty(), "{:?}: {v:?}", server.metadata.name);
    }
}

fn pod(d: &Desired) -> &PodSpec {
    d.deployment
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn container<'a>(d: &'a Desired, name: &str) -> &'a Container {
    pod(d).containers.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn every_example_pod_meets_the_restricted_profile() {
    let (servers, policies) = examples();
    for server in &servers {
        let d = desired(server, &context_for(server, &policies)).unwrap();
        let Some(_) = d.deployment else { continue };
        let spec = pod(&d);
        security::check_restricted(spec)
            .unwrap_or_else(|p| panic!("{:?}: {p:?}", server.metadata.name));
        assert_eq!(spec.automount_service_account_token, Some(false));
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_owned()][..]),
                "{}",
                c.name
            );
            if c.name != MCP_CONTAINER {
                assert_eq!(sc.run_as_user, Some(security::OPERATOR_UID));
                assert_eq!(sc.read_only_root_filesystem, Some(true));
            }
            // Only the gateway (or a server given its own ServiceAccount) sees a token.
            let token = c
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == deployment::API_ACCESS_DIR);
            assert_eq!(token, c.name == GATEWAY_CONTAINER, "{}", c.name);
        }
        assert_eq!(
            spec.security_context
                .as_ref()
                .unwrap()
                .seccomp_profile
                .as_ref()
                .unwrap()
                .type_,
            "RuntimeDefault"
        );
    }
}

fn build(yaml: &str) -> Result<Desired, BuildError> {
    desired(&server(yaml), &BuildContext::new(IMAGE))
}

fn server(spec: &str) -> McpServer {
    serde_yaml::from_str(&format!(
        "apiVersion: mcp-operator.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: s, namespace: ns, uid: u-1}}\nspec: {spec}"
    ))
    .unwrap()
}

fn args(c: &Container) -> Vec<&str> {
    c.args.iter().flatten().map(String::as_str).collect()
}

#[test]
fn stdio_runs_the_bridge_and_the_gateway_forwards_to_it() {
    let d = build(
        "{transport: Stdio, container: {image: img, command: [npx, -y, pkg], args: [stdio]}}",
    )
    .unwrap();
    let mcp = container(&d, MCP_CONTAINER);
    assert_eq!(
        mcp.command.as_deref(),
        Some(&[BRIDGE_BINARY.to_owned()][..])
    );
    assert_eq!(
        args(mcp),
        [
            "bridge",
            "--listen",
            "127.0.0.1:8081",
            "--session-mode",
            "Shared",
            "--warm-pool",
            "1",
            "--",
            "npx",
            "-y",
            "pkg",
            "stdio"
        ]
    );
    let gw = container(&d, GATEWAY_CONTAINER);
    assert_eq!(
        args(gw),
        [
            "gateway",
            "--config",
            "/etc/mcp-operator/gateway/config.json",
            "--listen",
            "0.0.0.0:8080",
            "--upstream",
            "http://127.0.0.1:8081/mcp",
            "--upstream-transport",
            "StreamableHttp",
            "--log-format",
            "json"
        ]
    );
    let init = &pod(&d).init_containers.as_ref().unwrap()[0];
    assert_eq!(args(init), ["install-bridge", "/opt/mcp-operator/bin"]);
    assert_eq!(init.image.as_deref(), Some(IMAGE));
    assert_eq!(d.url.as_deref(), Some("http://s.ns.svc:8080/mcp"));
}

#[test]
fn bridge_moves_off_the_gateway_port() {
    let d = build("{transport: Stdio, sessionMode: PerSession, warmPool: 3, gateway: {port: 8081}, container: {image: img, command: [x]}}").unwrap();
    let a = args(container(&d, MCP_CONTAINER));
    assert_eq!(
        &a[..7],
        [
            "bridge",
            "--listen",
            "127.0.0.1:8082",
            "--session-mode",
            "PerSession",
            "--warm-pool",
            "3"
        ]
    );
    assert!(args(container(&d, GATEWAY_CONTAINER)).contains(&"http://127.0.0.1:8082/mcp"));
    assert_eq!(d.url.as_deref(), Some("http://s.ns.svc:8081/mcp"));
}

#[test]
fn http_servers_keep_their_command_and_get_the_right_upstream() {
    let d = build("{transport: StreamableHttp, container: {image: img, port: 3000}}").unwrap();
    let mcp = container(&d, MCP_CONTAINER);
    assert_eq!(mcp.command, None, "image entrypoint");
    assert_eq!(mcp.args, None);
    assert!(
        pod(&d).init_containers.is_none(),
        "no bridge for Http transports"
    );
    assert!(args(container(&d, GATEWAY_CONTAINER)).contains(&"http://127.0.0.1:3000/mcp"));

    let d = build(
        "{transport: Sse, container: {image: img, command: [node], args: [s.js], port: 3001}}",
    )
    .unwrap();
    let mcp = container(&d, MCP_CONTAINER);
    assert_eq!(mcp.command.as_deref(), Some(&["node".to_owned()][..]));
    let gw = args(container(&d, GATEWAY_CONTAINER));
    let i = gw.iter().position(|a| *a == "--upstream").unwrap();
    assert_eq!(
        &gw[i..i + 4],
        [
            "--upstream",
            "http://127.0.0.1:3001/sse",
            "--upstream-transport",
            "Sse"
        ]
    );
}

#[test]
fn credentials_reach_mcp_only() {
    let d = build("{transport: Stdio, container: {image: img, command: [x], env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: s, key: k}}}], envFrom: [{secretRef: {name: all}}]}}").unwrap();
    let mcp = container(&d, MCP_CONTAINER);
    assert_eq!(mcp.env.as_ref().unwrap()[0].name, "TOKEN");
    assert!(mcp.env_from.is_some());
    let gw = container(&d, GATEWAY_CONTAINER);
    let names: Vec<_> = gw.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["POD_NAME", "POD_NAMESPACE"]);
    assert!(gw.env_from.is_none());
    assert!(
        !mcp.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == deployment::GATEWAY_CONFIG_VOLUME)
    );
}

#[test]
fn remote_with_gateway_passes_headers_and_ca_by_reference() {
    let d = build(
        "{transport: StreamableHttp, remote: {url: 'https://x.example/mcp', headersFrom: [{name: Authorization, prefix: 'Bearer ', valueFrom: {secretKeyRef: {name: tok, key: token}}}], tls: {caSecretRef: {name: ca, key: root.pem}}}}",
    )
    .unwrap();
    let spec = pod(&d);
    assert_eq!(spec.containers.len(), 1);
    assert!(spec.init_containers.is_none());
    let gw = &spec.containers[0];
    let env = gw
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "MCP_UPSTREAM_HEADER_0")
        .unwrap();
    let r = env
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!((r.name.as_str(), r.key.as_str()), ("tok", "token"));
    assert!(args(gw).contains(&"https://x.example/mcp"));
    let ca = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == deployment::UPSTREAM_CA_VOLUME)
        .unwrap();
    let item = &ca.secret.as_ref().unwrap().items.as_ref().unwrap()[0];
    assert_eq!(
        (item.key.as_str(), item.path.as_str()),
        ("root.pem", "ca.crt")
    );
    let config = config_of(&d);
    assert_eq!(
        config.upstream.headers[0].value_from_env,
        "MCP_UPSTREAM_HEADER_0"
    );
    assert_eq!(config.upstream.headers[0].prefix, "Bearer ");
    assert_eq!(
        config.upstream.ca_file.as_deref(),
        Some("/etc/mcp-operator/upstream-ca/ca.crt")
    );
    assert_eq!(d.url.as_deref(), Some("http://s.ns.svc:8080/mcp"));
}

#[test]
fn remote_without_gateway_builds_nothing() {
    let d = build(
        "{transport: Sse, remote: {url: 'https://x.example/sse'}, gateway: {enabled: false}}",
    )
    .unwrap();
    assert!(d.children().is_empty());
    assert_eq!(d.url.as_deref(), Some("https://x.example/sse"));
    assert_eq!(
        d,
        Desired {
            url: d.url.clone(),
            ..Desired::default()
        }
    );
}

fn config_of(d: &Desired) -> GatewayConfig {
    let secret = d.gateway_secret.as_ref().unwrap();
    let bytes = &secret.data.as_ref().unwrap()["config.json"].0;
    GatewayConfig::parse(std::str::from_utf8(bytes).unwrap()).unwrap()
}

#[test]
fn gateway_config_is_complete_and_deterministic() {
    let mut ctx = BuildContext::new(IMAGE);
    let h = |s: &str| token_sha256(s);
    ctx.bindings = vec![
        crate::gateway::config::BindingConfig {
            name: "zeta".into(),
            token_sha256: vec![h("z")],
            ..Default::default()
        },
        crate::gateway::config::BindingConfig {
            name: "alpha".into(),
            token_sha256: vec![h("a")],
            ..Default::default()
        },
    ];
    ctx.probe_token_sha256 = vec![h("p2"), h("p1"), h("p2")];
    let s = server(
        "{transport: Stdio, toolPrefix: mem_, pinnedTools: [{name: echo, sha256: abc}], gateway: {auth: None}, container: {image: img, command: [x]}}",
    );
    let d = desired(&s, &ctx).unwrap();
    let c = config_of(&d);
    assert_eq!(
        (c.server.name.as_str(), c.server.namespace.as_str()),
        ("s", "ns")
    );
    assert_eq!(c.auth, crate::api::server::GatewayAuth::None);
    assert_eq!(c.tool_prefix, "mem_");
    assert_eq!(c.pinned_tools[0].name, "echo");
    let names: Vec<_> = c.bindings.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(c.probe_token_sha256.len(), 2);
    let secret = d.gateway_secret.as_ref().unwrap();
    assert_eq!(secret.metadata.name.as_deref(), Some("s-gateway"));
    assert_eq!(secret.type_.as_deref(), Some(gateway_secret::SECRET_TYPE));
    ctx.bindings.reverse();
    assert_eq!(
        desired(&s, &ctx).unwrap(),
        d,
        "binding order does not matter"
    );
}

#[test]
fn service_affinity_depends_on_replicas() {
    let affinity = |replicas: i32| {
        let d = build(&format!(
            "{{transport: Stdio, replicas: {replicas}, container: {{image: img, command: [x]}}}}"
        ))
        .unwrap();
        let spec = d.service.unwrap().spec.unwrap();
        let port = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(port.app_protocol.as_deref(), Some("mcp"));
        assert_eq!(port.name.as_deref(), Some("mcp"));
        spec.session_affinity.unwrap()
    };
    assert_eq!(affinity(1), "None");
    assert_eq!(affinity(2), "ClientIP");
}

#[test]
fn network_policy_egress_follows_the_policies() {
    let s = server("{transport: Stdio, container: {image: img, command: [x]}}");
    let np = |ctx: &BuildContext| {
        desired(&s, ctx)
            .unwrap()
            .network_policy
            .unwrap()
            .spec
            .unwrap()
    };
    let open = np(&BuildContext::new(IMAGE));
    assert_eq!(
        open.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );
    assert!(open.egress.is_none());
    let ingress = &open.ingress.as_ref().unwrap()[0];
    assert!(ingress.from.is_none());
    assert_eq!(
        ingress.ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(8080))
    );

    let policy: McpPolicySpec =
        serde_yaml::from_str("{egress: {allowDns: true, to: [{cidr: 10.0.0.0/8, ports: [443]}]}}")
            .unwrap();
    let mut ctx = BuildContext::new(IMAGE)
        .with_policies(&[("p", &policy)])
        .unwrap();
    ctx.api_server_egress = vec![EgressRule {
        cidr: "172.20.0.1/32".into(),
        ports: vec![6443],
    }];
    let narrow = np(&ctx);
    assert_eq!(
        narrow.policy_types.as_ref().unwrap(),
        &["Ingress", "Egress"]
    );
    let egress = narrow.egress.unwrap();
    assert_eq!(egress.len(), 3, "{egress:?}");
    assert!(egress[0].to.is_none(), "DNS to anywhere");
    let protos: Vec<_> = egress[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.protocol.clone().unwrap())
        .collect();
    assert_eq!(protos, ["UDP", "TCP"]);
    assert_eq!(
        egress[1].to.as_ref().unwrap()[0]
            .ip_block
            .as_ref()
            .unwrap()
            .cidr,
        "10.0.0.0/8"
    );
    assert_eq!(
        egress[2].to.as_ref().unwrap()[0]
            .ip_block
            .as_ref()
            .unwrap()
            .cidr,
        "172.20.0.1/32"
    );

    let no_dns: McpPolicySpec = serde_yaml::from_str("{egress: {allowDns: false}}").unwrap();
    let ctx = BuildContext::new(IMAGE)
        .with_policies(&[("p", &no_dns)])
        .unwrap();
    assert_eq!(np(&ctx).egress, Some(vec![]), "deny all egress");
}

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

#[test]
fn user_service_account_replaces_the_operators() {
    let d = build(
        "{transport: Stdio, container: {image: img, command: [x], serviceAccountName: k8s-reader}}",
    )
    .unwrap();
    assert!(d.service_account.is_none());
    assert_eq!(pod(&d).service_account_name.as_deref(), Some("k8s-reader"));
    let subject = &d.role_binding.as_ref().unwrap().subjects.as_ref().unwrap()[0];
    assert_eq!(subject.name, "k8s-reader");
    // The user asked for API access for the server: it gets the token too.
    assert!(
        container(&d, MCP_CONTAINER)
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == deployment::API_ACCESS_DIR)
    );
    let kinds: Vec<_> = d.children().into_iter().map(|(k, _)| k).collect();
    assert!(!kinds.contains(&"ServiceAccount"));

    let d = build("{transport: Stdio, container: {image: img, command: [x]}}").unwrap();
    let sa = d.service_account.as_ref().unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert_eq!(
        d.children(),
        [
            ("ServiceAccount", "s".to_owned()),
            ("Role", "s-gateway".to_owned()),
            ("RoleBinding", "s-gateway".to_owned()),
            ("Secret", "s-gateway".to_owned()),
            ("NetworkPolicy", "s".to_owned()),
            ("Deployment", "s".to_owned()),
            ("Service", "s".to_owned()),
        ]
    );
    for (kind, _) in d.children() {
        assert!(CHILD_KINDS.contains(&kind));
    }
    let role = d.role.unwrap();
    let rules = role.rules.unwrap();
    let groups: Vec<_> = rules
        .iter()
        .flat_map(|r| r.api_groups.clone().unwrap())
        .collect();
    assert_eq!(groups, ["", "events.k8s.io"]);
    assert!(rules.iter().all(|r| r.verbs == ["create", "patch"]));
}

#[test]
fn children_are_labelled_and_owned() {
    let d = build("{transport: Stdio, container: {image: img, command: [x]}}").unwrap();
    let metas = [
        &d.deployment.as_ref().unwrap().metadata,
        &d.service.as_ref().unwrap().metadata,
        &d.gateway_secret.as_ref().unwrap().metadata,
        &d.service_account.as_ref().unwrap().metadata,
        &d.role.as_ref().unwrap().metadata,
        &d.role_binding.as_ref().unwrap().metadata,
        &d.network_policy.as_ref().unwrap().metadata,
    ];
    for meta in metas {
        assert_eq!(meta.labels.as_ref(), Some(&labels::labels("s")));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("u-1", Some(true), Some(true))
        );
    }
}

#[test]
fn broken_specs_are_refused_with_a_reason() {
    let cases = [
        (
            "{transport: Stdio, container: {image: img, command: [x], securityContext: {privileged: true}}}",
            "InvalidSpec",
            "securityContext.privileged",
        ),
        (
            "{transport: Stdio, container: {image: img, command: [x], podSecurityContext: {runAsUser: 0}}}",
            "InvalidSpec",
            "runAsUser",
        ),
        (
            "{transport: Stdio, container: {image: img, command: [x], volumes: [{name: mcp-operator-bin, emptyDir: {}}]}}",
            "InvalidSpec",
            "used by the operator",
        ),
        (
            "{transport: Stdio, container: {image: img, command: [x], volumes: [{name: opt, emptyDir: {}}], volumeMounts: [{name: opt, mountPath: /opt}]}}",
            "InvalidSpec",
            "hide the bridge",
        ),
        (
            "{transport: Stdio, container: {image: img, command: [x], volumes: [{name: h, hostPath: {path: /var}}]}}",
            "InvalidSpec",
            "hostPath",
        ),
        (
            "{transport: Stdio, container: {image: img}}",
            "InvalidSpec",
            "spec.container.command",
        ),
        (
            "{transport: Stdio, container: {image: img, command: [x]}, gateway: {enabled: false}}",
            "InvalidSpec",
            "gateway.enabled",
        ),
        (
            "{transport: StreamableHttp, container: {image: img, port: 8080}}",
            "InvalidSpec",
            "gateway's port",
        ),
        ("{transport: StreamableHttp}", "InvalidSpec", "exactly one"),
    ];
    for (spec, reason, text) in cases {
        let e = build(spec).unwrap_err();
        assert_eq!(e.reason(), reason, "{spec}: {e}");
        assert!(e.to_string().contains(text), "{spec}: {e}");
    }
    let mut s = server("{transport: Stdio, container: {image: img, command: [x]}}");
    s.metadata.uid = None;
    assert_eq!(
        desired(&s, &BuildContext::new(IMAGE)).unwrap_err().reason(),
        "BuildFailed"
    );
    assert!(
        desired(
            &server("{transport: Stdio, container: {image: img, command: [x]}}"),
            &BuildContext::default()
        )
        .is_err()
    );
}
