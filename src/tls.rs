//! TLS for both listeners and for clients, with rustls and the ring provider only.
//!
//! The listener does its own TLS handshakes and hands tonic a stream of connections that carry
//! their peer's verified certificate chain, so a handler (or the layer in front of it) can see
//! who is calling. TLS 1.3 is preferred; TLS 1.2 is allowed only with the provider's suites,
//! all of which are ECDHE (forward secret). ALPN is `h2`, as gRPC requires.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls: {0}")]
    Other(String),
}

/// Installs ring as the process's rustls provider. Safe to call more than once.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct TlsIdentity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsIdentity, TlsError> {
        let certs = certs_from_pem(cert_pem).map_err(|problem| TlsError::File {
            path: "certificate".into(),
            problem,
        })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::File {
            path: "private key".into(),
            problem: e.to_string(),
        })?;
        Ok(TlsIdentity { certs, key })
    }

    pub fn load(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let certs = certs_from_pem(&cert_pem).map_err(|problem| TlsError::File {
            path: cert.display().to_string(),
            problem,
        })?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::File {
            path: key.display().to_string(),
            problem: format!("no PEM private key: {e}"),
        })?;
        Ok(TlsIdentity { certs, key })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        path: path.display().to_string(),
        problem: e.to_string(),
    })
}

fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate".into());
    }
    Ok(certs)
}

/// Reads PEM CA certificates into a root store.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    roots_from_pem(&read(path)?).map_err(|problem| TlsError::File {
        path: path.display().to_string(),
        problem,
    })
}

pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem)? {
        roots
            .add(cert)
            .map_err(|e| format!("unusable CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// Whether a listener asks for client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// The local listener: callers authenticate with bearer tokens.
    None,
    /// A client certificate chaining to one of these roots is required at the handshake.
    Required(Arc<RootCertStore>),
    /// The peer listener: any client certificate whose key the peer proves it holds is let
    /// through the handshake, and the federation gate (which can answer UNAUTHENTICATED and
    /// audit the refusal) decides: chain, dates, pin and OIN.
    Deferred,
}

pub fn server_config(
    identity: &TlsIdentity,
    client_auth: &ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Required(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| TlsError::Other(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        ClientAuth::Deferred => builder.with_client_cert_verifier(Arc::new(DeferredClientAuth {
            algorithms: provider().signature_verification_algorithms,
        })),
    };
    let mut config = builder.with_single_cert(identity.certs.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any client certificate at the handshake, provided the client proves it holds the
/// key; the peer gate checks everything else and can refuse with a status and an audit event.
#[derive(Debug)]
struct DeferredClientAuth {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks a client chain against `roots` as the handshake would have (dates included).
pub fn verify_client_chain(
    roots: &Arc<RootCertStore>,
    chain: &[CertificateDer<'static>],
) -> Result<(), String> {
    let (end_entity, intermediates) = chain
        .split_first()
        .ok_or_else(|| "no client certificate".to_owned())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| e.to_string())?;
    verifier
        .verify_client_cert(
            end_entity,
            intermediates,
            rustls::pki_types::UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The OIN in a certificate's subject serialNumber (2.5.4.5), as PKIoverheid puts it.
pub fn certificate_oin(cert_der: &[u8]) -> Option<crate::domain::Oin> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let serial = cert
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == "2.5.4.5")?
        .as_str()
        .ok()?
        .to_owned();
    crate::domain::Oin::parse(&serial).ok()
}

/// Verifies a server's chain to `roots` and then requires its key to be one of `pins` (SHA-256
/// of the SubjectPublicKeyInfo, from the signed directory).
#[derive(Debug)]
struct PinnedServer {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let pin = spki_sha256(end_entity)
            .map_err(|e| rustls::Error::General(format!("server certificate: {e}")))?;
        if !self.pins.contains(&pin) {
            return Err(rustls::Error::General(
                "server certificate is not pinned in the directory".into(),
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    let mut pin = [0u8; 32];
    pin.copy_from_slice(digest.as_ref());
    Ok(pin)
}

/// A client configuration for one peer: our certificate, the federation's roots, and the
/// peer's pins from the directory.
pub fn peer_client_config(
    roots: Arc<RootCertStore>,
    identity: &TlsIdentity,
    pins: Vec<[u8; 32]>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::Other(e.to_string()))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer { inner, pins }))
        .with_client_auth_cert(identity.certs.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

pub fn client_config(
    roots: RootCertStore,
    identity: Option<&TlsIdentity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => {
            builder.with_client_auth_cert(identity.certs.clone(), identity.key.clone_key())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// What tonic puts in every request's extensions for connections from [`incoming`].
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// The verified client chain, end-entity first; empty without client authentication.
    pub peer_certs: Arc<Vec<CertificateDer<'static>>>,
}

/// A server-side TLS connection.
pub struct TlsConn {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: ConnInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts TCP connections and completes their TLS handshakes off the accept loop. The loop
/// ends when the returned stream is dropped (tonic drops it when it shuts down).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<io::Result<TlsConn>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = sender.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let peer_certs = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
                            .unwrap_or_default();
                        let info = ConnInfo {
                            remote,
                            peer_certs: Arc::new(peer_certs),
                        };
                        let _ = sender.send(Ok(TlsConn { stream, info })).await;
                    }
                    Ok(Err(e)) => tracing::info!(%remote, error = %e, "tls handshake refused"),
                    Err(_) => tracing::info!(%remote, "tls handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// A gRPC channel to `address` (host:port) over TLS, checking the server against `config`'s
/// roots under `server_name`. Connects lazily unless `eager`.
pub async fn channel(
    address: &str,
    server_name: &str,
    config: Arc<ClientConfig>,
    connect: Connect,
) -> Result<tonic::transport::Channel, TlsError> {
    let server_name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| TlsError::Other(format!("server name {server_name:?}: {e}")))?;
    let target = address.to_owned();
    let connector = tower::service_fn(move |_: http::Uri| {
        let connector = TlsConnector::from(config.clone());
        let server_name = server_name.clone();
        let target = target.clone();
        async move {
            let tcp = TcpStream::connect(&target).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| TlsError::Other(format!("address {address:?}: {e}")))?
        .connect_timeout(Duration::from_secs(5));
    match connect {
        Connect::Lazy => Ok(endpoint.connect_with_connector_lazy(connector)),
        Connect::Eager => endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| TlsError::Other(format!("cannot connect to {address}: {e}"))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    Lazy,
    Eager,
}
