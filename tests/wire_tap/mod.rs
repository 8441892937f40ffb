//! A wire tap on the federation's peer traffic, in plaintext: every member's endpoint in the
//! signed directory is replaced by a relay that terminates mutual TLS as that member (the test
//! holds every node's key, as an attacker who had stolen them all would) and opens its own
//! mutual-TLS connection to the member as the client that connected. Every byte of every peer
//! exchange passes through the relay decrypted and is kept, both directions, for the test to
//! search. The nodes are unchanged: they check the same pins and see the same certificates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kring::clock::{SharedClock, SystemClock};
use kring::demo::DemoError;
use kring::devnet::{DevMember, RunningFederation};
use kring::directory::Directory;
use kring::node::NodeError;
use kring::tls::{ClientAuth, TlsIdentity};
use rustls_pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common_federation::{base_dir, plan};

/// What the relays saw, decrypted.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl Capture {
    /// Every byte relayed so far, both directions of every connection, in arrival order.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }

    /// How many peer connections went through the relays.
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    fn keep(&self, chunk: &[u8]) {
        self.bytes.lock().unwrap().extend_from_slice(chunk);
    }
}

/// Starts a federation of `members` on the system clock whose peer traffic all goes through
/// tapping relays.
///
/// A start that fails on a port taken meanwhile (by a connection elsewhere in the process that
/// got it as its local port) is planned again on other ports, as `common_federation::start`
/// does.
pub async fn start_tapped(members: &[DevMember]) -> (TempDir, RunningFederation, Capture) {
    for _ in 0..5 {
        match try_start_tapped(members).await {
            Ok(started) => return started,
            Err(DemoError::Node(NodeError::Listen { error, .. }))
                if error.kind() == std::io::ErrorKind::AddrInUse =>
            {
                continue;
            }
            Err(e) => panic!("the tapped federation starts: {e}"),
        }
    }
    panic!("no free ports for a tapped federation in five plans");
}

async fn try_start_tapped(
    members: &[DevMember],
) -> Result<(TempDir, RunningFederation, Capture), DemoError> {
    let clock: SharedClock = Arc::new(SystemClock);
    let capture = Capture::default();
    let dir = base_dir();
    let planned = plan(members, &dir, clock.now(), |_| {});
    kring::tls::install_provider();

    // Every node's peer identity, and who each certificate belongs to.
    let mut identities: HashMap<String, TlsIdentity> = HashMap::new();
    let mut by_cert: Vec<(CertificateDer<'static>, TlsIdentity)> = Vec::new();
    let mut roots = None;
    for node in &planned.nodes {
        let settings = node.config.federation.as_ref().expect("a federated node");
        let oin = node.config.organisation.oin.to_string();
        identities.insert(oin, settings.tls.clone());
        by_cert.push((settings.tls.certs[0].clone(), settings.tls.clone()));
        roots = Some(settings.ca.clone());
    }
    let roots = roots.expect("a federation has members");
    let by_cert = Arc::new(by_cert);

    // One relay per member, listed in the directory in the member's place.
    let mut content = planned.directory.content().clone();
    for member in &mut content.members {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a relay port");
        let relay_addr = listener.local_addr().unwrap();
        let upstream = member.endpoint.clone();
        let as_member = identities[&member.oin.to_string()].clone();
        let server = kring::tls::server_config(&as_member, &ClientAuth::Required(roots.clone()))
            .expect("the relay's server side");
        let pin = kring::tls::spki_sha256(&as_member.certs[0]).unwrap();
        tokio::spawn(relay(
            listener,
            server,
            upstream,
            pin,
            roots.clone(),
            by_cert.clone(),
            capture.clone(),
        ));
        member.endpoint = relay_addr.to_string();
    }
    let note = Directory::new(content)
        .expect("the rewritten directory is valid")
        .sign(&planned.authority);
    let file = planned.nodes[0]
        .config
        .federation
        .as_ref()
        .unwrap()
        .directory_file
        .clone();
    std::fs::write(file, note).expect("the directory file is written");
    let federation = planned.start(clock).await?;
    Ok((dir, federation, capture))
}

async fn relay(
    listener: TcpListener,
    server: Arc<rustls::ServerConfig>,
    upstream: String,
    upstream_pin: [u8; 32],
    roots: Arc<rustls::RootCertStore>,
    by_cert: Arc<Vec<(CertificateDer<'static>, TlsIdentity)>>,
    capture: Capture,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let upstream = upstream.clone();
        let roots = roots.clone();
        let by_cert = by_cert.clone();
        let capture = capture.clone();
        tokio::spawn(async move {
            let Ok(inbound) = acceptor.accept(socket).await else {
                return;
            };
            let client_cert = inbound
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first().cloned());
            let Some(identity) = client_cert.and_then(|cert| {
                by_cert
                    .iter()
                    .find(|(c, _)| *c == cert)
                    .map(|(_, identity)| identity.clone())
            }) else {
                return;
            };
            let config = kring::tls::peer_client_config(roots, &identity, vec![upstream_pin])
                .expect("the relay's client side");
            let Ok(tcp) = TcpStream::connect(&upstream).await else {
                return;
            };
            let connector = tokio_rustls::TlsConnector::from(config);
            let name = ServerName::try_from("localhost").unwrap();
            let Ok(outbound) = connector.connect(name, tcp).await else {
                return;
            };
            *capture.connections.lock().unwrap() += 1;
            let (in_read, in_write) = tokio::io::split(inbound);
            let (out_read, out_write) = tokio::io::split(outbound);
            tokio::join!(
                pump(in_read, out_write, capture.clone()),
                pump(out_read, in_write, capture.clone()),
            );
        });
    }
}

/// Copies one direction, keeping every byte.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, capture: Capture) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        capture.keep(&buffer[..n]);
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        let _ = to.flush().await;
    }
    let _ = to.shutdown().await;
}
