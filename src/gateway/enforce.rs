//! Policy enforcement on tools: the per-principal decision (via
//! [`EffectivePolicy::binding_decision`](crate::policy::EffectivePolicy::binding_decision)),
//! the `toolPrefix` in both directions, `tools/list` result rewriting, and the cache of
//! tool definition hashes that pinning needs at call time (filled from every `tools/list`
//! response that passes through, and by the proxy's own `tools/list` on a miss).

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::Value;

use super::live::LiveConfig;
use super::principal::Principal;
use super::refusal::{Refusal, Rule};
use crate::api::policy::PinningMode;
use crate::prober::inventory::tool_sha256;

/// Definition hashes of the upstream's tools, by upstream (unprefixed) name.
#[derive(Default)]
pub struct ToolDefinitions {
    hashes: RwLock<HashMap<String, String>>,
}

/// Bounds the cache: a server with more tools than this is re-listed on misses.
const MAX_CACHED_TOOLS: usize = 10_000;

impl ToolDefinitions {
    pub fn get(&self, name: &str) -> Option<String> {
        self.hashes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Records the hashes of a `tools/list` page.
    pub fn record(&self, entries: impl IntoIterator<Item = (String, String)>) {
        let mut map = self.hashes.write().unwrap_or_else(|e| e.into_inner());
        for (name, hash) in entries {
            if map.len() < MAX_CACHED_TOOLS || map.contains_key(&name) {
                map.insert(name, hash);
            }
        }
    }

    /// Forgets everything (the server said its tool list changed).
    pub fn clear(&self) {
        self.hashes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Whether pinning needs definition hashes under this config.
pub fn needs_hashes(config: &LiveConfig) -> bool {
    config.file.policy.pinning == PinningMode::Enforce
}

/// The decision for one tool (upstream name) and principal. Probes see everything.
pub fn decide(
    config: &LiveConfig,
    principal: &Principal,
    tool: &str,
    sha256: &str,
) -> Result<(), Rule> {
    let policy = &config.file.policy;
    let pins = &config.file.pinned_tools;
    let decision = match principal {
        Principal::Probe => Ok(()),
        Principal::Anonymous => policy.server_decision(pins, tool, sha256),
        Principal::Binding(b) => policy.binding_decision(pins, &b.access, tool, sha256),
    };
    decision.map_err(Rule::from_hidden)
}

/// The refusal of a call to `tool` (the name the caller used) under `rule`.
pub fn call_refusal(rule: Rule, exposed_name: &str) -> Refusal {
    let why = match rule {
        Rule::Denied => "a policy or the binding denies it",
        Rule::NotGranted => "a policy requires a grant and the binding does not grant it",
        Rule::Unpinned => "pinning is enforced and the tool has no pin",
        Rule::Changed => "pinning is enforced and the tool's definition differs from its pin",
        _ => "refused",
    };
    Refusal::new(
        rule,
        format!(
            "tool {exposed_name:?} is not available: {} ({why})",
            rule.as_str()
        ),
    )
    .with_tool(exposed_name)
}

/// The upstream name for a name the caller used, or None when the caller's name lacks
/// the prefix (such names do not exist for the caller). Probes use upstream names.
pub fn strip_prefix<'a>(
    config: &LiveConfig,
    principal: &Principal,
    exposed: &'a str,
) -> Option<&'a str> {
    let prefix = config.file.tool_prefix.as_str();
    if prefix.is_empty() || matches!(principal, Principal::Probe) {
        return Some(exposed);
    }
    exposed.strip_prefix(prefix).filter(|n| !n.is_empty())
}

/// Whether a caller's `tools/list` may differ from another caller's under this config:
/// some rule can hide a tool (from bindings; the probe sees every tool), or a prefix
/// renames them (for bindings; the probe sees the server's names).
pub fn lists_differ_by_caller(config: &LiveConfig) -> bool {
    let p = &config.file.policy;
    let narrowed = config.file.bindings.iter().any(|b| {
        b.access
            .narrowing
            .as_ref()
            .is_some_and(|n| !n.allow.is_empty() || !n.deny.is_empty())
    });
    !config.file.tool_prefix.is_empty()
        || !p.deny.is_empty()
        || !p.allow.is_empty()
        || !p.require_grant.is_empty()
        || p.pinning == PinningMode::Enforce
        || narrowed
}

/// Marks a `tools/list` result `cacheScope: private` (the 2026-07-28 caching hint: reuse
/// only within the same authorization context) when the list is per caller
/// ([`lists_differ_by_caller`]), whatever the upstream said: a shared cache would show
/// one caller's tools to another. Only modern results carry the field (the request was
/// modern, or the result has caching fields); `ttlMs` stays the upstream's. Returns
/// whether the result changed.
pub fn mark_private(result: &mut Value, config: &LiveConfig, modern: bool) -> bool {
    let has_fields = result.get("cacheScope").is_some() || result.get("ttlMs").is_some();
    if !(modern || has_fields) || !lists_differ_by_caller(config) || !result.is_object() {
        return false;
    }
    if result.get("cacheScope").and_then(Value::as_str) == Some("private") {
        return false;
    }
    result["cacheScope"] = Value::String("private".into());
    true
}

/// Whether a JSON-RPC result is a `tools/list` result.
pub fn is_tools_list_result(result: &Value) -> bool {
    result
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| tools.iter().all(|t| t.get("name").is_some()))
}

/// Filters and prefixes a `tools/list` result in place for `principal`, recording the
/// definition hashes. Returns whether anything changed.
pub fn rewrite_tools_list(
    result: &mut Value,
    config: &LiveConfig,
    principal: &Principal,
    definitions: &ToolDefinitions,
) -> bool {
    let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
        return false;
    };
    let hashing = needs_hashes(config);
    let mut seen = Vec::new();
    let before = tools.len();
    tools.retain(|tool| {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        let hash = if hashing {
            let h = tool_sha256(tool);
            seen.push((name.to_owned(), h.clone()));
            h
        } else {
            String::new()
        };
        decide(config, principal, name, &hash).is_ok()
    });
    definitions.record(seen);
    let prefix = &config.file.tool_prefix;
    let prefixing = !prefix.is_empty() && !matches!(principal, Principal::Probe);
    if prefixing {
        for tool in tools.iter_mut() {
            if let Some(Value::String(name)) = tool.get_mut("name") {
                name.insert_str(0, prefix);
            }
        }
    }
    prefixing || tools.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::server::PinnedTool;
    use crate::gateway::config::{BindingConfig, GatewayConfig};
    use crate::policy::ToolAccess;
    use serde_json::json;
    use std::sync::Arc;

    fn live(prefix: &str) -> LiveConfig {
        let mut file = GatewayConfig {
            tool_prefix: prefix.into(),
            ..Default::default()
        };
        file.policy.deny = vec!["delete_*".into()];
        file.policy.require_grant = vec!["create_*".into()];
        LiveConfig::compile(file, None)
    }

    fn binding(grants: &[&str]) -> Principal {
        Principal::Binding(Arc::new(BindingConfig {
            name: "b".into(),
            token_sha256: vec![],
            access: ToolAccess {
                narrowing: None,
                grants: grants.iter().map(|s| s.to_string()).collect(),
            },
            service_accounts: vec![],
        }))
    }

    #[test]
    fn list_is_filtered_and_prefixed_per_principal() {
        let c = live("p_");
        let defs = ToolDefinitions::default();
        let list =
            json!({"tools": [{"name": "echo"}, {"name": "delete_all"}, {"name": "create_x"}]});
        let mut r = list.clone();
        assert!(rewrite_tools_list(&mut r, &c, &binding(&[]), &defs));
        assert_eq!(r, json!({"tools": [{"name": "p_echo"}]}));
        let mut r = list.clone();
        rewrite_tools_list(&mut r, &c, &binding(&["create_x"]), &defs);
        assert_eq!(
            r,
            json!({"tools": [{"name": "p_echo"}, {"name": "p_create_x"}]})
        );
        let mut r = list.clone();
        assert!(!rewrite_tools_list(&mut r, &c, &Principal::Probe, &defs));
        assert_eq!(r, list);
    }

    #[test]
    fn prefix_is_required_and_stripped() {
        let c = live("p_");
        let b = binding(&[]);
        assert_eq!(strip_prefix(&c, &b, "p_echo"), Some("echo"));
        assert_eq!(strip_prefix(&c, &b, "echo"), None);
        assert_eq!(strip_prefix(&c, &b, "p_"), None);
        assert_eq!(strip_prefix(&c, &Principal::Probe, "echo"), Some("echo"));
    }

    #[test]
    fn pinning_uses_hashes() {
        let mut file = GatewayConfig::default();
        file.policy.pinning = PinningMode::Enforce;
        let tool = json!({"name": "echo", "inputSchema": {"type": "object"}});
        file.pinned_tools = vec![PinnedTool {
            name: "echo".into(),
            sha256: tool_sha256(&tool),
        }];
        let c = LiveConfig::compile(file, None);
        let defs = ToolDefinitions::default();
        let mut r = json!({"tools": [tool, {"name": "other"}]});
        rewrite_tools_list(&mut r, &c, &Principal::Anonymous, &defs);
        assert_eq!(r["tools"].as_array().unwrap().len(), 1);
        let h = defs.get("echo").unwrap();
        assert_eq!(decide(&c, &Principal::Anonymous, "echo", &h), Ok(()));
        assert_eq!(
            decide(&c, &Principal::Anonymous, "echo", "00"),
            Err(Rule::Changed)
        );
        assert_eq!(
            decide(
                &c,
                &Principal::Anonymous,
                "other",
                &defs.get("other").unwrap()
            ),
            Err(Rule::Unpinned)
        );
    }
}
