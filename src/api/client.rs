//! Clients of a node's local API, for the command line, the demo and tests: a TLS channel,
//! the bearer token on every call, and verification of a node's log from the outside, trusting
//! only a pinned verifier key and checkpoints saved before.

use rustls::RootCertStore;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::proto;
use super::proto::audit_client::AuditClient;
use super::proto::cases_client::CasesClient;
use super::proto::signals_client::SignalsClient;
use crate::audit::merkle::{self, Hash32};
use crate::audit::{NoteVerifier, Report, SignedCheckpoint, Verifier, checkpoint};
use crate::tls::{self, Connect};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] Status),
    #[error("the bearer token is not a valid header value")]
    Token,
    #[error("{0}")]
    Proof(String),
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

pub type Signals = SignalsClient<InterceptedService<Channel, Bearer>>;
pub type Audit = AuditClient<InterceptedService<Channel, Bearer>>;
pub type Cases = CasesClient<InterceptedService<Channel, Bearer>>;

#[derive(Debug, Clone)]
pub struct LocalClient {
    channel: Channel,
    pub signals: Signals,
    pub audit: Audit,
    pub cases: Cases,
}

impl LocalClient {
    /// Connects over TLS to `address` (host:port), checking the server certificate against
    /// `roots` under `server_name`.
    pub async fn connect(
        address: &str,
        server_name: &str,
        roots: RootCertStore,
        token: Option<&str>,
    ) -> Result<LocalClient, ClientError> {
        tls::install_provider();
        let config = tls::client_config(roots, None)?;
        let channel = tls::channel(address, server_name, config, Connect::Eager).await?;
        LocalClient::on(channel, token)
    }

    /// A client on an existing channel, with this token.
    pub fn on(channel: Channel, token: Option<&str>) -> Result<LocalClient, ClientError> {
        let bearer = match token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ClientError::Token)?,
            ),
            None => None,
        };
        let bearer = Bearer(bearer);
        Ok(LocalClient {
            signals: SignalsClient::with_interceptor(channel.clone(), bearer.clone()),
            audit: AuditClient::with_interceptor(channel.clone(), bearer.clone()),
            cases: CasesClient::with_interceptor(channel.clone(), bearer),
            channel,
        })
    }

    /// The same connection under another token.
    pub fn with_token(&self, token: Option<&str>) -> Result<LocalClient, ClientError> {
        LocalClient::on(self.channel.clone(), token)
    }
}

/// Downloads the whole durable log (events and checkpoints) and verifies it locally.
pub async fn verify_remote(audit: &mut Audit, verifier: &Verifier) -> Result<Report, ClientError> {
    let mut events = Vec::new();
    let mut stream = audit
        .export(proto::ExportRequest {
            from_index: 0,
            until_index: 0,
        })
        .await?
        .into_inner();
    while let Some(chunk) = stream.message().await? {
        events.extend(chunk.events.into_iter().map(|e| (e.index, e.canonical)));
    }
    let until = events.len() as u64;
    let mut notes = Vec::new();
    let mut after = 0;
    loop {
        let page = audit
            .list_checkpoints(proto::ListCheckpointsRequest {
                after_tree_size: after,
                page_size: 0,
            })
            .await?
            .into_inner();
        if page.signed_notes.is_empty() {
            break;
        }
        for note in page.signed_notes {
            let size = checkpoint::parse_unverified(&note)
                .map_err(|e| ClientError::Proof(e.to_string()))?
                .size;
            after = size;
            if size <= until {
                notes.push((size, note));
            }
        }
    }
    Ok(verifier.verify(events.into_iter().map(Ok), None, notes.into_iter().map(Ok)))
}

/// What an inclusion proof established.
#[derive(Debug, Clone)]
pub struct ProvenEvent {
    pub event: proto::AuditEvent,
    pub checkpoint: SignedCheckpoint,
    pub proof_hashes: usize,
}

/// Fetches event `index` with its inclusion proof against the latest checkpoint, and checks
/// both with the pinned key alone.
pub async fn prove_event(
    audit: &mut Audit,
    key: &NoteVerifier,
    index: u64,
) -> Result<ProvenEvent, ClientError> {
    let latest = audit
        .checkpoint(proto::CheckpointRequest {})
        .await?
        .into_inner();
    let signed = checkpoint::open(key, &latest.signed_note)
        .map_err(|e| ClientError::Proof(format!("checkpoint: {e}")))?;
    let response = audit
        .inclusion_proof(proto::InclusionProofRequest {
            index,
            tree_size: signed.size,
        })
        .await?
        .into_inner();
    let event = response
        .event
        .ok_or_else(|| ClientError::Proof("no event in the response".into()))?;
    let proof = hashes(&response.proof)?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&event.canonical),
        index,
        signed.size,
        &proof,
        &signed.root,
    )
    .map_err(|e| ClientError::Proof(format!("event {index}: {e}")))?;
    Ok(ProvenEvent {
        event,
        checkpoint: signed,
        proof_hashes: proof.len(),
    })
}

/// Checks that the node's latest checkpoint extends `old`, with a consistency proof.
pub async fn prove_extends(
    audit: &mut Audit,
    key: &NoteVerifier,
    old: &SignedCheckpoint,
) -> Result<(SignedCheckpoint, usize), ClientError> {
    let latest = audit
        .checkpoint(proto::CheckpointRequest {})
        .await?
        .into_inner();
    let new = checkpoint::open(key, &latest.signed_note)
        .map_err(|e| ClientError::Proof(format!("checkpoint: {e}")))?;
    let response = audit
        .consistency_proof(proto::ConsistencyProofRequest {
            old_size: old.size,
            new_size: new.size,
        })
        .await?
        .into_inner();
    let proof = hashes(&response.proof)?;
    merkle::verify_consistency(old.size, &old.root, new.size, &new.root, &proof).map_err(|e| {
        ClientError::Proof(format!(
            "the log at {} does not extend the checkpoint at {}: {e}",
            new.size, old.size
        ))
    })?;
    Ok((new, proof.len()))
}

fn hashes(raw: &[Vec<u8>]) -> Result<Vec<Hash32>, ClientError> {
    raw.iter()
        .map(|h| {
            h.as_slice()
                .try_into()
                .map_err(|_| ClientError::Proof("a proof hash is not 32 bytes".into()))
        })
        .collect()
}
