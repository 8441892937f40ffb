//! The federation directory: who the members are (OIN, name, type, roles, peer endpoint, TLS
//! and audit-key pins, public contact) and the purpose policy, signed by the federation's
//! authority as a C2SP signed note.
//!
//! This module owns the directory's wire form and its validation, the signed note
//! ([`Directory::sign`], [`Directory::open`]), [`DirectoryState`] (the directory a node has
//! accepted, which never goes back to an older serial), and the authority's TOML source
//! ([`DirectorySource`], [`build`]).
//!
//! A [`Directory`] value is always valid: the only ways to one check every rule, so code that
//! holds one may rely on exactly one index, a pin for every member, and a parseable audit key.
//! This module never opens a connection and never persists anything: the node fetches notes
//! and persists the note it accepted ([`DirectoryState::note`]). Only the authority side
//! ([`DirectorySource`]) reads files.
//!
//! The signed text is the directory's canonical JSON (field order fixed by the structs, absent
//! options omitted) on one line, followed by a newline. A note whose text is not canonical is
//! refused, so that equal content is equal text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::{NoteError, NoteSigner, NoteVerifier};
use crate::domain::{Invalid, Oin, OrgType, Ring, UnixMillis, closed_enum};

pub use crate::policy::{Field, Policy, PurposeRule};

/// The default name of the authority's signing key.
pub const AUTHORITY_KEY_NAME: &str = "kring.nl/authority";

/// How far in the future a directory's `issued_at` may be: the clocks of the authority and a
/// node may differ this much.
pub const MAX_CLOCK_SKEW_MILLIS: i64 = 5 * 60 * 1000;

closed_enum! {
    /// What a member does in the federation. One binary plays any of these roles.
    NodeRole {
        /// Holds signals of its own professionals; every organisation's node.
        Organisation = "organisation",
        /// Holds pointers, detects matches, sends notices.
        Index = "index",
        /// Turns BSNs into federation pseudonyms without learning them.
        PseudonymService = "pseudonym_service",
        /// Signs the directory.
        Authority = "authority",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("the directory is not signed by the authority {authority}")]
    NotSigned { authority: String },
    #[error("the directory's signature by {authority} does not verify")]
    BadSignature { authority: String },
    #[error("the directory expired at {}", at.rfc3339())]
    Expired { at: UnixMillis },
    #[error("the directory is issued at {}, in the future", issued_at.rfc3339())]
    NotYetValid { issued_at: UnixMillis },
    #[error("malformed directory: {0}")]
    Malformed(String),
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
    #[error("serial {offered} is older than the accepted serial {current}")]
    Rollback { current: u64, offered: u64 },
    #[error("serial {serial} is already accepted with different content")]
    Equivocation { serial: u64 },
    #[error("the directory is for federation {offered:?}, not {accepted:?}")]
    OtherFederation { accepted: String, offered: String },
    #[error("not a certificate: {0}")]
    Certificate(String),
    #[error("{path}: {problem}")]
    Unreadable { path: String, problem: String },
    #[error("directory source: {0}")]
    SourceSyntax(String),
}

fn invalid(field: impl Into<String>, rule: impl ToString) -> DirectoryError {
    DirectoryError::Invalid {
        field: field.into(),
        rule: rule.to_string(),
    }
}

impl From<Invalid> for DirectoryError {
    fn from(e: Invalid) -> DirectoryError {
        DirectoryError::Invalid {
            field: e.field,
            rule: e.rule,
        }
    }
}

/// An organisation's public contact for match notices, e.g. its aandachtsfunctionaris.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// One member of the federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub oin: Oin,
    pub name: String,
    pub org_type: OrgType,
    pub roles: Vec<NodeRole>,
    /// `host:port` of its peer listener.
    pub endpoint: String,
    /// SHA-256 of the SubjectPublicKeyInfo of each TLS certificate it may present; several,
    /// so that keys can roll. Hex in JSON and TOML.
    #[serde(with = "hex_pins")]
    pub tls_spki_sha256: Vec<[u8; 32]>,
    /// Its audit verifier key, `name+keyid+key` (C2SP note verifier).
    pub audit_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
}

impl Member {
    pub fn has_role(&self, role: NodeRole) -> bool {
        self.roles.contains(&role)
    }

    pub fn ring(&self) -> Ring {
        self.org_type.ring()
    }

    pub fn is_pinned(&self, pin: &[u8; 32]) -> bool {
        self.tls_spki_sha256.contains(pin)
    }

    /// The verifier for its audit checkpoints. Never fails for a member of a [`Directory`].
    pub fn audit_verifier(&self) -> Result<NoteVerifier, NoteError> {
        NoteVerifier::parse(&self.audit_key)
    }
}

/// The content of a directory before it is checked: what the authority signs and what a note
/// carries. Turn it into a [`Directory`] with [`Directory::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryContent {
    pub federation: String,
    /// Increases with every directory the authority signs; a node never goes back.
    pub serial: u64,
    pub issued_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub members: Vec<Member>,
    pub policy: Policy,
}

/// A checked directory. Its content can be read, not changed.
#[derive(Debug, Clone)]
pub struct Directory {
    content: DirectoryContent,
    by_oin: BTreeMap<Oin, usize>,
    by_pin: BTreeMap<[u8; 32], usize>,
    index: usize,
}

impl PartialEq for Directory {
    fn eq(&self, other: &Directory) -> bool {
        self.content == other.content
    }
}

impl Eq for Directory {}

impl Serialize for Directory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.content.serialize(s)
    }
}

const MAX_NAME: usize = 200;

fn check_text(field: &str, text: &str) -> Result<(), DirectoryError> {
    if text.trim().is_empty() || text.len() > MAX_NAME || text.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_NAME} characters, none of them control characters"),
        ));
    }
    Ok(())
}

/// `host:port`, with an IPv6 address in brackets; the port is not 0.
fn check_endpoint(field: &str, endpoint: &str) -> Result<(), DirectoryError> {
    let bad = || invalid(field, "must be host:port");
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(port) if port > 0 => {}
        _ => {
            return Err(invalid(
                field,
                "must be host:port with a port from 1 to 65535",
            ));
        }
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    if !host_ok {
        return Err(bad());
    }
    Ok(())
}

fn check_contact(field: &str, contact: &Contact) -> Result<(), DirectoryError> {
    check_text(&format!("{field}.name"), &contact.name)?;
    if contact.phone.is_none() && contact.email.is_none() {
        return Err(invalid(
            format!("{field}.phone"),
            "a contact needs a phone or an e-mail",
        ));
    }
    if let Some(phone) = &contact.phone {
        check_text(&format!("{field}.phone"), phone)?;
    }
    if let Some(email) = &contact.email {
        check_text(&format!("{field}.email"), email)?;
    }
    Ok(())
}

impl Directory {
    /// Checks every rule of a directory. Errors name the field: `members[2].oin: listed twice`.
    pub fn new(content: DirectoryContent) -> Result<Directory, DirectoryError> {
        check_text("federation", &content.federation)?;
        if content.serial == 0 {
            return Err(invalid("serial", "must be at least 1"));
        }
        if content.expires_at <= content.issued_at {
            return Err(invalid("expires_at", "must be after issued_at"));
        }
        let mut by_oin = BTreeMap::new();
        let mut by_pin = BTreeMap::new();
        let mut audit_keys: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        let mut index = None;
        for (i, member) in content.members.iter().enumerate() {
            let key = |field: &str| format!("members[{i}].{field}");
            if let Some(first) = by_oin.insert(member.oin, i) {
                return Err(invalid(
                    key("oin"),
                    format!("listed twice (also members[{first}])"),
                ));
            }
            check_text(&key("name"), &member.name)?;
            if member.roles.is_empty() {
                return Err(invalid(key("roles"), "at least one role is required"));
            }
            for (j, role) in member.roles.iter().enumerate() {
                if member.roles[..j].contains(role) {
                    return Err(invalid(format!("members[{i}].roles[{j}]"), "listed twice"));
                }
            }
            if member.has_role(NodeRole::Index) {
                if let Some(first) = index {
                    return Err(invalid(
                        key("roles"),
                        format!("members[{first}] is the index already; there is exactly one"),
                    ));
                }
                index = Some(i);
            }
            check_endpoint(&key("endpoint"), &member.endpoint)?;
            if member.tls_spki_sha256.is_empty() {
                return Err(invalid(
                    key("tls_spki_sha256"),
                    "at least one pin is required",
                ));
            }
            for (j, pin) in member.tls_spki_sha256.iter().enumerate() {
                if let Some(other) = by_pin.insert(*pin, i) {
                    let rule = if other == i {
                        "listed twice".to_owned()
                    } else {
                        format!("is pinned for members[{other}] too")
                    };
                    return Err(invalid(format!("members[{i}].tls_spki_sha256[{j}]"), rule));
                }
            }
            if member.audit_key.trim() != member.audit_key {
                return Err(invalid(key("audit_key"), "must not have spaces around it"));
            }
            let verifier =
                NoteVerifier::parse(&member.audit_key).map_err(|e| invalid(key("audit_key"), e))?;
            if let Some(other) = audit_keys.insert(*verifier.public_key(), i) {
                return Err(invalid(
                    key("audit_key"),
                    format!("is the audit key of members[{other}] too"),
                ));
            }
            if let Some(contact) = &member.contact {
                check_contact(&key("contact"), contact)?;
            }
        }
        let Some(index) = index else {
            return Err(invalid("members", "no member has the role index"));
        };
        if !content
            .members
            .iter()
            .any(|m| m.has_role(NodeRole::PseudonymService))
        {
            return Err(invalid(
                "members",
                "no member has the role pseudonym_service",
            ));
        }
        content.policy.check().map_err(|e| Invalid {
            field: format!("policy.{}", e.field),
            rule: e.rule,
        })?;
        Ok(Directory {
            content,
            by_oin,
            by_pin,
            index,
        })
    }

    pub fn content(&self) -> &DirectoryContent {
        &self.content
    }

    pub fn into_content(self) -> DirectoryContent {
        self.content
    }

    pub fn federation(&self) -> &str {
        &self.content.federation
    }

    pub fn serial(&self) -> u64 {
        self.content.serial
    }

    pub fn issued_at(&self) -> UnixMillis {
        self.content.issued_at
    }

    pub fn expires_at(&self) -> UnixMillis {
        self.content.expires_at
    }

    pub fn members(&self) -> &[Member] {
        &self.content.members
    }

    pub fn policy(&self) -> &Policy {
        &self.content.policy
    }

    pub fn member(&self, oin: &Oin) -> Option<&Member> {
        self.by_oin.get(oin).map(|&i| &self.content.members[i])
    }

    /// The member whose TLS key has this SPKI SHA-256 pin.
    pub fn member_by_pin(&self, pin: &[u8; 32]) -> Option<&Member> {
        self.by_pin.get(pin).map(|&i| &self.content.members[i])
    }

    /// The member pinned for this (DER) certificate's key.
    pub fn member_by_certificate(&self, cert_der: &[u8]) -> Option<&Member> {
        spki_sha256(cert_der)
            .ok()
            .and_then(|pin| self.member_by_pin(&pin))
    }

    pub fn with_role(&self, role: NodeRole) -> impl Iterator<Item = &Member> {
        self.content
            .members
            .iter()
            .filter(move |m| m.has_role(role))
    }

    /// The one index of the federation.
    pub fn index(&self) -> &Member {
        &self.content.members[self.index]
    }

    /// The pseudonym services, at least one.
    pub fn pseudonym_services(&self) -> impl Iterator<Item = &Member> {
        self.with_role(NodeRole::PseudonymService)
    }

    /// The members of organisation type Veilig Thuis.
    pub fn veilig_thuis(&self) -> impl Iterator<Item = &Member> {
        self.content
            .members
            .iter()
            .filter(|m| m.org_type == OrgType::VeiligThuis)
    }

    /// The canonical JSON of the directory, on one line.
    pub fn canonical_json(&self) -> String {
        // Only strings, integers, sequences and structs: serialising cannot fail.
        serde_json::to_string(&self.content).expect("a directory serialises to JSON")
    }

    /// The signed note: the canonical JSON and a newline, signed by the authority.
    pub fn sign(&self, authority: &NoteSigner) -> String {
        authority.sign(&format!("{}\n", self.canonical_json()))
    }

    /// Verifies the authority's signature, parses and checks the directory, and refuses one
    /// that has expired (`now >= expires_at`) or is issued more than
    /// [`MAX_CLOCK_SKEW_MILLIS`] in the future.
    pub fn open(
        note: &str,
        authority: &NoteVerifier,
        now: UnixMillis,
    ) -> Result<Directory, DirectoryError> {
        let directory = Directory::verify(note, authority)?;
        directory.check_time(now)?;
        Ok(directory)
    }

    /// Everything [`Directory::open`] checks except time: for a note this node accepted
    /// before, which stays the floor against rollback even once it has expired.
    pub fn verify(note: &str, authority: &NoteVerifier) -> Result<Directory, DirectoryError> {
        let text = authority.open(note).map_err(|e| match e {
            NoteError::Unsigned(authority) => DirectoryError::NotSigned { authority },
            NoteError::BadSignature(authority) => DirectoryError::BadSignature { authority },
            other => DirectoryError::Malformed(other.to_string()),
        })?;
        let line = text
            .strip_suffix('\n')
            .filter(|line| !line.contains('\n'))
            .ok_or_else(|| DirectoryError::Malformed("the text must be one line of JSON".into()))?;
        let content: DirectoryContent =
            serde_json::from_str(line).map_err(|e| DirectoryError::Malformed(e.to_string()))?;
        let directory = Directory::new(content)?;
        if directory.canonical_json() != line {
            return Err(DirectoryError::Malformed(
                "the text is not the directory's canonical JSON".into(),
            ));
        }
        Ok(directory)
    }

    /// Refuses an expired directory and one issued too far in the future.
    pub fn check_time(&self, now: UnixMillis) -> Result<(), DirectoryError> {
        if now >= self.content.expires_at {
            return Err(DirectoryError::Expired {
                at: self.content.expires_at,
            });
        }
        if self.content.issued_at > now.plus_millis(MAX_CLOCK_SKEW_MILLIS) {
            return Err(DirectoryError::NotYetValid {
                issued_at: self.content.issued_at,
            });
        }
        Ok(())
    }
}

/// SHA-256 of a DER certificate's SubjectPublicKeyInfo: the pin the directory holds.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], DirectoryError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| DirectoryError::Certificate(e.to_string()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    let mut pin = [0u8; 32];
    pin.copy_from_slice(digest.as_ref());
    Ok(pin)
}

/// What [`DirectoryState::accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// A newer directory replaced the current one.
    Updated { from: u64, to: u64 },
    /// The offered directory is the current one.
    Unchanged,
}

#[derive(Debug)]
struct Held {
    directory: Arc<Directory>,
    note: Arc<str>,
}

/// The directory a node has accepted, and its note. It only moves forward: a lower serial is
/// a rollback and the same serial with other content an equivocation, both refused. The node
/// persists [`DirectoryState::note`] after every update and restores from it at start, so the
/// floor holds across restarts.
#[derive(Debug)]
pub struct DirectoryState {
    held: RwLock<Held>,
}

impl DirectoryState {
    /// Starts from a note checked like [`Directory::open`].
    pub fn new(
        note: &str,
        authority: &NoteVerifier,
        now: UnixMillis,
    ) -> Result<DirectoryState, DirectoryError> {
        let directory = Directory::open(note, authority, now)?;
        Ok(DirectoryState::holding(directory, note))
    }

    /// Starts from the note this node accepted before (and persisted). Its time is not
    /// checked: an expired directory still sets the serial below which nothing is accepted.
    /// Use [`DirectoryState::current_at`] to refuse acting on it.
    pub fn restore(note: &str, authority: &NoteVerifier) -> Result<DirectoryState, DirectoryError> {
        let directory = Directory::verify(note, authority)?;
        Ok(DirectoryState::holding(directory, note))
    }

    fn holding(directory: Directory, note: &str) -> DirectoryState {
        DirectoryState {
            held: RwLock::new(Held {
                directory: Arc::new(directory),
                note: Arc::from(note),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        // The held pair is replaced as a whole, so a panic elsewhere cannot leave it torn.
        self.held.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks `note` like [`Directory::open`] and makes it current when its serial is higher.
    pub fn accept(
        &self,
        note: &str,
        authority: &NoteVerifier,
        now: UnixMillis,
    ) -> Result<Accepted, DirectoryError> {
        let offered = Directory::open(note, authority, now)?;
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        let current = &held.directory;
        if offered.federation() != current.federation() {
            return Err(DirectoryError::OtherFederation {
                accepted: current.federation().to_owned(),
                offered: offered.federation().to_owned(),
            });
        }
        let (from, to) = (current.serial(), offered.serial());
        if to < from {
            return Err(DirectoryError::Rollback {
                current: from,
                offered: to,
            });
        }
        if to == from {
            if offered != **current {
                return Err(DirectoryError::Equivocation { serial: to });
            }
            return Ok(Accepted::Unchanged);
        }
        *held = Held {
            directory: Arc::new(offered),
            note: Arc::from(note),
        };
        Ok(Accepted::Updated { from, to })
    }

    /// The accepted directory, whatever its time.
    pub fn current(&self) -> Arc<Directory> {
        Arc::clone(&self.read().directory)
    }

    /// The accepted directory, refused when it has expired at `now` (or is not yet valid).
    pub fn current_at(&self, now: UnixMillis) -> Result<Arc<Directory>, DirectoryError> {
        let directory = self.current();
        directory.check_time(now)?;
        Ok(directory)
    }

    /// The accepted note, for the node to persist.
    pub fn note(&self) -> Arc<str> {
        Arc::clone(&self.read().note)
    }

    pub fn serial(&self) -> u64 {
        self.read().directory.serial()
    }
}

mod hex_pins {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(pins: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(pins.iter().map(super::pin_hex))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|text| {
                super::parse_pin(text).ok_or_else(|| {
                    D::Error::custom("a TLS pin must be 64 lowercase hex digits (SHA-256)")
                })
            })
            .collect()
    }
}

/// A pin as the directory writes it: 64 lowercase hex digits.
pub fn pin_hex(pin: &[u8; 32]) -> String {
    pin.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 lowercase hex digits: the one spelling of a pin, so that the canonical form is unique.
pub fn parse_pin(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// The authority's side: a TOML source that references certificate and key files.

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    federation: String,
    #[serde(default)]
    members: Vec<RawMember>,
    /// Absent: [`Policy::regional_default`].
    policy: Option<Policy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    oin: String,
    name: String,
    org_type: String,
    roles: Vec<String>,
    endpoint: String,
    /// PEM certificate files; the pin of each file's first certificate is taken.
    #[serde(default)]
    certificates: Vec<PathBuf>,
    /// Pins given inline, 64 hex digits each.
    #[serde(default)]
    tls_spki_sha256: Vec<String>,
    /// The member's Ed25519 audit key (PKCS#8 PEM), to derive its verifier key from.
    audit_key_file: Option<PathBuf>,
    /// The name for the key in `audit_key_file`; default `kring.nl/audit/<OIN>`.
    audit_key_name: Option<String>,
    /// The verifier key given inline, `name+keyid+key`.
    audit_key: Option<String>,
    contact: Option<Contact>,
}

/// The authority's description of the federation, in TOML. Members name their certificate
/// files (`certificates`) and/or give pins inline (`tls_spki_sha256`), and name their audit
/// key file (`audit_key_file`, optionally `audit_key_name`) or give the verifier key inline
/// (`audit_key`). Relative paths are relative to the TOML file. Without a `[policy]` table the
/// regional default applies.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    raw: RawSource,
    base: PathBuf,
}

impl DirectorySource {
    pub fn load(path: &Path) -> Result<DirectorySource, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| DirectoryError::Unreadable {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        DirectorySource::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses TOML; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<DirectorySource, DirectoryError> {
        let raw: RawSource =
            toml::from_str(text).map_err(|e| DirectoryError::SourceSyntax(e.to_string()))?;
        Ok(DirectorySource {
            raw,
            base: base.to_owned(),
        })
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }
}

/// Builds and checks the directory the authority signs: pins from the certificate files,
/// verifier keys from the audit key files, valid from `issued_at` for `valid_for`.
pub fn build(
    source: &DirectorySource,
    serial: u64,
    issued_at: UnixMillis,
    valid_for: Duration,
) -> Result<Directory, DirectoryError> {
    let valid_millis = i64::try_from(valid_for.as_millis())
        .ok()
        .filter(|millis| *millis > 0)
        .ok_or_else(|| {
            invalid(
                "valid_for",
                "must be more than zero and fit in milliseconds",
            )
        })?;
    let mut members = Vec::with_capacity(source.raw.members.len());
    for (i, raw) in source.raw.members.iter().enumerate() {
        members.push(build_member(source, i, raw, issued_at)?);
    }
    Directory::new(DirectoryContent {
        federation: source.raw.federation.clone(),
        serial,
        issued_at,
        expires_at: issued_at.plus_millis(valid_millis),
        members,
        policy: source
            .raw
            .policy
            .clone()
            .unwrap_or_else(Policy::regional_default),
    })
}

fn build_member(
    source: &DirectorySource,
    i: usize,
    raw: &RawMember,
    issued_at: UnixMillis,
) -> Result<Member, DirectoryError> {
    let key = |field: &str| format!("members[{i}].{field}");
    let oin = Oin::parse(&raw.oin).map_err(|e| invalid(key("oin"), e))?;
    let org_type: OrgType = raw
        .org_type
        .parse()
        .map_err(|e| invalid(key("org_type"), e))?;
    let roles = raw
        .roles
        .iter()
        .enumerate()
        .map(|(j, role)| {
            role.parse::<NodeRole>()
                .map_err(|e| invalid(format!("members[{i}].roles[{j}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut pins = Vec::new();
    for (j, path) in raw.certificates.iter().enumerate() {
        let field = format!("members[{i}].certificates[{j}]");
        pins.push(certificate_pin(
            &field,
            &source.resolve(path),
            &oin,
            issued_at,
        )?);
    }
    for (j, text) in raw.tls_spki_sha256.iter().enumerate() {
        let pin = parse_pin(text).ok_or_else(|| {
            invalid(
                format!("members[{i}].tls_spki_sha256[{j}]"),
                "must be 64 lowercase hex digits (SHA-256)",
            )
        })?;
        pins.push(pin);
    }
    if pins.is_empty() {
        return Err(invalid(
            key("certificates"),
            "at least one certificate or tls_spki_sha256 pin is required",
        ));
    }

    let audit_key = match (&raw.audit_key_file, &raw.audit_key) {
        (Some(path), None) => {
            let pkcs8 = crate::config::read_signing_key(&source.resolve(path))
                .map_err(|e| invalid(key("audit_key_file"), e))?;
            let name = raw
                .audit_key_name
                .clone()
                .unwrap_or_else(|| crate::config::default_origin(&oin));
            NoteSigner::from_pkcs8(&name, &pkcs8)
                .map_err(|e| invalid(key("audit_key_file"), e))?
                .verifier_key()
        }
        (None, Some(inline)) => {
            if raw.audit_key_name.is_some() {
                return Err(invalid(
                    key("audit_key_name"),
                    "only with audit_key_file; an inline audit_key carries its name",
                ));
            }
            inline.trim().to_owned()
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                key("audit_key"),
                "give audit_key_file or audit_key, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                key("audit_key_file"),
                "audit_key_file or audit_key is required",
            ));
        }
    };

    Ok(Member {
        oin,
        name: raw.name.clone(),
        org_type,
        roles,
        endpoint: raw.endpoint.clone(),
        tls_spki_sha256: pins,
        audit_key,
        contact: raw.contact.clone(),
    })
}

/// The pin of a PEM file's first certificate, which must carry the member's OIN in its
/// subject serialNumber (as PKIoverheid certificates do) and must not have expired.
fn certificate_pin(
    field: &str,
    path: &Path,
    oin: &Oin,
    issued_at: UnixMillis,
) -> Result<[u8; 32], DirectoryError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem =
        std::fs::read(path).map_err(|e| invalid(field, format!("{}: {e}", path.display())))?;
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| invalid(field, format!("{}: no PEM certificate", path.display())))?
        .map_err(|e| {
            invalid(
                field,
                format!("{}: bad PEM certificate: {e}", path.display()),
            )
        })?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| invalid(field, format!("{}: not a certificate: {e}", path.display())))?;
    let serial_number = cert
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == "2.5.4.5")
        .and_then(|a| a.as_str().ok());
    if serial_number != Some(oin.as_str()) {
        return Err(invalid(
            field,
            "the certificate's subject serialNumber is not the member's OIN",
        ));
    }
    if cert.validity().not_after.timestamp().saturating_mul(1000) <= issued_at.0 {
        return Err(invalid(field, "the certificate has expired"));
    }
    spki_sha256(&der).map_err(|e| invalid(field, e))
}

/// Directories for unit tests: made of content, without certificates or files.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::audit::note::generate_pkcs8;

    pub fn oin(n: u64) -> Oin {
        Oin::parse(&format!("{n:020}")).unwrap()
    }

    pub fn audit_key(oin: &Oin) -> String {
        NoteSigner::from_pkcs8(&crate::config::default_origin(oin), &generate_pkcs8())
            .unwrap()
            .verifier_key()
    }

    pub fn member(n: u64, org_type: OrgType, roles: &[NodeRole]) -> Member {
        let oin = oin(n);
        Member {
            oin,
            name: format!("{org_type} {n}"),
            org_type,
            roles: roles.to_vec(),
            endpoint: format!("node{n}.kring.test:4443"),
            tls_spki_sha256: vec![[n as u8; 32]],
            audit_key: audit_key(&oin),
            contact: None,
        }
    }

    /// Members 1 to 10: an index and a pseudonym service (federation services), then one
    /// organisation of each type the policy tests need.
    pub fn content() -> DirectoryContent {
        use NodeRole::*;
        use OrgType::*;
        let orgs = [
            School,
            VeiligThuis,
            LocalTeam,
            Police,
            SportsClub,
            YouthCare,
            Probation,
            Huisarts,
        ];
        let mut members = vec![
            member(1, FederationService, &[Index]),
            member(2, FederationService, &[PseudonymService]),
        ];
        for (n, org_type) in (3..).zip(orgs) {
            members.push(member(n, org_type, &[Organisation]));
        }
        DirectoryContent {
            federation: "kring.test".into(),
            serial: 1,
            issued_at: UnixMillis(1_000_000),
            expires_at: UnixMillis(1_000_000 + 30 * UnixMillis::DAY),
            members,
            policy: Policy::regional_default(),
        }
    }

    /// The member number of the organisation of `org_type` in [`content`].
    pub fn oin_of(org_type: OrgType) -> Oin {
        let content = content();
        content
            .members
            .iter()
            .find(|m| m.org_type == org_type)
            .map(|m| m.oin)
            .unwrap()
    }

    pub fn directory() -> Directory {
        Directory::new(content()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::audit::note::generate_pkcs8;
    use crate::domain::Role;

    fn refused(content: DirectoryContent) -> (String, String) {
        match Directory::new(content) {
            Err(DirectoryError::Invalid { field, rule }) => (field, rule),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_directory_answers_lookups() {
        let d = directory();
        assert_eq!(d.index().oin, oin(1));
        assert_eq!(
            d.pseudonym_services().map(|m| m.oin).collect::<Vec<_>>(),
            vec![oin(2)]
        );
        assert_eq!(
            d.veilig_thuis().map(|m| m.oin).collect::<Vec<_>>(),
            vec![oin_of(OrgType::VeiligThuis)]
        );
        assert_eq!(d.with_role(NodeRole::Organisation).count(), 8);
        assert_eq!(d.with_role(NodeRole::Authority).count(), 0);
        assert_eq!(d.member(&oin(5)).unwrap().org_type, OrgType::LocalTeam);
        assert!(d.member(&oin(99)).is_none());
        assert_eq!(d.member_by_pin(&[4u8; 32]).unwrap().oin, oin(4));
        assert!(d.member_by_pin(&[99u8; 32]).is_none());
    }

    type Mutation = fn(&mut DirectoryContent);

    #[test]
    fn every_rule_is_checked_and_named() {
        let cases: &[(Mutation, &str, &str)] = &[
            (
                |c| c.federation = " ".into(),
                "federation",
                "must be 1 to 200",
            ),
            (|c| c.serial = 0, "serial", "must be at least 1"),
            (
                |c| c.expires_at = c.issued_at,
                "expires_at",
                "must be after issued_at",
            ),
            (
                |c| c.members[4].oin = c.members[2].oin,
                "members[4].oin",
                "listed twice (also members[2])",
            ),
            (
                |c| c.members[3].name.clear(),
                "members[3].name",
                "must be 1",
            ),
            (
                |c| c.members[3].name = "a\nb".into(),
                "members[3].name",
                "control characters",
            ),
            (
                |c| c.members[3].roles.clear(),
                "members[3].roles",
                "at least one role is required",
            ),
            (
                |c| c.members[3].roles.push(NodeRole::Organisation),
                "members[3].roles[1]",
                "listed twice",
            ),
            (
                |c| c.members[5].endpoint = "node5.kring.test".into(),
                "members[5].endpoint",
                "must be host:port",
            ),
            (
                |c| c.members[5].endpoint = String::new(),
                "members[5].endpoint",
                "must be host:port",
            ),
            (
                |c| c.members[5].endpoint = ":4443".into(),
                "members[5].endpoint",
                "must be host:port",
            ),
            (
                |c| c.members[5].endpoint = "node5:0".into(),
                "members[5].endpoint",
                "port from 1 to 65535",
            ),
            (
                |c| c.members[5].endpoint = "node5:70000".into(),
                "members[5].endpoint",
                "port from 1 to 65535",
            ),
            (
                |c| c.members[5].endpoint = "::1:4443".into(),
                "members[5].endpoint",
                "must be host:port",
            ),
            (
                |c| c.members[5].endpoint = "no de:4443".into(),
                "members[5].endpoint",
                "must be host:port",
            ),
            (
                |c| c.members[6].tls_spki_sha256.clear(),
                "members[6].tls_spki_sha256",
                "at least one pin is required",
            ),
            (
                |c| c.members[6].tls_spki_sha256.push([7u8; 32]),
                "members[6].tls_spki_sha256[1]",
                "listed twice",
            ),
            (
                |c| c.members[6].tls_spki_sha256.push([3u8; 32]),
                "members[6].tls_spki_sha256[1]",
                "is pinned for members[2] too",
            ),
            (
                |c| c.members[7].audit_key = "kring.nl/x+00000000+AAAA".into(),
                "members[7].audit_key",
                "malformed verifier key",
            ),
            (
                |c| c.members[7].audit_key = format!(" {}", c.members[7].audit_key),
                "members[7].audit_key",
                "spaces",
            ),
            (
                |c| c.members[7].audit_key = c.members[0].audit_key.clone(),
                "members[7].audit_key",
                "is the audit key of members[0] too",
            ),
            (
                |c| {
                    c.members[7].contact = Some(Contact {
                        name: "Aandachtsfunctionaris".into(),
                        phone: None,
                        email: None,
                    })
                },
                "members[7].contact.phone",
                "a contact needs a phone or an e-mail",
            ),
            (
                |c| c.members[8].roles.push(NodeRole::Index),
                "members[8].roles",
                "members[0] is the index already",
            ),
            (
                |c| c.members[0].roles = vec![NodeRole::Organisation],
                "members",
                "no member has the role index",
            ),
            (
                |c| c.members[1].roles = vec![NodeRole::Organisation],
                "members",
                "no member has the role pseudonym_service",
            ),
            (
                |c| {
                    let again = c.policy.purposes[3].clone();
                    c.policy.purposes.push(again)
                },
                "policy.purposes[9].purpose",
                "vt_triage has a rule already",
            ),
            (
                |c| c.policy.purposes[2].org_types.clear(),
                "policy.purposes[2].org_types",
                "at least one organisation type is required",
            ),
            (
                |c| c.policy.purposes[2].roles.push(Role::Coordinator),
                "policy.purposes[2].roles[1]",
                "listed twice",
            ),
            (
                |c| c.policy.purposes[2].roles.push(Role::Admin),
                "policy.purposes[2].roles[1]",
                "admin grants no data access",
            ),
            (
                |c| c.policy.purposes[2].fields.clear(),
                "policy.purposes[2].fields",
                "at least one field is required",
            ),
            (
                |c| c.policy.regie_excluded.push(OrgType::SportsClub),
                "policy.regie_excluded[4]",
                "listed twice",
            ),
            (
                |c| c.policy.waakvlam_checkin_days = 0,
                "policy.waakvlam_checkin_days",
                "must be at least 1",
            ),
            (
                |c| c.policy.waakvlam_max_days = 0,
                "policy.waakvlam_max_days",
                "must be at least 1",
            ),
            (
                |c| c.policy.waakvlam_checkin_days = 400,
                "policy.waakvlam_checkin_days",
                "must not exceed waakvlam_max_days",
            ),
        ];
        for (i, (mutate, field, rule)) in cases.iter().enumerate() {
            let mut content = content();
            mutate(&mut content);
            let (got_field, got_rule) = refused(content);
            assert_eq!(got_field, *field, "case {i}: {got_rule}");
            assert!(got_rule.contains(rule), "case {i}: {got_field}: {got_rule}");
        }
    }

    #[test]
    fn endpoints_take_names_addresses_and_bracketed_ipv6() {
        for ok in [
            "vt.example.nl:4443",
            "127.0.0.1:1",
            "[::1]:65535",
            "node_1:80",
        ] {
            check_endpoint("e", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["[::1]", "[nonsense]:443", "host:port", "a/b:443", "host:-1"] {
            assert!(check_endpoint("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pins_have_one_spelling() {
        let pin = [0xabu8; 32];
        assert_eq!(parse_pin(&pin_hex(&pin)), Some(pin));
        assert_eq!(parse_pin(&pin_hex(&pin).to_uppercase()), None);
        assert_eq!(parse_pin(&pin_hex(&pin)[1..]), None);
        assert_eq!(parse_pin(&format!("{}g", &pin_hex(&pin)[1..])), None);
    }

    fn authority() -> NoteSigner {
        NoteSigner::from_pkcs8(AUTHORITY_KEY_NAME, &generate_pkcs8()).unwrap()
    }

    #[test]
    fn the_signed_text_is_one_line_of_canonical_json() {
        let key = authority();
        let d = directory();
        let note = d.sign(&key);
        let (text, _) = crate::audit::note::split(&note).unwrap();
        assert_eq!(text, format!("{}\n", d.canonical_json()));
        assert_eq!(text.matches('\n').count(), 1);
        assert!(
            text.starts_with(r#"{"federation":"kring.test","serial":1,"#),
            "{text}"
        );
        let opened = Directory::open(&note, &key.verifier(), d.issued_at()).unwrap();
        assert_eq!(opened, d);

        // The same content in another spelling is refused, signature and all.
        let pretty = serde_json::to_string_pretty(d.content()).unwrap();
        let note = key.sign(&format!("{pretty}\n"));
        assert_eq!(
            Directory::open(&note, &key.verifier(), d.issued_at()),
            Err(DirectoryError::Malformed(
                "the text must be one line of JSON".into()
            ))
        );
        let spaced = d.canonical_json().replacen(':', ": ", 1);
        let note = key.sign(&format!("{spaced}\n"));
        assert_eq!(
            Directory::open(&note, &key.verifier(), d.issued_at()),
            Err(DirectoryError::Malformed(
                "the text is not the directory's canonical JSON".into()
            ))
        );
    }

    #[test]
    fn time_is_checked_at_the_edges() {
        let key = authority();
        let d = directory();
        let note = d.sign(&key);
        let open = |now: i64| Directory::open(&note, &key.verifier(), UnixMillis(now));
        let issued = d.issued_at().0;
        let expires = d.expires_at().0;
        assert!(open(issued - MAX_CLOCK_SKEW_MILLIS).is_ok());
        assert_eq!(
            open(issued - MAX_CLOCK_SKEW_MILLIS - 1),
            Err(DirectoryError::NotYetValid {
                issued_at: d.issued_at()
            })
        );
        assert!(open(expires - 1).is_ok());
        assert_eq!(
            open(expires),
            Err(DirectoryError::Expired { at: d.expires_at() })
        );
    }

    #[test]
    fn a_state_refuses_another_federation() {
        let key = authority();
        let state = DirectoryState::new(
            &directory().sign(&key),
            &key.verifier(),
            UnixMillis(1_000_000),
        )
        .unwrap();
        let mut other = content();
        other.federation = "elsewhere".into();
        other.serial = 2;
        let note = Directory::new(other).unwrap().sign(&key);
        assert_eq!(
            state.accept(&note, &key.verifier(), UnixMillis(1_000_000)),
            Err(DirectoryError::OtherFederation {
                accepted: "kring.test".into(),
                offered: "elsewhere".into()
            })
        );
        assert_eq!(state.serial(), 1);
    }

    #[test]
    fn a_restored_state_may_be_expired_but_is_not_served_as_current() {
        let key = authority();
        let d = directory();
        let note = d.sign(&key);
        let state = DirectoryState::restore(&note, &key.verifier()).unwrap();
        assert_eq!(state.current().serial(), 1);
        assert_eq!(
            state.current_at(d.expires_at()).map(|_| ()),
            Err(DirectoryError::Expired { at: d.expires_at() })
        );
        assert!(state.current_at(d.issued_at()).is_ok());
        assert_eq!(&*state.note(), note.as_str());
    }
}
