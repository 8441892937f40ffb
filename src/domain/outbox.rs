//! Messages a node owes the federation. They are written in the same transaction as the state
//! change that causes them and delivered until acknowledged; receivers are idempotent by id.

use serde::{Deserialize, Serialize};

use super::ids::{MessageId, Pseudonym, SignalId, TransactionId, UnixMillis};
use super::signal::RelatedPseudonym;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: MessageId,
    pub transaction: TransactionId,
    pub created: UnixMillis,
    pub body: OutboxBody,
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
    },
    /// Tell the index the signal is gone.
    RetractPointer { signal: SignalId },
}
