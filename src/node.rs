//! A node as a value: it owns its store, ledger, services and listener, and is started and
//! stopped by whoever holds it. Several nodes run side by side in one process (the demo, the
//! tests), because nothing here is global.
//!
//! Shutdown is graceful by design: the listener stops taking calls, calls in flight finish,
//! the node records that it stopped, signs a last checkpoint, and syncs. A crash skips all of
//! that and loses nothing acknowledged, because every acknowledgement already waited for a
//! sync (see `ledger`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use tokio::sync::Notify;

use crate::access::AccessService;
use crate::api::{self, AuditApi, Calls, Health, LocalApi, SignalsApi};
use crate::audit::{NoteSigner, NoteVerifier};
use crate::cases::CaseService;
use crate::clock::SharedClock;
use crate::config::{Config, FederationSettings};
use crate::directory::{Accepted, DirectoryState, NodeRole};
use crate::domain::{
    Action, Actor, ContactDetails, EventDraft, LegalBasis, Oin, PrincipalId, Purpose, TransactionId,
};
use crate::federation::outbox::Deliverer;
use crate::federation::serve::PeerHandler;
use crate::federation::witness::Witness;
use crate::federation::{Federation, Peers};
use crate::index::{IndexService, Swept};
use crate::ledger::{Ledger, LedgerError, LedgerOptions};
use crate::pseudonym::{
    IndexEpochs, KeyedPseudonymiser, LocalPseudonyms, OprfPseudonymiser, PseudonymService,
    Pseudonymiser, ServiceKey,
};
use crate::signals::{SignalError, SignalService, SignalSettings};
use crate::store::{Change, SledStore, StoreError};

/// How often a pseudonym service records the evaluations it served, per organisation.
const PSEUDONYM_COUNT_PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data directory {path}: {error}")]
    DataDir { path: String, error: std::io::Error },
    #[error("node secret {path}: {error}")]
    Secret { path: String, error: std::io::Error },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("audit log: {0}")]
    Ledger(#[from] LedgerError),
    #[error("audit signing key: {0}")]
    Key(String),
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {address}: {error}")]
    Listen {
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("the local listener failed: {0}")]
    Serve(String),
    #[error("federation: {0}")]
    Federation(String),
}

/// A started node. Dropping it stops the listener without the graceful steps; call
/// [`RunningNode::shutdown`] to stop it properly.
pub struct RunningNode {
    organisation: Oin,
    local_addr: SocketAddr,
    peer_addr: Option<SocketAddr>,
    ledger: Arc<Ledger>,
    signals: Arc<SignalService>,
    index: Option<Arc<IndexService>>,
    federation: Option<Arc<Federation>>,
    witness: Option<Arc<Witness>>,
    own_key: NoteVerifier,
    health: Health,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("organisation", &self.organisation)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

fn system_actor(organisation: Oin, what: &str) -> Actor {
    Actor {
        user: PrincipalId::system(what),
        role: None,
        organisation,
    }
}

/// Records in the audit log what each compaction of the stopped store did (`kring store
/// compact` leaves a line each next to the store), then removes the record once the events are
/// durable.
async fn record_compaction(
    store: &std::path::Path,
    ledger: &Ledger,
    organisation: Oin,
) -> Result<(), NodeError> {
    let records = crate::store::compact::read_records(store)?;
    if records.is_empty() {
        return Ok(());
    }
    let events: Vec<EventDraft> = records
        .iter()
        .map(|compacted| {
            EventDraft::new(
                TransactionId::new(),
                system_actor(organisation, "store"),
                Action::StoreCompacted,
            )
            .object("store")
            .reason(format!(
                "finished {}: {} records copied to new files ({} bytes, {} before); the old files overwritten and removed",
                compacted.finished, compacted.records, compacted.bytes_after, compacted.bytes_before
            ))
        })
        .collect();
    ledger
        .commit(move |txn| events.into_iter().for_each(|event| txn.audit(event)))
        .await?;
    std::fs::remove_file(crate::store::compact::record_path(store)).map_err(StoreError::Io)?;
    Ok(())
}

impl RunningNode {
    /// Opens the store, checks the audit log against its last checkpoint, binds the local
    /// listener and starts serving.
    pub async fn start(config: Config, clock: SharedClock) -> Result<RunningNode, NodeError> {
        RunningNode::start_with(config, clock, None).await
    }

    /// Starts a federated node that pseudonymises with `pseudonymiser` instead of the chain of
    /// pseudonym services. For the privacy benchmark's baseline only (registration as it cost
    /// with a keyed federation pseudonymiser, before the hardening): no configuration reaches
    /// it, because a key at every organisation is what the oblivious pseudonyms replace.
    #[doc(hidden)]
    pub async fn start_for_baseline(
        config: Config,
        clock: SharedClock,
        pseudonymiser: Arc<dyn Pseudonymiser>,
    ) -> Result<RunningNode, NodeError> {
        RunningNode::start_with(config, clock, Some(pseudonymiser)).await
    }

    async fn start_with(
        config: Config,
        clock: SharedClock,
        baseline: Option<Arc<dyn Pseudonymiser>>,
    ) -> Result<RunningNode, NodeError> {
        crate::tls::install_provider();
        std::fs::create_dir_all(&config.data_dir).map_err(|error| NodeError::DataDir {
            path: config.data_dir.display().to_string(),
            error,
        })?;
        let secret =
            crate::pseudonym::read_or_create_secret(&config.secret_file).map_err(|error| {
                NodeError::Secret {
                    path: config.secret_file.display().to_string(),
                    error,
                }
            })?;
        let local = Arc::new(LocalPseudonyms::from_secret(&secret));
        let signer = NoteSigner::from_pkcs8(&config.audit.origin, &config.audit.signing_key_pkcs8)
            .map_err(|e| NodeError::Key(e.to_string()))?;
        let own_key = signer.verifier();
        let store_path = config.data_dir.join("store");
        let store_options = config.store.clone();
        let store =
            tokio::task::spawn_blocking(move || SledStore::open(&store_path, &store_options))
                .await
                .map_err(|e| NodeError::Serve(e.to_string()))??;
        let ledger = Arc::new(Ledger::open(
            Arc::new(store),
            clock.clone(),
            LedgerOptions {
                origin: config.audit.origin.clone(),
                signer,
                checkpoint_every_events: config.audit.checkpoint_every_events,
                checkpoint_every: config.audit.checkpoint_every,
            },
        )?);
        let organisation = config.organisation.oin;
        let outbox = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut servers = Vec::new();

        let federation = match &config.federation {
            Some(settings) => Some(join_federation(&ledger, organisation, settings, &clock).await?),
            None => None,
        };
        if federation.is_some() && config.store.keyring.is_none() {
            // A deleted value can outlive its deletion in sled's files: a delivered
            // publication's federation pseudonyms, an expired signal.
            tracing::warn!(
                "values are stored in the clear ([store] has no data_keys): deleted values, such as the federation pseudonyms of delivered publications and expired signals, may stay readable in the store's files until sled rewrites them"
            );
        }
        let peers: Option<Arc<dyn Peers>> = federation
            .as_ref()
            .map(|f| Arc::new(api::peer_client::GrpcPeers::new(f.clone())) as Arc<dyn Peers>);
        let pseudonymiser: Arc<dyn Pseudonymiser> = match (baseline, &federation, &peers) {
            (Some(baseline), _, _) => baseline,
            (None, Some(federation), Some(peers)) => {
                Arc::new(OprfPseudonymiser::new(federation.clone(), peers.clone()))
            }
            _ => Arc::new(KeyedPseudonymiser::from_secret(&secret)),
        };
        let contacts: Vec<ContactDetails> = config
            .contact_points
            .iter()
            .map(|c| ContactDetails {
                id: c.id.to_string(),
                name: c.name.clone(),
                phone: c.phone.clone(),
                email: c.email.clone(),
            })
            .collect();
        let signals = Arc::new(SignalService::new(
            ledger.clone(),
            pseudonymiser.clone(),
            local.clone(),
            SignalSettings {
                organisation,
                contact_points: contacts.clone(),
                retention_millis: config.signal_retention_millis,
                clock: clock.clone(),
            },
            outbox.clone(),
            federation.clone(),
        ));
        let (notices, _) = watch::channel(ledger.store().last_notice_cursor()?);
        let roles = config
            .federation
            .as_ref()
            .map(|f| f.roles.clone())
            .unwrap_or_default();
        let index = match (&federation, &peers) {
            (Some(federation), Some(peers)) if roles.contains(&NodeRole::Index) => {
                Some(Arc::new(IndexService::new(
                    ledger.clone(),
                    federation.clone(),
                    peers.clone(),
                    outbox.clone(),
                )))
            }
            _ => None,
        };
        let cases = match (&federation, &peers) {
            (Some(federation), Some(peers)) => Some(Arc::new(CaseService::new(
                ledger.clone(),
                federation.clone(),
                peers.clone(),
                signals.clone(),
            ))),
            _ => None,
        };

        let tls = crate::tls::server_config(&config.local_tls, &crate::tls::ClientAuth::None)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|error| NodeError::Listen {
                    address: config.listen,
                    error,
                })?;
        let local_addr = listener.local_addr().map_err(|error| NodeError::Listen {
            address: config.listen,
            error,
        })?;

        let mut peer_addr = None;
        let mut witness = None;
        if let (Some(settings), Some(federation), Some(peers)) =
            (&config.federation, &federation, &peers)
        {
            let handler = Arc::new(PeerHandler::new(
                ledger.clone(),
                federation.clone(),
                local.clone(),
                contacts.clone(),
                notices.clone(),
                index.clone(),
            ));
            let pseudonym_key = match (
                &settings.pseudonym_key,
                roles.contains(&NodeRole::PseudonymService),
            ) {
                (Some(path), true) => {
                    let key =
                        ServiceKey::read_or_create(path).map_err(|error| NodeError::Secret {
                            path: path.display().to_string(),
                            error,
                        })?;
                    let epochs_path = IndexEpochs::path_for(path);
                    let epochs =
                        IndexEpochs::open(&epochs_path).map_err(|e| NodeError::Secret {
                            path: epochs_path.display().to_string(),
                            error: std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                e.to_string(),
                            ),
                        })?;
                    Some((key, epochs))
                }
                _ => None,
            };
            let pseudonym_service = pseudonym_key.map(|(key, epochs)| {
                Arc::new(PseudonymService::new(
                    key,
                    epochs,
                    federation.clone(),
                    peers.clone(),
                    ledger.clone(),
                ))
            });
            if let Some(service) = &pseudonym_service {
                tasks.push(tokio::spawn(
                    service
                        .clone()
                        .run_counts(PSEUDONYM_COUNT_PERIOD, stopped.clone()),
                ));
            }
            let peer_listener =
                TcpListener::bind(settings.listen)
                    .await
                    .map_err(|error| NodeError::Listen {
                        address: settings.listen,
                        error,
                    })?;
            peer_addr = Some(
                peer_listener
                    .local_addr()
                    .map_err(|error| NodeError::Listen {
                        address: settings.listen,
                        error,
                    })?,
            );
            let peer_tls =
                crate::tls::server_config(&settings.tls, &crate::tls::ClientAuth::Deferred)?;
            // The witness cosigns with the node's audit key (see `federation::witness`).
            let cosigner =
                NoteSigner::from_pkcs8(&config.audit.origin, &config.audit.signing_key_pkcs8)
                    .map_err(|e| NodeError::Key(e.to_string()))?;
            let witnessing = Arc::new(Witness::new(
                ledger.clone(),
                federation.clone(),
                peers.clone(),
                cosigner,
                clock.clone(),
                outbox.clone(),
            ));
            let peer_api = api::PeerApi {
                gate: Arc::new(api::PeerGate::new(
                    federation.clone(),
                    ledger.clone(),
                    clock.clone(),
                )),
                federation: api::FederationApi::new(
                    handler,
                    witnessing.clone(),
                    federation.clone(),
                    ledger.clone(),
                ),
                witness: api::WitnessApi::new(
                    witnessing.clone(),
                    federation.clone(),
                    ledger.clone(),
                ),
                index: index.clone().map(|index| {
                    api::IndexApi::new(index, federation.clone(), ledger.clone(), clock.clone())
                }),
                pseudonyms: pseudonym_service.map(|service| {
                    api::PseudonymsApi::new(service, federation.clone(), ledger.clone())
                }),
            };
            servers.push(tokio::spawn(api::serve_peer(
                peer_listener,
                peer_tls,
                peer_api,
                wait_for(stopped.clone()),
            )));
            tasks.push(tokio::spawn(
                Deliverer::new(
                    ledger.clone(),
                    federation.clone(),
                    peers.clone(),
                    outbox.clone(),
                )
                .run(stopped.clone()),
            ));
            tasks.push(tokio::spawn(
                witnessing
                    .clone()
                    .run(config.witness_every, stopped.clone()),
            ));
            witness = Some(witnessing);
            tasks.push(tokio::spawn(refresh_directory(
                ledger.clone(),
                federation.clone(),
                peers.clone(),
                clock.clone(),
                stopped.clone(),
            )));
        }

        let started = EventDraft::new(
            TransactionId::new(),
            system_actor(organisation, "node"),
            Action::NodeStarted,
        )
        .object(match peer_addr {
            Some(peer) => format!("listener:{local_addr} peer:{peer}"),
            None => format!("listener:{local_addr}"),
        });
        ledger.commit(move |txn| txn.audit(started)).await?;
        record_compaction(&config.data_dir.join("store"), &ledger, organisation).await?;

        let calls = Calls::new(
            Arc::new(config.principals.clone()),
            ledger.clone(),
            organisation,
        );
        let api = LocalApi {
            calls: calls.clone(),
            signals: SignalsApi::new(calls.clone(), signals.clone(), notices.subscribe()),
            audit: AuditApi::new(
                calls.clone(),
                signals.clone(),
                Arc::new(AccessService::new(
                    ledger.clone(),
                    signals.clone(),
                    peers.clone(),
                    index.clone(),
                )),
                own_key.clone(),
            )
            .with_index(index.clone()),
            cases: cases
                .map(|cases| api::CasesApi::new(calls, cases, signals.clone(), clock.clone())),
            max_message_bytes: config.max_message_bytes,
        };
        let (health, health_service) = api::health();
        health.set_serving(true).await;
        servers.push(tokio::spawn(api::serve_local(
            listener,
            tls,
            api,
            health_service,
            wait_for(stopped.clone()),
        )));
        // After a data key rotation: seal every value under the active key, in the background.
        tasks.push(tokio::spawn(crate::reencrypt::run(
            ledger.clone(),
            organisation,
            stopped.clone(),
        )));
        if let Some(index) = &index {
            tasks.push(tokio::spawn(index.clone().run_rotation(stopped.clone())));
        }
        tasks.push(tokio::spawn(sweep_loop(
            signals.clone(),
            index.clone(),
            config.sweep_every,
            stopped,
        )));
        tracing::info!(
            organisation = %config.organisation.name,
            oin = %organisation,
            address = %local_addr,
            peer_address = ?peer_addr,
            audit_key = %ledger.verifier_key(),
            "node started"
        );
        Ok(RunningNode {
            organisation,
            local_addr,
            peer_addr,
            ledger,
            signals,
            index,
            federation,
            witness,
            own_key,
            health,
            stop,
            servers,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The peer listener, when the node is part of a federation.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    pub fn organisation(&self) -> Oin {
        self.organisation
    }

    pub fn federation(&self) -> Option<&Arc<Federation>> {
        self.federation.as_ref()
    }

    /// The note verifier key of this node's audit log (`name+keyid+key`).
    pub fn verifier_key(&self) -> &str {
        self.ledger.verifier_key()
    }

    /// The node's witnessing, when it is part of a federation: `round` pushes its latest
    /// checkpoint to every witness now (it also runs on its own schedule).
    pub fn witness(&self) -> Option<&Arc<Witness>> {
        self.witness.as_ref()
    }

    pub fn audit_key(&self) -> &NoteVerifier {
        &self.own_key
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Runs the retention sweep now (it also runs on its own schedule).
    pub async fn sweep(&self) -> Result<usize, SignalError> {
        let removed = self.signals.sweep().await?;
        if let Some(index) = &self.index
            && let Err(e) = index.sweep().await
        {
            tracing::warn!(error = %e, "index sweep failed");
        }
        Ok(removed)
    }

    /// Stops taking calls, lets calls in flight finish, records the stop, signs a last
    /// checkpoint and syncs.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.health.set_serving(false).await;
        let _ = self.stop.send(true);
        for server in std::mem::take(&mut self.servers) {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "a listener ended with an error"),
                Err(e) => tracing::warn!(error = %e, "a listener task failed"),
            }
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        let stopped = EventDraft::new(
            TransactionId::new(),
            system_actor(self.organisation, "node"),
            Action::NodeStopped,
        );
        self.ledger.commit(move |txn| txn.audit(stopped)).await?;
        self.ledger.checkpoint().await?;
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.shutdown())
            .await
            .map_err(|e| NodeError::Serve(e.to_string()))?;
        tracing::info!(oin = %self.organisation, "node stopped");
        Ok(())
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for server in self.servers.drain(..) {
            server.abort();
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn sweep_loop(
    signals: Arc<SignalService>,
    index: Option<Arc<IndexService>>,
    every: Duration,
    stopped: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = wait_for(stopped.clone()) => return,
        }
        match signals.sweep().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "retention sweep removed expired signals"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
        if let Some(index) = &index {
            match index.sweep().await {
                Ok(swept) if swept == Swept::default() => {}
                Ok(swept) => tracing::info!(
                    pointers = swept.pointers,
                    archived = swept.archived,
                    "retention sweep removed expired pointers and archived pointers"
                ),
                Err(e) => tracing::warn!(error = %e, "index sweep failed"),
            }
        }
    }
}

/// Loads the signed directory: the one kept in the store (the floor: never roll back below
/// it) and the configured file (accepted when newer). Refuses to start on an expired
/// directory, or when this node's certificate is not pinned in it for its own OIN.
async fn join_federation(
    ledger: &Arc<Ledger>,
    me: Oin,
    settings: &FederationSettings,
    clock: &SharedClock,
) -> Result<Arc<Federation>, NodeError> {
    let now = clock.now();
    let file = std::fs::read_to_string(&settings.directory_file).map_err(|e| {
        NodeError::Federation(format!("{}: {e}", settings.directory_file.display()))
    })?;
    let kept = ledger.store().directory_note()?;
    let state = match &kept {
        Some(note) => DirectoryState::restore(note, &settings.authority),
        None => DirectoryState::new(&file, &settings.authority, now),
    }
    .map_err(|e| NodeError::Federation(format!("directory: {e}")))?;
    match state.accept(&file, &settings.authority, now) {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, file = %settings.directory_file.display(), "the configured directory was not taken")
        }
    }
    let directory = state
        .current_at(now)
        .map_err(|e| NodeError::Federation(format!("directory: {e}")))?;
    let member = directory.member(&me).ok_or_else(|| {
        NodeError::Federation(format!("this node ({me}) is not in the directory"))
    })?;
    let pin = crate::tls::spki_sha256(&settings.tls.certs[0]).map_err(NodeError::Federation)?;
    if !member.is_pinned(&pin) {
        return Err(NodeError::Federation(
            "this node's certificate is not pinned for it in the directory".into(),
        ));
    }
    for role in &settings.roles {
        if !member.has_role(*role) {
            return Err(NodeError::Federation(format!(
                "the directory does not give this node the role {role}"
            )));
        }
    }
    let serial = directory.serial();
    let note = state.note().to_string();
    if kept.as_deref() != Some(note.as_str()) {
        persist_directory(ledger, me, note, serial).await?;
    }
    Ok(Arc::new(Federation::new(me, settings.clone(), state)))
}

async fn persist_directory(
    ledger: &Arc<Ledger>,
    me: Oin,
    note: String,
    serial: u64,
) -> Result<(), NodeError> {
    let event = EventDraft::new(
        TransactionId::new(),
        system_actor(me, "federation"),
        Action::DirectoryAccept,
    )
    .purpose(Purpose::AuditReview, LegalBasis::Avg61c)
    .object(format!("directory:{serial}"));
    ledger
        .commit(move |txn| {
            txn.change(Change::PutDirectory(note));
            txn.audit(event);
        })
        .await?;
    Ok(())
}

/// Asks the authority (or, failing one, the index) for its directory now and then, and takes a
/// newer one; a rollback, equivocation or bad signature is refused and logged.
async fn refresh_directory(
    ledger: Arc<Ledger>,
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
    clock: SharedClock,
    stopped: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = wait_for(stopped.clone()) => return,
        }
        let directory = federation.directory();
        let source = directory
            .with_role(NodeRole::Authority)
            .map(|m| m.oin)
            .find(|oin| *oin != federation.me())
            .unwrap_or_else(|| directory.index().oin);
        if source == federation.me() {
            continue;
        }
        let note = match peers.directory(&source).await {
            Ok(note) => note,
            Err(e) => {
                tracing::debug!(error = %e, "directory refresh");
                continue;
            }
        };
        match federation.accept_directory(&note, clock.now()) {
            Ok(Accepted::Updated { to, .. }) => {
                if let Err(e) = persist_directory(&ledger, federation.me(), note, to).await {
                    tracing::warn!(error = %e, "cannot keep the new directory");
                }
                tracing::info!(serial = to, "directory updated");
            }
            Ok(Accepted::Unchanged) => {}
            Err(e) => tracing::warn!(error = %e, from = %source, "directory refused"),
        }
    }
}
