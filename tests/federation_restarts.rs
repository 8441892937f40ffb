//! Restarts in the middle of a flow: the index down while organisations register, a source
//! down while its match forms and its coordinator changes. What was acknowledged waits in an
//! outbox and is delivered when the peer is back; nothing is lost, and a message delivered
//! twice changes nothing the second time.

mod common_federation;

use std::sync::Arc;

use common_federation::*;
use kring::api::proto;
use kring::clock::{SharedClock, SystemClock};
use kring::demo::demo_members;
use kring::devnet::RunningFederation;
use kring::domain::{IndexNotice, OutboxBody, OutboxMessage};
use proto::Relation;

fn outbox(federation: &RunningFederation, node: &str) -> Vec<OutboxMessage> {
    federation
        .node(node)
        .ledger()
        .store()
        .outbox(1024)
        .expect("the outbox is readable")
}

async fn outbox_empties(federation: &RunningFederation, node: &str) {
    eventually(&format!("{node}'s outbox is delivered"), || async {
        outbox(federation, node).is_empty().then_some(())
    })
    .await;
}

fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The publication of `signal` waiting in a node's outbox.
fn publication(messages: &[OutboxMessage], signal: &str) -> OutboxMessage {
    messages
        .iter()
        .find(|m| matches!(&m.body, OutboxBody::PublishPointer { signal: s, .. } if s.to_string() == signal))
        .cloned()
        .unwrap_or_else(|| panic!("no publication of {signal} in {messages:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_while_the_index_is_down_reach_every_party_once_it_is_back() {
    let (_dir, mut federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    let mut at_school = watch(&mut school, 0).await;
    let mut at_ggd = watch(&mut ggd, 0).await;

    federation.stop("index").await.unwrap();
    // Both registrations are acknowledged with the index down; their publications wait.
    let school_signal = register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    let ggd_signal = register_ok(&mut ggd, worry(MOTHER, &[])).await;
    let waiting = publication(&outbox(&federation, "school"), &school_signal.id);
    publication(&outbox(&federation, "ggd"), &ggd_signal.id);

    restart(&mut federation, "index", system()).await;
    let school_match = next_match(&mut at_school).await;
    assert_eq!(school_match.signal_id, school_signal.id);
    assert_eq!(party_oins(&school_match), [GGD]);
    let ggd_match = next_match(&mut at_ggd).await;
    assert_eq!(ggd_match.signal_id, ggd_signal.id);
    assert_eq!(party_oins(&ggd_match), [SCHOOL]);
    outbox_empties(&federation, "school").await;
    outbox_empties(&federation, "ggd").await;
    outbox_empties(&federation, "index").await;

    // The school's deliverer, restarted after a crash, might send the same publication again:
    // the index knows its id and changes nothing.
    let OutboxBody::PublishPointer {
        signal,
        subject,
        related,
        expires_at,
        expiry_reason,
    } = &waiting.body
    else {
        unreachable!()
    };
    let mut index = IndexClient::new(
        peer_channel(&federation, "index", &identity(&federation, "school")).await,
    );
    let again = index
        .publish(proto::PublishRequest {
            message_id: waiting.id.to_string(),
            transaction_id: waiting.transaction.to_string(),
            signal_ref: signal.to_string(),
            subject: subject.0.to_vec(),
            related: related
                .iter()
                .map(kring::api::convert::linked_person)
                .collect(),
            expires_at_unix_ms: expires_at.0,
            expiry_reason: kring::api::convert::expiry_reason_to_proto(*expiry_reason) as i32,
        })
        .await
        .expect("a repeated publication is acknowledged")
        .into_inner();
    assert!(again.duplicate, "the index recognises the message id");
    // Nobody is told again: the GGD's next notice is the huisarts's arrival.
    register_ok(&mut huisarts, worry(MOTHER, &[])).await;
    let next = next_match(&mut at_ggd).await;
    assert_eq!(party_oins(&next), [SCHOOL, HUISARTS]);
    let publishes = events(&federation, "index", proto::AuditAction::PointerPublish).await;
    assert_eq!(
        publishes.len(),
        3,
        "one publication each, the repeat not among them"
    );
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_down_mid_flow_receives_every_notice_when_it_returns() {
    let (_dir, mut federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut lokaal_team = client(&federation, LT_COORDINATOR).await;
    let school_signal = register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    outbox_empties(&federation, "school").await;

    // The school goes down. Meanwhile the GGD registers on the mother and the local team
    // takes regie: the GGD hears at once, the school's notices wait at the index.
    federation.stop("school").await.unwrap();
    let mut at_ggd = watch(&mut ggd, 0).await;
    register_ok(&mut ggd, worry(MOTHER, &[])).await;
    assert_eq!(party_oins(&next_match(&mut at_ggd).await), [SCHOOL]);
    lokaal_team
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: MOTHER.into(),
        })
        .await
        .expect("regie is claimed while the school is down");
    next_regie(&mut at_ggd).await;
    let waiting: Vec<OutboxMessage> = outbox(&federation, "index")
        .into_iter()
        .filter(|m| matches!(&m.body, OutboxBody::Notice { to, .. } if to.as_str() == SCHOOL))
        .collect();
    assert_eq!(
        waiting.len(),
        2,
        "the match and the regie change wait for the school"
    );

    // Back, the school finds both, in order, on its stream and in its matches.
    restart(&mut federation, "school", system()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut at_school = watch(&mut school, 0).await;
    let matched = next_match(&mut at_school).await;
    assert_eq!(matched.signal_id, school_signal.id);
    assert_eq!(party_oins(&matched), [GGD]);
    let regie = next_regie(&mut at_school)
        .await
        .regie
        .expect("a coordinator");
    assert_eq!(regie.holder_oin, LOKAAL_TEAM);
    let listed = list_matches(&school).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].regie.as_ref().unwrap().holder_oin, LOKAAL_TEAM);
    outbox_empties(&federation, "index").await;

    // The index's deliverer, restarted, might deliver a notice again: the school answers
    // "duplicate" and keeps one copy.
    let cursor = federation
        .node("school")
        .ledger()
        .store()
        .last_notice_cursor()
        .unwrap();
    let OutboxBody::Notice {
        notice:
            IndexNotice::Match {
                signal,
                parties,
                household,
                regie,
            },
        ..
    } = &waiting[0].body
    else {
        panic!("the match waited first: {waiting:#?}");
    };
    assert!(regie.is_none());
    let again = FederationClient::new(
        peer_channel(&federation, "school", &identity(&federation, "index")).await,
    )
    .deliver(proto::DeliverRequest {
        message_id: waiting[0].id.to_string(),
        transaction_id: waiting[0].transaction.to_string(),
        body: Some(proto::deliver_request::Body::MatchNotice(
            proto::MatchNotice {
                match_id: format!("match:{signal}"),
                signal_ref: signal.to_string(),
                party_oins: parties.iter().map(ToString::to_string).collect(),
                household: *household,
                regie: None,
            },
        )),
    })
    .await
    .expect("a repeated notice is acknowledged")
    .into_inner();
    assert!(again.duplicate, "the school recognises the message id");
    let after = federation
        .node("school")
        .ledger()
        .store()
        .last_notice_cursor()
        .unwrap();
    assert_eq!(after, cursor, "no second copy in the school's feed");
    assert_eq!(
        list_matches(&school).await,
        listed,
        "the stale copy did not undo the regie the match holds"
    );
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}
