//! Durable, audited registrations per second over TLS with 64 concurrent clients, next to the
//! same gRPC/TLS stack with an empty handler; the node's peak resident memory under that load;
//! and audit verification speed over a log of one million events.
//!
//! Run: `cargo bench --bench registrations` (release build). Options after `--`:
//! `--seconds N` (measured time per run, default 10), `--runs N` (default 3),
//! `--clients N` (default 64), `--events N` (log size for verification, default 1000000).
//!
//! The node runs as a separate `kring node` process so that its memory is its own; the empty
//! server is this binary re-executed with `--serve-empty`, using kring's TLS listener and
//! tonic exactly as the node does, with handlers that do nothing.

mod common;

use std::io::Write;
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kring::api::client::LocalClient;
use kring::api::proto;
use kring::pki::{DevCa, NodeCertRequest};
use tonic::{Request, Response, Status};

const OIN: &str = "00000001820000009000";

struct Options {
    seconds: u64,
    runs: usize,
    clients: usize,
    events: u64,
    cache_mb: u64,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        seconds: value("--seconds", 10),
        runs: value("--runs", 3) as usize,
        clients: value("--clients", 64) as usize,
        events: value("--events", 1_000_000),
        cache_mb: value("--cache-mb", 16),
    }
}

fn main() {
    kring::tls::install_provider();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-empty") {
        serve_empty(
            Path::new(&args[i + 1]),
            args[i + 2].parse().expect("a port"),
        );
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let events = options.events;
    runtime.block_on(run(options));
    drop(runtime);
    verification(events);
}

struct Load {
    requests_per_second: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

struct Fixture {
    dir: tempfile::TempDir,
    ca: DevCa,
    token: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ca = DevCa::generate("kring bench CA").expect("a CA");
    let issued = ca
        .issue(&NodeCertRequest::loopback(
            "Benchmark",
            kring::domain::Oin::parse(OIN).unwrap(),
            2,
        ))
        .expect("a certificate");
    std::fs::write(dir.path().join("node.crt"), issued.cert_pem).unwrap();
    std::fs::write(dir.path().join("node.key"), issued.key_pem).unwrap();
    std::fs::write(dir.path().join("audit.key"), kring::pki::ed25519_key_pem()).unwrap();
    Fixture {
        dir,
        ca,
        token: kring::auth::new_token(),
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn write_config(fixture: &Fixture, port: u16, cache_mb: u64) -> std::path::PathBuf {
    let config = format!(
        r#"
[node]
organisation = "Benchmark"
oin = "{OIN}"
org_type = "school"
data_dir = "data"

[local]
listen = "127.0.0.1:{port}"
tls_cert = "node.crt"
tls_key = "node.key"

[audit]
signing_key = "audit.key"
checkpoint_every_events = 1000
checkpoint_every_secs = 10

[store]
cache_mb = {cache_mb}

[log]
level = "warn"

[[contact_points]]
id = "zorg"
name = "Zorgcoordinator"
phone = "+31 26 000 0000"

[[principals]]
id = "bench"
token_sha256 = "{}"
roles = ["signaler"]
"#,
        kring::auth::token_hash_hex(&fixture.token)
    );
    let path = fixture.dir.path().join("node.toml");
    std::fs::write(&path, config).unwrap();
    path
}

async fn connect_when_ready(fixture: &Fixture, address: &str) -> LocalClient {
    for _ in 0..600 {
        let roots = kring::tls::roots_from_pem(fixture.ca.cert_pem().as_bytes()).unwrap();
        if let Ok(client) =
            LocalClient::connect(address, "localhost", roots, Some(&fixture.token)).await
        {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{address} did not come up");
}

/// A random valid BSN: eight random digits and the check digit the elfproef asks for.
fn bsn(seed: &mut u64) -> String {
    loop {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let digits: Vec<u32> = format!("{:08}", *seed % 100_000_000)
            .chars()
            .map(|c| c.to_digit(10).unwrap())
            .collect();
        let sum: u32 = digits
            .iter()
            .zip([9, 8, 7, 6, 5, 4, 3, 2])
            .map(|(d, w)| d * w)
            .sum();
        let check = sum % 11;
        if check < 10 && digits.iter().any(|&d| d != 0) {
            return digits.iter().map(|d| d.to_string()).collect::<String>() + &check.to_string();
        }
    }
}

fn request(seed: &mut u64) -> proto::RegisterRequest {
    proto::RegisterRequest {
        subject_bsn: bsn(seed),
        related: vec![proto::RelatedPerson {
            bsn: bsn(seed),
            relation: proto::Relation::Parent as i32,
        }],
        category: proto::Category::NietPluis as i32,
        severity: proto::Severity::Zorg as i32,
        meldcode_step: proto::MeldcodeStep::Signalen as i32,
        contact_point: "zorg".into(),
        age_range_ends_on: None,
    }
}

/// `clients` connections, each with one registration in flight, for `seconds` after a
/// two-second warm-up.
async fn load(fixture: &Fixture, address: &str, clients: usize, seconds: u64) -> Load {
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(connect_when_ready(fixture, address).await);
    }
    let warmup = Instant::now() + Duration::from_secs(2);
    let end = warmup + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, client) in connections.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut signals = client.signals;
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ ((i as u64 + 1) * 0x1000_0001);
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let result = signals.register(request(&mut seed)).await;
                if started >= warmup {
                    match result {
                        Ok(_) => latencies.push(started.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.expect("a client task");
        latencies.append(&mut l);
        errors += e;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Load {
        requests_per_second: latencies.len() as f64 / seconds as f64,
        p50: at(0.50),
        p99: at(0.99),
        errors,
    }
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run(options: Options) {
    println!(
        "kring benchmark: {} clients over TLS, {} s per run, {} runs (medians), machine: {}",
        options.clients,
        options.seconds,
        options.runs,
        common::machine()
    );
    let mut rows = Vec::new();
    let mut rss = Vec::new();
    for run in 0..options.runs {
        // The node: durable, audited registrations.
        let fixture = fixture();
        let port = free_port();
        let config = write_config(&fixture, port, options.cache_mb);
        let node = Command::new(env!("CARGO_BIN_EXE_kring"))
            .args(["node", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(match std::env::var_os("KRING_BENCH_NODE_LOG") {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("a log file")),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("the kring binary");
        let address = format!("127.0.0.1:{port}");
        let kring = load(&fixture, &address, options.clients, options.seconds).await;
        let node_rss = peak_rss_mib(node.id());
        stop(node);

        // The same stack with empty handlers.
        let port = free_port();
        let empty = Command::new(std::env::current_exe().unwrap())
            .arg("--serve-empty")
            .arg(fixture.dir.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("the bench binary");
        let address = format!("127.0.0.1:{port}");
        let baseline = load(&fixture, &address, options.clients, options.seconds).await;
        let empty_rss = peak_rss_mib(empty.id());
        stop(empty);
        println!(
            "run {}: kring {:.0}/s (p50 {:.1} ms, p99 {:.1} ms, {} errors, peak RSS {:.1} MiB); empty handler {:.0}/s (p50 {:.1} ms, p99 {:.1} ms, peak RSS {:.1} MiB)",
            run + 1,
            kring.requests_per_second,
            ms(kring.p50),
            ms(kring.p99),
            kring.errors,
            node_rss,
            baseline.requests_per_second,
            ms(baseline.p50),
            ms(baseline.p99),
            empty_rss
        );
        rss.push(node_rss);
        rows.push((kring, baseline));
    }
    let kring_rate = median(rows.iter().map(|r| r.0.requests_per_second).collect());
    let empty_rate = median(rows.iter().map(|r| r.1.requests_per_second).collect());
    println!();
    println!("| case | requests/s | p50 | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| durable audited registration (kring node) | {kring_rate:.0} | {:.1} ms | {:.1} ms |",
        median(rows.iter().map(|r| ms(r.0.p50)).collect()),
        median(rows.iter().map(|r| ms(r.0.p99)).collect())
    );
    println!(
        "| empty handler, same gRPC/TLS stack | {empty_rate:.0} | {:.1} ms | {:.1} ms |",
        median(rows.iter().map(|r| ms(r.1.p50)).collect()),
        median(rows.iter().map(|r| ms(r.1.p99)).collect())
    );
    println!(
        "ratio kring / empty handler: {:.2}; node peak RSS (max of runs): {:.1} MiB",
        kring_rate / empty_rate,
        rss.iter().cloned().fold(0.0, f64::max)
    );
}

/// Builds a log of `events` register-shaped events through the ledger, then times a full
/// verification from the store (three runs, median).
fn verification(events: u64) {
    use kring::audit::{NoteSigner, Verifier, verify};
    use kring::domain::{
        Action, Actor, EventDraft, Oin, PrincipalId, Pseudonym, Purpose, Role, TransactionId,
    };
    use kring::ledger::{Ledger, LedgerOptions};
    use kring::store::{SledStore, Store, StoreOptions};

    let dir = tempfile::tempdir().expect("a temp dir");
    let pkcs8 = kring::audit::note::generate_pkcs8();
    let origin = "kring.nl/audit/bench";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    {
        let store = SledStore::open(&dir.path().join("store"), &StoreOptions::default()).unwrap();
        let ledger = Ledger::open(
            Arc::new(store),
            Arc::new(kring::clock::SystemClock),
            LedgerOptions {
                origin: origin.into(),
                signer: NoteSigner::from_pkcs8(origin, &pkcs8).unwrap(),
                checkpoint_every_events: 1000,
                checkpoint_every: Duration::from_secs(3600),
            },
        )
        .unwrap();
        let actor = Actor {
            user: PrincipalId::parse("bench").unwrap(),
            role: Some(Role::Signaler),
            organisation: Oin::parse(OIN).unwrap(),
        };
        let per_commit = 1_000;
        let mut written = 0;
        while written < events {
            let n = per_commit.min(events - written);
            let actor = actor.clone();
            runtime
                .block_on(ledger.commit(move |txn| {
                    for i in 0..n {
                        let seed = (written + i).to_be_bytes();
                        let mut a = [7u8; 32];
                        a[..8].copy_from_slice(&seed);
                        let mut b = [9u8; 32];
                        b[..8].copy_from_slice(&seed);
                        txn.audit(
                            EventDraft::new(
                                TransactionId::new(),
                                actor.clone(),
                                Action::SignalRegister,
                            )
                            .purpose(
                                Purpose::Registration,
                                Purpose::Registration.local_legal_basis(),
                            )
                            .subjects([Pseudonym(a), Pseudonym(b)])
                            .object(format!("signal:{}", TransactionId::new())),
                        );
                    }
                }))
                .unwrap();
            written += n;
        }
        runtime.block_on(ledger.checkpoint()).unwrap();
        ledger.shutdown();
    }
    let built = started.elapsed();
    let store = SledStore::open(&dir.path().join("store"), &StoreOptions::default()).unwrap();
    let verifier = Verifier::new(Some(
        NoteSigner::from_pkcs8(origin, &pkcs8).unwrap().verifier(),
    ));
    let mut rates = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let report = verify::verify_store(&store, &verifier, None);
        let elapsed = started.elapsed();
        assert!(report.ok(), "{:?}", report.problem);
        assert_eq!(report.events, events);
        rates.push(events as f64 / elapsed.as_secs_f64());
    }
    let sample = store.audit_event(0).unwrap().unwrap().len();
    println!(
        "audit verification from the store: {:.0} events/s (median of 3; {events} events of ~{sample} bytes, {} checkpoints; log built in {:.1} s)",
        median(rates),
        events / 1000,
        built.as_secs_f64()
    );
    let _ = std::io::stdout().flush();
}

/// Serves the Signals service with handlers that do nothing, on kring's TLS listener.
fn serve_empty(dir: &Path, port: u16) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let identity =
            kring::tls::TlsIdentity::load(&dir.join("node.crt"), &dir.join("node.key")).unwrap();
        let tls = kring::tls::server_config(&identity, &kring::tls::ClientAuth::None).unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tonic::transport::Server::builder()
            .add_service(proto::signals_server::SignalsServer::new(Empty))
            .serve_with_incoming(kring::tls::incoming(listener, tls))
            .await
            .unwrap();
    });
}

struct Empty;

#[tonic::async_trait]
impl proto::signals_server::Signals for Empty {
    async fn register(
        &self,
        _: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        Ok(Response::new(proto::RegisterResponse::default()))
    }
    async fn update(
        &self,
        _: Request<proto::UpdateRequest>,
    ) -> Result<Response<proto::UpdateResponse>, Status> {
        Ok(Response::new(proto::UpdateResponse::default()))
    }
    async fn withdraw(
        &self,
        _: Request<proto::WithdrawRequest>,
    ) -> Result<Response<proto::WithdrawResponse>, Status> {
        Ok(Response::new(proto::WithdrawResponse::default()))
    }
    async fn list(
        &self,
        _: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        Ok(Response::new(proto::ListResponse::default()))
    }
    async fn report_to_veilig_thuis(
        &self,
        _: Request<proto::ReportRequest>,
    ) -> Result<Response<proto::ReportResponse>, Status> {
        Ok(Response::new(proto::ReportResponse::default()))
    }
    type WatchMatchesStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<proto::MatchEvent, Status>> + Send>,
    >;
    async fn watch_matches(
        &self,
        _: Request<proto::WatchMatchesRequest>,
    ) -> Result<Response<Self::WatchMatchesStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }
    async fn list_matches(
        &self,
        _: Request<proto::ListMatchesRequest>,
    ) -> Result<Response<proto::ListMatchesResponse>, Status> {
        Ok(Response::new(proto::ListMatchesResponse::default()))
    }
}
