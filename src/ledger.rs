//! The ledger: the one writer of a node's store. Every state change, outbox message and audit
//! event goes through [`Ledger::commit`], which runs the caller's work on the writer thread,
//! applies its changes and its audit events in one atomic batch, and answers only after a group
//! commit has made that batch durable.
//!
//! Why one writer: the audit log is a sequence, and giving each event its place, its time and
//! its Merkle hashes is inherently serial. Doing it on one thread makes every read-modify-write
//! serialisable without locks or retries, and lets many requests share one `fsync`.
//!
//! Pipeline: the writer applies batches as they come (visible to readers at once) and hands
//! their completions to the flusher; the flusher syncs the store and then answers everything
//! applied before the sync began. While one sync runs, the writer keeps applying, so batches
//! grow with load instead of queueing behind each other.
//!
//! Checkpoints are signed by the writer every N events or T seconds, whichever comes first,
//! but served only once the flusher has made them durable: a checkpoint must never cover an
//! event that a crash could still take away.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::audit::merkle::{self, Frontier, Hash32, StoredHashes};
use crate::audit::{NoteSigner, SignedCheckpoint, checkpoint, event};
use crate::clock::SharedClock;
use crate::domain::{EventDraft, UnixMillis};
use crate::store::{Change, Store, StoreError};

/// The most subjects one event names; a longer list continues in the next event.
pub const MAX_SUBJECTS_PER_EVENT: usize = 256;
/// The most jobs the writer applies before handing a group to the flusher.
const MAX_GROUP: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("the store failed and the node no longer accepts changes: {0}")]
    Failed(String),
    #[error("the node is shutting down")]
    Closed,
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        LedgerError::Failed(e.to_string())
    }
}

#[derive(Debug)]
pub struct LedgerOptions {
    /// The checkpoint origin, e.g. `kring.example/audit/00000001003214345000`.
    pub origin: String,
    pub signer: NoteSigner,
    pub checkpoint_every_events: u64,
    pub checkpoint_every: Duration,
}

/// The work of one commit, run on the writer thread.
pub struct Txn<'a> {
    store: &'a dyn Store,
    now: UnixMillis,
    changes: Vec<Change>,
    events: Vec<EventDraft>,
}

impl Txn<'_> {
    /// The commit's time: the clock, but never before the last event in the log.
    pub fn now(&self) -> UnixMillis {
        self.now
    }

    /// Reads see every commit applied before this one, durable or not yet.
    pub fn store(&self) -> &dyn Store {
        self.store
    }

    pub fn change(&mut self, change: Change) {
        self.changes.push(change);
    }

    pub fn audit(&mut self, event: EventDraft) {
        self.events.push(event);
    }
}

type Completion = Box<dyn FnOnce(Result<(), LedgerError>) + Send>;
type Work = Box<dyn FnOnce(&mut Txn<'_>) -> Completion + Send>;

enum Job {
    Work(Work),
    Checkpoint(Box<dyn FnOnce(Result<(), LedgerError>) + Send>),
    Shutdown,
}

/// What the flusher has made durable.
#[derive(Debug, Clone, Default)]
pub struct DurableHead {
    pub size: u64,
    pub checkpoint: Option<SignedCheckpoint>,
}

struct Group {
    completions: Vec<Completion>,
    size: u64,
    checkpoint: Option<SignedCheckpoint>,
}

#[derive(Default)]
struct FlushQueue {
    groups: Vec<Group>,
    closed: bool,
}

struct Shared {
    store: Arc<dyn Store>,
    durable: RwLock<DurableHead>,
    queue: Mutex<FlushQueue>,
    wake: Condvar,
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, why: &str) -> LedgerError {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_none() {
            tracing::error!(
                error = why,
                "store failure; the node refuses further changes"
            );
            *failed = Some(why.to_owned());
        }
        LedgerError::Failed(failed.clone().unwrap_or_default())
    }

    fn failure(&self) -> Option<LedgerError> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.clone().map(LedgerError::Failed)
    }
}

pub struct Ledger {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    verifier_key: String,
    origin: String,
    clock: SharedClock,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("origin", &self.origin)
            .finish()
    }
}

struct StoreHashes<'a>(&'a dyn Store);

impl StoredHashes for StoreHashes<'_> {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash32>, String> {
        self.0.audit_hashes(indexes).map_err(|e| e.to_string())
    }
}

/// Read access to the stored hashes, for roots and proofs.
pub fn store_hashes(store: &dyn Store) -> impl StoredHashes + '_ {
    StoreHashes(store)
}

impl Ledger {
    /// Opens the ledger over a store: reads the head of its log, checks that the latest
    /// checkpoint still matches the stored tree, and starts the writer and the flusher.
    pub fn open(
        store: Arc<dyn Store>,
        clock: SharedClock,
        options: LedgerOptions,
    ) -> Result<Ledger, LedgerError> {
        let size = store.audit_size()?;
        let last_time = match size {
            0 => UnixMillis(i64::MIN),
            _ => {
                let bytes = store.audit_event(size - 1)?.unwrap_or_default();
                let (_, time) = event::index_and_time(&bytes).ok_or_else(|| {
                    LedgerError::Failed(format!("audit event {} is unreadable", size - 1))
                })?;
                UnixMillis(time)
            }
        };
        let latest = match store.latest_checkpoint()? {
            Some((_, note)) => {
                let opened = checkpoint::open(&options.signer.verifier(), &note)
                    .or_else(|_| checkpoint::parse_unverified(&note))
                    .map_err(|e| LedgerError::Failed(format!("latest checkpoint: {e}")))?;
                let root = merkle::root(opened.size, &store_hashes(store.as_ref()))
                    .map_err(|e| LedgerError::Failed(e.to_string()))?;
                if root != opened.root || opened.size > size {
                    return Err(LedgerError::Failed(format!(
                        "the stored audit log does not match its own checkpoint at size {}",
                        opened.size
                    )));
                }
                Some(opened)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            store: store.clone(),
            durable: RwLock::new(DurableHead {
                size,
                checkpoint: latest.clone(),
            }),
            queue: Mutex::new(FlushQueue::default()),
            wake: Condvar::new(),
            failed: Mutex::new(None),
        });
        let frontier = Frontier::resume(size, &store_hashes(store.as_ref()))
            .map_err(|e| LedgerError::Failed(format!("audit log frontier: {e}")))?;
        let (sender, receiver) = mpsc::channel();
        let verifier_key = options.signer.verifier_key();
        let origin = options.origin.clone();
        let writer = Writer {
            store,
            clock: clock.clone(),
            shared: shared.clone(),
            size,
            frontier,
            last_time,
            last_checkpoint_size: latest.as_ref().map_or(0, |c| c.size),
            last_checkpoint_at: Instant::now(),
            options,
            group: Vec::new(),
            group_checkpoint: None,
        };
        let writer = std::thread::Builder::new()
            .name("kring-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| LedgerError::Failed(e.to_string()))?;
        let flusher_shared = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("kring-flusher".into())
            .spawn(move || flush_loop(&flusher_shared))
            .map_err(|e| LedgerError::Failed(e.to_string()))?;
        Ok(Ledger {
            jobs: Mutex::new(Some(sender)),
            shared,
            threads: Mutex::new(vec![writer, flusher]),
            verifier_key,
            origin,
            clock,
        })
    }

    /// Runs `work` on the writer and returns its result once everything it wrote is durable.
    pub async fn commit<R, F>(&self, work: F) -> Result<R, LedgerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> R + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Work = Box::new(move |txn| {
            let result = work(txn);
            Box::new(move |outcome: Result<(), LedgerError>| {
                let _ = reply.send(outcome.map(|()| result));
            })
        });
        self.send(Job::Work(job))?;
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    /// Signs a checkpoint now if events were added since the last one, and waits until it
    /// is durable.
    pub async fn checkpoint(&self) -> Result<(), LedgerError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Job::Checkpoint(Box::new(move |outcome| {
            let _ = reply.send(outcome);
        })))?;
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    fn send(&self, job: Job) -> Result<(), LedgerError> {
        if let Some(failure) = self.shared.failure() {
            return Err(failure);
        }
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.as_ref()
            .ok_or(LedgerError::Closed)?
            .send(job)
            .map_err(|_| LedgerError::Closed)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The durable size of the log and its latest durable checkpoint.
    pub fn durable(&self) -> DurableHead {
        self.shared
            .durable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// The node's clock, now (reads that judge time, outside a commit).
    pub fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Checkpoints what remains, syncs, and stops the writer and the flusher.
    pub fn shutdown(&self) {
        let sender = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(Job::Shutdown);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Writer {
    store: Arc<dyn Store>,
    clock: SharedClock,
    shared: Arc<Shared>,
    size: u64,
    /// The roots of the log's complete subtrees: appends and checkpoints read nothing.
    frontier: Frontier,
    last_time: UnixMillis,
    last_checkpoint_size: u64,
    last_checkpoint_at: Instant,
    options: LedgerOptions,
    group: Vec<Completion>,
    group_checkpoint: Option<SignedCheckpoint>,
}

impl Writer {
    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        loop {
            let first = match jobs.recv_timeout(self.until_checkpoint_due()) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.checkpoint_if(Due::Interval);
                    self.hand_over();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => Job::Shutdown,
            };
            let mut next = Some(first);
            let mut handled = 0;
            let started = Instant::now();
            while let Some(job) = next.take() {
                match job {
                    Job::Work(work) => self.work(work),
                    Job::Checkpoint(done) => {
                        self.checkpoint_if(Due::Now);
                        self.group.push(done);
                    }
                    Job::Shutdown => {
                        self.checkpoint_if(Due::Now);
                        self.hand_over();
                        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                        queue.closed = true;
                        self.shared.wake.notify_all();
                        return;
                    }
                }
                handled += 1;
                if handled < MAX_GROUP {
                    next = jobs.try_recv().ok();
                }
            }
            self.checkpoint_if(Due::Interval);
            tracing::trace!(
                jobs = handled,
                apply_us = started.elapsed().as_micros() as u64,
                "writer batch"
            );
            self.hand_over();
        }
    }

    fn until_checkpoint_due(&self) -> Duration {
        if self.size == self.last_checkpoint_size {
            return Duration::from_secs(3600);
        }
        self.options
            .checkpoint_every
            .saturating_sub(self.last_checkpoint_at.elapsed())
            .max(Duration::from_millis(1))
    }

    fn work(&mut self, work: Work) {
        if let Some(failure) = self.shared.failure() {
            let mut txn = self.txn();
            work(&mut txn)(Err(failure));
            return;
        }
        let mut txn = self.txn();
        let completion = work(&mut txn);
        let Txn {
            mut changes,
            events,
            ..
        } = txn;
        if changes.is_empty() && events.is_empty() {
            completion(Ok(()));
            return;
        }
        let now = self.now();
        let saved = (self.size, self.frontier.clone());
        for draft in events {
            let registers = draft.registers;
            for draft in split_subjects(draft) {
                let placed = draft.at(self.size, now);
                let canonical = event::encode(&placed);
                let mut hashes = Vec::with_capacity(2);
                self.frontier
                    .push(merkle::leaf_hash(&canonical), |index, hash| {
                        hashes.push((index, *hash));
                    });
                changes.push(Change::AppendAudit {
                    index: self.size,
                    canonical,
                    subjects: placed.subjects,
                    hashes,
                    registers,
                });
                self.size += 1;
            }
        }
        if let Err(e) = self.store.apply(&changes) {
            (self.size, self.frontier) = saved;
            completion(Err(self.shared.fail(&e.to_string())));
            return;
        }
        self.last_time = now;
        self.group.push(completion);
        if self.size - self.last_checkpoint_size >= self.options.checkpoint_every_events {
            self.checkpoint_if(Due::Now);
        }
    }

    fn now(&self) -> UnixMillis {
        self.clock.now().max(self.last_time)
    }

    fn txn(&self) -> Txn<'_> {
        Txn {
            store: self.store.as_ref(),
            now: self.now(),
            changes: Vec::new(),
            events: Vec::new(),
        }
    }

    fn checkpoint_if(&mut self, due: Due) {
        if self.size == self.last_checkpoint_size || self.shared.failure().is_some() {
            return;
        }
        if due == Due::Interval && self.last_checkpoint_at.elapsed() < self.options.checkpoint_every
        {
            return;
        }
        let root = self.frontier.root();
        let result = checkpoint::sign(&self.options.signer, &self.options.origin, self.size, &root)
            .map_err(|e| e.to_string())
            .and_then(|signed| {
                self.store
                    .apply(&[Change::PutCheckpoint {
                        size: signed.size,
                        note: signed.note.clone(),
                    }])
                    .map(|()| signed)
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(signed) => {
                self.last_checkpoint_size = signed.size;
                self.last_checkpoint_at = Instant::now();
                self.group_checkpoint = Some(signed);
            }
            Err(e) => {
                self.shared.fail(&format!("checkpoint: {e}"));
            }
        }
    }

    fn hand_over(&mut self) {
        if self.group.is_empty() && self.group_checkpoint.is_none() {
            return;
        }
        let group = Group {
            completions: std::mem::take(&mut self.group),
            size: self.size,
            checkpoint: self.group_checkpoint.take(),
        };
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.groups.push(group);
        self.shared.wake.notify_one();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Now,
    Interval,
}

fn split_subjects(draft: EventDraft) -> Vec<EventDraft> {
    if draft.subjects.len() <= MAX_SUBJECTS_PER_EVENT {
        return vec![draft];
    }
    draft
        .subjects
        .chunks(MAX_SUBJECTS_PER_EVENT)
        .map(|chunk| EventDraft {
            subjects: chunk.to_vec(),
            ..draft.clone()
        })
        .collect()
}

fn flush_loop(shared: &Shared) {
    loop {
        let groups = {
            let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            while queue.groups.is_empty() && !queue.closed {
                queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.groups.is_empty() && queue.closed {
                return;
            }
            std::mem::take(&mut queue.groups)
        };
        let started = Instant::now();
        let outcome = match shared.failure() {
            Some(failure) => Err(failure),
            None => shared
                .store
                .sync()
                .map_err(|e| shared.fail(&format!("sync: {e}"))),
        };
        tracing::debug!(
            commits = groups.iter().map(|g| g.completions.len()).sum::<usize>(),
            sync_us = started.elapsed().as_micros() as u64,
            "group commit"
        );
        if outcome.is_ok() {
            let mut durable = shared.durable.write().unwrap_or_else(|e| e.into_inner());
            for group in &groups {
                durable.size = durable.size.max(group.size);
                if let Some(checkpoint) = &group.checkpoint {
                    durable.checkpoint = Some(checkpoint.clone());
                }
            }
        }
        for group in groups {
            for completion in group.completions {
                completion(outcome.clone());
            }
        }
    }
}
