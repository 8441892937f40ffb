//! Turning a BSN into a pseudonym. This module is the only consumer of
//! [`Bsn::expose_for_pseudonymisation`](crate::domain::Bsn); what it computes from the digits is
//! a keyed one-way function, and the digits are wiped before it returns.
//!
//! The trait is asynchronous and batched because the federation's pseudonym service answers
//! over the network; the keyed pseudonymiser answers at once.

mod epochs;
pub mod federated;
mod keyed;
mod local;
pub mod oprf;
pub mod service;

pub use epochs::{EpochError, IndexEpochs};
pub use federated::OprfPseudonymiser;
pub use keyed::{KeyedPseudonymiser, read_or_create_secret};
pub use local::LocalPseudonyms;
pub use oprf::{Blinded, OprfError, ServiceKey};
pub use service::{PseudonymService, ServiceError};

use async_trait::async_trait;

use crate::domain::{Bsn, Pseudonym};

/// The most blinded elements one call to the pseudonym chain carries.
pub const MAX_BATCH: usize = 64;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PseudonymError {
    #[error("pseudonym service unavailable: {0}")]
    Unavailable(String),
    #[error("pseudonym service refused: {0}")]
    Refused(String),
}

/// Maps BSNs to pseudonyms, consuming them. The output has one pseudonym per input, in order.
#[async_trait]
pub trait Pseudonymiser: Send + Sync + std::fmt::Debug {
    async fn pseudonymise(&self, persons: Vec<Bsn>) -> Result<Vec<Pseudonym>, PseudonymError>;
}
