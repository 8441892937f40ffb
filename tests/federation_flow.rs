//! The federation end to end over mutual TLS on loopback: real nodes, real stores.

use std::sync::Arc;
use std::time::Duration;

use kring::api::proto;
use kring::clock::SystemClock;
use kring::demo::DevOrganisation;
use kring::devnet::{DevFederation, DevMember, RunningFederation};
use kring::directory::NodeRole;
use kring::domain::{OrgType, Role};

const CHILD: &str = "111222333";
const MOTHER: &str = "123456782";

async fn federation(dir: &std::path::Path) -> RunningFederation {
    let members = vec![
        DevMember::new(
            "index",
            DevOrganisation::new(
                "Verwijsindex regio",
                "00000001820000000100",
                OrgType::FederationService,
            ),
            &[NodeRole::Index],
        ),
        DevMember::new(
            "pseudonyms",
            DevOrganisation::new(
                "Pseudoniemdienst",
                "00000001820000000200",
                OrgType::FederationService,
            ),
            &[NodeRole::PseudonymService],
        ),
        DevMember::new(
            "school",
            DevOrganisation::new(
                "Basisschool De Regenboog",
                "00000001820000001000",
                OrgType::School,
            )
            .principal("m.jansen", &[Role::Signaler, Role::Coordinator]),
            &[NodeRole::Organisation],
        ),
        DevMember::new(
            "ggd",
            DevOrganisation::new("GGD Gelderland-Zuid", "00000001820000002000", OrgType::Ggd)
                .principal("a.devries", &[Role::Signaler]),
            &[NodeRole::Organisation],
        ),
    ];
    let now = kring::clock::Clock::now(&SystemClock);
    DevFederation::plan(&members, dir, now)
        .unwrap()
        .start(Arc::new(SystemClock))
        .await
        .unwrap()
}

fn register(subject: &str, related: &[(&str, proto::Relation)]) -> proto::RegisterRequest {
    proto::RegisterRequest {
        subject_bsn: subject.into(),
        related: related
            .iter()
            .map(|(bsn, relation)| proto::RelatedPerson {
                bsn: (*bsn).into(),
                relation: *relation as i32,
            })
            .collect(),
        category: proto::Category::NietPluis as i32,
        severity: proto::Severity::NietPluis as i32,
        meldcode_step: proto::MeldcodeStep::Signalen as i32,
        contact_point: "aandachtsfunctionaris".into(),
        age_range_ends_on: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_organisation_on_the_household_is_a_match_for_both() {
    let dir = tempfile::tempdir().unwrap();
    let federation = federation(dir.path()).await;
    let mut school = federation.client("school", "m.jansen").await.unwrap();
    let mut ggd = federation.client("ggd", "a.devries").await.unwrap();
    let mut watch = school
        .signals
        .watch_matches(proto::WatchMatchesRequest { after_cursor: 0 })
        .await
        .unwrap()
        .into_inner();

    let school_signal = school
        .signals
        .register(register(CHILD, &[(MOTHER, proto::Relation::Parent)]))
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    ggd.signals
        .register(register(MOTHER, &[(CHILD, proto::Relation::Child)]))
        .await
        .unwrap();

    let event = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a notice within ten seconds")
        .unwrap()
        .unwrap();
    let Some(proto::match_event::Event::Match(info)) = event.event else {
        panic!("expected a match, got {event:?}");
    };
    assert_eq!(info.signal_id, school_signal.id);
    assert!(
        info.household,
        "school on the child, GGD on the mother: a household match"
    );
    assert_eq!(info.parties.len(), 1);
    assert_eq!(info.parties[0].oin, "00000001820000002000");
    assert_eq!(info.parties[0].name, "GGD Gelderland-Zuid");
    assert_eq!(
        info.parties[0].ring,
        proto::Ring::PlekkenVoorIedereen as i32
    );
    federation.shutdown().await.unwrap();
}
