//! A development federation in one process: a CA, an authority key, a signed directory, and a
//! node configuration for every member, each with its own certificate, audit key, tokens,
//! store and loopback ports. The demo plays its story on one; the federation tests start one
//! per test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::api::client::LocalClient;
use crate::audit::{NoteSigner, NoteVerifier};
use crate::clock::SharedClock;
use crate::config::{Config, FederationSettings, default_origin};
use crate::demo::{DemoError, DevOrganisation, dev_node_with};
use crate::directory::{
    AUTHORITY_KEY_NAME, Contact, Directory, DirectoryContent, Member, NodeRole,
};
use crate::domain::UnixMillis;
use crate::node::RunningNode;
use crate::pki::{DevCa, NodeCertRequest};
use crate::policy::Policy;
use crate::store::{DataKeyId, Keyring};

fn setup(e: impl std::fmt::Display) -> DemoError {
    DemoError::Setup(e.to_string())
}

/// A member of a development federation.
#[derive(Debug, Clone)]
pub struct DevMember {
    /// A short name for the node: `school`, `index`.
    pub key: String,
    pub organisation: DevOrganisation,
    pub roles: Vec<NodeRole>,
}

impl DevMember {
    pub fn new(key: &str, organisation: DevOrganisation, roles: &[NodeRole]) -> DevMember {
        DevMember {
            key: key.to_owned(),
            organisation,
            roles: roles.to_vec(),
        }
    }
}

/// A node configured but not started.
#[derive(Debug)]
pub struct PlannedNode {
    pub key: String,
    pub config: Config,
    pub tokens: BTreeMap<String, String>,
    /// The node's ports, held until it starts (see [`reserve_port`]).
    reserved: Vec<std::net::TcpListener>,
}

impl PlannedNode {
    /// Lets go of the node's ports, for a caller that starts the node itself
    /// ([`RunningNode::start`] with this configuration) rather than through
    /// [`DevFederation::start`].
    pub fn release_ports(&mut self) {
        self.reserved.clear();
    }
}

/// A federation configured but not started.
#[derive(Debug)]
pub struct DevFederation {
    pub base: PathBuf,
    pub ca: Arc<DevCa>,
    pub authority: Arc<NoteSigner>,
    pub directory: Directory,
    pub nodes: Vec<PlannedNode>,
}

/// A free loopback port, kept bound until its node starts. A port released at once could be
/// handed out again before the node binds it: to another node of the plan, or as the local
/// port of a connection that an already started node opens, and the node would then fail to
/// start with "address in use".
fn reserve_port(reserved: &mut Vec<std::net::TcpListener>) -> Result<u16, DemoError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(setup)?;
    let port = listener.local_addr().map_err(setup)?.port();
    reserved.push(listener);
    Ok(port)
}

impl DevFederation {
    /// Configures every member under `base` and signs a directory (serial 1, valid 30 days
    /// from `now`) with the regional default policy.
    pub fn plan(
        members: &[DevMember],
        base: &Path,
        now: UnixMillis,
    ) -> Result<DevFederation, DemoError> {
        DevFederation::plan_with(members, base, now, Policy::regional_default())
    }

    /// As [`DevFederation::plan`], with another purpose policy.
    pub fn plan_with(
        members: &[DevMember],
        base: &Path,
        now: UnixMillis,
        policy: Policy,
    ) -> Result<DevFederation, DemoError> {
        let ca = DevCa::generate("kring development federation CA").map_err(setup)?;
        let authority =
            NoteSigner::from_pkcs8(AUTHORITY_KEY_NAME, &crate::audit::note::generate_pkcs8())
                .map_err(setup)?;
        let roots = Arc::new(
            crate::tls::roots_from_pem(ca.cert_pem().as_bytes()).map_err(DemoError::Setup)?,
        );
        let directory_file = base.join("directory.note");
        let mut nodes = Vec::new();
        let mut directory_members = Vec::new();
        for member in members {
            let dir = base.join(&member.key);
            let issued = ca
                .issue(&NodeCertRequest::loopback(
                    &member.organisation.name,
                    member.organisation.oin,
                    30,
                ))
                .map_err(setup)?;
            let identity = crate::tls::TlsIdentity::from_pem(
                issued.cert_pem.as_bytes(),
                issued.key_pem.as_bytes(),
            )
            .map_err(setup)?;
            let mut planned = dev_node_with(&member.organisation, &dir, identity.clone())?;
            // Encryption at rest, with a data key that exists only in this process.
            planned.config.store.keyring = Some(Arc::new(Keyring::generate(
                DataKeyId::new(1).expect("not zero"),
            )));
            let audit_key = NoteSigner::from_pkcs8(
                &default_origin(&member.organisation.oin),
                &planned.config.audit.signing_key_pkcs8,
            )
            .map_err(setup)?
            .verifier_key();
            let mut reserved = Vec::new();
            let peer_port = reserve_port(&mut reserved)?;
            planned.config.federation = Some(FederationSettings {
                listen: format!("127.0.0.1:{peer_port}").parse().map_err(setup)?,
                tls: identity.clone(),
                ca: roots.clone(),
                authority: authority.verifier(),
                directory_file: directory_file.clone(),
                roles: member.roles.clone(),
                pseudonym_key: member
                    .roles
                    .contains(&NodeRole::PseudonymService)
                    .then(|| dir.join("oprf.key")),
                peer_timeout: Duration::from_secs(2),
                index_key_rotate_days: None,
            });
            planned.config.listen = format!("127.0.0.1:{}", reserve_port(&mut reserved)?)
                .parse()
                .map_err(setup)?;
            directory_members.push(Member {
                oin: member.organisation.oin,
                name: member.organisation.name.clone(),
                org_type: member.organisation.org_type,
                roles: member.roles.clone(),
                endpoint: format!("127.0.0.1:{peer_port}"),
                tls_spki_sha256: vec![
                    crate::tls::spki_sha256(&identity.certs[0]).map_err(DemoError::Setup)?,
                ],
                audit_key,
                contact: Some(Contact {
                    name: format!("Aandachtsfunctionaris {}", member.organisation.name),
                    phone: Some(format!(
                        "+31 26 {:03} {:04}",
                        nodes.len() + 100,
                        1000 + nodes.len()
                    )),
                    email: None,
                }),
            });
            nodes.push(PlannedNode {
                key: member.key.clone(),
                config: planned.config,
                tokens: planned.tokens,
                reserved,
            });
        }
        let directory = Directory::new(DirectoryContent {
            federation: "kring development federation".into(),
            serial: 1,
            issued_at: now.plus_millis(-60_000),
            expires_at: now.plus_millis(30 * UnixMillis::DAY),
            members: directory_members,
            policy,
        })
        .map_err(setup)?;
        std::fs::create_dir_all(base).map_err(setup)?;
        std::fs::write(&directory_file, directory.sign(&authority)).map_err(setup)?;
        Ok(DevFederation {
            base: base.to_owned(),
            ca: Arc::new(ca),
            authority: Arc::new(authority),
            directory,
            nodes,
        })
    }

    /// Starts every node, in the order planned.
    pub async fn start(self, clock: SharedClock) -> Result<RunningFederation, DemoError> {
        let mut running = RunningFederation {
            base: self.base,
            ca: self.ca,
            authority: self.authority,
            nodes: BTreeMap::new(),
            tokens: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        for mut planned in self.nodes {
            planned.release_ports();
            let node = RunningNode::start(planned.config.clone(), clock.clone()).await?;
            running.tokens.insert(planned.key.clone(), planned.tokens);
            running.configs.insert(planned.key.clone(), planned.config);
            running.nodes.insert(planned.key, node);
        }
        Ok(running)
    }
}

/// A started development federation.
#[derive(Debug)]
pub struct RunningFederation {
    pub base: PathBuf,
    pub ca: Arc<DevCa>,
    pub authority: Arc<NoteSigner>,
    pub nodes: BTreeMap<String, RunningNode>,
    pub tokens: BTreeMap<String, BTreeMap<String, String>>,
    pub configs: BTreeMap<String, Config>,
}

impl RunningFederation {
    pub fn node(&self, key: &str) -> &RunningNode {
        &self.nodes[key]
    }

    pub fn authority_key(&self) -> NoteVerifier {
        self.authority.verifier()
    }

    /// A client of `node`'s local API as `principal`.
    pub async fn client(&self, node: &str, principal: &str) -> Result<LocalClient, DemoError> {
        let roots =
            crate::tls::roots_from_pem(self.ca.cert_pem().as_bytes()).map_err(DemoError::Setup)?;
        let token = self
            .tokens
            .get(node)
            .and_then(|t| t.get(principal))
            .ok_or_else(|| DemoError::Setup(format!("no principal {principal} at {node}")))?;
        Ok(LocalClient::connect(
            &self.nodes[node].local_addr().to_string(),
            "localhost",
            roots,
            Some(token),
        )
        .await?)
    }

    /// Stops one node gracefully and returns its configuration, to start it again.
    pub async fn stop(&mut self, key: &str) -> Result<Config, DemoError> {
        if let Some(node) = self.nodes.remove(key) {
            node.shutdown().await?;
        }
        self.configs
            .get(key)
            .cloned()
            .ok_or_else(|| DemoError::Setup(format!("no node {key}")))
    }

    /// Starts a stopped node again from its configuration (same ports, same store).
    pub async fn restart(&mut self, key: &str, clock: SharedClock) -> Result<(), DemoError> {
        let config = self
            .configs
            .get(key)
            .cloned()
            .ok_or_else(|| DemoError::Setup(format!("no node {key}")))?;
        let node = RunningNode::start(config, clock).await?;
        self.nodes.insert(key.to_owned(), node);
        Ok(())
    }

    /// Stops every node gracefully.
    pub async fn shutdown(mut self) -> Result<(), DemoError> {
        let keys: Vec<String> = self.nodes.keys().cloned().collect();
        for key in keys {
            if let Some(node) = self.nodes.remove(&key) {
                node.shutdown().await?;
            }
        }
        Ok(())
    }
}

/// The elfproef check digit of an eight-digit number, if it has one (a weighted sum that leaves
/// 10 has none). For synthetic BSNs in development federations, tests and benchmarks.
pub fn elfproef_check_digit(eight_digits: u32) -> Option<u32> {
    let sum: u32 = format!("{eight_digits:08}")
        .bytes()
        .zip([9, 8, 7, 6, 5, 4, 3, 2])
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    Some(sum % 11).filter(|check| *check < 10)
}

/// A synthetic BSN: the first eight-digit number from `base` that has a check digit, with it.
pub fn bsn_from(mut base: u32) -> String {
    loop {
        if let Some(check) = elfproef_check_digit(base) {
            return format!("{base:08}{check}");
        }
        base += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_bsns_pass_the_elfproef() {
        assert_eq!(elfproef_check_digit(11_122_233), Some(3));
        assert_eq!(bsn_from(11_122_233), "111222333");
        for base in (10_000_000..10_000_500).chain(98_999_500..99_000_000) {
            let bsn = bsn_from(base);
            assert!(crate::domain::Bsn::parse(&bsn).is_ok(), "{bsn}");
            match elfproef_check_digit(base) {
                Some(check) => assert_eq!(bsn, format!("{base:08}{check}")),
                None => assert!(bsn > format!("{base:08}9")),
            }
        }
    }
}
