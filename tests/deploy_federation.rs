//! The deployment of the development federation (deploy/compose.yaml, deploy/federation-pki.sh,
//! config/federation/*.toml), tested without containers: the configurations are the demo's
//! members; the script gives each configuration every file it references and signs both
//! directories; every configuration loads; and four of the nodes run as separate `kring node`
//! processes, where a household match reaches the school's subscriber over the command line,
//! the logs reconcile, and every stopped store verifies against the node's key.
//!
//! The configurations are copied into a temporary directory with their ports replaced by free
//! ones (everything else as committed), so that the test never collides with a federation
//! running on this machine, and the script is pointed at the copy and at the built binary.

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use kring::audit::{NoteSigner, NoteVerifier};
use kring::config::{Config, default_origin, read_signing_key};
use kring::devnet::DevMember;
use kring::directory::Directory;
use kring::domain::UnixMillis;

const KRING: &str = env!("CARGO_BIN_EXE_kring");
const CHILD: &str = "111222333";
const MOTHER: &str = "123456782";
/// How long anything in this test may take before it counts as never.
const PATIENCE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn members() -> BTreeMap<String, DevMember> {
    kring::demo::demo_members()
        .into_iter()
        .map(|m| (m.key.clone(), m))
        .collect()
}

fn committed_configs() -> BTreeMap<String, String> {
    let dir = repo().join("config/federation");
    let mut configs = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("config/federation") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let key = path.file_stem().unwrap().to_string_lossy().into_owned();
            configs.insert(key, std::fs::read_to_string(&path).expect("readable"));
        }
    }
    configs
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).expect("TOML")
}

fn string<'a>(table: &'a toml::Table, section: &str, key: &str) -> &'a str {
    table[section][key]
        .as_str()
        .unwrap_or_else(|| panic!("[{section}] {key} is a string"))
}

fn strings(value: &toml::Value) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("strings").to_owned())
        .collect()
}

/// `n` distinct free loopback ports (all held until every one is found).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The federation's configurations copied into a temporary tree laid out like the repository
/// (so that `data_dir = "../../data/federation/<node>"` stays inside it), with free ports,
/// and the PKI generated there by the script.
struct Deployment {
    _temp: tempfile::TempDir,
    root: PathBuf,
    configs: PathBuf,
    /// Per node: (local port, peer port).
    ports: BTreeMap<String, (u16, u16)>,
    script_output: String,
}

impl Deployment {
    fn new() -> Deployment {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let root = temp.path().to_owned();
        let configs = root.join("config/federation");
        std::fs::create_dir_all(&configs).unwrap();
        let committed = committed_configs();
        let mut free = free_ports(2 * committed.len()).into_iter();
        let mut ports = BTreeMap::new();
        for (key, text) in &committed {
            let parsed = table(text);
            let (local, peer) = (free.next().unwrap(), free.next().unwrap());
            let mut text = text.clone();
            for (section, port) in [("local", local), ("federation", peer)] {
                let line = format!("listen = \"{}\"", string(&parsed, section, "listen"));
                assert_eq!(text.matches(&line).count(), 1, "{key}: {line} once");
                text = text.replace(&line, &format!("listen = \"127.0.0.1:{port}\""));
            }
            std::fs::write(configs.join(format!("{key}.toml")), text).unwrap();
            ports.insert(key.clone(), (local, peer));
        }
        let script_output = run_script(&configs);
        Deployment {
            _temp: temp,
            root,
            configs,
            ports,
            script_output,
        }
    }

    fn pki(&self) -> PathBuf {
        self.configs.join("pki")
    }

    fn config_path(&self, key: &str) -> PathBuf {
        self.configs.join(format!("{key}.toml"))
    }

    fn local(&self, key: &str) -> String {
        format!("127.0.0.1:{}", self.ports[key].0)
    }

    fn authority(&self) -> NoteVerifier {
        let text = std::fs::read_to_string(self.pki().join("authority.pub")).unwrap();
        NoteVerifier::parse(text.trim()).expect("authority.pub holds a verifier key")
    }

    fn directory(&self, file: &str) -> Directory {
        let note = std::fs::read_to_string(self.pki().join(file)).unwrap();
        Directory::open(&note, &self.authority(), now()).expect("a valid signed directory")
    }
}

fn now() -> UnixMillis {
    use kring::clock::Clock;
    kring::clock::SystemClock.now()
}

fn run_script(configs: &Path) -> String {
    let output = Command::new("bash")
        .arg(repo().join("deploy/federation-pki.sh"))
        .arg("--config-dir")
        .arg(configs)
        .env("KRING_BIN", KRING)
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "federation-pki.sh failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn kring(args: &[&str]) -> Output {
    Command::new(KRING).args(args).output().expect("kring runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_configurations_are_the_demo_federation_and_compose_runs_each_of_them() {
    let configs = committed_configs();
    let members = members();
    assert_eq!(
        configs.keys().collect::<Vec<_>>(),
        members.keys().collect::<Vec<_>>(),
        "one configuration per member of the demo federation, named by its key"
    );
    let compose = std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap();
    assert_eq!(
        compose.matches("<<: *node").count(),
        configs.len(),
        "one compose service per configuration"
    );
    let mut listeners = BTreeSet::new();
    for (key, text) in &configs {
        let config = table(text);
        let member = &members[key];
        let organisation = &member.organisation;
        assert_eq!(string(&config, "node", "organisation"), organisation.name);
        assert_eq!(string(&config, "node", "oin"), organisation.oin.as_str());
        assert_eq!(
            string(&config, "node", "org_type"),
            organisation.org_type.as_str()
        );
        assert_eq!(
            string(&config, "node", "data_dir"),
            format!("../../data/federation/{key}"),
            "{key}: the store is under data/federation, in the service's volume in compose"
        );
        let roles: Vec<String> = member.roles.iter().map(|r| r.to_string()).collect();
        assert_eq!(strings(&config["federation"]["roles"]), roles, "{key}");
        let principals: BTreeMap<String, Vec<String>> = config["principals"]
            .as_array()
            .expect("principals")
            .iter()
            .map(|p| (p["id"].as_str().unwrap().to_owned(), strings(&p["roles"])))
            .collect();
        assert_eq!(
            principals.get("fg"),
            Some(&vec!["privacy_officer".to_owned()]),
            "{key}: every node has an fg privacy officer"
        );
        for (id, roles) in &organisation.principals {
            let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
            assert_eq!(principals.get(id), Some(&roles), "{key}: principal {id}");
        }
        let local = string(&config, "local", "listen");
        for address in [local, string(&config, "federation", "listen")] {
            assert!(address.starts_with("127.0.0.1:"), "{key}: {address}");
            assert!(
                listeners.insert(address.to_owned()),
                "{key}: {address} twice"
            );
        }
        let port = local.rsplit_once(':').unwrap().1;
        for needle in [
            format!("\n  {key}:\n    <<: *node\n"),
            format!(
                "[node, --config, /var/lib/kring/config/federation/{key}.toml, --bind, 0.0.0.0]"
            ),
            format!("ports: [\"127.0.0.1:{port}:{port}\"]"),
            format!(
                "source: ../config/federation/{key}.toml, target: /var/lib/kring/config/federation/{key}.toml, read_only: true"
            ),
            format!(
                "source: ../config/federation/pki/{key}, target: /var/lib/kring/config/federation/pki/{key}, read_only: true"
            ),
            format!(
                "{{type: volume, source: {key}-store, target: /var/lib/kring/data/federation}}"
            ),
            format!("\n  {key}-store:\n"),
        ] {
            assert!(compose.contains(&needle), "compose.yaml lacks {needle:?}");
        }
    }
}

#[test]
fn the_script_gives_every_configuration_what_it_references() {
    let deployment = Deployment::new();
    let pki = deployment.pki();
    let members = members();
    let authority = deployment.authority();
    let local = deployment.directory("directory.note");
    let compose = deployment.directory("directory-compose.note");
    assert_ne!(
        local.federation(),
        compose.federation(),
        "two federations, so that no store accepts the other's directory"
    );
    assert_eq!(local.members().len(), members.len());
    assert_eq!(compose.members().len(), members.len());

    for (key, member) in &members {
        let config = Config::load(&deployment.config_path(key))
            .unwrap_or_else(|e| panic!("config/federation/{key}.toml: {e}"));
        let (local_port, peer_port) = deployment.ports[key];
        assert_eq!(config.listen.port(), local_port, "{key}");
        let federation = config.federation.as_ref().expect("a [federation] section");
        assert_eq!(federation.listen.port(), peer_port, "{key}");
        assert_eq!(federation.roles, member.roles, "{key}");
        assert_eq!(
            federation.authority.public_key(),
            authority.public_key(),
            "{key}: pins the authority key the script made"
        );

        // Every example token the script prints belongs to the principal it names.
        for (id, _) in member
            .organisation
            .principals
            .iter()
            .chain([&("fg".to_owned(), Vec::new())])
        {
            let token = format!("kring_example_fed-{key}-{id}");
            assert!(
                deployment.script_output.contains(&token),
                "the script prints {token}"
            );
            let principal = config
                .principals
                .authenticate(&token)
                .unwrap_or_else(|| panic!("{key}: {token} is configured"));
            assert_eq!(principal.id.as_str(), id);
        }

        // Both directories name the node with its certificate's pin and its audit key; the
        // endpoint is the loopback port for processes and the service name for compose.
        let oin = member.organisation.oin;
        let audit_key = NoteSigner::from_pkcs8(
            &default_origin(&oin),
            &read_signing_key(&pki.join(key).join("audit.key")).unwrap(),
        )
        .unwrap()
        .verifier_key();
        let pin = kring::tls::spki_sha256(&config.local_tls.certs[0]).unwrap();
        for (directory, host) in [(&local, "127.0.0.1"), (&compose, key.as_str())] {
            let listed = directory.member(&oin).expect("a member");
            assert_eq!(listed.endpoint, format!("{host}:{peer_port}"));
            assert_eq!(listed.audit_key, audit_key, "{key}");
            assert!(listed.is_pinned(&pin), "{key}: its certificate is pinned");
            assert_eq!(listed.roles, member.roles, "{key}");
            assert!(
                listed.contact.is_some(),
                "{key}: a contact for match notices"
            );
        }

        // The certificate serves compose (its service name) and plain processes alike.
        let pem = std::fs::read(pki.join(key).join("node.crt")).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .expect("SANs")
            .value
            .general_names
            .iter()
            .map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => dns.to_string(),
                x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                    4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                    _ => format!("{ip:?}"),
                },
                other => format!("{other:?}"),
            })
            .collect();
        for expected in [key.as_str(), "localhost", "127.0.0.1"] {
            assert!(sans.iter().any(|s| s == expected), "{key}: SANs {sans:?}");
        }
    }

    // federation.authority_key_file and federation.authority_key: exactly one, and a file
    // that is not there is named.
    let school = std::fs::read_to_string(deployment.config_path("school")).unwrap();
    let file_line = "authority_key_file = \"pki/authority.pub\"";
    assert!(school.contains(file_line));
    let inline = format!(
        "authority_key = \"{}\"",
        std::fs::read_to_string(pki.join("authority.pub"))
            .unwrap()
            .trim()
    );
    let index = std::fs::read_to_string(deployment.config_path("index")).unwrap();
    let rotate_line = "index_key_rotate_days = 365";
    assert!(index.contains(rotate_line));
    let cases: [(String, &[&str]); 8] = [
        (
            school.replace(file_line, &format!("{file_line}\n{rotate_line}")),
            &["federation.index_key_rotate_days: only the index has an index key to rotate"],
        ),
        (
            index.replace(rotate_line, "index_key_rotate_days = 0"),
            &["federation.index_key_rotate_days: must be between 1 and 3650"],
        ),
        (index.clone(), &[]),
        (
            school.replace(file_line, &format!("{file_line}\n{inline}")),
            &["federation.authority_key: give authority_key or authority_key_file, not both"],
        ),
        (
            school.replace(file_line, ""),
            &["federation.authority_key: authority_key or authority_key_file is required"],
        ),
        (
            school.replace("pki/authority.pub", "pki/absent.pub"),
            &["federation.authority_key_file: ", "absent.pub"],
        ),
        (
            school.replace("pki/authority.pub", "pki/ca.crt"),
            &["federation.authority_key_file: ", "ca.crt"],
        ),
        (school.replace(file_line, &inline), &[]),
    ];
    for (text, expected) in cases {
        match Config::parse(&text, &deployment.configs) {
            Ok(config) => {
                assert!(expected.is_empty(), "accepted; expected {expected:?}");
                assert_eq!(
                    config.federation.unwrap().authority.public_key(),
                    authority.public_key()
                );
            }
            Err(e) => {
                let message = e.to_string();
                assert!(!expected.is_empty(), "refused: {message}");
                assert!(message.starts_with(expected[0]), "{message}");
                assert!(
                    expected.iter().all(|part| message.contains(part)),
                    "{message}"
                );
            }
        }
    }

    // Running the script again keeps every key and signs the directories with a higher serial.
    let kept = [
        "ca.crt",
        "authority.pub",
        "school/node.crt",
        "school/audit.key",
    ]
    .map(|f| std::fs::read(pki.join(f)).unwrap());
    run_script(&deployment.configs);
    assert_eq!(
        kept,
        [
            "ca.crt",
            "authority.pub",
            "school/node.crt",
            "school/audit.key"
        ]
        .map(|f| std::fs::read(pki.join(f)).unwrap())
    );
    assert!(deployment.directory("directory.note").serial() > local.serial());
    assert!(deployment.directory("directory-compose.note").serial() > compose.serial());
}

/// Lines a child writes to stdout, read on a thread so that the child never blocks.
fn lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (send, receive) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// The first line that satisfies `wanted`, within [`PATIENCE`].
fn wait_for_line(lines: &Receiver<String>, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no {what} within {PATIENCE:?}; saw {seen:#?}"),
        }
    }
}

/// Waits, polling, for a child to exit.
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "SIGTERM to {}", child.id());
}

/// A `kring node` process, killed if the test fails before it stops it.
struct NodeProcess {
    key: String,
    child: Child,
    log: PathBuf,
    verifier_key: String,
}

impl NodeProcess {
    fn start(deployment: &Deployment, key: &str) -> NodeProcess {
        let log = deployment.root.join(format!("{key}.log"));
        let mut child = Command::new(KRING)
            .arg("node")
            .arg("--config")
            .arg(deployment.config_path(key))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("kring node starts");
        let out = lines(&mut child);
        let line = wait_for_line(&out, &format!("{key}'s start line"), |l| {
            l.starts_with("kring node listening on")
        });
        let verifier_key = line
            .rsplit_once("audit verifier key ")
            .expect("the start line names the key")
            .1
            .to_owned();
        NodeProcess {
            key: key.to_owned(),
            child,
            log,
            verifier_key,
        }
    }

    /// SIGTERM, and the graceful stop's exit status.
    fn stop(mut self) -> (String, String) {
        terminate(&self.child);
        let status = wait_exit(&mut self.child, &self.key);
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            status.success(),
            "{} stopped with {status}:\n{log}",
            self.key
        );
        (self.key.clone(), self.verifier_key.clone())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn client(deployment: &Deployment, key: &str, principal: &str) -> Command {
    let mut command = Command::new(KRING);
    command
        .env("KRING_CA", deployment.pki().join("ca.crt"))
        .env("KRING_NODE", deployment.local(key))
        .env(
            "KRING_TOKEN",
            format!("kring_example_fed-{key}-{principal}"),
        );
    command
}

fn succeed(command: &mut Command, what: &str) -> String {
    let output = command.output().expect("kring runs");
    assert!(output.status.success(), "{what}: {}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

fn register(
    deployment: &Deployment,
    key: &str,
    principal: &str,
    args: &[&str],
    bsn: &str,
) -> String {
    let mut child = client(deployment, key, principal)
        .args(["signal", "register", "--subject-bsn", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kring signal register starts");
    writeln!(child.stdin.take().unwrap(), "{bsn}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{key} registers: {}",
        text(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a client command until its output satisfies `wanted`, within [`PATIENCE`].
fn poll(command: &mut Command, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let output = succeed(command, what);
        if wanted(&output) {
            return output;
        }
        assert!(Instant::now() < deadline, "{what}: never; last {output}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kring audit reconcile` over `nodes` (their fg tokens): its exit code and output.
fn reconcile(deployment: &Deployment, nodes: &[&str]) -> (Option<i32>, String) {
    let mut command = Command::new(KRING);
    command
        .args(["audit", "reconcile", "--ca"])
        .arg(deployment.pki().join("ca.crt"));
    for key in nodes {
        command.arg("--node").arg(format!(
            "{}=kring_example_fed-{key}-fg",
            deployment.local(key)
        ));
    }
    let output = command.output().expect("kring runs");
    (output.status.code(), text(&output))
}

#[test]
fn six_nodes_as_processes_play_the_flows_over_the_command_line() {
    let deployment = Deployment::new();
    let directory = deployment.directory("directory.note");
    let members = members();
    let keys = [
        "pseudonyms",
        "pseudonyms-b",
        "index",
        "veilig-thuis",
        "school",
        "ggd",
    ];
    let nodes: Vec<NodeProcess> = keys
        .into_iter()
        .map(|key| NodeProcess::start(&deployment, key))
        .collect();
    for node in &nodes {
        let oin = members[&node.key].organisation.oin;
        assert_eq!(
            directory.member(&oin).unwrap().audit_key,
            node.verifier_key,
            "{}: the key it signs with is the one the directory pins",
            node.key
        );
    }

    // The school's coordinator follows the notices, as a person would in a terminal.
    let mut watch = client(&deployment, "school", "m.jansen")
        .args(["signal", "watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kring signal watch starts");
    let notices = lines(&mut watch);

    // The school worries about the child, the GGD about the mother: a household match.
    let registered = register(
        &deployment,
        "school",
        "m.jansen",
        &[
            "--related",
            &format!("{MOTHER}:parent"),
            "--category",
            "niet_pluis",
            "--severity",
            "niet_pluis",
            "--contact-point",
            "aandachtsfunctionaris",
        ],
        CHILD,
    );
    let signal_id = registered
        .strip_prefix("registered ")
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the signal's id")
        .to_owned();
    register(
        &deployment,
        "ggd",
        "a.devries",
        &[
            "--related",
            &format!("{CHILD}:child"),
            "--category",
            "psychological",
            "--severity",
            "zorg",
            "--contact-point",
            "aandachtsfunctionaris",
        ],
        MOTHER,
    );
    let notice = wait_for_line(&notices, "household match at the school", |l| {
        l.contains("match (household)")
    });
    assert!(notice.starts_with("cursor 1 "), "{notice}");
    assert!(notice.contains("GGD Gelderland-Zuid"), "{notice}");
    assert!(
        !notice.contains("psychological") && !notice.contains("zorg"),
        "a notice never carries the other's category or severity: {notice}"
    );
    // ListMatches, over a connection that checks the certificate under the school's compose
    // service name: the same PKI serves compose.
    let matches = succeed(
        client(&deployment, "school", "m.jansen").args([
            "signal",
            "matches",
            "--server-name",
            "school",
        ]),
        "the school lists its matches",
    );
    assert!(matches.contains("GGD Gelderland-Zuid"), "{matches}");

    // Regie: claimed, visible on the notice stream, released.
    let claimed = succeed(
        client(&deployment, "school", "m.jansen").args([
            "cases",
            "claim-regie",
            "--person-bsn",
            CHILD,
        ]),
        "the school claims regie",
    );
    assert!(
        claimed.starts_with("regie: ")
            && claimed.contains("Basisschool De Regenboog (00000001820000001000) coordinates"),
        "{claimed}"
    );
    let notice = wait_for_line(&notices, "the regie notice", |l| l.contains("regie on"));
    assert!(
        notice.contains("Basisschool De Regenboog coordinates"),
        "{notice}"
    );
    let released = succeed(
        client(&deployment, "school", "m.jansen").args([
            "cases",
            "release-regie",
            "--person-bsn",
            CHILD,
        ]),
        "the school releases regie",
    );
    assert!(released.starts_with("released; regie: "), "{released}");

    // Meldcode step 5: the melding reaches Veilig Thuis.
    succeed(
        client(&deployment, "school", "m.jansen").args([
            "signal",
            "update",
            "--id",
            &signal_id,
            "--step",
            "5_beslissen",
            "--severity",
            "ernstig",
        ]),
        "the school reaches step 5",
    );
    let reported = succeed(
        client(&deployment, "school", "m.jansen").args([
            "signal",
            "report",
            "--id",
            &signal_id,
            "--subject-bsn",
            CHILD,
        ]),
        "the school reports to Veilig Thuis",
    );
    assert!(
        reported.contains("queued for Veilig Thuis (00000001820000004000)"),
        "{reported}"
    );
    let meldingen = poll(
        client(&deployment, "veilig-thuis", "l.smit").args(["cases", "meldingen"]),
        "Veilig Thuis lists its meldingen",
        |out| out.contains("00000001820000001000"),
    );
    assert!(
        meldingen.contains("niet_pluis / ernstig") && meldingen.contains("reported by m.jansen"),
        "{meldingen}"
    );

    // The triage map at Veilig Thuis; the school may not ask for it.
    let map = succeed(
        client(&deployment, "veilig-thuis", "l.smit").args([
            "cases",
            "linked-signals",
            "--purpose",
            "vt_triage",
            "--person-bsn",
            CHILD,
            "--household",
        ]),
        "Veilig Thuis asks for the linked signals",
    );
    for needle in [
        "purpose vt_triage",
        "(the person asked about)",
        "(parent of the person asked about)",
        "[plekken voor iedereen]",
        "Basisschool De Regenboog (school)",
        "GGD Gelderland-Zuid (ggd)",
        "category psychological; severity zorg",
    ] {
        assert!(map.contains(needle), "the map lacks {needle:?}:\n{map}");
    }
    let refused = client(&deployment, "school", "m.jansen")
        .args([
            "cases",
            "linked-signals",
            "--purpose",
            "vt_triage",
            "--person-bsn",
            CHILD,
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        "kring: PermissionDenied: policy: purpose vt_triage: organisation type school may not ask"
    );

    // Break-glass, and the GGD's privacy officer reviews the access to the GGD's data.
    let emergency = succeed(
        client(&deployment, "veilig-thuis", "l.smit").args([
            "cases",
            "break-glass",
            "--person-bsn",
            MOTHER,
            "--reason",
            "acute_danger_adult",
        ]),
        "Veilig Thuis breaks the glass",
    );
    assert!(
        emergency.contains("purpose emergency (BREAK-GLASS, flagged for review)"),
        "{emergency}"
    );
    let queue = succeed(
        client(&deployment, "ggd", "fg").args(["audit", "break-glass"]),
        "the GGD's break-glass queue",
    );
    assert!(
        queue.contains("acute_danger_adult  by Veilig Thuis Gelderland-Midden")
            && queue.trim_end().ends_with("AWAITING REVIEW"),
        "{queue}"
    );
    let item = queue.split_whitespace().next().unwrap().to_owned();
    let reviewed = succeed(
        client(&deployment, "ggd", "fg").args([
            "audit",
            "review",
            "--id",
            &item,
            "--outcome",
            "justified",
            "--reason",
            "acute_danger_confirmed",
        ]),
        "the GGD's privacy officer reviews",
    );
    assert!(
        reviewed.contains("reviewed: justified (acute_danger_confirmed) by fg"),
        "{reviewed}"
    );
    let awaiting = succeed(
        client(&deployment, "ggd", "fg").args(["audit", "break-glass"]),
        "the GGD's queue after review",
    );
    assert_eq!(
        awaiting.trim(),
        "no break-glass disclosures awaiting review"
    );
    let all = succeed(
        client(&deployment, "ggd", "fg").args(["audit", "break-glass", "--all"]),
        "the GGD's reviewed items",
    );
    assert!(
        all.starts_with(&item) && all.contains("reviewed: justified"),
        "{all}"
    );

    // Waakvlam follow-up for the household.
    let started = succeed(
        client(&deployment, "veilig-thuis", "l.smit").args([
            "cases",
            "start-waakvlam",
            "--person-bsn",
            CHILD,
            "--days",
            "30",
        ]),
        "Veilig Thuis starts waakvlam",
    );
    assert!(
        started.starts_with("waakvlam started: ")
            && started.contains("coordinator 00000001820000004000"),
        "{started}"
    );
    let waakvlam = succeed(
        client(&deployment, "veilig-thuis", "l.smit").args(["cases", "waakvlam"]),
        "Veilig Thuis lists waakvlam",
    );
    assert_eq!(waakvlam.lines().count(), 1, "{waakvlam}");

    // Ctrl-C (here SIGTERM) ends the watch, which says where to resume.
    terminate(&watch);
    let status = wait_exit(&mut watch, "kring signal watch");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    let last = std::iter::from_fn(|| notices.recv_timeout(Duration::from_secs(5)).ok())
        .last()
        .map_or(notice.clone(), |l| l);
    let cursor = last.split_whitespace().nth(1).expect("a cursor");
    assert!(
        stderr.contains(&format!("resume with --after {cursor}")),
        "{stderr} (last notice: {last})"
    );

    // Reconciliation across the six running nodes. An exchange still in flight (a notice the
    // index has not yet recorded as delivered) shows as one-sided until it lands, so poll.
    let deadline = Instant::now() + PATIENCE;
    let report = loop {
        match reconcile(&deployment, &keys) {
            (Some(0), report) => break report,
            (Some(2), _) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            (code, report) => panic!("kring audit reconcile exited {code:?}: {report}"),
        }
    };
    assert!(report.contains("reconciled: 6 nodes"), "{report}");
    for key in keys {
        let oin = members[key].organisation.oin;
        assert!(report.contains(oin.as_str()), "{report}");
    }
    let twice = kring(&[
        "audit",
        "reconcile",
        "--ca",
        deployment.pki().join("ca.crt").to_str().unwrap(),
        "--node",
        &format!("{}=kring_example_fed-school-fg", deployment.local("school")),
        "--node",
        &format!(
            "localhost:{}=kring_example_fed-school-fg",
            deployment.ports["school"].0
        ),
    ]);
    assert_eq!(twice.status.code(), Some(1), "{}", text(&twice));
    assert!(
        text(&twice).contains("are the same organisation (00000001820000001000)"),
        "{}",
        text(&twice)
    );

    // Every node stops gracefully on SIGTERM, and its store, sealed under the node's data
    // key, verifies offline against its audit key; without the data key it does not open.
    let stopped: Vec<(String, String)> = nodes.into_iter().map(NodeProcess::stop).collect();
    for (key, verifier_key) in stopped {
        let store = deployment.root.join(format!("data/federation/{key}/store"));
        let data_key = deployment.pki().join(key.as_str()).join("data-1.key");
        let verify = |with_key: bool| {
            let mut args = vec![
                "audit",
                "verify",
                "--store",
                store.to_str().unwrap(),
                "--key",
                &verifier_key,
            ];
            if with_key {
                args.extend(["--data-key", data_key.to_str().unwrap()]);
            }
            kring(&args)
        };
        let sealed = verify(false);
        assert!(
            !sealed.status.success() && text(&sealed).contains("data key 1"),
            "{key}: a sealed store needs its data key: {}",
            text(&sealed)
        );
        let output = verify(true);
        assert!(output.status.success(), "{key}: {}", text(&output));
        let report = String::from_utf8(output.stdout).unwrap();
        assert!(
            report.starts_with("log verified:") && report.contains("signatures checked"),
            "{key}: {report}"
        );
    }

    // A GGD that lost its history: the index's exchanges with it are on record at one end only.
    let ggd_data = deployment.root.join("data/federation/ggd");
    std::fs::rename(&ggd_data, deployment.root.join("data/federation/ggd.lost")).unwrap();
    let restarted: Vec<NodeProcess> = ["index", "ggd"]
        .into_iter()
        .map(|key| NodeProcess::start(&deployment, key))
        .collect();
    let (code, report) = reconcile(&deployment, &["index", "ggd"]);
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains("NOT reconciled"), "{report}");
    assert!(
        report.contains("with 00000001820000002000 (event")
            && report.contains("which has no record of it"),
        "{report}"
    );
    for node in restarted {
        node.stop();
    }
}
