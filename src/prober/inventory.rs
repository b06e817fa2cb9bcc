//! [`ToolInventory`]: what a probe saw, shaped exactly like the McpServer status fields
//! (`serverInfo`, `capabilities`, counts, `tools`, `toolsTruncated`, `toolsDigest`).
//! Pure: canonical JSON, hashing and truncation; no I/O.
//!
//! Hash definitions (stable contract — pins in manifests depend on them):
//! - **Per-tool `sha256`**: lowercase hex SHA-256 of the *canonical JSON* of the object
//!   `{name, description, inputSchema, annotations}` taken from the tool as listed. Fields
//!   that are absent or `null` are omitted (never written as `null`). The description is
//!   the full, uncut one.
//! - **Canonical JSON**: object keys sorted by byte order at every depth, array order kept,
//!   no whitespace, strings and numbers as `serde_json` writes them.
//! - **`toolsDigest`**: lowercase hex SHA-256 of the per-tool hashes of *all* listed tools
//!   (also those past the 128 kept in `tools`), sorted ascending and joined by `\n` with no
//!   trailing newline. An empty list hashes the empty string.
//!
//! Bounds (a hostile server must not be able to make status too large to write): at most
//! [`MAX_TOOLS`] tools; names cut to [`MAX_NAME_CHARS`] ([`cut_name`]), descriptions to
//! [`MAX_DESCRIPTION_CHARS`], `serverInfo` fields to their own limits
//! ([`bound_server_info`]). A cut string ends with [`CUT_MARK`] (a cut name with the mark
//! and a short hash of the full name). Hashes and the digest always use the full strings.

use serde::{Deserialize, Serialize};

pub use crate::api::server_status::{ServerCapabilities, ServerInfo};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// At most this many tools are kept in [`ToolInventory::tools`].
pub const MAX_TOOLS: usize = 128;
/// Tool names are cut to this many characters (the MCP spec's maximum tool name length).
pub const MAX_NAME_CHARS: usize = 128;
/// Descriptions in [`ToolSummary`] are cut to this many characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Server instructions are cut to this many bytes (on a character boundary).
pub const MAX_INSTRUCTIONS_BYTES: usize = 1024;
/// `serverInfo.name` is cut to this many characters.
pub const MAX_SERVER_NAME_CHARS: usize = 128;
/// `serverInfo.version` is cut to this many characters.
pub const MAX_SERVER_VERSION_CHARS: usize = 64;
/// The negotiated protocol version is cut to this many characters (known versions are 10).
pub const MAX_PROTOCOL_VERSION_CHARS: usize = 32;
/// Marks a string that was cut (the last character of a cut string; a cut tool name ends
/// with it followed by [`NAME_HASH_CHARS`] hex digits of the full name's SHA-256).
pub const CUT_MARK: char = '…';
/// Hex digits of the full name's SHA-256 kept at the end of a cut tool name, so that
/// names that differ only after the cut stay distinct.
pub const NAME_HASH_CHARS: usize = 8;

/// One tool as kept in status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSummary {
    /// The tool name, cut to [`MAX_NAME_CHARS`] (see [`cut_name`]).
    pub name: String,
    /// The server's name was longer than [`MAX_NAME_CHARS`] and `name` is cut: such a
    /// tool cannot be pinned (pins hold names of at most 128 characters).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub name_truncated: bool,
    /// Description cut to 200 characters; empty when the tool has none.
    #[serde(default)]
    pub description: String,
    /// Per-tool hash (see the module docs).
    pub sha256: String,
}

/// Everything one successful probe learned about a server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolInventory {
    /// Identity and negotiated protocol version.
    pub server_info: ServerInfo,
    /// Declared capabilities.
    pub capabilities: ServerCapabilities,
    /// Number of tools listed (all of them, also past [`MAX_TOOLS`]).
    pub tool_count: u32,
    /// Number of resources listed.
    pub resource_count: u32,
    /// Number of prompts listed.
    pub prompt_count: u32,
    /// Up to [`MAX_TOOLS`] tools sorted by name.
    pub tools: Vec<ToolSummary>,
    /// More tools were listed than `tools` holds.
    pub tools_truncated: bool,
    /// Digest over every tool hash (see the module docs).
    pub tools_digest: String,
}

impl ToolInventory {
    /// Builds the inventory from raw `tools/list` entries (JSON objects with at least `name`).
    /// Every server-supplied string is cut here (see [`bound_server_info`] and
    /// `summarize`); hashes are computed over the full, uncut definitions. Tools whose
    /// (cut) names repeat are listed once: `tools` is a map keyed by name in status.
    pub fn from_tools(
        server_info: ServerInfo,
        capabilities: ServerCapabilities,
        tools: &[Value],
        resource_count: usize,
        prompt_count: usize,
    ) -> Self {
        let server_info = bound_server_info(server_info);
        let mut summaries: Vec<ToolSummary> = tools.iter().map(summarize).collect();
        summaries.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.sha256.cmp(&b.sha256)));
        let tools_digest = digest(summaries.iter().map(|t| t.sha256.as_str()));
        let tool_count = summaries.len();
        summaries.dedup_by(|later, first| later.name == first.name);
        summaries.truncate(MAX_TOOLS);
        let tools_truncated = tool_count > summaries.len();
        ToolInventory {
            server_info,
            capabilities,
            tool_count: saturating_u32(tool_count),
            resource_count: saturating_u32(resource_count),
            prompt_count: saturating_u32(prompt_count),
            tools: summaries,
            tools_truncated,
            tools_digest,
        }
    }

    /// The tool named `name`, if it is among the kept tools.
    pub fn tool(&self, name: &str) -> Option<&ToolSummary> {
        self.tools
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.tools[i])
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One `tools/list` entry as kept: name and description cut, hash over the full entry.
fn summarize(tool: &Value) -> ToolSummary {
    let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
    let description = tool
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let cut = cut_name(name);
    ToolSummary {
        name_truncated: cut.len() != name.len(),
        name: cut,
        description: cut_chars(description, MAX_DESCRIPTION_CHARS),
        sha256: tool_sha256(tool),
    }
}

/// `serverInfo` with every field cut to its limit.
pub fn bound_server_info(info: ServerInfo) -> ServerInfo {
    ServerInfo {
        name: cut_chars(&info.name, MAX_SERVER_NAME_CHARS),
        version: cut_chars(&info.version, MAX_SERVER_VERSION_CHARS),
        protocol_version: cut_chars(&info.protocol_version, MAX_PROTOCOL_VERSION_CHARS),
        instructions: cut_bytes(&info.instructions, MAX_INSTRUCTIONS_BYTES),
        era: info.era,
        supported_versions: super::era::bound_versions(&info.supported_versions),
    }
}

/// `s` when it has at most `max` characters; else its first `max - 1` characters and
/// [`CUT_MARK`].
pub fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().nth(max).is_none() {
        return s.to_owned();
    }
    let mut out = truncate_chars(s, max.saturating_sub(1)).to_owned();
    out.push(CUT_MARK);
    out
}

/// `s` when it has at most `max` bytes; else its longest prefix that leaves room for
/// [`CUT_MARK`] within `max` bytes, and the mark. Cut on a character boundary.
pub fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut out = truncate_bytes(s, max.saturating_sub(CUT_MARK.len_utf8())).to_owned();
    out.push(CUT_MARK);
    out
}

/// A tool name for status: unchanged up to [`MAX_NAME_CHARS`] characters; a longer one
/// becomes its first characters, [`CUT_MARK`] and [`NAME_HASH_CHARS`] hex digits of the
/// SHA-256 of the full name — [`MAX_NAME_CHARS`] characters in all, and distinct for
/// names that share their first characters.
pub fn cut_name(name: &str) -> String {
    if name.chars().nth(MAX_NAME_CHARS).is_none() {
        return name.to_owned();
    }
    let keep = MAX_NAME_CHARS - 1 - NAME_HASH_CHARS;
    let hash = sha256_hex(name.as_bytes());
    format!(
        "{}{CUT_MARK}{}",
        truncate_chars(name, keep),
        &hash[..NAME_HASH_CHARS]
    )
}

/// The per-tool hash of a `tools/list` entry (see the module docs).
pub fn tool_sha256(tool: &Value) -> String {
    let mut hashed = Map::new();
    for key in ["annotations", "description", "inputSchema", "name"] {
        match tool.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                hashed.insert(key.to_owned(), v.clone());
            }
        }
    }
    sha256_hex(canonical_json(&Value::Object(hashed)).as_bytes())
}

/// The `toolsDigest` of a set of per-tool hashes, in any order.
pub fn digest<'a>(hashes: impl IntoIterator<Item = &'a str>) -> String {
    let mut sorted: Vec<&str> = hashes.into_iter().collect();
    sorted.sort_unstable();
    sha256_hex(sorted.join("\n").as_bytes())
}

/// Canonical JSON: keys sorted at every depth, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    // `Value`'s Display writes compact JSON and cannot fail.
    sorted(value).to_string()
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The first `max` characters of `s`.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn tools() -> Vec<Value> {
        vec![
            json!({"name": "echo", "description": "Echoes", "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}}),
            json!({"name": "add", "description": "Adds", "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}, "annotations": {"readOnlyHint": true}}),
            json!({"name": "zap", "inputSchema": {"type": "object"}}),
        ]
    }

    fn inventory(tools: &[Value]) -> ToolInventory {
        ToolInventory::from_tools(
            ServerInfo::default(),
            ServerCapabilities::default(),
            tools,
            0,
            0,
        )
    }

    #[test]
    fn hashes_are_pinned_golden_values() {
        // Changing these breaks every pinnedTools list in the wild: don't, or bump the API.
        let t = json!({"name": "zap", "inputSchema": {"type": "object"}});
        assert_eq!(
            canonical_json(&t),
            r#"{"inputSchema":{"type":"object"},"name":"zap"}"#
        );
        assert_eq!(
            tool_sha256(&t),
            sha256_hex(br#"{"inputSchema":{"type":"object"},"name":"zap"}"#)
        );
        assert_eq!(
            digest([]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn other_fields_and_nulls_do_not_count() {
        let a = json!({"name": "x", "inputSchema": {}, "title": "T", "_meta": {"k": 1}, "annotations": null});
        let b = json!({"name": "x", "inputSchema": {}});
        assert_eq!(tool_sha256(&a), tool_sha256(&b));
    }

    #[test]
    fn tool_order_and_key_order_do_not_change_anything() {
        let forward = inventory(&tools());
        let mut reversed_tools = tools();
        reversed_tools.reverse();
        // Same content with keys written in a different order.
        let reordered: Vec<Value> = reversed_tools
            .iter()
            .map(|t| serde_json::from_str(&reverse_keys(t).to_string()).unwrap())
            .collect();
        assert_eq!(forward, inventory(&reordered));
        assert_eq!(
            forward
                .tools
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["add", "echo", "zap"]
        );
    }

    fn reverse_keys(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reverse_keys(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(reverse_keys).collect()),
            o => o.clone(),
        }
    }

    #[test]
    fn a_changed_description_changes_exactly_that_tool() {
        let before = inventory(&tools());
        let mut changed = tools();
        changed[0]["description"] = json!("Echoes, and also exfiltrates");
        let after = inventory(&changed);
        for (b, a) in before.tools.iter().zip(&after.tools) {
            assert_eq!(b.sha256 == a.sha256, b.name != "echo", "{}", b.name);
        }
        assert_ne!(before.tools_digest, after.tools_digest);
    }

    #[test]
    fn truncation_keeps_counts_and_digest_over_everything() {
        let many: Vec<Value> = (0..200)
            .map(|i| json!({"name": format!("t{i:03}"), "description": "é".repeat(300), "inputSchema": {}}))
            .collect();
        let inv = ToolInventory::from_tools(
            ServerInfo {
                instructions: "ü".repeat(1000),
                ..Default::default()
            },
            ServerCapabilities::default(),
            &many,
            3,
            4,
        );
        assert_eq!(inv.tool_count, 200);
        assert_eq!(inv.tools.len(), MAX_TOOLS);
        assert!(inv.tools_truncated);
        assert_eq!(
            inv.tools[0].description.chars().count(),
            MAX_DESCRIPTION_CHARS
        );
        let instructions = inv.server_info.instructions.as_str();
        assert!(instructions.len() <= MAX_INSTRUCTIONS_BYTES && instructions.len() >= 1022);
        let all: Vec<String> = many.iter().map(tool_sha256).collect();
        assert_eq!(inv.tools_digest, digest(all.iter().map(String::as_str)));
        assert_eq!((inv.resource_count, inv.prompt_count), (3, 4));
        assert!(inv.tool("t005").is_some() && inv.tool("t199").is_none());
    }

    #[test]
    fn hostile_strings_are_cut_and_marked_but_hashed_whole() {
        let long = |c: &str, n| c.repeat(n);
        let tools: Vec<Value> = (0..3)
            .map(|i| json!({"name": format!("{}{i}", long("\u{1}", 5000)), "description": long("é", 9000), "inputSchema": {}}))
            .chain([json!({"name": "dup", "inputSchema": {"a": 1}}), json!({"name": "dup", "inputSchema": {"a": 2}})])
            .collect();
        let info = ServerInfo {
            name: long("n", 10_000),
            version: long("v", 10_000),
            protocol_version: long("p", 100),
            instructions: long("ü", 10_000),
            era: None,
            supported_versions: vec![long("s", 1000); 1000],
        };
        let inv = ToolInventory::from_tools(info, ServerCapabilities::default(), &tools, 0, 0);
        assert_eq!(inv.tool_count, 5);
        assert_eq!(inv.tools.len(), 4, "one of two tools named dup is listed");
        assert!(inv.tools_truncated);
        let all: Vec<String> = tools.iter().map(tool_sha256).collect();
        assert_eq!(inv.tools_digest, digest(all.iter().map(String::as_str)));
        let cut: Vec<&ToolSummary> = inv.tools.iter().filter(|t| t.name_truncated).collect();
        assert_eq!(cut.len(), 3);
        let names: std::collections::BTreeSet<&str> = cut.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 3, "names equal up to the cut stay distinct");
        for t in cut {
            assert_eq!(t.name.chars().count(), MAX_NAME_CHARS);
            assert!(t.name.contains(CUT_MARK));
            assert_eq!(t.description.chars().count(), MAX_DESCRIPTION_CHARS);
            assert!(t.description.ends_with(CUT_MARK));
            assert!(all.contains(&t.sha256), "hash of the full definition");
        }
        let si = &inv.server_info;
        assert_eq!(si.name.chars().count(), MAX_SERVER_NAME_CHARS);
        assert_eq!(si.version.chars().count(), MAX_SERVER_VERSION_CHARS);
        assert_eq!(
            si.protocol_version.chars().count(),
            MAX_PROTOCOL_VERSION_CHARS
        );
        assert!(si.instructions.len() <= MAX_INSTRUCTIONS_BYTES);
        assert_eq!(si.supported_versions.len(), super::super::era::MAX_VERSIONS);
        assert!(
            si.supported_versions
                .iter()
                .all(|v| v.chars().count() == super::super::era::MAX_VERSION_CHARS)
        );
        assert!(si.name.ends_with(CUT_MARK) && si.instructions.ends_with(CUT_MARK));
        // Short strings are untouched.
        assert_eq!(cut_name("echo"), "echo");
        assert_eq!(cut_chars("abc", 3), "abc");
        assert_eq!(cut_chars("abcd", 3), "ab…");
        assert_eq!(cut_bytes("abcd", 4), "abcd");
        assert_eq!(cut_bytes("abcdé", 5), "ab…");
        assert_eq!(cut_name(&"x".repeat(128)), "x".repeat(128));
        assert_eq!(cut_name(&"x".repeat(129)).chars().count(), 128);
    }

    #[test]
    fn serializes_like_the_status_fields() {
        let inv = inventory(&tools()[2..]);
        let v = serde_json::to_value(&inv).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "serverInfo",
                "capabilities",
                "toolCount",
                "resourceCount",
                "promptCount",
                "tools",
                "toolsTruncated",
                "toolsDigest"
            ]
        );
        // The status type itself: unknown strings are omitted, not written as "".
        assert_eq!(v["serverInfo"], serde_json::json!({"name": ""}));
        assert_eq!(v["capabilities"]["completions"], false);
        assert_eq!(v["tools"][0]["sha256"].as_str().unwrap().len(), 64);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-zé\"\\\\ ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z_]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_json_ignores_key_order_and_round_trips(v in arb_json()) {
            let c = canonical_json(&v);
            prop_assert_eq!(&c, &canonical_json(&reverse_keys(&v)));
            let back: Value = serde_json::from_str(&c).unwrap();
            prop_assert_eq!(canonical_json(&back), c);
        }

        #[test]
        fn digest_ignores_tool_order(mut names in prop::collection::btree_set("[a-z]{1,5}", 0..12), seed in any::<u64>()) {
            let tools: Vec<Value> = names.iter().map(|n| json!({"name": n, "inputSchema": {"n": n}})).collect();
            let mut shuffled = tools.clone();
            let len = shuffled.len().max(1);
            shuffled.rotate_left((seed as usize) % len);
            prop_assert_eq!(inventory(&tools), inventory(&shuffled));
            names.clear();
        }

        #[test]
        fn truncation_is_char_boundary_safe(s in "\\PC{0,300}", max in 0usize..260) {
            prop_assert!(truncate_chars(&s, max).chars().count() <= max);
            let b = truncate_bytes(&s, max);
            prop_assert!(b.len() <= max && s.starts_with(b));
            let c = cut_chars(&s, max.max(1));
            prop_assert!(c.chars().count() <= max.max(1));
            prop_assert!(c == s || c.ends_with(CUT_MARK));
            let c = cut_bytes(&s, max.max(3));
            prop_assert!(c.len() <= max.max(3));
            prop_assert!(c == s || c.ends_with(CUT_MARK));
            prop_assert!(cut_name(&s).chars().count() <= MAX_NAME_CHARS);
        }
    }
}
