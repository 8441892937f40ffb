//! Renderings for people of the federation answers that `cli_support` does not cover: regie,
//! waakvlam follow-ups, received meldingen and break-glass review items. Pseudonyms are shown
//! shortened; they identify a person only within the federation, and never a BSN.

use crate::api::proto;
use crate::domain::UnixMillis;

/// A proto enum's name without its type prefix, lowercase: `REVIEW_OUTCOME_JUSTIFIED` ->
/// `justified`; empty for the unspecified value.
fn short(name: Option<&str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_lowercase())
        .filter(|n| n != "unspecified")
        .unwrap_or_default()
}

fn time(millis: i64) -> String {
    UnixMillis(millis).rfc3339()
}

fn pseudonym(bytes: &[u8]) -> String {
    let text = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    format!("{text:.10}…")
}

fn contact(contact: Option<&proto::ContactPoint>) -> String {
    contact
        .map(|c| {
            [c.name.as_str(), c.phone.as_str(), c.email.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Who coordinates, or that nobody does.
pub fn regie(regie: Option<&proto::Regie>) -> String {
    match regie {
        Some(r) => {
            let holder = if r.holder_name.is_empty() {
                r.holder_oin.clone()
            } else {
                format!("{} ({})", r.holder_name, r.holder_oin)
            };
            format!(
                "regie: {holder} coordinates, since {}",
                time(r.since_unix_ms)
            )
        }
        None => "regie: nobody coordinates".into(),
    }
}

/// One household in waakvlam follow-up.
pub fn waakvlam(entry: &proto::WaakvlamEntry) -> String {
    format!(
        "{id}  coordinator {coordinator}  {persons} person(s)  from {from} until {until}  next check-in {next}  alerts {alerts}",
        id = entry.id,
        coordinator = entry.coordinator_oin,
        persons = entry.persons.len(),
        from = time(entry.started_unix_ms),
        until = time(entry.until_unix_ms),
        next = time(entry.next_check_in_unix_ms),
        alerts = entry.alerts,
    )
}

/// One melding received by Veilig Thuis.
pub fn melding(received: &proto::ReceivedMelding) -> String {
    let from = if received.from_name.is_empty() {
        received.from_oin.clone()
    } else {
        format!("{} ({})", received.from_name, received.from_oin)
    };
    let Some(m) = &received.melding else {
        return format!(
            "{}  {}  from {from}: no melding content",
            received.message_id,
            time(received.received_unix_ms)
        );
    };
    format!(
        "{id}  {at}  from {from}  subject {subject}  {category} / {severity}  registered {registered}  reported by {by}  contact {contact}",
        id = received.message_id,
        at = time(received.received_unix_ms),
        subject = pseudonym(&m.subject),
        category = short(
            proto::Category::try_from(m.category)
                .ok()
                .map(|c| c.as_str_name()),
            "CATEGORY_"
        ),
        severity = short(
            proto::Severity::try_from(m.severity)
                .ok()
                .map(|c| c.as_str_name()),
            "SEVERITY_"
        ),
        registered = time(m.registered_at_unix_ms),
        by = m.reported_by,
        contact = contact(m.contact_point.as_ref()),
    )
}

/// One break-glass disclosure of this organisation's data, and its review if there is one.
pub fn break_glass_item(item: &proto::BreakGlassItem) -> String {
    let role = short(
        proto::Role::try_from(item.requester_role)
            .ok()
            .map(|r| r.as_str_name()),
        "ROLE_",
    );
    let reason = short(
        proto::BreakGlassReason::try_from(item.reason)
            .ok()
            .map(|r| r.as_str_name()),
        "BREAK_GLASS_REASON_",
    );
    let outcome = short(
        proto::ReviewOutcome::try_from(item.outcome)
            .ok()
            .map(|o| o.as_str_name()),
        "REVIEW_OUTCOME_",
    );
    let review = if outcome.is_empty() {
        "AWAITING REVIEW".to_owned()
    } else {
        format!(
            "reviewed: {outcome} ({}) by {} at {}",
            short(
                proto::ReviewReason::try_from(item.review_reason)
                    .ok()
                    .map(|r| r.as_str_name()),
                "REVIEW_REASON_"
            ),
            item.reviewed_by,
            time(item.reviewed_at_unix_ms)
        )
    };
    format!(
        "{id}  {at}  {reason}  by {name} ({oin}), {user}{role}  {signals} signal(s)  transaction {tx}  {review}",
        id = item.id,
        at = time(item.at_unix_ms),
        name = item.requester_name,
        oin = item.requester_oin,
        user = item.requester_user,
        role = if role.is_empty() {
            String::new()
        } else {
            format!(" as {role}")
        },
        signals = item.signal_ids.len(),
        tx = item.transaction_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_break_glass_item_reads_as_awaiting_until_it_is_reviewed() {
        let mut item = proto::BreakGlassItem {
            id: "01a2".into(),
            requester_name: "Veilig Thuis".into(),
            requester_oin: "00000001820000004000".into(),
            requester_user: "l.smit".into(),
            requester_role: proto::Role::Analyst as i32,
            reason: proto::BreakGlassReason::AcuteDangerChild as i32,
            signal_ids: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        let text = break_glass_item(&item);
        assert!(text.contains("acute_danger_child"), "{text}");
        assert!(text.contains("l.smit as analyst"), "{text}");
        assert!(text.contains("2 signal(s)"), "{text}");
        assert!(text.ends_with("AWAITING REVIEW"), "{text}");
        item.outcome = proto::ReviewOutcome::Unjustified as i32;
        item.review_reason = proto::ReviewReason::NoAcuteDanger as i32;
        item.reviewed_by = "fg".into();
        let text = break_glass_item(&item);
        assert!(
            text.contains("reviewed: unjustified (no_acute_danger) by fg"),
            "{text}"
        );
    }

    #[test]
    fn regie_names_the_holder_or_says_nobody() {
        assert_eq!(regie(None), "regie: nobody coordinates");
        let held = proto::Regie {
            holder_oin: "00000001820000006000".into(),
            holder_name: String::new(),
            since_unix_ms: 0,
        };
        assert!(regie(Some(&held)).starts_with("regie: 00000001820000006000 coordinates"));
    }
}
