//! Every refusal of the local API, table-driven: the exact gRPC code, a message that names the
//! field or the rule, nothing changed, and the refusal itself in the audit log with a reason
//! that names the same field or rule.

mod common;

use common::{
    ANALYST, COORDINATOR, OFFICER, SIGNALER, TestNode, audited_refusal, bsn, list_all, refused,
    register, register_ok, related, school, start_node, start_node_with, transaction_of,
};
use kring::api::client::LocalClient;
use kring::api::proto;
use kring::config::DEFAULT_MAX_MESSAGE_BYTES;
use prost::Message;
use proto::{Category, MeldcodeStep, Relation, Severity, WithdrawReason};
use tonic::{Code, Status};

/// One request to any RPC of the local API.
#[derive(Clone)]
enum Call {
    Register(proto::RegisterRequest),
    Update(proto::UpdateRequest),
    Withdraw(proto::WithdrawRequest),
    List(proto::ListRequest),
    Search(proto::AuditSearchRequest),
    Checkpoint,
    ListCheckpoints(proto::ListCheckpointsRequest),
    Inclusion(proto::InclusionProofRequest),
    Consistency(proto::ConsistencyProofRequest),
    Verify,
    Export(proto::ExportRequest),
    CosignedCheckpoint,
    ListForks,
}

impl Call {
    /// Sends the call and returns its refusal; an answer is a failed test.
    async fn refusal(self, client: &LocalClient) -> Status {
        let mut signals = client.signals.clone();
        let mut audit = client.audit.clone();
        let answered = match self {
            Call::Register(r) => signals.register(r).await.map(|r| format!("{r:?}")),
            Call::Update(r) => signals.update(r).await.map(|r| format!("{r:?}")),
            Call::Withdraw(r) => signals.withdraw(r).await.map(|r| format!("{r:?}")),
            Call::List(r) => signals.list(r).await.map(|r| format!("{r:?}")),
            Call::Search(r) => audit.search(r).await.map(|r| format!("{r:?}")),
            Call::Checkpoint => audit
                .checkpoint(proto::CheckpointRequest {})
                .await
                .map(|r| format!("{r:?}")),
            Call::ListCheckpoints(r) => audit.list_checkpoints(r).await.map(|r| format!("{r:?}")),
            Call::Inclusion(r) => audit.inclusion_proof(r).await.map(|r| format!("{r:?}")),
            Call::Consistency(r) => audit.consistency_proof(r).await.map(|r| format!("{r:?}")),
            Call::Verify => audit
                .verify(proto::VerifyRequest {})
                .await
                .map(|r| format!("{r:?}")),
            Call::Export(r) => audit.export(r).await.map(|_| "an export stream".to_owned()),
            Call::CosignedCheckpoint => audit
                .cosigned_checkpoint(proto::CosignedCheckpointRequest::default())
                .await
                .map(|r| format!("{r:?}")),
            Call::ListForks => audit
                .list_forks(proto::ListForksRequest {})
                .await
                .map(|r| format!("{r:?}")),
        };
        match answered {
            Ok(answer) => panic!("expected a refusal, got {answer}"),
            Err(status) => status,
        }
    }
}

/// Who sends a call.
#[derive(Debug, Clone, Copy)]
enum Who {
    Principal(&'static str),
    NoToken,
    UnknownToken,
}

struct Case {
    what: &'static str,
    who: Who,
    call: Call,
    code: Code,
    /// What the message and the audited reason must name: the field or the rule.
    names: &'static str,
}

fn case(what: &'static str, call: Call, code: Code, names: &'static str) -> Case {
    Case {
        what,
        who: Who::Principal(SIGNALER),
        call,
        code,
        names,
    }
}

fn by(who: Who, mut case: Case) -> Case {
    case.who = who;
    case
}

/// Runs each case against the node and checks the refusal, that nothing changed, and the
/// audit event of the refusal.
async fn check(test: &TestNode, cases: Vec<Case>) {
    let mut signals = test.signals(SIGNALER);
    let mut officer = test.audit(OFFICER);
    for case in cases {
        let before = list_all(&mut signals, proto::ListRequest::default()).await;
        let client = match case.who {
            Who::Principal(principal) => test.client(principal),
            Who::NoToken => test.anonymous(),
            Who::UnknownToken => test.with_token(&kring::auth::new_token()),
        };
        let status = case.call.refusal(&client).await;
        assert_eq!(
            status.code(),
            case.code,
            "{}: expected {:?}, got {status:?}",
            case.what,
            case.code
        );
        assert!(
            status.message().contains(case.names),
            "{}: the message {:?} does not name {:?}",
            case.what,
            status.message(),
            case.names
        );
        // The field or rule is also machine-readable, in the status metadata.
        let (header, named) = match case.code {
            Code::InvalidArgument => ("x-kring-field", case.names),
            Code::PermissionDenied => (
                "x-kring-rule",
                case.names.strip_prefix("rule ").expect("a rule"),
            ),
            _ => ("", ""),
        };
        if !header.is_empty() {
            let expected = named.split(':').next().unwrap_or_default();
            assert_eq!(
                status.metadata().get(header).and_then(|v| v.to_str().ok()),
                Some(expected),
                "{}: {header}",
                case.what
            );
        }
        let after = list_all(&mut signals, proto::ListRequest::default()).await;
        assert_eq!(after, before, "{}: the refusal changed signals", case.what);
        let transaction = transaction_of(status.metadata());
        let event = audited_refusal(&mut officer, &transaction, case.code, case.names).await;
        let actor = event.actor.expect("an actor");
        match case.who {
            Who::Principal(principal) => assert_eq!(actor.user, principal, "{}", case.what),
            Who::NoToken | Who::UnknownToken => {
                assert_eq!(actor.user, "kring:anonymous", "{}", case.what)
            }
        }
        assert!(
            event.subjects.is_empty(),
            "{}: a refusal names no person",
            case.what
        );
    }
}

/// A registration with a related person, for cases that break one field of it.
fn family() -> proto::RegisterRequest {
    proto::RegisterRequest {
        related: vec![
            related(&bsn(2), Relation::Parent),
            related(&bsn(3), Relation::Sibling),
        ],
        ..register(&bsn(1))
    }
}

fn with(change: impl FnOnce(&mut proto::RegisterRequest)) -> Call {
    let mut request = family();
    change(&mut request);
    Call::Register(request)
}

#[tokio::test]
async fn register_refuses_each_bad_field() {
    let test = start_node(&school()).await;
    register_ok(&mut test.signals(SIGNALER), family()).await;
    let twenty_one = (0..21)
        .map(|i| related(&bsn(1000 + i), Relation::HouseholdMember))
        .collect::<Vec<_>>();
    let invalid = Code::InvalidArgument;
    let cases = vec![
        case(
            "a BSN that fails the elfproef",
            with(|r| r.subject_bsn = "123456789".into()),
            invalid,
            "subject_bsn: fails the elfproef",
        ),
        case(
            "a BSN of ten digits",
            with(|r| r.subject_bsn = "1112223330".into()),
            invalid,
            "subject_bsn: must be 9 digits",
        ),
        case(
            "a BSN of seven digits",
            with(|r| r.subject_bsn = "1122233".into()),
            invalid,
            "subject_bsn: must be 9 digits",
        ),
        case(
            "a BSN with letters",
            with(|r| r.subject_bsn = "11122233a".into()),
            invalid,
            "subject_bsn: must be 9 digits",
        ),
        case(
            "an empty BSN",
            with(|r| r.subject_bsn.clear()),
            invalid,
            "subject_bsn: is required",
        ),
        case(
            "a related BSN that fails the elfproef",
            with(|r| r.related[1].bsn = "123456789".into()),
            invalid,
            "related[1].bsn: fails the elfproef",
        ),
        case(
            "a related BSN with letters",
            with(|r| r.related[0].bsn = "abcdefghi".into()),
            invalid,
            "related[0].bsn: must be 9 digits",
        ),
        case(
            "the subject related to itself",
            with(|r| r.related[1].bsn = r.subject_bsn.clone()),
            invalid,
            "related[1].bsn: is the subject itself",
        ),
        case(
            "the same person related twice",
            with(|r| r.related[1].bsn = r.related[0].bsn.clone()),
            invalid,
            "related[1].bsn: names a person already related",
        ),
        case(
            "more than 20 related persons",
            with(|r| r.related = twenty_one.clone()),
            invalid,
            "related: at most 20 related persons",
        ),
        case(
            "an unspecified relation",
            with(|r| r.related[0].relation = Relation::Unspecified as i32),
            invalid,
            "related[0].relation: is required",
        ),
        case(
            "an unknown relation",
            with(|r| r.related[1].relation = 7),
            invalid,
            "related[1].relation: unknown value 7",
        ),
        case(
            "an unspecified category",
            with(|r| r.category = Category::Unspecified as i32),
            invalid,
            "category: is required",
        ),
        case(
            "an unknown category",
            with(|r| r.category = 12),
            invalid,
            "category: unknown value 12",
        ),
        case(
            "a negative category",
            with(|r| r.category = -1),
            invalid,
            "category: unknown value -1",
        ),
        case(
            "an unspecified severity",
            with(|r| r.severity = Severity::Unspecified as i32),
            invalid,
            "severity: is required",
        ),
        case(
            "an unknown severity",
            with(|r| r.severity = 5),
            invalid,
            "severity: unknown value 5",
        ),
        case(
            "an unspecified meldcode step",
            with(|r| r.meldcode_step = MeldcodeStep::Unspecified as i32),
            invalid,
            "meldcode_step: is required",
        ),
        case(
            "meldcode step 6",
            with(|r| r.meldcode_step = 6),
            invalid,
            "meldcode_step: unknown value 6",
        ),
        case(
            "a contact point that is not configured",
            with(|r| r.contact_point = "jeugdarts".into()),
            invalid,
            "contact_point: is not one of the organisation's configured contact points",
        ),
        case(
            "a contact point that is not an identifier",
            with(|r| r.contact_point = "Zorg Team".into()),
            invalid,
            "contact_point: must be 1 to 64 characters",
        ),
        case(
            "no contact point",
            with(|r| r.contact_point.clear()),
            invalid,
            "contact_point: is required",
        ),
    ];
    check(&test, cases).await;
}

#[tokio::test]
async fn update_and_withdraw_refuse_bad_ids_and_changes() {
    let test = start_node(&school()).await;
    let signal = register_ok(&mut test.signals(SIGNALER), family()).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let update = |change: &dyn Fn(&mut proto::UpdateRequest)| {
        let mut request = proto::UpdateRequest {
            signal_id: signal.id.clone(),
            meldcode_step: Some(MeldcodeStep::Consultatie as i32),
            severity: None,
            expected_version: 0,
        };
        change(&mut request);
        Call::Update(request)
    };
    let withdraw = |id: &str, reason: i32| {
        Call::Withdraw(proto::WithdrawRequest {
            signal_id: id.to_owned(),
            reason,
        })
    };
    let invalid = Code::InvalidArgument;
    let cases = vec![
        case(
            "update: a signal id that is not a UUID",
            update(&|r| r.signal_id = "signal-1".into()),
            invalid,
            "signal_id: must be a UUID",
        ),
        case(
            "update: no signal id",
            update(&|r| r.signal_id.clear()),
            invalid,
            "signal_id: is required",
        ),
        case(
            "update: an unknown signal",
            update(&|r| r.signal_id = unknown.clone()),
            Code::NotFound,
            "signal_id: no active signal",
        ),
        case(
            "update: nothing to change",
            update(&|r| r.meldcode_step = None),
            invalid,
            "meldcode_step: an update must change the meldcode step, the severity or both",
        ),
        case(
            "update: an unspecified meldcode step",
            update(&|r| r.meldcode_step = Some(0)),
            invalid,
            "meldcode_step: is required",
        ),
        case(
            "update: an unknown severity",
            update(&|r| r.severity = Some(9)),
            invalid,
            "severity: unknown value 9",
        ),
        case(
            "update: the values it already has",
            update(&|r| {
                r.meldcode_step = Some(MeldcodeStep::Signalen as i32);
                r.severity = Some(Severity::NietPluis as i32);
            }),
            Code::FailedPrecondition,
            "the signal already has this meldcode step and severity",
        ),
        case(
            "update: another expected version",
            update(&|r| r.expected_version = 7),
            Code::FailedPrecondition,
            "expected_version: the signal is at version 1, not the expected 7",
        ),
        case(
            "withdraw: a signal id that is not a UUID",
            withdraw("42", WithdrawReason::Unfounded as i32),
            invalid,
            "signal_id: must be a UUID",
        ),
        case(
            "withdraw: an unknown signal",
            withdraw(&unknown, WithdrawReason::Unfounded as i32),
            Code::NotFound,
            "signal_id: no active signal",
        ),
        case(
            "withdraw: an unspecified reason",
            withdraw(&signal.id, WithdrawReason::Unspecified as i32),
            invalid,
            "reason: is required",
        ),
        case(
            "withdraw: an unknown reason",
            withdraw(&signal.id, 5),
            invalid,
            "reason: unknown value 5",
        ),
    ];
    check(&test, cases).await;
    // Still at version 1, after all that.
    let listed = list_all(&mut test.signals(SIGNALER), proto::ListRequest::default()).await;
    assert_eq!(listed, vec![signal]);
}

#[tokio::test]
async fn list_and_audit_refuse_bad_arguments() {
    let test = start_node(&school()).await;
    register_ok(&mut test.signals(SIGNALER), family()).await;
    let list = |change: &dyn Fn(&mut proto::ListRequest)| {
        let mut request = proto::ListRequest::default();
        change(&mut request);
        Call::List(request)
    };
    let search = |change: &dyn Fn(&mut proto::AuditSearchRequest)| {
        let mut request = proto::AuditSearchRequest::default();
        change(&mut request);
        Case {
            what: "",
            who: Who::Principal(OFFICER),
            call: Call::Search(request),
            code: Code::InvalidArgument,
            names: "",
        }
    };
    let officer = |what, call, code, names| Case {
        what,
        who: Who::Principal(OFFICER),
        call,
        code,
        names,
    };
    let named = |what, names, mut case: Case| {
        case.what = what;
        case.names = names;
        case
    };
    let pseudonym = "A".repeat(43);
    let invalid = Code::InvalidArgument;
    let cases = vec![
        case(
            "list: a page of 101",
            list(&|r| r.page_size = 101),
            invalid,
            "page_size: must be at most 100",
        ),
        case(
            "list: a page token that is no token",
            list(&|r| r.page_token = "page-2".into()),
            invalid,
            "page_token: must be a UUID",
        ),
        case(
            "list: a person BSN that fails the elfproef",
            list(&|r| r.person_bsn = Some("123456789".into())),
            invalid,
            "person_bsn: fails the elfproef",
        ),
        case(
            "list: an unspecified category",
            list(&|r| r.category = Some(0)),
            invalid,
            "category: is required",
        ),
        case(
            "list: an unknown meldcode step",
            list(&|r| r.meldcode_step = Some(8)),
            invalid,
            "meldcode_step: unknown value 8",
        ),
        case(
            "list: a contact point that is not an identifier",
            list(&|r| r.contact_point = Some("Zorg Team".into())),
            invalid,
            "contact_point: must be 1 to 64 characters",
        ),
        case(
            "list: an empty time range",
            list(&|r| {
                r.registered_from_unix_ms = Some(2_000);
                r.registered_until_unix_ms = Some(2_000);
            }),
            invalid,
            "registered_until_unix_ms: must be after registered_from_unix_ms",
        ),
        named(
            "search: a page of 1001",
            "page_size: must be at most 1000",
            search(&|r| r.page_size = 1001),
        ),
        named(
            "search: from after until",
            "until_unix_ms: must be after from_unix_ms",
            search(&|r| {
                r.from_unix_ms = Some(5_000);
                r.until_unix_ms = Some(4_000);
            }),
        ),
        named(
            "search: from equal to until",
            "until_unix_ms: must be after from_unix_ms",
            search(&|r| {
                r.from_unix_ms = Some(5_000);
                r.until_unix_ms = Some(5_000);
            }),
        ),
        named(
            "search: both a BSN and a pseudonym",
            "subject_pseudonym: give subject_bsn or subject_pseudonym, not both",
            search(&|r| {
                r.subject_bsn = Some(bsn(1));
                r.subject_pseudonym = Some(pseudonym.clone());
            }),
        ),
        named(
            "search: a BSN that fails the elfproef",
            "subject_bsn: fails the elfproef",
            search(&|r| r.subject_bsn = Some("123456789".into())),
        ),
        named(
            "search: a pseudonym of the wrong length",
            "subject_pseudonym: must be 43 characters of unpadded base64url",
            search(&|r| r.subject_pseudonym = Some("AAAA".into())),
        ),
        named(
            "search: a page token that is no token",
            "page_token: is not a token from a previous page",
            search(&|r| r.page_token = "next".into()),
        ),
        named(
            "search: an unknown action",
            "action: unknown value 99",
            search(&|r| r.action = Some(99)),
        ),
        named(
            "search: an unspecified outcome",
            "outcome: is required",
            search(&|r| r.outcome = Some(0)),
        ),
        named(
            "search: an actor that is not a principal id",
            "actor: must be 1 to 128 characters",
            search(&|r| r.actor = Some("m jansen".into())),
        ),
        officer(
            "list checkpoints: a page of 1001",
            Call::ListCheckpoints(proto::ListCheckpointsRequest {
                after_tree_size: 0,
                page_size: 1001,
            }),
            invalid,
            "page_size: must be at most 1000",
        ),
        officer(
            "inclusion proof: an index beyond the tree",
            Call::Inclusion(proto::InclusionProofRequest {
                index: 1_000_000,
                tree_size: 0,
            }),
            invalid,
            "index: must be below the tree size",
        ),
        officer(
            "inclusion proof: a tree beyond the durable log",
            Call::Inclusion(proto::InclusionProofRequest {
                index: 0,
                tree_size: 1_000_000,
            }),
            invalid,
            "tree_size: is beyond the durable log",
        ),
        officer(
            "consistency proof: old size above the new size",
            Call::Consistency(proto::ConsistencyProofRequest {
                old_size: 1_000_000,
                new_size: 0,
            }),
            invalid,
            "old_size: must not exceed the new size",
        ),
        officer(
            "consistency proof: a new size beyond the durable log",
            Call::Consistency(proto::ConsistencyProofRequest {
                old_size: 1,
                new_size: 1_000_000,
            }),
            invalid,
            "new_size: is beyond the durable log",
        ),
        officer(
            "export: until beyond the durable log",
            Call::Export(proto::ExportRequest {
                from_index: 0,
                until_index: 1_000_000,
            }),
            invalid,
            "until_index: is beyond the durable log",
        ),
        officer(
            "export: from after until",
            Call::Export(proto::ExportRequest {
                from_index: 3,
                until_index: 2,
            }),
            invalid,
            "from_index: must not exceed until_index 2",
        ),
    ];
    // A checkpoint first, so that "0 means the latest checkpoint" resolves.
    test.audit(OFFICER)
        .checkpoint(proto::CheckpointRequest {})
        .await
        .expect("a checkpoint");
    check(&test, cases).await;
}

#[tokio::test]
async fn tokens_and_roles_are_checked_for_every_capability() {
    let test = start_node(&school()).await;
    let signal = register_ok(&mut test.signals(SIGNALER), family()).await;
    let update = Call::Update(proto::UpdateRequest {
        signal_id: signal.id.clone(),
        meldcode_step: Some(MeldcodeStep::Consultatie as i32),
        severity: None,
        expected_version: 0,
    });
    let withdraw = Call::Withdraw(proto::WithdrawRequest {
        signal_id: signal.id.clone(),
        reason: WithdrawReason::Unfounded as i32,
    });
    let registration = Call::Register(register(&bsn(50)));
    let list = Call::List(proto::ListRequest::default());
    let search = Call::Search(proto::AuditSearchRequest::default());
    let denied = Code::PermissionDenied;
    let signaler = Who::Principal(SIGNALER);
    let officer = Who::Principal(OFFICER);
    let analyst = Who::Principal(ANALYST);
    let coordinator = Who::Principal(COORDINATOR);
    let mut cases = vec![
        by(
            Who::NoToken,
            case(
                "register without a token",
                registration.clone(),
                Code::Unauthenticated,
                "authorization: a bearer token is required",
            ),
        ),
        by(
            Who::NoToken,
            case(
                "search without a token",
                search.clone(),
                Code::Unauthenticated,
                "authorization: a bearer token is required",
            ),
        ),
        by(
            Who::UnknownToken,
            case(
                "list with an unknown token",
                list.clone(),
                Code::Unauthenticated,
                "authorization: unknown bearer token",
            ),
        ),
        by(
            Who::UnknownToken,
            case(
                "verify with an unknown token",
                Call::Verify,
                Code::Unauthenticated,
                "authorization: unknown bearer token",
            ),
        ),
        by(
            officer,
            case(
                "a privacy officer registering",
                registration.clone(),
                denied,
                "rule signals.register: requires the role signaler",
            ),
        ),
        by(
            coordinator,
            case(
                "a coordinator registering",
                registration.clone(),
                denied,
                "rule signals.register",
            ),
        ),
        by(
            analyst,
            case(
                "an analyst registering",
                registration,
                denied,
                "rule signals.register",
            ),
        ),
        by(
            analyst,
            case(
                "an analyst updating",
                update.clone(),
                denied,
                "rule signals.update: requires the role signaler or coordinator",
            ),
        ),
        by(
            analyst,
            case(
                "an analyst withdrawing",
                withdraw.clone(),
                denied,
                "rule signals.withdraw: requires the role signaler or coordinator",
            ),
        ),
        by(
            officer,
            case(
                "a privacy officer withdrawing",
                withdraw,
                denied,
                "rule signals.withdraw",
            ),
        ),
        by(
            officer,
            case(
                "a privacy officer listing signals",
                list,
                denied,
                "rule signals.list: requires the role signaler or coordinator or analyst",
            ),
        ),
    ];
    let audit_calls = [
        ("search", search),
        ("checkpoint", Call::Checkpoint),
        (
            "list checkpoints",
            Call::ListCheckpoints(proto::ListCheckpointsRequest::default()),
        ),
        (
            "inclusion proof",
            Call::Inclusion(proto::InclusionProofRequest::default()),
        ),
        (
            "consistency proof",
            Call::Consistency(proto::ConsistencyProofRequest::default()),
        ),
        ("verify", Call::Verify),
        ("export", Call::Export(proto::ExportRequest::default())),
        ("cosigned checkpoint", Call::CosignedCheckpoint),
        ("forks", Call::ListForks),
    ];
    for (name, call) in audit_calls {
        for who in [signaler, analyst, coordinator] {
            cases.push(by(
                who,
                case(
                    name,
                    call.clone(),
                    denied,
                    "rule audit.review: requires the role privacy_officer",
                ),
            ));
        }
    }
    check(&test, cases).await;
    assert_eq!(
        list_all(&mut test.signals(SIGNALER), proto::ListRequest::default()).await,
        vec![signal]
    );
}

/// The encoded size of a registration whose contact point is `len` characters long.
fn registration_of_size(len: usize) -> (proto::RegisterRequest, usize) {
    let request = proto::RegisterRequest {
        contact_point: "x".repeat(len),
        ..register(&bsn(77))
    };
    let size = request.encoded_len();
    (request, size)
}

/// The registration whose encoded size is exactly `size` bytes.
fn registration_of_exact_size(size: usize) -> proto::RegisterRequest {
    let (_, overhead) = registration_of_size(0);
    // The contact point adds its length, a tag byte and a length varint of up to 3 bytes.
    (size.saturating_sub(overhead + 4)..=size)
        .map(registration_of_size)
        .find(|(_, s)| *s == size)
        .map(|(request, _)| request)
        .unwrap_or_else(|| panic!("no registration of {size} bytes"))
}

#[tokio::test]
async fn oversized_messages_are_refused_and_audited() {
    assert_eq!(DEFAULT_MAX_MESSAGE_BYTES, 64 * 1024);
    for limit in [DEFAULT_MAX_MESSAGE_BYTES, 4096] {
        let test = start_node_with(
            &school(),
            std::sync::Arc::new(kring::clock::SystemClock),
            |config| config.max_message_bytes = limit,
        )
        .await;
        let mut signals = test.signals(SIGNALER);
        let mut officer = test.audit(OFFICER);

        // At the limit the message reaches the handler, which finds its contact point too long.
        let at_limit = registration_of_exact_size(limit);
        refused(
            signals.register(at_limit).await,
            Code::InvalidArgument,
            "contact_point",
        );

        // One byte over, it is refused before any handler runs, and audited.
        let over = registration_of_exact_size(limit + 1);
        let status = refused(
            signals.register(over).await,
            Code::ResourceExhausted,
            &format!("the message exceeds the limit of {limit} bytes"),
        );
        let transaction = transaction_of(status.metadata());
        let event = audited_refusal(
            &mut officer,
            &transaction,
            Code::ResourceExhausted,
            &format!("request: the message exceeds the limit of {limit} bytes"),
        )
        .await;
        assert_eq!(event.action, proto::AuditAction::RequestRefused as i32);
        assert_eq!(event.actor.expect("an actor").user, SIGNALER);

        // Far over the limit (four times it) the answer is the same.
        let (huge, _) = registration_of_size(4 * limit);
        refused(
            signals.register(huge).await,
            Code::ResourceExhausted,
            "exceeds the limit",
        );
        // An oversized audit search is refused the same way.
        let oversized_search = proto::AuditSearchRequest {
            actor: Some("a".repeat(limit + 1)),
            ..Default::default()
        };
        refused(
            officer.search(oversized_search).await,
            Code::ResourceExhausted,
            "exceeds the limit",
        );
        assert!(
            list_all(&mut signals, proto::ListRequest::default())
                .await
                .is_empty(),
            "nothing was registered"
        );
    }
}
