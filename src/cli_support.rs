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
