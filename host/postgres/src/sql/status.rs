//! One query for everything the daemon reports about its PostgreSQL each
//! cycle (Patroni's `cluster_info_query` and `get_postgresql_status`).

use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::{Sql, SqlError};
use crate::conf::is_recovery_parameter;

/// A `pg_stat_replication` row as `GET /patroni` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationRow {
    pub usename: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sync_priority: Option<i64>,
}

/// A setting the server flags `pending_restart`, with its current value.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PendingSetting {
    pub name: String,
    /// `current_setting(name)`: the value in effect.
    pub setting: String,
    pub unit: Option<String>,
    pub vartype: String,
}

/// The state of the local server, read in one query.
#[derive(Clone, Debug, PartialEq)]
pub struct PgStatus {
    /// `pg_postmaster_start_time()` as Python prints a datetime
    /// (`2024-05-01 10:00:00.123456+00:00`), as Patroni serves it.
    pub postmaster_start_time: Option<String>,
    pub in_recovery: bool,
    /// The primary's timeline (from its current WAL file); `None` on a standby.
    pub primary_timeline: Option<u32>,
    /// `pg_current_wal_lsn()` on a primary.
    pub current_lsn: Option<u64>,
    /// `pg_current_wal_flush_lsn()` on a primary: Patroni's `xlog.location`.
    pub flush_lsn: Option<u64>,
    /// `pg_last_wal_replay_lsn()`.
    pub replay_lsn: Option<u64>,
    /// `pg_last_wal_receive_lsn()`.
    pub receive_lsn: Option<u64>,
    /// `pg_stat_wal_receiver.written_lsn`.
    pub written_lsn: Option<u64>,
    /// `pg_stat_wal_receiver.latest_end_lsn`.
    pub latest_end_lsn: Option<u64>,
    pub replay_paused: bool,
    /// `pg_last_xact_replay_timestamp()`, formatted like the start time.
    pub last_replay_timestamp: Option<String>,
    /// `pg_stat_wal_receiver.received_tli` (when it has received something).
    pub received_tli: Option<u32>,
    /// `pg_stat_wal_receiver.status` (`streaming`, `waiting`...).
    pub receiver_status: Option<String>,
    pub receiver_slot_name: Option<String>,
    pub receiver_conninfo: Option<String>,
    /// `current_setting('restore_command')`.
    pub restore_command: Option<String>,
    /// `pg_control_checkpoint().timeline_id`.
    pub checkpoint_timeline: Option<u32>,
    /// `server_version_num` (150018).
    pub server_version: u32,
    pub system_identifier: Option<u64>,
    /// `pg_stat_replication`.
    pub replication: Vec<ReplicationRow>,
    /// Settings waiting for a restart (recovery settings and `hot_standby`
    /// left out, as Patroni leaves them out).
    pub pending_restart: Vec<PendingSetting>,
}

impl PgStatus {
    /// The timeline to report: the primary's, else the one the WAL receiver
    /// streams, else the latest checkpoint's (Patroni's order).
    pub fn timeline(&self) -> Option<u32> {
        self.primary_timeline.or(self.received_tli).or(self.checkpoint_timeline)
    }

    /// Patroni's `receive_lsn()`: the larger of what was received and written.
    pub fn received_lsn(&self) -> Option<u64> {
        match (self.receive_lsn, self.written_lsn) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// `xlog.received_location` of `GET /patroni`: written, else received,
    /// else replayed.
    pub fn received_location(&self) -> Option<u64> {
        self.written_lsn.or(self.receive_lsn).or(self.replay_lsn)
    }

    /// The WAL position the member key publishes (`xlog_location`): the
    /// flush position on a primary, the larger of received and replayed on a
    /// standby.
    pub fn wal_position(&self) -> u64 {
        if self.in_recovery {
            self.received_lsn().unwrap_or(0).max(self.replay_lsn.unwrap_or(0))
        } else {
            self.flush_lsn.unwrap_or(0)
        }
    }

    /// Patroni's `replication_state`: `streaming` when the WAL receiver
    /// streams, `in archive recovery` when a `restore_command` is set,
    /// nothing on a primary.
    pub fn replication_state(&self) -> Option<&'static str> {
        if !self.in_recovery {
            return None;
        }
        if self.receiver_status.as_deref() == Some("streaming") {
            return Some("streaming");
        }
        self.restore_command.as_deref().filter(|c| !c.is_empty()).map(|_| "in archive recovery")
    }
}

const TS_FORMAT: &str = "'YYYY-MM-DD HH24:MI:SS.USOF'";

fn status_query() -> String {
    let lsn = |expr: &str| format!("pg_catalog.pg_wal_lsn_diff({expr}, '0/0')::bigint");
    format!(
        "SELECT pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(), {TS_FORMAT}), \
         pg_catalog.pg_is_in_recovery(), \
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(\
         pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END, \
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE {} END, \
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE {} END, \
         {}, {}, \
         pg_catalog.pg_is_in_recovery() AND pg_catalog.pg_is_wal_replay_paused(), \
         pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp(), {TS_FORMAT}), \
         CASE WHEN wr.latest_end_lsn IS NULL THEN NULL ELSE wr.received_tli END, \
         {}, {}, wr.status, wr.slot_name, wr.conninfo, \
         pg_catalog.current_setting('restore_command'), \
         (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()), \
         pg_catalog.current_setting('server_version_num')::int, \
         (SELECT system_identifier FROM pg_catalog.pg_control_system())::text, \
         (SELECT pg_catalog.json_agg(r.*) FROM (SELECT (SELECT rolname FROM pg_catalog.pg_authid WHERE oid = usesysid) AS usename, \
         application_name, client_addr, w.state, sync_state, sync_priority \
         FROM pg_catalog.pg_stat_get_wal_senders() w, pg_catalog.pg_stat_get_activity(pid)) AS r)::text, \
         (SELECT pg_catalog.json_agg(s.*) FROM (SELECT name, pg_catalog.current_setting(name) AS setting, unit, vartype \
         FROM pg_catalog.pg_settings WHERE pending_restart) AS s)::text \
         FROM pg_catalog.pg_stat_get_wal_receiver() AS wr",
        lsn("pg_catalog.pg_current_wal_lsn()"),
        lsn("pg_catalog.pg_current_wal_flush_lsn()"),
        lsn("pg_catalog.pg_last_wal_replay_lsn()"),
        lsn("pg_catalog.pg_last_wal_receive_lsn()"),
        lsn("wr.written_lsn"),
        lsn("wr.latest_end_lsn"),
    )
}

/// `to_char(..., 'YYYY-MM-DD HH24:MI:SS.USOF')` → Python's `str(datetime)`:
/// no fraction when it is zero, the offset as `+HH:MM`.
pub(crate) fn python_timestamp(pg: &str) -> String {
    let split = pg.rfind(['+', '-']).filter(|i| *i > 10).unwrap_or(pg.len());
    let (main, offset) = pg.split_at(split);
    let main = main.strip_suffix(".000000").unwrap_or(main);
    let offset = if offset.len() == 3 { format!("{offset}:00") } else { offset.to_string() };
    format!("{main}{offset}")
}

fn lsn(row: &Row, i: usize) -> Result<Option<u64>, SqlError> {
    let v: Option<i64> = row.try_get(i).map_err(SqlError::Query)?;
    Ok(v.and_then(|v| u64::try_from(v).ok()))
}

fn int(row: &Row, i: usize) -> Result<Option<u32>, SqlError> {
    let v: Option<i32> = row.try_get(i).map_err(SqlError::Query)?;
    Ok(v.and_then(|v| u32::try_from(v).ok()))
}

fn text(row: &Row, i: usize) -> Result<Option<String>, SqlError> {
    row.try_get(i).map_err(SqlError::Query)
}

fn json_list<T: serde::de::DeserializeOwned>(row: &Row, i: usize, what: &str) -> Result<Vec<T>, SqlError> {
    match text(row, i)? {
        None => Ok(Vec::new()),
        Some(t) => serde_json::from_str(&t).map_err(|e| SqlError::Unexpected(format!("{what}: {e}"))),
    }
}

fn parse_status(row: &Row) -> Result<PgStatus, SqlError> {
    let pending: Vec<PendingSetting> = json_list(row, 20, "pending_restart settings")?;
    Ok(PgStatus {
        postmaster_start_time: text(row, 0)?.map(|t| python_timestamp(&t)),
        in_recovery: row.try_get(1).map_err(SqlError::Query)?,
        primary_timeline: int(row, 2)?,
        current_lsn: lsn(row, 3)?,
        flush_lsn: lsn(row, 4)?,
        replay_lsn: lsn(row, 5)?,
        receive_lsn: lsn(row, 6)?,
        replay_paused: row.try_get::<_, Option<bool>>(7).map_err(SqlError::Query)?.unwrap_or(false),
        last_replay_timestamp: text(row, 8)?.map(|t| python_timestamp(&t)),
        received_tli: int(row, 9)?,
        written_lsn: lsn(row, 10)?,
        latest_end_lsn: lsn(row, 11)?,
        receiver_status: text(row, 12)?,
        receiver_slot_name: text(row, 13)?,
        receiver_conninfo: text(row, 14)?,
        restore_command: text(row, 15)?,
        checkpoint_timeline: int(row, 16)?,
        server_version: int(row, 17)?.unwrap_or(0),
        system_identifier: text(row, 18)?.and_then(|s| s.parse().ok()),
        replication: json_list(row, 19, "pg_stat_replication")?,
        pending_restart: pending
            .into_iter()
            .filter(|p| !is_recovery_parameter(&p.name) && !p.name.eq_ignore_ascii_case("hot_standby"))
            .collect(),
    })
}

impl Sql {
    /// Read the server's state in one query.
    pub async fn status(&self) -> Result<PgStatus, SqlError> {
        let sql = status_query();
        let row = self.run(|c| async move { c.query_one(sql.as_str(), &[]).await }).await?;
        parse_status(&row)
    }

    /// `pg_stat_replication` rows (as in [`PgStatus::replication`]).
    pub async fn replication(&self) -> Result<Vec<ReplicationRow>, SqlError> {
        Ok(self.status().await?.replication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_python_prints_them() {
        for (pg, want) in [
            ("2024-05-01 10:00:00.123456+00", "2024-05-01 10:00:00.123456+00:00"),
            ("2024-05-01 10:00:00.000000+00", "2024-05-01 10:00:00+00:00"),
            ("2024-05-01 10:00:00.5+05:30", "2024-05-01 10:00:00.5+05:30"),
            ("2024-05-01 10:00:00.100000-03", "2024-05-01 10:00:00.100000-03:00"),
        ] {
            assert_eq!(python_timestamp(pg), want, "{pg}");
        }
    }

    fn status() -> PgStatus {
        PgStatus {
            postmaster_start_time: None,
            in_recovery: true,
            primary_timeline: None,
            current_lsn: None,
            flush_lsn: None,
            replay_lsn: Some(100),
            receive_lsn: Some(150),
            written_lsn: Some(200),
            latest_end_lsn: None,
            replay_paused: false,
            last_replay_timestamp: None,
            received_tli: Some(3),
            receiver_status: Some("streaming".into()),
            receiver_slot_name: None,
            receiver_conninfo: None,
            restore_command: Some(String::new()),
            checkpoint_timeline: Some(2),
            server_version: 150018,
            system_identifier: None,
            replication: vec![],
            pending_restart: vec![],
        }
    }

    #[test]
    fn derived_values() {
        let mut s = status();
        assert_eq!(s.timeline(), Some(3));
        assert_eq!(s.received_lsn(), Some(200));
        assert_eq!(s.received_location(), Some(200));
        assert_eq!(s.wal_position(), 200);
        assert_eq!(s.replication_state(), Some("streaming"));
        s.receiver_status = None;
        assert_eq!(s.replication_state(), None);
        s.restore_command = Some("cp %f %p".into());
        assert_eq!(s.replication_state(), Some("in archive recovery"));
        s.received_tli = None;
        assert_eq!(s.timeline(), Some(2));
        s.in_recovery = false;
        s.primary_timeline = Some(4);
        s.flush_lsn = Some(999);
        assert_eq!((s.timeline(), s.wal_position(), s.replication_state()), (Some(4), 999, None));
    }
}
