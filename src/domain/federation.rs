//! What the federation keeps and says: pointers at the index, notices at organisations,
//! coordinators (regie), waakvlam follow-ups, meldingen and break-glass reviews. Persons are
//! federation pseudonyms here, except where a record is kept at an organisation, which holds
//! its own local pseudonyms.

use serde::{Deserialize, Serialize};

use super::ids::{MessageId, PrincipalId, Pseudonym, SignalId, TransactionId, UnixMillis};
use super::org::{Oin, closed_enum};
use super::purpose::Role;
use super::signal::{Category, ExpiryReason, RelatedPseudonym, Severity, WithdrawReason};

closed_enum! {
    /// Why the glass was broken: a break-glass request names one.
    BreakGlassReason {
        AcuteDangerChild = "acute_danger_child",
        AcuteDangerAdult = "acute_danger_adult",
        ImminentViolence = "imminent_violence",
        MissingPerson = "missing_person",
        Other = "other",
    }
}

closed_enum! {
    ReviewOutcome {
        Justified = "justified",
        Unjustified = "unjustified",
    }
}

closed_enum! {
    ReviewReason {
        AcuteDangerConfirmed = "acute_danger_confirmed",
        Proportionate = "proportionate",
        NoAcuteDanger = "no_acute_danger",
        WrongPerson = "wrong_person",
        ExcessiveScope = "excessive_scope",
        Other = "other",
    }
}

/// Who asks, for what, in one exchange between nodes. The asking organisation is not in it:
/// it is whoever the mutual TLS connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub transaction: TransactionId,
    pub purpose: super::purpose::Purpose,
    /// The professional at the asking node.
    pub user: PrincipalId,
    pub role: Option<Role>,
    pub break_glass: Option<BreakGlassReason>,
}

/// What the index tells about a person: pointers, the household around them, the coordinator
/// and waakvlam follow-ups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    /// (organisation, signal, the pointer's subject, how that subject stands to the person
    /// asked about; `None` for that person).
    pub pointers: Vec<(Oin, SignalId, Pseudonym, Option<super::signal::Relation>)>,
    pub household: Vec<(Pseudonym, super::signal::Relation)>,
    pub regie: Option<Regie>,
    pub waakvlam: Vec<Waakvlam>,
}

/// What the index holds for one signal: who holds it, about whom, until when. Never a
/// category, a severity or a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub organisation: Oin,
    pub signal: SignalId,
    pub subject: Pseudonym,
    pub related: Vec<RelatedPseudonym>,
    pub expires_at: UnixMillis,
    pub published_at: UnixMillis,
    /// Why it expires at `expires_at`: the index archives a pointer whose retention period
    /// ended, not one whose subject left the age range.
    #[serde(default = "ExpiryReason::before_age_ranges")]
    pub expiry_reason: ExpiryReason,
}

impl Pointer {
    pub fn persons(&self) -> impl Iterator<Item = Pseudonym> + '_ {
        std::iter::once(self.subject).chain(self.related.iter().map(|r| r.pseudonym))
    }
}

closed_enum! {
    /// Why an organisation takes its pointer back from the index.
    RetractReason {
        Unfounded = "unfounded",
        RiskGone = "risk_gone",
        SubjectMoved = "subject_moved",
        Other = "other",
        /// The signal's retention period ended.
        RetentionEnded = "retention_ended",
        /// The signal's subject left the organisation's statutory age range.
        AgeRangeEnded = "age_range_ended",
    }
}

impl RetractReason {
    pub fn withdrawn(reason: WithdrawReason) -> RetractReason {
        match reason {
            WithdrawReason::Unfounded => RetractReason::Unfounded,
            WithdrawReason::RiskGone => RetractReason::RiskGone,
            WithdrawReason::SubjectMoved => RetractReason::SubjectMoved,
            WithdrawReason::Other => RetractReason::Other,
        }
    }

    pub fn expired(reason: ExpiryReason) -> RetractReason {
        match reason {
            ExpiryReason::Retention => RetractReason::RetentionEnded,
            ExpiryReason::AgeRange => RetractReason::AgeRangeEnded,
        }
    }

    /// What a retraction queued before retractions carried a reason stands for: not known,
    /// so nothing is archived.
    pub fn unrecorded() -> RetractReason {
        RetractReason::Other
    }

    /// Whether the pointer goes to the historical archive: only when the law says so (the
    /// risk is gone, or the signal's term ended). An unfounded signal, one whose subject
    /// moved or left the age range, and one withdrawn for another reason are forgotten.
    pub fn archive(self) -> Option<ArchiveReason> {
        match self {
            RetractReason::RiskGone => Some(ArchiveReason::RiskGone),
            RetractReason::RetentionEnded => Some(ArchiveReason::RetentionEnded),
            RetractReason::Unfounded
            | RetractReason::SubjectMoved
            | RetractReason::Other
            | RetractReason::AgeRangeEnded => None,
        }
    }
}

closed_enum! {
    /// Why a pointer is in the index's historical archive.
    ArchiveReason {
        RiskGone = "risk_gone",
        RetentionEnded = "retention_ended",
    }
}

/// The years an archived pointer is kept.
pub const ARCHIVE_YEARS: i32 = 5;

/// What the index keeps of a pointer that left because the risk was gone or its term ended:
/// the subject's federation pseudonym, the organisation, when and why, for five years. It
/// yields nothing on a lookup and makes no match; a new pointer on the same subject from
/// another organisation is told of it ([`IndexNotice::HistoricalMatch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    pub organisation: Oin,
    /// The archived signal's reference: names the entry, never shown.
    pub signal: SignalId,
    pub subject: Pseudonym,
    pub archived_at: UnixMillis,
    pub reason: ArchiveReason,
    pub expires_at: UnixMillis,
}

impl ArchiveEntry {
    /// The entry for a pointer that left at `since` (withdrawn, or its retention period
    /// ended): kept for at most [`ARCHIVE_YEARS`] from then.
    pub fn new(pointer: &Pointer, reason: ArchiveReason, since: UnixMillis) -> ArchiveEntry {
        ArchiveEntry {
            organisation: pointer.organisation,
            signal: pointer.signal,
            subject: pointer.subject,
            archived_at: since,
            reason,
            expires_at: since.plus_years(ARCHIVE_YEARS),
        }
    }
}

/// An archived pointer as a historical match names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedParty {
    pub party: Oin,
    pub archived_at: UnixMillis,
    pub reason: ArchiveReason,
}

/// The one coordinator of a person or household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regie {
    pub holder: Oin,
    pub since: UnixMillis,
}

/// A household kept in view after a case closes: a new signal on any of its persons alerts
/// the coordinator at once, and check-ins fall due every `check_in_days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waakvlam {
    pub id: SignalId,
    pub coordinator: Oin,
    pub persons: Vec<Pseudonym>,
    pub started: UnixMillis,
    pub until: UnixMillis,
    pub check_in_days: u32,
    pub alerts: u32,
}

impl Waakvlam {
    /// The first check-in due after `now` (or `until` if none is left).
    pub fn next_check_in(&self, now: UnixMillis) -> UnixMillis {
        let step = i64::from(self.check_in_days.max(1)) * UnixMillis::DAY;
        let elapsed = (now.0 - self.started.0).max(0);
        let next = self.started.0 + (elapsed / step + 1) * step;
        UnixMillis(next.min(self.until.0))
    }

    pub fn active(&self, now: UnixMillis) -> bool {
        now >= self.started && now < self.until
    }
}

/// What the index tells an organisation about one of its signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum IndexNotice {
    /// Other organisations hold signals on the same person or household (the full list).
    Match {
        signal: SignalId,
        parties: Vec<Oin>,
        household: bool,
        regie: Option<Regie>,
    },
    /// An organisation's signal went (withdrawn or expired).
    MatchEnded { signal: SignalId, party: Oin },
    /// A new signal on a person of a household in follow-up.
    WaakvlamAlert {
        waakvlam: SignalId,
        party: Oin,
        person: Pseudonym,
        until: UnixMillis,
    },
    /// The coordinator changed (or left, when `regie` is none).
    RegieChanged {
        signal: SignalId,
        regie: Option<Regie>,
    },
    /// The subject of a new signal is in the historical archive: other organisations' signals
    /// on the same person left the index in the last five years because the risk was gone or
    /// their retention period ended. Not a match: they hold nothing on the person now.
    HistoricalMatch {
        signal: SignalId,
        archived: Vec<ArchivedParty>,
    },
}

impl IndexNotice {
    /// The recipient's signal the notice is about, if any.
    pub fn signal(&self) -> Option<SignalId> {
        match self {
            IndexNotice::Match { signal, .. }
            | IndexNotice::MatchEnded { signal, .. }
            | IndexNotice::RegieChanged { signal, .. }
            | IndexNotice::HistoricalMatch { signal, .. } => Some(*signal),
            IndexNotice::WaakvlamAlert { .. } => None,
        }
    }
}

/// A notice as an organisation keeps it, in arrival order; `cursor` resumes a watcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub cursor: u64,
    pub received: UnixMillis,
    pub from: Oin,
    pub notice: IndexNotice,
}

/// A melding as Veilig Thuis keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedMelding {
    pub message: super::ids::MessageId,
    pub from: Oin,
    pub received: UnixMillis,
    pub signal: SignalId,
    /// The subject's local pseudonym at Veilig Thuis (converted when the melding arrives, like
    /// every person an organisation keeps): the same value its own lists and audit events use.
    /// A melding kept before that (`subject_is_local` false) holds the federation pseudonym and
    /// is converted when it is read.
    pub subject: Pseudonym,
    #[serde(default)]
    pub subject_is_local: bool,
    pub category: Category,
    pub severity: Severity,
    pub registered_at: UnixMillis,
    pub contact_point: ContactDetails,
    pub reported_by: PrincipalId,
}

/// A contact point's details as they travel to another organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContactDetails {
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A break-glass disclosure of this organisation's signals, kept for its privacy officers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassItem {
    pub id: SignalId,
    pub transaction: TransactionId,
    pub at: UnixMillis,
    pub requester: Oin,
    pub requester_user: String,
    pub requester_role: Option<Role>,
    pub reason: BreakGlassReason,
    pub signals: Vec<SignalId>,
    pub review: Option<Review>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub outcome: ReviewOutcome,
    pub reason: ReviewReason,
    pub by: PrincipalId,
    pub at: UnixMillis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ins_fall_due_every_period_until_the_end() {
        let day = UnixMillis::DAY;
        let w = Waakvlam {
            id: SignalId::new(),
            coordinator: Oin::parse("00000001820000005000").unwrap(),
            persons: vec![],
            started: UnixMillis(0),
            until: UnixMillis(90 * day),
            check_in_days: 28,
            alerts: 0,
        };
        assert_eq!(w.next_check_in(UnixMillis(0)), UnixMillis(28 * day));
        assert_eq!(w.next_check_in(UnixMillis(28 * day)), UnixMillis(56 * day));
        assert_eq!(w.next_check_in(UnixMillis(85 * day)), UnixMillis(90 * day));
        assert!(w.active(UnixMillis(89 * day)));
        assert!(!w.active(UnixMillis(90 * day)));
    }
}

closed_enum! {
    /// How a witness found a log's history rewritten.
    ForkKind {
        /// Two signed checkpoints of the same size with different roots: proof on its own.
        Equivocation = "equivocation",
        /// A signed checkpoint smaller than one the witness had seen: the log went back.
        Rollback = "rollback",
        /// A larger signed checkpoint that the log could not prove extends the one seen.
        Inconsistent = "inconsistent",
    }
}

/// A fork of one member's audit log, as its witness found it: the evidence is both signed
/// checkpoints (C2SP signed notes under the log's pinned audit key). Kept by the witness and
/// by every member it alerted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkRecord {
    pub id: MessageId,
    pub log: Oin,
    pub witness: Oin,
    pub kind: ForkKind,
    pub detected_at: UnixMillis,
    /// The checkpoint the witness had seen and cosigned.
    pub seen: String,
    /// The checkpoint the log presented later.
    pub presented: String,
}

/// The index's key epochs: every person it knows is kept under `current`, or, while a
/// rotation runs, under `current` or `next` (see `index::vault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEpoch {
    pub current: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<u32>,
    /// When `current` became the epoch every person is kept under.
    #[serde(default)]
    pub since: UnixMillis,
}

/// A person's federation pseudonym as the index keeps it: sealed (AES-256-GCM) under the
/// index key of `epoch`, which exists only in the index's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPerson {
    pub epoch: u32,
    /// Nonce, ciphertext and tag, base64url.
    pub sealed: String,
}
