//! The unsafe endpoints: switchover and failover, restart, reload,
//! reinitialize, dynamic configuration, failsafe and MPP events. Codes and
//! texts are Patroni 4.1's (patronictl prints them); a body that cannot be
//! read gets 400 with JSON naming the problem and changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use palisade_config::{patch_config, GlobalConfig};
use palisade_model::values::ScheduledAt;
use palisade_model::{Cluster, Failover, Role};
use serde_json::{Map, Value};

use super::reply::{self, bad_request, opt_str, read_json};
use super::views::fresh_cluster;
use super::ApiState;
use crate::runner::{Event, Shared};

/// `expr?` for handlers: the error is the answer.
macro_rules! or_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

fn daemon(st: &ApiState) -> Result<Arc<Shared>, Response> {
    st.shared.clone().ok_or_else(|| reply::text(503, "the HA loop is not running"))
}

fn global_config(cluster: &Cluster) -> GlobalConfig {
    GlobalConfig::from_dynamic(&cluster.config.as_ref().map(|c| c.data.clone()).unwrap_or_default()).0
}

fn title(action: &str) -> String {
    let mut c = action.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// Patroni's `parse_schedule`: the time, or the code and message to answer.
pub fn parse_schedule(text: &str, action: &str, now: DateTime<Utc>) -> Result<DateTime<FixedOffset>, (u16, String)> {
    if let Some(t) = palisade_model::values::parse_timestamp(text) {
        if t < now {
            return Err((422, format!("Cannot schedule {action} in the past")));
        }
        return Ok(t);
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .any(|f| NaiveDateTime::parse_from_str(text.trim(), f).is_ok());
    if naive {
        return Err((400, format!("Timezone information is mandatory for the scheduled {action}")));
    }
    Err((422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601".into()))
}

/// A manual failover request, checked against the cluster before anything
/// is written.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub action: &'static str,
    pub leader: Option<String>,
    pub candidate: Option<String>,
    pub scheduled_at: Option<DateTime<FixedOffset>>,
}

/// Patroni's checks of `do_POST_failover` up to the candidate health check:
/// the request to carry out, or the code and message to answer.
pub fn check_request(
    action: &'static str,
    body: &Map<String, Value>,
    cluster: &Cluster,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<Request, Response> {
    let leader = opt_str(body, "leader")?;
    let candidate = match opt_str(body, "candidate")? {
        Some(c) => Some(c),
        None => opt_str(body, "member")?,
    };
    let scheduled = opt_str(body, "scheduled_at")?;
    let refuse = |code: u16, text: String| Err(reply::text(code, text));
    if action == "failover" && candidate.is_none() {
        return refuse(400, "Failover could be performed only to a specific candidate".into());
    }
    if action == "switchover" && leader.is_none() {
        return refuse(400, "Switchover could be performed only from a specific leader".into());
    }
    let mut scheduled_at = None;
    if let Some(s) = scheduled {
        if action == "failover" {
            return refuse(400, "Failover can't be scheduled".into());
        }
        if paused {
            return refuse(400, "Can't schedule switchover in the paused state".into());
        }
        match parse_schedule(&s, action, now) {
            Ok(t) => scheduled_at = Some(t),
            Err((code, text)) => return refuse(code, text),
        }
    }
    if paused && candidate.is_none() {
        return refuse(400, "Switchover is possible only to a specific candidate in a paused state".into());
    }
    let action = if action == "failover" && leader.is_some() {
        tracing::warn!("received failover request with leader specified - performing switchover instead");
        "switchover"
    } else {
        action
    };
    if leader.is_some() && leader == candidate {
        return refuse(400, "Switchover target and source are the same".into());
    }
    if let Some(c) = candidate.as_deref() {
        if cluster.member(c).is_none() {
            // Patroni answers 412 here; an unknown member is a bad request.
            return Err(bad_request(400, format!("candidate does not exists: no member named '{c}' in the cluster")));
        }
    }
    Ok(Request { action, leader, candidate, scheduled_at })
}

/// Patroni's `is_failover_possible`: `None` when some member could take
/// over, else why not.
async fn failover_refusal(shared: &Shared, cluster: &Cluster, req: &Request) -> Option<String> {
    let config = global_config(cluster);
    let action = req.action;
    if let Some(l) = req.leader.as_deref() {
        if cluster.leader_name() != Some(l) {
            return Some("leader name does not match".into());
        }
    }
    let plain_sync = config.is_synchronous_mode() && !config.is_quorum_commit_mode();
    let members: Vec<_> = if let Some(c) = req.candidate.as_deref() {
        if action == "switchover" && plain_sync && !cluster.sync.matches(c, false) {
            return Some("candidate name does not match with sync_standby".into());
        }
        cluster.members.iter().filter(|m| m.name == c).cloned().collect()
    } else if plain_sync {
        let m: Vec<_> = cluster.members.iter().filter(|m| cluster.sync.matches(&m.name, false)).cloned().collect();
        if m.is_empty() {
            return Some(format!("{action} is not possible: can not find sync_standby"));
        }
        m
    } else {
        let leader = cluster.leader_name();
        let m: Vec<_> = cluster
            .members
            .iter()
            .filter(|m| Some(m.name.as_str()) != leader && m.api_url().is_some())
            .cloned()
            .collect();
        if m.is_empty() {
            return Some(format!("{action} is not possible: cluster does not have members except leader"));
        }
        m
    };
    let statuses = shared.peers.statuses(members).await;
    if statuses.iter().any(|s| s.reachable && s.failover_limitation().is_none()) {
        return None;
    }
    Some(format!("{action} is not possible: no good candidates have been found"))
}

/// Patroni's `poll_failover_result`, checking more often than once a second
/// so that the answer comes as soon as the new leader holds the lock.
async fn poll_result(shared: &Shared, leader: Option<&str>, candidate: Option<&str>, action: &str) -> Response {
    let seconds = shared.config().global.loop_wait.as_secs().max(10).saturating_mul(2);
    let deadline = crate::instant_after(Duration::from_secs(seconds));
    let past = if action == "switchover" { "switched" } else { "failed" };
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(cluster) = shared.dcs.get_cluster().await else {
            continue;
        };
        if let Some(now) = cluster.leader_name().filter(|n| Some(*n) != leader) {
            // Patroni answers as soon as the lock moved; we also wait (within
            // the same time limit) until the new leader says it is up.
            let up = cluster.member(now).is_some_and(|m| {
                let role = m.data.get("role").and_then(Value::as_str).and_then(Role::parse);
                matches!(role, Some(Role::Primary | Role::StandbyLeader))
                    && m.data.get("state").and_then(Value::as_str) == Some("running")
            });
            if !up && Instant::now() + Duration::from_millis(100) < deadline {
                continue;
            }
            return match candidate {
                None => reply::text(200, format!("Successfully {past} over to \"{now}\"")),
                Some(c) if c == now => reply::text(200, format!("Successfully {past} over to \"{now}\"")),
                Some(c) => reply::text(200, format!("{} over to \"{now}\" instead of \"{c}\"", title(past))),
            };
        }
        if cluster.failover.is_none() {
            return reply::text(503, format!("{} failed", title(action)));
        }
    }
    reply::text(
        503,
        format!("{} status unknown after {seconds} seconds; operation may still be in progress", title(action)),
    )
}

async fn manual_failover(st: ApiState, headers: HeaderMap, body: Bytes, action: &'static str) -> Response {
    let shared = or_answer!(daemon(&st));
    let body = or_answer!(read_json(&headers, &body, false));
    let cluster = or_answer!(fresh_cluster(&st).await);
    let paused = global_config(&cluster).pause;
    tracing::info!(
        "received {action} request with leader={} candidate={} scheduled_at={}",
        opt_str(&body, "leader").ok().flatten().unwrap_or_else(|| "None".into()),
        opt_str(&body, "candidate").ok().flatten().unwrap_or_else(|| "None".into()),
        opt_str(&body, "scheduled_at").ok().flatten().unwrap_or_else(|| "None".into()),
    );
    let req = match check_request(action, &body, &cluster, paused, Utc::now()) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.scheduled_at.is_none() {
        if let Some(why) = failover_refusal(&shared, &cluster, &req).await {
            return reply::text(412, why);
        }
    }
    let value = Failover::to_json(req.leader.as_deref(), req.candidate.as_deref(), req.scheduled_at.as_ref());
    match shared.dcs.set_failover_value(value, None).await {
        Ok(true) => {}
        Ok(false) | Err(_) => return reply::text(503, "failed to write failover key into DCS"),
    }
    let _ = shared.events.send(Event::Wake);
    if req.scheduled_at.is_some() {
        return reply::text(202, format!("{} scheduled", title(req.action)));
    }
    poll_result(&shared, cluster.leader_name(), req.candidate.as_deref(), req.action).await
}

/// `POST /switchover`.
pub async fn switchover(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    manual_failover(st, headers, body, "switchover").await
}

/// `POST /failover`.
pub async fn failover(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    manual_failover(st, headers, body, "failover").await
}

/// `DELETE /switchover`: cancel a scheduled switchover.
pub async fn cancel_switchover(State(st): State<ApiState>) -> Response {
    let shared = or_answer!(daemon(&st));
    let cluster = or_answer!(fresh_cluster(&st).await);
    match cluster.failover {
        Some(f) if f.scheduled_at.is_some() => {
            match shared.dcs.set_failover_value("{}".into(), Some(f.version)).await {
                Ok(true) => {
                    let _ = shared.events.send(Event::Wake);
                    reply::text(200, "scheduled switchover deleted")
                }
                _ => reply::text(409, "the scheduled switchover changed or could not be deleted; retry"),
            }
        }
        _ => reply::text(404, "no switchover is scheduled"),
    }
}

/// What `POST /restart` asks for: the filters, the timeout, and when.
pub type RestartRequest = (palisade_ha::RestartFilter, Option<f64>, Option<DateTime<FixedOffset>>);

/// The filters of `POST /restart`, checked as Patroni checks them.
pub fn restart_request(
    body: &Map<String, Value>,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<RestartRequest, (u16, String)> {
    if paused && body.contains_key("schedule") {
        return Err((500, "Can't schedule restart in the paused state".into()));
    }
    let mut filter = palisade_ha::RestartFilter::default();
    let mut timeout = None;
    let mut at = None;
    for (k, v) in body {
        match k.as_str() {
            "schedule" => {
                let Some(text) = v.as_str() else {
                    return Err((400, format!("'schedule' must be a timestamp string, not {}", reply::kind(v))));
                };
                at = Some(parse_schedule(text, "restart", now)?);
            }
            "role" => {
                let role = v.as_str().and_then(Role::parse);
                match role {
                    Some(r @ (Role::Primary | Role::StandbyLeader | Role::Replica)) => {
                        filter.role = Some(r.as_str().to_string());
                    }
                    _ => {
                        return Err((
                            400,
                            "PostgreSQL role should be either primary, standby_leader, or replica".into(),
                        ))
                    }
                }
            }
            "postgres_version" => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => return Err((400, format!("Invalid PostgreSQL version: {other}"))),
                };
                palisade_ha::postgres_version_to_int(&text).map_err(|e| (400, e))?;
                filter.postgres_version = Some(text);
            }
            "timeout" => match palisade_config::values::parse_int(v, Some("s")) {
                Some(t) if t.unsigned_abs() > palisade_config::limits::MAX_SECONDS && t > 0 => {
                    tracing::warn!("restart: {}", palisade_config::limits::clamped_message(format!("timeout {t}")));
                    timeout = Some(palisade_config::limits::MAX_SECONDS as f64);
                }
                Some(t) if t > 0 => timeout = Some(t as f64),
                _ => return Err((400, "Timeout should be a positive number of seconds".into())),
            },
            "restart_pending" => match palisade_model::parse_bool(v) {
                Some(b) => filter.restart_pending = b,
                None => return Err((400, format!("'restart_pending' must be a boolean, not {}", reply::kind(v)))),
            },
            other => return Err((400, format!("Unknown filter for the scheduled restart: {other}"))),
        }
    }
    Ok((filter, timeout, at))
}

/// `POST /restart`: restart now (waiting for the outcome) or schedule one.
pub async fn restart(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let shared = or_answer!(daemon(&st));
    let body = or_answer!(read_json(&headers, &body, true));
    if !body.is_empty() {
        let text = serde_json::Value::Object(body.clone()).to_string();
        tracing::debug!("received restart request: {text}");
    }
    let paused = shared.config().global.pause;
    let (filter, timeout, at) = match restart_request(&body, paused, Utc::now()) {
        Ok(r) => r,
        Err((code, text)) => return reply::text(code, text),
    };
    match at {
        None => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if shared.events.send(Event::Restart { filter, timeout, reply: tx }).is_err() {
                return reply::text(503, "restart failed");
            }
            match rx.await {
                Ok((true, text)) => reply::text(200, text),
                Ok((false, text)) => reply::text(503, text),
                Err(_) => reply::text(503, "restart failed"),
            }
        }
        Some(at) => {
            let postmaster_start_time = st.status.get().pg.as_ref().and_then(|p| p.postmaster_start_time.clone());
            let scheduled =
                palisade_ha::ScheduledRestart { at: ScheduledAt::At(at), filter, timeout, postmaster_start_time };
            let published = crate::runner::member::scheduled_restart_json(&scheduled);
            if shared.schedule_restart(scheduled) {
                st.status.update(|s| s.scheduled_restart = Some(published));
                let _ = shared.events.send(Event::Wake);
                reply::text(202, "Restart scheduled")
            } else {
                reply::text(409, "Another restart is already scheduled")
            }
        }
    }
}

/// `DELETE /restart`.
pub async fn cancel_restart(State(st): State<ApiState>) -> Response {
    let shared = or_answer!(daemon(&st));
    if shared.delete_scheduled_restart() {
        st.status.update(|s| s.scheduled_restart = None);
        let _ = shared.events.send(Event::Wake);
        reply::text(200, "scheduled restart deleted")
    } else {
        reply::text(404, "no restarts are scheduled")
    }
}

/// `POST /reload`: re-read the configuration file.
pub async fn reload(State(st): State<ApiState>) -> Response {
    let shared = or_answer!(daemon(&st));
    let _ = shared.events.send(Event::Reload);
    reply::text(202, "reload scheduled")
}

/// `POST /reinitialize`: wipe this replica and clone it again.
pub async fn reinitialize(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let shared = or_answer!(daemon(&st));
    let body = or_answer!(read_json(&headers, &body, true));
    let flags = or_answer!(reinitialize_flags(&body));
    let (tx, rx) = tokio::sync::oneshot::channel();
    if shared.events.send(Event::Reinitialize { force: flags[0], from_leader: flags[1], reply: tx }).is_err() {
        return reply::text(503, "the HA loop is not running");
    }
    match rx.await {
        Ok(None) => reply::text(200, "reinitialize started"),
        Ok(Some(why)) => reply::text(503, why),
        Err(_) => reply::text(503, "the HA loop is not running"),
    }
}

/// `force` and `from_leader` of a `POST /reinitialize` body, or 400
/// naming the field that is not a boolean.
pub(crate) fn reinitialize_flags(body: &Map<String, Value>) -> Result<[bool; 2], Response> {
    let mut flags = [false, false];
    for (i, key) in ["force", "from_leader"].iter().enumerate() {
        match body.get(*key) {
            None | Some(Value::Null) => {}
            Some(v) => match palisade_model::parse_bool(v) {
                Some(b) => flags[i] = b,
                None => return Err(bad_request(400, format!("'{key}' must be a boolean, not {}", reply::kind(v)))),
            },
        }
    }
    Ok(flags)
}

/// Refuse a new dynamic configuration that has errors its old one did not
/// have (so that somebody else's old mistake does not block every change).
pub(crate) fn config_errors(old: &Map<String, Value>, new: &Map<String, Value>) -> Option<Response> {
    let before: Vec<String> = GlobalConfig::errors(old).iter().map(ToString::to_string).collect();
    let fresh: Vec<String> =
        GlobalConfig::errors(new).iter().map(ToString::to_string).filter(|e| !before.contains(e)).collect();
    (!fresh.is_empty()).then(|| bad_request(400, format!("invalid configuration: {}", fresh.join("; "))))
}

/// `PATCH /config`.
pub async fn patch_config_handler(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let shared = or_answer!(daemon(&st));
    let patch = or_answer!(read_json(&headers, &body, false));
    let cluster = or_answer!(fresh_cluster(&st).await);
    let Some(config) = cluster.config.filter(|c| !c.version.is_empty()) else {
        return reply::code_only(503);
    };
    let mut data = config.data.clone();
    if patch_config(&mut data, &patch) {
        if let Some(r) = config_errors(&config.data, &data) {
            return r;
        }
        match shared.dcs.set_config_value(Value::Object(data.clone()).to_string(), Some(config.version)).await {
            Ok(true) => {}
            // Patroni sends its stock 409 page; say what happened.
            _ => return reply::text(409, "the configuration changed meanwhile or could not be written; retry"),
        }
    }
    let _ = shared.events.send(Event::Wake);
    reply::json(200, Value::Object(data))
}

/// `PUT /config`.
pub async fn put_config(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let shared = or_answer!(daemon(&st));
    let new = or_answer!(read_json(&headers, &body, false));
    let cluster = or_answer!(fresh_cluster(&st).await);
    let old = cluster.config.map(|c| c.data).unwrap_or_default();
    if old != new {
        if let Some(r) = config_errors(&old, &new) {
            return r;
        }
        match shared.dcs.set_config_value(Value::Object(new.clone()).to_string(), None).await {
            Ok(true) => {}
            _ => return reply::code_only(502),
        }
        let _ = shared.events.send(Event::Wake);
    }
    reply::json(200, Value::Object(new))
}

/// `POST /failsafe`: the primary's call to the other members while it
/// cannot reach the DCS (failsafe mode). A replica accepts it only from the
/// member that was leader in the last snapshot it read; accepting keeps
/// that leader in its view of the cluster for ttl and marks failsafe mode
/// active; the `slots` it carries advance our copies of the leader's slots
/// meanwhile. The answer carries our WAL position in `lsn`, as Patroni's.
pub async fn failsafe_heartbeat(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(shared) = st.shared.as_ref() else {
        return reply::code_only(502);
    };
    let config = shared.config();
    if !config.global.failsafe_mode {
        return reply::code_only(502);
    }
    let body = match read_json(&headers, &body, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let leader = match failsafe_leader(&body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    // The leader's slot positions, for our copies of its slots.
    let slots = match body.get("slots") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => return reply::bad_request(400, "'slots' must be an object".to_string()),
    };
    let s = st.status.get();
    if let Some(refusal) = failsafe_refusal(&s, &leader.name) {
        tracing::warn!("refused POST /failsafe from {}: {refusal}", leader.name);
        return reply::text(500, refusal);
    }
    let until = crate::instant_after(config.global.ttl);
    st.status.update(|s| {
        s.failsafe.active_until = Some(until);
        s.failsafe.leader = Some(leader);
        s.failsafe.slots = slots;
    });
    let mut r = reply::text(200, "Accepted");
    let lsn = s.pg.as_ref().map(|p| p.received_location.unwrap_or(0).max(p.replayed_location.unwrap_or(0)));
    if let Some(v) = lsn.and_then(|l| axum::http::HeaderValue::from_str(&l.to_string()).ok()) {
        r.headers_mut().insert("lsn", v);
    }
    r
}

/// The leader described by a `POST /failsafe` body (`name`, `conn_url`,
/// `api_url`, as Patroni sends them), or 400 naming the field.
pub(crate) fn failsafe_leader(body: &Map<String, Value>) -> Result<palisade_ha::FailsafeLeader, Response> {
    let field = |key: &str| match opt_str(body, key)? {
        Some(v) => Ok(v),
        None => Err(reply::bad_request(400, format!("'{key}' is required"))),
    };
    Ok(palisade_ha::FailsafeLeader { name: field("name")?, conn_url: field("conn_url")?, api_url: field("api_url")? })
}

/// Why this node does not accept `POST /failsafe` from `caller`, or `None`.
/// A primary never does (Patroni's answer); a replica only from the member
/// that was leader, so a member that never held the lock cannot keep
/// itself running as a primary with our help.
pub fn failsafe_refusal(s: &crate::status::NodeStatus, caller: &str) -> Option<String> {
    if s.pg.as_ref().is_some_and(|p| !p.in_recovery) {
        return Some("Running as a leader".into());
    }
    match s.known_leader.as_deref() {
        Some(leader) if leader == caller => None,
        Some(leader) => Some(format!("{caller} is not the leader (the last known leader is {leader})")),
        None => Some(format!("{caller} is not the leader (no leader is known)")),
    }
}

/// `POST /mpp` (and the older `/citus`): an event from a worker group's
/// primary (Patroni's `do_POST_mpp`). On the coordinator's leader the
/// event goes to the MPP plugin with every group's cluster read afresh;
/// a `before_demote` is answered once the coordinator holds the worker's
/// metadata lock. Any other node answers `200 OK` and does nothing, as
/// Patroni's. Unlike Patroni, which drops the connection when the DCS
/// cannot be read or the body lacks a key, the answer is 503 or 400 with
/// the reason.
pub async fn mpp(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let event = match read_json(&headers, &body, false) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(shared) = st.shared.as_ref() else {
        return reply::text(200, "OK");
    };
    let Some(mpp) = shared.mpp.as_deref().filter(|m| m.is_coordinator()) else {
        return reply::text(200, "OK");
    };
    if !shared.tracked().is_leader() {
        return reply::text(200, "OK");
    }
    let groups = match shared.dcs.get_mpp_groups().await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("POST /citus: cannot read the Citus groups: {e}");
            return reply::text(503, format!("cannot read the Citus groups: {e}"));
        }
    };
    match mpp.handle_event(&event, &groups).await {
        Ok(()) => reply::text(200, "OK"),
        Err(e) if e.is_invalid_input() => {
            tracing::warn!("POST /citus: {e}");
            bad_request(400, e.to_string())
        }
        Err(e) => {
            tracing::error!("POST /citus: {e}");
            reply::text(503, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_plugin_api::{DcsSnapshot, LeaderKey, MemberKey, VersionedValue};
    use serde_json::json;

    fn cluster() -> Cluster {
        let member = |name: &str| MemberKey {
            name: name.into(),
            version: "1".into(),
            session: String::new(),
            value: format!(
                r#"{{"api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"replica","conn_url":"postgres://127.0.0.1:5432/postgres","name":"{name}"}}"#
            ),
        };
        let snap = DcsSnapshot {
            leader: Some(LeaderKey { name: "a".into(), version: "1".into(), session: String::new() }),
            members: vec![member("a"), member("b")],
            config: Some(VersionedValue { version: "1".into(), value: "{}".into() }),
            ..DcsSnapshot::default()
        };
        palisade_plugin_host::snapshot::cluster_from_snapshot(snap).0
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn answer(r: Result<Request, Response>) -> Result<Request, u16> {
        r.map_err(|resp| resp.status().as_u16())
    }

    #[test]
    fn failover_requests_are_checked_as_patroni_checks_them() {
        let c = cluster();
        let req =
            |action, body: Value, paused| answer(check_request(action, body.as_object().unwrap(), &c, paused, now()));
        type Want<'a> = Result<(&'a str, Option<&'a str>), u16>;
        let cases: Vec<(&str, Value, bool, Want)> = vec![
            ("switchover", json!({"leader": "a"}), false, Ok(("switchover", None))),
            ("switchover", json!({"leader": "a", "candidate": "b"}), false, Ok(("switchover", Some("b")))),
            ("switchover", json!({"leader": "a", "member": "b"}), false, Ok(("switchover", Some("b")))),
            ("failover", json!({"candidate": "b"}), false, Ok(("failover", Some("b")))),
            ("failover", json!({"leader": "a", "candidate": "b"}), false, Ok(("switchover", Some("b")))),
            ("failover", json!({"leader": "a"}), false, Err(400)),
            ("switchover", json!({"candidate": "b"}), false, Err(400)),
            ("switchover", json!({"leader": "a", "candidate": "a"}), false, Err(400)),
            ("switchover", json!({"leader": "a", "candidate": "zz"}), false, Err(400)),
            ("switchover", json!({"leader": 7}), false, Err(400)),
            ("switchover", json!({"leader": "a"}), true, Err(400)),
            ("switchover", json!({"leader": "a", "candidate": "b"}), true, Ok(("switchover", Some("b")))),
            ("failover", json!({"candidate": "b", "scheduled_at": "2026-11-22T13:00:00+00:00"}), false, Err(400)),
            ("switchover", json!({"leader": "a", "scheduled_at": "2026-11-22T13:00:00+00:00"}), true, Err(400)),
            ("switchover", json!({"leader": "a", "scheduled_at": "2026-11-22T13:00:00"}), false, Err(400)),
            ("switchover", json!({"leader": "a", "scheduled_at": "2026-11-22T11:00:00+00:00"}), false, Err(422)),
            ("switchover", json!({"leader": "a", "scheduled_at": "tomorrow"}), false, Err(422)),
        ];
        for (action, body, paused, want) in cases {
            let got = req(action, body.clone(), paused).map(|r| (r.action, r.candidate));
            let want = want.map(|(a, c)| (a, c.map(String::from)));
            assert_eq!(got, want, "{action} {body} paused={paused}");
        }
        let scheduled = req("switchover", json!({"leader": "a", "scheduled_at": "2026-11-22T13:00:00+01:00"}), false);
        let at = scheduled.unwrap().scheduled_at.unwrap();
        assert_eq!(
            Failover::to_json(Some("a"), None, Some(&at)),
            r#"{"leader":"a","scheduled_at":"2026-11-22T13:00:00+01:00"}"#
        );
        assert_eq!(Failover::to_json(Some("a"), Some("b"), None), r#"{"leader":"a","member":"b"}"#);
    }

    #[test]
    fn restart_filters_are_checked() {
        let check = |body: Value, paused| restart_request(body.as_object().unwrap(), paused, now()).map_err(|e| e.0);
        let ok = |body: Value| check(body, false).unwrap();
        assert_eq!(ok(json!({})).0, palisade_ha::RestartFilter::default());
        assert_eq!(ok(json!({"role": "master"})).0.role.as_deref(), Some("primary"));
        assert!(ok(json!({"restart_pending": true})).0.restart_pending);
        assert_eq!(ok(json!({"timeout": "1min"})).1, Some(60.0));
        assert_eq!(ok(json!({"timeout": 30})).1, Some(30.0));
        assert_eq!(ok(json!({"postgres_version": "15.2"})).0.postgres_version.as_deref(), Some("15.2"));
        assert!(ok(json!({"schedule": "2026-11-22T12:30:00Z"})).2.is_some());
        let errors = [
            (json!({"role": "boss"}), false, 400),
            (json!({"postgres_version": "15.x"}), false, 400),
            (json!({"timeout": 0}), false, 400),
            (json!({"timeout": "soon"}), false, 400),
            (json!({"restart_pending": "maybe"}), false, 400),
            (json!({"colour": "blue"}), false, 400),
            (json!({"schedule": "2026-11-22T12:30:00"}), false, 400),
            (json!({"schedule": "2026-11-21T12:30:00Z"}), false, 422),
            (json!({"schedule": 5}), false, 400),
            (json!({"schedule": "2026-11-22T12:30:00Z"}), true, 500),
        ];
        for (body, paused, code) in errors {
            assert_eq!(check(body.clone(), paused).err(), Some(code), "{body}");
        }
    }

    #[test]
    fn new_config_errors_are_refused_but_old_ones_do_not_block() {
        let old = json!({"ttl": "soon"});
        let fine = json!({"ttl": "soon", "loop_wait": 5});
        let bad = json!({"ttl": "soon", "loop_wait": "often"});
        assert!(config_errors(old.as_object().unwrap(), fine.as_object().unwrap()).is_none());
        assert_eq!(
            config_errors(old.as_object().unwrap(), bad.as_object().unwrap()).map(|r| r.status().as_u16()),
            Some(400)
        );
    }
}
