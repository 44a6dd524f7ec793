//! The JSON of `GET /patroni` and of every health check, in Patroni 4.1's shape.

use palisade_model::{Role, State, PATRONI_COMPAT_VERSION};
use serde_json::{json, Map, Value};

use crate::status::{NodeStatus, PgSnapshot};

/// Patroni's `get_postgresql_status` plus `_write_status_response`, built
/// from the cached status. `pg` overrides the cached PostgreSQL snapshot
/// (a live query, for `GET /patroni`).
pub fn status_json(s: &NodeStatus, pg: Option<&PgSnapshot>) -> Map<String, Value> {
    let mut out = Map::new();
    let pg = pg.or(s.pg.as_ref());
    let running = matches!(s.state, State::Running | State::Restarting | State::Starting);
    match pg.filter(|_| running) {
        Some(pg) => {
            out.insert("state".into(), json!(s.state.as_str()));
            if let Some(t) = &pg.postmaster_start_time {
                out.insert("postmaster_start_time".into(), json!(t));
            }
            let role = if !pg.in_recovery {
                Role::Primary
            } else if s.standby_cluster && s.role == Role::StandbyLeader {
                Role::StandbyLeader
            } else {
                Role::Replica
            };
            out.insert("role".into(), json!(role.as_str()));
            if let Some(v) = pg.server_version {
                out.insert("server_version".into(), json!(v));
            }
            if pg.in_recovery {
                let replayed = pg.replayed_location.unwrap_or(0);
                let received = pg.received_location.filter(|r| *r > 0).unwrap_or(replayed);
                out.insert(
                    "xlog".into(),
                    json!({
                        "received_location": received,
                        "replayed_location": replayed,
                        "replayed_timestamp": pg.replayed_timestamp,
                        "paused": pg.replay_paused,
                    }),
                );
            } else {
                out.insert("xlog".into(), json!({"location": pg.wal_location.unwrap_or(0)}));
            }
            // A replica named in `sync` while synchronous mode is on (as
            // the cluster's dynamic configuration says).
            if role == Role::Replica {
                if let Some(c) = s.cluster.as_ref() {
                    let modes = palisade_model::ViewModes::from_config(c.config_data());
                    if modes.synchronous_mode && c.sync.matches(&s.name, false) {
                        let key = if modes.quorum_commit { "quorum_standby" } else { "sync_standby" };
                        out.insert(key.into(), json!(true));
                    }
                }
            }
            if let Some(t) = pg.timeline {
                out.insert("timeline".into(), json!(t));
            }
            if let Some(r) = &pg.replication_state {
                out.insert("replication_state".into(), json!(r));
            }
            if !pg.replication.is_empty() {
                out.insert("replication".into(), Value::Array(pg.replication.clone()));
            }
        }
        None => {
            let state = if s.state == State::Running { "unknown" } else { s.state.as_str() };
            out.insert("state".into(), json!(state));
            out.insert("role".into(), json!(s.role.as_str()));
        }
    }
    if s.paused {
        out.insert("pause".into(), json!(true));
    }
    if s.cluster.as_ref().is_none_or(|c| c.is_unlocked()) {
        out.insert("cluster_unlocked".into(), json!(true));
    }
    if s.failsafe.is_active() {
        out.insert("failsafe_mode_is_active".into(), json!(true));
    }
    out.insert("dcs_last_seen".into(), json!(s.dcs_last_seen));
    if !s.tags.is_empty() {
        out.insert("tags".into(), Value::Object(s.tags.clone()));
    }
    if let Some(sysid) = &s.sysid {
        out.insert("database_system_identifier".into(), json!(sysid));
    }
    if !s.pending_restart_reason.is_empty() {
        out.insert("pending_restart".into(), json!(true));
        out.insert("pending_restart_reason".into(), Value::Object(s.pending_restart_reason.clone()));
    }
    out.insert("patroni".into(), json!({"version": PATRONI_COMPAT_VERSION, "scope": s.scope, "name": s.name}));
    if let Some(r) = &s.scheduled_restart {
        out.insert("scheduled_restart".into(), Value::Object(r.clone()));
    }
    if s.watchdog_failed {
        out.insert("watchdog_failed".into(), json!(true));
    }
    out
}
