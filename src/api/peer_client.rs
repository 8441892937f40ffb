//! [`Peers`] over gRPC: every call goes through a channel that `Federation` pinned to the
//! peer's certificate in the directory, carries the transaction id, and maps the answer's
//! status to "try again later" (unavailable) or "refused" (retrying changes nothing).

use std::sync::Arc;

use async_trait::async_trait;
use tonic::{Code, Request, Status};

use super::call::TRANSACTION_HEADER;
use super::code_name;
use super::convert;
use super::proto;
use super::proto::federation_client::FederationClient;
use super::proto::index_client::IndexClient;
use super::proto::pseudonyms_client::PseudonymsClient;
use super::proto::witness_client::WitnessClient;
use crate::domain::{
    IndexNotice, Lookup, Oin, OutboxBody, OutboxMessage, Pseudonym, Regie, RequestContext,
    SignalId, TransactionId, Waakvlam,
};
use crate::federation::{AccessAnswer, Federation, PeerError, Peers};
use crate::policy::DisclosedSignal;

#[derive(Debug, Clone)]
pub struct GrpcPeers {
    federation: Arc<Federation>,
}

impl GrpcPeers {
    pub fn new(federation: Arc<Federation>) -> GrpcPeers {
        GrpcPeers { federation }
    }

    async fn channel(&self, to: &Oin) -> Result<tonic::transport::Channel, PeerError> {
        self.federation
            .channel(to)
            .await
            .map_err(|e| PeerError::Unavailable {
                oin: *to,
                reason: e.to_string(),
            })
    }
}

fn request<T>(message: T, transaction: &TransactionId) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = transaction.to_string().parse() {
        request.metadata_mut().insert(TRANSACTION_HEADER, value);
    }
    request
}

fn peer_error(oin: &Oin, status: Status) -> PeerError {
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Unknown
        | Code::Cancelled
        | Code::Aborted => PeerError::Unavailable {
            oin: *oin,
            reason: format!("{}: {}", status.code(), status.message()),
        },
        code => PeerError::Refused {
            oin: *oin,
            code: code_name(code).to_owned(),
            message: status.message().to_owned(),
        },
    }
}

fn context(context: &RequestContext) -> proto::RequestContext {
    proto::RequestContext {
        transaction_id: context.transaction.to_string(),
        purpose: convert::purpose_to_proto(context.purpose) as i32,
        user: context.user.to_string(),
        role: context.role.map_or(0, |r| convert::role_to_proto(r) as i32),
        break_glass_reason: context
            .break_glass
            .map_or(0, |r| convert::break_glass_to_proto(r) as i32),
    }
}

#[async_trait]
impl Peers for GrpcPeers {
    async fn deliver(&self, to: &Oin, message: &OutboxMessage) -> Result<(), PeerError> {
        let channel = self.channel(to).await?;
        let id = message.id.to_string();
        let transaction = message.transaction.to_string();
        let result = match &message.body {
            OutboxBody::PublishPointer {
                signal,
                subject,
                related,
                expires_at,
                expiry_reason,
            } => IndexClient::new(channel)
                .publish(request(
                    proto::PublishRequest {
                        message_id: id,
                        transaction_id: transaction,
                        signal_ref: signal.to_string(),
                        subject: subject.0.to_vec(),
                        related: related.iter().map(convert::linked_person).collect(),
                        expires_at_unix_ms: expires_at.0,
                        expiry_reason: convert::expiry_reason_to_proto(*expiry_reason) as i32,
                    },
                    &message.transaction,
                ))
                .await
                .map(|_| ()),
            OutboxBody::RetractPointer { signal, reason } => IndexClient::new(channel)
                .retract(request(
                    proto::RetractRequest {
                        message_id: id,
                        transaction_id: transaction,
                        signal_ref: signal.to_string(),
                        reason: convert::retract_reason_to_proto(*reason) as i32,
                        // The retraction is queued in the commit that withdrew or expired the
                        // signal.
                        withdrawn_at_unix_ms: Some(message.created.0),
                    },
                    &message.transaction,
                ))
                .await
                .map(|_| ()),
            OutboxBody::Melding {
                signal,
                subject,
                category,
                severity,
                registered_at,
                contact_point,
                reported_by,
                ..
            } => FederationClient::new(channel)
                .deliver(request(
                    proto::DeliverRequest {
                        message_id: id,
                        transaction_id: transaction,
                        body: Some(proto::deliver_request::Body::Melding(proto::Melding {
                            signal_ref: signal.to_string(),
                            subject: subject.0.to_vec(),
                            category: convert::category_to_proto(*category) as i32,
                            severity: convert::severity_to_proto(*severity) as i32,
                            registered_at_unix_ms: registered_at.0,
                            contact_point: Some(convert::contact(contact_point)),
                            reported_by: reported_by.to_string(),
                        })),
                    },
                    &message.transaction,
                ))
                .await
                .map(|_| ()),
            OutboxBody::ForkAlert { fork, .. } => FederationClient::new(channel)
                .deliver(request(
                    proto::DeliverRequest {
                        message_id: id,
                        transaction_id: transaction,
                        body: Some(proto::deliver_request::Body::ForkAlert(convert::fork(fork))),
                    },
                    &message.transaction,
                ))
                .await
                .map(|_| ()),
            OutboxBody::Notice { notice, .. } => FederationClient::new(channel)
                .deliver(request(
                    proto::DeliverRequest {
                        message_id: id,
                        transaction_id: transaction,
                        body: Some(notice_body(notice)),
                    },
                    &message.transaction,
                ))
                .await
                .map(|_| ()),
        };
        result.map_err(|status| peer_error(to, status))
    }

    async fn lookup(
        &self,
        index: &Oin,
        ctx: &RequestContext,
        person: Pseudonym,
        household: bool,
    ) -> Result<Lookup, PeerError> {
        let channel = self.channel(index).await?;
        let answer = IndexClient::new(channel)
            .lookup(request(
                proto::LookupRequest {
                    context: Some(context(ctx)),
                    person: person.0.to_vec(),
                    household,
                },
                &ctx.transaction,
            ))
            .await
            .map_err(|status| peer_error(index, status))?
            .into_inner();
        convert::lookup_from_proto(answer).map_err(|e| PeerError::Refused {
            oin: *index,
            code: "invalid_argument".into(),
            message: format!("the index's answer: {e}"),
        })
    }

    async fn fetch_signals(
        &self,
        from: &Oin,
        ctx: &RequestContext,
        signals: &[(SignalId, Pseudonym)],
    ) -> Result<Vec<DisclosedSignal>, PeerError> {
        let channel = self.channel(from).await?;
        let answer = FederationClient::new(channel)
            .fetch_signals(request(
                proto::FetchSignalsRequest {
                    context: Some(context(ctx)),
                    signals: signals
                        .iter()
                        .map(|(id, subject)| proto::SignalAbout {
                            signal_ref: id.to_string(),
                            subject: subject.0.to_vec(),
                        })
                        .collect(),
                },
                &ctx.transaction,
            ))
            .await
            .map_err(|status| peer_error(from, status))?
            .into_inner();
        answer
            .signals
            .into_iter()
            .map(convert::disclosed_from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PeerError::Refused {
                oin: *from,
                code: "invalid_argument".into(),
                message: format!("the source's answer: {e}"),
            })
    }

    async fn regie(
        &self,
        index: &Oin,
        ctx: &RequestContext,
        person: Pseudonym,
        claim: bool,
    ) -> Result<Option<Regie>, PeerError> {
        let channel = self.channel(index).await?;
        let mut client = IndexClient::new(channel);
        let message = proto::RegieRequest {
            context: Some(context(ctx)),
            person: person.0.to_vec(),
        };
        let answer = if claim {
            client.claim_regie(request(message, &ctx.transaction)).await
        } else {
            client
                .release_regie(request(message, &ctx.transaction))
                .await
        }
        .map_err(|status| peer_error(index, status))?
        .into_inner();
        Ok(answer.regie.and_then(|r| convert::regie_from_proto(&r)))
    }

    async fn start_waakvlam(
        &self,
        index: &Oin,
        ctx: &RequestContext,
        person: Pseudonym,
        days: u32,
    ) -> Result<Waakvlam, PeerError> {
        let channel = self.channel(index).await?;
        let answer = IndexClient::new(channel)
            .start_waakvlam(request(
                proto::StartWaakvlamRequest {
                    context: Some(context(ctx)),
                    person: person.0.to_vec(),
                    days,
                },
                &ctx.transaction,
            ))
            .await
            .map_err(|status| peer_error(index, status))?
            .into_inner();
        answer
            .entry
            .and_then(|e| convert::waakvlam_from_proto(&e))
            .ok_or_else(|| PeerError::Refused {
                oin: *index,
                code: "invalid_argument".into(),
                message: "the index returned no waakvlam entry".into(),
            })
    }

    async fn list_waakvlam(
        &self,
        index: &Oin,
        ctx: &RequestContext,
    ) -> Result<Vec<Waakvlam>, PeerError> {
        let channel = self.channel(index).await?;
        let answer = IndexClient::new(channel)
            .list_waakvlam(request(
                proto::ListWaakvlamRequest {
                    context: Some(context(ctx)),
                },
                &ctx.transaction,
            ))
            .await
            .map_err(|status| peer_error(index, status))?
            .into_inner();
        Ok(answer
            .entries
            .iter()
            .filter_map(convert::waakvlam_from_proto)
            .collect())
    }

    async fn evaluate(
        &self,
        service: &Oin,
        blinded: Vec<Vec<u8>>,
        on_behalf_of: Option<Oin>,
    ) -> Result<Vec<Vec<u8>>, PeerError> {
        let channel = self.channel(service).await?;
        let answer = PseudonymsClient::new(channel)
            .evaluate(proto::EvaluateRequest {
                blinded,
                on_behalf_of: on_behalf_of.map(|o| o.to_string()).unwrap_or_default(),
            })
            .await
            .map_err(|status| peer_error(service, status))?
            .into_inner();
        Ok(answer.evaluated)
    }

    async fn index_key(
        &self,
        service: &Oin,
        transaction: &TransactionId,
        epoch: u32,
        start: bool,
    ) -> Result<[u8; 32], PeerError> {
        let channel = self.channel(service).await?;
        let answer = PseudonymsClient::new(channel)
            .index_key(request(
                proto::IndexKeyRequest { epoch, start },
                transaction,
            ))
            .await
            .map_err(|status| peer_error(service, status))?
            .into_inner();
        <[u8; 32]>::try_from(answer.share.as_slice()).map_err(|_| PeerError::Refused {
            oin: *service,
            code: "internal".into(),
            message: format!("share: {} bytes, not 32", answer.share.len()),
        })
    }

    async fn retire_index_epochs(
        &self,
        service: &Oin,
        transaction: &TransactionId,
        before: u32,
    ) -> Result<u32, PeerError> {
        let channel = self.channel(service).await?;
        let answer = PseudonymsClient::new(channel)
            .retire_index_epochs(request(
                proto::RetireIndexEpochsRequest { before },
                transaction,
            ))
            .await
            .map_err(|status| peer_error(service, status))?
            .into_inner();
        Ok(answer.oldest)
    }

    async fn subject_access(
        &self,
        to: &Oin,
        ctx: &RequestContext,
        subject: Pseudonym,
    ) -> Result<AccessAnswer, PeerError> {
        let channel = self.channel(to).await?;
        let answer = FederationClient::new(channel)
            .subject_access(request(
                proto::SubjectAccessRequest {
                    context: Some(context(ctx)),
                    subject: subject.0.to_vec(),
                },
                &ctx.transaction,
            ))
            .await
            .map_err(|status| peer_error(to, status))?
            .into_inner();
        let events = answer
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| convert::accessed_event_from_proto(i, e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PeerError::Refused {
                oin: *to,
                code: "invalid_argument".into(),
                message: format!("the node's answer: {e}"),
            })?;
        Ok(AccessAnswer {
            events,
            truncated: answer.truncated,
        })
    }

    async fn add_checkpoint(
        &self,
        witness: &Oin,
        transaction: &TransactionId,
        old_size: u64,
        proof: &[crate::audit::Hash32],
        checkpoint: &str,
    ) -> Result<String, PeerError> {
        let channel = self.channel(witness).await?;
        let answer = WitnessClient::new(channel)
            .add_checkpoint(request(
                proto::AddCheckpointRequest {
                    old_size,
                    consistency_proof: proof.iter().map(|h| h.to_vec()).collect(),
                    checkpoint: checkpoint.to_owned(),
                },
                transaction,
            ))
            .await
            .map_err(|status| peer_error(witness, status))?
            .into_inner();
        Ok(answer.cosignature)
    }

    async fn directory(&self, from: &Oin) -> Result<String, PeerError> {
        let channel = self.channel(from).await?;
        let answer = FederationClient::new(channel)
            .directory(proto::DirectoryRequest {})
            .await
            .map_err(|status| peer_error(from, status))?
            .into_inner();
        Ok(answer.signed_directory)
    }
}

fn notice_body(notice: &IndexNotice) -> proto::deliver_request::Body {
    use proto::deliver_request::Body;
    match notice {
        IndexNotice::Match {
            signal,
            parties,
            household,
            regie,
        } => Body::MatchNotice(proto::MatchNotice {
            match_id: format!("match:{signal}"),
            signal_ref: signal.to_string(),
            party_oins: parties.iter().map(ToString::to_string).collect(),
            household: *household,
            regie: regie.as_ref().map(|r| convert::regie(r, None)),
        }),
        IndexNotice::MatchEnded { signal, party } => Body::MatchEnded(proto::MatchEnded {
            match_id: format!("match:{signal}"),
            signal_ref: signal.to_string(),
            party_oin: party.to_string(),
        }),
        IndexNotice::WaakvlamAlert {
            waakvlam,
            party,
            person,
            until,
        } => Body::WaakvlamAlert(proto::WaakvlamAlert {
            waakvlam_id: waakvlam.to_string(),
            party_oin: party.to_string(),
            person: person.0.to_vec(),
            until_unix_ms: until.0,
        }),
        IndexNotice::RegieChanged { signal, regie } => Body::RegieChanged(proto::RegieChanged {
            match_id: format!("match:{signal}"),
            signal_ref: signal.to_string(),
            regie: regie.as_ref().map(|r| convert::regie(r, None)),
        }),
        IndexNotice::HistoricalMatch { signal, archived } => {
            Body::HistoricalMatch(proto::HistoricalMatch {
                match_id: format!("historical:{signal}"),
                signal_ref: signal.to_string(),
                archived: archived
                    .iter()
                    .map(|a| proto::ArchivedPointer {
                        party_oin: a.party.to_string(),
                        archived_at_unix_ms: a.archived_at.0,
                        reason: convert::archive_reason_to_proto(a.reason) as i32,
                    })
                    .collect(),
            })
        }
    }
}
