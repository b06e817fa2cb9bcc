//! Controllers for the three kinds; `build/` holds the pure builders (spec, effective
//! policy and bindings → desired Kubernetes objects) and `validate` the pure workload and
//! egress rules. Runtime code (client, watches, apply, status) lives in sibling modules;
//! nothing in `build/` or `validate` may touch a client or do I/O.

pub mod api_server;
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
pub mod probes;
pub mod retry;
pub mod run;
pub mod server;
pub mod startup;
pub mod status;
pub mod tokenreview;
pub mod validate;
