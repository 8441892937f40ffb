//! The federation's pseudonymiser at an organisation node: BSNs are blinded here, evaluated by
//! the chain of pseudonym services named in the signed directory (each sees only blinded
//! elements; the first forwards along the chain), and unblinded here into federation
//! pseudonyms.
//!
//! Requests are coalesced: blinded elements of requests that arrive while [`MAX_FLIGHTS`]
//! calls are out go together in the next call, up to [`MAX_BATCH`] elements. An idle node
//! sends a request at once; a busy one pays one round trip per batch instead of one per
//! request. The services see the same blinded elements and count them the same way.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::{MAX_BATCH, PseudonymError, Pseudonymiser, oprf};
use crate::domain::{Bsn, Pseudonym};
use crate::federation::{Federation, PeerError, Peers};

/// Calls to the chain in flight at once from one node.
pub const MAX_FLIGHTS: usize = 4;

type Evaluated = Result<Vec<Vec<u8>>, PseudonymError>;

/// One request's blinded elements, waiting for a call.
struct Pending {
    elements: Vec<Vec<u8>>,
    answer: oneshot::Sender<Evaluated>,
}

#[derive(Debug)]
pub struct OprfPseudonymiser {
    queue: mpsc::UnboundedSender<Pending>,
}

impl OprfPseudonymiser {
    /// Starts the coalescing task on the current runtime; it ends when the pseudonymiser is
    /// dropped.
    pub fn new(federation: Arc<Federation>, peers: Arc<dyn Peers>) -> OprfPseudonymiser {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(coalesce(federation, peers, pending));
        OprfPseudonymiser { queue }
    }

    async fn evaluate(&self, elements: Vec<Vec<u8>>) -> Evaluated {
        let (answer, answered) = oneshot::channel();
        let gone = || PseudonymError::Unavailable("the node is stopping".into());
        self.queue
            .send(Pending { elements, answer })
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

#[async_trait]
impl Pseudonymiser for OprfPseudonymiser {
    async fn pseudonymise(&self, persons: Vec<Bsn>) -> Result<Vec<Pseudonym>, PseudonymError> {
        let mut blinded = oprf::blind_all(persons);
        let mut pseudonyms = Vec::with_capacity(blinded.len());
        while !blinded.is_empty() {
            let rest = blinded.split_off(blinded.len().min(MAX_BATCH));
            let elements = blinded.iter().map(|b| b.element().to_vec()).collect();
            let evaluated = self.evaluate(elements).await?;
            pseudonyms.extend(oprf::finalize_all(blinded, &evaluated).map_err(|e| {
                PseudonymError::Unavailable(format!("pseudonym service answer: {e}"))
            })?);
            blinded = rest;
        }
        Ok(pseudonyms)
    }
}

/// Takes waiting requests into calls of at most [`MAX_BATCH`] elements, at most
/// [`MAX_FLIGHTS`] calls at a time.
async fn coalesce(
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    let flights = Arc::new(Semaphore::new(MAX_FLIGHTS));
    let mut carried: Option<Pending> = None;
    loop {
        let Ok(permit) = flights.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(pending) => pending,
            None => match queue.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut count = first.elements.len();
        let mut batch = vec![first];
        while let Ok(next) = queue.try_recv() {
            if count + next.elements.len() > MAX_BATCH {
                carried = Some(next);
                break;
            }
            count += next.elements.len();
            batch.push(next);
        }
        tokio::spawn(flight(federation.clone(), peers.clone(), batch, permit));
    }
}

/// One call through the chain for `batch`; every request gets its own elements back, or the
/// call's error.
async fn flight(
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
    batch: Vec<Pending>,
    _permit: OwnedSemaphorePermit,
) {
    let mut sizes = Vec::with_capacity(batch.len());
    let mut answers = Vec::with_capacity(batch.len());
    let mut elements = Vec::new();
    for pending in batch {
        sizes.push(pending.elements.len());
        elements.extend(pending.elements);
        answers.push(pending.answer);
    }
    match call(&federation, peers.as_ref(), elements).await {
        Ok(evaluated) if evaluated.len() == sizes.iter().sum::<usize>() => {
            let mut evaluated = evaluated.into_iter();
            for (size, answer) in sizes.into_iter().zip(answers) {
                // A request whose caller went away needs no answer.
                let _ = answer.send(Ok(evaluated.by_ref().take(size).collect()));
            }
        }
        Ok(evaluated) => {
            let error = PseudonymError::Unavailable(format!(
                "pseudonym service answered {} elements for {}",
                evaluated.len(),
                sizes.iter().sum::<usize>()
            ));
            answers
                .into_iter()
                .for_each(|a| drop(a.send(Err(error.clone()))));
        }
        Err(error) => answers
            .into_iter()
            .for_each(|a| drop(a.send(Err(error.clone())))),
    }
}

async fn call(federation: &Federation, peers: &dyn Peers, elements: Vec<Vec<u8>>) -> Evaluated {
    let directory = federation.directory();
    let service = directory
        .pseudonym_services()
        .next()
        .map(|m| m.oin)
        .ok_or_else(|| {
            PseudonymError::Unavailable("the directory names no pseudonym service".into())
        })?;
    // The first service waits for the rest of the chain, each hop within the peer timeout.
    let hops = directory.pseudonym_services().count() as u32;
    tokio::time::timeout(
        federation.timeout() * hops,
        peers.evaluate(&service, elements, None),
    )
    .await
    .map_err(|_| PseudonymError::Unavailable(format!("{service} did not answer in time")))?
    .map_err(|e| match e {
        PeerError::Refused { message, .. } => PseudonymError::Refused(message),
        other => PseudonymError::Unavailable(other.to_string()),
    })
}
