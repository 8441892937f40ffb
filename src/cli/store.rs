//! `kring store`: the node's store at rest. `new-key` makes a data key for encryption at rest
//! (see `[store] data_keys` in the configuration).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::store::crypt;

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
}

pub fn run(command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::NewKey { out } => {
            crypt::write_new_key_file(&out).with_context(|| {
                format!("{} (an existing file is never overwritten)", out.display())
            })?;
            println!("wrote a new data key to {} (mode 0600)", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
