//! The log as FHIR R4 `AuditEvent` resources, for tools that read FHIR (an ATNA audit record
//! repository, a SIEM, a privacy officer's own viewer), following the IHE Basic Audit Log
//! Patterns (BALP) as far as the log's fields reach.
//!
//! This module owns the mapping from one [`AuditEvent`] to its resources and nothing else: it
//! reads no store, opens no connection and never sees a BSN (no event can hold one). Its
//! output is derived: the canonical JSON lines stay the only form that proofs cover.
//!
//! # Shape
//! - One resource per subject, as BALP asks of patient-specific events (an event about three
//!   persons gives three resources that differ only in `id` and the patient entity); an event
//!   about nobody gives one resource without a patient entity. The `id` is
//!   `kring-<observer OIN>-<event index>-<subject position>` (position 0 for an event about
//!   nobody): stable across exports, unique in the log, and it leads back to the leaf.
//! - `recorded` is the event's time; `outcome` is `0` for success, `4` (minor failure) for a
//!   refusal, `8` (serious failure) for a failure, and `outcomeDesc` is the event's reason.
//! - `purposeOfEvent` holds the purpose in the kring purpose CodeSystem; the legal basis it
//!   rests on is the [`LEGAL_BASIS_EXTENSION`] on the resource (a legal ground is not a
//!   purpose, so it is not a second coding of it).
//! - `agent`: the actor (who.identifier = the principal under [`PRINCIPAL_SYSTEM`], assigned by
//!   its organisation's OIN; role coding; a `kring:` system principal has type DCM 110150
//!   Application), the professional on whose behalf a node answered a peer, the observer's
//!   organisation and the counterpart organisation (who.identifier = the OIN under
//!   [`OIN_SYSTEM`]), the organisations typed DCM 110153 Source Role ID / 110152 Destination
//!   Role ID as BALP does (the discloser is the source of a disclosure; the client is the
//!   source of a create, update, delete, search or operation and the destination of a read).
//!   A RESTful interaction always has both: without a typed counterpart (a local call, or an
//!   event the node runs itself) the observer's organisation is the client and the server,
//!   as two agents. `requestor` is true for exactly one agent: the professional on whose
//!   behalf, else the peer organisation a serving node answered, else the actor.
//! - `source.observer` is the organisation whose node wrote the log, by OIN.
//! - `entity`: the patient (`what` = a Patient reference by identifier: the pseudonym under
//!   [`PSEUDONYM_SYSTEM`], assigned by the observer, whose pseudonyms are its own), type 1
//!   Person, role 1 Patient; the object (`description` = the event's object, and
//!   `what.identifier` under [`OBJECT_SYSTEM`] when it names one record, `signal:<uuid>`);
//!   the transaction as BALP's `XrequestId` entity (the `x-kring-transaction-id` header is
//!   kring's X-Request-Id), `urn:uuid:` under `urn:ietf:rfc:3986`, the same value at every
//!   node of one exchange.
//!
//! # Mapping
//! Aliases: `DCM` = `http://dicom.nema.org/resources/ontology/DCM`, `AET` =
//! `http://terminology.hl7.org/CodeSystem/audit-event-type`, `RI` =
//! `http://hl7.org/fhir/restful-interaction`, `LC` =
//! `http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle`. Every resource also carries
//! the kring action as a last `subtype` coding under [`ACTION_SYSTEM`]. The profile column
//! names the BALP profile claimed in `meta.profile` for a successful event with a subject /
//! without one; a disclosure's profile is claimed only with a subject and a counterpart
//! (both are required by it), and a RESTful profile only on success (BALP fixes its outcome
//! to 0: "failures are recorded differently") and, for Create, Read, Update and Delete, only
//! when the event's object names one record (`kind:<uuid>`), the only object that gives the
//! `entity:data` its required `what`; otherwise no profile is claimed.
//!
//! "source" is the node that discloses, "recipient" the node that receives; which one wrote
//! an event follows from its actor: a node answering a peer acts as `kring:federation`,
//! `kring:index` or `kring:pseudonyms`, a node pushing a delivery as `kring:outbox`. A pull
//! (a fetch, a lookup) discloses at the answering node; a push (a publication, a notice, a
//! melding) at the sending node.
//!
//! | kring action | at | type | subtype | action | BALP profile |
//! |---|---|---|---|---|---|
//! | `node.started` | any | DCM#110100 Application Activity | DCM#110120 Application Start | E | — |
//! | `node.stopped` | any | DCM#110100 Application Activity | DCM#110121 Application Stop | E | — |
//! | `request.refused` | any | DCM#110113 Security Alert | — | E | — |
//! | `signal.register` | any | AET#rest | RI#create | C | PatientCreate / Create |
//! | `signal.update` | any | AET#rest | RI#update | U | PatientUpdate / Update |
//! | `signal.withdraw` | any | AET#rest | RI#delete | D | PatientDelete / Delete |
//! | `signal.list` | any | AET#rest | RI#search | E | — |
//! | `signal.expire` | any | AET#rest | RI#delete | D | PatientDelete / Delete |
//! | `audit.search` | any | AET#rest | RI#search | E | — |
//! | `audit.checkpoint` | any | AET#rest | RI#read | R | PatientRead / Read |
//! | `audit.proof` | any | AET#rest | RI#read | R | PatientRead / Read |
//! | `audit.verify` | any | AET#rest | RI#operation | E | — |
//! | `audit.export` | any | DCM#110106 Export | — | R | — |
//! | `audit.break_glass_queue` | any | AET#rest | RI#search | E | — |
//! | `audit.break_glass_review` | any | AET#rest | RI#update | U | PatientUpdate / Update |
//! | `peer.refused` | any | DCM#110113 Security Alert | DCM#110126 Node Authentication | E | — |
//! | `directory.accept` | any | DCM#110113 Security Alert | DCM#110129 Security Configuration | E | — |
//! | `store.reencrypted` | any | DCM#110113 Security Alert | DCM#110129 Security Configuration | E | — |
//! | `store.compacted` | any | DCM#110113 Security Alert | DCM#110129 Security Configuration | E | — |
//! | `pseudonym.index_key` | any | DCM#110113 Security Alert | DCM#110129 Security Configuration | E | — |
//! | `pseudonym.index_retire` | any | DCM#110113 Security Alert | DCM#110129 Security Configuration | E | — |
//! | `index.rekey` | any | DCM#110113 Security Alert | DCM#110129 Security Configuration | E | — |
//! | `pointer.publish` | source | DCM#110106 Export | LC#disclose | R | PrivacyDisclosure.Source |
//! | `pointer.publish` | recipient | DCM#110107 Import | LC#disclose | C | PrivacyDisclosure.Recipient |
//! | `pointer.retract` | any | AET#rest | RI#delete | D | PatientDelete / Delete |
//! | `pointer.expire` | any | AET#rest | RI#delete | D | PatientDelete / Delete |
//! | `pointer.archive` | any | AET#rest | RI#create | C | PatientCreate / Create |
//! | `archive.expire` | any | AET#rest | RI#delete | D | PatientDelete / Delete |
//! | `pointer.lookup` | source | DCM#110106 Export | LC#disclose | R | PrivacyDisclosure.Source |
//! | `pointer.lookup` | recipient | DCM#110107 Import | LC#disclose | C | PrivacyDisclosure.Recipient |
//! | `notice.send` | source | DCM#110106 Export | LC#disclose | R | PrivacyDisclosure.Source |
//! | `notice.receive` | recipient | DCM#110107 Import | LC#disclose | C | PrivacyDisclosure.Recipient |
//! | `matches.watch` | any | AET#rest | RI#search | E | — |
//! | `matches.list` | any | AET#rest | RI#search | E | — |
//! | `signals.fetch` | source | DCM#110106 Export | LC#disclose | R | PrivacyDisclosure.Source |
//! | `signals.fetch` | recipient | DCM#110107 Import | LC#disclose | C | PrivacyDisclosure.Recipient |
//! | `cases.linked_signals` | recipient | DCM#110107 Import | LC#disclose | C | — |
//! | `cases.break_glass` | recipient | DCM#110107 Import | LC#disclose | C | — |
//! | `melding.send` | source | DCM#110106 Export | LC#disclose | R | PrivacyDisclosure.Source |
//! | `melding.receive` | recipient | DCM#110107 Import | LC#disclose | C | PrivacyDisclosure.Recipient |
//! | `melding.list` | any | AET#rest | RI#search | E | — |
//! | `regie.claim` | any | AET#rest | RI#create | C | PatientCreate / Create |
//! | `regie.release` | any | AET#rest | RI#delete | D | PatientDelete / Delete |
//! | `waakvlam.start` | any | AET#rest | RI#create | C | PatientCreate / Create |
//! | `waakvlam.list` | any | AET#rest | RI#search | E | — |
//! | `pseudonym.evaluate` | any | AET#rest | RI#operation | E | — |
//! | `audit.subject_access` | any | AET#rest | RI#search | E | — |
//! | `audit.subject_access_fetch` | source | DCM#110106 Export | LC#disclose | R | PrivacyDisclosure.Source |
//! | `audit.subject_access_fetch` | recipient | DCM#110107 Import | LC#disclose | C | PrivacyDisclosure.Recipient |
//! | `witness.cosign` | any | AET#rest | RI#operation | E | — |
//! | `witness.fork` | any | DCM#110113 Security Alert | — | E | — |
//! | `audit.cosigned` | any | AET#rest | RI#operation | E | — |
//! | `fork.alert_send` | any | AET#rest | RI#operation | E | — |
//! | `fork.alert_receive` | any | DCM#110113 Security Alert | — | E | — |
//! | `audit.forks` | any | AET#rest | RI#search | E | — |
//!
//! One rule overrides the table: a refusal whose reason starts with `unauthenticated` (no or
//! an unknown bearer token) is a failed login, DCM#110114 User Authentication with subtype
//! DCM#110122 Login, action E, no profile, whatever the call was (its kring action stays as
//! the last subtype). Security events keep their row.
//!
//! `cases.linked_signals` and `cases.break_glass` summarise what the requester received from
//! every source; they name no counterpart (each source's answer is its own `signals.fetch`),
//! so they claim no profile. `pointer.retract` is the deletion of a pointer, not a
//! disclosure: it carries nothing the index does not hold. `audit.export` is the log leaving
//! the node for the organisation's own privacy officer, not a disclosure to another party.
//!
//! # Where the export falls short of BALP
//! A resource that claims a profile carries its required client and server (or source and
//! recipient) agents, typed DCM 110153 / 110152, and, for Create, Read, Update and Delete,
//! the `entity:data` with its `what`. A search claims no profile: `Query` / `PatientQuery`
//! want an `entity:query` (role 24 Query) with the raw query base64-encoded in `query`, and
//! the log keeps what a search returned (`signals:3`), not what was asked; it is exported as
//! an ordinary object entity under the basic AuditEvent. What a claimed profile cannot carry:
//! `agent.network` on its agents. The log records no network addresses (by design: fewer
//! personal data), so there is none, and a validator checking strictly reports it.
//!
//! # Sources
//! The profile canonical URLs, the entity type code system and the codes come from the BALP
//! implementation guide (canonical `https://profiles.ihe.net/ITI/BALP`): its FSH sources in
//! the `IHE/ITI.BasicAudit` repository (`input/fsh/PatientCreate.fsh`, `PatientRead.fsh`,
//! `PatientUpdate.fsh`, `PatientQuery.fsh`, `Disclose.fsh`, `terms.fsh`, `Aliases.fsh`) and
//! the published StructureDefinition pages (`StructureDefinition-IHE.BasicAudit.*.html` on
//! build.fhir.org/ig/IHE/ITI.BasicAudit, which give each "Official URL"). The DICOM subtypes
//! (110120, 110121, 110122, 110126, 110129) are as listed in FHIR's security event sub-type
//! value set (DICOM PS3.16).

use serde_json::{Map, Value, json};

use crate::domain::{Action, Actor, AuditEvent, Oin, Outcome};

/// The kring actions, as the last `subtype` coding of every resource.
pub const ACTION_SYSTEM: &str = "https://kring.nl/fhir/CodeSystem/action";
/// kring's closed list of purposes (`Purpose`).
pub const PURPOSE_SYSTEM: &str = "https://kring.nl/fhir/CodeSystem/purpose";
/// kring's closed list of legal bases (`LegalBasis`); the display is the citation.
pub const LEGAL_BASIS_SYSTEM: &str = "https://kring.nl/fhir/CodeSystem/legal-basis";
/// The extension on the resource that names the legal basis of the event.
pub const LEGAL_BASIS_EXTENSION: &str = "https://kring.nl/fhir/StructureDefinition/legal-basis";
/// kring's local roles (`Role`).
pub const ROLE_SYSTEM: &str = "https://kring.nl/fhir/CodeSystem/role";
/// Principals of a node; unique only within the organisation named as the assigner.
pub const PRINCIPAL_SYSTEM: &str = "https://kring.nl/fhir/NamingSystem/principal";
/// Pseudonyms as one node's log records them (each organisation's are its own); the assigner
/// is the observer.
pub const PSEUDONYM_SYSTEM: &str = "https://kring.nl/fhir/NamingSystem/pseudonym";
/// Records a node names in an event's object (`signal:<uuid>`, `waakvlam:<uuid>`).
pub const OBJECT_SYSTEM: &str = "https://kring.nl/fhir/NamingSystem/object";
/// The organisatie-identificatienummer. A URI in the `fhir.nl` namespace where the Dutch
/// identifier systems live (`.../NamingSystem/ura`, `.../agb-z`), chosen over an OID because
/// it names the identifier it holds; no registration of this exact URI was found, so a
/// consumer that needs a registered one maps it here, in one place.
pub const OIN_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/oin";

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const LIFECYCLE: &str = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
const BALP_PROFILE: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.";
const URI: &str = "urn:ietf:rfc:3986";

/// The organisation whose node wrote the log: the `source.observer` of every resource and the
/// namespace of its ids and pseudonyms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    pub oin: Oin,
    /// Shown with the OIN where known; the log itself records only OINs.
    pub name: Option<String>,
}

/// What an action is in FHIR's terms; [`kind`] decides it for every action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rest(Interaction),
    Disclosure(Flow),
    /// The log leaving the node for the organisation's own privacy officer.
    LogExport,
    Application(Lifecycle),
    Security(Alert),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Create,
    Read,
    Update,
    Delete,
    Search,
    Operation,
}

/// Which way the data goes between the requesting and the answering node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The answering node discloses (a fetch, a lookup).
    Pull,
    /// The requesting node discloses (a publication, a notice, a melding).
    Push,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Start,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// A request refused before any handler (an oversized message).
    RefusedRequest,
    /// A peer refused at the gate.
    NodeAuthentication,
    /// The node's security configuration changed: a new signed directory (members, pins,
    /// policy), or the data keys of encryption at rest.
    SecurityConfiguration,
    /// A log's checkpoints found inconsistent (a fork or rollback), at its witness or
    /// reported by one.
    LogIntegrity,
}

/// The side of a disclosure an event was recorded at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Recipient,
}

/// The FHIR kind of every kring action (the table in the module doc).
pub fn kind(action: Action) -> Kind {
    use Interaction::*;
    match action {
        Action::NodeStarted => Kind::Application(Lifecycle::Start),
        Action::NodeStopped => Kind::Application(Lifecycle::Stop),
        Action::RequestRefused => Kind::Security(Alert::RefusedRequest),
        Action::PeerRefused => Kind::Security(Alert::NodeAuthentication),
        Action::DirectoryAccept
        | Action::StoreReencrypted
        | Action::StoreCompacted
        | Action::IndexKeyShare
        | Action::IndexEpochRetire
        | Action::IndexRekey => Kind::Security(Alert::SecurityConfiguration),
        Action::SignalRegister
        | Action::RegieClaim
        | Action::WaakvlamStart
        | Action::PointerArchive => Kind::Rest(Create),
        Action::SignalUpdate | Action::AuditBreakGlassReview => Kind::Rest(Update),
        Action::SignalWithdraw
        | Action::SignalExpire
        | Action::PointerRetract
        | Action::PointerExpire
        | Action::ArchiveExpire
        | Action::RegieRelease => Kind::Rest(Delete),
        Action::SignalList
        | Action::AuditSearch
        | Action::AuditBreakGlassQueue
        | Action::MatchesWatch
        | Action::MatchesList
        | Action::MeldingenList
        | Action::WaakvlamList
        | Action::SubjectAccess => Kind::Rest(Search),
        Action::AuditCheckpoint | Action::AuditProof => Kind::Rest(Read),
        Action::AuditVerify
        | Action::PseudonymEvaluate
        | Action::WitnessCosign
        | Action::CheckpointCosigned => Kind::Rest(Operation),
        Action::AuditForks => Kind::Rest(Search),
        Action::WitnessFork | Action::ForkAlertReceive => Kind::Security(Alert::LogIntegrity),
        Action::ForkAlertSend => Kind::Rest(Operation),
        Action::AuditExport => Kind::LogExport,
        Action::PointerPublish
        | Action::NoticeSend
        | Action::NoticeReceive
        | Action::MeldingSend
        | Action::MeldingReceive => Kind::Disclosure(Flow::Push),
        Action::PointerLookup
        | Action::SignalsFetch
        | Action::SubjectAccessFetch
        | Action::LinkedSignals
        | Action::BreakGlass => Kind::Disclosure(Flow::Pull),
    }
}

/// The system principals a node acts as when it answers a peer.
const SERVING: [&str; 4] = [
    "kring:federation",
    "kring:index",
    "kring:pseudonyms",
    "kring:peer",
];

fn serving(actor: &Actor) -> bool {
    SERVING.contains(&actor.user.as_str())
}

/// Whether the actor is the node itself (`kring:` is reserved for it in configuration).
fn system(actor: &Actor) -> bool {
    actor.user.as_str().starts_with("kring:")
}

/// Where a disclosure was recorded, or `None` for an event that is not one.
pub fn side(event: &AuditEvent) -> Option<Side> {
    let Kind::Disclosure(flow) = kind(event.action) else {
        return None;
    };
    let answering = serving(&event.actor);
    Some(match (flow, answering) {
        (Flow::Pull, true) | (Flow::Push, false) => Side::Source,
        (Flow::Pull, false) | (Flow::Push, true) => Side::Recipient,
    })
}

/// A failed login: refused for want of a (known) bearer token, whatever the call.
fn failed_login(event: &AuditEvent) -> bool {
    event.outcome == Outcome::Refused
        && !matches!(kind(event.action), Kind::Security(_))
        && event
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("unauthenticated"))
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    if display.is_empty() {
        json!({ "system": system, "code": code })
    } else {
        json!({ "system": system, "code": code, "display": display })
    }
}

fn concept(coding: Value) -> Value {
    json!({ "coding": [coding] })
}

fn oin_identifier(oin: &Oin) -> Value {
    json!({ "system": OIN_SYSTEM, "value": oin.as_str() })
}

/// The type, subtypes (without the kring action) and action code of an event.
fn classify(event: &AuditEvent) -> (Value, Vec<Value>, &'static str) {
    if failed_login(event) {
        return (
            coding(DCM, "110114", "User Authentication"),
            vec![coding(DCM, "110122", "Login")],
            "E",
        );
    }
    let rest = || coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation");
    let interaction = |code: &str| coding(RESTFUL_INTERACTION, code, code);
    match kind(event.action) {
        Kind::Rest(i) => {
            let (code, action) = match i {
                Interaction::Create => ("create", "C"),
                Interaction::Read => ("read", "R"),
                Interaction::Update => ("update", "U"),
                Interaction::Delete => ("delete", "D"),
                Interaction::Search => ("search", "E"),
                Interaction::Operation => ("operation", "E"),
            };
            (rest(), vec![interaction(code)], action)
        }
        Kind::Disclosure(_) => {
            let disclose = coding(LIFECYCLE, "disclose", "");
            match side(event) {
                Some(Side::Source) => (coding(DCM, "110106", "Export"), vec![disclose], "R"),
                _ => (coding(DCM, "110107", "Import"), vec![disclose], "C"),
            }
        }
        Kind::LogExport => (coding(DCM, "110106", "Export"), Vec::new(), "R"),
        Kind::Application(stage) => (
            coding(DCM, "110100", "Application Activity"),
            vec![match stage {
                Lifecycle::Start => coding(DCM, "110120", "Application Start"),
                Lifecycle::Stop => coding(DCM, "110121", "Application Stop"),
            }],
            "E",
        ),
        Kind::Security(alert) => (
            coding(DCM, "110113", "Security Alert"),
            match alert {
                Alert::RefusedRequest => Vec::new(),
                Alert::NodeAuthentication => vec![coding(DCM, "110126", "Node Authentication")],
                Alert::SecurityConfiguration => {
                    vec![coding(DCM, "110129", "Security Configuration")]
                }
                Alert::LogIntegrity => Vec::new(),
            },
            "E",
        ),
    }
}

/// The BALP profile claimed for this event, given whether the resource has a patient.
fn profile(event: &AuditEvent, with_patient: bool) -> Option<String> {
    if failed_login(event) {
        return None;
    }
    let name = match kind(event.action) {
        Kind::Rest(i) => {
            if event.outcome != Outcome::Success {
                return None;
            }
            let base = match i {
                Interaction::Create => "Create",
                Interaction::Read => "Read",
                Interaction::Update => "Update",
                Interaction::Delete => "Delete",
                // Query and PatientQuery want the raw query, which the log does not keep.
                Interaction::Search | Interaction::Operation => return None,
            };
            // Create, Read, Update and Delete require the data entity with its `what`, which
            // only an object naming one record gives; without it no profile is claimed.
            if !event.object.as_deref().is_some_and(names_record) {
                return None;
            }
            if with_patient {
                format!("Patient{base}")
            } else {
                base.to_owned()
            }
        }
        Kind::Disclosure(_) if with_patient && event.counterpart.is_some() => match side(event) {
            Some(Side::Source) => "PrivacyDisclosure.Source".to_owned(),
            _ => "PrivacyDisclosure.Recipient".to_owned(),
        },
        _ => return None,
    };
    Some(format!("{BALP_PROFILE}{name}"))
}

/// How an organisation took part, as BALP types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrgRole {
    Source,
    Destination,
    Untyped,
}

impl OrgRole {
    fn concept(self) -> Option<Value> {
        match self {
            OrgRole::Source => Some(concept(coding(DCM, "110153", "Source Role ID"))),
            OrgRole::Destination => Some(concept(coding(DCM, "110152", "Destination Role ID"))),
            OrgRole::Untyped => None,
        }
    }

    fn other(self) -> OrgRole {
        match self {
            OrgRole::Source => OrgRole::Destination,
            OrgRole::Destination => OrgRole::Source,
            OrgRole::Untyped => OrgRole::Untyped,
        }
    }
}

/// The roles of the observer and of the counterpart organisation.
fn org_roles(event: &AuditEvent) -> (OrgRole, OrgRole) {
    if failed_login(event) {
        return (OrgRole::Destination, OrgRole::Source);
    }
    match kind(event.action) {
        Kind::Disclosure(_) => match side(event) {
            Some(Side::Source) => (OrgRole::Source, OrgRole::Destination),
            _ => (OrgRole::Destination, OrgRole::Source),
        },
        Kind::Rest(i) => {
            // The client is the source of a request, except of a read, whose data flows back.
            let client = if i == Interaction::Read {
                OrgRole::Destination
            } else {
                OrgRole::Source
            };
            let server = client.other();
            if serving(&event.actor) {
                (server, client)
            } else if !system(&event.actor) || event.actor.user.as_str() == "kring:outbox" {
                (client, server)
            } else {
                // The node acting on its own (retention): the counterpart asked for nothing.
                (server, OrgRole::Untyped)
            }
        }
        Kind::Security(Alert::RefusedRequest | Alert::NodeAuthentication | Alert::LogIntegrity) => {
            (OrgRole::Destination, OrgRole::Source)
        }
        Kind::LogExport => (OrgRole::Source, OrgRole::Untyped),
        Kind::Security(Alert::SecurityConfiguration) | Kind::Application(_) => {
            (OrgRole::Untyped, OrgRole::Untyped)
        }
    }
}

/// The participation type of a professional: author of a change, recipient of data.
fn professional_type(event: &AuditEvent, receives: bool) -> Option<Value> {
    let author = || concept(coding(PARTICIPATION_TYPE, "AUT", "author (originator)"));
    let recipient = || concept(coding(PARTICIPATION_TYPE, "IRCP", "information recipient"));
    if failed_login(event) {
        return None;
    }
    match kind(event.action) {
        Kind::Rest(Interaction::Create | Interaction::Update | Interaction::Delete) => {
            Some(author())
        }
        Kind::Rest(_) | Kind::LogExport => Some(recipient()),
        Kind::Disclosure(_) => receives.then(recipient),
        Kind::Application(_) | Kind::Security(_) => None,
    }
}

fn person_agent(actor: &Actor, kind: Option<Value>, requestor: bool) -> Value {
    let mut agent = Map::new();
    if let Some(kind) = kind {
        agent.insert("type".into(), kind);
    }
    if let Some(role) = actor.role {
        agent.insert(
            "role".into(),
            json!([concept(coding(ROLE_SYSTEM, role.as_str(), ""))]),
        );
    }
    agent.insert(
        "who".into(),
        json!({ "identifier": {
            "system": PRINCIPAL_SYSTEM,
            "value": actor.user.as_str(),
            "assigner": { "identifier": oin_identifier(&actor.organisation) },
        }}),
    );
    agent.insert("requestor".into(), Value::Bool(requestor));
    Value::Object(agent)
}

fn org_agent(oin: &Oin, name: Option<&str>, role: OrgRole, requestor: bool) -> Value {
    let mut who = Map::new();
    who.insert("identifier".into(), oin_identifier(oin));
    if let Some(name) = name {
        who.insert("display".into(), Value::String(name.to_owned()));
    }
    let mut agent = Map::new();
    if let Some(kind) = role.concept() {
        agent.insert("type".into(), kind);
    }
    agent.insert("who".into(), Value::Object(who));
    agent.insert("requestor".into(), Value::Bool(requestor));
    Value::Object(agent)
}

fn agents(event: &AuditEvent, observer: &Observer) -> Vec<Value> {
    let side = side(event);
    let counterpart = event.counterpart.filter(|c| *c != observer.oin);
    // Exactly one requestor: the professional a node answered for, else the peer it
    // answered, else whoever acted.
    let peer_asked = event.on_behalf_of.is_none() && serving(&event.actor) && counterpart.is_some();
    let actor_asked = event.on_behalf_of.is_none() && !peer_asked;

    let mut agents = Vec::new();
    let actor_type = if event.actor.user.as_str() == "kring:anonymous" {
        None
    } else if system(&event.actor) {
        Some(concept(coding(DCM, "110150", "Application")))
    } else {
        professional_type(event, side == Some(Side::Recipient))
    };
    agents.push(person_agent(&event.actor, actor_type, actor_asked));
    if let Some(on_behalf_of) = &event.on_behalf_of {
        let kind = professional_type(event, side == Some(Side::Source));
        agents.push(person_agent(on_behalf_of, kind, true));
    }
    let (mine, theirs) = org_roles(event);
    agents.push(org_agent(
        &observer.oin,
        observer.name.as_deref(),
        mine,
        false,
    ));
    let counterpart_typed = counterpart.is_some() && theirs != OrgRole::Untyped;
    if let Some(counterpart) = counterpart {
        agents.push(org_agent(&counterpart, None, theirs, peer_asked));
    }
    // A RESTful interaction has a client and a server. Without a typed counterpart (a local
    // call, or the node acting on its own) the observer's organisation is both.
    if matches!(kind(event.action), Kind::Rest(_)) && !failed_login(event) && !counterpart_typed {
        agents.push(org_agent(
            &observer.oin,
            observer.name.as_deref(),
            mine.other(),
            false,
        ));
    }
    agents
}

/// The record an object names, if it names one: `<kind>:<uuid>`.
fn names_record(object: &str) -> bool {
    object
        .split_once(':')
        .is_some_and(|(kind, id)| !kind.is_empty() && uuid::Uuid::try_parse(id).is_ok())
}

fn object_entity(event: &AuditEvent, object: &str) -> Value {
    let mut entity = Map::new();
    if names_record(object) {
        entity.insert(
            "what".into(),
            json!({ "identifier": { "system": OBJECT_SYSTEM, "value": object } }),
        );
    }
    entity.insert("type".into(), coding(ENTITY_TYPE, "2", "System Object"));
    if matches!(kind(event.action), Kind::Rest(_) | Kind::Disclosure(_)) {
        entity.insert("role".into(), coding(OBJECT_ROLE, "4", "Domain Resource"));
    }
    entity.insert("description".into(), Value::String(object.to_owned()));
    Value::Object(entity)
}

/// The resources of one event: one per subject, or one without a patient entity.
pub fn to_fhir(event: &AuditEvent, observer: &Observer) -> Vec<Value> {
    let (event_type, mut subtypes, action) = classify(event);
    subtypes.push(coding(ACTION_SYSTEM, event.action.as_str(), ""));
    let outcome = match event.outcome {
        Outcome::Success => "0",
        Outcome::Refused => "4",
        Outcome::Failed => "8",
    };

    let mut common = Map::new();
    common.insert("resourceType".into(), "AuditEvent".into());
    if let Some(basis) = event.legal_basis {
        common.insert(
            "extension".into(),
            json!([{
                "url": LEGAL_BASIS_EXTENSION,
                "valueCoding": coding(LEGAL_BASIS_SYSTEM, basis.as_str(), basis.citation()),
            }]),
        );
    }
    common.insert("type".into(), event_type);
    common.insert("subtype".into(), Value::Array(subtypes));
    common.insert("action".into(), action.into());
    common.insert("recorded".into(), event.time.rfc3339().into());
    common.insert("outcome".into(), outcome.into());
    if let Some(reason) = &event.reason {
        common.insert("outcomeDesc".into(), reason.clone().into());
    }
    if let Some(purpose) = event.purpose {
        common.insert(
            "purposeOfEvent".into(),
            json!([concept(coding(PURPOSE_SYSTEM, purpose.as_str(), ""))]),
        );
    }
    common.insert("agent".into(), Value::Array(agents(event, observer)));
    let mut observer_ref = Map::new();
    observer_ref.insert("identifier".into(), oin_identifier(&observer.oin));
    if let Some(name) = &observer.name {
        observer_ref.insert("display".into(), name.clone().into());
    }
    common.insert(
        "source".into(),
        json!({
            "observer": observer_ref,
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        }),
    );

    let mut shared_entities = Vec::new();
    if let Some(object) = &event.object {
        shared_entities.push(object_entity(event, object));
    }
    shared_entities.push(json!({
        "what": { "identifier": {
            "system": URI,
            "value": format!("urn:uuid:{}", event.transaction),
        }},
        "type": coding(BALP_ENTITY_TYPE, "XrequestId", ""),
    }));

    let resource = |position: usize, patient: Option<Value>| {
        let mut resource = common.clone();
        resource.insert(
            "id".into(),
            format!("kring-{}-{}-{position}", observer.oin, event.index).into(),
        );
        if let Some(profile) = profile(event, patient.is_some()) {
            resource.insert("meta".into(), json!({ "profile": [profile] }));
        }
        let mut entities = Vec::with_capacity(shared_entities.len() + 1);
        entities.extend(patient);
        entities.extend(shared_entities.iter().cloned());
        resource.insert("entity".into(), Value::Array(entities));
        Value::Object(resource)
    };

    if event.subjects.is_empty() {
        return vec![resource(0, None)];
    }
    event
        .subjects
        .iter()
        .enumerate()
        .map(|(position, subject)| {
            let patient = json!({
                "what": {
                    "type": "Patient",
                    "identifier": {
                        "system": PSEUDONYM_SYSTEM,
                        "value": subject.to_string(),
                        "assigner": { "identifier": oin_identifier(&observer.oin) },
                    },
                },
                "type": coding(ENTITY_TYPE, "1", "Person"),
                "role": coding(OBJECT_ROLE, "1", "Patient"),
            });
            resource(position, Some(patient))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        EventDraft, LegalBasis, PrincipalId, Pseudonym, Purpose, Role, TransactionId, UnixMillis,
    };

    const ME: &str = "00000001820000001000";
    const PEER: &str = "00000001820000004000";

    fn oin(text: &str) -> Oin {
        Oin::parse(text).unwrap()
    }

    fn observer() -> Observer {
        Observer {
            oin: oin(ME),
            name: Some("Basisschool De Regenboog".into()),
        }
    }

    fn person(user: &str, organisation: &str) -> Actor {
        Actor {
            user: PrincipalId::parse(user).unwrap(),
            role: Some(Role::Analyst),
            organisation: oin(organisation),
        }
    }

    fn node(what: &str) -> Actor {
        Actor {
            user: PrincipalId::system(what),
            role: None,
            organisation: oin(ME),
        }
    }

    fn subject(n: u8) -> Pseudonym {
        Pseudonym([n; 32])
    }

    fn at(draft: EventDraft) -> AuditEvent {
        draft.at(7, UnixMillis(1_893_456_000_123))
    }

    /// An event of `action` as the node records it at `side` of a disclosure ("any" for the
    /// rest): the actor the code uses there, a subject, a counterpart where the code names one.
    fn recorded_at(action: Action, side: &str) -> EventDraft {
        let actor = match (kind(action), side) {
            (Kind::Disclosure(Flow::Pull), "source") => node("federation"),
            (Kind::Disclosure(Flow::Push), "source") => node("outbox"),
            (Kind::Disclosure(Flow::Push), "recipient") => node("federation"),
            _ => person("l.smit", ME),
        };
        let mut draft = EventDraft::new(TransactionId::new(), actor, action)
            .purpose(Purpose::VtTriage, LegalBasis::Wmo411)
            .subjects([subject(1)])
            .object("signal:0192e4c4-7f6a-7b3e-9d2a-3f0c8e1b2a4d");
        if side == "source" && kind(action) == Kind::Disclosure(Flow::Pull) {
            draft = draft.on_behalf_of(person("l.smit", PEER));
        }
        if !matches!(action, Action::LinkedSignals | Action::BreakGlass) {
            draft = draft.counterpart(oin(PEER));
        }
        draft
    }

    /// `DCM#110100 Application Activity` as (system, code); `—` as none.
    fn aliased(text: &str) -> Option<(&'static str, String)> {
        let token = text.split_whitespace().next()?;
        if token == "—" {
            return None;
        }
        let (alias, code) = token.split_once('#').expect("alias#code");
        let system = match alias {
            "DCM" => DCM,
            "AET" => AUDIT_EVENT_TYPE,
            "RI" => RESTFUL_INTERACTION,
            "LC" => LIFECYCLE,
            other => panic!("no alias {other} in the module doc"),
        };
        Some((system, code.to_owned()))
    }

    fn system_and_code(coding: &Value) -> (String, String) {
        (
            coding["system"].as_str().unwrap().to_owned(),
            coding["code"].as_str().unwrap().to_owned(),
        )
    }

    struct Row {
        action: Action,
        side: String,
        event_type: (&'static str, String),
        subtype: Option<(&'static str, String)>,
        code: String,
        profiles: Vec<String>,
    }

    /// The mapping table of the module doc, parsed.
    fn documented_rows() -> Vec<Row> {
        include_str!("fhir.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let action: Action = cells[0].trim_end_matches('`').parse().unwrap();
                Row {
                    action,
                    side: cells[1].to_owned(),
                    event_type: aliased(cells[2]).expect("every row names a type"),
                    subtype: aliased(cells[3]),
                    code: cells[4].to_owned(),
                    profiles: match cells[5] {
                        "—" => Vec::new(),
                        names => names
                            .split(" / ")
                            .map(|n| format!("{BALP_PROFILE}{n}"))
                            .collect(),
                    },
                }
            })
            .collect()
    }

    #[test]
    fn every_action_maps_as_its_documented_row_says() {
        let rows = documented_rows();
        for action in Action::ALL {
            let sides: Vec<&str> = rows
                .iter()
                .filter(|r| r.action == *action)
                .map(|r| r.side.as_str())
                .collect();
            match kind(*action) {
                Kind::Disclosure(_) => assert!(
                    !sides.is_empty() && sides.iter().all(|s| ["source", "recipient"].contains(s)),
                    "{action}: a disclosure is documented at its source and/or recipient, not {sides:?}"
                ),
                _ => assert_eq!(sides, ["any"], "{action}: one row, at any node"),
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for row in &rows {
            assert!(
                seen.insert((row.action, row.side.clone())),
                "{} at {} has two rows",
                row.action,
                row.side
            );
        }
        for row in &rows {
            let action = row.action;
            let event = at(recorded_at(action, &row.side));
            if row.side != "any" {
                let expected = if row.side == "source" {
                    Side::Source
                } else {
                    Side::Recipient
                };
                assert_eq!(side(&event), Some(expected), "{action} at the {}", row.side);
            }
            let resources = to_fhir(&event, &observer());
            assert_eq!(resources.len(), 1);
            let r = &resources[0];
            let here = format!("{action} ({})", row.side);
            assert_eq!(
                system_and_code(&r["type"]),
                (row.event_type.0.to_owned(), row.event_type.1.clone()),
                "{here}: type"
            );
            let subtypes = r["subtype"].as_array().unwrap();
            assert_eq!(
                system_and_code(subtypes.last().unwrap()),
                (ACTION_SYSTEM.to_owned(), action.as_str().to_owned()),
                "{here}: the kring action is the last subtype"
            );
            match &row.subtype {
                Some((system, code)) => {
                    assert_eq!(subtypes.len(), 2, "{here}: subtypes");
                    assert_eq!(
                        system_and_code(&subtypes[0]),
                        (system.to_string(), code.clone()),
                        "{here}: subtype"
                    );
                }
                None => assert_eq!(subtypes.len(), 1, "{here}: only the kring subtype"),
            }
            assert_eq!(r["action"], row.code.as_str(), "{here}: action");
            let claimed = |r: &Value| -> Vec<String> {
                r["meta"]["profile"]
                    .as_array()
                    .map(|p| p.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            };
            assert_eq!(
                claimed(r),
                row.profiles.iter().take(1).cloned().collect::<Vec<_>>(),
                "{here}: the profile with a subject"
            );
            // Without a subject: the second profile of a RESTful row, none for a disclosure.
            let mut nobody = recorded_at(action, &row.side);
            nobody.subjects.clear();
            let without = to_fhir(&at(nobody), &observer());
            let expected: Vec<String> = match kind(action) {
                Kind::Rest(_) => row.profiles.iter().skip(1).cloned().collect(),
                _ => Vec::new(),
            };
            assert_eq!(
                claimed(&without[0]),
                expected,
                "{here}: the profile without one"
            );
        }
    }

    fn ids(resources: &[Value]) -> Vec<&str> {
        resources
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect()
    }

    fn patient(resource: &Value) -> Option<&Value> {
        resource["entity"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["role"]["code"] == "1")
    }

    #[test]
    fn one_resource_per_subject_and_one_without_a_patient_for_an_event_about_nobody() {
        let event = at(EventDraft::new(
            TransactionId::new(),
            person("m.jansen", ME),
            Action::SignalRegister,
        )
        .subjects([subject(1), subject(2), subject(3)])
        .object("signal:0192e4c4-7f6a-7b3e-9d2a-3f0c8e1b2a4d"));
        let resources = to_fhir(&event, &observer());
        assert_eq!(
            ids(&resources),
            [
                "kring-00000001820000001000-7-0",
                "kring-00000001820000001000-7-1",
                "kring-00000001820000001000-7-2"
            ]
        );
        for (resource, n) in resources.iter().zip(1..) {
            let patient = patient(resource).expect("a patient entity");
            assert_eq!(
                patient["what"]["identifier"]["value"],
                subject(n).to_string().as_str()
            );
            assert_eq!(patient["what"]["identifier"]["system"], PSEUDONYM_SYSTEM);
            assert_eq!(patient["what"]["type"], "Patient");
            assert_eq!(patient["type"]["code"], "1");
        }
        // Apart from the id and the patient, the resources are one and the same.
        let strip = |r: &Value| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("id");
            r["entity"].as_array_mut().unwrap().remove(0);
            r
        };
        assert_eq!(strip(&resources[0]), strip(&resources[2]));

        let started = at(EventDraft::new(
            TransactionId::new(),
            node("node"),
            Action::NodeStarted,
        ));
        let resources = to_fhir(&started, &observer());
        assert_eq!(ids(&resources), ["kring-00000001820000001000-7-0"]);
        assert!(patient(&resources[0]).is_none());
        assert!(
            resources[0].get("meta").is_none(),
            "no BALP profile for a start"
        );
    }

    #[test]
    fn ids_are_valid_fhir_ids_at_the_largest_index() {
        let subjects: Vec<Pseudonym> = (0..=255).map(subject).collect();
        let event = EventDraft::new(
            TransactionId::new(),
            person("m.jansen", ME),
            Action::SignalList,
        )
        .subjects(subjects)
        .at(u64::MAX, UnixMillis(0));
        let resources = to_fhir(&event, &observer());
        assert_eq!(resources.len(), 256);
        let ids = ids(&resources);
        let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), 256);
        for id in ids {
            assert!(
                id.len() <= 64
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)),
                "{id} is not a FHIR id"
            );
        }
        assert_eq!(resources[0]["recorded"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_refusal_is_a_minor_failure_with_its_reason_and_a_failure_a_serious_one() {
        let reason = "permission_denied: purpose vt_triage is not allowed for school";
        let refused = at(EventDraft::new(
            TransactionId::new(),
            person("l.smit", ME),
            Action::LinkedSignals,
        )
        .subjects([subject(1)])
        .refused(reason));
        let r = &to_fhir(&refused, &observer())[0];
        assert_eq!(r["outcome"], "4");
        assert_eq!(r["outcomeDesc"], reason);
        assert_eq!(
            r["type"]["code"], "110107",
            "a refused import stays an import"
        );

        let failed = at(EventDraft::new(
            TransactionId::new(),
            person("m.jansen", ME),
            Action::SignalRegister,
        )
        .subjects([subject(1)])
        .failed("unavailable: the pseudonym service did not answer"));
        let r = &to_fhir(&failed, &observer())[0];
        assert_eq!(r["outcome"], "8");
        assert_eq!(
            r["outcomeDesc"],
            "unavailable: the pseudonym service did not answer"
        );
        assert!(
            r.get("meta").is_none(),
            "BALP's RESTful profiles are for successes"
        );

        let ok = at(EventDraft::new(
            TransactionId::new(),
            person("m.jansen", ME),
            Action::SignalList,
        ));
        let r = &to_fhir(&ok, &observer())[0];
        assert_eq!(r["outcome"], "0");
        assert!(r.get("outcomeDesc").is_none());
    }

    #[test]
    fn an_unauthenticated_refusal_is_a_failed_login_but_a_refused_peer_stays_a_node_alert() {
        let anonymous = Actor {
            user: PrincipalId::system("anonymous"),
            role: None,
            organisation: oin(ME),
        };
        let reason = "unauthenticated: authorization: a bearer token is required";
        let event = at(
            EventDraft::new(TransactionId::new(), anonymous, Action::SignalRegister)
                .refused(reason),
        );
        let r = &to_fhir(&event, &observer())[0];
        assert_eq!(system_and_code(&r["type"]), (DCM.into(), "110114".into()));
        let subtypes = r["subtype"].as_array().unwrap();
        assert_eq!(system_and_code(&subtypes[0]), (DCM.into(), "110122".into()));
        assert_eq!(subtypes[1]["code"], "signal.register");
        assert_eq!(r["action"], "E");
        assert_eq!(r["outcome"], "4");
        assert_eq!(r["outcomeDesc"], reason);
        assert!(r.get("meta").is_none());
        let actor = &r["agent"][0];
        assert_eq!(actor["who"]["identifier"]["value"], "kring:anonymous");
        assert_eq!(actor["requestor"], true);
        assert!(
            actor.get("type").is_none(),
            "an unknown caller is no application"
        );

        let peer = Actor {
            user: PrincipalId::system("peer"),
            role: None,
            organisation: oin(PEER),
        };
        let event = at(
            EventDraft::new(TransactionId::new(), peer, Action::PeerRefused)
                .counterpart(oin(PEER))
                .refused("unauthenticated: peer: the key is not pinned for this OIN"),
        );
        let r = &to_fhir(&event, &observer())[0];
        assert_eq!(system_and_code(&r["type"]), (DCM.into(), "110113".into()));
        assert_eq!(r["subtype"][0]["code"], "110126");
        let refused = r["agent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                a["who"]["identifier"]["system"] == OIN_SYSTEM
                    && a["who"]["identifier"]["value"] == PEER
            })
            .expect("the refused peer is an agent");
        assert_eq!(refused["type"]["coding"][0]["code"], "110153");
        assert_eq!(refused["requestor"], true);
    }

    /// The organisation agent with this OIN.
    fn org<'a>(resource: &'a Value, oin: &str) -> &'a Value {
        resource["agent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                a["who"]["identifier"]["system"] == OIN_SYSTEM
                    && a["who"]["identifier"]["value"] == oin
            })
            .unwrap_or_else(|| panic!("no agent for organisation {oin} in {resource:#}"))
    }

    fn requestors(resource: &Value) -> Vec<&Value> {
        resource["agent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["requestor"] == true)
            .collect()
    }

    #[test]
    fn a_fetch_at_the_source_is_an_export_to_the_requester_on_behalf_of_its_professional() {
        let event = at(recorded_at(Action::SignalsFetch, "source"));
        assert_eq!(side(&event), Some(Side::Source));
        let r = &to_fhir(&event, &observer())[0];
        assert_eq!(system_and_code(&r["type"]), (DCM.into(), "110106".into()));
        assert_eq!(r["action"], "R");
        assert_eq!(
            r["meta"]["profile"][0],
            format!("{BALP_PROFILE}PrivacyDisclosure.Source").as_str()
        );
        assert_eq!(
            org(r, ME)["type"]["coding"][0]["code"],
            "110153",
            "the source"
        );
        assert_eq!(
            org(r, PEER)["type"]["coding"][0]["code"],
            "110152",
            "the recipient"
        );
        assert_eq!(org(r, ME)["who"]["display"], "Basisschool De Regenboog");
        // The professional who asked is the one requestor, identified within her organisation.
        let asked = requestors(r);
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0]["who"]["identifier"]["value"], "l.smit");
        assert_eq!(asked[0]["who"]["identifier"]["system"], PRINCIPAL_SYSTEM);
        assert_eq!(
            asked[0]["who"]["identifier"]["assigner"]["identifier"]["value"],
            PEER
        );
        assert_eq!(asked[0]["role"][0]["coding"][0]["code"], "analyst");
        assert_eq!(asked[0]["type"]["coding"][0]["code"], "IRCP");
        // The node answered as an application.
        assert_eq!(
            r["agent"][0]["who"]["identifier"]["value"],
            "kring:federation"
        );
        assert_eq!(r["agent"][0]["type"]["coding"][0]["code"], "110150");
        assert_eq!(r["source"]["observer"]["identifier"]["value"], ME);
    }

    #[test]
    fn a_fetch_at_the_requester_is_an_import_from_the_source() {
        let event = at(recorded_at(Action::SignalsFetch, "recipient"));
        assert_eq!(side(&event), Some(Side::Recipient));
        let r = &to_fhir(&event, &observer())[0];
        assert_eq!(system_and_code(&r["type"]), (DCM.into(), "110107".into()));
        assert_eq!(r["action"], "C");
        assert_eq!(
            r["meta"]["profile"][0],
            format!("{BALP_PROFILE}PrivacyDisclosure.Recipient").as_str()
        );
        assert_eq!(r["subtype"][0]["code"], "disclose");
        assert_eq!(
            org(r, PEER)["type"]["coding"][0]["code"],
            "110153",
            "the source"
        );
        assert_eq!(
            org(r, ME)["type"]["coding"][0]["code"],
            "110152",
            "the recipient"
        );
        let asked = requestors(r);
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0]["who"]["identifier"]["value"], "l.smit");
        assert_eq!(
            asked[0]["who"]["identifier"]["assigner"]["identifier"]["value"],
            ME
        );
    }

    #[test]
    fn a_push_discloses_at_the_sender_and_a_notice_from_the_index_is_asked_by_the_index() {
        let sent = at(recorded_at(Action::PointerPublish, "source"));
        let r = &to_fhir(&sent, &observer())[0];
        assert_eq!(r["type"]["code"], "110106");
        assert_eq!(
            requestors(r)[0]["who"]["identifier"]["value"],
            "kring:outbox"
        );

        let received = at(recorded_at(Action::NoticeReceive, "recipient"));
        let r = &to_fhir(&received, &observer())[0];
        assert_eq!(r["type"]["code"], "110107");
        let asked = requestors(r);
        assert_eq!(asked.len(), 1);
        assert_eq!(
            asked[0]["who"]["identifier"]["value"], PEER,
            "the index sent it"
        );
        assert_eq!(asked[0]["type"]["coding"][0]["code"], "110153");
    }

    #[test]
    fn purpose_legal_basis_time_transaction_and_object_are_carried() {
        let transaction = TransactionId::new();
        let event = EventDraft::new(transaction, person("l.smit", ME), Action::SignalsFetch)
            .purpose(Purpose::Emergency, LegalBasis::Avg61d)
            .counterpart(oin(PEER))
            .subjects([subject(9)])
            .object("signals:2")
            .at(3, UnixMillis(1_893_456_000_123));
        let r = &to_fhir(&event, &observer())[0];
        assert_eq!(r["resourceType"], "AuditEvent");
        assert_eq!(r["recorded"], "2030-01-01T00:00:00.123Z");
        assert_eq!(
            r["purposeOfEvent"][0]["coding"][0],
            json!({ "system": PURPOSE_SYSTEM, "code": "emergency" })
        );
        assert_eq!(r["extension"][0]["url"], LEGAL_BASIS_EXTENSION);
        assert_eq!(
            r["extension"][0]["valueCoding"],
            json!({
                "system": LEGAL_BASIS_SYSTEM,
                "code": "avg_6.1.d",
                "display": "AVG art. 6 lid 1 sub d (vitaal belang)",
            })
        );
        let entities = r["entity"].as_array().unwrap();
        let object = &entities[1];
        assert_eq!(object["description"], "signals:2");
        assert!(object.get("what").is_none(), "a count names no record");
        let exchange = &entities[2];
        assert_eq!(exchange["type"]["code"], "XrequestId");
        assert_eq!(exchange["type"]["system"], BALP_ENTITY_TYPE);
        assert_eq!(
            exchange["what"]["identifier"],
            json!({ "system": URI, "value": format!("urn:uuid:{transaction}") })
        );

        let registered = at(EventDraft::new(
            TransactionId::new(),
            person("m.jansen", ME),
            Action::SignalRegister,
        )
        .object("signal:0192e4c4-7f6a-7b3e-9d2a-3f0c8e1b2a4d"));
        let r = &to_fhir(&registered, &observer())[0];
        assert_eq!(
            r["entity"][0]["what"]["identifier"],
            json!({ "system": OBJECT_SYSTEM, "value": "signal:0192e4c4-7f6a-7b3e-9d2a-3f0c8e1b2a4d" })
        );
        assert_eq!(r["entity"][0]["role"]["code"], "4");
        // No purpose, no legal basis: neither element appears.
        assert!(r.get("purposeOfEvent").is_none() && r.get("extension").is_none());
    }

    #[test]
    fn retention_deleting_a_pointer_is_not_asked_for_by_its_organisation() {
        let event = at(EventDraft::new(
            TransactionId::new(),
            node("retention"),
            Action::PointerExpire,
        )
        .counterpart(oin(PEER))
        .subjects([subject(1)]));
        let r = &to_fhir(&event, &observer())[0];
        assert!(org(r, PEER).get("type").is_none());
        assert_eq!(org(r, PEER)["requestor"], false);
        let asked = requestors(r);
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0]["who"]["identifier"]["value"], "kring:retention");
        // The node ran it itself: its organisation is the client and the server.
        let mine: Vec<&str> = r["agent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["who"]["identifier"]["value"] == ME)
            .filter_map(|a| a["type"]["coding"][0]["code"].as_str())
            .collect();
        assert_eq!(mine, ["110152", "110153"]);
    }

    #[test]
    fn a_restful_profile_is_claimed_only_with_the_data_entity_it_requires() {
        let draft = || {
            EventDraft::new(
                TransactionId::new(),
                person("l.smit", ME),
                Action::AuditCheckpoint,
            )
            .subjects([subject(1)])
        };
        // An object that names no record gives no entity.what: no Read profile.
        let r = &to_fhir(&at(draft().object("size:12")), &observer())[0];
        assert!(r.get("meta").is_none(), "{r:#}");
        let r = &to_fhir(&at(draft()), &observer())[0];
        assert!(r.get("meta").is_none(), "{r:#}");
        // A local call: the node's organisation is both client and server.
        let r = &to_fhir(
            &at(draft().object("signal:0192e4c4-7f6a-7b3e-9d2a-3f0c8e1b2a4d")),
            &observer(),
        )[0];
        assert!(
            r["meta"]["profile"][0]
                .as_str()
                .unwrap()
                .ends_with("PatientRead")
        );
        let codes: Vec<&str> = r["agent"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["type"]["coding"][0]["code"].as_str())
            .collect();
        assert!(
            codes.contains(&"110152") && codes.contains(&"110153"),
            "{codes:?}"
        );
    }
}
