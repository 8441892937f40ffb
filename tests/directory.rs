//! The signed federation directory, built the way an authority builds it: from a TOML source
//! naming certificates of a development CA and the members' audit keys. Signed, opened,
//! refused (each refusal precise), held across a restart, and driven through the binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kring::audit::NoteSigner;
use kring::audit::note::generate_pkcs8;
use kring::clock::{Clock, SystemClock};
use kring::directory::{
    self, AUTHORITY_KEY_NAME, Accepted, Directory, DirectoryError, DirectorySource, DirectoryState,
    MAX_CLOCK_SKEW_MILLIS, NodeRole, spki_sha256,
};
use kring::domain::{Oin, OrgType, Purpose, UnixMillis};
use kring::pki::{self, DevCa, NodeCertRequest};
use kring::policy::Policy;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tempfile::TempDir;

/// How one member appears in the source.
#[derive(Clone)]
struct Spec {
    dir: &'static str,
    oin: &'static str,
    name: &'static str,
    org_type: &'static str,
    roles: &'static str,
    /// Certificate files of this member (relative to the source), in order.
    certificates: Vec<String>,
    /// Extra TOML lines for the member: inline pins, keys, a contact.
    extra: String,
}

/// A development PKI in a temporary directory and the source that names its files.
struct Fixture {
    dir: TempDir,
    specs: Vec<Spec>,
    ca: DevCa,
}

const SCHOOL: &str = "00000001820000001000";
const VT: &str = "00000001820000002000";
const INDEX: &str = "00000001820000009001";
const PSEUDONYMS: &str = "00000001820000009002";
const LOCAL_TEAM: &str = "00000001820000003000";
const GGD: &str = "00000001820000004000";

fn oin(text: &str) -> Oin {
    Oin::parse(text).unwrap()
}

fn now() -> UnixMillis {
    SystemClock.now()
}

fn first_der(pem: &str) -> Vec<u8> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new().unwrap();
        let ca = DevCa::generate("kring test CA").unwrap();
        let mut fixture = Fixture {
            dir,
            specs: Vec::new(),
            ca,
        };
        let members = [
            (
                "index",
                INDEX,
                "Kring index",
                "federation_service",
                "\"index\"",
            ),
            (
                "pseudonyms",
                PSEUDONYMS,
                "Kring pseudoniemen",
                "federation_service",
                "\"pseudonym_service\"",
            ),
            (
                "school",
                SCHOOL,
                "Basisschool De Regenboog",
                "school",
                "\"organisation\"",
            ),
            (
                "vt",
                VT,
                "Veilig Thuis Hollands Midden",
                "veilig_thuis",
                "\"organisation\"",
            ),
            (
                "team",
                LOCAL_TEAM,
                "Sociaal team Leiden",
                "local_team",
                "\"organisation\"",
            ),
        ];
        for (dir, oin_text, name, org_type, roles) in members {
            let cert = fixture.issue(dir, "node.crt", oin_text, name);
            fixture.write(&format!("{dir}/audit.key"), &pki::ed25519_key_pem());
            fixture.specs.push(Spec {
                dir,
                oin: oin_text,
                name,
                org_type,
                roles,
                certificates: vec![cert],
                extra: format!("audit_key_file = \"{dir}/audit.key\"\n"),
            });
        }
        // The school is rolling its TLS key: two certificates, two pins.
        let next = fixture.issue("school", "next.crt", SCHOOL, "Basisschool De Regenboog");
        fixture.specs[2].certificates.push(next);
        // Veilig Thuis names its audit key explicitly and has a public contact.
        fixture.specs[3].extra.push_str(
            "audit_key_name = \"vt.example.nl/audit\"\n\
             [members.contact]\nname = \"Aandachtsfunctionaris\"\nphone = \"0800-2000\"\n",
        );
        // The GGD sent its pin and verifier key instead of files.
        let ggd_pem = fixture.issue_pem(GGD, "GGD Hollands Midden");
        let pin = directory::pin_hex(&spki_sha256(&first_der(&ggd_pem)).unwrap());
        let vkey = NoteSigner::from_pkcs8("kring.nl/audit/00000001820000004000", &generate_pkcs8())
            .unwrap()
            .verifier_key();
        fixture.specs.push(Spec {
            dir: "ggd",
            oin: GGD,
            name: "GGD Hollands Midden",
            org_type: "ggd",
            roles: "\"organisation\"",
            certificates: vec![],
            extra: format!("tls_spki_sha256 = [\"{pin}\"]\naudit_key = \"{vkey}\"\n"),
        });
        fixture
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, contents: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    fn issue_pem(&self, oin_text: &str, name: &str) -> String {
        self.ca
            .issue(&NodeCertRequest::loopback(name, oin(oin_text), 30))
            .unwrap()
            .cert_pem
    }

    /// Issues a certificate into `dir/file` and returns its path relative to the source.
    fn issue(&self, dir: &str, file: &str, oin_text: &str, name: &str) -> String {
        let relative = format!("{dir}/{file}");
        self.write(&relative, &self.issue_pem(oin_text, name));
        relative
    }

    fn toml(&self, specs: &[Spec]) -> String {
        let mut out = String::from("federation = \"hollands-midden.kring.test\"\n");
        for spec in specs {
            let certificates = spec
                .certificates
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "\n[[members]]\noin = \"{}\"\nname = \"{}\"\norg_type = \"{}\"\nroles = [{}]\n\
                 endpoint = \"{}.kring.test:7443\"\ncertificates = [{certificates}]\n{}",
                spec.oin, spec.name, spec.org_type, spec.roles, spec.dir, spec.extra
            ));
        }
        out
    }

    /// Writes the source for `specs` and parses it from its file, as the authority does.
    fn source_of(&self, specs: &[Spec]) -> DirectorySource {
        self.write("federation.toml", &self.toml(specs));
        DirectorySource::load(&self.path("federation.toml")).unwrap()
    }

    fn build(&self, serial: u64, issued_at: UnixMillis) -> Directory {
        directory::build(
            &self.source_of(&self.specs),
            serial,
            issued_at,
            Duration::from_secs(30 * 24 * 3600),
        )
        .unwrap()
    }

    fn build_refusal(&self, specs: &[Spec]) -> DirectoryError {
        directory::build(
            &self.source_of(specs),
            1,
            now(),
            Duration::from_secs(24 * 3600),
        )
        .unwrap_err()
    }

    /// The audit verifier key a member's key file gives under `name`.
    fn audit_vkey(&self, dir: &str, name: &str) -> String {
        let pkcs8 =
            kring::config::read_signing_key(&self.path(&format!("{dir}/audit.key"))).unwrap();
        NoteSigner::from_pkcs8(name, &pkcs8).unwrap().verifier_key()
    }
}

fn authority() -> NoteSigner {
    NoteSigner::from_pkcs8(AUTHORITY_KEY_NAME, &generate_pkcs8()).unwrap()
}

fn invalid(field: &str, rule: &str) -> DirectoryError {
    DirectoryError::Invalid {
        field: field.into(),
        rule: rule.into(),
    }
}

#[test]
fn a_directory_built_from_a_dev_pki_is_signed_and_opened() {
    let fixture = Fixture::new();
    let issued_at = now();
    let built = fixture.build(7, issued_at);
    let key = authority();
    let note = built.sign(&key);
    let d = Directory::open(&note, &key.verifier(), now()).unwrap();
    assert_eq!(d, built);
    assert_eq!(d.federation(), "hollands-midden.kring.test");
    assert_eq!(d.serial(), 7);
    assert_eq!(d.issued_at(), issued_at);
    assert_eq!(d.expires_at(), issued_at.plus_millis(30 * UnixMillis::DAY));
    assert_eq!(d.members().len(), 6);
    assert_eq!(d.policy(), &Policy::regional_default());

    // Every pin is the SPKI hash of the certificate file, and finds its member.
    for spec in &fixture.specs {
        let member = d.member(&oin(spec.oin)).unwrap();
        assert_eq!(member.name, spec.name);
        assert_eq!(member.endpoint, format!("{}.kring.test:7443", spec.dir));
        for (j, file) in spec.certificates.iter().enumerate() {
            let der = first_der(&fixture.read(file));
            assert_eq!(member.tls_spki_sha256[j], spki_sha256(&der).unwrap());
            assert_eq!(d.member_by_certificate(&der).unwrap().oin, member.oin);
            assert_eq!(
                d.member_by_pin(&spki_sha256(&der).unwrap()).unwrap().oin,
                member.oin
            );
        }
    }
    let school = d.member(&oin(SCHOOL)).unwrap();
    assert_eq!(
        school.tls_spki_sha256.len(),
        2,
        "both keys of the roll are pinned"
    );
    assert_eq!(school.org_type, OrgType::School);
    assert_eq!(school.roles, vec![NodeRole::Organisation]);

    // Audit keys: derived from the key files under the default or the given name.
    assert_eq!(
        school.audit_key,
        fixture.audit_vkey("school", "kring.nl/audit/00000001820000001000")
    );
    let vt = d.member(&oin(VT)).unwrap();
    assert_eq!(
        vt.audit_key,
        fixture.audit_vkey("vt", "vt.example.nl/audit")
    );
    assert_eq!(vt.audit_verifier().unwrap().name(), "vt.example.nl/audit");
    let contact = vt.contact.as_ref().unwrap();
    assert_eq!(contact.name, "Aandachtsfunctionaris");
    assert_eq!(contact.phone.as_deref(), Some("0800-2000"));
    assert_eq!(contact.email, None);
    assert!(
        d.member(&oin(GGD))
            .unwrap()
            .audit_key
            .starts_with("kring.nl/audit/00000001820000004000+")
    );

    // The roles.
    assert_eq!(d.index().oin, oin(INDEX));
    let services: Vec<Oin> = d.pseudonym_services().map(|m| m.oin).collect();
    assert_eq!(services, vec![oin(PSEUDONYMS)]);
    let vts: Vec<Oin> = d.veilig_thuis().map(|m| m.oin).collect();
    assert_eq!(vts, vec![oin(VT)]);
    assert_eq!(d.with_role(NodeRole::Organisation).count(), 4);

    // A certificate the directory does not pin finds no member.
    let stranger = fixture.issue_pem(SCHOOL, "Basisschool De Regenboog");
    assert!(d.member_by_certificate(&first_der(&stranger)).is_none());
    assert!(d.member(&oin("00000001820000099999")).is_none());
}

#[test]
fn a_policy_table_in_the_source_replaces_the_default() {
    let fixture = Fixture::new();
    let mut text = fixture.toml(&fixture.specs);
    text.push_str(
        "\n[policy]\nregie_excluded = [\"federation_service\"]\n\
         waakvlam_checkin_days = 14\nwaakvlam_max_days = 180\n\
         [[policy.purposes]]\npurpose = \"vt_triage\"\norg_types = [\"veilig_thuis\"]\n\
         roles = [\"analyst\"]\nlegal_basis = \"wmo_2015_4.1.1\"\n\
         fields = [\"category\", \"severity\"]\nhousehold = false\nreason_required = false\n",
    );
    fixture.write("federation.toml", &text);
    let source = DirectorySource::load(&fixture.path("federation.toml")).unwrap();
    let d = directory::build(&source, 1, now(), Duration::from_secs(3600)).unwrap();
    assert_eq!(d.policy().purposes.len(), 1);
    assert_eq!(d.policy().waakvlam_checkin_days, 14);
    assert!(d.policy().rule(Purpose::VtTriage).is_some());
    assert!(d.policy().rule(Purpose::Emergency).is_none());
}

#[test]
fn a_note_not_signed_by_the_authority_is_refused() {
    let fixture = Fixture::new();
    let d = fixture.build(1, now());
    let key = authority();
    // Another key with the authority's name: its key id differs, so no signature matches.
    let impostor = authority();
    assert_eq!(
        Directory::open(&d.sign(&impostor), &key.verifier(), now()),
        Err(DirectoryError::NotSigned {
            authority: AUTHORITY_KEY_NAME.into()
        })
    );
    assert_eq!(
        Directory::open(&d.sign(&impostor), &key.verifier(), now())
            .unwrap_err()
            .to_string(),
        "the directory is not signed by the authority kring.nl/authority"
    );
}

#[test]
fn a_tampered_note_is_refused() {
    let fixture = Fixture::new();
    let d = fixture.build(1, now());
    let key = authority();
    let note = d.sign(&key);
    let tampered = note.replacen("\"roles\":[\"organisation\"]", "\"roles\":[\"index\"]", 1);
    assert_ne!(tampered, note);
    let refused = Directory::open(&tampered, &key.verifier(), now()).unwrap_err();
    assert_eq!(
        refused,
        DirectoryError::BadSignature {
            authority: AUTHORITY_KEY_NAME.into()
        }
    );
    assert_eq!(
        refused.to_string(),
        "the directory's signature by kring.nl/authority does not verify"
    );
}

#[test]
fn an_expired_directory_is_refused() {
    let fixture = Fixture::new();
    let d = fixture.build(1, now());
    let key = authority();
    let note = d.sign(&key);
    assert!(Directory::open(&note, &key.verifier(), d.expires_at().plus_millis(-1)).is_ok());
    let refused = Directory::open(&note, &key.verifier(), d.expires_at()).unwrap_err();
    assert_eq!(refused, DirectoryError::Expired { at: d.expires_at() });
    assert_eq!(
        refused.to_string(),
        format!("the directory expired at {}", d.expires_at().rfc3339())
    );
}

#[test]
fn a_directory_issued_in_the_future_is_refused_beyond_the_skew() {
    let fixture = Fixture::new();
    let d = fixture.build(1, now());
    let key = authority();
    let note = d.sign(&key);
    let at_skew = d.issued_at().plus_millis(-MAX_CLOCK_SKEW_MILLIS);
    assert!(Directory::open(&note, &key.verifier(), at_skew).is_ok());
    let refused = Directory::open(&note, &key.verifier(), at_skew.plus_millis(-1)).unwrap_err();
    assert_eq!(
        refused,
        DirectoryError::NotYetValid {
            issued_at: d.issued_at()
        }
    );
    assert!(
        refused.to_string().ends_with(", in the future"),
        "{refused}"
    );
}

#[test]
fn a_lower_serial_is_a_rollback_and_the_same_serial_must_be_the_same_directory() {
    let fixture = Fixture::new();
    let key = authority();
    let issued = now();
    let one = fixture.build(1, issued).sign(&key);
    let two = fixture.build(2, issued).sign(&key);
    let state = DirectoryState::new(&two, &key.verifier(), now()).unwrap();
    assert_eq!(
        state.accept(&one, &key.verifier(), now()),
        Err(DirectoryError::Rollback {
            current: 2,
            offered: 1
        })
    );
    assert_eq!(
        state
            .accept(&one, &key.verifier(), now())
            .unwrap_err()
            .to_string(),
        "serial 1 is older than the accepted serial 2"
    );
    assert_eq!(
        state.accept(&two, &key.verifier(), now()),
        Ok(Accepted::Unchanged)
    );

    // Serial 2 again, but the team's endpoint moved: the authority equivocates.
    let text = fixture
        .toml(&fixture.specs)
        .replace("team.kring.test:7443", "team2.kring.test:7443");
    fixture.write("federation.toml", &text);
    let source = DirectorySource::load(&fixture.path("federation.toml")).unwrap();
    let other_two = directory::build(&source, 2, issued, Duration::from_secs(30 * 24 * 3600))
        .unwrap()
        .sign(&key);
    let refused = state
        .accept(&other_two, &key.verifier(), now())
        .unwrap_err();
    assert_eq!(refused, DirectoryError::Equivocation { serial: 2 });
    assert_eq!(
        refused.to_string(),
        "serial 2 is already accepted with different content"
    );
    assert_eq!(state.serial(), 2);
    assert_eq!(&*state.note(), two.as_str());
}

#[test]
fn the_floor_holds_across_a_restart() {
    let fixture = Fixture::new();
    let key = authority();
    let issued = now();
    let notes: Vec<String> = (1..=3)
        .map(|serial| fixture.build(serial, issued).sign(&key))
        .collect();
    let persisted = fixture.path("accepted.note");
    {
        let state = DirectoryState::new(&notes[0], &key.verifier(), now()).unwrap();
        assert_eq!(
            state.accept(&notes[2], &key.verifier(), now()),
            Ok(Accepted::Updated { from: 1, to: 3 })
        );
        assert_eq!(state.current().serial(), 3);
        std::fs::write(&persisted, &*state.note()).unwrap();
    }
    // The node restarts, after the directory has expired.
    let later = notes_expiry(&notes[2], &key);
    let state = DirectoryState::restore(
        &std::fs::read_to_string(&persisted).unwrap(),
        &key.verifier(),
    )
    .unwrap();
    assert_eq!(state.serial(), 3);
    assert!(matches!(
        state.current_at(later),
        Err(DirectoryError::Expired { .. })
    ));
    assert_eq!(
        state.accept(&notes[1], &key.verifier(), now()),
        Err(DirectoryError::Rollback {
            current: 3,
            offered: 2
        })
    );
    // A restored note is still checked: another authority's note does not restore.
    assert_eq!(
        DirectoryState::restore(&notes[2], &authority().verifier()).unwrap_err(),
        DirectoryError::NotSigned {
            authority: AUTHORITY_KEY_NAME.into()
        }
    );
    let four = fixture.build(4, issued).sign(&key);
    assert_eq!(
        state.accept(&four, &key.verifier(), now()),
        Ok(Accepted::Updated { from: 3, to: 4 })
    );
}

fn notes_expiry(note: &str, key: &NoteSigner) -> UnixMillis {
    Directory::verify(note, &key.verifier())
        .unwrap()
        .expires_at()
}

#[test]
fn a_directory_is_refused_with_the_field_named() {
    let fixture = Fixture::new();

    // The school is listed twice (with a second certificate of its own).
    let mut specs = fixture.specs.clone();
    let mut again = specs[2].clone();
    again.certificates = vec![fixture.issue("school2", "node.crt", SCHOOL, "Regenboog")];
    fixture.write("school2/audit.key", &pki::ed25519_key_pem());
    again.extra = "audit_key_file = \"school2/audit.key\"\naudit_key_name = \"school2\"\n".into();
    again.dir = "school2";
    specs.push(again);
    assert_eq!(
        fixture.build_refusal(&specs),
        invalid("members[6].oin", "listed twice (also members[2])")
    );

    // Nobody is the index.
    let mut specs = fixture.specs.clone();
    specs[0].roles = "\"organisation\"";
    assert_eq!(
        fixture.build_refusal(&specs),
        invalid("members", "no member has the role index")
    );

    // A certificate of another organisation.
    let mut specs = fixture.specs.clone();
    specs[3].certificates = vec![specs[2].certificates[0].clone()];
    assert_eq!(
        fixture.build_refusal(&specs),
        invalid(
            "members[3].certificates[0]",
            "the certificate's subject serialNumber is not the member's OIN"
        )
    );

    // A missing certificate file names the key and the path.
    let mut specs = fixture.specs.clone();
    specs[1].certificates = vec!["nowhere/node.crt".into()];
    match fixture.build_refusal(&specs) {
        DirectoryError::Invalid { field, rule } => {
            assert_eq!(field, "members[1].certificates[0]");
            assert!(rule.contains("nowhere/node.crt"), "{rule}");
        }
        other => panic!("{other:?}"),
    }

    // No pin at all.
    let mut specs = fixture.specs.clone();
    specs[5].extra = specs[5]
        .extra
        .lines()
        .filter(|l| !l.starts_with("tls_spki_sha256"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        fixture.build_refusal(&specs),
        invalid(
            "members[5].certificates",
            "at least one certificate or tls_spki_sha256 pin is required"
        )
    );

    // Both an audit key file and an inline key.
    let mut specs = fixture.specs.clone();
    specs[5]
        .extra
        .push_str("audit_key_file = \"school/audit.key\"\n");
    assert_eq!(
        fixture.build_refusal(&specs),
        invalid(
            "members[5].audit_key",
            "give audit_key_file or audit_key, not both"
        )
    );

    // A bad endpoint and an unknown role, each named.
    let mut specs = fixture.specs.clone();
    specs[4].dir = "team:x";
    match fixture.build_refusal(&specs) {
        DirectoryError::Invalid { field, .. } => assert_eq!(field, "members[4].endpoint"),
        other => panic!("{other:?}"),
    }
    let mut specs = fixture.specs.clone();
    specs[4].roles = "\"organisation\", \"judge\"";
    match fixture.build_refusal(&specs) {
        DirectoryError::Invalid { field, rule } => {
            assert_eq!(field, "members[4].roles[1]");
            assert!(
                rule.starts_with("unknown NodeRole; allowed: organisation"),
                "{rule}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Unknown keys in the source are refused.
    let text = fixture
        .toml(&fixture.specs)
        .replace("endpoint =", "endpont =");
    match DirectorySource::parse(&text, fixture.dir.path()).unwrap_err() {
        DirectoryError::SourceSyntax(message) => {
            assert!(message.contains("unknown field `endpont`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_notes_are_refused() {
    let fixture = Fixture::new();
    let key = authority();
    let d = fixture.build(1, now());
    let open = |text: &str| Directory::open(&key.sign(text), &key.verifier(), now());

    match open("{not json\n") {
        Err(DirectoryError::Malformed(message)) => {
            assert!(message.contains("line 1 column 2"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A field this version does not know is refused, not ignored.
    let extra = d
        .canonical_json()
        .replacen("{\"federation\"", "{\"extra\":1,\"federation\"", 1);
    match open(&format!("{extra}\n")) {
        Err(DirectoryError::Malformed(message)) => {
            assert!(message.contains("unknown field `extra`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A pin in capitals is not the canonical spelling.
    let json = d.canonical_json();
    let pin = directory::pin_hex(&d.members()[0].tls_spki_sha256[0]);
    let upper = json.replacen(&pin, &pin.to_uppercase(), 1);
    assert!(matches!(
        open(&format!("{upper}\n")),
        Err(DirectoryError::Malformed(_))
    ));
    // Well-formed JSON of an invalid directory names the field.
    let no_index = json.replacen("\"roles\":[\"index\"]", "\"roles\":[\"organisation\"]", 1);
    assert_eq!(
        open(&format!("{no_index}\n")),
        Err(invalid("members", "no member has the role index"))
    );
    // Not a note at all.
    assert!(matches!(
        Directory::open("just text\n", &key.verifier(), now()),
        Err(DirectoryError::Malformed(_))
    ));
}

fn kring(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kring"))
        .args(args)
        .env_remove("KRING_AUTHORITY_KEY")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn the_binary_creates_the_authority_key_signs_and_shows() {
    let fixture = Fixture::new();
    fixture.source_of(&fixture.specs);
    let key = fixture.path("authority.key");
    let note = fixture.path("directory.note");
    let source = fixture.path("federation.toml");

    let out = kring(&["directory", "authority-key", "--out", arg(&key)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let vkey = text(&out.stdout).trim().to_owned();
    assert!(vkey.starts_with("kring.nl/authority+"), "{vkey}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = kring(&["directory", "authority-key", "--out", arg(&key)]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("never overwritten"),
        "{}",
        text(&again.stderr)
    );

    let sign = |serial: &str| {
        kring(&[
            "directory",
            "sign",
            "--source",
            arg(&source),
            "--key",
            arg(&key),
            "--serial",
            serial,
            "--valid-days",
            "30",
            "--out",
            arg(&note),
        ])
    };
    let out = sign("5");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("serial 5 (6 members)"),
        "{}",
        text(&out.stdout)
    );
    let signed = std::fs::read_to_string(&note).unwrap();
    let refused = sign("6");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("exists"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&note).unwrap(),
        signed,
        "the note is untouched"
    );

    // The library opens what the binary signed, with the printed verifier key.
    let verifier = kring::audit::NoteVerifier::parse(&vkey).unwrap();
    let d = Directory::open(&signed, &verifier, now()).unwrap();
    assert_eq!(d.serial(), 5);
    assert_eq!(
        d.expires_at(),
        d.issued_at().plus_millis(30 * UnixMillis::DAY)
    );

    let out = kring(&[
        "directory",
        "show",
        "--note",
        arg(&note),
        "--authority-key",
        &vkey,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "federation hollands-midden.kring.test  serial 5",
        "00000001820000002000  Veilig Thuis Hollands Midden",
        "type veilig_thuis (ring: melding)  roles organisation",
        "endpoint vt.kring.test:7443",
        "contact Aandachtsfunctionaris (0800-2000)",
        "vt_triage  (Wmo 2015 art. 4.1.1 (taken Veilig Thuis))  [household]",
        "[household, break-glass reason required]",
        "regie excluded: federation_service, association, sports_club, faith_community",
        "waakvlam: a check-in every 28 days, at most 365 days",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in\n{shown}");
    }
    let pin = directory::pin_hex(&d.member(&oin(SCHOOL)).unwrap().tls_spki_sha256[1]);
    assert!(shown.contains(&format!("tls pin {pin}")), "{shown}");

    // Shown against another authority's key, it is refused.
    let other = authority().verifier_key();
    let out = kring(&[
        "directory",
        "show",
        "--note",
        arg(&note),
        "--authority-key",
        &other,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("the directory is not signed by the authority kring.nl/authority"),
        "{}",
        text(&out.stderr)
    );
    // A source error reaches the operator with the field named.
    fixture.write(
        "federation.toml",
        &fixture
            .toml(&fixture.specs)
            .replace("roles = [\"index\"]", "roles = []"),
    );
    let out = kring(&[
        "directory",
        "sign",
        "--source",
        arg(&source),
        "--key",
        arg(&key),
        "--serial",
        "6",
        "--valid-days",
        "30",
        "--out",
        arg(&fixture.path("other.note")),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("members[0].roles: at least one role is required"),
        "{}",
        text(&out.stderr)
    );
    assert!(!fixture.path("other.note").exists());
}
