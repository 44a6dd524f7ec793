//! Decisions that do not need a cluster snapshot: the DCS cannot be
//! reached, and keeping the DCS history in line with ours.

use palisade_model::{HistoryLine, TimelineHistory};

use crate::input::{Local, Settings};
use crate::output::{Action, Decision, DemoteMode};

/// The DCS could not be read this cycle (Patroni's `_handle_dcs_error`).
/// A primary must not keep running without a lock it cannot prove it
/// holds, so it demotes; everybody else carries on and waits.
pub fn dcs_unavailable(local: &Local, settings: &Settings) -> Decision {
    let prefix = if settings.paused { "PAUSE: " } else { "" };
    if !settings.paused && local.pg.is_running() && local.pg.is_primary() {
        return Decision::new(format!("{prefix}demoted self because DCS is not accessible and I was a leader"))
            .with(Action::Demote(DemoteMode::Offline));
    }
    Decision::new(format!("{prefix}DCS is not accessible"))
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

    fn line(tl: u32, lsn: u64, ts: Option<&str>, who: Option<&str>) -> HistoryLine {
        HistoryLine {
            timeline: tl,
            lsn,
            reason: "no recovery target specified".into(),
            timestamp: ts.map(String::from),
            new_leader: who.map(String::from),
        }
    }

    #[test]
    fn dcs_loss_demotes_only_a_running_primary() {
        let settings = Settings::default();
        let primary =
            Local { pg: Pg::Running { in_recovery: false, timeline: Some(1), wal_position: 1 }, ..Local::default() };
        let replica =
            Local { pg: Pg::Running { in_recovery: true, timeline: Some(1), wal_position: 1 }, ..Local::default() };
        let d = dcs_unavailable(&primary, &settings);
        assert_eq!(d.actions, vec![Action::Demote(DemoteMode::Offline)]);
        assert_eq!(d.reason, "demoted self because DCS is not accessible and I was a leader");
        assert_eq!(dcs_unavailable(&replica, &settings).actions, vec![]);
        let paused = Settings { paused: true, ..Settings::default() };
        let d = dcs_unavailable(&primary, &paused);
        assert_eq!((d.actions.len(), d.reason.as_str()), (0, "PAUSE: DCS is not accessible"));
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
