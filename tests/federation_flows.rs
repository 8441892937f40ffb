//! The federation's flows end to end, over mutual TLS between real nodes with real stores:
//! matches on the same person and through the household, parties joining and leaving by
//! withdrawal and by expiry, a notice stream that resumes from its cursor, regie, waakvlam,
//! the melding to Veilig Thuis, linked signals as each purpose allows, and break-glass with
//! its review at every source.

mod common_federation;

use common_federation::*;
use kring::api::proto;
use kring::demo::demo_members;
use kring::devnet::RunningFederation;
use kring::domain::UnixMillis;
use proto::{AuditAction, Category, MeldcodeStep, Relation, Ring, Severity};
use tonic::Code;

/// A party as its organisation appears in the viewer's directory: name, type, ring, contact.
fn assert_party(
    federation: &RunningFederation,
    viewer: &str,
    party: &proto::MatchParty,
    oin: &str,
) {
    let member = member(federation, viewer, oin);
    assert_eq!(party.oin, oin);
    assert_eq!(party.name, member.name, "the party's name");
    assert_eq!(party.org_type, member.org_type.to_string());
    let ring = match member.org_type.ring() {
        kring::domain::Ring::PlekkenVoorIedereen => Ring::PlekkenVoorIedereen,
        kring::domain::Ring::PlekkenVoorWieHetNodigHeeft => Ring::PlekkenVoorWieHetNodigHeeft,
        kring::domain::Ring::SpinInHetWeb => Ring::SpinInHetWeb,
        kring::domain::Ring::Melding => Ring::Melding,
        other => panic!("no party of ring {other:?} in these tests"),
    };
    assert_eq!(party.ring, ring as i32, "{oin}'s ring");
    let directory_contact = member.contact.expect("every member has a contact");
    let contact = party
        .contact
        .as_ref()
        .expect("a party comes with its contact");
    assert_eq!(contact.name, directory_contact.name);
    assert!(contact.name.starts_with("Aandachtsfunctionaris"));
    assert_eq!(Some(&contact.phone), directory_contact.phone.as_ref());
}

/// A match notice says who is involved and how to reach them, never what they worry about.
fn assert_no_signal_content(info: &proto::MatchInfo) {
    let shown = format!("{info:?}");
    for word in ["category", "severity", "meldcode", "registered"] {
        assert!(
            !shown.contains(word),
            "a match notice shows {word}: {shown}"
        );
    }
}

/// Reads notices until a match for which `done` holds, and returns it.
async fn match_where(
    watch: &mut Watch,
    done: impl Fn(&proto::MatchInfo) -> bool,
) -> proto::MatchInfo {
    loop {
        if let Some(proto::match_event::Event::Match(info)) = next_event(watch).await.event
            && done(&info)
        {
            return info;
        }
    }
}

/// The next two notices, a match ending and the match that remains (in either order).
async fn ended_and_remaining(watch: &mut Watch) -> (proto::MatchEndInfo, proto::MatchInfo) {
    use proto::match_event::Event;
    let (mut ended, mut remaining) = (None, None);
    for _ in 0..2 {
        match next_event(watch).await.event {
            Some(Event::Ended(info)) if ended.is_none() => ended = Some(info),
            Some(Event::Match(info)) if remaining.is_none() => remaining = Some(info),
            other => panic!("expected a match to end and the rest to remain, got {other:?}"),
        }
    }
    (ended.unwrap(), remaining.unwrap())
}

struct Family {
    school: proto::Signal,
    ggd: proto::Signal,
    reclassering: proto::Signal,
}

/// The demo's family: the school on the child (naming the mother), the GGD on the mother
/// (naming the child), reclassering on the father (the mother's ex-partner, the child's
/// parent). Returns once each of the three knows of the other two.
async fn register_family(federation: &RunningFederation) -> Family {
    let mut school = client(federation, SCHOOL_AF).await;
    let mut ggd = client(federation, GGD_SIGNALER).await;
    let mut reclassering = client(federation, RECLASSERING_SIGNALER).await;
    let family = Family {
        school: register_ok(
            &mut school,
            register(
                CHILD,
                &[(MOTHER, Relation::Parent)],
                Category::NietPluis,
                Severity::NietPluis,
            ),
        )
        .await,
        ggd: register_ok(
            &mut ggd,
            register(
                MOTHER,
                &[(CHILD, Relation::Child)],
                Category::Psychological,
                Severity::Zorg,
            ),
        )
        .await,
        reclassering: register_ok(
            &mut reclassering,
            register(
                FATHER,
                &[(MOTHER, Relation::ExPartner), (CHILD, Relation::Child)],
                Category::CoerciveControl,
                Severity::Ernstig,
            ),
        )
        .await,
    };
    for party in [&school, &ggd, &reclassering] {
        matches_until(
            party,
            "the family's three organisations know each other",
            |m| m.len() == 1 && m[0].parties.len() == 2,
        )
        .await;
    }
    family
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_person_match_tells_both_who_the_other_is_and_how_to_reach_them() {
    let (_dir, federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut at_school = watch(&mut school, 0).await;
    let mut at_huisarts = watch(&mut huisarts, 0).await;

    let school_signal = register_ok(
        &mut school,
        register(CHILD, &[], Category::Neglect, Severity::Zorg),
    )
    .await;
    // Someone else, unrelated: no match for anyone.
    register_ok(&mut ggd, worry(&bsn(1), &[])).await;
    let huisarts_signal = register_ok(
        &mut huisarts,
        register(CHILD, &[], Category::Physical, Severity::Acuut),
    )
    .await;

    let school_match = next_match(&mut at_school).await;
    assert_eq!(school_match.signal_id, school_signal.id);
    assert_eq!(school_match.match_id, format!("match:{}", school_signal.id));
    assert!(
        !school_match.household,
        "the same person, not the household"
    );
    assert_eq!(party_oins(&school_match), [HUISARTS]);
    assert_party(&federation, "school", &school_match.parties[0], HUISARTS);
    assert_eq!(school_match.regie, None);
    assert_no_signal_content(&school_match);

    let huisarts_match = next_match(&mut at_huisarts).await;
    assert_eq!(huisarts_match.signal_id, huisarts_signal.id);
    assert!(!huisarts_match.household);
    assert_eq!(party_oins(&huisarts_match), [SCHOOL]);
    assert_party(&federation, "huisarts", &huisarts_match.parties[0], SCHOOL);
    assert_no_signal_content(&huisarts_match);

    assert_eq!(list_matches(&school).await, vec![school_match]);
    assert_eq!(list_matches(&huisarts).await, vec![huisarts_match]);
    assert_eq!(
        list_matches(&ggd).await,
        vec![],
        "the GGD's person has no match"
    );

    // Both ends of the notice are on record with one transaction id: the school received it,
    // and the index recorded sending it once the school acknowledged.
    let received = events(&federation, "school", AuditAction::NoticeReceive).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].counterpart_oin, INDEX);
    eventually(
        "the index recorded the notice it sent the school",
        || async {
            let sent = events(&federation, "index", AuditAction::NoticeSend).await;
            sent.iter()
                .any(|e| {
                    e.transaction_id == received[0].transaction_id && e.counterpart_oin == SCHOOL
                })
                .then_some(())
        },
    )
    .await;
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_household_match_runs_through_the_links_and_a_third_organisation_updates_every_list() {
    let (_dir, federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut reclassering = client(&federation, RECLASSERING_SIGNALER).await;
    let huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut at_school = watch(&mut school, 0).await;
    let mut at_ggd = watch(&mut ggd, 0).await;
    let mut at_reclassering = watch(&mut reclassering, 0).await;

    // The school names the mother; the GGD's signal is on the mother alone.
    let school_signal = register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    let ggd_signal = register_ok(
        &mut ggd,
        register(MOTHER, &[], Category::Psychological, Severity::Zorg),
    )
    .await;
    let school_match = next_match(&mut at_school).await;
    assert!(
        school_match.household,
        "through the mother the school named"
    );
    assert_eq!(party_oins(&school_match), [GGD]);
    assert_party(&federation, "school", &school_match.parties[0], GGD);
    let ggd_match = next_match(&mut at_ggd).await;
    assert_eq!(ggd_match.signal_id, ggd_signal.id);
    assert!(ggd_match.household);
    assert_eq!(party_oins(&ggd_match), [SCHOOL]);
    assert_party(&federation, "ggd", &ggd_match.parties[0], SCHOOL);

    // Reclassering joins through the mother, its client's ex-partner.
    let reclassering_signal = register_ok(
        &mut reclassering,
        register(
            FATHER,
            &[(MOTHER, Relation::ExPartner)],
            Category::CoerciveControl,
            Severity::Ernstig,
        ),
    )
    .await;
    let joined = next_match(&mut at_reclassering).await;
    assert_eq!(joined.signal_id, reclassering_signal.id);
    assert!(joined.household);
    assert_eq!(party_oins(&joined), [SCHOOL, GGD]);
    assert_party(&federation, "reclassering", &joined.parties[0], SCHOOL);
    assert_party(&federation, "reclassering", &joined.parties[1], GGD);
    let school_update = next_match(&mut at_school).await;
    assert_eq!(school_update.signal_id, school_signal.id);
    assert_eq!(party_oins(&school_update), [GGD, RECLASSERING]);
    assert_party(
        &federation,
        "school",
        &school_update.parties[1],
        RECLASSERING,
    );
    let ggd_update = next_match(&mut at_ggd).await;
    assert_eq!(party_oins(&ggd_update), [SCHOOL, RECLASSERING]);
    for info in [&joined, &school_update, &ggd_update] {
        assert_no_signal_content(info);
    }

    // Each organisation's list holds its one match with the whole current party list.
    assert_eq!(list_matches(&school).await, vec![school_update]);
    assert_eq!(list_matches(&ggd).await, vec![ggd_update]);
    assert_eq!(list_matches(&reclassering).await, vec![joined]);
    assert_eq!(list_matches(&huisarts).await, vec![]);
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_ends_the_match_for_the_others_and_updates_every_list() {
    let (_dir, federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut reclassering = client(&federation, RECLASSERING_SIGNALER).await;
    let mut at_school = watch(&mut school, 0).await;
    let mut at_reclassering = watch(&mut reclassering, 0).await;
    let family = register_family(&federation).await;
    match_where(&mut at_school, |m| m.parties.len() == 2).await;
    match_where(&mut at_reclassering, |m| m.parties.len() == 2).await;

    ggd.signals
        .withdraw(proto::WithdrawRequest {
            signal_id: family.ggd.id.clone(),
            reason: proto::WithdrawReason::Unfounded as i32,
        })
        .await
        .expect("the GGD withdraws its signal");

    for (watch, signal, remaining) in [
        (&mut at_school, &family.school, RECLASSERING),
        (&mut at_reclassering, &family.reclassering, SCHOOL),
    ] {
        let (ended, rest) = ended_and_remaining(watch).await;
        assert_eq!(ended.signal_id, signal.id);
        assert_eq!(ended.match_id, format!("match:{}", signal.id));
        let party = ended.party.expect("the party that left");
        assert_eq!(party.oin, GGD);
        assert_eq!(party.name, "GGD Gelderland-Zuid");
        assert_eq!(rest.signal_id, signal.id);
        assert_eq!(party_oins(&rest), [remaining]);
    }
    let listed = list_matches(&school).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(party_oins(&listed[0]), [RECLASSERING]);
    let listed = list_matches(&reclassering).await;
    assert_eq!(party_oins(&listed[0]), [SCHOOL]);
    assert_eq!(
        list_matches(&ggd).await,
        vec![],
        "the withdrawn signal's match is gone at its own organisation too"
    );

    // The last other party leaves: the school's match ends altogether.
    reclassering
        .signals
        .withdraw(proto::WithdrawRequest {
            signal_id: family.reclassering.id.clone(),
            reason: proto::WithdrawReason::RiskGone as i32,
        })
        .await
        .expect("reclassering withdraws");
    let ended = next_ended(&mut at_school).await;
    assert_eq!(ended.party.unwrap().oin, RECLASSERING);
    assert_eq!(list_matches(&school).await, vec![]);
    assert_eq!(list_matches(&reclassering).await, vec![]);

    // The index recorded each retraction with the withdrawing organisation's transaction.
    let retracted = events(&federation, "index", AuditAction::PointerRetract).await;
    let counterparts: Vec<&str> = retracted
        .iter()
        .map(|e| e.counterpart_oin.as_str())
        .collect();
    assert_eq!(counterparts, [GGD, RECLASSERING]);
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_at_the_source_or_at_the_index_ends_the_match_at_every_party() {
    const RETENTION: i64 = 7 * UnixMillis::DAY;
    let (_dir, federation, clock) = start_manual(&demo_members(), |node| {
        node.config.signal_retention_millis = RETENTION;
    })
    .await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut reclassering = client(&federation, RECLASSERING_SIGNALER).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut at_ggd = watch(&mut ggd, 0).await;
    let mut at_reclassering = watch(&mut reclassering, 0).await;

    // Day 0 the school, day 2 the GGD, day 4 reclassering: three different expiries.
    let school_signal = register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    clock.advance(2 * UnixMillis::DAY);
    let ggd_signal = register_ok(&mut ggd, worry(MOTHER, &[(CHILD, Relation::Child)])).await;
    clock.advance(2 * UnixMillis::DAY);
    register_ok(
        &mut reclassering,
        worry(FATHER, &[(MOTHER, Relation::ExPartner)]),
    )
    .await;
    match_where(&mut at_ggd, |m| m.parties.len() == 2).await;
    match_where(&mut at_reclassering, |m| m.parties.len() == 2).await;

    // Day 7: the school's signal expires; the school's own sweep retracts it.
    clock.advance(3 * UnixMillis::DAY + 60_000);
    assert_eq!(federation.node("school").sweep().await.unwrap(), 1);
    for (watch, remaining) in [(&mut at_ggd, RECLASSERING), (&mut at_reclassering, GGD)] {
        let (ended, rest) = ended_and_remaining(watch).await;
        assert_eq!(ended.party.unwrap().oin, SCHOOL);
        assert_eq!(party_oins(&rest), [remaining]);
    }
    assert_eq!(
        list_matches(&school).await,
        vec![],
        "the expired signal's match is gone"
    );
    let expired = events(&federation, "school", AuditAction::SignalExpire).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].object, format!("signal:{}", school_signal.id));

    // Day 9: the GGD's signal expires. The GGD has not swept yet, but the index does not wait
    // for it: its own sweep drops the pointer and tells reclassering.
    clock.advance(2 * UnixMillis::DAY);
    federation.node("index").sweep().await.unwrap();
    let ended = next_ended(&mut at_reclassering).await;
    assert_eq!(ended.party.unwrap().oin, GGD);
    assert_eq!(list_matches(&reclassering).await, vec![]);
    let pointer_expired = events(&federation, "index", AuditAction::PointerExpire).await;
    assert_eq!(pointer_expired.len(), 1);
    assert_eq!(pointer_expired[0].counterpart_oin, GGD);
    assert_eq!(
        pointer_expired[0].object,
        format!("signal:{}", ggd_signal.id)
    );

    // The GGD's own sweep then removes the signal and its match there; its retraction finds
    // nothing left at the index and tells nobody again: reclassering's next notice is a new
    // match, not a second end.
    assert_eq!(federation.node("ggd").sweep().await.unwrap(), 1);
    assert_eq!(list_matches(&ggd).await, vec![]);
    eventually("the GGD's retraction is delivered", || async {
        let retracted = events(&federation, "index", AuditAction::PointerRetract).await;
        retracted
            .iter()
            .any(|e| e.counterpart_oin == GGD)
            .then_some(())
    })
    .await;
    register_ok(&mut huisarts, worry(FATHER, &[])).await;
    let next = next_match(&mut at_reclassering).await;
    assert_eq!(party_oins(&next), [HUISARTS]);
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_matches_resumes_after_its_cursor_missing_nothing_and_repeating_nothing() {
    let (_dir, federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut reclassering = client(&federation, RECLASSERING_SIGNALER).await;
    let mut lokaal_team = client(&federation, LT_COORDINATOR).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;

    let mut first_watch = watch(&mut school, 0).await;
    register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    register_ok(&mut ggd, worry(MOTHER, &[])).await;
    let first = next_event(&mut first_watch).await;
    assert!(first.cursor > 0);
    assert!(matches!(
        first.event,
        Some(proto::match_event::Event::Match(_))
    ));
    drop(first_watch);

    // While the school is not watching: reclassering joins and the local team takes regie.
    register_ok(
        &mut reclassering,
        worry(FATHER, &[(CHILD, Relation::Child)]),
    )
    .await;
    lokaal_team
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: CHILD.into(),
        })
        .await
        .expect("the local team claims regie");
    matches_until(&school, "both notices reached the school", |m| {
        m.len() == 1 && m[0].parties.len() == 2 && m[0].regie.is_some()
    })
    .await;

    // Resuming after the first cursor gives exactly the two missed notices, in order.
    let mut resumed = watch(&mut school, first.cursor).await;
    let second = next_event(&mut resumed).await;
    assert_eq!(second.cursor, first.cursor + 1);
    let Some(proto::match_event::Event::Match(joined)) = &second.event else {
        panic!("expected reclassering's arrival, got {second:?}");
    };
    assert_eq!(party_oins(joined), [GGD, RECLASSERING]);
    let third = next_event(&mut resumed).await;
    assert_eq!(third.cursor, first.cursor + 2);
    let Some(proto::match_event::Event::RegieChanged(regie)) = &third.event else {
        panic!("expected the regie change, got {third:?}");
    };
    assert_eq!(regie.regie.as_ref().unwrap().holder_oin, LOKAAL_TEAM);

    // Nothing is repeated: the next event on the resumed stream is a new one.
    register_ok(&mut huisarts, worry(CHILD, &[])).await;
    let fourth = next_event(&mut resumed).await;
    assert_eq!(fourth.cursor, first.cursor + 3);
    let Some(proto::match_event::Event::Match(with_huisarts)) = &fourth.event else {
        panic!("expected the huisarts's arrival, got {fourth:?}");
    };
    assert_eq!(party_oins(with_huisarts), [GGD, RECLASSERING, HUISARTS]);

    // And from the beginning, the whole history in order.
    let mut replay = watch(&mut school, 0).await;
    for expected in [&first, &second, &third, &fourth] {
        assert_eq!(&next_event(&mut replay).await, expected);
    }
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regie_is_one_coordinator_visible_to_every_party_and_claimed_by_one_at_a_time() {
    let (_dir, federation) = start(&members_with_sportclub()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut lokaal_team = client(&federation, LT_COORDINATOR).await;
    let mut sportclub = client(&federation, ("sportclub", "t.trainer")).await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let mut at_school = watch(&mut school, 0).await;
    let mut at_ggd = watch(&mut ggd, 0).await;
    register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    register_ok(&mut ggd, worry(MOTHER, &[])).await;
    next_match(&mut at_school).await;
    next_match(&mut at_ggd).await;

    // The local team claims regie for the child: the whole household has its coordinator.
    let claimed = lokaal_team
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: CHILD.into(),
        })
        .await
        .expect("the local team claims regie")
        .into_inner();
    assert_eq!(claimed.regie.unwrap().holder_oin, LOKAAL_TEAM);
    for watch in [&mut at_school, &mut at_ggd] {
        let changed = next_regie(watch).await;
        let regie = changed.regie.expect("a coordinator");
        assert_eq!(regie.holder_oin, LOKAAL_TEAM);
        assert_eq!(regie.holder_name, "Lokaal team Arnhem-Oost");
    }
    assert_eq!(
        list_matches(&ggd).await[0]
            .regie
            .as_ref()
            .unwrap()
            .holder_oin,
        LOKAAL_TEAM,
        "the match carries its coordinator"
    );

    // A later match names the coordinator, to the newcomer as to the others.
    let mut at_huisarts = watch(&mut huisarts, 0).await;
    register_ok(&mut huisarts, worry(CHILD, &[])).await;
    for info in [
        next_match(&mut at_huisarts).await,
        next_match(&mut at_school).await,
        next_match(&mut at_ggd).await,
    ] {
        let regie = info.regie.expect("the coordinator in the match notice");
        assert_eq!(regie.holder_oin, LOKAAL_TEAM);
        assert_eq!(regie.holder_name, "Lokaal team Arnhem-Oost");
    }
    let map = vt
        .cases
        .linked_signals(triage_of(MOTHER))
        .await
        .expect("Veilig Thuis's map")
        .into_inner();
    let regie = map.regie.expect("the map shows the coordinator");
    assert_eq!(regie.holder_oin, LOKAAL_TEAM);
    assert_eq!(regie.holder_name, "Lokaal team Arnhem-Oost");

    // One at a time: the school's coordinator is refused, naming who holds it.
    let second = school
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: MOTHER.into(),
        })
        .await;
    let status = refused(
        second,
        Code::FailedPrecondition,
        "regie: held by Lokaal team Arnhem-Oost (00000001820000006000)",
    );
    let transaction = transaction_of(status.metadata());
    audited_refusal(
        &federation,
        "index",
        &transaction,
        AuditAction::RegieClaim,
        "failed_precondition",
        "held by Lokaal team Arnhem-Oost",
    )
    .await;
    audited_refusal(
        &federation,
        "school",
        &transaction,
        AuditAction::RegieClaim,
        "failed_precondition",
        "held by Lokaal team Arnhem-Oost",
    )
    .await;
    // Nor can the school release what it does not hold.
    refused(
        school
            .cases
            .release_regie(proto::CaseRequest {
                person_bsn: CHILD.into(),
            })
            .await,
        Code::FailedPrecondition,
        "00000001820000001000 holds no regie",
    );

    // A sports club may not coordinate a family at all (the policy's regie_excluded).
    let status = refused(
        sportclub
            .cases
            .claim_regie(proto::CaseRequest { person_bsn: bsn(7) })
            .await,
        Code::PermissionDenied,
        "organisation type sports_club may not hold regie",
    );
    let transaction = transaction_of(status.metadata());
    let at_index = audited_refusal(
        &federation,
        "index",
        &transaction,
        AuditAction::RegieClaim,
        "permission_denied",
        "organisation type sports_club may not hold regie",
    )
    .await;
    assert_eq!(at_index.counterpart_oin, SPORTCLUB);
    audited_refusal(
        &federation,
        "sportclub",
        &transaction,
        AuditAction::RegieClaim,
        "permission_denied",
        "sports_club may not hold regie",
    )
    .await;

    // Released, the regie is free for another coordinator.
    let released = lokaal_team
        .cases
        .release_regie(proto::CaseRequest {
            person_bsn: MOTHER.into(),
        })
        .await
        .expect("the holder releases regie")
        .into_inner();
    assert_eq!(released.regie, None);
    assert_eq!(next_regie(&mut at_ggd).await.regie, None);
    let claimed = school
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: CHILD.into(),
        })
        .await
        .expect("the school's coordinator claims the free regie")
        .into_inner();
    assert_eq!(claimed.regie.unwrap().holder_oin, SCHOOL);
    let changed = next_regie(&mut at_ggd)
        .await
        .regie
        .expect("a new coordinator");
    assert_eq!(changed.holder_oin, SCHOOL);
    assert_eq!(changed.holder_name, "Basisschool De Regenboog");
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waakvlam_alerts_the_coordinator_at_once_when_a_household_member_gets_a_new_signal() {
    let (_dir, federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let mut lokaal_team = client(&federation, LT_COORDINATOR).await;

    // The household the index knows: the child and the mother the school named.
    register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    eventually("the index holds the school's pointer", || async {
        let published = events(&federation, "index", AuditAction::PointerPublish).await;
        (!published.is_empty()).then_some(())
    })
    .await;

    // Veilig Thuis puts the household in follow-up for 90 days (via the child), the local
    // team for 60 (via the mother).
    let vt_entry = vt
        .cases
        .start_waakvlam(proto::StartWaakvlamLocalRequest {
            person_bsn: CHILD.into(),
            days: 90,
        })
        .await
        .expect("Veilig Thuis starts waakvlam")
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(vt_entry.coordinator_oin, VEILIG_THUIS);
    assert_eq!(vt_entry.persons.len(), 2, "the child and the mother");
    assert_eq!(
        vt_entry.until_unix_ms - vt_entry.started_unix_ms,
        90 * UnixMillis::DAY
    );
    assert_eq!(
        vt_entry.next_check_in_unix_ms - vt_entry.started_unix_ms,
        28 * UnixMillis::DAY,
        "the policy's check-in period"
    );
    assert_eq!(vt_entry.alerts, 0);
    let lt_entry = lokaal_team
        .cases
        .start_waakvlam(proto::StartWaakvlamLocalRequest {
            person_bsn: MOTHER.into(),
            days: 60,
        })
        .await
        .expect("the local team's coordinator starts waakvlam")
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(lt_entry.coordinator_oin, LOKAAL_TEAM);
    assert_eq!(lt_entry.persons.len(), 2);
    // A school may not (the policy names who follows up).
    refused(
        school
            .cases
            .start_waakvlam(proto::StartWaakvlamLocalRequest {
                person_bsn: CHILD.into(),
                days: 30,
            })
            .await,
        Code::PermissionDenied,
        "purpose waakvlam_follow_up: organisation type school may not ask",
    );

    let mut at_vt = watch(&mut vt, 0).await;
    let mut at_lokaal_team = watch(&mut lokaal_team, 0).await;
    // A signal on someone outside the household alerts nobody; one on the mother alerts both
    // coordinators, each about its own follow-up.
    register_ok(&mut huisarts, worry(&bsn(11), &[])).await;
    register_ok(&mut ggd, worry(MOTHER, &[])).await;
    for (watch, entry) in [(&mut at_vt, &vt_entry), (&mut at_lokaal_team, &lt_entry)] {
        let event = next_event(watch).await;
        let Some(proto::match_event::Event::WaakvlamAlert(alert)) = event.event else {
            panic!("expected a waakvlam alert, got {event:?}");
        };
        assert_eq!(alert.waakvlam_id, entry.id);
        let party = alert.party.expect("who registered");
        assert_eq!(party.oin, GGD);
        assert_eq!(party.name, "GGD Gelderland-Zuid");
        assert_eq!(alert.until_unix_ms, entry.until_unix_ms);
        assert!(
            entry.persons.contains(&alert.person),
            "the alert names a person of the follow-up, as the coordinator's node knows them"
        );
    }

    // Each coordinator lists its own follow-ups, with the next check-in and the alert.
    let listed = vt
        .cases
        .list_waakvlam(proto::ListWaakvlamLocalRequest {})
        .await
        .expect("Veilig Thuis lists its follow-ups")
        .into_inner()
        .entries;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, vt_entry.id);
    assert_eq!(listed[0].alerts, 1);
    assert_eq!(
        listed[0].next_check_in_unix_ms,
        vt_entry.next_check_in_unix_ms
    );
    assert_eq!(listed[0].until_unix_ms, vt_entry.until_unix_ms);
    let listed = lokaal_team
        .cases
        .list_waakvlam(proto::ListWaakvlamLocalRequest {})
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, lt_entry.id);
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_melding_goes_to_veilig_thuis_only_at_step_five_and_for_the_signals_subject() {
    let (_dir, mut federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let signal = register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    let report = |bsn: &str| proto::ReportRequest {
        signal_id: signal.id.clone(),
        subject_bsn: bsn.into(),
    };

    // Step 1, then step 4: not yet.
    for step in [None, Some(MeldcodeStep::Wegen)] {
        if let Some(step) = step {
            school
                .signals
                .update(proto::UpdateRequest {
                    signal_id: signal.id.clone(),
                    meldcode_step: Some(step as i32),
                    severity: None,
                    expected_version: 0,
                })
                .await
                .expect("the signal moves on in the meldcode");
        }
        refused_and_audited(
            &federation,
            "school",
            school.signals.report_to_veilig_thuis(report(CHILD)).await,
            Code::FailedPrecondition,
            AuditAction::MeldingSend,
            "meldcode_step",
        )
        .await;
    }
    school
        .signals
        .update(proto::UpdateRequest {
            signal_id: signal.id.clone(),
            meldcode_step: Some(MeldcodeStep::Beslissen as i32),
            severity: Some(Severity::Ernstig as i32),
            expected_version: 0,
        })
        .await
        .expect("step 5: beslissen");

    // The professional names the subject again; the mother is not this signal's subject.
    refused_and_audited(
        &federation,
        "school",
        school.signals.report_to_veilig_thuis(report(MOTHER)).await,
        Code::InvalidArgument,
        AuditAction::MeldingSend,
        "subject_bsn",
    )
    .await;

    let reported = school
        .signals
        .report_to_veilig_thuis(report(CHILD))
        .await
        .expect("the melding is accepted")
        .into_inner();
    assert_eq!(reported.veilig_thuis_oin, VEILIG_THUIS);
    assert_eq!(reported.signal_id, signal.id);
    let transaction = reported.transaction_id;

    let received = eventually("Veilig Thuis received the melding", || async {
        let meldingen = vt
            .cases
            .clone()
            .list_meldingen(proto::ListMeldingenRequest {})
            .await
            .expect("Veilig Thuis lists its meldingen")
            .into_inner()
            .meldingen;
        (!meldingen.is_empty()).then_some(meldingen)
    })
    .await;
    assert_eq!(
        received.len(),
        1,
        "only the accepted report reached Veilig Thuis"
    );
    assert_eq!(received[0].from_oin, SCHOOL);
    let melding = received[0].melding.clone().unwrap();
    assert_eq!(melding.signal_ref, signal.id);
    assert_eq!(melding.category, Category::NietPluis as i32);
    assert_eq!(melding.severity, Severity::Ernstig as i32);
    assert_eq!(melding.reported_by, "m.jansen");
    assert_eq!(melding.registered_at_unix_ms, signal.registered_at_unix_ms);
    assert_eq!(
        melding.contact_point.unwrap().name,
        "Aandachtsfunctionaris Basisschool De Regenboog"
    );
    // Veilig Thuis finds the person by it: the subject is the child of its own map.
    let map = vt
        .cases
        .linked_signals(proto::LinkedSignalsRequest {
            purpose: proto::Purpose::VtTriage as i32,
            person_bsn: CHILD.into(),
            household: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(melding.subject, map.asked);

    // Both sides audited the melding under the school's transaction id.
    let sent = eventually("the school recorded the delivery", || async {
        let sent: Vec<_> = events_of(&federation, "school", &transaction)
            .await
            .into_iter()
            .filter(|e| e.action == AuditAction::MeldingSend as i32)
            .collect();
        (sent.len() == 2).then_some(sent)
    })
    .await;
    assert!(
        sent.iter()
            .all(|e| e.outcome == proto::Outcome::Success as i32)
    );
    assert!(sent.iter().all(|e| e.counterpart_oin == VEILIG_THUIS));
    assert!(
        sent.iter()
            .all(|e| e.purpose == proto::Purpose::VtTriage as i32)
    );
    assert_eq!(sent[0].actor.as_ref().unwrap().user, "m.jansen");
    let received: Vec<_> = events_of(&federation, "veilig-thuis", &transaction)
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::MeldingReceive as i32)
        .collect();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].counterpart_oin, SCHOOL);
    assert_eq!(received[0].outcome, proto::Outcome::Success as i32);
    assert_eq!(received[0].legal_basis, proto::LegalBasis::Wmo526 as i32);
    assert_reconciled(&federation).await;
    let federation_p = federation_pseudonym(&federation, CHILD).await;
    let vt_config = federation.stop("veilig-thuis").await.unwrap();

    // Veilig Thuis keeps the subject as its own local pseudonym, like every organisation: read
    // with its data key, its store holds no federation pseudonym for the melding.
    {
        use kring::store::Store;
        let store =
            kring::store::SledStore::open(&vt_config.data_dir.join("store"), &vt_config.store)
                .expect("Veilig Thuis's stopped store");
        let kept = store.meldingen().expect("its meldingen");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].subject.0.to_vec(), melding.subject);
        assert!(kept[0].subject_is_local);
        assert_ne!(kept[0].subject, federation_p);
        // A melding kept before Veilig Thuis converted on arrival holds the federation
        // pseudonym; it is converted when read.
        store
            .apply(&[kring::store::Change::PutMelding(
                kring::domain::ReceivedMelding {
                    subject: federation_p,
                    subject_is_local: false,
                    ..kept[0].clone()
                },
            )])
            .expect("an older melding written back");
    }
    restart(
        &mut federation,
        "veilig-thuis",
        std::sync::Arc::new(kring::clock::SystemClock),
    )
    .await;
    let listed = client(&federation, VT_ANALYST)
        .await
        .cases
        .list_meldingen(proto::ListMeldingenRequest {})
        .await
        .expect("Veilig Thuis lists its meldingen")
        .into_inner()
        .meldingen;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].melding.as_ref().unwrap().subject, melding.subject);
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_signals_show_the_map_as_far_as_each_purpose_allows_and_survive_a_stopped_source() {
    let (_dir, mut federation) = start(&demo_members()).await;
    let family = register_family(&federation).await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let mut lokaal_team = client(&federation, LT_COORDINATOR).await;
    let ask = |purpose: proto::Purpose, bsn: &str, household: bool| proto::LinkedSignalsRequest {
        purpose: purpose as i32,
        person_bsn: bsn.into(),
        household,
    };

    // Veilig Thuis's triage of the child: the child, the mother and the father, each with the
    // signals about them, their relation to the child, and everything triage may see.
    let response = vt
        .cases
        .linked_signals(ask(proto::Purpose::VtTriage, CHILD, true))
        .await
        .expect("Veilig Thuis's triage map");
    let transaction = transaction_of(response.metadata());
    let map = response.into_inner();
    assert_eq!(map.purpose, proto::Purpose::VtTriage as i32);
    assert_eq!(map.transaction_id, transaction);
    assert!(!map.break_glass);
    assert!(map.unavailable.is_empty());
    let persons: Vec<(i32, Vec<&str>)> = map
        .persons
        .iter()
        .map(|p| {
            (
                p.relation,
                p.organisations.iter().map(|o| o.oin.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        persons,
        [
            (Relation::Unspecified as i32, vec![SCHOOL]),
            (Relation::Parent as i32, vec![GGD]),
            (Relation::Parent as i32, vec![RECLASSERING]),
        ],
        "the child first, then the parents, each with who holds a signal on them"
    );
    assert_eq!(map.persons[0].pseudonym, map.asked);
    let triage = |person: usize| {
        let organisation = &map.persons[person].organisations[0];
        assert_eq!(organisation.signals.len(), 1);
        organisation.signals[0].clone()
    };
    let expected = [
        (&family.school, Category::NietPluis, Severity::NietPluis),
        (&family.ggd, Category::Psychological, Severity::Zorg),
        (
            &family.reclassering,
            Category::CoerciveControl,
            Severity::Ernstig,
        ),
    ];
    for (person, (signal, category, severity)) in expected.iter().enumerate() {
        let shown = triage(person);
        assert_eq!(shown.signal_ref, signal.id);
        assert_eq!(shown.category, Some(*category as i32));
        assert_eq!(shown.severity, Some(*severity as i32));
        assert_eq!(shown.meldcode_step, Some(MeldcodeStep::Signalen as i32));
        assert_eq!(
            shown.registered_at_unix_ms,
            Some(signal.registered_at_unix_ms)
        );
        assert!(shown.contact_point.is_some());
    }
    let reclassering = &map.persons[2].organisations[0];
    assert_eq!(reclassering.name, "Reclassering Nederland, unit Arnhem");
    assert_eq!(reclassering.ring, Ring::PlekkenVoorWieHetNodigHeeft as i32);
    assert_eq!(
        reclassering.organisation_contact.as_ref().unwrap().name,
        "Aandachtsfunctionaris Reclassering Nederland, unit Arnhem"
    );
    // Every hop recorded the exchange with Veilig Thuis's transaction id.
    for (node, action) in [
        ("index", AuditAction::PointerLookup),
        ("school", AuditAction::SignalsFetch),
        ("ggd", AuditAction::SignalsFetch),
        ("reclassering", AuditAction::SignalsFetch),
        ("veilig-thuis", AuditAction::LinkedSignals),
    ] {
        let recorded = events_of(&federation, node, &transaction).await;
        let event = recorded
            .iter()
            .find(|e| e.action == action as i32)
            .unwrap_or_else(|| panic!("{node} recorded no {action:?} in {transaction}"));
        assert_eq!(event.purpose, proto::Purpose::VtTriage as i32, "{node}");
        assert_eq!(event.outcome, proto::Outcome::Success as i32, "{node}");
    }

    // Without the household: the child's own signals only.
    let own = vt
        .cases
        .linked_signals(ask(proto::Purpose::VtTriage, CHILD, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.persons.len(), 1);
    assert_eq!(own.persons[0].organisations[0].oin, SCHOOL);

    // The local team's coordination map: who is involved and how to reach them, no more.
    let coordination = lokaal_team
        .cases
        .linked_signals(ask(proto::Purpose::LocalTeamCoordination, CHILD, true))
        .await
        .expect("the local team's coordination map")
        .into_inner();
    let organisations: Vec<&str> = coordination
        .persons
        .iter()
        .flat_map(|p| p.organisations.iter().map(|o| o.oin.as_str()))
        .collect();
    assert_eq!(organisations, [SCHOOL, GGD, RECLASSERING]);
    for person in &coordination.persons {
        for organisation in &person.organisations {
            assert!(organisation.organisation_contact.is_some());
            for shown in &organisation.signals {
                assert!(shown.contact_point.is_some(), "the contact point is shown");
                assert_eq!(shown.category, None, "categories are withheld by policy");
                assert_eq!(shown.severity, None, "severities are withheld by policy");
                assert_eq!(shown.meldcode_step, None);
                assert_eq!(shown.registered_at_unix_ms, None);
            }
        }
    }

    // A source that is down is reported, and the rest of the map still comes back.
    federation.stop("reclassering").await.unwrap();
    let partial = vt
        .cases
        .linked_signals(ask(proto::Purpose::VtTriage, CHILD, true))
        .await
        .expect("a map despite a stopped source")
        .into_inner();
    assert_eq!(partial.unavailable.len(), 1);
    assert_eq!(partial.unavailable[0].oin, RECLASSERING);
    assert_eq!(
        partial.unavailable[0].name,
        "Reclassering Nederland, unit Arnhem"
    );
    assert!(partial.unavailable[0].reason.contains("unavailable"));
    let shown: Vec<&str> = partial
        .persons
        .iter()
        .flat_map(|p| p.organisations.iter().map(|o| o.oin.as_str()))
        .collect();
    assert_eq!(shown, [SCHOOL, GGD]);
    assert_eq!(
        partial.persons.len(),
        3,
        "the father is still in the household"
    );
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_shows_the_emergency_map_and_every_source_reviews_it_once() {
    let (_dir, federation) = start(&demo_members()).await;
    let family = register_family(&federation).await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let response = vt
        .cases
        .break_glass(proto::BreakGlassRequest {
            person_bsn: MOTHER.into(),
            reason: proto::BreakGlassReason::AcuteDangerAdult as i32,
        })
        .await
        .expect("break-glass always goes through for Veilig Thuis's analyst");
    let transaction = transaction_of(response.metadata());
    let map = response.into_inner();
    assert!(map.break_glass);
    assert_eq!(map.purpose, proto::Purpose::Emergency as i32);
    assert!(map.unavailable.is_empty());
    let shown: Vec<(&str, Option<i32>)> = map
        .persons
        .iter()
        .flat_map(|p| p.organisations.iter())
        .map(|o| (o.oin.as_str(), o.signals[0].category))
        .collect();
    assert_eq!(
        shown,
        [
            (GGD, Some(Category::Psychological as i32)),
            (SCHOOL, Some(Category::NietPluis as i32)),
            (RECLASSERING, Some(Category::CoerciveControl as i32)),
        ],
        "the mother first, then her household, with the emergency profile's fields"
    );

    let reviews = [
        (
            "school",
            &family.school,
            proto::ReviewOutcome::Justified,
            proto::ReviewReason::AcuteDangerConfirmed,
        ),
        (
            "ggd",
            &family.ggd,
            proto::ReviewOutcome::Justified,
            proto::ReviewReason::Proportionate,
        ),
        (
            "reclassering",
            &family.reclassering,
            proto::ReviewOutcome::Unjustified,
            proto::ReviewReason::ExcessiveScope,
        ),
    ];
    for (node, signal, outcome, reason) in reviews {
        let mut officer = officer(&federation, node).await;
        let queue = officer
            .audit
            .break_glass_queue(proto::BreakGlassQueueRequest {
                include_reviewed: false,
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(queue.len(), 1, "{node}'s officer has one access to review");
        let item = &queue[0];
        assert_eq!(item.transaction_id, transaction);
        assert_eq!(item.requester_oin, VEILIG_THUIS);
        assert_eq!(item.requester_name, "Veilig Thuis Gelderland-Midden");
        assert_eq!(item.requester_user, "l.smit");
        assert_eq!(item.requester_role, proto::Role::Analyst as i32);
        assert_eq!(
            item.reason,
            proto::BreakGlassReason::AcuteDangerAdult as i32
        );
        assert_eq!(
            item.signal_ids,
            std::slice::from_ref(&signal.id),
            "{node}'s own signal was shown"
        );
        assert_eq!(item.outcome, proto::ReviewOutcome::Unspecified as i32);
        let fetched = events_of(&federation, node, &transaction).await;
        assert!(
            fetched
                .iter()
                .any(|e| e.action == AuditAction::SignalsFetch as i32
                    && e.purpose == proto::Purpose::Emergency as i32
                    && e.reason.contains("break-glass: acute_danger_adult")),
            "{node} recorded the emergency disclosure: {fetched:#?}"
        );

        let review = proto::ReviewBreakGlassRequest {
            id: item.id.clone(),
            outcome: outcome as i32,
            reason: reason as i32,
        };
        let reviewed = officer
            .audit
            .review_break_glass(review.clone())
            .await
            .expect("the officer records an outcome")
            .into_inner()
            .item
            .unwrap();
        assert_eq!(reviewed.outcome, outcome as i32);
        assert_eq!(reviewed.review_reason, reason as i32);
        assert_eq!(reviewed.reviewed_by, FG);
        assert!(reviewed.reviewed_at_unix_ms > 0);

        refused_and_audited(
            &federation,
            node,
            officer.audit.review_break_glass(review).await,
            Code::FailedPrecondition,
            AuditAction::AuditBreakGlassReview,
            "reviewed already",
        )
        .await;
        let pending = officer
            .audit
            .break_glass_queue(proto::BreakGlassQueueRequest {
                include_reviewed: false,
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert!(
            pending.is_empty(),
            "{node}: a reviewed item leaves the queue"
        );
        let all = officer
            .audit
            .break_glass_queue(proto::BreakGlassQueueRequest {
                include_reviewed: true,
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(all, [reviewed]);
    }
    // An organisation whose data was not shown has nothing to review.
    let mut huisarts_officer = officer(&federation, "huisarts").await;
    let queue = huisarts_officer
        .audit
        .break_glass_queue(proto::BreakGlassQueueRequest {
            include_reviewed: true,
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(queue.is_empty());
    let at_vt = events_of(&federation, "veilig-thuis", &transaction).await;
    assert!(
        at_vt
            .iter()
            .any(|e| e.action == AuditAction::BreakGlass as i32
                && e.reason.contains("break-glass: acute_danger_adult")),
        "Veilig Thuis recorded its break-glass with the reason"
    );
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}
