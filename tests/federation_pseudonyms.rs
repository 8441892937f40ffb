//! The chain of pseudonym services: the federation pseudonym of a BSN is the OPRF under the
//! product of every service's key share, so no one service can compute or invert it alone; the
//! first service forwards along the chain so that no client ever holds one share's output; each
//! service limits every organisation's evaluations a minute and records how many it served for
//! whom, never the elements.

mod common_federation;
mod common_files;

use common_files::files_under;
use std::sync::Arc;

use common_federation::*;
use kring::api::proto;
use kring::demo::demo_members;
use kring::devnet::{DevMember, RunningFederation};
use kring::domain::{Bsn, Pseudonym};
use kring::pseudonym::{OprfPseudonymiser, Pseudonymiser, ServiceKey, oprf};
use tonic::Code;

/// The key share a pseudonym service created at its first start, read from its file.
fn key_share(federation: &RunningFederation, service: &str) -> ServiceKey {
    let path = pseudonym_key_file(federation, service);
    ServiceKey::read_or_create(&path).expect("the key share reads")
}

/// The pseudonym computed outside the federation with exactly these key shares, in order.
fn pseudonym_under(bsn: &str, shares: &[&ServiceKey]) -> Pseudonym {
    let blinded = oprf::blind(Bsn::parse(bsn).unwrap());
    let mut element = blinded.element().to_vec();
    for share in shares {
        element = share.evaluate(&[element]).expect("a valid element")[0].to_vec();
    }
    oprf::finalize(blinded, &element).expect("a valid evaluation")
}

/// `n` blinded elements of different BSNs, as an organisation sends them.
fn blinded(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| oprf::blind(Bsn::parse(&bsn(i)).unwrap()).element().to_vec())
        .collect()
}

fn evaluate(blinded: Vec<Vec<u8>>, on_behalf_of: &str) -> proto::EvaluateRequest {
    proto::EvaluateRequest {
        blinded,
        on_behalf_of: on_behalf_of.to_owned(),
    }
}

/// An Evaluate request in exchange `transaction`, as a peer's client sends it.
fn evaluate_in(
    transaction: &str,
    blinded: Vec<Vec<u8>>,
    on_behalf_of: &str,
) -> tonic::Request<proto::EvaluateRequest> {
    in_transaction(evaluate(blinded, on_behalf_of), transaction)
}

/// The demo's members with only the first pseudonym service.
fn one_service() -> Vec<DevMember> {
    demo_members()
        .into_iter()
        .filter(|m| m.key != "pseudonyms-b")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_federation_pseudonym_is_the_oprf_under_both_key_shares_and_neither_alone() {
    let (_dir, federation) = start(&demo_members()).await;
    let through_the_chain = federation_pseudonym(&federation, CHILD).await;
    // Deterministic: another blinding, the same pseudonym.
    assert_eq!(
        federation_pseudonym(&federation, CHILD).await,
        through_the_chain
    );
    assert_ne!(
        federation_pseudonym(&federation, MOTHER).await,
        through_the_chain
    );

    let a = key_share(&federation, "pseudonyms");
    let b = key_share(&federation, "pseudonyms-b");
    assert_eq!(pseudonym_under(CHILD, &[&a, &b]), through_the_chain);
    assert_eq!(
        pseudonym_under(CHILD, &[&b, &a]),
        through_the_chain,
        "the shares compose in either order"
    );
    assert_ne!(
        pseudonym_under(CHILD, &[&a]),
        through_the_chain,
        "service A's share alone does not give the pseudonym"
    );
    assert_ne!(
        pseudonym_under(CHILD, &[&b]),
        through_the_chain,
        "service B's share alone does not give the pseudonym"
    );

    // The organisations meet on it: the school and the GGD on the same child match.
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    register_ok(&mut ggd, worry(CHILD, &[])).await;
    matches_until(&school, "the school and the GGD match", |m| m.len() == 1).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_service_in_the_directory_it_is_the_whole_chain() {
    let (_dir, federation) = start(&one_service()).await;
    let pseudonym = federation_pseudonym(&federation, CHILD).await;
    let a = key_share(&federation, "pseudonyms");
    assert_eq!(pseudonym_under(CHILD, &[&a]), pseudonym);

    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    register_ok(&mut ggd, worry(CHILD, &[])).await;
    matches_until(&school, "the school and the GGD match", |m| m.len() == 1).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_beyond_its_rate_is_refused_naming_it_and_the_others_are_served() {
    let (_dir, federation) = start_with_directory(&demo_members(), |content| {
        content.policy.pseudonym_rate_per_minute = 4;
    })
    .await;
    let mut as_school = pseudonyms_as(&federation, "pseudonyms", "school").await;
    // A batch with one element that is not a point is refused whole, and spends nothing.
    let mut bad_batch = blinded(3);
    bad_batch.push(vec![7; 32]);
    let transaction = new_transaction();
    refused(
        as_school
            .evaluate(evaluate_in(&transaction, bad_batch, ""))
            .await,
        Code::InvalidArgument,
        "blinded",
    );
    audited_refusal(
        &federation,
        "pseudonyms",
        &transaction,
        proto::AuditAction::PseudonymEvaluate,
        "invalid_argument",
        "blinded",
    )
    .await;
    let answer = as_school
        .evaluate(evaluate(blinded(4), ""))
        .await
        .expect("four a minute are allowed")
        .into_inner();
    assert_eq!(answer.evaluated.len(), 4);
    let transaction = new_transaction();
    refused(
        as_school
            .evaluate(evaluate_in(&transaction, blinded(1), ""))
            .await,
        Code::ResourceExhausted,
        "rate limit: Basisschool De Regenboog (00000001820000001000) may ask for at most 4 \
         pseudonym evaluations a minute",
    );
    audited_refusal(
        &federation,
        "pseudonyms",
        &transaction,
        proto::AuditAction::PseudonymEvaluate,
        "resource_exhausted",
        "Basisschool De Regenboog",
    )
    .await;

    // The limit is the school's, not the service's: the GGD is served.
    let mut as_ggd = pseudonyms_as(&federation, "pseudonyms", "ggd").await;
    as_ggd
        .evaluate(evaluate(blinded(2), ""))
        .await
        .expect("the GGD has its own allowance");

    // A professional at the school meets the limit as RESOURCE_EXHAUSTED, and nothing is
    // registered.
    let mut school = client(&federation, SCHOOL_AF).await;
    refused(
        school.signals.register(worry(CHILD, &[])).await,
        Code::ResourceExhausted,
        "at most 4 pseudonym evaluations a minute",
    );
    let listed = school
        .signals
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.signals.is_empty(), "nothing was registered");
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_service_answers_only_the_first_and_limits_the_organisation_it_forwards_for() {
    let (_dir, federation) = start_with_directory(&demo_members(), |content| {
        content.policy.pseudonym_rate_per_minute = 4;
    })
    .await;
    // The school may not ask service B directly: B's answer to it would be an evaluation under
    // B's share alone.
    let mut school_at_b = pseudonyms_as(&federation, "pseudonyms-b", "school").await;
    let transaction = new_transaction();
    refused(
        school_at_b
            .evaluate(evaluate_in(&transaction, blinded(4), ""))
            .await,
        Code::PermissionDenied,
        "chain order: this service is number 2 of the chain and answers only the service \
         before it, Pseudoniemdienst Samen Veilig (sleutel A) (00000001820000000200); \
         organisations ask the first",
    );
    audited_refusal(
        &federation,
        "pseudonyms-b",
        &transaction,
        proto::AuditAction::PseudonymEvaluate,
        "permission_denied",
        "chain order",
    )
    .await;
    // Nor may the index; service A must name the organisation it forwards for; and service B
    // does not ask the chain for itself.
    let mut index_at_b = pseudonyms_as(&federation, "pseudonyms-b", "index").await;
    refused(
        index_at_b.evaluate(evaluate(blinded(1), "")).await,
        Code::PermissionDenied,
        "chain order: this service is number 2",
    );
    let mut a_at_b = pseudonyms_as(&federation, "pseudonyms-b", "pseudonyms").await;
    refused(
        a_at_b.evaluate(evaluate(blinded(1), "")).await,
        Code::InvalidArgument,
        "on_behalf_of: required from the service before this one",
    );
    let mut b_at_a = pseudonyms_as(&federation, "pseudonyms", "pseudonyms-b").await;
    let transaction = new_transaction();
    refused(
        b_at_a
            .evaluate(evaluate_in(&transaction, blinded(1), ""))
            .await,
        Code::PermissionDenied,
        "chain order: a pseudonym service does not ask the chain",
    );
    audited_refusal(
        &federation,
        "pseudonyms",
        &transaction,
        proto::AuditAction::PseudonymEvaluate,
        "permission_denied",
        "chain order",
    )
    .await;

    // The refusals spent nothing of the school's allowance at B: service A, forwarding for
    // the school, spends all four of it...
    a_at_b
        .evaluate(evaluate(blinded(4), SCHOOL))
        .await
        .expect("four a minute are allowed");
    // ...so the school's next request through A (whose own allowance for the school is whole)
    // is refused by B for the school.
    let mut school_at_a = pseudonyms_as(&federation, "pseudonyms", "school").await;
    let transaction = new_transaction();
    refused(
        school_at_a
            .evaluate(evaluate_in(&transaction, blinded(1), ""))
            .await,
        Code::ResourceExhausted,
        "rate limit: Basisschool De Regenboog (00000001820000001000)",
    );
    audited_refusal(
        &federation,
        "pseudonyms",
        &transaction,
        proto::AuditAction::PseudonymEvaluate,
        "resource_exhausted",
        "Basisschool De Regenboog",
    )
    .await;
    // The GGD goes through the whole chain.
    let mut ggd_at_a = pseudonyms_as(&federation, "pseudonyms", "ggd").await;
    ggd_at_a
        .evaluate(evaluate(blinded(4), ""))
        .await
        .expect("the GGD has its own allowance at both services");
    federation.shutdown().await.unwrap();
}

/// Service A's and service B's OINs in the demo's directory.
const SERVICE_A: &str = "00000001820000000200";
const SERVICE_B: &str = "00000001820000000210";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_service_before_in_the_chain_may_ask_on_behalf_of_an_organisation() {
    let (_dir, federation) = start_with_directory(&demo_members(), |content| {
        content.policy.pseudonym_rate_per_minute = 4;
    })
    .await;
    // An organisation may not name another.
    let mut as_school = pseudonyms_as(&federation, "pseudonyms-b", "school").await;
    let transaction = new_transaction();
    refused(
        as_school
            .evaluate(evaluate_in(&transaction, blinded(1), GGD))
            .await,
        Code::PermissionDenied,
        "on_behalf_of: only the service before this one in the chain, Pseudoniemdienst Samen \
         Veilig (sleutel A) (00000001820000000200), may forward",
    );
    audited_refusal(
        &federation,
        "pseudonyms-b",
        &transaction,
        proto::AuditAction::PseudonymEvaluate,
        "permission_denied",
        "on_behalf_of",
    )
    .await;
    refused(
        as_school.evaluate(evaluate(blinded(1), "12")).await,
        Code::InvalidArgument,
        "on_behalf_of",
    );
    // Nor may service B name anyone to service A, the first of the chain: B's operator would
    // have an oracle for A's share alone.
    let mut b_at_a = pseudonyms_as(&federation, "pseudonyms", "pseudonyms-b").await;
    let transaction = new_transaction();
    refused(
        b_at_a
            .evaluate(evaluate_in(&transaction, blinded(1), SCHOOL))
            .await,
        Code::PermissionDenied,
        "on_behalf_of: this is the first service of the chain",
    );
    audited_refusal(
        &federation,
        "pseudonyms",
        &transaction,
        proto::AuditAction::PseudonymEvaluate,
        "permission_denied",
        "on_behalf_of",
    )
    .await;

    // Service A may, for an organisation of the directory.
    let mut as_a = pseudonyms_as(&federation, "pseudonyms-b", "pseudonyms").await;
    let answer = as_a
        .evaluate(evaluate(blinded(4), SCHOOL))
        .await
        .expect("the service before forwards for the school")
        .into_inner();
    assert_eq!(answer.evaluated.len(), 4);
    // The school's allowance at B is spent; a made-up organisation gets no fresh one, and
    // neither does a pseudonym service.
    let transaction = new_transaction();
    refused(
        as_a.evaluate(evaluate_in(
            &transaction,
            blinded(1),
            "00000001820000009999",
        ))
        .await,
        Code::InvalidArgument,
        "on_behalf_of: names no member of the directory",
    );
    audited_refusal(
        &federation,
        "pseudonyms-b",
        &transaction,
        proto::AuditAction::PseudonymEvaluate,
        "invalid_argument",
        "on_behalf_of",
    )
    .await;
    for service in [SERVICE_A, SERVICE_B] {
        let transaction = new_transaction();
        refused(
            as_a.evaluate(evaluate_in(&transaction, blinded(1), service))
                .await,
            Code::PermissionDenied,
            "is a pseudonym service; a service forwards only for the organisation",
        );
        audited_refusal(
            &federation,
            "pseudonyms-b",
            &transaction,
            proto::AuditAction::PseudonymEvaluate,
            "permission_denied",
            "on_behalf_of",
        )
        .await;
    }
    refused(
        as_a.evaluate(evaluate(blinded(1), SCHOOL)).await,
        Code::ResourceExhausted,
        "rate limit: Basisschool De Regenboog (00000001820000001000)",
    );
    // The GGD, named by A, has its own allowance. Not an element: the service checks what it
    // evaluates.
    as_a.evaluate(evaluate(blinded(1), GGD))
        .await
        .expect("the GGD has its own allowance");
    refused(
        as_a.evaluate(evaluate(vec![vec![7; 32]], GGD)).await,
        Code::InvalidArgument,
        "blinded",
    );
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_records_how_many_it_evaluated_for_whom_and_never_the_elements() {
    let clock: kring::clock::SharedClock = Arc::new(kring::clock::SystemClock);
    let (_dir, mut federation) = start(&demo_members()).await;
    let sent_by_school = blinded(3);
    let mut as_school = pseudonyms_as(&federation, "pseudonyms", "school").await;
    as_school
        .evaluate(evaluate(sent_by_school.clone(), ""))
        .await
        .expect("the school is served");
    let mut as_ggd = pseudonyms_as(&federation, "pseudonyms", "ggd").await;
    as_ggd
        .evaluate(evaluate(blinded(2), ""))
        .await
        .expect("the GGD is served");
    // The counts are recorded per period and when a service stops.
    for service in ["pseudonyms", "pseudonyms-b"] {
        federation.stop(service).await.unwrap();
        restart(&mut federation, service, clock.clone()).await;
    }
    for service in ["pseudonyms", "pseudonyms-b"] {
        let counted: Vec<(String, String)> =
            events(&federation, service, proto::AuditAction::PseudonymEvaluate)
                .await
                .into_iter()
                .filter(|e| e.outcome == proto::Outcome::Success as i32)
                .map(|e| (e.counterpart_oin, e.object))
                .collect();
        assert_eq!(
            counted,
            vec![
                (SCHOOL.to_owned(), "elements:3".to_owned()),
                (GGD.to_owned(), "elements:2".to_owned()),
            ],
            "{service} counted per organisation that asked the chain"
        );
        // Nothing of an element is in the log.
        let log = format!(
            "{:?}",
            search(&federation, service, proto::AuditSearchRequest::default()).await
        );
        for element in &sent_by_school {
            let hex: String = element.iter().map(|b| format!("{b:02x}")).collect();
            let bytes = format!("{:?}", &element[..8]);
            assert!(
                !log.contains(&hex[..16]) && !log.contains(bytes.trim_end_matches(']')),
                "{service}'s log holds an element"
            );
        }
    }
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_calls_and_each_gets_its_own_pseudonyms() {
    let (_dir, federation) = start(&demo_members()).await;
    let a = key_share(&federation, "pseudonyms");
    let b = key_share(&federation, "pseudonyms-b");
    let school = federation.node("school").federation().unwrap().clone();
    let peers = Arc::new(kring::api::peer_client::GrpcPeers::new(school.clone()));
    let pseudonymiser = Arc::new(OprfPseudonymiser::new(school, peers));
    // Fifty requests of two persons at once (more than one call can carry together), and one
    // request larger than a call.
    let mut requests: Vec<Vec<String>> =
        (0..50).map(|i| vec![bsn(2 * i), bsn(2 * i + 1)]).collect();
    requests.push(
        (1000..1000 + kring::pseudonym::MAX_BATCH as u32 + 6)
            .map(bsn)
            .collect(),
    );
    let tasks: Vec<_> = requests
        .iter()
        .map(|persons| {
            let pseudonymiser = pseudonymiser.clone();
            let persons: Vec<Bsn> = persons.iter().map(|p| Bsn::parse(p).unwrap()).collect();
            tokio::spawn(async move { pseudonymiser.pseudonymise(persons).await })
        })
        .collect();
    for (persons, task) in requests.iter().zip(tasks) {
        let got = task.await.unwrap().expect("the chain answers");
        let expected: Vec<Pseudonym> = persons
            .iter()
            .map(|p| pseudonym_under(p, &[&a, &b]))
            .collect();
        assert_eq!(
            got, expected,
            "each request gets its own persons' pseudonyms, in order"
        );
    }
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_holds_persons_no_party_finds_from_a_bsn_without_every_service() {
    let (_dir, federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let signal = register_ok(&mut school, worry(CHILD, &[])).await;
    // What the index holds: the pointer's subject, as its own log records it: a person id.
    let object = format!("signal:{}", signal.id);
    let held = eventually("the index records the pointer", || async {
        events(&federation, "index", proto::AuditAction::PointerPublish)
            .await
            .into_iter()
            .find(|e| e.object == object)
            .map(|e| Pseudonym::parse(&e.subjects[0]).expect("a pseudonym"))
    })
    .await;
    let child = federation_pseudonym(&federation, CHILD).await;
    assert_ne!(
        held, child,
        "the index does not keep the federation pseudonym"
    );

    // The index's own key material gives nothing it holds.
    let index_secret =
        kring::pseudonym::read_or_create_secret(&federation.configs["index"].secret_file)
            .expect("the index's node secret");
    let keyed = kring::pseudonym::KeyedPseudonymiser::from_secret(&index_secret)
        .pseudonymise(vec![Bsn::parse(CHILD).unwrap()])
        .await
        .unwrap()[0];
    assert_ne!(keyed, held, "the index's node key does not give the person");
    let local = kring::pseudonym::LocalPseudonyms::from_secret(&index_secret);
    assert_ne!(local.local(&child), held);

    // Finding the person from a BSN takes the federation pseudonym (every OPRF share) and the
    // index key (every service's epoch secret). One service's part of either misses it.
    let a = key_share(&federation, "pseudonyms");
    let b = key_share(&federation, "pseudonyms-b");
    let index_key = index_key_from(&federation, &["pseudonyms", "pseudonyms-b"], 1);
    for (what, p) in [
        ("service A's OPRF share", pseudonym_under(CHILD, &[&a])),
        ("service B's OPRF share", pseudonym_under(CHILD, &[&b])),
        ("no OPRF share", pseudonym_under(CHILD, &[])),
    ] {
        assert_eq!(person_under(&federation, &index_key, &p), None, "{what}");
    }
    let p = pseudonym_under(CHILD, &[&a, &b]);
    assert_eq!(p, child);
    for alone in ["pseudonyms", "pseudonyms-b"] {
        let key = index_key_from(&federation, &[alone], 1);
        assert_eq!(
            person_under(&federation, &key, &p),
            None,
            "only {alone}'s epoch secret"
        );
    }
    assert_eq!(person_under(&federation, &index_key, &p), Some(held));
    federation.shutdown().await.unwrap();
}

/// The subjects of the first `action` event about `object` at `node`, once it is recorded.
async fn subjects_of(
    federation: &RunningFederation,
    node: &str,
    action: proto::AuditAction,
    object: &str,
) -> Vec<Pseudonym> {
    let mut subjects = eventually("the event is recorded", || async {
        events(federation, node, action)
            .await
            .into_iter()
            .find(|e| e.object == object)
            .map(|e| e.subjects)
    })
    .await
    .iter()
    .map(|s| Pseudonym::parse(s).expect("a pseudonym"))
    .collect::<Vec<_>>();
    subjects.sort();
    subjects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_store_and_the_index_store_cannot_be_joined_without_the_services() {
    // Sealed stores, as every shipped configuration has them: a delivered outbox message's
    // value can outlive its deletion in sled's log-structured files, and only the seal keeps
    // the federation pseudonym it carried out of them (see ARCHITECTURE.md).
    let (dir, federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let signal = register_ok(
        &mut school,
        worry(CHILD, &[(MOTHER, proto::Relation::Parent)]),
    )
    .await;
    let object = format!("signal:{}", signal.id);
    let at_index = subjects_of(
        &federation,
        "index",
        proto::AuditAction::PointerPublish,
        &object,
    )
    .await;
    let at_school = subjects_of(
        &federation,
        "school",
        proto::AuditAction::SignalRegister,
        &object,
    )
    .await;
    assert_eq!((at_index.len(), at_school.len()), (2, 2));
    assert!(
        at_index.iter().all(|p| !at_school.contains(p)),
        "the school and the index hold no pseudonym in common"
    );
    // Both nodes' own keys do not join them: the index holds person ids, not the federation
    // pseudonyms the school's local pseudonyms are keyed hashes of.
    for node in ["school", "index"] {
        let secret = kring::pseudonym::read_or_create_secret(&federation.configs[node].secret_file)
            .expect("the node secret");
        let local = kring::pseudonym::LocalPseudonyms::from_secret(&secret);
        assert!(
            at_index
                .iter()
                .all(|p| !at_school.contains(&local.local(p))),
            "{node}'s node key joins nothing"
        );
    }
    // With the services, they join: the chain gives the federation pseudonyms, the school's key
    // their local pseudonyms, and every service's epoch secret the index's tags for them.
    let secret = kring::pseudonym::read_or_create_secret(&federation.configs["school"].secret_file)
        .expect("the school's node secret");
    let local = kring::pseudonym::LocalPseudonyms::from_secret(&secret);
    let index_key = index_key_from(&federation, &["pseudonyms", "pseudonyms-b"], 1);
    let mut federation_pseudonyms = Vec::new();
    for bsn in [CHILD, MOTHER] {
        let p = federation_pseudonym(&federation, bsn).await;
        assert!(at_school.contains(&local.local(&p)));
        let person = person_under(&federation, &index_key, &p).expect("the index's person");
        assert!(at_index.contains(&person));
        federation_pseudonyms.push(p);
    }
    federation.shutdown().await.unwrap();

    // The school's store holds its local pseudonyms (in its keys, in the clear) and none of the
    // index's; the index's store holds its person ids and no federation pseudonym. A value is
    // looked for as its bytes and as the text the code writes (base64url).
    let in_files = |node: &str, pseudonym: &Pseudonym| {
        let text = pseudonym.to_string();
        files_under(&dir.path().join(node).join("store"))
            .iter()
            .any(|f| {
                let bytes = std::fs::read(f).expect("a readable file");
                bytes.windows(32).any(|w| w == pseudonym.0)
                    || bytes.windows(text.len()).any(|w| w == text.as_bytes())
            })
    };
    for p in &at_school {
        assert!(
            in_files("school", p),
            "the school's store holds its pseudonym"
        );
    }
    for p in &at_index {
        assert!(in_files("index", p), "the index's store holds its person");
        assert!(
            !in_files("school", p),
            "the school's store holds an index person"
        );
    }
    for p in &federation_pseudonyms {
        assert!(
            !in_files("index", p),
            "the index's store holds a federation pseudonym"
        );
        assert!(
            !in_files("school", p),
            "the school's store holds a federation pseudonym"
        );
    }
}
