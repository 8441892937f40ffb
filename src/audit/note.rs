//! C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys from ring.
//!
//! Written here rather than taken from a crate because the note format is a few lines and
//! the crates that implement it sign with ed25519-dalek; kring keeps one cryptographic
//! provider (ring) for every signature it makes.
//!
//! A note is its text (ending in a newline), a blank line, and signature lines
//! `— <name> <base64(key id || signature)>`. The key id of an Ed25519 key is the first four
//! bytes of SHA-256(name || "\n" || 0x01 || public key). A verifier key is written
//! `<name>+<key id hex>+<base64(0x01 || public key)>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, Ed25519KeyPair, KeyPair};

const ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("malformed verifier key: {0}")]
    BadKey(&'static str),
    #[error("no signature by {0} on the note")]
    Unsigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("invalid signing key: {0}")]
    BadSigningKey(String),
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[ED25519]);
    ctx.update(public);
    let digest = ctx.finish();
    let mut id = [0u8; 4];
    id.copy_from_slice(&digest.as_ref()[..4]);
    id
}

fn check_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Signs notes with a node's audit key.
pub struct NoteSigner {
    name: String,
    key: Ed25519KeyPair,
    id: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({})", self.verifier_key())
    }
}

impl NoteSigner {
    /// `pkcs8` is an Ed25519 private key in PKCS#8 (v1 or v2) DER.
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<NoteSigner, NoteError> {
        if !check_name(name) {
            return Err(NoteError::BadSigningKey(
                "the key name must be non-empty, without spaces or '+'".into(),
            ));
        }
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| NoteError::BadSigningKey(e.to_string()))?;
        let id = key_id(name, key.public_key().as_ref());
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
            id,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier_key(&self) -> String {
        let mut encoded = vec![ED25519];
        encoded.extend_from_slice(self.key.public_key().as_ref());
        format!(
            "{}+{}+{}",
            self.name,
            hex(&self.id),
            STANDARD.encode(encoded)
        )
    }

    pub fn verifier(&self) -> NoteVerifier {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.key.public_key().as_ref());
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            public,
        }
    }

    /// Signs `text`, which must end in a newline, and returns the whole note.
    pub fn sign(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(signature.as_ref());
        format!("{text}\n{DASH}{} {}\n", self.name, STANDARD.encode(blob))
    }

    /// Signs raw bytes (for cosignatures, whose signed message is not the note text).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.key.sign(message).as_ref());
        out
    }
}

/// Checks notes against one pinned public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    public: [u8; 32],
}

impl NoteVerifier {
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::BadKey("expected name+keyid+key"));
        };
        if !check_name(name) {
            return Err(NoteError::BadKey("bad key name"));
        }
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::BadKey("key is not base64"))?;
        if raw.len() != 33 || raw[0] != ED25519 {
            return Err(NoteError::BadKey("not an Ed25519 key"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&raw[1..]);
        let id = key_id(name, &public);
        if hex(&id) != id_hex {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            id,
            public,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// Verifies this key's signature on `note` and returns the signed text.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, signatures) = split(note)?;
        for line in signatures.lines() {
            let rest = line
                .strip_prefix(DASH)
                .ok_or(NoteError::Malformed("signature line without em dash"))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("signature line without signature"))?;
            if name != self.name {
                continue;
            }
            let blob = STANDARD
                .decode(blob)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if blob.len() < 4 || blob[..4] != self.id {
                continue;
            }
            return self
                .verify_raw(text.as_bytes(), &blob[4..])
                .map(|()| text)
                .map_err(|_| NoteError::BadSignature(self.name.clone()));
        }
        Err(NoteError::Unsigned(self.name.clone()))
    }

    pub fn verify_raw(&self, message: &[u8], sig: &[u8]) -> Result<(), NoteError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.public)
            .verify(message, sig)
            .map_err(|_| NoteError::BadSignature(self.name.clone()))
    }
}

/// Splits a note into its text (with its final newline) and its signature lines.
pub fn split(note: &str) -> Result<(&str, &str), NoteError> {
    let at = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=at], &note[at + 2..]);
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError::Malformed("no signature lines"));
    }
    Ok((text, signatures))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh Ed25519 key in PKCS#8 v2 DER.
pub fn generate_pkcs8() -> Vec<u8> {
    Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .expect("system randomness is available")
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str) -> NoteSigner {
        NoteSigner::from_pkcs8(name, &generate_pkcs8()).unwrap()
    }

    #[test]
    fn a_signed_note_opens_with_its_key_only() {
        let a = signer("kring.test/a");
        let b = signer("kring.test/b");
        let note = a.sign("hello\n42\n");
        let verifier = NoteVerifier::parse(&a.verifier_key()).unwrap();
        assert_eq!(verifier, a.verifier());
        assert_eq!(verifier.open(&note).unwrap(), "hello\n42\n");
        assert_eq!(
            b.verifier().open(&note),
            Err(NoteError::Unsigned("kring.test/b".into()))
        );
        let tampered = note.replace("42", "43");
        assert_eq!(
            verifier.open(&tampered),
            Err(NoteError::BadSignature("kring.test/a".into()))
        );
    }

    #[test]
    fn verifier_keys_are_checked() {
        let a = signer("kring.test/a");
        let key = a.verifier_key();
        let wrong_id = key.replacen('+', "+0", 1);
        assert!(NoteVerifier::parse(&wrong_id).is_err());
        assert!(NoteVerifier::parse("name+00000000+AAAA").is_err());
        assert!(NoteVerifier::parse("justaname").is_err());
    }

    #[test]
    fn notes_are_split_at_the_last_blank_line() {
        assert!(split("text\nno blank line\n").is_err());
        assert!(split("text\n\n").is_err());
        let (text, sigs) = split("a\nb\n\n\u{2014} k c2ln\n").unwrap();
        assert_eq!(text, "a\nb\n");
        assert_eq!(sigs, "\u{2014} k c2ln\n");
    }
}
