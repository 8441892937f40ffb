//! The one place where errors become gRPC statuses, and where each refusal gets the reason
//! code that its audit event records. Messages name fields and rules, never input values.

use tonic::{Code, Status};

use crate::audit::search::SearchError;
use crate::domain::{Invalid, Role};
use crate::ledger::LedgerError;
use crate::pseudonym::PseudonymError;
use crate::signals::SignalError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("rule {rule}: requires the role {}", roles(.needs))]
    PermissionDenied {
        rule: &'static str,
        needs: &'static [Role],
    },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The federation's purpose policy refused: the message names the rule.
    #[error("policy: {0}")]
    Policy(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    /// A refusal or failure the service already put in the audit log, with the request's own
    /// purpose; the call layer must not record it again.
    #[error(transparent)]
    Recorded(Box<ApiError>),
}

fn roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, rule: impl ToString) -> ApiError {
        ApiError::Invalid(Invalid::new(field, rule))
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::Recorded(inner) => inner.code(),
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied { .. } | ApiError::Policy(_) => Code::PermissionDenied,
            ApiError::Invalid(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
        }
    }

    /// Whether the request was refused (nothing happened) rather than failed inside the node.
    pub fn is_refusal(&self) -> bool {
        match self {
            ApiError::Recorded(inner) => inner.is_refusal(),
            _ => !matches!(self, ApiError::Unavailable(_) | ApiError::Internal(_)),
        }
    }

    /// The reason recorded in the audit event: the status code's name and the message.
    pub fn audit_reason(&self) -> String {
        format!("{}: {self}", code_name(self.code()))
    }
}

/// A status code as audit reasons and peer errors name it (`invalid_argument`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "permission_denied",
        Code::InvalidArgument => "invalid_argument",
        Code::NotFound => "not_found",
        Code::FailedPrecondition => "failed_precondition",
        Code::ResourceExhausted => "resource_exhausted",
        Code::Unavailable => "unavailable",
        Code::Unimplemented => "unimplemented",
        _ => "internal",
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let error = match error {
            ApiError::Recorded(inner) => *inner,
            other => other,
        };
        let mut status = Status::new(error.code(), error.to_string());
        let metadata = status.metadata_mut();
        match &error {
            ApiError::Invalid(invalid) => {
                if let Ok(field) = invalid.field.parse() {
                    metadata.insert("x-kring-field", field);
                }
            }
            ApiError::PermissionDenied { rule, .. } => {
                if let Ok(rule) = rule.parse() {
                    metadata.insert("x-kring-rule", rule);
                }
            }
            _ => {}
        }
        status
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Closed => ApiError::Unavailable("the node is shutting down".into()),
            LedgerError::Failed(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(format!("store: {e}"))
    }
}

impl From<PseudonymError> for ApiError {
    fn from(e: PseudonymError) -> Self {
        match e {
            PseudonymError::Refused(why) => ApiError::ResourceExhausted(why),
            PseudonymError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        match e {
            SignalError::Invalid(invalid) => ApiError::Invalid(invalid),
            SignalError::NotFound(_) => ApiError::NotFound(format!("signal_id: {e}")),
            SignalError::VersionMismatch { .. } => {
                ApiError::FailedPrecondition(format!("expected_version: {e}"))
            }
            SignalError::Unchanged => ApiError::FailedPrecondition(e.to_string()),
            SignalError::NotAtStepFive(_) => {
                ApiError::FailedPrecondition(format!("meldcode_step: {e}"))
            }
            SignalError::NotFederated | SignalError::NoVeiligThuis => {
                ApiError::FailedPrecondition(e.to_string())
            }
            SignalError::Pseudonym(e) => e.into(),
            SignalError::Ledger(e) => e.into(),
            SignalError::Store(e) => e.into(),
        }
    }
}

impl From<crate::policy::Denial> for ApiError {
    fn from(e: crate::policy::Denial) -> Self {
        ApiError::Policy(e.to_string())
    }
}

impl From<crate::index::IndexError> for ApiError {
    fn from(e: crate::index::IndexError) -> Self {
        use crate::index::IndexError;
        match e {
            IndexError::Denied(denial) => denial.into(),
            IndexError::HouseholdNotAllowed(_) => ApiError::Policy(e.to_string()),
            IndexError::RegieHeld { .. } | IndexError::NoRegie(_) => {
                ApiError::FailedPrecondition(format!("regie: {e}"))
            }
            IndexError::Days { .. } => {
                ApiError::invalid("days", e.to_string().trim_start_matches("days: "))
            }
            IndexError::Invalid { field, rule } => ApiError::invalid(field, rule),
            IndexError::Vault(e) => e.into(),
            IndexError::Ledger(e) => e.into(),
            IndexError::Store(e) => e.into(),
        }
    }
}

impl From<crate::index::vault::VaultError> for ApiError {
    fn from(e: crate::index::vault::VaultError) -> Self {
        use crate::index::vault::VaultError;
        match e {
            VaultError::Rotating { .. } => ApiError::FailedPrecondition(e.to_string()),
            VaultError::Ledger(e) => e.into(),
            VaultError::Store(e) => e.into(),
            VaultError::Person { .. } => ApiError::Internal(e.to_string()),
            VaultError::NoServices | VaultError::Share { .. } | VaultError::Retire { .. } => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

impl From<crate::federation::PeerError> for ApiError {
    fn from(e: crate::federation::PeerError) -> Self {
        // A peer's refusal keeps its code and its own message, which names the rule there.
        match e {
            crate::federation::PeerError::Refused { code, message, .. } => match code.as_str() {
                "permission_denied" => {
                    ApiError::Policy(message.trim_start_matches("policy: ").to_owned())
                }
                "not_found" => ApiError::NotFound(message),
                _ => ApiError::FailedPrecondition(message),
            },
            crate::federation::PeerError::Unavailable { .. } => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}
