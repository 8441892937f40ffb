//! Connection options shared by the client subcommands.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::api::client::LocalClient;

#[derive(Debug, Args)]
pub struct Connection {
    /// The node's local listener, host:port.
    #[arg(long, env = "KRING_NODE", default_value = "127.0.0.1:7443")]
    pub node: String,
    /// The CA certificate (PEM) that the node's certificate chains to.
    #[arg(long, env = "KRING_CA")]
    pub ca: PathBuf,
    /// The name in the node's certificate.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// The bearer token (better given in KRING_TOKEN than on the command line).
    #[arg(long, env = "KRING_TOKEN", hide_env_values = true)]
    pub token: String,
}

impl Connection {
    pub async fn connect(&self) -> anyhow::Result<LocalClient> {
        let roots = crate::tls::load_roots(&self.ca)?;
        LocalClient::connect(&self.node, &self.server_name, roots, Some(&self.token))
            .await
            .with_context(|| format!("connecting to {}", self.node))
    }
}

/// Reads a BSN given as `-` from standard input, so that it stays out of shell history.
pub fn bsn_arg(value: String) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}
