//! `kring.v1.Signals`: thin handlers. Authenticate and authorise (in `Calls`), convert and
//! validate (in `convert`), delegate to the signal service, answer or refuse.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use zeroize::Zeroize;

use super::call::Calls;
use super::convert;
use super::error::ApiError;
use super::proto;
use crate::auth::Capability;
use crate::domain::Action;
use crate::signals::SignalService;

#[derive(Debug, Clone)]
pub struct SignalsApi {
    calls: Calls,
    signals: Arc<SignalService>,
}

impl SignalsApi {
    pub fn new(calls: Calls, signals: Arc<SignalService>) -> SignalsApi {
        SignalsApi { calls, signals }
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
        _request: Request<proto::ReportRequest>,
    ) -> Result<Response<proto::ReportResponse>, Status> {
        Err(Status::unimplemented("report_to_veilig_thuis"))
    }

    type WatchMatchesStream = MatchStream;

    async fn watch_matches(
        &self,
        _request: Request<proto::WatchMatchesRequest>,
    ) -> Result<Response<Self::WatchMatchesStream>, Status> {
        Err(Status::unimplemented("watch_matches"))
    }

    async fn list_matches(
        &self,
        _request: Request<proto::ListMatchesRequest>,
    ) -> Result<Response<proto::ListMatchesResponse>, Status> {
        Err(Status::unimplemented("list_matches"))
    }
}

// TODO(federation): replaced by the federation's implementations in this change.
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
