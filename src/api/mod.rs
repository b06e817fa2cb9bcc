//! The API of mcp-operator: the three custom resource kinds (McpServer, McpPolicy,
//! McpBinding, group `mcp-operator.dev`, version `v1alpha1`), their admission rules (schema
//! and CEL, declared on the types), and CRD generation. No I/O beyond writing CRD files.
//! docs/api.md is the contract these types implement.

pub mod binding;
pub mod common;
pub mod crd;
pub mod policy;
pub mod server;
pub mod server_status;

pub use binding::{McpBinding, McpBindingSpec, McpBindingStatus};
pub use policy::{McpPolicy, McpPolicySpec, McpPolicyStatus};
pub use server::{McpServer, McpServerSpec, McpServerStatus};
