//! `kring.v1.Cases`: linked signals (as a map), break-glass, regie, waakvlam and meldingen, for
//! Veilig Thuis analysts and coordinators. The purpose policy in the signed directory decides
//! per purpose; the local role table decides who may ask at all.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Calls;
use super::convert;
use super::error::ApiError;
use super::proto;
use crate::auth::Capability;
use crate::cases::{CaseError, CaseService, SignalMap};
use crate::clock::SharedClock;
use crate::domain::{Action, Purpose, UnixMillis, parse_bsn};
use crate::signals::SignalService;

#[derive(Debug, Clone)]
pub struct CasesApi {
    calls: Calls,
    cases: Arc<CaseService>,
    signals: Arc<SignalService>,
    clock: SharedClock,
}

impl CasesApi {
    pub fn new(
        calls: Calls,
        cases: Arc<CaseService>,
        signals: Arc<SignalService>,
        clock: SharedClock,
    ) -> CasesApi {
        CasesApi {
            calls,
            cases,
            signals,
            clock,
        }
    }

    fn name_of(&self, oin: &crate::domain::Oin) -> Option<String> {
        self.signals
            .federation()
            .and_then(|f| f.directory().member(oin).map(|m| m.name.clone()))
    }
}

impl From<CaseError> for ApiError {
    fn from(e: CaseError) -> Self {
        match e {
            CaseError::Denied(denial) => denial.into(),
            CaseError::HouseholdNotAllowed(_) => ApiError::Policy(e.to_string()),
            CaseError::Peer(e) => e.into(),
            CaseError::Signal(e) => e.into(),
            CaseError::Ledger(e) => e.into(),
            CaseError::Store(e) => e.into(),
            CaseError::Recorded(inner) => ApiError::Recorded(Box::new((*inner).into())),
        }
    }
}

fn map(map: &SignalMap, transaction: String, now: UnixMillis) -> proto::SignalMap {
    proto::SignalMap {
        purpose: convert::purpose_to_proto(map.purpose) as i32,
        transaction_id: transaction,
        asked: map.asked.0.to_vec(),
        persons: map
            .persons
            .iter()
            .map(|p| proto::MapPerson {
                pseudonym: p.pseudonym.0.to_vec(),
                relation: p
                    .relation
                    .map_or(0, |r| convert::relation_to_proto(r) as i32),
                organisations: p
                    .organisations
                    .iter()
                    .map(|o| proto::MapOrganisation {
                        oin: o.member.oin.to_string(),
                        name: o.member.name.clone(),
                        org_type: o.member.org_type.to_string(),
                        ring: convert::ring_to_proto(o.member.org_type.ring()) as i32,
                        organisation_contact: Some(convert::directory_contact(
                            o.member.contact.as_ref(),
                        )),
                        signals: o.signals.iter().map(convert::disclosed).collect(),
                    })
                    .collect(),
            })
            .collect(),
        regie: map
            .regie
            .as_ref()
            .map(|(r, m)| convert::regie(r, m.as_ref().map(|m| m.name.as_str()))),
        waakvlam: map
            .waakvlam
            .iter()
            .map(|w| convert::waakvlam(w, now))
            .collect(),
        unavailable: map
            .unavailable
            .iter()
            .map(|(oin, name, reason)| proto::UnavailableSource {
                oin: oin.to_string(),
                name: name.clone(),
                reason: reason.clone(),
            })
            .collect(),
        break_glass: map.break_glass.is_some(),
    }
}

#[tonic::async_trait]
impl proto::cases_server::Cases for CasesApi {
    async fn linked_signals(
        &self,
        request: Request<proto::LinkedSignalsRequest>,
    ) -> Result<Response<proto::SignalMap>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let call = self
            .calls
            .begin(&metadata, Action::LinkedSignals, Capability::LinkedSignals)
            .await?;
        let parsed = convert::required_purpose("purpose", body.purpose).and_then(|purpose| {
            if purpose == Purpose::Emergency {
                return Err(crate::domain::Invalid::new(
                    "purpose",
                    "an emergency goes through BreakGlass, with a reason",
                ));
            }
            Ok((purpose, parse_bsn("person_bsn", &body.person_bsn)?))
        });
        zeroize::Zeroize::zeroize(&mut body.person_bsn);
        let result = async {
            let (purpose, bsn) = parsed?;
            let found = self
                .cases
                .linked_signals(&call.caller, purpose, bsn, body.household, None)
                .await?;
            Ok::<_, ApiError>(map(&found, call.transaction_id(), self.clock.now()))
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn break_glass(
        &self,
        request: Request<proto::BreakGlassRequest>,
    ) -> Result<Response<proto::SignalMap>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let call = self
            .calls
            .begin(&metadata, Action::BreakGlass, Capability::BreakGlass)
            .await?;
        let parsed = convert::required_break_glass("reason", body.reason)
            .and_then(|reason| Ok((reason, parse_bsn("person_bsn", &body.person_bsn)?)));
        zeroize::Zeroize::zeroize(&mut body.person_bsn);
        let result = async {
            let (reason, bsn) = parsed?;
            let found = self
                .cases
                .linked_signals(&call.caller, Purpose::Emergency, bsn, true, Some(reason))
                .await?;
            Ok::<_, ApiError>(map(&found, call.transaction_id(), self.clock.now()))
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn claim_regie(
        &self,
        request: Request<proto::CaseRequest>,
    ) -> Result<Response<proto::RegieResponse>, Status> {
        self.regie(request, true).await
    }

    async fn release_regie(
        &self,
        request: Request<proto::CaseRequest>,
    ) -> Result<Response<proto::RegieResponse>, Status> {
        self.regie(request, false).await
    }

    async fn start_waakvlam(
        &self,
        request: Request<proto::StartWaakvlamLocalRequest>,
    ) -> Result<Response<proto::StartWaakvlamResponse>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let call = self
            .calls
            .begin(&metadata, Action::WaakvlamStart, Capability::Waakvlam)
            .await?;
        let parsed = parse_bsn("person_bsn", &body.person_bsn);
        zeroize::Zeroize::zeroize(&mut body.person_bsn);
        let result = async {
            let bsn = parsed?;
            if body.days == 0 {
                return Err(ApiError::invalid("days", "is required"));
            }
            let entry = self
                .cases
                .start_waakvlam(&call.caller, bsn, body.days)
                .await?;
            Ok(proto::StartWaakvlamResponse {
                entry: Some(convert::waakvlam(&entry, self.clock.now())),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn list_waakvlam(
        &self,
        request: Request<proto::ListWaakvlamLocalRequest>,
    ) -> Result<Response<proto::ListWaakvlamResponse>, Status> {
        let call = self
            .calls
            .begin(
                request.metadata(),
                Action::WaakvlamList,
                Capability::Waakvlam,
            )
            .await?;
        let result = async {
            let entries = self.cases.list_waakvlam(&call.caller).await?;
            let now = self.clock.now();
            Ok::<_, ApiError>(proto::ListWaakvlamResponse {
                entries: entries.iter().map(|w| convert::waakvlam(w, now)).collect(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }

    async fn list_meldingen(
        &self,
        request: Request<proto::ListMeldingenRequest>,
    ) -> Result<Response<proto::ListMeldingenResponse>, Status> {
        let call = self
            .calls
            .begin(
                request.metadata(),
                Action::MeldingenList,
                Capability::ListMeldingen,
            )
            .await?;
        let result = async {
            let meldingen = self.cases.meldingen(&call.caller).await?;
            Ok::<_, ApiError>(proto::ListMeldingenResponse {
                meldingen: meldingen
                    .iter()
                    .map(|m| proto::ReceivedMelding {
                        message_id: m.message.to_string(),
                        from_oin: m.from.to_string(),
                        from_name: self.name_of(&m.from).unwrap_or_default(),
                        received_unix_ms: m.received.0,
                        melding: Some(proto::Melding {
                            signal_ref: m.signal.to_string(),
                            subject: m.subject.0.to_vec(),
                            category: convert::category_to_proto(m.category) as i32,
                            severity: convert::severity_to_proto(m.severity) as i32,
                            registered_at_unix_ms: m.registered_at.0,
                            contact_point: Some(convert::contact(&m.contact_point)),
                            reported_by: m.reported_by.to_string(),
                        }),
                    })
                    .collect(),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }
}

impl CasesApi {
    async fn regie(
        &self,
        request: Request<proto::CaseRequest>,
        claim: bool,
    ) -> Result<Response<proto::RegieResponse>, Status> {
        let (metadata, _, mut body) = request.into_parts();
        let action = if claim {
            Action::RegieClaim
        } else {
            Action::RegieRelease
        };
        let call = self
            .calls
            .begin(&metadata, action, Capability::Regie)
            .await?;
        let parsed = parse_bsn("person_bsn", &body.person_bsn);
        zeroize::Zeroize::zeroize(&mut body.person_bsn);
        let result = async {
            let regie = self.cases.regie(&call.caller, parsed?, claim).await?;
            Ok::<_, ApiError>(proto::RegieResponse {
                regie: regie.map(|r| convert::regie(&r, self.name_of(&r.holder).as_deref())),
            })
        }
        .await;
        self.calls.finish(&call, result).await
    }
}
