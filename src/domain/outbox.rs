//! Messages a node owes the federation. They are written in the same transaction as the state
//! change that causes them and delivered until acknowledged; receivers are idempotent by id.

use serde::{Deserialize, Serialize};

use super::federation::RetractReason;
use super::federation::{ContactDetails, ForkRecord, IndexNotice};
use super::ids::{MessageId, PrincipalId, Pseudonym, SignalId, TransactionId, UnixMillis};
use super::org::Oin;
use super::signal::{Category, ExpiryReason, RelatedPseudonym, Severity};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: MessageId,
    pub transaction: TransactionId,
    pub created: UnixMillis,
    pub body: OutboxBody,
    /// Whom the delivery's audit event names, as this node's own pseudonyms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Pseudonym>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OutboxBody {
    /// Tell the index that this organisation holds an active signal on these persons.
    PublishPointer {
        signal: SignalId,
        subject: Pseudonym,
        related: Vec<RelatedPseudonym>,
        expires_at: UnixMillis,
        #[serde(default = "ExpiryReason::before_age_ranges")]
        expiry_reason: ExpiryReason,
    },
    /// Tell the index the signal is gone, and why (which decides whether it is archived).
    RetractPointer {
        signal: SignalId,
        #[serde(default = "RetractReason::unrecorded")]
        reason: RetractReason,
    },
    /// Meldcode step 5: hand the signal to Veilig Thuis.
    Melding {
        to: Oin,
        signal: SignalId,
        subject: Pseudonym,
        category: Category,
        severity: Severity,
        registered_at: UnixMillis,
        contact_point: ContactDetails,
        reported_by: PrincipalId,
    },
    /// From the index to an organisation, about one of its signals.
    Notice { to: Oin, notice: IndexNotice },
    /// From a witness to a member: a member's log forked; keep the evidence.
    ForkAlert { to: Oin, fork: ForkRecord },
}

impl OutboxBody {
    /// Where the message goes: `None` means the federation's index.
    pub fn destination(&self) -> Option<Oin> {
        match self {
            OutboxBody::PublishPointer { .. } | OutboxBody::RetractPointer { .. } => None,
            OutboxBody::Melding { to, .. }
            | OutboxBody::Notice { to, .. }
            | OutboxBody::ForkAlert { to, .. } => Some(*to),
        }
    }
}
