//! What a node does with its own signals: register, update, withdraw, list, and let expire.
//! Each operation pseudonymises first (the BSNs are consumed there), then commits its state
//! change, outbox message and audit event together through the ledger.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::domain::{
    Action, Actor, Bsn, CalendarDate, Category, ContactDetails, ContactPointId, EventDraft,
    ExpiryReason, Invalid, LegalBasis, MeldcodeStep, MessageId, Oin, OutboxBody, OutboxMessage,
    Pseudonym, Purpose, RegisterSignal, RelatedPseudonym, RetractReason, Severity, Signal,
    SignalChange, SignalId, TransactionId, UnixMillis, WithdrawReason,
};
use crate::federation::Federation;
use crate::ledger::{Ledger, LedgerError, Txn};
use crate::pseudonym::{LocalPseudonyms, PseudonymError, Pseudonymiser};
use crate::store::{Change, StoreError};

/// Who is acting, in which exchange.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub transaction: TransactionId,
}

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no active signal {0}")]
    NotFound(SignalId),
    #[error("the signal is at version {actual}, not the expected {expected}")]
    VersionMismatch { expected: u32, actual: u32 },
    #[error("the signal already has this meldcode step and severity")]
    Unchanged,
    #[error("a melding needs meldcode step 5 (beslissen); the signal is at {0}")]
    NotAtStepFive(MeldcodeStep),
    #[error("this node is not part of a federation")]
    NotFederated,
    #[error("the directory names no veilig thuis organisation")]
    NoVeiligThuis,
    #[error(transparent)]
    Pseudonym(#[from] PseudonymError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The signal unless it has expired: one past its expiry is gone for every read and change
/// from that moment, even before the sweep deletes it (and retracts it as expired, so that a
/// withdrawal in between cannot give it another reason, such as one that archives it).
fn active(signal: Option<Signal>, now: UnixMillis) -> Option<Signal> {
    signal.filter(|s| s.expires_at > now)
}

/// Filters for listing signals; every filter that is set must match.
#[derive(Debug, Default)]
pub struct SignalQuery {
    pub person: Option<Pseudonym>,
    pub category: Option<Category>,
    pub severity: Option<Severity>,
    pub meldcode_step: Option<MeldcodeStep>,
    pub contact_point: Option<ContactPointId>,
    pub registered_by: Option<String>,
    pub registered_from: Option<UnixMillis>,
    pub registered_until: Option<UnixMillis>,
    pub page_size: usize,
    pub after: Option<SignalId>,
}

impl SignalQuery {
    fn matches(&self, s: &Signal) -> bool {
        self.category.is_none_or(|c| c == s.category)
            && self.severity.is_none_or(|v| v == s.severity)
            && self.meldcode_step.is_none_or(|m| m == s.meldcode_step)
            && self
                .contact_point
                .as_ref()
                .is_none_or(|c| *c == s.contact_point)
            && self
                .registered_by
                .as_ref()
                .is_none_or(|r| r == s.registered_by.as_str())
            && self.registered_from.is_none_or(|t| s.registered_at >= t)
            && self.registered_until.is_none_or(|t| s.registered_at < t)
    }
}

#[derive(Debug)]
pub struct SignalPage {
    pub signals: Vec<Signal>,
    /// Where the next page starts; `None` when the scan reached the end.
    pub next: Option<SignalId>,
}

/// The most signals one list call examines; a page may come back short with a token to go on.
const SCAN_LIMIT: usize = 10_000;
/// How many expired signals one sweep commit removes.
const SWEEP_BATCH: usize = 256;

pub struct SignalService {
    ledger: Arc<Ledger>,
    pseudonymiser: Arc<dyn Pseudonymiser>,
    local: Arc<LocalPseudonyms>,
    organisation: Oin,
    contact_points: BTreeMap<ContactPointId, ContactDetails>,
    retention_millis: i64,
    clock: SharedClock,
    /// Woken after every commit that put a message in the outbox.
    outbox: Arc<Notify>,
    federation: Option<Arc<Federation>>,
}

/// What a signal service needs besides its ledger.
#[derive(Debug, Clone)]
pub struct SignalSettings {
    pub organisation: Oin,
    pub contact_points: Vec<ContactDetails>,
    pub retention_millis: i64,
    /// The node's clock, for the rules that depend on today (an age range must end later).
    pub clock: SharedClock,
}

impl std::fmt::Debug for SignalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalService")
            .field("organisation", &self.organisation)
            .finish()
    }
}

impl SignalService {
    pub fn new(
        ledger: Arc<Ledger>,
        pseudonymiser: Arc<dyn Pseudonymiser>,
        local: Arc<LocalPseudonyms>,
        settings: SignalSettings,
        outbox: Arc<Notify>,
        federation: Option<Arc<Federation>>,
    ) -> SignalService {
        SignalService {
            ledger,
            pseudonymiser,
            local,
            organisation: settings.organisation,
            contact_points: settings
                .contact_points
                .into_iter()
                .filter_map(|c| ContactPointId::parse(&c.id).ok().map(|id| (id, c)))
                .collect(),
            retention_millis: settings.retention_millis,
            clock: settings.clock,
            outbox,
            federation,
        }
    }

    /// This node's pseudonyms for the persons behind these BSNs (consumed).
    pub async fn local_pseudonyms(&self, persons: Vec<Bsn>) -> Result<Vec<Pseudonym>, SignalError> {
        let federation = self.pseudonymiser.pseudonymise(persons).await?;
        Ok(federation.iter().map(|p| self.local.local(p)).collect())
    }

    pub fn federation(&self) -> Option<&Arc<Federation>> {
        self.federation.as_ref()
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn pseudonymiser(&self) -> &Arc<dyn Pseudonymiser> {
        &self.pseudonymiser
    }

    pub fn local(&self) -> &Arc<LocalPseudonyms> {
        &self.local
    }

    pub fn contact(&self, id: &ContactPointId) -> ContactDetails {
        self.contact_points
            .get(id)
            .cloned()
            .unwrap_or_else(|| ContactDetails {
                id: id.to_string(),
                ..ContactDetails::default()
            })
    }

    fn event(caller: &Caller, action: Action) -> EventDraft {
        EventDraft::new(caller.transaction, caller.actor.clone(), action).purpose(
            Purpose::Registration,
            Purpose::Registration.local_legal_basis(),
        )
    }

    pub async fn register(
        &self,
        caller: &Caller,
        request: RegisterSignal,
    ) -> Result<Signal, SignalError> {
        let (persons, relations, content) = request.into_parts();
        if !self.contact_points.contains_key(&content.contact_point) {
            return Err(Invalid::new(
                "contact_point",
                "is not one of the organisation's configured contact points",
            )
            .into());
        }
        if let Some(ends) = content.age_range_ends_on {
            age_range_ahead(ends, self.clock.now())?;
        }
        let federation = self.pseudonymiser.pseudonymise(persons).await?;
        let linked = |pseudonyms: &[Pseudonym]| -> Vec<RelatedPseudonym> {
            pseudonyms[1..]
                .iter()
                .zip(&relations)
                .map(|(pseudonym, relation)| RelatedPseudonym {
                    pseudonym: *pseudonym,
                    relation: *relation,
                })
                .collect()
        };
        let locals: Vec<Pseudonym> = federation.iter().map(|p| self.local.local(p)).collect();
        let subject = locals[0];
        let related = linked(&locals);
        let published_subject = federation[0];
        let published_related = linked(&federation);
        let caller = caller.clone();
        let retention = self.retention_millis;
        let signal = self
            .ledger
            .commit(move |txn| {
                let now = txn.now();
                if let Some(ends) = content.age_range_ends_on {
                    age_range_ahead(ends, now)?;
                }
                let (expires_at, expiry_reason) =
                    crate::domain::expiry(now, retention, content.age_range_ends_on);
                let signal = Signal {
                    id: SignalId::new(),
                    subject,
                    related,
                    category: content.category,
                    severity: content.severity,
                    meldcode_step: content.meldcode_step,
                    contact_point: content.contact_point,
                    registered_by: caller.actor.user.clone(),
                    registered_at: now,
                    updated_at: now,
                    expires_at,
                    version: 1,
                    expiry_reason,
                };
                txn.change(Change::PutSignal(signal.clone()));
                outbox(
                    txn,
                    caller.transaction,
                    OutboxBody::PublishPointer {
                        signal: signal.id,
                        subject: published_subject,
                        related: published_related,
                        expires_at: signal.expires_at,
                        expiry_reason: signal.expiry_reason,
                    },
                    signal.persons().collect(),
                );
                let mut event = Self::event(&caller, Action::SignalRegister)
                    .subjects(signal.persons())
                    .registers(signal.id);
                if signal.expiry_reason == ExpiryReason::AgeRange {
                    event = event.reason(format!(
                        "expires at {}: end of age range",
                        signal.expires_at.rfc3339()
                    ));
                }
                txn.audit(event);
                Ok::<_, SignalError>(signal)
            })
            .await??;
        self.outbox.notify_one();
        Ok(signal)
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: SignalId,
        change: SignalChange,
    ) -> Result<Signal, SignalError> {
        let caller = caller.clone();
        self.ledger
            .commit(move |txn| {
                let Some(mut signal) = active(txn.store().signal(&id)?, txn.now()) else {
                    return Err(SignalError::NotFound(id));
                };
                if let Some(expected) = change.expected_version
                    && expected != signal.version
                {
                    return Err(SignalError::VersionMismatch {
                        expected,
                        actual: signal.version,
                    });
                }
                if change.changes_nothing(&signal) {
                    return Err(SignalError::Unchanged);
                }
                let mut what = Vec::new();
                if let Some(step) = change.meldcode_step.filter(|s| *s != signal.meldcode_step) {
                    what.push(format!("meldcode_step {}->{}", signal.meldcode_step, step));
                    signal.meldcode_step = step;
                }
                if let Some(severity) = change.severity.filter(|s| *s != signal.severity) {
                    what.push(format!("severity {}->{}", signal.severity, severity));
                    signal.severity = severity;
                }
                signal.version += 1;
                signal.updated_at = txn.now();
                txn.change(Change::PutSignal(signal.clone()));
                txn.audit(
                    Self::event(&caller, Action::SignalUpdate)
                        .subjects(signal.persons())
                        .object(format!("signal:{}", signal.id))
                        .reason(what.join("; ")),
                );
                Ok(signal)
            })
            .await?
    }

    pub async fn withdraw(
        &self,
        caller: &Caller,
        id: SignalId,
        reason: WithdrawReason,
    ) -> Result<UnixMillis, SignalError> {
        let caller = caller.clone();
        let withdrawn = self
            .ledger
            .commit(move |txn| {
                let Some(signal) = active(txn.store().signal(&id)?, txn.now()) else {
                    return Err(SignalError::NotFound(id));
                };
                remove(
                    txn,
                    &signal,
                    caller.transaction,
                    RetractReason::withdrawn(reason),
                );
                txn.audit(
                    Self::event(&caller, Action::SignalWithdraw)
                        .subjects(signal.persons())
                        .object(format!("signal:{}", signal.id))
                        .reason(format!("withdrawn: {reason}")),
                );
                Ok(txn.now())
            })
            .await?;
        self.outbox.notify_one();
        withdrawn
    }

    /// Meldcode step 5: hands the signal to Veilig Thuis. The professional names the subject
    /// again (their BSN), which both confirms the right signal and gives Veilig Thuis the
    /// federation pseudonym to find the person by; the node keeps no federation pseudonym.
    pub async fn report_to_veilig_thuis(
        &self,
        caller: &Caller,
        id: SignalId,
        subject: Bsn,
    ) -> Result<Oin, SignalError> {
        let federation = self.federation.as_ref().ok_or(SignalError::NotFederated)?;
        let to = federation
            .directory()
            .veilig_thuis()
            .next()
            .map(|m| m.oin)
            .ok_or(SignalError::NoVeiligThuis)?;
        let published = self.pseudonymiser.pseudonymise(vec![subject]).await?[0];
        let local = self.local.local(&published);
        let caller = caller.clone();
        let contacts = self.contact_points.clone();
        self.ledger
            .commit(move |txn| {
                let Some(signal) = active(txn.store().signal(&id)?, txn.now()) else {
                    return Err(SignalError::NotFound(id));
                };
                if signal.subject != local {
                    return Err(
                        Invalid::new("subject_bsn", "is not the subject of this signal").into(),
                    );
                }
                if signal.meldcode_step != MeldcodeStep::Beslissen {
                    return Err(SignalError::NotAtStepFive(signal.meldcode_step));
                }
                let contact_point = contacts
                    .get(&signal.contact_point)
                    .cloned()
                    .unwrap_or_default();
                outbox(
                    txn,
                    caller.transaction,
                    OutboxBody::Melding {
                        to,
                        signal: signal.id,
                        subject: published,
                        category: signal.category,
                        severity: signal.severity,
                        registered_at: signal.registered_at,
                        contact_point,
                        reported_by: caller.actor.user.clone(),
                    },
                    vec![signal.subject],
                );
                txn.audit(
                    EventDraft::new(
                        caller.transaction,
                        caller.actor.clone(),
                        Action::MeldingSend,
                    )
                    .purpose(Purpose::VtTriage, LegalBasis::Wmo526)
                    .subjects([signal.subject])
                    .counterpart(to)
                    .object(format!("signal:{}", signal.id))
                    .reason("queued for delivery to veilig thuis"),
                );
                Ok(())
            })
            .await??;
        self.outbox.notify_one();
        Ok(to)
    }

    /// Lists signals; the disclosure (which persons were shown) is audited before returning.
    pub async fn list(
        &self,
        caller: &Caller,
        person: Option<Bsn>,
        mut query: SignalQuery,
    ) -> Result<SignalPage, SignalError> {
        if let Some(person) = person {
            query.person = Some(self.local_pseudonyms(vec![person]).await?[0]);
        }
        let page = self.read_page(&query)?;
        let caller = caller.clone();
        let persons: Vec<Pseudonym> = page.signals.iter().flat_map(|s| s.persons()).collect();
        let count = page.signals.len();
        self.ledger
            .commit(move |txn| {
                txn.audit(
                    Self::event(&caller, Action::SignalList)
                        .subjects(persons)
                        .object(format!("signals:{count}")),
                );
            })
            .await?;
        Ok(page)
    }

    fn read_page(&self, query: &SignalQuery) -> Result<SignalPage, StoreError> {
        let store = self.ledger.store();
        let mut signals = Vec::new();
        let mut scanned = 0;
        let mut last = None;
        let now = self.clock.now();
        let mut push = |signal: Signal, signals: &mut Vec<Signal>| {
            last = Some(signal.id);
            if query.matches(&signal)
                && let Some(signal) = active(Some(signal), now)
            {
                signals.push(signal);
            }
        };
        match query.person {
            Some(person) => {
                for id in store.signals_about(&person)? {
                    if query.after.is_some_and(|after| id <= after) {
                        continue;
                    }
                    if signals.len() == query.page_size || scanned == SCAN_LIMIT {
                        return Ok(SignalPage {
                            signals,
                            next: last,
                        });
                    }
                    scanned += 1;
                    if let Some(signal) = store.signal(&id)? {
                        push(signal, &mut signals);
                    }
                }
            }
            None => {
                for signal in store.signals_after(query.after) {
                    if signals.len() == query.page_size || scanned == SCAN_LIMIT {
                        return Ok(SignalPage {
                            signals,
                            next: last,
                        });
                    }
                    scanned += 1;
                    push(signal?, &mut signals);
                }
            }
        }
        Ok(SignalPage {
            signals,
            next: None,
        })
    }

    /// Deletes every signal whose expiry has passed, auditing each deletion and retracting
    /// its pointer. Returns how many went.
    pub async fn sweep(&self) -> Result<usize, SignalError> {
        let mut total = 0;
        loop {
            let actor = Actor {
                user: crate::domain::PrincipalId::system("retention"),
                role: None,
                organisation: self.organisation,
            };
            let removed = self
                .ledger
                .commit(move |txn| -> Result<usize, StoreError> {
                    let expired = txn.store().expired_signals(txn.now(), SWEEP_BATCH)?;
                    let transaction = TransactionId::new();
                    for signal in &expired {
                        remove(
                            txn,
                            signal,
                            transaction,
                            RetractReason::expired(signal.expiry_reason),
                        );
                        let term = match signal.expiry_reason {
                            ExpiryReason::Retention => "retention",
                            ExpiryReason::AgeRange => "age range",
                        };
                        txn.audit(
                            EventDraft::new(transaction, actor.clone(), Action::SignalExpire)
                                .purpose(
                                    Purpose::Registration,
                                    Purpose::Registration.local_legal_basis(),
                                )
                                .subjects(signal.persons())
                                .object(format!("signal:{}", signal.id))
                                .reason(format!(
                                    "{term}: expired at {}",
                                    signal.expires_at.rfc3339()
                                )),
                        );
                    }
                    Ok(expired.len())
                })
                .await??;
            total += removed;
            if removed > 0 {
                self.outbox.notify_one();
            }
            if removed < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }
}

fn outbox(
    txn: &mut Txn<'_>,
    transaction: TransactionId,
    body: OutboxBody,
    subjects: Vec<Pseudonym>,
) {
    let message = OutboxMessage {
        id: MessageId::new(),
        transaction,
        created: txn.now(),
        body,
        subjects,
    };
    txn.change(Change::PutOutbox(message));
}

/// Refuses an age range that has already ended: its first day has begun (Europe/Amsterdam).
fn age_range_ahead(ends: CalendarDate, now: UnixMillis) -> Result<(), Invalid> {
    if ends.start_in_amsterdam() <= now {
        return Err(Invalid::new(
            "age_range_ends_on",
            "must be after today (Europe/Amsterdam): the subject has left the age range",
        ));
    }
    Ok(())
}

fn remove(txn: &mut Txn<'_>, signal: &Signal, transaction: TransactionId, reason: RetractReason) {
    txn.change(Change::DeleteSignal(signal.clone()));
    // The signal's matches (current and historical) and every notice about it in the feed go
    // with it: the index tells the other parties, not this one.
    txn.change(Change::DeleteMatch(signal.id));
    txn.change(Change::DeleteNotices(signal.id));
    outbox(
        txn,
        transaction,
        OutboxBody::RetractPointer {
            signal: signal.id,
            reason,
        },
        signal.persons().collect(),
    );
}
