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

use crate::api::{self, AuditApi, Calls, Health, LocalApi, SignalsApi};
use crate::audit::{NoteSigner, NoteVerifier};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::{Action, Actor, EventDraft, Oin, PrincipalId, TransactionId};
use crate::ledger::{Ledger, LedgerError, LedgerOptions};
use crate::pseudonym::KeyedPseudonymiser;
use crate::signals::{SignalError, SignalService};
use crate::store::{SledStore, StoreError};

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
}

/// A started node. Dropping it stops the listener without the graceful steps; call
/// [`RunningNode::shutdown`] to stop it properly.
pub struct RunningNode {
    organisation: Oin,
    local_addr: SocketAddr,
    ledger: Arc<Ledger>,
    signals: Arc<SignalService>,
    own_key: NoteVerifier,
    health: Health,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    sweeper: Option<JoinHandle<()>>,
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

impl RunningNode {
    /// Opens the store, checks the audit log against its last checkpoint, binds the local
    /// listener and starts serving.
    pub async fn start(config: Config, clock: SharedClock) -> Result<RunningNode, NodeError> {
        crate::tls::install_provider();
        std::fs::create_dir_all(&config.data_dir).map_err(|error| NodeError::DataDir {
            path: config.data_dir.display().to_string(),
            error,
        })?;
        let pseudonymiser = Arc::new(
            KeyedPseudonymiser::open_or_create(&config.secret_file).map_err(|error| {
                NodeError::Secret {
                    path: config.secret_file.display().to_string(),
                    error,
                }
            })?,
        );
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
        let signals = Arc::new(SignalService::new(
            ledger.clone(),
            pseudonymiser.clone(),
            organisation,
            config.contact_points.iter().map(|c| c.id.clone()),
            config.signal_retention_millis,
        ));
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

        let started = EventDraft::new(
            TransactionId::new(),
            system_actor(organisation, "node"),
            Action::NodeStarted,
        )
        .object(format!("listener:{local_addr}"));
        ledger.commit(move |txn| txn.audit(started)).await?;

        let calls = Calls::new(
            Arc::new(config.principals.clone()),
            ledger.clone(),
            organisation,
        );
        let api = LocalApi {
            calls: calls.clone(),
            signals: SignalsApi::new(calls.clone(), signals.clone()),
            audit: AuditApi::new(calls, pseudonymiser, own_key.clone()),
            max_message_bytes: config.max_message_bytes,
        };
        let (health, health_service) = api::health();
        health.set_serving(true).await;
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(api::serve_local(
            listener,
            tls,
            api,
            health_service,
            wait_for(stopped.clone()),
        ));
        let sweeper = tokio::spawn(sweep_loop(signals.clone(), config.sweep_every, stopped));
        tracing::info!(
            organisation = %config.organisation.name,
            oin = %organisation,
            address = %local_addr,
            audit_key = %ledger.verifier_key(),
            "node started"
        );
        Ok(RunningNode {
            organisation,
            local_addr,
            ledger,
            signals,
            own_key,
            health,
            stop,
            server: Some(server),
            sweeper: Some(sweeper),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The note verifier key of this node's audit log (`name+keyid+key`).
    pub fn verifier_key(&self) -> &str {
        self.ledger.verifier_key()
    }

    pub fn audit_key(&self) -> &NoteVerifier {
        &self.own_key
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Runs the retention sweep now (it also runs on its own schedule).
    pub async fn sweep(&self) -> Result<usize, SignalError> {
        self.signals.sweep().await
    }

    /// Stops taking calls, lets calls in flight finish, records the stop, signs a last
    /// checkpoint and syncs.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.health.set_serving(false).await;
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "local listener ended with an error"),
                Err(e) => tracing::warn!(error = %e, "local listener task failed"),
            }
        }
        if let Some(sweeper) = self.sweeper.take() {
            let _ = sweeper.await;
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
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.abort();
        }
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn sweep_loop(signals: Arc<SignalService>, every: Duration, stopped: watch::Receiver<bool>) {
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
    }
}
