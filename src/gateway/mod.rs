//! The gateway sidecar: the only open port of a server pod. Authenticates bearer tokens,
//! enforces the effective policy, limits and rate limits, audits every request and proxies
//! to the upstream MCP server (Streamable HTTP, or legacy SSE translated in-process).
//! Configuration comes from a file. The Kubernetes API is optional and off the request
//! path: refusals become aggregated Events ([`kube_events`]) and ServiceAccount tokens are
//! checked by TokenReview ([`token_review`], cached), when [`kube_api`] finds a config.
//!
//! Design: an HTTP-level pass-through proxy. Upstream sessions, event ids and the MCP
//! headers (`Mcp-Session-Id`, `MCP-Protocol-Version`, `Last-Event-ID`) travel unchanged
//! both ways; both protocol eras pass, the modern era's routing headers checked against
//! the body and forwarded ([`routing`]); request bodies are parsed once, and only what
//! policy needs is rewritten: `tools/list` results (filtered and prefixed, in JSON and in SSE responses, on POST and
//! GET streams alike; `cacheScope: private` when lists differ by caller) and `tools/call`
//! names (prefix stripped, in the body and in `Mcp-Name`). Unknown methods and
//! notifications pass through untouched. SSE responses stream through event by event.
//! Sessions are the upstream's, but the gateway records who opened each one and serves
//! it to nobody else ([`sessions`]).
//!
//! Defaults when the policy leaves a limit unset: `maxRequestBytes` 1 MiB,
//! `maxResponseBytes` 8 MiB, `callTimeout` 60 s, `maxConcurrentCalls` 64. A `tools/call`
//! beyond `maxConcurrentCalls` is refused at once (JSON-RPC error -32005, rule
//! Overloaded) rather than queued: the caller decides whether to retry, and the gateway's
//! memory stays bounded. `/livez`, `/readyz` and `/metrics` share the listen port and need
//! no token (they reveal counters, never tool content).
//!
//! Layout (the imports between these modules form no cycle):
//! - Serving: [`cli`] arguments and runtime · [`server`] routes · [`connections`]
//!   accepting and serving connections (cap, timeouts, shutdown) · [`origin`] Host and
//!   Origin checks.
//! - One MCP request, top down: [`proxy`] the MCP routes (request side) · [`respond`] the
//!   response side (JSON) · [`sse_relay`] relaying event streams · [`exchange`] one request
//!   on its way (records awaiting answers, deadline, call permit, session slot), built
//!   per route · [`session_gate`] the session rules for a request, and idle expiry ·
//!   [`session_calls`] the gateway's own requests in a caller's session · [`state`] what
//!   they all share ([`state::Gateway`], session headers, the headers forwarded each
//!   way): a leaf that imports none of them.
//! - Decisions: [`auth`] bearer tokens → [`principal`] who is calling · [`token_review`]
//!   ServiceAccount tokens · [`strict_json`] the request bodies accepted · [`routing`]
//!   routing headers and trace context · [`enforce`] policy decisions, tool prefix and
//!   definition cache · [`ratelimit`] token buckets · [`sessions`] the session table
//!   (owners, caps, idle) · [`refusal`] the refusals and their JSON-RPC bodies.
//! - Records: [`audit`] audit records · [`metrics`] Prometheus text · [`kube_events`]
//!   Events about refusals.
//! - Configuration: [`config`] the file format · [`live`] the compiled, swappable
//!   configuration · [`reload`] watching the file · [`kube_api`] the optional API client.
//! - The server side: [`upstream`] how requests reach the server · [`sse`] SSE event
//!   framing.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connections;
pub mod enforce;
pub mod exchange;
pub mod kube_api;
pub mod kube_events;
pub mod live;
pub mod metrics;
pub mod origin;
pub mod principal;
pub mod proxy;
pub mod ratelimit;
pub mod refusal;
pub mod reload;
pub mod respond;
pub mod routing;
pub mod server;
pub mod session_calls;
pub mod session_gate;
pub mod sessions;
pub mod sse;
pub mod sse_relay;
pub mod state;
pub mod strict_json;
pub mod token_review;
pub mod upstream;

/// Largest request body when the policy sets none.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1 << 20;
/// Largest response (one JSON body, or one SSE message) when the policy sets none.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 << 20;
/// Longest `tools/call` when the policy sets none.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 60_000;
/// `tools/call`s in flight at once when the policy sets none.
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 64;
