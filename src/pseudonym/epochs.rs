//! A pseudonym service's index epoch secrets: one random 32-byte secret per key epoch of the
//! index, from which the service derives the index's share of that epoch's at-rest key.
//!
//! The index keeps its pointers under `HMAC(K_e, P)` and the federation pseudonyms it must hand
//! out sealed under `K_e`, where `K_e` is derived from one share per service of the chain
//! (see `index::vault`). A service's share for epoch `e` is
//! `HMAC-SHA256(secret_e, "kring/v1 index key share\0" || index OIN || e)`: bound to the index
//! that asked and to the epoch, so a share given to one index is no use for another.
//!
//! The secrets live in their own file beside the service's OPRF key (`<key>.epochs`, mode
//! 0600): a line `retired N` (epochs below N are gone for good) and one line `e hex` per epoch
//! held. Epoch `latest + 1` is created when the index starts it (its first epoch, or a rotation
//! starting), never when the index asks for the share of an epoch it already works under;
//! older epochs are deleted when the index says it has moved every person past them.
//!
//! The OPRF key is untouched by all this: replacing it would change every federation pseudonym,
//! and the organisations' local pseudonyms (keyed hashes of them) could not follow.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::{hmac, rand::SecureRandom};
use zeroize::Zeroizing;

use crate::domain::Oin;

const SHARE_DOMAIN: &[u8] = b"kring/v1 index key share\0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    #[error("epoch: must be 1 or more")]
    Zero,
    #[error("epoch: {asked} is retired at this service (it holds epochs from {oldest})")]
    Retired { asked: u32, oldest: u32 },
    #[error(
        "epoch: {asked} is ahead of this service, whose newest epoch is {newest}; only {next} can be started"
    )]
    Ahead { asked: u32, newest: u32, next: u32 },
    #[error(
        "epoch: {asked} is not held at this service (its newest is {newest}); only the index starting an epoch creates it, and an epochs file restored from an older backup lacks the epochs started since"
    )]
    NotHeld { asked: u32, newest: u32 },
    #[error("before: {before} would retire epoch {newest}, the newest this service holds")]
    RetireNewest { before: u32, newest: u32 },
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
}

#[derive(Default)]
struct Held {
    retired_before: u32,
    secrets: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

/// The epoch secrets of one pseudonym service, persisted in their file on every change.
pub struct IndexEpochs {
    path: PathBuf,
    held: Mutex<Held>,
}

impl std::fmt::Debug for IndexEpochs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexEpochs(***)")
    }
}

impl IndexEpochs {
    /// The secrets file that goes with a service's OPRF key file.
    pub fn path_for(key_file: &Path) -> PathBuf {
        let mut name = key_file.file_name().unwrap_or_default().to_os_string();
        name.push(".epochs");
        key_file.with_file_name(name)
    }

    /// Reads the file, or starts empty if there is none (it is written at the first epoch).
    pub fn open(path: &Path) -> Result<IndexEpochs, EpochError> {
        let file_error = |problem: String| EpochError::File {
            path: path.display().to_string(),
            problem,
        };
        let mut held = Held::default();
        match std::fs::read_to_string(path).map(Zeroizing::new) {
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    let bad = || file_error(format!("line {}: not `retired N` or `N hex`", n + 1));
                    let (head, tail) = line.split_once(' ').ok_or_else(bad)?;
                    if head == "retired" {
                        held.retired_before = tail.parse().map_err(|_| bad())?;
                        continue;
                    }
                    let epoch: u32 = head.parse().map_err(|_| bad())?;
                    let mut secret = Zeroizing::new([0u8; 32]);
                    let bytes = Zeroizing::new(decode_hex(tail).ok_or_else(bad)?);
                    if bytes.len() != 32 || epoch == 0 {
                        return Err(bad());
                    }
                    secret.copy_from_slice(&bytes);
                    held.secrets.insert(epoch, secret);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(e.to_string())),
        }
        Ok(IndexEpochs {
            path: path.to_path_buf(),
            held: Mutex::new(held),
        })
    }

    /// The index's share of `epoch`'s key, for an epoch this service holds. It never creates
    /// one: an index asking for the epoch it works under must get that epoch's share or a
    /// refusal, never a fresh secret (an epochs file restored from an old backup lacks it).
    pub fn share(&self, index: &Oin, epoch: u32) -> Result<[u8; 32], EpochError> {
        self.share_or_start(index, epoch, false)
    }

    /// The index's share of `epoch`'s key as the index starts the epoch (its first, or a
    /// rotation's next): the epoch is created when it is the one after the newest held, and
    /// an epoch already held (a start asked again) gives its share.
    pub fn start(&self, index: &Oin, epoch: u32) -> Result<[u8; 32], EpochError> {
        self.share_or_start(index, epoch, true)
    }

    fn share_or_start(&self, index: &Oin, epoch: u32, start: bool) -> Result<[u8; 32], EpochError> {
        if epoch == 0 {
            return Err(EpochError::Zero);
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let newest = held.secrets.keys().next_back().copied().unwrap_or(0);
        let oldest = held
            .secrets
            .keys()
            .next()
            .copied()
            .unwrap_or(held.retired_before.max(1));
        if epoch < held.retired_before.max(oldest) {
            return Err(EpochError::Retired {
                asked: epoch,
                oldest,
            });
        }
        if !held.secrets.contains_key(&epoch) {
            if !start {
                return Err(EpochError::NotHeld {
                    asked: epoch,
                    newest,
                });
            }
            let next = newest.max(held.retired_before.saturating_sub(1)) + 1;
            if epoch != next {
                return Err(EpochError::Ahead {
                    asked: epoch,
                    newest,
                    next,
                });
            }
            let mut secret = Zeroizing::new([0u8; 32]);
            ring::rand::SystemRandom::new()
                .fill(&mut secret[..])
                .map_err(|_| EpochError::File {
                    path: self.path.display().to_string(),
                    problem: "the system's random source failed".into(),
                })?;
            held.secrets.insert(epoch, secret);
            if let Err(e) = self.write(&held) {
                held.secrets.remove(&epoch);
                return Err(e);
            }
        }
        let secret = &held.secrets[&epoch];
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret[..]);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(SHARE_DOMAIN);
        ctx.update(index.as_str().as_bytes());
        ctx.update(&epoch.to_be_bytes());
        let mut share = [0u8; 32];
        share.copy_from_slice(ctx.sign().as_ref());
        Ok(share)
    }

    /// Deletes every epoch before `before`; the newest held is never deleted. Returns the
    /// oldest epoch left.
    pub fn retire_before(&self, before: u32) -> Result<u32, EpochError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let newest = held.secrets.keys().next_back().copied().unwrap_or(0);
        if before > newest {
            return Err(EpochError::RetireNewest { before, newest });
        }
        if before > held.retired_before {
            let kept = held.secrets.split_off(&before);
            let gone = std::mem::replace(&mut held.secrets, kept);
            let previous = held.retired_before;
            held.retired_before = before;
            if let Err(e) = self.write(&held) {
                held.secrets.extend(gone);
                held.retired_before = previous;
                return Err(e);
            }
        }
        Ok(held.secrets.keys().next().copied().unwrap_or(before))
    }

    /// Writes the whole file anew (a temporary file, synced, then renamed over the old one).
    fn write(&self, held: &Held) -> Result<(), EpochError> {
        let error = |e: std::io::Error| EpochError::File {
            path: self.path.display().to_string(),
            problem: e.to_string(),
        };
        let mut text = Zeroizing::new(format!("retired {}\n", held.retired_before));
        for (epoch, secret) in &held.secrets {
            text.push_str(&format!("{epoch} "));
            for b in secret.iter() {
                text.push_str(&format!("{b:02x}"));
            }
            text.push('\n');
        }
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary).map_err(error)?;
        file.write_all(text.as_bytes()).map_err(error)?;
        file.sync_all().map_err(error)?;
        std::fs::rename(&temporary, &self.path).map_err(error)?;
        if let Some(dir) = self.path.parent()
            && let Ok(dir) = std::fs::File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oin(n: u8) -> Oin {
        Oin::parse(&format!("0000000012345678{n:04}")).expect("a valid OIN")
    }

    #[test]
    fn epochs_start_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = IndexEpochs::path_for(&dir.path().join("pseudonym.key"));
        assert!(path.ends_with("pseudonym.key.epochs"));
        let epochs = IndexEpochs::open(&path).expect("no file yet");
        assert_eq!(epochs.share(&oin(1), 0), Err(EpochError::Zero));
        assert_eq!(
            epochs.share(&oin(1), 1),
            Err(EpochError::NotHeld {
                asked: 1,
                newest: 0
            }),
            "asking for a share creates nothing"
        );
        assert_eq!(
            epochs.start(&oin(1), 2),
            Err(EpochError::Ahead {
                asked: 2,
                newest: 0,
                next: 1
            })
        );
        let first = epochs.start(&oin(1), 1).expect("epoch 1 starts");
        assert_eq!(epochs.share(&oin(1), 1), Ok(first), "the same share again");
        assert_eq!(epochs.start(&oin(1), 1), Ok(first), "a start asked again");
        assert_ne!(epochs.share(&oin(2), 1).expect("another index"), first);
        assert_eq!(
            epochs.share(&oin(1), 2),
            Err(EpochError::NotHeld {
                asked: 2,
                newest: 1
            })
        );
        let second = epochs.start(&oin(1), 2).expect("epoch 2 starts");
        assert_ne!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("written")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let reopened = IndexEpochs::open(&path).expect("reopens");
        assert_eq!(reopened.share(&oin(1), 1), Ok(first));
        assert_eq!(reopened.share(&oin(1), 2), Ok(second));
        assert_eq!(
            reopened.retire_before(3),
            Err(EpochError::RetireNewest {
                before: 3,
                newest: 2
            })
        );
        assert_eq!(reopened.retire_before(2), Ok(2));
        assert_eq!(
            reopened.share(&oin(1), 1),
            Err(EpochError::Retired {
                asked: 1,
                oldest: 2
            })
        );
        let after = IndexEpochs::open(&path).expect("reopens after retiring");
        assert_eq!(
            after.share(&oin(1), 1),
            Err(EpochError::Retired {
                asked: 1,
                oldest: 2
            })
        );
        assert_eq!(after.share(&oin(1), 2), Ok(second));
        assert!(after.share(&oin(1), 3).is_err(), "epoch 3 is not held");
        assert_eq!(after.start(&oin(1), 3).map(|s| s != second), Ok(true));
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.starts_with("retired 2\n"), "{text}");
        assert!(!text.contains("\n1 "), "epoch 1's secret is gone: {text}");
    }

    #[test]
    fn a_damaged_file_is_refused_naming_the_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pseudonym.key.epochs");
        std::fs::write(&path, "retired 0\n1 abcd\n").expect("write");
        let e = IndexEpochs::open(&path).expect_err("a short secret");
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
