//! Rendering for people, and waiting for a stop signal: shared by the command line and the
//! demo (which must not import `cli`).

use crate::api::proto;
use crate::audit::Report;
use crate::domain::UnixMillis;

/// A proto enum's name without its type prefix, lowercase: `CATEGORY_NIET_PLUIS` -> `niet_pluis`.
fn short(name: Option<&str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_lowercase())
        .filter(|n| n != "unspecified")
        .unwrap_or_default()
}

pub fn render_signal(signal: &proto::Signal) -> String {
    let name = |raw: i32, f: fn(i32) -> Option<&'static str>, prefix: &str| short(f(raw), prefix);
    format!(
        "{id}  v{version}  {category:<17} {severity:<10} step {step:<14} subject {subject:.12}…  related {related}  contact {contact}  by {by}  expires {expires}",
        id = signal.id,
        version = signal.version,
        category = name(
            signal.category,
            |r| proto::Category::try_from(r).ok().map(|c| c.as_str_name()),
            "CATEGORY_"
        ),
        severity = name(
            signal.severity,
            |r| proto::Severity::try_from(r).ok().map(|c| c.as_str_name()),
            "SEVERITY_"
        ),
        step = name(
            signal.meldcode_step,
            |r| proto::MeldcodeStep::try_from(r)
                .ok()
                .map(|c| c.as_str_name()),
            "MELDCODE_STEP_"
        ),
        subject = signal.subject,
        related = signal.related.len(),
        contact = signal.contact_point,
        by = signal.registered_by,
        expires = UnixMillis(signal.expires_at_unix_ms).rfc3339(),
    )
}

pub fn render_event(event: &proto::AuditEvent) -> String {
    let actor = event.actor.as_ref();
    let action = short(
        proto::AuditAction::try_from(event.action)
            .ok()
            .map(|a| a.as_str_name()),
        "AUDIT_ACTION_",
    );
    let outcome = short(
        proto::Outcome::try_from(event.outcome)
            .ok()
            .map(|o| o.as_str_name()),
        "OUTCOME_",
    );
    let purpose = short(
        proto::Purpose::try_from(event.purpose)
            .ok()
            .map(|p| p.as_str_name()),
        "PURPOSE_",
    );
    let role = short(
        actor
            .and_then(|a| proto::Role::try_from(a.role).ok())
            .map(|r| r.as_str_name()),
        "ROLE_",
    );
    format!(
        "#{index:<5} {time}  {user}{role}  {action:<16} {outcome:<8} {purpose:<16} subjects {subjects}{object}{reason}",
        index = event.index,
        time = UnixMillis(event.time_unix_ms).rfc3339(),
        user = actor.map(|a| a.user.as_str()).unwrap_or("?"),
        role = if role.is_empty() {
            String::new()
        } else {
            format!(" ({role})")
        },
        subjects = event.subjects.len(),
        object = if event.object.is_empty() {
            String::new()
        } else {
            format!("  {}", event.object)
        },
        reason = if event.reason.is_empty() {
            String::new()
        } else {
            format!("  [{}]", event.reason)
        },
    )
}

pub fn render_report(report: &Report) -> String {
    let root = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, report.root);
    let signatures = if report.signatures_checked {
        "signatures checked"
    } else {
        "signatures NOT checked (no key given)"
    };
    match &report.problem {
        None if report.stored_hashes > 0 => format!(
            "log verified: {} events, {} checkpoints, {} stored hashes, {signatures}; root {root}",
            report.events, report.checkpoints, report.stored_hashes
        ),
        None => format!(
            "log verified: {} events, {} checkpoints, {signatures}; root {root}",
            report.events, report.checkpoints
        ),
        Some(problem) => format!("log BROKEN after {} good events: {problem}", report.events),
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(term) => { term.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn party(p: Option<&proto::MatchParty>) -> String {
    match p {
        Some(p) => {
            let ring = short(
                proto::Ring::try_from(p.ring).ok().map(|r| r.as_str_name()),
                "RING_",
            )
            .replace('_', " ");
            let contact = p
                .contact
                .as_ref()
                .map(|c| format!("{} {}", c.name, c.phone).trim().to_owned())
                .unwrap_or_default();
            format!("{} ({ring}; contact: {contact})", p.name)
        }
        None => "?".into(),
    }
}

/// One match notice, for people.
pub fn render_match_event(event: &proto::MatchEvent) -> String {
    use proto::match_event::Event;
    match &event.event {
        Some(Event::Match(m)) => {
            let parties: Vec<String> = m.parties.iter().map(|p| party(Some(p))).collect();
            let kind = if m.household {
                "household"
            } else {
                "same person"
            };
            let regie = m
                .regie
                .as_ref()
                .map(|r| format!("; regie: {}", r.holder_name))
                .unwrap_or_default();
            format!(
                "match ({kind}) on signal {:.8}…: {}{regie}",
                m.signal_id,
                parties.join(", ")
            )
        }
        Some(Event::Ended(e)) => format!(
            "match ended on signal {:.8}…: {} is no longer involved",
            e.signal_id,
            party(e.party.as_ref())
        ),
        Some(Event::WaakvlamAlert(w)) => format!(
            "WAAKVLAM ALERT: a new signal by {} in a household in follow-up (until {})",
            party(w.party.as_ref()),
            UnixMillis(w.until_unix_ms).rfc3339()
        ),
        Some(Event::RegieChanged(r)) => match &r.regie {
            Some(regie) => format!(
                "regie on signal {:.8}…: {} coordinates",
                r.signal_id, regie.holder_name
            ),
            None => format!("regie on signal {:.8}…: released", r.signal_id),
        },
        Some(Event::HistoricalMatch(h)) => {
            let archived: Vec<String> = h
                .archived
                .iter()
                .map(|a| {
                    let reason = match proto::ArchiveReason::try_from(a.reason) {
                        Ok(proto::ArchiveReason::RiskGone) => "risk gone",
                        Ok(proto::ArchiveReason::RetentionEnded) => "retention ended",
                        _ => "?",
                    };
                    format!(
                        "{}, archived {} ({reason})",
                        party(a.party.as_ref()),
                        UnixMillis(a.archived_at_unix_ms).rfc3339()
                    )
                })
                .collect();
            format!(
                "historical match on signal {:.8}… (no current signal): {}",
                h.signal_id,
                archived.join("; ")
            )
        }
        None => "empty notice".into(),
    }
}

fn pseudonym_short(bytes: &[u8]) -> String {
    let text = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    format!("{:.10}…", text)
}

/// A signal map, for people: persons, then organisations grouped by the rings of the map.
pub fn render_map(map: &proto::SignalMap) -> String {
    let mut out = String::new();
    let purpose = short(
        proto::Purpose::try_from(map.purpose)
            .ok()
            .map(|p| p.as_str_name()),
        "PURPOSE_",
    );
    out.push_str(&format!(
        "purpose {purpose}{}; transaction {}\n",
        if map.break_glass {
            " (BREAK-GLASS, flagged for review)"
        } else {
            ""
        },
        map.transaction_id
    ));
    match &map.regie {
        Some(r) => out.push_str(&format!(
            "regie: {} (since {})\n",
            r.holder_name,
            UnixMillis(r.since_unix_ms).rfc3339()
        )),
        None => out.push_str("regie: nobody coordinates yet\n"),
    }
    for person in &map.persons {
        let relation = match proto::Relation::try_from(person.relation) {
            Ok(proto::Relation::Unspecified) | Err(_) => "the person asked about".to_owned(),
            Ok(r) => format!(
                "{} of the person asked about",
                short(Some(r.as_str_name()), "RELATION_").replace('_', "-")
            ),
        };
        out.push_str(&format!(
            "* {} ({relation})\n",
            pseudonym_short(&person.pseudonym)
        ));
        if person.organisations.is_empty() {
            out.push_str("    no signals\n");
        }
        let mut ring = None;
        for org in &person.organisations {
            let label = short(
                proto::Ring::try_from(org.ring)
                    .ok()
                    .map(|r| r.as_str_name()),
                "RING_",
            )
            .replace('_', " ");
            if ring.as_deref() != Some(label.as_str()) {
                out.push_str(&format!("    [{label}]\n"));
                ring = Some(label.clone());
            }
            out.push_str(&format!("      {} ({})\n", org.name, org.org_type));
            for s in &org.signals {
                let field = |name: Option<&str>, prefix: &str| short(name, prefix);
                let category = field(
                    s.category
                        .and_then(|c| proto::Category::try_from(c).ok())
                        .map(|c| c.as_str_name()),
                    "CATEGORY_",
                );
                let severity = field(
                    s.severity
                        .and_then(|c| proto::Severity::try_from(c).ok())
                        .map(|c| c.as_str_name()),
                    "SEVERITY_",
                );
                let step = field(
                    s.meldcode_step
                        .and_then(|c| proto::MeldcodeStep::try_from(c).ok())
                        .map(|c| c.as_str_name()),
                    "MELDCODE_STEP_",
                );
                let when = s
                    .registered_at_unix_ms
                    .map(|t| UnixMillis(t).rfc3339())
                    .unwrap_or_default();
                let contact = s
                    .contact_point
                    .as_ref()
                    .map(|c| format!("{} {}", c.name, c.phone).trim().to_owned())
                    .unwrap_or_default();
                let mut parts = Vec::new();
                for (name, value) in [
                    ("category", category),
                    ("severity", severity),
                    ("step", step),
                    ("since", when),
                    ("contact", contact),
                ] {
                    if !value.is_empty() {
                        parts.push(format!("{name} {value}"));
                    }
                }
                if parts.is_empty() {
                    parts.push("a signal (no further fields for this purpose)".into());
                }
                out.push_str(&format!("        - {}\n", parts.join("; ")));
            }
        }
    }
    for entry in &map.waakvlam {
        out.push_str(&format!(
            "waakvlam until {}, next check-in {}\n",
            UnixMillis(entry.until_unix_ms).rfc3339(),
            UnixMillis(entry.next_check_in_unix_ms).rfc3339()
        ));
    }
    for u in &map.unavailable {
        out.push_str(&format!("unavailable: {} ({})\n", u.name, u.reason));
    }
    out
}

/// A reconciliation, for people.
pub fn render_reconciliation(report: &crate::audit::reconcile::Reconciliation) -> String {
    if report.clean() {
        return format!(
            "reconciled: {} nodes, {} recorded exchanges, every one on record at both ends",
            report.nodes, report.exchanges
        );
    }
    let mut out = format!(
        "NOT reconciled: {} of {} exchanges are on record at one end only:\n",
        report.one_sided.len(),
        report.exchanges
    );
    for one in &report.one_sided {
        out.push_str(&format!(
            "  transaction {}: {} recorded {} with {} (event {}, {}), which has no record of it\n",
            one.transaction,
            one.logged_by,
            one.action,
            one.counterpart,
            one.index,
            one.time.rfc3339()
        ));
    }
    out
}

/// A subject access report with its events checked and grouped: by organisation (in the
/// report's order, the asking organisation first), each in time order.
#[derive(Debug)]
pub struct AccessView {
    pub generated_at: UnixMillis,
    pub transaction_id: String,
    pub subject_pseudonym: String,
    pub organisations: Vec<AccessOrganisation>,
}

#[derive(Debug)]
pub struct AccessOrganisation {
    pub source: proto::SubjectAccessSource,
    pub events: Vec<crate::domain::AccessedEvent>,
}

impl AccessView {
    pub fn new(report: &proto::SubjectAccessReport) -> Result<AccessView, crate::domain::Invalid> {
        let mut organisations: Vec<AccessOrganisation> = report
            .sources
            .iter()
            .map(|s| AccessOrganisation {
                source: s.clone(),
                events: Vec::new(),
            })
            .collect();
        for (i, raw) in report.events.iter().enumerate() {
            let event = crate::api::convert::accessed_event_from_proto(i, raw)?;
            let oin = event.recorded_by.to_string();
            match organisations.iter_mut().find(|o| o.source.oin == oin) {
                Some(org) => org.events.push(event),
                None => organisations.push(AccessOrganisation {
                    source: proto::SubjectAccessSource {
                        oin,
                        answered: true,
                        ..Default::default()
                    },
                    events: vec![event],
                }),
            }
        }
        for org in &mut organisations {
            org.events.sort_by_key(|e| (e.time, e.index));
        }
        Ok(AccessView {
            generated_at: UnixMillis(report.generated_at_unix_ms),
            transaction_id: report.transaction_id.clone(),
            subject_pseudonym: report.subject_pseudonym.clone(),
            organisations,
        })
    }

    /// The name of an organisation of the federation, as the report lists it.
    fn name_of(&self, oin: &crate::domain::Oin) -> String {
        let oin = oin.to_string();
        self.organisations
            .iter()
            .find(|o| o.source.oin == oin && !o.source.name.is_empty())
            .map_or(oin, |o| o.source.name.clone())
    }

    fn answered(&self) -> impl Iterator<Item = &AccessOrganisation> {
        self.organisations.iter().filter(|o| o.source.answered)
    }

    fn silent(&self) -> impl Iterator<Item = &AccessOrganisation> {
        self.organisations.iter().filter(|o| !o.source.answered)
    }

    /// The report as JSON: organisations that answered with their events, then those that
    /// did not, with why.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let actor = |a: &crate::domain::Actor| {
            json!({
                "user": a.user.as_str(),
                "role": a.role.map(|r| r.as_str()),
                "organisation_oin": a.organisation.to_string(),
                "organisation": self.name_of(&a.organisation),
            })
        };
        let organisations: Vec<serde_json::Value> = self
            .answered()
            .map(|org| {
                json!({
                    "oin": org.source.oin,
                    "name": org.source.name,
                    "org_type": org.source.org_type,
                    "truncated": org.source.truncated,
                    "events": org.events.iter().map(|e| json!({
                        "index": e.index,
                        "time": e.time.rfc3339(),
                        "local_time": e.time.amsterdam(),
                        "transaction_id": e.transaction.to_string(),
                        "who": actor(e.who()),
                        "recorded_as": e.on_behalf_of.as_ref().map(|_| actor(&e.actor)),
                        "action": e.action.as_str(),
                        "purpose": e.purpose.map(|p| p.as_str()),
                        "legal_basis": e.legal_basis.map(|b| b.as_str()),
                        "outcome": e.outcome.as_str(),
                        "counterpart": e.counterpart.map(|c| json!({
                            "oin": c.to_string(),
                            "name": self.name_of(&c),
                        })),
                        "emergency": e.emergency,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let silent: Vec<serde_json::Value> = self
            .silent()
            .map(|org| {
                json!({
                    "oin": org.source.oin,
                    "name": org.source.name,
                    "reason": org.source.reason,
                })
            })
            .collect();
        json!({
            "subject_pseudonym": self.subject_pseudonym,
            "generated_at": self.generated_at.rfc3339(),
            "transaction_id": self.transaction_id,
            "organisations": organisations,
            "not_answered": silent,
        })
    }

    /// One line per organisation: how many events, how many of them break-glass, and who did
    /// not answer (`kring demo` shows this; the full report is `render`).
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for org in &self.organisations {
            let name = if org.source.name.is_empty() {
                &org.source.oin
            } else {
                &org.source.name
            };
            if !org.source.answered {
                let _ = writeln!(out, "{name}: did not answer ({})", org.source.reason);
                continue;
            }
            if org.events.is_empty() {
                continue;
            }
            let emergency = org.events.iter().filter(|e| e.emergency).count();
            let mut people: Vec<String> = org
                .events
                .iter()
                .map(|e| {
                    let who = e.who();
                    match who.role {
                        Some(role) => format!("{} ({role})", who.user),
                        None => who.user.to_string(),
                    }
                })
                .collect();
            people.sort();
            people.dedup();
            let _ = writeln!(
                out,
                "{name}: {} events, {emergency} break-glass; by {}",
                org.events.len(),
                people.join(", ")
            );
        }
        let quiet = self.answered().filter(|o| o.events.is_empty()).count();
        let _ = write!(
            out,
            "{quiet} more organisations answered with no events about the person; the full report: \
             kring audit subject-access --bsn - --format text|json"
        );
        out
    }

    /// The report for people: by organisation, each event in time order with who (principal,
    /// role, organisation), what, when (Amsterdam time and RFC 3339), for which purpose on
    /// which legal basis, and break-glass marked; then who did not answer.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let events: usize = self.organisations.iter().map(|o| o.events.len()).sum();
        let _ = writeln!(
            out,
            "Subject access report (AVG art. 15)\n\
             generated   {} ({})\n\
             person      pseudonym {}\n\
             transaction {}\n\
             {} events from {} organisations; {} did not answer",
            self.generated_at.amsterdam(),
            self.generated_at.rfc3339(),
            self.subject_pseudonym,
            self.transaction_id,
            events,
            self.answered().count(),
            self.silent().count(),
        );
        for org in self.answered().filter(|o| !o.events.is_empty()) {
            let _ = writeln!(
                out,
                "\n== {} ({}, OIN {}): {} event{}{}",
                if org.source.name.is_empty() {
                    &org.source.oin
                } else {
                    &org.source.name
                },
                if org.source.org_type.is_empty() {
                    "?"
                } else {
                    &org.source.org_type
                },
                org.source.oin,
                org.events.len(),
                if org.events.len() == 1 { "" } else { "s" },
                if org.source.truncated {
                    " (more than one answer holds; the oldest are shown)"
                } else {
                    ""
                },
            );
            for e in &org.events {
                let who = e.who();
                let role = who.role.map_or_else(String::new, |r| format!(" ({r})"));
                let mut line = format!(
                    "   {}  [{}]{}\n     who      {}{role}, {}",
                    e.time.amsterdam(),
                    e.time.rfc3339(),
                    if e.emergency { "  BREAK-GLASS" } else { "" },
                    who.user,
                    self.name_of(&who.organisation),
                );
                if e.on_behalf_of.is_some() {
                    let _ = write!(line, " (answered by {} here)", e.actor.user);
                }
                let _ = write!(line, "\n     what     {} ({})", e.action, e.outcome);
                if let Some(c) = e.counterpart {
                    let _ = write!(line, ", with {}", self.name_of(&c));
                }
                let _ = write!(
                    line,
                    "\n     purpose  {}",
                    e.purpose.map_or("-", |p| p.as_str())
                );
                if let Some(basis) = e.legal_basis {
                    let _ = write!(line, ", legal basis {basis}");
                }
                let _ = write!(
                    line,
                    "\n     emergency {}",
                    if e.emergency {
                        "yes (break-glass)"
                    } else {
                        "no"
                    }
                );
                let _ = writeln!(out, "{line}\n     event    #{} {}", e.index, e.transaction);
            }
        }
        let none: Vec<&AccessOrganisation> =
            self.answered().filter(|o| o.events.is_empty()).collect();
        if !none.is_empty() {
            let _ = writeln!(out, "\nAnswered, with no events about this person:");
            for org in none {
                let _ = writeln!(out, "   {} (OIN {})", org.source.name, org.source.oin);
            }
        }
        let silent: Vec<&AccessOrganisation> = self.silent().collect();
        if !silent.is_empty() {
            let _ = writeln!(
                out,
                "\nDid not answer (ask again later, or ask them directly):"
            );
            for org in silent {
                let _ = writeln!(
                    out,
                    "   {} (OIN {}): {}",
                    org.source.name, org.source.oin, org.source.reason
                );
            }
        }
        out
    }
}

/// `kring audit verify --checkpoint`: checks a saved cosigned checkpoint offline against the
/// log's pinned audit key and the witnesses' keys (cosignature/v1 vkeys, or their audit keys
/// as the directory pins them), requiring at least `min` cosignatures (all of the given
/// witnesses when `None`). Returns the report, or what failed, naming the key or witness.
pub fn verify_cosigned_checkpoint(
    note: &str,
    log_key: &str,
    witness_keys: &[String],
    min: Option<usize>,
) -> Result<String, String> {
    use crate::audit::cosignature::{WitnessKey, verify_cosigned};
    let log = crate::audit::NoteVerifier::parse(log_key).map_err(|e| format!("--log-key: {e}"))?;
    let mut witnesses = Vec::with_capacity(witness_keys.len());
    for (i, raw) in witness_keys.iter().enumerate() {
        witnesses
            .push(WitnessKey::parse(raw).map_err(|e| format!("--witness-key #{}: {e}", i + 1))?);
    }
    let min = min.unwrap_or(witnesses.len());
    if min > witnesses.len() {
        return Err(format!(
            "--min-cosignatures {min} is more than the {} witness key(s) given",
            witnesses.len()
        ));
    }
    let cosigned = verify_cosigned(note, &log, &witnesses, min).map_err(|e| e.to_string())?;
    let mut out = format!(
        "checkpoint of {} events of {}, signed by the log's key: verified\n",
        cosigned.checkpoint.size, cosigned.checkpoint.origin
    );
    for (name, timestamp) in &cosigned.cosigners {
        let at = i64::try_from(*timestamp)
            .map(|s| UnixMillis(s.saturating_mul(1000)).rfc3339())
            .unwrap_or_default();
        out.push_str(&format!("cosigned by {name} at {at}: verified\n"));
    }
    for name in &cosigned.missing {
        out.push_str(&format!("no cosignature by {name}\n"));
    }
    out.push_str(&format!(
        "{} of {} witness(es) cosigned, {min} required: ok",
        cosigned.cosigners.len(),
        witnesses.len()
    ));
    Ok(out)
}

/// One fork of a member's log, as the Audit API lists it.
pub fn render_fork(fork: &proto::Fork) -> String {
    let kind = short(
        proto::ForkKind::try_from(fork.kind)
            .ok()
            .map(|k| k.as_str_name()),
        "FORK_KIND_",
    );
    let size = |note: &str| {
        crate::audit::checkpoint::parse_unverified(note)
            .map(|c| c.size.to_string())
            .unwrap_or_else(|_| "?".into())
    };
    format!(
        "fork {id}  {kind}  log {log}  found by witness {witness} at {at}  seen size {seen}, presented size {presented}",
        id = fork.id,
        log = fork.log_oin,
        witness = fork.witness_oin,
        at = UnixMillis(fork.detected_at_unix_ms).rfc3339(),
        seen = size(&fork.seen_checkpoint),
        presented = size(&fork.presented_checkpoint),
    )
}
