//! The peer-facing services: `Federation` (every organisation node), `Index` (the index),
//! `Pseudonyms` (a pseudonym service). The gate has already established which member is
//! calling; handlers convert, delegate, and answer. Malformed requests are refused with the
//! field named and audited here; policy refusals are audited where they are decided.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self, Delivery};
use super::error::ApiError;
use super::gate::Peer;
use super::proto;
use crate::clock::SharedClock;
use crate::directory::Member;
use crate::domain::{Action, Actor, EventDraft, PrincipalId, TransactionId, UnixMillis};
use crate::federation::serve::{PeerHandler, ServeError};
use crate::federation::witness::{MAX_CHECKPOINT_BYTES, MAX_PROOF_HASHES, Witness, WitnessError};
use crate::federation::{Federation, PeerError};
use crate::index::IndexService;
use crate::ledger::Ledger;
use crate::pseudonym::{PseudonymService, ServiceError};

/// The most elements one Evaluate call may carry.
pub const MAX_EVALUATE: usize = crate::pseudonym::MAX_BATCH;

fn peer<T>(request: &Request<T>) -> Result<Member, Status> {
    request
        .extensions()
        .get::<Peer>()
        .map(|p| p.0.clone())
        .ok_or_else(|| Status::unauthenticated("peer: not admitted by the gate"))
}

fn transaction_of<T>(request: &Request<T>) -> TransactionId {
    request
        .metadata()
        .get(super::call::TRANSACTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| TransactionId::parse(s).ok())
        .unwrap_or_default()
}

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::Denied(denial) => denial.into(),
            ServeError::NotTheIndex => ApiError::Policy(e.to_string()),
            ServeError::NotVeiligThuis(_) => ApiError::FailedPrecondition(e.to_string()),
            ServeError::NotSubjectAccess(purpose) => ApiError::invalid(
                "context.purpose",
                format!("subject access is asked for purpose subject_access only, not {purpose}"),
            ),
            ServeError::Search(e) => e.into(),
            ServeError::Index(message) => ApiError::Unavailable(message),
            ServeError::Ledger(e) => e.into(),
            ServeError::Store(e) => e.into(),
        }
    }
}

/// Audits a refusal of a peer's request that no service decided (bad input).
#[derive(Debug, Clone)]
struct PeerRefusals {
    ledger: Arc<Ledger>,
    federation: Arc<Federation>,
}

impl PeerRefusals {
    async fn refuse(
        &self,
        from: &Member,
        transaction: TransactionId,
        action: Action,
        error: ApiError,
    ) -> Status {
        let actor = Actor {
            user: PrincipalId::system("federation"),
            role: None,
            organisation: self.federation.me(),
        };
        let draft = EventDraft::new(transaction, actor, action)
            .counterpart(from.oin)
            .refused(error.audit_reason());
        if let Err(e) = self.ledger.commit(move |txn| txn.audit(draft)).await {
            tracing::warn!(error = %e, "could not audit a refused peer request");
        }
        error.into()
    }
}

impl From<WitnessError> for ApiError {
    fn from(e: WitnessError) -> Self {
        match e {
            WitnessError::BadCheckpoint(problem) => match problem.split_once(": ") {
                Some((field, rest)) => ApiError::invalid(field, rest),
                None => ApiError::invalid("checkpoint", problem),
            },
            WitnessError::OldSizeBeyond { size } => ApiError::invalid(
                "old_size",
                format!("is beyond the checkpoint's tree size {size}"),
            ),
            WitnessError::BadAlert { field, problem } => ApiError::invalid(field, problem),
            WitnessError::NotTheWitness => ApiError::Policy(e.to_string()),
            WitnessError::OldSize { .. } | WitnessError::Fork { .. } => {
                ApiError::FailedPrecondition(e.to_string())
            }
            WitnessError::Ledger(e) => e.into(),
            WitnessError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FederationApi {
    handler: Arc<PeerHandler>,
    witness: Arc<Witness>,
    federation: Arc<Federation>,
    refusals: PeerRefusals,
}

impl FederationApi {
    pub fn new(
        handler: Arc<PeerHandler>,
        witness: Arc<Witness>,
        federation: Arc<Federation>,
        ledger: Arc<Ledger>,
    ) -> FederationApi {
        FederationApi {
            handler,
            witness,
            refusals: PeerRefusals {
                ledger,
                federation: federation.clone(),
            },
            federation,
        }
    }
}

#[tonic::async_trait]
impl proto::federation_server::Federation for FederationApi {
    async fn deliver(
        &self,
        request: Request<proto::DeliverRequest>,
    ) -> Result<Response<proto::DeliverResponse>, Status> {
        let from = peer(&request)?;
        let transaction = transaction_of(&request);
        let (message, transaction, delivery) = match convert::delivery(request.get_ref()) {
            Ok(parsed) => parsed,
            Err(invalid) => {
                let action = match request.get_ref().body {
                    Some(proto::deliver_request::Body::ForkAlert(_)) => Action::ForkAlertReceive,
                    _ => Action::NoticeReceive,
                };
                return Err(self
                    .refusals
                    .refuse(&from, transaction, action, invalid.into())
                    .await);
            }
        };
        let duplicate = match delivery {
            Delivery::Notice(notice) => {
                self.handler
                    .receive_notice(&from, message, transaction, notice)
                    .await
            }
            Delivery::Melding(melding) => {
                self.handler
                    .receive_melding(&from, message, transaction, melding)
                    .await
            }
            Delivery::Fork(fork) => {
                return self
                    .witness
                    .receive_alert(&from, message, transaction, fork)
                    .await
                    .map(|duplicate| Response::new(proto::DeliverResponse { duplicate }))
                    .map_err(|e| Status::from(ApiError::from(e)));
            }
        }
        .map_err(|e| Status::from(ApiError::from(e)))?;
        Ok(Response::new(proto::DeliverResponse { duplicate }))
    }

    async fn fetch_signals(
        &self,
        request: Request<proto::FetchSignalsRequest>,
    ) -> Result<Response<proto::FetchSignalsResponse>, Status> {
        let from = peer(&request)?;
        let transaction = transaction_of(&request);
        let parsed =
            convert::request_context(request.get_ref().context.as_ref()).and_then(|context| {
                let mut wanted = Vec::new();
                for (i, s) in request.get_ref().signals.iter().enumerate() {
                    wanted.push((
                        convert::signal_id(&format!("signals[{i}].signal_ref"), &s.signal_ref)?,
                        convert::pseudonym_bytes(&format!("signals[{i}].subject"), &s.subject)?,
                    ));
                }
                Ok((context, wanted))
            });
        let (context, wanted) = match parsed {
            Ok(parsed) => parsed,
            Err(invalid) => {
                return Err(self
                    .refusals
                    .refuse(&from, transaction, Action::SignalsFetch, invalid.into())
                    .await);
            }
        };
        let signals = self
            .handler
            .fetch_signals(&from, context, wanted)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        Ok(Response::new(proto::FetchSignalsResponse {
            signals: signals.iter().map(convert::disclosed).collect(),
        }))
    }

    async fn directory(
        &self,
        _request: Request<proto::DirectoryRequest>,
    ) -> Result<Response<proto::DirectoryResponse>, Status> {
        Ok(Response::new(proto::DirectoryResponse {
            signed_directory: self.federation.directory_note().to_string(),
        }))
    }

    async fn subject_access(
        &self,
        request: Request<proto::SubjectAccessRequest>,
    ) -> Result<Response<proto::SubjectAccessResponse>, Status> {
        let from = peer(&request)?;
        let transaction = transaction_of(&request);
        let raw = request.get_ref();
        let parsed = convert::request_context(raw.context.as_ref())
            .and_then(|context| Ok((context, convert::pseudonym_bytes("subject", &raw.subject)?)));
        let (context, subject) = match parsed {
            Ok(parsed) => parsed,
            Err(invalid) => {
                return Err(self
                    .refusals
                    .refuse(
                        &from,
                        transaction,
                        Action::SubjectAccessFetch,
                        invalid.into(),
                    )
                    .await);
            }
        };
        let answer = self
            .handler
            .subject_access(&from, context, subject)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        Ok(Response::new(proto::SubjectAccessResponse {
            events: answer.events.iter().map(convert::accessed_event).collect(),
            truncated: answer.truncated,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct IndexApi {
    index: Arc<IndexService>,
    federation: Arc<Federation>,
    clock: SharedClock,
    refusals: PeerRefusals,
}

impl IndexApi {
    pub fn new(
        index: Arc<IndexService>,
        federation: Arc<Federation>,
        ledger: Arc<Ledger>,
        clock: SharedClock,
    ) -> IndexApi {
        IndexApi {
            index,
            refusals: PeerRefusals {
                ledger,
                federation: federation.clone(),
            },
            federation,
            clock,
        }
    }

    async fn context<T>(
        &self,
        request: &Request<T>,
        raw: Option<&proto::RequestContext>,
        action: Action,
    ) -> Result<(Member, crate::domain::RequestContext), Status> {
        let from = peer(request)?;
        match convert::request_context(raw) {
            Ok(context) => Ok((from, context)),
            Err(invalid) => Err(self
                .refusals
                .refuse(&from, transaction_of(request), action, invalid.into())
                .await),
        }
    }

    /// The caller, its request's context and the person the request is about (`person`), or
    /// the audited refusal of whichever is malformed.
    async fn about_person<T>(
        &self,
        request: &Request<T>,
        raw_context: Option<&proto::RequestContext>,
        raw_person: &[u8],
        action: Action,
    ) -> Result<
        (
            Member,
            crate::domain::RequestContext,
            crate::domain::Pseudonym,
        ),
        Status,
    > {
        let (from, context) = self.context(request, raw_context, action).await?;
        match convert::pseudonym_bytes("person", raw_person) {
            Ok(person) => Ok((from, context, person)),
            Err(invalid) => Err(self
                .refusals
                .refuse(&from, context.transaction, action, invalid.into())
                .await),
        }
    }
}

#[tonic::async_trait]
impl proto::index_server::Index for IndexApi {
    async fn publish(
        &self,
        request: Request<proto::PublishRequest>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        let from = peer(&request)?;
        let publication = match convert::publication(request.get_ref()) {
            Ok(p) => p,
            Err(invalid) => {
                return Err(self
                    .refusals
                    .refuse(
                        &from,
                        transaction_of(&request),
                        Action::PointerPublish,
                        invalid.into(),
                    )
                    .await);
            }
        };
        let duplicate = self
            .index
            .publish(&from, publication)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        Ok(Response::new(proto::PublishResponse { duplicate }))
    }

    async fn retract(
        &self,
        request: Request<proto::RetractRequest>,
    ) -> Result<Response<proto::RetractResponse>, Status> {
        let from = peer(&request)?;
        let raw = request.get_ref();
        let parsed = crate::domain::MessageId::parse(&raw.message_id)
            .map_err(|e| crate::domain::Invalid::new("message_id", e))
            .and_then(|m| {
                Ok((
                    m,
                    TransactionId::parse(&raw.transaction_id)
                        .map_err(|e| crate::domain::Invalid::new("transaction_id", e))?,
                    convert::signal_id("signal_ref", &raw.signal_ref)?,
                    convert::retract_reason(raw.reason)?,
                ))
            });
        let (message, transaction, signal, reason) = match parsed {
            Ok(p) => p,
            Err(invalid) => {
                return Err(self
                    .refusals
                    .refuse(
                        &from,
                        transaction_of(&request),
                        Action::PointerRetract,
                        invalid.into(),
                    )
                    .await);
            }
        };
        let duplicate = self
            .index
            .retract(
                &from,
                message,
                transaction,
                signal,
                reason,
                raw.withdrawn_at_unix_ms.map(UnixMillis),
            )
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        Ok(Response::new(proto::RetractResponse { duplicate }))
    }

    async fn lookup(
        &self,
        request: Request<proto::LookupRequest>,
    ) -> Result<Response<proto::LookupResponse>, Status> {
        let raw = request.get_ref();
        let (from, context, person) = self
            .about_person(
                &request,
                raw.context.as_ref(),
                &raw.person,
                Action::PointerLookup,
            )
            .await?;
        let lookup = self
            .index
            .lookup(&from, context, person, request.get_ref().household)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        let directory = self.federation.directory();
        Ok(Response::new(convert::lookup(
            &lookup,
            &directory,
            self.clock.now(),
        )))
    }

    async fn claim_regie(
        &self,
        request: Request<proto::RegieRequest>,
    ) -> Result<Response<proto::RegieResponse>, Status> {
        self.regie(request, true).await
    }

    async fn release_regie(
        &self,
        request: Request<proto::RegieRequest>,
    ) -> Result<Response<proto::RegieResponse>, Status> {
        self.regie(request, false).await
    }

    async fn start_waakvlam(
        &self,
        request: Request<proto::StartWaakvlamRequest>,
    ) -> Result<Response<proto::StartWaakvlamResponse>, Status> {
        let raw = request.get_ref();
        let (from, context, person) = self
            .about_person(
                &request,
                raw.context.as_ref(),
                &raw.person,
                Action::WaakvlamStart,
            )
            .await?;
        let entry = self
            .index
            .start_waakvlam(&from, context, person, request.get_ref().days)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        Ok(Response::new(proto::StartWaakvlamResponse {
            entry: Some(convert::waakvlam(&entry, self.clock.now())),
        }))
    }

    async fn list_waakvlam(
        &self,
        request: Request<proto::ListWaakvlamRequest>,
    ) -> Result<Response<proto::ListWaakvlamResponse>, Status> {
        let (from, context) = self
            .context(
                &request,
                request.get_ref().context.as_ref(),
                Action::WaakvlamList,
            )
            .await?;
        let entries = self
            .index
            .list_waakvlam(&from, context)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        let now = self.clock.now();
        Ok(Response::new(proto::ListWaakvlamResponse {
            entries: entries.iter().map(|w| convert::waakvlam(w, now)).collect(),
        }))
    }
}

impl IndexApi {
    async fn regie(
        &self,
        request: Request<proto::RegieRequest>,
        claim: bool,
    ) -> Result<Response<proto::RegieResponse>, Status> {
        let action = if claim {
            Action::RegieClaim
        } else {
            Action::RegieRelease
        };
        let raw = request.get_ref();
        let (from, context, person) = self
            .about_person(&request, raw.context.as_ref(), &raw.person, action)
            .await?;
        let regie = self
            .index
            .regie(&from, context, person, claim)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        let directory = self.federation.directory();
        Ok(Response::new(proto::RegieResponse {
            regie: regie
                .map(|r| convert::regie(&r, directory.member(&r.holder).map(|m| m.name.as_str()))),
        }))
    }
}

#[derive(Debug, Clone)]
pub struct PseudonymsApi {
    service: Arc<PseudonymService>,
    refusals: PeerRefusals,
}

impl PseudonymsApi {
    pub fn new(
        service: Arc<PseudonymService>,
        federation: Arc<Federation>,
        ledger: Arc<Ledger>,
    ) -> PseudonymsApi {
        PseudonymsApi {
            service,
            refusals: PeerRefusals { ledger, federation },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::RateLimited { .. } => ApiError::ResourceExhausted(e.to_string()),
            ServiceError::NotAChainMember { .. }
            | ServiceError::ForwardedToFirst
            | ServiceError::OnBehalfOfAService { .. }
            | ServiceError::NotThePrevious { .. }
            | ServiceError::ServiceAsOrganisation => ApiError::Policy(e.to_string()),
            ServiceError::OnBehalfOfMissing => ApiError::invalid(
                "on_behalf_of",
                "required from the service before this one in the chain",
            ),
            ServiceError::UnknownOrganisation => {
                ApiError::invalid("on_behalf_of", "names no member of the directory")
            }
            ServiceError::NotInChain => ApiError::FailedPrecondition(e.to_string()),
            ServiceError::NotTheIndex => ApiError::Policy(e.to_string()),
            ServiceError::Epoch(crate::pseudonym::EpochError::Zero) => {
                ApiError::invalid("epoch", "must be 1 or more")
            }
            ServiceError::Epoch(e @ crate::pseudonym::EpochError::File { .. }) => {
                ApiError::Unavailable(e.to_string())
            }
            ServiceError::Epoch(e) => ApiError::FailedPrecondition(e.to_string()),
            ServiceError::Oprf(e) => ApiError::invalid("blinded", e),
            // The next service's own limit reaches the asker as a limit, not an outage.
            ServiceError::Next(PeerError::Refused { code, message, .. })
                if code == "resource_exhausted" =>
            {
                ApiError::ResourceExhausted(message)
            }
            ServiceError::Next(e) => ApiError::Unavailable(e.to_string()),
            ServiceError::Ledger(e) => e.into(),
        }
    }
}

#[tonic::async_trait]
impl proto::pseudonyms_server::Pseudonyms for PseudonymsApi {
    async fn evaluate(
        &self,
        request: Request<proto::EvaluateRequest>,
    ) -> Result<Response<proto::EvaluateResponse>, Status> {
        let from = peer(&request)?;
        let transaction = transaction_of(&request);
        let blinded = &request.get_ref().blinded;
        if blinded.is_empty() || blinded.len() > MAX_EVALUATE {
            let error =
                ApiError::invalid("blinded", format!("must hold 1 to {MAX_EVALUATE} elements"));
            return Err(self
                .refusals
                .refuse(&from, transaction, Action::PseudonymEvaluate, error)
                .await);
        }
        let on_behalf_of = match request.get_ref().on_behalf_of.as_str() {
            "" => None,
            raw => match crate::domain::Oin::parse(raw) {
                Ok(oin) => Some(oin),
                Err(e) => {
                    let error = ApiError::invalid("on_behalf_of", e);
                    return Err(self
                        .refusals
                        .refuse(&from, transaction, Action::PseudonymEvaluate, error)
                        .await);
                }
            },
        };
        let evaluated = match self
            .service
            .evaluate(&from, on_behalf_of, blinded.clone())
            .await
        {
            Ok(evaluated) => evaluated,
            Err(e) => {
                let error = ApiError::from(e);
                return Err(self
                    .refusals
                    .refuse(&from, transaction, Action::PseudonymEvaluate, error)
                    .await);
            }
        };
        Ok(Response::new(proto::EvaluateResponse { evaluated }))
    }

    async fn index_key(
        &self,
        request: Request<proto::IndexKeyRequest>,
    ) -> Result<Response<proto::IndexKeyResponse>, Status> {
        let from = peer(&request)?;
        let transaction = transaction_of(&request);
        match self
            .service
            .index_key(
                &from,
                transaction,
                request.get_ref().epoch,
                request.get_ref().start,
            )
            .await
        {
            Ok(share) => Ok(Response::new(proto::IndexKeyResponse {
                share: share.to_vec(),
            })),
            Err(e) => Err(self
                .refusals
                .refuse(&from, transaction, Action::IndexKeyShare, e.into())
                .await),
        }
    }

    async fn retire_index_epochs(
        &self,
        request: Request<proto::RetireIndexEpochsRequest>,
    ) -> Result<Response<proto::RetireIndexEpochsResponse>, Status> {
        let from = peer(&request)?;
        let transaction = transaction_of(&request);
        match self
            .service
            .retire_index_epochs(&from, transaction, request.get_ref().before)
            .await
        {
            Ok(oldest) => Ok(Response::new(proto::RetireIndexEpochsResponse { oldest })),
            Err(e) => Err(self
                .refusals
                .refuse(&from, transaction, Action::IndexEpochRetire, e.into())
                .await),
        }
    }
}

/// `kring.v1.Witness`: served by every organisation node, for every other member's log.
#[derive(Debug, Clone)]
pub struct WitnessApi {
    witness: Arc<Witness>,
    refusals: PeerRefusals,
}

impl WitnessApi {
    pub fn new(
        witness: Arc<Witness>,
        federation: Arc<Federation>,
        ledger: Arc<Ledger>,
    ) -> WitnessApi {
        WitnessApi {
            witness,
            refusals: PeerRefusals { ledger, federation },
        }
    }
}

#[tonic::async_trait]
impl proto::witness_server::Witness for WitnessApi {
    async fn add_checkpoint(
        &self,
        request: Request<proto::AddCheckpointRequest>,
    ) -> Result<Response<proto::AddCheckpointResponse>, Status> {
        let from = peer(&request)?;
        let transaction = transaction_of(&request);
        let raw = request.into_inner();
        let parsed = (|| {
            if raw.consistency_proof.len() > MAX_PROOF_HASHES {
                return Err(ApiError::invalid(
                    "consistency_proof",
                    format!("holds more than {MAX_PROOF_HASHES} hashes"),
                ));
            }
            let mut proof = Vec::with_capacity(raw.consistency_proof.len());
            for (i, hash) in raw.consistency_proof.iter().enumerate() {
                proof.push(<[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
                    ApiError::invalid(format!("consistency_proof[{i}]"), "must be 32 bytes")
                })?);
            }
            if raw.checkpoint.is_empty() {
                return Err(ApiError::invalid("checkpoint", "is required"));
            }
            if raw.checkpoint.len() > MAX_CHECKPOINT_BYTES {
                return Err(ApiError::invalid(
                    "checkpoint",
                    format!("is longer than {MAX_CHECKPOINT_BYTES} bytes"),
                ));
            }
            Ok(proof)
        })();
        let proof = match parsed {
            Ok(proof) => proof,
            Err(error) => {
                return Err(self
                    .refusals
                    .refuse(&from, transaction, Action::WitnessCosign, error)
                    .await);
            }
        };
        let cosignature = self
            .witness
            .add_checkpoint(&from, transaction, raw.old_size, proof, raw.checkpoint)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        Ok(Response::new(proto::AddCheckpointResponse { cosignature }))
    }
}
