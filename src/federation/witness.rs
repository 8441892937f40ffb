//! Witnessing: every member of the directory witnesses every other member's audit log.
//!
//! As a *log*, a node pushes its latest signed checkpoint to each witness on a schedule, with
//! an RFC 6962 consistency proof from the size that witness last cosigned (C2SP tlog-witness,
//! over the peer listener), and keeps each cosignature it gets back next to its checkpoint.
//! As a *witness*, a node checks the checkpoint's signature with the audit key the signed
//! directory pins for the calling member, checks the proof from the checkpoint it saw before,
//! keeps the new one and returns a C2SP tlog-cosignature made with its own audit key.
//!
//! A checkpoint that contradicts the one a witness saw (same size and another root, a smaller
//! size, or a proof that does not hold) is a fork: the witness refuses it, keeps both signed
//! checkpoints as evidence, records the fork in its audit log and alerts every member through
//! its outbox; each member checks the evidence's signatures and keeps it, and every node's
//! Audit API lists it. A witness that found a log forked cosigns nothing more of it.
//!
//! Every decision is taken inside one ledger commit, so the witness's state, its evidence, its
//! alerts and its audit event are durable together before it answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{Federation, PeerError, Peers};
use crate::audit::cosignature::{self, CosignatureError, WitnessKey};
use crate::audit::{Hash32, NoteSigner, SignedCheckpoint, checkpoint, merkle};
use crate::clock::SharedClock;
use crate::directory::Member;
use crate::domain::{
    Action, Actor, EventDraft, ForkKind, ForkRecord, MessageId, Oin, OutboxBody, OutboxMessage,
    PrincipalId, Purpose, TransactionId, UnixMillis,
};
use crate::ledger::{Ledger, LedgerError, store_hashes};
use crate::store::{Change, StoreError};

/// A log with nothing new still pushes its checkpoint to each witness this often, so that its
/// witnesses can tell a quiet log from one that stopped showing its checkpoints.
pub const HEARTBEAT_MILLIS: i64 = 10 * 60 * 1000;
/// A witnessed log not heard from for this long is silent: with rounds at most ten minutes
/// apart (`witness.every_secs`), that is three heartbeats missed.
pub const SILENT_AFTER_MILLIS: i64 = 60 * 60 * 1000;

/// The longest consistency proof accepted: a tree of 2^63 leaves needs fewer hashes.
pub const MAX_PROOF_HASHES: usize = 128;
/// The longest checkpoint note accepted (a kring checkpoint is about 200 bytes; a fork
/// alert carries two, and fork records are kept in the store).
pub const MAX_CHECKPOINT_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The checkpoint is not a checkpoint of the caller's log under its pinned key.
    #[error("{0}")]
    BadCheckpoint(String),
    /// The witness knows another size: the log must prove consistency from that one.
    #[error("old_size: this witness last cosigned tree size {known} of this log")]
    OldSize { known: u64 },
    #[error("old_size: is beyond the checkpoint's tree size {size}")]
    OldSizeBeyond { size: u64 },
    /// The checkpoint contradicts the one the witness saw: it refuses and keeps the evidence.
    #[error(
        "fork: {kind} of the log of {log} (fork {id}); this witness cosigns no further checkpoint of it"
    )]
    Fork {
        kind: ForkKind,
        log: Oin,
        id: MessageId,
    },
    /// A fork alert that is not one.
    #[error("{field}: {problem}")]
    BadAlert {
        field: &'static str,
        problem: String,
    },
    #[error("fork_alert.witness_oin: a fork alert comes from the witness that found the fork")]
    NotTheWitness,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a witness decides about a presented checkpoint, from the one it saw before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Cosign; `Keep` when it is newer than the one seen, `Same` when it is that one.
    Cosign(Seen),
    /// The log must prove from this size.
    OldSize(u64),
    OldSizeBeyond,
    Fork(ForkKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Keep,
    Same,
}

/// The witness's rule (C2SP tlog-witness, with forks named): pure, so it can be read alone.
pub fn judge(
    known: Option<&SignedCheckpoint>,
    presented: &SignedCheckpoint,
    old_size: u64,
    proof: &[Hash32],
) -> Judgement {
    let Some(known) = known else {
        return match old_size {
            0 => Judgement::Cosign(Seen::Keep),
            _ => Judgement::OldSize(0),
        };
    };
    if presented.size == known.size {
        return match presented.root == known.root {
            true => Judgement::Cosign(Seen::Same),
            false => Judgement::Fork(ForkKind::Equivocation),
        };
    }
    if presented.size < known.size {
        return Judgement::Fork(ForkKind::Rollback);
    }
    if old_size != known.size {
        return match old_size > presented.size {
            true => Judgement::OldSizeBeyond,
            false => Judgement::OldSize(known.size),
        };
    }
    match merkle::verify_consistency(
        known.size,
        &known.root,
        presented.size,
        &presented.root,
        proof,
    ) {
        Ok(()) => Judgement::Cosign(Seen::Keep),
        Err(_) => Judgement::Fork(ForkKind::Inconsistent),
    }
}

/// What one push to one witness came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The witness cosigned the checkpoint of this size.
    Cosigned(u64),
    /// It had cosigned it already.
    Unchanged,
    /// It refused (the reason as it gave it, or why its answer was not taken).
    Refused(String),
    /// It could not be reached; the next round tries again.
    Unavailable(String),
}

/// A node's witnessing, both ways.
pub struct Witness {
    ledger: Arc<Ledger>,
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
    signer: NoteSigner,
    clock: SharedClock,
    outbox: Arc<Notify>,
    /// The size each witness last cosigned of this node's log, and when (for the heartbeat),
    /// as far as this run knows; a witness that knows better says so and the push is retried
    /// from its size.
    cosigned: Mutex<HashMap<Oin, (u64, UnixMillis)>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("me", &self.federation.me())
            .finish()
    }
}

impl Witness {
    /// `signer` is the node's audit key: the witness's cosignatures are made with it, under
    /// its name, so the directory's pin of that key is also the pin of the witness.
    pub fn new(
        ledger: Arc<Ledger>,
        federation: Arc<Federation>,
        peers: Arc<dyn Peers>,
        signer: NoteSigner,
        clock: SharedClock,
        outbox: Arc<Notify>,
    ) -> Witness {
        Witness {
            ledger,
            federation,
            peers,
            signer,
            clock,
            outbox,
            cosigned: Mutex::new(HashMap::new()),
        }
    }

    fn actor(&self) -> Actor {
        Actor {
            user: PrincipalId::system("witness"),
            role: None,
            organisation: self.federation.me(),
        }
    }

    fn draft(&self, transaction: TransactionId, action: Action, counterpart: Oin) -> EventDraft {
        EventDraft::new(transaction, self.actor(), action)
            .purpose(
                Purpose::AuditReview,
                Purpose::AuditReview.local_legal_basis(),
            )
            .counterpart(counterpart)
    }

    // The witness side.

    /// Takes a checkpoint of `from`'s log and returns the cosignature line, or refuses.
    /// Every outcome is in the audit log before it returns.
    pub async fn add_checkpoint(
        &self,
        from: &Member,
        transaction: TransactionId,
        old_size: u64,
        proof: Vec<Hash32>,
        note: String,
    ) -> Result<String, WitnessError> {
        let draft = self.draft(transaction, Action::WitnessCosign, from.oin);
        let presented = match self.open(from, &note) {
            Ok(presented) => presented,
            Err(e) => {
                let refused = draft.refused(format!("invalid_argument: {e}"));
                self.ledger.commit(move |txn| txn.audit(refused)).await?;
                return Err(e);
            }
        };
        let draft = draft.object(format!("checkpoint:{}", presented.size));
        let me = self.federation.me();
        let log = from.oin;
        let members: Vec<Oin> = self
            .federation
            .directory()
            .members()
            .iter()
            .map(|m| m.oin)
            .filter(|oin| *oin != me)
            .collect();
        let fork_draft = self.draft(transaction, Action::WitnessFork, from.oin);
        let decided = self
            .ledger
            .commit(
                move |txn| -> Result<Result<u64, WitnessError>, WitnessError> {
                    let store = txn.store();
                    if let Some(fork) = store
                        .forks()?
                        .into_iter()
                        .find(|f| f.log == log && f.witness == me)
                    {
                        let refused = WitnessError::Fork {
                            kind: fork.kind,
                            log,
                            id: fork.id,
                        };
                        txn.audit(draft.refused(format!("failed_precondition: {refused}")));
                        return Ok(Err(refused));
                    }
                    // Its signature was checked when it was kept; parsed without the key, so
                    // that a log whose audit key the directory rotates is still held to it.
                    let known = match store.witnessed(&log)? {
                        Some(seen) => Some(checkpoint::parse_unverified(&seen).map_err(|e| {
                            StoreError::Corrupt {
                                key: format!("witnessed checkpoint of {log}"),
                                problem: e.to_string(),
                            }
                        })?),
                        None => None,
                    };
                    let refusal = match judge(known.as_ref(), &presented, old_size, &proof) {
                        // A cosignature is kept as state, not recorded as an event: a log
                        // whose every round of witnessing added events would never be quiet,
                        // and every round would be a new checkpoint to witness.
                        Judgement::Cosign(seen) => {
                            if seen == Seen::Keep {
                                txn.change(Change::PutWitnessed {
                                    log,
                                    note: presented.note.clone(),
                                });
                            }
                            txn.change(Change::PutHeard { log, at: txn.now() });
                            return Ok(Ok(presented.size));
                        }
                        Judgement::OldSize(known) => WitnessError::OldSize { known },
                        Judgement::OldSizeBeyond => WitnessError::OldSizeBeyond {
                            size: presented.size,
                        },
                        Judgement::Fork(kind) => {
                            let seen = known.map(|k| k.note).unwrap_or_default();
                            let fork = ForkRecord {
                                id: MessageId::new(),
                                log,
                                witness: me,
                                kind,
                                detected_at: txn.now(),
                                seen,
                                presented: presented.note.clone(),
                            };
                            let refused = WitnessError::Fork {
                                kind,
                                log,
                                id: fork.id,
                            };
                            for to in &members {
                                txn.change(Change::PutOutbox(OutboxMessage {
                                    id: MessageId::new(),
                                    transaction,
                                    created: txn.now(),
                                    body: OutboxBody::ForkAlert {
                                        to: *to,
                                        fork: fork.clone(),
                                    },
                                    subjects: Vec::new(),
                                }));
                            }
                            txn.change(Change::PutFork(fork.clone()));
                            txn.audit(
                                fork_draft
                                    .object(format!(
                                        "fork:{} checkpoint:{}",
                                        fork.id, presented.size
                                    ))
                                    .refused(format!("failed_precondition: {refused}")),
                            );
                            return Ok(Err(refused));
                        }
                    };
                    let code = match refusal {
                        WitnessError::OldSize { .. } => "failed_precondition",
                        _ => "invalid_argument",
                    };
                    txn.audit(draft.refused(format!("{code}: {refusal}")));
                    Ok(Err(refusal))
                },
            )
            .await??;
        match decided {
            Ok(size) => {
                let line = cosignature::cosign(
                    &self.signer,
                    &note,
                    u64::try_from(self.clock.now().0 / 1000).unwrap_or(0),
                )
                .map_err(|e| WitnessError::BadCheckpoint(format!("checkpoint: {e}")))?;
                tracing::debug!(log = %log, size, "cosigned");
                Ok(line)
            }
            Err(refusal) => {
                if let WitnessError::Fork { kind, log, id } = &refusal {
                    self.outbox.notify_one();
                    tracing::error!(%log, %kind, fork = %id, "fork of a member's audit log detected");
                }
                Err(refusal)
            }
        }
    }

    /// Opens a checkpoint of `from`'s log: signed by the key the directory pins for it, with
    /// the origin that key names.
    fn open(&self, from: &Member, note: &str) -> Result<SignedCheckpoint, WitnessError> {
        let key = from
            .audit_verifier()
            .map_err(|e| WitnessError::BadCheckpoint(format!("checkpoint: {e}")))?;
        let opened = checkpoint::open(&key, note).map_err(|e| {
            WitnessError::BadCheckpoint(format!(
                "checkpoint: not a checkpoint signed by the audit key the directory pins for {} ({e})",
                from.oin
            ))
        })?;
        if opened.origin != key.name() {
            return Err(WitnessError::BadCheckpoint(format!(
                "checkpoint: origin {:?} is not {:?}, the name of the pinned audit key",
                opened.origin,
                key.name()
            )));
        }
        Ok(opened)
    }

    /// Takes a fork alert from the witness that found the fork: checks that both checkpoints
    /// are signed by the log's pinned key and show what the alert says, and keeps it.
    /// Returns whether the message was seen before.
    pub async fn receive_alert(
        &self,
        from: &Member,
        message: MessageId,
        transaction: TransactionId,
        fork: ForkRecord,
    ) -> Result<bool, WitnessError> {
        let draft = self
            .draft(transaction, Action::ForkAlertReceive, from.oin)
            .object(format!("fork:{} log:{}", fork.id, fork.log));
        let checked = self.check_alert(from, &fork);
        if let Err(e) = checked {
            let code = match e {
                WitnessError::NotTheWitness => "permission_denied",
                _ => "invalid_argument",
            };
            let refused = draft.refused(format!("{code}: {e}"));
            self.ledger.commit(move |txn| txn.audit(refused)).await?;
            return Err(e);
        }
        let kind = fork.kind;
        let log = fork.log;
        let duplicate = self
            .ledger
            .commit(move |txn| -> Result<bool, StoreError> {
                if txn.store().message_seen(&message)? {
                    return Ok(true);
                }
                txn.change(Change::MarkMessage(message));
                txn.change(Change::PutFork(fork));
                txn.audit(draft.reason(format!("fork: {kind}")));
                Ok(false)
            })
            .await??;
        if !duplicate {
            tracing::error!(%log, %kind, witness = %from.oin, "a witness reports a fork of a member's audit log");
        }
        Ok(duplicate)
    }

    fn check_alert(&self, from: &Member, fork: &ForkRecord) -> Result<(), WitnessError> {
        if fork.witness != from.oin {
            return Err(WitnessError::NotTheWitness);
        }
        let log = self
            .federation
            .member(&fork.log)
            .map_err(|e| WitnessError::BadAlert {
                field: "fork_alert.log_oin",
                problem: e.to_string(),
            })?;
        let key = log.audit_verifier().map_err(|e| WitnessError::BadAlert {
            field: "fork_alert.log_oin",
            problem: e.to_string(),
        })?;
        let open = |field: &'static str, note: &str| {
            checkpoint::open(&key, note).map_err(|e| WitnessError::BadAlert {
                field,
                problem: format!("not signed by the audit key pinned for {} ({e})", fork.log),
            })
        };
        let seen = open("fork_alert.seen_checkpoint", &fork.seen)?;
        let presented = open("fork_alert.presented_checkpoint", &fork.presented)?;
        let shown = match fork.kind {
            ForkKind::Equivocation => seen.size == presented.size && seen.root != presented.root,
            ForkKind::Rollback => presented.size < seen.size,
            ForkKind::Inconsistent => presented.size > seen.size,
        };
        if !shown {
            return Err(WitnessError::BadAlert {
                field: "fork_alert.kind",
                problem: format!("the two checkpoints do not show a {}", fork.kind),
            });
        }
        Ok(())
    }

    // The log side.

    /// Pushes on a schedule, the first round one period after the start.
    pub async fn run(self: Arc<Self>, every: Duration, mut stopped: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            self.round().await;
        }
    }

    /// Signs a checkpoint of what is new, then pushes the latest durable checkpoint to every
    /// other member of the directory at once; returns what each witness did.
    pub async fn round(self: &Arc<Self>) -> Vec<(Oin, Pushed)> {
        if let Err(e) = self.ledger.checkpoint().await {
            tracing::warn!(error = %e, "cannot sign a checkpoint for the witnesses");
            return Vec::new();
        }
        let Some(head) = self.ledger.durable().checkpoint else {
            return Vec::new();
        };
        let me = self.federation.me();
        let witnesses: Vec<Member> = self
            .federation
            .directory()
            .members()
            .iter()
            .filter(|m| m.oin != me)
            .cloned()
            .collect();
        let mut pushes = tokio::task::JoinSet::new();
        for witness in witnesses {
            let this = self.clone();
            let head = head.clone();
            pushes.spawn(async move {
                let oin = witness.oin;
                (oin, this.push(witness, head).await)
            });
        }
        let mut pushed = Vec::new();
        while let Some(done) = pushes.join_next().await {
            if let Ok(one) = done {
                pushed.push(one);
            }
        }
        pushed.sort_by_key(|(oin, _)| *oin);
        pushed
    }

    async fn push(&self, witness: Member, head: SignedCheckpoint) -> Pushed {
        let key = match witness.audit_verifier() {
            Ok(key) => WitnessKey::of(&key),
            Err(e) => return Pushed::Refused(e.to_string()),
        };
        let (mut old, at) = self.known(&witness.oin);
        let now = self.clock.now();
        if old == head.size && at.is_some_and(|at| now.0 - at.0 < HEARTBEAT_MILLIS) {
            return Pushed::Unchanged;
        }
        let transaction = TransactionId::new();
        let draft = self
            .draft(transaction, Action::CheckpointCosigned, witness.oin)
            .object(format!("checkpoint:{}", head.size));
        for _attempt in 0..2 {
            let proof = match old {
                0 => Vec::new(),
                // The witness saw a larger tree than this log holds: there is nothing to prove
                // from; the witness is shown the checkpoint as it is.
                o if o >= head.size => Vec::new(),
                o => match merkle::consistency_proof(
                    o,
                    head.size,
                    &store_hashes(self.ledger.store().as_ref()),
                ) {
                    Ok(proof) => proof,
                    Err(e) => return Pushed::Refused(format!("cannot prove from {o}: {e}")),
                },
            };
            let answer = tokio::time::timeout(
                self.federation.timeout(),
                self.peers
                    .add_checkpoint(&witness.oin, &transaction, old, &proof, &head.note),
            )
            .await;
            let refusal = match answer {
                Err(_) => {
                    return Pushed::Unavailable(format!("{} did not answer in time", witness.oin));
                }
                Ok(Err(PeerError::Unavailable { reason, .. })) => {
                    return Pushed::Unavailable(reason);
                }
                Ok(Err(PeerError::Refused { code, message, .. })) => {
                    if let Some(known) = known_size(&code, &message)
                        && known != old
                    {
                        old = known;
                        continue;
                    }
                    format!("{code}: {message}")
                }
                Ok(Ok(reply)) => {
                    // Only the witness's own line is kept and served, never more of a reply.
                    let checked = key.reply_line(&reply).and_then(|line| {
                        let cosigned = cosignature::with_cosignatures(&head.note, [line.as_str()]);
                        key.verify(&cosigned).map(|_| line)
                    });
                    match checked {
                        Ok(line) => {
                            let size = head.size;
                            let witness_oin = witness.oin;
                            let stored = self
                                .ledger
                                .commit(move |txn| {
                                    // Kept, not recorded: see the witness side.
                                    txn.change(Change::PutCosignature {
                                        size,
                                        witness: witness_oin,
                                        line,
                                    });
                                })
                                .await;
                            return match stored {
                                Ok(()) => {
                                    self.cosigned
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .insert(witness_oin, (size, now));
                                    Pushed::Cosigned(size)
                                }
                                Err(e) => {
                                    Pushed::Refused(format!("cannot keep the cosignature: {e}"))
                                }
                            };
                        }
                        Err(e @ CosignatureError::NotOneLine(..)) => format!("cosignature: {e}"),
                        Err(e) => format!("cosignature: {e} under the witness's pinned audit key"),
                    }
                }
            };
            let refused = draft.refused(refusal.clone());
            if let Err(e) = self.ledger.commit(move |txn| txn.audit(refused)).await {
                tracing::warn!(error = %e, "cannot record a witness's refusal");
            }
            tracing::warn!(witness = %witness.oin, reason = %refusal, "checkpoint not cosigned");
            return Pushed::Refused(refusal);
        }
        Pushed::Refused(format!("{} kept naming another size", witness.oin))
    }

    /// The size `witness` last cosigned and when, as far as this run knows (0, never).
    fn known(&self, witness: &Oin) -> (u64, Option<UnixMillis>) {
        match self
            .cosigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(witness)
        {
            Some(&(size, at)) => (size, Some(at)),
            None => (0, None),
        }
    }
}

/// The size a witness says it last cosigned, from its FAILED_PRECONDITION refusal.
fn known_size(code: &str, message: &str) -> Option<u64> {
    if code != "failed_precondition" || !message.starts_with("old_size:") {
        return None;
    }
    let (_, rest) = message.split_once("tree size ")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::note::generate_pkcs8;

    fn at(signer: &NoteSigner, size: u64, root: u8) -> SignedCheckpoint {
        checkpoint::sign(signer, signer.name(), size, &[root; 32]).unwrap()
    }

    #[test]
    fn the_witness_rule() {
        let log = NoteSigner::from_pkcs8("kring.test/log", &generate_pkcs8()).unwrap();
        let five = at(&log, 5, 1);
        assert_eq!(judge(None, &five, 0, &[]), Judgement::Cosign(Seen::Keep));
        assert_eq!(judge(None, &five, 3, &[]), Judgement::OldSize(0));
        assert_eq!(
            judge(Some(&five), &five, 0, &[]),
            Judgement::Cosign(Seen::Same)
        );
        assert_eq!(
            judge(Some(&five), &at(&log, 5, 2), 5, &[]),
            Judgement::Fork(ForkKind::Equivocation)
        );
        assert_eq!(
            judge(Some(&five), &at(&log, 4, 1), 5, &[]),
            Judgement::Fork(ForkKind::Rollback)
        );
        assert_eq!(
            judge(Some(&five), &at(&log, 9, 1), 0, &[]),
            Judgement::OldSize(5)
        );
        assert_eq!(
            judge(Some(&five), &at(&log, 9, 1), 5, &[[0; 32]]),
            Judgement::Fork(ForkKind::Inconsistent)
        );
    }

    #[test]
    fn the_known_size_is_read_from_the_refusal() {
        let message = WitnessError::OldSize { known: 42 }.to_string();
        assert_eq!(known_size("failed_precondition", &message), Some(42));
        assert_eq!(known_size("invalid_argument", &message), None);
        assert_eq!(known_size("failed_precondition", "fork: rollback"), None);
    }
}
