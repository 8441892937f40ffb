//! What the federation keeps and says: pointers at the index, notices at organisations,
//! coordinators (regie), waakvlam follow-ups, meldingen and break-glass reviews. Persons are
//! federation pseudonyms here, except where a record is kept at an organisation, which holds
//! its own local pseudonyms.

use serde::{Deserialize, Serialize};

use super::ids::{PrincipalId, Pseudonym, SignalId, TransactionId, UnixMillis};
use super::org::{Oin, closed_enum};
use super::purpose::Role;
use super::signal::{Category, RelatedPseudonym, Severity};

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
}

impl Pointer {
    pub fn persons(&self) -> impl Iterator<Item = Pseudonym> + '_ {
        std::iter::once(self.subject).chain(self.related.iter().map(|r| r.pseudonym))
    }
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
    /// The subject's federation pseudonym, so that Veilig Thuis can find the person.
    pub subject: Pseudonym,
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
