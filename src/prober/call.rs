//! `mcp-operator probe --call TOOL[=JSON]`: after a successful probe, call the named tools
//! once each on a connection of their own (same era negotiation) and report what came
//! back — a smoke test of a tool, end to end, for a person at a terminal.
//!
//! Only the `probe` command does this: the operator's probes never call tools (its probe
//! token may not). `input_required` results (2026-07-28 multi round-trip requests) are
//! driven by rmcp: every input request is answered the way a client without a user does
//! (elicitation declined, sampling and roots refused), `requestState` echoed untouched,
//! each retry a new request id, at most rmcp's 10 rounds.

use std::time::Duration;

use anyhow::{Context as _, bail};
use rmcp::model::CallToolRequestParams;
use serde::Serialize;
use serde_json::{Map, Value};

use super::classify;
use super::error::ProbeError;
use super::inventory::cut_chars;
use super::session;
use super::target::ProbeTarget;

/// At most this many `--call`s per run.
pub const MAX_CALLS: usize = 32;
/// A result's text is cut to this many characters in the report.
const TEXT_CHARS: usize = 200;

/// One `--call`: a tool name and its arguments (an object, `{}` when not given).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Map<String, Value>,
}

impl ToolCall {
    /// `NAME` or `NAME={"json": "object"}`.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let (name, args) = match raw.split_once('=') {
            Some((name, json)) => {
                let value: Value = serde_json::from_str(json)
                    .with_context(|| format!("--call {name}: the arguments are not JSON"))?;
                let Value::Object(args) = value else {
                    bail!("--call {name}: the arguments must be a JSON object");
                };
                (name, args)
            }
            None => (raw, Map::new()),
        };
        if name.trim().is_empty() {
            bail!("--call: the tool name is empty");
        }
        Ok(Self {
            name: name.to_owned(),
            arguments: args,
        })
    }
}

/// What one call gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallOutcome {
    /// The tool.
    pub name: String,
    /// The result's `isError` (absent when the call itself failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// The result's first text content, cut to 200 characters.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Why the call failed (a JSON-RPC error, the connection, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeError>,
}

/// Connects to `target` and makes `calls` in order; `timeout` bounds everything.
pub async fn call_tools(
    target: &ProbeTarget,
    timeout: Duration,
    calls: &[ToolCall],
) -> Result<Vec<CallOutcome>, ProbeError> {
    let work = async {
        let client = session::connect(target).await?;
        let mut outcomes = Vec::new();
        for call in calls.iter().take(MAX_CALLS) {
            let params = CallToolRequestParams::new(call.name.clone())
                .with_arguments(call.arguments.clone());
            let outcome = match client.call_tool(params).await {
                Ok(result) => CallOutcome {
                    name: call.name.clone(),
                    is_error: Some(result.is_error.unwrap_or(false)),
                    text: result
                        .content
                        .iter()
                        .filter_map(|c| serde_json::to_value(c).ok())
                        .find_map(|c| {
                            let text = c.get("text")?.as_str()?;
                            Some(cut_chars(text, TEXT_CHARS))
                        })
                        .unwrap_or_default(),
                    error: None,
                },
                Err(e) => CallOutcome {
                    name: call.name.clone(),
                    is_error: None,
                    text: String::new(),
                    error: Some(classify::from_service_error(
                        &format!("tools/call {}", call.name),
                        &e,
                    )),
                },
            };
            outcomes.push(outcome);
        }
        let _ = client.cancel().await;
        Ok(outcomes)
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(ProbeError::Timeout(format!(
                "--call: the calls did not finish within {timeout:?}"
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_parse_with_and_without_arguments() {
        let c = ToolCall::parse("echo").unwrap();
        assert_eq!((c.name.as_str(), c.arguments.len()), ("echo", 0));
        let c = ToolCall::parse(r#"add={"a": 1, "b": 2}"#).unwrap();
        assert_eq!(c.arguments["b"], 2);
        assert!(ToolCall::parse("x=[1]").is_err());
        assert!(ToolCall::parse("x={").is_err());
        assert!(ToolCall::parse("={}").is_err());
    }
}
