//! The sled implementation of [`Store`]: one tree, keyspaces by a one-byte prefix, every
//! [`Change`] list applied as one sled batch (sled recovers a batch atomically).
//!
//! Durability: sled's `flush` writes its log with `sync_file_range`, which survives a process
//! crash but does not flush the device's write cache or the file's metadata. [`Store::sync`]
//! therefore also calls `fdatasync` on sled's data file. sled writes values larger than a
//! quarter segment (128 KiB) to separate blob files that it never fsyncs, so every value here
//! is refused above [`VALUE_LIMIT`].

use std::fs::File;
use std::path::{Path, PathBuf};

use super::migrations::{self, MIGRATIONS};
use super::{AuditEntry, Change, Hash32, Store, StoreError, StoreIter};
use crate::domain::{
    BreakGlassItem, MessageId, Notice, Oin, OutboxMessage, Pointer, Pseudonym, ReceivedMelding,
    Regie, Signal, SignalId, UnixMillis, Waakvlam,
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
// An organisation.
/// `N<cursor>`: the notice feed.
const NOTICE: u8 = b'N';
/// `A<signal>`: the current match of a signal.
const MATCH: u8 = b'A';
/// `G<message id>`: a received melding.
const MELDING: u8 = b'G';
/// `B<id>`: a break-glass item.
const BREAK_GLASS: u8 = b'B';

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 16 * 1024 * 1024,
        }
    }
}

pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    /// A second handle on sled's log file, for `fdatasync` (fsync is per inode).
    data_file: File,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `path` and brings its schema up to date.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<SledStore, StoreError> {
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
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("lock") =>
                {
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
        migrations::migrate(&tree, MIGRATIONS)?;
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
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema_version(&self) -> u32 {
        migrations::current_version(MIGRATIONS)
    }
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

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(&key[..1]).into_owned() + &hex(&key[1..]),
        problem: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise to JSON without fail")
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

fn entry(index: u64, value: &[u8]) -> Result<AuditEntry, StoreError> {
    let (hashes, canonical) = split_event(index, value)?;
    let first = tlog_tiles::stored_hash_index(0, index);
    Ok(AuditEntry {
        index,
        hashes: hashes
            .into_iter()
            .enumerate()
            .map(|(i, h)| (first + i as u64, h))
            .collect(),
        canonical: canonical.to_vec(),
    })
}

/// The writes of one change list, applied in one sled transaction.
struct BatchBuilder {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl BatchBuilder {
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
                self.put(key(SIGNAL, &[id]), encode(signal))?;
                self.put(key(EXPIRY, &[&ordered(signal.expires_at), id]), Vec::new())?;
            }
            Change::DeleteSignal(signal) => {
                let id = signal.id.as_bytes();
                self.remove(key(SIGNAL, &[id]));
                self.remove(key(EXPIRY, &[&ordered(signal.expires_at), id]));
            }
            Change::PutOutbox(message) => {
                self.put(key(OUTBOX, &[message.id.as_bytes()]), encode(message))?;
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
                let mut value = Vec::with_capacity(1 + 32 * hashes.len() + canonical.len());
                value.push(hashes.len() as u8);
                for (_, hash) in hashes {
                    value.extend_from_slice(hash);
                }
                value.extend_from_slice(canonical);
                self.put(key(EVENT, &[&at]), value)?;
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
                self.put(key(POINTER, at), encode(pointer))?;
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
            } => self.put(
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
                self.put(key(REGIE, &[&person.0]), encode(regie))?
            }
            Change::DeleteRegie { person } => self.remove(key(REGIE, &[&person.0])),
            Change::PutWaakvlam(waakvlam) => {
                self.put(key(WAAKVLAM, &[waakvlam.id.as_bytes()]), encode(waakvlam))?;
                for person in &waakvlam.persons {
                    self.put(
                        key(WAAKVLAM_PERSON, &[&person.0, waakvlam.id.as_bytes()]),
                        Vec::new(),
                    )?;
                }
            }
            Change::PutNotice(notice) => {
                self.put(key(NOTICE, &[&notice.cursor.to_be_bytes()]), encode(notice))?;
            }
            Change::PutMatch(notice) => {
                let signal = match &notice.notice {
                    crate::domain::IndexNotice::Match { signal, .. } => *signal,
                    _ => {
                        return Err(StoreError::Corrupt {
                            key: "match".into(),
                            problem: "only match notices are kept as matches".into(),
                        });
                    }
                };
                self.put(key(MATCH, &[signal.as_bytes()]), encode(notice))?;
            }
            Change::DeleteMatch(signal) => self.remove(key(MATCH, &[signal.as_bytes()])),
            Change::PutMelding(melding) => {
                self.put(key(MELDING, &[melding.message.as_bytes()]), encode(melding))?;
            }
            Change::PutBreakGlass(item) => {
                self.put(key(BREAK_GLASS, &[item.id.as_bytes()]), encode(item))?;
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
        let mut builder = BatchBuilder { writes: Vec::new() };
        for change in changes {
            builder.add(change)?;
        }
        let writes = builder.writes;
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
                Ok::<_, sled::transaction::ConflictableTransactionError<std::convert::Infallible>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Engine(e),
                sled::transaction::TransactionError::Abort(never) => match never {},
            })?;
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
        self.tree.get(&k)?.map(|v| decode(&k, &v)).transpose()
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
            decode(&k, &v)
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
                decode(&k, &v)
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
            Some(value) => Ok(Some(split_event(index, &value)?.1.to_vec())),
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
            entry(u64_suffix(&k)?, &v)
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
        self.tree.get(&k)?.map(|v| decode(&k, &v)).transpose()
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
        self.tree.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    fn regie(&self, person: &Pseudonym) -> Result<Option<Regie>, StoreError> {
        let k = key(REGIE, &[&person.0]);
        self.tree.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    fn waakvlam(&self, id: &SignalId) -> Result<Option<Waakvlam>, StoreError> {
        let k = key(WAAKVLAM, &[id.as_bytes()]);
        self.tree.get(&k)?.map(|v| decode(&k, &v)).transpose()
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
                decode(&k, &v)
            })
            .collect()
    }

    fn notices_after(&self, after: u64) -> StoreIter<'_, Notice> {
        let start = key(NOTICE, &[&after.saturating_add(1).to_be_bytes()]);
        Box::new(self.tree.range(start..vec![NOTICE + 1]).map(|item| {
            let (k, v) = item?;
            decode(&k, &v)
        }))
    }

    fn last_notice_cursor(&self) -> Result<u64, StoreError> {
        match self.tree.scan_prefix([NOTICE]).next_back() {
            Some(item) => u64_suffix(&item?.0),
            None => Ok(0),
        }
    }

    fn matches(&self) -> Result<Vec<Notice>, StoreError> {
        self.tree
            .scan_prefix([MATCH])
            .map(|item| {
                let (k, v) = item?;
                decode(&k, &v)
            })
            .collect()
    }

    fn meldingen(&self) -> Result<Vec<ReceivedMelding>, StoreError> {
        self.tree
            .scan_prefix([MELDING])
            .map(|item| {
                let (k, v) = item?;
                decode(&k, &v)
            })
            .collect()
    }

    fn break_glass_items(&self) -> Result<Vec<BreakGlassItem>, StoreError> {
        self.tree
            .scan_prefix([BREAK_GLASS])
            .map(|item| {
                let (k, v) = item?;
                decode(&k, &v)
            })
            .collect()
    }
}
