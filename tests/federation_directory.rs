//! The signed directory at a node: it refuses to start on an expired directory or on one not
//! signed by the authority's key, takes a newer serial and keeps it in its store, and never
//! goes back to an older one, not even when its configured file is older after a restart.

mod common_federation;

use std::sync::Arc;

use common_federation::*;
use kring::api::proto;
use kring::audit::NoteSigner;
use kring::clock::{Clock, SharedClock, SystemClock};
use kring::demo::demo_members;
use kring::devnet::{DevMember, RunningFederation};
use kring::directory::{
    AUTHORITY_KEY_NAME, Accepted, Contact, Directory, DirectoryContent, DirectoryError, Member,
    NodeRole,
};
use kring::domain::{OrgType, UnixMillis};
use kring::node::RunningNode;
use kring::pki::NodeCertRequest;
use kring::tls::TlsIdentity;
use proto::AuditAction;
use tonic::Code;

/// The pseudonym service, the index, a school and a GGD, each with its privacy officer.
fn members() -> Vec<DevMember> {
    demo_members()
        .into_iter()
        .filter(|m| ["pseudonyms", "index", "school", "ggd"].contains(&m.key.as_str()))
        .collect()
}

fn now() -> UnixMillis {
    SystemClock.now()
}

fn directory_file(federation: &RunningFederation) -> std::path::PathBuf {
    federation.configs["school"]
        .federation
        .as_ref()
        .unwrap()
        .directory_file
        .clone()
}

fn held(federation: &RunningFederation, node: &str) -> Arc<Directory> {
    federation.node(node).federation().unwrap().directory()
}

/// A youth care organisation that is not in serial 1: its member entry and its certificate.
fn newcomer(federation: &RunningFederation) -> (Member, TlsIdentity) {
    let jeugdzorg = oin("00000001820000008000");
    let issued = federation
        .ca
        .issue(&NodeCertRequest::loopback(
            "Jeugdzorg Gelderland",
            jeugdzorg,
            30,
        ))
        .unwrap();
    let identity =
        TlsIdentity::from_pem(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes()).unwrap();
    let audit = NoteSigner::from_pkcs8(
        &kring::config::default_origin(&jeugdzorg),
        &kring::audit::note::generate_pkcs8(),
    )
    .unwrap();
    let member = Member {
        oin: jeugdzorg,
        name: "Jeugdzorg Gelderland".into(),
        org_type: OrgType::YouthCare,
        roles: vec![NodeRole::Organisation],
        endpoint: "127.0.0.1:9".into(),
        tls_spki_sha256: vec![kring::tls::spki_sha256(&identity.certs[0]).unwrap()],
        audit_key: audit.verifier_key(),
        contact: Some(Contact {
            name: "Aandachtsfunctionaris Jeugdzorg Gelderland".into(),
            phone: Some("+31 26 000 8000".into()),
            email: None,
        }),
    };
    (member, identity)
}

fn signed(content: DirectoryContent, authority: &NoteSigner) -> String {
    Directory::new(content)
        .expect("a valid directory")
        .sign(authority)
}

/// Stops and restarts `node`, returning the serial it holds afterwards.
async fn restarted(federation: &mut RunningFederation, node: &str) -> u64 {
    federation.stop(node).await.unwrap();
    restart(federation, node, Arc::new(SystemClock)).await;
    held(federation, node).serial()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_on_an_expired_directory() {
    let dir = base_dir();
    let planned = plan(&members(), &dir, now(), |_| {});
    let mut content = planned.directory.content().clone();
    content.issued_at = now().plus_millis(-40 * UnixMillis::DAY);
    content.expires_at = now().plus_millis(-UnixMillis::DAY);
    std::fs::write(
        dir.path().join("directory.note"),
        signed(content.clone(), &planned.authority),
    )
    .unwrap();
    let config = planned
        .nodes
        .into_iter()
        .find(|n| n.key == "school")
        .unwrap()
        .config;
    let error = RunningNode::start(config, Arc::new(SystemClock))
        .await
        .expect_err("an expired directory is refused");
    assert_eq!(
        error.to_string(),
        format!(
            "federation: directory: the directory expired at {}",
            content.expires_at.rfc3339()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_accepted_directory_expired_does_not_start_again_on_it() {
    let (_dir, mut federation, clock) = start_manual(&members(), |_| {}).await;
    federation.stop("school").await.unwrap();
    // Thirty days on, the only directory the school has (in its store and its file) expired.
    clock.advance(31 * UnixMillis::DAY);
    let config = federation.configs["school"].clone();
    let shared: SharedClock = Arc::new(clock.clone());
    let error = start_again(config, shared)
        .await
        .expect_err("an expired directory is refused after a restart too");
    assert!(
        error
            .to_string()
            .starts_with("federation: directory: the directory expired at "),
        "{error}"
    );
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_signed_by_another_key_is_refused() {
    // Not the authority's key, under the authority's name.
    let impostor =
        NoteSigner::from_pkcs8(AUTHORITY_KEY_NAME, &kring::audit::note::generate_pkcs8()).unwrap();

    // A fresh node does not start on it.
    let dir = base_dir();
    let planned = plan(&members(), &dir, now(), |_| {});
    let mut content = planned.directory.content().clone();
    std::fs::write(
        dir.path().join("directory.note"),
        signed(content.clone(), &impostor),
    )
    .unwrap();
    let config = planned
        .nodes
        .into_iter()
        .find(|n| n.key == "ggd")
        .unwrap()
        .config;
    let error = RunningNode::start(config, Arc::new(SystemClock))
        .await
        .expect_err("another key's directory is refused");
    assert!(
        error
            .to_string()
            .starts_with("federation: directory: the directory is not signed by the authority"),
        "{error}"
    );

    // A running node does not take a newer serial signed by it.
    let (_dir, mut federation) = start(&members()).await;
    content = held(&federation, "school").content().clone();
    content.serial = 2;
    let forged = signed(content, &impostor);
    let school = federation.node("school").federation().unwrap().clone();
    assert!(matches!(
        school.accept_directory(&forged, now()),
        Err(DirectoryError::NotSigned { .. })
    ));
    assert_eq!(held(&federation, "school").serial(), 1);
    // Nor after a restart with it as its configured file: it keeps the one it holds.
    std::fs::write(directory_file(&federation), &forged).unwrap();
    assert_eq!(restarted(&mut federation, "school").await, 1);
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_directory_is_taken_and_kept_and_a_rollback_to_the_older_is_refused() {
    let (_dir, mut federation) = start(&members()).await;
    let serial_1 = std::fs::read_to_string(directory_file(&federation)).unwrap();
    let (jeugdzorg, jeugdzorg_tls) = newcomer(&federation);
    let mut content = held(&federation, "school").content().clone();
    content.serial = 2;
    content.members.push(jeugdzorg.clone());
    let serial_2 = signed(content, &federation.authority);

    // Under serial 1 the newcomer is no member.
    let refused = FederationClient::new(peer_channel(&federation, "school", &jeugdzorg_tls).await)
        .directory(proto::DirectoryRequest {})
        .await
        .expect_err("not yet a member");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), "peer: not a member of the federation");

    // The school restarts with serial 2 as its file: it takes it and keeps it in its store.
    std::fs::write(directory_file(&federation), &serial_2).unwrap();
    assert_eq!(restarted(&mut federation, "school").await, 2);
    let accepted = events(&federation, "school", AuditAction::DirectoryAccept).await;
    let objects: Vec<&str> = accepted.iter().map(|e| e.object.as_str()).collect();
    assert_eq!(objects, ["directory:1", "directory:2"]);
    assert!(held(&federation, "school").member(&jeugdzorg.oin).is_some());
    FederationClient::new(peer_channel(&federation, "school", &jeugdzorg_tls).await)
        .directory(proto::DirectoryRequest {})
        .await
        .expect("under serial 2 the newcomer is a member");

    // Serial 1 again, offered to the running node: a rollback.
    let school = federation.node("school").federation().unwrap().clone();
    assert_eq!(
        school.accept_directory(&serial_1, now()),
        Err(DirectoryError::Rollback {
            current: 2,
            offered: 1
        })
    );
    assert_eq!(
        school.accept_directory(&serial_2, now()),
        Ok(Accepted::Unchanged)
    );
    // And as its configured file after a restart: the store holds serial 2, which stands.
    std::fs::write(directory_file(&federation), &serial_1).unwrap();
    assert_eq!(restarted(&mut federation, "school").await, 2);
    assert!(held(&federation, "school").member(&jeugdzorg.oin).is_some());
    let accepted = events(&federation, "school", AuditAction::DirectoryAccept).await;
    assert_eq!(accepted.len(), 2, "nothing new was accepted");
    // The GGD, which never saw serial 2, still refuses the newcomer.
    let status = FederationClient::new(peer_channel(&federation, "ggd", &jeugdzorg_tls).await)
        .directory(proto::DirectoryRequest {})
        .await
        .expect_err("the GGD holds serial 1");
    assert_eq!(status.message(), "peer: not a member of the federation");
    federation.shutdown().await.unwrap();
}
