//! JSON-RPC 2.0 as MCP uses it, over `serde_json::Value`: what kind of message a value is,
//! its id and method, and the error bodies the gateway and bridge answer with.

use serde_json::{Value, json};

/// Standard and MCP-specific JSON-RPC error codes used by the gateway and bridge.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server errors (-32000..-32099).
    pub const UNAUTHORIZED: i64 = -32001;
    pub const FORBIDDEN: i64 = -32003;
    pub const RATE_LIMITED: i64 = -32029;
    pub const TOO_LARGE: i64 = -32013;
    pub const TIMEOUT: i64 = -32008;
    pub const UPSTREAM_UNAVAILABLE: i64 = -32002;
    pub const OVERLOADED: i64 = -32005;
}

/// What a JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result`.
    Response,
    /// Has `id` (possibly null) and `error`.
    Error,
    /// Anything else.
    Invalid,
}

/// Classifies one message.
pub fn kind(msg: &Value) -> Kind {
    let Some(obj) = msg.as_object() else {
        return Kind::Invalid;
    };
    match (obj.get("method"), obj.contains_key("id")) {
        (Some(Value::String(_)), true) => Kind::Request,
        (Some(Value::String(_)), false) => Kind::Notification,
        (Some(_), _) => Kind::Invalid,
        (None, true) if obj.contains_key("result") => Kind::Response,
        (None, true) if obj.contains_key("error") => Kind::Error,
        _ => Kind::Invalid,
    }
}

/// The `method` of a request or notification.
pub fn method(msg: &Value) -> Option<&str> {
    msg.get("method").and_then(Value::as_str)
}

/// The `id` of a request or response.
pub fn id(msg: &Value) -> Option<&Value> {
    msg.get("id")
}

/// `params.name` of a `tools/call` (or any request naming something).
pub fn param_name(msg: &Value) -> Option<&str> {
    msg.get("params")?.get("name")?.as_str()
}

/// A JSON-RPC error response.
pub fn error_response(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// A JSON-RPC error response with `error.data`.
pub fn error_response_with_data(
    id: Value,
    code: i64,
    message: impl Into<String>,
    data: Value,
) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into(), "data": data}})
}

/// A `notifications/cancelled` for a request id.
pub fn cancelled(request_id: Value, reason: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id, "reason": reason}})
}

/// A JSON-RPC body: one message or a batch (batches are from protocol 2025-03-26; later
/// versions dropped them, but peers may still send them).
pub fn messages(body: &Value) -> Vec<&Value> {
    match body {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// A map key for a JSON-RPC id or progress token: its JSON text, so `1` and `"1"` differ.
pub fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => {
            let mut key = String::with_capacity(s.len() + 1);
            key.push('s');
            key.push_str(s);
            key
        }
        other => other.to_string(),
    }
}

/// `params._meta.progressToken` of a request, when the client asked for progress.
pub fn progress_token(msg: &Value) -> Option<&Value> {
    msg.get("params")?.get("_meta")?.get("progressToken")
}

/// `params.progressToken` of a `notifications/progress`.
pub fn progress_notification_token(msg: &Value) -> Option<&Value> {
    msg.get("params")?.get("progressToken")
}

/// `params.requestId` of a `notifications/cancelled`.
pub fn cancelled_request_id(msg: &Value) -> Option<&Value> {
    msg.get("params")?.get("requestId")
}

/// Whether a message is a response or an error response (it answers a request).
pub fn is_response(msg: &Value) -> bool {
    matches!(kind(msg), Kind::Response | Kind::Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Kind::Request
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Kind::Notification
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":"a","result":{}})),
            Kind::Response
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}})),
            Kind::Error
        );
        assert_eq!(kind(&json!([1])), Kind::Invalid);
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1,"method":7})),
            Kind::Invalid
        );
    }

    #[test]
    fn tool_name_and_errors() {
        let call = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}});
        assert_eq!(param_name(&call), Some("echo"));
        let e = error_response(json!(3), code::FORBIDDEN, "no");
        assert_eq!(e["error"]["code"], -32003);
        assert_eq!(e["id"], 3);
    }

    #[test]
    fn id_keys_tell_numbers_from_strings() {
        assert_ne!(id_key(&json!(1)), id_key(&json!("1")));
        assert_eq!(id_key(&json!("a")), id_key(&json!("a")));
        let call = json!({"id":1,"method":"tools/call","params":{"_meta":{"progressToken":"t"}}});
        assert_eq!(progress_token(&call), Some(&json!("t")));
    }
}
