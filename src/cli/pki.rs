//! `kring pki`: a development PKI in a directory of PEM files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::domain::Oin;
use crate::pki::{self, DevCa, NodeCertRequest};

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Creates a federation CA (ca.crt, ca.key) and the authority's directory signing key
    /// (authority.key, and its verifier key in authority.pub) in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "kring development CA")]
        name: String,
    },
    /// Issues a node certificate (node.crt, node.key) and an audit signing key (audit.key)
    /// into OUT, signed by the CA in DIR.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        organisation: String,
        #[arg(long)]
        oin: String,
        /// Host names and addresses (default: localhost, 127.0.0.1, ::1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("{} (an existing file is never overwritten)", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

fn write_public(path: &Path, contents: &str) -> anyhow::Result<()> {
    if path.exists() {
        anyhow::bail!(
            "{} exists; an existing file is never overwritten",
            path.display()
        );
    }
    std::fs::write(path, contents).with_context(|| path.display().to_string())
}

pub fn run(command: PkiCommand) -> anyhow::Result<ExitCode> {
    match command {
        PkiCommand::Init { dir, name } => {
            std::fs::create_dir_all(&dir)?;
            let ca = DevCa::generate(&name)?;
            write_public(&dir.join("ca.crt"), ca.cert_pem())?;
            write_private(&dir.join("ca.key"), ca.key_pem())?;
            println!("CA written to {}", dir.display());
            // The authority's signing key, for the directory, with its verifier key beside it
            // (what every node's configuration pins).
            let authority = dir.join("authority.key");
            if !authority.exists() {
                let pem = pki::ed25519_key_pem();
                let pkcs8 = crate::config::read_signing_key_pem(pem.as_bytes())
                    .map_err(|e| anyhow::anyhow!("authority key: {e}"))?;
                let signer = crate::audit::NoteSigner::from_pkcs8(
                    crate::directory::AUTHORITY_KEY_NAME,
                    &pkcs8,
                )?;
                write_private(&authority, &pem)?;
                write_public(
                    &dir.join("authority.pub"),
                    &format!("{}\n", signer.verifier_key()),
                )?;
                println!(
                    "authority key written; its verifier key: {}",
                    signer.verifier_key()
                );
            }
        }
        PkiCommand::Issue {
            dir,
            out,
            organisation,
            oin,
            hosts,
            days,
        } => {
            let oin = Oin::parse(&oin).map_err(|e| anyhow::anyhow!("--oin: {e}"))?;
            let ca = DevCa::from_pem(
                &std::fs::read_to_string(dir.join("ca.crt"))?,
                &std::fs::read_to_string(dir.join("ca.key"))?,
            )?;
            let mut request = NodeCertRequest::loopback(&organisation, oin, days);
            if !hosts.is_empty() {
                request.hosts = hosts;
            }
            let issued = ca.issue(&request)?;
            std::fs::create_dir_all(&out)?;
            write_public(&out.join("node.crt"), &issued.cert_pem)?;
            write_private(&out.join("node.key"), &issued.key_pem)?;
            write_private(&out.join("audit.key"), &pki::ed25519_key_pem())?;
            println!(
                "node certificate and audit key written to {}",
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
