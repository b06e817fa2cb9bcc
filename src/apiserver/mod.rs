//! An embedded, in-memory Kubernetes API server for **development and tests only — not
//! for production**: no persistence, no TLS, no scalability guarantees.
//!
//! The real kube client and the real `kubectl` talk to it as to a cluster: discovery,
//! the built-in kinds the operator uses, CustomResourceDefinitions (applying one makes its
//! resources served, validated with [`crate::admission`]), get/list (paged)/watch/create/
//! update/delete/patch (merge, JSON patch, the common subset of strategic merge patch for
//! built-ins, server-side apply), finalizers and ownerReference garbage collection,
//! server-side `Table` printing (also for `kubectl get -w`), and a minimal OpenAPI v3/v2
//! surface. Errors are `Status` objects shaped as the real server shapes them.
//!
//! For tests it adds:
//! - **fault injection** ([`FaultRule`], set in [`ApiServerOptions::faults`] or at run
//!   time with [`ApiServerHandle::faults`]): 500, 429 with `Retry-After`, 409, latency,
//!   dropped watch connections and forced 410 on watches, per verb and resource, on
//!   deterministic schedules;
//! - **RBAC mode**: clients built with [`ApiServerHandle::service_account_client`] (or
//!   kubeconfigs from [`ApiServerHandle::kubeconfig_for_service_account`]) are authorized
//!   against the stored Roles/ClusterRoles/bindings and refused with the real 403;
//!   clients without credentials are the cluster admin;
//! - **ServiceAccount tokens**: TokenRequest (`serviceaccounts/<name>/token`) issues
//!   JWT-shaped tokens with audiences and expiry, TokenReview checks them
//!   ([`ApiServerHandle::issue_service_account_token`], [`ApiServerHandle::token_reviews`]).
//!
//! Layout, leaves first (no module imports one that imports it back):
//! - data: `store` (objects, revisions, watch history), `resources` (served types),
//!   `selectors`, `error` (Status), `request` (request attributes), `credentials` (users
//!   and token stores), `events` (events.k8s.io/v1 Events served from the core Events'
//!   storage, converted);
//! - object mechanics: `meta` (identity, preconditions, status isolation),
//!   `managed_fields` (field ownership), `ops` (the store-level verbs and the commit step
//!   of every write), `apply` (server-side apply), `patch` (the other patch types), `gc`
//!   (deletion);
//! - `state`: the [`ApiServerOptions`] and the `State` every handler and layer shares;
//! - HTTP: `handlers` (routing and the dispatch by verb), `verbs` (one handler per verb),
//!   `watch`, `table` (server-side printing), `discovery`, `openapi`, `tokens`
//!   (TokenRequest, TokenReview), and the tower layers around the router: `faults` and
//!   `rbac`;
//! - `server`: the handle.

mod apply;
mod credentials;
mod discovery;
mod error;
mod events;
mod faults;
mod gc;
mod handlers;
mod managed_fields;
mod meta;
mod openapi;
mod ops;
mod patch;
mod rbac;
mod request;
mod resources;
mod selectors;
mod server;
mod state;
mod store;
mod table;
mod tokens;
mod verbs;
mod watch;

pub use credentials::{API_AUDIENCE, UserInfo};
pub use error::{ApiResult, ApiServerError, ApiStatus};
pub use faults::{FaultId, FaultKind, FaultRule, Faults, Schedule};
pub use server::{ApiServer, ApiServerHandle};
pub use state::ApiServerOptions;
