//! Read-only views: `GET /cluster`, `/history`, `/config`, `/failsafe` and
//! `/metrics`, in Patroni 4.1's shapes.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::Response;
use palisade_model::view::{cluster_as_json, ViewModes};
use palisade_model::{Cluster, State as PgState, PATRONI_COMPAT_VERSION};
use serde_json::{json, Map, Value};

use super::{reply, ApiState};

/// A fresh read of the cluster (Patroni's `dcs.get_cluster()`), or the last
/// snapshot the loop took when there is no daemon (tests of a status only).
pub(super) async fn fresh_cluster(st: &ApiState) -> Result<Cluster, Response> {
    match &st.shared {
        Some(shared) => shared.dcs.get_cluster().await.map_err(|e| {
            tracing::warn!("REST API: cannot read the cluster from the DCS: {e}");
            reply::text(503, format!("DCS is not accessible: {e}"))
        }),
        None => st.status.get().cluster.clone().map(|c| (*c).clone()).ok_or_else(|| reply::code_only(503)),
    }
}

/// The cluster as the loop last read it, else a fresh read (Patroni's
/// `dcs.cluster or dcs.get_cluster()`).
async fn cached_cluster(st: &ApiState) -> Result<Cluster, Response> {
    match st.status.get().cluster.clone() {
        Some(c) => Ok((*c).clone()),
        None => fresh_cluster(st).await,
    }
}

/// This node's Citus group, when the `citus` section is set.
fn citus_group(st: &ApiState) -> Option<i32> {
    st.shared.as_ref().and_then(|sh| sh.config().local.citus.map(|c| c.group))
}

fn view(cluster: &Cluster) -> Map<String, Value> {
    let modes = ViewModes::from_config(&cluster.config.as_ref().map(|c| c.data.clone()).unwrap_or_default());
    cluster_as_json(cluster, modes)
}

/// `GET /cluster`. On a Citus node (Palisade's addition, see
/// docs/differences-from-patroni.md) the body is the same for the node's
/// own group, plus `group` (that group's number) and `groups`: every
/// group of the scope, by number, each in the same shape, from one read.
pub async fn cluster(State(st): State<ApiState>) -> Response {
    let scope = json!(st.status.get().scope);
    if let (Some(group), Some(shared)) = (citus_group(&st), &st.shared) {
        let groups = match shared.dcs.get_mpp_groups().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("REST API: cannot read the Citus groups from the DCS: {e}");
                return reply::text(503, format!("DCS is not accessible: {e}"));
            }
        };
        let mut body = groups.get(&group).map(view).unwrap_or_else(|| view(&Cluster::default()));
        body.insert("scope".into(), scope);
        body.insert("group".into(), json!(group));
        let all: Map<String, Value> = groups.iter().map(|(g, c)| (g.to_string(), Value::Object(view(c)))).collect();
        body.insert("groups".into(), Value::Object(all));
        return reply::json(200, Value::Object(body));
    }
    let cluster = match fresh_cluster(&st).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut body = view(&cluster);
    body.insert("scope".into(), scope);
    reply::json(200, Value::Object(body))
}

/// `GET /history`: the `history` key as stored, or `[]`.
pub async fn history(State(st): State<ApiState>) -> Response {
    match cached_cluster(&st).await {
        Ok(c) => reply::json(200, c.history.map(|h| h.raw).unwrap_or_else(|| json!([]))),
        Err(r) => r,
    }
}

/// `GET /config`: the dynamic configuration, 502 when the cluster has none.
pub async fn config(State(st): State<ApiState>) -> Response {
    match cached_cluster(&st).await {
        Ok(Cluster { config: Some(c), .. }) if !c.version.is_empty() => reply::json(200, Value::Object(c.data)),
        Ok(_) => reply::code_only(502),
        Err(r) => r,
    }
}

/// `GET /failsafe`: the failsafe topology, 502 unless failsafe mode keeps one.
pub async fn failsafe(State(st): State<ApiState>) -> Response {
    match st.status.get().cluster.as_ref().and_then(|c| c.failsafe.clone()) {
        Some(map) => reply::json(200, Value::Object(map)),
        None => reply::code_only(502),
    }
}

/// `GET /metrics`: Prometheus text with Patroni's names, help and labels.
pub async fn metrics(State(st): State<ApiState>) -> Response {
    let arrived = std::time::Instant::now();
    let s = st.status.get();
    let live = super::live_pg(&st, &s, arrived).await;
    let pg = super::status_json::status_json(&s, live.as_ref());
    let failsafe_enabled = st.shared.as_ref().is_some_and(|sh| sh.config().global.failsafe_mode);
    let failsafe_member = s.cluster.as_ref().and_then(|c| c.failsafe.as_ref()).is_some_and(|f| f.contains_key(&s.name));
    let text = render_metrics(&MetricsInput {
        scope: &s.scope,
        name: &s.name,
        group: citus_group(&st),
        pg: &pg,
        pending_restart: !s.pending_restart_reason.is_empty(),
        failsafe_enabled,
        failsafe_member,
        failover_priority: failover_priority(&s.tags),
        watchdog_running: s.watchdog_running,
    });
    let mut r = reply::text(200, text);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// What the metrics are computed from.
pub struct MetricsInput<'a> {
    pub scope: &'a str,
    pub name: &'a str,
    /// The Citus group, labelled `group` on every metric (Palisade's
    /// addition; Patroni labels only scope and name).
    pub group: Option<i32>,
    /// The `GET /patroni` JSON.
    pub pg: &'a Map<String, Value>,
    pub pending_restart: bool,
    pub failsafe_enabled: bool,
    pub failsafe_member: bool,
    pub failover_priority: i64,
    /// A watchdog device is open and kept alive.
    pub watchdog_running: bool,
}

/// 0 with `nofailover`, else the `failover_priority` tag (default 1).
pub fn failover_priority(tags: &Map<String, Value>) -> i64 {
    if tags.get("nofailover").and_then(palisade_model::parse_bool).unwrap_or(false) {
        return 0;
    }
    tags.get("failover_priority").and_then(palisade_model::parse_int).unwrap_or(1)
}

/// Patroni's numeric index of a PostgreSQL state (-1 when unknown).
fn state_index(state: &str) -> i64 {
    const ALL: [PgState; 15] = [
        PgState::InitializingNewCluster,
        PgState::InitdbFailed,
        PgState::RunningCustomBootstrap,
        PgState::CustomBootstrapFailed,
        PgState::CreatingReplica,
        PgState::Running,
        PgState::Starting,
        PgState::StartingAfterCustomBootstrap,
        PgState::StartFailed,
        PgState::Restarting,
        PgState::RestartFailed,
        PgState::Stopping,
        PgState::Stopped,
        PgState::StopFailed,
        PgState::Crashed,
    ];
    ALL.iter().position(|s| s.as_str() == state).map_or(-1, |i| i as i64)
}

/// `4.1.4` -> `040104`.
fn padded_version(version: &str) -> String {
    version.split('.').map(|p| format!("{p:0>2}")).collect()
}

/// Epoch seconds of a timestamp in the JSON, as Python prints a float
/// (`0` when absent).
fn epoch(v: Option<&Value>) -> String {
    let Some(t) = v.and_then(Value::as_str).and_then(palisade_model::values::parse_timestamp) else {
        return "0".into();
    };
    let secs = t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) / 1e6;
    let s = format!("{secs}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// The metrics text.
pub fn render_metrics(m: &MetricsInput<'_>) -> String {
    let pg = m.pg;
    let labels = match m.group {
        Some(g) => format!("{{scope=\"{}\",name=\"{}\",group=\"{g}\"}}", m.scope, m.name),
        None => format!("{{scope=\"{}\",name=\"{}\"}}", m.scope, m.name),
    };
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{labels} {value}");
    };
    let s = |k: &str| pg.get(k).and_then(Value::as_str).unwrap_or("");
    let flag = |b: bool| u8::from(b).to_string();
    let xlog = pg.get("xlog").and_then(Value::as_object).cloned().unwrap_or_default();
    let xlog_num = |k: &str| xlog.get(k).and_then(Value::as_u64).unwrap_or(0).to_string();
    let truthy = |k: &str| pg.get(k).is_some_and(|v| v.as_bool().unwrap_or(false));
    let num = |k: &str| pg.get(k).and_then(Value::as_i64).unwrap_or(0).to_string();

    metric("patroni_version", "gauge", "Patroni semver without periods.", padded_version(PATRONI_COMPAT_VERSION));
    metric(
        "patroni_postgres_running",
        "gauge",
        "Value is 1 if Postgres is running, 0 otherwise.",
        flag(s("state") == "running"),
    );
    metric(
        "patroni_postmaster_start_time",
        "gauge",
        "Epoch seconds since Postgres started.",
        epoch(pg.get("postmaster_start_time")),
    );
    metric(
        "patroni_primary",
        "gauge",
        "Value is 1 if this node is the leader, 0 otherwise.",
        flag(s("role") == "primary"),
    );
    metric(
        "patroni_xlog_location",
        "counter",
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
        xlog_num("location"),
    );
    metric(
        "patroni_standby_leader",
        "gauge",
        "Value is 1 if this node is the standby_leader, 0 otherwise.",
        flag(s("role") == "standby_leader"),
    );
    metric(
        "patroni_replica",
        "gauge",
        "Value is 1 if this node is a replica, 0 otherwise.",
        flag(s("role") == "replica"),
    );
    metric(
        "patroni_sync_standby",
        "gauge",
        "Value is 1 if this node is a sync standby, 0 otherwise.",
        flag(truthy("sync_standby")),
    );
    metric(
        "patroni_quorum_standby",
        "gauge",
        "Value is 1 if this node is a quorum standby, 0 otherwise.",
        flag(truthy("quorum_standby")),
    );
    metric(
        "patroni_xlog_received_location",
        "counter",
        "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
        xlog_num("received_location"),
    );
    metric(
        "patroni_xlog_replayed_location",
        "counter",
        "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
        xlog_num("replayed_location"),
    );
    metric(
        "patroni_xlog_replayed_timestamp",
        "gauge",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
        epoch(xlog.get("replayed_timestamp")),
    );
    metric(
        "patroni_xlog_paused",
        "gauge",
        "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
        flag(xlog.get("paused") == Some(&Value::Bool(true))),
    );
    if pg.get("server_version").and_then(Value::as_i64).unwrap_or(0) >= 90600 {
        metric(
            "patroni_postgres_streaming",
            "gauge",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            flag(s("replication_state") == "streaming"),
        );
        metric(
            "patroni_postgres_in_archive_recovery",
            "gauge",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            flag(s("replication_state") == "in archive recovery"),
        );
    }
    metric(
        "patroni_postgres_server_version",
        "gauge",
        "Version of Postgres (if running), 0 otherwise.",
        num("server_version"),
    );
    metric(
        "patroni_cluster_unlocked",
        "gauge",
        "Value is 1 if the cluster is unlocked, 0 if locked.",
        flag(truthy("cluster_unlocked")),
    );
    metric(
        "patroni_failsafe_mode_is_active",
        "gauge",
        "Value is 1 if failsafe mode is active, 0 if inactive.",
        flag(truthy("failsafe_mode_is_active")),
    );
    metric(
        "patroni_failsafe_mode_enabled",
        "gauge",
        "Value is 1 if failsafe_mode is enabled, 0 otherwise.",
        flag(m.failsafe_enabled),
    );
    metric(
        "patroni_failsafe_member",
        "gauge",
        "Value is 1 if this node is a member of failsafe, 0 otherwise.",
        flag(m.failsafe_member),
    );
    metric(
        "patroni_postgres_timeline",
        "gauge",
        "Postgres timeline of this node (if running), 0 otherwise.",
        num("timeline"),
    );
    metric(
        "patroni_dcs_last_seen",
        "gauge",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        num("dcs_last_seen"),
    );
    metric(
        "patroni_pending_restart",
        "gauge",
        "Value is 1 if the node needs a restart, 0 otherwise.",
        flag(m.pending_restart),
    );
    metric(
        "patroni_is_paused",
        "gauge",
        "Value is 1 if auto failover is disabled, 0 otherwise.",
        flag(truthy("pause")),
    );
    let _ = writeln!(out, "# HELP patroni_postgres_state Numeric representation of Postgres state.");
    let values: Vec<String> = (0..15)
        .filter_map(|i| {
            let name = STATE_NAMES.get(i)?;
            Some(format!("{i}={name}"))
        })
        .collect();
    let _ = writeln!(out, "# Values: {}", values.join(", "));
    let _ = writeln!(out, "# TYPE patroni_postgres_state gauge");
    let _ = writeln!(out, "patroni_postgres_state{labels} {}", state_index(s("state")));
    let _ = writeln!(out, "# HELP patroni_failover_priority Failover priority of this node.");
    let _ = writeln!(out, "# TYPE patroni_failover_priority gauge");
    let _ = writeln!(out, "patroni_failover_priority{labels} {}", m.failover_priority);
    // Palisade's own: Patroni's metrics say nothing of the watchdog.
    let _ = writeln!(out, "# HELP palisade_watchdog_running Value is 1 if a watchdog device is armed, 0 otherwise.");
    let _ = writeln!(out, "# TYPE palisade_watchdog_running gauge");
    let _ = writeln!(out, "palisade_watchdog_running{labels} {}", u8::from(m.watchdog_running));
    let _ = writeln!(
        out,
        "# HELP palisade_watchdog_failed Value is 1 if the watchdog is required but not usable, 0 otherwise."
    );
    let _ = writeln!(out, "# TYPE palisade_watchdog_failed gauge");
    let failed = pg.get("watchdog_failed").and_then(Value::as_bool).unwrap_or(false);
    let _ = writeln!(out, "palisade_watchdog_failed{labels} {}", u8::from(failed));
    out
}

/// Patroni's enum member names, lower-cased, in index order.
const STATE_NAMES: [&str; 15] = [
    "initdb",
    "initdb_failed",
    "custom_bootstrap",
    "custom_bootstrap_failed",
    "creating_replica",
    "running",
    "starting",
    "bootstrap_starting",
    "start_failed",
    "restarting",
    "restart_failed",
    "stopping",
    "stopped",
    "stop_failed",
    "crashed",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn input(pg: &Map<String, Value>) -> MetricsInput<'_> {
        MetricsInput {
            scope: "demo",
            name: "node1",
            group: None,
            pg,
            pending_restart: false,
            failsafe_enabled: false,
            failsafe_member: false,
            failover_priority: 1,
            watchdog_running: false,
        }
    }

    fn value(text: &str, name: &str) -> String {
        let prefix = format!("{name}{{scope=\"demo\",name=\"node1\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or("absent").to_string()
    }

    #[test]
    fn metrics_follow_the_status() {
        let primary = json!({
            "state": "running", "role": "primary", "server_version": 150018,
            "postmaster_start_time": "2026-11-22 10:00:00.5+00:00",
            "xlog": {"location": 67108864}, "timeline": 3, "dcs_last_seen": 1795000000,
        });
        let replica = json!({
            "state": "running", "role": "replica", "server_version": 150018,
            "xlog": {"received_location": 100, "replayed_location": 90, "replayed_timestamp": null, "paused": false},
            "replication_state": "streaming", "pause": true, "cluster_unlocked": true,
        });
        let stopped = json!({"state": "stopped", "role": "replica", "dcs_last_seen": 0});
        let cases: &[(&Value, &str, &str)] = &[
            (&primary, "patroni_primary", "1"),
            (&primary, "patroni_replica", "0"),
            (&primary, "patroni_xlog_location", "67108864"),
            (&primary, "patroni_postgres_timeline", "3"),
            (&primary, "patroni_postmaster_start_time", "1795341600.5"),
            (&primary, "patroni_postgres_state", "5"),
            (&primary, "patroni_postgres_streaming", "0"),
            (&primary, "patroni_version", "040104"),
            (&replica, "patroni_replica", "1"),
            (&replica, "patroni_xlog_received_location", "100"),
            (&replica, "patroni_xlog_replayed_location", "90"),
            (&replica, "patroni_xlog_replayed_timestamp", "0"),
            (&replica, "patroni_postgres_streaming", "1"),
            (&replica, "patroni_is_paused", "1"),
            (&replica, "patroni_cluster_unlocked", "1"),
            (&replica, "patroni_postmaster_start_time", "0"),
            (&stopped, "patroni_postgres_running", "0"),
            (&stopped, "patroni_postgres_state", "12"),
            (&stopped, "patroni_postgres_streaming", "absent"),
            (&stopped, "patroni_postgres_server_version", "0"),
            (&stopped, "palisade_watchdog_failed", "0"),
            (&stopped, "palisade_watchdog_running", "0"),
            (&json!({"state": "running", "watchdog_failed": true}), "palisade_watchdog_failed", "1"),
        ];
        for (pg, name, want) in cases {
            let map = pg.as_object().unwrap();
            let text = render_metrics(&input(map));
            assert_eq!(value(&text, name), *want, "{name} for {pg}");
        }
    }

    #[test]
    fn a_citus_node_labels_every_metric_with_its_group() {
        let pg = json!({"state": "running", "role": "primary", "server_version": 150000});
        let map = pg.as_object().unwrap();
        let text = render_metrics(&MetricsInput { group: Some(2), ..input(map) });
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        for l in &samples {
            assert!(l.contains("{scope=\"demo\",name=\"node1\",group=\"2\"} "), "{l}");
        }
        let plain = render_metrics(&input(map));
        assert!(!plain.contains("group="), "no group label without Citus");
        let plain_samples = plain.lines().filter(|l| !l.starts_with('#')).count();
        assert!(plain_samples > 20, "{plain}");
        assert_eq!(samples.len(), plain_samples, "the same samples, each with its group");
    }

    #[test]
    fn every_metric_has_help_and_type() {
        let pg = json!({"state": "running", "role": "primary", "server_version": 150000});
        let text = render_metrics(&input(pg.as_object().unwrap()));
        let names: Vec<&str> =
            text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split('{').next()).collect();
        assert_eq!(names.len(), 28);
        for n in names {
            assert!(text.contains(&format!("# HELP {n} ")), "{n}");
            assert!(text.contains(&format!("# TYPE {n} ")), "{n}");
        }
        assert!(text.contains("# Values: 0=initdb, 1=initdb_failed"));
    }

    #[test]
    fn failover_priority_reads_tags() {
        let cases = [
            (json!({}), 1),
            (json!({"nofailover": true}), 0),
            (json!({"failover_priority": 5}), 5),
            (json!({"failover_priority": "3"}), 3),
            (json!({"nofailover": "false", "failover_priority": 2}), 2),
        ];
        for (tags, want) in cases {
            assert_eq!(failover_priority(tags.as_object().unwrap()), want, "{tags}");
        }
    }
}
