//! The sled implementation of [`Store`]: one tree, keyspaces by a one-byte prefix, every
//! [`Change`] list applied as one sled transaction (sled recovers it atomically).
//!
//! Encryption at rest: with a keyring, the values of the content keyspaces ([`SEALED`]) are
//! sealed under the active data key with the record's key as AAD; for an audit event only
//! its canonical bytes are, after the stored hashes. The meta record `mdata_keys` says what
//! values may be sealed under (and holds a key check per key), so that a start without a
//! key that values still need is refused at once, without a scan: it gains the active key
//! when a store opens, and loses every other key (and "in the clear") only when
//! re-encryption has resealed every record ([`Change::RetireDataKeys`]). No write ever seals
//! under another key than the active one, which is what makes that sound. Every read checks
//! a value against it too: a value in the clear, or sealed under a key the record does not
//! list (a retired key still in the keyring), is corruption naming the record.
//!
//! Durability: sled's `flush` writes its log with `sync_file_range`, which survives a process
//! crash but does not flush the device's write cache or the file's metadata. [`Store::sync`]
//! therefore also calls `fdatasync` on sled's data file. sled writes values larger than a
//! quarter segment (128 KiB) to separate blob files that it never fsyncs, so every value here
//! is refused above [`VALUE_LIMIT`].

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::crypt::{self, DataKeyId, KeyBytes, Keyring};
use super::migrations::{self, MIGRATIONS};
use super::{
    AuditEntry, Change, DataKeyUse, Hash32, RecordKey, ResealPage, Store, StoreError, StoreIter,
};
use crate::domain::{
    ArchiveEntry, BreakGlassItem, ForkRecord, IndexEpoch, IndexNotice, MessageId, Notice, Oin,
    OutboxMessage, Pointer, Pseudonym, ReceivedMelding, Regie, SealedPerson, Signal, SignalId,
    UnixMillis, Waakvlam,
};

/// The largest value the store writes, well under sled's blob threshold.
pub const VALUE_LIMIT: usize = 64 * 1024;

// Keyspaces. A registration writes four sequential keys (signal, expiry, outbox, event) and
// one random key per person; sled charges roughly twice as much for a random key, so nothing
// else is indexed separately: an event's stored hashes live in the event's value, and one
// person index serves both "events about a person" and "signals about a person".
/// `s<signal id>`: the signal.
const SIGNAL: u8 = b's';
/// `x<expires at><signal id>`: the expiry index.
const EXPIRY: u8 = b'x';
/// `o<message id>`: the outbox.
const OUTBOX: u8 = b'o';
/// `e<index>`: an audit event: hash count (1 byte), its stored hashes, its canonical bytes.
const EVENT: u8 = b'e';
/// `p<pseudonym><index>`: event `index` names this person; the value is the signal the event
/// registered, or empty.
const PERSON: u8 = b'p';
/// `c<tree size>`: a signed checkpoint.
const CHECKPOINT: u8 = b'c';
/// `mdirectory`: the accepted signed directory.
const DIRECTORY_KEY: &[u8] = b"mdirectory";
/// `M<message id>`: a message delivered here.
const MESSAGE: u8 = b'M';
// The index.
/// `P<oin><signal>`: a pointer.
const POINTER: u8 = b'P';
/// `Q<pseudonym><oin><signal>`: the pointers naming a person.
const POINTER_PERSON: u8 = b'Q';
/// `X<expires at><oin><signal>`: pointer expiry.
const POINTER_EXPIRY: u8 = b'X';
/// `K<oin><signal>`: the parties last notified about a pointer.
const PARTIES: u8 = b'K';
/// `R<pseudonym>`: the coordinator of a person.
const REGIE: u8 = b'R';
/// `W<id>`: a waakvlam follow-up; `V<pseudonym><id>`: its persons.
const WAAKVLAM: u8 = b'W';
const WAAKVLAM_PERSON: u8 = b'V';
/// `H<subject><oin><signal>`: an archived pointer, found by its subject.
const ARCHIVE: u8 = b'H';
/// The index's persons by epoch and tag (value: the person, in the clear: both are
/// pseudonymous, and the tag is keyed under a key only the running index holds).
const PERSON_TAG: u8 = b'T';
/// The index's persons' federation pseudonyms, sealed under an epoch's index key.
const SEALED_PERSON: u8 = b'U';
const INDEX_EPOCH_KEY: &[u8] = b"mindex_epoch";
/// `Y<expires at><subject><oin><signal>`: when an archived pointer's five years end.
const ARCHIVE_EXPIRY: u8 = b'Y';
// An organisation.
/// `N<cursor>`: the notice feed.
const NOTICE: u8 = b'N';
/// `O<signal><cursor>`: the notices about one of this organisation's signals, which go with
/// it (value empty).
const NOTICE_OF: u8 = b'O';
/// The last notice cursor handed out (u64 BE): cursors never repeat, even when the newest
/// notices went with their signal.
const NOTICE_CURSOR_KEY: &[u8] = b"mnotice_cursor";
/// Present once every notice about a signal has its `O<signal><cursor>` entry: a store from
/// before those entries were kept gets them at its first open with its data keys.
const NOTICE_OF_BUILT_KEY: &[u8] = b"mnotice_of_built";
/// `A<signal>`: the current match of a signal; `A<signal>h`: its historical match.
const MATCH: u8 = b'A';
const HISTORICAL_MATCH_SUFFIX: u8 = b'h';
/// `G<message id>`: a received melding.
const MELDING: u8 = b'G';
/// `B<id>`: a break-glass item.
const BREAK_GLASS: u8 = b'B';
// Witnessing: signed notes and OINs only, in the clear like the checkpoints.
/// `w<oin>`: the latest checkpoint of that member's log this node cosigned.
const WITNESSED: u8 = b'w';
/// `L<oin>`: when that member's log last pushed a checkpoint this node cosigned (u64 BE ms).
const HEARD: u8 = b'L';
/// `C<tree size><witness oin>`: a cosignature line on this node's checkpoint.
const COSIGNATURE: u8 = b'C';
/// `F<id>`: a fork of a member's log, with its evidence.
const FORK: u8 = b'F';
/// `mdata_keys`: what values may be sealed under ([`KeyUse`]).
const DATA_KEYS_KEY: &[u8] = b"mdata_keys";

/// The keyspaces whose values carry content and are sealed under a keyring, in key order.
/// Left in the clear: index entries (empty, or a signal id), delivered message ids, the
/// checkpoints (signed roots) and the accepted directory (signed, public to every member).
const SEALED: [u8; 13] = [
    MATCH,
    BREAK_GLASS,
    MELDING,
    ARCHIVE,
    PARTIES,
    NOTICE,
    POINTER,
    REGIE,
    SEALED_PERSON,
    WAAKVLAM,
    EVENT,
    OUTBOX,
    SIGNAL,
];
/// The most records one call of `unsealed_records` looks at.
const RESEAL_SCAN: usize = 4096;

/// What the store's values may be sealed under: stored as JSON under `mdata_keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct KeyUse {
    /// Values written in the clear may remain.
    plaintext: bool,
    /// Each key values may be sealed under, with its key check.
    keys: Vec<(u16, Vec<u8>)>,
}

impl KeyUse {
    /// The ids of the keys values may be sealed under.
    fn ids(&self) -> impl Iterator<Item = DataKeyId> + '_ {
        self.keys.iter().filter_map(|(id, _)| DataKeyId::new(*id))
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// The data keys that seal record values; `None` writes values in the clear.
    pub keyring: Option<Arc<Keyring>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 16 * 1024 * 1024,
            keyring: None,
        }
    }
}

pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    /// A second handle on sled's log file, for `fdatasync` (fsync is per inode).
    data_file: File,
    keyring: Option<Arc<Keyring>>,
    /// What a stored value may be, from `mdata_keys`: a value in the clear or under another
    /// key (a retired one the keyring may still hold) is corruption, not a record.
    admitted: RwLock<Admitted>,
}

/// What the store may hold values as: the in-memory copy of [`KeyUse`] that every read checks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Admitted {
    /// A value in the clear may be read: false once every value is sealed, so that a value
    /// swapped for plaintext on disk is corruption, not a record from before encryption.
    plaintext: bool,
    /// The keys values may be sealed under: after re-encryption the active key alone, so that
    /// a value sealed under a retired key (which whoever holds that key could plant) is
    /// corruption even while the keyring still holds the key.
    keys: Vec<DataKeyId>,
}

impl Admitted {
    fn of(key_use: &KeyUse) -> Admitted {
        Admitted {
            plaintext: key_use.plaintext,
            keys: key_use.ids().collect(),
        }
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `path` and brings its schema up to date. Refuses a
    /// keyring that lacks a key values may be sealed under, or whose key under a known id is
    /// another key; records the active key as in use.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<SledStore, StoreError> {
        let (db, tree, fresh) = open_tree(path, options)?;
        let store = SledStore::finish_open(path, db, tree, fresh, options.keyring.clone())?;
        store.build_notice_index()?;
        Ok(store)
    }

    /// Gives every notice about a signal its `O<signal><cursor>` entry, once per store (the
    /// notices are sealed, so this needs the data keys and is not a schema migration).
    fn build_notice_index(&self) -> Result<(), StoreError> {
        if self.tree.contains_key(NOTICE_OF_BUILT_KEY)? {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for notice in self.notices_after(0) {
            let notice = notice?;
            if let Some(signal) = notice.notice.signal() {
                let at = key(
                    NOTICE_OF,
                    &[signal.as_bytes(), &notice.cursor.to_be_bytes()],
                );
                batch.insert(at, Vec::<u8>::new());
            }
        }
        batch.insert(NOTICE_OF_BUILT_KEY, b"1".as_slice());
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Opens a store with data keys given without their ids (offline tools such as
    /// `kring audit verify --store`): each key's id is found by the store's key checks, and
    /// the highest is taken as active, so that opening records nothing new.
    pub fn open_with_keys(
        path: &Path,
        options: &StoreOptions,
        keys: Vec<KeyBytes>,
    ) -> Result<SledStore, StoreError> {
        let (db, tree, fresh) = open_tree(path, options)?;
        let key_use = read_key_use(&tree)?.unwrap_or_default();
        let mut identified = Vec::new();
        for (n, bytes) in keys.into_iter().enumerate() {
            let id = key_use
                .keys
                .iter()
                .find_map(|(_, check)| crypt::key_made_check(&bytes, check))
                .ok_or(StoreError::UnrecognisedDataKey { given: n + 1 })?;
            identified.push((id, bytes));
        }
        let keyring = match identified.iter().map(|(id, _)| *id).max() {
            Some(active) => Some(Arc::new(Keyring::new(identified, active)?)),
            None => None,
        };
        SledStore::finish_open(path, db, tree, fresh, keyring)
    }

    fn finish_open(
        path: &Path,
        db: sled::Db,
        tree: sled::Tree,
        fresh: bool,
        keyring: Option<Arc<Keyring>>,
    ) -> Result<SledStore, StoreError> {
        let key_use = settle_key_use(&tree, keyring.as_deref(), fresh)?;
        let admitted = Admitted::of(&key_use);
        for id in keyring.iter().flat_map(|k| k.ids()) {
            if !admitted.keys.contains(&id) {
                tracing::warn!(
                    data_key = id.get(),
                    "data key {id} is configured, but this store holds no value under it (retired by re-encryption, or never used here): a value sealed under it is refused as corruption; remove it from the configuration"
                );
            }
        }
        db.flush()?;
        let data_file = File::open(path.join("db"))?;
        data_file.sync_all()?;
        // The directory entry of every file sled created must be durable too.
        File::open(path)?.sync_all()?;
        Ok(SledStore {
            path: path.to_owned(),
            db,
            tree,
            data_file,
            keyring,
            admitted: RwLock::new(admitted),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema_version(&self) -> u32 {
        migrations::current_version(MIGRATIONS)
    }

    /// A record's value as stored: opened if sealed, as is if written in the clear (before
    /// encryption was switched on). A failure is corruption naming the record.
    fn open_value<'v>(&self, key: &[u8], value: &'v [u8]) -> Result<Cow<'v, [u8]>, StoreError> {
        let corrupt = |problem: String| StoreError::Corrupt {
            key: record_name(key),
            problem,
        };
        let sealed_under = crypt::sealed_under(value);
        let admitted = match sealed_under {
            None => self.admitted().plaintext,
            Some(id) => self.admitted().keys.contains(&id),
        };
        match (sealed_under, &self.keyring) {
            (None, _) if admitted => Ok(Cow::Borrowed(value)),
            (None, _) => Err(corrupt(
                "is not sealed, but every value of this store is: changed on disk".into(),
            )),
            (Some(id), None) => Err(corrupt(crypt::OpenError::UnknownKey(id).to_string())),
            (Some(id), Some(_)) if !admitted => Err(corrupt(format!(
                "is sealed under data key {id}, which this store holds no values under (retired, or never used here): written by someone else"
            ))),
            (Some(_), Some(keyring)) => keyring
                .open(key, value)
                .map(Cow::Owned)
                .map_err(|e| corrupt(e.to_string())),
        }
    }

    fn admitted(&self) -> std::sync::RwLockReadGuard<'_, Admitted> {
        self.admitted.read().unwrap_or_else(|e| e.into_inner())
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<T, StoreError> {
        let value = self.open_value(key, value)?;
        serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
            key: record_name(key),
            problem: e.to_string(),
        })
    }

    /// An event's stored hashes and its canonical bytes, opened.
    fn event<'v>(
        &self,
        index: u64,
        value: &'v [u8],
    ) -> Result<(Vec<Hash32>, Cow<'v, [u8]>), StoreError> {
        let (hashes, tail) = split_event(index, value)?;
        let canonical = self.open_value(&key(EVENT, &[&index.to_be_bytes()]), tail)?;
        Ok((hashes, canonical))
    }

    fn entry(&self, index: u64, value: &[u8]) -> Result<AuditEntry, StoreError> {
        let (hashes, canonical) = self.event(index, value)?;
        let first = tlog_tiles::stored_hash_index(0, index);
        Ok(AuditEntry {
            index,
            hashes: hashes
                .into_iter()
                .enumerate()
                .map(|(i, h)| (first + i as u64, h))
                .collect(),
            canonical: canonical.into_owned(),
        })
    }
}

/// Whether opening a store failed because another sled instance holds its file lock.
pub(super) fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock")
}

/// Opens sled's tree in `path` and migrates it; says whether the store was new.
fn open_tree(
    path: &Path,
    options: &StoreOptions,
) -> Result<(sled::Db, sled::Tree, bool), StoreError> {
    super::compact::pending(path)?;
    std::fs::create_dir_all(path)?;
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(options.cache_bytes)
        .flush_every_ms(None);
    // sled releases its file lock a moment after the previous holder dropped the store
    // (its I/O threads let go last): a restart may wait briefly, never indefinitely.
    let mut attempts = 0;
    let db = loop {
        match config.open() {
            Ok(db) => break db,
            Err(sled::Error::Io(e)) if is_lock_error(&e) => {
                attempts += 1;
                if attempts > 50 {
                    return Err(sled::Error::Io(e).into());
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let tree = db.open_tree("kring")?;
    let fresh = tree.is_empty();
    migrations::migrate(&tree, MIGRATIONS)?;
    Ok((db, tree, fresh))
}

fn read_key_use(tree: &sled::Tree) -> Result<Option<KeyUse>, StoreError> {
    tree.get(DATA_KEYS_KEY)?
        .map(|raw| {
            serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
                key: "data_keys".into(),
                problem: e.to_string(),
            })
        })
        .transpose()
}

/// Checks the keyring against what the store's values may be sealed under, and records the
/// active key (or, without a keyring, values in the clear) as in use.
fn settle_key_use(
    tree: &sled::Tree,
    keyring: Option<&Keyring>,
    fresh: bool,
) -> Result<KeyUse, StoreError> {
    let stored = read_key_use(tree)?;
    // A store from before encryption at rest may hold anything in the clear.
    let mut key_use = stored.clone().unwrap_or(KeyUse {
        plaintext: !fresh,
        keys: Vec::new(),
    });
    for (id, check) in &key_use.keys {
        let id = DataKeyId::new(*id).ok_or_else(|| StoreError::Corrupt {
            key: "data_keys".into(),
            problem: "names data key 0".into(),
        })?;
        match keyring {
            Some(keyring) if keyring.contains(id) => {
                if !keyring.passes_check(id, check) {
                    return Err(StoreError::WrongDataKey { id });
                }
            }
            _ => return Err(StoreError::MissingDataKey { id }),
        }
    }
    match keyring {
        Some(keyring) => {
            let active = keyring.active();
            if !key_use.keys.iter().any(|(id, _)| *id == active.get()) {
                let check = keyring
                    .check(active)
                    .expect("the active key is in the ring");
                key_use.keys.push((active.get(), check));
            }
        }
        None => key_use.plaintext = true,
    }
    if stored.as_ref() != Some(&key_use) {
        tree.insert(DATA_KEYS_KEY, encode(&key_use))?;
    }
    Ok(key_use)
}

/// A record's key for people: what it is and its id.
fn record_name(key: &[u8]) -> String {
    let Some((&prefix, rest)) = key.split_first() else {
        return "the empty key".into();
    };
    let what = match prefix {
        SIGNAL => "signal",
        OUTBOX => "outbox message",
        EVENT => "audit event",
        NOTICE => "notice",
        MATCH => "match of signal",
        MELDING => "melding",
        BREAK_GLASS => "break-glass item",
        POINTER => "pointer",
        PARTIES => "parties of pointer",
        REGIE => "regie of person",
        WAAKVLAM => "waakvlam",
        ARCHIVE => "archived pointer",
        SEALED_PERSON => "index person",
        _ => return String::from_utf8_lossy(&key[..1]).into_owned() + &hex(rest),
    };
    let id = |bytes: &[u8]| match <[u8; 16]>::try_from(bytes) {
        Ok(id) => uuid::Uuid::from_bytes(id).to_string(),
        Err(_) => hex(bytes),
    };
    match (prefix, rest.len()) {
        (EVENT | NOTICE, 8) => {
            format!("{what} {}", u64::from_be_bytes(rest.try_into().expect("8")))
        }
        (POINTER | PARTIES, 36) => format!(
            "{what} {}/{}",
            String::from_utf8_lossy(&rest[..20]),
            id(&rest[20..])
        ),
        (ARCHIVE, 68) => format!(
            "{what} {}/{}",
            String::from_utf8_lossy(&rest[32..52]),
            id(&rest[52..])
        ),
        (MATCH, 17) => format!("historical {what} {}", id(&rest[..16])),
        _ => format!("{what} {}", id(rest)),
    }
}

/// An archived pointer's key after its prefix: subject, OIN, signal (68 bytes).
fn archive_key(entry: &ArchiveEntry) -> Vec<u8> {
    [
        &entry.subject.0[..],
        entry.organisation.as_str().as_bytes(),
        entry.signal.as_bytes(),
    ]
    .concat()
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(prefix);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

/// Maps an i64 onto a u64 with the same order, for big-endian keys.
fn ordered(time: UnixMillis) -> [u8; 8] {
    ((time.0 as u64) ^ (1 << 63)).to_be_bytes()
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise to JSON without fail")
}

fn utf8(key: &[u8], value: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(value.to_vec()).map_err(|_| StoreError::Corrupt {
        key: hex(key),
        problem: "not UTF-8".into(),
    })
}

/// An index person's id, stored as the value of its tag.
fn person_value(key: &[u8], value: &[u8]) -> Result<Pseudonym, StoreError> {
    <[u8; 32]>::try_from(value)
        .map(Pseudonym)
        .map_err(|_| StoreError::Corrupt {
            key: hex(key),
            problem: "an index person is not 32 bytes".into(),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn u64_suffix(key: &[u8]) -> Result<u64, StoreError> {
    let tail: [u8; 8] =
        key[key.len().saturating_sub(8)..]
            .try_into()
            .map_err(|_| StoreError::Corrupt {
                key: hex(key),
                problem: "key too short".into(),
            })?;
    Ok(u64::from_be_bytes(tail))
}

fn id_suffix(key: &[u8]) -> Result<SignalId, StoreError> {
    let tail: [u8; 16] = key[key.len().saturating_sub(16)..]
        .try_into()
        .map_err(|_| StoreError::Corrupt {
            key: hex(key),
            problem: "key too short".into(),
        })?;
    Ok(SignalId::from_bytes(tail))
}

/// Splits a stored event into its stored hashes and its canonical bytes.
fn split_event(index: u64, value: &[u8]) -> Result<(Vec<Hash32>, &[u8]), StoreError> {
    let corrupt = |problem: &str| StoreError::Corrupt {
        key: format!("event {index}"),
        problem: problem.into(),
    };
    let (&count, rest) = value.split_first().ok_or_else(|| corrupt("empty"))?;
    let hashes_len = 32 * usize::from(count);
    if count == 0 || rest.len() < hashes_len {
        return Err(corrupt("truncated stored hashes"));
    }
    let (hashes, canonical) = rest.split_at(hashes_len);
    let hashes = hashes
        .chunks_exact(32)
        .map(|h| h.try_into().expect("chunks of 32"))
        .collect();
    Ok((hashes, canonical))
}

/// The writes of one change list, applied in one sled transaction.
struct BatchBuilder<'s> {
    store: &'s SledStore,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The active key, when this list retires every other key.
    retires: Option<DataKeyId>,
}

impl BatchBuilder<'_> {
    /// Puts a content record: sealed under the active key, if the store has a keyring.
    fn put_sealed(&mut self, key: Vec<u8>, plaintext: Vec<u8>) -> Result<(), StoreError> {
        let value = match &self.store.keyring {
            Some(keyring) => keyring.seal(&key, &plaintext),
            None => plaintext,
        };
        self.put(key, value)
    }

    fn reseal(&mut self, record: &RecordKey) -> Result<(), StoreError> {
        let key = record.0.as_slice();
        let Some(keyring) = &self.store.keyring else {
            return Err(StoreError::Corrupt {
                key: record_name(key),
                problem: "cannot be resealed by a store without a keyring".into(),
            });
        };
        if !key.first().is_some_and(|prefix| SEALED.contains(prefix)) {
            return Err(StoreError::Corrupt {
                key: record_name(key),
                problem: "is not a record whose value is sealed".into(),
            });
        }
        // The ledger is the only writer and applies one list at a time: what this reads is
        // what the transaction replaces.
        let Some(value) = self.store.tree.get(key)? else {
            return Ok(());
        };
        let (head, sealed) = match key[0] {
            EVENT => {
                let index = u64_suffix(key)?;
                let (hashes, _) = split_event(index, &value)?;
                value.split_at(1 + 32 * hashes.len())
            }
            _ => value.split_at(0),
        };
        if crypt::sealed_under(sealed) == Some(keyring.active()) {
            return Ok(());
        }
        let plaintext = self.store.open_value(key, sealed)?;
        let mut resealed = head.to_vec();
        keyring.seal_into(key, &plaintext, &mut resealed);
        self.put(key.to_vec(), resealed)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        if value.len() > VALUE_LIMIT {
            return Err(StoreError::ValueTooLarge {
                key: hex(&key),
                size: value.len(),
                limit: VALUE_LIMIT,
            });
        }
        self.writes.push((key, Some(value)));
        Ok(())
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.writes.push((key, None));
    }

    fn add(&mut self, change: &Change) -> Result<(), StoreError> {
        match change {
            Change::PutSignal(signal) => {
                let id = signal.id.as_bytes();
                self.put_sealed(key(SIGNAL, &[id]), encode(signal))?;
                self.put(key(EXPIRY, &[&ordered(signal.expires_at), id]), Vec::new())?;
            }
            Change::DeleteSignal(signal) => {
                let id = signal.id.as_bytes();
                self.remove(key(SIGNAL, &[id]));
                self.remove(key(EXPIRY, &[&ordered(signal.expires_at), id]));
            }
            Change::PutOutbox(message) => {
                self.put_sealed(key(OUTBOX, &[message.id.as_bytes()]), encode(message))?;
            }
            Change::DeleteOutbox(id) => self.remove(key(OUTBOX, &[id.as_bytes()])),
            Change::AppendAudit {
                index,
                canonical,
                subjects,
                hashes,
                registers,
            } => {
                let at = index.to_be_bytes();
                let first = tlog_tiles::stored_hash_index(0, *index);
                let in_place = hashes
                    .iter()
                    .enumerate()
                    .all(|(i, (stored, _))| *stored == first + i as u64);
                if !in_place || hashes.is_empty() || hashes.len() > 64 {
                    return Err(StoreError::Corrupt {
                        key: format!("event {index}"),
                        problem: "stored hashes out of place".into(),
                    });
                }
                let event_key = key(EVENT, &[&at]);
                let mut value =
                    Vec::with_capacity(1 + 32 * hashes.len() + crypt::OVERHEAD + canonical.len());
                value.push(hashes.len() as u8);
                for (_, hash) in hashes {
                    value.extend_from_slice(hash);
                }
                // The stored hashes stay in the clear: roots and proofs need no key.
                match &self.store.keyring {
                    Some(keyring) => keyring.seal_into(&event_key, canonical, &mut value),
                    None => value.extend_from_slice(canonical),
                }
                self.put(event_key, value)?;
                let link = registers
                    .map(|id| id.as_bytes().to_vec())
                    .unwrap_or_default();
                for subject in subjects {
                    self.put(key(PERSON, &[&subject.0, &at]), link.clone())?;
                }
            }
            Change::PutCheckpoint { size, note } => {
                self.put(
                    key(CHECKPOINT, &[&size.to_be_bytes()]),
                    note.as_bytes().to_vec(),
                )?;
            }
            Change::MarkMessage(id) => self.put(key(MESSAGE, &[id.as_bytes()]), Vec::new())?,
            Change::PutDirectory(note) => {
                self.put(DIRECTORY_KEY.to_vec(), note.as_bytes().to_vec())?
            }
            Change::PutPointer(pointer) => {
                let at: &[&[u8]] = &[
                    pointer.organisation.as_str().as_bytes(),
                    pointer.signal.as_bytes(),
                ];
                self.put_sealed(key(POINTER, at), encode(pointer))?;
                self.put(
                    key(
                        POINTER_EXPIRY,
                        &[&ordered(pointer.expires_at), at[0], at[1]],
                    ),
                    Vec::new(),
                )?;
                for person in pointer.persons() {
                    self.put(key(POINTER_PERSON, &[&person.0, at[0], at[1]]), Vec::new())?;
                }
            }
            Change::DeletePointer(pointer) => {
                let at: &[&[u8]] = &[
                    pointer.organisation.as_str().as_bytes(),
                    pointer.signal.as_bytes(),
                ];
                self.remove(key(POINTER, at));
                self.remove(key(
                    POINTER_EXPIRY,
                    &[&ordered(pointer.expires_at), at[0], at[1]],
                ));
                for person in pointer.persons() {
                    self.remove(key(POINTER_PERSON, &[&person.0, at[0], at[1]]));
                }
            }
            Change::PutParties {
                organisation,
                signal,
                parties,
            } => self.put_sealed(
                key(
                    PARTIES,
                    &[organisation.as_str().as_bytes(), signal.as_bytes()],
                ),
                encode(parties),
            )?,
            Change::DeleteParties {
                organisation,
                signal,
            } => self.remove(key(
                PARTIES,
                &[organisation.as_str().as_bytes(), signal.as_bytes()],
            )),
            Change::PutRegie { person, regie } => {
                self.put_sealed(key(REGIE, &[&person.0]), encode(regie))?
            }
            Change::DeleteRegie { person } => self.remove(key(REGIE, &[&person.0])),
            Change::PutPersonTag { epoch, tag, person } => self.put(
                key(PERSON_TAG, &[&epoch.to_be_bytes(), tag]),
                person.0.to_vec(),
            )?,
            Change::DeletePersonTag { epoch, tag } => {
                self.remove(key(PERSON_TAG, &[&epoch.to_be_bytes(), tag]))
            }
            Change::PutSealedPerson { person, sealed } => {
                self.put_sealed(key(SEALED_PERSON, &[&person.0]), encode(sealed))?
            }
            Change::PutIndexEpoch(epoch) => self.put(INDEX_EPOCH_KEY.to_vec(), encode(epoch))?,
            Change::PutWaakvlam(waakvlam) => {
                self.put_sealed(key(WAAKVLAM, &[waakvlam.id.as_bytes()]), encode(waakvlam))?;
                for person in &waakvlam.persons {
                    self.put(
                        key(WAAKVLAM_PERSON, &[&person.0, waakvlam.id.as_bytes()]),
                        Vec::new(),
                    )?;
                }
            }
            Change::PutArchive(entry) => {
                let at = archive_key(entry);
                self.put_sealed(key(ARCHIVE, &[&at]), encode(entry))?;
                self.put(
                    key(ARCHIVE_EXPIRY, &[&ordered(entry.expires_at), &at]),
                    Vec::new(),
                )?;
            }
            Change::DeleteArchive(entry) => {
                let at = archive_key(entry);
                self.remove(key(ARCHIVE, &[&at]));
                self.remove(key(ARCHIVE_EXPIRY, &[&ordered(entry.expires_at), &at]));
            }
            Change::PutNotice(notice) => {
                let cursor = notice.cursor.to_be_bytes();
                self.put_sealed(key(NOTICE, &[&cursor]), encode(notice))?;
                if let Some(signal) = notice.notice.signal() {
                    self.put(key(NOTICE_OF, &[signal.as_bytes(), &cursor]), Vec::new())?;
                }
                self.put(NOTICE_CURSOR_KEY.to_vec(), cursor.to_vec())?;
            }
            Change::DeleteNotices(signal) => {
                let of = key(NOTICE_OF, &[signal.as_bytes()]);
                let mut found = Vec::new();
                for item in self.store.tree.scan_prefix(&of) {
                    found.push(item?.0);
                }
                for at in found {
                    self.remove(key(NOTICE, &[&at[of.len()..]]));
                    self.remove(at.to_vec());
                }
            }
            Change::PutMatch(notice) => {
                let at = match &notice.notice {
                    IndexNotice::Match { signal, .. } => key(MATCH, &[signal.as_bytes()]),
                    IndexNotice::HistoricalMatch { signal, .. } => {
                        key(MATCH, &[signal.as_bytes(), &[HISTORICAL_MATCH_SUFFIX]])
                    }
                    _ => {
                        return Err(StoreError::Corrupt {
                            key: "match".into(),
                            problem: "only match notices are kept as matches".into(),
                        });
                    }
                };
                self.put_sealed(at, encode(notice))?;
            }
            Change::DeleteMatch(signal) => {
                self.remove(key(MATCH, &[signal.as_bytes()]));
                self.remove(key(MATCH, &[signal.as_bytes(), &[HISTORICAL_MATCH_SUFFIX]]));
            }
            Change::PutMelding(melding) => {
                self.put_sealed(key(MELDING, &[melding.message.as_bytes()]), encode(melding))?;
            }
            Change::PutBreakGlass(item) => {
                self.put_sealed(key(BREAK_GLASS, &[item.id.as_bytes()]), encode(item))?;
            }
            Change::PutWitnessed { log, note } => self.put(
                key(WITNESSED, &[log.as_str().as_bytes()]),
                note.as_bytes().to_vec(),
            )?,
            Change::PutHeard { log, at } => self.put(
                key(HEARD, &[log.as_str().as_bytes()]),
                at.0.to_be_bytes().to_vec(),
            )?,
            Change::PutCosignature {
                size,
                witness,
                line,
            } => self.put(
                key(
                    COSIGNATURE,
                    &[&size.to_be_bytes(), witness.as_str().as_bytes()],
                ),
                line.as_bytes().to_vec(),
            )?,
            // Keyed by the witness too: an alert from one member never replaces another's
            // record (an OIN is 20 digits, so the parts cannot run into each other).
            Change::PutFork(fork) => self.put(
                key(
                    FORK,
                    &[fork.witness.as_str().as_bytes(), fork.id.as_bytes()],
                ),
                encode(fork),
            )?,
            Change::Reseal(records) => {
                for record in records {
                    self.reseal(record)?;
                }
            }
            Change::RetireDataKeys => {
                let Some(keyring) = &self.store.keyring else {
                    return Err(StoreError::Corrupt {
                        key: "data_keys".into(),
                        problem: "a store without a keyring has no keys to retire".into(),
                    });
                };
                let active = keyring.active();
                let check = read_key_use(&self.store.tree)?
                    .unwrap_or_default()
                    .keys
                    .into_iter()
                    .find_map(|(id, check)| (id == active.get()).then_some(check))
                    .ok_or(StoreError::MissingDataKey { id: active })?;
                let retired = KeyUse {
                    plaintext: false,
                    keys: vec![(active.get(), check)],
                };
                self.put(DATA_KEYS_KEY.to_vec(), encode(&retired))?;
                self.retires = Some(active);
            }
        }
        Ok(())
    }
}

impl Store for SledStore {
    /// One sled transaction per change list: recovered atomically after a crash, like a
    /// batch. Not `apply_batch`: sled 0.34 keeps memory for every key of a batch and never
    /// gives it back (measured: 2.9 GB after a million keys in batches of a thousand, against
    /// 83 MB in transactions of a thousand; see ARCHITECTURE.md).
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut builder = BatchBuilder {
            store: self,
            writes: Vec::new(),
            retires: None,
        };
        for change in changes {
            builder.add(change)?;
        }
        let BatchBuilder {
            writes, retires, ..
        } = builder;
        self.tree
            .transaction(|tx| {
                for (key, value) in &writes {
                    match value {
                        Some(value) => {
                            tx.insert(key.as_slice(), value.as_slice())?;
                        }
                        None => {
                            tx.remove(key.as_slice())?;
                        }
                    }
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<std::convert::Infallible>>(
                    (),
                )
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Engine(e),
                sled::transaction::TransactionError::Abort(never) => match never {},
            })?;
        if let Some(active) = retires {
            *self.admitted.write().unwrap_or_else(|e| e.into_inner()) = Admitted {
                plaintext: false,
                keys: vec![active],
            };
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        self.db.flush()?;
        let flushed = started.elapsed();
        self.data_file.sync_data()?;
        tracing::trace!(
            flush_us = flushed.as_micros() as u64,
            fdatasync_us = (started.elapsed() - flushed).as_micros() as u64,
            "store sync"
        );
        Ok(())
    }

    fn signal(&self, id: &SignalId) -> Result<Option<Signal>, StoreError> {
        let k = key(SIGNAL, &[id.as_bytes()]);
        self.tree.get(&k)?.map(|v| self.decode(&k, &v)).transpose()
    }

    fn signals_after(&self, after: Option<SignalId>) -> StoreIter<'_, Signal> {
        let start = match after {
            Some(id) => {
                let mut k = key(SIGNAL, &[id.as_bytes()]);
                k.push(0);
                k
            }
            None => vec![SIGNAL],
        };
        Box::new(self.tree.range(start..vec![SIGNAL + 1]).map(|item| {
            let (k, v) = item?;
            self.decode(&k, &v)
        }))
    }

    fn signals_about(&self, person: &Pseudonym) -> Result<Vec<SignalId>, StoreError> {
        let mut ids = Vec::new();
        for item in self.tree.scan_prefix(key(PERSON, &[&person.0])) {
            let (_, value) = item?;
            if let Ok(bytes) = <[u8; 16]>::try_from(value.as_ref()) {
                let id = SignalId::from_bytes(bytes);
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    fn expired_signals(&self, now: UnixMillis, limit: usize) -> Result<Vec<Signal>, StoreError> {
        let mut end = key(EXPIRY, &[&ordered(now)]);
        end.extend_from_slice(&[0xff; 16]);
        let mut expired = Vec::new();
        for item in self.tree.range(vec![EXPIRY]..=end).take(limit) {
            let (k, _) = item?;
            let id = id_suffix(&k)?;
            match self.signal(&id)? {
                Some(signal) => expired.push(signal),
                None => {
                    return Err(StoreError::Corrupt {
                        key: hex(&k),
                        problem: "expiry index names a missing signal".into(),
                    });
                }
            }
        }
        Ok(expired)
    }

    fn outbox(&self, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        self.tree
            .scan_prefix([OUTBOX])
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                self.decode(&k, &v)
            })
            .collect()
    }

    fn audit_size(&self) -> Result<u64, StoreError> {
        match self.tree.scan_prefix([EVENT]).next_back() {
            Some(item) => Ok(u64_suffix(&item?.0)? + 1),
            None => Ok(0),
        }
    }

    fn audit_event(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tree.get(key(EVENT, &[&index.to_be_bytes()]))? {
            Some(value) => Ok(Some(self.event(index, &value)?.1.into_owned())),
            None => Ok(None),
        }
    }

    fn audit_events(&self, from: u64, until: u64) -> StoreIter<'_, (u64, Vec<u8>)> {
        Box::new(
            self.audit_entries(from, until)
                .map(|entry| entry.map(|e| (e.index, e.canonical))),
        )
    }

    fn audit_entries(&self, from: u64, until: u64) -> StoreIter<'_, AuditEntry> {
        let start = key(EVENT, &[&from.to_be_bytes()]);
        let end = key(EVENT, &[&until.to_be_bytes()]);
        Box::new(self.tree.range(start..end).map(|item| {
            let (k, v) = item?;
            self.entry(u64_suffix(&k)?, &v)
        }))
    }

    fn audit_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash32>, StoreError> {
        indexes
            .iter()
            .map(|&stored| {
                // The hash at (level, n) was stored with the event that completed its subtree.
                let (level, n) = tlog_tiles::split_stored_hash_index(stored);
                let record = ((n + 1) << level) - 1;
                let missing = || StoreError::Corrupt {
                    key: format!("stored hash {stored}"),
                    problem: "missing".into(),
                };
                let value = self
                    .tree
                    .get(key(EVENT, &[&record.to_be_bytes()]))?
                    .ok_or_else(missing)?;
                let (hashes, _) = split_event(record, &value)?;
                hashes.get(usize::from(level)).copied().ok_or_else(missing)
            })
            .collect()
    }

    fn audit_events_about(&self, subject: &Pseudonym, from: u64) -> StoreIter<'_, u64> {
        let start = key(PERSON, &[&subject.0, &from.to_be_bytes()]);
        let end = key(PERSON, &[&subject.0, &[0xff; 8]]);
        Box::new(
            self.tree
                .range(start..=end)
                .map(|item| u64_suffix(&item?.0)),
        )
    }

    fn checkpoints(&self, after: u64) -> StoreIter<'_, (u64, String)> {
        let start = key(CHECKPOINT, &[&after.saturating_add(1).to_be_bytes()]);
        Box::new(self.tree.range(start..vec![CHECKPOINT + 1]).map(|item| {
            let (k, v) = item?;
            let note = String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt {
                key: hex(&k),
                problem: "checkpoint is not UTF-8".into(),
            })?;
            Ok((u64_suffix(&k)?, note))
        }))
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self.tree.scan_prefix([CHECKPOINT]).next_back() {
            Some(item) => {
                let (k, v) = item?;
                let note = String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt {
                    key: hex(&k),
                    problem: "checkpoint is not UTF-8".into(),
                })?;
                Ok(Some((u64_suffix(&k)?, note)))
            }
            None => Ok(None),
        }
    }

    fn message_seen(&self, id: &MessageId) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key(MESSAGE, &[id.as_bytes()]))?)
    }

    fn directory_note(&self) -> Result<Option<String>, StoreError> {
        self.tree
            .get(DIRECTORY_KEY)?
            .map(|v| {
                String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt {
                    key: "directory".into(),
                    problem: "not UTF-8".into(),
                })
            })
            .transpose()
    }

    fn pointer(
        &self,
        organisation: &Oin,
        signal: &SignalId,
    ) -> Result<Option<Pointer>, StoreError> {
        let k = key(
            POINTER,
            &[organisation.as_str().as_bytes(), signal.as_bytes()],
        );
        self.tree.get(&k)?.map(|v| self.decode(&k, &v)).transpose()
    }

    fn pointers_about(&self, person: &Pseudonym) -> Result<Vec<(Oin, SignalId)>, StoreError> {
        self.tree
            .scan_prefix(key(POINTER_PERSON, &[&person.0]))
            .map(|item| {
                let (k, _) = item?;
                let rest = &k[33..];
                let oin = std::str::from_utf8(&rest[..20])
                    .ok()
                    .and_then(|s| Oin::parse(s).ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        key: hex(&k),
                        problem: "bad OIN in the person index".into(),
                    })?;
                Ok((oin, id_suffix(&k)?))
            })
            .collect()
    }

    fn expired_pointers(&self, now: UnixMillis, limit: usize) -> Result<Vec<Pointer>, StoreError> {
        let mut end = key(POINTER_EXPIRY, &[&ordered(now)]);
        end.extend_from_slice(&[0xff; 36]);
        let mut expired = Vec::new();
        for item in self.tree.range(vec![POINTER_EXPIRY]..=end).take(limit) {
            let (k, _) = item?;
            let rest = &k[9..];
            let oin = std::str::from_utf8(&rest[..20])
                .ok()
                .and_then(|s| Oin::parse(s).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    key: hex(&k),
                    problem: "bad OIN in the pointer expiry index".into(),
                })?;
            if let Some(pointer) = self.pointer(&oin, &id_suffix(&k)?)? {
                expired.push(pointer);
            }
        }
        Ok(expired)
    }

    fn parties(
        &self,
        organisation: &Oin,
        signal: &SignalId,
    ) -> Result<Option<Vec<Oin>>, StoreError> {
        let k = key(
            PARTIES,
            &[organisation.as_str().as_bytes(), signal.as_bytes()],
        );
        self.tree.get(&k)?.map(|v| self.decode(&k, &v)).transpose()
    }

    fn regie(&self, person: &Pseudonym) -> Result<Option<Regie>, StoreError> {
        let k = key(REGIE, &[&person.0]);
        self.tree.get(&k)?.map(|v| self.decode(&k, &v)).transpose()
    }

    fn waakvlam(&self, id: &SignalId) -> Result<Option<Waakvlam>, StoreError> {
        let k = key(WAAKVLAM, &[id.as_bytes()]);
        self.tree.get(&k)?.map(|v| self.decode(&k, &v)).transpose()
    }

    fn waakvlam_about(&self, person: &Pseudonym) -> Result<Vec<Waakvlam>, StoreError> {
        let mut found = Vec::new();
        for item in self.tree.scan_prefix(key(WAAKVLAM_PERSON, &[&person.0])) {
            let (k, _) = item?;
            if let Some(waakvlam) = self.waakvlam(&id_suffix(&k)?)? {
                found.push(waakvlam);
            }
        }
        Ok(found)
    }

    fn waakvlam_all(&self) -> Result<Vec<Waakvlam>, StoreError> {
        self.tree
            .scan_prefix([WAAKVLAM])
            .map(|item| {
                let (k, v) = item?;
                self.decode(&k, &v)
            })
            .collect()
    }

    fn archived_about(&self, subject: &Pseudonym) -> Result<Vec<ArchiveEntry>, StoreError> {
        self.tree
            .scan_prefix(key(ARCHIVE, &[&subject.0]))
            .map(|item| {
                let (k, v) = item?;
                self.decode(&k, &v)
            })
            .collect()
    }

    fn person_by_tag(&self, epoch: u32, tag: &Hash32) -> Result<Option<Pseudonym>, StoreError> {
        let k = key(PERSON_TAG, &[&epoch.to_be_bytes(), tag]);
        self.tree.get(&k)?.map(|v| person_value(&k, &v)).transpose()
    }

    fn sealed_person(&self, person: &Pseudonym) -> Result<Option<SealedPerson>, StoreError> {
        let k = key(SEALED_PERSON, &[&person.0]);
        self.tree.get(&k)?.map(|v| self.decode(&k, &v)).transpose()
    }

    fn person_tags(
        &self,
        epoch: u32,
        limit: usize,
    ) -> Result<Vec<(Hash32, Pseudonym)>, StoreError> {
        let mut found = Vec::new();
        for item in self
            .tree
            .scan_prefix(key(PERSON_TAG, &[&epoch.to_be_bytes()]))
            .take(limit)
        {
            let (k, v) = item?;
            let tag: Hash32 = k[5..].try_into().map_err(|_| StoreError::Corrupt {
                key: hex(&k),
                problem: "an index person's key is not 37 bytes".into(),
            })?;
            found.push((tag, person_value(&k, &v)?));
        }
        Ok(found)
    }

    fn count_person_tags(&self, epoch: u32) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self
            .tree
            .scan_prefix(key(PERSON_TAG, &[&epoch.to_be_bytes()]))
        {
            item?;
            count += 1;
        }
        Ok(count)
    }

    fn index_epoch(&self) -> Result<Option<IndexEpoch>, StoreError> {
        self.tree
            .get(INDEX_EPOCH_KEY)?
            .map(|v| {
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    key: "index epoch".into(),
                    problem: e.to_string(),
                })
            })
            .transpose()
    }

    fn expired_archive(
        &self,
        now: UnixMillis,
        limit: usize,
    ) -> Result<Vec<ArchiveEntry>, StoreError> {
        let mut end = key(ARCHIVE_EXPIRY, &[&ordered(now)]);
        end.extend_from_slice(&[0xff; 68]);
        let mut expired = Vec::new();
        for item in self.tree.range(vec![ARCHIVE_EXPIRY]..=end).take(limit) {
            let (k, _) = item?;
            let entry_key = key(ARCHIVE, &[&k[9..]]);
            match self.tree.get(&entry_key)? {
                Some(v) => expired.push(self.decode(&entry_key, &v)?),
                None => {
                    return Err(StoreError::Corrupt {
                        key: hex(&k),
                        problem: "archive expiry index names a missing entry".into(),
                    });
                }
            }
        }
        Ok(expired)
    }

    fn notices_after(&self, after: u64) -> StoreIter<'_, Notice> {
        let start = key(NOTICE, &[&after.saturating_add(1).to_be_bytes()]);
        Box::new(self.tree.range(start..vec![NOTICE + 1]).map(|item| {
            let (k, v) = item?;
            self.decode(&k, &v)
        }))
    }

    fn last_notice_cursor(&self) -> Result<u64, StoreError> {
        let newest = match self.tree.scan_prefix([NOTICE]).next_back() {
            Some(item) => u64_suffix(&item?.0)?,
            None => 0,
        };
        let handed_out = match self.tree.get(NOTICE_CURSOR_KEY)? {
            Some(bytes) => u64_suffix(&bytes)?,
            None => 0,
        };
        Ok(newest.max(handed_out))
    }

    fn matches(&self) -> Result<Vec<Notice>, StoreError> {
        self.tree
            .scan_prefix([MATCH])
            .map(|item| {
                let (k, v) = item?;
                self.decode(&k, &v)
            })
            .collect()
    }

    fn meldingen(&self) -> Result<Vec<ReceivedMelding>, StoreError> {
        self.tree
            .scan_prefix([MELDING])
            .map(|item| {
                let (k, v) = item?;
                self.decode(&k, &v)
            })
            .collect()
    }

    fn break_glass_items(&self) -> Result<Vec<BreakGlassItem>, StoreError> {
        self.tree
            .scan_prefix([BREAK_GLASS])
            .map(|item| {
                let (k, v) = item?;
                self.decode(&k, &v)
            })
            .collect()
    }

    fn witnessed(&self, log: &Oin) -> Result<Option<String>, StoreError> {
        self.tree
            .get(key(WITNESSED, &[log.as_str().as_bytes()]))?
            .map(|v| utf8(&[WITNESSED], &v))
            .transpose()
    }

    fn witnessed_logs(&self) -> Result<Vec<(Oin, String, Option<UnixMillis>)>, StoreError> {
        self.tree
            .scan_prefix([WITNESSED])
            .map(|item| {
                let (k, v) = item?;
                let log = std::str::from_utf8(&k[1..])
                    .ok()
                    .and_then(|s| Oin::parse(s).ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        key: hex(&k),
                        problem: "witnessed key names no member".into(),
                    })?;
                let heard = match self.tree.get(key(HEARD, &[log.as_str().as_bytes()]))? {
                    Some(at) => {
                        let at: [u8; 8] =
                            at.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                                key: format!("heard {log}"),
                                problem: "not 8 bytes".into(),
                            })?;
                        Some(UnixMillis(i64::from_be_bytes(at)))
                    }
                    None => None,
                };
                Ok((log, utf8(&k, &v)?, heard))
            })
            .collect()
    }

    fn cosignatures(&self, size: u64) -> Result<Vec<(Oin, String)>, StoreError> {
        self.tree
            .scan_prefix(key(COSIGNATURE, &[&size.to_be_bytes()]))
            .map(|item| {
                let (k, v) = item?;
                let witness = std::str::from_utf8(&k[9..])
                    .ok()
                    .and_then(|s| Oin::parse(s).ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        key: hex(&k),
                        problem: "cosignature key names no witness".into(),
                    })?;
                Ok((witness, utf8(&k, &v)?))
            })
            .collect()
    }

    fn latest_cosigned(&self) -> Result<Option<u64>, StoreError> {
        match self.tree.scan_prefix([COSIGNATURE]).next_back() {
            Some(item) => {
                let (k, _) = item?;
                let size: [u8; 8] =
                    k.get(1..9).and_then(|b| b.try_into().ok()).ok_or_else(|| {
                        StoreError::Corrupt {
                            key: hex(&k),
                            problem: "cosignature key without a tree size".into(),
                        }
                    })?;
                Ok(Some(u64::from_be_bytes(size)))
            }
            None => Ok(None),
        }
    }

    fn forks(&self) -> Result<Vec<ForkRecord>, StoreError> {
        self.tree
            .scan_prefix([FORK])
            .map(|item| {
                let (k, v) = item?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    key: hex(&k),
                    problem: e.to_string(),
                })
            })
            .collect()
    }

    fn data_keys(&self) -> Result<DataKeyUse, StoreError> {
        let key_use = read_key_use(&self.tree)?.unwrap_or_default();
        Ok(DataKeyUse {
            active: self.keyring.as_ref().map(|k| k.active()),
            plaintext: key_use.plaintext,
            keys: key_use.ids().collect(),
        })
    }

    fn unsealed_records(
        &self,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        let mut page = ResealPage::default();
        let Some(keyring) = &self.keyring else {
            return Ok(page);
        };
        let mut examined = 0;
        for prefix in SEALED {
            let start = match after {
                Some(RecordKey(after)) if after.first() > Some(&prefix) => continue,
                Some(RecordKey(after)) if after.first() == Some(&prefix) => {
                    let mut start = after.clone();
                    start.push(0);
                    start
                }
                _ => vec![prefix],
            };
            for item in self.tree.range(start..vec![prefix + 1]) {
                let (k, v) = item?;
                let sealed = match prefix {
                    EVENT => split_event(u64_suffix(&k)?, &v)?.1,
                    _ => &v[..],
                };
                if crypt::sealed_under(sealed) != Some(keyring.active()) {
                    // A value that does not open stops re-encryption here, named, rather
                    // than failing the writer that would reseal it.
                    self.open_value(&k, sealed)?;
                    page.records.push(RecordKey(k.to_vec()));
                }
                examined += 1;
                if page.records.len() >= limit || examined >= RESEAL_SCAN {
                    page.next = Some(RecordKey(k.to_vec()));
                    return Ok(page);
                }
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Category, ContactPointId, MeldcodeStep, PrincipalId, RelatedPseudonym, Relation, Severity,
    };

    fn ring(keys: &[(u16, u8)], active: u16) -> Option<Arc<Keyring>> {
        let id = |n: u16| DataKeyId::new(n).expect("not zero");
        Some(Arc::new(
            Keyring::new(
                keys.iter()
                    .map(|&(n, fill)| (id(n), zeroize::Zeroizing::new([fill; 32])))
                    .collect(),
                id(active),
            )
            .expect("a keyring"),
        ))
    }

    fn open(path: &Path, keyring: Option<Arc<Keyring>>) -> Result<SledStore, StoreError> {
        SledStore::open(
            path,
            &StoreOptions {
                keyring,
                ..StoreOptions::default()
            },
        )
    }

    fn signal() -> Signal {
        Signal {
            id: SignalId::new(),
            subject: Pseudonym([1; 32]),
            related: vec![RelatedPseudonym {
                pseudonym: Pseudonym([2; 32]),
                relation: Relation::Parent,
            }],
            category: Category::CoerciveControl,
            severity: Severity::Ernstig,
            meldcode_step: MeldcodeStep::Signalen,
            contact_point: ContactPointId::parse("aandachtsfunctionaris").unwrap(),
            registered_by: PrincipalId::parse("m.jansen").unwrap(),
            registered_at: UnixMillis(1),
            updated_at: UnixMillis(1),
            expires_at: UnixMillis(2),
            version: 1,
            expiry_reason: crate::domain::ExpiryReason::Retention,
        }
    }

    fn event(index: u64, text: &str) -> Change {
        Change::AppendAudit {
            index,
            canonical: format!("{{\"index\":{index},\"action\":\"{text}\"}}").into_bytes(),
            subjects: vec![Pseudonym([1; 32])],
            hashes: vec![(tlog_tiles::stored_hash_index(0, index), [index as u8; 32])],
            registers: None,
        }
    }

    fn raw(store: &SledStore, key: &[u8]) -> Vec<u8> {
        store.tree.get(key).unwrap().expect("the record").to_vec()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn content_values_are_sealed_and_read_back_and_proofs_need_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), ring(&[(1, 7)], 1)).unwrap();
        let s = signal();
        store
            .apply(&[Change::PutSignal(s.clone()), event(0, "signal.register")])
            .unwrap();
        assert_eq!(store.signal(&s.id).unwrap(), Some(s.clone()));
        let sealed = raw(&store, &key(SIGNAL, &[s.id.as_bytes()]));
        assert_eq!(
            crypt::sealed_under(&sealed),
            Some(DataKeyId::new(1).unwrap())
        );
        for needle in [
            "coercive_control",
            "ernstig",
            "aandachtsfunctionaris",
            "m.jansen",
        ] {
            assert!(!contains(&sealed, needle.as_bytes()), "{needle}");
        }
        let stored_event = raw(&store, &key(EVENT, &[&0u64.to_be_bytes()]));
        assert!(!contains(&stored_event, b"signal.register"));
        // The stored hash is in the clear, right after the count, for proofs without a key.
        assert_eq!(stored_event[..33], [[1u8].as_slice(), &[0u8; 32]].concat());
        assert_eq!(store.audit_hashes(&[0]).unwrap(), vec![[0u8; 32]]);
        let entry = store.audit_entries(0, 1).next().unwrap().unwrap();
        assert_eq!(
            entry.canonical,
            br#"{"index":0,"action":"signal.register"}"#
        );
        assert_eq!(
            store.audit_event(0).unwrap().unwrap(),
            br#"{"index":0,"action":"signal.register"}"#
        );
        // The index entries and the expiry index are keys only.
        assert_eq!(
            raw(
                &store,
                &key(EXPIRY, &[&ordered(s.expires_at), s.id.as_bytes()])
            ),
            b""
        );
        assert!(!store.data_keys().unwrap().needs_reseal());
    }

    #[test]
    fn a_changed_moved_or_unsealed_value_is_corruption_naming_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), ring(&[(1, 7)], 1)).unwrap();
        let (a, b) = (signal(), signal());
        store
            .apply(&[
                Change::PutSignal(a.clone()),
                Change::PutSignal(b.clone()),
                event(0, "x"),
            ])
            .unwrap();
        let key_a = key(SIGNAL, &[a.id.as_bytes()]);
        let key_b = key(SIGNAL, &[b.id.as_bytes()]);
        let sealed_a = raw(&store, &key_a);

        let mut flipped = sealed_a.clone();
        flipped[20] ^= 0x01;
        store.tree.insert(&key_a, flipped).unwrap();
        let error = store.signal(&a.id).unwrap_err().to_string();
        assert!(error.contains(&format!("signal {}", a.id)), "{error}");
        assert!(
            error.contains("does not authenticate under data key 1"),
            "{error}"
        );

        // Another record's value, intact, does not open under this record's key.
        store.tree.insert(&key_b, sealed_a.clone()).unwrap();
        let error = store.signal(&b.id).unwrap_err().to_string();
        assert!(error.contains(&format!("signal {}", b.id)), "{error}");

        // A value swapped for plaintext is not taken for one from before encryption.
        store.tree.insert(&key_a, encode(&a)).unwrap();
        let error = store.signal(&a.id).unwrap_err().to_string();
        assert!(error.contains("is not sealed"), "{error}");

        // An event's canonical bytes, flipped: the event is named.
        let event_key = key(EVENT, &[&0u64.to_be_bytes()]);
        let mut event = raw(&store, &event_key);
        let last = event.len() - 1;
        event[last] ^= 0x80;
        store.tree.insert(&event_key, event).unwrap();
        let error = store.audit_event(0).unwrap_err().to_string();
        assert!(error.contains("audit event 0"), "{error}");
    }

    #[test]
    fn rotation_reseals_everything_and_only_then_lets_the_old_key_go() {
        let dir = tempfile::tempdir().unwrap();
        let s = signal();
        // Written in the clear, then under key 1.
        {
            let store = open(dir.path(), None).unwrap();
            store
                .apply(&[Change::PutSignal(s.clone()), event(0, "clear")])
                .unwrap();
        }
        {
            let store = open(dir.path(), ring(&[(1, 7)], 1)).unwrap();
            let keys = store.data_keys().unwrap();
            assert!(keys.plaintext && keys.needs_reseal(), "{keys:?}");
            assert_eq!(
                store.signal(&s.id).unwrap(),
                Some(s.clone()),
                "plaintext still reads"
            );
            store.apply(&[event(1, "under key 1")]).unwrap();
        }
        // Without a keyring the store no longer opens: a value is sealed.
        let error = open(dir.path(), None).unwrap_err();
        assert!(
            matches!(error, StoreError::MissingDataKey { id } if id.get() == 1),
            "{error}"
        );
        // Key 1 under the wrong bytes is caught by its key check.
        let error = open(dir.path(), ring(&[(1, 9)], 1)).unwrap_err();
        assert!(
            matches!(error, StoreError::WrongDataKey { id } if id.get() == 1),
            "{error}"
        );

        let store = open(dir.path(), ring(&[(1, 7), (2, 8)], 2)).unwrap();
        store.apply(&[event(2, "under key 2")]).unwrap();
        let keys = store.data_keys().unwrap();
        assert_eq!(
            keys.keys.iter().map(|k| k.get()).collect::<Vec<_>>(),
            [1, 2]
        );
        // One record per page, to cross keyspaces and page boundaries.
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = store.unsealed_records(after.as_ref(), 1).unwrap();
            store.apply(&[Change::Reseal(page.records)]).unwrap();
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert!(pages >= 3, "signal, event 0, event 1: {pages}");
        assert!(
            store
                .unsealed_records(None, 100)
                .unwrap()
                .records
                .is_empty()
        );
        assert!(store.data_keys().unwrap().needs_reseal(), "not yet retired");
        store.apply(&[Change::RetireDataKeys]).unwrap();
        assert!(!store.data_keys().unwrap().needs_reseal());
        // From the retirement on, a value sealed under key 1 (by whoever holds that key and
        // can write the files) is corruption, though this keyring still holds key 1.
        let signal_key = key(SIGNAL, &[s.id.as_bytes()]);
        let resealed = store.tree.get(&signal_key).unwrap().unwrap().to_vec();
        let planted = ring(&[(1, 7)], 1).unwrap().seal(&signal_key, &encode(&s));
        store.tree.insert(&signal_key, planted.clone()).unwrap();
        let error = store.signal(&s.id).unwrap_err().to_string();
        assert!(error.contains(&format!("signal {}", s.id)), "{error}");
        assert!(error.contains("sealed under data key 1"), "{error}");
        store.tree.insert(&signal_key, resealed.clone()).unwrap();
        assert_eq!(store.signal(&s.id).unwrap(), Some(s.clone()));
        drop(store);
        // And after a restart with both keys configured.
        let store = open(dir.path(), ring(&[(1, 7), (2, 8)], 2)).unwrap();
        store.tree.insert(&signal_key, planted).unwrap();
        let error = store.signal(&s.id).unwrap_err().to_string();
        assert!(error.contains("sealed under data key 1"), "{error}");
        store.tree.insert(&signal_key, resealed).unwrap();
        drop(store);

        // Key 2 alone reads everything; the entries and their hashes are unchanged.
        let store = open(dir.path(), ring(&[(2, 8)], 2)).unwrap();
        assert_eq!(store.signal(&s.id).unwrap(), Some(s.clone()));
        let events: Vec<AuditEntry> = store.audit_entries(0, 3).map(Result::unwrap).collect();
        assert_eq!(events.len(), 3);
        assert!(contains(&events[0].canonical, b"clear"));
        assert!(contains(&events[1].canonical, b"under key 1"));
        assert_eq!(events[1].hashes, vec![(1, [1u8; 32])]);
        // Nothing is in the clear any more, and a plaintext value is now refused.
        store
            .tree
            .insert(key(SIGNAL, &[s.id.as_bytes()]), encode(&s))
            .unwrap();
        assert!(store.signal(&s.id).is_err());
    }

    #[test]
    fn a_restart_without_the_old_key_before_the_reseal_finished_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path(), ring(&[(1, 7)], 1)).unwrap();
            store.apply(&[Change::PutSignal(signal())]).unwrap();
        }
        {
            let store = open(dir.path(), ring(&[(1, 7), (2, 8)], 2)).unwrap();
            // Everything resealed, but not yet retired: key 1 is still on record.
            let page = store.unsealed_records(None, 100).unwrap();
            store.apply(&[Change::Reseal(page.records)]).unwrap();
        }
        let error = open(dir.path(), ring(&[(2, 8)], 2)).unwrap_err();
        assert!(matches!(error, StoreError::MissingDataKey { id } if id.get() == 1));
        assert!(error.to_string().contains("data key 1"), "{error}");
    }

    #[test]
    fn offline_tools_name_keys_by_the_store_s_key_checks() {
        let dir = tempfile::tempdir().unwrap();
        let s = signal();
        {
            let store = open(dir.path(), ring(&[(1, 7)], 1)).unwrap();
            store.apply(&[Change::PutSignal(s.clone())]).unwrap();
        }
        {
            let store = open(dir.path(), ring(&[(1, 7), (2, 8)], 2)).unwrap();
            store
                .apply(&[Change::PutOutbox(crate::domain::OutboxMessage {
                    id: MessageId::new(),
                    transaction: crate::domain::TransactionId::new(),
                    created: UnixMillis(1),
                    body: crate::domain::OutboxBody::RetractPointer {
                        signal: s.id,
                        reason: crate::domain::RetractReason::Other,
                    },
                    subjects: Vec::new(),
                })])
                .unwrap();
        }
        let bytes = |fill: u8| zeroize::Zeroizing::new([fill; 32]);
        let options = StoreOptions::default();
        let store =
            SledStore::open_with_keys(dir.path(), &options, vec![bytes(8), bytes(7)]).unwrap();
        assert_eq!(store.signal(&s.id).unwrap(), Some(s.clone()));
        assert_eq!(store.outbox(10).unwrap().len(), 1);
        drop(store);
        let error = SledStore::open_with_keys(dir.path(), &options, vec![bytes(8)]).unwrap_err();
        assert!(matches!(error, StoreError::MissingDataKey { id } if id.get() == 1));
        let error =
            SledStore::open_with_keys(dir.path(), &options, vec![bytes(7), bytes(3)]).unwrap_err();
        assert!(
            matches!(error, StoreError::UnrecognisedDataKey { given: 2 }),
            "{error}"
        );
    }

    /// The cursors of the notice feed, in order.
    fn cursors(store: &SledStore) -> Vec<u64> {
        store
            .notices_after(0)
            .map(|n| n.map(|n| n.cursor))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A notice about `signal` at `cursor`, as the index sends it.
    fn notice(cursor: u64, signal: SignalId) -> Change {
        let from = Oin::parse("00000001000000000001").unwrap();
        Change::PutNotice(Notice {
            cursor,
            received: UnixMillis(0),
            from,
            notice: IndexNotice::MatchEnded {
                signal,
                party: from,
            },
        })
    }

    #[test]
    fn a_signals_notices_go_with_it_and_cursors_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), None).unwrap();
        let (gone, kept) = (SignalId::new(), SignalId::new());
        store
            .apply(&[notice(1, gone), notice(2, kept), notice(3, gone)])
            .unwrap();
        store.apply(&[Change::DeleteNotices(gone)]).unwrap();
        assert_eq!(cursors(&store), vec![2]);
        assert!(store.tree.scan_prefix([NOTICE_OF]).all(|item| {
            let (k, _) = item.unwrap();
            &k[1..17] == kept.as_bytes()
        }));
        // The newest notice went, but its cursor was handed out: the next one is 4.
        assert_eq!(store.last_notice_cursor().unwrap(), 3);
    }

    #[test]
    fn a_store_from_before_the_notice_index_gets_it_at_its_first_open() {
        let dir = tempfile::tempdir().unwrap();
        let (gone, kept) = (SignalId::new(), SignalId::new());
        {
            let store = open(dir.path(), ring(&[(1, 7)], 1)).unwrap();
            store
                .apply(&[notice(1, gone), notice(2, kept), notice(3, gone)])
                .unwrap();
            // As an older kring left it: the notices, and no entries to find them by.
            let entries: Vec<_> = store
                .tree
                .scan_prefix([NOTICE_OF])
                .map(|item| item.unwrap().0)
                .collect();
            assert_eq!(entries.len(), 3);
            for at in entries {
                store.tree.remove(at).unwrap();
            }
            store.tree.remove(NOTICE_OF_BUILT_KEY).unwrap();
        }
        let store = open(dir.path(), ring(&[(1, 7)], 1)).unwrap();
        assert_eq!(store.tree.scan_prefix([NOTICE_OF]).count(), 3);
        store.apply(&[Change::DeleteNotices(gone)]).unwrap();
        assert_eq!(cursors(&store), vec![2]);
    }
}
