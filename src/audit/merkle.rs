//! RFC 6962 / 9162 Merkle tree math: leaf hash SHA-256(0x00 || data), node hash
//! SHA-256(0x01 || left || right). Appends, roots and proofs use tlog_tiles (a port of Go's
//! `sumdb/tlog`) and its stored-hash layout: appending leaf `n` stores the leaf hash and the
//! hash of every subtree it completes, at consecutive indexes, so that any root and any proof
//! needs at most a few dozen stored hashes.

use tlog_tiles::{Hash, HashReader};

pub type Hash32 = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the proof does not verify")]
    Invalid,
    #[error("a tree of size {size} has no leaf {index}")]
    OutOfRange { index: u64, size: u64 },
    #[error("cannot read stored hashes: {0}")]
    Read(String),
}

pub fn leaf_hash(data: &[u8]) -> Hash32 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// The root of the empty tree: SHA-256 of nothing.
pub const EMPTY_ROOT: Hash32 = tlog_tiles::EMPTY_HASH.0;

/// Reads stored hashes by stored-hash index.
pub trait StoredHashes {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash32>, String>;
}

struct Reader<'a, R: ?Sized>(&'a R);

impl<R: StoredHashes + ?Sized> HashReader for Reader<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0
            .read(indexes)
            .map(|hashes| hashes.into_iter().map(Hash).collect())
            .map_err(tlog_tiles::Error::InvalidInput)
    }
}

/// The stored hashes that appending leaf `n` with hash `leaf` produces, with their stored-hash
/// indexes. Reads the roots of the complete subtrees to its left.
pub fn append<R: StoredHashes + ?Sized>(
    n: u64,
    leaf: Hash32,
    hashes: &R,
) -> Result<Vec<(u64, Hash32)>, ProofError> {
    let produced = tlog_tiles::stored_hashes_for_record_hash(n, Hash(leaf), &Reader(hashes))
        .map_err(|e| ProofError::Read(e.to_string()))?;
    let first = tlog_tiles::stored_hash_index(0, n);
    Ok(produced
        .into_iter()
        .enumerate()
        .map(|(i, h)| (first + i as u64, h.0))
        .collect())
}

pub fn root<R: StoredHashes + ?Sized>(size: u64, hashes: &R) -> Result<Hash32, ProofError> {
    tlog_tiles::tree_hash(size, &Reader(hashes))
        .map(|h| h.0)
        .map_err(|e| ProofError::Read(e.to_string()))
}

pub fn inclusion_proof<R: StoredHashes + ?Sized>(
    index: u64,
    size: u64,
    hashes: &R,
) -> Result<Vec<Hash32>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    tlog_tiles::prove_record(size, index, &Reader(hashes))
        .map(|proof| proof.into_iter().map(|h| h.0).collect())
        .map_err(|e| ProofError::Read(e.to_string()))
}

pub fn consistency_proof<R: StoredHashes + ?Sized>(
    old_size: u64,
    new_size: u64,
    hashes: &R,
) -> Result<Vec<Hash32>, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange {
            index: old_size,
            size: new_size,
        });
    }
    if old_size == 0 {
        // Every tree extends the empty tree; the proof is empty.
        return Ok(Vec::new());
    }
    tlog_tiles::prove_tree(new_size, old_size, &Reader(hashes))
        .map(|proof| proof.into_iter().map(|h| h.0).collect())
        .map_err(|e| ProofError::Read(e.to_string()))
}

/// Checks that `leaf` is leaf `index` of the tree of `size` with root `root`.
pub fn verify_inclusion(
    leaf: &Hash32,
    index: u64,
    size: u64,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let proof: Vec<Hash> = proof.iter().map(|h| Hash(*h)).collect();
    tlog_tiles::check_record(&proof, size, Hash(*root), index, Hash(*leaf))
        .map_err(|_| ProofError::Invalid)
}

/// Checks that the tree of `old_size` with `old_root` is a prefix of the tree of `new_size`
/// with `new_root`.
pub fn verify_consistency(
    old_size: u64,
    old_root: &Hash32,
    new_size: u64,
    new_root: &Hash32,
    proof: &[Hash32],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::Invalid);
    }
    if old_size == 0 {
        return match (old_root == &EMPTY_ROOT, proof.is_empty()) {
            (true, true) => Ok(()),
            _ => Err(ProofError::Invalid),
        };
    }
    let proof: Vec<Hash> = proof.iter().map(|h| Hash(*h)).collect();
    tlog_tiles::check_tree(&proof, new_size, Hash(*new_root), old_size, Hash(*old_root))
        .map_err(|_| ProofError::Invalid)
}

/// Computes roots while leaves stream past, keeping only the roots of the complete subtrees
/// (at most 64). Reports every hash it completes with its stored-hash index, so a verifier
/// can compare them with what a store holds.
#[derive(Debug, Default, Clone)]
pub struct Frontier {
    size: u64,
    stack: Vec<(u8, Hash32)>,
}

impl Frontier {
    /// The frontier of a stored tree of `size` leaves: the roots of its complete subtrees.
    pub fn resume<R: StoredHashes + ?Sized>(size: u64, hashes: &R) -> Result<Frontier, ProofError> {
        let mut levels = Vec::new();
        let mut indexes = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                levels.push(level);
                indexes.push(tlog_tiles::stored_hash_index(level, start >> level));
                start += 1 << level;
            }
        }
        let roots = hashes.read(&indexes).map_err(ProofError::Read)?;
        Ok(Frontier {
            size,
            stack: levels.into_iter().zip(roots).collect(),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf; `completed` receives (stored-hash index, hash) for the leaf and each
    /// subtree it completes, in stored order.
    pub fn push(&mut self, leaf: Hash32, mut completed: impl FnMut(u64, &Hash32)) {
        let n = self.size;
        let mut level = 0u8;
        let mut hash = leaf;
        completed(tlog_tiles::stored_hash_index(0, n), &hash);
        while let Some(&(top_level, left)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            completed(tlog_tiles::stored_hash_index(level, n >> level), &hash);
        }
        self.stack.push((level, hash));
        self.size += 1;
    }

    pub fn root(&self) -> Hash32 {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut root)) = iter.next() else {
            return EMPTY_ROOT;
        };
        for (_, left) in iter {
            root = node_hash(left, &root);
        }
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn h(s: &str) -> Hash32 {
        unhex(s).try_into().unwrap()
    }

    // RFC 6962 reference leaves and roots, as published with the Certificate Transparency
    // implementations (transparency-dev/merkle testonly).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[derive(Default)]
    struct MemHashes(RefCell<HashMap<u64, Hash32>>);

    impl StoredHashes for MemHashes {
        fn read(&self, indexes: &[u64]) -> Result<Vec<Hash32>, String> {
            let map = self.0.borrow();
            indexes
                .iter()
                .map(|i| map.get(i).copied().ok_or_else(|| format!("no hash {i}")))
                .collect()
        }
    }

    fn build(leaves: &[Vec<u8>]) -> MemHashes {
        let store = MemHashes::default();
        for (n, data) in leaves.iter().enumerate() {
            let produced = append(n as u64, leaf_hash(data), &store).unwrap();
            store.0.borrow_mut().extend(produced);
        }
        store
    }

    fn reference() -> (Vec<Vec<u8>>, MemHashes) {
        let leaves: Vec<Vec<u8>> = LEAVES.iter().map(|s| unhex(s)).collect();
        let store = build(&leaves);
        (leaves, store)
    }

    #[test]
    fn roots_match_rfc_6962() {
        let (leaves, store) = reference();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), h(ROOTS[0]));
        for size in 0..=8u64 {
            assert_eq!(
                root(size, &store).unwrap(),
                h(ROOTS[size as usize]),
                "size {size}"
            );
        }
        for (i, data) in leaves.iter().enumerate() {
            frontier.push(leaf_hash(data), |_, _| {});
            assert_eq!(frontier.root(), h(ROOTS[i + 1]), "frontier size {}", i + 1);
        }
    }

    #[test]
    fn inclusion_proofs_match_the_reference_and_verify() {
        let (_, store) = reference();
        let root8 = h(ROOTS[8]);
        let expected: [(u64, [&str; 3]); 2] = [
            (
                0,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (index, path) in expected {
            let proof = inclusion_proof(index, 8, &store).unwrap();
            let want: Vec<Hash32> = path.iter().map(|s| h(s)).collect();
            assert_eq!(proof, want, "leaf {index}");
            let leaf = leaf_hash(&unhex(LEAVES[index as usize]));
            verify_inclusion(&leaf, index, 8, &proof, &root8).unwrap();
            // The same proof for another leaf, size or root fails.
            let other = leaf_hash(b"other");
            assert!(verify_inclusion(&other, index, 8, &proof, &root8).is_err());
            assert!(verify_inclusion(&leaf, index + 1, 8, &proof, &root8).is_err());
            assert!(verify_inclusion(&leaf, index, 8, &proof[..2], &root8).is_err());
            assert!(verify_inclusion(&leaf, index, 8, &proof, &h(ROOTS[7])).is_err());
        }
    }

    #[test]
    fn consistency_proofs_match_the_reference_and_verify() {
        let (_, store) = reference();
        let cases: [(u64, u64, &[&str]); 3] = [
            (
                2,
                8,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (old, new, path) in cases {
            let proof = consistency_proof(old, new, &store).unwrap();
            let want: Vec<Hash32> = path.iter().map(|s| h(s)).collect();
            assert_eq!(proof, want, "{old} -> {new}");
            let (old_root, new_root) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
            verify_consistency(old, &old_root, new, &new_root, &proof).unwrap();
            assert!(verify_consistency(old, &new_root, new, &new_root, &proof).is_err());
            assert!(verify_consistency(old + 1, &old_root, new, &new_root, &proof).is_err());
        }
    }

    #[test]
    fn every_proof_in_larger_trees_verifies_and_the_frontier_agrees_with_the_store() {
        let leaves: Vec<Vec<u8>> = (0..70u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let store = build(&leaves);
        let mut frontier = Frontier::default();
        let mut seen = Vec::new();
        for (n, data) in leaves.iter().enumerate() {
            frontier.push(leaf_hash(data), |index, hash| seen.push((index, *hash)));
            let size = n as u64 + 1;
            let root_now = root(size, &store).unwrap();
            assert_eq!(frontier.root(), root_now, "size {size}");
            for index in 0..size {
                let proof = inclusion_proof(index, size, &store).unwrap();
                let leaf = leaf_hash(&leaves[index as usize]);
                verify_inclusion(&leaf, index, size, &proof, &root_now).unwrap();
            }
            for old in 0..=size {
                let old_root = root(old, &store).unwrap();
                let proof = consistency_proof(old, size, &store).unwrap();
                verify_consistency(old, &old_root, size, &root_now, &proof).unwrap();
            }
        }
        // A frontier resumed from the store at any size continues exactly as the original.
        for size in [0u64, 1, 2, 3, 7, 8, 33, 64, 69] {
            let mut resumed = Frontier::resume(size, &store).unwrap();
            let mut original = Frontier::default();
            for data in &leaves[..size as usize] {
                original.push(leaf_hash(data), |_, _| {});
            }
            assert_eq!(resumed.root(), original.root(), "resumed at {size}");
            resumed.push(leaf_hash(b"next"), |_, _| {});
            original.push(leaf_hash(b"next"), |_, _| {});
            assert_eq!(resumed.root(), original.root(), "after a push at {size}");
        }
        // The frontier reports exactly the stored hashes, in stored order.
        let stored = store.0.borrow();
        assert_eq!(seen.len(), stored.len());
        for (i, (index, hash)) in seen.iter().enumerate() {
            assert_eq!(*index, i as u64);
            assert_eq!(stored[index], *hash);
        }
    }
}
