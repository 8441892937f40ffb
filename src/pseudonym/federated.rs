//! The federation's pseudonymiser at an organisation node: BSNs are blinded here, evaluated by
//! the chain of pseudonym services named in the signed directory (each sees only blinded
//! elements; the first forwards along the chain), and unblinded here into federation
//! pseudonyms. One round trip per request, batched.

use std::sync::Arc;

use async_trait::async_trait;

use super::{PseudonymError, Pseudonymiser, oprf};
use crate::domain::{Bsn, Pseudonym};
use crate::federation::{Federation, Peers};

#[derive(Debug)]
pub struct OprfPseudonymiser {
    federation: Arc<Federation>,
    peers: Arc<dyn Peers>,
}

impl OprfPseudonymiser {
    pub fn new(federation: Arc<Federation>, peers: Arc<dyn Peers>) -> OprfPseudonymiser {
        OprfPseudonymiser { federation, peers }
    }
}

#[async_trait]
impl Pseudonymiser for OprfPseudonymiser {
    async fn pseudonymise(&self, persons: Vec<Bsn>) -> Result<Vec<Pseudonym>, PseudonymError> {
        if persons.is_empty() {
            return Ok(Vec::new());
        }
        let directory = self.federation.directory();
        let service = directory
            .pseudonym_services()
            .next()
            .map(|m| m.oin)
            .ok_or_else(|| {
                PseudonymError::Unavailable("the directory names no pseudonym service".into())
            })?;
        // The first service waits for the rest of the chain, each hop within the peer timeout.
        let hops = directory.pseudonym_services().count() as u32;
        let blinded = oprf::blind_all(persons);
        let elements = blinded.iter().map(|b| b.element().to_vec()).collect();
        let evaluated = tokio::time::timeout(
            self.federation.timeout() * hops,
            self.peers.evaluate(&service, elements, None),
        )
        .await
        .map_err(|_| PseudonymError::Unavailable(format!("{service} did not answer in time")))?
        .map_err(|e| match e {
            crate::federation::PeerError::Refused { message, .. } => {
                PseudonymError::Refused(message)
            }
            other => PseudonymError::Unavailable(other.to_string()),
        })?;
        oprf::finalize_all(blinded, &evaluated)
            .map_err(|e| PseudonymError::Unavailable(format!("pseudonym service answer: {e}")))
    }
}
