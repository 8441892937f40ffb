//! The oblivious pseudonym: RFC 9497 OPRF, suite ristretto255-SHA512, in the plain (base) mode,
//! chained through two pseudonym services with independent keys.
//!
//! This module owns the cryptography of the federation pseudonym and nothing else: no network,
//! no rate limits, no authorisation. It has two halves, one per party.
//!
//! **The client half** ([`blind`], [`finalize`], [`blind_all`], [`finalize_all`]) runs at an
//! organisation node, the only place a BSN exists. [`blind`] consumes the [`Bsn`], forms the
//! OPRF input `b"kring/v1 bsn\0" || nine ASCII digits` in a buffer that is wiped on drop, and
//! multiplies its hash-to-group point by a fresh random blind. Only [`Blinded::element`] leaves
//! the node. [`finalize`] removes the blind from the services' answer, completes the OPRF and
//! derives the pseudonym as `SHA-256(b"kring/v1 federation pseudonym\0" || oprf output)`.
//! The client learns the pseudonym of the BSNs it holds, and nothing about either key.
//!
//! **The service half** ([`ServiceKey`]) runs at a pseudonym service. [`ServiceKey::evaluate`]
//! multiplies each element it receives by the secret key. A service sees a uniformly random
//! group element per request: the same BSN blinded twice gives unrelated elements, so a service
//! can neither learn a BSN nor link two requests for the same person. The same function is the
//! second hop of the chain: service B evaluates service A's answer as if it were a blinded
//! element. The client then holds `r * k_A * k_B * H(x)` and, after unblinding, the OPRF
//! output under the key `k_A * k_B`, identical in either order and for every fresh blind.
//! Neither key alone computes it, so no single party (node, index or service) can compute a
//! pseudonym for a guessed BSN.
//!
//! # Why the plain mode
//! The design chains two services, and plain-mode elements chain with voprf's public API as
//! it stands: an `EvaluationElement` is a bare group element that deserialises as the next
//! hop's `BlindedElement`. The verifiable mode adds a proof per hop that the client would have
//! to check against each service's public key, at roughly a fifth of the speed. The two modes
//! hash differently, so the choice is once and for all: switching would change every
//! pseudonym in the federation.
//!
//! The trade-off: in plain mode a service that evaluates with a wrong key (a lost, restored or
//! swapped key file) is **not detected** here. Its answers are well-formed and silently give
//! pseudonyms that match nothing. Key custody, and checking the known pseudonym of a fictitious
//! BSN after a service starts, are the defences; this module cannot provide them.
//!
//! # What callers must never do
//! - Log, store or send the input or anything derived from a BSN other than
//!   [`Blinded::element`] and the final [`Pseudonym`]. [`Blinded`] has no `Clone`, and its
//!   `Debug` prints nothing of its contents.
//! - Expose a [`ServiceKey`]: [`ServiceKey::to_bytes`] exists to write the key file, nothing
//!   else. Whoever holds both keys, or can query both services freely, can compute the
//!   pseudonym of every one of the ~10^8 valid BSNs in hours: authorisation and
//!   per-organisation rate limits at the services are part of the construction.
//! - Route service A's answer back through the client to service B when A can forward it to
//!   B directly: a client that sees the intermediate element learns `k_A * H(x)` for its own
//!   inputs, an oracle for one key that the chain is meant to deny.

use std::fmt;
use std::io::Write;
use std::path::Path;

use rand::rngs::OsRng;
use ring::digest;
use voprf::{BlindedElement, EvaluationElement, OprfClient, OprfServer};
use zeroize::{Zeroize, Zeroizing};

use crate::domain::{Bsn, Pseudonym};

/// The RFC 9497 cipher suite: ristretto255 with SHA-512 (`ristretto255-SHA512`).
type Suite = voprf::Ristretto255;

/// Domain tag of the OPRF input; the nine ASCII digits follow it.
const INPUT_DOMAIN: &[u8; 13] = b"kring/v1 bsn\0";
const INPUT_LEN: usize = INPUT_DOMAIN.len() + 9;
/// Domain tag of the hash from the OPRF output to the federation pseudonym.
const PSEUDONYM_DOMAIN: &[u8] = b"kring/v1 federation pseudonym\0";

/// The length of a serialised ristretto255 element (blinded or evaluated), in bytes.
pub const ELEMENT_LEN: usize = 32;
/// The length of a service key (a ristretto255 scalar, little-endian), in bytes.
pub const KEY_LEN: usize = 32;

/// Where in a request or an answer an element was found wanting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The n-th element of a batch sent to a service.
    Blinded(usize),
    /// The element a service returned: alone (`None`) or the n-th of a batch.
    Evaluated(Option<usize>),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Blinded(i) => write!(f, "blinded[{i}]"),
            Position::Evaluated(None) => f.write_str("evaluated"),
            Position::Evaluated(Some(i)) => write!(f, "evaluated[{i}]"),
        }
    }
}

/// Why an OPRF step failed. Never carries an input, an element or a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OprfError {
    #[error("{at}: {len} bytes; a ristretto255 element is {ELEMENT_LEN}")]
    ElementLength { at: Position, len: usize },
    #[error("{at}: not a valid ristretto255 element")]
    Element { at: Position },
    #[error("{blinded} blinded elements but {evaluated} evaluated elements")]
    Count { blinded: usize, evaluated: usize },
    #[error("service key: {len} bytes; a ristretto255 scalar is {KEY_LEN}")]
    KeyLength { len: usize },
    #[error("service key: not a canonical non-zero ristretto255 scalar")]
    Key,
}

/// One BSN, blinded: the client's state between sending [`Blinded::element`] and receiving the
/// evaluation. Holds the OPRF input (wiped on drop) and the blind (wiped on drop by voprf).
/// Consume it with [`finalize`]; there is no way to copy it or read its input.
pub struct Blinded {
    state: OprfClient<Suite>,
    /// On the heap, allocated once at its final size, so that moving a `Blinded` never leaves
    /// a copy of the digits behind.
    input: Zeroizing<Vec<u8>>,
    element: [u8; ELEMENT_LEN],
}

impl Blinded {
    /// The serialised `BlindedElement`: the only part that leaves the node. It is a uniformly
    /// random group element, unlinkable to the BSN without the blind.
    pub fn element(&self) -> [u8; ELEMENT_LEN] {
        self.element
    }
}

impl fmt::Debug for Blinded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Blinded(***)")
    }
}

/// Blinds one BSN, consuming it, with a fresh blind from the operating system's CSPRNG.
pub fn blind(bsn: Bsn) -> Blinded {
    let input = bsn.expose_for_pseudonymisation(|digits| {
        let mut input = Zeroizing::new(Vec::with_capacity(INPUT_LEN));
        input.extend_from_slice(INPUT_DOMAIN);
        input.extend_from_slice(digits);
        input
    });
    let blinded = OprfClient::<Suite>::blind(&input[..], &mut OsRng)
        .expect("a 22-byte input is within the OPRF's input bounds");
    let mut element = [0u8; ELEMENT_LEN];
    element.copy_from_slice(&blinded.message.serialize());
    Blinded {
        state: blinded.state,
        input,
        element,
    }
}

/// Blinds a batch of BSNs, in order.
pub fn blind_all(bsns: Vec<Bsn>) -> Vec<Blinded> {
    bsns.into_iter().map(blind).collect()
}

/// Completes the OPRF with the element the (last) service returned and derives the federation
/// pseudonym. The blind and the input are wiped whatever the outcome.
pub fn finalize(blinded: Blinded, evaluated: &[u8]) -> Result<Pseudonym, OprfError> {
    finalize_at(blinded, evaluated, Position::Evaluated(None))
}

/// Completes a batch: one evaluated element per blinded BSN, in the same order.
pub fn finalize_all(
    blinded: Vec<Blinded>,
    evaluated: &[Vec<u8>],
) -> Result<Vec<Pseudonym>, OprfError> {
    if blinded.len() != evaluated.len() {
        return Err(OprfError::Count {
            blinded: blinded.len(),
            evaluated: evaluated.len(),
        });
    }
    blinded
        .into_iter()
        .zip(evaluated)
        .enumerate()
        .map(|(i, (b, e))| finalize_at(b, e, Position::Evaluated(Some(i))))
        .collect()
}

fn finalize_at(blinded: Blinded, evaluated: &[u8], at: Position) -> Result<Pseudonym, OprfError> {
    let element = EvaluationElement::<Suite>::deserialize(element_bytes(evaluated, at)?)
        .map_err(|_| OprfError::Element { at })?;
    let mut output = blinded
        .state
        .finalize(&blinded.input[..], &element)
        .expect("finalize fails only on an empty or oversized input, and ours is 22 bytes");
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(PSEUDONYM_DOMAIN);
    ctx.update(&output);
    output.as_mut_slice().zeroize();
    let mut pseudonym = [0u8; 32];
    pseudonym.copy_from_slice(ctx.finish().as_ref());
    Ok(Pseudonym(pseudonym))
}

/// Checks the exact length: voprf reads the first 32 bytes and would ignore the rest.
fn element_bytes(bytes: &[u8], at: Position) -> Result<&[u8], OprfError> {
    if bytes.len() == ELEMENT_LEN {
        Ok(bytes)
    } else {
        Err(OprfError::ElementLength {
            at,
            len: bytes.len(),
        })
    }
}

/// A pseudonym service's OPRF key share. It never sees a BSN; it must never leave the service
/// except into its own key file, and its `Debug` prints nothing of it.
pub struct ServiceKey {
    server: OprfServer<Suite>,
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceKey(***)")
    }
}

impl ServiceKey {
    /// A fresh key from the operating system's CSPRNG (RFC 9497 DeriveKeyPair over a random
    /// seed).
    pub fn generate() -> ServiceKey {
        let server = OprfServer::<Suite>::new(&mut OsRng)
            .expect("DeriveKeyPair fails only if 256 candidate scalars are all zero");
        ServiceKey { server }
    }

    /// Loads a key from its 32 secret bytes (a canonical, non-zero scalar, little-endian).
    pub fn from_bytes(bytes: &[u8]) -> Result<ServiceKey, OprfError> {
        if bytes.len() != KEY_LEN {
            return Err(OprfError::KeyLength { len: bytes.len() });
        }
        let server = OprfServer::<Suite>::deserialize(bytes).map_err(|_| OprfError::Key)?;
        Ok(ServiceKey { server })
    }

    /// The secret scalar, for the key file only. In plain mode voprf serialises the server as
    /// the scalar alone (its verifiable server appends the public key).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut serialized = self.server.serialize();
        let bytes = Zeroizing::new(serialized.to_vec());
        serialized.as_mut_slice().zeroize();
        bytes
    }

    /// Reads the key file, or creates it (mode 0600, fresh key) if it does not exist yet. An
    /// existing file is never overwritten: a file of the wrong length or with an invalid scalar
    /// is an error, because replacing the key would change every pseudonym.
    pub fn read_or_create(path: &Path) -> std::io::Result<ServiceKey> {
        match std::fs::read(path).map(Zeroizing::new) {
            Ok(bytes) => ServiceKey::from_bytes(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ServiceKey::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path)?;
                file.write_all(&key.to_bytes())?;
                file.sync_all()?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// Evaluates a batch of elements under this key, in order. Each input is a client's
    /// blinded element or, as the second hop of the chain, the other service's answer. A
    /// service learns nothing from them; it must still not log or keep them, since an element
    /// and its answer together are what a client needs to finish one pseudonym.
    pub fn evaluate<B: AsRef<[u8]>>(
        &self,
        blinded: &[B],
    ) -> Result<Vec<[u8; ELEMENT_LEN]>, OprfError> {
        Ok(self.evaluate_checked(&ServiceKey::check(blinded)?))
    }

    /// Reads a batch of elements without evaluating it: a service refuses a batch with one bad
    /// element before it spends anything (a rate limit's tokens) on it.
    pub fn check<B: AsRef<[u8]>>(blinded: &[B]) -> Result<Checked, OprfError> {
        blinded
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let at = Position::Blinded(i);
                BlindedElement::<Suite>::deserialize(element_bytes(bytes.as_ref(), at)?)
                    .map_err(|_| OprfError::Element { at })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Checked)
    }

    /// Evaluates a batch [`ServiceKey::check`] has read, in order.
    pub fn evaluate_checked(&self, checked: &Checked) -> Vec<[u8; ELEMENT_LEN]> {
        checked
            .0
            .iter()
            .map(|element| {
                let mut out = [0u8; ELEMENT_LEN];
                out.copy_from_slice(&self.server.blind_evaluate(element).serialize());
                out
            })
            .collect()
    }
}

/// A batch of elements that are valid ristretto255 points, ready to evaluate.
pub struct Checked(Vec<BlindedElement<Suite>>);

impl Checked {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checked({} elements)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Yields one scalar's 32 little-endian bytes and then zeros. voprf draws a blind as 64
    /// bytes reduced modulo the group order, and a scalar below the order followed by 32 zero
    /// bytes reduces to itself: this fixes the blind without voprf's `danger` feature.
    struct FixedBlind([u8; 64], usize);

    impl FixedBlind {
        fn new(scalar: &[u8]) -> FixedBlind {
            let mut bytes = [0u8; 64];
            bytes[..32].copy_from_slice(scalar);
            FixedBlind(bytes, 0)
        }
    }

    impl rand::RngCore for FixedBlind {
        fn next_u32(&mut self) -> u32 {
            let mut bytes = [0u8; 4];
            self.fill_bytes(&mut bytes);
            u32::from_le_bytes(bytes)
        }
        fn next_u64(&mut self) -> u64 {
            let mut bytes = [0u8; 8];
            self.fill_bytes(&mut bytes);
            u64::from_le_bytes(bytes)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for byte in dest {
                *byte = self.0[self.1 % 64];
                self.1 += 1;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand::CryptoRng for FixedBlind {}

    /// RFC 9497, Appendix A.1.1 (OPRF(ristretto255, SHA-512), OPRF mode), test vectors 1 and
    /// 2: pins the suite, the mode, the key encoding and the element encodings this module
    /// uses. A change of any of them would change every pseudonym in the federation.
    #[test]
    fn rfc9497_a_1_1_oprf_mode_vectors() {
        let sk_sm = hex("5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e");
        let blind = hex("64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706");
        let vectors = [
            (
                "00",
                "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
                "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
                "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3\
                 ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
            ),
            (
                "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
                "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
                "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
                "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4\
                 f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
            ),
        ];
        let key = ServiceKey::from_bytes(&sk_sm).unwrap();
        assert_eq!(&key.to_bytes()[..], &sk_sm[..]);
        // The key derivation of the same appendix: Seed a3..a3, KeyInfo "test key".
        let derived = OprfServer::<Suite>::new_from_seed(&[0xa3; 32], b"test key").unwrap();
        assert_eq!(&derived.serialize()[..], &sk_sm[..]);
        for (input, blinded_hex, evaluated_hex, output_hex) in vectors {
            let input = hex(input);
            let result = OprfClient::<Suite>::blind(&input, &mut FixedBlind::new(&blind)).unwrap();
            let blinded = result.message.serialize();
            assert_eq!(blinded.to_vec(), hex(blinded_hex));
            let evaluated = key.evaluate(&[blinded]).unwrap();
            assert_eq!(evaluated[0].to_vec(), hex(evaluated_hex));
            let element = EvaluationElement::<Suite>::deserialize(&evaluated[0]).unwrap();
            let output = result.state.finalize(&input, &element).unwrap();
            assert_eq!(output.to_vec(), hex(output_hex));
        }
    }

    /// The client's oblivious path gives exactly the documented function of the BSN: the
    /// server-side (non-oblivious) RFC 9497 Evaluate over `tag || digits`, then the tagged
    /// SHA-256. This is the computation a holder of the (combined) key could do by itself.
    #[test]
    fn the_pseudonym_is_the_documented_function_of_the_input() {
        let key = ServiceKey::generate();
        let blinded = blind(Bsn::parse("10000008").unwrap());
        let evaluated = key.evaluate(&[blinded.element()]).unwrap();
        let pseudonym = finalize(blinded, &evaluated[0]).unwrap();

        let server = OprfServer::<Suite>::deserialize(&key.to_bytes()).unwrap();
        let output = server
            .evaluate(&[&b"kring/v1 bsn\0"[..], b"010000008"].concat())
            .unwrap();
        let expected = digest::digest(
            &digest::SHA256,
            &[&b"kring/v1 federation pseudonym\0"[..], &output[..]].concat(),
        );
        assert_eq!(&pseudonym.0[..], expected.as_ref());
    }

    #[test]
    fn the_blinded_input_is_the_domain_tag_and_nine_digits() {
        let blinded = blind(Bsn::parse("10000008").unwrap());
        assert_eq!(
            &blinded.input[..],
            &[&b"kring/v1 bsn\0"[..], b"010000008"].concat()[..]
        );
    }

    #[test]
    fn positions_and_errors_read_precisely() {
        let cases = [
            (
                OprfError::Element {
                    at: Position::Blinded(3),
                },
                "blinded[3]: not a valid ristretto255 element",
            ),
            (
                OprfError::ElementLength {
                    at: Position::Evaluated(None),
                    len: 31,
                },
                "evaluated: 31 bytes; a ristretto255 element is 32",
            ),
            (
                OprfError::Element {
                    at: Position::Evaluated(Some(1)),
                },
                "evaluated[1]: not a valid ristretto255 element",
            ),
            (
                OprfError::Count {
                    blinded: 2,
                    evaluated: 1,
                },
                "2 blinded elements but 1 evaluated elements",
            ),
            (
                OprfError::KeyLength { len: 64 },
                "service key: 64 bytes; a ristretto255 scalar is 32",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
