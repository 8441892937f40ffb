//! Signed checkpoints: the C2SP tlog-checkpoint body (origin, tree size, base64 root hash)
//! as a signed note under the node's audit key.

use super::merkle::Hash32;
use super::note::{NoteError, NoteSigner, NoteVerifier};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash32,
    /// The whole signed note, as served and stored.
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("malformed checkpoint body")]
    Malformed,
    #[error("checkpoint origin {found:?} is not the expected {expected:?}")]
    WrongOrigin { found: String, expected: String },
}

pub fn body(origin: &str, size: u64, root: &Hash32) -> Result<String, CheckpointError> {
    let checkpoint = tlog_tiles::Checkpoint::new(origin, size, tlog_tiles::Hash(*root), "")
        .map_err(|_| CheckpointError::Malformed)?;
    String::from_utf8(checkpoint.to_bytes()).map_err(|_| CheckpointError::Malformed)
}

pub fn sign(
    signer: &NoteSigner,
    origin: &str,
    size: u64,
    root: &Hash32,
) -> Result<SignedCheckpoint, CheckpointError> {
    let text = body(origin, size, root)?;
    Ok(SignedCheckpoint {
        origin: origin.to_owned(),
        size,
        root: *root,
        note: signer.sign(&text),
    })
}

/// Verifies the signature with the pinned key and parses the body.
pub fn open(verifier: &NoteVerifier, note: &str) -> Result<SignedCheckpoint, CheckpointError> {
    let text = verifier.open(note)?;
    let mut checkpoint = parse_unverified(note)?;
    debug_assert!(note.starts_with(text));
    checkpoint.note = note.to_owned();
    Ok(checkpoint)
}

/// Parses the body without checking any signature: for display, or before a key is known.
pub fn parse_unverified(note: &str) -> Result<SignedCheckpoint, CheckpointError> {
    let (text, _) = super::note::split(note)?;
    let parsed = tlog_tiles::Checkpoint::from_bytes(text.as_bytes())
        .map_err(|_| CheckpointError::Malformed)?;
    Ok(SignedCheckpoint {
        origin: parsed.origin().to_owned(),
        size: parsed.size(),
        root: parsed.hash().0,
        note: note.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::note::generate_pkcs8;

    #[test]
    fn a_checkpoint_is_a_c2sp_note() {
        let signer = NoteSigner::from_pkcs8("kring.test/audit", &generate_pkcs8()).unwrap();
        let root = [7u8; 32];
        let signed = sign(&signer, "kring.test/audit", 12, &root).unwrap();
        assert!(signed.note.starts_with(
            "kring.test/audit\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n\u{2014} kring.test/audit "
        ));
        let opened = open(&signer.verifier(), &signed.note).unwrap();
        assert_eq!(opened, signed);
        let other = NoteSigner::from_pkcs8("kring.test/audit", &generate_pkcs8()).unwrap();
        assert!(open(&other.verifier(), &signed.note).is_err());
    }
}
