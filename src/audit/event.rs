//! The canonical bytes of an event: its JSON serialisation, fields in declaration order,
//! absent options left out. The leaf hash is SHA-256(0x00 || these bytes), so an exported
//! line can be checked against a proof by any tool that can hash.
//!
//! Every event starts with `{"index":N,"time":T,`; the verifier relies on that prefix to check
//! the order of the log without parsing every event.

use crate::domain::AuditEvent;

pub fn encode(event: &AuditEvent) -> Vec<u8> {
    serde_json::to_vec(event).expect("audit events serialise to JSON without fail")
}

pub fn decode(bytes: &[u8]) -> Result<AuditEvent, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Reads the index and time from the fixed prefix of canonical bytes.
pub fn index_and_time(bytes: &[u8]) -> Option<(u64, i64)> {
    let rest = bytes.strip_prefix(b"{\"index\":")?;
    let (index, rest) = leading_number(rest)?;
    let rest = rest.strip_prefix(b",\"time\":")?;
    let (time, rest) = leading_number(rest)?;
    rest.first().filter(|&&b| b == b',')?;
    let index = std::str::from_utf8(index).ok()?.parse().ok()?;
    let time = std::str::from_utf8(time).ok()?.parse().ok()?;
    Some((index, time))
}

fn leading_number(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'-'))?;
    (end > 0).then(|| bytes.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, Actor, EventDraft, Oin, Pseudonym, TransactionId, UnixMillis};

    #[test]
    fn canonical_bytes_start_with_index_and_time_and_round_trip() {
        let actor = Actor {
            user: crate::domain::PrincipalId::parse("j.devries").unwrap(),
            role: Some(crate::domain::Role::Signaler),
            organisation: Oin::parse("00000001003214345000").unwrap(),
        };
        let event = EventDraft::new(TransactionId::new(), actor, Action::SignalRegister)
            .subjects([Pseudonym([3; 32])])
            .object("signal:x")
            .at(42, UnixMillis(1_764_000_000_123));
        let bytes = encode(&event);
        assert!(bytes.starts_with(b"{\"index\":42,\"time\":1764000000123,"));
        assert_eq!(index_and_time(&bytes), Some((42, 1_764_000_000_123)));
        assert_eq!(decode(&bytes).unwrap(), event);
        assert_eq!(index_and_time(b"{\"time\":1,\"index\":2,"), None);
        assert_eq!(index_and_time(b"{\"index\":,\"time\":1,"), None);
    }
}
