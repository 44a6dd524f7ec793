//! The fault campaign's checker: a pure function of a [`History`], with no
//! IO, that decides whether the campaign kept palisade's promises, and the
//! Markdown report that says why.
//!
//! # What it can trust
//!
//! Every time comes from one monotonic clock in one process (the
//! campaign's), so there is no skew between machines. Each acknowledged
//! write is bracketed: `started` was read before the statement was sent and
//! `acked` after its COMMIT returned, so the write took effect at some
//! instant inside `[started, acked]`. Times are whole milliseconds, so each
//! window is widened by [`CLOCK_MARGIN`] on each side before two windows are
//! compared. Writes that failed or timed out are not in the history: their
//! outcome is unknown (they may or may not have committed), so no rule uses
//! them, and the client's short timeout bounds every window that is; the
//! report prints the widest window recorded.
//!
//! # Split brain
//!
//! Two writes on different nodes conflict when:
//! 1. [`Rule::SameTimeline`]: both nodes acknowledged writes on the same
//!    timeline: the timeline forked, two servers promoted into one id.
//! 2. [`Rule::AfterNewerAck`]: `a` is on an older timeline than `b` and
//!    `a.started > b.acked + CLOCK_MARGIN`: the old primary accepted `a`
//!    after the new one had acknowledged `b`.
//! 3. [`Rule::ConcurrentDivergent`]: the windows of `a` (older timeline) and
//!    `b` overlap (within the margin) and `a` is not on the final primary:
//!    two primaries took writes at once and the old one's was thrown away.
//!
//! An overlap whose older write did survive is not a conflict: its WAL
//! reached the new primary before that one was promoted, so the data orders
//! it before `b`. Those are counted apart as ordered by data.
//!
//! # Lost writes
//!
//! With `synchronous_mode_strict`, every acknowledged id must be among the
//! final primary's ids. In any mode, a missing write that was made on the
//! final primary's own timeline is a bug (nothing can have replaced it). In
//! asynchronous mode the loss is measured: in rows, and in bytes of WAL per
//! ended timeline, as the highest LSN of a lost write on it minus the LSN
//! where the final primary's history says that timeline ended (a lower
//! bound: the lost commit records lie after that LSN).
//!
//! # Healing
//!
//! A round is healthy ([`healthy`]) when exactly one node is a primary out
//! of recovery, every other node is in recovery and streaming, and every
//! daemon's `/liveness` answered 200. A fault healed when the first healthy
//! round at or after the moment it was undone came within the heal bound;
//! the campaign healed when one did after the last fault, and the final
//! state has exactly one primary.
//!
//! With a watchdog, a device that fires resets its node (the campaign kills
//! its PostgreSQL and daemon and starts the daemon again a little later).
//! A fire is not a fault the campaign chose, but it delays the heal of the
//! fault it came with (the last one injected before it): that fault's heal
//! is timed from when it was undone or from when the last of its fenced
//! nodes was started again, whichever is later ([`heal_from`]). A fire
//! changes nothing in the split-brain and lost-write rules: those read
//! only the writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::record::{Fault, Fire, History, Millis, Round, Write};

/// How far apart two readings of the campaign's clock must be before the
/// checker treats them as ordered: one tick of the recorded clock, which
/// truncates to whole milliseconds. Every window `[started, acked]` is
/// widened by this on each side when windows are compared.
pub const CLOCK_MARGIN: Millis = 1;

/// How many ids a report lists before it says "and N more".
const LIST_LIMIT: usize = 50;

/// Which split-brain rule two writes broke (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// Two nodes acknowledged writes on the same timeline.
    SameTimeline,
    /// The older-timeline write started after the newer-timeline write was
    /// acknowledged (plus the margin).
    AfterNewerAck,
    /// The windows overlap and the older-timeline write is not on the final
    /// primary (or, in [`Verdicts::ordered_by_data`], it is).
    ConcurrentDivergent,
}

impl Rule {
    fn describe(self) -> &'static str {
        match self {
            Rule::SameTimeline => "two nodes wrote on the same timeline",
            Rule::AfterNewerAck => "the old primary accepted a write after the new one acknowledged one",
            Rule::ConcurrentDivergent => "concurrent writes on two timelines, the older one's write is gone",
        }
    }
}

/// Two writes on different nodes that break a rule (or, in
/// [`Verdicts::ordered_by_data`], overlap harmlessly). One is reported per
/// rule and pair of (node, timeline), with the first witness found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub rule: Rule,
    /// The write on the older timeline (for [`Rule::SameTimeline`], the
    /// first write of the node that wrote first on it).
    pub older: Write,
    /// The write on the newer timeline (for [`Rule::SameTimeline`], the
    /// first write of the other node on it).
    pub newer: Write,
    /// How many writes of `older`'s node on its timeline break the rule
    /// against `newer`'s node on its timeline (for [`Rule::SameTimeline`]:
    /// both nodes' writes on that timeline).
    pub writes: usize,
}

/// The lost writes of one timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalLoss {
    pub timeline: u32,
    /// Acknowledged writes on this timeline missing from the final primary.
    pub rows: usize,
    /// Where the final primary's history says this timeline ended; `None`
    /// when the timeline is not in that history (a branch it never took, or
    /// the final timeline itself).
    pub switch_lsn: Option<u64>,
    /// The highest LSN of a lost write on this timeline minus `switch_lsn`
    /// (0 when no lost write lies past it); `None` without a switch LSN.
    pub bytes: Option<u64>,
}

/// How long the cluster took to heal after one fault was undone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultHeal {
    /// The fault's `index`.
    pub index: usize,
    /// From the fault's [`heal_from`] (its end, or a later restart of a
    /// node its watchdog fenced) to the first healthy round at or after
    /// it; `None` when no later round was healthy.
    pub time_to_heal: Option<Millis>,
    /// `time_to_heal` is within the heal bound.
    pub healed: bool,
}

/// How the campaign ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalHeal {
    /// The latest [`heal_from`] of any fault (0 with no faults).
    pub after: Millis,
    /// From `after` to the first healthy round at or after it.
    pub time_to_heal: Option<Millis>,
    /// The final state's primary.
    pub primary: Option<String>,
    /// A healthy round came within the heal bound, and the final state has
    /// exactly one primary.
    pub healed: bool,
}

/// Everything the checker decided about one [`History`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdicts {
    /// Copied from the settings: whether lost writes break a promise.
    pub strict: bool,
    /// Records that cannot be right (a duplicated write id, a write
    /// acknowledged before it started, a fault undone before it began):
    /// the history itself is broken, so the campaign does not pass.
    pub invalid: Vec<String>,
    /// Split brains, ordered by rule, then nodes and timelines.
    pub conflicts: Vec<Conflict>,
    /// Overlapping writes on two timelines whose older write survived: not
    /// a conflict (its WAL reached the new primary before promotion).
    pub ordered_by_data: Vec<Conflict>,
    /// How many distinct acknowledged writes are in some conflict.
    pub writes_in_conflict: usize,
    /// Acknowledged ids missing from the final primary, ascending.
    pub lost: Vec<u64>,
    /// The final primary's timeline: from the last round that saw the final
    /// primary out of recovery with a timeline, else one past the last
    /// ended timeline of the final history (1 with an empty history).
    pub final_timeline: Option<u32>,
    /// The lost ids that were written on `final_timeline`: a bug in any
    /// mode.
    pub lost_on_final_timeline: Vec<u64>,
    /// The lost writes per timeline, ascending.
    pub wal_loss: Vec<WalLoss>,
    /// One per fault, in the order of the history's faults.
    pub heals: Vec<FaultHeal>,
    pub final_heal: FinalHeal,
}

impl Verdicts {
    /// The campaign kept every promise: a valid history, no split brain, no
    /// acknowledged write lost in strict mode, none lost on the final
    /// timeline in any mode, every fault healed within the bound, and the
    /// cluster healed at the end.
    pub fn passed(&self) -> bool {
        self.invalid.is_empty()
            && self.conflicts.is_empty()
            && (!self.strict || self.lost.is_empty())
            && self.lost_on_final_timeline.is_empty()
            && self.heals.iter().all(|h| h.healed)
            && self.final_heal.healed
    }

    fn faults_healed(&self) -> usize {
        self.heals.iter().filter(|h| h.healed).count()
    }
}

/// Applies every rule to `history`.
pub fn check(history: &History) -> Verdicts {
    let survived = &history.final_state.ids;
    let (conflicts, ordered_by_data, writes_in_conflict) = split_brains(&history.writes, survived);
    let mut lost: Vec<u64> = history.writes.iter().map(|w| w.id).filter(|id| !survived.contains(id)).collect();
    lost.sort_unstable();
    lost.dedup();
    let final_timeline = final_timeline(history);
    let lost_on_final_timeline = {
        let mut ids: Vec<u64> = history
            .writes
            .iter()
            .filter(|w| Some(w.timeline) == final_timeline && !survived.contains(&w.id))
            .map(|w| w.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let bound = history.settings.heal_bound;
    let heals = history
        .faults
        .iter()
        .map(|fault| {
            let time_to_heal = time_to_heal(&history.rounds, heal_from(fault, &history.fires));
            FaultHeal { index: fault.index, time_to_heal, healed: time_to_heal.is_some_and(|t| t <= bound) }
        })
        .collect();
    let after = history.faults.iter().map(|f| heal_from(f, &history.fires)).max().unwrap_or(0);
    let final_time = time_to_heal(&history.rounds, after);
    let primary = history.final_state.primary.clone();
    Verdicts {
        strict: history.settings.strict,
        invalid: invalid(history),
        conflicts,
        ordered_by_data,
        writes_in_conflict,
        lost,
        final_timeline,
        lost_on_final_timeline,
        wal_loss: wal_loss(history),
        heals,
        final_heal: FinalHeal {
            after,
            time_to_heal: final_time,
            healed: final_time.is_some_and(|t| t <= bound) && primary.is_some(),
            primary,
        },
    }
}

/// When the heal of `fault` is timed from: when it was undone, or when the
/// campaign started again a node whose watchdog fired with it (or the fire
/// itself, for a node not started again), whichever is latest.
pub fn heal_from(fault: &Fault, fires: &[Fire]) -> Millis {
    fires
        .iter()
        .filter(|f| f.fault == Some(fault.index))
        .map(|f| f.restarted.unwrap_or(f.at))
        .fold(fault.ended, Millis::max)
}

/// Whether the cluster is healthy in `round`: the primary's name, or every
/// reason it is not, joined by `; `.
pub fn healthy(round: &Round) -> Result<String, String> {
    if round.nodes.is_empty() {
        return Err("no node was seen".into());
    }
    let mut why = Vec::new();
    let primaries: Vec<&str> = round
        .nodes
        .iter()
        .filter(|n| n.in_recovery == Some(false) && n.role.as_deref() == Some("primary"))
        .map(|n| n.node.as_str())
        .collect();
    match primaries.as_slice() {
        [] => why.push("no primary".to_string()),
        [_] => {}
        many => why.push(format!("{} primaries: {}", many.len(), many.join(", "))),
    }
    for n in &round.nodes {
        // A second primary is already named above.
        let primary = primaries.contains(&n.node.as_str());
        if !primary {
            match n.in_recovery {
                Some(true) => {
                    if n.replication_state.as_deref() != Some("streaming") {
                        why.push(format!(
                            "{} does not stream (replication_state {})",
                            n.node,
                            shown(&n.replication_state)
                        ));
                    }
                }
                Some(false) => why.push(format!("{} is out of recovery with role {}", n.node, shown(&n.role))),
                None => why.push(format!("{}'s PostgreSQL did not answer", n.node)),
            }
        }
        match n.liveness {
            Some(200) => {}
            Some(status) => why.push(format!("{}'s /liveness answered {status}", n.node)),
            None => why.push(format!("{}'s /liveness did not answer", n.node)),
        }
    }
    match (why.is_empty(), primaries.as_slice()) {
        (true, [primary]) => Ok((*primary).to_string()),
        _ => Err(why.join("; ")),
    }
}

fn shown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("unknown")
}

/// From `from` to the first healthy round at or after it.
fn time_to_heal(rounds: &[Round], from: Millis) -> Option<Millis> {
    rounds.iter().filter(|r| r.at >= from && healthy(r).is_ok()).map(|r| r.at - from).min()
}

fn invalid(history: &History) -> Vec<String> {
    let mut why = Vec::new();
    let mut seen = BTreeSet::new();
    for w in &history.writes {
        if !seen.insert(w.id) {
            why.push(format!("write id {} is recorded twice", w.id));
        }
        if w.acked < w.started {
            why.push(format!(
                "write {} was acknowledged at {} ms, before it started at {} ms",
                w.id, w.acked, w.started
            ));
        }
    }
    for f in &history.faults {
        if f.ended < f.started {
            why.push(format!("fault {} ended at {} ms, before it started at {} ms", f.index, f.ended, f.started));
        }
    }
    why
}

fn final_timeline(history: &History) -> Option<u32> {
    let fin = &history.final_state;
    let primary = fin.primary.as_deref()?;
    let seen = history
        .rounds
        .iter()
        .rev()
        .flat_map(|r| &r.nodes)
        .find(|n| n.node == primary && n.in_recovery == Some(false) && n.timeline.is_some())
        .and_then(|n| n.timeline);
    seen.or_else(|| Some(fin.history.last().map_or(1, |(tl, _)| tl.saturating_add(1))))
}

fn wal_loss(history: &History) -> Vec<WalLoss> {
    let fin = &history.final_state;
    let mut per_timeline: BTreeMap<u32, (usize, u64)> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for w in &history.writes {
        if fin.ids.contains(&w.id) || !seen.insert(w.id) {
            continue;
        }
        let entry = per_timeline.entry(w.timeline).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(w.lsn);
    }
    per_timeline
        .into_iter()
        .map(|(timeline, (rows, max_lsn))| {
            let switch_lsn = fin.history.iter().find(|(tl, _)| *tl == timeline).map(|(_, lsn)| *lsn);
            WalLoss { timeline, rows, switch_lsn, bytes: switch_lsn.map(|s| max_lsn.saturating_sub(s)) }
        })
        .collect()
}

/// The writes of one node on one timeline, with the two writes the rules
/// compare others against.
struct Segment<'h> {
    writes: Vec<&'h Write>,
    /// The write acknowledged first.
    first_acked: &'h Write,
    /// The write started first.
    first_started: &'h Write,
}

/// Applies the three split-brain rules. Writes are grouped by (timeline,
/// node); for an older segment `A` and a newer one `B` on another node,
/// `a` breaks rule 2 exactly when it started after `B`'s first
/// acknowledgement (plus the margin), and otherwise overlaps some write of
/// `B` exactly when `B`'s first start is within `a`'s window (plus the
/// margin), so each pair of segments costs one pass over `A`.
fn split_brains(writes: &[Write], survived: &BTreeSet<u64>) -> (Vec<Conflict>, Vec<Conflict>, usize) {
    let mut grouped: BTreeMap<(u32, &str), Vec<&Write>> = BTreeMap::new();
    for w in writes {
        grouped.entry((w.timeline, w.node.as_str())).or_default().push(w);
    }
    let segments: Vec<((u32, &str), Segment)> = grouped
        .into_iter()
        .filter_map(|(key, mut ws)| {
            ws.sort_by_key(|w| (w.started, w.acked, w.id));
            let first_acked = *ws.iter().min_by_key(|w| (w.acked, w.started, w.id))?;
            let first_started = *ws.first()?;
            Some((key, Segment { writes: ws, first_acked, first_started }))
        })
        .collect();
    let mut conflicts = Vec::new();
    let mut ordered = Vec::new();
    let mut involved: BTreeSet<u64> = BTreeSet::new();
    for (i, ((tl_a, node_a), a)) in segments.iter().enumerate() {
        for (j, ((tl_b, node_b), b)) in segments.iter().enumerate() {
            if node_a == node_b {
                continue;
            }
            if tl_a == tl_b {
                if i < j {
                    let (older, newer) = if (a.first_started.started, a.first_started.id)
                        <= (b.first_started.started, b.first_started.id)
                    {
                        (a.first_started, b.first_started)
                    } else {
                        (b.first_started, a.first_started)
                    };
                    involved.extend(a.writes.iter().chain(&b.writes).map(|w| w.id));
                    conflicts.push(Conflict {
                        rule: Rule::SameTimeline,
                        older: older.clone(),
                        newer: newer.clone(),
                        writes: a.writes.len() + b.writes.len(),
                    });
                }
                continue;
            }
            if tl_a > tl_b {
                continue;
            }
            let mut found: BTreeMap<(Rule, bool), (&Write, &Write, usize)> = BTreeMap::new();
            for w in &a.writes {
                let hit = if w.started > b.first_acked.acked.saturating_add(CLOCK_MARGIN) {
                    Some((Rule::AfterNewerAck, false, b.first_acked))
                } else if b.first_started.started <= w.acked.saturating_add(CLOCK_MARGIN) {
                    Some((Rule::ConcurrentDivergent, survived.contains(&w.id), b.first_started))
                } else {
                    None
                };
                if let Some((rule, harmless, other)) = hit {
                    if !harmless {
                        involved.insert(w.id);
                        involved.insert(other.id);
                    }
                    found.entry((rule, harmless)).or_insert((w, other, 0)).2 += 1;
                }
            }
            for ((rule, harmless), (older, newer, count)) in found {
                let c = Conflict { rule, older: older.clone(), newer: newer.clone(), writes: count };
                if harmless {
                    ordered.push(c);
                } else {
                    conflicts.push(c);
                }
            }
        }
    }
    let key = |c: &Conflict| (c.rule, c.older.timeline, c.older.node.clone(), c.newer.timeline, c.newer.node.clone());
    conflicts.sort_by_key(key);
    ordered.sort_by_key(key);
    (conflicts, ordered, involved.len())
}

fn secs(ms: Millis) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

fn ids_list(ids: &[u64]) -> String {
    let mut s = ids.iter().take(LIST_LIMIT).map(u64::to_string).collect::<Vec<_>>().join(", ");
    if ids.len() > LIST_LIMIT {
        let _ = write!(s, " and {} more", ids.len() - LIST_LIMIT);
    }
    s
}

fn write_cell(w: &Write) -> String {
    format!("id {} on {}, timeline {}, [{} ms, {} ms], LSN {}", w.id, w.node, w.timeline, w.started, w.acked, w.lsn)
}

/// The watchdog fires that came with fault `index`, for the report:
/// `node2 at 12.300 s, back at 15.301 s`, or `-`.
fn fires_cell(fires: &[Fire], index: Option<usize>) -> String {
    let cells: Vec<String> = fires
        .iter()
        .filter(|f| f.fault == index)
        .map(|f| match f.restarted {
            Some(r) => format!("{} at {}, back at {}", f.node, secs(f.at), secs(r)),
            None => format!("{} at {}, not started again", f.node, secs(f.at)),
        })
        .collect();
    if cells.is_empty() {
        "-".to_string()
    } else {
        cells.join("; ")
    }
}

/// The campaign's report in Markdown: the settings and margins, the faults
/// with their time to heal, the verdicts, and PASS or FAIL. It depends only
/// on `history` and `verdicts` (no current time), so a seed's committed
/// report is stable.
pub fn report(history: &History, verdicts: &Verdicts) -> String {
    let s = &history.settings;
    let mut out = String::new();
    let total = history.writes.len();
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for w in &history.writes {
        *per_node.entry(w.node.as_str()).or_default() += 1;
    }
    let widest = history.writes.iter().map(|w| w.acked.saturating_sub(w.started)).max().unwrap_or(0);
    let healthy_rounds = history.rounds.iter().filter(|r| healthy(r).is_ok()).count();

    let _ = writeln!(out, "# Fault campaign: seed {} on {}\n", s.seed, s.dcs);
    let _ = writeln!(out, "| Setting | Value |\n|---|---|");
    let _ = writeln!(out, "| seed | {} |", s.seed);
    let _ = writeln!(out, "| DCS | {} |", s.dcs);
    let mode = if s.strict { "strict synchronous (`synchronous_mode_strict`)" } else { "asynchronous" };
    let _ = writeln!(out, "| mode | {mode} |");
    if s.watchdog {
        let _ = writeln!(
            out,
            "| watchdog | `mode: required` on a test device per node that resets the node when it fires; fires: {} |",
            history.fires.len()
        );
    }
    let _ = writeln!(out, "| ttl | {} s |", s.ttl);
    let _ = writeln!(out, "| heal bound | {} |", secs(s.heal_bound));
    let _ = writeln!(out, "| clock margin | {CLOCK_MARGIN} ms on each side of a write's window |");
    let _ = writeln!(out, "| widest acknowledged write window | {widest} ms |");
    let _ = writeln!(out, "| faults | {} |", history.faults.len());
    let _ = writeln!(out, "| watcher rounds | {} ({healthy_rounds} healthy) |", history.rounds.len());
    let nodes = per_node.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "| writes acknowledged | {total} ({nodes}) |");

    let _ = writeln!(out, "\n## Faults\n");
    if s.watchdog {
        let _ =
            writeln!(out, "| # | Fault | Node | Duration | Watchdog fired | Time to heal |\n|---|---|---|---|---|---|");
    } else {
        let _ = writeln!(out, "| # | Fault | Node | Duration | Time to heal |\n|---|---|---|---|---|");
    }
    for (fault, heal) in history.faults.iter().zip(&verdicts.heals) {
        let to_heal = match (heal.time_to_heal, heal.healed) {
            (Some(t), true) => secs(t),
            (Some(t), false) => format!("NOT HEALED ({} > bound)", secs(t)),
            (None, _) => "NOT HEALED".to_string(),
        };
        let fired =
            if s.watchdog { format!(" {} |", fires_cell(&history.fires, Some(fault.index))) } else { String::new() };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |{fired} {} |",
            fault.index,
            fault.description.replace('|', "\\|"),
            fault.node.as_deref().unwrap_or("-"),
            secs(fault.ended.saturating_sub(fault.started)),
            to_heal
        );
    }
    if history.fires.iter().any(|f| f.fault.is_none()) {
        let _ = writeln!(out, "\nWatchdog fires before the first fault: {}", fires_cell(&history.fires, None));
    }

    let _ = writeln!(out, "\n## Verdicts\n");
    if !verdicts.invalid.is_empty() {
        let _ = writeln!(out, "- **Invalid history:** {}", verdicts.invalid.join("; "));
    }
    let _ = writeln!(
        out,
        "- **Split brains:** {}/{total} acknowledged writes in a conflict ({} conflicts; {} overlaps ordered by data)",
        verdicts.writes_in_conflict,
        verdicts.conflicts.len(),
        verdicts.ordered_by_data.len()
    );
    let promise = if s.strict {
        "must be 0 in strict mode"
    } else {
        "expected in asynchronous mode, except on the final timeline"
    };
    let _ = writeln!(
        out,
        "- **Acknowledged writes lost:** {}/{total} ({promise}); on the final timeline ({}): {}",
        verdicts.lost.len(),
        verdicts.final_timeline.map_or("unknown".to_string(), |t| t.to_string()),
        verdicts.lost_on_final_timeline.len()
    );
    let _ =
        writeln!(out, "- **Faults healed within the bound:** {}/{}", verdicts.faults_healed(), verdicts.heals.len());
    let fin = &verdicts.final_heal;
    let _ = writeln!(
        out,
        "- **Final heal:** {} after the last fault ended at {} ms ({}), final primary {}",
        if fin.healed { "healed" } else { "NOT HEALED" },
        fin.after,
        fin.time_to_heal.map_or("no healthy round".to_string(), |t| format!("healthy after {}", secs(t))),
        fin.primary.as_deref().unwrap_or("none")
    );
    let _ = writeln!(out, "\n**{}**", if verdicts.passed() { "PASS" } else { "FAIL" });

    if !verdicts.conflicts.is_empty() {
        let _ = writeln!(out, "\n### Split brains\n");
        let _ = writeln!(out, "| Rule | Older write | Newer write | Writes |\n|---|---|---|---|");
        for c in &verdicts.conflicts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                c.rule.describe(),
                write_cell(&c.older),
                write_cell(&c.newer),
                c.writes
            );
        }
    }
    if !verdicts.ordered_by_data.is_empty() {
        let _ = writeln!(out, "\n### Overlaps ordered by data (not conflicts)\n");
        let _ = writeln!(out, "| Older write (survived) | Newer write | Writes |\n|---|---|---|");
        for c in &verdicts.ordered_by_data {
            let _ = writeln!(out, "| {} | {} | {} |", write_cell(&c.older), write_cell(&c.newer), c.writes);
        }
    }
    if !verdicts.lost.is_empty() {
        let _ = writeln!(out, "\n### Lost writes\n");
        let _ = writeln!(out, "Ids: {}\n", ids_list(&verdicts.lost));
        if !verdicts.lost_on_final_timeline.is_empty() {
            let _ = writeln!(
                out,
                "On the final timeline (a bug in any mode): {}\n",
                ids_list(&verdicts.lost_on_final_timeline)
            );
        }
        let _ = writeln!(out, "| Timeline | Rows | Switch LSN | WAL bytes lost (at least) |\n|---|---|---|---|");
        for l in &verdicts.wal_loss {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                l.timeline,
                l.rows,
                l.switch_lsn.map_or("-".to_string(), lsn),
                l.bytes.map_or("unknown".to_string(), |b| b.to_string())
            );
        }
    }

    let _ = writeln!(out, "\n## How this was checked\n");
    let _ = writeln!(out, "{}", rules_text());
    out
}

/// An LSN in PostgreSQL's `X/X` form.
fn lsn(bytes: u64) -> String {
    format!("{:X}/{:X}", bytes >> 32, bytes & 0xFFFF_FFFF)
}

fn rules_text() -> String {
    format!(
        "Every time is read from one monotonic clock in the campaign's process, so \
there is no skew between machines. Each acknowledged write is bracketed: `started` is \
read before the statement is sent and `acked` after COMMIT returned, so it took effect \
inside `[started, acked]`. Times are whole milliseconds, so every window is widened by \
the clock margin ({CLOCK_MARGIN} ms) on each side before two are compared. Writes that \
failed or timed out are not recorded: their outcome is unknown and no rule uses them; \
the client's short timeout bounds every recorded window (the widest is shown above).

- **Split brain**, for two writes on different nodes: (1) both nodes acknowledged writes \
on the same timeline; (2) write `a` is on an older timeline than `b` and \
`a.started > b.acked + {CLOCK_MARGIN} ms`: the old primary accepted a write after the new \
one had acknowledged one; (3) their windows overlap (within the margin) on different \
timelines and the older-timeline write is not on the final primary: concurrent divergent \
writes. An overlap whose older write survived is ordered by data, not a conflict: its WAL \
reached the new primary before that one was promoted. One conflict is shown per rule and \
pair of (node, timeline), with its first witness.
- **Lost writes**: in strict synchronous mode every acknowledged id must be on the final \
primary. A missing write made on the final primary's own timeline is a bug in any mode. \
In asynchronous mode the loss is shown in rows and, per ended timeline, in bytes of WAL: \
the highest LSN of a lost write on it minus the LSN where the final primary's history \
says that timeline ended.
- **Healing**: a watcher round is healthy when exactly one node is out of recovery with \
role `primary`, every other node is in recovery with replication state `streaming`, and \
every daemon's `/liveness` answered 200. A fault's time to heal runs from when it was \
undone (or, when a node's watchdog fired after it was injected, from when the campaign \
started that node's daemon again, if later) to the first healthy round at or after that; \
it must be within the heal bound. A watchdog fire resets its node: the campaign kills its \
PostgreSQL and daemon with SIGKILL, as a reset would, and starts the daemon again. \
After the last fault a healthy round must come within the bound, and the final state \
must have exactly one primary."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::record::{Fault, FinalState, NodeView, Settings};

    fn w(id: u64, node: &str, started: Millis, acked: Millis, timeline: u32, lsn: u64) -> Write {
        Write { id, node: node.into(), started, acked, timeline, lsn }
    }

    fn history(strict: bool, writes: Vec<Write>, survived: &[u64]) -> History {
        History {
            settings: Settings { seed: 7, dcs: "etcd3".into(), strict, ttl: 30, heal_bound: 90_000, watchdog: false },
            writes,
            rounds: vec![Round { at: 0, nodes: healthy_nodes("node1") }],
            faults: Vec::new(),
            fires: Vec::new(),
            final_state: FinalState {
                primary: Some("node1".into()),
                ids: survived.iter().copied().collect(),
                history: Vec::new(),
            },
        }
    }

    fn primary(node: &str, timeline: u32) -> NodeView {
        NodeView {
            node: node.into(),
            in_recovery: Some(false),
            timeline: Some(timeline),
            role: Some("primary".into()),
            state: Some("running".into()),
            replication_state: None,
            liveness: Some(200),
        }
    }

    fn replica(node: &str) -> NodeView {
        NodeView {
            node: node.into(),
            in_recovery: Some(true),
            timeline: Some(1),
            role: Some("replica".into()),
            state: Some("running".into()),
            replication_state: Some("streaming".into()),
            liveness: Some(200),
        }
    }

    fn healthy_nodes(leader: &str) -> Vec<NodeView> {
        ["node1", "node2", "node3"].iter().map(|n| if *n == leader { primary(n, 1) } else { replica(n) }).collect()
    }

    fn rules(v: &Verdicts) -> Vec<Rule> {
        v.conflicts.iter().map(|c| c.rule).collect()
    }

    const M: Millis = CLOCK_MARGIN;

    #[test]
    fn split_brain_rules() {
        use Rule::*;
        // (name, writes, ids on the final primary, conflicts, overlaps ordered by data)
        type Case = (&'static str, Vec<Write>, Vec<u64>, Vec<Rule>, usize);
        let cases: Vec<Case> = vec![
            (
                "one node, one timeline",
                vec![w(1, "node1", 0, 5, 1, 100), w(2, "node1", 6, 9, 1, 200)],
                vec![1, 2],
                vec![],
                0,
            ),
            (
                "a node's own timeline change",
                vec![w(1, "node1", 0, 5, 1, 100), w(2, "node1", 3, 9, 2, 200)],
                vec![2],
                vec![],
                0,
            ),
            (
                "two nodes on one timeline, far apart in time",
                vec![w(1, "node1", 0, 5, 2, 100), w(2, "node2", 10_000, 10_005, 2, 200)],
                vec![1, 2],
                vec![SameTimeline],
                0,
            ),
            (
                "a clean failover: the old write is acknowledged before the new one starts",
                vec![w(1, "node1", 0, 5, 1, 100), w(2, "node2", 5 + M + 1, 20, 2, 200)],
                vec![1, 2],
                vec![],
                0,
            ),
            (
                "a lost old write, sequential: a loss, not a split brain",
                vec![w(1, "node1", 0, 5, 1, 100), w(2, "node2", 5 + M + 1, 20, 2, 200)],
                vec![2],
                vec![],
                0,
            ),
            (
                "the old primary writes after the new one acknowledged",
                vec![w(1, "node2", 10, 20, 2, 200), w(2, "node1", 20 + M + 1, 40, 1, 100)],
                vec![1],
                vec![AfterNewerAck],
                0,
            ),
            (
                "after the new ack even though the old write survived",
                vec![w(1, "node2", 10, 20, 2, 200), w(2, "node1", 20 + M + 1, 40, 1, 100)],
                vec![1, 2],
                vec![AfterNewerAck],
                0,
            ),
            (
                "started exactly at the margin after the new ack: an overlap, lost",
                vec![w(1, "node2", 10, 20, 2, 200), w(2, "node1", 20 + M, 40, 1, 100)],
                vec![1],
                vec![ConcurrentDivergent],
                0,
            ),
            (
                "started exactly at the margin after the new ack: an overlap, survived",
                vec![w(1, "node2", 10, 20, 2, 200), w(2, "node1", 20 + M, 40, 1, 100)],
                vec![1, 2],
                vec![],
                1,
            ),
            (
                "overlapping windows, the old write lost",
                vec![w(1, "node1", 0, 50, 1, 100), w(2, "node2", 30, 60, 2, 200)],
                vec![2],
                vec![ConcurrentDivergent],
                0,
            ),
            (
                "overlapping windows, the old write survived",
                vec![w(1, "node1", 0, 50, 1, 100), w(2, "node2", 30, 60, 2, 200)],
                vec![1, 2],
                vec![],
                1,
            ),
            (
                "the new write starts exactly the margin after the old ack: overlap",
                vec![w(1, "node1", 0, 50, 1, 100), w(2, "node2", 50 + M, 60, 2, 200)],
                vec![2],
                vec![ConcurrentDivergent],
                0,
            ),
            (
                "the new write starts one past the margin: ordered by time",
                vec![w(1, "node1", 0, 50, 1, 100), w(2, "node2", 50 + M + 1, 60, 2, 200)],
                vec![2],
                vec![],
                0,
            ),
            (
                "the older timeline's id is higher than the newer's: ordered by timeline",
                vec![w(1, "node1", 0, 10, 3, 300), w(2, "node2", 50, 60, 2, 200)],
                vec![1, 2],
                vec![AfterNewerAck],
                0,
            ),
        ];
        for (name, writes, survived, want, want_ordered) in cases {
            let v = check(&history(false, writes, &survived));
            assert_eq!(rules(&v), want, "{name}: {:#?}", v.conflicts);
            assert_eq!(v.ordered_by_data.len(), want_ordered, "{name}: {:#?}", v.ordered_by_data);
            assert_eq!(
                v.writes_in_conflict == 0,
                want.is_empty(),
                "{name}: {} writes in conflict",
                v.writes_in_conflict
            );
        }
    }

    #[test]
    fn a_conflict_names_both_writes_and_counts_the_older_nodes_writes() {
        // node2 became primary on timeline 2 and acknowledged write 10 at
        // 100 ms; node1 went on writing on timeline 1 after that.
        let writes = vec![
            w(1, "node1", 0, 10, 1, 100),
            w(10, "node2", 90, 100, 2, 1000),
            w(11, "node2", 110, 120, 2, 1100),
            w(2, "node1", 150, 160, 1, 200),
            w(3, "node1", 170, 180, 1, 300),
        ];
        let v = check(&history(true, writes, &[1, 10, 11]));
        assert_eq!(v.conflicts.len(), 1, "{:#?}", v.conflicts);
        let c = &v.conflicts[0];
        assert_eq!(c.rule, Rule::AfterNewerAck);
        assert_eq!((c.older.id, c.newer.id, c.writes), (2, 10, 2));
        assert_eq!(v.writes_in_conflict, 3);
        assert!(!v.passed());
    }

    #[test]
    fn same_timeline_conflict_is_reported_once_with_the_first_writer_first() {
        let writes =
            vec![w(5, "node3", 200, 210, 4, 100), w(1, "node2", 100, 110, 4, 100), w(6, "node3", 300, 310, 4, 100)];
        let v = check(&history(false, writes, &[1, 5, 6]));
        assert_eq!(rules(&v), vec![Rule::SameTimeline]);
        let c = &v.conflicts[0];
        assert_eq!((c.older.id, c.newer.id, c.writes), (1, 5, 3));
        assert_eq!(v.writes_in_conflict, 3);
    }

    #[test]
    fn lost_writes() {
        // (name, strict, final history, writes, survived, lost, on the final timeline, passes)
        type Case = (&'static str, bool, Vec<(u32, u64)>, Vec<Write>, Vec<u64>, Vec<u64>, Vec<u64>, bool);
        let cases: Vec<Case> = vec![
            (
                "strict, everything survived",
                true,
                vec![(1, 150)],
                vec![w(1, "node2", 0, 5, 1, 100), w(2, "node1", 100, 105, 2, 200)],
                vec![1, 2],
                vec![],
                vec![],
                true,
            ),
            (
                "strict, an old timeline's write is missing",
                true,
                vec![(1, 150)],
                vec![w(1, "node2", 0, 5, 1, 100), w(2, "node1", 100, 105, 2, 200)],
                vec![2],
                vec![1],
                vec![],
                false,
            ),
            (
                "async, an old timeline's write is missing: measured, not a failure",
                false,
                vec![(1, 150)],
                vec![w(1, "node2", 0, 5, 1, 100), w(2, "node1", 100, 105, 2, 200)],
                vec![2],
                vec![1],
                vec![],
                true,
            ),
            (
                "async, a write on the final timeline is missing",
                false,
                vec![(1, 150)],
                vec![w(1, "node2", 0, 5, 1, 100), w(2, "node1", 100, 105, 2, 200)],
                vec![1],
                vec![2],
                vec![2],
                false,
            ),
        ];
        for (name, strict, timelines, writes, survived, lost, on_final, passes) in cases {
            let mut h = history(strict, writes, &survived);
            h.final_state.history = timelines;
            h.rounds = vec![Round { at: 0, nodes: vec![primary("node1", 2), replica("node2"), replica("node3")] }];
            let v = check(&h);
            assert_eq!(v.final_timeline, Some(2), "{name}");
            assert_eq!(v.lost, lost, "{name}");
            assert_eq!(v.lost_on_final_timeline, on_final, "{name}");
            assert_eq!(v.passed(), passes, "{name}: {v:#?}");
        }
    }

    #[test]
    fn async_wal_bytes_per_timeline() {
        // Timeline 1's lost writes end with its lowest LSN: the highest counts.
        let writes = vec![
            w(1, "node1", 0, 1, 1, 1_200),
            w(2, "node1", 2, 3, 1, 1_500),
            w(3, "node1", 4, 5, 1, 900),
            w(4, "node2", 100, 101, 2, 4_000),
            w(5, "node3", 200, 201, 7, 9_000),
            w(6, "node3", 300, 301, 3, 6_000),
        ];
        let mut h = history(false, writes, &[6]);
        h.final_state.primary = Some("node3".into());
        h.final_state.history = vec![(1, 1_000), (2, 5_000)];
        h.rounds = vec![Round { at: 0, nodes: vec![replica("node1"), replica("node2"), primary("node3", 3)] }];
        let v = check(&h);
        assert_eq!(
            v.wal_loss,
            vec![
                WalLoss { timeline: 1, rows: 3, switch_lsn: Some(1_000), bytes: Some(500) },
                WalLoss { timeline: 2, rows: 1, switch_lsn: Some(5_000), bytes: Some(0) },
                WalLoss { timeline: 7, rows: 1, switch_lsn: None, bytes: None },
            ]
        );
        assert_eq!(v.lost, vec![1, 2, 3, 4, 5]);
        assert!(v.lost_on_final_timeline.is_empty());
        assert!(v.passed(), "{v:#?}");
        let text = report(&h, &v);
        assert!(text.contains("| 1 | 3 | 0/3E8 | 500 |"), "{text}");
        assert!(text.contains("| 7 | 1 | - | unknown |"), "{text}");
    }

    #[test]
    fn final_timeline_without_a_round_comes_from_the_history() {
        let mut h = history(false, vec![], &[]);
        h.rounds.clear();
        assert_eq!(check(&h).final_timeline, Some(1));
        h.final_state.history = vec![(1, 10), (3, 20)];
        assert_eq!(check(&h).final_timeline, Some(4));
        h.final_state.primary = None;
        assert_eq!(check(&h).final_timeline, None);
    }

    #[test]
    fn healthy_reasons() {
        let mut no_stream = healthy_nodes("node2");
        no_stream[2].replication_state = Some("in archive recovery".into());
        let mut two = healthy_nodes("node1");
        two[1] = primary("node2", 2);
        let mut dead_pg = healthy_nodes("node1");
        dead_pg[2].in_recovery = None;
        let mut live = healthy_nodes("node1");
        live[0].liveness = Some(503);
        live[1].liveness = None;
        let mut demoted = healthy_nodes("node1");
        demoted[0].role = Some("demoted".into());
        // (name, nodes, Ok(primary) or the reasons expected in the error)
        type Case = (&'static str, Vec<NodeView>, Result<&'static str, Vec<&'static str>>);
        let cases: Vec<Case> = vec![
            ("healthy", healthy_nodes("node2"), Ok("node2")),
            ("empty round", vec![], Err(vec!["no node was seen"])),
            (
                "a replica not streaming",
                no_stream,
                Err(vec!["node3 does not stream (replication_state in archive recovery)"]),
            ),
            ("two primaries", two, Err(vec!["2 primaries: node1, node2"])),
            ("a PostgreSQL down", dead_pg, Err(vec!["node3's PostgreSQL did not answer"])),
            ("liveness", live, Err(vec!["node1's /liveness answered 503", "node2's /liveness did not answer"])),
            (
                "out of recovery but not primary",
                demoted,
                Err(vec!["no primary", "node1 is out of recovery with role demoted"]),
            ),
        ];
        for (name, nodes, want) in cases {
            let got = healthy(&Round { at: 0, nodes });
            match want {
                Ok(p) => assert_eq!(got, Ok(p.to_string()), "{name}"),
                Err(reasons) => {
                    let why = got.expect_err(name);
                    for r in reasons {
                        assert!(why.contains(r), "{name}: {why:?} lacks {r:?}");
                    }
                }
            }
        }
    }

    fn fault(index: usize, started: Millis, ended: Millis) -> Fault {
        Fault {
            index,
            description: format!("kill -9 daemon node{index}"),
            node: Some(format!("node{index}")),
            started,
            ended,
        }
    }

    fn unhealthy(at: Millis) -> Round {
        let mut nodes = healthy_nodes("node1");
        nodes[1].liveness = None;
        Round { at, nodes }
    }

    #[test]
    fn heal_times() {
        let bound = 90_000;
        // (name, rounds, fault end, time to heal, healed)
        type Case = (&'static str, Vec<Round>, Millis, Option<Millis>, bool);
        let cases: Vec<Case> = vec![
            (
                "healthy right at the end",
                vec![Round { at: 1_000, nodes: healthy_nodes("node1") }],
                1_000,
                Some(0),
                true,
            ),
            (
                "a healthy round before the end does not count",
                vec![Round { at: 999, nodes: healthy_nodes("node1") }, unhealthy(1_000)],
                1_000,
                None,
                false,
            ),
            (
                "healthy exactly at the bound",
                vec![unhealthy(1_000), Round { at: 1_000 + bound, nodes: healthy_nodes("node2") }],
                1_000,
                Some(bound),
                true,
            ),
            (
                "healthy one millisecond past the bound",
                vec![unhealthy(1_000), Round { at: 1_001 + bound, nodes: healthy_nodes("node2") }],
                1_000,
                Some(bound + 1),
                false,
            ),
        ];
        for (name, rounds, end, want, healed) in cases {
            let mut h = history(true, vec![], &[]);
            h.rounds = rounds;
            h.faults = vec![fault(1, 500, end)];
            let v = check(&h);
            assert_eq!(v.heals, vec![FaultHeal { index: 1, time_to_heal: want, healed }], "{name}");
            assert_eq!(v.final_heal.healed, healed, "{name}");
            assert_eq!(v.passed(), healed, "{name}");
        }
    }

    #[test]
    fn final_heal_needs_one_primary_in_the_final_state() {
        let mut h = history(true, vec![], &[]);
        h.faults = vec![fault(1, 0, 0)];
        assert!(check(&h).passed());
        h.final_state.primary = None;
        let v = check(&h);
        assert!(v.heals[0].healed);
        assert!(!v.final_heal.healed);
        assert!(!v.passed());
    }

    #[test]
    fn final_heal_is_after_the_last_fault() {
        let mut h = history(true, vec![], &[]);
        h.rounds = vec![
            Round { at: 2_000, nodes: healthy_nodes("node1") },
            unhealthy(6_000),
            Round { at: 7_500, nodes: healthy_nodes("node1") },
        ];
        h.faults = vec![fault(1, 1_000, 2_000), fault(2, 5_000, 6_000)];
        let v = check(&h);
        assert_eq!(v.heals[0].time_to_heal, Some(0));
        assert_eq!(v.heals[1].time_to_heal, Some(1_500));
        assert_eq!(v.final_heal.after, 6_000);
        assert_eq!(v.final_heal.time_to_heal, Some(1_500));
        assert!(v.passed());
    }

    fn fire(node: &str, at: Millis, fault: Option<usize>, restarted: Option<Millis>) -> Fire {
        Fire { node: node.into(), at, fault, restarted }
    }

    #[test]
    fn a_watchdog_fire_times_the_heal_of_its_fault_from_the_restart() {
        // (name, fires, heal timed from) for fault 2, injected at 5 s and
        // undone at 6 s.
        let cases: Vec<(&str, Vec<Fire>, Millis)> = vec![
            ("no fire", vec![], 6_000),
            ("restarted after the fault was undone", vec![fire("node1", 5_500, Some(2), Some(8_000))], 8_000),
            // A hang longer than ttl: fired and rebooted while still held.
            ("restarted while the fault held", vec![fire("node1", 5_200, Some(2), Some(5_800))], 6_000),
            ("fired, never started again", vec![fire("node1", 7_000, Some(2), None)], 7_000),
            ("another fault's fire", vec![fire("node1", 4_000, Some(1), Some(9_000))], 6_000),
            ("a fire before the first fault", vec![fire("node1", 100, None, Some(9_000))], 6_000),
            (
                "the latest of two",
                vec![fire("node1", 5_500, Some(2), Some(8_000)), fire("node2", 9_000, Some(2), Some(12_000))],
                12_000,
            ),
        ];
        for (name, fires, want) in cases {
            assert_eq!(heal_from(&fault(2, 5_000, 6_000), &fires), want, "{name}");
        }
    }

    #[test]
    fn heal_and_final_heal_count_from_a_fenced_nodes_restart() {
        let mut h = history(false, vec![], &[]);
        h.settings.watchdog = true;
        h.rounds = vec![
            unhealthy(1_500),
            // Healthy between the end of the fault and the fire: not yet
            // the heal of a fault whose node is fenced later.
            Round { at: 2_500, nodes: healthy_nodes("node1") },
            unhealthy(4_000),
            Round { at: 9_000, nodes: healthy_nodes("node2") },
        ];
        h.faults = vec![fault(1, 1_000, 2_000)];
        h.fires = vec![fire("node1", 3_000, Some(1), Some(6_000))];
        h.final_state.primary = Some("node2".into());
        let v = check(&h);
        assert_eq!(v.heals, vec![FaultHeal { index: 1, time_to_heal: Some(3_000), healed: true }]);
        assert_eq!((v.final_heal.after, v.final_heal.time_to_heal), (6_000, Some(3_000)));
        assert!(v.passed());
        // Never healthy after the restart: not healed.
        h.rounds.pop();
        let v = check(&h);
        assert_eq!(v.heals[0].time_to_heal, None);
        assert!(!v.passed());
        // The report names the fire with its fault.
        let text = report(&h, &v);
        assert!(text.contains("| watchdog | `mode: required`"), "{text}");
        assert!(text.contains("| Watchdog fired | Time to heal |"), "{text}");
        assert!(text.contains("| node1 at 3.000 s, back at 6.000 s | NOT HEALED |"), "{text}");
        h.fires.push(fire("node3", 100, None, None));
        let text = report(&h, &check(&h));
        assert!(text.contains("Watchdog fires before the first fault: node3 at 0.100 s, not started again"), "{text}");
    }

    #[test]
    fn invalid_histories_fail() {
        let mut h = history(false, vec![w(1, "node1", 0, 5, 1, 1), w(1, "node1", 6, 9, 1, 2)], &[1]);
        h.writes.push(w(2, "node1", 10, 9, 1, 3));
        h.faults = vec![fault(1, 100, 50)];
        h.rounds.push(Round { at: 100, nodes: healthy_nodes("node1") });
        let v = check(&h);
        assert_eq!(v.invalid.len(), 3, "{:?}", v.invalid);
        assert!(v.invalid[0].contains("write id 1 is recorded twice"));
        assert!(v.invalid[1].contains("write 2 was acknowledged at 9 ms"));
        assert!(v.invalid[2].contains("fault 1 ended at 50 ms"));
        assert!(!v.passed());
        assert!(report(&h, &v).contains("- **Invalid history:**"));
    }

    #[test]
    fn report_says_what_was_checked_and_the_verdict() {
        let mut h = history(true, vec![w(1, "node1", 0, 5, 1, 100), w(2, "node2", 3, 8, 1, 200)], &[1]);
        h.rounds = vec![unhealthy(0), Round { at: 9_000, nodes: healthy_nodes("node1") }];
        h.faults = vec![
            fault(1, 1_000, 4_000),
            Fault { description: "partition node2 | node3".into(), ..fault(2, 5_000, 200_000) },
        ];
        let v = check(&h);
        let text = report(&h, &v);
        for line in [
            "# Fault campaign: seed 7 on etcd3",
            "| seed | 7 |",
            "| mode | strict synchronous (`synchronous_mode_strict`) |",
            "| ttl | 30 s |",
            "| heal bound | 90.000 s |",
            "| clock margin | 1 ms on each side of a write's window |",
            "| widest acknowledged write window | 5 ms |",
            "| watcher rounds | 2 (1 healthy) |",
            "| writes acknowledged | 2 (node1 1, node2 1) |",
            "| 1 | kill -9 daemon node1 | node1 | 3.000 s | 5.000 s |",
            "| 2 | partition node2 \\| node3 | node2 | 195.000 s | NOT HEALED |",
            "- **Split brains:** 2/2 acknowledged writes in a conflict (1 conflicts; 0 overlaps ordered by data)",
            "- **Acknowledged writes lost:** 1/2 (must be 0 in strict mode); on the final timeline (1): 1",
            "- **Faults healed within the bound:** 1/2",
            "- **Final heal:** NOT HEALED after the last fault ended at 200000 ms (no healthy round), final primary node1",
            "**FAIL**",
            "| two nodes wrote on the same timeline | id 1 on node1, timeline 1, [0 ms, 5 ms], LSN 100 | id 2 on node2, timeline 1, [3 ms, 8 ms], LSN 200 | 2 |",
            "Ids: 2",
            "`a.started > b.acked + 1 ms`",
        ] {
            assert!(text.contains(line), "the report lacks {line:?}:\n{text}");
        }
        assert_eq!(text, report(&h, &check(&h)), "the report is deterministic");

        let ok = history(true, vec![w(1, "node1", 0, 5, 1, 100)], &[1]);
        let text = report(&ok, &check(&ok));
        assert!(text.contains("\n**PASS**\n"), "{text}");
        assert!(text.contains("- **Split brains:** 0/1 acknowledged writes in a conflict"), "{text}");
        assert!(!text.contains("### Lost writes"), "{text}");
    }

    #[test]
    fn long_id_lists_are_cut() {
        let ids: Vec<u64> = (1..=60).collect();
        let s = ids_list(&ids);
        assert!(s.starts_with("1, 2, "));
        assert!(s.ends_with("50 and 10 more"), "{s}");
    }
}
