//! Retention on a controlled clock: a signal lives exactly `signal_retention_millis`, the sweep
//! deletes it then (audited as kring:retention, its pointer retracted), later signals stay,
//! and a withdrawal deletes at once without waiting for a sweep.

mod common;

use common::{
    OFFICER, SIGNALER, T0, bsn, ids, list_all, refused, register, register_ok, related, school,
    search_all, start_manual_with,
};
use kring::api::proto;
use kring::domain::{OutboxBody, RetractReason, SignalId, UnixMillis};
use kring::store::{SledStore, Store, StoreOptions};
use proto::{AuditAction, Outcome, Relation};
use tonic::Code;

const DAY: i64 = UnixMillis::DAY;
const RETENTION: i64 = 7 * DAY;

#[tokio::test]
async fn expired_signals_are_swept_and_audited_and_withdrawals_go_at_once() {
    let (test, clock) = start_manual_with(&school(), |config| {
        config.signal_retention_millis = RETENTION;
        // Only the sweeps this test asks for: the schedule's next one is a day away.
        config.sweep_every = std::time::Duration::from_secs(86_400);
    })
    .await;
    let mut signals = test.signals(SIGNALER);
    let mut officer = test.audit(OFFICER);

    let early_a = register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![related(&bsn(2), Relation::Parent)],
            ..register(&bsn(1))
        },
    )
    .await;
    let early_b = register_ok(&mut signals, register(&bsn(3))).await;
    assert_eq!(early_a.expires_at_unix_ms, T0 + RETENTION);
    clock.advance(3 * DAY);
    let later = register_ok(&mut signals, register(&bsn(4))).await;
    assert_eq!(later.expires_at_unix_ms, T0 + 3 * DAY + RETENTION);

    // A millisecond before the expiry nothing goes.
    clock.set(UnixMillis(T0 + RETENTION - 1));
    assert_eq!(test.node.sweep().await.expect("a sweep"), 0);
    assert_eq!(
        ids(&list_all(&mut signals, proto::ListRequest::default()).await),
        vec![early_a.id.clone(), early_b.id.clone(), later.id.clone()]
    );

    // At the expiry the two early signals are gone from every read and change before the
    // sweep deletes them: a withdrawal in between cannot retract them for another reason.
    clock.set(UnixMillis(T0 + RETENTION));
    assert_eq!(
        ids(&list_all(&mut signals, proto::ListRequest::default()).await),
        vec![later.id.clone()]
    );
    refused(
        signals
            .withdraw(proto::WithdrawRequest {
                signal_id: early_b.id.clone(),
                reason: proto::WithdrawReason::RiskGone as i32,
            })
            .await,
        Code::NotFound,
        "signal_id",
    );

    // The sweep then deletes both as expired; the later one stays.
    assert_eq!(test.node.sweep().await.expect("a sweep"), 2);
    assert_eq!(
        ids(&list_all(&mut signals, proto::ListRequest::default()).await),
        vec![later.id.clone()]
    );
    refused(
        signals
            .update(proto::UpdateRequest {
                signal_id: early_a.id.clone(),
                meldcode_step: Some(proto::MeldcodeStep::Consultatie as i32),
                severity: None,
                expected_version: 0,
            })
            .await,
        Code::NotFound,
        "signal_id",
    );
    // A second sweep at the same moment finds nothing more.
    assert_eq!(test.node.sweep().await.expect("a sweep"), 0);

    let expiries = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            action: Some(AuditAction::SignalExpire as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(expiries.len(), 2, "one event per deletion");
    for (event, signal) in expiries.iter().zip([&early_a, &early_b]) {
        let actor = event.actor.as_ref().expect("an actor");
        assert_eq!(actor.user, "kring:retention");
        assert_eq!(event.outcome, Outcome::Success as i32);
        assert_eq!(event.object, format!("signal:{}", signal.id));
        assert_eq!(event.time_unix_ms, T0 + RETENTION);
        let mut persons = vec![signal.subject.clone()];
        persons.extend(signal.related.iter().map(|r| r.pseudonym.clone()));
        assert_eq!(event.subjects, persons);
        assert!(
            event.reason.starts_with("retention: expired at "),
            "{}",
            event.reason
        );
    }
    // The expiry is found by the subject's BSN too.
    let about_parent = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            subject_bsn: Some(bsn(2)),
            action: Some(AuditAction::SignalExpire as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(about_parent.len(), 1);
    assert_eq!(about_parent[0].object, format!("signal:{}", early_a.id));

    // A withdrawal deletes at once: no sweep, no expiry event.
    let withdrawn = register_ok(&mut signals, register(&bsn(5))).await;
    signals
        .withdraw(proto::WithdrawRequest {
            signal_id: withdrawn.id.clone(),
            reason: proto::WithdrawReason::SubjectMoved as i32,
        })
        .await
        .expect("a withdrawal");
    assert_eq!(
        ids(&list_all(&mut signals, proto::ListRequest::default()).await),
        vec![later.id.clone()]
    );

    // The later signal goes at its own expiry; the withdrawn one is not swept again.
    clock.set(UnixMillis(withdrawn.expires_at_unix_ms));
    assert_eq!(test.node.sweep().await.expect("a sweep"), 1);
    assert!(
        list_all(&mut signals, proto::ListRequest::default())
            .await
            .is_empty()
    );
    let expired: Vec<String> = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            action: Some(AuditAction::SignalExpire as i32),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|e| e.object)
    .collect();
    assert_eq!(
        expired,
        [&early_a, &early_b, &later].map(|s| format!("signal:{}", s.id))
    );
    let withdrawals = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            action: Some(AuditAction::SignalWithdraw as i32),
            ..Default::default()
        },
    )
    .await;
    // The refused withdrawal of an expired signal is recorded as refused.
    let (withdrawals, refusals): (Vec<_>, Vec<_>) = withdrawals
        .into_iter()
        .partition(|e| e.outcome == Outcome::Success as i32);
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    assert_eq!(withdrawals.len(), 1);
    assert_eq!(withdrawals[0].object, format!("signal:{}", withdrawn.id));
    assert_eq!(withdrawals[0].reason, "withdrawn: subject_moved");

    // Deleted at rest, not hidden: the stopped store holds none of them, and a retraction of
    // each pointer waits in the outbox.
    let store_path = test.store_path.clone();
    test.node.shutdown().await.expect("a graceful stop");
    let store = SledStore::open(&store_path, &StoreOptions::default()).expect("the store opens");
    let gone = [&early_a, &early_b, &later, &withdrawn];
    for signal in gone {
        let id = SignalId::parse(&signal.id).expect("a signal id");
        assert_eq!(store.signal(&id).expect("a read"), None, "{}", signal.id);
    }
    assert_eq!(store.signals_after(None).count(), 0);
    let retracted: Vec<(SignalId, RetractReason)> = store
        .outbox(1000)
        .expect("the outbox")
        .into_iter()
        .filter_map(|m| match m.body {
            OutboxBody::RetractPointer { signal, reason } => Some((signal, reason)),
            _ => None,
        })
        .collect();
    // Each says why, which decides at the index whether the pointer is archived.
    for (signal, why) in [
        (&early_a, RetractReason::RetentionEnded),
        (&early_b, RetractReason::RetentionEnded),
        (&later, RetractReason::RetentionEnded),
        (&withdrawn, RetractReason::SubjectMoved),
    ] {
        let id = SignalId::parse(&signal.id).expect("a signal id");
        assert!(
            retracted.contains(&(id, why)),
            "a retraction of {} for {why}: {retracted:?}",
            signal.id
        );
    }
}

#[tokio::test]
async fn the_scheduled_sweep_runs_on_its_own() {
    let (test, clock) = start_manual_with(&school(), |config| {
        config.signal_retention_millis = RETENTION;
        config.sweep_every = std::time::Duration::from_millis(20);
    })
    .await;
    let mut signals = test.signals(SIGNALER);
    let signal = register_ok(&mut signals, register(&bsn(60))).await;
    clock.set(UnixMillis(signal.expires_at_unix_ms));
    // Listed no more from its expiry on; no call to sweep(): the node's own schedule deletes
    // it. Poll for the deletion's event, boundedly.
    assert!(
        list_all(&mut signals, proto::ListRequest::default())
            .await
            .is_empty()
    );
    let mut expiries = Vec::new();
    for _ in 0..500 {
        expiries = search_all(
            &mut test.audit(OFFICER),
            proto::AuditSearchRequest {
                action: Some(AuditAction::SignalExpire as i32),
                ..Default::default()
            },
        )
        .await;
        if !expiries.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        expiries.len(),
        1,
        "the scheduled sweep deleted the signal once"
    );
    assert_eq!(expiries[0].object, format!("signal:{}", signal.id));
    assert_eq!(
        expiries[0].actor.as_ref().expect("an actor").user,
        "kring:retention"
    );
}
