//! C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature, `cosignature/v1`, Ed25519): a
//! witness's statement that, at a time, the checkpoint is the largest consistent tree head it
//! has seen of that log.
//!
//! A cosignature is one more signature line on the checkpoint note,
//! `— <witness name> base64(key id || timestamp || signature)`, where the key id is the first
//! four bytes of SHA-256(name || "\n" || 0x04 || public key), the timestamp is the signing
//! time in Unix seconds as a big-endian u64, and the Ed25519 signature covers
//! `"cosignature/v1\ntime <timestamp>\n"` followed by the checkpoint body (the note text with
//! its final newline, no signature lines).
//!
//! A kring witness cosigns with its node's audit key under the key's own name (the origin of
//! its log). That is sound because the two signed messages cannot be taken for each other: a
//! checkpoint body's second line is a decimal tree size, a cosigned message's is `time <n>`;
//! and the key ids differ (0x01 for notes, 0x04 for cosignatures), so a verifier never even
//! tries one as the other.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::checkpoint::{self, CheckpointError, SignedCheckpoint};
use super::note::{self, NoteError, NoteSigner, NoteVerifier};

/// The signature type byte of a cosignature/v1 key (Ed25519).
const COSIGNATURE_V1: u8 = 0x04;
/// The signature type byte of an Ed25519 signed-note key.
const ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";
const HEADER: &str = "cosignature/v1\n";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("malformed witness key: {0}")]
    BadKey(&'static str),
    #[error("the cosignature by {0} is malformed: {1}")]
    Malformed(String, &'static str),
    #[error("the cosignature by {0} does not verify")]
    BadSignature(String),
    #[error("no cosignature by {0} on the checkpoint")]
    Missing(String),
    #[error("the witness {0} is given twice; each witness counts once")]
    Duplicate(String),
    #[error("{0} is the log's own key; a log cannot witness itself")]
    LogItself(String),
    #[error("the reply of {0} is not one cosignature line by it: {1}")]
    NotOneLine(String, &'static str),
    #[error(
        "{found} valid cosignature(s) from the given witnesses, {needed} required (missing: {})",
        if missing.is_empty() { "none".to_owned() } else { missing.join(", ") }
    )]
    TooFew {
        found: usize,
        needed: usize,
        missing: Vec<String>,
    },
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[COSIGNATURE_V1]);
    ctx.update(public);
    let digest = ctx.finish();
    let mut id = [0u8; 4];
    id.copy_from_slice(&digest.as_ref()[..4]);
    id
}

/// The message a cosignature signs: the header line, the time line, the checkpoint body.
pub fn message(timestamp: u64, body: &str) -> Vec<u8> {
    format!("{HEADER}time {timestamp}\n{body}").into_bytes()
}

/// Cosigns the checkpoint `note` at `timestamp` (Unix seconds) and returns the signature line
/// (ending in a newline), ready to append to the note.
pub fn cosign(signer: &NoteSigner, note: &str, timestamp: u64) -> Result<String, NoteError> {
    let (body, _) = note::split(note)?;
    let public = *signer.verifier().public_key();
    let signature = signer.sign_raw(&message(timestamp, body));
    let mut blob = Vec::with_capacity(76);
    blob.extend_from_slice(&key_id(signer.name(), &public));
    blob.extend_from_slice(&timestamp.to_be_bytes());
    blob.extend_from_slice(&signature);
    Ok(format!(
        "{DASH}{} {}\n",
        signer.name(),
        STANDARD.encode(blob)
    ))
}

/// Appends cosignature lines to a checkpoint note (each line ends in a newline).
pub fn with_cosignatures<'a>(note: &str, lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = note.to_owned();
    for line in lines {
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// A witness's public key as a cosignature verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    name: String,
    id: [u8; 4],
    public: [u8; 32],
}

impl WitnessKey {
    /// The cosignature key of a node whose audit key is `key`: same name, same public key.
    pub fn of(key: &NoteVerifier) -> WitnessKey {
        let public = *key.public_key();
        WitnessKey {
            name: key.name().to_owned(),
            id: key_id(key.name(), &public),
            public,
        }
    }

    /// Parses a vkey `name+keyid+base64(type || key)`: a cosignature/v1 key (type 0x04), or a
    /// node's audit key as the directory pins it (type 0x01), whose cosignature key it names.
    pub fn parse(vkey: &str) -> Result<WitnessKey, CosignatureError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CosignatureError::BadKey("expected name+keyid+key"));
        };
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| CosignatureError::BadKey("key is not base64"))?;
        match (raw.len(), raw.first()) {
            (33, Some(&COSIGNATURE_V1)) => {
                let mut public = [0u8; 32];
                public.copy_from_slice(&raw[1..]);
                if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
                    return Err(CosignatureError::BadKey("bad key name"));
                }
                let id = key_id(name, &public);
                if hex(&id) != id_hex {
                    return Err(CosignatureError::BadKey("key id does not match the key"));
                }
                Ok(WitnessKey {
                    name: name.to_owned(),
                    id,
                    public,
                })
            }
            (33, Some(&ED25519)) => NoteVerifier::parse(vkey)
                .map(|k| WitnessKey::of(&k))
                .map_err(|e| match e {
                    NoteError::BadKey(why) => CosignatureError::BadKey(why),
                    _ => CosignatureError::BadKey("not an Ed25519 key"),
                }),
            _ => Err(CosignatureError::BadKey(
                "not an Ed25519 cosignature (0x04) or note (0x01) key",
            )),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cosignature/v1 vkey, `name+keyid+base64(0x04 || key)`.
    pub fn vkey(&self) -> String {
        let mut encoded = vec![COSIGNATURE_V1];
        encoded.extend_from_slice(&self.public);
        format!(
            "{}+{}+{}",
            self.name,
            hex(&self.id),
            STANDARD.encode(encoded)
        )
    }

    /// The one cosignature line a witness answers with, as it will be kept: exactly
    /// `— <name> <base64 of key id, timestamp and signature>` and a newline, under this
    /// witness's name and key id. Anything else (more lines, another name or key, another
    /// length) is refused, so that what a log keeps and serves beside its checkpoint is only
    /// the witness's own cosignature. The signature itself is checked by [`WitnessKey::verify`].
    pub fn reply_line(&self, reply: &str) -> Result<String, CosignatureError> {
        let refused = |why| CosignatureError::NotOneLine(self.name.clone(), why);
        let line = reply.strip_suffix('\n').unwrap_or(reply);
        if line.contains('\n') || line.contains('\r') {
            return Err(refused("more than one line"));
        }
        let Some((name, encoded)) = line.strip_prefix(DASH).and_then(|r| r.split_once(' ')) else {
            return Err(refused("not a signature line"));
        };
        if name != self.name {
            return Err(refused("another name"));
        }
        let blob = STANDARD
            .decode(encoded)
            .map_err(|_| refused("not base64"))?;
        if blob.len() != 4 + 8 + 64 {
            return Err(refused("not a timestamped Ed25519 signature"));
        }
        if blob[..4] != self.id {
            return Err(refused("another key id"));
        }
        Ok(format!("{line}\n"))
    }

    /// Finds this witness's cosignature on `note` and checks it; returns its timestamp.
    /// Lines under another name or key id are not this witness's and are passed over.
    pub fn verify(&self, note: &str) -> Result<u64, CosignatureError> {
        let (body, signatures) =
            note::split(note).map_err(|e| CosignatureError::Checkpoint(e.into()))?;
        for line in signatures.lines() {
            let Some((name, blob)) = line.strip_prefix(DASH).and_then(|r| r.split_once(' ')) else {
                continue;
            };
            if name != self.name {
                continue;
            }
            let blob = STANDARD
                .decode(blob)
                .map_err(|_| CosignatureError::Malformed(self.name.clone(), "not base64"))?;
            if blob.len() < 4 || blob[..4] != self.id {
                continue;
            }
            if blob.len() != 4 + 8 + 64 {
                return Err(CosignatureError::Malformed(
                    self.name.clone(),
                    "not a timestamped Ed25519 signature",
                ));
            }
            let mut time = [0u8; 8];
            time.copy_from_slice(&blob[4..12]);
            let timestamp = u64::from_be_bytes(time);
            if timestamp > i64::MAX as u64 {
                return Err(CosignatureError::Malformed(
                    self.name.clone(),
                    "timestamp beyond 2^63 - 1",
                ));
            }
            return ring::signature::UnparsedPublicKey::new(
                &ring::signature::ED25519,
                &self.public,
            )
            .verify(&message(timestamp, body), &blob[12..])
            .map(|()| timestamp)
            .map_err(|_| CosignatureError::BadSignature(self.name.clone()));
        }
        Err(CosignatureError::Missing(self.name.clone()))
    }
}

/// What an offline check of a cosigned checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    pub checkpoint: SignedCheckpoint,
    /// Each witness whose cosignature verified, with its timestamp (Unix seconds).
    pub cosigners: Vec<(String, u64)>,
    /// The witnesses given that did not cosign.
    pub missing: Vec<String>,
}

/// Checks a cosigned checkpoint offline: the log's signature under its pinned key (and the
/// origin its key names), then each given witness's cosignature. A cosignature that is there
/// but does not verify fails the check whatever the count; otherwise at least `min` of the
/// given witnesses must have cosigned. A witness given twice (under either form of its key),
/// or the log's own key given as a witness, is refused: neither may make up the count.
pub fn verify_cosigned(
    note: &str,
    log: &NoteVerifier,
    witnesses: &[WitnessKey],
    min: usize,
) -> Result<Cosigned, CosignatureError> {
    let checkpoint = checkpoint::open(log, note)?;
    if checkpoint.origin != log.name() {
        return Err(CheckpointError::WrongOrigin {
            found: checkpoint.origin.clone(),
            expected: log.name().to_owned(),
        }
        .into());
    }
    for (i, witness) in witnesses.iter().enumerate() {
        if witness.public == *log.public_key() {
            return Err(CosignatureError::LogItself(witness.name.clone()));
        }
        if witnesses[..i].iter().any(|w| w.public == witness.public) {
            return Err(CosignatureError::Duplicate(witness.name.clone()));
        }
    }
    let mut cosigners = Vec::new();
    let mut missing = Vec::new();
    for witness in witnesses {
        match witness.verify(note) {
            Ok(timestamp) => cosigners.push((witness.name.clone(), timestamp)),
            Err(CosignatureError::Missing(name)) => missing.push(name),
            Err(e) => return Err(e),
        }
    }
    if cosigners.len() < min {
        return Err(CosignatureError::TooFew {
            found: cosigners.len(),
            needed: min,
            missing,
        });
    }
    Ok(Cosigned {
        checkpoint,
        cosigners,
        missing,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::note::generate_pkcs8;

    fn signer(name: &str) -> NoteSigner {
        NoteSigner::from_pkcs8(name, &generate_pkcs8()).unwrap()
    }

    #[test]
    fn a_cosignature_follows_c2sp_and_verifies_offline() {
        let log = signer("kring.test/log");
        let witness = signer("kring.test/witness");
        let checkpoint = checkpoint::sign(&log, "kring.test/log", 5, &[3u8; 32]).unwrap();
        let line = cosign(&witness, &checkpoint.note, 1_679_315_147).unwrap();
        let (_, blob) = line.trim_end().rsplit_once(' ').unwrap();
        let blob = STANDARD.decode(blob).unwrap();
        assert_eq!(blob.len(), 76);
        assert_eq!(&blob[4..12], &1_679_315_147u64.to_be_bytes());
        // The signed message, as the specification spells it.
        let body = note::split(&checkpoint.note).unwrap().0;
        let expected = format!("cosignature/v1\ntime 1679315147\n{body}");
        assert_eq!(message(1_679_315_147, body), expected.into_bytes());
        let note = with_cosignatures(&checkpoint.note, [line.as_str()]);
        let key = WitnessKey::of(&witness.verifier());
        // The vkey form parses back to the same key; so does the note key of the witness.
        assert_eq!(WitnessKey::parse(&key.vkey()).unwrap(), key);
        assert_eq!(WitnessKey::parse(&witness.verifier_key()).unwrap(), key);
        let cosigned =
            verify_cosigned(&note, &log.verifier(), std::slice::from_ref(&key), 1).unwrap();
        assert_eq!(
            cosigned.cosigners,
            vec![("kring.test/witness".into(), 1_679_315_147)]
        );
        // The log's own signature still opens the note with cosignatures on it.
        assert_eq!(checkpoint::open(&log.verifier(), &note).unwrap().size, 5);
    }

    #[test]
    fn forged_missing_and_too_few_cosignatures_are_named() {
        let log = signer("kring.test/log");
        let witness = signer("kring.test/witness");
        let impostor = signer("kring.test/witness");
        let checkpoint = checkpoint::sign(&log, "kring.test/log", 5, &[3u8; 32]).unwrap();
        let key = WitnessKey::of(&witness.verifier());
        // A line under the witness's name and key id, signed with another key.
        let mut forged = cosign(&impostor, &checkpoint.note, 7).unwrap();
        let (prefix, blob) = forged.trim_end().rsplit_once(' ').unwrap();
        let mut raw = STANDARD.decode(blob).unwrap();
        raw[..4].copy_from_slice(&key.id);
        forged = format!("{prefix} {}\n", STANDARD.encode(raw));
        let note = with_cosignatures(&checkpoint.note, [forged.as_str()]);
        assert_eq!(
            verify_cosigned(&note, &log.verifier(), std::slice::from_ref(&key), 1),
            Err(CosignatureError::BadSignature("kring.test/witness".into()))
        );
        // A good cosignature on another checkpoint does not carry over.
        let other = checkpoint::sign(&log, "kring.test/log", 6, &[4u8; 32]).unwrap();
        let line = cosign(&witness, &other.note, 7).unwrap();
        let moved = with_cosignatures(&checkpoint.note, [line.as_str()]);
        assert_eq!(
            verify_cosigned(&moved, &log.verifier(), std::slice::from_ref(&key), 1),
            Err(CosignatureError::BadSignature("kring.test/witness".into()))
        );
        // None at all.
        assert_eq!(
            verify_cosigned(
                &checkpoint.note,
                &log.verifier(),
                std::slice::from_ref(&key),
                1
            ),
            Err(CosignatureError::TooFew {
                found: 0,
                needed: 1,
                missing: vec!["kring.test/witness".into()]
            })
        );
        // The wrong log key.
        assert!(matches!(
            verify_cosigned(&checkpoint.note, &witness.verifier(), &[key], 0),
            Err(CosignatureError::Checkpoint(_))
        ));
    }

    #[test]
    fn a_witness_reply_is_kept_only_as_its_own_single_line() {
        let log = signer("kring.test/log");
        let witness = signer("kring.test/witness");
        let other = signer("kring.test/other");
        let checkpoint = checkpoint::sign(&log, "kring.test/log", 5, &[3u8; 32]).unwrap();
        let key = WitnessKey::of(&witness.verifier());
        let line = cosign(&witness, &checkpoint.note, 7).unwrap();
        assert_eq!(key.reply_line(&line).unwrap(), line);
        assert_eq!(key.reply_line(line.trim_end()).unwrap(), line);

        let refused = |reply: &str| match key.reply_line(reply) {
            Err(CosignatureError::NotOneLine(name, why)) => {
                assert_eq!(name, "kring.test/witness");
                why
            }
            kept => panic!("{reply:?} kept: {kept:?}"),
        };
        // The witness's line with a forged line for another member after it.
        let theirs = cosign(&other, &checkpoint.note, 7).unwrap();
        assert_eq!(refused(&format!("{line}{theirs}")), "more than one line");
        assert_eq!(refused(&format!("{line}\n")), "more than one line");
        assert_eq!(refused(&theirs), "another name");
        assert_eq!(refused("kring.test/witness AAAA"), "not a signature line");
        let (prefix, blob) = line.trim_end().rsplit_once(' ').unwrap();
        assert_eq!(refused(&format!("{prefix} !!")), "not base64");
        let mut raw = STANDARD.decode(blob).unwrap();
        raw.push(0);
        assert_eq!(
            refused(&format!("{prefix} {}", STANDARD.encode(&raw))),
            "not a timestamped Ed25519 signature"
        );
        raw.pop();
        raw[0] ^= 1;
        assert_eq!(
            refused(&format!("{prefix} {}", STANDARD.encode(&raw))),
            "another key id"
        );
    }

    #[test]
    fn a_witness_counts_once_and_the_log_never_witnesses_itself() {
        let log = signer("kring.test/log");
        let witness = signer("kring.test/witness");
        let checkpoint = checkpoint::sign(&log, "kring.test/log", 5, &[3u8; 32]).unwrap();
        let line = cosign(&witness, &checkpoint.note, 7).unwrap();
        let note = with_cosignatures(&checkpoint.note, [line.as_str()]);
        let key = WitnessKey::of(&witness.verifier());
        // The same witness as its cosignature key and as its audit key.
        let again = WitnessKey::parse(&witness.verifier_key()).unwrap();
        assert_eq!(
            verify_cosigned(&note, &log.verifier(), &[key.clone(), again], 2),
            Err(CosignatureError::Duplicate("kring.test/witness".into()))
        );
        // The log cosigning its own checkpoint does not count as a witness.
        let own = cosign(&log, &checkpoint.note, 7).unwrap();
        let self_cosigned = with_cosignatures(&checkpoint.note, [own.as_str()]);
        assert_eq!(
            verify_cosigned(
                &self_cosigned,
                &log.verifier(),
                &[WitnessKey::of(&log.verifier())],
                1
            ),
            Err(CosignatureError::LogItself("kring.test/log".into()))
        );
        assert_eq!(
            verify_cosigned(&note, &log.verifier(), &[key], 1)
                .unwrap()
                .cosigners
                .len(),
            1
        );
    }
}
