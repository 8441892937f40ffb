//! `kring store`: the node's store at rest. `new-key` makes a data key for encryption at rest
//! (see `[store] data_keys` in the configuration); `compact` rewrites a stopped node's store
//! so that deleted data is gone from its files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::clock::Clock;
use crate::store::{compact, crypt};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Writes a new random AES-256 data key, base64, to a new file only its owner may read
    /// (mode 0600). An existing file is never overwritten.
    #[command(after_help = "\
Then list it in the node's configuration and make it the active key:

  [store]
  data_keys = [{ id = 1, file = \"keys/data-1.key\" }, { id = 2, file = \"keys/data-2.key\" }]
  active_data_key = 2

The same key from the environment instead of a file: { id = 2, env = \"KRING_DATA_KEY\" } with
KRING_DATA_KEY=2:<the file's base64>.")]
    NewKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// Compacts a stopped node's store: copies its live records into new files, checks the
    /// copy record by record, and overwrites the old files with zeros before removing them, so
    /// that withdrawn and expired data is gone from the disk too. The node records the
    /// compaction in its audit log (`store.compacted`) when it next starts. Run it again to
    /// finish an interrupted compaction; a node does not start until it has finished.
    Compact {
        /// The store directory: `<data_dir>/store` of the node's configuration.
        #[arg(long)]
        store: PathBuf,
    },
}

pub fn run(command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::NewKey { out } => {
            crypt::write_new_key_file(&out).with_context(|| {
                format!("{} (an existing file is never overwritten)", out.display())
            })?;
            println!("wrote a new data key to {} (mode 0600)", out.display());
        }
        StoreCommand::Compact { store } => {
            let finished = crate::clock::SystemClock.now();
            let compacted = compact::compact(&store, finished.rfc3339())?;
            println!(
                "compacted {}: {} records in {} bytes (before: {} bytes); the old files were overwritten and removed",
                store.display(),
                compacted.records,
                compacted.bytes_after,
                compacted.bytes_before
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
