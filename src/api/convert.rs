//! Proto <-> domain. `TryFrom`-style functions here are where bad input is refused, each
//! error naming its field; nothing past this module sees a generated type.

use super::error::ApiError;
use super::proto;
use crate::audit::search::Query;
use crate::domain::{
    AccessedEvent, Action, Actor, ArchiveReason, ArchivedParty, AuditEvent, BreakGlassReason, Bsn,
    CalendarDate, Category, ContactDetails, ContactPointId, ExpiryReason, ForkKind, IndexNotice,
    Invalid, LegalBasis, Lookup, MeldcodeStep, MessageId, Oin, Outcome, PrincipalId, Pseudonym,
    Purpose, Regie, RegisterSignal, RelatedBsn, RelatedPseudonym, Relation, RequestContext,
    RetractReason, ReviewOutcome, ReviewReason, Ring, Role, Severity, Signal, SignalChange,
    SignalId, TransactionId, UnixMillis, Waakvlam, WithdrawReason, parse_bsn,
};
use crate::policy::DisclosedSignal;
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
enum_map!(expiry_reason, expiry_reason_to_proto, proto::ExpiryReason, ExpiryReason, {
    Retention <=> Retention, AgeRange <=> AgeRange,
});
enum_map!(retract_reason_of, retract_reason_to_proto, proto::RetractReason, RetractReason, {
    Unfounded <=> Unfounded, RiskGone <=> RiskGone, SubjectMoved <=> SubjectMoved,
    Other <=> Other, RetentionEnded <=> RetentionEnded, AgeRangeEnded <=> AgeRangeEnded,
});
enum_map!(archive_reason, archive_reason_to_proto, proto::ArchiveReason, ArchiveReason, {
    RiskGone <=> RiskGone, RetentionEnded <=> RetentionEnded,
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
    AuditBreakGlassQueue <=> AuditBreakGlassQueue, AuditBreakGlassReview <=> AuditBreakGlassReview,
    PeerRefused <=> PeerRefused, DirectoryAccept <=> DirectoryAccept,
    PointerPublish <=> PointerPublish, PointerRetract <=> PointerRetract,
    PointerExpire <=> PointerExpire, PointerLookup <=> PointerLookup,
    NoticeSend <=> NoticeSend, NoticeReceive <=> NoticeReceive,
    MatchesWatch <=> MatchesWatch, MatchesList <=> MatchesList, SignalsFetch <=> SignalsFetch,
    LinkedSignals <=> LinkedSignals, BreakGlass <=> BreakGlass, MeldingSend <=> MeldingSend,
    MeldingReceive <=> MeldingReceive, MeldingenList <=> MeldingenList,
    RegieClaim <=> RegieClaim, RegieRelease <=> RegieRelease,
    WaakvlamStart <=> WaakvlamStart, WaakvlamList <=> WaakvlamList,
    PseudonymEvaluate <=> PseudonymEvaluate,
    PointerArchive <=> PointerArchive, ArchiveExpire <=> ArchiveExpire,
    StoreReencrypted <=> StoreReencrypted, StoreCompacted <=> StoreCompacted,
    SubjectAccess <=> SubjectAccess, SubjectAccessFetch <=> SubjectAccessFetch,
    WitnessCosign <=> WitnessCosign, WitnessFork <=> WitnessFork,
    CheckpointCosigned <=> CheckpointCosigned, ForkAlertSend <=> ForkAlertSend,
    ForkAlertReceive <=> ForkAlertReceive, AuditForks <=> AuditForks,
    IndexKeyShare <=> IndexKeyShare, IndexEpochRetire <=> IndexEpochRetire,
    IndexRekey <=> IndexRekey,
});
enum_map!(fork_kind, fork_kind_to_proto, proto::ForkKind, ForkKind, {
    Equivocation <=> Equivocation, Rollback <=> Rollback, Inconsistent <=> Inconsistent,
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
    let age_range_ends_on = request
        .age_range_ends_on
        .as_deref()
        .map(|d| CalendarDate::parse(d).map_err(|e| Invalid::new("age_range_ends_on", e)))
        .transpose()?;
    let mut signal = RegisterSignal::new(
        subject,
        related,
        category,
        severity,
        meldcode_step,
        contact_point,
    )?;
    signal.age_range_ends_on = age_range_ends_on;
    Ok(signal)
}

/// The reason of a retraction from the wire: required, and one of the closed list.
pub fn retract_reason(raw: i32) -> Result<RetractReason, Invalid> {
    enum_value("reason", raw, retract_reason_of)
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
        expiry_reason: expiry_reason_to_proto(signal.expiry_reason) as i32,
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

fn actor_from_proto(field: &str, raw: Option<&proto::Actor>) -> Result<Actor, Invalid> {
    let raw = raw.ok_or_else(|| Invalid::new(field, "is required"))?;
    Ok(Actor {
        user: PrincipalId::parse(&raw.user)
            .map_err(|e| Invalid::new(format!("{field}.user"), e))?,
        role: match raw.role {
            0 => None,
            r => Some(enum_value(&format!("{field}.role"), r, role)?),
        },
        organisation: oin(&format!("{field}.organisation_oin"), &raw.organisation_oin)?,
    })
}

/// An event as subject access discloses it.
pub fn accessed_event(event: &AccessedEvent) -> proto::SubjectAccessEvent {
    proto::SubjectAccessEvent {
        recorded_by_oin: event.recorded_by.to_string(),
        index: event.index,
        time_unix_ms: event.time.0,
        transaction_id: event.transaction.to_string(),
        actor: Some(actor(&event.actor)),
        on_behalf_of: event.on_behalf_of.as_ref().map(actor),
        action: action_to_proto(event.action) as i32,
        purpose: event.purpose.map_or(0, |p| purpose_to_proto(p) as i32),
        legal_basis: event
            .legal_basis
            .map_or(0, |b| legal_basis_to_proto(b) as i32),
        outcome: outcome_to_proto(event.outcome) as i32,
        counterpart_oin: event.counterpart.map(|o| o.to_string()).unwrap_or_default(),
        emergency: event.emergency,
    }
}

/// A peer's answer to subject access, checked field by field (`events[i].field`).
pub fn accessed_event_from_proto(
    i: usize,
    raw: &proto::SubjectAccessEvent,
) -> Result<AccessedEvent, Invalid> {
    let field = |name: &str| format!("events[{i}].{name}");
    Ok(AccessedEvent {
        recorded_by: oin(&field("recorded_by_oin"), &raw.recorded_by_oin)?,
        index: raw.index,
        time: UnixMillis(raw.time_unix_ms),
        transaction: TransactionId::parse(&raw.transaction_id)
            .map_err(|e| Invalid::new(field("transaction_id"), e))?,
        actor: actor_from_proto(&field("actor"), raw.actor.as_ref())?,
        on_behalf_of: raw
            .on_behalf_of
            .as_ref()
            .map(|a| actor_from_proto(&field("on_behalf_of"), Some(a)))
            .transpose()?,
        action: enum_value(&field("action"), raw.action, action)?,
        purpose: match raw.purpose {
            0 => None,
            p => Some(enum_value(&field("purpose"), p, purpose)?),
        },
        legal_basis: match raw.legal_basis {
            0 => None,
            b => Some(enum_value(&field("legal_basis"), b, legal_basis)?),
        },
        outcome: enum_value(&field("outcome"), raw.outcome, outcome)?,
        counterpart: match raw.counterpart_oin.as_str() {
            "" => None,
            text => Some(oin(&field("counterpart_oin"), text)?),
        },
        emergency: raw.emergency,
    })
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

enum_map!(break_glass, break_glass_to_proto, proto::BreakGlassReason, BreakGlassReason, {
    AcuteDangerChild <=> AcuteDangerChild, AcuteDangerAdult <=> AcuteDangerAdult,
    ImminentViolence <=> ImminentViolence, MissingPerson <=> MissingPerson, Other <=> Other,
});
enum_map!(ring, ring_to_proto, proto::Ring, Ring, {
    ActiviteitenInDeBuurt <=> ActiviteitenInDeBuurt, PlekkenVoorIedereen <=> PlekkenVoorIedereen,
    PlekkenVoorWieHetNodigHeeft <=> PlekkenVoorWieHetNodigHeeft, SpinInHetWeb <=> SpinInHetWeb,
    Melding <=> Melding, StoppenEnDuurzaamOplossen <=> StoppenEnDuurzaamOplossen,
    Federatie <=> Federatie,
});
enum_map!(review_outcome, review_outcome_to_proto, proto::ReviewOutcome, ReviewOutcome, {
    Justified <=> Justified, Unjustified <=> Unjustified,
});
enum_map!(review_reason, review_reason_to_proto, proto::ReviewReason, ReviewReason, {
    AcuteDangerConfirmed <=> AcuteDangerConfirmed, Proportionate <=> Proportionate,
    NoAcuteDanger <=> NoAcuteDanger, WrongPerson <=> WrongPerson,
    ExcessiveScope <=> ExcessiveScope, Other <=> Other,
});

pub fn optional_break_glass(field: &str, raw: i32) -> Result<Option<BreakGlassReason>, Invalid> {
    if raw == 0 {
        return Ok(None);
    }
    enum_value(field, raw, break_glass).map(Some)
}

pub fn required_break_glass(field: &str, raw: i32) -> Result<BreakGlassReason, Invalid> {
    enum_value(field, raw, break_glass)
}

pub fn required_purpose(field: &str, raw: i32) -> Result<Purpose, Invalid> {
    enum_value(field, raw, purpose)
}

pub fn review(
    request: &proto::ReviewBreakGlassRequest,
) -> Result<(SignalId, ReviewOutcome, ReviewReason), Invalid> {
    Ok((
        signal_id("id", &request.id)?,
        enum_value("outcome", request.outcome, review_outcome)?,
        enum_value("reason", request.reason, review_reason)?,
    ))
}

/// A 32-byte federation pseudonym from the wire.
pub fn pseudonym_bytes(field: &str, raw: &[u8]) -> Result<Pseudonym, Invalid> {
    raw.try_into()
        .map(Pseudonym)
        .map_err(|_| Invalid::new(field, "must be a 32-byte pseudonym"))
}

fn oin(field: &str, raw: &str) -> Result<Oin, Invalid> {
    Oin::parse(raw).map_err(|e| Invalid::new(field, e))
}

pub fn request_context(raw: Option<&proto::RequestContext>) -> Result<RequestContext, Invalid> {
    let raw = raw.ok_or_else(|| Invalid::new("context", "is required"))?;
    Ok(RequestContext {
        transaction: TransactionId::parse(&raw.transaction_id)
            .map_err(|e| Invalid::new("context.transaction_id", e))?,
        purpose: enum_value("context.purpose", raw.purpose, purpose)?,
        user: PrincipalId::parse(&raw.user).map_err(|e| Invalid::new("context.user", e))?,
        role: match raw.role {
            0 => None,
            r => Some(enum_value("context.role", r, role)?),
        },
        break_glass: optional_break_glass("context.break_glass_reason", raw.break_glass_reason)?,
    })
}

pub fn linked_person(related: &RelatedPseudonym) -> proto::LinkedPerson {
    proto::LinkedPerson {
        pseudonym: related.pseudonym.0.to_vec(),
        relation: relation_to_proto(related.relation) as i32,
    }
}

fn linked_from_proto(field: &str, raw: &proto::LinkedPerson) -> Result<RelatedPseudonym, Invalid> {
    Ok(RelatedPseudonym {
        pseudonym: pseudonym_bytes(&format!("{field}.pseudonym"), &raw.pseudonym)?,
        relation: enum_value(&format!("{field}.relation"), raw.relation, relation)?,
    })
}

pub fn contact(details: &ContactDetails) -> proto::ContactPoint {
    proto::ContactPoint {
        id: details.id.clone(),
        name: details.name.clone(),
        phone: details.phone.clone().unwrap_or_default(),
        email: details.email.clone().unwrap_or_default(),
    }
}

fn contact_from_proto(raw: &proto::ContactPoint) -> ContactDetails {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    ContactDetails {
        id: raw.id.clone(),
        name: raw.name.clone(),
        phone: text(&raw.phone),
        email: text(&raw.email),
    }
}

pub fn directory_contact(contact: Option<&crate::directory::Contact>) -> proto::ContactPoint {
    contact.map_or_else(proto::ContactPoint::default, |c| proto::ContactPoint {
        id: String::new(),
        name: c.name.clone(),
        phone: c.phone.clone().unwrap_or_default(),
        email: c.email.clone().unwrap_or_default(),
    })
}

pub fn regie(regie: &Regie, holder_name: Option<&str>) -> proto::Regie {
    proto::Regie {
        holder_oin: regie.holder.to_string(),
        holder_name: holder_name.unwrap_or_default().to_owned(),
        since_unix_ms: regie.since.0,
    }
}

pub fn regie_from_proto(raw: &proto::Regie) -> Option<Regie> {
    Some(Regie {
        holder: Oin::parse(&raw.holder_oin).ok()?,
        since: UnixMillis(raw.since_unix_ms),
    })
}

pub fn waakvlam(entry: &Waakvlam, now: UnixMillis) -> proto::WaakvlamEntry {
    proto::WaakvlamEntry {
        id: entry.id.to_string(),
        coordinator_oin: entry.coordinator.to_string(),
        persons: entry.persons.iter().map(|p| p.0.to_vec()).collect(),
        started_unix_ms: entry.started.0,
        until_unix_ms: entry.until.0,
        next_check_in_unix_ms: entry.next_check_in(now).0,
        alerts: entry.alerts,
        check_in_days: entry.check_in_days,
    }
}

pub fn waakvlam_from_proto(raw: &proto::WaakvlamEntry) -> Option<Waakvlam> {
    let started = UnixMillis(raw.started_unix_ms);
    let check_in_days = raw.check_in_days;
    Some(Waakvlam {
        id: SignalId::parse(&raw.id).ok()?,
        coordinator: Oin::parse(&raw.coordinator_oin).ok()?,
        persons: raw
            .persons
            .iter()
            .filter_map(|p| p.as_slice().try_into().ok().map(Pseudonym))
            .collect(),
        started,
        until: UnixMillis(raw.until_unix_ms),
        check_in_days,
        alerts: raw.alerts,
    })
}

pub fn lookup(
    lookup: &Lookup,
    directory: &crate::directory::Directory,
    now: UnixMillis,
) -> proto::LookupResponse {
    proto::LookupResponse {
        pointers: lookup
            .pointers
            .iter()
            .map(|(oin, signal, person, rel)| proto::Pointer {
                oin: oin.to_string(),
                signal_ref: signal.to_string(),
                person: person.0.to_vec(),
                relation: rel.map_or(0, |r| relation_to_proto(r) as i32),
            })
            .collect(),
        household: lookup
            .household
            .iter()
            .map(|(p, r)| proto::LinkedPerson {
                pseudonym: p.0.to_vec(),
                relation: relation_to_proto(*r) as i32,
            })
            .collect(),
        regie: lookup
            .regie
            .as_ref()
            .map(|r| regie(r, directory.member(&r.holder).map(|m| m.name.as_str()))),
        waakvlam: lookup.waakvlam.iter().map(|w| waakvlam(w, now)).collect(),
    }
}

pub fn lookup_from_proto(raw: proto::LookupResponse) -> Result<Lookup, Invalid> {
    let mut pointers = Vec::new();
    for (i, p) in raw.pointers.iter().enumerate() {
        pointers.push((
            oin(&format!("pointers[{i}].oin"), &p.oin)?,
            signal_id(&format!("pointers[{i}].signal_ref"), &p.signal_ref)?,
            pseudonym_bytes(&format!("pointers[{i}].person"), &p.person)?,
            match p.relation {
                0 => None,
                r => Some(enum_value(&format!("pointers[{i}].relation"), r, relation)?),
            },
        ));
    }
    let mut household = Vec::new();
    for (i, h) in raw.household.iter().enumerate() {
        let linked = linked_from_proto(&format!("household[{i}]"), h)?;
        household.push((linked.pseudonym, linked.relation));
    }
    Ok(Lookup {
        pointers,
        household,
        regie: raw.regie.as_ref().and_then(regie_from_proto),
        waakvlam: raw
            .waakvlam
            .iter()
            .filter_map(waakvlam_from_proto)
            .collect(),
    })
}

pub fn disclosed(signal: &DisclosedSignal) -> proto::DisclosedSignal {
    proto::DisclosedSignal {
        signal_ref: signal.signal.to_string(),
        category: signal.category.map(|c| category_to_proto(c) as i32),
        severity: signal.severity.map(|s| severity_to_proto(s) as i32),
        meldcode_step: signal.meldcode_step.map(|s| step_to_proto(s) as i32),
        registered_at_unix_ms: signal.registered_at.map(|t| t.0),
        updated_at_unix_ms: signal.updated_at.map(|t| t.0),
        contact_point: signal.contact_point.as_ref().map(contact),
    }
}

pub fn disclosed_from_proto(raw: proto::DisclosedSignal) -> Result<DisclosedSignal, Invalid> {
    Ok(DisclosedSignal {
        signal: signal_id("signal_ref", &raw.signal_ref)?,
        category: optional_enum("category", raw.category, category)?,
        severity: optional_enum("severity", raw.severity, severity)?,
        meldcode_step: optional_enum("meldcode_step", raw.meldcode_step, step)?,
        registered_at: raw.registered_at_unix_ms.map(UnixMillis),
        updated_at: raw.updated_at_unix_ms.map(UnixMillis),
        contact_point: raw.contact_point.as_ref().map(contact_from_proto),
        related: None,
    })
}

/// A publication from the wire.
pub fn publication(raw: &proto::PublishRequest) -> Result<crate::index::Publication, Invalid> {
    let mut related = Vec::new();
    if raw.related.len() > crate::domain::MAX_RELATED {
        return Err(Invalid::new(
            "related",
            format!("at most {} related persons", crate::domain::MAX_RELATED),
        ));
    }
    for (i, r) in raw.related.iter().enumerate() {
        related.push(linked_from_proto(&format!("related[{i}]"), r)?);
    }
    Ok(crate::index::Publication {
        message: MessageId::parse(&raw.message_id).map_err(|e| Invalid::new("message_id", e))?,
        transaction: TransactionId::parse(&raw.transaction_id)
            .map_err(|e| Invalid::new("transaction_id", e))?,
        signal: signal_id("signal_ref", &raw.signal_ref)?,
        subject: pseudonym_bytes("subject", &raw.subject)?,
        related,
        expires_at: UnixMillis(raw.expires_at_unix_ms),
        expiry_reason: enum_value("expiry_reason", raw.expiry_reason, expiry_reason)?,
    })
}

/// What arrived in a Deliver call.
#[derive(Debug)]
pub enum Delivery {
    Notice(IndexNotice),
    Melding(crate::federation::serve::IncomingMelding),
    Fork(crate::domain::ForkRecord),
}

pub fn delivery(
    raw: &proto::DeliverRequest,
) -> Result<(MessageId, TransactionId, Delivery), Invalid> {
    use proto::deliver_request::Body;
    let message = MessageId::parse(&raw.message_id).map_err(|e| Invalid::new("message_id", e))?;
    let transaction =
        TransactionId::parse(&raw.transaction_id).map_err(|e| Invalid::new("transaction_id", e))?;
    let body = raw
        .body
        .as_ref()
        .ok_or_else(|| Invalid::new("body", "is required"))?;
    let delivery = match body {
        Body::MatchNotice(m) => {
            let mut parties = Vec::new();
            for (i, p) in m.party_oins.iter().enumerate() {
                parties.push(oin(&format!("match_notice.party_oins[{i}]"), p)?);
            }
            Delivery::Notice(IndexNotice::Match {
                signal: signal_id("match_notice.signal_ref", &m.signal_ref)?,
                parties,
                household: m.household,
                regie: m.regie.as_ref().and_then(regie_from_proto),
            })
        }
        Body::ForkAlert(f) => Delivery::Fork(fork_from_proto("fork_alert", f)?),
        Body::MatchEnded(m) => Delivery::Notice(IndexNotice::MatchEnded {
            signal: signal_id("match_ended.signal_ref", &m.signal_ref)?,
            party: oin("match_ended.party_oin", &m.party_oin)?,
        }),
        Body::WaakvlamAlert(w) => Delivery::Notice(IndexNotice::WaakvlamAlert {
            waakvlam: signal_id("waakvlam_alert.waakvlam_id", &w.waakvlam_id)?,
            party: oin("waakvlam_alert.party_oin", &w.party_oin)?,
            person: pseudonym_bytes("waakvlam_alert.person", &w.person)?,
            until: UnixMillis(w.until_unix_ms),
        }),
        Body::RegieChanged(r) => Delivery::Notice(IndexNotice::RegieChanged {
            signal: signal_id("regie_changed.signal_ref", &r.signal_ref)?,
            regie: r.regie.as_ref().and_then(regie_from_proto),
        }),
        Body::HistoricalMatch(h) => {
            let mut archived = Vec::with_capacity(h.archived.len());
            for (i, a) in h.archived.iter().enumerate() {
                archived.push(ArchivedParty {
                    party: oin(
                        &format!("historical_match.archived[{i}].party_oin"),
                        &a.party_oin,
                    )?,
                    archived_at: UnixMillis(a.archived_at_unix_ms),
                    reason: enum_value(
                        &format!("historical_match.archived[{i}].reason"),
                        a.reason,
                        archive_reason,
                    )?,
                });
            }
            if archived.is_empty() {
                return Err(Invalid::new(
                    "historical_match.archived",
                    "names no archived pointer",
                ));
            }
            Delivery::Notice(IndexNotice::HistoricalMatch {
                signal: signal_id("historical_match.signal_ref", &h.signal_ref)?,
                archived,
            })
        }
        Body::Melding(m) => Delivery::Melding(crate::federation::serve::IncomingMelding {
            signal: signal_id("melding.signal_ref", &m.signal_ref)?,
            subject: pseudonym_bytes("melding.subject", &m.subject)?,
            category: enum_value("melding.category", m.category, category)?,
            severity: enum_value("melding.severity", m.severity, severity)?,
            registered_at: UnixMillis(m.registered_at_unix_ms),
            contact_point: m
                .contact_point
                .as_ref()
                .map(contact_from_proto)
                .unwrap_or_default(),
            reported_by: PrincipalId::parse(&m.reported_by)
                .map_err(|e| Invalid::new("melding.reported_by", e))?,
        }),
    };
    Ok((message, transaction, delivery))
}

pub fn fork(fork: &crate::domain::ForkRecord) -> proto::Fork {
    proto::Fork {
        id: fork.id.to_string(),
        log_oin: fork.log.to_string(),
        witness_oin: fork.witness.to_string(),
        kind: fork_kind_to_proto(fork.kind) as i32,
        detected_at_unix_ms: fork.detected_at.0,
        seen_checkpoint: fork.seen.clone(),
        presented_checkpoint: fork.presented.clone(),
    }
}

/// A fork as a witness reports it; `at` names the message field it came in.
pub fn fork_from_proto(at: &str, raw: &proto::Fork) -> Result<crate::domain::ForkRecord, Invalid> {
    let field = |name: &str| format!("{at}.{name}");
    let note = |name: &str, text: &str| {
        if text.is_empty() {
            return Err(Invalid::new(field(name), "is required"));
        }
        let limit = crate::federation::witness::MAX_CHECKPOINT_BYTES;
        if text.len() > limit {
            return Err(Invalid::new(
                field(name),
                format!("is longer than {limit} bytes"),
            ));
        }
        Ok(text.to_owned())
    };
    Ok(crate::domain::ForkRecord {
        id: MessageId::parse(&raw.id).map_err(|e| Invalid::new(field("id"), e))?,
        log: oin(&field("log_oin"), &raw.log_oin)?,
        witness: oin(&field("witness_oin"), &raw.witness_oin)?,
        kind: enum_value(&field("kind"), raw.kind, fork_kind)?,
        detected_at: UnixMillis(raw.detected_at_unix_ms),
        seen: note("seen_checkpoint", &raw.seen_checkpoint)?,
        presented: note("presented_checkpoint", &raw.presented_checkpoint)?,
    })
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
            age_range_ends_on: None,
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
            (
                "age_range_ends_on",
                Box::new(|r| r.age_range_ends_on = Some(String::new())),
            ),
            (
                "age_range_ends_on",
                Box::new(|r| r.age_range_ends_on = Some("31-12-2040".into())),
            ),
            (
                "age_range_ends_on",
                Box::new(|r| r.age_range_ends_on = Some("2041-02-29".into())),
            ),
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
        for o in crate::domain::OrgType::ALL {
            let r = o.ring();
            assert_eq!(ring(ring_to_proto(r)), Some(r));
        }
        for b in BreakGlassReason::ALL {
            assert_eq!(break_glass(break_glass_to_proto(*b)), Some(*b));
        }
        for o in ReviewOutcome::ALL {
            assert_eq!(review_outcome(review_outcome_to_proto(*o)), Some(*o));
        }
        for r in ReviewReason::ALL {
            assert_eq!(review_reason(review_reason_to_proto(*r)), Some(*r));
        }
        for e in ExpiryReason::ALL {
            assert_eq!(expiry_reason(expiry_reason_to_proto(*e)), Some(*e));
        }
        for r in RetractReason::ALL {
            assert_eq!(retract_reason_of(retract_reason_to_proto(*r)), Some(*r));
        }
        for a in ArchiveReason::ALL {
            assert_eq!(archive_reason(archive_reason_to_proto(*a)), Some(*a));
        }
        for k in ForkKind::ALL {
            assert_eq!(fork_kind(fork_kind_to_proto(*k)), Some(*k));
        }
    }

    #[test]
    fn a_retraction_must_say_why_from_the_closed_list() {
        assert_eq!(
            retract_reason(proto::RetractReason::RiskGone as i32),
            Ok(RetractReason::RiskGone)
        );
        for raw in [0, 7, -1] {
            assert_eq!(retract_reason(raw).unwrap_err().field, "reason", "{raw}");
        }
    }
}
