//! Replication slots: list, create (physical and logical), advance, drop,
//! and the two questions a replica asks its primary about logical slots
//! (their state files, their `catalog_xmin`).

use std::time::Duration;

use palisade_model::format_lsn;
use tokio_postgres::Client;

use super::{LocalConnection, Sql, SqlError};

/// A replication slot (`pg_replication_slots`, temporary ones left out).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotInfo {
    pub name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    pub active: bool,
    pub restart_lsn: Option<u64>,
    /// `xmin` (hot standby feedback reached the slot).
    pub xmin: Option<u64>,
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub confirmed_flush_lsn: Option<u64>,
    pub catalog_xmin: Option<u64>,
    /// `wal_status` (PostgreSQL 13+).
    pub wal_status: Option<String>,
    /// `failover` (PostgreSQL 17+): PostgreSQL synchronises this logical
    /// slot to standbys itself.
    pub failover: bool,
}

/// What dropping a slot did (Patroni's `drop_replication_slot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropSlot {
    /// The slot exists and is in use, so it was not dropped.
    pub active: bool,
    pub dropped: bool,
}

/// A logical slot on the primary with its state file, for a replica to copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotState {
    pub name: String,
    pub slot_type: String,
    /// The database's name.
    pub database: Option<String>,
    pub plugin: Option<String>,
    pub catalog_xmin: Option<u64>,
    pub confirmed_flush_lsn: Option<u64>,
    /// `pg_replslot/<name>/state`.
    pub data: Vec<u8>,
}

/// How long creating a logical slot may take (it waits for running
/// transactions) and advancing one (it decodes WAL).
const LOGICAL_TIMEOUT: Duration = Duration::from_secs(30);

fn lsn(row: &tokio_postgres::Row, i: usize) -> Result<Option<u64>, SqlError> {
    Ok(row.try_get::<_, Option<i64>>(i).map_err(SqlError::Query)?.and_then(|v| u64::try_from(v).ok()))
}

impl Sql {
    /// Replication slots, temporary ones excluded, by name; on PostgreSQL
    /// 17+ the failover slots PostgreSQL itself synchronised to this
    /// standby are left out too (as Patroni leaves them out).
    pub async fn replication_slots(&self) -> Result<Vec<SlotInfo>, SqlError> {
        // `wal_status`, `failover` and `synced` through to_jsonb, so that
        // the query also runs on versions that lack the columns.
        let rows = self
            .run(|c| async move {
                c.query(
                    "SELECT s.slot_name::text, s.slot_type, s.active, \
                     pg_catalog.pg_wal_lsn_diff(s.restart_lsn, '0/0')::bigint, s.xmin::text::bigint, \
                     s.plugin::text, s.database::text, \
                     pg_catalog.pg_wal_lsn_diff(s.confirmed_flush_lsn, '0/0')::bigint, \
                     s.catalog_xmin::text::bigint, pg_catalog.to_jsonb(s) ->> 'wal_status', \
                     COALESCE((pg_catalog.to_jsonb(s) ->> 'failover')::boolean, false) \
                     FROM pg_catalog.pg_replication_slots s WHERE NOT s.temporary \
                     AND NOT COALESCE((pg_catalog.to_jsonb(s) ->> 'failover')::boolean \
                     AND (pg_catalog.to_jsonb(s) ->> 'synced')::boolean, false) ORDER BY s.slot_name",
                    &[],
                )
                .await
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SlotInfo {
                    name: r.try_get(0).map_err(SqlError::Query)?,
                    slot_type: r.try_get(1).map_err(SqlError::Query)?,
                    active: r.try_get(2).map_err(SqlError::Query)?,
                    restart_lsn: lsn(r, 3)?,
                    xmin: lsn(r, 4)?,
                    plugin: r.try_get(5).map_err(SqlError::Query)?,
                    database: r.try_get(6).map_err(SqlError::Query)?,
                    confirmed_flush_lsn: lsn(r, 7)?,
                    catalog_xmin: lsn(r, 8)?,
                    wal_status: r.try_get(9).map_err(SqlError::Query)?,
                    failover: r.try_get(10).map_err(SqlError::Query)?,
                })
            })
            .collect()
    }

    /// Create a physical slot reserving WAL at once, unless one with that
    /// name exists. `Ok(true)` when it was created.
    pub async fn create_physical_slot(&self, name: &str) -> Result<bool, SqlError> {
        let name = name.to_string();
        let rows = self
            .run(|c| async move {
                c.query(
                    "SELECT pg_catalog.pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS \
                     (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical' AND slot_name = $1)",
                    &[&name],
                )
                .await
            })
            .await?;
        Ok(!rows.is_empty())
    }

    /// A connection of our own to `database` on the local server.
    async fn connect_to(&self, database: &str, statement_timeout: Duration) -> Result<Client, SqlError> {
        let mut target = self.target();
        target.dbname = database.to_string();
        target.connect(statement_timeout).await
    }

    /// Create a logical slot with `plugin` in `database`, unless a logical
    /// slot with that name exists. `Ok(true)` when it was created.
    pub async fn create_logical_slot(&self, database: &str, name: &str, plugin: &str) -> Result<bool, SqlError> {
        let client = self.connect_to(database, LOGICAL_TIMEOUT).await?;
        let rows = client
            .query(
                "SELECT pg_catalog.pg_create_logical_replication_slot($1, $2) WHERE NOT EXISTS \
                 (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_type = 'logical' AND slot_name = $1)",
                &[&name, &plugin],
            )
            .await
            .map_err(SqlError::Query)?;
        Ok(!rows.is_empty())
    }

    /// Drop a slot unless it is in use.
    pub async fn drop_slot(&self, name: &str) -> Result<DropSlot, SqlError> {
        let name = name.to_string();
        let rows = self
            .run(|c| async move {
                c.query(
                    "WITH slots AS (SELECT slot_name, active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), \
                     dropped AS (SELECT pg_catalog.pg_drop_replication_slot(slot_name), true AS dropped FROM slots WHERE NOT active) \
                     SELECT active, COALESCE(dropped, false) FROM slots FULL OUTER JOIN dropped ON true",
                    &[&name],
                )
                .await
            })
            .await?;
        match rows.first() {
            Some(r) => Ok(DropSlot {
                active: r.try_get::<_, Option<bool>>(0).map_err(SqlError::Query)?.unwrap_or(false),
                dropped: r.try_get::<_, Option<bool>>(1).map_err(SqlError::Query)?.unwrap_or(false),
            }),
            None => Ok(DropSlot { active: false, dropped: false }),
        }
    }

    /// Move a physical slot's `restart_lsn` forward
    /// (`pg_replication_slot_advance`).
    pub async fn advance_slot(&self, name: &str, lsn: u64) -> Result<(), SqlError> {
        let (name, lsn) = (name.to_string(), format_lsn(lsn));
        self.run(|c| async move {
            c.query("SELECT pg_catalog.pg_replication_slot_advance($1, $2::text::pg_lsn)", &[&name, &lsn]).await
        })
        .await
        .map(|_| ())
    }

    /// Move a logical slot forward, connected to its database (decoding
    /// the WAL in between can take a while).
    pub async fn advance_logical_slot(&self, database: &str, name: &str, lsn: u64) -> Result<(), SqlError> {
        let client = self.connect_to(database, LOGICAL_TIMEOUT).await?;
        let lsn = format_lsn(lsn);
        client
            .query("SELECT pg_catalog.pg_replication_slot_advance($1, $2::text::pg_lsn)", &[&name, &lsn])
            .await
            .map(|_| ())
            .map_err(SqlError::Query)
    }
}

/// The logical slots `names` on the primary behind `primary`, with their
/// state files (Patroni's `copy_logical_slots` query; slots PostgreSQL 17
/// synchronises itself, `failover`, are left out). Nothing when the
/// server is in recovery.
pub async fn read_slot_states(primary: &LocalConnection, names: &[String]) -> Result<Vec<SlotState>, SqlError> {
    let client = primary.connect(primary.statement_timeout).await?;
    let rows = client
        .query(
            "SELECT s.slot_name::text, s.slot_type, d.datname::text, s.plugin::text, s.catalog_xmin::text::bigint, \
             pg_catalog.pg_wal_lsn_diff(s.confirmed_flush_lsn, '0/0')::bigint, \
             pg_catalog.pg_read_binary_file('pg_replslot/' || s.slot_name || '/state') \
             FROM pg_catalog.pg_get_replication_slots() s JOIN pg_catalog.pg_database d ON s.datoid = d.oid \
             WHERE NOT COALESCE((pg_catalog.to_jsonb(s) ->> 'failover')::boolean, false) \
             AND NOT pg_catalog.pg_is_in_recovery() AND s.slot_name::text = ANY($1)",
            &[&names],
        )
        .await
        .map_err(SqlError::Query)?;
    rows.iter()
        .map(|r| {
            Ok(SlotState {
                name: r.try_get(0).map_err(SqlError::Query)?,
                slot_type: r.try_get(1).map_err(SqlError::Query)?,
                database: r.try_get(2).map_err(SqlError::Query)?,
                plugin: r.try_get(3).map_err(SqlError::Query)?,
                catalog_xmin: lsn(r, 4)?,
                confirmed_flush_lsn: lsn(r, 5)?,
                data: r.try_get::<_, Option<Vec<u8>>>(6).map_err(SqlError::Query)?.unwrap_or_default(),
            })
        })
        .collect()
}

/// `catalog_xmin` of the slots `names` on the primary behind `primary`
/// (absent slots are left out; a slot without one maps to `None`).
pub async fn slot_catalog_xmins(
    primary: &LocalConnection,
    names: &[String],
) -> Result<Vec<(String, Option<u64>)>, SqlError> {
    let client = primary.connect(primary.statement_timeout).await?;
    let rows = client
        .query(
            "SELECT slot_name::text, catalog_xmin::text::bigint FROM pg_catalog.pg_get_replication_slots() \
             WHERE NOT pg_catalog.pg_is_in_recovery() AND slot_name::text = ANY($1)",
            &[&names],
        )
        .await
        .map_err(SqlError::Query)?;
    rows.iter().map(|r| Ok((r.try_get(0).map_err(SqlError::Query)?, lsn(r, 1)?))).collect()
}
