//! Compaction: copying a stopped node's store into fresh files and overwriting the old ones, so
//! that what was deleted (withdrawn and expired signals, their pointers and matches, delivered
//! outbox messages) is gone from the disk, not only from the store.
//!
//! sled writes a log of segments and reuses a segment only when it needs the space, so a
//! deleted value (and every key, which is stored in the clear) can stay readable in the files
//! long after the store dropped it. Compaction copies every live record of every tree, byte for
//! byte, into a new sled directory, compares the copy with the original record by record, swaps
//! the directories, and overwrites each old file with zeros before removing it. Values stay
//! sealed as they were (no data key is needed); the audit log, its Merkle hashes and its
//! checkpoints are copied unchanged, so the log verifies as before.
//!
//! Three siblings of the store directory `DIR` carry its state, so that an interrupted run is
//! finished (or started over) by running it again, and a node never starts on half a swap:
//! - `DIR.compacting`: the copy being built. A failed run overwrites and removes it; left
//!   behind by a crash, it is overwritten and started over by the next run.
//! - `DIR.superseded`: the old store, renamed once the copy was complete and checked, then
//!   overwritten and removed. If it exists without `DIR`, the copy is moved into place first.
//! - `DIR.compacted`: what each run since the node last started did ([`Compacted`], a JSON
//!   line each, written once the new files are in place); the node records each in its audit
//!   log (`store.compacted`) at its next start and removes the file once that is durable.
//!
//! Opening a store refuses while `DIR.compacting` or `DIR.superseded` exists ([`pending`]). One
//! run at a time holds a lock on `DIR.compact-lock` (an empty file, left in place).
//! What it cannot reach: copies outside the directory (backups, snapshots of the file system),
//! and blocks a file system or device keeps elsewhere when a file is overwritten (copy-on-write
//! file systems, flash wear levelling). Keys sealed away with encryption at rest close the
//! rest: destroying a retired data key makes such leftovers unreadable.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::sled_store::is_lock_error;

/// What a compaction did, as it leaves it for the node's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compacted {
    /// When it finished, RFC 3339.
    pub finished: String,
    /// Records copied, over every tree.
    pub records: u64,
    /// The store's files before and after, in bytes.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Why compaction could not run or finish. Each names the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("{0}: no store here")]
    NoStore(PathBuf),
    #[error("{0}: the store is in use; stop the node first")]
    InUse(PathBuf),
    #[error("{0}: another compaction of this store is running")]
    Running(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Engine { path: PathBuf, source: sled::Error },
    #[error("{path}: the copy differs from the store in tree {tree:?}: {problem}")]
    Mismatch {
        path: PathBuf,
        tree: String,
        problem: String,
    },
    #[error(
        "{failed}; and its copy {} could not be removed ({cleanup}): run the command again, \
         which removes it, before starting the node",
        copy.display()
    )]
    CopyLeft {
        failed: Box<CompactError>,
        copy: PathBuf,
        cleanup: Box<CompactError>,
    },
}

fn sibling(store: &Path, suffix: &str) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    store.with_file_name(name)
}

/// The directory a compaction builds its copy in.
pub fn compacting_path(store: &Path) -> PathBuf {
    sibling(store, ".compacting")
}

/// The old store while it is being overwritten.
pub fn superseded_path(store: &Path) -> PathBuf {
    sibling(store, ".superseded")
}

/// The record the node audits at its next start.
pub fn record_path(store: &Path) -> PathBuf {
    sibling(store, ".compacted")
}

/// An unfinished compaction of `store`, if any: the store must not be opened until
/// `kring store compact` has run again.
pub fn pending(store: &Path) -> Result<(), StoreError> {
    for leftover in [compacting_path(store), superseded_path(store)] {
        if leftover.exists() {
            return Err(StoreError::CompactionPending {
                store: store.to_owned(),
                leftover,
            });
        }
    }
    Ok(())
}

/// Compacts the store in `store`, which no node may have open. Finishes or restarts an
/// interrupted compaction first.
pub fn compact(store: &Path, finished: String) -> Result<Compacted, CompactError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CompactError::Io { path, source }
    };
    let _running = RunLock::take(store)?;
    let copy = compacting_path(store);
    let superseded = superseded_path(store);
    if superseded.exists() && !store.exists() {
        // Interrupted between the two renames: the copy was complete and checked, so it goes
        // into place; without it (removed by hand), the old store goes back.
        let back = if copy.exists() { &copy } else { &superseded };
        std::fs::rename(back, store).map_err(io(back))?;
        sync_parent(store)?;
    }
    if superseded.exists() {
        // Interrupted after the swap: the old store is on its way out.
        shred(&superseded)?;
    }
    if copy.exists() {
        // Interrupted while copying: start over.
        shred(&copy)?;
    }
    if !store.join("db").exists() {
        return Err(CompactError::NoStore(store.to_owned()));
    }
    let compacted = match build_copy(store, &copy, finished) {
        Ok(compacted) => compacted,
        Err(failed) => {
            // The store is untouched until the swap: without the copy the node starts on it.
            // sled's I/O threads may hold the copy's files a moment after its last handle.
            if copy.exists()
                && let Err(cleanup) = wait_released(&copy).and_then(|()| shred(&copy))
            {
                return Err(CompactError::CopyLeft {
                    failed: Box::new(failed),
                    copy,
                    cleanup: Box::new(cleanup),
                });
            }
            return Err(failed);
        }
    };
    std::fs::rename(store, &superseded).map_err(io(store))?;
    sync_parent(store)?;
    std::fs::rename(&copy, store).map_err(io(&copy))?;
    sync_parent(store)?;
    append_record(store, &compacted)?;
    shred(&superseded)?;
    Ok(compacted)
}

/// Builds the checked and synced copy of `store` in `copy`.
fn build_copy(store: &Path, copy: &Path, finished: String) -> Result<Compacted, CompactError> {
    let bytes_before = size(store)?;
    let records = {
        let old = open(store, true)?;
        let new = open(copy, false)?;
        let records = copy_trees(&old, &new, copy)?;
        new.flush().map_err(engine(copy))?;
        compare(&old, &new, copy)?;
        records
    };
    // sled's I/O threads let go of the files a moment after the last handle is dropped.
    wait_released(store)?;
    wait_released(copy)?;
    sync_all(copy)?;
    Ok(Compacted {
        finished,
        records,
        bytes_before,
        bytes_after: size(copy)?,
    })
}

fn engine(path: &Path) -> impl FnOnce(sled::Error) -> CompactError {
    let path = path.to_owned();
    move |source| CompactError::Engine { path, source }
}

fn open(path: &Path, existing: bool) -> Result<sled::Db, CompactError> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(256 * 1024 * 1024)
        .flush_every_ms(None);
    match config.open() {
        Ok(db) => Ok(db),
        Err(sled::Error::Io(e)) if existing && is_lock_error(&e) => {
            Err(CompactError::InUse(path.to_owned()))
        }
        Err(e) => Err(engine(path)(e)),
    }
}

/// One compaction of a store at a time: an exclusive lock on `DIR.compact-lock`, released
/// with the file handle. The empty file stays: removing it could let a second run lock a
/// file a third has already replaced.
struct RunLock {
    _file: File,
}

impl RunLock {
    fn take(store: &Path) -> Result<RunLock, CompactError> {
        use fs2::FileExt;
        let path = sibling(store, ".compact-lock");
        let io = |source| CompactError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(e) if is_lock_error(&e) => Err(CompactError::Running(store.to_owned())),
            Err(e) => Err(io(e)),
        }
    }
}

/// Waits until no sled instance holds the store in `dir` (its lock on `dir/db`); a directory
/// without `db` has nothing to wait for.
fn wait_released(dir: &Path) -> Result<(), CompactError> {
    use fs2::FileExt;
    let path = dir.join("db");
    let io = |source| CompactError::Io {
        path: path.clone(),
        source,
    };
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    for _ in 0..200 {
        match file.try_lock_exclusive() {
            Ok(()) => return FileExt::unlock(&file).map_err(io),
            Err(e) if is_lock_error(&e) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(e) => return Err(io(e)),
        }
    }
    Err(CompactError::InUse(dir.to_owned()))
}

/// Copies every tree's records, in order; returns how many.
fn copy_trees(old: &sled::Db, new: &sled::Db, path: &Path) -> Result<u64, CompactError> {
    let mut records = 0;
    for name in old.tree_names() {
        let from = old.open_tree(&name).map_err(engine(path))?;
        let to = new.open_tree(&name).map_err(engine(path))?;
        for entry in from.iter() {
            let (key, value) = entry.map_err(engine(path))?;
            to.insert(key, value).map_err(engine(path))?;
            records += 1;
        }
    }
    Ok(records)
}

/// Compares the copy with the store, tree by tree and record by record.
fn compare(old: &sled::Db, new: &sled::Db, path: &Path) -> Result<(), CompactError> {
    let mismatch = |tree: &[u8], problem: String| CompactError::Mismatch {
        path: path.to_owned(),
        tree: String::from_utf8_lossy(tree).into_owned(),
        problem,
    };
    let (mut names, mut copied) = (old.tree_names(), new.tree_names());
    names.sort();
    copied.sort();
    if names != copied {
        return Err(mismatch(b"", "the trees differ".into()));
    }
    for name in names {
        let from = old.open_tree(&name).map_err(engine(path))?;
        let to = new.open_tree(&name).map_err(engine(path))?;
        let mut copy = to.iter();
        for entry in from.iter() {
            let original = entry.map_err(engine(path))?;
            match copy.next().transpose().map_err(engine(path))? {
                Some(copied) if copied == original => {}
                Some(_) => return Err(mismatch(&name, "a record differs".into())),
                None => return Err(mismatch(&name, "the copy ends early".into())),
            }
        }
        if copy.next().is_some() {
            return Err(mismatch(&name, "the copy has more records".into()));
        }
    }
    Ok(())
}

/// Adds a line to the record the node audits at its next start: one per compaction since.
fn append_record(store: &Path, compacted: &Compacted) -> Result<(), CompactError> {
    let path = record_path(store);
    let io = |source| CompactError::Io {
        path: path.clone(),
        source,
    };
    let mut line = serde_json::to_vec(compacted).expect("plain fields serialise");
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    file.write_all(&line).map_err(io)?;
    file.sync_all().map_err(io)?;
    sync_parent(store)
}

/// The compactions recorded since the node last started, oldest first.
pub fn read_records(store: &Path) -> Result<Vec<Compacted>, StoreError> {
    let path = record_path(store);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| StoreError::Corrupt {
                key: path.display().to_string(),
                problem: e.to_string(),
            })
        })
        .collect()
}

/// The bytes of every file under `dir`.
fn size(dir: &Path) -> Result<u64, CompactError> {
    files(dir)?.iter().try_fold(0, |total, file| {
        let len = file
            .metadata()
            .map_err(|source| CompactError::Io {
                path: file.clone(),
                source,
            })?
            .len();
        Ok(total + len)
    })
}

/// Every file under `dir`, recursively. Symbolic links (sled makes none) are neither followed
/// nor listed: overwriting must not reach outside the store.
fn files(dir: &Path) -> Result<Vec<PathBuf>, CompactError> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| CompactError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let io = |source| CompactError::Io {
                path: dir.clone(),
                source,
            };
            let entry = entry.map_err(io)?;
            let kind = entry.file_type().map_err(io)?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    Ok(found)
}

fn sync_all(dir: &Path) -> Result<(), CompactError> {
    for path in files(dir)?.into_iter().chain([dir.to_owned()]) {
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|source| CompactError::Io { path, source })?;
    }
    Ok(())
}

fn sync_parent(store: &Path) -> Result<(), CompactError> {
    let parent = match store.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    File::open(&parent)
        .and_then(|f| f.sync_all())
        .map_err(|source| CompactError::Io {
            path: parent,
            source,
        })
}

/// Overwrites every file under `dir` with zeros, syncs it, and removes the directory.
fn shred(dir: &Path) -> Result<(), CompactError> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    for path in files(dir)? {
        let io = |source| CompactError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new().write(true).open(&path).map_err(io)?;
        let mut left = file.metadata().map_err(io)?.len();
        while left > 0 {
            let n = left.min(ZEROS.len() as u64) as usize;
            file.write_all(&ZEROS[..n]).map_err(io)?;
            left -= n as u64;
        }
        file.sync_all().map_err(io)?;
    }
    std::fs::remove_dir_all(dir).map_err(|source| CompactError::Io {
        path: dir.to_owned(),
        source,
    })?;
    sync_parent(dir)
}
