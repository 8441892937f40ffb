//! What an organisation node does when a peer calls: it takes notices from the index and
//! meldingen from other organisations (idempotently, by message id), and discloses its signals
//! to a peer only as the purpose policy allows, auditing every answer and every refusal with
//! the requester's transaction id, so that both ends of the exchange are on record.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::audit::search;
use crate::directory::{Member, NodeRole};
use crate::domain::{
    AccessedEvent, Action, Actor, BreakGlassItem, ContactDetails, ContactPointId, EventDraft,
    IndexNotice, LegalBasis, MessageId, Notice, OrgType, PrincipalId, Pseudonym, Purpose,
    ReceivedMelding, RequestContext, Role, SignalId, TransactionId,
};
use crate::federation::{AccessAnswer, Federation};
use crate::ledger::{Ledger, LedgerError};
use crate::policy::{self, Denial, DisclosedSignal};
use crate::pseudonym::LocalPseudonyms;
use crate::store::{Change, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Denied(#[from] Denial),
    #[error("notices come from the federation's index only")]
    NotTheIndex,
    #[error("meldingen go to veilig thuis; this organisation is a {0}")]
    NotVeiligThuis(OrgType),
    #[error("context.purpose: subject access is asked for purpose subject_access only, not {0}")]
    NotSubjectAccess(Purpose),
    #[error("audit log: {0}")]
    Search(#[from] crate::audit::search::SearchError),
    #[error("index: {0}")]
    Index(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A melding as it arrives.
#[derive(Debug, Clone)]
pub struct IncomingMelding {
    pub signal: SignalId,
    pub subject: Pseudonym,
    pub category: crate::domain::Category,
    pub severity: crate::domain::Severity,
    pub registered_at: crate::domain::UnixMillis,
    pub contact_point: ContactDetails,
    pub reported_by: PrincipalId,
}

#[derive(Debug)]
pub struct PeerHandler {
    ledger: Arc<Ledger>,
    federation: Arc<Federation>,
    local: Arc<LocalPseudonyms>,
    contacts: BTreeMap<ContactPointId, ContactDetails>,
    /// The cursor of the latest notice, for watchers.
    notices: watch::Sender<u64>,
    /// This node's index role, if it has one: its audit log names persons by index person id.
    index: Option<Arc<crate::index::IndexService>>,
}

impl PeerHandler {
    pub fn new(
        ledger: Arc<Ledger>,
        federation: Arc<Federation>,
        local: Arc<LocalPseudonyms>,
        contacts: Vec<ContactDetails>,
        notices: watch::Sender<u64>,
        index: Option<Arc<crate::index::IndexService>>,
    ) -> PeerHandler {
        PeerHandler {
            ledger,
            federation,
            local,
            contacts: contacts
                .into_iter()
                .filter_map(|c| ContactPointId::parse(&c.id).ok().map(|id| (id, c)))
                .collect(),
            notices,
            index,
        }
    }

    fn actor(&self) -> Actor {
        Actor {
            user: PrincipalId::system("federation"),
            role: None,
            organisation: self.federation.me(),
        }
    }

    /// Takes a notice from the index into the organisation's feed and its current matches.
    pub async fn receive_notice(
        &self,
        from: &Member,
        message: MessageId,
        transaction: TransactionId,
        notice: IndexNotice,
    ) -> Result<bool, ServeError> {
        let draft = EventDraft::new(transaction, self.actor(), Action::NoticeReceive)
            .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
            .counterpart(from.oin)
            .object(format!("notice:{}", super::outbox::notice_kind(&notice)));
        if !from.has_role(NodeRole::Index) {
            let refused = draft.refused(format!("permission_denied: {}", ServeError::NotTheIndex));
            self.ledger.commit(move |txn| txn.audit(refused)).await?;
            return Err(ServeError::NotTheIndex);
        }
        let sender = from.oin;
        let local = LocalOf(self.local.clone());
        let received = self
            .ledger
            .commit(move |txn| -> Result<Option<u64>, ServeError> {
                if txn.store().message_seen(&message)? {
                    return Ok(None);
                }
                txn.change(Change::MarkMessage(message));
                let notice = match notice {
                    IndexNotice::WaakvlamAlert {
                        waakvlam,
                        party,
                        person,
                        until,
                    } => IndexNotice::WaakvlamAlert {
                        waakvlam,
                        party,
                        person: local.of(&person),
                        until,
                    },
                    other => other,
                };
                let cursor = txn.store().last_notice_cursor()? + 1;
                let record = Notice {
                    cursor,
                    received: txn.now(),
                    from: sender,
                    notice: notice.clone(),
                };
                let mut subjects = Vec::new();
                match &notice {
                    IndexNotice::Match { signal, .. } => {
                        subjects = persons_of(txn.store(), signal)?;
                        if !subjects.is_empty() {
                            txn.change(Change::PutMatch(record.clone()));
                        }
                    }
                    IndexNotice::MatchEnded { signal, party } => {
                        subjects = persons_of(txn.store(), signal)?;
                        if let Some(mut current) = current_match(txn.store(), signal)?
                            && let IndexNotice::Match { parties, .. } = &mut current.notice
                        {
                            parties.retain(|p| p != party);
                            if parties.is_empty() {
                                txn.change(Change::DeleteMatch(*signal));
                            } else {
                                txn.change(Change::PutMatch(current));
                            }
                        }
                    }
                    IndexNotice::RegieChanged { signal, regie } => {
                        subjects = persons_of(txn.store(), signal)?;
                        if let Some(mut current) = current_match(txn.store(), signal)?
                            && let IndexNotice::Match { regie: held, .. } = &mut current.notice
                        {
                            *held = *regie;
                            txn.change(Change::PutMatch(current));
                        }
                    }
                    IndexNotice::HistoricalMatch { signal, .. } => {
                        subjects = persons_of(txn.store(), signal)?;
                        // Kept with the signal while it lives, like a current match.
                        if !subjects.is_empty() {
                            txn.change(Change::PutMatch(record.clone()));
                        }
                    }
                    IndexNotice::WaakvlamAlert { person, .. } => subjects.push(*person),
                }
                // A notice about a signal that already went (withdrawn or expired) is audited
                // and not kept: what is kept about a signal goes with it.
                let gone = notice.signal().is_some() && subjects.is_empty();
                if !gone {
                    txn.change(Change::PutNotice(record));
                }
                txn.audit(draft.subjects(subjects));
                Ok(Some(if gone { cursor - 1 } else { cursor }))
            })
            .await??;
        match received {
            Some(cursor) => {
                self.notices.send_replace(cursor);
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// Takes a melding (Veilig Thuis nodes only).
    pub async fn receive_melding(
        &self,
        from: &Member,
        message: MessageId,
        transaction: TransactionId,
        melding: IncomingMelding,
    ) -> Result<bool, ServeError> {
        let me = self.federation.member(&self.federation.me()).ok();
        let subject = self.local.local(&melding.subject);
        let draft = EventDraft::new(transaction, self.actor(), Action::MeldingReceive)
            .purpose(Purpose::VtTriage, LegalBasis::Wmo526)
            .counterpart(from.oin)
            .subjects([subject])
            .object(format!("signal:{}", melding.signal));
        match me.map(|m| m.org_type) {
            Some(OrgType::VeiligThuis) => {}
            other => {
                let org_type = other.unwrap_or(OrgType::FederationService);
                let refused = draft.refused(format!(
                    "failed_precondition: {}",
                    ServeError::NotVeiligThuis(org_type)
                ));
                self.ledger.commit(move |txn| txn.audit(refused)).await?;
                return Err(ServeError::NotVeiligThuis(org_type));
            }
        }
        let sender = from.oin;
        let duplicate = self
            .ledger
            .commit(move |txn| -> Result<bool, ServeError> {
                if txn.store().message_seen(&message)? {
                    return Ok(true);
                }
                txn.change(Change::MarkMessage(message));
                txn.change(Change::PutMelding(ReceivedMelding {
                    message,
                    from: sender,
                    received: txn.now(),
                    signal: melding.signal,
                    subject,
                    subject_is_local: true,
                    category: melding.category,
                    severity: melding.severity,
                    registered_at: melding.registered_at,
                    contact_point: melding.contact_point,
                    reported_by: melding.reported_by,
                }));
                txn.audit(draft);
                Ok(false)
            })
            .await??;
        Ok(duplicate)
    }

    /// Discloses the requested signals as the purpose allows, each only if the subject the
    /// requester names is the signal's subject. A break-glass request is always answered where
    /// the policy allows the role, and is queued for this organisation's privacy officers.
    pub async fn fetch_signals(
        &self,
        from: &Member,
        context: RequestContext,
        requested: Vec<(SignalId, Pseudonym)>,
    ) -> Result<Vec<DisclosedSignal>, ServeError> {
        let directory = self.federation.directory();
        let role = context.role.unwrap_or(Role::Signaler);
        let decision = policy::authorise(
            &directory,
            &from.oin,
            context.purpose,
            role,
            context.break_glass,
        )
        .cloned();
        let requester = from.oin;
        let on_behalf_of = Actor {
            user: context.user.clone(),
            role: context.role,
            organisation: requester,
        };
        let draft = EventDraft::new(context.transaction, self.actor(), Action::SignalsFetch)
            .counterpart(requester)
            .on_behalf_of(on_behalf_of);
        let local = LocalOf(self.local.clone());
        let contacts = self.contacts.clone();
        let context_for_item = context.clone();
        self.ledger
            .commit(move |txn| -> Result<Vec<DisclosedSignal>, ServeError> {
                let rule = match decision {
                    Ok(rule) => rule,
                    Err(denial) => {
                        txn.audit(
                            draft
                                .purpose(context.purpose, context.purpose.local_legal_basis())
                                .refused(format!("permission_denied: {denial}")),
                        );
                        return Err(denial.into());
                    }
                };
                let mut disclosed = Vec::new();
                let mut subjects = Vec::new();
                let mut mismatched = 0;
                for (id, subject) in &requested {
                    let Some(signal) = txn.store().signal(id)? else {
                        continue;
                    };
                    if signal.subject != local.of(subject) {
                        mismatched += 1;
                        continue;
                    }
                    let contact =
                        contacts
                            .get(&signal.contact_point)
                            .cloned()
                            .unwrap_or_else(|| ContactDetails {
                                id: signal.contact_point.to_string(),
                                ..ContactDetails::default()
                            });
                    let mut shown = policy::disclose(&rule, &signal, &contact);
                    // Related persons are this node's own pseudonyms: meaningless elsewhere.
                    shown.related = None;
                    subjects.extend(signal.persons());
                    disclosed.push(shown);
                }
                let mut event = draft
                    .purpose(context.purpose, rule.legal_basis)
                    .subjects(subjects)
                    .object(format!("signals:{}", disclosed.len()));
                let mut reasons = Vec::new();
                if let Some(reason) = context.break_glass {
                    reasons.push(format!("break-glass: {reason}"));
                    let item = BreakGlassItem {
                        id: SignalId::new(),
                        transaction: context_for_item.transaction,
                        at: txn.now(),
                        requester,
                        requester_user: context_for_item.user.to_string(),
                        requester_role: context_for_item.role,
                        reason,
                        signals: disclosed.iter().map(|d| d.signal).collect(),
                        review: None,
                    };
                    txn.change(Change::PutBreakGlass(item));
                }
                if mismatched > 0 {
                    reasons.push(format!(
                        "{mismatched} references did not match their subject"
                    ));
                }
                if !reasons.is_empty() {
                    event = event.reason(reasons.join("; "));
                }
                txn.audit(event);
                Ok(disclosed)
            })
            .await?
    }
}

/// The most events one subject access answer carries (about 200 bytes each on the wire, well
/// under the peer listener's message limit).
pub const MAX_ACCESS_EVENTS: usize = 5_000;

impl PeerHandler {
    /// Subject access: this node's audit events about the person named by its federation
    /// pseudonym, for a privacy officer of another member. The purpose must be subject access
    /// and the policy must allow the requester's organisation type and the officer's role;
    /// a refusal is audited like the disclosure, and so is a failure after the decision. Events are searched under both the node's
    /// own pseudonym of the person (organisations) and the federation pseudonym (the index
    /// records those), and leave the node without persons, reasons or objects.
    pub async fn subject_access(
        &self,
        from: &Member,
        context: RequestContext,
        subject: Pseudonym,
    ) -> Result<AccessAnswer, ServeError> {
        let requester = from.oin;
        let local = self.local.local(&subject);
        let draft = EventDraft::new(
            context.transaction,
            self.actor(),
            Action::SubjectAccessFetch,
        )
        .counterpart(requester)
        .on_behalf_of(Actor {
            user: context.user.clone(),
            role: context.role,
            organisation: requester,
        })
        .subjects([local]);
        let decision = if context.purpose == Purpose::SubjectAccess {
            let directory = self.federation.directory();
            policy::authorise(
                &directory,
                &requester,
                Purpose::SubjectAccess,
                context.role.unwrap_or(Role::Signaler),
                None,
            )
            .map(|rule| rule.legal_basis)
            .map_err(ServeError::from)
        } else {
            Err(ServeError::NotSubjectAccess(context.purpose))
        };
        let basis = match decision {
            Ok(basis) => basis,
            Err(e) => {
                let refused = draft
                    .purpose(context.purpose, context.purpose.local_legal_basis())
                    .refused(format!("{}: {e}", e.status_name()));
                self.ledger.commit(move |txn| txn.audit(refused)).await?;
                return Err(e);
            }
        };
        let found = self.events_about(local, subject).await;
        let answer = match found {
            Ok(answer) => answer,
            Err(e) => {
                // Both ends are on record also when the answer fails after the decision.
                let failed = draft
                    .purpose(Purpose::SubjectAccess, basis)
                    .failed(format!("{}: {e}", e.status_name()));
                self.ledger.commit(move |txn| txn.audit(failed)).await?;
                return Err(e);
            }
        };
        let truncated = answer.truncated;
        let mut disclosed = draft
            .purpose(Purpose::SubjectAccess, basis)
            .object(format!("events:{}", answer.events.len()));
        if truncated {
            disclosed = disclosed.reason(format!("truncated at {MAX_ACCESS_EVENTS} events"));
        }
        self.ledger.commit(move |txn| txn.audit(disclosed)).await?;
        Ok(answer)
    }

    /// This node's events about the person, under its own pseudonym, the federation
    /// pseudonym and (at the index) its person id, stripped for the answer.
    async fn events_about(
        &self,
        local: Pseudonym,
        subject: Pseudonym,
    ) -> Result<AccessAnswer, ServeError> {
        let subjects =
            crate::index::IndexService::names_in_log(self.index.as_deref(), local, subject)
                .await
                .map_err(|e| ServeError::Index(e.to_string()))?;
        let store = self.ledger.store().clone();
        let size = store.audit_size()?;
        let me = self.federation.me();
        let (events, truncated) = tokio::task::spawn_blocking(move || {
            search::about(store.as_ref(), size, &subjects, MAX_ACCESS_EVENTS)
        })
        .await
        .map_err(|e| ServeError::Search(search::SearchError::Unreadable(0, e.to_string())))??;
        Ok(AccessAnswer {
            events: events.iter().map(|e| AccessedEvent::of(me, e)).collect(),
            truncated,
        })
    }
}

impl ServeError {
    /// The status code the peer API answers this error with, as audit reasons name it.
    fn status_name(&self) -> &'static str {
        match self {
            ServeError::Denied(_) | ServeError::NotTheIndex => "permission_denied",
            ServeError::NotVeiligThuis(_) => "failed_precondition",
            ServeError::NotSubjectAccess(_) => "invalid_argument",
            ServeError::Index(_) | ServeError::Ledger(_) => "unavailable",
            ServeError::Search(_) | ServeError::Store(_) => "internal",
        }
    }
}

struct LocalOf(Arc<LocalPseudonyms>);

impl LocalOf {
    fn of(&self, federation: &Pseudonym) -> Pseudonym {
        self.0.local(federation)
    }
}

fn persons_of(
    store: &dyn crate::store::Store,
    signal: &SignalId,
) -> Result<Vec<Pseudonym>, StoreError> {
    Ok(store
        .signal(signal)?
        .map(|s| s.persons().collect())
        .unwrap_or_default())
}

fn current_match(
    store: &dyn crate::store::Store,
    signal: &SignalId,
) -> Result<Option<Notice>, StoreError> {
    Ok(store
        .matches()?
        .into_iter()
        .find(|n| matches!(&n.notice, IndexNotice::Match { signal: s, .. } if s == signal)))
}
