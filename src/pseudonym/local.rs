//! Local pseudonyms: what an organisation keeps at rest. A local pseudonym is an HMAC of the
//! federation pseudonym under a key only this node holds (derived from its node secret), so a
//! stolen organisation store and a stolen index store cannot be joined without that key, and
//! the federation pseudonym itself need not be kept.

use ring::{hkdf, hmac};

use crate::domain::Pseudonym;

const SALT: &[u8] = b"kring/v1 pseudonym salt";
const INFO: &[u8] = b"kring/v1 local pseudonym";

pub struct LocalPseudonyms {
    key: hmac::Key,
}

impl std::fmt::Debug for LocalPseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalPseudonyms(***)")
    }
}

impl LocalPseudonyms {
    pub fn from_secret(secret: &[u8]) -> LocalPseudonyms {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
        let okm = prk
            .expand(&[INFO], hmac::HMAC_SHA256)
            .expect("HKDF output of one HMAC key length is always valid");
        LocalPseudonyms {
            key: hmac::Key::from(okm),
        }
    }

    /// This node's pseudonym for the person with federation pseudonym `federation`.
    pub fn local(&self, federation: &Pseudonym) -> Pseudonym {
        let tag = hmac::sign(&self.key, &federation.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Pseudonym(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_pseudonyms_are_per_node_and_stable() {
        let a = LocalPseudonyms::from_secret(&[1; 32]);
        let b = LocalPseudonyms::from_secret(&[2; 32]);
        let person = Pseudonym([9; 32]);
        assert_eq!(a.local(&person), a.local(&person));
        assert_ne!(a.local(&person), b.local(&person));
        assert_ne!(a.local(&person), person);
    }
}
