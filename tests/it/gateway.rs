//! Gateway tests: the real `mcp-operator gateway` binary as a subprocess in front of real
//! peers (server-everything, the Python SDK server), driven by a small raw MCP client,
//! the official Python SDK client, the Inspector CLI and the MCP conformance suite.
//! Auth, policy, limits, audit, reload, proxying, and the Kubernetes API (Events,
//! ServiceAccount tokens); each rule is shown to refuse what it should and to pass what
//! it should.

mod audit;
mod auth;
mod clients;
pub(crate) mod eras;
pub(crate) mod harness;
mod kube;
mod kube_rbac;
mod limits;
mod policy;
mod proxy;
mod reload;
