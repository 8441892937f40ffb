//! The peer gate: a node's peer listener lets nothing reach a handler unless the caller's
//! certificate chains to the federation CA, is within its dates, and carries a key the signed
//! directory pins for the OIN in it. Each refusal is UNAUTHENTICATED with a message naming
//! the rule, and is on record in the refusing node's log as PEER_REFUSED. The callers here
//! are real TLS clients on loopback, built from certificates made for the occasion.

mod common_federation;

use common_federation::*;
use kring::api::proto;
use kring::demo::demo_members;
use kring::devnet::RunningFederation;
use kring::pki::{DevCa, NodeCertRequest};
use kring::tls::{Connect, TlsIdentity};
use proto::AuditAction;
use time::{Duration, OffsetDateTime};
use tonic::Code;

fn identity_of(issued: &kring::pki::Issued) -> TlsIdentity {
    TlsIdentity::from_pem(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes())
        .expect("a certificate and key")
}

fn certificate(ca: &DevCa, name: &str, oin_text: &str) -> TlsIdentity {
    identity_of(
        &ca.issue(&NodeCertRequest::loopback(name, oin(oin_text), 30))
            .expect("a certificate"),
    )
}

/// Who calls, and the refusal the gate must give.
struct Caller {
    what: &'static str,
    identity: Option<TlsIdentity>,
    /// The status message: the rule, then (for a chain the CA refuses) what is wrong with it.
    message: String,
    detail: Option<&'static str>,
    /// The OIN the certificate claims, recorded as the refusal's counterpart.
    claims: Option<&'static str>,
}

/// A client of `target`'s peer listener presenting `identity` (or no certificate at all),
/// checking the server against the CA and its real pin.
async fn channel_as(
    federation: &RunningFederation,
    target: &str,
    identity: Option<&TlsIdentity>,
) -> tonic::transport::Channel {
    match identity {
        Some(identity) => peer_channel(federation, target, identity).await,
        None => {
            let roots = kring::tls::roots_from_pem(federation.ca.cert_pem().as_bytes())
                .expect("the CA's roots");
            let config = kring::tls::client_config(roots, None).expect("a client configuration");
            let address = federation.node(target).peer_addr().unwrap().to_string();
            kring::tls::channel(&address, "localhost", config, Connect::Eager)
                .await
                .expect("a TLS connection without a client certificate")
        }
    }
}

async fn assert_gate_refuses(federation: &RunningFederation, target: &str, callers: Vec<Caller>) {
    for caller in callers {
        let before = events(federation, target, AuditAction::PeerRefused)
            .await
            .len();
        let channel = channel_as(federation, target, caller.identity.as_ref()).await;
        // A read of signals that would disclose, and the harmless directory call: both refused.
        let fetched = FederationClient::new(channel.clone())
            .fetch_signals(proto::FetchSignalsRequest {
                context: Some(context(
                    &new_transaction(),
                    proto::Purpose::VtTriage,
                    "l.smit",
                    proto::Role::Analyst,
                )),
                signals: Vec::new(),
            })
            .await;
        let directory = FederationClient::new(channel)
            .directory(proto::DirectoryRequest {})
            .await;
        for result in [fetched.map(|_| ()), directory.map(|_| ())] {
            let status = result.expect_err(caller.what);
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{}: {status:?}",
                caller.what
            );
            match caller.detail {
                None => assert_eq!(status.message(), caller.message, "{}", caller.what),
                Some(detail) => assert!(
                    status.message().starts_with(&caller.message)
                        && status.message().contains(detail),
                    "{}: {:?} is not {:?} naming {detail:?}",
                    caller.what,
                    status.message(),
                    caller.message
                ),
            }
        }
        let refusals = events(federation, target, AuditAction::PeerRefused).await;
        assert_eq!(
            refusals.len(),
            before + 2,
            "{}: both calls are on record",
            caller.what
        );
        for (event, path) in refusals[before..].iter().zip([
            "/kring.v1.Federation/FetchSignals",
            "/kring.v1.Federation/Directory",
        ]) {
            assert_eq!(event.outcome, proto::Outcome::Refused as i32);
            assert!(
                event
                    .reason
                    .starts_with(&format!("unauthenticated: {}", caller.message))
                    && event.reason.contains(caller.detail.unwrap_or_default()),
                "{}: the audited reason {:?}",
                caller.what,
                event.reason
            );
            assert_eq!(event.object, path, "{}", caller.what);
            assert_eq!(
                event.counterpart_oin,
                caller.claims.unwrap_or_default(),
                "{}: the OIN the certificate claimed",
                caller.what
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_refuses_every_caller_the_directory_does_not_pin_and_records_it() {
    let (_dir, federation) = start(&demo_members()).await;
    let other_ca = DevCa::generate("another CA").unwrap();
    let expired = identity_of(
        &federation
            .ca
            .issue(&NodeCertRequest {
                not_before: OffsetDateTime::now_utc() - Duration::days(60),
                not_after: OffsetDateTime::now_utc() - Duration::days(1),
                ..NodeCertRequest::loopback("GGD Gelderland-Zuid", oin(GGD), 1)
            })
            .unwrap(),
    );
    let callers = vec![
        Caller {
            what: "a certificate from the federation CA for an OIN not in the directory",
            identity: Some(certificate(
                &federation.ca,
                "Onbekende Stichting",
                "00000001820000099000",
            )),
            message: "peer: not a member of the federation".into(),
            detail: None,
            claims: Some("00000001820000099000"),
        },
        Caller {
            what: "a member's OIN in a certificate from another CA",
            identity: Some(certificate(&other_ca, "GGD Gelderland-Zuid", GGD)),
            message: "peer certificate: ".into(),
            detail: Some("UnknownIssuer"),
            claims: Some(GGD),
        },
        Caller {
            what: "a member's OIN from the right CA with a key that is not pinned",
            identity: Some(certificate(&federation.ca, "GGD Gelderland-Zuid", GGD)),
            message: format!(
                "peer {GGD}: the certificate's key is not pinned for this member in the directory"
            ),
            detail: None,
            claims: Some(GGD),
        },
        Caller {
            what: "an expired certificate from the right CA",
            identity: Some(expired),
            message: "peer certificate: ".into(),
            detail: Some("certificate expired"),
            claims: Some(GGD),
        },
        Caller {
            what: "no client certificate",
            identity: None,
            message: "peer: a client certificate is required".into(),
            detail: None,
            claims: None,
        },
    ];
    assert_gate_refuses(&federation, "school", callers).await;

    // The same connection without a certificate reaches the health service, which the gate
    // leaves open to probes: the refusals above came from the gate, not from TLS.
    let probe = channel_as(&federation, "school", None).await;
    let health = tonic_health::pb::health_client::HealthClient::new(probe)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a health probe passes the gate")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_gate_refuses_an_impersonator_before_any_pointer_is_read() {
    let (_dir, federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    // Veilig Thuis's OIN on a certificate from the right CA, but not Veilig Thuis's key.
    let impostor = certificate(
        &federation.ca,
        "Veilig Thuis Gelderland-Midden",
        VEILIG_THUIS,
    );
    let channel = peer_channel(&federation, "index", &impostor).await;
    let status = IndexClient::new(channel)
        .lookup(triage_lookup(vec![7; 32], true))
        .await
        .expect_err("an impersonator is refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        format!(
            "peer {VEILIG_THUIS}: the certificate's key is not pinned for this member in the directory"
        )
    );
    let refusals = events(&federation, "index", AuditAction::PeerRefused).await;
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].counterpart_oin, VEILIG_THUIS);
    assert_eq!(refusals[0].object, "/kring.v1.Index/Lookup");
    assert!(
        events(&federation, "index", AuditAction::PointerLookup)
            .await
            .is_empty(),
        "no handler ran: the index did not look anything up"
    );
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_member_gets_through_and_receives_the_signed_directory() {
    let (_dir, federation) = start(&demo_members()).await;
    let channel = peer_channel(&federation, "ggd", &identity(&federation, "school")).await;
    let note = FederationClient::new(channel)
        .directory(proto::DirectoryRequest {})
        .await
        .expect("a member is admitted")
        .into_inner()
        .signed_directory;
    let directory = kring::directory::Directory::open(
        &note,
        &federation.authority_key(),
        kring::clock::Clock::now(&kring::clock::SystemClock),
    )
    .expect("the note is the authority's signed directory");
    assert_eq!(directory.serial(), 1);
    assert_eq!(
        note,
        std::fs::read_to_string(
            federation.configs["ggd"]
                .federation
                .as_ref()
                .unwrap()
                .directory_file
                .clone()
        )
        .unwrap(),
        "the directory the GGD holds"
    );
    assert!(
        events(&federation, "ggd", AuditAction::PeerRefused)
            .await
            .is_empty(),
        "nothing was refused"
    );
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_left_out_of_a_newer_directory_is_refused_from_then_on() {
    let (_dir, federation) = start(&demo_members()).await;
    let school = identity(&federation, "school");
    // Admitted under serial 1.
    FederationClient::new(peer_channel(&federation, "ggd", &school).await)
        .directory(proto::DirectoryRequest {})
        .await
        .expect("the school is a member");

    // Serial 2, signed by the authority, no longer lists the school: the GGD takes it.
    let ggd = federation.node("ggd").federation().unwrap();
    let mut content = ggd.directory().content().clone();
    content.serial = 2;
    content.members.retain(|m| m.oin.as_str() != SCHOOL);
    let note = kring::directory::Directory::new(content)
        .unwrap()
        .sign(&federation.authority);
    let now = kring::clock::Clock::now(&kring::clock::SystemClock);
    assert_eq!(
        ggd.accept_directory(&note, now).unwrap(),
        kring::directory::Accepted::Updated { from: 1, to: 2 }
    );
    let status = FederationClient::new(peer_channel(&federation, "ggd", &school).await)
        .directory(proto::DirectoryRequest {})
        .await
        .expect_err("a revoked member is refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "peer: not a member of the federation");
    let refusals = events(&federation, "ggd", AuditAction::PeerRefused).await;
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].counterpart_oin, SCHOOL);
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_does_not_remember_a_chain_past_its_dates() {
    let (_dir, federation) = start(&demo_members()).await;
    // From the right CA, for a member's OIN, valid for a few seconds more: the gate verifies
    // and remembers the chain, then refuses it for its key, which the directory does not pin.
    let now = OffsetDateTime::now_utc();
    let short_lived = identity_of(
        &federation
            .ca
            .issue(&NodeCertRequest {
                not_before: now - Duration::hours(1),
                not_after: now + Duration::seconds(3),
                ..NodeCertRequest::loopback("GGD Gelderland-Zuid", oin(GGD), 1)
            })
            .unwrap(),
    );
    let channel = channel_as(&federation, "school", Some(&short_lived)).await;
    let call = || {
        let channel = channel.clone();
        async move {
            FederationClient::new(channel)
                .directory(proto::DirectoryRequest {})
                .await
                .expect_err("refused")
        }
    };
    let first = call().await;
    assert_eq!(first.code(), Code::Unauthenticated);
    assert!(
        first.message().contains("is not pinned"),
        "verified, remembered, and refused for its key: {first:?}"
    );
    // Once its dates have passed, the same connection's calls are refused for the expiry: the
    // remembered verification is not used past them.
    eventually("the gate refuses the chain as expired", || async {
        let status = call().await;
        status
            .message()
            .contains("certificate expired")
            .then_some(())
    })
    .await;
    federation.shutdown().await.unwrap();
}
