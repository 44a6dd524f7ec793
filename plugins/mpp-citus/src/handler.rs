//! The coordinator's metadata work, as Patroni's `CitusHandler` thread
//! does it: requests to change `pg_dist_node` ("tasks", one per group at
//! most) are queued by `sync_meta_data` (every HA cycle) and by the events
//! worker primaries send (`POST /citus`); one background thread applies
//! them on its own connection, in a transaction that stays open from a
//! worker's `before_demote` to its `after_promote` (or until the event's
//! `timeout` has passed), so that the metadata lock `citus_update_node`
//! takes makes new distributed transactions wait meanwhile (the thread is
//! in [`crate::worker`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use palisade_plugin_api::sdk::pycompat::py::float_repr;
use palisade_plugin_api::sdk::settings::{error, kind};
use palisade_plugin_api::{MppCluster, MppLocal, MppMember, PluginError, PluginResult};
use serde_json::Value;

use crate::db::url_address;
use crate::dist::{Group, Node, Role};
use crate::settings::{Settings, COORDINATOR_GROUP};
use crate::worker::Worker;

/// `citus_update_node`'s `lock_cooldown` (ms) when the event gives none.
const DEFAULT_COOLDOWN: &str = "10000";

/// What made a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    BeforeDemote,
    BeforePromote,
    AfterPromote,
}

impl Event {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "before_demote" => Some(Self::BeforeDemote),
            "before_promote" => Some(Self::BeforePromote),
            "after_promote" => Some(Self::AfterPromote),
            _ => None,
        }
    }
}

/// Set once a task was processed (or dropped), for the caller waiting on it.
#[derive(Default)]
pub(crate) struct Done {
    flag: Mutex<bool>,
    cond: Condvar,
}

impl Done {
    pub(crate) fn set(&self) {
        *lock(&self.flag) = true;
        self.cond.notify_all();
    }

    fn wait(&self, timeout: Duration) -> bool {
        let guard = lock(&self.flag);
        let (guard, _) = self.cond.wait_timeout_while(guard, timeout, |done| !*done).unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// A wanted state of one group's rows (Patroni's `PgDistTask`).
#[derive(Clone)]
pub(crate) struct Task {
    pub(crate) id: u64,
    pub(crate) group: Group,
    pub(crate) event: Event,
    /// From an event: how long a transaction it opens may stay open.
    /// `None` for tasks made by `sync_meta_data`.
    pub(crate) timeout: Option<f64>,
    /// `lock_cooldown` for `citus_update_node`, as SQL text (ms).
    pub(crate) cooldown: String,
    /// When an open transaction may be rolled back.
    pub(crate) deadline: Option<Instant>,
    pub(crate) done: Arc<Done>,
}

impl Task {
    pub(crate) fn new(group: Group, event: Event, timeout: Option<f64>, cooldown: Option<String>) -> Self {
        Self {
            id: 0,
            group,
            event,
            timeout,
            cooldown: cooldown.unwrap_or_else(|| DEFAULT_COOLDOWN.to_string()),
            deadline: None,
            done: Arc::new(Done::default()),
        }
    }

    /// Patroni's `PgDistTask.__eq__`: same event, same rows and roles.
    pub(crate) fn same(&self, other: &Task) -> bool {
        self.event == other.event && self.group.equals(&other.group)
    }
}

#[derive(Default)]
pub(crate) struct State {
    /// What `pg_dist_node` holds, by group, as last read or written.
    pub(crate) cache: BTreeMap<i32, Task>,
    pub(crate) tasks: Vec<Task>,
    /// The task whose transaction is open.
    pub(crate) in_flight: Option<Task>,
    /// `pg_dist_node` must be read again before it is acted on.
    pub(crate) schedule_load: bool,
    /// `sync_meta_data` was called once: the thread may start.
    pub(crate) ready: bool,
    /// Drop the connection before its next use (after a demotion).
    pub(crate) reset_connection: bool,
    pub(crate) local: Option<MppLocal>,
    pub(crate) next_id: u64,
    pub(crate) stop: bool,
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) cond: Condvar,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The coordinator side of the Citus integration.
pub struct Handler {
    settings: Settings,
    name: String,
    shared: Arc<Shared>,
}

impl Handler {
    /// On the coordinator, start the thread that works through the tasks
    /// (it waits for the first `sync_meta_data`).
    pub fn new(settings: Settings, name: String) -> PluginResult<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { schedule_load: true, ..State::default() }),
            cond: Condvar::new(),
        });
        if settings.is_coordinator() {
            let worker =
                Worker { shared: shared.clone(), database: settings.database.clone(), client: None, failed: false };
            thread::Builder::new()
                .name("citus-metadata".into())
                .spawn(move || worker.run())
                .map_err(|e| PluginError::other(format!("start the citus metadata thread: {e}")))?;
        }
        Ok(Self { settings, name, shared })
    }

    pub fn set_local(&self, local: MppLocal) {
        let mut st = lock(&self.shared.state);
        if st.local.as_ref() != Some(&local) {
            st.reset_connection = true;
        }
        st.local = Some(local);
    }

    pub fn local(&self) -> Option<MppLocal> {
        lock(&self.shared.state).local.clone()
    }

    pub fn schedule_cache_rebuild(&self) {
        lock(&self.shared.state).schedule_load = true;
    }

    pub fn on_demote(&self) {
        let mut st = lock(&self.shared.state);
        st.cache.clear();
        for t in st.tasks.drain(..) {
            t.done.set();
        }
        st.in_flight = None;
        st.reset_connection = true;
    }

    /// Every HA cycle on the coordinator's primary: a task for the
    /// coordinator's own group and one for each worker group whose leader
    /// is a running primary.
    pub fn sync_meta_data(&self, clusters: &[MppCluster]) -> PluginResult<()> {
        if !self.settings.is_coordinator() {
            return Ok(());
        }
        let conn_url = {
            let mut st = lock(&self.shared.state);
            st.ready = true;
            self.shared.cond.notify_all();
            st.local.as_ref().map(|l| l.conn_url.clone())
        };
        let conn_url =
            conn_url.ok_or_else(|| PluginError::other("citus: the host has not given the local connection yet"))?;
        let own = clusters.iter().find(|c| c.group == COORDINATOR_GROUP);
        let members = own.map_or(&[][..], |c| &c.members[..]);
        self.add_task(Event::AfterPromote, COORDINATOR_GROUP, members, &self.name, &conn_url, None, None);

        for cluster in clusters.iter().filter(|c| c.group != COORDINATOR_GROUP) {
            let Some(leader) = leader_member(cluster) else { continue };
            let Some(url) = &leader.conn_url else { continue };
            let primary = matches!(leader.role.as_deref(), Some("master" | "primary"));
            if primary && leader.state.as_deref() == Some("running") {
                self.add_task(Event::AfterPromote, cluster.group, &cluster.members, &leader.name, url, None, None);
            }
        }
        Ok(())
    }

    /// An event from a worker primary (`POST /citus`).
    pub fn handle_event(&self, clusters: &[MppCluster], event_json: &str) -> PluginResult<()> {
        let event = WorkerEvent::parse(event_json)?;
        if !self.settings.is_coordinator() || !lock(&self.shared.state).ready {
            return Ok(());
        }
        let worker = clusters.iter().find(|c| c.group == event.group && c.group != COORDINATOR_GROUP);
        let leader = worker.and_then(leader_member);
        let matches = leader.filter(|l| l.name == event.leader).and_then(|l| l.conn_url.as_ref().map(|u| (l, u)));
        let (Some(worker), Some((leader, url))) = (worker, matches) else {
            tracing::info!("Discarding event {event_json}");
            return Ok(());
        };
        let task = self.add_task(
            event.kind,
            event.group,
            &worker.members,
            &leader.name,
            url,
            Some(event.timeout),
            Some(event.cooldown),
        );
        if let Some(done) = task.filter(|_| event.kind == Event::BeforeDemote) {
            // Patroni waits until the row is paused; the worker's request
            // gives up after `timeout` (ttl) seconds anyway.
            let wait = Duration::from_secs_f64(event.timeout.clamp(1.0, 3600.0));
            if !done.wait(wait) {
                tracing::warn!("pg_dist_node of group {} was not paused within {wait:?}", event.group);
            }
        }
        Ok(())
    }

    /// Patroni's `add_task`: the wanted rows of a group, from its leader's
    /// address and its running members that take load. Returns what to
    /// wait on when the task was queued.
    #[allow(clippy::too_many_arguments)]
    fn add_task(
        &self,
        event: Event,
        groupid: i32,
        members: &[MppMember],
        leader_name: &str,
        leader_url: &str,
        timeout: Option<f64>,
        cooldown: Option<String>,
    ) -> Option<Arc<Done>> {
        let role = if event == Event::BeforeDemote { Role::Demoted } else { Role::Primary };
        let (host, port) = address(leader_url)?;
        let mut group = Group::new(groupid);
        group.add(Node::new(&host, port, role));
        for m in members {
            if m.name == leader_name || m.noloadbalance || m.state.as_deref() != Some("running") {
                continue;
            }
            if let Some((host, port)) = m.conn_url.as_deref().and_then(address) {
                group.add(Node::new(&host, port, Role::Secondary));
            }
        }
        let task = Task::new(group, event, timeout, cooldown);
        let done = task.done.clone();
        self.queue(task).then_some(done)
    }

    /// Patroni's `_add_task`: queue `task` unless it changes nothing, or
    /// it comes from `sync_meta_data` while an event's work for the same
    /// group is pending (the DCS may not show that change yet).
    fn queue(&self, mut task: Task) -> bool {
        let mut st = lock(&self.shared.state);
        let groupid = task.group.groupid;
        let i = st.tasks.iter().position(|t| t.group.groupid == groupid);
        if task.timeout.is_none() {
            if i.is_some_and(|i| st.tasks[i].timeout.is_some()) {
                return false;
            }
            if let Some(f) = &st.in_flight {
                let open = f.deadline.is_some_and(|d| d > Instant::now());
                if f.group.groupid == groupid && f.timeout.is_some() && open {
                    return false;
                }
            }
        }
        st.next_id += 1;
        task.id = st.next_id;
        match i {
            Some(i) => {
                if task.same(&st.tasks[i]) {
                    return false;
                }
                tracing::debug!("Overriding the task of group {groupid}");
                let old = std::mem::replace(&mut st.tasks[i], task);
                old.done.set();
            }
            None => {
                let differs = st.cache.get(&groupid).is_none_or(|c| !task.same(c));
                let in_flight_group = st.in_flight.as_ref().is_some_and(|f| f.group.groupid == groupid);
                if !(st.schedule_load || differs || in_flight_group) {
                    return false;
                }
                tracing::debug!("Adding a task for group {groupid}: {:?}", task.group.nodes());
                st.tasks.push(task);
            }
        }
        self.shared.cond.notify_all();
        true
    }

    /// Whether the host must keep this slot (Citus's shard moves and splits).
    pub fn ignore_replication_slot(
        &self,
        name: &str,
        slot_type: &str,
        database: &str,
        plugin: &str,
        primary: bool,
    ) -> bool {
        primary && slot_type == "logical" && database == self.settings.database && citus_slot(name, plugin)
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.cond.notify_all();
    }
}

/// `^citus_shard_(move|split)_slot(_[1-9][0-9]*){2,3}$`, with the output
/// plugin each kind uses (`pgoutput` for moves, `citus` for splits).
fn citus_slot(name: &str, plugin: &str) -> bool {
    let Some(rest) = name.strip_prefix("citus_shard_") else { return false };
    let (wanted, rest) = if let Some(r) = rest.strip_prefix("move_slot") {
        ("pgoutput", r)
    } else if let Some(r) = rest.strip_prefix("split_slot") {
        ("citus", r)
    } else {
        return false;
    };
    let Some(numbers) = rest.strip_prefix('_') else { return false };
    let parts: Vec<&str> = numbers.split('_').collect();
    let numeric = |p: &&str| {
        p.bytes().next().is_some_and(|b| (b'1'..=b'9').contains(&b)) && p.bytes().all(|b| b.is_ascii_digit())
    };
    (2..=3).contains(&parts.len()) && parts.iter().all(numeric) && plugin == wanted
}

/// The member named in a group's leader key.
fn leader_member(cluster: &MppCluster) -> Option<&MppMember> {
    let name = cluster.leader.as_deref()?;
    cluster.members.iter().find(|m| m.name == name)
}

/// A `conn_url`'s address, or `None` (logged when the URL is broken).
fn address(conn_url: &str) -> Option<(String, u16)> {
    match url_address(conn_url) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    }
}

/// The body of `POST /citus`, checked.
#[derive(Debug, PartialEq)]
struct WorkerEvent {
    kind: Event,
    group: i32,
    leader: String,
    timeout: f64,
    /// `cooldown` × 1000, as SQL text (Patroni: `event['cooldown'] * 1000`,
    /// 10000 when that is 0).
    cooldown: String,
}

impl WorkerEvent {
    fn parse(json: &str) -> PluginResult<Self> {
        let bad = |key: &str, what: String| error("citus event", key, what);
        let value: Value = serde_json::from_str(json).map_err(|e| bad("", format!("not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(bad("", format!("expected a map, found {}", kind(&value))));
        };
        let field = |key: &str| map.get(key).ok_or_else(|| bad(key, "missing".into()));
        let kind_value = field("type")?;
        let kind = kind_value.as_str().and_then(Event::parse).ok_or_else(|| {
            bad("type", format!("expected before_demote, before_promote or after_promote, found {kind_value}"))
        })?;
        let group_value = field("group")?;
        let group = group_value
            .as_i64()
            .and_then(|g| i32::try_from(g).ok())
            .ok_or_else(|| bad("group", format!("expected an integer, found {group_value}")))?;
        let leader = field("leader")?
            .as_str()
            .ok_or_else(|| bad("leader", format!("expected a string, found {}", kind_of(&map, "leader"))))?
            .to_string();
        let timeout_value = field("timeout")?;
        let timeout = timeout_value
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| bad("timeout", format!("expected a number of seconds, found {timeout_value}")))?;
        let cooldown_value = field("cooldown")?;
        let cooldown = match cooldown_value {
            Value::Number(n) if n.as_i64().is_some_and(|c| (0..i64::MAX / 1000).contains(&c)) => {
                let ms = n.as_i64().unwrap_or(0) * 1000;
                if ms == 0 {
                    DEFAULT_COOLDOWN.to_string()
                } else {
                    ms.to_string()
                }
            }
            Value::Number(n) if n.as_f64().is_some_and(|c| c.is_finite() && c >= 0.0) => {
                let ms = n.as_f64().unwrap_or(0.0) * 1000.0;
                if ms == 0.0 {
                    DEFAULT_COOLDOWN.to_string()
                } else {
                    float_repr(ms)
                }
            }
            other => return Err(bad("cooldown", format!("expected a number of seconds, found {other}"))),
        };
        Ok(Self { kind, group, leader, timeout, cooldown })
    }
}

fn kind_of(map: &serde_json::Map<String, Value>, key: &str) -> &'static str {
    map.get(key).map_or("nothing", kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        let ok = |kind, group, cooldown: &str| {
            Ok(WorkerEvent { kind, group, leader: "w1".into(), timeout: 30.0, cooldown: cooldown.into() })
        };
        let cases: [(&str, Result<WorkerEvent, &str>); 9] = [
            (
                r#"{"type": "before_demote", "group": 1, "leader": "w1", "timeout": 30, "cooldown": 10}"#,
                ok(Event::BeforeDemote, 1, "10000"),
            ),
            (
                r#"{"type": "after_promote", "group": 2, "leader": "w1", "timeout": 30, "cooldown": 0}"#,
                ok(Event::AfterPromote, 2, "10000"),
            ),
            (
                r#"{"type": "before_promote", "group": 2, "leader": "w1", "timeout": 30.0, "cooldown": 2.5}"#,
                ok(Event::BeforePromote, 2, "2500.0"),
            ),
            (r#"{"group": 1}"#, Err("citus event.type: missing")),
            (
                r#"{"type": "x", "group": 1}"#,
                Err("citus event.type: expected before_demote, before_promote or after_promote, found \"x\""),
            ),
            (r#"{"type": "after_promote", "group": "1"}"#, Err("citus event.group: expected an integer, found \"1\"")),
            (
                r#"{"type": "after_promote", "group": 1, "leader": 5}"#,
                Err("citus event.leader: expected a string, found a number"),
            ),
            (
                r#"{"type": "after_promote", "group": 1, "leader": "w1", "timeout": -1, "cooldown": 1}"#,
                Err("citus event.timeout: expected a number of seconds, found -1"),
            ),
            (r#"[]"#, Err("citus event: expected a map, found a list")),
        ];
        for (json, want) in cases {
            assert_eq!(WorkerEvent::parse(json).map_err(|e| e.message), want.map_err(String::from), "{json}");
        }
    }

    #[test]
    fn citus_slots() {
        let cases = [
            ("citus_shard_move_slot_1_2", "pgoutput", true),
            ("citus_shard_move_slot_1_2_3", "pgoutput", true),
            ("citus_shard_split_slot_10_20", "citus", true),
            ("citus_shard_split_slot_10_20", "pgoutput", false),
            ("citus_shard_move_slot_1", "pgoutput", false),
            ("citus_shard_move_slot_1_2_3_4", "pgoutput", false),
            ("citus_shard_move_slot_0_2", "pgoutput", false),
            ("citus_shard_move_slot_1_x", "pgoutput", false),
            ("other_slot_1_2", "pgoutput", false),
        ];
        let h = Handler {
            settings: Settings { group: 1, database: "citus".into() },
            name: "n".into(),
            shared: Arc::new(Shared { state: Mutex::new(State::default()), cond: Condvar::new() }),
        };
        for (name, plugin, keep) in cases {
            assert_eq!(h.ignore_replication_slot(name, "logical", "citus", plugin, true), keep, "{name} {plugin}");
        }
        assert!(!h.ignore_replication_slot("citus_shard_move_slot_1_2", "logical", "citus", "pgoutput", false));
        assert!(!h.ignore_replication_slot("citus_shard_move_slot_1_2", "logical", "other", "pgoutput", true));
        assert!(!h.ignore_replication_slot("citus_shard_move_slot_1_2", "physical", "citus", "pgoutput", true));
    }

    fn member(name: &str, url: &str, state: &str) -> MppMember {
        MppMember {
            name: name.into(),
            conn_url: Some(url.into()),
            role: Some("replica".into()),
            state: Some(state.into()),
            noloadbalance: false,
        }
    }

    /// The tasks `sync_meta_data` queues, from the clusters of every group.
    #[test]
    fn sync_queues_what_the_dcs_says() {
        let h = Handler::new(Settings { group: 1, database: "citus".into() }, "c1".into()).unwrap();
        // A worker node never queues anything.
        h.sync_meta_data(&[]).unwrap();
        assert!(lock(&h.shared.state).tasks.is_empty());

        let h = Handler {
            settings: Settings { group: 0, database: "citus".into() },
            name: "c1".into(),
            shared: Arc::new(Shared {
                state: Mutex::new(State { schedule_load: true, ..State::default() }),
                cond: Condvar::new(),
            }),
        };
        assert!(h.sync_meta_data(&[]).is_err(), "no local connection yet");
        h.set_local(MppLocal {
            conn: vec![],
            database: "postgres".into(),
            conn_url: "postgres://c1:5432/postgres".into(),
        });
        let mut leader = member("w1a", "postgres://w1a:5432/postgres", "running");
        leader.role = Some("primary".into());
        let mut quiet = member("w1c", "postgres://w1c:5432/postgres", "running");
        quiet.noloadbalance = true;
        let clusters = [
            MppCluster {
                group: 0,
                leader: Some("c1".into()),
                members: vec![member("c2", "postgres://c2:5432/postgres", "running")],
            },
            MppCluster {
                group: 1,
                leader: Some("w1a".into()),
                members: vec![
                    leader,
                    member("w1b", "postgres://w1b:5432/postgres", "running"),
                    quiet,
                    member("w1d", "postgres://w1d:5432/postgres", "stopped"),
                ],
            },
            // No leader: nothing to do for group 2.
            MppCluster {
                group: 2,
                leader: None,
                members: vec![member("w2a", "postgres://w2a:5432/postgres", "running")],
            },
            // A leader that is not running as a primary: nothing either.
            MppCluster {
                group: 3,
                leader: Some("w3a".into()),
                members: vec![member("w3a", "postgres://w3a:5432/postgres", "running")],
            },
        ];
        h.sync_meta_data(&clusters).unwrap();
        let st = lock(&h.shared.state);
        assert!(st.ready);
        let got: Vec<(i32, Vec<(String, Role)>)> = st
            .tasks
            .iter()
            .map(|t| (t.group.groupid, t.group.nodes().iter().map(|n| (n.host.clone(), n.role)).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, vec![("c1".into(), Role::Primary), ("c2".into(), Role::Secondary)]),
                (1, vec![("w1a".into(), Role::Primary), ("w1b".into(), Role::Secondary)]),
            ]
        );
    }
}
