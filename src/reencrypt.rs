//! Re-encryption after a data key rotation (or after encryption at rest was switched on): a
//! background task that seals again, under the active data key, every value still in the
//! clear or under another key, and then records (a log line and an audit event) that no value
//! needs the other keys any more, so that they may leave the configuration.
//!
//! Why through the ledger: it is the store's one writer, so a value read, opened and sealed
//! again is never an old copy of one a request has just changed, and requests go on being
//! served between the task's commits. Why small commits: sled 0.34 keeps memory for every key
//! of a large transaction, and a small commit keeps the writer's turn short.
//!
//! Why one pass is enough: every write seals under the active key, so a value the pass has
//! seen (or one written after it) never needs a retiring key again. A restart starts the pass
//! over from the first record; what is already under the active key is skipped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::{Action, Actor, EventDraft, Oin, PrincipalId, TransactionId};
use crate::ledger::{Ledger, LedgerError};
use crate::store::{Change, DataKeyUse, RecordKey, StoreError};

/// The most records one commit reseals.
pub const RECORDS_PER_COMMIT: usize = 256;
/// How long the task waits before it starts over after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ReencryptError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("the store scan stopped: {0}")]
    Scan(String),
}

/// How a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reencrypted {
    /// Every value was already under the active key (or the store has no keyring).
    NothingToDo,
    /// `resealed` values were sealed again; the other keys are retired.
    Done { resealed: u64 },
    /// The node is stopping; a restart starts over.
    Stopped,
}

/// Runs passes until one finishes or the node stops; a failed pass is logged (naming the
/// record that does not open, for instance) and tried again later.
pub async fn run(ledger: Arc<Ledger>, organisation: Oin, stopped: watch::Receiver<bool>) {
    loop {
        match pass(&ledger, organisation, &stopped).await {
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, retry_in_secs = RETRY_AFTER.as_secs(), "re-encryption failed")
            }
        }
        let mut stopped = stopped.clone();
        tokio::select! {
            () = tokio::time::sleep(RETRY_AFTER) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// One pass over the store: reseals what needs it, then retires the other keys.
pub async fn pass(
    ledger: &Ledger,
    organisation: Oin,
    stopped: &watch::Receiver<bool>,
) -> Result<Reencrypted, ReencryptError> {
    let store = ledger.store().clone();
    let before = store.data_keys()?;
    let Some(active) = before.active.filter(|_| before.needs_reseal()) else {
        return Ok(Reencrypted::NothingToDo);
    };
    let retiring = retiring(&before);
    tracing::info!(active_data_key = %active, retiring = %retiring, "re-encryption started");
    let mut after: Option<RecordKey> = None;
    let mut resealed = 0u64;
    loop {
        if *stopped.borrow() {
            tracing::info!(
                resealed,
                "re-encryption paused by the stop; a restart resumes it"
            );
            return Ok(Reencrypted::Stopped);
        }
        let scan = store.clone();
        let from = after.take();
        let page = tokio::task::spawn_blocking(move || {
            scan.unsealed_records(from.as_ref(), RECORDS_PER_COMMIT)
        })
        .await
        .map_err(|e| ReencryptError::Scan(e.to_string()))??;
        if !page.records.is_empty() {
            resealed += page.records.len() as u64;
            let records = page.records;
            ledger
                .commit(move |txn| txn.change(Change::Reseal(records)))
                .await?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let event = EventDraft::new(
        TransactionId::new(),
        Actor {
            user: PrincipalId::system("store"),
            role: None,
            organisation,
        },
        Action::StoreReencrypted,
    )
    .object(format!("data_key:{active}"))
    .reason(format!(
        "{resealed} values sealed again; none needs {retiring}"
    ));
    ledger
        .commit(move |txn| {
            txn.change(Change::RetireDataKeys);
            txn.audit(event);
        })
        .await?;
    tracing::info!(
        active_data_key = %active,
        resealed,
        retired = %retiring,
        "re-encryption finished: no value needs the retired keys; they may leave [store] data_keys"
    );
    Ok(Reencrypted::Done { resealed })
}

/// What a pass retires, for people: "the clear, data key 1".
fn retiring(keys: &DataKeyUse) -> String {
    let mut parts = Vec::new();
    if keys.plaintext {
        parts.push("values in the clear".to_owned());
    }
    for id in &keys.keys {
        if Some(*id) != keys.active {
            parts.push(format!("data key {id}"));
        }
    }
    parts.join(", ")
}
