//! Retention as the law has it for the Verwijsindex, over a real federation on a controlled
//! clock: a signal goes at the end of its retention period or at the start of the day its
//! subject leaves the organisation's age range, and then it is gone from every node (the
//! signal, the pointer, the matches) on the nodes' own sweep schedules, even when the
//! organisation's retraction never comes. A pointer that leaves because the risk is gone or its
//! term ended is kept in the index's historical archive for five years, where it answers no
//! lookup and makes no match, but tells a new signal's organisation of it; an unfounded one is
//! forgotten.
//!
//! Nothing here calls a sweep: every node sweeps on its own schedule (100 ms here), and the
//! tests wait for what must follow, boundedly. The clock only moves when a test moves it.

mod common_federation;

use std::time::Duration;

use common_federation::*;
use kring::api::client::LocalClient;
use kring::api::proto;
use kring::clock::Clock;
use kring::demo::demo_members;
use kring::devnet::{PlannedNode, RunningFederation};
use kring::domain::{Oin, Pointer, SignalId, UnixMillis};
use proto::{AuditAction, Relation};
use tonic::Code;

const DAY: i64 = UnixMillis::DAY;
/// The default retention period: two years.
const RETENTION: i64 = 730 * DAY;

/// Every node sweeps often, so that a test waits for milliseconds, not a minute.
/// `organisation`'s pointer for `signal`, once the index holds it.
async fn published(
    federation: &RunningFederation,
    organisation: &Oin,
    signal: &SignalId,
) -> Pointer {
    let index = federation.node("index").ledger().store().clone();
    eventually("the pointer is published at the index", || async {
        index
            .pointer(organisation, signal)
            .expect("the index's store reads")
    })
    .await
}

fn fast_sweeps(node: &mut PlannedNode) {
    node.config.sweep_every = Duration::from_millis(100);
}

/// The instant `year-month-day hour:00` UTC.
fn utc(year: i32, month: u8, day: u8, hour: u8) -> i64 {
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).expect("a month"), day)
            .expect("a day");
    let at = date
        .with_hms(hour, 0, 0)
        .expect("an hour")
        .assume_utc()
        .unix_timestamp();
    at * 1000
}

fn year_of(millis: i64) -> i32 {
    time::OffsetDateTime::from_unix_timestamp(millis / 1000)
        .expect("a time")
        .year()
}

/// `at` five calendar years later (UTC), computed here rather than by the node.
fn five_years_after(at: i64) -> i64 {
    let then = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .expect("a time");
    let date = then.date();
    let later = date
        .replace_year(date.year() + 5)
        .or_else(|_| time::Date::from_calendar_date(date.year() + 5, time::Month::February, 28))
        .expect("a day five years on");
    (then.replace_date(later).unix_timestamp_nanos() / 1_000_000) as i64
}

async fn withdraw(client: &mut LocalClient, signal: &proto::Signal, reason: proto::WithdrawReason) {
    client
        .signals
        .withdraw(proto::WithdrawRequest {
            signal_id: signal.id.clone(),
            reason: reason as i32,
        })
        .await
        .expect("a withdrawal");
}

/// The organisation's own active signals.
async fn signals_of(client: &LocalClient) -> Vec<proto::Signal> {
    client
        .signals
        .clone()
        .list(proto::ListRequest::default())
        .await
        .expect("the signals are listed")
        .into_inner()
        .signals
}

/// The organisations Veilig Thuis's map of `person` names, as sources or as unavailable.
async fn vt_sees(federation: &RunningFederation, person: &str) -> Vec<String> {
    let mut vt = client(federation, VT_ANALYST).await;
    let map = vt
        .cases
        .linked_signals(proto::LinkedSignalsRequest {
            purpose: proto::Purpose::VtTriage as i32,
            person_bsn: person.into(),
            household: false,
        })
        .await
        .expect("Veilig Thuis's map")
        .into_inner();
    let mut oins: Vec<String> = map
        .persons
        .iter()
        .flat_map(|p| p.organisations.iter().map(|o| o.oin.clone()))
        .chain(map.unavailable.iter().map(|u| u.oin.clone()))
        .collect();
    oins.sort();
    oins.dedup();
    oins
}

/// The index's events of `action` about `signal`.
async fn index_events(
    federation: &RunningFederation,
    action: AuditAction,
    signal: &proto::Signal,
) -> Vec<proto::AuditEvent> {
    let object = format!("signal:{}", signal.id);
    events(federation, "index", action)
        .await
        .into_iter()
        .filter(|e| e.object == object)
        .collect()
}

/// Waits until the index has removed `signal`'s pointer (retracted by its organisation or
/// expired by the index's own sweep), and returns that event.
async fn removed_at_index(
    federation: &RunningFederation,
    signal: &proto::Signal,
) -> proto::AuditEvent {
    eventually("the index removes the pointer", || async {
        let mut removed = index_events(federation, AuditAction::PointerExpire, signal).await;
        removed.extend(index_events(federation, AuditAction::PointerRetract, signal).await);
        removed
            .into_iter()
            .find(|e| !e.reason.contains("no pointer held"))
    })
    .await
}

/// Which of the recipient's signals a notice is about.
fn signal_of(event: &proto::MatchEvent) -> Option<&str> {
    use proto::match_event::Event;
    match event.event.as_ref()? {
        Event::Match(m) => Some(&m.signal_id),
        Event::Ended(e) => Some(&e.signal_id),
        Event::RegieChanged(r) => Some(&r.signal_id),
        Event::HistoricalMatch(h) => Some(&h.signal_id),
        Event::WaakvlamAlert(_) => None,
    }
}

/// The first notice about `signal`, skipping notices about the organisation's other signals.
/// The index queues a new signal's historical notice before its match notices, and notices to
/// one organisation arrive in the order queued: when the first is a match, there was no
/// historical notice.
async fn first_about(watch: &mut Watch, signal: &proto::Signal) -> proto::match_event::Event {
    loop {
        let event = next_event(watch).await;
        if signal_of(&event) == Some(signal.id.as_str()) {
            return event.event.expect("a notice");
        }
    }
}

fn expect_match(event: proto::match_event::Event) -> proto::MatchInfo {
    match event {
        proto::match_event::Event::Match(m) => m,
        other => panic!("expected a current match, got {other:?}"),
    }
}

fn expect_history(event: proto::match_event::Event) -> proto::HistoricalMatchInfo {
    match event {
        proto::match_event::Event::HistoricalMatch(h) => h,
        other => panic!("expected a historical match, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_with_a_controlled_clock_reaches_every_node() {
    let (_dir, federation, clock) = start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut at_ggd = watch(&mut ggd, 0).await;

    let school_signal = register_ok(&mut school, worry(CHILD, &[])).await;
    assert_eq!(
        school_signal.expiry_reason,
        proto::ExpiryReason::Retention as i32
    );
    assert_eq!(
        school_signal.expires_at_unix_ms,
        school_signal.registered_at_unix_ms + RETENTION
    );
    clock.advance(DAY);
    let ggd_signal = register_ok(&mut ggd, worry(CHILD, &[])).await;
    let matched = next_match(&mut at_ggd).await;
    assert_eq!(party_oins(&matched), [SCHOOL]);
    matches_until(&school, "the school's match", |m| m.len() == 1).await;

    // Past the school's expiry, a day before the GGD's. Nothing calls a sweep.
    clock.set(UnixMillis(school_signal.expires_at_unix_ms + 1));

    // The GGD is told, and its current matches no longer list the school.
    let ended = next_ended(&mut at_ggd).await;
    assert_eq!(ended.party.expect("the party").oin, SCHOOL);
    assert_eq!(ended.signal_id, ggd_signal.id);
    matches_until(&ggd, "the GGD's match ends", |m| m.is_empty()).await;

    // The school's signal is listed no more from its expiry; once its sweep has deleted it,
    // its match is gone too.
    assert!(signals_of(&school).await.is_empty());
    eventually("the school's sweep deleted its signal", || async {
        (events(&federation, "school", AuditAction::SignalExpire)
            .await
            .len()
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(list_matches(&school).await, vec![]);
    assert_eq!(
        signals_of(&ggd).await.len(),
        1,
        "the GGD's own signal has a day to go"
    );

    // The index holds no pointer for it: Veilig Thuis's map names the GGD only.
    let removed = removed_at_index(&federation, &school_signal).await;
    assert_eq!(removed.counterpart_oin, SCHOOL);
    assert_eq!(removed.reason, "retention_ended");
    assert_eq!(vt_sees(&federation, CHILD).await, [GGD]);

    // Audited at every node that removed something: the school deleted its signal, the index
    // its pointer (and archived it: its retention period ended), the GGD its match.
    let expired = events(&federation, "school", AuditAction::SignalExpire).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].object, format!("signal:{}", school_signal.id));
    assert_eq!(
        expired[0].actor.as_ref().expect("an actor").user,
        "kring:retention"
    );
    assert!(
        expired[0].reason.starts_with("retention: expired at "),
        "{}",
        expired[0].reason
    );
    let archived = index_events(&federation, AuditAction::PointerArchive, &school_signal).await;
    assert_eq!(archived.len(), 1);
    assert!(
        archived[0]
            .reason
            .starts_with("retention_ended: kept until "),
        "{}",
        archived[0].reason
    );
    let received = events(&federation, "ggd", AuditAction::NoticeReceive).await;
    assert!(
        received
            .iter()
            .any(|e| e.object == "notice:match_ended" && e.counterpart_oin == INDEX),
        "the GGD recorded the end of its match"
    );

    // The school's own retraction reaches the index too, with its reason, whichever removed
    // the pointer first; a pointer is archived once.
    eventually("the school's retraction is recorded", || async {
        index_events(&federation, AuditAction::PointerRetract, &school_signal)
            .await
            .into_iter()
            .find(|e| e.reason.starts_with("retention_ended"))
    })
    .await;
    assert_eq!(
        index_events(&federation, AuditAction::PointerArchive, &school_signal)
            .await
            .len(),
        1
    );
    assert_reconciled(&federation).await;
    let school_config = federation.configs["school"].clone();
    federation.shutdown().await.expect("a graceful stop");

    // The match notice the school was sent about its signal went from its notice feed with
    // the signal (read from its stopped store, with its data key), and a watcher from the
    // start is shown nothing of it.
    let store =
        kring::store::SledStore::open(&school_config.data_dir.join("store"), &school_config.store)
            .expect("the school's stopped store");
    let expired_id: kring::domain::SignalId = school_signal.id.parse().expect("a signal id");
    let feed: Vec<_> = kring::store::Store::notices_after(&store, 0)
        .collect::<Result<_, _>>()
        .expect("the notice feed");
    assert!(
        feed.iter().all(|n| n.notice.signal() != Some(expired_id)),
        "{feed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_removes_an_expired_pointer_whose_retraction_never_comes() {
    let (_dir, mut federation, clock) =
        start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut at_ggd = watch(&mut ggd, 0).await;
    let school_signal = register_ok(&mut school, worry(CHILD, &[])).await;
    clock.advance(DAY);
    register_ok(&mut ggd, worry(CHILD, &[])).await;
    assert_eq!(party_oins(&next_match(&mut at_ggd).await), [SCHOOL]);
    assert_eq!(vt_sees(&federation, CHILD).await, [SCHOOL, GGD]);

    // The school is down when its signal expires: no retraction can come.
    federation.stop("school").await.expect("the school stops");
    clock.set(UnixMillis(school_signal.expires_at_unix_ms + 1));
    let ended = next_ended(&mut at_ggd).await;
    assert_eq!(ended.party.expect("the party").oin, SCHOOL);
    let expired = index_events(&federation, AuditAction::PointerExpire, &school_signal).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(
        expired[0].actor.as_ref().expect("an actor").user,
        "kring:retention"
    );
    assert_eq!(expired[0].reason, "retention_ended");
    // Archived for five years from the end of the retention period, not from the sweep.
    let archived = index_events(&federation, AuditAction::PointerArchive, &school_signal).await;
    assert_eq!(archived.len(), 1);
    assert_eq!(
        archived[0].reason,
        format!(
            "retention_ended: kept until {}",
            UnixMillis(five_years_after(school_signal.expires_at_unix_ms)).rfc3339()
        )
    );
    // Not even as an unavailable source: the index no longer points at the school.
    assert_eq!(vt_sees(&federation, CHILD).await, [GGD]);

    // Back up, the school's own sweep deletes the signal; its retraction finds nothing left.
    restart(
        &mut federation,
        "school",
        std::sync::Arc::new(clock.clone()),
    )
    .await;
    let school = client(&federation, SCHOOL_AF).await;
    eventually("the school's signal is gone", || async {
        signals_of(&school).await.is_empty().then_some(())
    })
    .await;
    eventually("the late retraction is recorded", || async {
        index_events(&federation, AuditAction::PointerRetract, &school_signal)
            .await
            .into_iter()
            .find(|e| e.reason == "retention_ended; no pointer held: already removed")
    })
    .await;
    federation.shutdown().await.expect("a graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_ends_when_its_subject_leaves_the_age_range() {
    let (_dir, federation, clock) = start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut at_ggd = watch(&mut ggd, 0).await;
    let mut at_huisarts = watch(&mut huisarts, 0).await;

    // Noon (UTC) on 10 January next year: 13:00 in Amsterdam, the same day.
    let year = year_of(clock.now().0) + 1;
    clock.set(UnixMillis(utc(year, 1, 10, 12)));
    let with_age_range = |subject: &str, date: &str| proto::RegisterRequest {
        age_range_ends_on: Some(date.to_owned()),
        ..worry(subject, &[])
    };

    // Refused, naming the field, and nothing changes: not a date, or not after today.
    for (date, rule) in [
        (String::new(), "YYYY-MM-DD"),
        (format!("{year}-1-15"), "YYYY-MM-DD"),
        (format!("15-01-{year}"), "YYYY-MM-DD"),
        (format!("{year}-01-15T00:00"), "YYYY-MM-DD"),
        (format!("{year}-13-01"), "not a day"),
        (format!("{year}-04-31"), "not a day"),
        (format!("{year}-01-10"), "must be after today"),
        (format!("{year}-01-09"), "must be after today"),
        (format!("{}-06-01", year - 1), "must be after today"),
    ] {
        let status = refused(
            school.signals.register(with_age_range(CHILD, &date)).await,
            Code::InvalidArgument,
            "age_range_ends_on",
        );
        assert!(status.message().contains(rule), "{date:?}: {status:?}");
        audited_refusal(
            &federation,
            "school",
            &transaction_of(status.metadata()),
            AuditAction::SignalRegister,
            "invalid_argument",
            "age_range_ends_on",
        )
        .await;
    }
    assert!(signals_of(&school).await.is_empty());
    let registered = search(
        &federation,
        "school",
        proto::AuditSearchRequest {
            action: Some(AuditAction::SignalRegister as i32),
            outcome: Some(proto::Outcome::Success as i32),
            ..Default::default()
        },
    )
    .await;
    assert!(registered.is_empty(), "nothing was registered");

    // Tomorrow: the signal ends at midnight tonight, Amsterdam time (23:00 UTC in winter),
    // long before its two years.
    let child = register_ok(&mut school, with_age_range(CHILD, &format!("{year}-01-11"))).await;
    assert_eq!(child.expires_at_unix_ms, utc(year, 1, 10, 23));
    assert_eq!(child.expiry_reason, proto::ExpiryReason::AgeRange as i32);
    // In summer, midnight in Amsterdam is 22:00 UTC.
    let mother = register_ok(
        &mut school,
        with_age_range(MOTHER, &format!("{year}-07-15")),
    )
    .await;
    assert_eq!(mother.expires_at_unix_ms, utc(year, 7, 14, 22));
    assert_eq!(mother.expiry_reason, proto::ExpiryReason::AgeRange as i32);
    // An age range that outlasts the retention period changes nothing.
    let father = register_ok(
        &mut school,
        with_age_range(FATHER, &format!("{}-01-15", year + 3)),
    )
    .await;
    assert_eq!(
        father.expires_at_unix_ms,
        father.registered_at_unix_ms + RETENTION
    );
    assert_eq!(father.expiry_reason, proto::ExpiryReason::Retention as i32);
    let register_events = search(
        &federation,
        "school",
        proto::AuditSearchRequest {
            action: Some(AuditAction::SignalRegister as i32),
            outcome: Some(proto::Outcome::Success as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        register_events[0].reason,
        format!("expires at {year}-01-10T23:00:00.000Z: end of age range")
    );

    // The pointer at the index carries the expiry and why.
    let school_oin = Oin::parse(SCHOOL).expect("an OIN");
    let child_id = SignalId::parse(&child.id).expect("a signal id");
    let pointer = published(&federation, &school_oin, &child_id).await;
    assert_eq!(pointer.expires_at, UnixMillis(child.expires_at_unix_ms));
    assert_eq!(pointer.expiry_reason, kring::domain::ExpiryReason::AgeRange);

    let ggd_signal = register_ok(&mut ggd, worry(CHILD, &[])).await;
    assert_eq!(party_oins(&next_match(&mut at_ggd).await), [SCHOOL]);

    // Midnight in Amsterdam: the child has left the school's age range.
    clock.set(UnixMillis(child.expires_at_unix_ms));
    let ended = next_ended(&mut at_ggd).await;
    assert_eq!(ended.party.expect("the party").oin, SCHOOL);
    assert_eq!(ended.signal_id, ggd_signal.id);
    let left: Vec<String> = signals_of(&school)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [mother.id.clone(), father.id.clone()]);
    let expired = eventually("the school's sweep deleted the child's signal", || async {
        let expired = events(&federation, "school", AuditAction::SignalExpire).await;
        (!expired.is_empty()).then_some(expired)
    })
    .await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].object, format!("signal:{}", child.id));
    assert_eq!(
        expired[0].reason,
        format!("age range: expired at {year}-01-10T23:00:00.000Z")
    );
    let removed = removed_at_index(&federation, &child).await;
    assert_eq!(removed.reason, "age_range_ended");

    // Not archived: a new signal on the child brings no historical notice naming the school,
    // only the current match with the GGD.
    assert!(
        index_events(&federation, AuditAction::PointerArchive, &child)
            .await
            .is_empty()
    );
    let late = register_ok(&mut huisarts, worry(CHILD, &[])).await;
    let first = expect_match(first_about(&mut at_huisarts, &late).await);
    assert_eq!(party_oins(&first), [GGD]);
    assert!(all_matches(&huisarts).await.historical.is_empty());
    federation.shutdown().await.expect("a graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_keeps_risk_gone_for_five_years_and_tells_only_a_new_signal() {
    let (_dir, federation, clock) = start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut reclassering = client(&federation, RECLASSERING_SIGNALER).await;
    let mut at_school = watch(&mut school, 0).await;
    let mut at_ggd = watch(&mut ggd, 0).await;
    let mut at_huisarts = watch(&mut huisarts, 0).await;
    let mut at_reclassering = watch(&mut reclassering, 0).await;
    let school_name = member(&federation, "ggd", SCHOOL).name;

    // The risk is gone: the school withdraws, and the index archives the subject only.
    let first = register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    withdraw(&mut school, &first, proto::WithdrawReason::RiskGone).await;
    let archived = eventually("the index archives the school's pointer", || async {
        let archived = index_events(&federation, AuditAction::PointerArchive, &first).await;
        (!archived.is_empty()).then_some(archived)
    })
    .await;
    assert_eq!(archived.len(), 1);
    let archived_at = archived[0].time_unix_ms;
    let archive_ends = five_years_after(archived_at);
    assert_eq!(archived[0].counterpart_oin, SCHOOL);
    assert_eq!(archived[0].subjects.len(), 1, "the subject, not the mother");
    assert_eq!(
        archived[0].reason,
        format!(
            "risk_gone: kept until {}",
            UnixMillis(archive_ends).rfc3339()
        )
    );
    let retracted = removed_at_index(&federation, &first).await;
    assert_eq!(retracted.reason, "risk_gone");
    assert_eq!(retracted.subjects.len(), 2);
    assert_eq!(retracted.transaction_id, archived[0].transaction_id);

    // A new signal on the child from another organisation: a historical match naming the
    // school, a kind of its own; the archive makes no current match and answers no lookup.
    let ggd_first = register_ok(&mut ggd, worry(CHILD, &[])).await;
    let history = expect_history(first_about(&mut at_ggd, &ggd_first).await);
    assert_eq!(history.signal_id, ggd_first.id);
    assert_eq!(history.archived.len(), 1);
    let entry = &history.archived[0];
    let party = entry.party.as_ref().expect("the archived organisation");
    assert_eq!(party.oin, SCHOOL);
    assert_eq!(party.name, school_name);
    assert_eq!(entry.archived_at_unix_ms, archived_at);
    assert_eq!(entry.reason, proto::ArchiveReason::RiskGone as i32);
    let listed = all_matches(&ggd).await;
    assert_eq!(listed.matches, vec![]);
    assert_eq!(listed.historical, vec![history.clone()]);
    assert_eq!(vt_sees(&federation, CHILD).await, [GGD]);

    // The archived organisation is not told. Its next signal on the child gets the current
    // match with the GGD as its first notice, and no history of its own.
    let school_again = register_ok(&mut school, worry(CHILD, &[])).await;
    let matched = expect_match(first_about(&mut at_school, &school_again).await);
    assert_eq!(party_oins(&matched), [GGD]);
    assert!(all_matches(&school).await.historical.is_empty());
    let matched = expect_match(first_about(&mut at_ggd, &ggd_first).await);
    assert_eq!(party_oins(&matched), [SCHOOL]);

    // Unfounded, and the subject moved: forgotten, no history for the next signals.
    let huisarts_first = register_ok(&mut huisarts, worry(FATHER, &[])).await;
    withdraw(
        &mut huisarts,
        &huisarts_first,
        proto::WithdrawReason::Unfounded,
    )
    .await;
    let reclassering_first = register_ok(&mut reclassering, worry(FATHER, &[])).await;
    withdraw(
        &mut reclassering,
        &reclassering_first,
        proto::WithdrawReason::SubjectMoved,
    )
    .await;
    for (signal, reason) in [
        (&huisarts_first, "unfounded"),
        (&reclassering_first, "subject_moved"),
    ] {
        assert_eq!(removed_at_index(&federation, signal).await.reason, reason);
        assert!(
            index_events(&federation, AuditAction::PointerArchive, signal)
                .await
                .is_empty(),
            "{reason} is not archived"
        );
    }
    let reclassering_again = register_ok(&mut reclassering, worry(FATHER, &[])).await;
    let huisarts_again = register_ok(&mut huisarts, worry(FATHER, &[])).await;
    let matched = expect_match(first_about(&mut at_reclassering, &reclassering_again).await);
    assert_eq!(party_oins(&matched), [HUISARTS]);
    let matched = expect_match(first_about(&mut at_huisarts, &huisarts_again).await);
    assert_eq!(party_oins(&matched), [RECLASSERING]);

    // Clear the stage (unfounded, so nothing more is archived) before the years go by.
    for (client, signal) in [
        (&mut ggd, &ggd_first),
        (&mut school, &school_again),
        (&mut reclassering, &reclassering_again),
        (&mut huisarts, &huisarts_again),
    ] {
        withdraw(client, signal, proto::WithdrawReason::Unfounded).await;
        removed_at_index(&federation, signal).await;
    }

    // A day before the five years end, the archive still speaks.
    clock.set(UnixMillis(archive_ends - DAY));
    let huisarts_late = register_ok(&mut huisarts, worry(CHILD, &[])).await;
    let history = expect_history(first_about(&mut at_huisarts, &huisarts_late).await);
    assert_eq!(
        history
            .archived
            .iter()
            .map(|a| a.party.as_ref().expect("a party").oin.as_str())
            .collect::<Vec<_>>(),
        [SCHOOL]
    );
    withdraw(
        &mut huisarts,
        &huisarts_late,
        proto::WithdrawReason::Unfounded,
    )
    .await;
    removed_at_index(&federation, &huisarts_late).await;

    // At the end of the five years the index's own sweep removes the entry, audited.
    clock.set(UnixMillis(archive_ends));
    let swept = eventually("the archive entry is swept", || async {
        index_events(&federation, AuditAction::ArchiveExpire, &first)
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(swept.counterpart_oin, SCHOOL);
    assert_eq!(
        swept.actor.as_ref().expect("an actor").user,
        "kring:retention"
    );
    assert_eq!(swept.subjects, archived[0].subjects);
    assert_eq!(
        swept.reason,
        format!(
            "archive: 5 years ended at {}",
            UnixMillis(archive_ends).rfc3339()
        )
    );
    // A new signal on the child now hears of no history.
    let ggd_late = register_ok(&mut ggd, worry(CHILD, &[])).await;
    let huisarts_last = register_ok(&mut huisarts, worry(CHILD, &[])).await;
    let matched = expect_match(first_about(&mut at_ggd, &ggd_late).await);
    assert_eq!(party_oins(&matched), [HUISARTS]);
    let matched = expect_match(first_about(&mut at_huisarts, &huisarts_last).await);
    assert_eq!(party_oins(&matched), [GGD]);
    assert!(all_matches(&ggd).await.historical.is_empty());
    assert_reconciled(&federation).await;
    federation.shutdown().await.expect("a graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retraction_or_publication_without_a_known_reason_is_refused_and_changes_nothing() {
    let (_dir, federation, _clock) = start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let school_signal = register_ok(&mut school, worry(CHILD, &[])).await;
    register_ok(&mut ggd, worry(CHILD, &[])).await;
    matches_until(&ggd, "the GGD's match", |m| m.len() == 1).await;

    let mut index = IndexClient::new(
        peer_channel(&federation, "index", &identity(&federation, "school")).await,
    );
    for reason in [0, 7, -3] {
        let transaction = new_transaction();
        let request = in_transaction(
            proto::RetractRequest {
                message_id: kring::domain::MessageId::new().to_string(),
                transaction_id: transaction.clone(),
                signal_ref: school_signal.id.clone(),
                reason,
                withdrawn_at_unix_ms: None,
            },
            &transaction,
        );
        refused(
            index.retract(request).await,
            Code::InvalidArgument,
            "reason",
        );
        audited_refusal(
            &federation,
            "index",
            &transaction,
            AuditAction::PointerRetract,
            "invalid_argument",
            "reason",
        )
        .await;
    }
    let transaction = new_transaction();
    let request = in_transaction(
        proto::PublishRequest {
            message_id: kring::domain::MessageId::new().to_string(),
            transaction_id: transaction.clone(),
            signal_ref: SignalId::new().to_string(),
            subject: vec![7; 32],
            related: vec![],
            expires_at_unix_ms: UnixMillis(i64::MAX).0,
            expiry_reason: 9,
        },
        &transaction,
    );
    refused(
        index.publish(request).await,
        Code::InvalidArgument,
        "expiry_reason",
    );
    audited_refusal(
        &federation,
        "index",
        &transaction,
        AuditAction::PointerPublish,
        "invalid_argument",
        "expiry_reason",
    )
    .await;

    // Nothing changed: the school's pointer and the match stand, nothing was archived.
    assert_eq!(vt_sees(&federation, CHILD).await, [SCHOOL, GGD]);
    assert_eq!(party_oins(&list_matches(&ggd).await[0]), [SCHOOL]);
    assert!(
        events(&federation, "index", AuditAction::PointerArchive)
            .await
            .is_empty()
    );
    federation.shutdown().await.expect("a graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointers_of_one_household_expiring_in_one_sweep_end_every_match() {
    let (_dir, mut federation, clock) =
        start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut reclassering = client(&federation, RECLASSERING_SIGNALER).await;
    let mut at_ggd = watch(&mut ggd, 0).await;
    let mut at_reclassering = watch(&mut reclassering, 0).await;
    let (child_1, child_2, child_3, child_4) = (bsn(101), bsn(102), bsn(103), bsn(104));

    // One organisation, two children of one mother; two organisations, two children of one
    // father. All four are registered at the same instant: they expire at the same instant.
    let school_1 = register_ok(&mut school, worry(&child_1, &[(MOTHER, Relation::Parent)])).await;
    let school_2 = register_ok(&mut school, worry(&child_2, &[(MOTHER, Relation::Parent)])).await;
    let school_3 = register_ok(&mut school, worry(&child_3, &[(FATHER, Relation::Parent)])).await;
    let huisarts_4 = register_ok(
        &mut huisarts,
        worry(&child_4, &[(FATHER, Relation::Parent)]),
    )
    .await;
    let expiring = [
        (SCHOOL, &school_1),
        (SCHOOL, &school_2),
        (SCHOOL, &school_3),
        (HUISARTS, &huisarts_4),
    ];
    for (_, signal) in &expiring {
        assert_eq!(signal.expires_at_unix_ms, school_1.expires_at_unix_ms);
    }
    let index_store = federation.node("index").ledger().store().clone();
    let key = |oin_text: &str, signal: &proto::Signal| {
        (
            oin(oin_text),
            SignalId::parse(&signal.id).expect("a signal id"),
        )
    };
    for (oin_text, signal) in &expiring {
        let (organisation, id) = key(oin_text, signal);
        published(&federation, &organisation, &id).await;
    }

    // A day later, the GGD's signal on the mother and reclassering's on the father match them.
    clock.advance(DAY);
    let ggd_signal = register_ok(&mut ggd, worry(MOTHER, &[])).await;
    let reclassering_signal = register_ok(&mut reclassering, worry(FATHER, &[])).await;
    assert_eq!(party_oins(&next_match(&mut at_ggd).await), [SCHOOL]);
    assert_eq!(
        party_oins(&next_match(&mut at_reclassering).await),
        [SCHOOL, HUISARTS]
    );

    // The organisations are down, so no retraction comes: the index's own sweep removes all
    // four pointers, in one batch.
    federation.stop("school").await.expect("the school stops");
    federation
        .stop("huisarts")
        .await
        .expect("the huisarts stops");
    clock.set(UnixMillis(school_1.expires_at_unix_ms + 1));
    let mut expired = Vec::new();
    for (_, signal) in &expiring {
        expired.push(removed_at_index(&federation, signal).await);
    }
    for event in &expired {
        assert_eq!(event.reason, "retention_ended");
        assert_eq!(event.transaction_id, expired[0].transaction_id, "one sweep");
    }

    // The GGD's match with the school ends, and it lists no match.
    let ended = next_ended(&mut at_ggd).await;
    assert_eq!(ended.signal_id, ggd_signal.id);
    assert_eq!(ended.party.expect("the party").oin, SCHOOL);
    matches_until(&ggd, "the GGD's match ends", |m| m.is_empty()).await;

    // Reclassering's match ends with both organisations, and it lists no match with either.
    let mut ended = Vec::new();
    while ended.len() < 2 {
        if let Some(proto::match_event::Event::Ended(e)) =
            next_event(&mut at_reclassering).await.event
        {
            assert_eq!(e.signal_id, reclassering_signal.id);
            ended.push(e.party.expect("the party").oin);
        }
    }
    ended.sort();
    assert_eq!(ended, [SCHOOL, HUISARTS]);
    matches_until(&reclassering, "reclassering's match ends", |m| m.is_empty()).await;

    // The index holds no pointer and no parties for any of them, nor parties for the GGD's
    // and reclassering's signals.
    for (oin_text, signal) in expiring
        .iter()
        .copied()
        .chain([(GGD, &ggd_signal), (RECLASSERING, &reclassering_signal)])
    {
        let (organisation, id) = key(oin_text, signal);
        if oin_text == SCHOOL || oin_text == HUISARTS {
            assert_eq!(
                index_store.pointer(&organisation, &id).expect("reads"),
                None
            );
        }
        assert_eq!(
            index_store.parties(&organisation, &id).expect("reads"),
            None,
            "parties of {oin_text}'s signal"
        );
    }
    assert_eq!(vt_sees(&federation, MOTHER).await, [GGD]);
    assert_eq!(vt_sees(&federation, FATHER).await, [RECLASSERING]);
    federation.shutdown().await.expect("a graceful stop");
}

/// A publication as the school's node would send it, straight to the index.
fn raw_publication(
    subject: u8,
    expires_at: i64,
) -> (String, tonic::Request<proto::PublishRequest>) {
    let transaction = new_transaction();
    let request = in_transaction(
        proto::PublishRequest {
            message_id: kring::domain::MessageId::new().to_string(),
            transaction_id: transaction.clone(),
            signal_ref: SignalId::new().to_string(),
            subject: vec![subject; 32],
            related: vec![],
            expires_at_unix_ms: expires_at,
            expiry_reason: proto::ExpiryReason::Retention as i32,
        },
        &transaction,
    );
    (transaction, request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_expiring_beyond_two_years_and_a_day_is_refused_and_changes_nothing() {
    let (_dir, federation, clock) = start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    register_ok(&mut ggd, worry(CHILD, &[])).await;
    matches_until(&ggd, "the GGD's match", |m| m.len() == 1).await;
    let index_store = federation.node("index").ledger().store().clone();
    let mut index = IndexClient::new(
        peer_channel(&federation, "index", &identity(&federation, "school")).await,
    );
    // The two-year retention period and one day for the members' clocks, from the index's.
    let latest = clock.now().0 + RETENTION + DAY;

    for expires_at in [latest + 1, latest + 400 * DAY, i64::MAX] {
        let (transaction, request) = raw_publication(7, expires_at);
        let signal = SignalId::parse(&request.get_ref().signal_ref).expect("a signal id");
        let status = refused(
            index.publish(request).await,
            Code::InvalidArgument,
            "expires_at_unix_ms",
        );
        assert!(
            status
                .message()
                .contains("731 days after the index's clock"),
            "{status:?}"
        );
        audited_refusal(
            &federation,
            "index",
            &transaction,
            AuditAction::PointerPublish,
            "invalid_argument",
            "expires_at_unix_ms",
        )
        .await;
        assert_eq!(
            index_store
                .pointer(&oin(SCHOOL), &signal)
                .expect("the index's store reads"),
            None
        );
    }
    // Nothing changed: the school's pointer and the match stand, and no one else is named.
    assert_eq!(vt_sees(&federation, CHILD).await, [SCHOOL, GGD]);
    assert_eq!(party_oins(&list_matches(&ggd).await[0]), [SCHOOL]);

    // At the limit itself, the pointer is taken.
    let (_, request) = raw_publication(8, latest);
    let signal = SignalId::parse(&request.get_ref().signal_ref).expect("a signal id");
    index
        .publish(request)
        .await
        .expect("the publication is taken");
    let pointer = index_store
        .pointer(&oin(SCHOOL), &signal)
        .expect("the index's store reads")
        .expect("the pointer is held");
    assert_eq!(pointer.expires_at, UnixMillis(latest));
    federation.shutdown().await.expect("a graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_that_reaches_the_index_after_its_expiry_is_acknowledged_and_ignored() {
    let (_dir, mut federation, clock) =
        start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut at_ggd = watch(&mut ggd, 0).await;

    // Noon (UTC) on 10 January next year; the GGD's signal on the child is at the index.
    let year = year_of(clock.now().0) + 1;
    clock.set(UnixMillis(utc(year, 1, 10, 12)));
    let ggd_signal = register_ok(&mut ggd, worry(CHILD, &[])).await;
    let ggd_id = SignalId::parse(&ggd_signal.id).expect("a signal id");
    published(&federation, &oin(GGD), &ggd_id).await;

    // The index is down when the school registers a signal that ends tonight: its
    // publication waits in the school's outbox, and the signal expires there.
    federation.stop("index").await.expect("the index stops");
    let school_signal = register_ok(
        &mut school,
        proto::RegisterRequest {
            age_range_ends_on: Some(format!("{year}-01-11")),
            ..worry(CHILD, &[])
        },
    )
    .await;
    clock.set(UnixMillis(school_signal.expires_at_unix_ms + 1));
    eventually("the school's signal expires", || async {
        signals_of(&school).await.is_empty().then_some(())
    })
    .await;

    // Back up, the index takes the late publication (so the school's outbox stops retrying)
    // but creates no pointer, match or notice; it records why. The retraction that follows
    // finds nothing.
    restart(&mut federation, "index", std::sync::Arc::new(clock.clone())).await;
    let object = format!("signal:{}", school_signal.id);
    let ignored = eventually("the late publication is recorded", || async {
        events(&federation, "index", AuditAction::PointerPublish)
            .await
            .into_iter()
            .find(|e| e.object == object)
    })
    .await;
    assert_eq!(ignored.counterpart_oin, SCHOOL);
    assert_eq!(
        ignored.reason,
        format!(
            "ignored: expired at {year}-01-10T23:00:00.000Z, before it reached the index at {}",
            UnixMillis(school_signal.expires_at_unix_ms + 1).rfc3339()
        )
    );
    eventually("the retraction finds nothing", || async {
        index_events(&federation, AuditAction::PointerRetract, &school_signal)
            .await
            .into_iter()
            .find(|e| e.reason == "age_range_ended; no pointer held: already removed")
    })
    .await;
    let school_id = SignalId::parse(&school_signal.id).expect("a signal id");
    let index_store = federation.node("index").ledger().store().clone();
    assert_eq!(
        index_store
            .pointer(&oin(SCHOOL), &school_id)
            .expect("the index's store reads"),
        None
    );
    eventually("the school's outbox is empty", || async {
        let outbox = federation
            .node("school")
            .ledger()
            .store()
            .outbox(16)
            .expect("the school's store reads");
        outbox.is_empty().then_some(())
    })
    .await;

    // The GGD was never told of the school: notices to it arrive in the order queued, and its
    // first is the match with the huisarts, who comes after.
    register_ok(&mut huisarts, worry(CHILD, &[])).await;
    let first = expect_match(first_about(&mut at_ggd, &ggd_signal).await);
    assert_eq!(party_oins(&first), [HUISARTS]);
    assert_eq!(party_oins(&list_matches(&ggd).await[0]), [HUISARTS]);
    federation.shutdown().await.expect("a graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_runs_from_the_withdrawal_not_from_when_the_index_hears_of_it() {
    let (_dir, mut federation, clock) =
        start_manual_for_years(&demo_members(), 10, fast_sweeps).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut at_ggd = watch(&mut ggd, 0).await;
    let first = register_ok(&mut school, worry(CHILD, &[])).await;
    let second = register_ok(&mut school, worry(MOTHER, &[])).await;
    for signal in [&first, &second] {
        let id = SignalId::parse(&signal.id).expect("a signal id");
        published(&federation, &oin(SCHOOL), &id).await;
    }

    // A withdrawal time more than a day ahead of the index's clock is refused, and the pointer
    // stays.
    let mut index = IndexClient::new(
        peer_channel(&federation, "index", &identity(&federation, "school")).await,
    );
    let transaction = new_transaction();
    let status = refused(
        index
            .retract(in_transaction(
                proto::RetractRequest {
                    message_id: kring::domain::MessageId::new().to_string(),
                    transaction_id: transaction.clone(),
                    signal_ref: second.id.clone(),
                    reason: proto::RetractReason::RiskGone as i32,
                    withdrawn_at_unix_ms: Some(clock.now().0 + DAY + 1),
                },
                &transaction,
            ))
            .await,
        Code::InvalidArgument,
        "withdrawn_at_unix_ms",
    );
    assert!(status.message().contains("1 day"), "{status:?}");
    // So is one before 1970 (five years from the start of time is no date the index can
    // keep), and the index goes on answering.
    let before_time = new_transaction();
    refused(
        index
            .retract(in_transaction(
                proto::RetractRequest {
                    message_id: kring::domain::MessageId::new().to_string(),
                    transaction_id: before_time.clone(),
                    signal_ref: second.id.clone(),
                    reason: proto::RetractReason::RiskGone as i32,
                    withdrawn_at_unix_ms: Some(i64::MIN),
                },
                &before_time,
            ))
            .await,
        Code::InvalidArgument,
        "withdrawn_at_unix_ms: must be a time since 1970",
    );
    audited_refusal(
        &federation,
        "index",
        &transaction,
        AuditAction::PointerRetract,
        "invalid_argument",
        "withdrawn_at_unix_ms",
    )
    .await;
    assert!(
        index_events(&federation, AuditAction::PointerArchive, &second)
            .await
            .is_empty()
    );
    assert_eq!(vt_sees(&federation, MOTHER).await, [SCHOOL]);

    // One withdrawn more than five years ago (a member's faulty clock) is removed and not
    // archived at all.
    let transaction = new_transaction();
    index
        .retract(in_transaction(
            proto::RetractRequest {
                message_id: kring::domain::MessageId::new().to_string(),
                transaction_id: transaction.clone(),
                signal_ref: second.id.clone(),
                reason: proto::RetractReason::RiskGone as i32,
                withdrawn_at_unix_ms: Some(0),
            },
            &transaction,
        ))
        .await
        .expect("the retraction is taken");
    let archived = index_events(&federation, AuditAction::PointerArchive, &second).await;
    assert_eq!(archived.len(), 1);
    assert_eq!(
        archived[0].reason,
        "risk_gone: not kept, its five years ended at 1975-01-01T00:00:00.000Z"
    );
    assert!(vt_sees(&federation, MOTHER).await.is_empty());

    // The index is down when the school withdraws; the retraction reaches it two days later.
    federation.stop("index").await.expect("the index stops");
    clock.advance(DAY);
    let withdrawn_at = clock.now().0;
    withdraw(&mut school, &first, proto::WithdrawReason::RiskGone).await;
    clock.advance(2 * DAY);
    restart(&mut federation, "index", std::sync::Arc::new(clock.clone())).await;
    let archived = eventually("the index archives the school's pointer", || async {
        index_events(&federation, AuditAction::PointerArchive, &first)
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(archived.time_unix_ms, clock.now().0, "archived on arrival");
    assert_eq!(
        archived.reason,
        format!(
            "risk_gone: kept until {}",
            UnixMillis(five_years_after(withdrawn_at)).rfc3339()
        )
    );

    // A new signal on the child hears when the school withdrew.
    let ggd_signal = register_ok(&mut ggd, worry(CHILD, &[])).await;
    let history = expect_history(first_about(&mut at_ggd, &ggd_signal).await);
    assert_eq!(history.archived.len(), 1);
    assert_eq!(history.archived[0].archived_at_unix_ms, withdrawn_at);

    // Five years after the withdrawal, the entry is swept.
    clock.set(UnixMillis(five_years_after(withdrawn_at)));
    eventually("the archive entry is swept", || async {
        index_events(&federation, AuditAction::ArchiveExpire, &first)
            .await
            .into_iter()
            .next()
    })
    .await;
    federation.shutdown().await.expect("a graceful stop");
}
