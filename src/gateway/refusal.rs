//! Why the gateway answers a request itself instead of forwarding it: the [`Rule`] that
//! refused it (named in audit records, metrics and the JSON-RPC error), and how that
//! becomes an HTTP response with a JSON-RPC error body.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::mcp_http::jsonrpc::{self, code};

/// The rule behind a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    Denied,
    NotGranted,
    Unpinned,
    Changed,
    RateLimited,
    TooLarge,
    Unauthorized,
    ReadOnly,
    Timeout,
    Overloaded,
    /// The body is not strict JSON (HTTP 400, JSON-RPC -32700; see
    /// [`strict_json`](super::strict_json)).
    Malformed,
    /// Strict JSON but not one JSON-RPC message: a batch, a scalar, a request without
    /// a usable id or tool name (HTTP 400, JSON-RPC -32600).
    InvalidMessage,
    /// An `Mcp-Session-Id` this gateway did not open for the caller (HTTP 404).
    SessionNotFound,
    /// The caller holds its maximum of live sessions (HTTP 429).
    SessionLimit,
    /// The gateway holds its maximum of live sessions (HTTP 503).
    SessionsFull,
    /// The `Host` header names no allowed host (HTTP 403, DNS rebinding).
    HostNotAllowed,
    /// The `Origin` header names no allowed origin (HTTP 403, DNS rebinding).
    OriginNotAllowed,
    /// A routing header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`)
    /// repeated, missing on a modern request, or disagreeing with the body (HTTP 400,
    /// JSON-RPC -32020; see [`routing`](super::routing)).
    HeaderMismatch,
}

impl Rule {
    /// Every rule, for metrics.
    pub const ALL: [Rule; 18] = [
        Rule::Denied,
        Rule::NotGranted,
        Rule::Unpinned,
        Rule::Changed,
        Rule::RateLimited,
        Rule::TooLarge,
        Rule::Unauthorized,
        Rule::ReadOnly,
        Rule::Timeout,
        Rule::Overloaded,
        Rule::Malformed,
        Rule::InvalidMessage,
        Rule::SessionNotFound,
        Rule::SessionLimit,
        Rule::SessionsFull,
        Rule::HostNotAllowed,
        Rule::OriginNotAllowed,
        Rule::HeaderMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Denied => "Denied",
            Rule::NotGranted => "NotGranted",
            Rule::Unpinned => "Unpinned",
            Rule::Changed => "Changed",
            Rule::RateLimited => "RateLimited",
            Rule::TooLarge => "TooLarge",
            Rule::Unauthorized => "Unauthorized",
            Rule::ReadOnly => "ReadOnly",
            Rule::Timeout => "Timeout",
            Rule::Overloaded => "Overloaded",
            Rule::Malformed => "Malformed",
            Rule::InvalidMessage => "InvalidMessage",
            Rule::SessionNotFound => "SessionNotFound",
            Rule::SessionLimit => "SessionLimit",
            Rule::SessionsFull => "SessionsFull",
            Rule::HostNotAllowed => "HostNotAllowed",
            Rule::OriginNotAllowed => "OriginNotAllowed",
            Rule::HeaderMismatch => "HeaderMismatch",
        }
    }

    /// Timeouts are errors of the call; every other rule is a denial.
    pub fn outcome(self) -> &'static str {
        match self {
            Rule::Timeout => "error",
            _ => "denied",
        }
    }

    pub fn from_hidden(reason: crate::api::server_status::ToolHiddenReason) -> Rule {
        use crate::api::server_status::ToolHiddenReason as R;
        match reason {
            R::Denied => Rule::Denied,
            R::NotGranted => Rule::NotGranted,
            R::Unpinned => Rule::Unpinned,
            R::Changed => Rule::Changed,
        }
    }
}

/// A request the gateway refuses (or answers with an error) itself.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub rule: Rule,
    pub message: String,
    /// The tool concerned, when there is one.
    pub tool: Option<String>,
    /// For 429 answers: whole seconds until a retry can succeed.
    pub retry_after_secs: Option<u64>,
}

impl Refusal {
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        Refusal {
            rule,
            message: message.into(),
            tool: None,
            retry_after_secs: None,
        }
    }

    pub fn with_tool(mut self, tool: &str) -> Self {
        self.tool = Some(tool.to_owned());
        self
    }

    /// JSON-RPC error code for the rule.
    pub fn code(&self) -> i64 {
        match self.rule {
            Rule::Denied | Rule::NotGranted | Rule::Unpinned | Rule::Changed | Rule::ReadOnly => {
                code::FORBIDDEN
            }
            Rule::RateLimited => code::RATE_LIMITED,
            Rule::TooLarge => code::TOO_LARGE,
            Rule::Unauthorized => code::UNAUTHORIZED,
            Rule::Timeout => code::TIMEOUT,
            Rule::Malformed => code::PARSE_ERROR,
            Rule::InvalidMessage => code::INVALID_REQUEST,
            Rule::Overloaded | Rule::SessionLimit | Rule::SessionsFull => code::OVERLOADED,
            // What the MCP SDKs answer for a session they do not know.
            Rule::SessionNotFound => code::UNAUTHORIZED,
            Rule::HostNotAllowed | Rule::OriginNotAllowed => code::FORBIDDEN,
            Rule::HeaderMismatch => crate::mcp_http::era::code::HEADER_MISMATCH,
        }
    }

    /// HTTP status when the refusal answers the whole HTTP request. Policy refusals of
    /// single calls are JSON-RPC errors inside a 200, as an MCP server would answer.
    pub fn http_status(&self) -> StatusCode {
        match self.rule {
            Rule::Unauthorized => StatusCode::UNAUTHORIZED,
            Rule::ReadOnly => StatusCode::FORBIDDEN,
            Rule::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Rule::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rule::Malformed | Rule::InvalidMessage | Rule::HeaderMismatch => {
                StatusCode::BAD_REQUEST
            }
            Rule::SessionNotFound => StatusCode::NOT_FOUND,
            Rule::SessionLimit => StatusCode::TOO_MANY_REQUESTS,
            Rule::SessionsFull => StatusCode::SERVICE_UNAVAILABLE,
            Rule::HostNotAllowed | Rule::OriginNotAllowed => StatusCode::FORBIDDEN,
            _ => StatusCode::OK,
        }
    }

    /// The JSON-RPC error message for request `id`; `error.data` names the rule and tool.
    pub fn to_jsonrpc(&self, id: Value) -> Value {
        let mut data = json!({"rule": self.rule.as_str()});
        if let Some(tool) = &self.tool {
            data["tool"] = Value::String(tool.clone());
        }
        if let Some(secs) = self.retry_after_secs {
            data["retryAfterSeconds"] = json!(secs);
        }
        jsonrpc::error_response_with_data(id, self.code(), self.message.clone(), data)
    }

    /// The whole HTTP answer: status, JSON-RPC error body for `ids` (one body per id; a
    /// batch gets an array), `WWW-Authenticate` on 401, `Retry-After` on 429.
    pub fn into_response(&self, ids: &[Value], batch: bool) -> Response<Body> {
        let body = if batch {
            Value::Array(ids.iter().map(|id| self.to_jsonrpc(id.clone())).collect())
        } else {
            self.to_jsonrpc(ids.first().cloned().unwrap_or(Value::Null))
        };
        let mut resp = json_response(self.http_status(), &body);
        let h = resp.headers_mut();
        if self.rule == Rule::Unauthorized {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// An `application/json` response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_rule_and_tool() {
        let r = Refusal::new(Rule::NotGranted, "no").with_tool("create_x");
        let v = r.to_jsonrpc(json!(7));
        assert_eq!(v["error"]["data"]["rule"], "NotGranted");
        assert_eq!(v["error"]["data"]["tool"], "create_x");
        assert_eq!(v["id"], 7);
        let mut rl = Refusal::new(Rule::RateLimited, "slow down");
        rl.retry_after_secs = Some(3);
        let resp = rl.into_response(&[json!(1)], false);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
    }
}
