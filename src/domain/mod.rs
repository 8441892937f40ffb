//! Pure domain types: parsed once at the edge, typed from then on. Nothing here does I/O or
//! knows about gRPC, storage or the network.
//!
//! Architecture invariant: `domain` imports nothing else of the crate.

mod audit;
mod bsn;
mod date;
mod federation;
mod ids;
mod org;
mod outbox;
mod purpose;
mod signal;

pub use audit::{AccessedEvent, Action, Actor, AuditEvent, EventDraft, Outcome};
pub use bsn::{Bsn, BsnError};
pub use date::{CalendarDate, DateError};
pub use federation::{
    ARCHIVE_YEARS, ArchiveEntry, ArchiveReason, ArchivedParty, BreakGlassItem, BreakGlassReason,
    ContactDetails, ForkKind, ForkRecord, IndexEpoch, IndexNotice, Lookup, Notice, Pointer,
    ReceivedMelding, Regie, RequestContext, RetractReason, Review, ReviewOutcome, ReviewReason,
    SealedPerson, Waakvlam,
};
pub use ids::{
    ContactPointId, IdError, MessageId, PrincipalId, Pseudonym, PseudonymError, SignalId,
    TransactionId, UnixMillis,
};
// The macro behind every closed list, for the closed lists other modules own.
pub(crate) use org::closed_enum;
pub use org::{Oin, OinError, OrgType, Ring};
pub use outbox::{OutboxBody, OutboxMessage};
pub use purpose::{LegalBasis, Purpose, Role};
pub use signal::{
    Category, ExpiryReason, Invalid, MAX_RELATED, MeldcodeStep, RegisterSignal, RelatedBsn,
    RelatedPseudonym, Relation, Severity, Signal, SignalChange, SignalContent, WithdrawReason,
    expiry, parse_bsn,
};

/// A name that is not in one of the closed lists; says which names are allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind}; allowed: {}", allowed.join(", "))]
pub struct UnknownName {
    pub kind: &'static str,
    pub allowed: &'static [&'static str],
}
