//! A node's part in the federation: the signed directory it holds, its identity towards peers,
//! pinned channels to them, and what it does on its own initiative (delivering its outbox,
//! keeping its directory fresh).
//!
//! The wire is behind [`Peers`], which `api` implements with tonic: nothing here sees a
//! generated type, and the logic can be read without the protocol.
//!
//! Architecture invariant: every connection to a peer checks the peer's certificate against the
//! federation CA *and* against the SPKI pins of that member in the signed directory; a peer that
//! is not in the directory cannot be reached, whatever its certificate says.

pub mod outbox;
pub mod serve;
pub mod witness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::config::FederationSettings;
use crate::directory::{Accepted, Directory, DirectoryError, DirectoryState, Member};
use crate::domain::{
    AccessedEvent, Lookup, Oin, OutboxMessage, Pseudonym, Regie, RequestContext, SignalId,
    UnixMillis, Waakvlam,
};
use crate::policy::DisclosedSignal;
use crate::tls::{self, Connect};

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("{0} is not a member of the federation")]
    NotAMember(Oin),
    #[error("the directory names no {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Why a call to a peer did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached or did not answer in time: try again later.
    #[error("{oin} unavailable: {reason}")]
    Unavailable { oin: Oin, reason: String },
    /// The peer answered with a refusal; retrying the same request changes nothing.
    #[error("{oin} refused ({code}): {message}")]
    Refused {
        oin: Oin,
        code: String,
        message: String,
    },
}

impl PeerError {
    pub fn oin(&self) -> Oin {
        match self {
            PeerError::Unavailable { oin, .. } | PeerError::Refused { oin, .. } => *oin,
        }
    }
}

/// A node's answer to a subject access request: its events about the person, stripped to what
/// subject access discloses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessAnswer {
    pub events: Vec<AccessedEvent>,
    /// The node had more events than one answer holds.
    pub truncated: bool,
}

/// What a node can ask of its peers.
#[async_trait]
pub trait Peers: Send + Sync + std::fmt::Debug {
    /// Delivers one outbox message to `to` (the index for pointers; an organisation for
    /// meldingen and notices). `Ok` means the peer acknowledged it.
    async fn deliver(&self, to: &Oin, message: &OutboxMessage) -> Result<(), PeerError>;
    async fn lookup(
        &self,
        index: &Oin,
        context: &RequestContext,
        person: Pseudonym,
        household: bool,
    ) -> Result<Lookup, PeerError>;
    /// The signals behind pointers, each with the subject the index named for it.
    async fn fetch_signals(
        &self,
        from: &Oin,
        context: &RequestContext,
        signals: &[(SignalId, Pseudonym)],
    ) -> Result<Vec<DisclosedSignal>, PeerError>;
    /// Claims (or releases) the regie of a person's household at the index.
    async fn regie(
        &self,
        index: &Oin,
        context: &RequestContext,
        person: Pseudonym,
        claim: bool,
    ) -> Result<Option<Regie>, PeerError>;
    async fn start_waakvlam(
        &self,
        index: &Oin,
        context: &RequestContext,
        person: Pseudonym,
        days: u32,
    ) -> Result<Waakvlam, PeerError>;
    async fn list_waakvlam(
        &self,
        index: &Oin,
        context: &RequestContext,
    ) -> Result<Vec<Waakvlam>, PeerError>;
    /// One oblivious PRF evaluation along the chain, starting at `service`. `on_behalf_of` is
    /// set only by a service forwarding for the organisation that asked it.
    async fn evaluate(
        &self,
        service: &Oin,
        blinded: Vec<Vec<u8>>,
        on_behalf_of: Option<Oin>,
    ) -> Result<Vec<Vec<u8>>, PeerError>;
    /// The index's share of one epoch's at-rest key from one pseudonym service. With `start`
    /// the index starts the epoch (the service may create it); without, the service gives
    /// the share of an epoch it holds or refuses.
    async fn index_key(
        &self,
        service: &Oin,
        transaction: &crate::domain::TransactionId,
        epoch: u32,
        start: bool,
    ) -> Result<[u8; 32], PeerError>;
    /// Asks a pseudonym service to delete the index's epoch secrets before `before`; returns
    /// the oldest epoch it keeps.
    async fn retire_index_epochs(
        &self,
        service: &Oin,
        transaction: &crate::domain::TransactionId,
        before: u32,
    ) -> Result<u32, PeerError>;
    /// The signed directory a peer holds.
    async fn directory(&self, from: &Oin) -> Result<String, PeerError>;
    /// A peer's audit events about one person, for a privacy officer's subject access. The
    /// person travels as its federation pseudonym: the signature has no room for a BSN.
    async fn subject_access(
        &self,
        to: &Oin,
        context: &RequestContext,
        subject: Pseudonym,
    ) -> Result<AccessAnswer, PeerError>;
    /// Pushes this node's signed checkpoint to `witness` with a consistency proof from
    /// `old_size`; returns the witness's cosignature line.
    async fn add_checkpoint(
        &self,
        witness: &Oin,
        transaction: &crate::domain::TransactionId,
        old_size: u64,
        proof: &[crate::audit::Hash32],
        checkpoint: &str,
    ) -> Result<String, PeerError>;
}

/// The node's view of the federation.
#[derive(Debug)]
pub struct Federation {
    me: Oin,
    settings: FederationSettings,
    directory: DirectoryState,
    /// Channels by peer, with the directory serial they were made under (pins can change).
    channels: Mutex<HashMap<Oin, (u64, tonic::transport::Channel)>>,
}

impl Federation {
    pub fn new(me: Oin, settings: FederationSettings, directory: DirectoryState) -> Federation {
        Federation {
            me,
            settings,
            directory,
            channels: Mutex::new(HashMap::new()),
        }
    }

    pub fn me(&self) -> Oin {
        self.me
    }

    pub fn settings(&self) -> &FederationSettings {
        &self.settings
    }

    pub fn timeout(&self) -> Duration {
        self.settings.peer_timeout
    }

    pub fn directory(&self) -> Arc<Directory> {
        self.directory.current()
    }

    /// The directory if it is still valid at `now`.
    pub fn directory_at(&self, now: UnixMillis) -> Result<Arc<Directory>, DirectoryError> {
        self.directory.current_at(now)
    }

    pub fn directory_note(&self) -> Arc<str> {
        self.directory.note()
    }

    /// Offers a newer signed directory; a rollback, an equivocation, a bad signature or an
    /// expired directory is refused.
    pub fn accept_directory(
        &self,
        note: &str,
        now: UnixMillis,
    ) -> Result<Accepted, DirectoryError> {
        let accepted = self.directory.accept(note, &self.settings.authority, now)?;
        if matches!(accepted, Accepted::Updated { .. }) {
            self.channels
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        Ok(accepted)
    }

    pub fn member(&self, oin: &Oin) -> Result<Member, FederationError> {
        self.directory()
            .member(oin)
            .cloned()
            .ok_or(FederationError::NotAMember(*oin))
    }

    pub fn index(&self) -> Oin {
        self.directory().index().oin
    }

    /// A channel to `to`, connected lazily, checking its certificate against the CA and the
    /// directory's pins for it.
    pub async fn channel(&self, to: &Oin) -> Result<tonic::transport::Channel, FederationError> {
        let directory = self.directory();
        let serial = directory.serial();
        if let Some((made_under, channel)) = self
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(to)
            && *made_under == serial
        {
            return Ok(channel.clone());
        }
        let member = directory
            .member(to)
            .ok_or(FederationError::NotAMember(*to))?;
        let config = tls::peer_client_config(
            self.settings.ca.clone(),
            &self.settings.tls,
            member.tls_spki_sha256.clone(),
        )?;
        let host = member
            .endpoint
            .rsplit_once(':')
            .map_or(member.endpoint.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let channel = tls::channel(&member.endpoint, &host, config, Connect::Lazy).await?;
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*to, (serial, channel.clone()));
        Ok(channel)
    }
}
