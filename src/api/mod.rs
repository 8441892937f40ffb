//! The gRPC surface. The only module that sees generated proto types (besides the clients in
//! `cli` and `demo`): handlers authenticate, validate, convert, delegate, and answer; errors
//! become statuses in one place (`error`).

mod audit;
mod call;
mod cases;
pub mod client;
pub mod convert;
mod error;
mod gate;
mod limit;
mod peer;
pub mod peer_client;
mod redact;
mod signals;

pub use audit::AuditApi;
pub use call::{Calls, TRANSACTION_HEADER};
pub use cases::CasesApi;
pub use error::{ApiError, code_name};
pub use gate::{Peer, PeerGate, PeerGateLayer};
pub use limit::SizeLimitLayer;
pub use peer::{FederationApi, IndexApi, PseudonymsApi, WitnessApi};
pub use signals::SignalsApi;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

/// Generated code for `proto/kring/v1`.
#[allow(clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("kring.v1");

    /// The encoded descriptors of every kring service, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/kring_descriptor.bin"));
}

use proto::audit_server::AuditServer;
use proto::signals_server::SignalsServer;

/// Serving status for health probes.
#[derive(Clone)]
pub struct Health {
    reporter: tonic_health::server::HealthReporter,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Health")
    }
}

impl Health {
    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        for name in ["", "kring.v1.Signals", "kring.v1.Audit", "kring.v1.Cases"] {
            self.reporter.set_service_status(name, status).await;
        }
    }
}

/// The local listener's services, ready to serve.
#[derive(Debug)]
pub struct LocalApi {
    pub calls: Calls,
    pub signals: SignalsApi,
    pub audit: AuditApi,
    /// Only on a node that is part of a federation.
    pub cases: Option<CasesApi>,
    pub max_message_bytes: usize,
}

/// The peer listener's services, behind the gate.
#[derive(Debug)]
pub struct PeerApi {
    pub gate: std::sync::Arc<PeerGate>,
    pub federation: FederationApi,
    pub index: Option<IndexApi>,
    pub pseudonyms: Option<PseudonymsApi>,
    pub witness: WitnessApi,
}

/// The largest message a peer may send (a lookup answer for a large household is the
/// biggest thing on this listener).
const PEER_MESSAGE_LIMIT: usize = 4 * 1024 * 1024;

/// Serves the peer API (Federation, and Index and Pseudonyms where the node has those roles,
/// plus health) on `listener` with mutual TLS, every call through the gate, until `shutdown`.
pub async fn serve_peer(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    api: PeerApi,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (_, health) = health();
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(60))
        .layer(PeerGateLayer::new(api.gate))
        .add_service(health)
        .add_service(
            proto::federation_server::FederationServer::new(api.federation)
                .max_decoding_message_size(PEER_MESSAGE_LIMIT),
        )
        .add_optional_service(api.index.map(|index| {
            proto::index_server::IndexServer::new(index)
                .max_decoding_message_size(PEER_MESSAGE_LIMIT)
        }))
        .add_optional_service(api.pseudonyms.map(|pseudonyms| {
            proto::pseudonyms_server::PseudonymsServer::new(pseudonyms)
                .max_decoding_message_size(PEER_MESSAGE_LIMIT)
        }))
        .add_service(
            proto::witness_server::WitnessServer::new(api.witness)
                .max_decoding_message_size(PEER_MESSAGE_LIMIT),
        );
    router
        .serve_with_incoming_shutdown(crate::tls::incoming(listener, tls), shutdown)
        .await
}

/// Serves the local API (Signals, Audit, health, reflection) on `listener` until `shutdown`
/// completes, then waits for calls in flight.
pub async fn serve_local(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    api: LocalApi,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let limit = api.max_message_bytes;
    tonic::transport::Server::builder()
        .timeout(Duration::from_secs(60))
        .layer(SizeLimitLayer::new(limit, api.calls.clone()))
        .add_service(health)
        .add_service(reflection)
        .add_service(SignalsServer::new(api.signals).max_decoding_message_size(limit * 2))
        .add_service(AuditServer::new(api.audit).max_decoding_message_size(limit * 2))
        .add_optional_service(api.cases.map(|cases| {
            proto::cases_server::CasesServer::new(cases).max_decoding_message_size(limit * 2)
        }))
        .serve_with_incoming_shutdown(crate::tls::incoming(listener, tls), shutdown)
        .await
}

/// A health service and its reporter.
pub fn health() -> (
    Health,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, service) = tonic_health::server::health_reporter();
    (Health { reporter }, service)
}
