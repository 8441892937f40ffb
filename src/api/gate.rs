//! The peer gate: nothing reaches a peer-facing handler unless the caller's certificate chains
//! to the federation CA, is within its dates, carries an OIN, and has a key that the signed
//! directory pins for that same OIN. Every refusal is UNAUTHENTICATED, names the rule, and is
//! audited before the answer goes back.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::clock::SharedClock;
use crate::directory::Member;
use crate::domain::{Action, Actor, EventDraft, Oin, PrincipalId, TransactionId};
use crate::federation::Federation;
use crate::ledger::Ledger;
use crate::tls::ConnInfo;

/// The verified member behind a peer call, in the request's extensions.
#[derive(Debug, Clone)]
pub struct Peer(pub Member);

#[derive(Debug)]
pub struct PeerGate {
    federation: Arc<Federation>,
    ledger: Arc<Ledger>,
    clock: SharedClock,
    /// Chains that verified to the federation CA, by the SHA-256 of their certificates, with
    /// what the gate reads from them: verifying a chain (an ECDSA signature, a verifier built
    /// from the roots) on every call of a long-lived connection cost more than the call. The
    /// dates are checked again on every use, and the directory's pins on every call.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

/// A chain that verified, and what the gate needs of it.
#[derive(Debug, Clone, Copy)]
struct Verified {
    /// The latest start and the earliest end of the chain's certificates, Unix seconds.
    not_before: i64,
    not_after: i64,
    claimed: Option<Oin>,
    pin: [u8; 32],
}

/// The most verified chains the gate remembers; more are verified afresh after a reset.
const VERIFIED_CHAINS: usize = 1024;

fn chain_digest(chain: &[rustls::pki_types::CertificateDer<'static>]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in chain {
        context.update(&(cert.len() as u64).to_be_bytes());
        context.update(cert);
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(context.finish().as_ref());
    digest
}

/// The window in which every certificate of `chain` is within its dates, Unix seconds.
fn validity(chain: &[rustls::pki_types::CertificateDer<'static>]) -> Option<(i64, i64)> {
    chain
        .iter()
        .try_fold((i64::MIN, i64::MAX), |(from, until), cert| {
            let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
            let dates = cert.validity();
            Some((
                from.max(dates.not_before.timestamp()),
                until.min(dates.not_after.timestamp()),
            ))
        })
}

impl PeerGate {
    pub fn new(federation: Arc<Federation>, ledger: Arc<Ledger>, clock: SharedClock) -> PeerGate {
        PeerGate {
            federation,
            ledger,
            clock,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The chain's claimed OIN and key pin, verifying it to the federation CA unless it
    /// verified before and every certificate is still within its dates.
    fn verify(
        &self,
        chain: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Verified, (String, Option<Oin>)> {
        let digest = chain_digest(chain);
        let now = rustls::pki_types::UnixTime::now().as_secs() as i64;
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .copied();
        if let Some(known) = known
            && known.not_before <= now
            && now <= known.not_after
        {
            return Ok(known);
        }
        let leaf = &chain[0];
        let claimed = crate::tls::certificate_oin(leaf);
        crate::tls::verify_client_chain(&self.federation.settings().ca, chain)
            .map_err(|e| (format!("peer certificate: {e}"), claimed))?;
        let pin = crate::tls::spki_sha256(leaf)
            .map_err(|e| (format!("peer certificate: {e}"), claimed))?;
        let (not_before, not_after) = validity(chain)
            .ok_or_else(|| ("peer certificate: unreadable dates".to_owned(), claimed))?;
        let verified = Verified {
            not_before,
            not_after,
            claimed,
            pin,
        };
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= VERIFIED_CHAINS {
            cache.clear();
        }
        cache.insert(digest, verified);
        Ok(verified)
    }

    /// The member the connection belongs to, or why it is refused (and the OIN it claimed).
    pub fn admit(&self, info: Option<&ConnInfo>) -> Result<Member, (String, Option<Oin>)> {
        let info = info.ok_or_else(|| ("peer: no TLS connection".to_owned(), None))?;
        if info.peer_certs.is_empty() {
            return Err(("peer: a client certificate is required".into(), None));
        }
        let Verified { claimed, pin, .. } = self.verify(&info.peer_certs)?;
        let directory = self
            .federation
            .directory_at(self.clock.now())
            .map_err(|e| (format!("directory: {e}"), claimed))?;
        let Some(member) = directory.member_by_pin(&pin) else {
            let reason = match claimed.and_then(|oin| directory.member(&oin)) {
                Some(member) => format!(
                    "peer {}: the certificate's key is not pinned for this member in the directory",
                    member.oin
                ),
                None => "peer: not a member of the federation".to_owned(),
            };
            return Err((reason, claimed));
        };
        match claimed {
            Some(oin) if oin == member.oin => Ok(member.clone()),
            Some(oin) => Err((
                format!(
                    "peer: the certificate names OIN {oin}, but its key is pinned for {}",
                    member.oin
                ),
                Some(oin),
            )),
            None => Err(("peer: the certificate carries no OIN".into(), None)),
        }
    }

    async fn refuse(&self, reason: String, claimed: Option<Oin>, path: &str) {
        let me = self.federation.me();
        let actor = Actor {
            user: PrincipalId::system("peer"),
            role: None,
            organisation: claimed.unwrap_or(me),
        };
        let mut draft = EventDraft::new(TransactionId::new(), actor, Action::PeerRefused)
            .refused(format!("unauthenticated: {reason}"))
            .object(path.to_owned());
        if let Some(oin) = claimed {
            draft = draft.counterpart(oin);
        }
        if let Err(e) = self.ledger.commit(move |txn| txn.audit(draft)).await {
            tracing::warn!(error = %e, "could not audit a refused peer");
        }
        tracing::info!(%reason, "peer refused");
    }
}

#[derive(Debug, Clone)]
pub struct PeerGateLayer {
    gate: Arc<PeerGate>,
}

impl PeerGateLayer {
    pub fn new(gate: Arc<PeerGate>) -> PeerGateLayer {
        PeerGateLayer { gate }
    }
}

impl<S> Layer<S> for PeerGateLayer {
    type Service = PeerGateService<S>;
    fn layer(&self, inner: S) -> PeerGateService<S> {
        PeerGateService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PeerGateService<S> {
    inner: S,
    gate: Arc<PeerGate>,
}

/// Health checks pass the gate: probes carry no client certificate.
fn open_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

impl<S, B> Service<http::Request<Body>> for PeerGateService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Default + Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            if open_path(&path) {
                return inner.call(request).await;
            }
            match gate.admit(request.extensions().get::<ConnInfo>()) {
                Ok(member) => {
                    request.extensions_mut().insert(Peer(member));
                    inner.call(request).await
                }
                Err((reason, claimed)) => {
                    gate.refuse(reason.clone(), claimed, &path).await;
                    Ok(Status::unauthenticated(reason).into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{DevCa, NodeCertRequest};
    use crate::tls::TlsIdentity;

    fn chain(
        ca: &DevCa,
        request: &NodeCertRequest,
    ) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        let issued = ca.issue(request).expect("a certificate");
        TlsIdentity::from_pem(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes())
            .expect("an identity")
            .certs
    }

    #[test]
    fn a_chain_is_remembered_by_its_own_digest_with_the_window_of_its_dates() {
        let ca = DevCa::generate("test CA").expect("a CA");
        let oin = Oin::parse("00000001820000001000").expect("an OIN");
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("a time");
        let mut request = NodeCertRequest::loopback("Basisschool", oin, 1);
        request.not_before = now - time::Duration::hours(2);
        request.not_after = now + time::Duration::minutes(30);
        let short = chain(&ca, &request);
        assert_eq!(
            validity(&short),
            Some((
                request.not_before.unix_timestamp(),
                request.not_after.unix_timestamp()
            )),
            "the window is the certificate's own"
        );
        let other = chain(&ca, &NodeCertRequest::loopback("Basisschool", oin, 1));
        assert_ne!(
            chain_digest(&short),
            chain_digest(&other),
            "another certificate of the same holder is another chain"
        );
        assert_eq!(chain_digest(&short), chain_digest(&short.clone()));
    }
}
