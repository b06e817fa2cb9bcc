//! Translation between the two protocol eras ([`crate::mcp_http::era`]) for the bridge:
//! which era its child speaks ([`ChildEra`], decided by the handshake in
//! [`super::child`]), and the pure rewrites that let a client of either era use a child of
//! either era.
//!
//! * Toward a **legacy** child (it answered `initialize`): modern clients get
//!   `server/discover` answered from the child's `initialize` result, their requests lose
//!   the `_meta` envelope (legacy servers such as the Python SDK's refuse enveloped
//!   requests on a handshake connection), and results gain the fields the 2026-07-28 wire
//!   requires (`resultType`, and `ttlMs`/`cacheScope` on cacheable results).
//! * Toward a **modern** child (it answered `server/discover`): legacy clients get
//!   `initialize` answered from the child's discover result, every request they send gets
//!   the envelope stamped (their own capabilities and info, the child's version), `ping`
//!   is answered by the bridge, and results lose the modern-only fields; an
//!   `input_required` result becomes a JSON-RPC error (no translation into server requests).
//!
//! No I/O here.

use serde_json::{Map, Value, json};

use crate::mcp_http::era::{
    self, LATEST_LEGACY, LEGACY_VERSIONS, META_CLIENT_CAPABILITIES, META_CLIENT_INFO,
    META_PROTOCOL_VERSION, MODERN_VERSIONS,
};
use crate::mcp_http::jsonrpc::{self, code};

/// `_meta` key of the server's name and version on modern results.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// What the child speaks, as its handshake found out.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildEra {
    /// The child answered `initialize`: its `result`.
    Legacy { initialize: Value },
    /// The child answered `server/discover`: its `result`, and the modern version the
    /// bridge uses toward it (the newest both know).
    Modern { discover: Value, version: String },
}

impl ChildEra {
    pub fn era(&self) -> era::Era {
        match self {
            ChildEra::Legacy { .. } => era::Era::Legacy,
            ChildEra::Modern { .. } => era::Era::Modern,
        }
    }

    /// The modern versions modern clients may use through the bridge: every version the
    /// bridge knows for a legacy child (it translates), the child's own otherwise.
    pub fn served_modern_versions(&self) -> Vec<String> {
        match self {
            ChildEra::Legacy { .. } => MODERN_VERSIONS.iter().map(|v| v.to_string()).collect(),
            ChildEra::Modern { discover, .. } => modern_versions_of(discover),
        }
    }
}

/// The modern versions a discover result lists that the bridge knows, oldest first.
pub fn modern_versions_of(discover: &Value) -> Vec<String> {
    let listed: Vec<&str> = discover["supportedVersions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    MODERN_VERSIONS
        .iter()
        .filter(|v| listed.contains(v))
        .map(|v| v.to_string())
        .collect()
}

/// `server/discover`'s result for a legacy child, from its `initialize` result.
pub fn discover_from_initialize(initialize: &Value) -> Value {
    let mut result = json!({
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": initialize.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(instructions) = initialize.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = instructions.clone();
    }
    if let Some(info) = initialize.get("serverInfo").filter(|i| i.is_object()) {
        result["_meta"] = json!({ META_SERVER_INFO: info });
    }
    result
}

/// `initialize`'s result for a legacy client of a modern child, from the child's discover
/// result: the client's version when it is a legacy one, else the newest legacy one.
pub fn initialize_from_discover(discover: &Value, requested: Option<&str>) -> Value {
    let version = requested
        .filter(|v| LEGACY_VERSIONS.contains(v))
        .unwrap_or(LATEST_LEGACY);
    let server_info = discover
        .pointer(&format!("/_meta/{}", META_SERVER_INFO.replace('/', "~1")))
        .filter(|i| i.is_object())
        .cloned()
        .unwrap_or_else(
            || json!({"name": "mcp-operator-bridge", "version": env!("CARGO_PKG_VERSION")}),
        );
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": discover.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": server_info,
    });
    if let Some(instructions) = discover.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = instructions.clone();
    }
    result
}

/// Client capabilities that need a server-to-client request the bridge cannot relay to a
/// modern child (the modern era asks for them with `input_required`, which the bridge does
/// not translate): not declared on a legacy client's behalf.
const BACK_CHANNEL_CAPABILITIES: &[&str] = &["sampling", "elicitation", "roots"];

/// The envelope stamped on a legacy client's requests to a modern child: the child's
/// version, the client's capabilities (less those the bridge cannot relay) and info.
pub fn legacy_client_envelope(version: &str, initialize_params: &Value) -> Value {
    let mut capabilities = initialize_params
        .get("capabilities")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for key in BACK_CHANNEL_CAPABILITIES {
        capabilities.remove(*key);
    }
    let info = initialize_params
        .get("clientInfo")
        .filter(|i| i.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"name": "unknown", "version": "0"}));
    era::request_envelope(version, Value::Object(capabilities), info)
}

/// Removes the modern envelope from a request for a legacy child (and `_meta` when
/// nothing else is left in it).
pub fn strip_envelope(message: &mut Value) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    for key in [
        META_PROTOCOL_VERSION,
        META_CLIENT_CAPABILITIES,
        META_CLIENT_INFO,
    ] {
        meta.remove(key);
    }
    if meta.is_empty() {
        params.remove("_meta");
    }
}

/// Methods whose modern results are cacheable (`ttlMs` and `cacheScope` required).
pub fn is_cacheable(method: &str) -> bool {
    matches!(
        method,
        "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | era::DISCOVER
    )
}

/// A legacy child's response made a valid 2026-07-28 response: `resultType` and, for
/// cacheable results, `ttlMs: 0` / `cacheScope: "private"` when the child set none.
pub fn to_modern_response(response: &mut Value, cacheable: bool) {
    let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) else {
        return;
    };
    add_missing(result, "resultType", json!("complete"));
    if cacheable {
        add_missing(result, "ttlMs", json!(0));
        add_missing(result, "cacheScope", json!("private"));
    }
}

fn add_missing(object: &mut Map<String, Value>, key: &str, value: Value) {
    object.entry(key).or_insert(value);
}

/// A modern child's response made a legacy one: the modern-only result fields and the
/// `serverInfo` stamp in `_meta` go (strict legacy clients refuse unknown keys on empty
/// results; a legacy server never stamps), and an `input_required` result —
/// the child asking for client input mid-request — becomes a JSON-RPC error.
pub fn to_legacy_response(response: &mut Value) {
    let Some(result) = response.get("result").and_then(Value::as_object) else {
        return;
    };
    if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
        let id = response.get("id").cloned().unwrap_or_default();
        *response = jsonrpc::error_response(
            id,
            code::INTERNAL_ERROR,
            "mcp-operator bridge: the MCP server asked for client input (input_required, MCP \
             2026-07-28), which the bridge cannot relay to a 2025-era client",
        );
        return;
    }
    if let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) {
        for key in ["resultType", "ttlMs", "cacheScope"] {
            result.remove(key);
        }
        // Modern servers stamp their identity on every result; legacy results carry none.
        if let Some(meta) = result.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.remove(META_SERVER_INFO);
            if meta.is_empty() {
                result.remove("_meta");
            }
        }
    }
}

/// The answer to a legacy child's server-to-client request (sampling, elicitation, roots)
/// that would have to reach a modern client: the modern era has no server-to-client
/// requests and the bridge does not translate them, so the child gets "method not found",
/// exactly what a client without that capability answers.
pub fn server_request_refusal(id: Value, method: &str) -> Value {
    jsonrpc::error_response(
        id,
        code::METHOD_NOT_FOUND,
        format!(
            "mcp-operator bridge: {method} cannot reach the client: it speaks MCP 2026-07-28, \
             which has no server-to-client requests"
        ),
    )
}

/// The change notifications a legacy child sends, and the `subscriptions/listen` filter
/// field (and server capability) each needs.
const LISTENABLE: &[(&str, &str, &str)] = &[
    (
        "notifications/tools/list_changed",
        "toolsListChanged",
        "tools",
    ),
    (
        "notifications/prompts/list_changed",
        "promptsListChanged",
        "prompts",
    ),
    (
        "notifications/resources/list_changed",
        "resourcesListChanged",
        "resources",
    ),
];

/// The filter a `subscriptions/listen` to a legacy child is honored with: the list-change
/// kinds the client asked for and the child's capabilities announce (`listChanged`).
/// Resource subscriptions are not honored (a legacy child's `resources/subscribe` belongs
/// to its one connection, shared by every client). `None`: `params.notifications` is not
/// an object.
pub fn listen_filter(request: &Value, capabilities: &Value) -> Option<Value> {
    let requested = request.get("params")?.get("notifications")?.as_object()?;
    let mut honored = Map::new();
    for (_, field, capability) in LISTENABLE {
        let wanted = requested.get(*field) == Some(&Value::Bool(true));
        let offered = capabilities[*capability]["listChanged"] == Value::Bool(true);
        if wanted && offered {
            honored.insert(field.to_string(), Value::Bool(true));
        }
    }
    Some(Value::Object(honored))
}

/// Whether a listen `filter` wants a legacy child's notification `method`.
pub fn listen_accepts(filter: &Value, method: &str) -> bool {
    LISTENABLE
        .iter()
        .any(|(m, field, _)| *m == method && filter[*field] == Value::Bool(true))
}

/// A copy of `notification` marked as belonging to the subscription `listen_id`.
pub fn for_subscription(notification: &Value, listen_id: &Value) -> Value {
    let mut stamped = notification.clone();
    if !stamped.get("params").is_some_and(Value::is_object) {
        stamped["params"] = json!({});
    }
    if !stamped["params"].get("_meta").is_some_and(Value::is_object) {
        stamped["params"]["_meta"] = json!({});
    }
    stamped["params"]["_meta"][era::META_SUBSCRIPTION_ID] = listen_id.clone();
    stamped
}

/// The acknowledgement of a `subscriptions/listen` the bridge serves.
pub fn listen_acknowledged(listen_id: &Value, filter: &Value) -> Value {
    for_subscription(
        &json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": filter}}),
        listen_id,
    )
}

/// The -32022 answer to a modern request for a version the bridge cannot serve.
pub fn unsupported_version(id: Value, requested: &str, supported: &[String]) -> Value {
    jsonrpc::error_response_with_data(
        id,
        era::code::UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        json!({"supported": supported, "requested": requested}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn everything_initialize() -> Value {
        json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "everything", "version": "2"}, "instructions": "be kind"})
    }

    #[test]
    fn discover_and_initialize_are_translated_both_ways() {
        let discover = discover_from_initialize(&everything_initialize());
        assert_eq!(discover["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(discover["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(discover["instructions"], "be kind");
        assert_eq!(discover["_meta"][META_SERVER_INFO]["name"], "everything");
        assert_eq!(discover["resultType"], "complete");

        let init = initialize_from_discover(&discover, Some("2025-03-26"));
        assert_eq!(init["protocolVersion"], "2025-03-26");
        assert_eq!(init["serverInfo"]["name"], "everything");
        assert_eq!(init["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(init["instructions"], "be kind");
        // A modern or unknown version in initialize gets the newest legacy one.
        for requested in [Some("2026-07-28"), Some("1999-01-01"), None] {
            assert_eq!(
                initialize_from_discover(&discover, requested)["protocolVersion"],
                LATEST_LEGACY
            );
        }
        assert_eq!(
            initialize_from_discover(&json!({}), None)["serverInfo"]["name"],
            "mcp-operator-bridge"
        );
    }

    #[test]
    fn served_versions_follow_the_child() {
        let legacy = ChildEra::Legacy {
            initialize: everything_initialize(),
        };
        assert_eq!(legacy.served_modern_versions(), vec!["2026-07-28"]);
        let modern = ChildEra::Modern {
            discover: json!({"supportedVersions": ["2026-07-28", "2031-01-01", 5]}),
            version: "2026-07-28".into(),
        };
        assert_eq!(modern.served_modern_versions(), vec!["2026-07-28"]);
        let none = ChildEra::Modern {
            discover: json!({"supportedVersions": "2026-07-28"}),
            version: "2026-07-28".into(),
        };
        assert!(none.served_modern_versions().is_empty());
    }

    #[test]
    fn the_envelope_is_stripped_for_legacy_children_keeping_other_meta() {
        let mut call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "x", "_meta": {META_PROTOCOL_VERSION: "2026-07-28",
                META_CLIENT_CAPABILITIES: {}, META_CLIENT_INFO: {}, "progressToken": 4}}});
        strip_envelope(&mut call);
        assert_eq!(call["params"]["_meta"], json!({"progressToken": 4}));
        let mut list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": {"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}}});
        strip_envelope(&mut list);
        assert_eq!(list["params"], json!({}));
    }

    #[test]
    fn legacy_clients_get_an_envelope_without_back_channel_capabilities() {
        let envelope = legacy_client_envelope(
            "2026-07-28",
            &json!({"capabilities": {"sampling": {}, "elicitation": {}, "roots": {}, "experimental": {"x": {}}},
                "clientInfo": {"name": "old", "version": "1"}}),
        );
        assert_eq!(envelope[META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(
            envelope[META_CLIENT_CAPABILITIES],
            json!({"experimental": {"x": {}}})
        );
        assert_eq!(envelope[META_CLIENT_INFO]["name"], "old");
    }

    #[test]
    fn a_listen_is_honored_with_what_the_legacy_child_announces() {
        let listen = json!({"params": {"notifications": {"toolsListChanged": true,
            "promptsListChanged": true, "resourceSubscriptions": ["file:///x"]}}});
        let caps = json!({"tools": {"listChanged": true}, "prompts": {},
            "resources": {"subscribe": true, "listChanged": true}});
        let filter = listen_filter(&listen, &caps).unwrap();
        assert_eq!(filter, json!({"toolsListChanged": true}));
        assert!(listen_accepts(&filter, "notifications/tools/list_changed"));
        assert!(!listen_accepts(
            &filter,
            "notifications/prompts/list_changed"
        ));
        assert!(!listen_accepts(&filter, "notifications/message"));
        assert!(listen_filter(&json!({"params": {}}), &caps).is_none());

        let ack = listen_acknowledged(&json!(7), &filter);
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(ack["params"]["_meta"][era::META_SUBSCRIPTION_ID], 7);
        assert_eq!(ack["params"]["notifications"], filter);
        let changed = for_subscription(
            &json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
            &json!("l"),
        );
        assert_eq!(changed["params"]["_meta"][era::META_SUBSCRIPTION_ID], "l");
    }

    #[test]
    fn results_cross_eras() {
        let mut list = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
        to_modern_response(&mut list, true);
        assert_eq!(list["result"]["resultType"], "complete");
        assert_eq!(list["result"]["cacheScope"], "private");
        let mut call =
            json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "resultType": "complete"}});
        to_modern_response(&mut call, false);
        assert!(call["result"].get("ttlMs").is_none());

        to_legacy_response(&mut list);
        assert_eq!(list["result"], json!({"tools": []}));
        let mut stamped = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [],
            "_meta": {META_SERVER_INFO: {"name": "x"}, "trace": 1}}});
        to_legacy_response(&mut stamped);
        assert_eq!(
            stamped["result"],
            json!({"content": [], "_meta": {"trace": 1}})
        );
        let mut only_stamp =
            json!({"jsonrpc": "2.0", "id": 1, "result": {"_meta": {META_SERVER_INFO: {}}}});
        to_legacy_response(&mut only_stamp);
        assert_eq!(only_stamp["result"], json!({}));
        let mut asking =
            json!({"jsonrpc": "2.0", "id": 9, "result": {"resultType": "input_required"}});
        to_legacy_response(&mut asking);
        assert_eq!(asking["id"], 9);
        assert!(
            asking["error"]["message"]
                .as_str()
                .unwrap()
                .contains("input_required")
        );
        let mut error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}});
        to_legacy_response(&mut error);
        to_modern_response(&mut error, true);
        assert_eq!(error["error"]["code"], 1);
    }
}
