//! No BSN leaves the memory of the node where it was typed: after a whole story over the
//! federation (registrations at several organisations, matches, regie, waakvlam, a melding,
//! linked signals, break-glass and its review, refusals of mistyped and misplaced BSNs), and
//! after the demo's own story, no file of any node (stores, keys, secrets, the directory), no
//! line the process logged, and no byte of either story's peer traffic (tapped in plaintext by
//! relays that terminate mutual TLS with the nodes' own keys, see `wire_tap`) holds a BSN in
//! any encoding the code uses: nine ASCII digits, eight for a BSN with a leading zero,
//! UTF-16LE, or the domain-tagged OPRF input. The local API between a professional's client
//! and the professional's own node carries the BSN by design (TLS to that node) and is not
//! tapped.
//!
//! The tracing subscriber is process-wide, so this file holds one test.

mod common_federation;
mod common_files;
mod wire_tap;

use common_files::{contains, files_under};
use std::sync::Mutex;

use common_federation::*;
use kring::api::proto;
use kring::demo::demo_members;
use kring::devnet::RunningFederation;
use proto::{Category, Relation, Severity};

/// The OPRF input's domain tag (`pseudonym::oprf`); the nine ASCII digits follow it.
const OPRF_DOMAIN: &[u8] = b"kring/v1 bsn\0";

fn utf16le(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().flat_map(|b| [*b, 0]).collect()
}

/// Every encoding of a typed BSN the code could write: its nine digits, its eight when it
/// starts with 0 (as it may be typed), each as ASCII and as UTF-16LE, and the OPRF input.
fn needles(bsns: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for bsn in bsns {
        let mut forms = vec![bsn.to_string()];
        if let Some(eight) = bsn.strip_prefix('0') {
            forms.push(eight.to_owned());
        }
        for form in forms {
            out.push((format!("{form} as ASCII"), form.as_bytes().to_vec()));
            out.push((format!("{form} as UTF-16LE"), utf16le(form.as_bytes())));
        }
        let nine = format!("{bsn:0>9}");
        out.push((
            format!("{nine} as the OPRF input"),
            [OPRF_DOMAIN, nine.as_bytes()].concat(),
        ));
    }
    out
}

async fn report_when_received(federation: &RunningFederation) {
    let vt = client(federation, VT_ANALYST).await;
    eventually("Veilig Thuis received the melding", || async {
        let meldingen = vt
            .cases
            .clone()
            .list_meldingen(proto::ListMeldingenRequest {})
            .await
            .unwrap()
            .into_inner()
            .meldingen;
        (!meldingen.is_empty()).then_some(())
    })
    .await;
}

/// The whole story, with every BSN entry point the local API has.
async fn play(federation: &RunningFederation, people: &People) -> Vec<String> {
    let mut school = client(federation, SCHOOL_AF).await;
    let mut ggd = client(federation, GGD_SIGNALER).await;
    let mut huisarts = client(federation, HUISARTS_SIGNALER).await;
    let mut reclassering = client(federation, RECLASSERING_SIGNALER).await;
    let mut lokaal_team = client(federation, LT_COORDINATOR).await;
    let mut vt = client(federation, VT_ANALYST).await;
    let mut ids = Vec::new();

    let school_signal = register_ok(
        &mut school,
        worry(
            CHILD,
            &[
                (MOTHER, Relation::Parent),
                (&people.sibling_eight, Relation::Sibling),
            ],
        ),
    )
    .await;
    ids.push(school_signal.id.clone());
    let ggd_signal = register_ok(
        &mut ggd,
        register(
            MOTHER,
            &[(CHILD, Relation::Child)],
            Category::Psychological,
            Severity::Zorg,
        ),
    )
    .await;
    ids.push(ggd_signal.id.clone());
    ids.push(
        register_ok(
            &mut reclassering,
            register(
                FATHER,
                &[(MOTHER, Relation::ExPartner), (CHILD, Relation::Child)],
                Category::CoerciveControl,
                Severity::Ernstig,
            ),
        )
        .await
        .id,
    );
    ids.push(
        register_ok(&mut huisarts, worry(&people.sibling, &[]))
            .await
            .id,
    );
    matches_until(&school, "the school's match", |m| {
        m.len() == 1 && m[0].parties.len() == 3
    })
    .await;

    // Refused after the BSN was read: an unknown contact point, a BSN that fails the
    // elfproef, a melding for someone who is not the subject.
    school
        .signals
        .register(proto::RegisterRequest {
            contact_point: "not-configured".into(),
            ..worry(&people.refused, &[])
        })
        .await
        .expect_err("an unknown contact point");
    school
        .signals
        .register(worry(&people.mistyped, &[]))
        .await
        .expect_err("the elfproef fails");
    for person in [CHILD, &people.sibling_eight, &people.mistyped] {
        let _ = school
            .signals
            .list(proto::ListRequest {
                person_bsn: Some(person.to_owned()),
                ..Default::default()
            })
            .await;
    }

    lokaal_team
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: CHILD.into(),
        })
        .await
        .expect("regie");
    school
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: MOTHER.into(),
        })
        .await
        .expect_err("regie is held");
    vt.cases
        .start_waakvlam(proto::StartWaakvlamLocalRequest {
            person_bsn: CHILD.into(),
            days: 90,
        })
        .await
        .expect("waakvlam");

    school
        .signals
        .update(proto::UpdateRequest {
            signal_id: school_signal.id.clone(),
            meldcode_step: Some(proto::MeldcodeStep::Beslissen as i32),
            severity: Some(Severity::Ernstig as i32),
            expected_version: 0,
        })
        .await
        .expect("step 5");
    school
        .signals
        .report_to_veilig_thuis(proto::ReportRequest {
            signal_id: school_signal.id.clone(),
            subject_bsn: MOTHER.into(),
        })
        .await
        .expect_err("the mother is not the subject");
    school
        .signals
        .report_to_veilig_thuis(proto::ReportRequest {
            signal_id: school_signal.id.clone(),
            subject_bsn: CHILD.into(),
        })
        .await
        .expect("the melding");
    report_when_received(federation).await;

    for (bsn, household) in [(CHILD, true), (people.asked_only.as_str(), true)] {
        vt.cases
            .linked_signals(proto::LinkedSignalsRequest {
                purpose: proto::Purpose::VtTriage as i32,
                person_bsn: bsn.into(),
                household,
            })
            .await
            .expect("triage");
    }
    lokaal_team
        .cases
        .linked_signals(proto::LinkedSignalsRequest {
            purpose: proto::Purpose::LocalTeamCoordination as i32,
            person_bsn: MOTHER.into(),
            household: true,
        })
        .await
        .expect("coordination");
    school
        .cases
        .linked_signals(triage_of(CHILD))
        .await
        .expect_err("the school may not triage");
    vt.cases
        .break_glass(proto::BreakGlassRequest {
            person_bsn: FATHER.into(),
            reason: proto::BreakGlassReason::ImminentViolence as i32,
        })
        .await
        .expect("break-glass");
    for node in ["school", "ggd", "reclassering", "huisarts"] {
        let mut officer = officer(federation, node).await;
        let queue = officer
            .audit
            .break_glass_queue(proto::BreakGlassQueueRequest {
                include_reviewed: false,
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        for item in queue {
            officer
                .audit
                .review_break_glass(proto::ReviewBreakGlassRequest {
                    id: item.id,
                    outcome: proto::ReviewOutcome::Justified as i32,
                    reason: proto::ReviewReason::AcuteDangerConfirmed as i32,
                })
                .await
                .expect("a review");
        }
        // A privacy officer looks a person up by BSN.
        let found = officer
            .audit
            .search(proto::AuditSearchRequest {
                subject_bsn: Some(CHILD.into()),
                ..Default::default()
            })
            .await
            .expect("a search by BSN")
            .into_inner();
        assert!(
            node == "huisarts" || !found.events.is_empty(),
            "{node} found the child's events"
        );
    }

    // A new signal on the mother during waakvlam, and a withdrawal.
    let mut at_vt = watch(&mut vt, 0).await;
    ids.push(register_ok(&mut huisarts, worry(MOTHER, &[])).await.id);
    loop {
        if let Some(proto::match_event::Event::WaakvlamAlert(_)) =
            next_event(&mut at_vt).await.event
        {
            break;
        }
    }
    ggd.signals
        .withdraw(proto::WithdrawRequest {
            signal_id: ggd_signal.id,
            reason: proto::WithdrawReason::RiskGone as i32,
        })
        .await
        .expect("a withdrawal");
    assert_reconciled(federation).await;
    for node in federation.nodes.keys() {
        officer(federation, node)
            .await
            .audit
            .checkpoint(proto::CheckpointRequest {})
            .await
            .expect("a checkpoint");
    }
    ids
}

struct People {
    sibling: String,
    /// The sibling's BSN typed with eight digits (it starts with 0).
    sibling_eight: String,
    refused: String,
    mistyped: String,
    asked_only: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bsn_reaches_any_file_or_log_line_of_any_node() {
    let logs = base_dir();
    let log_file = logs.path().join("kring.log");
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,kring=trace"))
        .with_writer(Mutex::new(
            std::fs::File::create(&log_file).expect("a log file"),
        ))
        .with_ansi(false)
        .init();

    let sibling = bsn_with_leading_zero(4);
    let people = People {
        sibling_eight: sibling[1..].to_owned(),
        sibling,
        refused: bsn(3_100_003),
        mistyped: "987654320".into(),
        asked_only: bsn(3_200_001),
    };
    assert!(
        kring::domain::Bsn::parse(&people.mistyped).is_err(),
        "not a BSN, but typed as one: it must not be kept either"
    );
    let typed = [
        CHILD,
        MOTHER,
        FATHER,
        &people.sibling,
        &people.refused,
        &people.mistyped,
        &people.asked_only,
    ];
    let needles = needles(&typed);

    // Our story, every peer exchange through the tap, then the demo's, each in its own
    // federation directory.
    let (ours, federation, capture) = wire_tap::start_tapped(&demo_members()).await;
    // The scan must not mistake an identifier for a BSN: none of the needles occurs in the
    // directory (OINs, ports, keys) before anything was typed.
    let directory = std::fs::read(ours.path().join("directory.note")).unwrap();
    for (what, needle) in &needles {
        assert!(
            !contains(&directory, needle),
            "the directory holds {what}: choose another BSN"
        );
    }
    let ids = play(&federation, &people).await;
    federation.shutdown().await.unwrap();

    // The wire: every peer exchange of the story, decrypted.
    let wire = capture.bytes();
    assert!(
        capture.connections() >= 10,
        "the peer traffic went through the tap ({} connections)",
        capture.connections()
    );
    for (what, needle) in &needles {
        assert!(
            !contains(&wire, needle),
            "the peer traffic holds {what} ({} bytes tapped)",
            wire.len()
        );
    }
    // The tap sees plaintext: the signal references the story published to the index are in
    // it.
    assert!(
        ids.iter().any(|id| contains(&wire, id.as_bytes())),
        "the tapped bytes are plaintext: a signal reference is in them"
    );
    // The demo's story, its peer traffic through a tap of its own.
    let (demo, federation, demo_capture) = wire_tap::start_tapped(&demo_members()).await;
    kring::demo::play_story(&federation)
        .await
        .expect("the demo plays its story");
    federation.shutdown().await.unwrap();
    let demo_wire = demo_capture.bytes();
    assert!(
        demo_capture.connections() >= 10,
        "the demo's peer traffic went through the tap ({} connections)",
        demo_capture.connections()
    );
    for (what, needle) in &needles {
        assert!(
            !contains(&demo_wire, needle),
            "the demo's peer traffic holds {what} ({} bytes tapped)",
            demo_wire.len()
        );
    }

    let mut files = files_under(ours.path());
    files.extend(files_under(demo.path()));
    files.push(log_file.clone());
    let mut scanned = 0;
    // The scan reads plaintext where identifiers are plain: the peer traffic, and the log.
    let mut ids_seen: Vec<String> = ids
        .iter()
        .filter(|id| contains(&wire, id.as_bytes()))
        .cloned()
        .collect();
    for file in &files {
        let bytes = std::fs::read(file).expect("a readable file");
        scanned += bytes.len();
        for (what, needle) in &needles {
            assert!(!contains(&bytes, needle), "{} holds {what}", file.display());
        }
        ids_seen.extend(
            ids.iter()
                .filter(|id| contains(&bytes, id.as_bytes()))
                .cloned(),
        );
    }

    // The scan reads what the nodes wrote: every node's store, key and secret files, and the
    // log, in which identifiers do appear in plain bytes.
    for node in ["index", "pseudonyms", "school", "veilig-thuis"] {
        for file in ["store/db", "node.secret"] {
            let path = ours.path().join(node).join(file);
            assert!(files.contains(&path), "{} is scanned", path.display());
        }
    }
    assert!(files.contains(&ours.path().join("pseudonyms").join("oprf.key")));
    assert!(
        files
            .iter()
            .any(|f| f.starts_with(demo.path()) && f.ends_with("store/db"))
    );
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        log.contains("node started"),
        "the log holds the nodes' lines"
    );
    assert!(
        log.contains("kring::ledger"),
        "the log holds kring's trace lines"
    );
    assert!(
        log.contains(SCHOOL),
        "the log names organisations in plain text"
    );
    assert!(scanned > 100_000);
    for id in &ids {
        assert!(
            ids_seen.contains(id),
            "the scan sees the signal id {id} somewhere"
        );
    }
    // And the needles are the bytes the code would write: the OPRF input as `oprf` builds it.
    let built = [OPRF_DOMAIN, CHILD.as_bytes()].concat();
    assert!(needles.iter().any(|(_, n)| *n == built));
    assert!(contains(&[b"x".as_slice(), &built, b"y"].concat(), &built));
}
