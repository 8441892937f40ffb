//! `kring.v1.Audit`, for privacy officers. Every review is itself audited before it answers.
//! Proofs and exports are bounded by the durable log, so nothing served can be lost later.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::call::{Call, Calls};
use super::convert;
use super::error::ApiError;
use super::proto;
use super::signals::ZeroizeBsns;
use crate::access::{AccessError, AccessReport, AccessService};
use crate::audit::verify::{self, Verifier};
use crate::audit::{NoteVerifier, event, merkle, search};
use crate::auth::Capability;
use crate::domain::{Action, EventDraft, Pseudonym, Purpose, UnixMillis, parse_bsn};
use crate::domain::{BreakGlassItem, Review};
use crate::ledger::{Ledger, store_hashes};
use crate::signals::SignalService;
use crate::store::Change;

const EXPORT_CHUNK: u64 = 256;
const CHECKPOINT_PAGE: usize = 1000;

#[derive(Debug, Clone)]
pub struct AuditApi {
    calls: Calls,
    signals: Arc<SignalService>,
    access: Arc<AccessService>,
    own_key: NoteVerifier,
    /// This node's index role, if it has one (key rotation).
    index: Option<Arc<crate::index::IndexService>>,
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Denied(denial) => denial.into(),
            AccessError::Signal(e) => e.into(),
            AccessError::Ledger(e) => e.into(),
            AccessError::Search(e) => e.into(),
            AccessError::Store(e) => e.into(),
            AccessError::Index(message) => ApiError::Unavailable(message),
            AccessError::Recorded(inner) => ApiError::Recorded(Box::new((*inner).into())),
        }
    }
}

fn access_report(report: &AccessReport, transaction_id: String) -> proto::SubjectAccessReport {
    proto::SubjectAccessReport {
        events: report.events.iter().map(convert::accessed_event).collect(),
        sources: report
            .sources
            .iter()
            .map(|s| proto::SubjectAccessSource {
                oin: s.oin.to_string(),
                name: s.name.clone(),
                org_type: s.org_type.map(|t| t.to_string()).unwrap_or_default(),
                answered: s.answer.is_ok(),
                reason: s.answer.as_ref().err().cloned().unwrap_or_default(),
                events: s
                    .answer
                    .as_ref()
                    .map_or(0, |c| u32::try_from(c.events).unwrap_or(u32::MAX)),
                truncated: s.answer.as_ref().is_ok_and(|c| c.truncated),
            })
            .collect(),
        subject_pseudonym: report.subject.to_string(),
        generated_at_unix_ms: report.generated_at.0,
        transaction_id,
    }
}

impl AuditApi {
    pub fn new(
        calls: Calls,
        signals: Arc<SignalService>,
        access: Arc<AccessService>,
        own_key: NoteVerifier,
    ) -> AuditApi {
        AuditApi {
            calls,
            signals,
            access,
            own_key,
            index: None,
        }
    }

    fn item(&self, item: &BreakGlassItem) -> proto::BreakGlassItem {
        let name = self
            .signals
            .federation()
            .and_then(|f| {
                f.directory()
                    .member(&item.requester)
                    .map(|m| m.name.clone())
            })
            .unwrap_or_default();
        proto::BreakGlassItem {
            id: item.id.to_string(),
            transaction_id: item.transaction.to_string(),
            at_unix_ms: item.at.0,
            requester_oin: item.requester.to_string(),
            requester_name: name,
            requester_user: item.requester_user.clone(),
            requester_role: item
                .requester_role
                .map_or(0, |r| convert::role_to_proto(r) as i32),
            reason: convert::break_glass_to_proto(item.reason) as i32,
            signal_ids: item.signals.iter().map(ToString::to_string).collect(),
            outcome: item
                .review
                .as_ref()
                .map_or(0, |r| convert::review_outcome_to_proto(r.outcome) as i32),
            review_reason: item
                .review
                .as_ref()
                .map_or(0, |r| convert::review_reason_to_proto(r.reason) as i32),
            reviewed_by: item
                .review
                .as_ref()
                .map(|r| r.by.to_string())
                .unwrap_or_default(),
            reviewed_at_unix_ms: item.review.as_ref().map_or(0, |r| r.at.0),
        }
    }

    fn ledger(&self) -> &Arc<Ledger> {
        self.calls.ledger()
    }

    /// Serves key rotation too: this node is the federation's index.
    pub fn with_index(mut self, index: Option<Arc<crate::index::IndexService>>) -> AuditApi {
        self.index = index;
        self
    }

    /// An administrator's call about the index key.
    async fn begin_index_key(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Call, Status> {
        self.calls
            .begin(metadata, Action::IndexRekey, Capability::RotateIndexKey)
            .await
    }

    fn the_index(&self) -> Result<&Arc<crate::index::IndexService>, ApiError> {
        self.index.as_ref().ok_or_else(|| {
            ApiError::FailedPrecondition(
                "this node is not the federation's index; rotate the index key there".into(),
            )
        })
    }

    async fn begin(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        action: Action,
    ) -> Result<Call, Status> {
        self.calls
            .begin(metadata, action, Capability::ReviewAudit)
            .await
    }

    /// Records the review before its result goes out.
    async fn record(
        &self,
        call: &Call,
        subjects: Vec<Pseudonym>,
        object: String,
        reason: Option<String>,
    ) -> Result<(), ApiError> {
        let mut draft = EventDraft::new(
            call.caller.transaction,
            call.caller.actor.clone(),
            call.action,
        )
        .purpose(
            Purpose::AuditReview,
            Purpose::AuditReview.local_legal_basis(),
        )
        .subjects(subjects)
        .object(object);
        draft.reason = reason;
        self.ledger().commit(move |txn| txn.audit(draft)).await?;
        Ok(())
    }

    /// Resolves "0 means the latest durable checkpoint" and refuses sizes beyond it.
    fn tree_size(&self, field: &str, requested: u64) -> Result<u64, ApiError> {
        let durable = self.ledger().durable();
        let checkpointed = durable.checkpoint.as_ref().map_or(0, |c| c.size);
        match requested {
            0 if checkpointed == 0 => Err(ApiError::FailedPrecondition(format!(
                "{field}: no checkpoint has been issued yet"
            ))),
            0 => Ok(checkpointed),
            n if n > durable.size => Err(ApiError::invalid(
                field,
                format!("is beyond the durable log of {} events", durable.size),
            )),
            n => Ok(n),
        }
    }

    fn note_at(&self, size: u64) -> Result<String, ApiError> {
        Ok(self
            .ledger()
            .store()
            .checkpoints(size.saturating_sub(1))
            .next()
            .transpose()?
            .filter(|(at, _)| *at == size)
            .map(|(_, note)| note)
            .unwrap_or_default())
    }
}

impl AuditApi {
    fn cosigned(&self, requested: u64) -> Result<proto::CosignedCheckpointResponse, ApiError> {
        let store = self.ledger().store();
        let size = match requested {
            0 => store.latest_cosigned()?.ok_or_else(|| {
                ApiError::FailedPrecondition(
                    "tree_size: no witness has cosigned a checkpoint of this log yet".into(),
                )
            })?,
            n => n,
        };
        let note = self.note_at(size)?;
        if note.is_empty() {
            return Err(ApiError::NotFound(format!(
                "tree_size: no checkpoint was issued at {size}"
            )));
        }
        let cosignatures = store.cosignatures(size)?;
        if cosignatures.is_empty() {
            return Err(ApiError::NotFound(format!(
                "tree_size: no witness has cosigned the checkpoint at {size}"
            )));
        }
        Ok(proto::CosignedCheckpointResponse {
            cosigned_note: crate::audit::cosignature::with_cosignatures(
                &note,
                cosignatures.iter().map(|(_, line)| line.as_str()),
            ),
            tree_size: size,
            witness_oins: cosignatures.iter().map(|(w, _)| w.to_string()).collect(),
            transaction_id: String::new(),
        })
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<proto::ExportChunk, Status>> + Send>>;

#[tonic::async_trait]
impl proto::audit_server::Audit for AuditApi {
    async fn search(
        &self,
        request: Request<proto::AuditSearchRequest>,
    ) -> Result<Response<proto::AuditSearchResponse>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let call = self.begin(&metadata, Action::AuditSearch).await?;
        let parsed = convert::search(&body);
        body.zeroize_bsns();
        let result = async {
            let (subject_bsn, mut query) = parsed?;
            if let Some(bsn) = subject_bsn {
                query.subject = Some(self.signals.local_pseudonyms(vec![bsn]).await?[0]);
            }
            let store = self.ledger().store().clone();
            let size = store.audit_size()?;
            let searched = query.clone();
            let page = tokio::task::spawn_blocking(move || {
                search::search(store.as_ref(), size, &searched)
            })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
            self.record(
                &call,
                query.subject.into_iter().collect(),
                format!("events:{}", page.events.len()),
                None,
            )
            .await?;
            Ok(proto::AuditSearchResponse {
                events: page
                    .events
                    .into_iter()
                    .map(|(event, bytes)| convert::audit_event(&event, bytes))
                    .collect(),
                next_page_token: page.next.map(|n| n.to_string()).unwrap_or_default(),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn checkpoint(
        &self,
        request: Request<proto::CheckpointRequest>,
    ) -> Result<Response<proto::CheckpointResponse>, Status> {
        let call = self
            .begin(request.metadata(), Action::AuditCheckpoint)
            .await?;
        let result = async {
            self.record(&call, Vec::new(), "checkpoint:latest".into(), None)
                .await?;
            // A fresh checkpoint that covers everything so far, this request included.
            self.ledger().checkpoint().await?;
            let head = self.ledger().durable();
            let checkpoint = head.checkpoint.ok_or_else(|| {
                ApiError::FailedPrecondition("no checkpoint has been issued yet".into())
            })?;
            Ok(proto::CheckpointResponse {
                signed_note: checkpoint.note,
                tree_size: checkpoint.size,
                root_hash: checkpoint.root.to_vec(),
                verifier_key: self.ledger().verifier_key().to_owned(),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn cosigned_checkpoint(
        &self,
        request: Request<proto::CosignedCheckpointRequest>,
    ) -> Result<Response<proto::CosignedCheckpointResponse>, Status> {
        let call = self
            .begin(request.metadata(), Action::AuditCheckpoint)
            .await?;
        let result = async {
            let mut response = self.cosigned(request.get_ref().tree_size)?;
            self.record(
                &call,
                Vec::new(),
                format!("checkpoint:{}:cosigned", response.tree_size),
                None,
            )
            .await?;
            response.transaction_id = call.transaction_id();
            Ok(response)
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn rotate_index_key(
        &self,
        request: Request<proto::RotateIndexKeyRequest>,
    ) -> Result<Response<proto::IndexKeyStatus>, Status> {
        let call = self.begin_index_key(request.metadata()).await?;
        let reason = request.get_ref().reason.trim();
        let result = async {
            if reason.is_empty() || reason.len() > 200 {
                return Err(ApiError::invalid(
                    "reason",
                    "is required (1 to 200 characters): why the key is rotated",
                ));
            }
            let index = self.the_index()?;
            let event = EventDraft::new(
                call.caller.transaction,
                call.caller.actor.clone(),
                Action::IndexRekey,
            )
            .reason(reason);
            let status = index.rotate(event).await?;
            Ok(key_status(status, &call))
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn get_index_key_status(
        &self,
        request: Request<proto::IndexKeyStatusRequest>,
    ) -> Result<Response<proto::IndexKeyStatus>, Status> {
        let call = self.begin_index_key(request.metadata()).await?;
        let result = async {
            let status = self.the_index()?.key_status()?;
            Ok(key_status(status, &call))
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn list_forks(
        &self,
        request: Request<proto::ListForksRequest>,
    ) -> Result<Response<proto::ListForksResponse>, Status> {
        let call = self.begin(request.metadata(), Action::AuditForks).await?;
        let result = async {
            let store = self.ledger().store();
            let forks = store.forks()?;
            let now = self.ledger().now();
            let witnessed = store
                .witnessed_logs()?
                .into_iter()
                .map(|(log, note, heard)| {
                    let tree_size = crate::audit::checkpoint::parse_unverified(&note)
                        .map(|c| c.size)
                        .unwrap_or(0);
                    // A log witnessed before its pushes were timed counts from now on.
                    let heard = heard.unwrap_or(UnixMillis(0));
                    proto::WitnessedLog {
                        log_oin: log.to_string(),
                        tree_size,
                        last_heard_unix_ms: heard.0,
                        silent: heard.0 > 0
                            && now.0 - heard.0 > crate::federation::witness::SILENT_AFTER_MILLIS,
                    }
                })
                .collect();
            self.record(&call, Vec::new(), "forks".into(), None).await?;
            Ok(proto::ListForksResponse {
                forks: forks.iter().map(convert::fork).collect(),
                transaction_id: call.transaction_id(),
                witnessed,
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn list_checkpoints(
        &self,
        request: Request<proto::ListCheckpointsRequest>,
    ) -> Result<Response<proto::ListCheckpointsResponse>, Status> {
        let call = self
            .begin(request.metadata(), Action::AuditCheckpoint)
            .await?;
        let result = async {
            let request = request.get_ref();
            let page = match request.page_size as usize {
                0 => CHECKPOINT_PAGE,
                n if n <= CHECKPOINT_PAGE => n,
                _ => {
                    return Err(ApiError::invalid(
                        "page_size",
                        format!("must be at most {CHECKPOINT_PAGE}"),
                    ));
                }
            };
            let durable = self.ledger().durable().size;
            let notes = self
                .ledger()
                .store()
                .checkpoints(request.after_tree_size)
                .take(page)
                .filter(|item| item.as_ref().map_or(true, |(size, _)| *size <= durable))
                .map(|item| item.map(|(_, note)| note))
                .collect::<Result<Vec<_>, _>>()?;
            self.record(
                &call,
                Vec::new(),
                format!("checkpoints:after:{}", request.after_tree_size),
                None,
            )
            .await?;
            Ok(proto::ListCheckpointsResponse {
                signed_notes: notes,
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn inclusion_proof(
        &self,
        request: Request<proto::InclusionProofRequest>,
    ) -> Result<Response<proto::InclusionProofResponse>, Status> {
        let call = self.begin(request.metadata(), Action::AuditProof).await?;
        let result = async {
            let request = request.get_ref();
            let size = self.tree_size("tree_size", request.tree_size)?;
            if request.index >= size {
                return Err(ApiError::invalid(
                    "index",
                    format!("must be below the tree size {size}"),
                ));
            }
            let store = self.ledger().store();
            let proof = merkle::inclusion_proof(request.index, size, &store_hashes(store.as_ref()))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let bytes = store
                .audit_event(request.index)?
                .ok_or_else(|| ApiError::Internal(format!("event {} missing", request.index)))?;
            let event = event::decode(&bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
            self.record(
                &call,
                event.subjects.clone(),
                format!("event:{}", request.index),
                None,
            )
            .await?;
            Ok(proto::InclusionProofResponse {
                event: Some(convert::audit_event(&event, bytes)),
                tree_size: size,
                proof: proof.iter().map(|h| h.to_vec()).collect(),
                signed_note: self.note_at(size)?,
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn consistency_proof(
        &self,
        request: Request<proto::ConsistencyProofRequest>,
    ) -> Result<Response<proto::ConsistencyProofResponse>, Status> {
        let call = self.begin(request.metadata(), Action::AuditProof).await?;
        let result = async {
            let request = request.get_ref();
            let new_size = self.tree_size("new_size", request.new_size)?;
            if request.old_size > new_size {
                return Err(ApiError::invalid(
                    "old_size",
                    format!("must not exceed the new size {new_size}"),
                ));
            }
            let store = self.ledger().store();
            let proof = merkle::consistency_proof(
                request.old_size,
                new_size,
                &store_hashes(store.as_ref()),
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?;
            self.record(
                &call,
                Vec::new(),
                format!("consistency:{}..{}", request.old_size, new_size),
                None,
            )
            .await?;
            Ok(proto::ConsistencyProofResponse {
                old_size: request.old_size,
                new_size,
                proof: proof.iter().map(|h| h.to_vec()).collect(),
                old_signed_note: self.note_at(request.old_size)?,
                new_signed_note: self.note_at(new_size)?,
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn verify(
        &self,
        request: Request<proto::VerifyRequest>,
    ) -> Result<Response<proto::VerifyResponse>, Status> {
        let call = self.begin(request.metadata(), Action::AuditVerify).await?;
        let result = async {
            let store = self.ledger().store().clone();
            let size = self.ledger().durable().size;
            let verifier =
                Verifier::new(Some(self.own_key.clone())).expect_origin(self.ledger().origin());
            let report = tokio::task::spawn_blocking(move || {
                verify::verify_store(store.as_ref(), &verifier, Some(size))
            })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
            let problem = report.problem.as_ref().map(ToString::to_string);
            self.record(
                &call,
                Vec::new(),
                format!("events:0..{}", report.events),
                Some(problem.clone().unwrap_or_else(|| "verified".into())),
            )
            .await?;
            Ok(proto::VerifyResponse {
                ok: report.ok(),
                events_checked: report.events,
                checkpoints_checked: report.checkpoints,
                problem: problem.unwrap_or_default(),
                root_hash: report.root.to_vec(),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    type ExportStream = ExportStream;

    async fn export(
        &self,
        request: Request<proto::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let call = self.begin(request.metadata(), Action::AuditExport).await?;
        let result = async {
            let request = request.get_ref();
            let durable = self.ledger().durable().size;
            let until = match request.until_index {
                0 => durable,
                n if n <= durable => n,
                _ => {
                    return Err(ApiError::invalid(
                        "until_index",
                        format!("is beyond the durable log of {durable} events"),
                    ));
                }
            };
            if request.from_index > until {
                return Err(ApiError::invalid(
                    "from_index",
                    format!("must not exceed until_index {until}"),
                ));
            }
            let from = request.from_index;
            self.record(&call, Vec::new(), format!("events:{from}..{until}"), None)
                .await?;
            let store = self.ledger().store().clone();
            let (sender, receiver) = tokio::sync::mpsc::channel(4);
            tokio::task::spawn_blocking(move || {
                let mut at = from;
                while at < until {
                    let end = (at + EXPORT_CHUNK).min(until);
                    let chunk: Result<Vec<_>, Status> = store
                        .audit_events(at, end)
                        .map(|item| {
                            let (_, bytes) = item.map_err(|e| Status::internal(e.to_string()))?;
                            let event = event::decode(&bytes)
                                .map_err(|e| Status::internal(e.to_string()))?;
                            Ok(convert::audit_event(&event, bytes))
                        })
                        .collect();
                    let failed = chunk.is_err();
                    let message = chunk.map(|events| proto::ExportChunk { events });
                    if sender.blocking_send(message).is_err() || failed {
                        return;
                    }
                    at = end;
                }
            });
            let stream: ExportStream =
                Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver));
            Ok(stream)
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn break_glass_queue(
        &self,
        request: Request<proto::BreakGlassQueueRequest>,
    ) -> Result<Response<proto::BreakGlassQueueResponse>, Status> {
        let call = self
            .begin(request.metadata(), Action::AuditBreakGlassQueue)
            .await?;
        let result = async {
            let include_reviewed = request.get_ref().include_reviewed;
            let items: Vec<BreakGlassItem> = self
                .ledger()
                .store()
                .break_glass_items()?
                .into_iter()
                .filter(|item| include_reviewed || item.review.is_none())
                .collect();
            self.record(
                &call,
                Vec::new(),
                format!("break_glass:{}", items.len()),
                None,
            )
            .await?;
            Ok(proto::BreakGlassQueueResponse {
                items: items.iter().map(|i| self.item(i)).collect(),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn review_break_glass(
        &self,
        request: Request<proto::ReviewBreakGlassRequest>,
    ) -> Result<Response<proto::ReviewBreakGlassResponse>, Status> {
        let call = self
            .begin(request.metadata(), Action::AuditBreakGlassReview)
            .await?;
        let result = async {
            let (id, outcome, reason) = convert::review(request.get_ref())?;
            let reviewer = call.caller.clone();
            let reviewed = self
                .ledger()
                .commit(move |txn| -> Result<BreakGlassItem, ApiError> {
                    let mut item = txn
                        .store()
                        .break_glass_items()?
                        .into_iter()
                        .find(|i| i.id == id)
                        .ok_or_else(|| {
                            ApiError::NotFound(format!("id: no break-glass item {id}"))
                        })?;
                    if item.review.is_some() {
                        return Err(ApiError::FailedPrecondition(format!(
                            "id: break-glass item {id} was reviewed already"
                        )));
                    }
                    // A signal that is gone has no persons to name; one that does not read
                    // fails the review rather than leaving them out of its audit event.
                    let mut subjects: Vec<Pseudonym> = Vec::new();
                    for signal in &item.signals {
                        if let Some(signal) = txn.store().signal(signal)? {
                            subjects.extend(signal.persons());
                        }
                    }
                    item.review = Some(Review {
                        outcome,
                        reason,
                        by: reviewer.actor.user.clone(),
                        at: txn.now(),
                    });
                    txn.change(Change::PutBreakGlass(item.clone()));
                    txn.audit(
                        EventDraft::new(
                            reviewer.transaction,
                            reviewer.actor.clone(),
                            Action::AuditBreakGlassReview,
                        )
                        .purpose(
                            Purpose::AuditReview,
                            Purpose::AuditReview.local_legal_basis(),
                        )
                        .subjects(subjects)
                        .object(format!("break_glass:{id} requester:{}", item.requester))
                        .reason(format!("{outcome}: {reason}")),
                    );
                    Ok(item)
                })
                .await??;
            Ok(proto::ReviewBreakGlassResponse {
                item: Some(self.item(&reviewed)),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn subject_access(
        &self,
        request: Request<proto::SubjectAccessLocalRequest>,
    ) -> Result<Response<proto::SubjectAccessReport>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let call = self
            .calls
            .begin(&metadata, Action::SubjectAccess, Capability::ReviewAudit)
            .await?;
        // The purpose first: a request that names none, or another, is refused before the
        // BSN is even looked at.
        let parsed = convert::required_purpose("purpose", body.purpose)
            .and_then(|purpose| {
                if purpose == Purpose::SubjectAccess {
                    Ok(())
                } else {
                    Err(crate::domain::Invalid::new(
                        "purpose",
                        format!("must be subject_access, not {purpose}"),
                    ))
                }
            })
            .and_then(|()| parse_bsn("subject_bsn", &body.subject_bsn));
        zeroize::Zeroize::zeroize(&mut body.subject_bsn);
        let result = async {
            let bsn = parsed?;
            let report = self.access.subject_access(&call.caller, bsn).await?;
            Ok::<_, ApiError>(access_report(&report, call.transaction_id()))
        }
        .await;
        self.calls.finish(&call, result).await
    }
}

fn key_status(status: crate::index::IndexKeyStatus, call: &Call) -> proto::IndexKeyStatus {
    proto::IndexKeyStatus {
        epoch: status.epochs.current,
        next_epoch: status.epochs.next.unwrap_or(0),
        persons_left: status.left,
        persons_moved: status.moved,
        transaction_id: call.transaction_id(),
    }
}
