//! The example configurations under config/ stay valid: each one parses and validates against
//! a freshly generated development PKI laid out as deploy/dev-pki.sh lays it out.

use std::path::Path;

use kring::config::Config;
use kring::domain::{Oin, OrgType};
use kring::pki::{DevCa, NodeCertRequest, ed25519_key_pem};

#[test]
fn every_example_configuration_validates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate("example CA").unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let expected = [
        ("school", "00000001820000001000", OrgType::School),
        ("ggd", "00000001820000002000", OrgType::Ggd),
        ("reclassering", "00000001820000003000", OrgType::Probation),
        ("veilig-thuis", "00000001820000004000", OrgType::VeiligThuis),
    ];
    for (key, oin, org_type) in expected {
        let pki = dir.path().join("pki").join(key);
        std::fs::create_dir_all(&pki).unwrap();
        let issued = ca
            .issue(&NodeCertRequest::loopback(key, Oin::parse(oin).unwrap(), 1))
            .unwrap();
        std::fs::write(pki.join("node.crt"), issued.cert_pem).unwrap();
        std::fs::write(pki.join("node.key"), issued.key_pem).unwrap();
        std::fs::write(pki.join("audit.key"), ed25519_key_pem()).unwrap();
        kring::store::crypt::write_new_key_file(&pki.join("data-1.key")).unwrap();
        let text = std::fs::read_to_string(examples.join(format!("{key}.toml"))).unwrap();
        let config =
            Config::parse(&text, dir.path()).unwrap_or_else(|e| panic!("config/{key}.toml: {e}"));
        assert_eq!(config.organisation.oin.as_str(), oin, "{key}");
        assert_eq!(config.organisation.org_type, org_type, "{key}");
        assert!(!config.contact_points.is_empty(), "{key}");
        assert!(config.principals.len() >= 2, "{key}");
        assert!(config.store.keyring.is_some(), "{key} seals its store");
    }
}
