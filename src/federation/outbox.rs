//! Delivers the outbox: pointers to the index, meldingen to Veilig Thuis, notices from the
//! index to organisations. A message leaves the outbox only when its receiver acknowledged it,
//! in the same commit as the audit event that records the delivery, so a crash at any moment
//! loses nothing and at worst delivers a message twice, which receivers recognise by its id.
//!
//! Messages to one destination go in order (a retraction never overtakes its publication);
//! destinations are served concurrently, each with its own capped exponential backoff, so one
//! unreachable peer delays nobody else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{Federation, Peers};
use crate::domain::{
    Action, Actor, EventDraft, LegalBasis, Oin, OutboxBody, OutboxMessage, PrincipalId, Purpose,
};
use crate::ledger::Ledger;
use crate::store::Change;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the outbox is looked at when nothing wakes the deliverer.
const IDLE: Duration = Duration::from_secs(5);
const BATCH: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Backoff {
    attempts: u32,
    until: Instant,
}

impl Backoff {
    /// The wait after `attempts` consecutive failures: 100 ms, doubling, at most 30 s.
    fn delay(attempts: u32) -> Duration {
        FIRST_BACKOFF
            .saturating_mul(1 << attempts.clamp(1, 16).saturating_sub(1))
            .min(MAX_BACKOFF)
    }

    fn after_failure(previous: Option<Backoff>) -> Backoff {
        let attempts = previous.map_or(1, |b| b.attempts.saturating_add(1));
        Backoff {
            attempts,
            until: Instant::now() + Backoff::delay(attempts),
        }
    }
}

/// What a delivery is, for the audit log.
fn describe(body: &OutboxBody) -> (Action, Purpose, LegalBasis, String) {
    match body {
        OutboxBody::PublishPointer { signal, .. } => (
            Action::PointerPublish,
            Purpose::MatchNotification,
            LegalBasis::Jeugdwet7141,
            format!("signal:{signal}"),
        ),
        OutboxBody::RetractPointer { signal, .. } => (
            Action::PointerRetract,
            Purpose::MatchNotification,
            LegalBasis::Jeugdwet7141,
            format!("signal:{signal}"),
        ),
        OutboxBody::Melding { signal, .. } => (
            Action::MeldingSend,
            Purpose::VtTriage,
            LegalBasis::Wmo526,
            format!("signal:{signal}"),
        ),
        OutboxBody::ForkAlert { fork, .. } => (
            Action::ForkAlertSend,
            Purpose::AuditReview,
            Purpose::AuditReview.local_legal_basis(),
            format!("fork:{} log:{}", fork.id, fork.log),
        ),
        OutboxBody::Notice { notice, .. } => (
            Action::NoticeSend,
            Purpose::MatchNotification,
            LegalBasis::Jeugdwet7141,
            format!("notice:{}", notice_kind(notice)),
        ),
    }
}

pub fn notice_kind(notice: &crate::domain::IndexNotice) -> &'static str {
    match notice {
        crate::domain::IndexNotice::Match { .. } => "match",
        crate::domain::IndexNotice::MatchEnded { .. } => "match_ended",
        crate::domain::IndexNotice::WaakvlamAlert { .. } => "waakvlam_alert",
        crate::domain::IndexNotice::RegieChanged { .. } => "regie_changed",
        crate::domain::IndexNotice::HistoricalMatch { .. } => "historical_match",
    }
}

/// The background task that empties the outbox.
#[derive(Debug, Clone)]
pub struct Deliverer {
    ledger: Arc<Ledger>,
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
    wake: Arc<Notify>,
}

impl Deliverer {
    pub fn new(
        ledger: Arc<Ledger>,
        federation: Arc<Federation>,
        peers: Arc<dyn Peers>,
        wake: Arc<Notify>,
    ) -> Deliverer {
        Deliverer {
            ledger,
            federation,
            peers,
            wake,
        }
    }

    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut backoff: HashMap<Oin, Backoff> = HashMap::new();
        loop {
            let next = self.round(&mut backoff).await;
            let sleep = next.unwrap_or_else(|| Instant::now() + IDLE);
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(sleep) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Delivers what can be delivered now; returns when the next backoff ends, if any.
    async fn round(&self, backoff: &mut HashMap<Oin, Backoff>) -> Option<Instant> {
        let store = self.ledger.store().clone();
        let messages = match tokio::task::spawn_blocking(move || store.outbox(BATCH)).await {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                return Some(Instant::now() + IDLE);
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox reader failed");
                return Some(Instant::now() + IDLE);
            }
        };
        let index = self.federation.index();
        let mut queues: BTreeMap<Oin, Vec<OutboxMessage>> = BTreeMap::new();
        for message in messages {
            let to = message.body.destination().unwrap_or(index);
            queues.entry(to).or_default().push(message);
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut tasks = tokio::task::JoinSet::new();
        for (to, queue) in queues {
            if let Some(b) = backoff.get(&to)
                && b.until > now
            {
                next = Some(next.map_or(b.until, |n| n.min(b.until)));
                continue;
            }
            let this = self.clone();
            tasks.spawn(async move { (to, this.deliver_queue(to, queue).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let Ok((to, delivered_all)) = done else {
                continue;
            };
            if delivered_all {
                backoff.remove(&to);
            } else {
                let b = Backoff::after_failure(backoff.get(&to).copied());
                next = Some(next.map_or(b.until, |n| n.min(b.until)));
                backoff.insert(to, b);
            }
        }
        next
    }

    /// Delivers `queue` to `to` in order, stopping at the first failure.
    async fn deliver_queue(&self, to: Oin, queue: Vec<OutboxMessage>) -> bool {
        for message in queue {
            let result =
                tokio::time::timeout(self.federation.timeout(), self.peers.deliver(&to, &message))
                    .await;
            let failure = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("{to} did not answer in time")),
            };
            let (action, purpose, basis, object) = describe(&message.body);
            let actor = Actor {
                user: PrincipalId::system("outbox"),
                role: None,
                organisation: self.federation.me(),
            };
            let draft = EventDraft::new(message.transaction, actor, action)
                .purpose(purpose, basis)
                .counterpart(to)
                .subjects(message.subjects.iter().copied())
                .object(object);
            match failure {
                None => {
                    let id = message.id;
                    let committed = self
                        .ledger
                        .commit(move |txn| {
                            txn.change(Change::DeleteOutbox(id));
                            txn.audit(draft);
                        })
                        .await;
                    if let Err(e) = committed {
                        tracing::warn!(error = %e, "cannot record a delivery");
                        return false;
                    }
                }
                Some(reason) => {
                    tracing::info!(%to, message = %message.id, %reason, "delivery postponed");
                    return false;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let delays: Vec<Duration> = (1..=12).map(Backoff::delay).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[4], Duration::from_millis(1600));
        assert_eq!(delays[8], Duration::from_millis(25_600));
        assert_eq!(delays[9], MAX_BACKOFF);
        assert_eq!(Backoff::delay(u32::MAX), MAX_BACKOFF);
        let second = Backoff::after_failure(Some(Backoff::after_failure(None)));
        assert_eq!(second.attempts, 2);
    }
}
