//! A BSN never reaches a disk: after registering, listing, searching and refusing with known
//! BSNs, no file under the node's data directory (sled's files included) holds one, as ASCII
//! digits in its nine- or eight-digit form, or as UTF-16LE.

mod common;
mod common_files;

use common_files::{contains, files_under};

use common::{
    OFFICER, SIGNALER, bsn, bsn_with_leading_zero, register, register_ok, related, school,
    start_manual,
};
use kring::api::proto;
use proto::Relation;

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[tokio::test]
async fn no_bsn_is_written_to_any_file() {
    let (test, _clock) = start_manual(&school()).await;
    let mut signals = test.signals(SIGNALER);
    let mut officer = test.audit(OFFICER);
    let child = bsn(500);
    let mother = bsn(501);
    let father = bsn_with_leading_zero(502);
    let father_eight = father[1..].to_owned();
    let refused_person = bsn(503);
    // Not a BSN (it fails the elfproef), but typed as one: it must not be kept either.
    let mistyped = "987654320".to_owned();
    assert!(!common::elfproef(&mistyped));

    let signal = register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![
                related(&mother, Relation::Parent),
                related(&father_eight, Relation::Parent),
            ],
            ..register(&child)
        },
    )
    .await;
    register_ok(&mut signals, register(&father_eight)).await;
    signals
        .register(proto::RegisterRequest {
            contact_point: "not-configured".into(),
            ..register(&refused_person)
        })
        .await
        .expect_err("an unknown contact point is refused after the BSN was read");
    signals
        .register(register(&mistyped))
        .await
        .expect_err("the elfproef fails");
    for person in [&child, &mother, &father, &father_eight, &mistyped] {
        let _ = signals
            .list(proto::ListRequest {
                person_bsn: Some(person.to_string()),
                ..Default::default()
            })
            .await;
        let _ = officer
            .search(proto::AuditSearchRequest {
                subject_bsn: Some(person.to_string()),
                ..Default::default()
            })
            .await;
    }
    let found = officer
        .search(proto::AuditSearchRequest {
            subject_bsn: Some(mother.clone()),
            ..Default::default()
        })
        .await
        .expect("a search by BSN")
        .into_inner();
    assert!(
        !found.events.is_empty(),
        "the searches found the registration"
    );
    signals
        .update(proto::UpdateRequest {
            signal_id: signal.id.clone(),
            meldcode_step: Some(proto::MeldcodeStep::Wegen as i32),
            severity: None,
            expected_version: 1,
        })
        .await
        .expect("an update");
    officer
        .checkpoint(proto::CheckpointRequest {})
        .await
        .expect("a checkpoint");
    let data_dir = test.dir.path().to_owned();
    test.node.shutdown().await.expect("a graceful stop");

    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for digits in [
        &child,
        &mother,
        &father,
        &father_eight,
        &refused_person,
        &mistyped,
    ] {
        needles.push((format!("{digits} as ASCII"), digits.as_bytes().to_vec()));
        needles.push((format!("{digits} as UTF-16LE"), utf16le(digits)));
    }
    let files = files_under(&data_dir);
    let mut bytes_scanned = 0;
    let mut holds_the_signal_id = false;
    for file in &files {
        let bytes = std::fs::read(file).expect("a readable file");
        bytes_scanned += bytes.len();
        for (what, needle) in &needles {
            assert!(
                !contains(&bytes, needle),
                "{} holds the BSN {what}",
                file.display()
            );
        }
        holds_the_signal_id |= contains(&bytes, signal.id.as_bytes());
    }
    // The scan reads what the node wrote: sled's files, with the records in plain bytes.
    assert!(
        files.iter().any(|f| f.ends_with("store/db")),
        "sled's data file is among {files:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with("node.secret")),
        "{files:?}"
    );
    assert!(bytes_scanned > 0);
    assert!(
        holds_the_signal_id,
        "the scan would see a stored identifier as ASCII"
    );
}
