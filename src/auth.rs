//! Principals of the local API and what their roles allow. A node's configuration lists each
//! principal with the SHA-256 of its bearer token, never the token: tokens are 256-bit random
//! strings, so a fast hash is enough, and a stolen configuration reveals no usable token.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;

use crate::domain::{PrincipalId, Role};

pub const TOKEN_PREFIX: &str = "kring_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: PrincipalId,
    pub roles: Vec<Role>,
}

/// Something a call does that needs a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    RegisterSignal,
    UpdateSignal,
    WithdrawSignal,
    ListSignals,
    ReviewAudit,
    ReportMelding,
    WatchMatches,
    LinkedSignals,
    BreakGlass,
    Regie,
    Waakvlam,
    ListMeldingen,
    RotateIndexKey,
}

impl Capability {
    /// The roles that grant this capability, in order of preference for the audit record.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Capability::RegisterSignal => &[Role::Signaler],
            Capability::UpdateSignal | Capability::WithdrawSignal => {
                &[Role::Signaler, Role::Coordinator]
            }
            Capability::ListSignals => &[Role::Signaler, Role::Coordinator, Role::Analyst],
            Capability::ReviewAudit => &[Role::PrivacyOfficer],
            Capability::ReportMelding => &[Role::Signaler, Role::Coordinator],
            Capability::WatchMatches => &[Role::Signaler, Role::Coordinator, Role::Analyst],
            // The federation's purpose policy decides further, per purpose.
            Capability::LinkedSignals | Capability::BreakGlass => {
                &[Role::Analyst, Role::Coordinator]
            }
            Capability::Regie => &[Role::Coordinator],
            Capability::Waakvlam => &[Role::Coordinator, Role::Analyst],
            Capability::ListMeldingen => &[Role::Analyst],
            Capability::RotateIndexKey => &[Role::Admin],
        }
    }

    /// The rule's name, as it appears in refusals.
    pub fn rule(self) -> &'static str {
        match self {
            Capability::RegisterSignal => "signals.register",
            Capability::UpdateSignal => "signals.update",
            Capability::WithdrawSignal => "signals.withdraw",
            Capability::ListSignals => "signals.list",
            Capability::ReviewAudit => "audit.review",
            Capability::ReportMelding => "signals.report_to_veilig_thuis",
            Capability::WatchMatches => "signals.watch_matches",
            Capability::LinkedSignals => "cases.linked_signals",
            Capability::BreakGlass => "cases.break_glass",
            Capability::Regie => "cases.regie",
            Capability::Waakvlam => "cases.waakvlam",
            Capability::ListMeldingen => "cases.list_meldingen",
            Capability::RotateIndexKey => "index.rotate_key",
        }
    }
}

impl Principal {
    /// The role under which this principal may use `capability`, if any.
    pub fn role_for(&self, capability: Capability) -> Option<Role> {
        capability
            .roles()
            .iter()
            .copied()
            .find(|role| self.roles.contains(role))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Principals {
    by_token_hash: HashMap<[u8; 32], Principal>,
}

impl Principals {
    pub fn new(entries: impl IntoIterator<Item = ([u8; 32], Principal)>) -> Principals {
        Principals {
            by_token_hash: entries.into_iter().collect(),
        }
    }

    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        self.by_token_hash.get(&token_hash(token))
    }

    pub fn len(&self) -> usize {
        self.by_token_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token_hash.is_empty()
    }
}

pub fn token_hash(token: &str) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

pub fn token_hash_hex(token: &str) -> String {
    token_hash(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new bearer token: the prefix and 32 random bytes in base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness is available");
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_by_hash_and_roles_grant_capabilities() {
        let token = new_token();
        let officer = Principal {
            id: PrincipalId::parse("fg").unwrap(),
            roles: vec![Role::PrivacyOfficer],
        };
        let principals = Principals::new([(token_hash(&token), officer.clone())]);
        assert_eq!(principals.authenticate(&token), Some(&officer));
        assert_eq!(principals.authenticate("kring_wrong"), None);
        assert_eq!(
            officer.role_for(Capability::ReviewAudit),
            Some(Role::PrivacyOfficer)
        );
        assert_eq!(officer.role_for(Capability::RegisterSignal), None);
        let both = Principal {
            id: PrincipalId::parse("af").unwrap(),
            roles: vec![Role::Coordinator, Role::Signaler],
        };
        assert_eq!(
            both.role_for(Capability::UpdateSignal),
            Some(Role::Signaler)
        );
        assert_eq!(both.role_for(Capability::ReviewAudit), None);
    }
}
