//! The audit log as FHIR R4 AuditEvents, from real nodes: events made over the wire with known
//! BSNs, exported through the audit API and converted; disclosures between real federation
//! nodes seen from both ends; and `kring audit export` as a separate process, in both formats.

mod common;
mod common_federation;

use std::collections::BTreeSet;
use std::process::Command;

use kring::api::client::Audit;
use kring::api::proto;
use kring::audit::event;
use kring::audit::fhir::{self, Observer};
use kring::domain::{Action, AuditEvent, Oin, Outcome};
use serde_json::Value;

const SCHOOL_NAME: &str = "Basisschool De Regenboog";

fn oin(text: &str) -> Oin {
    Oin::parse(text).expect("a valid OIN")
}

/// Every event of the durable log as the export streams it: index and canonical bytes.
async fn exported(audit: &mut Audit) -> Vec<proto::AuditEvent> {
    let mut stream = audit
        .export(proto::ExportRequest {
            from_index: 0,
            until_index: 0,
        })
        .await
        .expect("the export starts")
        .into_inner();
    let mut events = Vec::new();
    while let Some(chunk) = stream.message().await.expect("the export streams") {
        events.extend(chunk.events);
    }
    events
}

fn decoded(events: &[proto::AuditEvent]) -> Vec<AuditEvent> {
    events
        .iter()
        .map(|e| event::decode(&e.canonical).expect("canonical bytes decode"))
        .collect()
}

/// Every resource of a log, asserting on the way that each event gives one resource per
/// subject (one for an event about nobody), with an id no other resource has.
fn convert(events: &[AuditEvent], observer: &Observer) -> Vec<(AuditEvent, Vec<Value>)> {
    let mut ids = BTreeSet::new();
    events
        .iter()
        .map(|event| {
            let resources = fhir::to_fhir(event, observer);
            assert_eq!(
                resources.len(),
                event.subjects.len().max(1),
                "event {} ({}) about {} subjects",
                event.index,
                event.action,
                event.subjects.len()
            );
            for (resource, subject) in resources.iter().zip(&event.subjects) {
                let patient = resource["entity"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["role"]["code"] == "1")
                    .expect("a patient entity per subject");
                assert_eq!(
                    patient["what"]["identifier"]["value"],
                    subject.to_string().as_str()
                );
            }
            for resource in &resources {
                assert_eq!(resource["resourceType"], "AuditEvent");
                let id = resource["id"].as_str().expect("an id").to_owned();
                assert!(ids.insert(id.clone()), "the id {id} is given twice");
            }
            (event.clone(), resources)
        })
        .collect()
}

/// No resource holds any of these BSNs, in any field.
fn assert_no_bsn(resources: &[Value], bsns: &[&str]) {
    assert!(!resources.is_empty(), "there are resources to scan");
    for resource in resources {
        let text = serde_json::to_string(resource).unwrap();
        for bsn in bsns {
            assert!(!text.contains(bsn), "a BSN in {text}");
        }
    }
}

/// Every resource that claims a BALP RESTful profile has what the profile requires and the
/// log can give: a client and a server agent (DCM 110153 Source Role ID and 110152
/// Destination Role ID, in whichever order the interaction gives them) and, for Create, Read,
/// Update and Delete, the data entity (type 2 System Object) with its `what`.
fn assert_restful_profiles_are_filled(resources: &[Value]) -> usize {
    const RESTFUL: [&str; 4] = ["Create", "Read", "Update", "Delete"];
    let mut claimed = 0;
    for resource in resources {
        let Some(name) = resource["meta"]["profile"][0].as_str().and_then(|p| {
            p.strip_prefix("https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.")
        }) else {
            continue;
        };
        let base = name.strip_prefix("Patient").unwrap_or(name);
        // A search claims no Query profile: the log does not keep the raw query it requires.
        assert_ne!(base, "Query", "{resource:#}");
        if !RESTFUL.contains(&base) {
            continue;
        }
        claimed += 1;
        let typed = |code: &str| {
            resource["agent"].as_array().unwrap().iter().any(|a| {
                a["type"]["coding"][0]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
                    && a["type"]["coding"][0]["code"] == code
                    && a["who"].is_object()
            })
        };
        assert!(typed("110153"), "a 110153 agent in {resource:#}");
        assert!(typed("110152"), "a 110152 agent in {resource:#}");
        assert!(
            resource["entity"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| { e["type"]["code"] == "2" && e["what"].is_object() }),
            "the data entity with its what in {resource:#}"
        );
    }
    claimed
}

fn type_code(resource: &Value) -> &str {
    resource["type"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn a_node_s_log_is_one_resource_per_subject_refusals_are_minor_failures_and_no_bsn_leaves() {
    use common::*;
    let test = start_node(&school()).await;
    let (child, mother, other) = (bsn(1), bsn(2), bsn(3));
    let mut signals = test.signals(SIGNALER);
    let first = register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![related(&mother, proto::Relation::Parent)],
            ..register(&child)
        },
    )
    .await;
    let second = register_ok(&mut signals, register(&other)).await;
    signals
        .update(proto::UpdateRequest {
            signal_id: first.id.clone(),
            meldcode_step: Some(proto::MeldcodeStep::Gesprek as i32),
            ..Default::default()
        })
        .await
        .expect("the update is accepted");
    signals
        .withdraw(proto::WithdrawRequest {
            signal_id: second.id.clone(),
            reason: proto::WithdrawReason::Unfounded as i32,
        })
        .await
        .expect("the withdrawal is accepted");
    list_all(
        &mut signals,
        proto::ListRequest {
            page_size: 10,
            ..Default::default()
        },
    )
    .await;
    // The privacy officer types a BSN to search the log; the node pseudonymises it.
    search_all(
        &mut test.audit(OFFICER),
        proto::AuditSearchRequest {
            subject_bsn: Some(child.clone()),
            page_size: 100,
            ..Default::default()
        },
    )
    .await;
    // Two refusals: no token at all, and a role that may not register.
    refused(
        test.anonymous().signals.register(register(&child)).await,
        tonic::Code::Unauthenticated,
        "bearer token",
    );
    refused(
        test.signals(OFFICER).register(register(&mother)).await,
        tonic::Code::PermissionDenied,
        "signals.register",
    );

    let events = decoded(&exported(&mut test.audit(OFFICER)).await);
    let observer = Observer {
        oin: oin("00000001820000001000"),
        name: Some(SCHOOL_NAME.into()),
    };
    let converted = convert(&events, &observer);
    let all: Vec<Value> = converted.iter().flat_map(|(_, r)| r.clone()).collect();
    assert_no_bsn(&all, &[&child, &mother, &other]);
    assert!(
        assert_restful_profiles_are_filled(&all) > 0,
        "local calls claim RESTful profiles"
    );

    // The registration about the child and the mother: two resources, one per person.
    let (_, registered) = converted
        .iter()
        .find(|(e, _)| e.action == Action::SignalRegister && e.subjects.len() == 2)
        .expect("the registration about two persons");
    assert_eq!(registered.len(), 2);
    for resource in registered {
        assert_eq!(type_code(resource), "rest");
        assert_eq!(resource["subtype"][0]["code"], "create");
        assert_eq!(resource["action"], "C");
        assert_eq!(
            resource["meta"]["profile"][0],
            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate"
        );
        assert_eq!(resource["source"]["observer"]["display"], SCHOOL_NAME);
    }

    // Every refusal is a minor failure described by its reason.
    let refusals: Vec<_> = converted
        .iter()
        .filter(|(e, _)| e.outcome == Outcome::Refused)
        .collect();
    assert_eq!(refusals.len(), 2, "the two refusals");
    for (event, resources) in &refusals {
        for resource in resources {
            assert_eq!(resource["outcome"], "4");
            assert_eq!(
                resource["outcomeDesc"],
                event.reason.as_deref().expect("a refusal has a reason")
            );
        }
    }
    let login = refusals
        .iter()
        .find(|(e, _)| e.actor.user.as_str() == "kring:anonymous")
        .expect("the anonymous refusal");
    assert_eq!(type_code(&login.1[0]), "110114", "a failed login");
    let denied = refusals
        .iter()
        .find(|(e, _)| e.actor.user.as_str() == OFFICER)
        .expect("the officer's refusal");
    assert_eq!(
        type_code(&denied.1[0]),
        "rest",
        "a refused create stays a create"
    );
    assert!(denied.1[0].get("meta").is_none());
    assert!(
        converted
            .iter()
            .filter(|(e, _)| e.outcome == Outcome::Success)
            .all(|(_, r)| r.iter().all(|r| r["outcome"] == "0"))
    );
    test.node.shutdown().await.unwrap();
}

/// The organisation agent with this OIN, with its BALP role code.
fn org_role<'a>(resource: &'a Value, oin: &str) -> Option<&'a str> {
    let agent = resource["agent"].as_array().unwrap().iter().find(|a| {
        a["who"]["identifier"]["system"] == fhir::OIN_SYSTEM
            && a["who"]["identifier"]["value"] == oin
    })?;
    agent["type"]["coding"][0]["code"].as_str()
}

fn requestor(resource: &Value) -> &Value {
    let asked: Vec<&Value> = resource["agent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["requestor"] == true)
        .collect();
    assert_eq!(asked.len(), 1, "one requestor in {resource:#}");
    &asked[0]["who"]["identifier"]
}

fn profile(resource: &Value) -> &str {
    resource["meta"]["profile"][0].as_str().unwrap_or_default()
}

fn transaction_entity(resource: &Value) -> &Value {
    &resource["entity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"]["code"] == "XrequestId")
        .expect("the transaction entity")["what"]["identifier"]["value"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disclosures_are_an_export_at_the_source_and_an_import_at_the_requester() {
    use common_federation::*;
    let (_dir, federation) = start(&kring::demo::demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    register_ok(
        &mut school,
        worry(CHILD, &[(MOTHER, proto::Relation::Parent)]),
    )
    .await;
    register_ok(&mut ggd, worry(MOTHER, &[(CHILD, proto::Relation::Child)])).await;
    matches_until(&school, "the school learns of the GGD", |m| {
        m.len() == 1 && party_oins(&m[0]) == [GGD]
    })
    .await;

    let mut vt = client(&federation, VT_ANALYST).await;
    let response = vt
        .cases
        .linked_signals(triage_of(CHILD))
        .await
        .expect("Veilig Thuis's map");
    let transaction = transaction_of(response.metadata());
    assert!(response.into_inner().unavailable.is_empty());

    let mut logs = Vec::new();
    for (key, node) in &federation.nodes {
        let mut officer = officer(&federation, key).await;
        let observer = Observer {
            oin: node.organisation(),
            name: None,
        };
        let events = decoded(&exported(&mut officer.audit).await);
        logs.push((key.clone(), convert(&events, &observer)));
    }
    let log = |key: &str| {
        &logs
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no node {key}"))
            .1
    };
    let all: Vec<Value> = logs
        .iter()
        .flat_map(|(_, log)| log.iter().flat_map(|(_, r)| r.clone()))
        .collect();
    assert_no_bsn(&all, &[CHILD, MOTHER, FATHER]);
    assert!(assert_restful_profiles_are_filled(&all) > 0);

    // At the school, the source: an export to Veilig Thuis, asked by its analyst.
    let fetched = |key: &str, counterpart: &str| -> Vec<Value> {
        let found: Vec<Value> = log(key)
            .iter()
            .filter(|(e, _)| {
                e.action == Action::SignalsFetch
                    && e.transaction.to_string() == transaction
                    && e.counterpart.map(|c| c.to_string()).as_deref() == Some(counterpart)
            })
            .flat_map(|(_, r)| r.clone())
            .collect();
        assert!(
            !found.is_empty(),
            "{key} recorded the fetch with {counterpart}"
        );
        found
    };
    let disclosed = fetched("school", VEILIG_THUIS);
    for resource in &disclosed {
        assert_eq!(type_code(resource), "110106", "an export at the source");
        assert_eq!(resource["action"], "R");
        assert!(profile(resource).ends_with("IHE.BasicAudit.PrivacyDisclosure.Source"));
        assert_eq!(org_role(resource, SCHOOL), Some("110153"), "the source");
        assert_eq!(
            org_role(resource, VEILIG_THUIS),
            Some("110152"),
            "the recipient"
        );
        let asked = requestor(resource);
        assert_eq!(asked["value"], VT_ANALYST.1);
        assert_eq!(asked["assigner"]["identifier"]["value"], VEILIG_THUIS);
        assert_eq!(
            resource["purposeOfEvent"][0]["coding"][0]["code"],
            "vt_triage"
        );
        assert_eq!(
            transaction_entity(resource),
            format!("urn:uuid:{transaction}").as_str()
        );
    }

    // At Veilig Thuis, the requester: an import from each source.
    for source in [SCHOOL, GGD] {
        for resource in &fetched("veilig-thuis", source) {
            assert_eq!(type_code(resource), "110107", "an import at the recipient");
            assert_eq!(resource["action"], "C");
            assert!(profile(resource).ends_with("IHE.BasicAudit.PrivacyDisclosure.Recipient"));
            assert_eq!(org_role(resource, source), Some("110153"), "the source");
            assert_eq!(
                org_role(resource, VEILIG_THUIS),
                Some("110152"),
                "the recipient"
            );
            assert_eq!(requestor(resource)["value"], VT_ANALYST.1);
            assert_eq!(
                transaction_entity(resource),
                format!("urn:uuid:{transaction}").as_str()
            );
        }
    }
    let (_, map) = log("veilig-thuis")
        .iter()
        .find(|(e, _)| {
            e.action == Action::LinkedSignals && e.transaction.to_string() == transaction
        })
        .expect("the map's summary");
    assert!(
        map.iter()
            .all(|r| type_code(r) == "110107" && profile(r).is_empty())
    );

    // A pointer: published by the school's outbox (an export to the index), taken by the
    // index (an import from the school).
    let published = |key: &str| -> Vec<Value> {
        log(key)
            .iter()
            .filter(|(e, _)| e.action == Action::PointerPublish && e.outcome == Outcome::Success)
            .filter(|(e, _)| {
                e.counterpart == Some(oin(if key == "school" { INDEX } else { SCHOOL }))
            })
            .flat_map(|(_, r)| r.clone())
            .collect()
    };
    let sent = published("school");
    let taken = published("index");
    assert!(
        !sent.is_empty() && !taken.is_empty(),
        "the publication at both ends"
    );
    for resource in &sent {
        assert_eq!(type_code(resource), "110106");
        assert_eq!(org_role(resource, SCHOOL), Some("110153"));
        assert_eq!(org_role(resource, INDEX), Some("110152"));
    }
    for resource in &taken {
        assert_eq!(type_code(resource), "110107");
        assert_eq!(org_role(resource, SCHOOL), Some("110153"));
        assert_eq!(org_role(resource, INDEX), Some("110152"));
        assert_eq!(requestor(resource)["value"], SCHOOL, "the school asked");
    }
    federation.shutdown().await.unwrap();
}

/// Runs `kring audit export` against a node and returns its output.
async fn kring_export(
    test: &common::TestNode,
    ca: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kring"));
    command
        .args(["audit", "export", "--node", &test.address, "--ca"])
        .arg(ca)
        .args(args)
        .env("KRING_TOKEN", &test.tokens[common::OFFICER])
        .env_remove("KRING_NODE")
        .env_remove("KRING_CA");
    tokio::task::spawn_blocking(move || command.output().expect("kring runs"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_writes_fhir_ndjson_and_jsonl_byte_identical_to_the_canonical_bytes() {
    use common::*;
    let test = start_node(&school()).await;
    let mut signals = test.signals(SIGNALER);
    register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![related(&bsn(12), proto::Relation::Parent)],
            ..register(&bsn(11))
        },
    )
    .await;
    let ca = test.dir.path().join("ca.crt");
    std::fs::write(&ca, &test.ca_pem).unwrap();

    // A fixed range, so that the exports' own audit events do not move it.
    let events = exported(&mut test.audit(OFFICER)).await;
    let until = events.len().to_string();
    let canonical: Vec<u8> = events
        .iter()
        .flat_map(|e| e.canonical.iter().copied().chain([b'\n']))
        .collect();
    for format in [&[][..], &["--format", "jsonl"][..]] {
        let out = kring_export(&test, &ca, &[&["--until", &until][..], format].concat()).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == canonical,
            "the JSON lines ({format:?}) are not the canonical bytes"
        );
    }

    let out = kring_export(
        &test,
        &ca,
        &[
            "--until",
            &until,
            "--format",
            "fhir",
            "--observer-name",
            SCHOOL_NAME,
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.iter().all(|r| r["resourceType"] == "AuditEvent"));
    // The observer's OIN was learnt from the log; the resources are the library's, in order.
    let observer = Observer {
        oin: oin("00000001820000001000"),
        name: Some(SCHOOL_NAME.into()),
    };
    let expected: Vec<Value> = decoded(&events)
        .iter()
        .flat_map(|e| fhir::to_fhir(e, &observer))
        .collect();
    assert_eq!(lines.len(), expected.len());
    assert!(
        lines == expected,
        "the command's resources differ from the library's"
    );
    assert_no_bsn(&lines, &[&bsn(11), &bsn(12)]);

    // Observer options belong to the FHIR format; a bad OIN is named.
    let out = kring_export(&test, &ca, &["--observer-name", SCHOOL_NAME]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--observer-oin and --observer-name apply to --format fhir only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kring_export(&test, &ca, &["--format", "fhir", "--observer-oin", "123"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be exactly 20 digits"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    test.node.shutdown().await.unwrap();
}
