//! The node's durable state behind a small, domain-shaped trait: signals and their indexes, the
//! outbox, and the audit log's events, stored hashes and checkpoints.
//!
//! A [`Store`] applies a list of [`Change`]s atomically and makes everything applied so far
//! durable on [`Store::sync`]. It does not decide anything: the ledger decides what to write
//! and when to sync.
//!
//! Encryption at rest ([`crypt`]): with a keyring, the value of every content record is sealed
//! under the active data key and opened under any key of the ring; keys (pseudonyms, ids,
//! times) stay in the clear, and so do an event's stored Merkle hashes, so proofs need no key.
//!
//! Architecture invariant: `store` knows nothing of tonic, prost, the federation or the Merkle
//! math; hashes are opaque 32-byte values here.

pub mod compact;
pub mod crypt;
mod migrations;
mod sled_store;

pub use crypt::{DataKeyId, Keyring};
pub use sled_store::{SledStore, StoreOptions};

use std::path::PathBuf;

use crate::domain::{
    ArchiveEntry, BreakGlassItem, ForkRecord, IndexEpoch, MessageId, Notice, Oin, OutboxMessage,
    Pointer, Pseudonym, ReceivedMelding, Regie, SealedPerson, Signal, SignalId, UnixMillis,
    Waakvlam,
};

pub type Hash32 = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("store engine: {0}")]
    Engine(#[from] sled::Error),
    #[error("corrupt record under {key}: {problem}")]
    Corrupt { key: String, problem: String },
    #[error("store schema version {found} is newer than this kring understands ({supported})")]
    TooNew { found: u32, supported: u32 },
    #[error("a value of {size} bytes under {key} exceeds the store's limit of {limit}")]
    ValueTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },
    #[error(
        "the store holds values sealed under data key {id}, which is not in the keyring: keep data key {id} until re-encryption reports that no value needs it"
    )]
    MissingDataKey { id: DataKeyId },
    #[error(
        "data key {id} is not the key this store sealed its values with under id {id} (its key check fails)"
    )]
    WrongDataKey { id: DataKeyId },
    #[error("data key number {given} as given is none of the data keys this store was sealed with")]
    UnrecognisedDataKey { given: usize },
    #[error("{0}")]
    Keyring(#[from] crypt::KeyringError),
    #[error(
        "{}: a compaction did not finish ({} exists): run `kring store compact --store {}` to finish it before the node starts",
        store.display(), leftover.display(), store.display()
    )]
    CompactionPending { store: PathBuf, leftover: PathBuf },
}

/// One state change. A list of them is applied atomically.
#[derive(Debug, Clone)]
pub enum Change {
    /// Inserts or replaces a signal and its expiry index. The expiry of a signal never
    /// changes after registration.
    PutSignal(Signal),
    /// Removes a signal and its expiry index.
    DeleteSignal(Signal),
    PutOutbox(OutboxMessage),
    DeleteOutbox(MessageId),
    /// Appends one audit event with the stored hashes its append produced, and indexes it
    /// under each subject; when it registers a signal, the index entries name the signal.
    AppendAudit {
        index: u64,
        canonical: Vec<u8>,
        subjects: Vec<Pseudonym>,
        hashes: Vec<(u64, Hash32)>,
        registers: Option<SignalId>,
    },
    /// A signed checkpoint of the audit log at `size` events.
    PutCheckpoint {
        size: u64,
        note: String,
    },
    /// A delivered message id, so that a second delivery changes nothing.
    MarkMessage(MessageId),
    /// The accepted signed directory.
    PutDirectory(String),
    // The index.
    PutPointer(Pointer),
    DeletePointer(Pointer),
    /// The parties last notified about a pointer.
    PutParties {
        organisation: Oin,
        signal: SignalId,
        parties: Vec<Oin>,
    },
    DeleteParties {
        organisation: Oin,
        signal: SignalId,
    },
    PutRegie {
        person: Pseudonym,
        regie: Regie,
    },
    DeleteRegie {
        person: Pseudonym,
    },
    PutWaakvlam(Waakvlam),
    /// The index's person under `tag` (its federation pseudonym keyed under the epoch's
    /// index key) in `epoch`.
    PutPersonTag {
        epoch: u32,
        tag: Hash32,
        person: Pseudonym,
    },
    DeletePersonTag {
        epoch: u32,
        tag: Hash32,
    },
    /// The index's person's federation pseudonym, sealed under an epoch's index key.
    PutSealedPerson {
        person: Pseudonym,
        sealed: SealedPerson,
    },
    PutIndexEpoch(IndexEpoch),
    /// A pointer kept in the historical archive, indexed by its subject and its expiry.
    PutArchive(ArchiveEntry),
    DeleteArchive(ArchiveEntry),
    // An organisation.
    /// A notice in the organisation's feed.
    PutNotice(Notice),
    /// The current match, or the historical match, of one of the organisation's signals
    /// (each signal has at most one of each kind).
    PutMatch(Notice),
    /// Removes both kinds of match of a signal.
    DeleteMatch(SignalId),
    /// Every notice in the feed about this organisation's signal, when the signal goes.
    DeleteNotices(SignalId),
    PutMelding(ReceivedMelding),
    PutBreakGlass(BreakGlassItem),
    // Witnessing.
    /// The latest checkpoint (signed note) of another member's log this node cosigned as
    /// its witness.
    PutWitnessed {
        log: Oin,
        note: String,
    },
    /// When a member's log last pushed a checkpoint this node cosigned as its witness.
    PutHeard {
        log: Oin,
        at: UnixMillis,
    },
    /// A witness's cosignature line on this node's checkpoint of `size`.
    PutCosignature {
        size: u64,
        witness: Oin,
        line: String,
    },
    /// A fork of a member's log, detected here or reported by its witness.
    PutFork(ForkRecord),
    // Encryption at rest.
    /// Seals these records' values again under the active data key (those not already under
    /// it); a record since removed is skipped.
    Reseal(Vec<RecordKey>),
    /// Records that no value remains in the clear or under any key but the active one, so
    /// that the other keys may leave the keyring. Only the re-encryption that has just
    /// resealed every record may say so.
    RetireDataKeys,
}

/// A record's key in the store, opaque outside it: what re-encryption names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordKey(pub(crate) Vec<u8>);

/// Where a store stands with encryption at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyUse {
    /// The key new values are sealed under; `None` when the store writes in the clear.
    pub active: Option<DataKeyId>,
    /// Values written in the clear may remain.
    pub plaintext: bool,
    /// The keys values may still be sealed under, the active one included.
    pub keys: Vec<DataKeyId>,
}

impl DataKeyUse {
    /// Whether some value may need re-encryption: one in the clear, or under a key that is
    /// not the active one.
    pub fn needs_reseal(&self) -> bool {
        match self.active {
            Some(active) => self.plaintext || self.keys.iter().any(|id| *id != active),
            None => false,
        }
    }
}

/// One page of a scan for values not sealed under the active data key.
#[derive(Debug, Clone, Default)]
pub struct ResealPage {
    pub records: Vec<RecordKey>,
    /// Where the next page starts (after this key); `None` when the scan reached the end.
    pub next: Option<RecordKey>,
}

/// An audit event as stored: its canonical bytes and the stored hashes its append produced
/// (its leaf hash first, then each subtree it completed), with their stored-hash indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub index: u64,
    pub hashes: Vec<(u64, Hash32)>,
    pub canonical: Vec<u8>,
}

pub type StoreIter<'a, T> = Box<dyn Iterator<Item = Result<T, StoreError>> + Send + 'a>;

pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Applies every change or none; visible to readers at once, durable after `sync`.
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError>;
    /// Makes everything applied so far survive a process crash and a power loss.
    fn sync(&self) -> Result<(), StoreError>;

    fn signal(&self, id: &SignalId) -> Result<Option<Signal>, StoreError>;
    /// Signals in id (registration) order, starting after `after`.
    fn signals_after(&self, after: Option<SignalId>) -> StoreIter<'_, Signal>;
    /// Ids of the signals registered naming this person, as subject or related, in order of
    /// registration. A signal since withdrawn or expired is still listed; `signal` says
    /// whether it exists.
    fn signals_about(&self, person: &Pseudonym) -> Result<Vec<SignalId>, StoreError>;
    /// Up to `limit` signals whose expiry is at or before `now`, soonest first.
    fn expired_signals(&self, now: UnixMillis, limit: usize) -> Result<Vec<Signal>, StoreError>;
    fn outbox(&self, limit: usize) -> Result<Vec<OutboxMessage>, StoreError>;

    /// The number of events in the audit log.
    fn audit_size(&self) -> Result<u64, StoreError>;
    fn audit_event(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Events with index in `from..until`, in order.
    fn audit_events(&self, from: u64, until: u64) -> StoreIter<'_, (u64, Vec<u8>)>;
    /// Events with index in `from..until`, in order, with the stored hashes each produced.
    fn audit_entries(&self, from: u64, until: u64) -> StoreIter<'_, AuditEntry>;
    /// Stored hashes by stored-hash index (see tlog's layout); an absent one is an error.
    fn audit_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash32>, StoreError>;
    /// Indexes of events naming this subject, from `from` on, in order.
    fn audit_events_about(&self, subject: &Pseudonym, from: u64) -> StoreIter<'_, u64>;
    /// Checkpoints (tree size, signed note) with size greater than `after`, in order.
    fn checkpoints(&self, after: u64) -> StoreIter<'_, (u64, String)>;
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;

    fn message_seen(&self, id: &MessageId) -> Result<bool, StoreError>;
    fn directory_note(&self) -> Result<Option<String>, StoreError>;

    // The index.
    fn pointer(&self, organisation: &Oin, signal: &SignalId)
    -> Result<Option<Pointer>, StoreError>;
    /// Pointers naming this person, as subject or related.
    fn pointers_about(&self, person: &Pseudonym) -> Result<Vec<(Oin, SignalId)>, StoreError>;
    /// Up to `limit` pointers whose expiry is at or before `now`.
    fn expired_pointers(&self, now: UnixMillis, limit: usize) -> Result<Vec<Pointer>, StoreError>;
    fn parties(
        &self,
        organisation: &Oin,
        signal: &SignalId,
    ) -> Result<Option<Vec<Oin>>, StoreError>;
    fn regie(&self, person: &Pseudonym) -> Result<Option<Regie>, StoreError>;
    fn waakvlam(&self, id: &SignalId) -> Result<Option<Waakvlam>, StoreError>;
    fn waakvlam_about(&self, person: &Pseudonym) -> Result<Vec<Waakvlam>, StoreError>;
    fn waakvlam_all(&self) -> Result<Vec<Waakvlam>, StoreError>;
    /// The index's person kept under `tag` in `epoch`.
    fn person_by_tag(&self, epoch: u32, tag: &Hash32) -> Result<Option<Pseudonym>, StoreError>;
    fn sealed_person(&self, person: &Pseudonym) -> Result<Option<SealedPerson>, StoreError>;
    /// Up to `limit` (tag, person) pairs of `epoch`, in tag order.
    fn person_tags(&self, epoch: u32, limit: usize)
    -> Result<Vec<(Hash32, Pseudonym)>, StoreError>;
    /// How many persons `epoch` holds.
    fn count_person_tags(&self, epoch: u32) -> Result<u64, StoreError>;
    fn index_epoch(&self) -> Result<Option<IndexEpoch>, StoreError>;
    /// The archived pointers whose subject is this person.
    fn archived_about(&self, subject: &Pseudonym) -> Result<Vec<ArchiveEntry>, StoreError>;
    /// Up to `limit` archived pointers whose five years ended at or before `now`.
    fn expired_archive(
        &self,
        now: UnixMillis,
        limit: usize,
    ) -> Result<Vec<ArchiveEntry>, StoreError>;

    // An organisation.
    /// Notices with cursor greater than `after`, in order.
    fn notices_after(&self, after: u64) -> StoreIter<'_, Notice>;
    fn last_notice_cursor(&self) -> Result<u64, StoreError>;
    /// The current and the historical match of each of the organisation's signals that has
    /// one.
    fn matches(&self) -> Result<Vec<Notice>, StoreError>;
    fn meldingen(&self) -> Result<Vec<ReceivedMelding>, StoreError>;
    fn break_glass_items(&self) -> Result<Vec<BreakGlassItem>, StoreError>;

    // Witnessing.
    /// The latest checkpoint of `log` this node cosigned as its witness.
    fn witnessed(&self, log: &Oin) -> Result<Option<String>, StoreError>;
    /// Every log this node witnesses: its latest cosigned checkpoint, and when it was last
    /// heard from (none if never recorded), in OIN order.
    fn witnessed_logs(&self) -> Result<Vec<(Oin, String, Option<UnixMillis>)>, StoreError>;
    /// The cosignature lines on this node's checkpoint of `size`, by witness.
    fn cosignatures(&self, size: u64) -> Result<Vec<(Oin, String)>, StoreError>;
    /// The size of the latest of this node's checkpoints with a cosignature.
    fn latest_cosigned(&self) -> Result<Option<u64>, StoreError>;
    /// Every fork this node knows of, in id (detection) order.
    fn forks(&self) -> Result<Vec<ForkRecord>, StoreError>;

    // Encryption at rest.
    fn data_keys(&self) -> Result<DataKeyUse, StoreError>;
    /// Up to `limit` records after `after`, in key order, whose value is in the clear or
    /// sealed under another key than the active one; each of them opens (one that does not
    /// is an error naming it). Looks at a bounded number of records per call.
    fn unsealed_records(
        &self,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<ResealPage, StoreError>;
}
