//! The peer gate: nothing reaches a peer-facing handler unless the caller's certificate chains
//! to the federation CA, is within its dates, carries an OIN, and has a key that the signed
//! directory pins for that same OIN. Every refusal is UNAUTHENTICATED, names the rule, and is
//! audited before the answer goes back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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
}

impl PeerGate {
    pub fn new(federation: Arc<Federation>, ledger: Arc<Ledger>, clock: SharedClock) -> PeerGate {
        PeerGate {
            federation,
            ledger,
            clock,
        }
    }

    /// The member the connection belongs to, or why it is refused (and the OIN it claimed).
    pub fn admit(&self, info: Option<&ConnInfo>) -> Result<Member, (String, Option<Oin>)> {
        let info = info.ok_or_else(|| ("peer: no TLS connection".to_owned(), None))?;
        let Some(leaf) = info.peer_certs.first() else {
            return Err(("peer: a client certificate is required".into(), None));
        };
        let claimed = crate::tls::certificate_oin(leaf);
        crate::tls::verify_client_chain(&self.federation.settings().ca, &info.peer_certs)
            .map_err(|e| (format!("peer certificate: {e}"), claimed))?;
        let directory = self
            .federation
            .directory_at(self.clock.now())
            .map_err(|e| (format!("directory: {e}"), claimed))?;
        let pin = crate::tls::spki_sha256(leaf)
            .map_err(|e| (format!("peer certificate: {e}"), claimed))?;
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
