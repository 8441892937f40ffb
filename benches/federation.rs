//! Federation latencies, on loopback with mutual TLS, every node a real gRPC server with its
//! own sled store, all in this process:
//!
//! 1. notices: the time from a second registration's acknowledgement until every party's
//!    subscriber holds the match notice, across five nodes (pseudonym service, index, three
//!    organisations);
//! 2. linked signals: Veilig Thuis's LinkedSignals latency with ten source organisations that
//!    hold 100,000 signals together, and then 1,000,000.
//!
//! Run: `cargo bench --bench federation` (release). Options after `--`: `--notices N`
//! (samples, default 300), `--queries N` (default 300), `--sizes 100000,1000000`.
//!
//! The households that are measured are registered through the API; the other signals are
//! background, written straight into each source's store and the index's store (with random
//! pseudonyms), so that a run takes minutes rather than hours.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kring::api::proto;
use kring::clock::{Clock, SystemClock};
use kring::demo::DevOrganisation;
use kring::devnet::{DevFederation, DevMember, RunningFederation};
use kring::directory::NodeRole;
use kring::domain::{
    Category, ContactPointId, ExpiryReason, MeldcodeStep, OrgType, Pointer, PrincipalId, Pseudonym,
    RelatedPseudonym, Relation, Role, Severity, Signal, SignalId, UnixMillis,
};
use kring::store::Change;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    kring::tls::install_provider();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let notices: usize = arg("--notices").and_then(|v| v.parse().ok()).unwrap_or(300);
    let queries: usize = arg("--queries").and_then(|v| v.parse().ok()).unwrap_or(300);
    let sizes: Vec<usize> = arg("--sizes")
        .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    println!("kring federation benchmark, machine: {}", common::machine());
    if notices > 0 {
        runtime.block_on(notice_latency(notices));
    }
    for size in sizes {
        runtime.block_on(linked_signals_latency(size, queries));
    }
}

fn register(subject: &str, related: &str, relation: proto::Relation) -> proto::RegisterRequest {
    proto::RegisterRequest {
        subject_bsn: subject.into(),
        related: vec![proto::RelatedPerson {
            bsn: related.into(),
            relation: relation as i32,
        }],
        category: proto::Category::NietPluis as i32,
        severity: proto::Severity::Zorg as i32,
        meldcode_step: proto::MeldcodeStep::Signalen as i32,
        contact_point: "aandachtsfunctionaris".into(),
        age_range_ends_on: None,
    }
}

fn services() -> Vec<DevMember> {
    vec![
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
            "index",
            DevOrganisation::new(
                "Verwijsindex",
                "00000001820000000100",
                OrgType::FederationService,
            ),
            &[NodeRole::Index],
        ),
    ]
}

fn source(i: usize) -> DevMember {
    let types = [
        OrgType::School,
        OrgType::Ggd,
        OrgType::Huisarts,
        OrgType::Probation,
        OrgType::YouthCare,
    ];
    DevMember::new(
        &format!("source-{i}"),
        DevOrganisation::new(
            &format!("Bron {i}"),
            &format!("0000000182000001{i:04}"),
            types[i % types.len()],
        )
        .principal("p", &[Role::Signaler]),
        &[NodeRole::Organisation],
    )
}

async fn start(members: &[DevMember], dir: &std::path::Path) -> RunningFederation {
    DevFederation::plan(members, dir, SystemClock.now())
        .expect("a plan")
        .start(Arc::new(SystemClock))
        .await
        .expect("a federation")
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Watches an organisation's notices and records when each signal's first match arrived.
fn watch(
    mut stream: tonic::Streaming<proto::MatchEvent>,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
) {
    tokio::spawn(async move {
        while let Ok(Some(event)) = stream.message().await {
            if let Some(proto::match_event::Event::Match(m)) = event.event {
                seen.lock()
                    .unwrap()
                    .entry(m.signal_id)
                    .or_insert_with(Instant::now);
            }
        }
    });
}

async fn notice_latency(samples: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut members = services();
    members.extend((0..3).map(source));
    let federation = start(&members, dir.path()).await;
    let mut clients = Vec::new();
    let seen = Arc::new(Mutex::new(HashMap::new()));
    for i in 0..3 {
        let client = federation
            .client(&format!("source-{i}"), "p")
            .await
            .unwrap();
        let stream = client
            .signals
            .clone()
            .watch_matches(proto::WatchMatchesRequest { after_cursor: 0 })
            .await
            .unwrap()
            .into_inner();
        watch(stream, seen.clone());
        clients.push(client);
    }
    let mut latencies = Vec::new();
    for n in 0..samples as u64 {
        let (a, b) = ((n % 3) as usize, ((n + 1) % 3) as usize);
        let child = common::bsn(1_000_000 + 2 * n);
        let mother = common::bsn(1_000_000 + 2 * n + 1);
        let first = clients[a]
            .signals
            .register(register(&child, &mother, proto::Relation::Parent))
            .await
            .unwrap()
            .into_inner()
            .signal
            .unwrap()
            .id;
        let second = clients[b]
            .signals
            .register(register(&mother, &child, proto::Relation::Child))
            .await
            .unwrap()
            .into_inner()
            .signal
            .unwrap()
            .id;
        let acknowledged = Instant::now();
        let deadline = acknowledged + Duration::from_secs(10);
        loop {
            let done = {
                let seen = seen.lock().unwrap();
                match (seen.get(&first), seen.get(&second)) {
                    (Some(x), Some(y)) => Some((*x).max(*y)),
                    _ => None,
                }
            };
            if let Some(at) = done {
                latencies.push(at.saturating_duration_since(acknowledged));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a match notice did not arrive within 10 s"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    latencies.sort();
    println!(
        "notices, 5 nodes, {samples} matches: second registration acknowledged -> both parties' subscribers hold the notice: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    federation.shutdown().await.unwrap();
}

fn random_pseudonym(seed: &mut u64) -> Pseudonym {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    Pseudonym(bytes)
}

/// Writes `count` background signals into a source's store and their pointers into the
/// index's store, in batches.
async fn background(federation: &RunningFederation, source: &str, count: usize, seed: u64) {
    let node = federation.node(source);
    let index = federation.node("index");
    let organisation = node.organisation();
    let now = SystemClock.now();
    let mut seed = seed | 1;
    let batch = 1_000;
    let mut written = 0;
    while written < count {
        let n = batch.min(count - written);
        let mut signals = Vec::with_capacity(n);
        let mut pointers = Vec::with_capacity(n);
        for _ in 0..n {
            let id = SignalId::new();
            let subject = random_pseudonym(&mut seed);
            let related = vec![RelatedPseudonym {
                pseudonym: random_pseudonym(&mut seed),
                relation: Relation::Parent,
            }];
            let expires_at = now.plus_millis(700 * UnixMillis::DAY);
            signals.push(Change::PutSignal(Signal {
                id,
                subject,
                related: related.clone(),
                category: Category::Neglect,
                severity: Severity::Zorg,
                meldcode_step: MeldcodeStep::Gesprek,
                contact_point: ContactPointId::parse("aandachtsfunctionaris").unwrap(),
                registered_by: PrincipalId::parse("p").unwrap(),
                registered_at: now,
                updated_at: now,
                expires_at,
                expiry_reason: ExpiryReason::Retention,
                version: 1,
            }));
            pointers.push(Change::PutPointer(Pointer {
                organisation,
                signal: id,
                subject: random_pseudonym(&mut seed),
                related: vec![RelatedPseudonym {
                    pseudonym: random_pseudonym(&mut seed),
                    relation: Relation::Parent,
                }],
                expires_at,
                expiry_reason: ExpiryReason::Retention,
                published_at: now,
            }));
        }
        node.ledger()
            .commit(move |txn| signals.into_iter().for_each(|c| txn.change(c)))
            .await
            .unwrap();
        index
            .ledger()
            .commit(move |txn| pointers.into_iter().for_each(|c| txn.change(c)))
            .await
            .unwrap();
        written += n;
    }
}

async fn linked_signals_latency(total: usize, queries: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut members = services();
    members.push(DevMember::new(
        "veilig-thuis",
        DevOrganisation::new("Veilig Thuis", "00000001820000004000", OrgType::VeiligThuis)
            .principal("analist", &[Role::Analyst]),
        &[NodeRole::Organisation],
    ));
    members.extend((0..10).map(source));
    let federation = start(&members, dir.path()).await;

    let started = Instant::now();
    for i in 0..10 {
        background(
            &federation,
            &format!("source-{i}"),
            total / 10,
            0x9e37_79b9 + i as u64,
        )
        .await;
    }
    let loaded = started.elapsed();

    // 50 measured households, each known to three sources: child, mother, father.
    let mut households = Vec::new();
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(
            federation
                .client(&format!("source-{i}"), "p")
                .await
                .unwrap(),
        );
    }
    for h in 0..50u64 {
        let child = common::bsn(5_000_000 + 3 * h);
        let mother = common::bsn(5_000_000 + 3 * h + 1);
        let father = common::bsn(5_000_000 + 3 * h + 2);
        let at = |k: u64| ((h + k) % 10) as usize;
        clients[at(0)]
            .signals
            .register(register(&child, &mother, proto::Relation::Parent))
            .await
            .unwrap();
        clients[at(3)]
            .signals
            .register(register(&mother, &child, proto::Relation::Child))
            .await
            .unwrap();
        clients[at(6)]
            .signals
            .register(register(&father, &child, proto::Relation::Child))
            .await
            .unwrap();
        households.push(child);
    }
    // Let the outboxes reach the index, and the stores settle after the bulk load, then warm
    // up with unmeasured queries: what is measured is a node in service, not one loading.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut vt = federation.client("veilig-thuis", "analist").await.unwrap();
    for child in households.iter().take(50) {
        vt.cases
            .linked_signals(proto::LinkedSignalsRequest {
                purpose: proto::Purpose::VtTriage as i32,
                person_bsn: child.clone(),
                household: true,
            })
            .await
            .unwrap();
    }
    let mut latencies = Vec::new();
    let mut sources_seen = 0;
    for q in 0..queries {
        let child = &households[q % households.len()];
        let began = Instant::now();
        let map = vt
            .cases
            .linked_signals(proto::LinkedSignalsRequest {
                purpose: proto::Purpose::VtTriage as i32,
                person_bsn: child.clone(),
                household: true,
            })
            .await
            .unwrap()
            .into_inner();
        latencies.push(began.elapsed());
        assert!(map.unavailable.is_empty(), "{:?}", map.unavailable);
        sources_seen += map
            .persons
            .iter()
            .map(|p| p.organisations.len())
            .sum::<usize>();
    }
    latencies.sort();
    println!(
        "linked signals, 10 sources holding {total} signals ({} pointers at the index; loaded in {:.0} s), {queries} queries of a 3-person household (avg {:.1} sources per map): p50 {:.1} ms, p99 {:.1} ms",
        total + 150,
        loaded.as_secs_f64(),
        sources_seen as f64 / queries as f64,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
    );
    federation.shutdown().await.unwrap();
}
