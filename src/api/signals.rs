//! `kring.v1.Signals`: thin handlers. Authenticate and authorise (in `Calls`), convert and
//! validate (in `convert`), delegate to the signal service, answer or refuse.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use zeroize::Zeroize;

use tokio::sync::watch;

use super::call::{Call, Calls};
use super::convert;
use super::error::ApiError;
use super::proto;
use crate::auth::Capability;
use crate::domain::{
    Action, EventDraft, IndexNotice, LegalBasis, Notice, Oin, Purpose, Regie, parse_bsn,
};
use crate::signals::SignalService;

#[derive(Debug, Clone)]
pub struct SignalsApi {
    calls: Calls,
    signals: Arc<SignalService>,
    /// The cursor of the latest notice received.
    notices: watch::Receiver<u64>,
}

impl SignalsApi {
    pub fn new(
        calls: Calls,
        signals: Arc<SignalService>,
        notices: watch::Receiver<u64>,
    ) -> SignalsApi {
        SignalsApi {
            calls,
            signals,
            notices,
        }
    }

    fn party(&self, oin: &Oin) -> proto::MatchParty {
        let member = self
            .signals
            .federation()
            .and_then(|f| f.directory().member(oin).cloned());
        match member {
            Some(m) => proto::MatchParty {
                oin: oin.to_string(),
                name: m.name.clone(),
                org_type: m.org_type.to_string(),
                ring: convert::ring_to_proto(m.org_type.ring()) as i32,
                contact: Some(convert::directory_contact(m.contact.as_ref())),
            },
            None => proto::MatchParty {
                oin: oin.to_string(),
                ..Default::default()
            },
        }
    }

    fn regie(&self, regie: &Regie) -> proto::Regie {
        let name = self
            .signals
            .federation()
            .and_then(|f| f.directory().member(&regie.holder).map(|m| m.name.clone()));
        convert::regie(regie, name.as_deref())
    }

    fn match_info(&self, notice: &IndexNotice) -> Option<proto::MatchInfo> {
        match notice {
            IndexNotice::Match {
                signal,
                parties,
                household,
                regie,
            } => Some(proto::MatchInfo {
                match_id: format!("match:{signal}"),
                signal_id: signal.to_string(),
                parties: parties.iter().map(|p| self.party(p)).collect(),
                household: *household,
                regie: regie.as_ref().map(|r| self.regie(r)),
            }),
            _ => None,
        }
    }

    fn historical_info(&self, notice: &IndexNotice) -> Option<proto::HistoricalMatchInfo> {
        match notice {
            IndexNotice::HistoricalMatch { signal, archived } => Some(proto::HistoricalMatchInfo {
                match_id: format!("historical:{signal}"),
                signal_id: signal.to_string(),
                archived: archived
                    .iter()
                    .map(|a| proto::ArchivedParty {
                        party: Some(self.party(&a.party)),
                        archived_at_unix_ms: a.archived_at.0,
                        reason: convert::archive_reason_to_proto(a.reason) as i32,
                    })
                    .collect(),
            }),
            _ => None,
        }
    }

    fn event(&self, notice: &Notice) -> proto::MatchEvent {
        use proto::match_event::Event;
        let event = match &notice.notice {
            IndexNotice::Match { .. } => self.match_info(&notice.notice).map(Event::Match),
            IndexNotice::MatchEnded { signal, party } => Some(Event::Ended(proto::MatchEndInfo {
                match_id: format!("match:{signal}"),
                signal_id: signal.to_string(),
                party: Some(self.party(party)),
            })),
            IndexNotice::WaakvlamAlert {
                waakvlam,
                party,
                person,
                until,
            } => Some(Event::WaakvlamAlert(proto::WaakvlamAlertInfo {
                waakvlam_id: waakvlam.to_string(),
                party: Some(self.party(party)),
                person: person.0.to_vec(),
                until_unix_ms: until.0,
            })),
            IndexNotice::RegieChanged { signal, regie } => {
                Some(Event::RegieChanged(proto::RegieInfo {
                    match_id: format!("match:{signal}"),
                    signal_id: signal.to_string(),
                    regie: regie.as_ref().map(|r| self.regie(r)),
                }))
            }
            IndexNotice::HistoricalMatch { .. } => self
                .historical_info(&notice.notice)
                .map(Event::HistoricalMatch),
        };
        proto::MatchEvent {
            cursor: notice.cursor,
            received_unix_ms: notice.received.0,
            event,
        }
    }

    /// Records that notices were shown to the caller.
    async fn record_notices(
        &self,
        call: &Call,
        action: Action,
        notices: &[Notice],
    ) -> Result<(), ApiError> {
        let store = self.signals.ledger().store().clone();
        let mut subjects = Vec::new();
        for notice in notices {
            if let IndexNotice::WaakvlamAlert { person, .. } = &notice.notice {
                subjects.push(*person);
            }
            // A signal that is gone has no persons to name; one that does not read fails the
            // call rather than leaving them out of its audit event.
            if let Some(signal) = notice.notice.signal()
                && let Some(signal) = store.signal(&signal)?
            {
                subjects.extend(signal.persons());
            }
        }
        let range = match (notices.first(), notices.last()) {
            (Some(first), Some(last)) => format!("notices:{}..={}", first.cursor, last.cursor),
            _ => "notices:none".into(),
        };
        let draft = EventDraft::new(call.caller.transaction, call.caller.actor.clone(), action)
            .purpose(Purpose::MatchNotification, LegalBasis::Jeugdwet7141)
            .subjects(subjects)
            .object(range);
        self.signals
            .ledger()
            .commit(move |txn| txn.audit(draft))
            .await?;
        Ok(())
    }
}

#[tonic::async_trait]
impl proto::signals_server::Signals for SignalsApi {
    async fn register(
        &self,
        request: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let call = self
            .calls
            .begin(
                &metadata,
                Action::SignalRegister,
                Capability::RegisterSignal,
            )
            .await?;
        let parsed = convert::register(&body);
        body.zeroize_bsns();
        let result = async {
            let signal = self.signals.register(&call.caller, parsed?).await?;
            Ok(proto::RegisterResponse {
                signal: Some(convert::signal(&signal)),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn update(
        &self,
        request: Request<proto::UpdateRequest>,
    ) -> Result<Response<proto::UpdateResponse>, Status> {
        let call = self
            .calls
            .begin(
                request.metadata(),
                Action::SignalUpdate,
                Capability::UpdateSignal,
            )
            .await?;
        let result = async {
            let (id, change) = convert::update(request.get_ref())?;
            let signal = self.signals.update(&call.caller, id, change).await?;
            Ok(proto::UpdateResponse {
                signal: Some(convert::signal(&signal)),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn withdraw(
        &self,
        request: Request<proto::WithdrawRequest>,
    ) -> Result<Response<proto::WithdrawResponse>, Status> {
        let call = self
            .calls
            .begin(
                request.metadata(),
                Action::SignalWithdraw,
                Capability::WithdrawSignal,
            )
            .await?;
        let result = async {
            let (id, reason) = convert::withdraw(request.get_ref())?;
            let at = self.signals.withdraw(&call.caller, id, reason).await?;
            Ok(proto::WithdrawResponse {
                signal_id: id.to_string(),
                withdrawn_at_unix_ms: at.0,
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let call = self
            .calls
            .begin(&metadata, Action::SignalList, Capability::ListSignals)
            .await?;
        let parsed = convert::list(&body);
        body.zeroize_bsns();
        let result = async {
            let (person, query) = parsed?;
            let page = self.signals.list(&call.caller, person, query).await?;
            Ok::<_, ApiError>(proto::ListResponse {
                signals: page.signals.iter().map(convert::signal).collect(),
                next_page_token: page.next.map(|id| id.to_string()).unwrap_or_default(),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn report_to_veilig_thuis(
        &self,
        request: Request<proto::ReportRequest>,
    ) -> Result<Response<proto::ReportResponse>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let call = self
            .calls
            .begin(&metadata, Action::MeldingSend, Capability::ReportMelding)
            .await?;
        let parsed = convert::signal_id("signal_id", &body.signal_id)
            .and_then(|id| Ok((id, parse_bsn("subject_bsn", &body.subject_bsn)?)));
        body.subject_bsn.zeroize();
        let result = async {
            let (id, bsn) = parsed?;
            let to = self
                .signals
                .report_to_veilig_thuis(&call.caller, id, bsn)
                .await?;
            Ok::<_, ApiError>(proto::ReportResponse {
                signal_id: id.to_string(),
                veilig_thuis_oin: to.to_string(),
                transaction_id: call.transaction_id(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    type WatchMatchesStream = MatchStream;

    async fn watch_matches(
        &self,
        request: Request<proto::WatchMatchesRequest>,
    ) -> Result<Response<Self::WatchMatchesStream>, Status> {
        let call = self
            .calls
            .begin(
                request.metadata(),
                Action::MatchesWatch,
                Capability::WatchMatches,
            )
            .await?;
        let mut cursor = request.get_ref().after_cursor;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let this = self.clone();
        let mut notices = self.notices.clone();
        let transaction = call.transaction_id();
        tokio::spawn(async move {
            loop {
                let store = this.signals.ledger().store().clone();
                let after = cursor;
                let batch = tokio::task::spawn_blocking(move || {
                    store
                        .notices_after(after)
                        .take(256)
                        .collect::<Result<Vec<_>, _>>()
                })
                .await;
                let batch = match batch {
                    Ok(Ok(batch)) => batch,
                    Ok(Err(e)) => {
                        let _ = sender.send(Err(Status::from(ApiError::from(e)))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = sender.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                if !batch.is_empty() {
                    if let Err(e) = this
                        .record_notices(&call, Action::MatchesWatch, &batch)
                        .await
                    {
                        let _ = sender.send(Err(Status::from(e))).await;
                        return;
                    }
                    for notice in &batch {
                        cursor = notice.cursor;
                        if sender.send(Ok(this.event(notice))).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                tokio::select! {
                    changed = notices.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    () = sender.closed() => return,
                }
            }
        });
        let stream: MatchStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut response = Response::new(stream);
        if let Ok(value) = transaction.parse() {
            response
                .metadata_mut()
                .insert(super::call::TRANSACTION_HEADER, value);
        }
        Ok(response)
    }

    async fn list_matches(
        &self,
        request: Request<proto::ListMatchesRequest>,
    ) -> Result<Response<proto::ListMatchesResponse>, Status> {
        let call = self
            .calls
            .begin(
                request.metadata(),
                Action::MatchesList,
                Capability::WatchMatches,
            )
            .await?;
        let result = async {
            let matches = self.signals.ledger().store().matches()?;
            self.record_notices(&call, Action::MatchesList, &matches)
                .await?;
            Ok::<_, ApiError>(proto::ListMatchesResponse {
                matches: matches
                    .iter()
                    .filter_map(|n| self.match_info(&n.notice))
                    .collect(),
                historical: matches
                    .iter()
                    .filter_map(|n| self.historical_info(&n.notice))
                    .collect(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }
}

type MatchStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::MatchEvent, Status>> + Send>>;

/// Wipes what is left of BSN fields in a request once it has been parsed.
pub(crate) trait ZeroizeBsns {
    fn zeroize_bsns(&mut self);
}

impl ZeroizeBsns for proto::RegisterRequest {
    fn zeroize_bsns(&mut self) {
        self.subject_bsn.zeroize();
        for person in &mut self.related {
            person.bsn.zeroize();
        }
    }
}

impl ZeroizeBsns for proto::ListRequest {
    fn zeroize_bsns(&mut self) {
        if let Some(bsn) = &mut self.person_bsn {
            bsn.zeroize();
        }
    }
}

impl ZeroizeBsns for proto::AuditSearchRequest {
    fn zeroize_bsns(&mut self) {
        if let Some(bsn) = &mut self.subject_bsn {
            bsn.zeroize();
        }
    }
}
