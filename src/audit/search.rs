//! Searching the log for privacy officers: by time range, actor, action, subject, purpose and
//! outcome, in index order, a page at a time.

use crate::domain::{Action, AuditEvent, Outcome, PrincipalId, Pseudonym, Purpose, UnixMillis};
use crate::store::{Store, StoreError};

use super::event;

/// The most events one page examines; a short page with a token means "go on".
pub const SCAN_LIMIT: u64 = 100_000;

#[derive(Debug, Default, Clone)]
pub struct Query {
    pub from: Option<UnixMillis>,
    pub until: Option<UnixMillis>,
    pub actor: Option<PrincipalId>,
    pub action: Option<Action>,
    pub subject: Option<Pseudonym>,
    pub purpose: Option<Purpose>,
    pub outcome: Option<Outcome>,
    pub page_size: usize,
    /// The first index to look at (a page token).
    pub start: u64,
}

impl Query {
    fn matches(&self, e: &AuditEvent) -> bool {
        self.actor.as_ref().is_none_or(|a| *a == e.actor.user)
            && self.action.is_none_or(|a| a == e.action)
            && self.subject.is_none_or(|s| e.subjects.contains(&s))
            && self.purpose.is_none_or(|p| Some(p) == e.purpose)
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.from.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
    }
}

#[derive(Debug)]
pub struct Page {
    /// Matching events with their canonical bytes.
    pub events: Vec<(AuditEvent, Vec<u8>)>,
    /// The index to continue from, when there may be more.
    pub next: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit event {0} is unreadable: {1}")]
    Unreadable(u64, String),
}

fn read(store: &dyn Store, index: u64) -> Result<(AuditEvent, Vec<u8>), SearchError> {
    let bytes = store
        .audit_event(index)?
        .ok_or_else(|| SearchError::Unreadable(index, "missing".into()))?;
    let event = event::decode(&bytes).map_err(|e| SearchError::Unreadable(index, e.to_string()))?;
    Ok((event, bytes))
}

fn time_at(store: &dyn Store, index: u64) -> Result<i64, SearchError> {
    let bytes = store
        .audit_event(index)?
        .ok_or_else(|| SearchError::Unreadable(index, "missing".into()))?;
    event::index_and_time(&bytes)
        .map(|(_, t)| t)
        .ok_or_else(|| SearchError::Unreadable(index, "no index and time".into()))
}

/// The first index in `lo..hi` whose time is at or after `time` (times never decrease).
fn first_at_or_after(
    store: &dyn Store,
    mut lo: u64,
    mut hi: u64,
    time: i64,
) -> Result<u64, SearchError> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if time_at(store, mid)? < time {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Searches events `query.start..size`.
pub fn search(store: &dyn Store, size: u64, query: &Query) -> Result<Page, SearchError> {
    let mut start = query.start.min(size);
    let mut end = size;
    if let Some(from) = query.from {
        start = first_at_or_after(store, start, end, from.0)?;
    }
    if let Some(until) = query.until {
        end = first_at_or_after(store, start, end, until.0)?;
    }
    let mut events = Vec::new();
    let mut scanned = 0;
    let mut candidates: Box<dyn Iterator<Item = Result<u64, StoreError>>> = match &query.subject {
        Some(subject) => Box::new(store.audit_events_about(subject, start)),
        None => Box::new((start..end).map(Ok)),
    };
    while let Some(index) = candidates.next().transpose()? {
        if index >= end {
            break;
        }
        if events.len() == query.page_size || scanned == SCAN_LIMIT {
            return Ok(Page {
                events,
                next: Some(index),
            });
        }
        scanned += 1;
        let (event, bytes) = read(store, index)?;
        if query.matches(&event) {
            events.push((event, bytes));
        }
    }
    Ok(Page { events, next: None })
}

/// The events in `0..size` about any of `subjects` (a person's pseudonyms as this node may
/// have recorded them), in index order, at most `limit`; `true` with them when there were
/// more. Uses the subject index, so the cost follows the person's events, not the log.
pub fn about(
    store: &dyn Store,
    size: u64,
    subjects: &[Pseudonym],
    limit: usize,
) -> Result<(Vec<AuditEvent>, bool), SearchError> {
    let mut indices = std::collections::BTreeSet::new();
    for subject in subjects {
        for index in store.audit_events_about(subject, 0) {
            let index = index?;
            if index >= size {
                break;
            }
            indices.insert(index);
        }
    }
    let truncated = indices.len() > limit;
    let mut events = Vec::with_capacity(indices.len().min(limit));
    for index in indices.into_iter().take(limit) {
        let (event, _) = read(store, index)?;
        // The subject index is a convenience; the event itself must name the person.
        if subjects.iter().any(|s| event.subjects.contains(s)) {
            events.push(event);
        }
    }
    Ok((events, truncated))
}
