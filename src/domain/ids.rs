//! Identifiers and instants. Each is a newtype so that a pseudonym is never mistaken for a
//! signal id, and an identifier from outside is checked once, where it enters.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    pub const DAY: i64 = 24 * 60 * 60 * 1000;

    pub fn plus_millis(self, millis: i64) -> UnixMillis {
        UnixMillis(self.0.saturating_add(millis))
    }

    /// RFC 3339 in UTC with milliseconds, for people.
    /// The instant as RFC 3339 in UTC; times before 1970 show as 1970, and times past the
    /// year 9999 (RFC 3339's last) as its last millisecond.
    pub fn rfc3339(self) -> String {
        const LAST: u64 = 253_402_300_799_999;
        let millis = u64::try_from(self.0).unwrap_or(0).min(LAST);
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
        humantime::format_rfc3339_millis(time).to_string()
    }
}

/// A federation or local pseudonym of a person: 32 bytes, shown as unpadded base64url.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(pub [u8; 32]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PseudonymError {
    #[error("must be 43 characters of unpadded base64url (32 bytes)")]
    Format,
}

impl Pseudonym {
    pub fn parse(input: &str) -> Result<Pseudonym, PseudonymError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(input)
            .map_err(|_| PseudonymError::Format)?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| PseudonymError::Format)?;
        Ok(Pseudonym(array))
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym({self})")
    }
}

impl Serialize for Pseudonym {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pseudonym {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Pseudonym::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is required")]
    Missing,
    #[error("must be a UUID")]
    NotUuid,
    #[error("must be 1 to {max} characters of {allowed}")]
    Charset { max: usize, allowed: &'static str },
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A new time-ordered (UUIDv7) identifier.
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7())
            }

            pub fn parse(input: &str) -> Result<Self, IdError> {
                if input.is_empty() {
                    return Err(IdError::Missing);
                }
                uuid::Uuid::try_parse(input).map($name).map_err(|_| IdError::NotUuid)
            }

            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(uuid::Uuid::from_bytes(bytes))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// A signal, unique across the federation (UUIDv7, so ids sort by registration time).
    SignalId
);
uuid_id!(
    /// One exchange, carried from the requester through every hop and into every audit event
    /// it causes (UUIDv7).
    TransactionId
);
uuid_id!(
    /// An outbox message; receivers are idempotent by it.
    MessageId
);

macro_rules! name_id {
    ($(#[$meta:meta])* $name:ident, $max:literal, $allowed:literal, $pred:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, IdError> {
                if input.is_empty() {
                    return Err(IdError::Missing);
                }
                let ok = input.len() <= $max && input.chars().all($pred);
                if !ok {
                    return Err(IdError::Charset { max: $max, allowed: $allowed });
                }
                Ok($name(input.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

name_id!(
    /// A principal (a professional or a system account) of one node, from its configuration.
    PrincipalId,
    128,
    "letters, digits and . _ @ : -",
    |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | ':' | '-')
);
name_id!(
    /// One of an organisation's configured contact points: an identifier, never free text.
    ContactPointId,
    64,
    "lowercase letters, digits and _ -",
    |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')
);

impl PrincipalId {
    /// A name for the node itself acting: `kring:<what>`.
    pub fn system(what: &str) -> PrincipalId {
        PrincipalId::parse(&format!("kring:{what}")).expect("system names are valid ids")
    }
}

#[cfg(test)]
mod tests {
    use super::UnixMillis;

    #[test]
    fn rfc3339_shows_every_instant_within_its_years() {
        assert_eq!(UnixMillis(0).rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(UnixMillis(-1).rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(UnixMillis(i64::MAX).rfc3339(), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            UnixMillis(253_402_300_799_999).rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    use super::*;

    #[test]
    fn pseudonym_round_trips_as_base64url() {
        let p = Pseudonym([7u8; 32]);
        let text = p.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(Pseudonym::parse(&text).unwrap(), p);
        assert_eq!(Pseudonym::parse("abc"), Err(PseudonymError::Format));
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{text}\""));
    }

    #[test]
    fn identifiers_refuse_what_is_not_theirs() {
        assert!(SignalId::parse("0190f7a2-7b3c-7d4e-8f00-0123456789ab").is_ok());
        assert_eq!(SignalId::parse(""), Err(IdError::Missing));
        assert_eq!(SignalId::parse("not-a-uuid"), Err(IdError::NotUuid));
        assert!(ContactPointId::parse("zorgcoordinator").is_ok());
        assert!(ContactPointId::parse("Zorg Coordinator").is_err());
        assert!(PrincipalId::parse("j.devries@school").is_ok());
        assert!(PrincipalId::parse(&"x".repeat(129)).is_err());
        assert!(PrincipalId::parse("naam met spaties").is_err());
    }

    #[test]
    fn signal_ids_sort_by_creation() {
        let a = SignalId::new();
        let b = SignalId::new();
        assert!(a < b);
        assert!(a.as_bytes() < b.as_bytes());
    }
}
