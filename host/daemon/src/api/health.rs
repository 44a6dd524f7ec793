//! Health checks: the status code of every health-check path, decided
//! from the cached status alone (no SQL, no DCS), by Patroni's rules.

use palisade_model::{Role, State};
use serde_json::{Map, Value};

use crate::status::NodeStatus;

/// Every path a load balancer may probe.
pub const HEALTH_PATHS: &[&str] = &[
    "/",
    "/primary",
    "/master",
    "/read-write",
    "/leader",
    "/standby-leader",
    "/standby_leader",
    "/replica",
    "/read-only",
    "/synchronous",
    "/sync",
    "/read-only-sync",
    "/read-only-synchronous",
    "/quorum",
    "/read-only-quorum",
    "/asynchronous",
    "/async",
    "/health",
];

/// A size as health checks accept it: bytes, or a number with a unit
/// (`B`, `kB`, `MB`, `GB`, `TB`, case as PostgreSQL writes them).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    let value: u64 = digits.parse().ok()?;
    let unit = t[digits.len()..].trim();
    let factor: u64 = match unit {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    value.checked_mul(factor)
}

fn query<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The status code for a health-check `path` with its query parameters.
/// `body` is the status JSON the node would answer with.
pub fn health_code(path: &str, q: &[(String, String)], s: &NodeStatus, body: &Map<String, Value>) -> u16 {
    let path = if path == "/" { "/primary" } else { path };
    let role = body.get("role").and_then(Value::as_str).and_then(Role::parse);
    let running = body.get("state").and_then(Value::as_str) == Some(State::Running.as_str());
    let cluster = s.cluster.as_deref();

    let latest_end_lsn = s.pg.as_ref().and_then(|p| p.latest_end_lsn).unwrap_or(0);
    let leader_optime = cluster.map_or(0, |c| c.status.last_lsn).max(latest_end_lsn);
    let replayed = body.get("xlog").and_then(|x| x.get("replayed_location")).and_then(Value::as_u64).unwrap_or(0);
    let max_lag = query(q, "lag").and_then(parse_size).unwrap_or(u64::MAX);
    let lagging = leader_optime > 0 && leader_optime > replayed.saturating_add(max_lag);
    let wanted_state = query(q, "replication_state");
    let state_matches = wanted_state.is_none_or(|w| body.get("replication_state").and_then(Value::as_str) == Some(w));

    let replica_code =
        if !s.noloadbalance && !lagging && role == Some(Role::Replica) && running && state_matches { 200 } else { 503 };

    let (leader_code, primary_code, standby_leader_code) = if cluster.is_none() && s.paused {
        (
            if matches!(role, Some(Role::Primary | Role::StandbyLeader)) { 200 } else { 503 },
            if role == Some(Role::Primary) { 200 } else { 503 },
            if role == Some(Role::StandbyLeader) { 200 } else { 503 },
        )
    } else if s.is_leader {
        if s.standby_cluster {
            (200, 503, if matches!(role, Some(Role::Replica | Role::StandbyLeader)) { 200 } else { 503 })
        } else {
            // The lock holder answers 200 as primary only once PostgreSQL
            // is one: the code never contradicts the body it comes with
            // (a promotion in progress is still a replica).
            (200, if role == Some(Role::Primary) { 200 } else { 503 }, 503)
        }
    } else {
        (503, 503, 503)
    };
    let replica_code = if s.is_leader && s.standby_cluster { 503 } else { replica_code };

    let is_sync = body.get("sync_standby").and_then(Value::as_bool).unwrap_or(false);
    let is_quorum = body.get("quorum_standby").and_then(Value::as_bool).unwrap_or(false);
    let leaderish = primary_code == 200 || standby_leader_code == 200;

    let mut ignore_tags = false;
    let code = if path.contains("standby_leader") || path.contains("standby-leader") {
        ignore_tags = true;
        standby_leader_code
    } else if path.contains("leader") {
        ignore_tags = true;
        leader_code
    } else if path.contains("master") || path.contains("primary") || path.contains("read-write") {
        ignore_tags = true;
        primary_code
    } else if path.contains("replica") {
        replica_code
    } else if path.contains("read-only") && !path.contains("sync") && !path.contains("quorum") {
        if leaderish {
            200
        } else {
            replica_code
        }
    } else if path.contains("health") {
        if running {
            200
        } else {
            503
        }
    } else if cluster.is_some() {
        match path {
            "/sync" | "/synchronous" if is_sync => replica_code,
            "/quorum" if is_quorum => replica_code,
            "/async" | "/asynchronous" if !is_sync && !is_quorum => replica_code,
            "/read-only-quorum" if leaderish => 200,
            "/read-only-quorum" if is_quorum => replica_code,
            "/read-only-sync" | "/read-only-synchronous" if leaderish => 200,
            "/read-only-sync" | "/read-only-synchronous" if is_sync => replica_code,
            _ => 503,
        }
    } else {
        503
    };

    if code == 200 && !ignore_tags {
        for (key, wanted) in q {
            let Some(tag) = key.strip_prefix("tag_") else {
                continue;
            };
            let have = match s.tags.get(tag) {
                None | Some(Value::Null) => return 503,
                Some(Value::String(v)) => v.clone(),
                Some(other) => other.to_string().to_lowercase(),
            };
            if have != *wanted {
                return 503;
            }
        }
    }
    code
}

/// `GET /liveness`: 200 while the HA loop keeps cycling (within ttl on a
/// primary, twice that on a replica) or the cluster is paused.
pub fn liveness_code(s: &NodeStatus) -> u16 {
    let is_primary = s.role == Role::Primary && s.pg.is_some();
    let threshold = if is_primary { s.ttl } else { s.ttl.saturating_mul(2) };
    let alive = s.last_cycle_at.is_some_and(|t| t.elapsed() < threshold);
    if s.paused || alive {
        200
    } else {
        503
    }
}

/// `GET /readiness`: why this node is not ready, or `None`.
pub fn readiness_failure(q: &[(String, String)], s: &NodeStatus) -> Option<String> {
    if s.is_leader {
        return None;
    }
    if s.state != State::Running {
        return Some("PostgreSQL is not running".into());
    }
    // Without a snapshot PostgreSQL did not answer: not streaming either.
    let Some(pg) = s.pg.as_ref() else {
        return Some("PostgreSQL replication state is not streaming".into());
    };
    if pg.replication_state.as_deref() != Some("streaming") {
        return Some("PostgreSQL replication state is not streaming".into());
    }
    let latest_end_lsn = pg.latest_end_lsn.unwrap_or(0);
    if s.cluster.is_none() && latest_end_lsn == 0 {
        if s.failsafe.is_active() {
            return None;
        }
        return Some("DCS is not accessible".into());
    }
    let leader_optime = s.cluster.as_ref().map_or(0, |c| c.status.last_lsn).max(latest_end_lsn);
    let write = query(q, "mode") == Some("write");
    let position = if write { pg.received_location } else { pg.replayed_location }.unwrap_or(0);
    let lag = leader_optime.saturating_sub(position);
    let max = query(q, "lag").and_then(parse_size).unwrap_or(s.maximum_lag_on_failover);
    (lag > max).then(|| {
        format!("Replication {} lag {lag} exceeds maximum allowable {max}", if write { "write" } else { "apply" })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PgSnapshot;
    use palisade_model::{Cluster, Leader};
    use std::sync::Arc;

    fn status(role: Role, in_recovery: Option<bool>, leader: bool) -> NodeStatus {
        let mut s = NodeStatus::new("demo", "n1");
        s.role = role;
        s.state = if in_recovery.is_some() { State::Running } else { State::Stopped };
        s.pg = in_recovery.map(|r| PgSnapshot {
            in_recovery: r,
            replayed_location: Some(1000),
            received_location: Some(1000),
            wal_location: Some(1000),
            replication_state: r.then(|| "streaming".to_string()),
            ..PgSnapshot::default()
        });
        s.is_leader = leader;
        let mut c = Cluster {
            leader: Some(Leader {
                name: if leader { "n1" } else { "n2" }.into(),
                version: "1".into(),
                session: String::new(),
            }),
            ..Default::default()
        };
        c.status.last_lsn = 1000;
        s.cluster = Some(Arc::new(c));
        s.tags.insert("dc".into(), Value::String("east".into()));
        s.tags.insert("fast".into(), Value::Bool(true));
        s
    }

    fn code(path: &str, q: &[(&str, &str)], s: &NodeStatus) -> u16 {
        let q: Vec<(String, String)> = q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let body = crate::api::status_json::status_json(s, None);
        health_code(path, &q, s, &body)
    }

    #[test]
    fn codes_by_role() {
        let primary = status(Role::Primary, Some(false), true);
        let replica = status(Role::Replica, Some(true), false);
        let stopped = status(Role::Replica, None, false);
        // (path, query, primary, replica, stopped)
        type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, u16, u16);
        let table: &[Row] = &[
            ("/", &[], 200, 503, 503),
            ("/primary", &[], 200, 503, 503),
            ("/read-write", &[], 200, 503, 503),
            ("/leader", &[], 200, 503, 503),
            ("/standby-leader", &[], 503, 503, 503),
            ("/standby_leader", &[], 503, 503, 503),
            ("/replica", &[], 503, 200, 503),
            ("/read-only", &[], 200, 200, 503),
            ("/health", &[], 200, 200, 503),
            ("/async", &[], 503, 200, 503),
            ("/asynchronous", &[], 503, 200, 503),
            ("/sync", &[], 503, 503, 503),
            ("/synchronous", &[], 503, 503, 503),
            ("/read-only-sync", &[], 200, 503, 503),
            ("/quorum", &[], 503, 503, 503),
            ("/read-only-quorum", &[], 200, 503, 503),
            ("/replica", &[("lag", "16kB")], 503, 200, 503),
            ("/replica", &[("replication_state", "streaming")], 503, 200, 503),
            ("/replica", &[("replication_state", "in archive recovery")], 503, 503, 503),
            ("/replica", &[("tag_dc", "east")], 503, 200, 503),
            ("/replica", &[("tag_dc", "west")], 503, 503, 503),
            ("/replica", &[("tag_fast", "true")], 503, 200, 503),
            ("/replica", &[("tag_missing", "x")], 503, 503, 503),
            ("/primary", &[("tag_dc", "west")], 200, 503, 503),
        ];
        for (path, q, p, r, st) in table {
            assert_eq!(code(path, q, &primary), *p, "primary {path} {q:?}");
            assert_eq!(code(path, q, &replica), *r, "replica {path} {q:?}");
            assert_eq!(code(path, q, &stopped), *st, "stopped {path} {q:?}");
        }
    }

    /// Whatever the node's state, a 200 never contradicts the body it
    /// comes with: the primary paths mean `role: primary`, the replica
    /// paths `role: replica` and `state: running`, `/health` a running
    /// server. A lock holder still promoting is not yet a primary.
    #[test]
    fn the_code_never_contradicts_the_body() {
        let mut promoting = status(Role::Promoted, Some(true), true);
        promoting.state = State::Running;
        let mut primary_gone = status(Role::Primary, Some(false), true);
        primary_gone.pg = None;
        let mut starting = status(Role::Primary, None, true);
        starting.state = State::Starting;
        let nodes = [
            ("primary", status(Role::Primary, Some(false), true)),
            ("replica", status(Role::Replica, Some(true), false)),
            ("stopped", status(Role::Replica, None, false)),
            ("promoting", promoting.clone()),
            ("primary whose PostgreSQL is gone", primary_gone),
            ("primary starting", starting),
        ];
        for (what, node) in &nodes {
            let body = crate::api::status_json::status_json(node, None);
            let role = body.get("role").and_then(Value::as_str);
            let state = body.get("state").and_then(Value::as_str);
            for path in HEALTH_PATHS {
                if code(path, &[], node) != 200 {
                    continue;
                }
                match *path {
                    "/" | "/primary" | "/master" | "/read-write" => {
                        assert_eq!(role, Some("primary"), "{what}: 200 on {path} with {body:?}")
                    }
                    "/replica" | "/async" | "/asynchronous" => assert!(
                        role == Some("replica") && state == Some("running"),
                        "{what}: 200 on {path} with {body:?}"
                    ),
                    "/health" => assert_eq!(state, Some("running"), "{what}: 200 on {path} with {body:?}"),
                    _ => {}
                }
            }
        }
        assert_eq!(code("/", &[], &promoting), 503, "still in recovery");
        assert_eq!(code("/leader", &[], &promoting), 200, "it holds the lock");
    }

    #[test]
    fn lag_and_noloadbalance() {
        let mut replica = status(Role::Replica, Some(true), false);
        let mut c = (*replica.cluster.clone().unwrap()).clone();
        c.status.last_lsn = 1000 + 64 * 1024 * 1024;
        replica.cluster = Some(Arc::new(c));
        assert_eq!(code("/replica", &[("lag", "16kB")], &replica), 503);
        assert_eq!(code("/replica", &[("lag", "1GB")], &replica), 200);
        assert_eq!(code("/replica", &[], &replica), 200);
        replica.noloadbalance = true;
        assert_eq!(code("/replica", &[], &replica), 503);
    }

    #[test]
    fn sizes() {
        for (text, v) in [
            ("100", Some(100)),
            ("16kB", Some(16384)),
            ("64MB", Some(64 << 20)),
            ("1GB", Some(1 << 30)),
            ("1 TB", Some(1 << 40)),
            ("1gb", None),
            ("x", None),
            ("", None),
        ] {
            assert_eq!(parse_size(text), v, "{text}");
        }
    }

    #[test]
    fn readiness() {
        let replica = status(Role::Replica, Some(true), false);
        assert_eq!(readiness_failure(&[], &replica), None);
        let stopped = status(Role::Replica, None, false);
        assert!(readiness_failure(&[], &stopped).is_some());
        assert_eq!(readiness_failure(&[], &status(Role::Primary, Some(false), true)), None);
        // PostgreSQL stopped behind the loop's back: the state still says
        // running until the next cycle, but there is no snapshot.
        let mut vanished = status(Role::Replica, Some(true), false);
        vanished.pg = None;
        assert_eq!(readiness_failure(&[], &vanished).as_deref(), Some("PostgreSQL replication state is not streaming"));
        let lagging = status(Role::Replica, Some(true), false);
        assert!(readiness_failure(&[("lag".into(), "0".into())], &lagging).is_none());
    }
}
