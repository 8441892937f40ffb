//! What the privacy hardening costs, on loopback with mutual TLS, every node a real gRPC server
//! with its own sled store, all in this process (so clients and services share the cores):
//!
//! 1. chain: federation pseudonyms per second through two chained pseudonym services, as an
//!    organisation node computes them (blind, Evaluate at service A, which forwards to service
//!    B, unblind and finalize), batched (64 persons a call) and one person a call.
//! 2. registrations: durable, audited registrations per second at an organisation node with
//!    64 registrations in flight over TLS, with and without what the hardening adds: a
//!    standalone node with the keyed pseudonymiser and plain values, the same with encryption
//!    at rest, and an organisation in a federation (two pseudonym services, the index): with a
//!    keyed federation pseudonymiser (one HMAC key at the organisation) and plain values, as a
//!    federated registration cost before the hardening, and with every federation pseudonym
//!    through the chain, plain and sealed. In the federated cases the services and the index
//!    run in this process too, on the same two cores.
//!
//! 3. split: the same registrations with the organisation node and its load pinned to one core
//!    and, in the federated cases, the services and the index pinned to the other, as if on
//!    machines of their own: standalone and plain; federated with the keyed federation
//!    pseudonymiser and plain; federated through the chain and sealed.
//!
//! 4. curve: the chain's arithmetic alone, on one core, with no network and no store: what
//!    blinding, one service's evaluation and finalizing cost per person, and what a
//!    registration's two persons cost through two services.
//!
//! Every registration case also reports the process's CPU time (user and system, every node in
//! it) per registration over the measured window, and how busy that kept the machine; the split
//! case also what core 0 (the organisation node and its load, nothing else of this process)
//! spent per registration, and how busy each core was.
//!
//! 5. compact: `kring store compact` on a store a standalone node filled with registrations
//!    for three times `--seconds`.
//!
//! Run: `cargo bench --bench privacy` (release). Options after `--`: `--seconds N` (per case,
//! default 10), `--concurrency N` (pseudonym calls in flight, default 16), `--only chain`,
//! `--only registrations`, `--only split`, `--only curve` or `--only compact`.

// The allocator the `kring` binary runs with (see src/main.rs), so that the nodes here cost what
// they cost in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kring::api::client::LocalClient;
use kring::api::proto;
use kring::clock::{Clock, SystemClock};
use kring::demo::{DevOrganisation, dev_node};
use kring::devnet::{DevFederation, DevMember, RunningFederation};
use kring::directory::NodeRole;
use kring::domain::{Bsn, OrgType, Role};
use kring::node::RunningNode;
use kring::pki::DevCa;
use kring::policy::Policy;
use kring::pseudonym::{KeyedPseudonymiser, OprfPseudonymiser, Pseudonymiser, ServiceKey, oprf};
use kring::store::{DataKeyId, Keyring};

/// Registrations in flight in the registration cases, as in `benches/registrations.rs`.
const IN_FLIGHT: usize = 64;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// mimalloc's `mi_option_purge_delay`, as src/main.rs sets it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // SAFETY: options are set before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    kring::tls::install_provider();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds: u64 = arg("--seconds").and_then(|v| v.parse().ok()).unwrap_or(10);
    let concurrency: usize = arg("--concurrency")
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let only = arg("--only");
    println!("kring privacy benchmark, machine: {}", common::machine());
    let seconds = Duration::from_secs(seconds);
    if only.as_deref().is_none_or(|o| o == "chain") {
        runtime.block_on(chain(seconds, concurrency));
    }
    if only.as_deref().is_none_or(|o| o == "registrations") {
        registrations(&runtime, seconds);
    }
    drop(runtime);
    if only.as_deref().is_none_or(|o| o == "split") {
        split(seconds);
    }
    if only.as_deref().is_none_or(|o| o == "curve") {
        curve();
    }
    if only.as_deref().is_none_or(|o| o == "compact") {
        compact(seconds * 3);
    }
}

/// `kring store compact` on a store a standalone node (sealed at rest) filled with
/// registrations for `filling`: how long the copy, the check, the swap and the overwrite take.
fn compact(filling: Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("school").join("store");
    let registered = runtime
        .block_on(standalone(&dir.path().join("school"), true, filling))
        .rate
        * filling.as_secs_f64();
    let started = Instant::now();
    let compacted = kring::store::compact::compact(&store, "now".into()).expect("compacted");
    let took = started.elapsed().as_secs_f64();
    println!(
        "\ncompact: a standalone store sealed at rest, filled for {} s ({registered:.0} registrations)",
        filling.as_secs()
    );
    println!("| records | bytes before | bytes after | seconds | records/s |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {took:.1} | {:.0} |",
        compacted.records,
        compacted.bytes_before,
        compacted.bytes_after,
        compacted.records as f64 / took
    );
}

/// The chain's curve arithmetic per person, timed step by step on the calling thread: the
/// organisation's blinding, one service's evaluation (decompress, multiply, compress) and the
/// organisation's finalizing (decompress, invert the blind, multiply, hash).
fn curve() {
    const ROUNDS: u64 = 20_000;
    let key = ServiceKey::generate();
    let mut blinding = Duration::ZERO;
    let mut evaluating = Duration::ZERO;
    let mut finalizing = Duration::ZERO;
    for n in 0..ROUNDS {
        let person = bsn(n);
        let started = Instant::now();
        let blinded = oprf::blind(person);
        let blinded_at = Instant::now();
        let evaluated = key.evaluate(&[blinded.element()]).expect("a valid element");
        let evaluated_at = Instant::now();
        let pseudonym = oprf::finalize(blinded, &evaluated[0]).expect("a valid element");
        let finalized_at = Instant::now();
        std::hint::black_box(pseudonym);
        blinding += blinded_at - started;
        evaluating += evaluated_at - blinded_at;
        finalizing += finalized_at - evaluated_at;
    }
    let micros = |d: Duration| d.as_secs_f64() * 1e6 / ROUNDS as f64;
    let (blind, evaluate, finalize) = (micros(blinding), micros(evaluating), micros(finalizing));
    let person = blind + 2.0 * evaluate + finalize;
    println!("\ncurve: the chain's arithmetic on one core, {ROUNDS} persons, no network, no store");
    println!("| step | µs per person |");
    println!("|---|---|");
    println!("| blind (organisation: hash to the group, multiply, compress) | {blind:.1} |");
    println!("| evaluate (each service: decompress, multiply, compress) | {evaluate:.1} |");
    println!("| finalize (organisation: decompress, invert, multiply, hash) | {finalize:.1} |");
    println!("| one person through two services | {person:.1} |");
    println!("| a registration's two persons | {:.1} |", 2.0 * person);
}

/// CPU time (user and system) this process has used so far, every thread of it.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes only into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// What a measured window of registrations did and cost.
struct Load {
    /// Registrations acknowledged per second.
    rate: f64,
    /// The process's CPU time per registration, every node in it, in µs.
    cpu_per_registration: f64,
    /// The process's CPU time over the window's wall time times the machine's cores.
    busy: f64,
    /// Core 0's busy time per registration, in µs, whatever ran on it.
    core0_per_registration: f64,
    /// Each core's busy time over the window's wall time.
    core_busy: Vec<f64>,
}

impl Load {
    fn columns(&self) -> String {
        format!(
            "{:.0} | {:.0} µs | {:.0}%",
            self.rate,
            self.cpu_per_registration,
            100.0 * self.busy
        )
    }

    /// The split case's columns: core 0's cost per registration, and how busy each core was.
    fn core_columns(&self) -> String {
        let busy: Vec<String> = self
            .core_busy
            .iter()
            .map(|b| format!("{:.0}%", 100.0 * b))
            .collect();
        format!(
            "{:.0} µs | {}",
            self.core0_per_registration,
            busy.join(" / ")
        )
    }
}

/// Keeps the calling thread, and the threads it starts from now on, on one core.
fn pin_to(core: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity read and
    // write only that set, for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A runtime whose threads (workers and blocking pool) all run on `core`.
fn runtime_on(core: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(move || pin_to(core))
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The organisation node and the load on core 0; in the federated case the services and the
/// index on core 1, as if on machines of their own. What the organisation's registrations cost
/// it, with and without the hardening, where the services' work is not its own.
fn split(seconds: Duration) {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("\nsplit: needs two cores");
        return;
    }
    println!(
        "\nsplit: the organisation node and its {IN_FLIGHT} registrations in flight on core 0; \
         the pseudonym services and the index on core 1; {} s per case after a 2 s warm-up",
        seconds.as_secs()
    );
    println!(
        "| organisation node (core 0) | pseudonyms | values at rest | registrations/s | CPU per registration | busy | core 0 per registration | busy core 0 / 1 | compared |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let organisation_core = runtime_on(0);
    let federation_core = runtime_on(1);

    // Standalone, plain: the node as it was before the hardening.
    let dir = tempfile::tempdir().unwrap();
    pin_to(0);
    let before = organisation_core.block_on(standalone(&dir.path().join("school"), false, seconds));
    println!(
        "| {} | plain | {} | {} | 100% of standalone |",
        Pseudonyms::Local.label(),
        before.columns(),
        before.core_columns()
    );

    // Federated: before the hardening (a keyed federation pseudonymiser, plain values) and
    // after it (every registration through the chain, sealed values); the pointer goes to the
    // index in both.
    let mut federated_before = None;
    for (keyed, encrypted) in [(true, false), (false, true)] {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path(), encrypted);
        let ca = plan.ca.clone();
        let (started, at, token) = start_plan(plan, keyed, |key| {
            let core = usize::from(key != "school");
            pin_to(core);
            if core == 0 {
                (0, &organisation_core)
            } else {
                (1, &federation_core)
            }
        });
        pin_to(0);
        let measured = organisation_core.block_on(async {
            let client = connect(&ca, &started[at].1, &token).await;
            load(client, seconds).await
        });
        let federated = *federated_before.get_or_insert(measured.rate);
        println!(
            "| {} | {} | {} | {} | {:.0}% of standalone, {:.0}% of federated before |",
            if keyed {
                Pseudonyms::KeyedFederation.label()
            } else {
                Pseudonyms::Oprf.label()
            },
            if encrypted { "AES-256-GCM" } else { "plain" },
            measured.columns(),
            measured.core_columns(),
            100.0 * measured.rate / before.rate,
            100.0 * measured.rate / federated
        );
        for (core, node) in started {
            let runtime = if core == 0 {
                &organisation_core
            } else {
                &federation_core
            };
            runtime.block_on(node.shutdown()).unwrap();
        }
    }
}

async fn connect(ca: &DevCa, node: &RunningNode, token: &str) -> LocalClient {
    let roots = kring::tls::roots_from_pem(ca.cert_pem().as_bytes()).unwrap();
    LocalClient::connect(
        &node.local_addr().to_string(),
        "localhost",
        roots,
        Some(token),
    )
    .await
    .expect("a connection")
}

/// A valid BSN from a counter: eight digits and the elfproef check digit.
fn bsn(n: u64) -> Bsn {
    Bsn::parse(&common::bsn(n)).expect("a valid BSN")
}

fn member(key: &str, name: &str, oin: &str, org_type: OrgType, roles: &[NodeRole]) -> DevMember {
    DevMember::new(
        key,
        DevOrganisation::new(name, oin, org_type).principal("p", &[Role::Signaler]),
        roles,
    )
}

/// Two pseudonym services, the index and one organisation, under a policy whose rate limit
/// is far above what the machine can ask.
async fn start(dir: &std::path::Path, encrypted: bool) -> RunningFederation {
    plan(dir, encrypted)
        .start(Arc::new(SystemClock))
        .await
        .expect("a federation")
}

fn plan(dir: &std::path::Path, encrypted: bool) -> DevFederation {
    let members = [
        member(
            "pseudonyms",
            "Pseudoniemdienst A",
            "00000001820000000200",
            OrgType::FederationService,
            &[NodeRole::PseudonymService],
        ),
        member(
            "pseudonyms-b",
            "Pseudoniemdienst B",
            "00000001820000000210",
            OrgType::FederationService,
            &[NodeRole::PseudonymService],
        ),
        member(
            "index",
            "Verwijsindex",
            "00000001820000000100",
            OrgType::FederationService,
            &[NodeRole::Index],
        ),
        member(
            "school",
            "Basisschool",
            "00000001820000001000",
            OrgType::School,
            &[NodeRole::Organisation],
        ),
    ];
    let mut policy = Policy::regional_default();
    policy.pseudonym_rate_per_minute = 1_000_000_000;
    let mut plan =
        DevFederation::plan_with(&members, dir, SystemClock.now(), policy).expect("a plan");
    if !encrypted {
        for node in &mut plan.nodes {
            node.config.store.keyring = None;
        }
    }
    plan
}

async fn chain(seconds: Duration, concurrency: usize) {
    let dir = tempfile::tempdir().unwrap();
    let federation = start(dir.path(), true).await;
    let school = federation.node("school").federation().unwrap().clone();
    let peers = Arc::new(kring::api::peer_client::GrpcPeers::new(school.clone()));
    let pseudonymiser = Arc::new(OprfPseudonymiser::new(school, peers));
    // Warm the connections.
    pseudonymiser.pseudonymise(vec![bsn(1)]).await.unwrap();
    println!(
        "\nchain: two pseudonym services, {concurrency} calls in flight, {} s per case",
        seconds.as_secs()
    );
    println!("| persons per call | pseudonyms/s | calls/s |");
    println!("|---|---|---|");
    for batch in [64u64, 1] {
        let done = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + seconds;
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency as u64)
            .map(|t| {
                let pseudonymiser = pseudonymiser.clone();
                let done = done.clone();
                let calls = calls.clone();
                tokio::spawn(async move {
                    let mut n = t * 1_000_000_000;
                    while Instant::now() < deadline {
                        let persons = (0..batch).map(|i| bsn(n + i)).collect();
                        n += batch;
                        let out = pseudonymiser
                            .pseudonymise(persons)
                            .await
                            .expect("the chain answers");
                        done.fetch_add(out.len() as u64, Ordering::Relaxed);
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "| {batch} | {:.0} | {:.0} |",
            done.load(Ordering::Relaxed) as f64 / elapsed,
            calls.load(Ordering::Relaxed) as f64 / elapsed
        );
    }
    federation.shutdown().await.unwrap();
}

/// How the organisation node pseudonymises in a registration case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pseudonyms {
    /// Standalone, under its node secret.
    Local,
    /// Federated, under one federation-wide HMAC key at the organisation: the federation path
    /// as it was before the oblivious pseudonyms.
    KeyedFederation,
    /// Federated, through the chain of two pseudonym services.
    Oprf,
}

impl Pseudonyms {
    fn label(self) -> &'static str {
        match self {
            Pseudonyms::Local => "standalone | keyed (HMAC)",
            Pseudonyms::KeyedFederation => "federated | keyed federation HMAC",
            Pseudonyms::Oprf => "federated | OPRF, two services",
        }
    }
}

/// The pre-hardening federation pseudonymiser: one HMAC key shared by the organisations.
fn keyed_federation() -> Arc<dyn Pseudonymiser> {
    Arc::new(KeyedPseudonymiser::from_secret(&[7u8; 32]))
}

/// Starts every node of `plan` (the school with the keyed federation pseudonymiser when
/// `keyed`), each on the runtime `runtime_for` gives its key; returns the nodes with the
/// runtime index they run on, and the school's position and token.
fn start_plan<'r>(
    plan: DevFederation,
    keyed: bool,
    runtime_for: impl Fn(&str) -> (usize, &'r tokio::runtime::Runtime),
) -> (Vec<(usize, RunningNode)>, usize, String) {
    let clock: kring::clock::SharedClock = Arc::new(SystemClock);
    let mut started = Vec::new();
    let mut school = None;
    let mut plan = plan;
    for mut planned in plan.nodes.drain(..) {
        planned.release_ports();
        let (core, runtime) = runtime_for(&planned.key);
        let node = if keyed && planned.key == "school" {
            runtime.block_on(RunningNode::start_for_baseline(
                planned.config,
                clock.clone(),
                keyed_federation(),
            ))
        } else {
            runtime.block_on(RunningNode::start(planned.config, clock.clone()))
        }
        .expect("the node starts");
        if planned.key == "school" {
            school = Some((started.len(), planned.tokens["p"].clone()));
        }
        started.push((core, node));
    }
    let (at, token) = school.expect("the plan has the school");
    (started, at, token)
}

fn registrations(runtime: &tokio::runtime::Runtime, seconds: Duration) {
    println!(
        "\nregistrations: {IN_FLIGHT} in flight over TLS, {} s per case after a 2 s warm-up",
        seconds.as_secs()
    );
    println!(
        "| organisation node | pseudonyms | values at rest | registrations/s | CPU per registration | busy | vs. the same node before |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut before = std::collections::HashMap::new();
    for (pseudonyms, encrypted) in [
        (Pseudonyms::Local, false),
        (Pseudonyms::Local, true),
        (Pseudonyms::KeyedFederation, false),
        (Pseudonyms::Oprf, false),
        (Pseudonyms::Oprf, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let measured = if pseudonyms == Pseudonyms::Local {
            runtime.block_on(standalone(&dir.path().join("school"), encrypted, seconds))
        } else {
            let plan = plan(dir.path(), encrypted);
            let ca = plan.ca.clone();
            let (nodes, at, token) =
                start_plan(plan, pseudonyms == Pseudonyms::KeyedFederation, |_| {
                    (0, runtime)
                });
            let measured = runtime.block_on(async {
                let client = connect(&ca, &nodes[at].1, &token).await;
                load(client, seconds).await
            });
            for (_, node) in nodes {
                runtime.block_on(node.shutdown()).unwrap();
            }
            measured
        };
        let federated = pseudonyms != Pseudonyms::Local;
        let baseline = *before.entry(federated).or_insert(measured.rate);
        println!(
            "| {} | {} | {} | {:.0}% |",
            pseudonyms.label(),
            if encrypted { "AES-256-GCM" } else { "plain" },
            measured.columns(),
            100.0 * measured.rate / baseline
        );
    }
}

/// A standalone school in `dir` (sealed at rest when `encrypted`) under [`load`] for `seconds`;
/// stopped after it.
async fn standalone(dir: &std::path::Path, encrypted: bool, seconds: Duration) -> Load {
    let ca = DevCa::generate("kring benchmark CA").unwrap();
    let organisation = DevOrganisation::new("Basisschool", "00000001820000001000", OrgType::School)
        .principal("p", &[Role::Signaler]);
    let mut dev = dev_node(&ca, &organisation, dir).unwrap();
    if encrypted {
        dev.config.store.keyring = Some(Arc::new(Keyring::generate(
            DataKeyId::new(1).expect("not zero"),
        )));
    }
    let node = RunningNode::start(dev.config, Arc::new(SystemClock))
        .await
        .expect("the node starts");
    let client = connect(&ca, &node, &dev.tokens["p"]).await;
    let measured = load(client, seconds).await;
    node.shutdown().await.unwrap();
    measured
}

/// Registrations with [`IN_FLIGHT`] in flight on one connection, measured for `seconds` after a
/// two-second warm-up: their rate, and the process's CPU time over the same window.
async fn load(client: LocalClient, seconds: Duration) -> Load {
    let warm = Instant::now() + Duration::from_secs(2);
    let end = warm + seconds;
    let counted = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..IN_FLIGHT as u64)
        .map(|t| {
            let mut signals = client.signals.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut n = t * 1_000_000_000;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    n += 2;
                    signals
                        .register(proto::RegisterRequest {
                            subject_bsn: common::bsn(n),
                            related: vec![proto::RelatedPerson {
                                bsn: common::bsn(n + 1),
                                relation: proto::Relation::Parent as i32,
                            }],
                            category: proto::Category::NietPluis as i32,
                            severity: proto::Severity::Zorg as i32,
                            meldcode_step: proto::MeldcodeStep::Signalen as i32,
                            contact_point: "aandachtsfunctionaris".into(),
                            age_range_ends_on: None,
                        })
                        .await
                        .expect("a registration");
                    if now >= warm {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep_until(warm.into()).await;
    let cpu_at_warm = process_cpu();
    let cores_at_warm = core_busy();
    tokio::time::sleep_until(end.into()).await;
    let cpu = process_cpu() - cpu_at_warm;
    let per_core: Vec<Duration> = core_busy()
        .iter()
        .zip(&cores_at_warm)
        .map(|(now, then)| now.saturating_sub(*then))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let registrations = counted.load(Ordering::Relaxed) as f64;
    // The machine's cores, not this thread's affinity: the split case pins the load to one.
    // SAFETY: sysconf only reads a system setting.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as f64;
    Load {
        rate: registrations / seconds.as_secs_f64(),
        cpu_per_registration: cpu.as_secs_f64() * 1e6 / registrations.max(1.0),
        busy: cpu.as_secs_f64() / (seconds.as_secs_f64() * cores),
        core0_per_registration: per_core
            .first()
            .map_or(0.0, |c| c.as_secs_f64() * 1e6 / registrations.max(1.0)),
        core_busy: per_core
            .iter()
            .map(|c| c.as_secs_f64() / seconds.as_secs_f64())
            .collect(),
    }
}

/// Time each core has spent busy (user, nice, system, interrupts), from `/proc/stat`, for
/// every process on it: in the split case core 0 runs only the organisation node and its load.
fn core_busy() -> Vec<Duration> {
    // SAFETY: sysconf only reads a system setting.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            // cpuN user nice system idle iowait irq softirq steal ...
            let fields: Vec<f64> = l
                .split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0.0))
                .collect();
            let busy: f64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
            Duration::from_secs_f64(busy / ticks)
        })
        .collect()
}
