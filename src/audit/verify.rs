//! End-to-end verification of an audit log from its bytes alone: every event in its place,
//! time never going back, every stored hash equal to the one recomputed from the events, every
//! checkpoint signed by the pinned key and equal to the recomputed root at its size, and every
//! checkpoint the reader saved before still a prefix of the log. It reports the first break,
//! naming the event, stored hash or checkpoint where it is.

use std::fmt;

use super::checkpoint::{self, SignedCheckpoint};
use super::event::index_and_time;
use super::merkle::{EMPTY_ROOT, Frontier, Hash32, leaf_hash};
use super::note::NoteVerifier;
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    Read {
        what: String,
        error: String,
    },
    /// Position `expected` holds no event; the next one found claims `found`.
    MissingEvent {
        expected: u64,
        found: u64,
    },
    /// The bytes at position `position` do not start with their own index and time.
    Misplaced {
        position: u64,
    },
    TimeWentBack {
        index: u64,
        time: i64,
        previous: i64,
    },
    /// The event at `index` no longer hashes to the leaf hash stored when it was written.
    EventChanged {
        index: u64,
    },
    /// A stored subtree hash disagrees with the events under it.
    StoredHash {
        stored_index: u64,
        first_event: u64,
        last_event: u64,
    },
    MissingStoredHash {
        stored_index: u64,
    },
    /// Stored hashes exist for events the log does not have.
    ExtraStoredHashes {
        log_size: u64,
    },
    CheckpointUnreadable {
        size: u64,
        error: String,
    },
    CheckpointOrigin {
        size: u64,
        found: String,
    },
    CheckpointSizeMismatch {
        listed: u64,
        signed: u64,
    },
    /// The events up to `size` do not give the root the checkpoint signed.
    CheckpointRoot {
        size: u64,
    },
    /// The log is shorter than a checkpoint says it was.
    Truncated {
        checkpoint_size: u64,
        log_size: u64,
    },
    /// A checkpoint the reader trusted is not a prefix of this log: history was rewritten.
    TrustedCheckpoint {
        size: u64,
    },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::Read { what, error } => write!(f, "cannot read {what}: {error}"),
            Break::MissingEvent { expected, found } => {
                write!(f, "event {expected} is missing (the next event is {found})")
            }
            Break::Misplaced { position } => write!(
                f,
                "the bytes at position {position} do not begin with index {position} and a time"
            ),
            Break::TimeWentBack {
                index,
                time,
                previous,
            } => write!(
                f,
                "event {index} has time {time}, before the previous event's {previous}"
            ),
            Break::EventChanged { index } => write!(
                f,
                "event {index} does not hash to the leaf hash stored when it was written: it was changed"
            ),
            Break::StoredHash {
                stored_index,
                first_event,
                last_event,
            } => write!(
                f,
                "stored hash {stored_index} disagrees with events {first_event}..={last_event}"
            ),
            Break::MissingStoredHash { stored_index } => {
                write!(f, "stored hash {stored_index} is missing")
            }
            Break::ExtraStoredHashes { log_size } => write!(
                f,
                "stored hashes exist beyond the last event ({log_size} events): events were removed"
            ),
            Break::CheckpointUnreadable { size, error } => {
                write!(f, "checkpoint at size {size}: {error}")
            }
            Break::CheckpointOrigin { size, found } => {
                write!(f, "checkpoint at size {size} names another log: {found:?}")
            }
            Break::CheckpointSizeMismatch { listed, signed } => {
                write!(f, "checkpoint listed at size {listed} signs size {signed}")
            }
            Break::CheckpointRoot { size } => write!(
                f,
                "the events 0..{size} do not give the root signed in the checkpoint at size {size}"
            ),
            Break::Truncated {
                checkpoint_size,
                log_size,
            } => write!(
                f,
                "a checkpoint covers {checkpoint_size} events but the log has {log_size}: events were removed"
            ),
            Break::TrustedCheckpoint { size } => write!(
                f,
                "the log does not extend the trusted checkpoint at size {size}: history was rewritten"
            ),
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub checkpoints: u64,
    pub stored_hashes: u64,
    pub root: Hash32,
    /// Whether checkpoint signatures were checked against a pinned key.
    pub signatures_checked: bool,
    pub problem: Option<Break>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Checks logs against what a reader knows: optionally the log's verifier key and origin, and
/// checkpoints saved earlier.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    key: Option<NoteVerifier>,
    origin: Option<String>,
    trusted: Vec<SignedCheckpoint>,
}

type Item<T> = Result<T, String>;

impl Verifier {
    pub fn new(key: Option<NoteVerifier>) -> Verifier {
        Verifier {
            key,
            origin: None,
            trusted: Vec::new(),
        }
    }

    pub fn expect_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// A checkpoint the reader saved before; the log must extend it.
    pub fn trust(mut self, checkpoint: SignedCheckpoint) -> Self {
        self.trusted.push(checkpoint);
        self.trusted.sort_by_key(|c| c.size);
        self
    }

    /// Verifies a log given as its events in index order, optionally its stored hashes in
    /// stored-index order (from a store; absent over the API), and its checkpoints.
    pub fn verify<B: AsRef<[u8]>>(
        &self,
        events: impl Iterator<Item = Item<(u64, B)>>,
        stored: Option<&mut dyn Iterator<Item = Item<(u64, Hash32)>>>,
        checkpoints: impl Iterator<Item = Item<(u64, String)>>,
    ) -> Report {
        let mut run = Run {
            report: Report {
                events: 0,
                checkpoints: 0,
                stored_hashes: 0,
                root: EMPTY_ROOT,
                signatures_checked: self.key.is_some(),
                problem: None,
            },
            frontier: Frontier::default(),
        };
        let result = self.run(&mut run, events, stored, checkpoints);
        run.report.events = run.frontier.size();
        run.report.root = run.frontier.root();
        if let Err(problem) = result {
            run.report.problem = Some(problem);
        }
        run.report
    }

    fn run<B: AsRef<[u8]>>(
        &self,
        run: &mut Run,
        mut events: impl Iterator<Item = Item<(u64, B)>>,
        mut stored: Option<&mut dyn Iterator<Item = Item<(u64, Hash32)>>>,
        checkpoints: impl Iterator<Item = Item<(u64, String)>>,
    ) -> Result<(), Break> {
        let mut pending = Vec::new();
        for item in checkpoints {
            let (listed, note) = item.map_err(|error| Break::Read {
                what: "checkpoints".into(),
                error,
            })?;
            pending.push(self.open_checkpoint(listed, &note)?);
        }
        pending.sort_by_key(|c| c.size);
        let mut targets: Vec<(u64, Hash32, Target)> = pending
            .iter()
            .map(|c| (c.size, c.root, Target::Signed))
            .chain(
                self.trusted
                    .iter()
                    .map(|c| (c.size, c.root, Target::Trusted)),
            )
            .collect();
        targets.sort_by_key(|t| t.0);
        let mut targets = targets.into_iter().peekable();

        let mut previous_time = i64::MIN;
        loop {
            while let Some(&(size, root, target)) = targets.peek() {
                if size != run.frontier.size() {
                    break;
                }
                if run.frontier.root() != root {
                    return Err(match target {
                        Target::Signed => Break::CheckpointRoot { size },
                        Target::Trusted => Break::TrustedCheckpoint { size },
                    });
                }
                if target == Target::Signed {
                    run.report.checkpoints += 1;
                }
                targets.next();
            }
            let Some(item) = events.next() else { break };
            let position = run.frontier.size();
            let (index, bytes) = item.map_err(|error| Break::Read {
                what: format!("event {position}"),
                error,
            })?;
            if index != position {
                return Err(Break::MissingEvent {
                    expected: position,
                    found: index,
                });
            }
            let bytes = bytes.as_ref();
            let (claimed, time) = index_and_time(bytes).ok_or(Break::Misplaced { position })?;
            if claimed != position {
                return Err(Break::Misplaced { position });
            }
            if time < previous_time {
                return Err(Break::TimeWentBack {
                    index,
                    time,
                    previous: previous_time,
                });
            }
            previous_time = time;
            let mut mismatch = None;
            let stored_count = &mut run.report.stored_hashes;
            run.frontier.push(leaf_hash(bytes), |stored_index, hash| {
                let Some(stored) = stored.as_deref_mut() else {
                    return;
                };
                if mismatch.is_some() {
                    return;
                }
                mismatch = match stored.next() {
                    Some(Ok((at, found))) if at == stored_index && found == *hash => {
                        *stored_count += 1;
                        None
                    }
                    Some(Ok((at, _))) if at != stored_index => {
                        Some(Break::MissingStoredHash { stored_index })
                    }
                    Some(Ok(_)) => Some(stored_break(stored_index)),
                    Some(Err(error)) => Some(Break::Read {
                        what: format!("stored hash {stored_index}"),
                        error,
                    }),
                    None => Some(Break::MissingStoredHash { stored_index }),
                };
            });
            if let Some(problem) = mismatch {
                return Err(problem);
            }
        }
        let log_size = run.frontier.size();
        if let Some(stored) = stored
            && stored.next().is_some()
        {
            return Err(Break::ExtraStoredHashes { log_size });
        }
        if let Some((size, _, target)) = targets.next() {
            return Err(match target {
                Target::Signed => Break::Truncated {
                    checkpoint_size: size,
                    log_size,
                },
                Target::Trusted => Break::TrustedCheckpoint { size },
            });
        }
        Ok(())
    }

    fn open_checkpoint(&self, listed: u64, note: &str) -> Result<SignedCheckpoint, Break> {
        let opened = match &self.key {
            Some(key) => checkpoint::open(key, note),
            None => checkpoint::parse_unverified(note),
        }
        .map_err(|e| Break::CheckpointUnreadable {
            size: listed,
            error: e.to_string(),
        })?;
        if opened.size != listed {
            return Err(Break::CheckpointSizeMismatch {
                listed,
                signed: opened.size,
            });
        }
        if let Some(origin) = &self.origin
            && &opened.origin != origin
        {
            return Err(Break::CheckpointOrigin {
                size: listed,
                found: opened.origin,
            });
        }
        Ok(opened)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Signed,
    Trusted,
}

struct Run {
    report: Report,
    frontier: Frontier,
}

fn stored_break(stored_index: u64) -> Break {
    let (level, n) = tlog_tiles::split_stored_hash_index(stored_index);
    if level == 0 {
        return Break::EventChanged { index: n };
    }
    Break::StoredHash {
        stored_index,
        first_event: n << level,
        last_event: ((n + 1) << level) - 1,
    }
}

/// Verifies the log in a store. With `upto`, events `0..upto`, their stored hashes and the
/// checkpoints within (a running node's durable log); without, everything the store holds,
/// where stored hashes or checkpoints beyond the last event are a break.
pub fn verify_store(store: &dyn Store, verifier: &Verifier, upto: Option<u64>) -> Report {
    let size = match upto {
        Some(size) => size,
        None => match store.audit_size() {
            Ok(size) => size,
            Err(e) => {
                return verifier.verify(
                    std::iter::once(Err::<(u64, Vec<u8>), _>(e.to_string())),
                    None,
                    std::iter::empty(),
                );
            }
        },
    };
    // Each stored event carries the stored hashes its append produced. Read every event once
    // and queue its hashes; the verifier asks for them right after taking the event.
    let queued = std::cell::RefCell::new(std::collections::VecDeque::new());
    let until = upto.unwrap_or(u64::MAX);
    let events = store.audit_entries(0, until).map(|item| match item {
        Ok(entry) => {
            queued.borrow_mut().extend(entry.hashes.into_iter().map(Ok));
            Ok((entry.index, entry.canonical))
        }
        Err(e) => Err(e.to_string()),
    });
    let mut stored = std::iter::from_fn(|| queued.borrow_mut().pop_front());
    let checkpoints = store
        .checkpoints(0)
        .filter(|item| upto.is_none() || item.as_ref().is_ok_and(|(at, _)| *at <= size))
        .map(|item| item.map_err(|e| e.to_string()));
    verifier.verify(events, Some(&mut stored), checkpoints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{StoredHashes, append};
    use crate::audit::note::{NoteSigner, generate_pkcs8};
    use std::collections::BTreeMap;

    struct Log {
        events: Vec<Vec<u8>>,
        hashes: BTreeMap<u64, Hash32>,
        checkpoints: Vec<(u64, String)>,
        signer: NoteSigner,
    }

    impl StoredHashes for BTreeMap<u64, Hash32> {
        fn read(&self, indexes: &[u64]) -> Result<Vec<Hash32>, String> {
            indexes
                .iter()
                .map(|i| self.get(i).copied().ok_or_else(|| format!("missing {i}")))
                .collect()
        }
    }

    fn log(n: u64, checkpoint_every: u64) -> Log {
        log_with(n, checkpoint_every, None)
    }

    /// A log whose event `changed` (if any) carries other content from the start.
    fn log_with(n: u64, checkpoint_every: u64, changed: Option<u64>) -> Log {
        let signer = NoteSigner::from_pkcs8("kring.test/log", &generate_pkcs8()).unwrap();
        let mut log = Log {
            events: Vec::new(),
            hashes: BTreeMap::new(),
            checkpoints: Vec::new(),
            signer,
        };
        for i in 0..n {
            let x = if changed == Some(i) { 2 } else { 1 };
            let bytes = format!("{{\"index\":{i},\"time\":{},\"x\":{x}}}", 1000 + i).into_bytes();
            let produced = append(i, leaf_hash(&bytes), &log.hashes).unwrap();
            log.hashes.extend(produced);
            log.events.push(bytes);
            if (i + 1) % checkpoint_every == 0 {
                let root = crate::audit::merkle::root(i + 1, &log.hashes).unwrap();
                let signed = checkpoint::sign(&log.signer, "kring.test/log", i + 1, &root).unwrap();
                log.checkpoints.push((i + 1, signed.note));
            }
        }
        log
    }

    fn check(verifier: &Verifier, log: &Log) -> Report {
        let events = log
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| Ok((i as u64, e.as_slice())));
        let mut stored = log.hashes.iter().map(|(i, h)| Ok((*i, *h)));
        let checkpoints = log.checkpoints.iter().cloned().map(Ok);
        verifier.verify(events, Some(&mut stored), checkpoints)
    }

    #[test]
    fn an_intact_log_verifies() {
        let log = log(100, 10);
        let report = check(&Verifier::new(Some(log.signer.verifier())), &log);
        assert_eq!(report.problem, None);
        assert_eq!(report.events, 100);
        assert_eq!(report.checkpoints, 10);
        assert_eq!(report.stored_hashes, log.hashes.len() as u64);
        assert_eq!(
            report.root,
            crate::audit::merkle::root(100, &log.hashes).unwrap()
        );
    }

    #[test]
    fn a_changed_event_is_named() {
        let mut log = log(100, 10);
        log.events[37] = b"{\"index\":37,\"time\":1037,\"x\":2}".to_vec();
        let report = check(&Verifier::new(Some(log.signer.verifier())), &log);
        assert_eq!(report.problem, Some(Break::EventChanged { index: 37 }));
        // Without the stored hashes the checkpoint after it catches it.
        let events = log
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| Ok((i as u64, e.as_slice())));
        let report = Verifier::new(Some(log.signer.verifier())).verify(
            events,
            None,
            log.checkpoints.iter().cloned().map(Ok),
        );
        assert_eq!(report.problem, Some(Break::CheckpointRoot { size: 40 }));
    }

    #[test]
    fn a_rewritten_and_resigned_log_fails_against_a_trusted_checkpoint() {
        let original = log(50, 10);
        let trusted =
            checkpoint::open(&original.signer.verifier(), &original.checkpoints[1].1).unwrap();
        // The same node rewrites event 7 and re-signs every checkpoint: consistent in itself.
        let rewritten = log_with(50, 10, Some(7));
        let own = Verifier::new(Some(rewritten.signer.verifier()));
        assert_eq!(check(&own, &rewritten).problem, None);
        let verifier = own.trust(trusted);
        let report = check(&verifier, &rewritten);
        assert_eq!(report.problem, Some(Break::TrustedCheckpoint { size: 20 }));
    }

    #[test]
    fn gaps_order_time_truncation_and_signatures_are_caught() {
        let base = log(30, 10);
        let key = Some(base.signer.verifier());

        let mut gap = log(30, 10);
        gap.events.remove(5);
        let events = gap
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| Ok((if i >= 5 { i as u64 + 1 } else { i as u64 }, e.as_slice())));
        let report = Verifier::new(None).verify(events, None, std::iter::empty());
        assert_eq!(
            report.problem,
            Some(Break::MissingEvent {
                expected: 5,
                found: 6
            })
        );

        let mut misplaced = log(30, 10);
        misplaced.events[3] = b"{\"index\":4,\"time\":1003,\"x\":1}".to_vec();
        assert_eq!(
            check(&Verifier::new(None), &misplaced).problem,
            Some(Break::Misplaced { position: 3 })
        );

        let mut backwards = log(30, 10);
        backwards.events[8] = b"{\"index\":8,\"time\":1,\"x\":1}".to_vec();
        assert_eq!(
            check(&Verifier::new(None), &backwards).problem,
            Some(Break::TimeWentBack {
                index: 8,
                time: 1,
                previous: 1007
            })
        );

        let mut truncated = log(30, 10);
        truncated.events.truncate(25);
        let events = truncated
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| Ok((i as u64, e.as_slice())));
        let report = Verifier::new(Some(truncated.signer.verifier())).verify(
            events,
            None,
            truncated.checkpoints.iter().cloned().map(Ok),
        );
        assert_eq!(
            report.problem,
            Some(Break::Truncated {
                checkpoint_size: 30,
                log_size: 25
            })
        );

        let mut forged = log(30, 10);
        forged.signer = NoteSigner::from_pkcs8("kring.test/log", &generate_pkcs8()).unwrap();
        let report = check(&Verifier::new(key.clone()), &forged);
        assert!(matches!(
            report.problem,
            Some(Break::CheckpointUnreadable { size: 10, .. })
        ));

        let mut tampered_hash = log(30, 10);
        let key = Some(tampered_hash.signer.verifier());
        let (&at, _) = tampered_hash
            .hashes
            .iter()
            .find(|(i, _)| tlog_tiles::split_stored_hash_index(**i).0 == 2)
            .unwrap();
        tampered_hash.hashes.insert(at, [0; 32]);
        assert!(matches!(
            check(&Verifier::new(key), &tampered_hash).problem,
            Some(Break::StoredHash {
                first_event: 0,
                last_event: 3,
                ..
            })
        ));
    }
}
