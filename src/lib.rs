//! # kring
//!
//! A federation node for the regional approach to domestic violence and child abuse
//! (huiselijk geweld en kindermishandeling). Every organisation around a family runs a node;
//! nodes keep minimal, purpose-bound signal records and write every disclosure to a
//! tamper-evident audit log. See `ARCHITECTURE.md` for the bird's-eye view.
//!
//! ## Layout
//! - [`domain`]: pure types (Bsn, Oin, signals, purposes, audit events); no I/O.
//! - [`pseudonym`]: BSN to pseudonym, behind a trait; the only consumer of a BSN's digits.
//! - [`store`]: durable state behind a domain-shaped trait; sled underneath.
//! - [`audit`]: canonical events, the RFC 6962 Merkle log, signed checkpoints, proofs, the
//!   verifier, search.
//! - [`ledger`]: the single writer and group commit that make every acknowledgement durable.
//! - [`reencrypt`]: after a data key rotation, seals every stored value under the active key.
//! - [`signals`]: what a node does with its own signals.
//! - [`auth`]: principals, bearer tokens and roles.
//! - [`api`]: the gRPC services; the only place that sees generated proto types.
//! - [`access`]: subject access (AVG art. 15): every audit event about one person, gathered
//!   from the federation under purpose subject access.
//! - [`federation`]: the directory a node holds, pinned peer channels, the outbox deliverer.
//! - [`tls`]: rustls (ring) configurations and the TLS listener.
//! - [`directory`]: the authority-signed federation directory: members, pins, the policy.
//! - [`policy`]: purpose policy decisions (doelbinding) over the directory; pure.
//! - [`config`]: raw TOML to validated configuration.
//! - [`node`]: a node as a value: start, sweep, shutdown.
//! - [`pki`]: a development PKI (rcgen).
//! - [`demo`]: the embedded default, `kring demo`.
//! - [`devnet`]: a development federation in one process, for the demo and the tests.
//! - [`cli`]: the command line; nothing imports it.
//! - [`cli_support`]: rendering for people and signal handling, shared by `cli` and `demo`.

pub mod access;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod cli;
pub mod cli_support;
pub mod clock;
pub mod config;
pub mod demo;
pub mod devnet;
pub mod directory;
pub mod domain;
pub mod federation;
pub mod index;
pub mod ledger;
pub mod node;
pub mod pki;
pub mod policy;
pub mod pseudonym;
pub mod reencrypt;
pub mod signals;
pub mod store;
pub mod tls;
