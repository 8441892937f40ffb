//! Subject access (AVG art. 15, the client view of NEN 7513) across a real federation: every
//! node a gRPC server with its own certificate, sled store and audit log, peers talking mutual
//! TLS pinned in the signed directory. A privacy officer types a BSN at the child's school and
//! gets, from every node involved, who (principal, role, organisation) did what, when, for
//! which purpose and whether it was break-glass; nothing about anyone else. Refusals are
//! precise and change nothing; a peer refuses a requester the policy does not allow; no BSN
//! crosses the wire (the story's peer traffic is tapped in plaintext, see `wire_tap`).

mod common;
mod common_federation;
mod common_files;
mod wire_tap;

use common_files::contains;
use std::collections::BTreeSet;

use common_federation::*;
use kring::api::proto;
use kring::cli_support::AccessView;
use kring::demo::demo_members;
use kring::domain::{Action, Oin, Pseudonym, Purpose, RequestContext, Role};
use proto::{AuditAction, Category, Relation, Severity};
use tonic::Code;

/// Another child, registered at the same school: never part of the child's report.
fn other_child() -> String {
    bsn(4_242_424)
}

fn ask(bsn: &str) -> proto::SubjectAccessLocalRequest {
    proto::SubjectAccessLocalRequest {
        subject_bsn: bsn.into(),
        purpose: proto::Purpose::SubjectAccess as i32,
    }
}

/// The report `node`'s privacy officer gets about `bsn`.
async fn report_of(
    federation: &kring::devnet::RunningFederation,
    node: &str,
    bsn: &str,
) -> proto::SubjectAccessReport {
    officer(federation, node)
        .await
        .audit
        .subject_access(ask(bsn))
        .await
        .unwrap_or_else(|e| panic!("{node}'s officer asks about {bsn}: {e}"))
        .into_inner()
}

/// The events of one organisation in the report.
fn of<'r>(view: &'r AccessView, oin: &str) -> &'r [kring::domain::AccessedEvent] {
    &view
        .organisations
        .iter()
        .find(|o| o.source.oin == oin)
        .unwrap_or_else(|| panic!("{oin} is in the report"))
        .events
}

/// The organisations and the index of the federation's directory: whom subject access asks.
fn member_oins(federation: &kring::devnet::RunningFederation) -> BTreeSet<String> {
    federation
        .node("school")
        .federation()
        .expect("a federated node")
        .directory()
        .members()
        .iter()
        .filter(|m| kring::access::holds_events_about_persons(m))
        .map(|m| m.oin.to_string())
        .collect()
}

fn who(event: &kring::domain::AccessedEvent) -> (&str, Option<Role>, String) {
    let who = event.who();
    (who.user.as_str(), who.role, who.organisation.to_string())
}

/// `kring audit subject-access --bsn - --format FORMAT` at the school as its privacy officer,
/// the child's BSN on standard input.
async fn kring_subject_access(
    federation: &kring::devnet::RunningFederation,
    ca: &std::path::Path,
    format: &str,
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_kring"));
    command
        .args(["audit", "subject-access", "--bsn", "-", "--format", format])
        .args([
            "--node",
            &federation.node("school").local_addr().to_string(),
        ])
        .arg("--ca")
        .arg(ca)
        .env("KRING_TOKEN", &federation.tokens["school"][FG])
        .env_remove("KRING_NODE")
        .env_remove("KRING_CA")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("kring runs");
        writeln!(child.stdin.take().unwrap(), "{CHILD}").unwrap();
        child.wait_with_output().expect("kring finishes")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privacy_officer_gets_every_event_about_the_child_from_every_node_and_nothing_else() {
    let (_dir, mut federation, capture) = wire_tap::start_tapped(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;

    // The story: the school and the GP worry about the child; the school also about another
    // child; Veilig Thuis triages the child's household, then breaks the glass.
    register_ok(
        &mut school,
        register(
            CHILD,
            &[(MOTHER, Relation::Parent)],
            Category::NietPluis,
            Severity::NietPluis,
        ),
    )
    .await;
    register_ok(
        &mut huisarts,
        register(CHILD, &[], Category::Neglect, Severity::Zorg),
    )
    .await;
    let other = school
        .signals
        .register(worry(&other_child(), &[]))
        .await
        .expect("the other child's registration");
    let other_transaction = transaction_of(other.metadata());
    for party in [&school, &huisarts] {
        matches_until(party, "the school and the GP know of each other", |m| {
            m.len() == 1
        })
        .await;
    }
    let mut vt = client(&federation, VT_ANALYST).await;
    let triage = vt
        .cases
        .linked_signals(triage_of(CHILD))
        .await
        .expect("Veilig Thuis's triage map")
        .into_inner();
    assert!(triage.unavailable.is_empty());
    let emergency = vt
        .cases
        .break_glass(proto::BreakGlassRequest {
            person_bsn: CHILD.into(),
            reason: proto::BreakGlassReason::AcuteDangerChild as i32,
        })
        .await
        .expect("break-glass goes through")
        .into_inner();
    assert!(emergency.break_glass);

    // The child (through a parent) asks the school: its privacy officer types the BSN.
    let mut officer = officer(&federation, "school").await;
    let response = officer
        .audit
        .subject_access(ask(CHILD))
        .await
        .expect("the subject access report");
    let transaction = transaction_of(response.metadata());
    let report = response.into_inner();
    assert_eq!(report.transaction_id, transaction);
    let view = AccessView::new(&report).expect("a well-formed report");

    // Every organisation and the index were asked and answered, the school itself first; the
    // pseudonym services and the authority, whose logs hold nothing about persons, were not.
    let asked: Vec<&str> = report.sources.iter().map(|s| s.oin.as_str()).collect();
    assert_eq!(asked[0], SCHOOL);
    let holders: BTreeSet<String> = member_oins(&federation);
    assert_eq!(
        asked.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        holders
    );
    assert_eq!(asked.len(), 7, "six organisations and the index");
    assert!(
        report.sources.iter().all(|s| s.answered),
        "every node answered: {:#?}",
        report.sources
    );

    // The school: its own registration, the notice of the match, and what it disclosed to
    // Veilig Thuis's analyst, once for triage and once in the emergency.
    let at_school = of(&view, SCHOOL);
    let registered: Vec<_> = at_school
        .iter()
        .filter(|e| e.action == Action::SignalRegister)
        .collect();
    assert_eq!(registered.len(), 1, "one registration about the child");
    assert_eq!(
        who(registered[0]),
        ("m.jansen", Some(Role::Signaler), SCHOOL.to_owned())
    );
    assert_eq!(registered[0].purpose, Some(Purpose::Registration));
    assert!(!registered[0].emergency);
    let fetched: Vec<_> = at_school
        .iter()
        .filter(|e| e.action == Action::SignalsFetch)
        .collect();
    assert_eq!(fetched.len(), 2, "{fetched:#?}");
    for event in &fetched {
        assert_eq!(
            who(event),
            ("l.smit", Some(Role::Analyst), VEILIG_THUIS.to_owned())
        );
        assert_eq!(event.actor.user.as_str(), "kring:federation");
        assert_eq!(event.counterpart, Some(oin(VEILIG_THUIS)));
    }
    assert_eq!(fetched[0].purpose, Some(Purpose::VtTriage));
    assert!(!fetched[0].emergency);
    assert_eq!(fetched[1].purpose, Some(Purpose::Emergency));
    assert!(
        fetched[1].emergency,
        "the break-glass disclosure is flagged"
    );
    assert!(
        at_school
            .iter()
            .any(|e| e.action == Action::NoticeReceive && e.counterpart == Some(oin(INDEX)))
    );

    // The GP: its registration by its own professional, and its two disclosures.
    let at_huisarts = of(&view, HUISARTS);
    assert!(
        at_huisarts
            .iter()
            .any(|e| e.action == Action::SignalRegister
                && who(e) == ("h.bos", Some(Role::Signaler), HUISARTS.to_owned()))
    );
    assert_eq!(
        at_huisarts
            .iter()
            .filter(|e| e.action == Action::SignalsFetch && e.emergency)
            .count(),
        1
    );

    // Veilig Thuis: the analyst's triage and break-glass, as its own log has them.
    let at_vt = of(&view, VEILIG_THUIS);
    let triaged: Vec<_> = at_vt
        .iter()
        .filter(|e| e.action == Action::LinkedSignals)
        .collect();
    assert_eq!(triaged.len(), 1);
    assert_eq!(
        who(triaged[0]),
        ("l.smit", Some(Role::Analyst), VEILIG_THUIS.to_owned())
    );
    assert_eq!(triaged[0].purpose, Some(Purpose::VtTriage));
    assert!(!triaged[0].emergency);
    let broke: Vec<_> = at_vt
        .iter()
        .filter(|e| e.action == Action::BreakGlass)
        .collect();
    assert_eq!(broke.len(), 1);
    assert!(broke[0].emergency);
    assert_eq!(broke[0].purpose, Some(Purpose::Emergency));

    // The index: the pointers the school and the GP published about the child (it records its
    // own person ids, and finds the child's from the federation pseudonym it is asked with).
    let at_index = of(&view, INDEX);
    let published: BTreeSet<Option<Oin>> = at_index
        .iter()
        .filter(|e| e.action == Action::PointerPublish)
        .map(|e| e.counterpart)
        .collect();
    assert_eq!(
        published,
        BTreeSet::from([Some(oin(SCHOOL)), Some(oin(HUISARTS))])
    );
    assert!(at_index.iter().any(|e| e.action == Action::PointerLookup));

    // Organisations that never dealt with the child answered with nothing.
    for quiet in [GGD, RECLASSERING, LOKAAL_TEAM] {
        assert!(
            of(&view, quiet).is_empty(),
            "{quiet} has no events about the child"
        );
    }

    // Nothing about the other child: not its registration, and each event in time order.
    assert!(
        view.organisations
            .iter()
            .flat_map(|o| o.events.iter())
            .all(|e| e.transaction.to_string() != other_transaction),
        "the other child's registration is not in the report"
    );
    for org in &view.organisations {
        assert!(org.events.windows(2).all(|w| w[0].time <= w[1].time));
    }

    // Audited at both ends with one transaction id: the school's request and each answer,
    // and each peer's disclosure naming the school and its privacy officer.
    let at_requester = events_of(&federation, "school", &transaction).await;
    let summary: Vec<_> = at_requester
        .iter()
        .filter(|e| e.action == AuditAction::SubjectAccess as i32)
        .collect();
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].purpose, proto::Purpose::SubjectAccess as i32);
    assert_eq!(summary[0].legal_basis, proto::LegalBasis::Avg15 as i32);
    assert_eq!(summary[0].actor.as_ref().unwrap().user, FG);
    let answers: BTreeSet<&str> = at_requester
        .iter()
        .filter(|e| e.action == AuditAction::SubjectAccessFetch as i32)
        .map(|e| e.counterpart_oin.as_str())
        .collect();
    assert_eq!(answers.len(), holders.len() - 1);
    let disclosed: Vec<_> = events_of(&federation, "huisarts", &transaction)
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::SubjectAccessFetch as i32)
        .collect();
    assert_eq!(disclosed.len(), 1);
    let disclosed = &disclosed[0];
    assert_eq!(disclosed.counterpart_oin, SCHOOL);
    assert_eq!(disclosed.outcome, proto::Outcome::Success as i32);
    assert_eq!(disclosed.purpose, proto::Purpose::SubjectAccess as i32);
    assert_eq!(disclosed.legal_basis, proto::LegalBasis::Avg15 as i32);
    let behalf = disclosed
        .on_behalf_of
        .as_ref()
        .expect("on behalf of the officer");
    assert_eq!(
        (
            behalf.user.as_str(),
            behalf.role,
            behalf.organisation_oin.as_str()
        ),
        (FG, proto::Role::PrivacyOfficer as i32, SCHOOL)
    );
    assert_eq!(
        disclosed.object,
        format!("events:{}", at_huisarts.len()),
        "the GP recorded how much it disclosed"
    );
    assert_reconciled(&federation).await;

    // The report renders for people and as JSON.
    let text = view.render();
    for expected in [
        "Subject access report (AVG art. 15)",
        "== Basisschool De Regenboog (school, OIN 00000001820000001000)",
        "== Veilig Thuis Gelderland-Midden (veilig_thuis",
        "m.jansen (signaler), Basisschool De Regenboog",
        "l.smit (analyst), Veilig Thuis Gelderland-Midden (answered by kring:federation here)",
        "purpose  vt_triage",
        "BREAK-GLASS",
        "emergency yes (break-glass)",
        "0 did not answer",
        "Answered, with no events about this person:\n",
        "   GGD Gelderland-Zuid (OIN 00000001820000002000)\n",
    ] {
        assert!(
            text.contains(expected),
            "the report shows {expected:?}:\n{text}"
        );
    }
    let first = &at_school[0];
    assert!(text.contains(&first.time.rfc3339()));
    assert!(text.contains(&first.time.amsterdam()));
    let json = view.to_json();
    let organisations = json["organisations"].as_array().unwrap();
    assert_eq!(organisations[0]["oin"], SCHOOL);
    assert_eq!(organisations.len(), holders.len());
    let school_events = organisations[0]["events"].as_array().unwrap();
    assert!(school_events.iter().any(|e| e["emergency"] == true
        && e["who"]["user"] == "l.smit"
        && e["who"]["role"] == "analyst"
        && e["who"]["organisation"] == "Veilig Thuis Gelderland-Midden"
        && e["purpose"] == "emergency"));
    assert!(json["not_answered"].as_array().unwrap().is_empty());

    // The command line: the report as text and as JSON, the BSN read from standard input.
    let ca = federation.base.join("ca.crt");
    std::fs::write(&ca, federation.ca.cert_pem()).unwrap();
    let json = kring_subject_access(&federation, &ca, "json").await;
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(
        json["organisations"].as_array().unwrap().len(),
        holders.len()
    );
    assert!(
        json["organisations"][0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "signal.register" && e["who"]["user"] == "m.jansen")
    );
    let text = kring_subject_access(&federation, &ca, "text").await;
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with("Subject access report (AVG art. 15)"));
    assert!(text.contains("== Huisartsenpraktijk Presikhaaf (huisarts"));

    // A node that is down is listed, not waited for.
    federation.stop("reclassering").await.unwrap();
    let partial = officer
        .audit
        .subject_access(ask(CHILD))
        .await
        .expect("a report despite a stopped node")
        .into_inner();
    let silent: Vec<&proto::SubjectAccessSource> =
        partial.sources.iter().filter(|s| !s.answered).collect();
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0].oin, RECLASSERING);
    assert!(!silent[0].reason.is_empty());
    let text = AccessView::new(&partial).unwrap().render();
    assert!(text.contains("1 did not answer"));
    assert!(text.contains("Did not answer"));
    assert!(text.contains("Reclassering Nederland, unit Arnhem (OIN 00000001820000003000)"));
    let partial = kring_subject_access(&federation, &ca, "text").await;
    assert_eq!(
        partial.status.code(),
        Some(2),
        "an organisation did not answer"
    );
    assert!(String::from_utf8_lossy(&partial.stdout).contains("Did not answer"));
    federation.shutdown().await.unwrap();

    // The wire: the subject access requests went through the tap (their transaction id is in
    // the plaintext), and no BSN of the story is in any byte of the peer traffic.
    let wire = capture.bytes();
    assert!(capture.connections() > 0);
    assert!(contains(&wire, transaction.as_bytes()));
    for typed in [CHILD, MOTHER, other_child().as_str()] {
        assert!(
            !contains(&wire, typed.as_bytes()),
            "the peer traffic holds a typed BSN"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_precise_change_nothing_and_peers_check_the_policy_themselves() {
    let members: Vec<_> = demo_members()
        .into_iter()
        .filter(|m| {
            [
                "authority",
                "pseudonyms",
                "pseudonyms-b",
                "index",
                "veilig-thuis",
                "school",
                "ggd",
            ]
            .contains(&m.key.as_str())
        })
        .collect();
    // A policy under which schools may not ask for subject access.
    let (_dir, federation) = start_with_directory(&members, |content| {
        let rule = content
            .policy
            .purposes
            .iter_mut()
            .find(|r| r.purpose == Purpose::SubjectAccess)
            .expect("the default policy has a subject access rule");
        rule.org_types
            .retain(|t| *t != kring::domain::OrgType::School);
    })
    .await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    register_ok(&mut ggd, worry(CHILD, &[])).await;

    let mut vt_officer = officer(&federation, "veilig-thuis").await;
    let mut school_af = client(&federation, SCHOOL_AF).await;
    let mut school_officer = officer(&federation, "school").await;
    let mut invalid_bsn = CHILD.to_owned();
    invalid_bsn.replace_range(8..9, if CHILD.ends_with('4') { "5" } else { "4" });
    assert!(kring::domain::Bsn::parse(&invalid_bsn).is_err());

    // (who asks, at which node, the request, the code, what status and audit reason name)
    let cases = [
        (
            "signaler",
            "school",
            ask(CHILD),
            Code::PermissionDenied,
            "audit.review",
        ),
        (
            "officer",
            "veilig-thuis",
            proto::SubjectAccessLocalRequest {
                subject_bsn: CHILD.into(),
                purpose: 0,
            },
            Code::InvalidArgument,
            "purpose: is required",
        ),
        (
            "officer",
            "veilig-thuis",
            proto::SubjectAccessLocalRequest {
                subject_bsn: CHILD.into(),
                purpose: proto::Purpose::VtTriage as i32,
            },
            Code::InvalidArgument,
            "purpose: must be subject_access",
        ),
        (
            "officer",
            "veilig-thuis",
            ask(&invalid_bsn),
            Code::InvalidArgument,
            "subject_bsn",
        ),
        (
            "officer",
            "veilig-thuis",
            ask("12345"),
            Code::InvalidArgument,
            "subject_bsn",
        ),
        (
            "officer",
            "school",
            ask(CHILD),
            Code::PermissionDenied,
            "purpose subject_access: organisation type school may not ask",
        ),
    ];
    let mut refused_transactions = Vec::new();
    for (who, node, request, code, names) in cases {
        let asker = match (who, node) {
            ("signaler", _) => &mut school_af,
            (_, "school") => &mut school_officer,
            _ => &mut vt_officer,
        };
        let status = refused(asker.audit.subject_access(request).await, code, names);
        assert!(
            !status.message().contains(CHILD) && !status.message().contains(&invalid_bsn),
            "a status never repeats the BSN"
        );
        let transaction = transaction_of(status.metadata());
        let code_name = match code {
            Code::PermissionDenied => "permission_denied",
            _ => "invalid_argument",
        };
        audited_refusal(
            &federation,
            node,
            &transaction,
            AuditAction::SubjectAccess,
            code_name,
            names,
        )
        .await;
        refused_transactions.push(transaction);
    }
    // Nothing left the asking node: no peer has heard of any of these requests.
    for peer in ["ggd", "index", "veilig-thuis", "school"] {
        let seen: Vec<_> = search(&federation, peer, proto::AuditSearchRequest::default())
            .await
            .into_iter()
            .filter(|e| {
                refused_transactions.contains(&e.transaction_id)
                    && e.action == AuditAction::SubjectAccessFetch as i32
            })
            .collect();
        assert!(seen.is_empty(), "{peer} was asked: {seen:#?}");
    }

    // Veilig Thuis's officer may ask; the school, whose type the policy leaves out, answers
    // for its own log like every other member.
    let report = vt_officer
        .audit
        .subject_access(ask(CHILD))
        .await
        .expect("Veilig Thuis's officer may ask")
        .into_inner();
    assert!(report.sources.iter().all(|s| s.answered), "{report:#?}");
    let view = AccessView::new(&report).unwrap();
    assert!(
        of(&view, GGD)
            .iter()
            .any(|e| e.action == Action::SignalRegister)
    );

    // A peer decides for itself: asked directly over mutual TLS by a member the policy does
    // not allow, in a role it does not allow, for another purpose, or with no pseudonym, the
    // GGD refuses, names the rule or field, and records the refusal.
    let federation_pseudonym = Pseudonym([7; 32]);
    let direct = |purpose: proto::Purpose, role: proto::Role| {
        let transaction = new_transaction();
        let request = proto::SubjectAccessRequest {
            context: Some(context(&transaction, purpose, FG, role)),
            subject: federation_pseudonym.0.to_vec(),
        };
        (transaction, request)
    };
    let as_school: FederationClient = proto::federation_client::FederationClient::new(
        peer_channel(&federation, "ggd", &identity(&federation, "school")).await,
    );
    let as_vt: FederationClient = proto::federation_client::FederationClient::new(
        peer_channel(&federation, "ggd", &identity(&federation, "veilig-thuis")).await,
    );
    let (transaction, request) = direct(proto::Purpose::SubjectAccess, proto::Role::PrivacyOfficer);
    let peer_cases = vec![
        (
            as_school.clone(),
            transaction,
            request,
            Code::PermissionDenied,
            "permission_denied",
            "organisation type school may not ask",
        ),
        {
            let (t, r) = direct(proto::Purpose::SubjectAccess, proto::Role::Signaler);
            (
                as_vt.clone(),
                t,
                r,
                Code::PermissionDenied,
                "permission_denied",
                "role signaler may not ask",
            )
        },
        {
            let (t, r) = direct(proto::Purpose::VtTriage, proto::Role::PrivacyOfficer);
            (
                as_vt.clone(),
                t,
                r,
                Code::InvalidArgument,
                "invalid_argument",
                "context.purpose",
            )
        },
        {
            let (t, mut r) = direct(proto::Purpose::SubjectAccess, proto::Role::PrivacyOfficer);
            r.subject.truncate(31);
            (
                as_vt.clone(),
                t,
                r,
                Code::InvalidArgument,
                "invalid_argument",
                "subject",
            )
        },
    ];
    for (mut peer, transaction, request, code, code_name, names) in peer_cases {
        let request = in_transaction(request, &transaction);
        refused(peer.subject_access(request).await, code, names);
        audited_refusal(
            &federation,
            "ggd",
            &transaction,
            AuditAction::SubjectAccessFetch,
            code_name,
            names,
        )
        .await;
    }
    federation.shutdown().await.unwrap();
}

/// The peer request has room for pseudonyms only: this destructures it field by field, so a
/// field added to it (a BSN, say) fails to compile here; and the node's side of the wire
/// takes a `Pseudonym`, never a `Bsn`.
#[test]
fn the_peer_request_holds_only_a_pseudonym() {
    let request = proto::SubjectAccessRequest {
        context: Some(context(
            &new_transaction(),
            proto::Purpose::SubjectAccess,
            FG,
            proto::Role::PrivacyOfficer,
        )),
        subject: vec![7; 32],
    };
    let proto::SubjectAccessRequest { context, subject } = request;
    let proto::RequestContext {
        transaction_id: _,
        purpose: _,
        user: _,
        role: _,
        break_glass_reason: _,
    } = context.unwrap();
    assert_eq!(
        subject.len(),
        32,
        "the subject is a 32-byte federation pseudonym"
    );

    // `Peers::subject_access(&self, &Oin, &RequestContext, Pseudonym)`: the signature is the
    // proof; this only has to compile.
    #[allow(dead_code)]
    fn ask_peer<'a>(
        peers: &'a dyn kring::federation::Peers,
        to: &'a Oin,
        context: &'a RequestContext,
        subject: Pseudonym,
    ) -> impl std::future::Future<
        Output = Result<kring::federation::AccessAnswer, kring::federation::PeerError>,
    > + 'a {
        peers.subject_access(to, context, subject)
    }
}

/// A node outside any federation answers from its own log alone, under the same rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_answers_from_its_own_log() {
    let node = common::start_node(&common::school()).await;
    let mut signals = node.signals(common::SIGNALER);
    common::register_ok(&mut signals, common::register(CHILD)).await;
    common::register_ok(&mut signals, common::register(&other_child())).await;
    let report = node
        .audit(common::OFFICER)
        .subject_access(ask(CHILD))
        .await
        .expect("a report")
        .into_inner();
    assert_eq!(report.sources.len(), 1, "only this node was asked");
    assert!(report.sources[0].answered);
    let view = AccessView::new(&report).unwrap();
    let events = &view.organisations[0].events;
    assert_eq!(
        events.len(),
        1,
        "the child's registration only: {events:#?}"
    );
    assert_eq!(events[0].action, Action::SignalRegister);
    assert_eq!(events[0].who().user.as_str(), common::SIGNALER);
    assert_eq!(
        events[0].legal_basis,
        Some(kring::domain::LegalBasis::WetVerplichteMeldcode)
    );

    // A signaler may not ask; the refusal is audited with its purpose.
    let status = node
        .audit(common::SIGNALER)
        .subject_access(ask(CHILD))
        .await
        .expect_err("a signaler may not ask");
    assert_eq!(status.code(), Code::PermissionDenied);
    let transaction = common::transaction_of(status.metadata());
    let refusal = common::audited_refusal(
        &mut node.audit(common::OFFICER),
        &transaction,
        Code::PermissionDenied,
        "audit.review",
    )
    .await;
    assert_eq!(refusal.action, AuditAction::SubjectAccess as i32);
    assert_eq!(refusal.purpose, proto::Purpose::SubjectAccess as i32);
}

/// The members of the smaller federations below: the authority, both pseudonym services, the
/// index, the school, the GP and Veilig Thuis.
fn small_federation() -> Vec<kring::devnet::DevMember> {
    demo_members()
        .into_iter()
        .filter(|m| {
            [
                "authority",
                "pseudonyms",
                "pseudonyms-b",
                "index",
                "veilig-thuis",
                "school",
                "huisarts",
            ]
            .contains(&m.key.as_str())
        })
        .collect()
}

/// Subject access asked at the index itself: its own log names the person by index person
/// id, so its own search resolves that id as its peer handler does, and the pointers the
/// school and the GP published about the child are in the index's own section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_officer_finds_the_index_own_events_about_the_person() {
    let (_dir, federation) = start(&small_federation()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut huisarts = client(&federation, HUISARTS_SIGNALER).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    register_ok(&mut huisarts, worry(CHILD, &[])).await;
    for party in [&school, &huisarts] {
        matches_until(party, "the school and the GP know of each other", |m| {
            m.len() == 1
        })
        .await;
    }

    let report = report_of(&federation, "index", CHILD).await;
    assert_eq!(report.sources[0].oin, INDEX, "the index's own log first");
    assert!(report.sources.iter().all(|s| s.answered), "{report:#?}");
    let view = AccessView::new(&report).unwrap();
    let at_index = of(&view, INDEX);
    let published: BTreeSet<Option<Oin>> = at_index
        .iter()
        .filter(|e| e.action == Action::PointerPublish)
        .map(|e| e.counterpart)
        .collect();
    assert_eq!(
        published,
        BTreeSet::from([Some(oin(SCHOOL)), Some(oin(HUISARTS))]),
        "the index's own pointer events about the child: {at_index:#?}"
    );
    assert_eq!(
        report.sources[0].events as usize,
        at_index.len(),
        "the index's count is of what it found"
    );
    // The organisations answered for their own logs as usual.
    assert!(
        of(&view, SCHOOL)
            .iter()
            .any(|e| e.action == Action::SignalRegister)
    );
    federation.shutdown().await.unwrap();
}

/// A household lookup discloses the pointers and pseudonyms of the household's members, so
/// both its ends record each of them as a subject: the mother's report holds the index's
/// lookup and Veilig Thuis's, although Veilig Thuis asked about the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_household_lookup_is_in_every_disclosed_member_report() {
    let (_dir, federation) = start(&small_federation()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    register_ok(
        &mut school,
        register(
            CHILD,
            &[(MOTHER, Relation::Parent)],
            Category::NietPluis,
            Severity::NietPluis,
        ),
    )
    .await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let response = vt
        .cases
        .linked_signals(triage_of(CHILD))
        .await
        .expect("Veilig Thuis's triage of the child's household");
    let transaction = transaction_of(response.metadata());
    let triage = response.into_inner();
    assert!(triage.unavailable.is_empty());

    let report = report_of(&federation, "school", MOTHER).await;
    assert!(report.sources.iter().all(|s| s.answered), "{report:#?}");
    let view = AccessView::new(&report).unwrap();
    for (at, counterpart) in [(INDEX, VEILIG_THUIS), (VEILIG_THUIS, INDEX)] {
        let lookups: Vec<_> = of(&view, at)
            .iter()
            .filter(|e| e.action == Action::PointerLookup)
            .collect();
        assert_eq!(
            lookups.len(),
            1,
            "{at} recorded the household lookup about the mother: {:#?}",
            of(&view, at)
        );
        assert_eq!(lookups[0].transaction.to_string(), transaction);
        assert_eq!(lookups[0].counterpart, Some(oin(counterpart)));
        assert_eq!(lookups[0].purpose, Some(Purpose::VtTriage));
    }

    // The child's report holds them too, as before.
    let report = report_of(&federation, "school", CHILD).await;
    let view = AccessView::new(&report).unwrap();
    for at in [INDEX, VEILIG_THUIS] {
        assert!(
            of(&view, at)
                .iter()
                .any(|e| e.action == Action::PointerLookup)
        );
    }
    federation.shutdown().await.unwrap();
}

/// A subject access request that fails after the index allowed it (its key cannot be loaded:
/// a pseudonym service is away since the index restarted) is answered UNAVAILABLE and
/// recorded at the index as a failed disclosure with the purpose, its legal basis and the
/// status, so the exchange is on record at both ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_access_the_index_cannot_answer_is_audited_as_failed() {
    let (_dir, mut federation) = start(&small_federation()).await;
    // The index's first epoch starts with the school's pointer.
    let mut school = client(&federation, SCHOOL_AF).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    eventually("the index holds the pointer", || async {
        (!events(&federation, "index", AuditAction::PointerPublish)
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    federation.stop("pseudonyms-b").await.unwrap();
    federation.stop("index").await.unwrap();
    let clock: kring::clock::SharedClock = std::sync::Arc::new(kring::clock::SystemClock);
    restart(&mut federation, "index", clock).await;

    let transaction = new_transaction();
    let request = in_transaction(
        proto::SubjectAccessRequest {
            context: Some(context(
                &transaction,
                proto::Purpose::SubjectAccess,
                FG,
                proto::Role::PrivacyOfficer,
            )),
            subject: vec![7; 32],
        },
        &transaction,
    );
    let mut as_vt: FederationClient = proto::federation_client::FederationClient::new(
        peer_channel(&federation, "index", &identity(&federation, "veilig-thuis")).await,
    );
    refused(
        as_vt.subject_access(request).await,
        Code::Unavailable,
        "index key for epoch 1",
    );
    let recorded: Vec<_> = events_of(&federation, "index", &transaction)
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::SubjectAccessFetch as i32)
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    let failed = &recorded[0];
    assert_eq!(failed.outcome, proto::Outcome::Failed as i32);
    assert_eq!(failed.purpose, proto::Purpose::SubjectAccess as i32);
    assert_eq!(failed.legal_basis, proto::LegalBasis::Avg15 as i32);
    assert_eq!(failed.counterpart_oin, VEILIG_THUIS);
    assert!(
        failed.reason.starts_with("unavailable: ") && failed.reason.contains("index key"),
        "{}",
        failed.reason
    );
    assert_eq!(
        failed.on_behalf_of.as_ref().map(|b| b.user.as_str()),
        Some(FG)
    );
    federation.shutdown().await.unwrap();
}
