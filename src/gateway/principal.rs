//! Who is calling ([`Principal`]): a binding, the operator's prober or an anonymous
//! caller. A leaf: [`auth`](super::auth) finds the principal of a request,
//! [`live`](super::live) maps token hashes and ServiceAccounts to one, and the policy,
//! session and audit code decide on it.

use std::sync::Arc;

use super::config::BindingConfig;

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Principal {
    /// A consumer with an McpBinding.
    Binding(Arc<BindingConfig>),
    /// The operator's prober: read-only, sees the unfiltered tool list.
    Probe,
    /// No token, with `auth: None`: the server-level decision applies.
    Anonymous,
}

impl Principal {
    /// The name audit records and metrics use.
    pub fn name(&self) -> &str {
        match self {
            Principal::Binding(b) => &b.name,
            Principal::Probe => "probe",
            Principal::Anonymous => "anonymous",
        }
    }
}
