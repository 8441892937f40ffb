//! The keyed pseudonymiser: HMAC-SHA256 under a key derived with HKDF from a node secret. The
//! same secret gives the same pseudonyms, so the secret file is part of the node's identity:
//! losing it makes new pseudonyms unlinkable to stored ones.

use std::io::Write;
use std::path::Path;

use async_trait::async_trait;
use ring::{hkdf, hmac, rand};

use super::{PseudonymError, Pseudonymiser};
use crate::domain::{Bsn, Pseudonym};

const SALT: &[u8] = b"kring/v1 pseudonym salt";
const INFO: &[u8] = b"kring/v1 keyed pseudonym";
const DOMAIN: &[u8] = b"kring/v1 bsn\0";
/// The length of a node secret file, in bytes.
pub const SECRET_LEN: usize = 32;

pub struct KeyedPseudonymiser {
    key: hmac::Key,
}

impl std::fmt::Debug for KeyedPseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedPseudonymiser(***)")
    }
}

impl KeyedPseudonymiser {
    pub fn from_secret(secret: &[u8]) -> KeyedPseudonymiser {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
        let okm = prk
            .expand(&[INFO], hmac::HMAC_SHA256)
            .expect("HKDF output of one HMAC key length is always valid");
        KeyedPseudonymiser {
            key: hmac::Key::from(okm),
        }
    }

    /// Reads the node secret, or creates it (mode 0600) if the file does not exist yet.
    pub fn open_or_create(path: &Path) -> std::io::Result<KeyedPseudonymiser> {
        let secret = read_or_create_secret(path)?;
        Ok(KeyedPseudonymiser::from_secret(&secret))
    }

    pub fn pseudonymise_one(&self, bsn: Bsn) -> Pseudonym {
        bsn.expose_for_pseudonymisation(|digits| {
            let mut ctx = hmac::Context::with_key(&self.key);
            ctx.update(DOMAIN);
            ctx.update(digits);
            let tag = ctx.sign();
            let mut out = [0u8; 32];
            out.copy_from_slice(tag.as_ref());
            Pseudonym(out)
        })
    }
}

#[async_trait]
impl Pseudonymiser for KeyedPseudonymiser {
    async fn pseudonymise(&self, persons: Vec<Bsn>) -> Result<Vec<Pseudonym>, PseudonymError> {
        Ok(persons
            .into_iter()
            .map(|bsn| self.pseudonymise_one(bsn))
            .collect())
    }
}

/// Reads a secret file of [`SECRET_LEN`] bytes, creating it with fresh random bytes and mode
/// 0600 when it is absent. A file of another length is an error, never silently replaced.
pub fn read_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(secret) if secret.len() == SECRET_LEN => Ok(secret),
        Ok(secret) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} holds {} bytes; a node secret is {SECRET_LEN}",
                path.display(),
                secret.len()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; SECRET_LEN];
            rand::SecureRandom::fill(&rand::SystemRandom::new(), &mut secret)
                .map_err(|_| std::io::Error::other("no system randomness"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            file.write_all(&secret)?;
            file.sync_all()?;
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_same_pseudonym_other_secret_other_pseudonym() {
        let a = KeyedPseudonymiser::from_secret(&[1u8; 32]);
        let b = KeyedPseudonymiser::from_secret(&[2u8; 32]);
        let p1 = a.pseudonymise_one(Bsn::parse("111222333").unwrap());
        let p2 = a.pseudonymise_one(Bsn::parse("111222333").unwrap());
        let p3 = b.pseudonymise_one(Bsn::parse("111222333").unwrap());
        let p4 = a.pseudonymise_one(Bsn::parse("123456782").unwrap());
        assert_eq!(p1, p2);
        assert_ne!(p1, p3);
        assert_ne!(p1, p4);
    }

    #[test]
    fn the_secret_file_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.secret");
        let first = read_or_create_secret(&path).unwrap();
        let second = read_or_create_secret(&path).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(read_or_create_secret(&path).is_err());
    }
}
