//! The index role: pointers only (organisation, signal reference, federation pseudonyms of the
//! persons it names, expiry). It detects matches, tells every party through its outbox, keeps
//! the one coordinator (regie) per household and the waakvlam follow-ups, and answers lookups
//! under the purpose policy.
//!
//! A *household* here is the connected component of pointers that share persons: a school's
//! signal on a child naming the mother, the GGD's signal on the mother, and reclassering's on
//! the father naming the mother are one household. A *match* for a signal is the list of the
//! other organisations in its household; it changes as signals come and go, and each change is
//! a notice to the signal's organisation with the whole current list.
//!
//! A pointer that leaves because the risk is gone or its retention period ended goes to the
//! *historical archive* for five years (the subject's pseudonym, the organisation, when and
//! why). The archive answers no lookup and makes no match; a new pointer on the same subject
//! from another organisation brings that organisation a historical-match notice.
//!
//! Architecture invariant: the index never sees a BSN, a category, a severity or a contact
//! point. It holds nothing a source did not put in a pointer.

pub mod vault;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::directory::Member;
use crate::domain::{
    Action, Actor, ArchiveEntry, ArchiveReason, ArchivedParty, EventDraft, ExpiryReason,
    IndexNotice, LegalBasis, Lookup, MessageId, Oin, OutboxBody, OutboxMessage, Pointer,
    PrincipalId, Pseudonym, Purpose, Regie, RelatedPseudonym, Relation, RequestContext,
    RetractReason, SignalId, TransactionId, UnixMillis, Waakvlam,
};
use crate::federation::{Federation, Peers};
use crate::ledger::{Ledger, LedgerError, Txn};
use crate::policy::{self, Denial};
use crate::store::{Change, Store, StoreError};
use vault::{Persons, Step, Vault, VaultError};

/// The largest household the index follows; beyond it a match lists what it found so far.
const MAX_COMPONENT: usize = 512;
const SWEEP_BATCH: usize = 256;
/// How much later than the longest retention period (two years, from the index's clock) a
/// publication's expiry may be: the members' clocks may differ from the index's by this much.
pub const EXPIRY_SKEW_DAYS: i64 = 1;

/// The latest expiry a publication arriving at `now` may carry: a signal is kept at most the
/// retention period from its registration, which is no later than now, on a clock that may be
/// [`EXPIRY_SKEW_DAYS`] ahead of the index's.
pub fn latest_expiry(now: UnixMillis) -> UnixMillis {
    now.plus_millis(LATEST_EXPIRY_DAYS * UnixMillis::DAY)
}

/// The retention period and the clock skew, in days.
const LATEST_EXPIRY_DAYS: i64 = crate::config::DEFAULT_RETENTION_DAYS as i64 + EXPIRY_SKEW_DAYS;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Denied(#[from] Denial),
    #[error("purpose {0}: household expansion is not allowed")]
    HouseholdNotAllowed(Purpose),
    #[error("held by {name} ({holder})")]
    RegieHeld { holder: Oin, name: String },
    #[error("{0} holds no regie for this person or household")]
    NoRegie(Oin),
    #[error("days: must be between 1 and {max}")]
    Days { max: u32 },
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A publication from an organisation's outbox.
#[derive(Debug, Clone)]
pub struct Publication {
    pub message: MessageId,
    pub transaction: TransactionId,
    pub signal: SignalId,
    pub subject: Pseudonym,
    pub related: Vec<RelatedPseudonym>,
    pub expires_at: UnixMillis,
    pub expiry_reason: ExpiryReason,
}

/// What one commit has already done to pointers and parties. Reads inside a commit see the
/// commits before it only, not the commit's own pending changes: a commit that removes several
/// pointers (a sweep's batch) must not find the ones it already removed, nor the parties
/// records as they were before it rewrote them.
#[derive(Debug, Default)]
struct Pending {
    /// Pointers removed in this commit.
    removed: BTreeSet<(Oin, SignalId)>,
    /// Parties written in this commit (empty: deleted).
    parties: BTreeMap<(Oin, SignalId), Vec<Oin>>,
}

impl Pending {
    /// The parties last notified for a pointer, as this commit leaves them so far.
    fn parties(
        &self,
        store: &dyn Store,
        organisation: &Oin,
        signal: &SignalId,
    ) -> Result<Vec<Oin>, StoreError> {
        match self.parties.get(&(*organisation, *signal)) {
            Some(parties) => Ok(parties.clone()),
            None => Ok(store.parties(organisation, signal)?.unwrap_or_default()),
        }
    }
}

/// The pointers reachable from some persons through shared persons.
#[derive(Debug, Default)]
struct Household {
    pointers: Vec<Pointer>,
    persons: BTreeSet<Pseudonym>,
}

impl Household {
    /// Walks the pointers from `start`, skipping `without` (pointers removed or replaced in
    /// this commit), adding `with` (a pointer not yet in the store).
    fn around(
        store: &dyn Store,
        start: impl IntoIterator<Item = Pseudonym>,
        without: &BTreeSet<(Oin, SignalId)>,
        with: Option<&Pointer>,
    ) -> Result<Household, StoreError> {
        let mut household = Household::default();
        let mut seen: BTreeSet<(Oin, SignalId)> = BTreeSet::new();
        let mut queue: VecDeque<Pseudonym> = start.into_iter().collect();
        if let Some(extra) = with {
            seen.insert((extra.organisation, extra.signal));
            household.pointers.push(extra.clone());
            queue.extend(extra.persons());
        }
        while let Some(person) = queue.pop_front() {
            if !household.persons.insert(person) {
                continue;
            }
            for key in store.pointers_about(&person)? {
                if without.contains(&key) || !seen.insert(key) {
                    continue;
                }
                if household.pointers.len() >= MAX_COMPONENT {
                    break;
                }
                if let Some(pointer) = store.pointer(&key.0, &key.1)? {
                    queue.extend(pointer.persons());
                    household.pointers.push(pointer);
                }
            }
        }
        Ok(household)
    }

    /// The organisations other than `pointer`'s own, and whether the match runs through the
    /// household (no other organisation's signal has the same subject).
    fn parties_of(&self, pointer: &Pointer) -> (Vec<Oin>, bool) {
        let mut parties = BTreeSet::new();
        let mut same_subject = false;
        for other in &self.pointers {
            if other.organisation == pointer.organisation {
                continue;
            }
            parties.insert(other.organisation);
            same_subject |= other.subject == pointer.subject;
        }
        (parties.into_iter().collect(), !same_subject)
    }

    fn regie(&self, store: &dyn Store) -> Result<Option<(Pseudonym, Regie)>, StoreError> {
        for person in &self.persons {
            if let Some(regie) = store.regie(person)? {
                return Ok(Some((*person, regie)));
            }
        }
        Ok(None)
    }
}

/// How `other` stands to `asked`, from the relations the pointers record.
fn relation_between(pointers: &[Pointer], asked: &Pseudonym, other: &Pseudonym) -> Relation {
    for pointer in pointers {
        for related in &pointer.related {
            if pointer.subject == *asked && related.pseudonym == *other {
                return related.relation;
            }
            if pointer.subject == *other && related.pseudonym == *asked {
                return inverse(related.relation);
            }
        }
    }
    Relation::HouseholdMember
}

fn inverse(relation: Relation) -> Relation {
    match relation {
        Relation::Parent => Relation::Child,
        Relation::Child => Relation::Parent,
        other => other,
    }
}

#[derive(Debug)]
pub struct IndexService {
    ledger: Arc<Ledger>,
    federation: Arc<Federation>,
    outbox: Arc<Notify>,
    vault: Vault,
    /// Wakes the rotation task.
    rotation: Notify,
    /// Rotate the index key on its own this many days after an epoch started.
    rotate_every_days: Option<u32>,
}

impl IndexService {
    pub fn new(
        ledger: Arc<Ledger>,
        federation: Arc<Federation>,
        peers: Arc<dyn Peers>,
        outbox: Arc<Notify>,
    ) -> IndexService {
        IndexService {
            vault: Vault::new(federation.clone(), peers, ledger.clone()),
            rotate_every_days: federation.settings().index_key_rotate_days,
            ledger,
            federation,
            outbox,
            rotation: Notify::new(),
        }
    }

    fn actor(&self, what: &str) -> Actor {
        Actor {
            user: PrincipalId::system(what),
            role: None,
            organisation: self.federation.me(),
        }
    }

    /// Records a pointer and tells every party whose match changed. Idempotent by message id.
    ///
    /// The expiry is checked against the index's own clock: one beyond [`latest_expiry`] is
    /// refused (audited, nothing changes); one already passed (a publication delayed past its
    /// signal's end, say by an outage of the index) is acknowledged and audited but creates no
    /// pointer, match or notice, and the message is marked seen so that its retries are
    /// duplicates.
    pub async fn publish(
        &self,
        from: &Member,
        publication: Publication,
    ) -> Result<bool, IndexError> {
        let source = from.oin;
        let actor = self.actor("index");
        let (_entered, keys) = self.vault.enter().await?;
        let duplicate = self
            .ledger
            .commit(move |txn| -> Result<bool, IndexError> {
                if txn.store().message_seen(&publication.message)? {
                    return Ok(true);
                }
                let mut persons = Persons::new(keys);
                let now = txn.now();
                let latest = latest_expiry(now);
                if publication.expires_at > latest || publication.expires_at <= now {
                    // Nothing is created: name only the persons the index already knows.
                    let mut known = Vec::new();
                    for p in std::iter::once(&publication.subject)
                        .chain(publication.related.iter().map(|r| &r.pseudonym))
                    {
                        known.extend(persons.find(txn.store(), p)?);
                    }
                    let event = EventDraft::new(
                        publication.transaction,
                        actor.clone(),
                        Action::PointerPublish,
                    )
                    .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
                    .counterpart(source)
                    .subjects(known)
                    .object(format!("signal:{}", publication.signal));
                    if publication.expires_at > latest {
                        let e = IndexError::Invalid {
                            field: "expires_at_unix_ms",
                            rule: format!(
                                "must be at most {LATEST_EXPIRY_DAYS} days after the index's \
                                 clock (the two-year retention period and {EXPIRY_SKEW_DAYS} day \
                                 for clock skew), that is not after {}",
                                latest.rfc3339()
                            ),
                        };
                        txn.audit(event.refused(format!("invalid_argument: {e}")));
                        return Err(e);
                    }
                    txn.change(Change::MarkMessage(publication.message));
                    txn.audit(event.reason(format!(
                        "ignored: expired at {}, before it reached the index at {}",
                        publication.expires_at.rfc3339(),
                        now.rfc3339()
                    )));
                    return Ok(false);
                }
                let subject = persons.resolve(txn, &publication.subject)?;
                let mut related = Vec::with_capacity(publication.related.len());
                for r in &publication.related {
                    related.push(RelatedPseudonym {
                        pseudonym: persons.resolve(txn, &r.pseudonym)?,
                        relation: r.relation,
                    });
                }
                let pointer = Pointer {
                    organisation: source,
                    signal: publication.signal,
                    subject,
                    related,
                    expires_at: publication.expires_at,
                    published_at: txn.now(),
                    expiry_reason: publication.expiry_reason,
                };
                let previous = txn.store().pointer(&source, &pointer.signal)?;
                let household = Household::around(
                    txn.store(),
                    pointer.persons().collect::<Vec<_>>(),
                    &BTreeSet::from([(source, pointer.signal)]),
                    Some(&pointer),
                )?;
                txn.change(Change::MarkMessage(publication.message));
                let first = previous.is_none();
                if let Some(previous) = previous {
                    txn.change(Change::DeletePointer(previous));
                }
                txn.change(Change::PutPointer(pointer.clone()));
                txn.audit(
                    EventDraft::new(
                        publication.transaction,
                        actor.clone(),
                        Action::PointerPublish,
                    )
                    .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
                    .counterpart(source)
                    .subjects(pointer.persons())
                    .object(format!("signal:{}", pointer.signal)),
                );
                // History first: notices to one organisation arrive in the order queued, so a
                // new signal's organisation learns of the archive before its current match.
                if first {
                    tell_history(txn, &pointer, publication.transaction)?;
                }
                notify_changes(
                    txn,
                    &household,
                    None,
                    publication.transaction,
                    &mut Pending::default(),
                )?;
                alert_waakvlam(txn, &pointer, publication.transaction, &mut persons)?;
                Ok(false)
            })
            .await??;
        self.outbox.notify_one();
        Ok(duplicate)
    }

    /// Removes a pointer and tells the parties whose match changed; archives it when the
    /// reason is one the law keeps a history of, for five years from `withdrawn_at` (when the
    /// organisation withdrew or expired the signal; the index's clock when absent or a little
    /// ahead of it). A withdrawal time more than [`EXPIRY_SKEW_DAYS`] after the index's clock is
    /// refused. Idempotent.
    pub async fn retract(
        &self,
        from: &Member,
        message: MessageId,
        transaction: TransactionId,
        signal: SignalId,
        reason: RetractReason,
        withdrawn_at: Option<UnixMillis>,
    ) -> Result<bool, IndexError> {
        let source = from.oin;
        let actor = self.actor("index");
        let duplicate = self
            .ledger
            .commit(move |txn| -> Result<bool, IndexError> {
                if txn.store().message_seen(&message)? {
                    return Ok(true);
                }
                let now = txn.now();
                let latest = now.plus_millis(EXPIRY_SKEW_DAYS * UnixMillis::DAY);
                if withdrawn_at.is_some_and(|at| at > latest || at.0 < 0) {
                    let e = IndexError::Invalid {
                        field: "withdrawn_at_unix_ms",
                        rule: format!(
                            "must be a time since 1970 and at most {EXPIRY_SKEW_DAYS} day \
                             (clock skew) after the index's clock, that is not after {}",
                            latest.rfc3339()
                        ),
                    };
                    txn.audit(
                        EventDraft::new(transaction, actor, Action::PointerRetract)
                            .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
                            .counterpart(source)
                            .object(format!("signal:{signal}"))
                            .refused(format!("invalid_argument: {e}")),
                    );
                    return Err(e);
                }
                txn.change(Change::MarkMessage(message));
                match txn.store().pointer(&source, &signal)? {
                    Some(pointer) => {
                        // A member's clock a little ahead cannot lengthen the archive, nor a
                        // sweep that noticed an expiry late.
                        let since = withdrawn_at
                            .map_or(now, |at| at.min(now))
                            .min(pointer.expires_at);
                        remove_pointer(
                            txn,
                            &pointer,
                            transaction,
                            Removal {
                                action: Action::PointerRetract,
                                actor,
                                reason: reason.as_str(),
                                archive: reason.archive().map(|why| (why, since)),
                            },
                            &mut Pending::default(),
                        )?;
                    }
                    // The pointer expired here first: the exchange is still on record at
                    // both ends.
                    None => txn.audit(
                        EventDraft::new(transaction, actor, Action::PointerRetract)
                            .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
                            .counterpart(source)
                            .object(format!("signal:{signal}"))
                            .reason(format!("{reason}; no pointer held: already removed")),
                    ),
                }
                Ok(false)
            })
            .await??;
        self.outbox.notify_one();
        Ok(duplicate)
    }

    /// Removes every pointer whose expiry has passed (a source's own sweep retracts too, but
    /// the index does not rely on it), archiving those whose retention period ended, and every
    /// archived pointer whose five years have passed. Returns how many of each went.
    pub async fn sweep(&self) -> Result<Swept, IndexError> {
        let mut swept = Swept::default();
        loop {
            let actor = self.actor("retention");
            let removed = self
                .ledger
                .commit(move |txn| -> Result<usize, IndexError> {
                    let expired = txn.store().expired_pointers(txn.now(), SWEEP_BATCH)?;
                    let transaction = TransactionId::new();
                    // One commit for the batch: each removal sees what the earlier ones did.
                    let mut pending = Pending::default();
                    for pointer in &expired {
                        let reason = RetractReason::expired(pointer.expiry_reason);
                        remove_pointer(
                            txn,
                            pointer,
                            transaction,
                            Removal {
                                action: Action::PointerExpire,
                                actor: actor.clone(),
                                reason: reason.as_str(),
                                // The retention period ended at the pointer's expiry, not at
                                // the sweep that noticed.
                                archive: reason.archive().map(|why| (why, pointer.expires_at)),
                            },
                            &mut pending,
                        )?;
                    }
                    Ok(expired.len())
                })
                .await??;
            swept.pointers += removed;
            if removed > 0 {
                self.outbox.notify_one();
            }
            if removed < SWEEP_BATCH {
                break;
            }
        }
        loop {
            let actor = self.actor("retention");
            let removed = self
                .ledger
                .commit(move |txn| -> Result<usize, IndexError> {
                    let expired = txn.store().expired_archive(txn.now(), SWEEP_BATCH)?;
                    let transaction = TransactionId::new();
                    for entry in &expired {
                        txn.change(Change::DeleteArchive(entry.clone()));
                        txn.audit(
                            EventDraft::new(transaction, actor.clone(), Action::ArchiveExpire)
                                .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
                                .counterpart(entry.organisation)
                                .subjects([entry.subject])
                                .object(format!("signal:{}", entry.signal))
                                .reason(format!(
                                    "archive: {} years ended at {}",
                                    crate::domain::ARCHIVE_YEARS,
                                    entry.expires_at.rfc3339()
                                )),
                        );
                    }
                    Ok(expired.len())
                })
                .await??;
            swept.archived += removed;
            if removed < SWEEP_BATCH {
                return Ok(swept);
            }
        }
    }

    /// The pointers about a person (and, where the purpose allows and it was asked for, the
    /// household), with the coordinator and any waakvlam follow-up.
    pub async fn lookup(
        &self,
        from: &Member,
        context: RequestContext,
        person: Pseudonym,
        household: bool,
    ) -> Result<Lookup, IndexError> {
        let directory = self.federation.directory();
        let requester = from.oin;
        let actor = self.actor("index");
        let role = context.role.unwrap_or(crate::domain::Role::Signaler);
        let decision = policy::authorise(
            &directory,
            &requester,
            context.purpose,
            role,
            context.break_glass,
        )
        .map_err(IndexError::from)
        .and_then(|rule| {
            if household && !policy::household_allowed(rule) {
                Err(IndexError::HouseholdNotAllowed(context.purpose))
            } else {
                Ok(rule.legal_basis)
            }
        });
        let on_behalf_of = Actor {
            user: context.user.clone(),
            role: context.role,
            organisation: requester,
        };
        let draft = EventDraft::new(context.transaction, actor, Action::PointerLookup)
            .counterpart(requester)
            .on_behalf_of(on_behalf_of);
        let purpose = context.purpose;
        let break_glass = context.break_glass;
        let (_entered, keys) = self.vault.enter().await?;
        self.ledger
            .commit(move |txn| -> Result<Lookup, IndexError> {
                let mut persons = Persons::new(keys);
                let basis = match decision {
                    Ok(basis) => basis,
                    Err(e) => {
                        let known = persons.find(txn.store(), &person)?;
                        txn.audit(
                            draft
                                .subjects(known)
                                .purpose(purpose, purpose.local_legal_basis())
                                .refused(format!("permission_denied: {e}")),
                        );
                        return Err(e);
                    }
                };
                let asked = persons.resolve(txn, &person)?;
                let found = Household::around(txn.store(), [asked], &BTreeSet::new(), None)?;
                let mut lookup = Lookup::default();
                // Every person whose pointer or pseudonym goes out is a subject of the event.
                let mut disclosed = BTreeSet::new();
                for p in found
                    .pointers
                    .iter()
                    .filter(|p| household || p.subject == asked)
                {
                    disclosed.insert(p.subject);
                    let relation = (p.subject != asked)
                        .then(|| relation_between(&found.pointers, &asked, &p.subject));
                    let subject = persons.reveal(txn.store(), &p.subject)?;
                    lookup
                        .pointers
                        .push((p.organisation, p.signal, subject, relation));
                }
                if household {
                    for p in found.persons.iter().filter(|p| **p != asked) {
                        disclosed.insert(*p);
                        let relation = relation_between(&found.pointers, &asked, p);
                        lookup
                            .household
                            .push((persons.reveal(txn.store(), p)?, relation));
                    }
                }
                lookup.regie = found.regie(txn.store())?.map(|(_, regie)| regie);
                let now = txn.now();
                let mut waakvlam = BTreeMap::new();
                for p in &found.persons {
                    for entry in txn.store().waakvlam_about(p)? {
                        if entry.active(now) {
                            waakvlam.insert(entry.id, entry);
                        }
                    }
                }
                for mut entry in waakvlam.into_values() {
                    disclosed.extend(entry.persons.iter().copied());
                    reveal_all(txn.store(), &mut persons, &mut entry)?;
                    lookup.waakvlam.push(entry);
                }
                let mut event = draft
                    .subjects([asked])
                    .subjects(disclosed)
                    .purpose(purpose, basis)
                    .object(format!("pointers:{}", lookup.pointers.len()));
                if let Some(reason) = break_glass {
                    event = event.reason(format!("break-glass: {reason}"));
                }
                txn.audit(event);
                Ok(lookup)
            })
            .await?
    }

    /// Claims (or releases) the one coordinator role of the person's household.
    pub async fn regie(
        &self,
        from: &Member,
        context: RequestContext,
        person: Pseudonym,
        claim: bool,
    ) -> Result<Option<Regie>, IndexError> {
        let directory = self.federation.directory();
        let allowed = policy::may_hold_regie(&directory, from.org_type);
        let requester = from.oin;
        let actor = self.actor("index");
        let action = if claim {
            Action::RegieClaim
        } else {
            Action::RegieRelease
        };
        let draft = EventDraft::new(context.transaction, actor, action)
            .purpose(Purpose::LocalTeamCoordination, LegalBasis::Avg61e)
            .counterpart(requester)
            .on_behalf_of(Actor {
                user: context.user.clone(),
                role: context.role,
                organisation: requester,
            });
        let transaction = context.transaction;
        let (_entered, keys) = self.vault.enter().await?;
        let result = self
            .ledger
            .commit(move |txn| -> Result<Option<Regie>, IndexError> {
                let mut persons = Persons::new(keys);
                let known = persons.find(txn.store(), &person)?;
                let refuse = |txn: &mut Txn<'_>, e: IndexError| {
                    // The reason's code is the status the requester gets (see `api::error`).
                    let code = match e {
                        IndexError::Denied(_) => "permission_denied",
                        _ => "failed_precondition",
                    };
                    txn.audit(
                        draft
                            .clone()
                            .subjects(known)
                            .refused(format!("{code}: {e}")),
                    );
                    Err(e)
                };
                if claim && let Err(denial) = allowed {
                    return refuse(txn, denial.into());
                }
                let asked = match known {
                    Some(asked) => asked,
                    None if claim => persons.resolve(txn, &person)?,
                    None => return refuse(txn, IndexError::NoRegie(requester)),
                };
                let household = Household::around(txn.store(), [asked], &BTreeSet::new(), None)?;
                let held = household.regie(txn.store())?;
                let regie = if claim {
                    match held {
                        Some((_, regie)) if regie.holder != requester => {
                            let name = directory
                                .member(&regie.holder)
                                .map(|m| m.name.clone())
                                .unwrap_or_default();
                            return refuse(
                                txn,
                                IndexError::RegieHeld {
                                    holder: regie.holder,
                                    name,
                                },
                            );
                        }
                        Some((_, regie)) => return Ok(Some(regie)),
                        None => {
                            let regie = Regie {
                                holder: requester,
                                since: txn.now(),
                            };
                            txn.change(Change::PutRegie {
                                person: asked,
                                regie,
                            });
                            Some(regie)
                        }
                    }
                } else {
                    match held {
                        Some((at, regie)) if regie.holder == requester => {
                            txn.change(Change::DeleteRegie { person: at });
                            None
                        }
                        _ => return refuse(txn, IndexError::NoRegie(requester)),
                    }
                };
                txn.audit(draft.clone().subjects([asked]));
                for pointer in &household.pointers {
                    queue_notice(
                        txn,
                        transaction,
                        pointer.organisation,
                        IndexNotice::RegieChanged {
                            signal: pointer.signal,
                            regie,
                        },
                    );
                }
                Ok(regie)
            })
            .await?;
        self.outbox.notify_one();
        result
    }

    /// Puts the person's household in follow-up for `days`, coordinated by the requester.
    pub async fn start_waakvlam(
        &self,
        from: &Member,
        context: RequestContext,
        person: Pseudonym,
        days: u32,
    ) -> Result<Waakvlam, IndexError> {
        let directory = self.federation.directory();
        let role = context.role.unwrap_or(crate::domain::Role::Signaler);
        let decision =
            policy::authorise(&directory, &from.oin, Purpose::WaakvlamFollowUp, role, None)
                .map(|_| ())
                .map_err(IndexError::from);
        let max = directory.policy().waakvlam_max_days;
        let check_in_days = directory.policy().waakvlam_checkin_days;
        let requester = from.oin;
        let draft = EventDraft::new(
            context.transaction,
            self.actor("index"),
            Action::WaakvlamStart,
        )
        .purpose(Purpose::WaakvlamFollowUp, LegalBasis::Avg61e)
        .counterpart(requester)
        .on_behalf_of(Actor {
            user: context.user.clone(),
            role: context.role,
            organisation: requester,
        });
        let (_entered, keys) = self.vault.enter().await?;
        self.ledger
            .commit(move |txn| -> Result<Waakvlam, IndexError> {
                let mut persons = Persons::new(keys);
                let checked = decision.and_then(|()| {
                    if days == 0 || days > max {
                        Err(IndexError::Days { max })
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = checked {
                    let known = persons.find(txn.store(), &person)?;
                    txn.audit(draft.subjects(known).refused(format!("refused: {e}")));
                    return Err(e);
                }
                let asked = persons.resolve(txn, &person)?;
                let household = Household::around(txn.store(), [asked], &BTreeSet::new(), None)?;
                let now = txn.now();
                let entry = Waakvlam {
                    id: SignalId::new(),
                    coordinator: requester,
                    persons: household.persons.into_iter().collect(),
                    started: now,
                    until: now.plus_millis(i64::from(days) * UnixMillis::DAY),
                    check_in_days,
                    alerts: 0,
                };
                txn.change(Change::PutWaakvlam(entry.clone()));
                txn.audit(
                    draft
                        .subjects([asked])
                        .object(format!("waakvlam:{}", entry.id)),
                );
                let mut entry = entry;
                reveal_all(txn.store(), &mut persons, &mut entry)?;
                Ok(entry)
            })
            .await?
    }

    /// The requester's active follow-ups, each with its next check-in.
    pub async fn list_waakvlam(
        &self,
        from: &Member,
        context: RequestContext,
    ) -> Result<Vec<Waakvlam>, IndexError> {
        let requester = from.oin;
        let draft = EventDraft::new(
            context.transaction,
            self.actor("index"),
            Action::WaakvlamList,
        )
        .purpose(Purpose::WaakvlamFollowUp, LegalBasis::Avg61e)
        .counterpart(requester);
        let (_entered, keys) = self.vault.enter().await?;
        self.ledger
            .commit(move |txn| -> Result<Vec<Waakvlam>, IndexError> {
                let now = txn.now();
                let mut entries: Vec<Waakvlam> = txn
                    .store()
                    .waakvlam_all()?
                    .into_iter()
                    .filter(|w| w.coordinator == requester && w.active(now))
                    .collect();
                txn.audit(
                    draft
                        .subjects(entries.iter().flat_map(|w| w.persons.clone()))
                        .object(format!("waakvlam:{}", entries.len())),
                );
                let mut persons = Persons::new(keys);
                for entry in &mut entries {
                    reveal_all(txn.store(), &mut persons, entry)?;
                }
                Ok(entries)
            })
            .await?
    }
}

/// The index's key epochs, from the outside: which person a pseudonym names, rotation.
impl IndexService {
    /// The index's person id for a federation pseudonym, if it knows the person (for subject
    /// access: the index's audit log names persons by id). Creates nothing.
    pub async fn person_of(&self, federation: &Pseudonym) -> Result<Option<Pseudonym>, IndexError> {
        let (_entered, keys) = self.vault.enter().await?;
        Ok(Persons::new(keys).find(self.ledger.store().as_ref(), federation)?)
    }

    /// Every name a node's audit log may have for a person: its local pseudonym, the
    /// federation pseudonym, and at the index (`index`) the person id its key vault gives.
    pub async fn names_in_log(
        index: Option<&IndexService>,
        local: Pseudonym,
        federation: Pseudonym,
    ) -> Result<Vec<Pseudonym>, IndexError> {
        let mut names = vec![local, federation];
        if let Some(index) = index {
            names.extend(index.person_of(&federation).await?);
        }
        Ok(names)
    }

    /// Starts moving every person to the next key epoch; `event` (an administrator's request)
    /// is recorded with the start.
    pub async fn rotate(&self, event: EventDraft) -> Result<IndexKeyStatus, IndexError> {
        let event = event.purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141);
        self.vault.start_rotation(event).await?;
        self.rotation.notify_one();
        self.key_status()
    }

    /// Starts the scheduled rotation once the current epoch is `days` old.
    async fn rotate_when_due(&self, days: u32) {
        match self.vault.due(days) {
            Ok(true) => {
                let event =
                    EventDraft::new(TransactionId::new(), self.actor("keys"), Action::IndexRekey)
                        .reason(format!("scheduled: every {days} days"));
                match self.rotate(event).await {
                    Ok(_) => tracing::info!(days, "scheduled index key rotation started"),
                    Err(e) => {
                        tracing::warn!(error = %e, "scheduled index key rotation: not started")
                    }
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "scheduled index key rotation: cannot tell"),
        }
    }

    pub fn key_status(&self) -> Result<IndexKeyStatus, IndexError> {
        let (epochs, left, moved) = self.vault.status()?;
        Ok(IndexKeyStatus {
            epochs,
            left,
            moved,
        })
    }

    /// Loads the index key at start, then runs rotations to their end, batch by batch, until
    /// the node stops; afterwards (and at every start) asks the services to delete the epochs
    /// no person is kept under any more.
    pub async fn run_rotation(self: Arc<Self>, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let mut retired = false;
        let mut warmed = false;
        loop {
            // Load the index key at start, so that the first request does not wait for it.
            if !warmed {
                match self.vault.enter().await {
                    Ok(_) => warmed = true,
                    Err(e) => {
                        tracing::debug!(error = %e, "index key: not loaded yet");
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                            _ = stopped.wait_for(|stop| *stop) => return,
                        }
                        continue;
                    }
                }
            }
            let step = self
                .vault
                .step(|epoch| {
                    EventDraft::new(TransactionId::new(), self.actor("keys"), Action::IndexRekey)
                        .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
                        .object(format!("epoch:{epoch}"))
                })
                .await;
            let pause = match step {
                Ok(Step::Moved(_)) => {
                    tokio::task::yield_now().await;
                    if *stopped.borrow() {
                        return;
                    }
                    continue;
                }
                Ok(Step::Finished(epoch)) => {
                    tracing::info!(epoch, "index key rotation finished");
                    retired = false;
                    std::time::Duration::ZERO
                }
                Ok(Step::Idle) => {
                    if let Some(days) = self.rotate_every_days {
                        self.rotate_when_due(days).await;
                    }
                    std::time::Duration::from_secs(5)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "index key rotation: cannot go on yet");
                    std::time::Duration::from_secs(5)
                }
            };
            if !retired {
                match self.vault.retire_old_epochs().await {
                    Ok(()) => retired = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "index key rotation: old epochs not retired yet")
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.rotation.notified() => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// The index's key epoch and a rotation's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexKeyStatus {
    pub epochs: crate::domain::IndexEpoch,
    /// Persons under the current epoch.
    pub left: u64,
    /// Persons under the next epoch (while a rotation runs).
    pub moved: u64,
}

/// Names a follow-up's persons by their federation pseudonyms again, for its coordinator.
fn reveal_all(
    store: &dyn Store,
    persons: &mut Persons,
    entry: &mut Waakvlam,
) -> Result<(), IndexError> {
    for person in entry.persons.iter_mut() {
        *person = persons.reveal(store, person)?;
    }
    Ok(())
}

/// What one index sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Pointers whose expiry passed.
    pub pointers: usize,
    /// Archived pointers whose five years passed.
    pub archived: usize,
}

/// Tells the organisation of a new pointer of the archived pointers on its subject (from other
/// organisations, within their five years), in one historical-match notice.
fn tell_history(
    txn: &mut Txn<'_>,
    pointer: &Pointer,
    transaction: TransactionId,
) -> Result<(), StoreError> {
    let now = txn.now();
    let archived: Vec<ArchivedParty> = txn
        .store()
        .archived_about(&pointer.subject)?
        .into_iter()
        // An entry past its five years that the sweep has not reached yet says nothing.
        .filter(|e| e.organisation != pointer.organisation && e.expires_at > now)
        .map(|e| ArchivedParty {
            party: e.organisation,
            archived_at: e.archived_at,
            reason: e.reason,
        })
        .collect();
    if !archived.is_empty() {
        queue_notice(
            txn,
            transaction,
            pointer.organisation,
            IndexNotice::HistoricalMatch {
                signal: pointer.signal,
                archived,
            },
        );
    }
    Ok(())
}

/// Puts a notice for `to` in the index's outbox.
fn queue_notice(txn: &mut Txn<'_>, transaction: TransactionId, to: Oin, notice: IndexNotice) {
    let message = OutboxMessage {
        id: MessageId::new(),
        transaction,
        created: txn.now(),
        body: OutboxBody::Notice { to, notice },
        subjects: Vec::new(),
    };
    txn.change(Change::PutOutbox(message));
}

/// Compares each pointer's current parties with those last notified and queues a notice for
/// every change. `gone` is an organisation whose pointer just left the household; `pending`
/// holds the parties this commit already wrote, and gets the ones written here.
fn notify_changes(
    txn: &mut Txn<'_>,
    household: &Household,
    gone: Option<Oin>,
    transaction: TransactionId,
    pending: &mut Pending,
) -> Result<(), StoreError> {
    let regie = household.regie(txn.store())?.map(|(_, r)| r);
    for pointer in &household.pointers {
        let (parties, through_household) = household.parties_of(pointer);
        let before = pending.parties(txn.store(), &pointer.organisation, &pointer.signal)?;
        if before == parties {
            continue;
        }
        if let Some(gone) = gone
            && before.contains(&gone)
            && !parties.contains(&gone)
        {
            queue_notice(
                txn,
                transaction,
                pointer.organisation,
                IndexNotice::MatchEnded {
                    signal: pointer.signal,
                    party: gone,
                },
            );
        }
        pending
            .parties
            .insert((pointer.organisation, pointer.signal), parties.clone());
        if parties.is_empty() {
            txn.change(Change::DeleteParties {
                organisation: pointer.organisation,
                signal: pointer.signal,
            });
            continue;
        }
        txn.change(Change::PutParties {
            organisation: pointer.organisation,
            signal: pointer.signal,
            parties: parties.clone(),
        });
        queue_notice(
            txn,
            transaction,
            pointer.organisation,
            IndexNotice::Match {
                signal: pointer.signal,
                parties,
                household: through_household,
                regie,
            },
        );
    }
    Ok(())
}

/// A new pointer on a person of a household in follow-up alerts the coordinator at once.
fn alert_waakvlam(
    txn: &mut Txn<'_>,
    pointer: &Pointer,
    transaction: TransactionId,
    persons: &mut Persons,
) -> Result<(), IndexError> {
    let now = txn.now();
    let mut alerted = BTreeSet::new();
    for person in pointer.persons() {
        for mut entry in txn.store().waakvlam_about(&person)? {
            if !entry.active(now) || !alerted.insert(entry.id) {
                continue;
            }
            entry.alerts += 1;
            let person = persons.reveal(txn.store(), &person)?;
            queue_notice(
                txn,
                transaction,
                entry.coordinator,
                IndexNotice::WaakvlamAlert {
                    waakvlam: entry.id,
                    party: pointer.organisation,
                    person,
                    until: entry.until,
                },
            );
            txn.change(Change::PutWaakvlam(entry));
        }
    }
    Ok(())
}

/// How a pointer leaves: retracted or expired, by whom, why, and whether it is archived (why,
/// and since when: the archive's five years run from the withdrawal or the expiry).
struct Removal {
    action: Action,
    actor: Actor,
    reason: &'static str,
    archive: Option<(ArchiveReason, UnixMillis)>,
}

/// Removes `pointer` in a commit that may already have removed others (`pending`): the
/// household before and after is computed without those, and every party's list is compared
/// with what the commit already notified, so that each removal in a batch ends the matches it
/// ends (no MatchEnded lost, no parties record left for a removed pointer).
fn remove_pointer(
    txn: &mut Txn<'_>,
    pointer: &Pointer,
    transaction: TransactionId,
    removal: Removal,
    pending: &mut Pending,
) -> Result<(), StoreError> {
    let key = (pointer.organisation, pointer.signal);
    let before = Household::around(
        txn.store(),
        pointer.persons().collect::<Vec<_>>(),
        &pending.removed,
        None,
    )?;
    pending.removed.insert(key);
    pending.parties.insert(key, Vec::new());
    txn.change(Change::DeletePointer(pointer.clone()));
    txn.change(Change::DeleteParties {
        organisation: pointer.organisation,
        signal: pointer.signal,
    });
    txn.audit(
        EventDraft::new(transaction, removal.actor.clone(), removal.action)
            .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
            .counterpart(pointer.organisation)
            .subjects(pointer.persons())
            .object(format!("signal:{}", pointer.signal))
            .reason(removal.reason),
    );
    if let Some((reason, since)) = removal.archive {
        let entry = ArchiveEntry::new(pointer, reason, since);
        let until = entry.expires_at.rfc3339();
        // Withdrawn more than five years ago (a very late retraction): nothing left to keep.
        let kept = entry.expires_at > txn.now();
        txn.audit(
            EventDraft::new(transaction, removal.actor, Action::PointerArchive)
                .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
                .counterpart(pointer.organisation)
                .subjects([entry.subject])
                .object(format!("signal:{}", pointer.signal))
                .reason(if kept {
                    format!("{reason}: kept until {until}")
                } else {
                    format!("{reason}: not kept, its five years ended at {until}")
                }),
        );
        if kept {
            txn.change(Change::PutArchive(entry));
        }
    }
    // What is left of the household, without the pointer (it may have split in two).
    let mut remaining = Household::default();
    let mut seen = BTreeSet::new();
    for other in before
        .pointers
        .iter()
        .filter(|p| (p.organisation, p.signal) != key)
    {
        if seen.contains(&(other.organisation, other.signal)) {
            continue;
        }
        let part = Household::around(
            txn.store(),
            other.persons().collect::<Vec<_>>(),
            &pending.removed,
            None,
        )?;
        for p in part.pointers {
            if seen.insert((p.organisation, p.signal)) {
                remaining.pointers.push(p);
            }
        }
        remaining.persons.extend(part.persons);
    }
    // Each part is its own household for its parties.
    for part in split(&remaining) {
        notify_changes(txn, &part, Some(pointer.organisation), transaction, pending)?;
    }
    Ok(())
}

/// Splits pointers into households (connected by shared persons).
fn split(all: &Household) -> Vec<Household> {
    let mut parts: Vec<Household> = Vec::new();
    for pointer in &all.pointers {
        let persons: BTreeSet<Pseudonym> = pointer.persons().collect();
        let touching: Vec<usize> = parts
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.persons.is_disjoint(&persons))
            .map(|(i, _)| i)
            .collect();
        let mut merged = Household {
            pointers: vec![pointer.clone()],
            persons,
        };
        for i in touching.into_iter().rev() {
            let part = parts.remove(i);
            merged.pointers.extend(part.pointers);
            merged.persons.extend(part.persons);
        }
        parts.push(merged);
    }
    parts
}
