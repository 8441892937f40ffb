//! The index's persons: who the pointers are about, kept so that the index's store cannot be
//! joined with anything without the pseudonym services.
//!
//! The index never stores a federation pseudonym `P` as such. It gives every person it meets a
//! random 32-byte *person id*, which is what its pointers, regie, waakvlam, archive and audit
//! log name, and keeps two records per person:
//!
//! - a *tag* `HMAC-SHA256(K_e.tag, P)` → person id, to find the person when a request names
//!   `P`;
//! - the person's `P`, sealed with AES-256-GCM under `K_e.seal` (AAD: person id and epoch), to
//!   name the person again in a lookup's answer, a waakvlam alert or a follow-up list.
//!
//! `K_e`, the index key of epoch `e`, is derived with HKDF-SHA256 from one share per pseudonym
//! service of the chain (see `pseudonym::IndexEpochs`); it exists only in the running index's
//! memory. A stolen index store therefore holds random ids, keyed tags and ciphertext: joining
//! it with an organisation's store (which holds `HMAC(node key, P)`) needs `P`, which needs
//! every service's share, or the running index.
//!
//! *Rotation* moves every person to epoch `e + 1` in the background: each batch, in one commit,
//! opens `P` under `K_e`, writes the tag and the sealed `P` under `K_e+1` and deletes the old
//! tag. Meanwhile requests find a person under either epoch and new persons go straight to
//! `e + 1`, so the index serves throughout. When no person is left under `e`, the epoch record
//! moves in one commit and the services are asked to delete epoch `e`'s secrets. Person ids do
//! not change, so the audit log (which cannot be rewritten) keeps finding its events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::domain::EventDraft;
use crate::domain::{IndexEpoch, Pseudonym, SealedPerson, TransactionId};
use crate::federation::{Federation, PeerError, Peers};
use crate::ledger::{Ledger, LedgerError, Txn};
use crate::store::{Change, Hash32, Store, StoreError};

const SALT: &[u8] = b"kring/v1 index key";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("index key: the directory names no pseudonym service to ask for it")]
    NoServices,
    #[error(
        "a rotation to index key epoch {next} is running ({left} persons left under epoch {current}); start the next when it has finished"
    )]
    Rotating { current: u32, next: u32, left: u64 },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("index key for epoch {epoch}: {source}")]
    Share { epoch: u32, source: PeerError },
    #[error("retiring the index key epochs before {before}: {source}")]
    Retire { before: u32, source: PeerError },
    #[error("index person {person}: {problem}")]
    Person { person: Pseudonym, problem: String },
}

/// One epoch's index key: the tag key and the seal key.
pub struct EpochKey {
    epoch: u32,
    tag: hmac::Key,
    seal: LessSafeKey,
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EpochKey({}, ***)", self.epoch)
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl EpochKey {
    /// Derives the key from the services' shares, in chain order.
    pub fn derive(epoch: u32, shares: &[[u8; 32]]) -> EpochKey {
        let mut ikm = Zeroizing::new(Vec::with_capacity(32 * shares.len()));
        for share in shares {
            ikm.extend_from_slice(share);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&ikm);
        let epoch_bytes = epoch.to_be_bytes();
        let tag = prk
            .expand(&[b"tag", &epoch_bytes], hmac::HMAC_SHA256)
            .expect("one HMAC key's length is a valid HKDF output")
            .into();
        let mut seal = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"seal", &epoch_bytes], Len(32))
            .expect("32 bytes is a valid HKDF output")
            .fill(&mut seal[..])
            .expect("the output length matches");
        let seal = LessSafeKey::new(
            UnboundKey::new(&aead::AES_256_GCM, &seal[..]).expect("a 32-byte AES-256 key"),
        );
        EpochKey { epoch, tag, seal }
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The person's tag under this epoch.
    pub fn tag(&self, federation: &Pseudonym) -> Hash32 {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.tag, &federation.0).as_ref());
        out
    }

    fn aad(&self, person: &Pseudonym) -> [u8; 36] {
        let mut aad = [0u8; 36];
        aad[..32].copy_from_slice(&person.0);
        aad[32..].copy_from_slice(&self.epoch.to_be_bytes());
        aad
    }

    pub fn seal(&self, person: &Pseudonym, federation: &Pseudonym) -> SealedPerson {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut data = federation.0.to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad(person)),
                &mut data,
            )
            .expect("32 bytes are within AES-GCM's limits");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        SealedPerson {
            epoch: self.epoch,
            sealed: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out),
        }
    }

    pub fn open(&self, person: &Pseudonym, sealed: &SealedPerson) -> Result<Pseudonym, VaultError> {
        let problem = |problem: &str| VaultError::Person {
            person: *person,
            problem: problem.into(),
        };
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&sealed.sealed)
            .map_err(|_| problem("sealed value is not base64url"))?;
        if bytes.len() != NONCE_LEN + 32 + aead::AES_256_GCM.tag_len() {
            return Err(problem("sealed value has the wrong length"));
        }
        let nonce: [u8; NONCE_LEN] = bytes[..NONCE_LEN].try_into().expect("length checked");
        let opened = self
            .seal
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad(person)),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| problem("does not open under its epoch's index key"))?;
        let mut federation = [0u8; 32];
        federation.copy_from_slice(opened);
        Ok(Pseudonym(federation))
    }
}

/// The keys a request works with: the current epoch's and, while a rotation runs, the next.
#[derive(Debug, Clone)]
pub struct Keys {
    pub current: Arc<EpochKey>,
    pub next: Option<Arc<EpochKey>>,
}

impl Keys {
    /// Where new persons go.
    fn newest(&self) -> &EpochKey {
        self.next.as_deref().unwrap_or(&self.current)
    }

    fn of(&self, epoch: u32) -> Option<&EpochKey> {
        std::iter::once(&self.current)
            .chain(self.next.as_ref())
            .find(|k| k.epoch == epoch)
            .map(|k| k.as_ref())
    }
}

/// Resolves federation pseudonyms to person ids (and back) within one commit, remembering the
/// persons it creates, which the store shows only after the commit.
#[derive(Debug)]
pub struct Persons {
    keys: Keys,
    created: HashMap<Pseudonym, Pseudonym>,
    revealed: HashMap<Pseudonym, Pseudonym>,
}

impl Persons {
    pub fn new(keys: Keys) -> Persons {
        Persons {
            keys,
            created: HashMap::new(),
            revealed: HashMap::new(),
        }
    }

    /// The person a federation pseudonym names, if the index knows it.
    pub fn find(
        &self,
        store: &dyn Store,
        federation: &Pseudonym,
    ) -> Result<Option<Pseudonym>, StoreError> {
        if let Some(person) = self.created.get(federation) {
            return Ok(Some(*person));
        }
        for key in self.keys.next.iter().chain([&self.keys.current]) {
            if let Some(person) = store.person_by_tag(key.epoch, &key.tag(federation))? {
                return Ok(Some(person));
            }
        }
        Ok(None)
    }

    /// The person a federation pseudonym names, created (in this commit) if it is new.
    pub fn resolve(
        &mut self,
        txn: &mut Txn<'_>,
        federation: &Pseudonym,
    ) -> Result<Pseudonym, StoreError> {
        if let Some(person) = self.find(txn.store(), federation)? {
            return Ok(person);
        }
        let mut id = [0u8; 32];
        SystemRandom::new()
            .fill(&mut id)
            .expect("the system's random source works");
        let person = Pseudonym(id);
        let key = self.keys.newest();
        txn.change(Change::PutPersonTag {
            epoch: key.epoch,
            tag: key.tag(federation),
            person,
        });
        txn.change(Change::PutSealedPerson {
            person,
            sealed: key.seal(&person, federation),
        });
        self.created.insert(*federation, person);
        self.revealed.insert(person, *federation);
        Ok(person)
    }

    /// The federation pseudonym of a person the index keeps.
    pub fn reveal(
        &mut self,
        store: &dyn Store,
        person: &Pseudonym,
    ) -> Result<Pseudonym, VaultError> {
        if let Some(federation) = self.revealed.get(person) {
            return Ok(*federation);
        }
        let sealed = store
            .sealed_person(person)?
            .ok_or_else(|| VaultError::Person {
                person: *person,
                problem: "is not kept".into(),
            })?;
        let key = self
            .keys
            .of(sealed.epoch)
            .ok_or_else(|| VaultError::Person {
                person: *person,
                problem: format!(
                    "is sealed under epoch {}, whose key is not loaded",
                    sealed.epoch
                ),
            })?;
        let federation = key.open(person, &sealed)?;
        self.revealed.insert(*person, federation);
        Ok(federation)
    }
}

/// Moves up to `limit` persons from the current epoch to the next, in the commit of `txn`.
/// Returns how many moved.
pub fn move_batch(txn: &mut Txn<'_>, keys: &Keys, limit: usize) -> Result<usize, VaultError> {
    let Some(next) = keys.next.as_deref() else {
        return Ok(0);
    };
    let batch = txn.store().person_tags(keys.current.epoch, limit)?;
    for (tag, person) in &batch {
        let sealed = txn
            .store()
            .sealed_person(person)?
            .ok_or_else(|| VaultError::Person {
                person: *person,
                problem: "has a tag but no sealed pseudonym".into(),
            })?;
        let key = keys.of(sealed.epoch).ok_or_else(|| VaultError::Person {
            person: *person,
            problem: format!("is sealed under epoch {}", sealed.epoch),
        })?;
        let federation = key.open(person, &sealed)?;
        txn.change(Change::PutPersonTag {
            epoch: next.epoch,
            tag: next.tag(&federation),
            person: *person,
        });
        txn.change(Change::PutSealedPerson {
            person: *person,
            sealed: next.seal(person, &federation),
        });
        txn.change(Change::DeletePersonTag {
            epoch: keys.current.epoch,
            tag: *tag,
        });
    }
    Ok(batch.len())
}

/// The index keys this process has loaded, by epoch, fetched from the services on first use.
#[derive(Debug)]
pub struct KeyCache {
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
    loaded: tokio::sync::Mutex<BTreeMap<u32, Arc<EpochKey>>>,
}

impl KeyCache {
    pub fn new(federation: Arc<Federation>, peers: Arc<dyn Peers>) -> KeyCache {
        KeyCache {
            federation,
            peers,
            loaded: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The keys of `epochs`, asking every service of the chain for those not loaded yet, and
    /// forgetting the keys of every other epoch. Only the epoch `starting` (one the index is
    /// starting: its first, or a rotation's next) may be created at the services; every other
    /// must exist there already.
    pub async fn keys(
        &self,
        epochs: IndexEpoch,
        starting: Option<u32>,
    ) -> Result<Keys, VaultError> {
        let mut loaded = self.loaded.lock().await;
        loaded.retain(|e, _| *e == epochs.current || Some(*e) == epochs.next);
        let current = self
            .get(
                &mut loaded,
                epochs.current,
                starting == Some(epochs.current),
            )
            .await?;
        let next = match epochs.next {
            Some(epoch) => Some(
                self.get(&mut loaded, epoch, starting == Some(epoch))
                    .await?,
            ),
            None => None,
        };
        Ok(Keys { current, next })
    }

    async fn get(
        &self,
        loaded: &mut BTreeMap<u32, Arc<EpochKey>>,
        epoch: u32,
        start: bool,
    ) -> Result<Arc<EpochKey>, VaultError> {
        if let Some(key) = loaded.get(&epoch) {
            return Ok(key.clone());
        }
        let key = Arc::new(self.fetch(epoch, start).await?);
        loaded.insert(epoch, key.clone());
        Ok(key)
    }

    /// Epoch `epoch`'s key fetched from every service, without holding the cache (requests go
    /// on meanwhile); [`KeyCache::insert`] adds it.
    pub async fn fetch_key(&self, epoch: u32, start: bool) -> Result<Arc<EpochKey>, VaultError> {
        Ok(Arc::new(self.fetch(epoch, start).await?))
    }

    /// Adds a key fetched with [`KeyCache::fetch_key`].
    pub async fn insert(&self, key: Arc<EpochKey>) {
        self.loaded.lock().await.insert(key.epoch, key);
    }

    /// The pseudonym services of the chain, in order.
    fn services(&self) -> Result<Vec<crate::domain::Oin>, VaultError> {
        let services: Vec<_> = self
            .federation
            .directory()
            .pseudonym_services()
            .map(|m| m.oin)
            .collect();
        if services.is_empty() {
            return Err(VaultError::NoServices);
        }
        Ok(services)
    }

    /// A service's answer within the peer timeout.
    async fn within<T>(
        &self,
        service: &crate::domain::Oin,
        call: impl std::future::Future<Output = Result<T, PeerError>>,
    ) -> Result<T, PeerError> {
        tokio::time::timeout(self.federation.timeout(), call)
            .await
            .map_err(|_| PeerError::Unavailable {
                oin: *service,
                reason: "did not answer in time".into(),
            })
            .and_then(|answer| answer)
    }

    async fn fetch(&self, epoch: u32, start: bool) -> Result<EpochKey, VaultError> {
        let services = self.services()?;
        let transaction = TransactionId::new();
        let mut shares: Zeroizing<Vec<[u8; 32]>> =
            Zeroizing::new(Vec::with_capacity(services.len()));
        for service in &services {
            let share = self
                .within(
                    service,
                    self.peers.index_key(service, &transaction, epoch, start),
                )
                .await
                .map_err(|source| VaultError::Share { epoch, source })?;
            shares.push(share);
        }
        Ok(EpochKey::derive(epoch, &shares))
    }

    /// Asks every service to delete the epochs before `before`.
    pub async fn retire_before(&self, before: u32) -> Result<(), VaultError> {
        let transaction = TransactionId::new();
        for service in &self.services()? {
            self.within(
                service,
                self.peers
                    .retire_index_epochs(service, &transaction, before),
            )
            .await
            .map_err(|source| VaultError::Retire { before, source })?;
        }
        Ok(())
    }
}

/// How many persons one commit of a rotation moves.
const MOVE_BATCH: usize = 256;

/// What one step of a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No rotation runs.
    Idle,
    /// Moved this many persons; more may be left.
    Moved(usize),
    /// The last person moved: the index now works under this epoch alone.
    Finished(u32),
}

/// The index's key epochs: the keys, the epoch record, and the lock that keeps every request
/// on one consistent set of keys while the epoch record changes.
#[derive(Debug)]
pub struct Vault {
    cache: KeyCache,
    ledger: Arc<Ledger>,
    /// Requests and rotation batches hold it shared; starting and finishing a rotation hold
    /// it alone, so no request works with keys of an epoch record that has since changed.
    guard: tokio::sync::RwLock<()>,
}

impl Vault {
    pub fn new(federation: Arc<Federation>, peers: Arc<dyn Peers>, ledger: Arc<Ledger>) -> Vault {
        Vault {
            cache: KeyCache::new(federation, peers),
            ledger,
            guard: tokio::sync::RwLock::new(()),
        }
    }

    /// The keys for a request, with the guard to hold until its commit is done. The first time
    /// ever, epoch 1 is started (at every service) and recorded.
    pub async fn enter(&self) -> Result<(tokio::sync::RwLockReadGuard<'_, ()>, Keys), VaultError> {
        loop {
            let shared = self.guard.read().await;
            if let Some(epochs) = self.ledger.store().index_epoch()? {
                let keys = self.cache.keys(epochs, None).await?;
                return Ok((shared, keys));
            }
            drop(shared);
            let _alone = self.guard.write().await;
            if self.ledger.store().index_epoch()?.is_none() {
                let first = IndexEpoch {
                    current: 1,
                    next: None,
                    since: self.ledger.now(),
                };
                self.cache.keys(first, Some(first.current)).await?;
                self.ledger
                    .commit(move |txn| txn.change(Change::PutIndexEpoch(first)))
                    .await?;
            }
        }
    }

    /// The epoch record and how many persons each of its epochs holds.
    pub fn status(&self) -> Result<(IndexEpoch, u64, u64), VaultError> {
        let store = self.ledger.store();
        let epochs = store.index_epoch()?.unwrap_or(IndexEpoch {
            current: 1,
            next: None,
            since: crate::domain::UnixMillis(0),
        });
        let left = store.count_person_tags(epochs.current)?;
        let moved = match epochs.next {
            Some(next) => store.count_person_tags(next)?,
            None => 0,
        };
        Ok((epochs, left, moved))
    }

    /// Whether the current epoch is at least `days` old and no rotation runs (an index whose
    /// first epoch has not started yet is not due).
    pub fn due(&self, days: u32) -> Result<bool, VaultError> {
        Ok(match self.ledger.store().index_epoch()? {
            Some(epochs) => {
                epochs.next.is_none()
                    && self.ledger.now().0 - epochs.since.0
                        >= i64::from(days) * crate::domain::UnixMillis::DAY
            }
            None => false,
        })
    }

    /// Starts a rotation to the next epoch: every service starts it, and the epoch record
    /// says so in the commit that records `event`.
    pub async fn start_rotation(&self, event: EventDraft) -> Result<IndexEpoch, VaultError> {
        let not_rotating = || -> Result<(IndexEpoch, u64), VaultError> {
            let (epochs, left, _) = self.status()?;
            match epochs.next {
                Some(next) => Err(VaultError::Rotating {
                    current: epochs.current,
                    next,
                    left,
                }),
                None => Ok((epochs, left)),
            }
        };
        // A running rotation is refused even while its keys cannot be had.
        not_rotating()?;
        // Make sure the first epoch exists before rotating away from it.
        drop(self.enter().await?);
        // Every service starts the next epoch before the lock is taken, so that requests go on
        // while a service is slow or away; the lock is held for the re-check and the commit.
        let (epochs, _) = not_rotating()?;
        let next = self.cache.fetch_key(epochs.current + 1, true).await?;
        let _alone = self.guard.write().await;
        let (epochs, left) = not_rotating()?;
        let rotating = IndexEpoch {
            next: Some(epochs.current + 1),
            ..epochs
        };
        if Some(next.epoch()) == rotating.next {
            self.cache.insert(next).await;
        }
        // Loaded already (unless the epoch record moved meanwhile): no service is asked here.
        self.cache.keys(rotating, rotating.next).await?;
        let given = event.reason.clone().unwrap_or_default();
        let event = event
            .object(format!(
                "epoch:{}->{}",
                rotating.current,
                rotating.current + 1
            ))
            .reason(format!("{given}; started: {left} persons to move"));
        self.record(rotating, event).await?;
        Ok(rotating)
    }

    /// Moves one batch of persons to the next epoch, or finishes the rotation when none is
    /// left under the current one. `finished` is the event recorded with the switch.
    pub async fn step(&self, finished: impl FnOnce(u32) -> EventDraft) -> Result<Step, VaultError> {
        let rotating = self
            .ledger
            .store()
            .index_epoch()?
            .is_some_and(|e| e.next.is_some());
        if !rotating {
            return Ok(Step::Idle);
        }
        let moved = {
            let (_shared, keys) = self.enter().await?;
            if keys.next.is_none() {
                return Ok(Step::Idle);
            }
            self.ledger
                .commit(move |txn| move_batch(txn, &keys, MOVE_BATCH))
                .await??
        };
        if moved > 0 {
            return Ok(Step::Moved(moved));
        }
        let _alone = self.guard.write().await;
        let (epochs, left, moved) = self.status()?;
        let Some(next) = epochs.next else {
            return Ok(Step::Idle);
        };
        if left > 0 {
            return Ok(Step::Moved(0));
        }
        let done = IndexEpoch {
            current: next,
            next: None,
            since: self.ledger.now(),
        };
        let event = finished(next)
            .object(format!("epoch:{}->{next}", epochs.current))
            .reason(format!("finished: {moved} persons under epoch {next}"));
        self.record(done, event).await?;
        // Forget the old key at once; the services are asked to delete it by the caller.
        self.cache.keys(done, None).await?;
        Ok(Step::Finished(next))
    }

    /// Records the epoch record and the event that changed it, in one commit.
    async fn record(&self, epochs: IndexEpoch, event: EventDraft) -> Result<(), VaultError> {
        self.ledger
            .commit(move |txn| {
                txn.change(Change::PutIndexEpoch(epochs));
                txn.audit(event);
            })
            .await?;
        Ok(())
    }

    /// Asks every service to delete the epochs before the current one.
    pub async fn retire_old_epochs(&self) -> Result<(), VaultError> {
        let (epochs, _, _) = self.status()?;
        if epochs.current > 1 {
            self.cache.retire_before(epochs.current).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_person_opens_only_under_its_epoch_and_id() {
        let shares = [[1u8; 32], [2u8; 32]];
        let one = EpochKey::derive(1, &shares);
        let two = EpochKey::derive(2, &shares);
        let other_chain = EpochKey::derive(1, &[[1u8; 32], [3u8; 32]]);
        let person = Pseudonym([9; 32]);
        let federation = Pseudonym([7; 32]);
        let sealed = one.seal(&person, &federation);
        assert_eq!(sealed.epoch, 1);
        assert_eq!(one.open(&person, &sealed).expect("opens"), federation);
        assert!(two.open(&person, &sealed).is_err(), "another epoch's key");
        assert!(other_chain.open(&person, &sealed).is_err(), "another share");
        assert!(
            one.open(&Pseudonym([8; 32]), &sealed).is_err(),
            "sealed for another person id"
        );
        assert_ne!(one.tag(&federation), two.tag(&federation));
        assert_ne!(one.tag(&federation), other_chain.tag(&federation));
        assert_eq!(
            one.tag(&federation),
            EpochKey::derive(1, &shares).tag(&federation)
        );
        assert_ne!(
            one.tag(&federation),
            federation.0,
            "the tag is not the pseudonym"
        );
    }
}
