//! Every call starts here: authenticate the bearer token, check the role, and open the call's
//! transaction. Every refusal, at any step, is audited before the status goes back.

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::{Response, Status};

use super::error::ApiError;
use crate::auth::{Capability, Principals};
use crate::domain::{Action, Actor, EventDraft, Oin, PrincipalId, Purpose, TransactionId};
use crate::ledger::Ledger;
use crate::signals::Caller;

pub const TRANSACTION_HEADER: &str = "x-kring-transaction-id";

/// An authenticated, authorised call in progress.
#[derive(Debug, Clone)]
pub struct Call {
    pub caller: Caller,
    pub action: Action,
}

impl Call {
    pub fn transaction_id(&self) -> String {
        self.caller.transaction.to_string()
    }
}

#[derive(Debug, Clone)]
pub struct Calls {
    principals: Arc<Principals>,
    ledger: Arc<Ledger>,
    organisation: Oin,
}

/// The purpose a local call serves: its own signals, or the review of its own log.
pub fn purpose_of(action: Action) -> Purpose {
    match action {
        Action::AuditSearch
        | Action::AuditCheckpoint
        | Action::AuditProof
        | Action::AuditVerify
        | Action::AuditExport
        | Action::AuditBreakGlassQueue
        | Action::AuditBreakGlassReview
        | Action::AuditForks
        | Action::CheckpointCosigned => Purpose::AuditReview,
        Action::BreakGlass => Purpose::Emergency,
        Action::SubjectAccess | Action::SubjectAccessFetch => Purpose::SubjectAccess,
        Action::MatchesWatch | Action::MatchesList | Action::IndexRekey => {
            Purpose::MatchNotification
        }
        _ => Purpose::Registration,
    }
}

impl Calls {
    pub fn new(principals: Arc<Principals>, ledger: Arc<Ledger>, organisation: Oin) -> Calls {
        Calls {
            principals,
            ledger,
            organisation,
        }
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Authenticates and authorises; a refusal is audited and returned as the status.
    pub async fn begin(
        &self,
        metadata: &MetadataMap,
        action: Action,
        capability: Capability,
    ) -> Result<Call, Status> {
        let transaction = transaction_from(metadata);
        let anonymous = Call {
            caller: Caller {
                actor: Actor {
                    user: PrincipalId::system("anonymous"),
                    role: None,
                    organisation: self.organisation,
                },
                transaction,
            },
            action,
        };
        let principal = match bearer(metadata) {
            None => Err(ApiError::Unauthenticated(
                "authorization: a bearer token is required",
            )),
            Some(token) => self
                .principals
                .authenticate(token)
                .ok_or(ApiError::Unauthenticated(
                    "authorization: unknown bearer token",
                )),
        };
        let principal = match principal {
            Ok(principal) => principal,
            Err(error) => return Err(self.refuse(&anonymous, error).await),
        };
        let mut call = anonymous;
        call.caller.actor.user = principal.id.clone();
        let Some(role) = principal.role_for(capability) else {
            let error = ApiError::PermissionDenied {
                rule: capability.rule(),
                needs: capability.roles(),
            };
            return Err(self.refuse(&call, error).await);
        };
        call.caller.actor.role = Some(role);
        Ok(call)
    }

    /// Records a refusal (or a failure) of `call` and turns the error into its status.
    pub async fn refuse(&self, call: &Call, error: ApiError) -> Status {
        if let ApiError::Recorded(_) = error {
            return with_transaction(Status::from(error), &call.caller.transaction);
        }
        let purpose = purpose_of(call.action);
        let draft = EventDraft::new(
            call.caller.transaction,
            call.caller.actor.clone(),
            call.action,
        )
        .purpose(purpose, purpose.local_legal_basis());
        let draft = if error.is_refusal() {
            draft.refused(error.audit_reason())
        } else {
            draft.failed(error.audit_reason())
        };
        if let Err(audit_error) = self.ledger.commit(move |txn| txn.audit(draft)).await {
            tracing::warn!(error = %audit_error, "could not audit a refusal");
        }
        with_transaction(Status::from(error), &call.caller.transaction)
    }

    /// Ends a call: the response with its transaction id, or the audited refusal.
    pub async fn finish<T>(
        &self,
        call: &Call,
        result: Result<T, ApiError>,
    ) -> Result<Response<T>, Status> {
        match result {
            Ok(body) => {
                let mut response = Response::new(body);
                if let Ok(value) = call.transaction_id().parse() {
                    response.metadata_mut().insert(TRANSACTION_HEADER, value);
                }
                Ok(response)
            }
            Err(error) => Err(self.refuse(call, error).await),
        }
    }

    /// Audits a request refused before it reached a handler (an oversized message).
    pub async fn refuse_unrouted(&self, metadata: &MetadataMap, error: ApiError) -> Status {
        let transaction = transaction_from(metadata);
        let user = bearer(metadata)
            .and_then(|token| self.principals.authenticate(token))
            .map_or_else(|| PrincipalId::system("anonymous"), |p| p.id.clone());
        let actor = Actor {
            user,
            role: None,
            organisation: self.organisation,
        };
        let draft = EventDraft::new(transaction, actor, Action::RequestRefused)
            .refused(error.audit_reason());
        if let Err(audit_error) = self.ledger.commit(move |txn| txn.audit(draft)).await {
            tracing::warn!(error = %audit_error, "could not audit a refusal");
        }
        with_transaction(Status::from(error), &transaction)
    }
}

fn with_transaction(mut status: Status, transaction: &TransactionId) -> Status {
    if let Ok(value) = transaction.to_string().parse() {
        status.metadata_mut().insert(TRANSACTION_HEADER, value);
    }
    status
}

fn bearer(metadata: &MetadataMap) -> Option<&str> {
    metadata
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The caller's transaction id when it sent a valid one, else a new one.
fn transaction_from(metadata: &MetadataMap) -> TransactionId {
    metadata
        .get(TRANSACTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| TransactionId::parse(s).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_review_of_the_log_serves_audit_review_and_subject_access_its_own() {
        for action in Action::ALL {
            let name = action.to_string();
            let expected = match *action {
                Action::SubjectAccess | Action::SubjectAccessFetch => Purpose::SubjectAccess,
                _ if name.starts_with("audit.") => Purpose::AuditReview,
                _ => continue,
            };
            assert_eq!(purpose_of(*action), expected, "{name}");
        }
    }
}
