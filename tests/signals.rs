//! `kring.v1.Signals` over the wire, every call as documented: Register, Update, Withdraw and
//! List with each filter and paging. The node runs on a manual clock so that times are exact.

mod common;

use std::collections::BTreeSet;

use common::{
    ANALYST, CONTACT, COORDINATOR, SIGNALER, T0, bsn, ids, is_pseudonym, list_all, refused,
    register, register_ok, related, school, start_manual, start_manual_with, transaction_of,
};
use kring::api::proto;
use kring::config::{ContactPoint, DEFAULT_RETENTION_DAYS};
use kring::domain::{ContactPointId, Role, UnixMillis};
use proto::{Category, MeldcodeStep, Relation, Severity};
use tonic::Code;

const SECOND: i64 = 1000;

#[tokio::test]
async fn register_returns_pseudonyms_and_the_expiry() {
    let (test, clock) = start_manual(&school()).await;
    let mut signals = test.signals(SIGNALER);
    let (child, mother, sister) = (bsn(1), bsn(2), bsn(3));

    let response = signals
        .register(proto::RegisterRequest {
            related: vec![
                related(&mother, Relation::Parent),
                related(&sister, Relation::Sibling),
            ],
            category: Category::Neglect as i32,
            severity: Severity::Zorg as i32,
            meldcode_step: MeldcodeStep::Consultatie as i32,
            ..register(&child)
        })
        .await
        .expect("the registration is accepted");
    let header = transaction_of(response.metadata());
    let response = response.into_inner();
    assert_eq!(response.transaction_id, header);
    assert!(uuid::Uuid::try_parse(&response.transaction_id).is_ok());
    let signal = response.signal.expect("the signal");

    assert!(uuid::Uuid::try_parse(&signal.id).is_ok(), "{}", signal.id);
    assert!(is_pseudonym(&signal.subject), "{}", signal.subject);
    assert_eq!(signal.related.len(), 2);
    assert_eq!(signal.related[0].relation, Relation::Parent as i32);
    assert_eq!(signal.related[1].relation, Relation::Sibling as i32);
    for person in &signal.related {
        assert!(is_pseudonym(&person.pseudonym), "{}", person.pseudonym);
    }
    let persons: BTreeSet<&str> = [
        signal.subject.as_str(),
        &signal.related[0].pseudonym,
        &signal.related[1].pseudonym,
    ]
    .into();
    assert_eq!(persons.len(), 3, "three persons, three pseudonyms");
    assert_eq!(signal.category, Category::Neglect as i32);
    assert_eq!(signal.severity, Severity::Zorg as i32);
    assert_eq!(signal.meldcode_step, MeldcodeStep::Consultatie as i32);
    assert_eq!(signal.contact_point, CONTACT);
    assert_eq!(signal.registered_by, SIGNALER);
    assert_eq!(signal.version, 1);
    assert_eq!(signal.registered_at_unix_ms, T0);
    assert_eq!(signal.updated_at_unix_ms, T0);
    assert_eq!(
        signal.expires_at_unix_ms,
        T0 + i64::from(DEFAULT_RETENTION_DAYS) * UnixMillis::DAY
    );

    // The same BSN gives the same pseudonym, in any role in any signal.
    clock.advance(SECOND);
    let second = register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![related(&child, Relation::Child)],
            ..register(&mother)
        },
    )
    .await;
    assert_eq!(second.subject, signal.related[0].pseudonym);
    assert_eq!(second.related[0].pseudonym, signal.subject);
    assert_eq!(second.registered_at_unix_ms, T0 + SECOND);
    assert!(second.id > signal.id, "ids sort by registration");

    // Eight digits mean an implied leading zero: the same person as the nine-digit form.
    let nine = common::bsn_with_leading_zero(4);
    assert!(nine.starts_with('0') && common::elfproef(&nine));
    let eight = &nine[1..];
    let third = register_ok(&mut signals, register(eight)).await;
    let listed = list_all(
        &mut signals,
        proto::ListRequest {
            person_bsn: Some(nine.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&listed), vec![third.id.clone()]);
}

#[tokio::test]
async fn update_changes_step_and_severity_and_counts_versions() {
    let (test, clock) = start_manual(&school()).await;
    let mut signals = test.signals(SIGNALER);
    let mut coordinator = test.signals(COORDINATOR);
    let original = register_ok(&mut signals, register(&bsn(10))).await;

    // The step alone, with the expected version.
    clock.advance(SECOND);
    let step = signals
        .update(proto::UpdateRequest {
            signal_id: original.id.clone(),
            meldcode_step: Some(MeldcodeStep::Consultatie as i32),
            severity: None,
            expected_version: 1,
        })
        .await
        .expect("the update is accepted")
        .into_inner()
        .signal
        .expect("the signal");
    assert_eq!(step.version, 2);
    assert_eq!(step.meldcode_step, MeldcodeStep::Consultatie as i32);
    assert_eq!(step.severity, original.severity);
    assert_eq!(step.updated_at_unix_ms, T0 + SECOND);
    assert_eq!(step.registered_at_unix_ms, original.registered_at_unix_ms);
    assert_eq!(step.expires_at_unix_ms, original.expires_at_unix_ms);
    assert_eq!(step.subject, original.subject);

    // The severity alone, without an expected version, by a coordinator.
    clock.advance(SECOND);
    let severity = coordinator
        .update(proto::UpdateRequest {
            signal_id: original.id.clone(),
            meldcode_step: None,
            severity: Some(Severity::Ernstig as i32),
            expected_version: 0,
        })
        .await
        .expect("a coordinator may update")
        .into_inner()
        .signal
        .expect("the signal");
    assert_eq!(severity.version, 3);
    assert_eq!(severity.severity, Severity::Ernstig as i32);
    assert_eq!(severity.meldcode_step, MeldcodeStep::Consultatie as i32);
    assert_eq!(severity.updated_at_unix_ms, T0 + 2 * SECOND);

    // A stale expected version is refused and changes nothing; the current one is honoured.
    let stale = proto::UpdateRequest {
        signal_id: original.id.clone(),
        meldcode_step: Some(MeldcodeStep::Beslissen as i32),
        severity: Some(Severity::Acuut as i32),
        expected_version: 2,
    };
    refused(
        signals.update(stale.clone()).await,
        Code::FailedPrecondition,
        "expected_version",
    );
    let both = signals
        .update(proto::UpdateRequest {
            expected_version: 3,
            ..stale
        })
        .await
        .expect("the current version is accepted")
        .into_inner()
        .signal
        .expect("the signal");
    assert_eq!(both.version, 4);
    assert_eq!(both.meldcode_step, MeldcodeStep::Beslissen as i32);
    assert_eq!(both.severity, Severity::Acuut as i32);

    // The list shows the signal as it now is.
    let listed = list_all(&mut signals, proto::ListRequest::default()).await;
    assert_eq!(listed, vec![both]);

    // Every update is in the log with what changed; the refused one is not among them.
    let mut audit = test.audit(common::OFFICER);
    let updates = common::search_all(
        &mut audit,
        proto::AuditSearchRequest {
            action: Some(proto::AuditAction::SignalUpdate as i32),
            outcome: Some(proto::Outcome::Success as i32),
            ..Default::default()
        },
    )
    .await;
    let reasons: Vec<&str> = updates.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "meldcode_step 1_signalen->2_consultatie",
            "severity niet_pluis->ernstig",
            "meldcode_step 2_consultatie->5_beslissen; severity ernstig->acuut",
        ]
    );
    assert_eq!(
        updates
            .iter()
            .map(|e| e.actor.as_ref().expect("an actor").user.as_str())
            .collect::<Vec<_>>(),
        vec![SIGNALER, COORDINATOR, SIGNALER]
    );
}

#[tokio::test]
async fn withdraw_deletes_the_signal_at_once() {
    let (test, clock) = start_manual(&school()).await;
    let mut signals = test.signals(SIGNALER);
    let (child, mother) = (bsn(20), bsn(21));
    let kept = register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![related(&mother, Relation::Parent)],
            ..register(&child)
        },
    )
    .await;
    let mistaken = register_ok(&mut signals, register(&mother)).await;
    assert_eq!(
        ids(&list_all(&mut signals, proto::ListRequest::default()).await),
        vec![kept.id.clone(), mistaken.id.clone()]
    );

    clock.advance(5 * SECOND);
    let withdrawn = test
        .signals(COORDINATOR)
        .withdraw(proto::WithdrawRequest {
            signal_id: mistaken.id.clone(),
            reason: proto::WithdrawReason::Unfounded as i32,
        })
        .await
        .expect("a coordinator may withdraw")
        .into_inner();
    assert_eq!(withdrawn.signal_id, mistaken.id);
    assert_eq!(withdrawn.withdrawn_at_unix_ms, T0 + 5 * SECOND);

    assert_eq!(
        ids(&list_all(&mut signals, proto::ListRequest::default()).await),
        vec![kept.id.clone()]
    );
    // The mother is still related to the child's signal, and to nothing else.
    let of_mother = list_all(
        &mut signals,
        proto::ListRequest {
            person_bsn: Some(mother),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&of_mother), vec![kept.id.clone()]);
    // Gone means gone: neither updated nor withdrawn again.
    refused(
        signals
            .withdraw(proto::WithdrawRequest {
                signal_id: mistaken.id.clone(),
                reason: proto::WithdrawReason::Other as i32,
            })
            .await,
        Code::NotFound,
        "signal_id",
    );
}

#[tokio::test]
async fn concurrent_updates_of_one_version_let_exactly_one_through() {
    let (test, _clock) = start_manual(&school()).await;
    let mut signals = test.signals(SIGNALER);
    let signal = register_ok(&mut signals, register(&bsn(30))).await;
    let steps = [
        MeldcodeStep::Consultatie,
        MeldcodeStep::Gesprek,
        MeldcodeStep::Wegen,
        MeldcodeStep::Beslissen,
    ];
    let mut updates = Vec::new();
    for (i, step) in steps.iter().chain(steps.iter()).enumerate() {
        let mut client = if i % 2 == 0 {
            test.signals(SIGNALER)
        } else {
            test.signals(COORDINATOR)
        };
        let request = proto::UpdateRequest {
            signal_id: signal.id.clone(),
            meldcode_step: Some(*step as i32),
            severity: Some(Severity::Zorg as i32),
            expected_version: 1,
        };
        updates.push(tokio::spawn(async move { client.update(request).await }));
    }
    let mut accepted = Vec::new();
    for update in updates {
        match update.await.expect("an update task") {
            Ok(response) => accepted.push(response.into_inner().signal.expect("the signal")),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert!(
                    status.message().contains(
                        "expected_version: the signal is at version 2, not the expected 1"
                    ),
                    "{status:?}"
                );
            }
        }
    }
    assert_eq!(accepted.len(), 1, "one update per version");
    let listed = list_all(&mut signals, proto::ListRequest::default()).await;
    assert_eq!(listed, accepted);
    assert_eq!(listed[0].version, 2);
}

#[tokio::test]
async fn a_page_token_still_leads_on_after_its_signal_is_withdrawn() {
    let (test, _clock) = start_manual(&school()).await;
    let mut signals = test.signals(SIGNALER);
    let mut registered = Vec::new();
    for i in 0..5 {
        registered.push(register_ok(&mut signals, register(&bsn(40 + i))).await.id);
    }
    let first = signals
        .list(proto::ListRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .expect("a page")
        .into_inner();
    assert_eq!(ids(&first.signals), registered[..2]);
    assert_eq!(first.next_page_token, registered[1]);
    signals
        .withdraw(proto::WithdrawRequest {
            signal_id: registered[1].clone(),
            reason: proto::WithdrawReason::Unfounded as i32,
        })
        .await
        .expect("a withdrawal");
    let rest = list_all(
        &mut signals,
        proto::ListRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&rest), registered[2..]);
}

/// What a test registered, to compute what each filter must return.
#[derive(Debug, Clone)]
struct Registered {
    id: String,
    persons: Vec<String>,
    category: Category,
    severity: Severity,
    step: MeldcodeStep,
    contact: &'static str,
    by: &'static str,
    at: i64,
}

#[tokio::test]
async fn list_filters_each_field_and_pages_without_gaps() {
    let organisation = school().principal("p.devries", &[Role::Signaler]);
    let (test, clock) = start_manual_with(&organisation, |config| {
        config.contact_points.push(ContactPoint {
            id: ContactPointId::parse("zorgcoordinator").unwrap(),
            name: "Zorgcoordinator".into(),
            phone: None,
            email: Some("zorg@example.nl".into()),
        });
    })
    .await;
    let mut by_jansen = test.signals(SIGNALER);
    let mut by_devries = test.signals("p.devries");
    let shared_parent = bsn(99);
    let categories = [
        Category::Neglect,
        Category::Physical,
        Category::Psychological,
    ];
    let severities = [
        Severity::NietPluis,
        Severity::Zorg,
        Severity::Ernstig,
        Severity::Acuut,
    ];
    let steps = [
        MeldcodeStep::Signalen,
        MeldcodeStep::Consultatie,
        MeldcodeStep::Gesprek,
        MeldcodeStep::Wegen,
        MeldcodeStep::Beslissen,
    ];

    let mut model = Vec::new();
    for i in 0..13usize {
        let subject = if i == 12 {
            shared_parent.clone()
        } else {
            bsn(100 + i as u32)
        };
        let mut persons = vec![subject.clone()];
        let mut request = register(&subject);
        if i % 3 == 0 && i != 12 {
            request
                .related
                .push(related(&shared_parent, Relation::Parent));
            persons.push(shared_parent.clone());
        }
        let entry = Registered {
            id: String::new(),
            persons,
            category: categories[i % 3],
            severity: severities[i % 4],
            step: steps[i % 5],
            contact: if i % 2 == 0 {
                CONTACT
            } else {
                "zorgcoordinator"
            },
            by: if (i / 2) % 2 == 0 {
                SIGNALER
            } else {
                "p.devries"
            },
            at: T0 + i as i64 * SECOND,
        };
        request.category = entry.category as i32;
        request.severity = entry.severity as i32;
        request.meldcode_step = entry.step as i32;
        request.contact_point = entry.contact.to_owned();
        clock.set(UnixMillis(entry.at));
        let signals = if entry.by == SIGNALER {
            &mut by_jansen
        } else {
            &mut by_devries
        };
        let signal = register_ok(signals, request).await;
        assert_eq!(signal.registered_at_unix_ms, entry.at);
        model.push(Registered {
            id: signal.id,
            ..entry
        });
    }
    let all: Vec<String> = model.iter().map(|r| r.id.clone()).collect();

    // An analyst lists everything, in registration order, on one default page.
    let mut analyst = test.signals(ANALYST);
    let page = analyst
        .list(proto::ListRequest::default())
        .await
        .expect("an analyst may list")
        .into_inner();
    assert_eq!(ids(&page.signals), all);
    assert!(page.next_page_token.is_empty());

    type Filter = Box<dyn Fn(&Registered) -> bool>;
    let cases: Vec<(&str, proto::ListRequest, Filter)> = vec![
        (
            "person_bsn (subject or related)",
            proto::ListRequest {
                person_bsn: Some(shared_parent.clone()),
                ..Default::default()
            },
            Box::new({
                let p = shared_parent.clone();
                move |r| r.persons.contains(&p)
            }),
        ),
        (
            "category",
            proto::ListRequest {
                category: Some(Category::Physical as i32),
                ..Default::default()
            },
            Box::new(|r| r.category == Category::Physical),
        ),
        (
            "severity",
            proto::ListRequest {
                severity: Some(Severity::Acuut as i32),
                ..Default::default()
            },
            Box::new(|r| r.severity == Severity::Acuut),
        ),
        (
            "meldcode_step",
            proto::ListRequest {
                meldcode_step: Some(MeldcodeStep::Gesprek as i32),
                ..Default::default()
            },
            Box::new(|r| r.step == MeldcodeStep::Gesprek),
        ),
        (
            "contact_point",
            proto::ListRequest {
                contact_point: Some("zorgcoordinator".into()),
                ..Default::default()
            },
            Box::new(|r| r.contact == "zorgcoordinator"),
        ),
        (
            "registered_by",
            proto::ListRequest {
                registered_by: Some("p.devries".into()),
                ..Default::default()
            },
            Box::new(|r| r.by == "p.devries"),
        ),
        (
            "registered time range, start inclusive, end exclusive",
            proto::ListRequest {
                registered_from_unix_ms: Some(T0 + 3 * SECOND),
                registered_until_unix_ms: Some(T0 + 7 * SECOND),
                ..Default::default()
            },
            Box::new(|r| (T0 + 3 * SECOND..T0 + 7 * SECOND).contains(&r.at)),
        ),
        (
            "registered from only",
            proto::ListRequest {
                registered_from_unix_ms: Some(T0 + 10 * SECOND),
                ..Default::default()
            },
            Box::new(|r| r.at >= T0 + 10 * SECOND),
        ),
        (
            "category and contact point together",
            proto::ListRequest {
                category: Some(Category::Neglect as i32),
                contact_point: Some(CONTACT.into()),
                ..Default::default()
            },
            Box::new(|r| r.category == Category::Neglect && r.contact == CONTACT),
        ),
        (
            "person and severity together",
            proto::ListRequest {
                person_bsn: Some(shared_parent.clone()),
                severity: Some(Severity::NietPluis as i32),
                ..Default::default()
            },
            Box::new({
                let p = shared_parent.clone();
                move |r| r.persons.contains(&p) && r.severity == Severity::NietPluis
            }),
        ),
    ];
    for (name, request, filter) in cases {
        let expected: Vec<String> = model
            .iter()
            .filter(|r| filter(r))
            .map(|r| r.id.clone())
            .collect();
        assert!(
            !expected.is_empty() && expected.len() < model.len(),
            "{name}: the filter must select some signals but not all"
        );
        // One page, and pages of two: the same signals in the same order.
        let whole = list_all(&mut analyst, request.clone()).await;
        assert_eq!(ids(&whole), expected, "{name}");
        let paged = list_all(
            &mut analyst,
            proto::ListRequest {
                page_size: 2,
                ..request
            },
        )
        .await;
        assert_eq!(ids(&paged), expected, "{name}, in pages of two");
    }

    // Pages of five over thirteen signals: 5, 5, 3, each token leading on, no gaps.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = analyst
            .list(proto::ListRequest {
                page_size: 5,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page")
            .into_inner();
        pages.push(ids(&page.signals));
        if page.next_page_token.is_empty() {
            break;
        }
        assert_eq!(
            Some(&page.next_page_token),
            page.signals.last().map(|s| &s.id),
            "a token continues after the last signal shown"
        );
        token = page.next_page_token;
        assert!(pages.len() < 10, "the paging never ends");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![5, 5, 3]
    );
    assert_eq!(pages.concat(), all);

    // The largest page allowed returns everything at once.
    let most = analyst
        .list(proto::ListRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("page_size 100 is allowed")
        .into_inner();
    assert_eq!(ids(&most.signals), all);
    assert!(most.next_page_token.is_empty());
}
