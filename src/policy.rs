//! The purpose policy (doelbinding): which organisation types and which local roles may ask for
//! each purpose, on which legal basis, which fields of a signal it discloses, whether it
//! reaches the household, and whether a break-glass reason is mandatory. Also who may hold
//! regie and the waakvlam periods.
//!
//! The policy travels inside the signed federation directory ([`crate::directory`]); this
//! module owns its shape, its checks, the regional default, and the decisions over it:
//! [`authorise`], [`may_hold_regie`], [`household_allowed`] and [`disclose`]. Every decision
//! is a pure function of the directory and the request. This module does no I/O, keeps no
//! state and never audits: the caller records every decision, a denial as much as a
//! disclosure, and a [`Denial`]'s message names the rule and never a person.

use serde::{Deserialize, Serialize};

use crate::directory::Directory;
use crate::domain::{
    Category, Invalid, LegalBasis, MeldcodeStep, Oin, OrgType, Purpose, RelatedPseudonym, Role,
    Severity, Signal, SignalId, UnixMillis, closed_enum,
};

/// Why a professional breaks the glass: mandatory where the policy says so, recorded in the
/// audit log and reviewed afterwards by the privacy officers whose data was shown.
pub use crate::domain::BreakGlassReason;
/// A contact point's details as they travel to another organisation.
pub use crate::domain::ContactDetails;

closed_enum! {
    /// What a purpose may disclose of a signal.
    Field {
        /// That the signal exists (its id). Every disclosure shows this much.
        Existence = "existence",
        Category = "category",
        Severity = "severity",
        MeldcodeStep = "meldcode_step",
        /// When the signal was registered and last updated.
        Dates = "dates",
        /// How to reach the organisation about the signal.
        ContactPoint = "contact_point",
        /// The household links: the related persons' pseudonyms and relations.
        Relations = "relations",
    }
}

/// The federation's purpose policy, as signed by the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// At most one rule per purpose; a purpose without a rule cannot be asked for.
    pub purposes: Vec<PurposeRule>,
    /// Organisation types that may not coordinate a family (hold regie).
    pub regie_excluded: Vec<OrgType>,
    /// During waakvlam follow-up a check-in is due every this many days.
    pub waakvlam_checkin_days: u32,
    /// Waakvlam follow-up lasts at most this many days.
    pub waakvlam_max_days: u32,
    /// How many pseudonym evaluations one organisation may ask of each pseudonym service per
    /// minute: the bound on enumerating the BSN space through the services.
    #[serde(default = "default_pseudonym_rate")]
    pub pseudonym_rate_per_minute: u32,
}

/// Enough for registrations and queries at any one organisation's pace; with about 10^8 valid
/// BSNs it bounds one organisation's enumeration of the space to ~11 days per service, and
/// every evaluation is counted in the services' audit logs.
pub const DEFAULT_PSEUDONYM_RATE: u32 = 6_000;

fn default_pseudonym_rate() -> u32 {
    DEFAULT_PSEUDONYM_RATE
}

/// Who may ask for one purpose, and what it discloses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurposeRule {
    pub purpose: Purpose,
    /// The organisation types that may ask.
    pub org_types: Vec<OrgType>,
    /// The local role the asking user must act in.
    pub roles: Vec<Role>,
    pub legal_basis: LegalBasis,
    /// The fields of a signal this purpose discloses.
    pub fields: Vec<Field>,
    /// Whether the request may reach the household of the person asked about.
    pub household: bool,
    /// Break-glass: a reason code is mandatory.
    pub reason_required: bool,
}

impl PurposeRule {
    pub fn discloses(&self, field: Field) -> bool {
        self.fields.contains(&field)
    }
}

const TRIAGE_FIELDS: &[Field] = &[
    Field::Category,
    Field::Severity,
    Field::MeldcodeStep,
    Field::Dates,
    Field::ContactPoint,
    Field::Relations,
];

impl Policy {
    /// The regional default, following the purpose table of the design brief.
    ///
    /// "Every organisation type" means every type that holds signals for registration and
    /// match notification (the federation's own services register nothing), and every type
    /// including the federation services for subject access and audit review (their logs are
    /// reviewed too). Match notification reaches the household because the index matches on
    /// household links: the approach is systeemgericht.
    pub fn regional_default() -> Policy {
        use OrgType::*;
        let organisations: Vec<OrgType> = OrgType::ALL
            .iter()
            .copied()
            .filter(|t| *t != FederationService)
            .collect();
        let everyone = OrgType::ALL.to_vec();
        let rule =
            |purpose, org_types: &[OrgType], roles: &[Role], legal_basis, fields: &[Field]| {
                PurposeRule {
                    purpose,
                    org_types: org_types.to_vec(),
                    roles: roles.to_vec(),
                    legal_basis,
                    fields: fields.to_vec(),
                    household: false,
                    reason_required: false,
                }
            };
        let household = |rule: PurposeRule| PurposeRule {
            household: true,
            ..rule
        };
        Policy {
            purposes: vec![
                rule(
                    Purpose::Registration,
                    &organisations,
                    &[Role::Signaler],
                    LegalBasis::WetVerplichteMeldcode,
                    Field::ALL,
                ),
                household(rule(
                    Purpose::MatchNotification,
                    &organisations,
                    &[Role::Signaler, Role::Coordinator],
                    LegalBasis::Jeugdwet7141,
                    &[Field::Existence, Field::ContactPoint],
                )),
                household(rule(
                    Purpose::LocalTeamCoordination,
                    &[LocalTeam],
                    &[Role::Coordinator],
                    LegalBasis::Avg61e,
                    &[Field::Existence, Field::ContactPoint, Field::Relations],
                )),
                household(rule(
                    Purpose::VtTriage,
                    &[VeiligThuis],
                    &[Role::Analyst],
                    LegalBasis::Wmo411,
                    TRIAGE_FIELDS,
                )),
                household(rule(
                    Purpose::MdaCaseConference,
                    &[VeiligThuis, LocalTeam, Police, YouthCare, Probation],
                    &[Role::Analyst, Role::Coordinator],
                    LegalBasis::Wmo411,
                    TRIAGE_FIELDS,
                )),
                household(rule(
                    Purpose::WaakvlamFollowUp,
                    &[VeiligThuis, LocalTeam],
                    &[Role::Coordinator],
                    LegalBasis::Avg61e,
                    &[Field::Existence, Field::ContactPoint, Field::Dates],
                )),
                PurposeRule {
                    reason_required: true,
                    ..household(rule(
                        Purpose::Emergency,
                        &[VeiligThuis, Police, LocalTeam],
                        &[Role::Analyst, Role::Coordinator],
                        LegalBasis::Avg61d,
                        TRIAGE_FIELDS,
                    ))
                },
                rule(
                    Purpose::SubjectAccess,
                    &everyone,
                    &[Role::PrivacyOfficer],
                    LegalBasis::Avg15,
                    &[Field::Existence],
                ),
                rule(
                    Purpose::AuditReview,
                    &everyone,
                    &[Role::PrivacyOfficer],
                    LegalBasis::Avg61c,
                    &[Field::Existence],
                ),
            ],
            regie_excluded: vec![FederationService, Association, SportsClub, FaithCommunity],
            waakvlam_checkin_days: 28,
            waakvlam_max_days: 365,
            pseudonym_rate_per_minute: DEFAULT_PSEUDONYM_RATE,
        }
    }

    /// The rule for `purpose`, if the policy has one.
    pub fn rule(&self, purpose: Purpose) -> Option<&PurposeRule> {
        self.purposes.iter().find(|rule| rule.purpose == purpose)
    }

    /// Checks the rules that span entries; `field` names are relative to the policy
    /// (`purposes[3].roles[1]`), for the caller to prefix.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.pseudonym_rate_per_minute == 0 {
            return Err(Invalid::new(
                "pseudonym_rate_per_minute",
                "must be at least 1",
            ));
        }
        for (i, rule) in self.purposes.iter().enumerate() {
            let key = |field: &str| format!("purposes[{i}].{field}");
            if self.purposes[..i].iter().any(|r| r.purpose == rule.purpose) {
                return Err(Invalid::new(
                    key("purpose"),
                    format!("{} has a rule already", rule.purpose),
                ));
            }
            check_list(&key("org_types"), &rule.org_types, "organisation type")?;
            check_list(&key("roles"), &rule.roles, "role")?;
            if let Some(j) = rule.roles.iter().position(|r| *r == Role::Admin) {
                return Err(Invalid::new(
                    format!("purposes[{i}].roles[{j}]"),
                    "admin grants no data access",
                ));
            }
            check_list(&key("fields"), &rule.fields, "field")?;
        }
        if let Some(j) = first_repeat(&self.regie_excluded) {
            return Err(Invalid::new(format!("regie_excluded[{j}]"), "listed twice"));
        }
        if self.waakvlam_checkin_days == 0 {
            return Err(Invalid::new("waakvlam_checkin_days", "must be at least 1"));
        }
        if self.waakvlam_max_days == 0 {
            return Err(Invalid::new("waakvlam_max_days", "must be at least 1"));
        }
        if self.waakvlam_checkin_days > self.waakvlam_max_days {
            return Err(Invalid::new(
                "waakvlam_checkin_days",
                "must not exceed waakvlam_max_days",
            ));
        }
        Ok(())
    }
}

fn first_repeat<T: PartialEq>(items: &[T]) -> Option<usize> {
    (0..items.len()).find(|&j| items[..j].contains(&items[j]))
}

fn check_list<T: PartialEq>(key: &str, items: &[T], what: &str) -> Result<(), Invalid> {
    if items.is_empty() {
        return Err(Invalid::new(
            key,
            format!("at least one {what} is required"),
        ));
    }
    if let Some(j) = first_repeat(items) {
        return Err(Invalid::new(format!("{key}[{j}]"), "listed twice"));
    }
    Ok(())
}

/// A refused request: which rule it broke. The message is the audit reason and the status
/// message; it names the purpose, type, role or organisation, never a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("requester {requester}: not a member")]
    NotAMember { requester: Oin },
    #[error("purpose {purpose}: no rule in the federation policy")]
    NoRule { purpose: Purpose },
    #[error("purpose {purpose}: organisation type {org_type} may not ask")]
    OrgType { purpose: Purpose, org_type: OrgType },
    #[error("purpose {purpose}: role {role} may not ask")]
    Role { purpose: Purpose, role: Role },
    #[error("purpose {purpose}: a break-glass reason is required")]
    ReasonRequired { purpose: Purpose },
    #[error("organisation type {org_type} may not hold regie")]
    RegieExcluded { org_type: OrgType },
}

/// Decides whether a user of member `requester`, acting in `user_role`, may ask for
/// `purpose`, and returns the rule that then governs what is disclosed. A break-glass reason
/// is checked only where the rule requires one; where it does not, the caller still records
/// a reason it was given.
pub fn authorise<'d>(
    directory: &'d Directory,
    requester: &Oin,
    purpose: Purpose,
    user_role: Role,
    break_glass_reason: Option<BreakGlassReason>,
) -> Result<&'d PurposeRule, Denial> {
    let member = directory.member(requester).ok_or(Denial::NotAMember {
        requester: *requester,
    })?;
    let rule = directory
        .policy()
        .rule(purpose)
        .ok_or(Denial::NoRule { purpose })?;
    if !rule.org_types.contains(&member.org_type) {
        return Err(Denial::OrgType {
            purpose,
            org_type: member.org_type,
        });
    }
    if !rule.roles.contains(&user_role) {
        return Err(Denial::Role {
            purpose,
            role: user_role,
        });
    }
    if rule.reason_required && break_glass_reason.is_none() {
        return Err(Denial::ReasonRequired { purpose });
    }
    Ok(rule)
}

/// Whether a request under `rule` may reach the household of the person asked about.
pub fn household_allowed(rule: &PurposeRule) -> bool {
    rule.household
}

/// Whether an organisation of type `org_type` may coordinate a family (hold regie).
pub fn may_hold_regie(directory: &Directory, org_type: OrgType) -> Result<(), Denial> {
    if directory.policy().regie_excluded.contains(&org_type) {
        return Err(Denial::RegieExcluded { org_type });
    }
    Ok(())
}

/// A signal as one purpose may see it: the id always (the signal exists), every other field
/// only where the purpose's rule discloses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosedSignal {
    pub signal: SignalId,
    pub category: Option<Category>,
    pub severity: Option<Severity>,
    pub meldcode_step: Option<MeldcodeStep>,
    pub registered_at: Option<UnixMillis>,
    pub updated_at: Option<UnixMillis>,
    pub contact_point: Option<ContactDetails>,
    pub related: Option<Vec<RelatedPseudonym>>,
}

/// Filters `signal` down to what `rule` discloses. `contact` holds the details of the
/// signal's contact point (`signal.contact_point`), looked up by the caller in its
/// configuration.
pub fn disclose(rule: &PurposeRule, signal: &Signal, contact: &ContactDetails) -> DisclosedSignal {
    debug_assert_eq!(contact.id, signal.contact_point.as_str());
    let when = |field: Field| rule.discloses(field);
    DisclosedSignal {
        signal: signal.id,
        category: when(Field::Category).then_some(signal.category),
        severity: when(Field::Severity).then_some(signal.severity),
        meldcode_step: when(Field::MeldcodeStep).then_some(signal.meldcode_step),
        registered_at: when(Field::Dates).then_some(signal.registered_at),
        updated_at: when(Field::Dates).then_some(signal.updated_at),
        contact_point: when(Field::ContactPoint).then(|| contact.clone()),
        related: when(Field::Relations).then(|| signal.related.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::testing::{directory, oin, oin_of};
    use crate::domain::{ContactPointId, PrincipalId, Pseudonym, Relation};

    use BreakGlassReason::AcuteDangerChild;
    use OrgType::*;
    use Purpose::*;
    use Role::*;

    /// The outcome a row expects: allowed, or the denial's exact message.
    enum Expect {
        Allow,
        Deny(&'static str),
    }
    use Expect::*;

    #[test]
    fn the_default_policy_allows_and_denies_as_the_brief_says() {
        #[rustfmt::skip]
        let table: &[(Purpose, OrgType, Role, Option<BreakGlassReason>, Expect)] = &[
            (Registration, School, Signaler, None, Allow),
            (Registration, SportsClub, Signaler, None, Allow),
            (Registration, VeiligThuis, Signaler, None, Allow),
            (Registration, School, Coordinator, None, Deny("purpose registration: role coordinator may not ask")),
            (Registration, School, PrivacyOfficer, None, Deny("purpose registration: role privacy_officer may not ask")),
            (Registration, FederationService, Signaler, None, Deny("purpose registration: organisation type federation_service may not ask")),

            (MatchNotification, School, Signaler, None, Allow),
            (MatchNotification, Huisarts, Coordinator, None, Allow),
            (MatchNotification, SportsClub, Signaler, None, Allow),
            (MatchNotification, School, Analyst, None, Deny("purpose match_notification: role analyst may not ask")),
            (MatchNotification, FederationService, Coordinator, None, Deny("purpose match_notification: organisation type federation_service may not ask")),

            (LocalTeamCoordination, LocalTeam, Coordinator, None, Allow),
            (LocalTeamCoordination, LocalTeam, Signaler, None, Deny("purpose local_team_coordination: role signaler may not ask")),
            (LocalTeamCoordination, VeiligThuis, Coordinator, None, Deny("purpose local_team_coordination: organisation type veilig_thuis may not ask")),
            (LocalTeamCoordination, School, Coordinator, None, Deny("purpose local_team_coordination: organisation type school may not ask")),

            (VtTriage, VeiligThuis, Analyst, None, Allow),
            (VtTriage, VeiligThuis, Signaler, None, Deny("purpose vt_triage: role signaler may not ask")),
            (VtTriage, VeiligThuis, Coordinator, None, Deny("purpose vt_triage: role coordinator may not ask")),
            (VtTriage, School, Analyst, None, Deny("purpose vt_triage: organisation type school may not ask")),
            (VtTriage, Police, Analyst, None, Deny("purpose vt_triage: organisation type police may not ask")),
            (VtTriage, LocalTeam, Analyst, None, Deny("purpose vt_triage: organisation type local_team may not ask")),

            (MdaCaseConference, VeiligThuis, Analyst, None, Allow),
            (MdaCaseConference, LocalTeam, Coordinator, None, Allow),
            (MdaCaseConference, Police, Analyst, None, Allow),
            (MdaCaseConference, YouthCare, Coordinator, None, Allow),
            (MdaCaseConference, Probation, Analyst, None, Allow),
            (MdaCaseConference, School, Coordinator, None, Deny("purpose mda_case_conference: organisation type school may not ask")),
            (MdaCaseConference, Huisarts, Analyst, None, Deny("purpose mda_case_conference: organisation type huisarts may not ask")),
            (MdaCaseConference, Police, Signaler, None, Deny("purpose mda_case_conference: role signaler may not ask")),

            (WaakvlamFollowUp, VeiligThuis, Coordinator, None, Allow),
            (WaakvlamFollowUp, LocalTeam, Coordinator, None, Allow),
            (WaakvlamFollowUp, LocalTeam, Analyst, None, Deny("purpose waakvlam_follow_up: role analyst may not ask")),
            (WaakvlamFollowUp, Police, Coordinator, None, Deny("purpose waakvlam_follow_up: organisation type police may not ask")),

            (Emergency, VeiligThuis, Analyst, Some(AcuteDangerChild), Allow),
            (Emergency, Police, Coordinator, Some(BreakGlassReason::ImminentViolence), Allow),
            (Emergency, LocalTeam, Coordinator, Some(BreakGlassReason::Other), Allow),
            (Emergency, VeiligThuis, Analyst, None, Deny("purpose emergency: a break-glass reason is required")),
            (Emergency, Police, Signaler, Some(AcuteDangerChild), Deny("purpose emergency: role signaler may not ask")),
            (Emergency, School, Coordinator, Some(AcuteDangerChild), Deny("purpose emergency: organisation type school may not ask")),

            (SubjectAccess, School, PrivacyOfficer, None, Allow),
            (SubjectAccess, FederationService, PrivacyOfficer, None, Allow),
            (SubjectAccess, VeiligThuis, Analyst, None, Deny("purpose subject_access: role analyst may not ask")),
            (SubjectAccess, School, Admin, None, Deny("purpose subject_access: role admin may not ask")),

            (AuditReview, Police, PrivacyOfficer, None, Allow),
            (AuditReview, FederationService, PrivacyOfficer, None, Allow),
            (AuditReview, Police, Coordinator, None, Deny("purpose audit_review: role coordinator may not ask")),
        ];
        let d = directory();
        for (purpose, org_type, role, reason, expect) in table {
            let got = authorise(&d, &oin_of(*org_type), *purpose, *role, *reason);
            let case = format!("{purpose} {org_type} {role} {reason:?}");
            match (expect, got) {
                (Allow, Ok(rule)) => assert_eq!(rule.purpose, *purpose, "{case}"),
                (Deny(message), Err(denial)) => assert_eq!(denial.to_string(), *message, "{case}"),
                (Allow, Err(denial)) => panic!("{case}: denied: {denial}"),
                (Deny(message), Ok(_)) => panic!("{case}: allowed, expected {message}"),
            }
        }
        // Every purpose appears in the table, allowed at least once and denied at least once.
        for purpose in Purpose::ALL {
            let rows = || table.iter().filter(|row| row.0 == *purpose);
            assert!(rows().any(|row| matches!(row.4, Allow)), "{purpose}");
            assert!(rows().any(|row| matches!(row.4, Deny(_))), "{purpose}");
        }
    }

    #[test]
    fn the_legal_bases_and_flags_of_the_default_policy() {
        let policy = Policy::regional_default();
        assert_eq!(policy.purposes.len(), Purpose::ALL.len());
        for purpose in Purpose::ALL {
            let rule = policy.rule(*purpose).unwrap();
            assert_eq!(
                rule.legal_basis,
                purpose.local_legal_basis(),
                "{purpose}: the federation and local bases agree"
            );
            assert_eq!(rule.reason_required, *purpose == Emergency, "{purpose}");
        }
        let household: Vec<Purpose> = Purpose::ALL
            .iter()
            .copied()
            .filter(|p| household_allowed(policy.rule(*p).unwrap()))
            .collect();
        assert_eq!(
            household,
            vec![
                MatchNotification,
                LocalTeamCoordination,
                VtTriage,
                MdaCaseConference,
                WaakvlamFollowUp,
                Emergency
            ]
        );
        assert!(
            !policy
                .rule(LocalTeamCoordination)
                .unwrap()
                .discloses(Field::Category)
        );
        assert!(policy.check().is_ok());
    }

    #[test]
    fn strangers_and_missing_rules_are_denied() {
        let d = directory();
        let stranger = oin(999);
        assert_eq!(
            authorise(&d, &stranger, VtTriage, Analyst, None)
                .unwrap_err()
                .to_string(),
            "requester 00000000000000000999: not a member"
        );
        let mut content = d.content().clone();
        content.policy.purposes.retain(|r| r.purpose != VtTriage);
        let d = Directory::new(content).unwrap();
        assert_eq!(
            authorise(&d, &oin_of(VeiligThuis), VtTriage, Analyst, None),
            Err(Denial::NoRule { purpose: VtTriage })
        );
        assert_eq!(
            Denial::NoRule { purpose: VtTriage }.to_string(),
            "purpose vt_triage: no rule in the federation policy"
        );
    }

    #[test]
    fn regie_is_for_organisations_that_coordinate() {
        let d = directory();
        for org_type in [LocalTeam, VeiligThuis, YouthCare, School, Police] {
            assert_eq!(may_hold_regie(&d, org_type), Ok(()), "{org_type}");
        }
        for org_type in [FederationService, Association, SportsClub, FaithCommunity] {
            assert_eq!(
                may_hold_regie(&d, org_type).unwrap_err().to_string(),
                format!("organisation type {org_type} may not hold regie")
            );
        }
    }

    fn signal() -> Signal {
        Signal {
            id: SignalId::new(),
            subject: Pseudonym([1; 32]),
            related: vec![RelatedPseudonym {
                pseudonym: Pseudonym([2; 32]),
                relation: Relation::Parent,
            }],
            category: Category::Neglect,
            severity: Severity::Ernstig,
            meldcode_step: MeldcodeStep::Wegen,
            contact_point: ContactPointId::parse("aandachtsfunctionaris").unwrap(),
            registered_by: PrincipalId::parse("m.jansen").unwrap(),
            registered_at: UnixMillis(1_000),
            updated_at: UnixMillis(2_000),
            expires_at: UnixMillis(3_000),
            version: 2,
            expiry_reason: crate::domain::ExpiryReason::Retention,
        }
    }

    fn contact() -> ContactDetails {
        ContactDetails {
            id: "aandachtsfunctionaris".into(),
            name: "Aandachtsfunctionaris".into(),
            phone: Some("+31 71 000 0000".into()),
            email: None,
        }
    }

    #[test]
    fn disclosure_keeps_only_the_fields_of_the_purpose() {
        let policy = Policy::regional_default();
        let signal = signal();
        let shown = |purpose| disclose(policy.rule(purpose).unwrap(), &signal, &contact());

        let triage = shown(VtTriage);
        assert_eq!(
            triage,
            DisclosedSignal {
                signal: signal.id,
                category: Some(Category::Neglect),
                severity: Some(Severity::Ernstig),
                meldcode_step: Some(MeldcodeStep::Wegen),
                registered_at: Some(UnixMillis(1_000)),
                updated_at: Some(UnixMillis(2_000)),
                contact_point: Some(contact()),
                related: Some(signal.related.clone()),
            }
        );
        assert_eq!(shown(Emergency), triage);
        assert_eq!(shown(MdaCaseConference), triage);

        let nothing_but = |contact_point, related, dates: Option<(i64, i64)>| DisclosedSignal {
            signal: signal.id,
            category: None,
            severity: None,
            meldcode_step: None,
            registered_at: dates.map(|d| UnixMillis(d.0)),
            updated_at: dates.map(|d| UnixMillis(d.1)),
            contact_point,
            related,
        };
        assert_eq!(
            shown(MatchNotification),
            nothing_but(Some(contact()), None, None)
        );
        assert_eq!(
            shown(LocalTeamCoordination),
            nothing_but(Some(contact()), Some(signal.related.clone()), None)
        );
        assert_eq!(
            shown(WaakvlamFollowUp),
            nothing_but(Some(contact()), None, Some((1_000, 2_000)))
        );
        assert_eq!(shown(SubjectAccess), nothing_but(None, None, None));
        assert_eq!(shown(AuditReview), nothing_but(None, None, None));
    }
}
