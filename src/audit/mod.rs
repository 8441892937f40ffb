//! The tamper-evident audit log: canonical event bytes, the RFC 6962 Merkle tree over them,
//! signed checkpoints in the C2SP signed-note format, inclusion and consistency proofs, and a
//! verifier that trusts nothing but the bytes and a pinned public key.
//!
//! Architecture invariant: `audit` knows nothing of tonic, prost or the federation, and the
//! verifier never reads the writer's in-memory state: it recomputes everything from events.

pub mod checkpoint;
pub mod cosignature;
pub mod event;
pub mod fhir;
pub mod merkle;
pub mod note;
pub mod reconcile;
pub mod search;
pub mod verify;

pub use checkpoint::{CheckpointError, SignedCheckpoint};
pub use cosignature::{CosignatureError, WitnessKey};
pub use merkle::Hash32;
pub use note::{NoteError, NoteSigner, NoteVerifier};
pub use verify::{Break, Report, Verifier};
