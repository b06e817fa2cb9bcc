//! McpPolicy end to end on the embedded API server: every rule's effect on the rendered
//! gateway Secret (`<server>-gateway`, `config.json`) and on status (the McpServer's and
//! the McpPolicy's), several policies combining to the strictest, policy status
//! (targets, Accepted) following refs, selectors, labels and deletions, workload rules
//! that refuse without tearing down, egress in the NetworkPolicy, and pinning (Warn,
//! Enforce, pins printed by `mcp-operator probe --pins`).
//!
//! Servers with a container render a gateway Secret but are never probed here (no pod
//! runs); remote servers with `gateway.enabled: false` are probed directly against a
//! loopback server-everything, which fills `status.tools`.

use k8s_openapi::api::{apps::v1::Deployment, networking::v1::NetworkPolicy};
use kube::api::DeleteParams;
use mcp_operator::{
    api::{McpPolicy, McpPolicyStatus, McpServerStatus, server::Phase},
    policy::glob_match,
};

use super::*;

fn memory_spec() -> Value {
    json!({
        "transport": "Stdio",
        "container": {"image": "node:22-alpine", "command": ["npx", "-y", "@modelcontextprotocol/server-memory"],
            "securityContext": {"runAsUser": 1000},
            "resources": {"limits": {"memory": "256Mi"}}},
    })
}

async fn patch_policy(client: &Client, ns: &str, name: &str, patch: Value) {
    Api::<McpPolicy>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("McpPolicy patched");
}

async fn delete_policy(client: &Client, ns: &str, name: &str) {
    Api::<McpPolicy>::namespaced(client.clone(), ns)
        .delete(name, &DeleteParams::default())
        .await
        .expect("McpPolicy deleted");
}

async fn patch_server(client: &Client, ns: &str, name: &str, patch: Value) {
    Api::<McpServer>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("McpServer patched");
}

/// Waits until policy `name`'s status (describing its current generation) satisfies `ok`.
async fn wait_policy(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&McpPolicyStatus) -> bool,
) -> McpPolicyStatus {
    let api: Api<McpPolicy> = Api::namespaced(client.clone(), ns);
    eventually(&format!("policy {ns}/{name}: {what}"), 60, || {
        let api = api.clone();
        let ok = &ok;
        async move {
            let p = api.get(name).await.ok()?;
            let status = p.status?;
            (status.observed_generation == p.metadata.generation && ok(&status)).then_some(status)
        }
    })
    .await
}

/// The policy's Accepted condition as (status, reason, message).
fn accepted(status: &McpPolicyStatus) -> (String, String, String) {
    find_condition(&status.conditions, "Accepted")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// Waits until server `name`'s status satisfies `ok`.
async fn wait_server(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&McpServerStatus) -> bool,
) -> McpServerStatus {
    eventually(&format!("server {ns}/{name}: {what}"), 60, || {
        let ok = &ok;
        async move {
            let s = get_server(client, ns, name).await;
            let status = s.status?;
            (status.observed_generation == s.metadata.generation && ok(&status)).then_some(status)
        }
    })
    .await
}

fn applied(status: &McpServerStatus) -> Vec<&str> {
    status.applied_policies.iter().map(String::as_str).collect()
}

fn condition_of<'a>(status: &'a McpServerStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
    find_condition(&status.conditions, type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
        .unwrap_or(("", "", ""))
}

#[tokio::test]
async fn targets_follow_refs_selectors_labels_and_deletions() {
    let (_api, client) = cluster().await;
    let ns = "pol-targets";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    for (name, team) in [("a", Some("x")), ("b", Some("y")), ("c", None)] {
        create_server(&client, ns, name, memory_spec()).await;
        if let Some(team) = team {
            patch_server(
                &client,
                ns,
                name,
                json!({"metadata": {"labels": {"team": team}}}),
            )
            .await;
        }
    }
    create_policy(
        &client,
        ns,
        "p",
        json!({
            "targetRefs": [{"name": "c"}, {"name": "ghost"}],
            "serverSelector": {"matchLabels": {"team": "x"}},
            "tools": {"deny": ["delete_*"]},
        }),
    )
    .await;
    let st = wait_policy(&client, ns, "p", "targets a and c", |s| {
        s.targets == ["a", "c"]
    })
    .await;
    assert_eq!(st.target_count, Some(2));
    let (status, reason, message) = accepted(&st);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Accepted"));
    assert!(
        message.contains("ghost"),
        "names the missing ref: {message}"
    );
    for server in ["a", "c"] {
        let cfg = wait_gateway(&client, ns, server, "policy p merged", |c| {
            c.policy.policies == ["p"]
        })
        .await;
        assert_eq!(cfg.policy.deny, ["delete_*"]);
        wait_server(&client, ns, server, "appliedPolicies [p]", |s| {
            applied(s) == ["p"]
        })
        .await;
    }
    let b = wait_server(&client, ns, "b", "accepted", |s| {
        condition_of(s, "Accepted").0 == "True"
    })
    .await;
    assert!(b.applied_policies.is_empty(), "b is not targeted");
    assert!(
        gateway_config(&client, ns, "b")
            .await
            .unwrap()
            .policy
            .policies
            .is_empty()
    );

    // A label change moves b into the selector.
    patch_server(
        &client,
        ns,
        "b",
        json!({"metadata": {"labels": {"team": "x"}}}),
    )
    .await;
    wait_policy(&client, ns, "p", "b joins", |s| {
        s.targets == ["a", "b", "c"]
    })
    .await;
    wait_gateway(&client, ns, "b", "policy p merged into b", |c| {
        c.policy.deny == ["delete_*"]
    })
    .await;
    wait_server(&client, ns, "b", "appliedPolicies [p]", |s| {
        applied(s) == ["p"]
    })
    .await;

    // The policy stops targeting a and b: both are re-reconciled without it.
    patch_policy(
        &client,
        ns,
        "p",
        json!({"spec": {"serverSelector": {"matchLabels": {"team": "nobody"}}}}),
    )
    .await;
    wait_policy(&client, ns, "p", "only c", |s| s.targets == ["c"]).await;
    for server in ["a", "b"] {
        wait_gateway(&client, ns, server, "policy p gone", |c| {
            c.policy.policies.is_empty() && c.policy.deny.is_empty()
        })
        .await;
        wait_server(&client, ns, server, "no applied policy", |s| {
            s.applied_policies.is_empty()
        })
        .await;
    }

    // An invalid selector is reported on the policy, naming the field.
    patch_policy(
        &client,
        ns,
        "p",
        json!({"spec": {"serverSelector": {"matchLabels": null, "matchExpressions": [{"key": "team", "operator": "Sideways"}]}}}),
    )
    .await;
    let st = wait_policy(&client, ns, "p", "InvalidSpec", |s| {
        accepted(s).0 == "False"
    })
    .await;
    let (_, reason, message) = accepted(&st);
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("spec.serverSelector.matchExpressions[0].operator"),
        "{message}"
    );
    assert_eq!(st.targets, ["c"], "targetRefs still apply");
    let note = wait_event(&client, ns, "p", "InvalidSpec").await;
    assert!(note.contains("Sideways"), "{note}");

    // Deleting a targeted server updates the targets.
    Api::<McpServer>::namespaced(client.clone(), ns)
        .delete("c", &DeleteParams::default())
        .await
        .unwrap();
    let st = wait_policy(&client, ns, "p", "no targets", |s| s.targets.is_empty()).await;
    assert_eq!(st.target_count, Some(0));

    // Deleting a policy re-reconciles the servers it targeted.
    create_policy(
        &client,
        ns,
        "q",
        json!({"targetRefs": [{"name": "a"}], "tools": {"deny": ["q_*"]}}),
    )
    .await;
    wait_gateway(&client, ns, "a", "policy q merged", |c| {
        c.policy.policies == ["q"]
    })
    .await;
    wait_policy(&client, ns, "q", "targets a", |s| s.targets == ["a"]).await;
    delete_policy(&client, ns, "q").await;
    wait_gateway(&client, ns, "a", "policy q gone", |c| {
        c.policy.policies.is_empty()
    })
    .await;
    wait_server(&client, ns, "a", "no applied policy", |s| {
        s.applied_policies.is_empty()
    })
    .await;
    operator.stop().await.expect("clean shutdown");
}

/// Waits for a first inventory of the catalogue server; returns its tool names.
async fn discovered_tools(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let s = wait_condition(client, ns, name, "ToolsDiscovered", "True", None).await;
    let tools: Vec<String> = s
        .status
        .unwrap()
        .tools
        .into_iter()
        .map(|t| t.name)
        .collect();
    for needed in ["echo", "get-sum", "get-tiny-image"] {
        assert!(
            tools.iter().any(|t| t == needed),
            "server-everything lists {needed}: {tools:?}"
        );
    }
    tools
}

/// (exposed, reason) of every tool in status.
fn exposure(status: &McpServerStatus) -> Vec<(String, bool, Option<String>)> {
    status
        .tools
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.exposed,
                t.reason
                    .map(|r| mcp_operator::policy::reason_name(r).to_owned()),
            )
        })
        .collect()
}

#[tokio::test]
async fn tool_rules_combine_in_gateway_config_and_status() {
    let peer = crate::support::server_everything("streamableHttp");
    let (_api, client) = cluster().await;
    let ns = "pol-tools";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "catalogue", remote_spec(&peer.url("/mcp"))).await;
    create_server(&client, ns, "memory", memory_spec()).await;
    let tools = discovered_tools(&client, ns, "catalogue").await;

    create_policy(
        &client,
        ns,
        "a-allow",
        json!({"serverSelector": {}, "tools": {"allow": ["echo", "get-*"]}}),
    )
    .await;
    create_policy(
        &client,
        ns,
        "b-strict",
        json!({"serverSelector": {}, "tools": {
            "allow": ["*e*"],
            "deny": ["get-tiny-image"],
            "requireGrant": ["get-sum"],
        }}),
    )
    .await;
    // Expected: deny wins; every allow list must match; requireGrant hides a tool no
    // binding grants.
    let expected = |t: &str| -> Option<&'static str> {
        let allowed = (t == "echo" || glob_match("get-*", t)) && t.contains('e');
        if t == "get-tiny-image" || !allowed {
            Some("Denied")
        } else if t == "get-sum" {
            Some("NotGranted")
        } else {
            None
        }
    };
    let status = wait_server(&client, ns, "catalogue", "both policies applied", |s| {
        applied(s) == ["a-allow", "b-strict"]
    })
    .await;
    let got = exposure(&status);
    assert_eq!(got.len(), tools.len());
    for (name, exposed, reason) in &got {
        let want = expected(name);
        assert_eq!(reason.as_deref(), want, "{name}");
        assert_eq!(*exposed, want.is_none(), "{name}");
    }
    assert!(got.iter().any(|(n, e, _)| n == "echo" && *e));
    assert!(
        got.iter()
            .filter(|(_, _, r)| r.as_deref() == Some("Denied"))
            .count()
            > 1,
        "get-tiny-image and the tools no allow list names are denied: {got:?}"
    );
    let cfg = wait_gateway(&client, ns, "memory", "both policies", |c| {
        c.policy.policies == ["a-allow", "b-strict"]
    })
    .await;
    assert_eq!(
        cfg.policy.allow,
        [
            vec!["echo".to_owned(), "get-*".to_owned()],
            vec!["*e*".to_owned()]
        ]
    );
    assert_eq!(cfg.policy.deny, ["get-tiny-image"]);
    assert_eq!(cfg.policy.require_grant, ["get-sum"]);
    for p in ["a-allow", "b-strict"] {
        let st = wait_policy(&client, ns, p, "targets both servers", |s| {
            s.targets == ["catalogue", "memory"]
        })
        .await;
        assert_eq!(st.target_count, Some(2));
        assert_eq!(accepted(&st).0, "True");
    }

    // Removing the strict policy exposes what only it hid.
    delete_policy(&client, ns, "b-strict").await;
    let status = wait_server(&client, ns, "catalogue", "one policy", |s| {
        applied(s) == ["a-allow"]
    })
    .await;
    for (name, exposed, reason) in exposure(&status) {
        let allowed = name == "echo" || glob_match("get-*", &name);
        assert_eq!(exposed, allowed, "{name}");
        assert_eq!(reason.is_some(), !allowed, "{name}");
    }
    let cfg = wait_gateway(&client, ns, "memory", "one policy", |c| {
        c.policy.policies == ["a-allow"]
    })
    .await;
    assert_eq!(cfg.policy.allow.len(), 1);
    assert!(cfg.policy.deny.is_empty() && cfg.policy.require_grant.is_empty());
    operator.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn limits_rates_and_audit_take_the_strictest() {
    let (_api, client) = cluster().await;
    let ns = "pol-limits";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "memory", memory_spec()).await;
    let cfg = wait_gateway(&client, ns, "memory", "rendered", |_| true).await;
    assert_eq!(cfg.policy.rate_limit, None, "no policy: no rate limit");
    assert_eq!(
        cfg.policy.audit.level,
        mcp_operator::api::policy::AuditLevel::Metadata
    );

    create_policy(
        &client,
        ns,
        "loose",
        json!({"targetRefs": [{"name": "memory"}],
            "rateLimit": {"requestsPerMinute": 600, "per": "Binding"},
            "limits": {"maxRequestBytes": "1Mi", "callTimeout": "30s", "maxConcurrentCalls": 32},
            "audit": {"level": "Payloads", "redactKeys": ["ssn"]}}),
    )
    .await;
    let cfg = wait_gateway(&client, ns, "memory", "loose applied", |c| {
        c.policy.policies == ["loose"]
    })
    .await;
    let rl = cfg.policy.rate_limit.unwrap();
    assert_eq!(
        (rl.requests_per_minute, rl.burst),
        (600, 100),
        "default burst rpm/6"
    );
    assert_eq!(cfg.policy.limits.max_request_bytes, Some(1 << 20));
    assert_eq!(cfg.policy.limits.call_timeout_ms, Some(30_000));
    assert_eq!(cfg.policy.limits.max_concurrent_calls, Some(32));
    assert_eq!(cfg.policy.limits.max_response_bytes, None);

    create_policy(
        &client,
        ns,
        "strict",
        json!({"serverSelector": {},
            "rateLimit": {"requestsPerMinute": 1200, "burst": 50, "per": "Server"},
            "limits": {"maxRequestBytes": "512Ki", "maxResponseBytes": "8Mi", "callTimeout": "1m"},
            "audit": {"level": "Hashes", "redactKeys": ["card"]}}),
    )
    .await;
    let cfg = wait_gateway(&client, ns, "memory", "both applied", |c| {
        c.policy.policies == ["loose", "strict"]
    })
    .await;
    let rl = cfg.policy.rate_limit.unwrap();
    assert_eq!(
        (rl.requests_per_minute, rl.burst, rl.per),
        (600, 50, mcp_operator::api::policy::RateLimitScope::Server),
        "lowest rate, lowest burst, one shared bucket"
    );
    let l = &cfg.policy.limits;
    assert_eq!(l.max_request_bytes, Some(512 * 1024));
    assert_eq!(l.max_response_bytes, Some(8 << 20));
    assert_eq!(l.call_timeout_ms, Some(30_000));
    assert_eq!(l.max_concurrent_calls, Some(32));
    assert_eq!(
        cfg.policy.audit.level,
        mcp_operator::api::policy::AuditLevel::Payloads,
        "highest audit level"
    );
    for key in ["ssn", "card", "password", "authorization"] {
        assert!(
            cfg.policy.audit.redact_keys.iter().any(|k| k == key),
            "redacts {key}: {:?}",
            cfg.policy.audit.redact_keys
        );
    }
    wait_server(&client, ns, "memory", "both applied", |s| {
        applied(s) == ["loose", "strict"]
    })
    .await;
    wait_policy(&client, ns, "strict", "targets memory", |s| {
        s.targets == ["memory"]
    })
    .await;

    // A quantity that does not parse: the policy says which field; the server refuses to
    // change and keeps its last configuration.
    let before = gateway_config(&client, ns, "memory").await.unwrap();
    patch_policy(
        &client,
        ns,
        "strict",
        json!({"spec": {"limits": {"maxRequestBytes": "lots"}}}),
    )
    .await;
    let st = wait_policy(&client, ns, "strict", "InvalidSpec", |s| {
        accepted(s).0 == "False"
    })
    .await;
    let (_, reason, message) = accepted(&st);
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("spec.limits.maxRequestBytes") && message.contains("lots"),
        "{message}"
    );
    let s = wait_server(&client, ns, "memory", "refused", |s| {
        condition_of(s, "Accepted").0 == "False"
    })
    .await;
    let (_, reason, message) = condition_of(&s, "Accepted");
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("policy strict") && message.contains("maxRequestBytes"),
        "{message}"
    );
    assert!(message.contains("keeps running"), "{message}");
    assert_eq!(gateway_config(&client, ns, "memory").await.unwrap(), before);

    // Fixed: accepted again, with the new value.
    patch_policy(
        &client,
        ns,
        "strict",
        json!({"spec": {"limits": {"maxRequestBytes": "256Ki"}}}),
    )
    .await;
    wait_policy(&client, ns, "strict", "Accepted", |s| {
        accepted(s).0 == "True"
    })
    .await;
    wait_gateway(&client, ns, "memory", "256Ki", |c| {
        c.policy.limits.max_request_bytes == Some(256 * 1024)
    })
    .await;
    wait_condition(&client, ns, "memory", "Accepted", "True", None).await;
    operator.stop().await.expect("clean shutdown");
}

/// The pins `mcp-operator probe --pins <url>` prints, as spec.pinnedTools JSON.
async fn probe_pins(url: String) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
            .args(["probe", "--pins", &url])
            .output()
            .expect("run mcp-operator probe")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml: Value = serde_yaml::from_slice(&out.stdout).expect("the pins are YAML");
    yaml["pinnedTools"].clone()
}

#[tokio::test]
async fn pinning_warn_and_enforce() {
    let peer = crate::support::server_everything("streamableHttp");
    let (_api, client) = cluster().await;
    let ns = "pol-pins";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "catalogue", remote_spec(&peer.url("/mcp"))).await;
    create_server(&client, ns, "memory", memory_spec()).await;
    discovered_tools(&client, ns, "catalogue").await;
    let s = wait_condition(&client, ns, "catalogue", "Ready", "True", None).await;
    let st = s.status.unwrap();
    assert!(
        find_condition(&st.conditions, "ToolsPinned").is_none(),
        "no pinning policy, no condition"
    );
    let echo_sha = st
        .tools
        .iter()
        .find(|t| t.name == "echo")
        .unwrap()
        .sha256
        .clone();

    // Warn: ToolsPinned=False with a Warning Event naming the tools; still Ready and
    // every tool exposed.
    create_policy(
        &client,
        ns,
        "pins",
        json!({"serverSelector": {}, "pinning": "Warn"}),
    )
    .await;
    let st = wait_server(
        &client,
        ns,
        "catalogue",
        "ToolsPinned=False Unpinned",
        |s| condition_of(s, "ToolsPinned").1 == "Unpinned",
    )
    .await;
    assert_eq!(condition_of(&st, "ToolsPinned").0, "False");
    assert_eq!(condition_of(&st, "Ready").0, "True", "Warn does not block");
    assert!(st.tools.iter().all(|t| t.exposed));
    let note = wait_event(&client, ns, "catalogue", "ToolsNotPinned").await;
    assert!(note.contains("unpinned") && note.contains("echo"), "{note}");
    assert!(note.len() <= 1024);
    wait_gateway(&client, ns, "memory", "pinning Warn", |c| {
        c.policy.pinning == mcp_operator::api::policy::PinningMode::Warn
    })
    .await;

    // One correct pin, one stale pin: Changed names the stale one.
    patch_server(
        &client,
        ns,
        "catalogue",
        json!({"spec": {"pinnedTools": [
            {"name": "echo", "sha256": echo_sha},
            {"name": "get-sum", "sha256": "0".repeat(64)},
        ]}}),
    )
    .await;
    let st = wait_server(&client, ns, "catalogue", "ToolsPinned=False Changed", |s| {
        condition_of(s, "ToolsPinned").1 == "Changed"
    })
    .await;
    let (_, _, message) = condition_of(&st, "ToolsPinned");
    assert!(
        message.contains("changed since pinned: get-sum"),
        "{message}"
    );
    assert!(!message.contains("echo"), "echo matches its pin: {message}");
    eventually(
        "a second ToolsNotPinned Event names get-sum",
        60,
        || async {
            events_for(&client, ns, "catalogue")
                .await
                .into_iter()
                .any(|(r, n)| r == "ToolsNotPinned" && n.contains("changed since pinned: get-sum"))
                .then_some(())
        },
    )
    .await;

    // Enforce: the stale and unpinned tools are refused, Ready=False until pins match.
    patch_policy(&client, ns, "pins", json!({"spec": {"pinning": "Enforce"}})).await;
    let st = wait_server(&client, ns, "catalogue", "Ready=False Changed", |s| {
        let (status, reason, _) = condition_of(s, "Ready");
        status == "False" && reason == "Changed"
    })
    .await;
    for (name, exposed, reason) in exposure(&st) {
        let want = match name.as_str() {
            "echo" => None,
            "get-sum" => Some("Changed"),
            _ => Some("Unpinned"),
        };
        assert_eq!(reason.as_deref(), want, "{name}");
        assert_eq!(exposed, want.is_none(), "{name}");
    }
    assert_ne!(st.phase, Some(Phase::Ready));
    let cfg = wait_gateway(&client, ns, "memory", "pinning Enforce", |c| {
        c.policy.pinning == mcp_operator::api::policy::PinningMode::Enforce
    })
    .await;
    assert!(cfg.pinned_tools.is_empty(), "memory has no pins of its own");

    // A reviewer pastes what `probe --pins` prints: pinned, Ready again.
    let pins = probe_pins(peer.url("/mcp")).await;
    assert_eq!(pins.as_array().map(Vec::len), Some(st.tools.len()));
    patch_server(
        &client,
        ns,
        "catalogue",
        json!({"spec": {"pinnedTools": pins}}),
    )
    .await;
    let st = wait_server(&client, ns, "catalogue", "pinned and Ready", |s| {
        condition_of(s, "ToolsPinned").0 == "True" && condition_of(s, "Ready").0 == "True"
    })
    .await;
    assert!(st.tools.iter().all(|t| t.exposed && t.reason.is_none()));
    assert_eq!(st.phase, Some(Phase::Ready));

    // Pinning off again: the condition goes away.
    delete_policy(&client, ns, "pins").await;
    wait_server(&client, ns, "catalogue", "no ToolsPinned", |s| {
        find_condition(&s.conditions, "ToolsPinned").is_none()
    })
    .await;
    operator.stop().await.expect("clean shutdown");
}

async fn deployment(client: &Client, ns: &str, name: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

fn mcp_image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .find(|c| c.name == "mcp")
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn workload_rules_refuse_without_tearing_down() {
    let (_api, client) = cluster().await;
    let ns = "pol-workload";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());

    // Running before the policy exists.
    create_server(&client, ns, "memory", memory_spec()).await;
    make_available(&client, ns, "memory").await;
    wait_condition(&client, ns, "memory", "Available", "True", None).await;
    let running = deployment(&client, ns, "memory").await.unwrap();

    create_policy(
        &client,
        ns,
        "images",
        json!({"targetRefs": [{"name": "memory"}], "workload": {"allowedImages": ["ghcr.io/acme/*"]}}),
    )
    .await;
    let s = wait_condition(
        &client,
        ns,
        "memory",
        "Accepted",
        "False",
        Some("PolicyViolation"),
    )
    .await;
    let st = s.status.unwrap();
    let (_, _, message) = condition_of(&st, "Accepted");
    assert!(
        message.contains("policy images") && message.contains("workload.allowedImages"),
        "names policy and rule: {message}"
    );
    assert!(
        message.contains("Deployment memory keeps running"),
        "says what still runs: {message}"
    );
    assert_eq!(condition_of(&st, "Ready").1, "PolicyViolation");
    assert_eq!(st.phase, Some(Phase::Failed));
    let note = wait_event(&client, ns, "memory", "PolicyViolation").await;
    assert!(note.contains("workload.allowedImages"), "{note}");
    wait_policy(&client, ns, "images", "targets memory", |s| {
        s.targets == ["memory"]
    })
    .await;

    // While refused, spec changes do not reach the running Deployment.
    patch_server(&client, ns, "memory", json!({"spec": {"replicas": 2}})).await;
    wait_server(
        &client,
        ns,
        "memory",
        "still refused at the new generation",
        |s| condition_of(s, "Accepted").1 == "PolicyViolation",
    )
    .await;
    let kept = deployment(&client, ns, "memory")
        .await
        .expect("not torn down");
    assert_eq!(kept.metadata.uid, running.metadata.uid);
    assert_eq!(kept.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(mcp_image(&kept), "node:22-alpine");

    // Governance still reaches the running gateway: a new deny lands in its config,
    // while the refused spec's own gateway fields (toolPrefix) do not.
    patch_server(
        &client,
        ns,
        "memory",
        json!({"spec": {"toolPrefix": "mem_"}}),
    )
    .await;
    create_policy(
        &client,
        ns,
        "no-delete",
        json!({"targetRefs": [{"name": "memory"}], "tools": {"deny": ["delete_*"]}}),
    )
    .await;
    let refreshed = wait_gateway(
        &client,
        ns,
        "memory",
        "deny reaches the running gateway",
        |c| c.policy.deny.iter().any(|d| d == "delete_*"),
    )
    .await;
    assert_eq!(
        refreshed.tool_prefix, "",
        "the refused spec's prefix is not rendered"
    );
    wait_server(&client, ns, "memory", "still refused", |s| {
        condition_of(s, "Accepted").1 == "PolicyViolation"
    })
    .await;
    delete_policy(&client, ns, "no-delete").await;
    wait_gateway(
        &client,
        ns,
        "memory",
        "deny lifted on the running gateway",
        |c| c.policy.deny.is_empty(),
    )
    .await;
    patch_server(&client, ns, "memory", json!({"spec": {"toolPrefix": null}})).await;

    // Fixing the spec rolls it out.
    patch_server(
        &client,
        ns,
        "memory",
        json!({"spec": {"container": {"image": "ghcr.io/acme/memory:1"}}}),
    )
    .await;
    wait_condition(&client, ns, "memory", "Accepted", "True", None).await;
    eventually("Deployment updated", 60, || async {
        let d = deployment(&client, ns, "memory").await?;
        (mcp_image(&d) == "ghcr.io/acme/memory:1" && d.spec.as_ref()?.replicas == Some(2))
            .then_some(())
    })
    .await;

    // Every other workload rule refuses a new server, which is never deployed.
    let rules = [
        (
            "digest",
            json!({"requireDigest": true}),
            json!({}),
            "workload.requireDigest",
        ),
        (
            "nonroot",
            json!({"requireNonRoot": true}),
            json!({"container": {"securityContext": {"runAsUser": 0}}}),
            "workload.requireNonRoot",
        ),
        (
            "memory-cap",
            json!({"maxMemory": "128Mi"}),
            json!({}),
            "workload.maxMemory",
        ),
        (
            "replicas-cap",
            json!({"maxReplicas": 2}),
            json!({"replicas": 3}),
            "workload.maxReplicas",
        ),
    ];
    for (name, workload, patch, _) in &rules {
        // The policy first, so the server is refused from its first reconcile.
        create_policy(
            &client,
            ns,
            &format!("{name}-rule"),
            json!({"targetRefs": [{"name": name}], "workload": workload}),
        )
        .await;
        let mut spec = memory_spec();
        json_patch::merge(&mut spec, patch);
        create_server(&client, ns, name, spec).await;
    }
    for (name, _, _, rule) in &rules {
        let s = wait_condition(
            &client,
            ns,
            name,
            "Accepted",
            "False",
            Some("PolicyViolation"),
        )
        .await;
        let st = s.status.unwrap();
        let (_, _, message) = condition_of(&st, "Accepted");
        assert!(
            message.contains(&format!("policy {name}-rule")) && message.contains(rule),
            "{message}"
        );
        assert!(!message.contains("keeps running"), "nothing ran: {message}");
        assert_eq!(st.phase, Some(Phase::Failed));
        assert!(
            deployment(&client, ns, name).await.is_none(),
            "{name} is not deployed"
        );
    }

    // Deleting a refused server removes what it left running.
    Api::<McpServer>::namespaced(client.clone(), ns)
        .delete("memory", &DeleteParams::default())
        .await
        .unwrap();
    eventually("memory's Deployment garbage-collected", 60, || async {
        deployment(&client, ns, "memory")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    operator.stop().await.expect("clean shutdown");
}

/// (types, egress rules as (cidr or "*", ports)) of the server's NetworkPolicy.
async fn egress_of(
    client: &Client,
    ns: &str,
    name: &str,
) -> Option<(Vec<String>, Vec<(String, Vec<String>)>)> {
    let np = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let spec = np.spec?;
    let rules = spec
        .egress
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let to =
                r.to.and_then(|t| {
                    t.first()
                        .and_then(|p| p.ip_block.as_ref())
                        .map(|b| b.cidr.clone())
                })
                .unwrap_or_else(|| "*".into());
            let ports = r
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    let port = match p.port {
                        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                            n.to_string()
                        }
                        other => format!("{other:?}"),
                    };
                    format!("{}/{port}", p.protocol.unwrap_or_default())
                })
                .collect();
            (to, ports)
        })
        .collect();
    Some((spec.policy_types.unwrap_or_default(), rules))
}

async fn wait_egress(
    client: &Client,
    ns: &str,
    name: &str,
    types: &[&str],
    rules: &[(&str, &[&str])],
) {
    let want_types: Vec<String> = types.iter().map(|s| s.to_string()).collect();
    let want_rules: Vec<(String, Vec<String>)> = rules
        .iter()
        .map(|(c, p)| (c.to_string(), p.iter().map(|s| s.to_string()).collect()))
        .collect();
    let want = (want_types, want_rules);
    crate::support::eventually::eventually(
        &format!("NetworkPolicy {ns}/{name} to be {want:?}"),
        Duration::from_secs(60),
        async || {
            let got = egress_of(client, ns, name).await;
            if got.as_ref() == Some(&want) {
                Ok(())
            } else {
                Err(got)
            }
        },
    )
    .await
}

#[tokio::test]
async fn egress_follows_the_policies() {
    let (_api, client) = cluster().await;
    let ns = "pol-egress";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "memory", memory_spec()).await;
    wait_egress(&client, ns, "memory", &["Ingress"], &[]).await;

    create_policy(
        &client,
        ns,
        "https",
        json!({"serverSelector": {}, "egress": {"allowDns": true, "to": [{"cidr": "10.0.0.0/8", "ports": [443]}]}}),
    )
    .await;
    let dns: &[&str] = &["UDP/53", "TCP/53"];
    wait_egress(
        &client,
        ns,
        "memory",
        &["Ingress", "Egress"],
        &[("*", dns), ("10.0.0.0/8", &["TCP/443"])],
    )
    .await;

    // A second policy narrows: destinations intersect, DNS only if both allow it.
    create_policy(
        &client,
        ns,
        "internal",
        json!({"targetRefs": [{"name": "memory"}], "egress": {"allowDns": false, "to": [{"cidr": "10.1.0.0/16"}]}}),
    )
    .await;
    wait_egress(
        &client,
        ns,
        "memory",
        &["Ingress", "Egress"],
        &[("10.1.0.0/16", &["TCP/443"])],
    )
    .await;

    // Changing one policy's egress changes the NetworkPolicy.
    patch_policy(
        &client,
        ns,
        "https",
        json!({"spec": {"egress": {"to": [{"cidr": "10.0.0.0/8", "ports": [443, 5432]}]}}}),
    )
    .await;
    wait_egress(
        &client,
        ns,
        "memory",
        &["Ingress", "Egress"],
        &[("10.1.0.0/16", &["TCP/443", "TCP/5432"])],
    )
    .await;

    // Removing egress from one policy, then deleting the other, lifts the restriction.
    patch_policy(&client, ns, "internal", json!({"spec": {"egress": null}})).await;
    wait_egress(
        &client,
        ns,
        "memory",
        &["Ingress", "Egress"],
        &[("*", dns), ("10.0.0.0/8", &["TCP/443", "TCP/5432"])],
    )
    .await;
    delete_policy(&client, ns, "https").await;
    wait_egress(&client, ns, "memory", &["Ingress"], &[]).await;
    wait_policy(&client, ns, "internal", "targets memory", |s| {
        s.targets == ["memory"]
    })
    .await;

    // Settled with a policy in place: the two controllers do not wake each other.
    super::binding::assert_settles(&operator).await;
    operator.stop().await.expect("clean shutdown");
}
