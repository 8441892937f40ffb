//! Subject access (AVG art. 15; the client view of NEN 7513): a privacy officer names a person
//! by BSN and gets every audit event about that person, from this node's log and from every
//! other member of the federation, with who (principal, role, organisation) did what, when,
//! for which purpose and on which legal basis, and whether it was a break-glass access.
//!
//! The BSN is turned into the federation pseudonym here (the OPRF chain) and dropped; every
//! other organisation and the index are asked with that pseudonym only, under purpose subject
//! access, in parallel and under the peer deadline (the pseudonym services and the authority
//! hold no events about persons by design, see [`holds_events_about_persons`]). Each peer maps it to its own pseudonym, checks the policy for this
//! organisation and the officer's role, audits its disclosure and answers with its events
//! stripped of persons, reasons and objects ([`AccessedEvent`]). A peer that does not answer is
//! listed, not waited for. At the index, its own log names persons by index person id: its
//! own search adds the id its key vault gives the federation pseudonym, as its peer handler
//! does for a peer.
//!
//! Audited here with the request's transaction id: each peer's answer or refusal
//! (`audit.subject_access_fetch`, naming the peer) and the request as a whole
//! (`audit.subject_access`), all before the report is returned.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit::search::{self, SearchError};
use crate::directory::{Member, NodeRole};
use crate::domain::{
    AccessedEvent, Action, Bsn, EventDraft, Oin, OrgType, Pseudonym, Purpose, RequestContext, Role,
    UnixMillis,
};
use crate::federation::serve::MAX_ACCESS_EVENTS;
use crate::federation::{AccessAnswer, PeerError, Peers};
use crate::index::IndexService;
use crate::ledger::{Ledger, LedgerError};
use crate::policy::{self, Denial};
use crate::signals::{Caller, SignalError, SignalService};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Denied(#[from] Denial),
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("audit log: {0}")]
    Search(#[from] SearchError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// This node's index could not name the person (its key not loaded, say).
    #[error("index: {0}")]
    Index(String),
    /// Already in this node's audit log, with the request's purpose.
    #[error(transparent)]
    Recorded(Box<AccessError>),
}

/// One organisation's part in the report: answered with so many events, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSource {
    pub oin: Oin,
    pub name: String,
    pub org_type: Option<OrgType>,
    pub answer: Result<SourceCount, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceCount {
    pub events: usize,
    pub truncated: bool,
}

/// Every event about the person, by organisation (this one first, then by name) and in time
/// order, with every organisation asked.
#[derive(Debug, Clone)]
pub struct AccessReport {
    /// This node's pseudonym of the person, as its own log shows it.
    pub subject: Pseudonym,
    pub events: Vec<AccessedEvent>,
    pub sources: Vec<AccessSource>,
    pub generated_at: UnixMillis,
}

#[derive(Debug)]
pub struct AccessService {
    ledger: Arc<Ledger>,
    signals: Arc<SignalService>,
    peers: Option<Arc<dyn Peers>>,
    /// This node's index role, if it has one: its log names persons by index person id.
    index: Option<Arc<IndexService>>,
}

impl AccessService {
    pub fn new(
        ledger: Arc<Ledger>,
        signals: Arc<SignalService>,
        peers: Option<Arc<dyn Peers>>,
        index: Option<Arc<IndexService>>,
    ) -> AccessService {
        AccessService {
            ledger,
            signals,
            peers,
            index,
        }
    }

    fn event(caller: &Caller, action: Action) -> EventDraft {
        EventDraft::new(caller.transaction, caller.actor.clone(), action).purpose(
            Purpose::SubjectAccess,
            Purpose::SubjectAccess.local_legal_basis(),
        )
    }

    /// The report for the person behind `bsn` (consumed by pseudonymisation).
    pub async fn subject_access(
        &self,
        caller: &Caller,
        bsn: Bsn,
    ) -> Result<AccessReport, AccessError> {
        let me = caller.actor.organisation;
        let federation = self.signals.federation().cloned();
        // The policy is checked here first, so that a request every peer would refuse is
        // refused (and audited) before anything leaves the node.
        if let Some(federation) = &federation {
            let directory = federation.directory();
            let role = caller.actor.role.unwrap_or(Role::Signaler);
            if let Err(denial) =
                policy::authorise(&directory, &me, Purpose::SubjectAccess, role, None)
            {
                let refused = Self::event(caller, Action::SubjectAccess)
                    .refused(format!("permission_denied: policy: {denial}"));
                self.ledger.commit(move |txn| txn.audit(refused)).await?;
                return Err(AccessError::from(denial).recorded());
            }
        }
        let person = self
            .signals
            .pseudonymiser()
            .pseudonymise(vec![bsn])
            .await
            .map_err(SignalError::from)?[0];
        let subject = self.signals.local().local(&person);
        // At the index, its log names the person by index person id too (as `PeerHandler`
        // searches it for a peer); resolved before anything leaves the node, so a vault that
        // cannot name the person fails the request without asking anyone.
        let subjects = IndexService::names_in_log(self.index.as_deref(), subject, person)
            .await
            .map_err(|e| AccessError::Index(e.to_string()))?;

        // Every other member, in parallel, under one deadline.
        let mut tasks = tokio::task::JoinSet::new();
        let mut asked: Vec<Member> = Vec::new();
        if let (Some(federation), Some(peers)) = (&federation, &self.peers) {
            let context = RequestContext {
                transaction: caller.transaction,
                purpose: Purpose::SubjectAccess,
                user: caller.actor.user.clone(),
                role: caller.actor.role,
                break_glass: None,
            };
            let deadline = federation.timeout();
            for member in federation.directory().members() {
                if member.oin == me || !holds_events_about_persons(member) {
                    continue;
                }
                asked.push(member.clone());
                let peers = peers.clone();
                let context = context.clone();
                let oin = member.oin;
                tasks.spawn(async move {
                    let answer = tokio::time::timeout(
                        deadline,
                        peers.subject_access(&oin, &context, person),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(PeerError::Unavailable {
                            oin,
                            reason: "did not answer in time".into(),
                        })
                    });
                    (oin, answer)
                });
            }
        }

        // Meanwhile, this node's own log, under both pseudonyms as the peers search theirs.
        let store = self.ledger.store().clone();
        let size = store.audit_size()?;
        let (own, own_truncated) = tokio::task::spawn_blocking(move || {
            search::about(store.as_ref(), size, &subjects, MAX_ACCESS_EVENTS)
        })
        .await
        .map_err(|e| SearchError::Unreadable(0, e.to_string()))??;

        let mut answers: BTreeMap<Oin, Result<AccessAnswer, PeerError>> = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok((oin, answer)) = done {
                answers.insert(oin, answer);
            }
        }

        let directory = federation.as_ref().map(|f| f.directory());
        let own_member = directory.as_ref().and_then(|d| d.member(&me).cloned());
        let mut sources = vec![AccessSource {
            oin: me,
            name: own_member
                .as_ref()
                .map_or_else(|| me.to_string(), |m| m.name.clone()),
            org_type: own_member.as_ref().map(|m| m.org_type),
            answer: Ok(SourceCount {
                events: own.len(),
                truncated: own_truncated,
            }),
        }];
        let mut events: Vec<AccessedEvent> = own.iter().map(|e| AccessedEvent::of(me, e)).collect();
        let mut audits = Vec::new();
        asked.sort_by(|a, b| a.name.cmp(&b.name));
        for member in &asked {
            let fetched = Self::event(caller, Action::SubjectAccessFetch)
                .counterpart(member.oin)
                .subjects([subject]);
            let answer = answers.remove(&member.oin).unwrap_or_else(|| {
                Err(PeerError::Unavailable {
                    oin: member.oin,
                    reason: "the request failed".into(),
                })
            });
            let answer = match answer {
                Ok(answer) => {
                    // A peer speaks for its own log only.
                    let mine: Vec<AccessedEvent> = answer
                        .events
                        .into_iter()
                        .filter(|e| e.recorded_by == member.oin)
                        .collect();
                    audits.push(fetched.object(format!("events:{}", mine.len())));
                    let count = SourceCount {
                        events: mine.len(),
                        truncated: answer.truncated,
                    };
                    events.extend(mine);
                    Ok(count)
                }
                Err(e) => {
                    audits.push(match &e {
                        PeerError::Refused { code, message, .. } => {
                            fetched.refused(format!("{code}: {message}"))
                        }
                        PeerError::Unavailable { .. } => fetched.failed(e.to_string()),
                    });
                    Err(e.to_string())
                }
            };
            sources.push(AccessSource {
                oin: member.oin,
                name: member.name.clone(),
                org_type: Some(member.org_type),
                answer,
            });
        }
        let order: BTreeMap<Oin, usize> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| (s.oin, i))
            .collect();
        events.sort_by_key(|e| (order.get(&e.recorded_by).copied(), e.time, e.index));

        let unavailable = sources.iter().filter(|s| s.answer.is_err()).count();
        let summary = Self::event(caller, Action::SubjectAccess)
            .subjects([subject])
            .object(format!(
                "sources:{} unavailable:{unavailable} events:{}",
                sources.len(),
                events.len()
            ));
        let generated_at = self
            .ledger
            .commit(move |txn| {
                for event in audits {
                    txn.audit(event);
                }
                txn.audit(summary);
                txn.now()
            })
            .await?;
        Ok(AccessReport {
            subject,
            events,
            sources,
            generated_at,
        })
    }
}

/// Whether a member's log can hold events about a person: organisations (their signals and
/// what they disclosed) and the index (pointers, lookups, notices). A pseudonym service records
/// counts per organisation and never an element, and the authority only signs the directory
/// (and may well be offline), so neither is asked.
pub fn holds_events_about_persons(member: &Member) -> bool {
    member.has_role(NodeRole::Organisation) || member.has_role(NodeRole::Index)
}

impl AccessError {
    fn recorded(self) -> AccessError {
        AccessError::Recorded(Box::new(self))
    }
}
