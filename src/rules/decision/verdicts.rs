//! The verdicts of a run: one decision per (student, user) pair from its best
//! link (README decision 5), the connections with no valid link, the form
//! creators, who carries the incomplete flag, and the run report, all sorted
//! so that row order never shows.

use smallvec::SmallVec;
use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::{tier_under, Engine, Found, JudgedRow, RowOutcome};
use crate::rules::verdict::codes::CodedReasons;
use crate::rules::{
    AccessTier, ConnectionAction, ConnectionCase, ConnectionDecision, DecisionReport, Decisions,
    UserRef,
};

/// The valid links of one (student, user) pair.
pub(super) struct PairLinks<'r, 'a> {
    /// The link that gives the highest tier, and step 2's answer for it.
    pub(super) best: &'r JudgedRow<'a>,
    pub(super) found: Found,
    /// Ascending, no duplicates (almost always one: a small vector, not a set).
    pub(super) guardian_ids: SmallVec<[i64; 2]>,
}

/// A valid link's row (an index into the engine's rows) and its owner.
struct OwnedLink {
    student_dcid: i64,
    user: UserRef,
    row: u32,
}

/// The row an owned link was made from (`row` indexes the engine's rows,
/// which the list was made from, so it is always there).
#[allow(clippy::indexing_slicing)]
fn row_at<'r, 'a>(rows: &'r [JudgedRow<'a>], link: &OwnedLink) -> &'r JudgedRow<'a> {
    &rows[link.row as usize]
}

/// The valid links by pair (see `Engine::links_by_pair`).
struct LinksByPair<'r, 'a> {
    engine: &'r Engine<'a>,
    owned: Vec<OwnedLink>,
}

impl<'r, 'a> LinksByPair<'r, 'a> {
    fn contains_key(&self, &(student_dcid, user): &(i64, UserRef)) -> bool {
        self.owned
            .binary_search_by(|l| (l.student_dcid, l.user).cmp(&(student_dcid, user)))
            .is_ok()
    }

    /// How many pairs have a valid link.
    fn pair_count(&self) -> usize {
        self.owned
            .chunk_by(|a, b| (a.student_dcid, a.user) == (b.student_dcid, b.user))
            .count()
    }

    /// Each pair with its links, in (student, user) order.
    fn pairs(&self) -> impl Iterator<Item = ((i64, UserRef), PairLinks<'r, 'a>)> + '_ {
        self.owned
            .chunk_by(|a, b| (a.student_dcid, a.user) == (b.student_dcid, b.user))
            .filter_map(|group| {
                let first = group.first()?;
                let best = row_at(&self.engine.rows, first);
                let (_, found) = self.engine.owner_of(best)?;
                let mut guardian_ids: SmallVec<[i64; 2]> = group
                    .iter()
                    .map(|l| row_at(&self.engine.rows, l).link.guardian_id)
                    .collect();
                guardian_ids.sort_unstable();
                guardian_ids.dedup();
                Some((
                    (first.student_dcid, first.user),
                    PairLinks {
                        best,
                        found,
                        guardian_ids,
                    },
                ))
            })
    }
}

/// What a caller keeps of each decision's verdicts (see `decide_keeping`).
pub struct Keep<'k> {
    /// Whether anybody will read the decision's verdicts; the others are
    /// not made (a linked pair's) or dropped as soon as made.
    pub verdicts_of: &'k dyn Fn(&ConnectionDecision) -> bool,
    /// Keep the verdicts as the audit's codes (`ConnectionDecision::coded`)
    /// rather than as structures: a run, which writes them to the audit and
    /// shows no sentence, holds a few dozen bytes a connection, not a few
    /// hundred. A decision the codes cannot say exactly keeps its verdicts.
    pub as_codes: bool,
    /// Whether the caller already holds what the decision says (the stored
    /// connection says the same): such a decision is counted in
    /// `Decisions::unchanged` and not kept, so a quiet night holds none.
    pub unchanged: &'k dyn Fn(&ConnectionDecision) -> bool,
}

/// How many decisions wait to have their verdicts coded (`Keep::as_codes`).
/// Coding, with its reading back, is about a third of a first sync's plan,
/// and each decision's is its own work: a batch is coded on two threads
/// (on a one-core machine they take turns, at the cost of a thread a
/// batch; the rules ask the system nothing), and only a batch's verdicts
/// are ever held uncoded.
const CODE_BATCH: usize = 4096;

/// The decisions being made, and what is kept of them (see `Keep`).
struct Kept<'k> {
    keep: &'k Keep<'k>,
    connections: Vec<ConnectionDecision>,
    unchanged: u64,
    /// Users of a returning parent's connection (kept or not), unsorted.
    incomplete: Vec<i64>,
    /// Kept decisions whose verdicts are still to be coded (`CODE_BATCH`).
    to_code: Vec<ConnectionDecision>,
}

impl<'k> Kept<'k> {
    fn new(keep: &'k Keep<'k>, most: usize) -> Kept<'k> {
        Kept {
            keep,
            connections: Vec::with_capacity(most),
            unchanged: 0,
            incomplete: Vec::new(),
            to_code: Vec::new(),
        }
    }

    fn push(&mut self, mut decision: ConnectionDecision) {
        if let (ConnectionCase::UnlinkedReturningParent, UserRef::Existing(u)) =
            (decision.case, decision.user)
        {
            self.incomplete.push(u);
        }
        if (self.keep.unchanged)(&decision) {
            self.unchanged += 1;
            return;
        }
        if !(self.keep.verdicts_of)(&decision) {
            decision.verdicts = Vec::new();
        } else if self.keep.as_codes {
            self.to_code.push(decision);
            if self.to_code.len() >= CODE_BATCH {
                self.code_waiting();
            }
            return;
        } else {
            decision.verdicts.shrink_to_fit();
        }
        self.connections.push(decision);
    }

    /// Codes the waiting decisions' verdicts and keeps the decisions (their
    /// order does not matter: the kept decisions are sorted by pair).
    fn code_waiting(&mut self) {
        let waiting = &mut self.to_code;
        if waiting.len() >= CODE_BATCH / 4 {
            let half = waiting.len() / 2;
            let (first, second) = waiting.split_at_mut(half);
            std::thread::scope(|s| {
                s.spawn(|| second.iter_mut().for_each(code));
                first.iter_mut().for_each(code);
            });
        } else {
            waiting.iter_mut().for_each(code);
        }
        self.connections.append(waiting);
    }
}

impl Engine<'_> {
    pub(crate) fn decisions(&self, keep: &Keep<'_>) -> Decisions {
        Decisions {
            new_users: self.accounts.new_users.clone(),
            ..self.decisions_but_new_users(keep)
        }
    }

    /// `decisions` with `new_users` left empty (the caller moves them out
    /// of the engine it is done with).
    pub(super) fn decisions_but_new_users<'k>(&self, keep: &'k Keep<'k>) -> Decisions {
        let mut report = DecisionReport::default();
        let email_differs = self.report_rows(&mut report);
        let links = self.links_by_pair();

        // Room for every decision up front (pages never written cost no
        // memory): growing by doubling would briefly hold two copies.
        let most = links.pair_count() + self.index.connections.len() + self.index.forms.len();
        let mut kept = Kept::new(keep, most);
        for ((student_dcid, user), pair) in links.pairs() {
            let decision = self.linked_connection(student_dcid, user, &pair, keep);
            kept.push(decision);
        }
        self.connections_without_link(&links, &mut kept, &mut report);
        self.form_creators_without_connection(&links, &mut kept, &mut report);
        kept.code_waiting();
        let Kept {
            mut connections,
            unchanged,
            incomplete: mut incomplete_users,
            ..
        } = kept;
        // One decision per pair: no ties, so no stable sort's scratch copy.
        connections.sort_unstable_by_key(|c| (c.student_dcid, c.user));
        connections.shrink_to_fit();
        incomplete_users.sort_unstable();
        incomplete_users.dedup();

        report.email_differs = email_differs.into_iter().collect();
        sort_dedup(&mut report.rows_for_unknown_students);
        sort_dedup(&mut report.links_without_matching_contact);
        sort_dedup(&mut report.unverified_email_matches);
        sort_dedup(&mut report.accounts_without_email);
        sort_dedup(&mut report.orphaned);
        sort_dedup(&mut report.form_creator_only);

        Decisions {
            connections,
            new_users: Vec::new(),
            guardian_links: self
                .accounts
                .guardian_links
                .iter()
                .map(|(&u, &g)| (u, g))
                .collect(),
            incomplete_users,
            unchanged,
            report,
        }
    }

    /// What the report lists about single rows; returns the linked users
    /// whose login differs from the account's email.
    fn report_rows(&self, report: &mut DecisionReport) -> BTreeSet<(i64, String, String)> {
        let mut email_differs = BTreeSet::new();
        for judged in &self.rows {
            let gid = judged.link.guardian_id;
            let dcid = judged.link.student_dcid;
            let email = judged.email_or_empty();
            match (&judged.outcome, judged.found) {
                (RowOutcome::WebAccessAccount, _) => report.web_access_rows_ignored += 1,
                (RowOutcome::StudentNotInSyncSet, _) => {
                    report.rows_for_unknown_students.push((gid, dcid))
                }
                (RowOutcome::NoUsableEmail, _) => report.accounts_without_email.push((gid, dcid)),
                (RowOutcome::NoMatchingContact, _) => {
                    report
                        .links_without_matching_contact
                        .push((gid, dcid, email.to_string()))
                }
                (RowOutcome::Valid { .. }, Some(Found::LinkedAccount(u))) => {
                    if let Some(user) = self.index.users.get(&u) {
                        if user.email.as_deref() != Some(email) {
                            email_differs.insert((u, user.facts.email.clone(), email.to_string()));
                        }
                    }
                }
                (RowOutcome::Valid { .. }, Some(Found::UnverifiedOnly(_))) => report
                    .unverified_email_matches
                    .push((gid, dcid, email.to_string())),
                (RowOutcome::Valid { .. }, _) => {}
            }
        }
        email_differs
    }

    /// README decision 5: one connection per (student, user), from its best link.
    /// Every valid link with its owner, grouped by (student, user) and,
    /// within a pair, best link first (README decision 5): a sorted list of
    /// 32-byte entries rather than a hash table of pairs.
    fn links_by_pair(&self) -> LinksByPair<'_, '_> {
        let mut owned: Vec<OwnedLink> = self
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, judged)| {
                let (user, _) = self.owner_of(judged)?;
                Some(OwnedLink {
                    student_dcid: judged.link.student_dcid,
                    user,
                    row: u32::try_from(i).ok()?,
                })
            })
            .collect();
        owned.sort_unstable_by(|a, b| {
            (a.student_dcid, a.user)
                .cmp(&(b.student_dcid, b.user))
                .then_with(|| link_rank(self.row(a)).cmp(&link_rank(self.row(b))))
                .then(a.row.cmp(&b.row))
        });
        LinksByPair {
            engine: self,
            owned,
        }
    }

    fn row(&self, link: &OwnedLink) -> &JudgedRow<'_> {
        row_at(&self.rows, link)
    }

    fn connections_without_link(
        &self,
        links: &LinksByPair,
        kept: &mut Kept<'_>,
        report: &mut DecisionReport,
    ) {
        for ((student_dcid, user_id), connection) in self.index.connections.iter() {
            if !self.index.students.contains_key(&student_dcid)
                || links.contains_key(&(student_dcid, UserRef::Existing(user_id)))
            {
                continue;
            }
            let decision = self.unlinked_connection(connection);
            if decision.orphaned {
                report.orphaned.push((student_dcid, user_id));
            }
            kept.push(decision);
        }
    }

    /// Form creators with neither a connection nor a valid link: case C for
    /// a returning parent, `form_creator_only` for a new family.
    fn form_creators_without_connection(
        &self,
        links: &LinksByPair,
        kept: &mut Kept<'_>,
        report: &mut DecisionReport,
    ) {
        let mut form_pairs: Vec<(i64, i64)> = self.index.forms.iter().copied().collect();
        form_pairs.sort_unstable();
        for (student_dcid, user_id) in form_pairs {
            if !self.index.students.contains_key(&student_dcid)
                || self
                    .index
                    .connections
                    .contains_key(&(student_dcid, user_id))
                || links.contains_key(&(student_dcid, UserRef::Existing(user_id)))
            {
                continue;
            }
            match self.parent_portal_account(user_id) {
                Some(account) => kept.push(self.returning_parent(
                    student_dcid,
                    user_id,
                    account,
                    ConnectionAction::Create,
                )),
                None => report.form_creator_only.push((student_dcid, user_id)),
            }
        }
    }
}

/// Orders the links of one pair: highest tier first, then the lowest
/// guardian id, so the chosen link never depends on row order.
fn link_rank<'r>(judged: &'r JudgedRow<'_>) -> (Reverse<AccessTier>, i64, &'r str) {
    (
        Reverse(tier_under(judged.limits())),
        judged.link.guardian_id,
        judged.email_or_empty(),
    )
}

/// The decision's verdicts as the audit's codes; a decision the codes
/// cannot say exactly keeps its verdicts (see `Keep::as_codes`).
fn code(decision: &mut ConnectionDecision) {
    decision.coded = CodedReasons::encode(
        &decision.audit_keys(),
        decision.guardian_id,
        &decision.limits,
        &decision.verdicts,
    );
    if decision.coded.is_some() {
        decision.verdicts = Vec::new();
    } else {
        decision.verdicts.shrink_to_fit();
    }
}

fn sort_dedup<T: Ord>(list: &mut Vec<T>) {
    list.sort_unstable();
    list.dedup();
}
