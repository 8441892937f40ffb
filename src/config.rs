//! Node configuration: a raw TOML shape that refuses unknown keys, turned into a validated
//! [`Config`] with every certificate and key loaded. Anything wrong stops the start with a
//! message that names the key, before a port is bound.
//!
//! Relative paths are relative to the configuration file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::{Principal, Principals};
use crate::domain::{ContactPointId, Oin, OrgType, PrincipalId, Role, UnixMillis};
use crate::store::StoreOptions;
use crate::store::crypt::{self, DataKeyId, KeyBytes, Keyring};
use crate::tls::TlsIdentity;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {problem}")]
    Unreadable { path: String, problem: String },
    #[error("{0}")]
    Syntax(String),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.to_string(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    local: RawLocal,
    audit: RawAudit,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    contact_points: Vec<RawContactPoint>,
    #[serde(default)]
    principals: Vec<RawPrincipal>,
    federation: Option<RawFederation>,
    #[serde(default)]
    witness: RawWitness,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitness {
    every_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFederation {
    listen: String,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    ca: PathBuf,
    /// The authority's verifier key inline (`name+keyid+key`), or
    authority_key: Option<String>,
    /// a file holding it (as `kring directory authority-key` prints it).
    authority_key_file: Option<PathBuf>,
    directory: PathBuf,
    roles: Vec<String>,
    pseudonym_key: Option<PathBuf>,
    peer_timeout_ms: Option<u64>,
    /// At the index: rotate the index key this many days after the current epoch started.
    index_key_rotate_days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    organisation: String,
    oin: String,
    org_type: String,
    data_dir: PathBuf,
    /// The node secret for local pseudonyms; created at first start when absent.
    secret_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    listen: String,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    max_message_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    signing_key: PathBuf,
    origin: Option<String>,
    checkpoint_every_events: Option<u64>,
    checkpoint_every_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    signal_days: Option<u32>,
    sweep_every_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    cache_mb: Option<u64>,
    /// The data keys that seal record values at rest; none: values are stored in the clear.
    #[serde(default)]
    data_keys: Vec<RawDataKey>,
    /// The id of the key new values are sealed under (may be left out with one key).
    active_data_key: Option<i64>,
}

/// One data key: from a file (32 raw bytes or their base64), or from an environment
/// variable holding `ID:BASE64`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataKey {
    id: i64,
    file: Option<PathBuf>,
    env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContactPoint {
    id: String,
    name: String,
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    id: String,
    token_sha256: String,
    roles: Vec<String>,
}

/// Who runs the node.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub name: String,
    pub oin: Oin,
    pub org_type: OrgType,
}

/// How professionals of another organisation reach this one about a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPoint {
    pub id: ContactPointId,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Ed25519 private key, PKCS#8 DER.
    pub signing_key_pkcs8: Vec<u8>,
    pub origin: String,
    pub checkpoint_every_events: u64,
    pub checkpoint_every: Duration,
}

/// How the node takes part in the federation.
#[derive(Debug, Clone)]
pub struct FederationSettings {
    /// The peer listener (mutual TLS).
    pub listen: SocketAddr,
    /// The node certificate (OIN in the subject serialNumber), for the peer listener and as
    /// the client certificate towards peers.
    pub tls: TlsIdentity,
    /// The federation CA.
    pub ca: std::sync::Arc<rustls::RootCertStore>,
    /// The authority's note verifier key: the trust anchor for the signed directory.
    pub authority: crate::audit::NoteVerifier,
    /// The signed directory file this node starts from (a newer accepted one is kept in the
    /// store and wins).
    pub directory_file: PathBuf,
    pub roles: Vec<crate::directory::NodeRole>,
    /// The pseudonym service's OPRF key file (created at first start).
    pub pseudonym_key: Option<PathBuf>,
    pub peer_timeout: Duration,
    /// At the index: rotate the index key on its own this many days after the current epoch
    /// started (none: only when an administrator asks).
    pub index_key_rotate_days: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub organisation: Organisation,
    pub data_dir: PathBuf,
    pub secret_file: PathBuf,
    pub listen: SocketAddr,
    pub local_tls: TlsIdentity,
    pub max_message_bytes: usize,
    pub audit: AuditSettings,
    pub signal_retention_millis: i64,
    pub sweep_every: Duration,
    /// How often the node pushes its latest checkpoint to its witnesses (when federated).
    pub witness_every: Duration,
    pub store: StoreOptions,
    pub log_format: LogFormat,
    pub log_level: String,
    pub contact_points: Vec<ContactPoint>,
    pub principals: Principals,
    pub federation: Option<FederationSettings>,
}

pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;
pub const DEFAULT_RETENTION_DAYS: u32 = 730;
pub const DEFAULT_WITNESS_SECS: u64 = 60;

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base)
    }

    /// Parses TOML; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        validate(raw, base)
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// Reads an Ed25519 private key from a PEM ("PRIVATE KEY", PKCS#8) file.
pub fn read_signing_key(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    read_signing_key_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
}

/// The PKCS#8 DER of a PEM private key.
pub fn read_signing_key_pem(pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::pki_types::pem::PemObject;
    let key = PrivatePkcs8KeyDer::from_pem_slice(pem)
        .map_err(|e| format!("no PKCS#8 private key: {e}"))?;
    Ok(key.secret_pkcs8_der().to_vec())
}

fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let oin = Oin::parse(&raw.node.oin).map_err(|e| invalid("node.oin", e))?;
    let org_type: OrgType = raw
        .node
        .org_type
        .parse()
        .map_err(|e| invalid("node.org_type", e))?;
    if raw.node.organisation.trim().is_empty() {
        return Err(invalid("node.organisation", "must not be empty"));
    }
    let data_dir = resolve(base, &raw.node.data_dir);
    let secret_file = raw
        .node
        .secret_file
        .map(|p| resolve(base, &p))
        .unwrap_or_else(|| data_dir.join("node.secret"));

    let listen: SocketAddr = raw
        .local
        .listen
        .parse()
        .map_err(|e| invalid("local.listen", format!("not an address:port: {e}")))?;
    let local_tls = TlsIdentity::load(
        &resolve(base, &raw.local.tls_cert),
        &resolve(base, &raw.local.tls_key),
    )
    .map_err(|e| invalid("local.tls_cert / local.tls_key", e))?;
    check_certificate_dates(&local_tls, "local.tls_cert")?;
    crate::tls::server_config(&local_tls, &crate::tls::ClientAuth::None).map_err(|e| {
        invalid(
            "local.tls_key",
            format!("does not fit the certificate: {e}"),
        )
    })?;
    let max_message_bytes = raw
        .local
        .max_message_bytes
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
    if !(1024..=4 * 1024 * 1024).contains(&max_message_bytes) {
        return Err(invalid(
            "local.max_message_bytes",
            "must be between 1024 and 4194304",
        ));
    }

    let signing_key_pkcs8 = read_signing_key(&resolve(base, &raw.audit.signing_key))
        .map_err(|e| invalid("audit.signing_key", e))?;
    let origin = raw.audit.origin.unwrap_or_else(|| default_origin(&oin));
    crate::audit::NoteSigner::from_pkcs8(&origin, &signing_key_pkcs8)
        .map_err(|e| invalid("audit.signing_key / audit.origin", e))?;
    let checkpoint_every_events = raw.audit.checkpoint_every_events.unwrap_or(1000);
    if checkpoint_every_events == 0 {
        return Err(invalid(
            "audit.checkpoint_every_events",
            "must be at least 1",
        ));
    }
    let checkpoint_every_secs = raw.audit.checkpoint_every_secs.unwrap_or(10);
    if checkpoint_every_secs == 0 {
        return Err(invalid("audit.checkpoint_every_secs", "must be at least 1"));
    }

    let signal_days = raw.retention.signal_days.unwrap_or(DEFAULT_RETENTION_DAYS);
    if !(1..=DEFAULT_RETENTION_DAYS).contains(&signal_days) {
        return Err(invalid(
            "retention.signal_days",
            format!("must be between 1 and {DEFAULT_RETENTION_DAYS} (two years)"),
        ));
    }
    // Expired data must be gone from every node within a minute of its expiry: the index's
    // sweep removes a pointer, then its notices end the matches at the other nodes, so half a
    // minute per sweep leaves the other half for delivery.
    let sweep_every_secs = raw.retention.sweep_every_secs.unwrap_or(30);
    if !(1..=30).contains(&sweep_every_secs) {
        return Err(invalid(
            "retention.sweep_every_secs",
            "must be between 1 and 30: expired data goes from every node within a minute",
        ));
    }
    // A fork is found at the first push after it, and a quiet log still pushes every ten
    // minutes so that its witnesses can tell it from a silent one: rounds at most ten minutes
    // apart.
    let witness_every_secs = raw.witness.every_secs.unwrap_or(DEFAULT_WITNESS_SECS);
    if !(1..=600).contains(&witness_every_secs) {
        return Err(invalid("witness.every_secs", "must be between 1 and 600"));
    }
    let cache_mb = raw.store.cache_mb.unwrap_or(16);
    if !(4..=4096).contains(&cache_mb) {
        return Err(invalid("store.cache_mb", "must be between 4 and 4096"));
    }
    let keyring = validate_data_keys(&raw.store, base)?;

    let log_format = match raw.log.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => return Err(invalid("log.format", "must be \"text\" or \"json\"")),
    };
    let log_level = raw.log.level.unwrap_or_else(|| "info".into());
    tracing_subscriber::EnvFilter::try_new(&log_level).map_err(|e| invalid("log.level", e))?;

    let mut contact_points = Vec::new();
    for (i, raw) in raw.contact_points.into_iter().enumerate() {
        let key = |field: &str| format!("contact_points[{i}].{field}");
        let id = ContactPointId::parse(&raw.id).map_err(|e| invalid(key("id"), e))?;
        if contact_points.iter().any(|c: &ContactPoint| c.id == id) {
            return Err(invalid(key("id"), "is listed twice"));
        }
        if raw.name.trim().is_empty() || raw.name.len() > 200 {
            return Err(invalid(key("name"), "must be 1 to 200 characters"));
        }
        if raw.phone.is_none() && raw.email.is_none() {
            return Err(invalid(
                key("phone"),
                "a contact point needs a phone or an e-mail",
            ));
        }
        contact_points.push(ContactPoint {
            id,
            name: raw.name,
            phone: raw.phone,
            email: raw.email,
        });
    }
    if contact_points.is_empty() {
        return Err(invalid(
            "contact_points",
            "at least one contact point is required: every signal names one",
        ));
    }

    let mut principals = Vec::new();
    for (i, raw) in raw.principals.into_iter().enumerate() {
        let key = |field: &str| format!("principals[{i}].{field}");
        let id = PrincipalId::parse(&raw.id).map_err(|e| invalid(key("id"), e))?;
        if id.as_str().starts_with("kring:") {
            return Err(invalid(
                key("id"),
                "the prefix kring: is reserved for the node",
            ));
        }
        let hash = parse_hash(&raw.token_sha256)
            .ok_or_else(|| invalid(key("token_sha256"), "must be 64 hex digits"))?;
        if principals
            .iter()
            .any(|(h, _): &([u8; 32], Principal)| *h == hash)
        {
            return Err(invalid(key("token_sha256"), "is used by another principal"));
        }
        let mut roles = Vec::new();
        for (j, role) in raw.roles.iter().enumerate() {
            let role: Role = role
                .parse()
                .map_err(|e| invalid(format!("principals[{i}].roles[{j}]"), e))?;
            roles.push(role);
        }
        if roles.is_empty() {
            return Err(invalid(key("roles"), "at least one role is required"));
        }
        principals.push((hash, Principal { id, roles }));
    }

    let federation = raw
        .federation
        .map(|raw| validate_federation(raw, base, &oin))
        .transpose()?;

    Ok(Config {
        organisation: Organisation {
            name: raw.node.organisation,
            oin,
            org_type,
        },
        data_dir,
        secret_file,
        listen,
        local_tls,
        max_message_bytes,
        audit: AuditSettings {
            signing_key_pkcs8,
            origin,
            checkpoint_every_events,
            checkpoint_every: Duration::from_secs(checkpoint_every_secs),
        },
        signal_retention_millis: i64::from(signal_days) * UnixMillis::DAY,
        sweep_every: Duration::from_secs(sweep_every_secs),
        witness_every: Duration::from_secs(witness_every_secs),
        store: StoreOptions {
            cache_bytes: cache_mb * 1024 * 1024,
            keyring,
        },
        log_format,
        log_level,
        contact_points,
        principals: Principals::new(principals),
        federation,
    })
}

fn validate_federation(
    raw: RawFederation,
    base: &Path,
    oin: &Oin,
) -> Result<FederationSettings, ConfigError> {
    let listen: SocketAddr = raw
        .listen
        .parse()
        .map_err(|e| invalid("federation.listen", format!("not an address:port: {e}")))?;
    let tls = TlsIdentity::load(&resolve(base, &raw.tls_cert), &resolve(base, &raw.tls_key))
        .map_err(|e| invalid("federation.tls_cert / federation.tls_key", e))?;
    check_certificate_dates(&tls, "federation.tls_cert")?;
    match tls
        .certs
        .first()
        .and_then(|c| crate::tls::certificate_oin(c))
    {
        Some(found) if found == *oin => {}
        Some(found) => {
            return Err(invalid(
                "federation.tls_cert",
                format!("the certificate names OIN {found}, not node.oin {oin}"),
            ));
        }
        None => {
            return Err(invalid(
                "federation.tls_cert",
                "the certificate has no OIN in its subject serialNumber",
            ));
        }
    }
    let ca =
        crate::tls::load_roots(&resolve(base, &raw.ca)).map_err(|e| invalid("federation.ca", e))?;
    let authority = match (&raw.authority_key, &raw.authority_key_file) {
        (Some(inline), None) => crate::audit::NoteVerifier::parse(inline.trim())
            .map_err(|e| invalid("federation.authority_key", e))?,
        (None, Some(path)) => {
            let path = resolve(base, path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    "federation.authority_key_file",
                    format!("{}: {e}", path.display()),
                )
            })?;
            crate::audit::NoteVerifier::parse(text.trim()).map_err(|e| {
                invalid(
                    "federation.authority_key_file",
                    format!("{}: {e}", path.display()),
                )
            })?
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "federation.authority_key",
                "give authority_key or authority_key_file, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "federation.authority_key",
                "authority_key or authority_key_file is required",
            ));
        }
    };
    let directory_file = resolve(base, &raw.directory);
    if !directory_file.is_file() {
        return Err(invalid(
            "federation.directory",
            format!("{} is not a file", directory_file.display()),
        ));
    }
    let mut roles = Vec::new();
    for (i, role) in raw.roles.iter().enumerate() {
        roles.push(
            role.parse::<crate::directory::NodeRole>()
                .map_err(|e| invalid(format!("federation.roles[{i}]"), e))?,
        );
    }
    if roles.is_empty() {
        return Err(invalid("federation.roles", "at least one role is required"));
    }
    let pseudonym_key = raw.pseudonym_key.map(|p| resolve(base, &p));
    if roles.contains(&crate::directory::NodeRole::PseudonymService) && pseudonym_key.is_none() {
        return Err(invalid(
            "federation.pseudonym_key",
            "a pseudonym service needs its key file",
        ));
    }
    let peer_timeout_ms = raw.peer_timeout_ms.unwrap_or(2000);
    if !(100..=60_000).contains(&peer_timeout_ms) {
        return Err(invalid(
            "federation.peer_timeout_ms",
            "must be between 100 and 60000",
        ));
    }
    if let Some(days) = raw.index_key_rotate_days {
        if !roles.contains(&crate::directory::NodeRole::Index) {
            return Err(invalid(
                "federation.index_key_rotate_days",
                "only the index has an index key to rotate",
            ));
        }
        if !(1..=3650).contains(&days) {
            return Err(invalid(
                "federation.index_key_rotate_days",
                "must be between 1 and 3650",
            ));
        }
    }
    Ok(FederationSettings {
        listen,
        tls,
        ca: std::sync::Arc::new(ca),
        authority,
        directory_file,
        roles,
        pseudonym_key,
        peer_timeout: Duration::from_millis(peer_timeout_ms),
        index_key_rotate_days: raw.index_key_rotate_days,
    })
}

/// Loads every data key of `[store]` and checks it, naming the key of the first mistake.
fn validate_data_keys(
    raw: &RawStore,
    base: &Path,
) -> Result<Option<std::sync::Arc<Keyring>>, ConfigError> {
    let id_of = |key: &str, id: i64| {
        u16::try_from(id)
            .ok()
            .and_then(DataKeyId::new)
            .ok_or_else(|| invalid(key, "a data key id is a number from 1 to 65535"))
    };
    let mut keys: Vec<(DataKeyId, KeyBytes)> = Vec::new();
    for (i, entry) in raw.data_keys.iter().enumerate() {
        let key = |field: &str| format!("store.data_keys[{i}].{field}");
        let id = id_of(&key("id"), entry.id)?;
        if keys.iter().any(|(known, _)| *known == id) {
            return Err(invalid(key("id"), format!("data key {id} is listed twice")));
        }
        let bytes = match (&entry.file, &entry.env) {
            (Some(file), None) => crypt::read_key_file(&resolve(base, file))
                .map_err(|e| invalid(key("file"), format!("data key {id}: {e}")))?,
            (None, Some(name)) => env_data_key(name, std::env::var(name), id)
                .map_err(|e| invalid(key("env"), format!("data key {id}: {e}")))?,
            _ => {
                return Err(invalid(
                    key("file"),
                    format!("data key {id}: give file or env, one of them"),
                ));
            }
        };
        keys.push((id, bytes));
    }
    let active = match (raw.active_data_key, keys.as_slice()) {
        (None, []) => return Ok(None),
        (Some(_), []) => {
            return Err(invalid(
                "store.active_data_key",
                "names a data key, but store.data_keys lists none",
            ));
        }
        (Some(active), _) => id_of("store.active_data_key", active)?,
        (None, [(only, _)]) => *only,
        (None, _) => {
            return Err(invalid(
                "store.active_data_key",
                "is required when store.data_keys lists more than one key",
            ));
        }
    };
    let keyring = Keyring::new(keys, active).map_err(|e| invalid("store.active_data_key", e))?;
    Ok(Some(std::sync::Arc::new(keyring)))
}

/// A data key from the environment variable `name`, given what reading it returned. The
/// value is never part of an error: `VarError::NotUnicode`'s own message would print it.
fn env_data_key(
    name: &str,
    value: Result<String, std::env::VarError>,
    id: DataKeyId,
) -> Result<KeyBytes, String> {
    use std::env::VarError;
    let value = match value {
        Ok(value) => zeroize::Zeroizing::new(value),
        Err(VarError::NotPresent) => return Err(format!("${name} is not set")),
        Err(VarError::NotUnicode(_)) => {
            return Err(format!("${name} is not UTF-8: expected ID:BASE64"));
        }
    };
    crypt::parse_env_key(&value, id).map_err(|e| format!("${name} {e}"))
}

pub fn default_origin(oin: &Oin) -> String {
    format!("kring.nl/audit/{oin}")
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Refuses a certificate that is not yet or no longer valid.
pub fn check_certificate_dates(identity: &TlsIdentity, key: &str) -> Result<(), ConfigError> {
    let leaf = identity
        .certs
        .first()
        .ok_or_else(|| invalid(key, "no certificate"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| invalid(key, format!("unreadable certificate: {e}")))?;
    if !cert.validity().is_valid() {
        let validity = cert.validity();
        return Err(invalid(
            key,
            format!(
                "certificate is valid only from {} to {}",
                validity.not_before, validity.not_after
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn an_environment_key_that_is_not_utf8_is_refused_without_its_value() {
        use std::os::unix::ffi::OsStringExt;
        let id = DataKeyId::new(2).expect("not zero");
        // Base64 of a 32-byte key with one byte that is not UTF-8 in the middle.
        let mut value = b"2:AQEBAQEBAQEBAQEBAQEB".to_vec();
        value.push(0xFF);
        value.extend_from_slice(b"AQEBAQEBAQEBAQEBAQEBAQE=");
        let os = std::ffi::OsString::from_vec(value);
        let error = env_data_key(
            "KRING_DATA_KEY",
            Err(std::env::VarError::NotUnicode(os)),
            id,
        )
        .map(|_| ())
        .expect_err("not UTF-8");
        assert_eq!(error, "$KRING_DATA_KEY is not UTF-8: expected ID:BASE64");
        assert!(!error.contains("AQEB"), "{error}");

        let error = env_data_key("KRING_DATA_KEY", Err(std::env::VarError::NotPresent), id)
            .map(|_| ())
            .expect_err("not set");
        assert_eq!(error, "$KRING_DATA_KEY is not set");

        let key = env_data_key(
            "KRING_DATA_KEY",
            Ok("2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".into()),
            id,
        )
        .expect("a valid key");
        assert_eq!(*key, [1u8; crypt::KEY_LEN]);
    }
}
