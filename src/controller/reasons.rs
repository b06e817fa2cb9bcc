//! The reasons an McpServer reconcile reports, as the API names them (docs/api.md):
//! why a spec is refused ([`RejectReason`], `Accepted=False`), why the Deployment is not
//! available ([`UnavailableReason`], `Available=False`) and every Event the reconcile
//! records ([`EventReason`]). A leaf: the McpServer pipeline and its status computation
//! (`super::status`) use it.

/// Why a spec is refused: the reason of `Accepted=False` and of its Warning Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// A field is invalid (including the policies' merge and pod security).
    InvalidSpec,
    /// The objects could not be built (never the user's spec: a bug or missing metadata).
    BuildFailed,
    /// A policy targeting the server does not admit its workload.
    PolicyViolation,
    /// A referenced Secret, or a key in it, does not exist.
    SecretNotFound,
    /// A child's name is held by an object this server does not control.
    ChildConflict,
}

impl RejectReason {
    /// The reason as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::BuildFailed => "BuildFailed",
            Self::PolicyViolation => "PolicyViolation",
            Self::SecretNotFound => "SecretNotFound",
            Self::ChildConflict => "ChildConflict",
        }
    }
}

/// Why the Deployment is not available: the reason of `Available=False`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnavailableReason {
    /// Rolling out, or not created yet.
    Progressing,
    /// Its progress deadline passed.
    CrashLooping,
    /// Pods cannot be created.
    Unschedulable,
    /// `replicas: 0`.
    ScaledToZero,
    /// The Deployment of the server's name is not the server's.
    ChildConflict,
}

impl UnavailableReason {
    /// The reason as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Progressing => "Progressing",
            Self::CrashLooping => "CrashLooping",
            Self::Unschedulable => "Unschedulable",
            Self::ScaledToZero => "ScaledToZero",
            Self::ChildConflict => "ChildConflict",
        }
    }
}

/// Every Event an McpServer reconcile records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventReason {
    /// Children created (Normal).
    Created,
    /// Children updated (Normal).
    Updated,
    /// A child the spec no longer needs was deleted (Normal).
    Deleted,
    /// The spec was refused (Warning), with the Accepted reason.
    Rejected(RejectReason),
    /// A user-chosen pod ServiceAccount: ServiceAccount subjects were left out (Warning).
    ServiceAccountTokensDisabled,
    /// The probe started failing (Warning).
    ProbeFailed,
    /// The probe succeeds again (Normal).
    ProbeRecovered,
    /// An exposed tool does not match its pin (Warning).
    ToolsNotPinned,
    /// The tool inventory changed (Normal).
    ToolsChanged,
}

impl EventReason {
    /// The reason as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Updated => "Updated",
            Self::Deleted => "Deleted",
            Self::Rejected(r) => r.as_str(),
            Self::ServiceAccountTokensDisabled => "ServiceAccountTokensDisabled",
            Self::ProbeFailed => "ProbeFailed",
            Self::ProbeRecovered => "ProbeRecovered",
            Self::ToolsNotPinned => "ToolsNotPinned",
            Self::ToolsChanged => "ToolsChanged",
        }
    }

    /// Warning (true) or Normal.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Self::Rejected(_)
                | Self::ServiceAccountTokensDisabled
                | Self::ProbeFailed
                | Self::ToolsNotPinned
        )
    }
}
