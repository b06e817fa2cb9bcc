//! An embedded, in-memory Kubernetes API server for **development and tests only — not
//! for production**: no persistence, no authentication, no scalability guarantees.
//!
//! The real kube client and the real `kubectl` talk to it as to a cluster: discovery,
//! the built-in kinds the operator uses, CustomResourceDefinitions (applying one makes its
//! resources served, validated with [`crate::admission`]), get/list/watch/create/update/
//! delete/patch (merge, JSON patch, server-side apply), finalizers and ownerReference
//! garbage collection. Errors are `Status` objects shaped as the real server shapes them.
//!
//! Layout: `store` (objects, revisions, watch history), `resources` (served types),
//! `meta` (object mechanics), `ops` (verbs), `patch`/`apply` (patch types, managedFields),
//! `gc` (deletion), `watch`, `table` (server-side printing), `discovery`, `openapi`, `handlers` (HTTP routing), `error` (Status),
//! `server` (the handle). Cross-cutting request behaviour (fault injection, RBAC) belongs
//! in a tower layer around the router in `server`.

mod apply;
mod discovery;
mod error;
mod gc;
mod handlers;
mod meta;
mod openapi;
mod ops;
mod patch;
mod resources;
mod selectors;
mod server;
mod store;
mod table;
mod watch;

pub use error::{ApiResult, ApiServerError, ApiStatus};
pub use server::{ApiServer, ApiServerHandle, ApiServerOptions};
