//! The controller runtime's one error enum, [`Error`]. Each variant maps to a metric label
//! ([`Error::reason`]); [`Failure`] is what the shared retry and metrics code reads of any
//! controller's error (its label, and whether the replica lost the Lease).
//! Problems with a user's spec are not errors: they become conditions in status.

/// Why a reconcile, a start-up step or the leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API request failed (includes 409/500/timeouts: retried with backoff).
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be turned into JSON or back.
    #[error("cannot (de)serialize {what}: {source}")]
    Serde {
        /// What was being converted.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// This replica does not hold the Lease (any more): it must not write.
    #[error("not the leader: writes are disabled")]
    NotLeader,
    /// A required CustomResourceDefinition is missing or not Established.
    #[error(
        "CustomResourceDefinition {name} is {state}; install the CRDs with `mcp-operator crd | kubectl apply --server-side -f -`"
    )]
    CrdMissing {
        /// Name of the CRD.
        name: String,
        /// "not installed" or "not Established".
        state: &'static str,
    },
    /// Leader election could not start or failed.
    #[error("leader election failed: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// The admin endpoint could not bind.
    #[error("cannot serve the admin endpoint on {addr}: {source}")]
    Admin {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A watch of the controller failed in a way the controller could not recover from.
    #[error("controller stopped: {0}")]
    Controller(String),
    /// A child name is held by an object this McpServer does not control: never adopted.
    /// The reconcile checks every child before writing any and reports a conflict as
    /// `Accepted=False`; as an error it only comes from [`super::apply::apply_read`]'s
    /// own check, the last line for a caller that did not check first.
    #[error(transparent)]
    ChildConflict(#[from] super::ownership::ChildConflict),
}

impl Error {
    /// A short CamelCase label for metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(status)) if status.code == 409 => "Conflict",
            Self::Kube(kube::Error::Api(status)) if status.code == 403 => "Forbidden",
            Self::Kube(kube::Error::Api(_)) => "ApiError",
            Self::Kube(_) => "ApiUnavailable",
            Self::Serde { .. } => "Serialization",
            Self::NotLeader => "NotLeader",
            Self::CrdMissing { .. } => "CrdMissing",
            Self::Lease(_) => "LeaderElection",
            Self::Admin { .. } => "Admin",
            Self::Controller(_) => "Controller",
            Self::ChildConflict(_) => super::ownership::ChildConflict::REASON,
        }
    }

    /// Builds a [`Error::Serde`].
    pub fn serde(what: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Serde {
            what: what.into(),
            source,
        }
    }
}

/// What the shared reconcile runtime ([`super::retry`], the metrics) needs to know about
/// a failed reconcile, whatever the controller's error type.
pub trait Failure: std::fmt::Display {
    /// The metric label: a short CamelCase reason.
    fn reason(&self) -> &'static str;
    /// The step of the reconcile that failed (the top-level error's variant), the
    /// `step` label of `mcp_operator_reconcile_failed_steps_total`.
    fn step(&self) -> &'static str {
        "Reconcile"
    }
    /// This replica lost the Lease: wait instead of retrying.
    fn is_not_leader(&self) -> bool;
}

impl Failure for Error {
    fn reason(&self) -> &'static str {
        Error::reason(self)
    }

    fn is_not_leader(&self) -> bool {
        matches!(self, Self::NotLeader)
    }
}

/// Whether `error` is a 404 from the API server.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
