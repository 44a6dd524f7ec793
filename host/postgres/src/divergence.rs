//! Can this data directory follow the leader's timeline, or has it
//! diverged? Patroni's `Rewind._check_timeline_and_lsn` as a pure
//! function ([`check_divergence`]), plus the IO that gathers its inputs
//! ([`gather_local_state`]).

use std::fmt;
use std::path::Path;

use palisade_model::format_lsn;

use crate::binaries::{checkpoint_end, end_of_wal, pg_controldata, Binaries, CommandError};
use crate::controldata::{ClusterState, LocalPosition};
use crate::datadir::HistoryEntry;

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// The data directory is on the leader's history: it can stream from the
    /// leader as it is.
    CanFollow { reason: String },
    /// It has WAL the leader does not have: pg_rewind or a new base backup
    /// is needed before it can follow.
    Diverged { reason: String },
    /// There is not enough information to tell (no history for a newer
    /// leader timeline): check again later.
    Unknown { reason: String },
}

impl Divergence {
    pub fn reason(&self) -> &str {
        match self {
            Self::CanFollow { reason } | Self::Diverged { reason } | Self::Unknown { reason } => reason,
        }
    }

    pub fn is_diverged(&self) -> bool {
        matches!(self, Self::Diverged { .. })
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

const NEEDS_REWIND: &str = "pg_rewind or reinitialize is required";

/// Decide whether a data directory that stopped at `local` can follow a
/// leader on `leader_timeline` whose timeline history is `history` (the
/// leader's history file, or the DCS `history` key: one entry per switch,
/// `parent_timeline` ending at `switch_lsn`).
///
/// `checkpoint_end` is where the local shutdown checkpoint record ends (from
/// pg_waldump), needed when `local` is a cleanly stopped former primary
/// whose checkpoint is before the switch point: only if the checkpoint ends
/// exactly at the switch point did the new timeline start right after our
/// last record.
pub fn check_divergence(
    local: &LocalPosition,
    checkpoint_end: Option<u64>,
    leader_timeline: u32,
    history: &[HistoryEntry],
) -> Divergence {
    let here = format!("local timeline {} LSN {}", local.timeline, format_lsn(local.lsn));
    if local.timeline > leader_timeline {
        return Divergence::Diverged {
            reason: format!("{here} is ahead of the leader's timeline {leader_timeline}; {NEEDS_REWIND}"),
        };
    }
    if local.timeline == leader_timeline {
        return Divergence::CanFollow { reason: format!("{here} is on the leader's timeline") };
    }
    if history.is_empty() {
        return Divergence::Unknown {
            reason: format!("{here}: no timeline history of the leader's timeline {leader_timeline} to compare with"),
        };
    }
    for (i, entry) in history.iter().enumerate() {
        let new_timeline = history.get(i + 1).map_or(leader_timeline, |next| next.parent_timeline);
        let switch = format_lsn(entry.switch_lsn);
        if entry.parent_timeline == local.timeline {
            let ahead = || Divergence::Diverged {
                reason: format!(
                    "{here} is ahead of the switch point {switch} of the new timeline {new_timeline}; {NEEDS_REWIND}"
                ),
            };
            return if local.in_recovery {
                if local.lsn > entry.switch_lsn {
                    ahead()
                } else {
                    Divergence::CanFollow {
                        reason: format!(
                            "{here} is not past the switch point {switch} of the new timeline {new_timeline}"
                        ),
                    }
                }
            } else if local.lsn >= entry.switch_lsn {
                ahead()
            } else {
                match checkpoint_end {
                    Some(end) if end == entry.switch_lsn => Divergence::CanFollow {
                        reason: format!(
                            "the shutdown checkpoint at {here} ends at the switch point {switch} of the new timeline {new_timeline}"
                        ),
                    },
                    Some(end) => Divergence::Diverged {
                        reason: format!(
                            "the shutdown checkpoint at {here} ends at {}, not at the switch point {switch} of the new timeline \
                             {new_timeline}; {NEEDS_REWIND}",
                            format_lsn(end)
                        ),
                    },
                    None => Divergence::Diverged {
                        reason: format!(
                            "cannot tell where the shutdown checkpoint at {here} ends, to compare with the switch point {switch} \
                             of the new timeline {new_timeline}; {NEEDS_REWIND}"
                        ),
                    },
                }
            };
        }
        if entry.parent_timeline > local.timeline {
            return Divergence::Diverged {
                reason: format!(
                    "{here} is not in the leader's history (the leader's history continues from timeline {}); {NEEDS_REWIND}",
                    entry.parent_timeline
                ),
            };
        }
    }
    // Every switch in the history is older than our timeline: the history
    // (the DCS `history` key, which the leader updates after it promoted)
    // has not caught up with the leader's timeline yet. Wait for it rather
    // than declare a divergence it cannot show.
    let last = history.last().map_or(0, |e| e.parent_timeline);
    Divergence::Unknown {
        reason: format!(
            "{here}: the leader's timeline history ends with a switch from timeline {last}, before ours; \
             waiting for it to reach timeline {leader_timeline}"
        ),
    }
}

/// The local inputs of [`check_divergence`] for a stopped data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalState {
    pub position: LocalPosition,
    /// End of the shutdown checkpoint record (former primaries only).
    pub checkpoint_end: Option<u64>,
}

/// Errors gathering the local state.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Command(#[from] CommandError),
    /// pg_control is not in a clean shutdown state: run crash recovery
    /// (single-user mode) first.
    #[error("the data directory is not cleanly shut down (state: {0}); run crash recovery first")]
    NotCleanlyShutDown(String),
}

/// pg_control says the server was running as a primary when it stopped.
fn crashed_primary(state: &ClusterState) -> bool {
    matches!(state, ClusterState::InProduction | ClusterState::InCrashRecovery | ClusterState::ShuttingDown)
}

/// Read pg_control of a stopped data directory (and, for a former primary,
/// the end of its shutdown checkpoint with pg_waldump).
pub async fn gather_local_state(bins: &Binaries, data_dir: &Path) -> Result<LocalState, GatherError> {
    let control = pg_controldata(bins, data_dir).await?;
    if crashed_primary(&control.state) {
        // A primary that crashed: nothing is written to it (no single-user
        // crash recovery, whose shutdown checkpoint would itself land past
        // the switch point); its WAL ends after the last record it holds,
        // and like a standby's replay position that end must not be past
        // the switch point. Starting it as a standby replays that WAL.
        let end = end_of_wal(bins, data_dir, &control).await?.ok_or_else(|| {
            GatherError::NotCleanlyShutDown(format!("{}, and the end of its WAL cannot be read", control.state))
        })?;
        let position = LocalPosition { in_recovery: true, timeline: control.checkpoint_timeline, lsn: end };
        return Ok(LocalState { position, checkpoint_end: None });
    }
    let position =
        control.local_position().ok_or_else(|| GatherError::NotCleanlyShutDown(control.state.to_string()))?;
    let checkpoint_end = if position.in_recovery {
        None
    } else {
        checkpoint_end(bins, data_dir, position.timeline, position.lsn).await?
    };
    Ok(LocalState { position, checkpoint_end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(entries: &[(u32, u64)]) -> Vec<HistoryEntry> {
        entries.iter().map(|(t, l)| HistoryEntry { parent_timeline: *t, switch_lsn: *l, reason: "x".into() }).collect()
    }

    fn pos(in_recovery: bool, timeline: u32, lsn: u64) -> LocalPosition {
        LocalPosition { in_recovery, timeline, lsn }
    }

    #[test]
    fn table() {
        enum V {
            Follow,
            Diverged,
            Unknown,
        }
        type Case = (&'static str, LocalPosition, Option<u64>, u32, Vec<HistoryEntry>, V, &'static str);
        let cases: &[Case] = &[
            ("same timeline", pos(false, 2, 0x5000000), None, 2, h(&[(1, 0x3000110)]), V::Follow, "is on the leader's timeline"),
            (
                "local ahead of the leader's timeline",
                pos(false, 3, 0x5000000),
                None,
                2,
                h(&[(1, 0x3000110)]),
                V::Diverged,
                "local timeline 3 LSN 0/5000000 is ahead of the leader's timeline 2; pg_rewind or reinitialize is required",
            ),
            (
                "replica behind the switch point",
                pos(true, 1, 0x3000100),
                None,
                2,
                h(&[(1, 0x3000110)]),
                V::Follow,
                "local timeline 1 LSN 0/3000100 is not past the switch point 0/3000110 of the new timeline 2",
            ),
            ("replica exactly at the switch point", pos(true, 1, 0x3000110), None, 2, h(&[(1, 0x3000110)]), V::Follow, "not past"),
            (
                "replica past the switch point",
                pos(true, 1, 0x3000148),
                None,
                2,
                h(&[(1, 0x3000110)]),
                V::Diverged,
                "local timeline 1 LSN 0/3000148 is ahead of the switch point 0/3000110 of the new timeline 2; pg_rewind or reinitialize is required",
            ),
            (
                "former primary wrote past the switch point",
                pos(false, 1, 0x3000148),
                Some(0x30001C0),
                2,
                h(&[(1, 0x3000110)]),
                V::Diverged,
                "local timeline 1 LSN 0/3000148 is ahead of the switch point 0/3000110 of the new timeline 2; pg_rewind or reinitialize is required",
            ),
            (
                "former primary whose checkpoint is the last record",
                pos(false, 1, 0x3000028),
                Some(0x30000A0),
                2,
                h(&[(1, 0x30000A0)]),
                V::Follow,
                "the shutdown checkpoint at local timeline 1 LSN 0/3000028 ends at the switch point 0/30000A0 of the new timeline 2",
            ),
            (
                "former primary with records after the checkpoint",
                pos(false, 1, 0x3000028),
                Some(0x30000A0),
                2,
                h(&[(1, 0x3000200)]),
                V::Diverged,
                "ends at 0/30000A0, not at the switch point 0/3000200",
            ),
            (
                "former primary, checkpoint end unknown",
                pos(false, 1, 0x3000028),
                None,
                2,
                h(&[(1, 0x3000200)]),
                V::Diverged,
                "cannot tell where the shutdown checkpoint",
            ),
            (
                "several switches, ours is the middle one",
                pos(true, 2, 0x4000000),
                None,
                4,
                h(&[(1, 0x3000000), (2, 0x5000000), (3, 0x6000000)]),
                V::Follow,
                "switch point 0/5000000 of the new timeline 3",
            ),
            (
                "several switches, past the middle one",
                pos(true, 2, 0x5000001),
                None,
                4,
                h(&[(1, 0x3000000), (2, 0x5000000), (3, 0x6000000)]),
                V::Diverged,
                "ahead of the switch point 0/5000000 of the new timeline 3",
            ),
            (
                "our timeline is not in the history",
                pos(true, 2, 0x4000000),
                None,
                5,
                h(&[(1, 0x3000000), (3, 0x5000000), (4, 0x6000000)]),
                V::Diverged,
                "local timeline 2 LSN 0/4000000 is not in the leader's history (the leader's history continues from timeline 3)",
            ),
            (
                "history ends before our timeline (not up to date yet)",
                pos(true, 3, 0x4000000),
                None,
                5,
                h(&[(1, 0x3000000)]),
                V::Unknown,
                "ends with a switch from timeline 1, before ours",
            ),
            ("no history", pos(true, 1, 0x4000000), None, 2, vec![], V::Unknown, "no timeline history"),
        ];
        for (what, local, end, leader_tl, history, want, reason) in cases {
            let got = check_divergence(local, *end, *leader_tl, history);
            let kind_ok = matches!(
                (&got, want),
                (Divergence::CanFollow { .. }, V::Follow)
                    | (Divergence::Diverged { .. }, V::Diverged)
                    | (Divergence::Unknown { .. }, V::Unknown)
            );
            assert!(kind_ok, "{what}: got {got:?}");
            assert!(got.reason().contains(reason), "{what}: reason {:?} lacks {reason:?}", got.reason());
        }
    }
}
