//! What Veilig Thuis analysts and coordinators ask of the federation: the linked signals of a
//! person and household for one declared purpose (as a map), break-glass in acute danger, the
//! regie of a household, waakvlam follow-up, and the meldingen received.
//!
//! Every exchange is audited here as well as at the other end, with one transaction id: the
//! lookup at the index, each source's answer (or its absence), and the request as a whole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::directory::Member;
use crate::domain::{
    Action, BreakGlassReason, Bsn, EventDraft, LegalBasis, Oin, Pseudonym, Purpose,
    ReceivedMelding, Regie, Relation, RequestContext, Role, SignalId, Waakvlam,
};
use crate::federation::{Federation, PeerError, Peers};
use crate::ledger::{Ledger, LedgerError};
use crate::policy::{self, Denial, DisclosedSignal};
use crate::signals::{Caller, SignalError, SignalService};

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    Denied(#[from] Denial),
    #[error("purpose {0}: household expansion is not allowed")]
    HouseholdNotAllowed(Purpose),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Already in this node's audit log, with the request's purpose.
    #[error(transparent)]
    Recorded(Box<CaseError>),
}

impl CaseError {
    fn recorded(self) -> CaseError {
        CaseError::Recorded(Box::new(self))
    }
}

/// One organisation's part in the map.
#[derive(Debug, Clone)]
pub struct MapOrganisation {
    pub member: Member,
    pub signals: Vec<DisclosedSignal>,
}

#[derive(Debug, Clone)]
pub struct MapPerson {
    /// This node's pseudonym for the person.
    pub pseudonym: Pseudonym,
    /// How the person stands to the person asked about; `None` for that person.
    pub relation: Option<Relation>,
    pub organisations: Vec<MapOrganisation>,
}

/// Persons by organisation, with the coordinator, follow-ups and who did not answer.
#[derive(Debug, Clone)]
pub struct SignalMap {
    pub purpose: Purpose,
    pub asked: Pseudonym,
    pub persons: Vec<MapPerson>,
    pub regie: Option<(Regie, Option<Member>)>,
    pub waakvlam: Vec<Waakvlam>,
    pub unavailable: Vec<(Oin, String, String)>,
    pub break_glass: Option<BreakGlassReason>,
}

#[derive(Debug)]
pub struct CaseService {
    ledger: Arc<Ledger>,
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
    signals: Arc<SignalService>,
}

impl CaseService {
    pub fn new(
        ledger: Arc<Ledger>,
        federation: Arc<Federation>,
        peers: Arc<dyn Peers>,
        signals: Arc<SignalService>,
    ) -> CaseService {
        CaseService {
            ledger,
            federation,
            peers,
            signals,
        }
    }

    fn context(
        caller: &Caller,
        purpose: Purpose,
        break_glass: Option<BreakGlassReason>,
    ) -> RequestContext {
        RequestContext {
            transaction: caller.transaction,
            purpose,
            user: caller.actor.user.clone(),
            role: caller.actor.role,
            break_glass,
        }
    }

    fn event(caller: &Caller, action: Action) -> EventDraft {
        EventDraft::new(caller.transaction, caller.actor.clone(), action)
    }

    /// The federation pseudonym (for the wire) and this node's (for its log) of one person.
    async fn pseudonyms(&self, bsn: Bsn) -> Result<(Pseudonym, Pseudonym), CaseError> {
        let federation = self
            .signals
            .pseudonymiser()
            .pseudonymise(vec![bsn])
            .await
            .map_err(SignalError::from)?[0];
        Ok((federation, self.signals.local().local(&federation)))
    }

    /// The linked signals of a person (and household where asked and allowed).
    pub async fn linked_signals(
        &self,
        caller: &Caller,
        purpose: Purpose,
        bsn: Bsn,
        household: bool,
        break_glass: Option<BreakGlassReason>,
    ) -> Result<SignalMap, CaseError> {
        let action = if break_glass.is_some() {
            Action::BreakGlass
        } else {
            Action::LinkedSignals
        };
        // The policy is checked here first, so a request the federation would refuse is
        // refused (and audited) before anything leaves the node.
        let directory = self.federation.directory();
        let role = caller.actor.role.unwrap_or(Role::Signaler);
        let checked = policy::authorise(
            &directory,
            &self.federation.me(),
            purpose,
            role,
            break_glass,
        )
        .map_err(CaseError::from)
        .and_then(|rule| {
            if household && !policy::household_allowed(rule) {
                Err(CaseError::HouseholdNotAllowed(purpose))
            } else {
                Ok(rule.legal_basis)
            }
        });
        let basis = match checked {
            Ok(basis) => basis,
            Err(e) => {
                let refused = Self::event(caller, action)
                    .purpose(purpose, purpose.local_legal_basis())
                    .refused(format!("permission_denied: {e}"));
                self.ledger.commit(move |txn| txn.audit(refused)).await?;
                return Err(e.recorded());
            }
        };
        let (person, asked) = self.pseudonyms(bsn).await?;
        let context = Self::context(caller, purpose, break_glass);
        let index = self.federation.index();
        let lookup = tokio::time::timeout(
            self.federation.timeout(),
            self.peers.lookup(&index, &context, person, household),
        )
        .await
        .unwrap_or_else(|_| {
            Err(PeerError::Unavailable {
                oin: index,
                reason: "did not answer in time".into(),
            })
        });
        let lookup = match lookup {
            Ok(lookup) => lookup,
            Err(e) => {
                let failed = Self::event(caller, Action::PointerLookup)
                    .purpose(purpose, basis)
                    .counterpart(index)
                    .subjects([asked])
                    .failed(e.to_string());
                self.ledger.commit(move |txn| txn.audit(failed)).await?;
                return Err(CaseError::from(e).recorded());
            }
        };

        // Ask every source for its signals, in parallel, under one deadline.
        let mut by_source: BTreeMap<Oin, Vec<(SignalId, Pseudonym)>> = BTreeMap::new();
        for (oin, signal, subject, _) in &lookup.pointers {
            by_source.entry(*oin).or_default().push((*signal, *subject));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (source, wanted) in by_source.clone() {
            let peers = self.peers.clone();
            let context = context.clone();
            let deadline = self.federation.timeout();
            tasks.spawn(async move {
                let answer =
                    tokio::time::timeout(deadline, peers.fetch_signals(&source, &context, &wanted))
                        .await
                        .unwrap_or_else(|_| {
                            Err(PeerError::Unavailable {
                                oin: source,
                                reason: "did not answer in time".into(),
                            })
                        });
                (source, answer)
            });
        }
        let mut answers: BTreeMap<Oin, Result<Vec<DisclosedSignal>, PeerError>> = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok((source, answer)) = done {
                answers.insert(source, answer);
            }
        }

        // The map: persons (the one asked about first), organisations by ring, signals.
        let local = self.signals.local().clone();
        let mut persons: Vec<MapPerson> = Vec::new();
        let mut unavailable = Vec::new();
        let mut events = Vec::new();
        for (source, answer) in &answers {
            let member = directory.member(source).cloned();
            let name = member
                .as_ref()
                .map_or_else(|| source.to_string(), |m| m.name.clone());
            let fetched = Self::event(caller, Action::SignalsFetch)
                .purpose(purpose, basis)
                .counterpart(*source);
            match answer {
                Ok(signals) => {
                    events.push(fetched.object(format!("signals:{}", signals.len())));
                    let Some(member) = member else { continue };
                    for shown in signals {
                        let Some((_, _, subject, relation)) = lookup
                            .pointers
                            .iter()
                            .find(|(o, s, _, _)| o == source && *s == shown.signal)
                        else {
                            continue;
                        };
                        let pseudonym = local.local(subject);
                        let at = match persons.iter().position(|p| p.pseudonym == pseudonym) {
                            Some(at) => at,
                            None => {
                                persons.push(MapPerson {
                                    pseudonym,
                                    relation: *relation,
                                    organisations: Vec::new(),
                                });
                                persons.len() - 1
                            }
                        };
                        let entry = &mut persons[at].organisations;
                        match entry.iter_mut().find(|o| o.member.oin == member.oin) {
                            Some(org) => org.signals.push(shown.clone()),
                            None => entry.push(MapOrganisation {
                                member: member.clone(),
                                signals: vec![shown.clone()],
                            }),
                        }
                    }
                }
                Err(e) => {
                    unavailable.push((*source, name, e.to_string()));
                    events.push(fetched.failed(e.to_string()));
                }
            }
        }
        for (pseudonym, relation) in &lookup.household {
            let pseudonym = local.local(pseudonym);
            if !persons.iter().any(|p| p.pseudonym == pseudonym) {
                persons.push(MapPerson {
                    pseudonym,
                    relation: Some(*relation),
                    organisations: Vec::new(),
                });
            }
        }
        if !persons.iter().any(|p| p.pseudonym == asked) {
            persons.push(MapPerson {
                pseudonym: asked,
                relation: None,
                organisations: Vec::new(),
            });
        }
        persons.sort_by_key(|p| (p.relation.is_some(), p.relation.map(|r| r.as_str())));
        for person in &mut persons {
            person
                .organisations
                .sort_by_key(|o| (o.member.org_type.ring(), o.member.name.clone()));
        }
        let regie = lookup
            .regie
            .map(|r| (r, directory.member(&r.holder).cloned()));

        let subjects: Vec<Pseudonym> = persons.iter().map(|p| p.pseudonym).collect();
        let mut summary = Self::event(caller, action)
            .purpose(purpose, basis)
            .subjects(subjects.clone())
            .object(format!(
                "sources:{} unavailable:{}",
                answers.len(),
                unavailable.len()
            ));
        if let Some(reason) = break_glass {
            summary = summary.reason(format!("break-glass: {reason}"));
        }
        // Every person whose pointer or pseudonym the index gave, as this node names them.
        let mut disclosed = BTreeSet::new();
        disclosed.extend(lookup.pointers.iter().map(|(_, _, p, _)| local.local(p)));
        disclosed.extend(lookup.household.iter().map(|(p, _)| local.local(p)));
        disclosed.extend(
            lookup
                .waakvlam
                .iter()
                .flat_map(|w| w.persons.iter())
                .map(|p| local.local(p)),
        );
        let looked_up = Self::event(caller, Action::PointerLookup)
            .purpose(purpose, basis)
            .counterpart(index)
            .subjects([asked])
            .subjects(disclosed)
            .object(format!("pointers:{}", lookup.pointers.len()));
        self.ledger
            .commit(move |txn| {
                txn.audit(looked_up);
                for event in events {
                    txn.audit(event.subjects(subjects.iter().copied()));
                }
                txn.audit(summary);
            })
            .await?;
        Ok(SignalMap {
            purpose,
            asked,
            persons,
            regie,
            waakvlam: lookup.waakvlam,
            unavailable,
            break_glass,
        })
    }

    /// Claims or releases the regie of the person's household.
    pub async fn regie(
        &self,
        caller: &Caller,
        bsn: Bsn,
        claim: bool,
    ) -> Result<Option<Regie>, CaseError> {
        let (person, local) = self.pseudonyms(bsn).await?;
        let context = Self::context(caller, Purpose::LocalTeamCoordination, None);
        let index = self.federation.index();
        let answer = self.peers.regie(&index, &context, person, claim).await;
        let action = if claim {
            Action::RegieClaim
        } else {
            Action::RegieRelease
        };
        let event = Self::event(caller, action)
            .purpose(Purpose::LocalTeamCoordination, LegalBasis::Avg61e)
            .counterpart(index)
            .subjects([local]);
        let event = match &answer {
            Ok(_) => event,
            Err(PeerError::Refused { code, message, .. }) => {
                event.refused(format!("{code}: {message}"))
            }
            Err(e) => event.failed(e.to_string()),
        };
        self.ledger.commit(move |txn| txn.audit(event)).await?;
        answer.map_err(|e| CaseError::from(e).recorded())
    }

    pub async fn start_waakvlam(
        &self,
        caller: &Caller,
        bsn: Bsn,
        days: u32,
    ) -> Result<Waakvlam, CaseError> {
        let (person, local) = self.pseudonyms(bsn).await?;
        let context = Self::context(caller, Purpose::WaakvlamFollowUp, None);
        let index = self.federation.index();
        let answer = self
            .peers
            .start_waakvlam(&index, &context, person, days)
            .await;
        let event = Self::event(caller, Action::WaakvlamStart)
            .purpose(Purpose::WaakvlamFollowUp, LegalBasis::Avg61e)
            .counterpart(index)
            .subjects([local]);
        let event = match &answer {
            Ok(w) => event.object(format!("waakvlam:{}", w.id)),
            Err(PeerError::Refused { code, message, .. }) => {
                event.refused(format!("{code}: {message}"))
            }
            Err(e) => event.failed(e.to_string()),
        };
        self.ledger.commit(move |txn| txn.audit(event)).await?;
        let mut entry = answer.map_err(|e| CaseError::from(e).recorded())?;
        entry.persons = entry
            .persons
            .iter()
            .map(|p| self.signals.local().local(p))
            .collect();
        Ok(entry)
    }

    pub async fn list_waakvlam(&self, caller: &Caller) -> Result<Vec<Waakvlam>, CaseError> {
        let context = Self::context(caller, Purpose::WaakvlamFollowUp, None);
        let index = self.federation.index();
        let answer = self.peers.list_waakvlam(&index, &context).await;
        let event = Self::event(caller, Action::WaakvlamList)
            .purpose(Purpose::WaakvlamFollowUp, LegalBasis::Avg61e)
            .counterpart(index);
        let event = match &answer {
            Ok(entries) => event.object(format!("waakvlam:{}", entries.len())),
            Err(e) => event.failed(e.to_string()),
        };
        self.ledger.commit(move |txn| txn.audit(event)).await?;
        let local = self.signals.local().clone();
        Ok(answer
            .map_err(|e| CaseError::from(e).recorded())?
            .into_iter()
            .map(|mut w| {
                w.persons = w.persons.iter().map(|p| local.local(p)).collect();
                w
            })
            .collect())
    }

    /// The meldingen this Veilig Thuis node received.
    pub async fn meldingen(&self, caller: &Caller) -> Result<Vec<ReceivedMelding>, CaseError> {
        let local = self.signals.local();
        let meldingen: Vec<ReceivedMelding> = self
            .ledger
            .store()
            .meldingen()?
            .into_iter()
            .map(|mut m| {
                if !m.subject_is_local {
                    m.subject = local.local(&m.subject);
                    m.subject_is_local = true;
                }
                m
            })
            .collect();
        let subjects: Vec<Pseudonym> = meldingen.iter().map(|m| m.subject).collect();
        let event = Self::event(caller, Action::MeldingenList)
            .purpose(Purpose::VtTriage, LegalBasis::Wmo411)
            .subjects(subjects)
            .object(format!("meldingen:{}", meldingen.len()));
        self.ledger.commit(move |txn| txn.audit(event)).await?;
        Ok(meldingen)
    }
}
