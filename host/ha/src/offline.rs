//! Decisions that do not need a cluster snapshot: the DCS cannot be
//! reached (with failsafe mode, see `failsafe.rs`), and keeping the DCS
//! history in line with ours.

use palisade_model::{HistoryLine, TimelineHistory};
use serde_json::{Map, Value};

use crate::failsafe::{keeps_primary_running, CONTINUE_AS_LEADER};
use crate::input::{Answers, Local, Settings};
use crate::output::{Action, Decision, DemoteMode, Level, Step};

/// What the node knows while the DCS cannot be read (or written).
#[derive(Clone, Copy, Debug)]
pub struct Offline<'a> {
    pub me: &'a str,
    pub local: &'a Local,
    pub settings: &'a Settings,
    /// The `failsafe` key as last read from the DCS.
    pub failsafe: Option<&'a Map<String, Value>>,
    pub answers: &'a Answers,
}

/// The DCS could not be reached this cycle, whatever the error (Patroni's
/// `_handle_dcs_error`). A primary must not keep running without a lock it
/// cannot prove it holds, so it demotes, unless failsafe mode keeps it
/// running (every member of the `failsafe` key accepted it, see
/// [`crate::failsafe`]); everybody else carries on and waits.
pub fn dcs_unavailable(o: &Offline<'_>) -> Step {
    let local = o.local;
    if o.settings.paused {
        return Step::Decided(Decision::new("PAUSE: DCS is not accessible"));
    }
    if !(local.pg.is_running() && local.pg.is_primary()) {
        return Step::Decided(Decision::new("DCS is not accessible"));
    }
    let mut log = Vec::new();
    match keeps_primary_running(o, &mut log) {
        Err(ask) => return Step::Ask(ask),
        Ok(true) => return Step::Decided(Decision::new(CONTINUE_AS_LEADER).with(Action::FailsafeActive)),
        Ok(false) => {}
    }
    log.push((Level::Info, "demoting self because DCS is not accessible and I was a leader".into()));
    let mut d = Decision::new("demoted self because DCS is not accessible and I was a leader")
        .with(Action::Demote(DemoteMode::Offline));
    d.log = log;
    Step::Decided(d)
}

/// What the DCS `history` key should become, given the primary's timeline
/// and the lines of its timeline history file (the newest line already
/// carrying the promotion time and our name). `None`: nothing to write.
///
/// Mirrors Patroni's `update_cluster_history`: timestamps already in the
/// DCS are kept, and only the last `max_timelines_history` lines are kept
/// when that is set.
pub fn updated_history(
    primary_timeline: u32,
    file_lines: &[HistoryLine],
    dcs: Option<&TimelineHistory>,
    max_timelines_history: u32,
) -> Option<Vec<HistoryLine>> {
    let current: &[HistoryLine] = dcs.map_or(&[], |h| &h.lines);
    if primary_timeline <= 1 {
        let raw_is_empty = dcs.is_none_or(|h| h.raw.as_array().is_some_and(Vec::is_empty));
        return if raw_is_empty { None } else { Some(Vec::new()) };
    }
    let up_to_date = current.last().is_some_and(|l| {
        l.timeline.checked_add(1) == Some(primary_timeline) && l.timestamp.is_some() && l.new_leader.is_some()
    });
    if up_to_date {
        return None;
    }
    let mut lines: Vec<HistoryLine> = file_lines.to_vec();
    if max_timelines_history > 0 && lines.len() > max_timelines_history as usize {
        lines.drain(..lines.len() - max_timelines_history as usize);
    }
    for line in &mut lines {
        if line.timestamp.is_none() {
            if let Some(known) = current.iter().find(|c| c.timeline == line.timeline && c.lsn == line.lsn) {
                line.timestamp.clone_from(&known.timestamp);
                line.new_leader.clone_from(&known.new_leader);
            }
        }
    }
    (!lines.is_empty()).then_some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Pg;
    use crate::output::Ask;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn line(tl: u32, lsn: u64, ts: Option<&str>, who: Option<&str>) -> HistoryLine {
        HistoryLine {
            timeline: tl,
            lsn,
            reason: "no recovery target specified".into(),
            timestamp: ts.map(String::from),
            new_leader: who.map(String::from),
        }
    }

    fn primary() -> Local {
        Local { pg: Pg::Running { in_recovery: false, timeline: Some(1), wal_position: 1 }, ..Local::default() }
    }

    fn replica() -> Local {
        Local { pg: Pg::Running { in_recovery: true, timeline: Some(1), wal_position: 1 }, ..Local::default() }
    }

    /// Run the offline decision, answering `POST /failsafe` from `accept`.
    fn run(local: &Local, settings: &Settings, key: Option<Value>, accept: &[(&str, bool)]) -> (Decision, Option<Ask>) {
        let key = key.and_then(|v| v.as_object().cloned());
        let mut answers = Answers::default();
        let mut asked = None;
        loop {
            let o = Offline { me: "a", local, settings, failsafe: key.as_ref(), answers: &answers };
            match dcs_unavailable(&o) {
                Step::Decided(d) => return (d, asked),
                Step::Ask(ask) => {
                    assert!(asked.is_none(), "asked twice: {ask:?}");
                    let replies: BTreeMap<String, bool> = accept.iter().map(|(n, ok)| (n.to_string(), *ok)).collect();
                    answers.failsafe = Some(replies);
                    asked = Some(ask);
                }
            }
        }
    }

    #[test]
    fn offline_decisions() {
        let on = Settings { failsafe_mode: true, ..Settings::default() };
        let off = Settings::default();
        let paused = Settings { failsafe_mode: true, paused: true, ..Settings::default() };
        let three = json!({"a": "http://a/patroni", "b": "http://b/patroni", "c": "http://c/patroni"});
        let ask_bc =
            Some(Ask::Failsafe(vec![("b".into(), "http://b/patroni".into()), ("c".into(), "http://c/patroni".into())]));
        let demote = vec![Action::Demote(DemoteMode::Offline)];
        let keep = vec![Action::FailsafeActive];
        const DEMOTED: &str = "demoted self because DCS is not accessible and I was a leader";
        type Row<'a> =
            (&'a str, Local, &'a Settings, Option<Value>, &'a [(&'a str, bool)], &'a str, Vec<Action>, Option<Ask>);
        let rows: Vec<Row> = vec![
            (
                "failsafe off: a primary demotes",
                primary(),
                &off,
                Some(three.clone()),
                &[],
                DEMOTED,
                demote.clone(),
                None,
            ),
            ("a replica waits", replica(), &on, Some(three.clone()), &[], "DCS is not accessible", vec![], None),
            (
                "paused: nothing moves",
                primary(),
                &paused,
                Some(three.clone()),
                &[],
                "PAUSE: DCS is not accessible",
                vec![],
                None,
            ),
            (
                "every member accepts",
                primary(),
                &on,
                Some(three.clone()),
                &[("b", true), ("c", true)],
                CONTINUE_AS_LEADER,
                keep.clone(),
                ask_bc.clone(),
            ),
            (
                "one member refuses",
                primary(),
                &on,
                Some(three.clone()),
                &[("b", true), ("c", false)],
                DEMOTED,
                demote.clone(),
                ask_bc.clone(),
            ),
            (
                "one member does not answer",
                primary(),
                &on,
                Some(three.clone()),
                &[("b", true)],
                DEMOTED,
                demote.clone(),
                ask_bc,
            ),
            ("no failsafe key", primary(), &on, None, &[], DEMOTED, demote.clone(), None),
            (
                "the key does not name us",
                primary(),
                &on,
                Some(json!({"b": "http://b/patroni"})),
                &[],
                DEMOTED,
                demote.clone(),
                None,
            ),
            ("an empty key does not name us", primary(), &on, Some(json!({})), &[], DEMOTED, demote.clone(), None),
            (
                "a single-node cluster keeps running",
                primary(),
                &on,
                Some(json!({"a": "http://a/patroni"})),
                &[],
                CONTINUE_AS_LEADER,
                keep,
                None,
            ),
            (
                "a member without a URL cannot accept",
                primary(),
                &on,
                Some(json!({"a": "http://a/patroni", "b": 5})),
                &[("b", false)],
                DEMOTED,
                demote,
                Some(Ask::Failsafe(vec![("b".into(), String::new())])),
            ),
        ];
        for (name, local, settings, key, accept, reason, actions, ask) in rows {
            let (d, asked) = run(&local, settings, key, accept);
            assert_eq!(d.reason, reason, "{name}");
            assert_eq!(d.actions, actions, "{name}");
            assert_eq!(asked, ask, "{name}");
        }
        let (d, _) = run(&primary(), &on, Some(three), &[("b", true), ("c", false)]);
        assert!(d.log.iter().any(|(_, l)| l == "failsafe: not accepted by c"), "{:?}", d.log);
    }

    #[test]
    fn history_updates() {
        let file = vec![
            line(1, 100, Some("2026-01-01T00:00:00+00:00"), None),
            line(2, 200, Some("2026-02-01T00:00:00+00:00"), Some("n2")),
        ];
        // Timeline 1 with an empty history: nothing to do; with lines: reset.
        assert_eq!(updated_history(1, &[], Some(&TimelineHistory::from_value("1", "[]")), 0), None);
        assert_eq!(updated_history(1, &[], Some(&TimelineHistory::from_value("1", r#"[[1,5,"x"]]"#)), 0), Some(vec![]));
        // Promoted to timeline 3, DCS only knows timeline 1: write the file's lines.
        let dcs = TimelineHistory::from_value("1", r#"[[1,100,"x","2026-01-01T00:00:00+00:00","n1"]]"#);
        let mut file3 = vec![line(1, 100, None, None)];
        file3.push(line(2, 200, Some("2026-02-01T00:00:00+00:00"), Some("n2")));
        let out = updated_history(3, &file3, Some(&dcs), 0).unwrap();
        assert_eq!(out[0].new_leader.as_deref(), Some("n1"), "timestamps from the DCS are kept");
        assert_eq!(out[1].new_leader.as_deref(), Some("n2"));
        // Already up to date.
        let dcs3 = TimelineHistory::from_value("1", &TimelineHistory::to_json(&out));
        assert_eq!(updated_history(3, &file3, Some(&dcs3), 0), None);
        // max_timelines_history keeps the newest lines.
        assert_eq!(updated_history(3, &file, None, 1).unwrap().len(), 1);
    }
}
