//! Encryption at rest: the keyring of AES-256-GCM data keys (ring) that seals the values of the
//! store's content records, and the format of a sealed value.
//!
//! A sealed value is `[0xFE][key id: u16, big-endian][nonce: 12 bytes][ciphertext][tag: 16]`,
//! 31 bytes more than the plaintext. The additional authenticated data is the record's full
//! store key, so a value copied under another key (another signal, another event index) does
//! not open. 0xFE never begins UTF-8 text, so a value written before encryption was switched on
//! (JSON, or an event's canonical JSON) is told apart by its first byte and still reads.
//!
//! Nonces are 96 random bits from the operating system for every seal. With random nonces
//! NIST SP 800-38D allows 2^32 seals under one key; a node that seals a million values a day
//! reaches that after more than ten years, and rotation starts a new count.
//!
//! This module owns key material and nothing else: it does no store I/O, never logs, and its
//! `Debug` output shows key ids only. Raw key bytes are zeroed once the AES key is expanded.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The first byte of a sealed value (format version 1).
pub const SEALED_V1: u8 = 0xFE;
/// Bytes a sealed value adds to its plaintext: the version byte, the key id, the nonce and
/// the tag.
pub const OVERHEAD: usize = HEADER + TAG_LEN;
const HEADER: usize = 1 + 2 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// The length of a data key.
pub const KEY_LEN: usize = 32;
/// What a key check seals: a fixed, empty message under its own AAD.
const CHECK_AAD: &[u8] = b"kring data key check";

/// A data key's number in the keyring and in every value sealed under it: 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataKeyId(u16);

impl DataKeyId {
    pub fn new(id: u16) -> Option<DataKeyId> {
        (id != 0).then_some(DataKeyId(id))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The 32 bytes of a data key, zeroed on drop.
pub type KeyBytes = Zeroizing<[u8; KEY_LEN]>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("data key {0} is listed twice")]
    Duplicate(DataKeyId),
    #[error("the active data key {0} is not in the keyring")]
    ActiveMissing(DataKeyId),
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed value of {0} bytes is too short")]
    Truncated(usize),
    #[error("sealed under data key {0}, which is not in the keyring")]
    UnknownKey(DataKeyId),
    #[error(
        "does not authenticate under data key {0}: changed on disk, moved from another record, or sealed with another key under the same id"
    )]
    Authentication(DataKeyId),
}

/// The data keys a node holds, one of them active: every value is sealed under the active key
/// and opens under any key of the ring.
pub struct Keyring {
    keys: Vec<(DataKeyId, LessSafeKey)>,
    active: DataKeyId,
    random: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids())
            .field("active", &self.active)
            .finish()
    }
}

fn aes_key(bytes: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes make an AES-256 key"))
}

impl Keyring {
    pub fn new(
        keys: Vec<(DataKeyId, KeyBytes)>,
        active: DataKeyId,
    ) -> Result<Keyring, KeyringError> {
        let mut ring: Vec<(DataKeyId, LessSafeKey)> = Vec::with_capacity(keys.len());
        for (id, bytes) in keys {
            if ring.iter().any(|(known, _)| *known == id) {
                return Err(KeyringError::Duplicate(id));
            }
            ring.push((id, aes_key(&bytes)));
        }
        if !ring.iter().any(|(id, _)| *id == active) {
            return Err(KeyringError::ActiveMissing(active));
        }
        Ok(Keyring {
            keys: ring,
            active,
            random: SystemRandom::new(),
        })
    }

    /// A keyring of one fresh key that exists only in memory: development nodes, tests.
    pub fn generate(id: DataKeyId) -> Keyring {
        Keyring::new(vec![(id, generate_key())], id).expect("one key, active")
    }

    /// The key new values are sealed under.
    pub fn active(&self) -> DataKeyId {
        self.active
    }

    pub fn ids(&self) -> Vec<DataKeyId> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    pub fn contains(&self, id: DataKeyId) -> bool {
        self.key(id).is_some()
    }

    fn key(&self, id: DataKeyId) -> Option<&LessSafeKey> {
        self.keys
            .iter()
            .find_map(|(known, key)| (*known == id).then_some(key))
    }

    /// Seals `plaintext` under the active key, bound to `aad` (the record's store key).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut sealed = Vec::with_capacity(OVERHEAD + plaintext.len());
        self.seal_into(aad, plaintext, &mut sealed);
        sealed
    }

    /// As [`Keyring::seal`], appending the sealed value to `out`.
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let key = self
            .key(self.active)
            .expect("the active key is in the ring");
        seal_with(key, self.active, &self.random, aad, plaintext, out);
    }

    /// Opens a value sealed under any key of the ring, bound to `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let id = sealed_under(sealed).ok_or(OpenError::Truncated(sealed.len()))?;
        let key = self.key(id).ok_or(OpenError::UnknownKey(id))?;
        open_with(key, id, aad, sealed)
    }

    /// A key check: a value only this key opens, kept in the store so that a start with
    /// another key under the same id is refused before any record is read.
    pub fn check(&self, id: DataKeyId) -> Option<Vec<u8>> {
        let key = self.key(id)?;
        let mut check = Vec::with_capacity(OVERHEAD);
        seal_with(key, id, &self.random, CHECK_AAD, &[], &mut check);
        Some(check)
    }

    /// Whether `check` was made by this keyring's key `id` (false when the ring lacks it).
    pub fn passes_check(&self, id: DataKeyId, check: &[u8]) -> bool {
        match self.key(id) {
            Some(key) => {
                sealed_under(check) == Some(id) && open_with(key, id, CHECK_AAD, check).is_ok()
            }
            None => false,
        }
    }
}

/// Whether `bytes` (a data key with no id, as an offline tool is given it) made `check`.
pub fn key_made_check(bytes: &[u8; KEY_LEN], check: &[u8]) -> Option<DataKeyId> {
    let id = sealed_under(check)?;
    open_with(&aes_key(bytes), id, CHECK_AAD, check)
        .ok()
        .map(|_| id)
}

fn seal_with(
    key: &LessSafeKey,
    id: DataKeyId,
    random: &SystemRandom,
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    let mut nonce = [0u8; NONCE_LEN];
    random
        .fill(&mut nonce)
        .expect("the operating system's random source works");
    out.reserve(OVERHEAD + plaintext.len());
    out.push(SEALED_V1);
    out.extend_from_slice(&id.0.to_be_bytes());
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[start..],
        )
        .expect("AES-GCM seals any value below 64 GiB");
    out.extend_from_slice(tag.as_ref());
}

fn open_with(
    key: &LessSafeKey,
    id: DataKeyId,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < OVERHEAD {
        return Err(OpenError::Truncated(sealed.len()));
    }
    let nonce: [u8; NONCE_LEN] = sealed[3..HEADER].try_into().expect("12 bytes");
    let mut buffer = sealed[HEADER..].to_vec();
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buffer,
        )
        .map_err(|_| OpenError::Authentication(id))?
        .len();
    buffer.truncate(plain_len);
    Ok(buffer)
}

/// The key a value is sealed under, or `None` for a value stored in the clear.
pub fn sealed_under(value: &[u8]) -> Option<DataKeyId> {
    match value {
        [SEALED_V1, high, low, ..] => DataKeyId::new(u16::from_be_bytes([*high, *low])),
        _ => None,
    }
}

/// A fresh random data key.
pub fn generate_key() -> KeyBytes {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(key.as_mut())
        .expect("the operating system's random source works");
    key
}

/// A data key from a key file's bytes: exactly 32 raw bytes, or their standard base64
/// (surrounding whitespace ignored). A file whose every byte is ASCII text is read as base64
/// and must decode to exactly 32 bytes, so 32 hex digits (128 bits) or a 32-character
/// passphrase is refused rather than taken as a 256-bit key; 32 random bytes are all text
/// with a chance below 10^-13.
pub fn parse_key(bytes: &[u8]) -> Result<KeyBytes, String> {
    let text = bytes
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if bytes.len() == KEY_LEN && !text {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(bytes);
        return Ok(key);
    }
    if !text {
        return Err(format!(
            "holds {} bytes that are neither a 32-byte key nor base64",
            bytes.len()
        ));
    }
    parse_base64_key(bytes.trim_ascii()).map_err(|e| {
        if bytes.len() == KEY_LEN {
            format!(
                "holds 32 bytes of text, read as base64: {e} (hex or a passphrase is not a key; \
                 a store already sealed under these 32 bytes keeps its key when they are given \
                 in base64: `base64 -w0 FILE`)"
            )
        } else {
            e
        }
    })
}

/// A data key from standard base64 text, which must decode to exactly 32 bytes.
fn parse_base64_key(text: &[u8]) -> Result<KeyBytes, String> {
    let decoded = Zeroizing::new(STANDARD.decode(text).map_err(|_| {
        format!(
            "holds {} characters that are not base64: a data key is 32 bytes in base64 (44 characters)",
            text.len()
        )
    })?);
    if decoded.len() != KEY_LEN {
        return Err(format!(
            "holds a {}-byte key in base64: a data key is 32 bytes (44 base64 characters)",
            decoded.len()
        ));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&decoded);
    Ok(key)
}

/// A data key from an environment value `ID:BASE64`, whose id must be `id`. The key is base64
/// only (decoding to exactly 32 bytes): an environment value is text, so 32 characters of it
/// are never taken as a raw key.
pub fn parse_env_key(value: &str, id: DataKeyId) -> Result<KeyBytes, String> {
    let (named, key) = value
        .split_once(':')
        .ok_or("must be ID:BASE64 (no ':' found)")?;
    match named.trim().parse::<u16>() {
        Ok(named) if named == id.0 => {}
        Ok(named) => {
            return Err(format!(
                "holds data key {named}, not data key {id}: a key under the wrong id would seal and open nothing the store has"
            ));
        }
        Err(_) => return Err("must be ID:BASE64 (the id is not a number)".into()),
    }
    let key = key.trim();
    parse_base64_key(key.as_bytes()).map_err(|e| {
        if key.len() == KEY_LEN {
            format!(
                "{e} (a store already sealed under these 32 characters as a key keeps its key \
                 when they are given in base64: `printf %s '...' | base64 -w0`)"
            )
        } else {
            e
        }
    })
}

/// Reads a data key file (see [`parse_key`]). On Unix the file must be readable by its owner
/// only (mode 0600 or stricter, as `kring store new-key` writes it): a key that other accounts
/// on the machine can read protects nothing from them.
pub fn read_key_file(path: &Path) -> Result<KeyBytes, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{}: readable or writable by group or others (mode {:o}); allow its owner only (chmod 600)",
                path.display(),
                mode & 0o777
            ));
        }
    }
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
    parse_key(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a fresh data key as base64 to a new file that only its owner may read (mode 0600);
/// an existing file is never overwritten.
pub fn write_new_key_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let text = Zeroizing::new(format!("{}\n", STANDARD.encode(generate_key().as_ref())));
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u16) -> DataKeyId {
        DataKeyId::new(n).expect("not zero")
    }

    fn ring(keys: &[(u16, u8)], active: u16) -> Keyring {
        Keyring::new(
            keys.iter()
                .map(|&(n, fill)| (id(n), Zeroizing::new([fill; KEY_LEN])))
                .collect(),
            id(active),
        )
        .expect("a valid keyring")
    }

    #[test]
    fn a_sealed_value_opens_under_its_record_key_only() {
        let keys = ring(&[(1, 7)], 1);
        let plain = br#"{"category":"niet_pluis"}"#;
        let sealed = keys.seal(b"s-record", plain);
        assert_eq!(sealed.len(), plain.len() + OVERHEAD);
        assert_eq!(sealed_under(&sealed), Some(id(1)));
        assert!(!sealed.windows(10).any(|w| w == b"niet_pluis"));
        assert_eq!(keys.open(b"s-record", &sealed).unwrap(), plain);
        assert_eq!(
            keys.open(b"s-other", &sealed),
            Err(OpenError::Authentication(id(1)))
        );
        // Two seals of the same value differ (fresh nonces).
        assert_ne!(keys.seal(b"s-record", plain), sealed);
    }

    #[test]
    fn every_changed_byte_is_caught() {
        let keys = ring(&[(1, 7)], 1);
        let sealed = keys.seal(b"k", b"a value of some length");
        for at in 3..sealed.len() {
            let mut changed = sealed.clone();
            changed[at] ^= 0x01;
            assert_eq!(
                keys.open(b"k", &changed),
                Err(OpenError::Authentication(id(1))),
                "byte {at}"
            );
        }
        let mut renamed = sealed.clone();
        renamed[2] = 9;
        assert_eq!(keys.open(b"k", &renamed), Err(OpenError::UnknownKey(id(9))));
        assert_eq!(
            keys.open(b"k", &sealed[..OVERHEAD - 1]),
            Err(OpenError::Truncated(OVERHEAD - 1))
        );
    }

    #[test]
    fn rotation_opens_old_values_and_seals_new_ones_under_the_active_key() {
        let old = ring(&[(1, 7)], 1);
        let sealed_old = old.seal(b"k", b"old");
        let both = ring(&[(1, 7), (2, 8)], 2);
        assert_eq!(both.open(b"k", &sealed_old).unwrap(), b"old");
        let sealed_new = both.seal(b"k", b"new");
        assert_eq!(sealed_under(&sealed_new), Some(id(2)));
        let only_new = ring(&[(2, 8)], 2);
        assert_eq!(
            only_new.open(b"k", &sealed_old),
            Err(OpenError::UnknownKey(id(1)))
        );
        // The same id with other key bytes is caught by the check and by every value.
        let impostor = ring(&[(1, 9)], 1);
        let check = old.check(id(1)).unwrap();
        assert!(old.passes_check(id(1), &check));
        assert!(!impostor.passes_check(id(1), &check));
        assert_eq!(
            impostor.open(b"k", &sealed_old),
            Err(OpenError::Authentication(id(1)))
        );
        assert_eq!(key_made_check(&[7; KEY_LEN], &check), Some(id(1)));
        assert_eq!(key_made_check(&[9; KEY_LEN], &check), None);
    }

    #[test]
    fn plaintext_values_are_not_mistaken_for_sealed_ones() {
        for plain in [&b"{\"a\":1}"[..], b"[]", b"", b"\"x\"", &[0x01, 0x02]] {
            assert_eq!(sealed_under(plain), None);
        }
        // Key id 0 does not exist.
        assert_eq!(sealed_under(&[SEALED_V1, 0, 0, 1, 2, 3]), None);
    }

    #[test]
    fn a_keyring_needs_its_active_key_and_distinct_ids() {
        let bytes = || Zeroizing::new([1u8; KEY_LEN]);
        assert_eq!(
            Keyring::new(vec![(id(1), bytes())], id(2)).unwrap_err(),
            KeyringError::ActiveMissing(id(2))
        );
        assert_eq!(
            Keyring::new(vec![(id(1), bytes()), (id(1), bytes())], id(1)).unwrap_err(),
            KeyringError::Duplicate(id(1))
        );
        assert_eq!(DataKeyId::new(0), None);
        let debug = format!("{:?}", ring(&[(1, 7), (2, 8)], 2));
        assert_eq!(
            debug,
            "Keyring { ids: [DataKeyId(1), DataKeyId(2)], active: DataKeyId(2) }"
        );
    }

    #[test]
    fn keys_parse_raw_or_base64_and_env_values_name_their_id() {
        let raw = [5u8; KEY_LEN];
        assert_eq!(*parse_key(&raw).unwrap(), raw);
        let text = format!("{}\n", STANDARD.encode(raw));
        assert_eq!(*parse_key(text.as_bytes()).unwrap(), raw);
        let short = STANDARD.encode([5u8; 16]);
        assert!(
            parse_key(short.as_bytes())
                .unwrap_err()
                .contains("16-byte key")
        );
        assert!(parse_key(b"not a key!").unwrap_err().contains("not base64"));
        assert!(parse_key(&[0u8; 31]).unwrap_err().contains("neither"));
        let value = format!("2:{}", STANDARD.encode(raw));
        assert_eq!(*parse_env_key(&value, id(2)).unwrap(), raw);
        assert!(
            parse_env_key(&value, id(3))
                .unwrap_err()
                .contains("holds data key 2, not data key 3")
        );
        assert!(parse_env_key(&STANDARD.encode(raw), id(2)).is_err());
    }

    #[test]
    fn thirty_two_characters_of_text_are_not_a_raw_key() {
        // 32 hex digits are 128 bits, a 32-character passphrase less: neither is a 256-bit
        // key, in the environment or in a file.
        let hex = "00112233445566778899aabbccddeeff";
        let passphrase = "correct horse battery staple 12!";
        assert_eq!((hex.len(), passphrase.len()), (KEY_LEN, KEY_LEN));
        for text in [hex, passphrase] {
            let error = parse_env_key(&format!("2:{text}"), id(2))
                .map(|_| ())
                .unwrap_err();
            assert!(
                error.contains("32 bytes") && !error.contains(text),
                "{text}: {error}"
            );
            // How a store sealed under those bytes keeps its key.
            assert!(error.contains("base64 -w0"), "{text}: {error}");
            let error = parse_key(text.as_bytes()).map(|_| ()).unwrap_err();
            assert!(
                error.contains("32 bytes of text") && !error.contains(text),
                "{text}: {error}"
            );
            assert!(error.contains("base64 -w0 FILE"), "{text}: {error}");
        }
        assert!(
            parse_env_key(&format!("2:{hex}"), id(2))
                .unwrap_err()
                .contains("a 24-byte key in base64")
        );
        // The environment takes no raw bytes, even 32 that are not text.
        let raw = String::from_utf8(vec![0x01; KEY_LEN]).unwrap();
        assert!(parse_env_key(&format!("2:{raw}"), id(2)).is_err());
        // A raw key file is 32 bytes that are not all text; base64 may end in a newline.
        let mut raw = [b'A'; KEY_LEN];
        raw[0] = 0x80;
        assert_eq!(*parse_key(&raw).unwrap(), raw);
        let text = format!(" {}\r\n", STANDARD.encode([9u8; KEY_LEN]));
        assert_eq!(*parse_key(text.as_bytes()).unwrap(), [9u8; KEY_LEN]);
        let value = format!("2:{}\n", STANDARD.encode([9u8; KEY_LEN]));
        assert_eq!(*parse_env_key(&value, id(2)).unwrap(), [9u8; KEY_LEN]);
    }

    #[test]
    fn a_new_key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        write_new_key_file(&path).unwrap();
        let key = read_key_file(&path).unwrap();
        assert_ne!(*key, [0u8; KEY_LEN]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let error = write_new_key_file(&path).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(*read_key_file(&path).unwrap(), *key);
    }

    /// The cost of sealing and opening one value of typical sizes (a signal's JSON is about
    /// 400 bytes, an audit event's about 500). Printed, not asserted: `cargo test --release
    /// seal_and_open_cost -- --nocapture` shows the figures.
    #[test]
    fn seal_and_open_cost() {
        let keys = ring(&[(1, 7)], 1);
        for size in [64usize, 512, 4096] {
            let plain = vec![b'x'; size];
            let rounds = 20_000;
            let started = std::time::Instant::now();
            let mut sealed = Vec::new();
            for _ in 0..rounds {
                sealed = keys.seal(b"s0123456789abcdef", &plain);
            }
            let seal = started.elapsed() / rounds;
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                assert_eq!(
                    keys.open(b"s0123456789abcdef", &sealed).unwrap().len(),
                    size
                );
            }
            let open = started.elapsed() / rounds;
            println!("data key, {size} B value: seal {seal:?}, open {open:?}");
        }
    }
}
