//! Controllers for the three kinds (docs/architecture.md has the module map):
//!
//! - [`server`]: the McpServer reconcile, a pipeline (dereference → validate → plan →
//!   apply → status) with its own prober task; [`policy`] and [`binding`] the McpPolicy
//!   and McpBinding controllers; [`token_review`] keeps the gateways' TokenReview
//!   ClusterRoleBinding.
//! - Pure, no client or I/O: [`build`] (spec, effective policy and bindings → desired
//!   Kubernetes objects), [`policy_rules`] (the policies' workload and egress rules),
//!   [`status`] (an McpServer's status from what a reconcile observed), [`ownership`]
//!   (who holds a child name), [`reasons`] (the API's reasons as enums).
//! - Shared runtime: [`shared`] (a leaf: scoping, controller settings, readiness,
//!   jitter, writing status), [`context`], [`apply`] (server-side apply of children),
//!   [`retry`], [`error`], [`events`], [`metrics`], [`leader`], [`startup`], [`run`]
//!   (`mcp-operator run`), [`api_server_egress`] (where the API server listens).

pub mod api_server_egress;
pub mod apply;
pub mod binding;
pub mod build;
pub mod context;
pub mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod ownership;
pub mod policy;
pub mod policy_rules;
pub mod reasons;
pub mod retry;
pub mod run;
pub mod server;
pub mod shared;
pub mod startup;
pub mod status;
pub mod token_review;
