//! Proto <-> domain. `TryFrom`-style functions here are where bad input is refused, each
//! error naming its field; nothing past this module sees a generated type.

use super::error::ApiError;
use super::proto;
use crate::audit::search::Query;
use crate::domain::{
    Action, Actor, AuditEvent, Bsn, Category, ContactPointId, Invalid, LegalBasis, MeldcodeStep,
    Outcome, PrincipalId, Pseudonym, Purpose, RegisterSignal, RelatedBsn, Relation, Role, Severity,
    Signal, SignalChange, SignalId, UnixMillis, WithdrawReason, parse_bsn,
};
use crate::signals::SignalQuery;

/// Maps a proto enum number to a domain value: 0 is "required", unknown numbers are named.
fn enum_value<P, D>(field: &str, raw: i32, map: impl Fn(P) -> Option<D>) -> Result<D, Invalid>
where
    P: TryFrom<i32>,
{
    if raw == 0 {
        return Err(Invalid::new(field, "is required"));
    }
    P::try_from(raw)
        .ok()
        .and_then(map)
        .ok_or_else(|| Invalid::new(field, format!("unknown value {raw}")))
}

fn optional_enum<P, D>(
    field: &str,
    raw: Option<i32>,
    map: impl Fn(P) -> Option<D>,
) -> Result<Option<D>, Invalid>
where
    P: TryFrom<i32>,
{
    raw.map(|raw| enum_value(field, raw, map)).transpose()
}

macro_rules! enum_map {
    ($to_domain:ident, $to_proto:ident, $proto:ty, $domain:ty, { $($p:ident <=> $d:ident),+ $(,)? }) => {
        // Not every list arrives in a request yet; the tests check every mapping both ways.
        #[cfg_attr(not(test), allow(dead_code))]
        fn $to_domain(p: $proto) -> Option<$domain> {
            match p {
                $(<$proto>::$p => Some(<$domain>::$d),)+
                #[allow(unreachable_patterns)]
                _ => None,
            }
        }

        pub fn $to_proto(d: $domain) -> $proto {
            match d {
                $(<$domain>::$d => <$proto>::$p,)+
            }
        }
    };
}

enum_map!(category, category_to_proto, proto::Category, Category, {
    Physical <=> Physical, Psychological <=> Psychological, Sexual <=> Sexual,
    Neglect <=> Neglect, ChildWitnessing <=> ChildWitnessing, HonourRelated <=> HonourRelated,
    Fgm <=> Fgm, ElderAbuse <=> ElderAbuse, Financial <=> Financial,
    CoerciveControl <=> CoerciveControl, NietPluis <=> NietPluis,
});
enum_map!(severity, severity_to_proto, proto::Severity, Severity, {
    NietPluis <=> NietPluis, Zorg <=> Zorg, Ernstig <=> Ernstig, Acuut <=> Acuut,
});
enum_map!(step, step_to_proto, proto::MeldcodeStep, MeldcodeStep, {
    Signalen <=> Signalen, Consultatie <=> Consultatie, Gesprek <=> Gesprek,
    Wegen <=> Wegen, Beslissen <=> Beslissen,
});
enum_map!(relation, relation_to_proto, proto::Relation, Relation, {
    Parent <=> Parent, Child <=> Child, Partner <=> Partner, ExPartner <=> ExPartner,
    Sibling <=> Sibling, HouseholdMember <=> HouseholdMember,
});
enum_map!(withdraw_reason, withdraw_reason_to_proto, proto::WithdrawReason, WithdrawReason, {
    Unfounded <=> Unfounded, RiskGone <=> RiskGone, SubjectMoved <=> SubjectMoved,
    Other <=> Other,
});
enum_map!(purpose, purpose_to_proto, proto::Purpose, Purpose, {
    Registration <=> Registration, MatchNotification <=> MatchNotification,
    LocalTeamCoordination <=> LocalTeamCoordination, VtTriage <=> VtTriage,
    MdaCaseConference <=> MdaCaseConference, WaakvlamFollowUp <=> WaakvlamFollowUp,
    Emergency <=> Emergency, SubjectAccess <=> SubjectAccess, AuditReview <=> AuditReview,
});
enum_map!(legal_basis, legal_basis_to_proto, proto::LegalBasis, LegalBasis, {
    Jeugdwet7141 <=> Jeugdwet7141, Wmo526 <=> Wmo526, Wmo411 <=> Wmo411,
    WetVerplichteMeldcode <=> WetVerplichteMeldcode, Avg61C <=> Avg61c, Avg61D <=> Avg61d,
    Avg61E <=> Avg61e, Avg15 <=> Avg15,
});
enum_map!(role, role_to_proto, proto::Role, Role, {
    Signaler <=> Signaler, Coordinator <=> Coordinator, Analyst <=> Analyst,
    PrivacyOfficer <=> PrivacyOfficer, Admin <=> Admin,
});
enum_map!(action, action_to_proto, proto::AuditAction, Action, {
    NodeStarted <=> NodeStarted, NodeStopped <=> NodeStopped,
    RequestRefused <=> RequestRefused,
    SignalRegister <=> SignalRegister, SignalUpdate <=> SignalUpdate,
    SignalWithdraw <=> SignalWithdraw, SignalList <=> SignalList, SignalExpire <=> SignalExpire,
    AuditSearch <=> AuditSearch, AuditCheckpoint <=> AuditCheckpoint,
    AuditProof <=> AuditProof, AuditVerify <=> AuditVerify, AuditExport <=> AuditExport,
});
enum_map!(outcome, outcome_to_proto, proto::Outcome, Outcome, {
    Success <=> Success, Refused <=> Refused, Failed <=> Failed,
});

fn optional_bsn(field: &str, raw: Option<&str>) -> Result<Option<Bsn>, Invalid> {
    raw.map(|s| parse_bsn(field, s)).transpose()
}

pub fn signal_id(field: &str, raw: &str) -> Result<SignalId, Invalid> {
    SignalId::parse(raw).map_err(|e| Invalid::new(field, e))
}

pub fn register(request: &proto::RegisterRequest) -> Result<RegisterSignal, ApiError> {
    let subject = parse_bsn("subject_bsn", &request.subject_bsn)?;
    let mut related = Vec::with_capacity(request.related.len());
    if request.related.len() > crate::domain::MAX_RELATED {
        return Err(ApiError::invalid(
            "related",
            format!("at most {} related persons", crate::domain::MAX_RELATED),
        ));
    }
    for (i, person) in request.related.iter().enumerate() {
        related.push(RelatedBsn {
            bsn: parse_bsn(&format!("related[{i}].bsn"), &person.bsn)?,
            relation: enum_value(&format!("related[{i}].relation"), person.relation, relation)?,
        });
    }
    let category = enum_value("category", request.category, category)?;
    let severity = enum_value("severity", request.severity, severity)?;
    let meldcode_step = enum_value("meldcode_step", request.meldcode_step, step)?;
    let contact_point = ContactPointId::parse(&request.contact_point)
        .map_err(|e| Invalid::new("contact_point", e))?;
    Ok(RegisterSignal::new(
        subject,
        related,
        category,
        severity,
        meldcode_step,
        contact_point,
    )?)
}

pub fn update(request: &proto::UpdateRequest) -> Result<(SignalId, SignalChange), ApiError> {
    let id = signal_id("signal_id", &request.signal_id)?;
    let change = SignalChange::new(
        optional_enum("meldcode_step", request.meldcode_step, step)?,
        optional_enum("severity", request.severity, severity)?,
        (request.expected_version != 0).then_some(request.expected_version),
    )?;
    Ok((id, change))
}

pub fn withdraw(request: &proto::WithdrawRequest) -> Result<(SignalId, WithdrawReason), ApiError> {
    Ok((
        signal_id("signal_id", &request.signal_id)?,
        enum_value("reason", request.reason, withdraw_reason)?,
    ))
}

fn page_size(field: &str, raw: u32, default: usize, max: usize) -> Result<usize, Invalid> {
    match raw as usize {
        0 => Ok(default),
        n if n <= max => Ok(n),
        _ => Err(Invalid::new(field, format!("must be at most {max}"))),
    }
}

pub const LIST_MAX_PAGE: usize = 100;

pub fn list(request: &proto::ListRequest) -> Result<(Option<Bsn>, SignalQuery), ApiError> {
    let person = optional_bsn("person_bsn", request.person_bsn.as_deref())?;
    let query = SignalQuery {
        person: None,
        category: optional_enum("category", request.category, category)?,
        severity: optional_enum("severity", request.severity, severity)?,
        meldcode_step: optional_enum("meldcode_step", request.meldcode_step, step)?,
        contact_point: request
            .contact_point
            .as_deref()
            .map(|c| ContactPointId::parse(c).map_err(|e| Invalid::new("contact_point", e)))
            .transpose()?,
        registered_by: request
            .registered_by
            .as_deref()
            .map(|p| PrincipalId::parse(p).map_err(|e| Invalid::new("registered_by", e)))
            .transpose()?
            .map(String::from),
        registered_from: request.registered_from_unix_ms.map(UnixMillis),
        registered_until: request.registered_until_unix_ms.map(UnixMillis),
        page_size: page_size("page_size", request.page_size, 50, LIST_MAX_PAGE)?,
        after: match request.page_token.as_str() {
            "" => None,
            token => Some(signal_id("page_token", token)?),
        },
    };
    if let (Some(from), Some(until)) = (query.registered_from, query.registered_until)
        && from >= until
    {
        return Err(ApiError::invalid(
            "registered_until_unix_ms",
            "must be after registered_from_unix_ms",
        ));
    }
    Ok((person, query))
}

pub fn signal(signal: &Signal) -> proto::Signal {
    proto::Signal {
        id: signal.id.to_string(),
        subject: signal.subject.to_string(),
        related: signal
            .related
            .iter()
            .map(|r| proto::RelatedPseudonym {
                pseudonym: r.pseudonym.to_string(),
                relation: relation_to_proto(r.relation) as i32,
            })
            .collect(),
        category: category_to_proto(signal.category) as i32,
        severity: severity_to_proto(signal.severity) as i32,
        meldcode_step: step_to_proto(signal.meldcode_step) as i32,
        contact_point: signal.contact_point.to_string(),
        registered_by: signal.registered_by.to_string(),
        registered_at_unix_ms: signal.registered_at.0,
        updated_at_unix_ms: signal.updated_at.0,
        expires_at_unix_ms: signal.expires_at.0,
        version: signal.version,
    }
}

pub const SEARCH_MAX_PAGE: usize = 1000;

pub fn search(request: &proto::AuditSearchRequest) -> Result<(Option<Bsn>, Query), ApiError> {
    let subject_bsn = optional_bsn("subject_bsn", request.subject_bsn.as_deref())?;
    let subject = request
        .subject_pseudonym
        .as_deref()
        .map(|p| Pseudonym::parse(p).map_err(|e| Invalid::new("subject_pseudonym", e)))
        .transpose()?;
    if subject_bsn.is_some() && subject.is_some() {
        return Err(ApiError::invalid(
            "subject_pseudonym",
            "give subject_bsn or subject_pseudonym, not both",
        ));
    }
    let query = Query {
        from: request.from_unix_ms.map(UnixMillis),
        until: request.until_unix_ms.map(UnixMillis),
        actor: request
            .actor
            .as_deref()
            .map(|a| PrincipalId::parse(a).map_err(|e| Invalid::new("actor", e)))
            .transpose()?,
        action: optional_enum("action", request.action, action)?,
        subject,
        purpose: optional_enum("purpose", request.purpose, purpose)?,
        outcome: optional_enum("outcome", request.outcome, outcome)?,
        page_size: page_size("page_size", request.page_size, 100, SEARCH_MAX_PAGE)?,
        start: match request.page_token.as_str() {
            "" => 0,
            token => token
                .parse()
                .map_err(|_| Invalid::new("page_token", "is not a token from a previous page"))?,
        },
    };
    if let (Some(from), Some(until)) = (query.from, query.until)
        && from >= until
    {
        return Err(ApiError::invalid(
            "until_unix_ms",
            "must be after from_unix_ms",
        ));
    }
    Ok((subject_bsn, query))
}

fn actor(actor: &Actor) -> proto::Actor {
    proto::Actor {
        user: actor.user.to_string(),
        role: actor.role.map_or(0, |r| role_to_proto(r) as i32),
        organisation_oin: actor.organisation.to_string(),
    }
}

pub fn audit_event(event: &AuditEvent, canonical: Vec<u8>) -> proto::AuditEvent {
    proto::AuditEvent {
        index: event.index,
        time_unix_ms: event.time.0,
        transaction_id: event.transaction.to_string(),
        actor: Some(actor(&event.actor)),
        on_behalf_of: event.on_behalf_of.as_ref().map(actor),
        action: action_to_proto(event.action) as i32,
        subjects: event.subjects.iter().map(ToString::to_string).collect(),
        purpose: event.purpose.map_or(0, |p| purpose_to_proto(p) as i32),
        legal_basis: event
            .legal_basis
            .map_or(0, |b| legal_basis_to_proto(b) as i32),
        outcome: outcome_to_proto(event.outcome) as i32,
        reason: event.reason.clone().unwrap_or_default(),
        counterpart_oin: event.counterpart.map(|o| o.to_string()).unwrap_or_default(),
        object: event.object.clone().unwrap_or_default(),
        canonical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> proto::RegisterRequest {
        proto::RegisterRequest {
            subject_bsn: "111222333".into(),
            related: vec![proto::RelatedPerson {
                bsn: "123456782".into(),
                relation: proto::Relation::Parent as i32,
            }],
            category: proto::Category::NietPluis as i32,
            severity: proto::Severity::NietPluis as i32,
            meldcode_step: proto::MeldcodeStep::Signalen as i32,
            contact_point: "zorg".into(),
        }
    }

    fn field_of(result: Result<RegisterSignal, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid(invalid)) => invalid.field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    type Mutation = Box<dyn Fn(&mut proto::RegisterRequest)>;

    #[test]
    fn every_bad_field_is_named() {
        assert!(register(&valid()).is_ok());
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "subject_bsn",
                Box::new(|r| r.subject_bsn = "123456789".into()),
            ),
            ("subject_bsn", Box::new(|r| r.subject_bsn.clear())),
            (
                "related[0].bsn",
                Box::new(|r| r.related[0].bsn = "12".into()),
            ),
            (
                "related[0].relation",
                Box::new(|r| r.related[0].relation = 0),
            ),
            (
                "related[0].relation",
                Box::new(|r| r.related[0].relation = 99),
            ),
            ("category", Box::new(|r| r.category = 0)),
            ("category", Box::new(|r| r.category = 42)),
            ("severity", Box::new(|r| r.severity = -1)),
            ("meldcode_step", Box::new(|r| r.meldcode_step = 6)),
            (
                "contact_point",
                Box::new(|r| r.contact_point = "Zorg Team".into()),
            ),
            ("contact_point", Box::new(|r| r.contact_point.clear())),
        ];
        for (field, mutate) in cases {
            let mut request = valid();
            mutate(&mut request);
            assert_eq!(field_of(register(&request)), field);
        }
    }

    #[test]
    fn every_domain_value_maps_to_proto_and_back() {
        for c in Category::ALL {
            assert_eq!(category(category_to_proto(*c)), Some(*c));
        }
        for a in Action::ALL {
            assert_eq!(action(action_to_proto(*a)), Some(*a));
        }
        for p in Purpose::ALL {
            assert_eq!(purpose(purpose_to_proto(*p)), Some(*p));
        }
        for b in LegalBasis::ALL {
            assert_eq!(legal_basis(legal_basis_to_proto(*b)), Some(*b));
        }
        for r in Role::ALL {
            assert_eq!(role(role_to_proto(*r)), Some(*r));
        }
        for s in MeldcodeStep::ALL {
            assert_eq!(step(step_to_proto(*s)), Some(*s));
        }
    }
}
