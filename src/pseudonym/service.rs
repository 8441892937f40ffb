//! The pseudonym service role: evaluates blinded elements under its key share, forwards the
//! result to the next service of the chain (in the directory's order), and answers with the
//! last service's result. With one service in the directory it is the whole chain.
//!
//! It never sees a BSN or a pseudonym: only blinded elements, uniformly random per request.
//! It limits every organisation to the policy's rate (RESOURCE_EXHAUSTED beyond it), counted
//! by the organisation that asked the first service (named in `on_behalf_of` by the service
//! just before in the chain, and by no one else), and records in its audit log how many
//! elements it evaluated for whom, per period, never the elements.
//!
//! Forwarding, rather than answering the client and letting it call the next service, keeps
//! the intermediate element `k1 * B` from the client: a client that saw it would hold an oracle
//! for one key share, which the chain is there to deny. For the same reason a service that is
//! not first in the chain answers only the service just before it, never an organisation
//! directly (which would get `k2 * X`, an evaluation under one share alone).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::epochs::{EpochError, IndexEpochs};
use super::{OprfError, ServiceKey};
use crate::directory::{Member, NodeRole};
use crate::domain::{Action, Actor, EventDraft, Oin, PrincipalId, TransactionId};
use crate::federation::{Federation, PeerError, Peers};
use crate::ledger::{Ledger, LedgerError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "rate limit: {organisation} may ask for at most {limit} pseudonym evaluations a minute"
    )]
    RateLimited { organisation: String, limit: u32 },
    #[error(
        "on_behalf_of: only the service before this one in the chain, {previous}, may forward for another organisation"
    )]
    NotAChainMember { previous: String },
    #[error(
        "on_behalf_of: this is the first service of the chain, which organisations ask themselves; no service forwards to it"
    )]
    ForwardedToFirst,
    #[error(
        "chain order: this service is number {position} of the chain and answers only the service before it, {previous}; organisations ask the first, {first}"
    )]
    NotThePrevious {
        position: usize,
        previous: String,
        first: String,
    },
    #[error(
        "on_behalf_of: required from the service before this one in the chain (the organisation that asked the first)"
    )]
    OnBehalfOfMissing,
    #[error("chain order: a pseudonym service does not ask the chain for pseudonyms itself")]
    ServiceAsOrganisation,
    #[error("on_behalf_of: names no member of the directory")]
    UnknownOrganisation,
    #[error(
        "on_behalf_of: {organisation} is a pseudonym service; a service forwards only for the organisation that asked the chain"
    )]
    OnBehalfOfAService { organisation: String },
    #[error("this node is not one of the directory's pseudonym services")]
    NotInChain,
    #[error("index key: only the directory's index may ask for an index key share")]
    NotTheIndex,
    #[error(transparent)]
    Epoch(#[from] EpochError),
    #[error(transparent)]
    Oprf(#[from] OprfError),
    #[error("the next pseudonym service: {0}")]
    Next(#[from] PeerError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// A token bucket per organisation: `rate` a minute, bursts up to a minute's worth.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct PseudonymService {
    key: ServiceKey,
    epochs: IndexEpochs,
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
    ledger: Arc<Ledger>,
    buckets: Mutex<HashMap<Oin, Bucket>>,
    /// Elements evaluated per organisation since the last record.
    counts: Mutex<BTreeMap<Oin, u64>>,
}

impl PseudonymService {
    pub fn new(
        key: ServiceKey,
        epochs: IndexEpochs,
        federation: Arc<Federation>,
        peers: Arc<dyn Peers>,
        ledger: Arc<Ledger>,
    ) -> PseudonymService {
        PseudonymService {
            key,
            epochs,
            federation,
            peers,
            ledger,
            buckets: Mutex::new(HashMap::new()),
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn take(
        &self,
        organisation: Oin,
        elements: usize,
        per_minute: u32,
    ) -> Result<(), ServiceError> {
        let capacity = f64::from(per_minute);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(organisation).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * capacity / 60.0;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        let wanted = elements as f64;
        if bucket.tokens < wanted {
            let organisation = self
                .federation
                .directory()
                .member(&organisation)
                .map_or_else(
                    || organisation.to_string(),
                    |m| format!("{} ({})", m.name, m.oin),
                );
            return Err(ServiceError::RateLimited {
                organisation,
                limit: per_minute,
            });
        }
        bucket.tokens -= wanted;
        Ok(())
    }

    /// Evaluates `blinded` for `from` (or, when a chain member forwards, for the organisation
    /// it names), along the rest of the chain.
    pub async fn evaluate(
        &self,
        from: &Member,
        on_behalf_of: Option<Oin>,
        blinded: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        let directory = self.federation.directory();
        let chain: Vec<Oin> = directory.pseudonym_services().map(|m| m.oin).collect();
        let me = self.federation.me();
        let position = chain
            .iter()
            .position(|oin| *oin == me)
            .ok_or(ServiceError::NotInChain)?;
        let describe = |oin: &Oin| {
            directory
                .member(oin)
                .map_or_else(|| oin.to_string(), |m| format!("{} ({})", m.name, m.oin))
        };
        let requester = match on_behalf_of {
            // Only the first service answers organisations: a later one answering an
            // organisation directly would give it an evaluation under that one share alone.
            None if position > 0 && from.oin != chain[position - 1] => {
                return Err(ServiceError::NotThePrevious {
                    position: position + 1,
                    previous: describe(&chain[position - 1]),
                    first: describe(&chain[0]),
                });
            }
            None if position > 0 => return Err(ServiceError::OnBehalfOfMissing),
            None if from.has_role(NodeRole::PseudonymService) => {
                return Err(ServiceError::ServiceAsOrganisation);
            }
            None => from.oin,
            Some(_) if position == 0 => return Err(ServiceError::ForwardedToFirst),
            Some(_) if from.oin != chain[position - 1] => {
                return Err(ServiceError::NotAChainMember {
                    previous: describe(&chain[position - 1]),
                });
            }
            Some(organisation) => match directory.member(&organisation) {
                None => return Err(ServiceError::UnknownOrganisation),
                Some(m) if m.has_role(NodeRole::PseudonymService) => {
                    return Err(ServiceError::OnBehalfOfAService {
                        organisation: describe(&organisation),
                    });
                }
                Some(_) => organisation,
            },
        };
        // Every element is read before any token is taken: a refused batch spends nothing.
        let checked = ServiceKey::check(&blinded)?;
        self.take(
            requester,
            checked.len(),
            directory.policy().pseudonym_rate_per_minute,
        )?;
        let evaluated: Vec<Vec<u8>> = self
            .key
            .evaluate_checked(&checked)
            .into_iter()
            .map(|e| e.to_vec())
            .collect();
        let answer = match chain.get(position + 1) {
            Some(next) => tokio::time::timeout(
                self.federation.timeout(),
                self.peers.evaluate(next, evaluated, Some(requester)),
            )
            .await
            .map_err(|_| PeerError::Unavailable {
                oin: *next,
                reason: "did not answer in time".into(),
            })??,
            None => evaluated,
        };
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(requester)
            .or_default() += checked.len() as u64;
        Ok(answer)
    }

    /// The index's share of `epoch`'s at-rest key (see [`IndexEpochs`]), recorded with the
    /// epoch, never the share. Only with `start` (the index starting the epoch) may the epoch
    /// be created.
    pub async fn index_key(
        &self,
        from: &Member,
        transaction: TransactionId,
        epoch: u32,
        start: bool,
    ) -> Result<[u8; 32], ServiceError> {
        if !from.has_role(NodeRole::Index) {
            return Err(ServiceError::NotTheIndex);
        }
        let share = if start {
            self.epochs.start(&from.oin, epoch)?
        } else {
            self.epochs.share(&from.oin, epoch)?
        };
        let mut event = EventDraft::new(transaction, self.system_actor(), Action::IndexKeyShare)
            .counterpart(from.oin)
            .object(format!("epoch:{epoch}"));
        if start {
            event = event.reason("the index starts the epoch");
        }
        self.ledger.commit(move |txn| txn.audit(event)).await?;
        Ok(share)
    }

    /// Deletes the epoch secrets before `before`, at the index's word that no person is kept
    /// under them any more. Returns the oldest epoch left.
    pub async fn retire_index_epochs(
        &self,
        from: &Member,
        transaction: TransactionId,
        before: u32,
    ) -> Result<u32, ServiceError> {
        if !from.has_role(NodeRole::Index) {
            return Err(ServiceError::NotTheIndex);
        }
        let oldest = self.epochs.retire_before(before)?;
        let event = EventDraft::new(transaction, self.system_actor(), Action::IndexEpochRetire)
            .counterpart(from.oin)
            .object(format!("epoch:{oldest}"))
            .reason(format!("epochs before {before} retired"));
        self.ledger.commit(move |txn| txn.audit(event)).await?;
        Ok(oldest)
    }

    fn system_actor(&self) -> Actor {
        Actor {
            user: PrincipalId::system("pseudonyms"),
            role: None,
            organisation: self.federation.me(),
        }
    }

    /// Records the counts since the last record: one event per organisation served.
    pub async fn record_counts(&self, period: &str) -> Result<(), ServiceError> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        if counts.is_empty() {
            return Ok(());
        }
        let actor = self.system_actor();
        let transaction = TransactionId::new();
        let events: Vec<EventDraft> = counts
            .iter()
            .map(|(&organisation, count)| {
                EventDraft::new(transaction, actor.clone(), Action::PseudonymEvaluate)
                    .counterpart(organisation)
                    .object(format!("elements:{count}"))
                    .reason(format!("evaluations in {period}"))
            })
            .collect();
        if let Err(e) = self
            .ledger
            .commit(move |txn| events.into_iter().for_each(|e| txn.audit(e)))
            .await
        {
            // Not recorded: keep the counts for the next record, with what came in meanwhile.
            let mut now = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            for (organisation, count) in counts {
                *now.entry(organisation).or_default() += count;
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Records counts every `every`, and once more when the node stops.
    pub async fn run_counts(self: Arc<Self>, every: Duration, mut stopped: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            let stop = tokio::select! {
                _ = interval.tick() => false,
                _ = stopped.wait_for(|stop| *stop) => true,
            };
            let period = if stop {
                "the last period before stopping"
            } else {
                "the last period"
            };
            if let Err(e) = self.record_counts(period).await {
                tracing::warn!(error = %e, "cannot record pseudonym evaluation counts");
            }
            if stop {
                return;
            }
        }
    }
}
