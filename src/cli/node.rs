//! `kring node` and `kring token`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::node::RunningNode;

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's TOML configuration.
    #[arg(long, short)]
    config: PathBuf,
    /// Listen on this address instead of the configured ones, keeping the configured ports, for
    /// the local and the peer listener alike. In a container: 0.0.0.0, so that other containers
    /// reach it while the same configuration runs as a plain process on 127.0.0.1.
    #[arg(long, value_name = "ADDRESS")]
    bind: Option<std::net::IpAddr>,
}

pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(&args.config)
        .with_context(|| format!("configuration {}", args.config.display()))?;
    if let Some(address) = args.bind {
        config.listen.set_ip(address);
        if let Some(federation) = config.federation.as_mut() {
            federation.listen.set_ip(address);
        }
    }
    super::init_logging(config.log_format, &config.log_level);
    let node = RunningNode::start(config, Arc::new(SystemClock)).await?;
    println!(
        "kring node listening on {}; audit verifier key {}",
        node.local_addr(),
        node.verifier_key()
    );
    crate::cli_support::wait_for_signal().await;
    tracing::info!("stopping");
    node.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Prints a new bearer token and the SHA-256 that goes into the node's configuration.
    New,
    /// Prints the SHA-256 of a token read from standard input.
    Hash,
}

pub fn token(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::New => {
            let token = crate::auth::new_token();
            println!("token        = {token}");
            println!("token_sha256 = \"{}\"", crate::auth::token_hash_hex(&token));
        }
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin().read_line(&mut token)?;
            println!("{}", crate::auth::token_hash_hex(token.trim()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
