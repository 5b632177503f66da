//! A linearizability checker for a key-value store's history, one register
//! per key.
//!
//! Model: every key is an atomic register that starts absent; a write sets
//! it, a read returns it. Linearizability is compositional, so a history is
//! linearizable iff each key's sub-history is, and each key is checked alone.
//! Every write must write a value unique on its key.
//!
//! Algorithm: Wing & Gong's search with Lowe's reductions. Reads whose
//! outcome is unknown are dropped; a write whose outcome is unknown is dropped
//! if no read returned its value, and otherwise completes when the first read
//! of its value does. Cheap checks catch reads of values never written, or
//! written only after the read completed. Each key's history, sorted by
//! invocation, is split at quiescent points (all ops invoked so far have
//! completed), carrying the set of possible states from segment to segment.
//! Within a segment an op may go next iff it was invoked no later than the
//! earliest completion among the ops not yet linearized (`a` precedes `b` iff
//! `a` completed strictly before `b` was invoked). The search expands partial
//! linearizations in order of how many ops they hold, each (linearized set,
//! state) once: a memoized search with no recursion, whose memory is bounded by
//! the concurrency, not by the segment's length, and whose last nonempty level
//! is the first point where no linearization exists, which the report shows.
//! Branching is cut without losing any linearization (the argument is at
//! `Segment::successors`): a read that matches the state goes at once; a
//! write goes only if it completes first or a read of its value can follow;
//! writes whose value nobody read go along just before the next write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A put of this value id (unique across the history).
    Write(u64),
    /// A get that returned this value id, or `None` when the key was absent.
    Read(Option<u64>),
}

/// One operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The key operated on.
    pub key: u64,
    /// What the operation did.
    pub action: Action,
    /// When the client invoked it, in nanoseconds on one monotonic clock.
    pub invoked: u64,
    /// When the client saw it complete; `None` when the outcome is unknown
    /// (timed out, connection lost): such a write may have taken effect at
    /// any time after its invocation, or never; such a read tells nothing.
    pub completed: Option<u64>,
    /// The client that issued it.
    pub client: u64,
}

/// Why a history is not linearizable: the key, the operations around the
/// first point where no linearization exists, and a reason.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The key whose sub-history is not linearizable.
    pub key: u64,
    /// The operations involved, sorted by invocation.
    pub ops: Vec<Op>,
    /// What went wrong, in words.
    pub reason: String,
}

/// What a successful check looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Distinct keys in the history.
    pub keys: usize,
    /// Operations that took part in the search (not the reads with an
    /// unknown outcome, nor the writes counted in `dropped_unknown`).
    pub ops: usize,
    /// Writes with an unknown outcome that no read observed, dropped because
    /// they can always be linearized after everything else.
    pub dropped_unknown: usize,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history is not linearizable on key {}", self.key)?;
        writeln!(f, "  reason: {}", self.reason)?;
        writeln!(f, "  operations ({}), by invocation:", self.ops.len())?;
        for op in &self.ops {
            let action = match op.action {
                Action::Write(v) => format!("write {v}"),
                Action::Read(v) => format!("read {}", value_text(v)),
            };
            let completed = op.completed.map_or("unknown".into(), |c| c.to_string());
            let (client, invoked) = (op.client, op.invoked);
            writeln!(
                f,
                "    client {client:>3}: {action:<14} invoked {invoked:>12}  completed {completed}"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Checks that `ops` is linearizable, each key as a register that starts
/// absent. Returns what was checked, or the first key found not to be.
pub fn check(ops: &[Op]) -> Result<Summary, Violation> {
    let mut by_key: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_key.entry(op.key).or_default().push(i);
    }
    let keys = by_key.len();
    let mut summary = Summary {
        keys,
        ..Summary::default()
    };
    for (&key, idx) in &by_key {
        let key_ops = KeyOps { key, ops };
        let (hist, writers) = key_ops.prepare(idx, &mut summary)?;
        summary.ops += hist.len();
        key_ops.search(hist, &writers)?;
    }
    Ok(summary)
}

/// An op as the search sees it: its index in the input and a known interval.
#[derive(Clone, Copy, Debug)]
struct Timed {
    orig: usize,
    invoked: u64,
    completed: u64,
    /// A write whose value some read returned.
    observed: bool,
}

/// The ops of one key, as indexes into the whole history.
struct KeyOps<'a> {
    key: u64,
    ops: &'a [Op],
}

impl KeyOps<'_> {
    fn violation(&self, mut idx: Vec<usize>, reason: String) -> Violation {
        idx.sort_by_key(|&i| (self.ops[i].invoked, i));
        idx.dedup();
        let ops = idx.iter().map(|&i| self.ops[i].clone()).collect();
        Violation {
            key: self.key,
            ops,
            reason,
        }
    }

    /// Validates, makes the cheap checks and the reductions; returns the ops
    /// to search and which op wrote each value.
    fn prepare(
        &self,
        idx: &[usize],
        summary: &mut Summary,
    ) -> Result<(Vec<Timed>, HashMap<u64, usize>), Violation> {
        let mut writers = HashMap::new();
        for &i in idx {
            let op = &self.ops[i];
            if op.completed.is_some_and(|c| c < op.invoked) {
                let why = "an operation completed before it was invoked".to_string();
                return Err(self.violation(vec![i], why));
            }
            if let Action::Write(v) = op.action {
                if let Some(j) = writers.insert(v, i) {
                    let why =
                        format!("value {v} is written twice; the checker needs unique values");
                    return Err(self.violation(vec![j, i], why));
                }
            }
        }
        // The earliest completion among the known reads of each value.
        let mut first_read: HashMap<u64, u64> = HashMap::new();
        for &i in idx {
            let op = &self.ops[i];
            let (Action::Read(Some(v)), Some(c)) = (&op.action, op.completed) else {
                continue;
            };
            let Some(&w) = writers.get(v) else {
                let why = format!("a read returned value {v}, which no write on this key wrote");
                return Err(self.violation(vec![i], why));
            };
            if c < self.ops[w].invoked {
                let invoked = self.ops[w].invoked;
                let why = format!(
                    "a read returned value {v} but completed at {c}, before the write of {v} was \
                     invoked at {invoked}"
                );
                return Err(self.violation(vec![w, i], why));
            }
            let first = first_read.entry(*v).or_insert(c);
            *first = (*first).min(c);
        }
        let mut hist = Vec::with_capacity(idx.len());
        for &i in idx {
            let (op, mut observed) = (&self.ops[i], false);
            if let Action::Write(v) = op.action {
                observed = first_read.contains_key(&v);
            }
            let completed = match (&op.action, op.completed) {
                (_, Some(c)) => c,
                (Action::Read(_), None) => continue,
                (Action::Write(v), None) if observed => first_read[v],
                (Action::Write(_), None) => {
                    summary.dropped_unknown += 1;
                    continue;
                }
            };
            let invoked = op.invoked;
            hist.push(Timed {
                orig: i,
                invoked,
                completed,
                observed,
            });
        }
        Ok((hist, writers))
    }

    /// Splits the key's history at quiescent points and searches each
    /// segment from every state the previous one may have ended in.
    fn search(&self, mut hist: Vec<Timed>, writers: &HashMap<u64, usize>) -> Result<(), Violation> {
        hist.sort_by_key(|t| (t.invoked, t.completed, t.orig));
        let mut states = vec![None];
        let (mut start, mut last_completion) = (0, 0);
        for i in 0..=hist.len() {
            let quiescent = i == hist.len() || last_completion < hist[i].invoked;
            if i > start && quiescent {
                states = self.search_segment(&hist[start..i], &states, writers)?;
                start = i;
            }
            if let Some(t) = hist.get(i) {
                last_completion = last_completion.max(t.completed);
            }
        }
        Ok(())
    }

    /// The states the register may hold after `seg` (up to states that
    /// allow no more), starting from any of `starts`; a violation if none.
    fn search_segment(
        &self,
        seg: &[Timed],
        starts: &[Option<u64>],
        writers: &HashMap<u64, usize>,
    ) -> Result<Vec<Option<u64>>, Violation> {
        let mut suffix_min = vec![u64::MAX; seg.len() + 1];
        for i in (0..seg.len()).rev() {
            suffix_min[i] = suffix_min[i + 1].min(seg[i].completed);
        }
        let seg = Segment {
            ops: self.ops,
            seg,
            suffix_min,
        };
        // Partial linearizations by how many ops they hold, fewest first, so
        // each is met once.
        let mut levels: BTreeMap<usize, HashSet<Config>> = BTreeMap::new();
        let start = |state| Config {
            base: 0,
            words: Vec::new(),
            state,
        };
        levels.insert(0, starts.iter().map(|&s| start(s)).collect());
        let finals = loop {
            let (depth, level) = levels.pop_first().expect("a level");
            if depth == seg.seg.len() {
                break level;
            }
            for config in &level {
                seg.successors(config, |next| {
                    levels.entry(next.len()).or_default().insert(next);
                });
            }
            if levels.is_empty() {
                return Err(self.stuck(&seg, depth, starts, level, writers));
            }
        };
        let mut finals: Vec<Option<u64>> = finals.into_iter().map(|c| c.state).collect();
        finals.sort_unstable();
        finals.dedup();
        Ok(finals)
    }

    /// The report for a segment whose partial linearizations of `depth` ops
    /// (`level`) all have no next op: the ops that might go next, the ops
    /// linearized last, and the writes of the values involved.
    fn stuck(
        &self,
        seg: &Segment<'_>,
        depth: usize,
        starts: &[Option<u64>],
        level: HashSet<Config>,
        writers: &HashMap<u64, usize>,
    ) -> Violation {
        let mut level: Vec<Config> = level.into_iter().collect();
        level.sort_unstable();
        let mut states: Vec<Option<u64>> = level.iter().map(|c| c.state).collect();
        states.sort_unstable();
        states.dedup();
        let mut next: Vec<usize> = level.iter().flat_map(|c| seg.candidates(c).0).collect();
        next.sort_unstable();
        next.dedup();
        next.truncate(16);
        let mut recent: Vec<usize> = (0..seg.seg.len()).filter(|&i| level[0].done(i)).collect();
        recent.sort_unstable_by_key(|&i| std::cmp::Reverse(seg.seg[i].completed));
        recent.truncate(4);
        let mut idx: Vec<usize> = next
            .iter()
            .chain(&recent)
            .map(|&i| seg.seg[i].orig)
            .collect();
        let mut names = Vec::new();
        for &i in &next {
            match self.ops[seg.seg[i].orig].action {
                Action::Write(v) => names.push(format!("write {v}")),
                Action::Read(v) => {
                    names.push(format!("read {}", value_text(v)));
                    idx.extend(v.and_then(|v| writers.get(&v)));
                }
            }
        }
        let values = states.iter().chain(starts).flatten();
        idx.extend(values.filter_map(|v| writers.get(v)));
        let (first, len) = (seg.seg[0].invoked, seg.seg.len());
        let last = seg.seg.iter().map(|t| t.completed).max().unwrap_or(first);
        let reason = format!(
            "no linearization exists: the {len} overlapping ops from {first} to {last} start from \
             register state {}; at most {depth} of them can be linearized, leaving state {}, and \
             none of the ops that might go next then ({}) leads to a linearization",
            states_text(starts),
            states_text(&states),
            names.join(", "),
        );
        self.violation(idx, reason)
    }
}

fn value_text(value: Option<u64>) -> String {
    value.map_or("absent".to_string(), |v| v.to_string())
}

fn states_text(states: &[Option<u64>]) -> String {
    let text: Vec<String> = states.iter().map(|&s| value_text(s)).collect();
    match text.len() {
        1 => text[0].clone(),
        _ => format!("one of {{{}}}", text.join(", ")),
    }
}

/// One segment of one key, sorted by invocation.
struct Segment<'a> {
    ops: &'a [Op],
    seg: &'a [Timed],
    /// `suffix_min[i]`: the earliest completion among `seg[i..]`.
    suffix_min: Vec<u64>,
}

impl Segment<'_> {
    /// The ops not linearized in `config` that may go next by their times:
    /// those invoked no later than the earliest completion among them all,
    /// which is returned too.
    fn candidates(&self, config: &Config) -> (Vec<usize>, u64) {
        let (n, span) = (self.seg.len(), config.span().min(self.seg.len()));
        let undone = || config.undone().take_while(move |&i| i < span);
        let earliest = undone().map(|i| self.seg[i].completed);
        let earliest = earliest.fold(self.suffix_min[span], u64::min);
        let candidates = undone().chain(span..n);
        let candidates = candidates.take_while(|&i| self.seg[i].invoked <= earliest);
        (candidates.collect(), earliest)
    }

    /// Passes to `out` the configurations one more step gives: not all, but
    /// enough to reach, for every linearization of the key's history, one
    /// that agrees with it after this segment or ends the segment in a state
    /// that allows more.
    ///
    /// A read that matches the state goes alone: moving it before the other
    /// ops that may go now breaks no timing and changes no state. Otherwise
    /// a write goes, and only one that is *forced* (it completes first, so
    /// the others may still go after it) or *wanted* (a read of its value may
    /// go right after it). For in a linearization, an unforced write `w` not
    /// followed by a read of its value must be followed by a write `x` (its
    /// value lost, so no read returned it: it is *blind*), and `x`, which
    /// may go now too, can go first with `w` placed just before it. So all
    /// blind writes that may go are placed just before the write that goes,
    /// where they change nothing: that breaks no timing, and where they were,
    /// a write followed each or it ended the segment, in which case the state
    /// is now the one before, which allows all that the blind write's did.
    fn successors(&self, config: &Config, mut out: impl FnMut(Config)) {
        let (candidates, earliest) = self.candidates(config);
        let action = |i: usize| &self.ops[self.seg[i].orig].action;
        let may_read = |v| candidates.iter().find(|&&i| *action(i) == Action::Read(v));
        if let Some(&i) = may_read(config.state) {
            return out(config.with([i], config.state));
        }
        let blind = |i: &usize| matches!(action(*i), Action::Write(_)) && !self.seg[*i].observed;
        let blind: Vec<usize> = candidates.iter().copied().filter(blind).collect();
        for &i in &candidates {
            let Action::Write(v) = *action(i) else {
                continue;
            };
            let wanted = self.seg[i].observed && may_read(Some(v)).is_some();
            if wanted || self.seg[i].completed <= earliest {
                out(config.with(blind.iter().copied().chain([i]), Some(v)));
            }
        }
    }
}

/// A partial linearization of a segment: the ops before `base` are all
/// linearized, op `base + j` is iff bit `j` of `words` is (no word is all
/// ones, the last is not zero), and the register's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Config {
    base: usize,
    words: Vec<u64>,
    state: Option<u64>,
}

impl Config {
    fn done(&self, i: usize) -> bool {
        let Some(bit) = i.checked_sub(self.base) else {
            return true;
        };
        self.words
            .get(bit / 64)
            .is_some_and(|w| w >> (bit % 64) & 1 == 1)
    }

    /// How many ops are linearized.
    fn len(&self) -> usize {
        let ones: u32 = self.words.iter().map(|w| w.count_ones()).sum();
        self.base + ones as usize
    }

    /// The first op after the words: it and all later ones are not linearized.
    fn span(&self) -> usize {
        self.base + 64 * self.words.len()
    }

    /// The ops in `base..span()` that are not linearized, in order.
    fn undone(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(move |(k, &word)| {
            let mut zeros = !word;
            std::iter::from_fn(move || {
                let bit = zeros.trailing_zeros() as usize;
                zeros &= zeros.wrapping_sub(1);
                (bit < 64).then_some(self.base + 64 * k + bit)
            })
        })
    }

    /// This configuration with the ops `ops` linearized, leaving `state`.
    fn with(&self, ops: impl IntoIterator<Item = usize>, state: Option<u64>) -> Config {
        let mut next = Config {
            state,
            ..self.clone()
        };
        for bit in ops.into_iter().map(|i| i - next.base) {
            if next.words.len() <= bit / 64 {
                next.words.resize(bit / 64 + 1, 0);
            }
            next.words[bit / 64] |= 1 << (bit % 64);
        }
        let full = next.words.iter().take_while(|&&w| w == u64::MAX).count();
        next.words.drain(..full);
        next.base += 64 * full;
        while next.words.last() == Some(&0) {
            next.words.pop();
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{test_seed, Rng};

    fn op(key: u64, client: u64, action: Action, invoked: u64, completed: Option<u64>) -> Op {
        Op {
            key,
            action,
            invoked,
            completed,
            client,
        }
    }
    fn w(client: u64, v: u64, invoked: u64, completed: u64) -> Op {
        op(0, client, Action::Write(v), invoked, Some(completed))
    }
    fn w_lost(client: u64, v: u64, invoked: u64) -> Op {
        op(0, client, Action::Write(v), invoked, None)
    }
    fn r(client: u64, v: Option<u64>, invoked: u64, completed: u64) -> Op {
        op(0, client, Action::Read(v), invoked, Some(completed))
    }
    fn rejected(ops: &[Op]) -> Violation {
        let violation = check(ops).expect_err("must be rejected");
        eprintln!("{violation}");
        violation
    }

    #[test]
    fn sequential_write_then_read_is_linearizable() {
        let summary = check(&[w(1, 7, 0, 10), r(2, Some(7), 20, 30)]).unwrap();
        assert_eq!(
            (summary.keys, summary.ops, summary.dropped_unknown),
            (1, 2, 0)
        );
    }

    #[test]
    fn a_read_of_the_initial_absent_state_is_linearizable() {
        check(&[r(1, None, 0, 10), w(1, 7, 20, 30), r(1, Some(7), 40, 50)]).unwrap();
    }

    #[test]
    fn a_read_overlapping_a_write_may_see_the_old_or_new_value() {
        for seen in [Some(1), Some(2)] {
            check(&[w(1, 1, 0, 10), w(1, 2, 20, 60), r(2, seen, 30, 40)]).unwrap();
        }
    }

    #[test]
    fn equal_times_count_as_concurrent() {
        check(&[w(1, 1, 0, 10), r(2, None, 10, 20)]).unwrap();
        rejected(&[w(1, 1, 0, 10), r(2, None, 11, 20)]);
    }

    #[test]
    fn a_stale_read_after_two_completed_writes_is_rejected() {
        let ops = [w(1, 1, 0, 10), w(2, 2, 20, 30), r(3, Some(1), 40, 50)];
        assert_eq!(rejected(&ops).ops, ops);
    }

    #[test]
    fn a_read_completed_before_its_write_was_invoked_is_rejected() {
        let ops = [r(1, Some(1), 0, 10), w(2, 1, 20, 30)];
        assert_eq!(rejected(&ops).ops, ops);
    }

    #[test]
    fn a_new_old_inversion_across_clients_is_rejected() {
        // Write 2 overlaps both reads; the first sees it, the later one sees
        // the value it overwrote. The other way round is fine.
        let mut ops = [
            w(1, 1, 0, 10),
            w(1, 2, 20, 100),
            r(2, Some(2), 30, 40),
            r(3, Some(1), 50, 60),
        ];
        assert_eq!(rejected(&ops).ops, ops);
        (ops[2].action, ops[3].action) = (Action::Read(Some(1)), Action::Read(Some(2)));
        check(&ops).unwrap();
    }

    #[test]
    fn a_read_of_a_value_never_written_is_rejected() {
        let v = rejected(&[w(1, 1, 0, 10), r(2, Some(9), 20, 30)]);
        assert!(v.reason.contains("no write"), "{v}");
    }

    #[test]
    fn a_read_of_absent_after_a_completed_write_is_rejected() {
        rejected(&[w(1, 1, 0, 10), r(2, None, 20, 30)]);
    }

    #[test]
    fn an_unknown_write_later_observed_is_accepted() {
        let ops = [
            w(1, 1, 0, 10),
            w_lost(2, 2, 20),
            r(3, Some(1), 100, 110),
            r(3, Some(2), 200, 210),
        ];
        let summary = check(&ops).unwrap();
        assert_eq!((summary.ops, summary.dropped_unknown), (4, 0));
    }

    #[test]
    fn an_unknown_write_never_observed_is_dropped() {
        let summary = check(&[w(1, 1, 0, 10), w_lost(2, 2, 20), r(3, Some(1), 100, 110)]).unwrap();
        assert_eq!((summary.ops, summary.dropped_unknown), (2, 1));
    }

    #[test]
    fn an_unknown_write_observed_before_it_was_invoked_is_rejected() {
        rejected(&[r(1, Some(2), 0, 10), w_lost(2, 2, 20)]);
    }

    #[test]
    fn an_observed_unknown_write_takes_effect_before_its_first_read_completes() {
        // Read 2 completes at 40, so write 2 precedes the read of 1 at 50.
        rejected(&[
            w(1, 1, 0, 10),
            w_lost(2, 2, 20),
            r(3, Some(2), 30, 40),
            r(4, Some(1), 50, 60),
        ]);
    }

    #[test]
    fn reads_with_unknown_completion_carry_no_information() {
        let summary = check(&[w(1, 1, 0, 10), op(0, 2, Action::Read(Some(9)), 20, None)]).unwrap();
        assert_eq!((summary.ops, summary.dropped_unknown), (1, 0));
    }

    #[test]
    fn several_final_states_carry_across_quiescent_points() {
        let writes = [w(1, 1, 0, 10), w(2, 2, 5, 15)];
        for (a, b, ok) in [(1, 1, true), (2, 2, true), (1, 2, false)] {
            let ops = [&writes[..], &[r(3, Some(a), 20, 30), r(3, Some(b), 40, 50)]].concat();
            assert_eq!(check(&ops).is_ok(), ok, "{a} then {b}");
        }
    }

    #[test]
    fn keys_are_checked_independently_and_the_violation_names_its_key() {
        let on = |key, o: Op| Op { key, ..o };
        let ops = [
            on(1, w(1, 1, 0, 10)),
            on(2, w(1, 2, 0, 10)),
            on(1, r(2, Some(1), 20, 30)),
            on(3, r(2, None, 20, 30)),
            on(2, r(2, None, 20, 30)),
        ];
        let v = rejected(&ops);
        assert!(v.key == 2 && v.ops.iter().all(|o| o.key == 2), "{v}");
        assert!(v.to_string().contains("on key 2"), "{v}");
        assert_eq!(check(&ops[..4]).unwrap().keys, 3);
    }

    #[test]
    fn malformed_input_is_rejected() {
        rejected(&[w(1, 1, 10, 5)]);
        assert!(rejected(&[w(1, 1, 0, 10), w(2, 1, 20, 30)])
            .reason
            .contains("twice"));
    }

    #[test]
    fn the_report_shows_the_ops_where_the_search_got_stuck() {
        let mut ops: Vec<Op> = (0..50).map(|i| w(i, i + 1, 10 * i, 10 * i + 5)).collect();
        ops.extend([w(99, 100, 1000, 2000), r(98, Some(49), 1500, 1600)]);
        let v = rejected(&ops);
        assert_eq!(v.ops, ops[48..], "{v}");
    }

    /// A history of real atomic registers: each op takes effect at a random
    /// point inside its interval; some outcomes are lost (a lost write may
    /// take effect later, or never).
    fn simulate(rng: &mut Rng, keys: u64, clients: u64, per_client: usize) -> Vec<Op> {
        let (mut ops, mut effects) = (Vec::new(), Vec::new());
        for client in 0..clients {
            let mut now = rng.below(50);
            for _ in 0..per_client {
                let (key, invoked, took) =
                    (rng.below(keys), now + rng.below(20), 1 + rng.below(100));
                let mut at = Some(invoked + rng.below(took + 1));
                let mut completed = Some(invoked + took);
                let write = rng.one_in(2);
                if rng.one_in(12) {
                    completed = None;
                    if write {
                        at = (!rng.one_in(3)).then(|| invoked + rng.below(4 * took + 1));
                    }
                }
                let action = match write {
                    true => Action::Write(ops.len() as u64 + 1),
                    false => Action::Read(Some(u64::MAX)),
                };
                effects.extend(at.map(|at| (at, ops.len())));
                ops.push(op(key, client, action, invoked, completed));
                now = invoked + took;
            }
        }
        effects.sort_unstable();
        let mut registers: HashMap<u64, Option<u64>> = HashMap::new();
        for (_, i) in effects {
            let register = registers.entry(ops[i].key).or_default();
            match ops[i].action {
                Action::Write(v) => *register = Some(v),
                Action::Read(_) if ops[i].completed.is_some() => {
                    ops[i].action = Action::Read(*register)
                }
                Action::Read(_) => {}
            }
        }
        ops
    }

    /// A read and a value it provably cannot return: the value's write
    /// completed before another write was invoked that completed before the
    /// read was invoked.
    fn stale(rng: &mut Rng, ops: &[Op]) -> Option<(usize, u64)> {
        let done = |i: usize| ops[i].completed.unwrap_or(u64::MAX);
        let writes_before = |key: u64, t: u64| {
            let write = move |i: &usize| matches!(ops[*i].action, Action::Write(_));
            (0..ops.len())
                .filter(write)
                .filter(move |&i| ops[i].key == key && done(i) < t)
        };
        let offset = rng.below(ops.len() as u64) as usize;
        for read in (0..ops.len()).map(|k| (k + offset) % ops.len()) {
            if !matches!(ops[read].action, Action::Read(_)) || ops[read].completed.is_none() {
                continue;
            }
            let key = ops[read].key;
            let new = writes_before(key, ops[read].invoked).max_by_key(|&i| ops[i].invoked);
            let old = new.and_then(|new| writes_before(key, ops[new].invoked).next());
            if let Some(Action::Write(v)) = old.map(|old| &ops[old].action) {
                return Some((read, *v));
            }
        }
        None
    }

    #[test]
    fn random_atomic_register_histories_are_accepted_and_a_stale_read_is_rejected() {
        let seed = test_seed("linearizable random histories");
        let mut rng = Rng::new(seed);
        let mut corrupted = 0;
        for round in 0..300 {
            let (keys, clients, per_client) =
                (1 + rng.below(3), 1 + rng.below(8), rng.range(5..45));
            let mut ops = simulate(&mut rng, keys, clients, per_client);
            if let Err(v) = check(&ops) {
                panic!("seed {seed} round {round}: a real register's history rejected:\n{v}");
            }
            let Some((read, v)) = stale(&mut rng, &ops) else {
                continue;
            };
            ops[read].action = Action::Read(Some(v));
            let key = ops[read].key;
            corrupted += 1;
            match check(&ops) {
                Ok(_) => panic!("seed {seed} round {round}: a stale read was accepted"),
                Err(v) => assert_eq!(v.key, key, "seed {seed} round {round}: {v}"),
            }
        }
        assert!(corrupted > 100, "seed {seed}: {corrupted} rounds corrupted");
    }

    /// Whether some order of `left` respecting real time is a legal register
    /// history; writes with an unknown outcome may be left out.
    fn brute_force(ops: &[Op], left: &mut Vec<usize>, state: Option<u64>) -> bool {
        if left.iter().all(|&i| ops[i].completed.is_none()) {
            return true;
        }
        for k in 0..left.len() {
            let i = left[k];
            let next = match ops[i].action {
                Action::Write(v) => Some(v),
                Action::Read(v) if v == state => state,
                Action::Read(_) => continue,
            };
            if left
                .iter()
                .any(|&j| ops[j].completed.is_some_and(|c| c < ops[i].invoked))
            {
                continue;
            }
            left.remove(k);
            let found = brute_force(ops, left, next);
            left.insert(k, i);
            if found {
                return true;
            }
        }
        false
    }

    #[test]
    fn agrees_with_a_brute_force_search_on_small_random_histories() {
        let seed = test_seed("linearizable brute force");
        let mut rng = Rng::new(seed);
        let (mut yes, mut no) = (0, 0);
        for round in 0..3000 {
            let writes = 1 + rng.below(4);
            let ops: Vec<Op> = (0..2 + rng.below(6))
                .map(|i| {
                    let invoked = rng.below(30);
                    let completed = (!rng.one_in(6)).then(|| invoked + rng.below(20));
                    let action = match i < writes {
                        true => Action::Write(i + 1),
                        false => Action::Read(rng.below(writes + 1).checked_sub(1).map(|v| v + 1)),
                    };
                    op(0, i, action, invoked, completed)
                })
                .collect();
            let mut left: Vec<usize> = (0..ops.len())
                .filter(|&i| {
                    ops[i].completed.is_some() || matches!(ops[i].action, Action::Write(_))
                })
                .collect();
            let expected = brute_force(&ops, &mut left, None);
            let got = check(&ops);
            assert_eq!(
                got.is_ok(),
                expected,
                "seed {seed} round {round}: {ops:?} {got:?}"
            );
            *if expected { &mut yes } else { &mut no } += 1;
        }
        assert!(yes > 300 && no > 300, "seed {seed}: {yes} yes, {no} no");
    }

    #[test]
    fn a_hundred_thousand_ops_on_one_key_with_eight_clients() {
        let seed = test_seed("linearizable scale");
        let ops = simulate(&mut Rng::new(seed), 1, 8, 12_500);
        let started = std::time::Instant::now();
        let summary = check(&ops).unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        eprintln!("{summary:?} in {:?}", started.elapsed());
    }

    #[test]
    fn a_write_pending_across_a_long_history_is_one_long_segment() {
        // Nothing is quiescent while write 0 hangs; it takes effect last. A
        // stale read in there is still caught.
        let seed = test_seed("linearizable long segment");
        let mut ops = simulate(&mut Rng::new(seed), 1, 4, 5_000);
        let end = ops.iter().filter_map(|o| o.completed).max().unwrap();
        ops.extend([w(9, 0, 0, end + 10), r(9, Some(0), end + 20, end + 30)]);
        check(&ops).unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        let (read, v) = stale(&mut Rng::new(seed), &ops).expect("a read to corrupt");
        ops[read].action = Action::Read(Some(v));
        assert!(
            check(&ops).is_err(),
            "seed {seed}: a stale read was accepted"
        );
    }
}
