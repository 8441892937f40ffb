//! `kring directory`: the authority's tools. Create the authority key, build and sign the
//! federation directory from its TOML source, and verify and show a signed directory.
//! Nothing here overwrites an existing file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::audit::{NoteSigner, NoteVerifier};
use crate::clock::{Clock, SystemClock};
use crate::directory::{self, AUTHORITY_KEY_NAME, Directory, DirectorySource};

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Creates the authority's Ed25519 signing key (PKCS#8 PEM, mode 0600) and prints its
    /// verifier key, which every node pins.
    AuthorityKey {
        #[arg(long)]
        out: PathBuf,
        /// The key's name in signed notes.
        #[arg(long, default_value = AUTHORITY_KEY_NAME)]
        name: String,
    },
    /// Builds the directory from its TOML source and writes it signed.
    Sign {
        /// The directory source (TOML).
        #[arg(long)]
        source: PathBuf,
        /// The authority's signing key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// The key's name in signed notes.
        #[arg(long, default_value = AUTHORITY_KEY_NAME)]
        name: String,
        /// Higher than every directory signed before: nodes refuse to go back.
        #[arg(long)]
        serial: u64,
        /// How long the directory stays valid, from now.
        #[arg(long)]
        valid_days: u32,
        /// Where to write the signed note.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verifies a signed directory against the authority's verifier key and shows it.
    Show {
        #[arg(long)]
        note: PathBuf,
        /// The authority's verifier key (name+keyid+key).
        #[arg(long, env = "KRING_AUTHORITY_KEY")]
        authority_key: String,
    },
}

pub fn run(command: DirectoryCommand) -> anyhow::Result<ExitCode> {
    match command {
        DirectoryCommand::AuthorityKey { out, name } => {
            let pem = crate::pki::ed25519_key_pem();
            let pkcs8 = pem_pkcs8(&pem)?;
            let signer = NoteSigner::from_pkcs8(&name, &pkcs8).context("--name")?;
            write_new(&out, &pem, Mode::Private)?;
            eprintln!("authority key written to {}", out.display());
            println!("{}", signer.verifier_key());
        }
        DirectoryCommand::Sign {
            source,
            key,
            name,
            serial,
            valid_days,
            out,
        } => {
            if out.exists() {
                anyhow::bail!(
                    "{} exists; an existing file is never overwritten",
                    out.display()
                );
            }
            let pkcs8 = crate::config::read_signing_key(&key).map_err(anyhow::Error::msg)?;
            let signer = NoteSigner::from_pkcs8(&name, &pkcs8).context("--key / --name")?;
            let source = DirectorySource::load(&source)?;
            let valid_for = Duration::from_secs(u64::from(valid_days) * 24 * 60 * 60);
            let built = directory::build(&source, serial, SystemClock.now(), valid_for)?;
            write_new(&out, &built.sign(&signer), Mode::Public)?;
            println!(
                "directory {} serial {} ({} members) signed by {}, valid until {}, written to {}",
                built.federation(),
                built.serial(),
                built.members().len(),
                signer.name(),
                built.expires_at().rfc3339(),
                out.display()
            );
        }
        DirectoryCommand::Show {
            note,
            authority_key,
        } => {
            let authority = NoteVerifier::parse(&authority_key).context("--authority-key")?;
            let text =
                std::fs::read_to_string(&note).with_context(|| note.display().to_string())?;
            let directory = Directory::open(&text, &authority, SystemClock.now())?;
            print!("{}", render(&directory));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pem_pkcs8(pem: &str) -> anyhow::Result<Vec<u8>> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    let key = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("generated key: {e}"))?;
    Ok(key.secret_pkcs8_der().to_vec())
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Readable by the owner only.
    Private,
    Public,
}

fn write_new(path: &Path, contents: &str, mode: Mode) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Mode::Private = mode {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("{} (an existing file is never overwritten)", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| path.display().to_string())
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The directory for people: members, then the policy, one purpose per paragraph.
fn render(directory: &Directory) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "federation {}  serial {}  issued {}  expires {}",
        directory.federation(),
        directory.serial(),
        directory.issued_at().rfc3339(),
        directory.expires_at().rfc3339()
    );
    let _ = writeln!(out, "\nmembers ({}):", directory.members().len());
    for member in directory.members() {
        let _ = writeln!(
            out,
            "  {}  {}\n    type {} (ring: {})  roles {}\n    endpoint {}\n    audit key {}",
            member.oin,
            member.name,
            member.org_type,
            member.ring().label(),
            join(&member.roles),
            member.endpoint,
            member.audit_key
        );
        for pin in &member.tls_spki_sha256 {
            let _ = writeln!(out, "    tls pin {}", directory::pin_hex(pin));
        }
        if let Some(contact) = &member.contact {
            let reach = [contact.phone.as_deref(), contact.email.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(out, "    contact {} ({reach})", contact.name);
        }
    }
    let policy = directory.policy();
    let _ = writeln!(out, "\npolicy:");
    for rule in &policy.purposes {
        let mut flags = Vec::new();
        if rule.household {
            flags.push("household");
        }
        if rule.reason_required {
            flags.push("break-glass reason required");
        }
        let _ = writeln!(
            out,
            "  {}  ({}){}\n    who: {}\n    roles: {}\n    fields: {}",
            rule.purpose,
            rule.legal_basis.citation(),
            if flags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", flags.join(", "))
            },
            join(&rule.org_types),
            join(&rule.roles),
            join(&rule.fields)
        );
    }
    let _ = writeln!(
        out,
        "  regie excluded: {}\n  waakvlam: a check-in every {} days, at most {} days",
        join(&policy.regie_excluded),
        policy.waakvlam_checkin_days,
        policy.waakvlam_max_days
    );
    out
}
