//! The gRPC surface. The only module that sees generated proto types (besides the clients in
//! `cli` and `demo`): handlers authenticate, validate, convert, delegate, and answer; errors
//! become statuses in one place (`error`).

mod audit;
mod call;
pub mod client;
pub mod convert;
mod error;
mod limit;
mod redact;
mod signals;

pub use audit::AuditApi;
pub use call::{Calls, TRANSACTION_HEADER};
pub use error::ApiError;
pub use limit::SizeLimitLayer;
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
        for name in ["", "kring.v1.Signals", "kring.v1.Audit"] {
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
    pub max_message_bytes: usize,
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
