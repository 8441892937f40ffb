//! Reconciliation: every exchange between two nodes is recorded at both ends under one
//! transaction id. Given the logs of several nodes, report each exchange that one node
//! recorded with a counterpart among them and the counterpart did not.
//!
//! Left out on purpose: refusals by the peer gate (the refused caller may not be a node at
//! all), pseudonym evaluations (the service records counts, not exchanges about a person),
//! directory updates (no counterpart), and the index's own retention: its expiry of a pointer,
//! the archiving of a pointer (recorded with the retraction or expiry that caused it, which is
//! reconciled or left out in its own right) and the end of an archived pointer's five years.
//! Each names the pointer's organisation, which takes no part in it.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{Action, AuditEvent, Oin, TransactionId, UnixMillis};

/// An event that names a counterpart whose log does not name it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneSided {
    pub transaction: TransactionId,
    pub logged_by: Oin,
    pub counterpart: Oin,
    pub action: Action,
    pub index: u64,
    pub time: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciliation {
    pub nodes: usize,
    /// Events naming a counterpart among the nodes reconciled.
    pub exchanges: usize,
    pub one_sided: Vec<OneSided>,
}

impl Reconciliation {
    pub fn clean(&self) -> bool {
        self.one_sided.is_empty()
    }
}

fn reconciled(action: Action) -> bool {
    !matches!(
        action,
        Action::PeerRefused
            | Action::PseudonymEvaluate
            | Action::IndexKeyShare
            | Action::IndexEpochRetire
            | Action::DirectoryAccept
            | Action::PointerExpire
            | Action::PointerArchive
            | Action::ArchiveExpire
    )
}

/// Reconciles the logs of the given nodes, each identified by its OIN, over events with time
/// in `from..until` (a counterpart's matching event may lie outside the window).
pub fn reconcile(
    logs: &[(Oin, Vec<AuditEvent>)],
    from: Option<UnixMillis>,
    until: Option<UnixMillis>,
) -> Reconciliation {
    let nodes: BTreeSet<Oin> = logs.iter().map(|(oin, _)| *oin).collect();
    let mut seen: BTreeMap<Oin, BTreeSet<(TransactionId, Oin)>> = BTreeMap::new();
    for (oin, events) in logs {
        let pairs = seen.entry(*oin).or_default();
        for event in events {
            if let Some(counterpart) = event.counterpart {
                pairs.insert((event.transaction, counterpart));
            }
        }
    }
    let mut report = Reconciliation {
        nodes: nodes.len(),
        ..Reconciliation::default()
    };
    for (oin, events) in logs {
        for event in events {
            let Some(counterpart) = event.counterpart else {
                continue;
            };
            if !nodes.contains(&counterpart) || !reconciled(event.action) {
                continue;
            }
            if from.is_some_and(|t| event.time < t) || until.is_some_and(|t| event.time >= t) {
                continue;
            }
            report.exchanges += 1;
            let answered = seen
                .get(&counterpart)
                .is_some_and(|pairs| pairs.contains(&(event.transaction, *oin)));
            if !answered {
                report.one_sided.push(OneSided {
                    transaction: event.transaction,
                    logged_by: *oin,
                    counterpart,
                    action: event.action,
                    index: event.index,
                    time: event.time,
                });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, EventDraft, PrincipalId};

    fn oin(n: u8) -> Oin {
        Oin::parse(&format!("000000018200000{n:05}")).unwrap()
    }

    fn event(
        at: Oin,
        counterpart: Option<Oin>,
        tx: TransactionId,
        action: Action,
        index: u64,
    ) -> AuditEvent {
        let actor = Actor {
            user: PrincipalId::system("test"),
            role: None,
            organisation: at,
        };
        let mut draft = EventDraft::new(tx, actor, action);
        draft.counterpart = counterpart;
        draft.at(index, UnixMillis(1000 + index as i64))
    }

    #[test]
    fn exchanges_recorded_at_both_ends_are_clean_and_a_missing_end_is_named() {
        let (a, b, c) = (oin(1), oin(2), oin(3));
        let t1 = TransactionId::new();
        let t2 = TransactionId::new();
        let t3 = TransactionId::new();
        let logs = vec![
            (
                a,
                vec![
                    event(a, Some(b), t1, Action::SignalsFetch, 0),
                    event(a, Some(b), t2, Action::SignalsFetch, 1),
                    event(a, None, t2, Action::LinkedSignals, 2),
                    // A counterpart whose log is not here is not judged.
                    event(a, Some(oin(9)), t3, Action::SignalsFetch, 3),
                    // Gate refusals are not exchanges.
                    event(a, Some(c), t3, Action::PeerRefused, 4),
                ],
            ),
            (b, vec![event(b, Some(a), t1, Action::SignalsFetch, 0)]),
            (c, vec![]),
        ];
        let report = reconcile(&logs, None, None);
        assert_eq!(report.nodes, 3);
        assert_eq!(report.exchanges, 3);
        assert_eq!(report.one_sided.len(), 1);
        let missing = &report.one_sided[0];
        assert_eq!(
            (missing.transaction, missing.logged_by, missing.counterpart),
            (t2, a, b)
        );
        assert!(!report.clean());

        let window = reconcile(&logs, Some(UnixMillis(1001)), None);
        assert_eq!(window.exchanges, 1);
    }
}
