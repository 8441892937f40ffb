//! Configuration validation: `Config::parse` refuses every kind of mistake with an error that
//! names the key, and `kring node --config BAD` exits non-zero with that key on stderr before
//! it binds a port.

use std::path::Path;
use std::process::Command;

use kring::auth::token_hash_hex;
use kring::config::{Config, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_RETENTION_DAYS};
use kring::domain::{Oin, OrgType, Role, UnixMillis};
use kring::pki::{DevCa, NodeCertRequest, ed25519_key_pem};
use time::{Duration, OffsetDateTime};

const OIN: &str = "00000001820000003000";

/// Writes a valid certificate, key, expired certificate and audit key into `dir`, and returns
/// a valid configuration that uses them, with the token hash of one principal.
fn valid_setup(dir: &Path) -> String {
    let ca = DevCa::generate("kring config test CA").expect("a CA");
    let oin = Oin::parse(OIN).expect("an OIN");
    let issued = ca
        .issue(&NodeCertRequest::loopback("Reclassering", oin, 1))
        .expect("a certificate");
    std::fs::write(dir.join("node.crt"), &issued.cert_pem).expect("write");
    std::fs::write(dir.join("node.key"), &issued.key_pem).expect("write");
    let now = OffsetDateTime::now_utc();
    let expired = ca
        .issue(&NodeCertRequest {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
            ..NodeCertRequest::loopback("Reclassering", oin, 1)
        })
        .expect("an expired certificate");
    std::fs::write(dir.join("expired.crt"), &expired.cert_pem).expect("write");
    std::fs::write(dir.join("expired.key"), &expired.key_pem).expect("write");
    std::fs::write(dir.join("audit.key"), ed25519_key_pem()).expect("write");
    format!(
        r#"[node]
organisation = "Reclassering Nederland, unit Arnhem"
oin = "{OIN}"
org_type = "probation"
data_dir = "data"

[local]
listen = "127.0.0.1:0"
tls_cert = "node.crt"
tls_key = "node.key"

[audit]
signing_key = "audit.key"

[[contact_points]]
id = "toezicht"
name = "Toezichthouder"
phone = "+31 88 000 0003"

[[principals]]
id = "r.smit"
token_sha256 = "{}"
roles = ["signaler", "coordinator"]
"#,
        token_hash_hex(TOKEN)
    )
}

/// A principal's token; the configuration holds only its SHA-256.
const TOKEN: &str = "kring_config_test_token";

#[test]
fn a_valid_configuration_loads_with_its_defaults() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = valid_setup(dir.path());
    let config = Config::parse(&text, dir.path()).expect("the configuration is valid");
    assert_eq!(config.organisation.oin.as_str(), OIN);
    assert_eq!(config.organisation.org_type, OrgType::Probation);
    assert_eq!(config.data_dir, dir.path().join("data"));
    assert_eq!(
        config.secret_file,
        dir.path().join("data").join("node.secret")
    );
    assert_eq!(config.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
    assert_eq!(
        config.signal_retention_millis,
        i64::from(DEFAULT_RETENTION_DAYS) * UnixMillis::DAY
    );
    assert_eq!(config.audit.origin, format!("kring.nl/audit/{OIN}"));
    assert_eq!(config.contact_points.len(), 1);
    assert_eq!(config.principals.len(), 1);
    let principal = config
        .principals
        .authenticate(TOKEN)
        .expect("the token authenticates by its hash");
    assert_eq!(principal.roles, vec![Role::Signaler, Role::Coordinator]);
    // The same file through `load`, relative paths taken from its directory.
    let path = dir.path().join("node.toml");
    std::fs::write(&path, &text).expect("write");
    let loaded = Config::load(&path).expect("the file loads");
    assert_eq!(loaded.data_dir, config.data_dir);
}

#[test]
fn every_mistake_is_refused_naming_its_key() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let valid = valid_setup(dir.path());
    let hash = token_hash_hex(TOKEN);
    let hash_line = format!("token_sha256 = \"{hash}\"");
    // (what, the text to replace, its replacement, what the error must name)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "an unknown key",
            "data_dir = \"data\"",
            "data_dir = \"data\"\ncolour = \"blue\"",
            &["colour"],
        ),
        (
            "an unknown table",
            "[audit]",
            "[metrics]\nport = 9090\n\n[audit]",
            &["metrics"],
        ),
        (
            "a misspelt key",
            "signing_key =",
            "signingkey =",
            &["signingkey"],
        ),
        (
            "an OIN of three digits",
            &format!("oin = \"{OIN}\""),
            "oin = \"123\"",
            &["node.oin", "20 digits"],
        ),
        (
            "an OIN with a letter",
            &format!("oin = \"{OIN}\""),
            "oin = \"0000000182000000300x\"",
            &["node.oin"],
        ),
        (
            "an unknown organisation type",
            "org_type = \"probation\"",
            "org_type = \"bakery\"",
            &["node.org_type", "probation"],
        ),
        (
            "an empty organisation name",
            "organisation = \"Reclassering Nederland, unit Arnhem\"",
            "organisation = \" \"",
            &["node.organisation"],
        ),
        (
            "a listen address without a port",
            "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1\"",
            &["local.listen"],
        ),
        (
            "a missing certificate file",
            "tls_cert = \"node.crt\"",
            "tls_cert = \"missing.crt\"",
            &["local.tls_cert", "missing.crt"],
        ),
        (
            "an expired certificate",
            "tls_cert = \"node.crt\"\ntls_key = \"node.key\"",
            "tls_cert = \"expired.crt\"\ntls_key = \"expired.key\"",
            &["local.tls_cert", "valid only from"],
        ),
        (
            "a key that does not fit the certificate",
            "tls_key = \"node.key\"",
            "tls_key = \"expired.key\"",
            &["local.tls_key"],
        ),
        (
            "a message limit below 1 KiB",
            "tls_key = \"node.key\"",
            "tls_key = \"node.key\"\nmax_message_bytes = 100",
            &["local.max_message_bytes"],
        ),
        (
            "a missing audit key",
            "signing_key = \"audit.key\"",
            "signing_key = \"nowhere.key\"",
            &["audit.signing_key"],
        ),
        (
            "an audit key that is a certificate",
            "signing_key = \"audit.key\"",
            "signing_key = \"node.crt\"",
            &["audit.signing_key"],
        ),
        (
            "a retention beyond two years",
            "[[contact_points]]",
            "[retention]\nsignal_days = 731\n\n[[contact_points]]",
            &["retention.signal_days"],
        ),
        (
            "a sweep less often than every minute",
            "[[contact_points]]",
            "[retention]\nsweep_every_secs = 31\n\n[[contact_points]]",
            &["retention.sweep_every_secs", "within a minute"],
        ),
        (
            "witnessing less often than every ten minutes",
            "[[contact_points]]",
            "[witness]\nevery_secs = 601\n\n[[contact_points]]",
            &["witness.every_secs", "between 1 and 600"],
        ),
        (
            "witnessing never",
            "[[contact_points]]",
            "[witness]\nevery_secs = 0\n\n[[contact_points]]",
            &["witness.every_secs", "between 1 and 600"],
        ),
        (
            "an unknown witness key",
            "[[contact_points]]",
            "[witness]\nevery = 5\n\n[[contact_points]]",
            &["every"],
        ),
        (
            "no contact points",
            "[[contact_points]]\nid = \"toezicht\"\nname = \"Toezichthouder\"\nphone = \"+31 88 000 0003\"\n",
            "",
            &["contact_points", "at least one contact point"],
        ),
        (
            "a contact point without phone or e-mail",
            "phone = \"+31 88 000 0003\"\n",
            "",
            &["contact_points[0].phone"],
        ),
        (
            "a contact point id that is not an identifier",
            "id = \"toezicht\"",
            "id = \"Toezicht Team\"",
            &["contact_points[0].id"],
        ),
        (
            "a principal with an unknown role",
            "roles = [\"signaler\", \"coordinator\"]",
            "roles = [\"superuser\"]",
            &["principals[0].roles[0]", "signaler"],
        ),
        (
            "a second role unknown",
            "roles = [\"signaler\", \"coordinator\"]",
            "roles = [\"signaler\", \"root\"]",
            &["principals[0].roles[1]"],
        ),
        (
            "a principal without roles",
            "roles = [\"signaler\", \"coordinator\"]",
            "roles = []",
            &["principals[0].roles"],
        ),
        (
            "a principal id in the node's namespace",
            "id = \"r.smit\"",
            "id = \"kring:admin\"",
            &["principals[0].id"],
        ),
        (
            "a token hash of 63 hex digits",
            &hash_line,
            &format!("token_sha256 = \"{}\"", &hash[1..]),
            &["principals[0].token_sha256", "64 hex digits"],
        ),
        (
            "a token hash of 64 characters that are not all hex",
            &hash_line,
            &format!("token_sha256 = \"zz{}\"", &hash[2..]),
            &["principals[0].token_sha256", "64 hex digits"],
        ),
        (
            "the token in place of its hash",
            &hash_line,
            &format!("token_sha256 = \"{TOKEN}\""),
            &["principals[0].token_sha256"],
        ),
    ];
    for (what, from, to, names) in cases {
        assert!(valid.contains(from), "{what}: the template has {from:?}");
        let text = valid.replacen(from, to, 1);
        let error = match Config::parse(&text, dir.path()) {
            Ok(_) => panic!("{what}: accepted"),
            Err(error) => error.to_string(),
        };
        for name in *names {
            assert!(
                error.contains(name),
                "{what}: the error {error:?} does not name {name:?}"
            );
        }
    }
}

#[test]
fn the_node_refuses_a_bad_configuration_before_binding_its_port() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let valid = valid_setup(dir.path());
    // A port this test holds: had the node bound it first, it would report that instead.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = held.local_addr().expect("its address").port();
    let valid = valid.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let run = |text: &str, name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let output = Command::new(env!("CARGO_BIN_EXE_kring"))
            .arg("node")
            .arg("--config")
            .arg(&path)
            .output()
            .expect("the kring binary runs");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    for (name, text, key) in [
        (
            "bad-oin.toml",
            valid.replace(&format!("oin = \"{OIN}\""), "oin = \"42\""),
            "node.oin",
        ),
        (
            "bad-role.toml",
            valid.replace("\"coordinator\"]", "\"janitor\"]"),
            "principals[0].roles[1]",
        ),
        (
            "expired.toml",
            valid
                .replace("node.crt", "expired.crt")
                .replace("node.key", "expired.key"),
            "local.tls_cert",
        ),
    ] {
        assert_ne!(text, valid, "{name} changes the configuration");
        let (status, stderr) = run(&text, name);
        assert!(!status.success(), "{name}: exited with {status}");
        assert!(
            stderr.contains(key),
            "{name}: stderr {stderr:?} names {key}"
        );
        assert!(
            !stderr.contains("cannot listen"),
            "{name}: refused before binding: {stderr}"
        );
        assert!(
            !dir.path().join("data").exists(),
            "{name}: refused before creating the data directory"
        );
    }

    // The control: a valid configuration does get as far as the held port, and says so.
    let (status, stderr) = run(&valid, "valid.toml");
    assert!(!status.success(), "the port is held");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    drop(held);
}
