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
use super::{Change, Hash32, Store, StoreError, StoreIter};
use crate::domain::{OutboxMessage, Pseudonym, Signal, SignalId, UnixMillis};

/// The largest value the store writes, well under sled's blob threshold.
pub const VALUE_LIMIT: usize = 64 * 1024;

const SIGNAL: u8 = b's';
const PERSON: u8 = b'p';
const EXPIRY: u8 = b'x';
const OUTBOX: u8 = b'o';
const EVENT: u8 = b'e';
const HASH: u8 = b'h';
const SUBJECT: u8 = b'j';
const CHECKPOINT: u8 = b'c';

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 32 * 1024 * 1024,
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
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(None)
            .open()?;
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

struct BatchBuilder {
    batch: sled::Batch,
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
        self.batch.insert(key, value);
        Ok(())
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.batch.remove(key);
    }

    fn signal_indexes(&self, signal: &Signal) -> Vec<Vec<u8>> {
        let id = signal.id.as_bytes();
        let mut keys: Vec<Vec<u8>> = signal.persons().map(|p| key(PERSON, &[&p.0, id])).collect();
        keys.push(key(EXPIRY, &[&ordered(signal.expires_at), id]));
        keys
    }

    fn add(&mut self, change: &Change) -> Result<(), StoreError> {
        match change {
            Change::PutSignal(signal) => {
                self.put(key(SIGNAL, &[signal.id.as_bytes()]), encode(signal))?;
                for index in self.signal_indexes(signal) {
                    self.put(index, Vec::new())?;
                }
            }
            Change::DeleteSignal(signal) => {
                self.remove(key(SIGNAL, &[signal.id.as_bytes()]));
                for index in self.signal_indexes(signal) {
                    self.remove(index);
                }
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
            } => {
                let at = index.to_be_bytes();
                self.put(key(EVENT, &[&at]), canonical.clone())?;
                for subject in subjects {
                    self.put(key(SUBJECT, &[&subject.0, &at]), Vec::new())?;
                }
                for (stored_index, hash) in hashes {
                    self.put(key(HASH, &[&stored_index.to_be_bytes()]), hash.to_vec())?;
                }
            }
            Change::PutCheckpoint { size, note } => {
                self.put(
                    key(CHECKPOINT, &[&size.to_be_bytes()]),
                    note.as_bytes().to_vec(),
                )?;
            }
        }
        Ok(())
    }
}

impl Store for SledStore {
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut builder = BatchBuilder {
            batch: sled::Batch::default(),
        };
        for change in changes {
            builder.add(change)?;
        }
        self.tree.apply_batch(builder.batch)?;
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

    fn signal_ids_for_person(&self, person: &Pseudonym) -> Result<Vec<SignalId>, StoreError> {
        self.tree
            .scan_prefix(key(PERSON, &[&person.0]))
            .map(|item| id_suffix(&item?.0))
            .collect()
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
        Ok(self
            .tree
            .get(key(EVENT, &[&index.to_be_bytes()]))?
            .map(|v| v.to_vec()))
    }

    fn audit_events(&self, from: u64, until: u64) -> StoreIter<'_, (u64, Vec<u8>)> {
        let start = key(EVENT, &[&from.to_be_bytes()]);
        let end = key(EVENT, &[&until.to_be_bytes()]);
        Box::new(self.tree.range(start..end).map(|item| {
            let (k, v) = item?;
            Ok((u64_suffix(&k)?, v.to_vec()))
        }))
    }

    fn audit_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash32>, StoreError> {
        indexes
            .iter()
            .map(|index| {
                let k = key(HASH, &[&index.to_be_bytes()]);
                let value = self.tree.get(&k)?.ok_or_else(|| StoreError::Corrupt {
                    key: format!("stored hash {index}"),
                    problem: "missing".into(),
                })?;
                value.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    key: format!("stored hash {index}"),
                    problem: "not 32 bytes".into(),
                })
            })
            .collect()
    }

    fn audit_hash_range(&self, from: u64, until: u64) -> StoreIter<'_, (u64, Hash32)> {
        let start = key(HASH, &[&from.to_be_bytes()]);
        let end = key(HASH, &[&until.to_be_bytes()]);
        Box::new(self.tree.range(start..end).map(|item| {
            let (k, v) = item?;
            let hash: Hash32 = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                key: hex(&k),
                problem: "stored hash is not 32 bytes".into(),
            })?;
            Ok((u64_suffix(&k)?, hash))
        }))
    }

    fn audit_events_about(&self, subject: &Pseudonym, from: u64) -> StoreIter<'_, u64> {
        let start = key(SUBJECT, &[&subject.0, &from.to_be_bytes()]);
        let end = key(SUBJECT, &[&subject.0, &[0xff; 8]]);
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
}
