//! What an audit event records, following NEN 7513 and FHIR AuditEvent: when, who (user, role,
//! organisation), on whose behalf, what, about whom (pseudonyms only), for which purpose and on
//! which legal ground, with which outcome and why, with which counterpart, in which exchange.
//!
//! The serialised form of [`AuditEvent`] is what the Merkle log hashes, so the field order of
//! the struct is part of the log format: append new optional fields at the end only.

use serde::{Deserialize, Serialize};

use super::ids::{PrincipalId, Pseudonym, SignalId, TransactionId, UnixMillis};
use super::org::{Oin, closed_enum};
use super::purpose::{LegalBasis, Purpose, Role};

closed_enum! {
    Action {
        NodeStarted = "node.started",
        NodeStopped = "node.stopped",
        /// A request refused before it reached a handler (an oversized message).
        RequestRefused = "request.refused",
        SignalRegister = "signal.register",
        SignalUpdate = "signal.update",
        SignalWithdraw = "signal.withdraw",
        SignalList = "signal.list",
        SignalExpire = "signal.expire",
        AuditSearch = "audit.search",
        AuditCheckpoint = "audit.checkpoint",
        AuditProof = "audit.proof",
        AuditVerify = "audit.verify",
        AuditExport = "audit.export",
        AuditBreakGlassQueue = "audit.break_glass_queue",
        AuditBreakGlassReview = "audit.break_glass_review",
        /// A peer refused before any handler: unknown, mispinned, other CA, expired.
        PeerRefused = "peer.refused",
        DirectoryAccept = "directory.accept",
        PointerPublish = "pointer.publish",
        PointerRetract = "pointer.retract",
        PointerExpire = "pointer.expire",
        PointerLookup = "pointer.lookup",
        NoticeSend = "notice.send",
        NoticeReceive = "notice.receive",
        MatchesWatch = "matches.watch",
        MatchesList = "matches.list",
        SignalsFetch = "signals.fetch",
        LinkedSignals = "cases.linked_signals",
        BreakGlass = "cases.break_glass",
        MeldingSend = "melding.send",
        MeldingReceive = "melding.receive",
        MeldingenList = "melding.list",
        RegieClaim = "regie.claim",
        RegieRelease = "regie.release",
        WaakvlamStart = "waakvlam.start",
        WaakvlamList = "waakvlam.list",
        PseudonymEvaluate = "pseudonym.evaluate",
        /// A pointer moved to the index's historical archive (risk gone, term ended).
        PointerArchive = "pointer.archive",
        /// An archived pointer removed after its five years.
        ArchiveExpire = "archive.expire",
        /// Re-encryption after a data key rotation finished: no stored value needs the
        /// retired keys.
        StoreReencrypted = "store.reencrypted",
        /// The store was compacted while the node was stopped (recorded at the next start):
        /// its live records copied to new files, the old files overwritten and removed.
        StoreCompacted = "store.compacted",
        /// A privacy officer's subject access request (AVG art. 15) as a whole.
        SubjectAccess = "audit.subject_access",
        /// One node's events about a person for subject access, recorded at both ends.
        SubjectAccessFetch = "audit.subject_access_fetch",
        /// A witness refused a peer's checkpoint (a cosignature is kept as state, not recorded).
        WitnessCosign = "witness.cosign",
        /// A witness found a peer's checkpoint inconsistent with the one it saw before.
        WitnessFork = "witness.fork",
        /// One of a log's witnesses refused its checkpoint, or its cosignature did not verify.
        CheckpointCosigned = "audit.cosigned",
        /// A fork alert sent to a member of the federation.
        ForkAlertSend = "fork.alert_send",
        /// A fork alert received from a witness.
        ForkAlertReceive = "fork.alert_receive",
        /// A privacy officer listed the forks this node knows of.
        AuditForks = "audit.forks",
        /// A pseudonym service gave the index its share of one epoch's key.
        IndexKeyShare = "pseudonym.index_key",
        /// A pseudonym service deleted the secrets of epochs the index has left.
        IndexEpochRetire = "pseudonym.index_retire",
        /// The index started, or finished, moving its persons to a new key epoch.
        IndexRekey = "index.rekey",
    }
}

closed_enum! {
    Outcome {
        Success = "success",
        /// Refused before anything changed; the reason names the rule or field.
        Refused = "refused",
        /// Accepted, but the node could not complete it.
        Failed = "failed",
    }
}

/// Who acted. `user` is a principal of the organisation's node, or a system name such as
/// `kring:retention`; an unauthenticated caller is `kring:anonymous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: PrincipalId,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role: Option<Role>,
    pub organisation: Oin,
}

/// An event before the log gives it its place and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub transaction: TransactionId,
    pub actor: Actor,
    pub on_behalf_of: Option<Actor>,
    pub action: Action,
    pub subjects: Vec<Pseudonym>,
    pub purpose: Option<Purpose>,
    pub legal_basis: Option<LegalBasis>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub counterpart: Option<Oin>,
    pub object: Option<String>,
    /// The signal this event registers: the store links it to the event's subjects, which is
    /// how a node finds its signals about a person. Not part of the logged event.
    pub registers: Option<SignalId>,
}

impl EventDraft {
    pub fn new(transaction: TransactionId, actor: Actor, action: Action) -> EventDraft {
        EventDraft {
            transaction,
            actor,
            on_behalf_of: None,
            action,
            subjects: Vec::new(),
            purpose: None,
            legal_basis: None,
            outcome: Outcome::Success,
            reason: None,
            counterpart: None,
            object: None,
            registers: None,
        }
    }

    /// Marks the event as the registration of `signal` (and names it as the object).
    pub fn registers(mut self, signal: SignalId) -> Self {
        self.object = Some(format!("signal:{signal}"));
        self.registers = Some(signal);
        self
    }

    /// Names the purpose and the legal basis it rests on.
    pub fn purpose(mut self, purpose: Purpose, basis: LegalBasis) -> Self {
        self.purpose = Some(purpose);
        self.legal_basis = Some(basis);
        self
    }

    pub fn subjects(mut self, subjects: impl IntoIterator<Item = Pseudonym>) -> Self {
        for subject in subjects {
            if !self.subjects.contains(&subject) {
                self.subjects.push(subject);
            }
        }
        self
    }

    pub fn counterpart(mut self, counterpart: Oin) -> Self {
        self.counterpart = Some(counterpart);
        self
    }

    pub fn on_behalf_of(mut self, actor: Actor) -> Self {
        self.on_behalf_of = Some(actor);
        self
    }

    pub fn object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    pub fn refused(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Refused;
        self.reason = Some(reason.into());
        self
    }

    pub fn failed(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Failed;
        self.reason = Some(reason.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Places the draft in the log.
    pub fn at(self, index: u64, time: UnixMillis) -> AuditEvent {
        AuditEvent {
            index,
            time,
            transaction: self.transaction,
            actor: self.actor,
            on_behalf_of: self.on_behalf_of,
            action: self.action,
            subjects: self.subjects,
            purpose: self.purpose,
            legal_basis: self.legal_basis,
            outcome: self.outcome,
            reason: self.reason,
            counterpart: self.counterpart,
            object: self.object,
        }
    }
}

/// An event in the log. `index` is its leaf position; `time` never decreases along the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    pub index: u64,
    pub time: UnixMillis,
    pub transaction: TransactionId,
    pub actor: Actor,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub on_behalf_of: Option<Actor>,
    pub action: Action,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub subjects: Vec<Pseudonym>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub purpose: Option<Purpose>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub legal_basis: Option<LegalBasis>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub counterpart: Option<Oin>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<String>,
}

/// An audit event as subject access discloses it (AVG art. 15, NEN 7513's client view): who,
/// from which organisation and in which role, did what, when, for which purpose and on which
/// legal basis, with which outcome, with which counterpart, in an emergency or not.
///
/// It has no field for persons, reasons or objects: an event may name several persons (a
/// household) and its reason or object may say something about them, so none of that is
/// disclosed to the person asking about one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessedEvent {
    /// The organisation whose log holds the event.
    pub recorded_by: Oin,
    pub index: u64,
    pub time: UnixMillis,
    pub transaction: TransactionId,
    pub actor: Actor,
    pub on_behalf_of: Option<Actor>,
    pub action: Action,
    pub purpose: Option<Purpose>,
    pub legal_basis: Option<LegalBasis>,
    pub outcome: Outcome,
    pub counterpart: Option<Oin>,
    pub emergency: bool,
}

impl AccessedEvent {
    /// What subject access shows of `event`, recorded in `recorded_by`'s log.
    pub fn of(recorded_by: Oin, event: &AuditEvent) -> AccessedEvent {
        AccessedEvent {
            recorded_by,
            index: event.index,
            time: event.time,
            transaction: event.transaction,
            actor: event.actor.clone(),
            on_behalf_of: event.on_behalf_of.clone(),
            action: event.action,
            purpose: event.purpose,
            legal_basis: event.legal_basis,
            outcome: event.outcome,
            counterpart: event.counterpart,
            emergency: event.emergency(),
        }
    }

    /// The professional behind the event: the one a serving node acted for, else the actor.
    pub fn who(&self) -> &Actor {
        self.on_behalf_of.as_ref().unwrap_or(&self.actor)
    }
}

impl AuditEvent {
    /// Whether the event is part of a break-glass (emergency) access.
    pub fn emergency(&self) -> bool {
        self.purpose == Some(Purpose::Emergency) || self.action == Action::BreakGlass
    }
}
