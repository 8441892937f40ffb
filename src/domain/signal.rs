//! A signaal: the minimal record that an organisation is worried about a person. It has no
//! free-text field, by design: everything in it is a closed value, an identifier or a time.

use serde::{Deserialize, Serialize};

use super::bsn::{Bsn, BsnError};
use super::date::CalendarDate;
use super::ids::{ContactPointId, PrincipalId, Pseudonym, SignalId, UnixMillis};
use super::org::closed_enum;

closed_enum! {
    /// The form of violence or worry, following the meldcode's afwegingskader.
    Category {
        Physical = "physical",
        Psychological = "psychological",
        Sexual = "sexual",
        Neglect = "neglect",
        ChildWitnessing = "child_witnessing",
        HonourRelated = "honour_related",
        Fgm = "fgm",
        ElderAbuse = "elder_abuse",
        Financial = "financial",
        CoerciveControl = "coercive_control",
        NietPluis = "niet_pluis",
    }
}

closed_enum! {
    /// Ordered from the least to the most serious.
    Severity {
        NietPluis = "niet_pluis",
        Zorg = "zorg",
        Ernstig = "ernstig",
        Acuut = "acuut",
    }
}

closed_enum! {
    /// The five steps of the meldcode.
    MeldcodeStep {
        Signalen = "1_signalen",
        Consultatie = "2_consultatie",
        Gesprek = "3_gesprek",
        Wegen = "4_wegen",
        Beslissen = "5_beslissen",
    }
}

impl MeldcodeStep {
    pub fn number(self) -> u8 {
        match self {
            MeldcodeStep::Signalen => 1,
            MeldcodeStep::Consultatie => 2,
            MeldcodeStep::Gesprek => 3,
            MeldcodeStep::Wegen => 4,
            MeldcodeStep::Beslissen => 5,
        }
    }
}

closed_enum! {
    /// How a related person stands to the subject: `Parent` means "is the subject's parent".
    Relation {
        Parent = "parent",
        Child = "child",
        Partner = "partner",
        ExPartner = "ex_partner",
        Sibling = "sibling",
        HouseholdMember = "household_member",
    }
}

closed_enum! {
    WithdrawReason {
        Unfounded = "unfounded",
        RiskGone = "risk_gone",
        SubjectMoved = "subject_moved",
        Other = "other",
    }
}

closed_enum! {
    /// Why a signal expires when it does: the end of its retention period (at most two years
    /// after registration), or the day its subject leaves the organisation's statutory age
    /// range, whichever comes first.
    ExpiryReason {
        Retention = "retention",
        AgeRange = "age_range",
    }
}

impl ExpiryReason {
    /// What records from before age ranges hold: their expiry was their retention period.
    pub fn before_age_ranges() -> ExpiryReason {
        ExpiryReason::Retention
    }
}

/// When a signal registered at `now` expires, and why: at the end of `retention`, or at the
/// start of the day its subject leaves the age range (00:00 Europe/Amsterdam) if that is
/// sooner.
pub fn expiry(
    now: UnixMillis,
    retention_millis: i64,
    age_range_ends_on: Option<CalendarDate>,
) -> (UnixMillis, ExpiryReason) {
    let retained = now.plus_millis(retention_millis);
    match age_range_ends_on.map(CalendarDate::start_in_amsterdam) {
        Some(ends) if ends <= retained => (ends, ExpiryReason::AgeRange),
        _ => (retained, ExpiryReason::Retention),
    }
}

/// The most related persons one signal may name.
pub const MAX_RELATED: usize = 20;

/// A refused input: which field, and which rule it broke. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    pub field: String,
    pub rule: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, rule: impl ToString) -> Invalid {
        Invalid {
            field: field.into(),
            rule: rule.to_string(),
        }
    }
}

/// A related person as typed by the professional.
#[derive(Debug)]
pub struct RelatedBsn {
    pub bsn: Bsn,
    pub relation: Relation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedPseudonym {
    pub pseudonym: Pseudonym,
    pub relation: Relation,
}

/// A request to register a signal, with every rule of the record checked. The BSNs in it are
/// consumed by pseudonymisation.
#[derive(Debug)]
pub struct RegisterSignal {
    subject: Bsn,
    related: Vec<RelatedBsn>,
    pub category: Category,
    pub severity: Severity,
    pub meldcode_step: MeldcodeStep,
    pub contact_point: ContactPointId,
    /// The day the subject leaves the organisation's statutory age range, if it records one.
    pub age_range_ends_on: Option<CalendarDate>,
}

impl RegisterSignal {
    /// Checks the rules that span fields: at most [`MAX_RELATED`] related persons, none of
    /// them the subject, none named twice.
    pub fn new(
        subject: Bsn,
        related: Vec<RelatedBsn>,
        category: Category,
        severity: Severity,
        meldcode_step: MeldcodeStep,
        contact_point: ContactPointId,
    ) -> Result<RegisterSignal, Invalid> {
        if related.len() > MAX_RELATED {
            return Err(Invalid::new(
                "related",
                format!("at most {MAX_RELATED} related persons"),
            ));
        }
        for (i, person) in related.iter().enumerate() {
            if person.bsn == subject {
                return Err(Invalid::new(
                    format!("related[{i}].bsn"),
                    "is the subject itself",
                ));
            }
            if related[..i].iter().any(|earlier| earlier.bsn == person.bsn) {
                return Err(Invalid::new(
                    format!("related[{i}].bsn"),
                    "names a person already related",
                ));
            }
        }
        Ok(RegisterSignal {
            subject,
            related,
            category,
            severity,
            meldcode_step,
            contact_point,
            age_range_ends_on: None,
        })
    }

    /// Splits off the persons (subject first) for pseudonymisation.
    pub fn into_parts(self) -> (Vec<Bsn>, Vec<Relation>, SignalContent) {
        let mut persons = Vec::with_capacity(1 + self.related.len());
        let mut relations = Vec::with_capacity(self.related.len());
        persons.push(self.subject);
        for person in self.related {
            persons.push(person.bsn);
            relations.push(person.relation);
        }
        let content = SignalContent {
            category: self.category,
            severity: self.severity,
            meldcode_step: self.meldcode_step,
            contact_point: self.contact_point,
            age_range_ends_on: self.age_range_ends_on,
        };
        (persons, relations, content)
    }
}

/// The closed fields of a signal, without the persons.
#[derive(Debug, Clone)]
pub struct SignalContent {
    pub category: Category,
    pub severity: Severity,
    pub meldcode_step: MeldcodeStep,
    pub contact_point: ContactPointId,
    pub age_range_ends_on: Option<CalendarDate>,
}

/// Parses a BSN for a named field.
pub fn parse_bsn(field: &str, input: &str) -> Result<Bsn, Invalid> {
    Bsn::parse(input).map_err(|e: BsnError| Invalid::new(field, e))
}

/// A stored signal. Persons appear only as pseudonyms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub id: SignalId,
    pub subject: Pseudonym,
    pub related: Vec<RelatedPseudonym>,
    pub category: Category,
    pub severity: Severity,
    pub meldcode_step: MeldcodeStep,
    pub contact_point: ContactPointId,
    pub registered_by: PrincipalId,
    pub registered_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub version: u32,
    /// Why it expires at `expires_at`. The age range's date itself is not kept.
    #[serde(default = "ExpiryReason::before_age_ranges")]
    pub expiry_reason: ExpiryReason,
}

impl Signal {
    /// Every person the signal names: the subject first, then the related persons.
    pub fn persons(&self) -> impl Iterator<Item = Pseudonym> + '_ {
        std::iter::once(self.subject).chain(self.related.iter().map(|r| r.pseudonym))
    }
}

/// A change to an active signal's meldcode step and/or severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalChange {
    pub meldcode_step: Option<MeldcodeStep>,
    pub severity: Option<Severity>,
    pub expected_version: Option<u32>,
}

impl SignalChange {
    pub fn new(
        meldcode_step: Option<MeldcodeStep>,
        severity: Option<Severity>,
        expected_version: Option<u32>,
    ) -> Result<SignalChange, Invalid> {
        if meldcode_step.is_none() && severity.is_none() {
            return Err(Invalid::new(
                "meldcode_step",
                "an update must change the meldcode step, the severity or both",
            ));
        }
        Ok(SignalChange {
            meldcode_step,
            severity,
            expected_version,
        })
    }

    /// Whether applying the change would leave the signal as it is.
    pub fn changes_nothing(&self, signal: &Signal) -> bool {
        self.meldcode_step.is_none_or(|s| s == signal.meldcode_step)
            && self.severity.is_none_or(|s| s == signal.severity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bsn(s: &str) -> Bsn {
        Bsn::parse(s).unwrap()
    }

    fn register(related: Vec<RelatedBsn>) -> Result<RegisterSignal, Invalid> {
        RegisterSignal::new(
            bsn("111222333"),
            related,
            Category::NietPluis,
            Severity::NietPluis,
            MeldcodeStep::Signalen,
            ContactPointId::parse("zorg").unwrap(),
        )
    }

    #[test]
    fn related_persons_are_checked() {
        assert!(register(vec![]).is_ok());
        let subject_twice = register(vec![RelatedBsn {
            bsn: bsn("111222333"),
            relation: Relation::Parent,
        }]);
        assert_eq!(subject_twice.unwrap_err().field, "related[0].bsn");
        let duplicate = register(vec![
            RelatedBsn {
                bsn: bsn("123456782"),
                relation: Relation::Parent,
            },
            RelatedBsn {
                bsn: bsn("123456782"),
                relation: Relation::Sibling,
            },
        ]);
        assert_eq!(duplicate.unwrap_err().field, "related[1].bsn");
        let too_many = (0..=MAX_RELATED)
            .map(|_| RelatedBsn {
                bsn: bsn("123456782"),
                relation: Relation::Sibling,
            })
            .collect();
        assert_eq!(register(too_many).unwrap_err().field, "related");
    }

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::NietPluis < Severity::Zorg);
        assert!(Severity::Ernstig < Severity::Acuut);
    }

    #[test]
    fn an_update_must_change_something() {
        assert!(SignalChange::new(None, None, None).is_err());
        assert!(SignalChange::new(Some(MeldcodeStep::Gesprek), None, None).is_ok());
    }
}
