//! `pg_controldata` output, typed.

use std::collections::BTreeMap;
use std::fmt;

use palisade_model::{format_lsn, parse_lsn};

/// `Database cluster state` from pg_control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterState {
    StartingUp,
    /// A clean shutdown of a primary (or of single-user crash recovery).
    ShutDown,
    /// A clean shutdown of a standby.
    ShutDownInRecovery,
    ShuttingDown,
    InCrashRecovery,
    InArchiveRecovery,
    InProduction,
    /// Anything else, as printed.
    Other(String),
}

impl ClusterState {
    pub fn parse(text: &str) -> Self {
        match text {
            "starting up" => Self::StartingUp,
            "shut down" => Self::ShutDown,
            "shut down in recovery" => Self::ShutDownInRecovery,
            "shutting down" => Self::ShuttingDown,
            "in crash recovery" => Self::InCrashRecovery,
            "in archive recovery" => Self::InArchiveRecovery,
            "in production" => Self::InProduction,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::StartingUp => "starting up",
            Self::ShutDown => "shut down",
            Self::ShutDownInRecovery => "shut down in recovery",
            Self::ShuttingDown => "shutting down",
            Self::InCrashRecovery => "in crash recovery",
            Self::InArchiveRecovery => "in archive recovery",
            Self::InProduction => "in production",
            Self::Other(s) => s,
        }
    }

    /// `shut down` or `shut down in recovery`: pg_control is consistent and
    /// the data directory can be rewound, followed or started as it is.
    pub fn is_clean_shutdown(&self) -> bool {
        matches!(self, Self::ShutDown | Self::ShutDownInRecovery)
    }
}

impl fmt::Display for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of `pg_controldata` the daemon works with. Every line is also
/// kept in [`ControlData::raw`] (with the `Current ` prefix some versions
/// print removed, as Patroni does).
#[derive(Clone, Debug, PartialEq)]
pub struct ControlData {
    pub raw: BTreeMap<String, String>,
    pub system_identifier: u64,
    pub state: ClusterState,
    /// `Latest checkpoint location`.
    pub checkpoint_lsn: u64,
    /// `Latest checkpoint's REDO location`.
    pub redo_lsn: u64,
    /// `Latest checkpoint's REDO WAL file`.
    pub redo_wal_file: Option<String>,
    /// `Latest checkpoint's TimeLineID`.
    pub checkpoint_timeline: u32,
    /// `Latest checkpoint's PrevTimeLineID`.
    pub checkpoint_prev_timeline: Option<u32>,
    /// `Minimum recovery ending location` (`0/0` unless a standby).
    pub min_recovery_end_lsn: u64,
    /// `Min recovery ending loc's timeline` (0 unless a standby).
    pub min_recovery_end_timeline: u32,
    /// `wal_log_hints setting: on`.
    pub wal_log_hints: bool,
    /// `Data page checksum version` (0: checksums off).
    pub data_checksum_version: u32,
    pub wal_level: Option<String>,
    /// `max_connections setting` and friends: the values the server last ran
    /// with; a standby cannot start with lower ones.
    pub max_connections: Option<i64>,
    pub max_worker_processes: Option<i64>,
    pub max_wal_senders: Option<i64>,
    pub max_prepared_xacts: Option<i64>,
    pub max_locks_per_xact: Option<i64>,
    /// `Bytes per WAL segment`.
    pub wal_segment_size: Option<u64>,
}

/// What was wrong with the output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pg_controldata output: {0}")]
pub struct ControlDataError(pub String);

impl ControlData {
    /// Parse the output of `LC_ALL=C pg_controldata <data_dir>`.
    pub fn parse(output: &str) -> Result<Self, ControlDataError> {
        let raw: BTreeMap<String, String> = output
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.replacen("Current ", "", 1), v.trim().to_string()))
            .collect();
        let get = |key: &str| raw.get(key).map(String::as_str);
        let need = |key: &str| get(key).ok_or_else(|| ControlDataError(format!("no '{key}' line")));
        let lsn = |key: &str| -> Result<u64, ControlDataError> {
            let v = need(key)?;
            parse_lsn(v).ok_or_else(|| ControlDataError(format!("'{key}' is not an LSN: {v}")))
        };
        let int = |key: &str| -> Result<u32, ControlDataError> {
            let v = need(key)?;
            v.parse().map_err(|_| ControlDataError(format!("'{key}' is not a number: {v}")))
        };
        let opt_int = |key: &str| get(key).and_then(|v| v.parse::<i64>().ok());
        let system_identifier = {
            let v = need("Database system identifier")?;
            v.parse().map_err(|_| ControlDataError(format!("bad system identifier: {v}")))?
        };
        Ok(Self {
            system_identifier,
            state: ClusterState::parse(need("Database cluster state")?),
            checkpoint_lsn: lsn("Latest checkpoint location")?,
            redo_lsn: lsn("Latest checkpoint's REDO location")?,
            redo_wal_file: get("Latest checkpoint's REDO WAL file").map(String::from),
            checkpoint_timeline: int("Latest checkpoint's TimeLineID")?,
            checkpoint_prev_timeline: get("Latest checkpoint's PrevTimeLineID").and_then(|v| v.parse().ok()),
            min_recovery_end_lsn: lsn("Minimum recovery ending location")?,
            min_recovery_end_timeline: int("Min recovery ending loc's timeline")?,
            wal_log_hints: get("wal_log_hints setting") == Some("on"),
            data_checksum_version: get("Data page checksum version").and_then(|v| v.parse().ok()).unwrap_or(0),
            wal_level: get("wal_level setting").map(String::from),
            max_connections: opt_int("max_connections setting"),
            max_worker_processes: opt_int("max_worker_processes setting"),
            max_wal_senders: opt_int("max_wal_senders setting"),
            max_prepared_xacts: opt_int("max_prepared_xacts setting"),
            max_locks_per_xact: opt_int("max_locks_per_xact setting"),
            wal_segment_size: get("Bytes per WAL segment").and_then(|v| v.parse().ok()),
            raw,
        })
    }

    /// pg_rewind can work on this cluster: `wal_log_hints` is on or data
    /// checksums are enabled (Patroni's `configuration_allows_rewind`).
    pub fn allows_rewind(&self) -> bool {
        self.wal_log_hints || self.data_checksum_version != 0
    }

    /// Where this data directory stopped, as Patroni reads it from pg_control
    /// (`_get_local_timeline_lsn_from_controldata`): a standby that shut
    /// down cleanly reports its minimum recovery ending point; a primary
    /// (or a standby that crashed while it was a primary) its latest
    /// checkpoint. `None` when the state is neither of those (crashed,
    /// running).
    pub fn local_position(&self) -> Option<LocalPosition> {
        let mut state = self.state.clone();
        if matches!(state, ClusterState::ShutDownInRecovery | ClusterState::InArchiveRecovery) {
            if self.min_recovery_end_lsn != 0 && self.min_recovery_end_timeline != 0 {
                return Some(LocalPosition {
                    in_recovery: true,
                    timeline: self.min_recovery_end_timeline,
                    lsn: self.min_recovery_end_lsn,
                });
            }
            state = ClusterState::ShutDown;
        }
        (state == ClusterState::ShutDown).then_some(LocalPosition {
            in_recovery: false,
            timeline: self.checkpoint_timeline,
            lsn: self.checkpoint_lsn,
        })
    }
}

/// The timeline and WAL position a stopped data directory ended at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalPosition {
    /// Stopped as a standby (the LSN is a replay position) rather than as a
    /// primary (the LSN is its shutdown checkpoint).
    pub in_recovery: bool,
    pub timeline: u32,
    pub lsn: u64,
}

impl fmt::Display for LocalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timeline {} LSN {}", self.timeline, format_lsn(self.lsn))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Real PostgreSQL 15 output after initdb.
    pub(crate) const PG15_SHUT_DOWN: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7710990912988357266
Database cluster state:               shut down
pg_control last modified:             Sun Nov 22 13:42:58 2026
Latest checkpoint location:           0/1500718
Latest checkpoint's REDO location:    0/1500718
Latest checkpoint's REDO WAL file:    000000010000000000000001
Latest checkpoint's TimeLineID:       1
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:724
Latest checkpoint's NextOID:          13572
Latest checkpoint's oldestCommitTsXid:0
Time of latest checkpoint:            Sun Nov 22 13:42:58 2026
Fake LSN counter for unlogged rels:   0/3E8
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
Backup start location:                0/0
End-of-backup record required:        no
wal_level setting:                    replica
wal_log_hints setting:                off
max_connections setting:              100
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       off
Bytes per WAL segment:                16777216
Data page checksum version:           0
Mock authentication nonce:            97d9d3ed1bf5c3fff3658b03220c03512e23438238ae001d8627c65f59a8ced8
";

    fn with(state: &str, min_lsn: &str, min_tl: &str) -> String {
        PG15_SHUT_DOWN
            .replace("state:               shut down", &format!("state:               {state}"))
            .replace("location:     0/0", &format!("location:     {min_lsn}"))
            .replace("timeline:   0", &format!("timeline:   {min_tl}"))
    }

    #[test]
    fn parses_real_output() {
        let c = ControlData::parse(PG15_SHUT_DOWN).unwrap();
        assert_eq!(c.system_identifier, 7710990912988357266);
        assert_eq!(c.state, ClusterState::ShutDown);
        assert_eq!(c.checkpoint_lsn, 0x1500718);
        assert_eq!(c.redo_lsn, 0x1500718);
        assert_eq!(c.redo_wal_file.as_deref(), Some("000000010000000000000001"));
        assert_eq!(c.checkpoint_timeline, 1);
        assert_eq!(c.checkpoint_prev_timeline, Some(1));
        assert_eq!((c.min_recovery_end_lsn, c.min_recovery_end_timeline), (0, 0));
        assert!(!c.wal_log_hints);
        assert_eq!(c.data_checksum_version, 0);
        assert!(!c.allows_rewind());
        assert_eq!(c.max_connections, Some(100));
        assert_eq!(c.max_locks_per_xact, Some(64));
        assert_eq!(c.wal_level.as_deref(), Some("replica"));
        assert_eq!(c.wal_segment_size, Some(16 * 1024 * 1024));
        assert_eq!(c.raw.get("Latest checkpoint's oldestCommitTsXid").map(String::as_str), Some("0"));
    }

    #[test]
    fn strips_current_prefix() {
        let old = PG15_SHUT_DOWN.replace("wal_log_hints setting:", "Current wal_log_hints setting:");
        let c = ControlData::parse(&old.replace("off\nmax_conn", "on\nmax_conn")).unwrap();
        assert!(c.wal_log_hints);
        assert!(c.allows_rewind());
    }

    #[test]
    fn rejects_incomplete_output() {
        for (broken, what) in [
            ("", "Database system identifier"),
            (&PG15_SHUT_DOWN.replace("Latest checkpoint location:           0/1500718\n", ""), "Latest checkpoint"),
            (&PG15_SHUT_DOWN.replace("0/1500718", "garbage"), "not an LSN"),
        ] {
            let err = ControlData::parse(broken).unwrap_err();
            assert!(err.0.contains(what), "{err}");
        }
    }

    #[test]
    fn local_position_table() {
        let cases: &[(&str, &str, &str, Option<LocalPosition>)] = &[
            ("shut down", "0/0", "0", Some(LocalPosition { in_recovery: false, timeline: 1, lsn: 0x1500718 })),
            (
                "shut down in recovery",
                "0/3000148",
                "2",
                Some(LocalPosition { in_recovery: true, timeline: 2, lsn: 0x3000148 }),
            ),
            (
                "in archive recovery",
                "0/3000148",
                "2",
                Some(LocalPosition { in_recovery: true, timeline: 2, lsn: 0x3000148 }),
            ),
            // A standby pg_control without a minimum recovery point was a primary when it stopped.
            (
                "shut down in recovery",
                "0/0",
                "0",
                Some(LocalPosition { in_recovery: false, timeline: 1, lsn: 0x1500718 }),
            ),
            ("in production", "0/0", "0", None),
            ("in crash recovery", "0/0", "0", None),
        ];
        for (state, lsn, tl, want) in cases {
            let c = ControlData::parse(&with(state, lsn, tl)).unwrap();
            assert_eq!(c.state.as_str(), *state);
            assert_eq!(c.local_position(), *want, "{state} {lsn} {tl}");
        }
    }
}
