//! The command line. Each subcommand group has its file; this one parses and dispatches, and
//! sets up logging. Nothing in the library imports `cli`.

mod audit;
mod cases;
mod client;
mod directory;
mod node;
mod pki;
mod render;
mod signal;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "kring",
    version,
    about = "Federation node for the regional approach to domestic violence and child abuse"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node from its configuration file.
    Node(node::NodeArgs),
    /// Run the embedded federation on loopback and play the scenario.
    Demo(crate::demo::DemoArgs),
    /// Bearer tokens for a node's principals.
    #[command(subcommand)]
    Token(node::TokenCommand),
    /// A development PKI: CA, node certificates, audit keys.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Register, update, withdraw, list and report signals; follow their matches.
    #[command(subcommand)]
    Signal(signal::SignalCommand),
    /// Linked signals, break-glass, regie, waakvlam and meldingen: a person and household.
    #[command(subcommand)]
    Cases(cases::CasesCommand),
    /// Search, prove, export and verify a node's audit log; review break-glass; reconcile.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The federation directory: the authority's key, signing, showing.
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// The store at rest: data keys for encryption at rest.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::tls::install_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kring: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(args) => node::run(args).await,
            Command::Demo(args) => {
                init_logging(LogFormat::Text, "warn");
                crate::demo::run(args).await.map_err(anyhow::Error::from)
            }
            Command::Token(command) => node::token(command),
            Command::Pki(command) => pki::run(command),
            Command::Signal(command) => {
                init_logging(LogFormat::Text, "warn");
                signal::run(command).await
            }
            Command::Cases(command) => {
                init_logging(LogFormat::Text, "warn");
                cases::run(command).await
            }
            Command::Audit(command) => {
                init_logging(LogFormat::Text, "warn");
                audit::run(command).await
            }
            Command::Directory(command) => directory::run(command),
            Command::Store(command) => store::run(command),
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kring: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line; a gRPC status as its code and message, which name
/// the field or rule that refused the request. A cause that an error's own message already
/// ends with (`"<path>: <io error>"` over the I/O error) is said once.
fn describe(error: &anyhow::Error) -> String {
    use crate::api::client::ClientError;
    let mut said: Vec<String> = Vec::new();
    // A client error that wraps a status says the same as the status, which follows.
    let causes = error
        .chain()
        .filter(|cause| !matches!(cause.downcast_ref(), Some(ClientError::Status(_))));
    for cause in causes {
        let text = match cause.downcast_ref::<tonic::Status>() {
            Some(status) => format!("{:?}: {}", status.code(), status.message()),
            None => cause.to_string(),
        };
        if !said.last().is_some_and(|last| last.ends_with(&text)) {
            said.push(text);
        }
    }
    said.join(": ")
}

/// Logs to stderr, as text or JSON lines, filtered by `RUST_LOG` or `level`.
pub(crate) fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct AtPath {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_message_already_ends_with_is_said_once() {
        let io = || std::io::Error::other("Too many open files");
        let error = anyhow::Error::new(AtPath {
            path: "/data/store".into(),
            source: io(),
        });
        assert_eq!(describe(&error), "/data/store: Too many open files");

        // Context that says something else keeps every cause.
        let error = anyhow::Error::new(io()).context("reading the configuration");
        assert_eq!(
            describe(&error),
            "reading the configuration: Too many open files"
        );
    }
}
