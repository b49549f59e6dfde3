//! The connections a plan writes: each decision of the rules set against
//! the stored connection (if any) becomes a create, an update or a removal,
//! or nothing when the stored one already says what was decided.

use super::changes::{ConnectionChange, ConnectionChangeKind};
use crate::rules::{
    ConnectionAction, ConnectionCase, ConnectionDecision, Decisions, Origin, UserRef,
};
use crate::store::state::ConnectionRow;

/// The stored connections by (student, user).
pub(super) struct Existing<'s>(Vec<&'s ConnectionRow>);

impl<'s> Existing<'s> {
    /// The stored connections by (student, user), a pair being unique in
    /// the table: one reference each, looked up by binary search.
    pub(super) fn of(stored: &'s [ConnectionRow]) -> Existing<'s> {
        let mut by_pair: Vec<&ConnectionRow> = stored.iter().collect();
        by_pair.sort_unstable_by_key(|c| (c.student_dcid, c.user_id));
        Existing(by_pair)
    }

    fn before(&self, decision: &ConnectionDecision) -> Option<&'s ConnectionRow> {
        let UserRef::Existing(id) = decision.user else {
            return None;
        };
        let key = (decision.student_dcid, id);
        let at = self
            .0
            .binary_search_by_key(&key, |c| (c.student_dcid, c.user_id))
            .ok()?;
        self.0.get(at).copied()
    }

    /// Whether the decision is written (created, updated or removed): only
    /// then are its verdicts read (by the audit and the plan's details).
    /// The stored connection already says what was decided.
    pub(super) fn is_unchanged(&self, decision: &ConnectionDecision) -> bool {
        matches!(
            write_needed(decision, self.before(decision)),
            WriteNeeded::Unchanged
        )
    }

    pub(super) fn is_written(&self, decision: &ConnectionDecision) -> bool {
        matches!(
            write_needed(decision, self.before(decision)),
            WriteNeeded::Change(_)
        )
    }
}

/// The connection changes, and how many decided connections need no write.
/// Each decision moves into its change (no copy of every verdict's prose).
pub(super) fn connection_changes(
    existing: &Existing<'_>,
    d: &mut Decisions,
) -> (Vec<ConnectionChange>, u64) {
    // Sized first: growing a list of a first sync's 178,000 changes by
    // doubling would briefly hold two copies of it.
    let written = d
        .connections
        .iter()
        .filter(|c| matches!(write_needed(c, existing.before(c)), WriteNeeded::Change(_)))
        .count();
    let mut changes = Vec::with_capacity(written);
    // The rules counted the decisions they did not keep (`Keep::unchanged`).
    let mut unchanged = d.unchanged;
    for decision in std::mem::take(&mut d.connections) {
        let before = existing.before(&decision);
        let kind = match write_needed(&decision, before) {
            WriteNeeded::Change(kind) => kind,
            WriteNeeded::Unchanged => {
                unchanged += 1;
                continue;
            }
            WriteNeeded::NothingToRemove => continue,
        };
        changes.push(ConnectionChange {
            kind,
            before: before.cloned().map(Box::new),
            user: decision.user,
            origin: origin(&decision, before),
            decision,
        });
    }
    (changes, unchanged)
}

/// What one decided connection needs from the run.
enum WriteNeeded {
    Change(ConnectionChangeKind),
    /// The stored connection already says what was decided.
    Unchanged,
    /// A removal of a connection that does not exist.
    NothingToRemove,
}

fn write_needed(dec: &ConnectionDecision, before: Option<&ConnectionRow>) -> WriteNeeded {
    match (dec.action, before) {
        (ConnectionAction::Remove, Some(_)) => WriteNeeded::Change(ConnectionChangeKind::Remove),
        (ConnectionAction::Remove, None) => WriteNeeded::NothingToRemove,
        (_, None) => WriteNeeded::Change(ConnectionChangeKind::Create),
        (_, Some(b)) if stored_as_decided(dec, b) => WriteNeeded::Unchanged,
        (_, Some(_)) => WriteNeeded::Change(ConnectionChangeKind::Update),
    }
}

/// Whether the stored connection already holds every decided field.
fn stored_as_decided(dec: &ConnectionDecision, b: &ConnectionRow) -> bool {
    let mut stored_limits = b.limits.clone();
    stored_limits.sort();
    b.tier == dec.tier
        && same_case(b.case, dec.case)
        && stored_limits == dec.limits
        && b.present_in_powerschool == dec.present_in_powerschool
        && b.powerschool_guardian_id == guardian_id_after(dec, Some(b))
}

/// A connection keeps the origin it was made with; a new one takes the one
/// its case gives it.
fn origin(dec: &ConnectionDecision, before: Option<&ConnectionRow>) -> Origin {
    before.map_or_else(|| dec.case.origin_when_created(), |b| b.origin)
}

/// Whether the stored case already says what the rules decided, reading a
/// case a past run created as the next night sees it.
fn same_case(stored: Option<ConnectionCase>, decided: ConnectionCase) -> bool {
    stored.is_some_and(|s| s.on_a_later_night() == decided.on_a_later_night())
}

/// The PowerSchool account a connection is linked to after the run: the one
/// backing it now, or the last one it had when its link is gone (kept for
/// the orphaned report and `explain`).
pub fn guardian_id_after(dec: &ConnectionDecision, before: Option<&ConnectionRow>) -> Option<i64> {
    if dec.present_in_powerschool {
        dec.guardian_id
    } else {
        before.and_then(|b| b.powerschool_guardian_id)
    }
}
