//! What the primary reports about synchronous replication (the part of
//! Patroni's `cluster_info_query` it runs in synchronous mode).

use serde::Deserialize;

use super::{Sql, SqlError};

/// A streaming `pg_stat_replication` row, positions as integers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SyncSender {
    pub pid: i64,
    pub application_name: Option<String>,
    pub sync_state: Option<String>,
    pub write_lsn: Option<i64>,
    pub flush_lsn: Option<i64>,
    pub replay_lsn: Option<i64>,
}

/// The synchronous replication state of a primary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub synchronous_commit: String,
    pub synchronous_standby_names: String,
    /// `pg_current_wal_flush_lsn()` (0 on a standby).
    pub flush_lsn: u64,
    pub senders: Vec<SyncSender>,
}

const SYNC_QUERY: &str = "SELECT pg_catalog.current_setting('synchronous_commit'), \
     pg_catalog.current_setting('synchronous_standby_names'), \
     CASE WHEN pg_catalog.pg_is_in_recovery() THEN 0 \
     ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::bigint END, \
     (SELECT pg_catalog.json_agg(r.*) FROM (SELECT w.pid AS pid, application_name, sync_state, \
     pg_catalog.pg_wal_lsn_diff(write_lsn, '0/0')::bigint AS write_lsn, \
     pg_catalog.pg_wal_lsn_diff(flush_lsn, '0/0')::bigint AS flush_lsn, \
     pg_catalog.pg_wal_lsn_diff(replay_lsn, '0/0')::bigint AS replay_lsn \
     FROM pg_catalog.pg_stat_get_wal_senders() w, pg_catalog.pg_stat_get_activity(w.pid) \
     WHERE w.state = 'streaming') r)::text";

/// Some WAL without waiting for a synchronous standby, so that standbys
/// just listed report a position past the one noted (Patroni runs the same
/// block when `synchronous_standby_names` changes).
const NUDGE: &str = "DO $$\nBEGIN\n    SET local synchronous_commit = 'off';\n    PERFORM * FROM \
                     pg_catalog.txid_current();\nEND;$$";

impl Sql {
    /// Read the synchronous replication state.
    pub async fn sync_status(&self) -> Result<SyncStatus, SqlError> {
        let row = self.run(|c| async move { c.query_one(SYNC_QUERY, &[]).await }).await?;
        let text = |i: usize| -> Result<Option<String>, SqlError> { row.try_get(i).map_err(SqlError::Query) };
        let flush: Option<i64> = row.try_get(2).map_err(SqlError::Query)?;
        let senders = match text(3)? {
            None => Vec::new(),
            Some(t) => {
                serde_json::from_str(&t).map_err(|e| SqlError::Unexpected(format!("pg_stat_replication: {e}")))?
            }
        };
        Ok(SyncStatus {
            synchronous_commit: text(0)?.unwrap_or_default(),
            synchronous_standby_names: text(1)?.unwrap_or_default(),
            flush_lsn: flush.and_then(|v| u64::try_from(v).ok()).unwrap_or(0),
            senders,
        })
    }

    /// Write a little WAL that waits for no standby.
    pub async fn nudge_wal(&self) -> Result<(), SqlError> {
        self.execute(NUDGE).await
    }
}
