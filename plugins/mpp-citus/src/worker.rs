//! The metadata thread: it owns the connection to `citus.database` and
//! works through the queued tasks as Patroni's `CitusHandler.run` does
//! (`process_tasks`, `pick_task`, `process_task`, `update_group`), keeping
//! a transaction open between a worker's `before_demote` and its
//! `after_promote`, and rolling it back after the event's `timeout` when
//! other work waits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_plugin_api::MppLocal;
use tokio_postgres::Client;

use crate::db::{self, Row};
use crate::dist::{statement, Group, Node, Role};
use crate::handler::{lock, Event, Shared, Task};
use crate::settings::COORDINATOR_GROUP;

/// The thread that owns the connection and works through the tasks.
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) database: String,
    pub(crate) client: Option<Client>,
    /// A statement failed: pause before the next attempt.
    pub(crate) failed: bool,
}

/// How long the thread pauses after a failed statement before it tries
/// again (unless new work arrives first). Patroni retries at once, which
/// spins while the server is down.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

enum Next {
    Wait(Option<Duration>),
    Rollback,
    Work,
}

impl Worker {
    pub(crate) fn run(mut self) {
        {
            let mut st = lock(&self.shared.state);
            while !st.ready && !st.stop {
                st = self.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        loop {
            if std::mem::take(&mut self.failed) {
                let st = lock(&self.shared.state);
                if st.stop {
                    return;
                }
                drop(self.shared.cond.wait_timeout(st, RETRY_PAUSE));
            }
            let next = {
                let st = lock(&self.shared.state);
                if st.stop {
                    return;
                }
                // Patroni's run(): no wait when the cache must be read or
                // tasks wait (and no transaction is open); with a
                // transaction open and tasks queued, wait until its deadline.
                let timeout: Option<f64> = if st.schedule_load {
                    Some(-1.0)
                } else if let Some(f) = &st.in_flight {
                    if st.tasks.is_empty() {
                        None
                    } else {
                        Some(f.deadline.map_or(-1.0, |d| {
                            let now = Instant::now();
                            if d > now {
                                (d - now).as_secs_f64()
                            } else {
                                -1.0
                            }
                        }))
                    }
                } else if st.tasks.is_empty() {
                    None
                } else {
                    Some(-1.0)
                };
                match timeout {
                    None => Next::Wait(None),
                    Some(t) if t > 0.0 => Next::Wait(Some(Duration::from_secs_f64(t))),
                    Some(_) if st.in_flight.is_some() => Next::Rollback,
                    Some(_) => Next::Work,
                }
            };
            match next {
                Next::Wait(timeout) => {
                    let st = lock(&self.shared.state);
                    // A poisoned lock is taken over by the next `lock`.
                    match timeout {
                        Some(t) => drop(self.shared.cond.wait_timeout(st, t)),
                        None => drop(self.shared.cond.wait(st)),
                    }
                }
                Next::Rollback => {
                    let describe =
                        lock(&self.shared.state).in_flight.as_ref().map(|f| format!("{:?}", f.group.nodes()));
                    tracing::warn!("Rolling back transaction. Last known status: {}", describe.unwrap_or_default());
                    let _ = self.query("ROLLBACK");
                    lock(&self.shared.state).in_flight = None;
                }
                Next::Work => {}
            }
            self.process_tasks();
        }
    }

    /// Run one statement on the connection (connecting first if needed).
    /// On error the connection is closed, any open transaction is
    /// forgotten and the metadata is read again before the next step.
    fn query(&mut self, sql: &str) -> Result<Vec<Row>, String> {
        let (reset, local, in_flight) = {
            let mut st = lock(&self.shared.state);
            (std::mem::take(&mut st.reset_connection), st.local.clone(), st.in_flight.is_some())
        };
        // A new connection (new settings, or after a demotion) cannot carry
        // on an open transaction.
        let reset_open = reset && in_flight && self.client.take().is_some();
        if reset {
            self.client = None;
        }
        tracing::debug!("query({sql})");
        let result = if reset_open {
            Err("the connection settings changed while a transaction was open".to_string())
        } else {
            self.run_query(sql, local, in_flight)
        };
        if let Err(e) = &result {
            tracing::error!("Exception when executing query \"{sql}\": {e}");
            self.client = None;
            self.failed = true;
            let mut st = lock(&self.shared.state);
            st.in_flight = None;
            st.schedule_load = true;
        }
        result
    }

    fn run_query(&mut self, sql: &str, local: Option<MppLocal>, in_flight: bool) -> Result<Vec<Row>, String> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            if in_flight {
                return Err("the connection was lost while a transaction was open".into());
            }
        }
        if self.client.is_none() {
            let local = local.ok_or("the host has not given the local connection yet")?;
            let options = "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0";
            let config = db::config(&local, &self.database, options, "Patroni citus").map_err(|e| e.message)?;
            self.client = Some(db::connect(&config)?);
        }
        let client = self.client.as_ref().ok_or("not connected")?;
        db::query(client, sql).map_err(|e| e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string()))
    }

    /// Read `pg_dist_node` into the cache when asked to.
    fn load_pg_dist_group(&mut self) -> bool {
        {
            let mut st = lock(&self.shared.state);
            if !st.schedule_load {
                return true;
            }
            st.schedule_load = false;
        }
        let Ok(rows) = self.query("SELECT groupid, nodename, nodeport, noderole, nodeid FROM pg_catalog.pg_dist_node")
        else {
            return false;
        };
        let mut cache: BTreeMap<i32, Task> = BTreeMap::new();
        for row in rows {
            let Some((groupid, node)) = row_node(&row) else {
                tracing::warn!("ignoring a pg_dist_node row that cannot be read: {row:?}");
                continue;
            };
            cache
                .entry(groupid)
                .or_insert_with(|| Task::new(Group::new(groupid), Event::AfterPromote, None, None))
                .group
                .add(node);
        }
        lock(&self.shared.state).cache = cache;
        true
    }

    /// Patroni's `pick_task`: the open transaction's group first, then the
    /// coordinator's group, then the oldest; tasks that match the cache are
    /// dropped.
    fn pick_task(&self) -> Option<Task> {
        let mut st = lock(&self.shared.state);
        if let Some(f) = &st.in_flight {
            let g = f.group.groupid;
            return st.tasks.iter().find(|t| t.group.groupid == g).cloned();
        }
        loop {
            let i = st.tasks.iter().position(|t| t.group.groupid == COORDINATOR_GROUP).or(if st.tasks.is_empty() {
                None
            } else {
                Some(0)
            })?;
            let task = &st.tasks[i];
            if st.cache.get(&task.group.groupid).is_some_and(|c| task.same(c)) {
                let t = st.tasks.remove(i);
                t.done.set();
                continue;
            }
            return Some(task.clone());
        }
    }

    fn process_tasks(&mut self) {
        loop {
            let open = lock(&self.shared.state).in_flight.is_some();
            if !open && !self.load_pg_dist_group() {
                break;
            }
            let Some(mut task) = self.pick_task() else { break };
            let update_cache = match self.process_task(&mut task) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!("Exception when working with pg_dist_node: {e}");
                    None
                }
            };
            {
                let mut st = lock(&self.shared.state);
                if !st.tasks.is_empty() {
                    if update_cache == Some(true) {
                        st.cache.insert(task.group.groupid, task.clone());
                    }
                    st.in_flight = if update_cache == Some(false) { Some(task.clone()) } else { None };
                    if let Some(i) = st.tasks.iter().position(|t| t.id == task.id) {
                        st.tasks.remove(i);
                    }
                }
            }
            task.done.set();
        }
    }

    /// Patroni's `process_task`. `Ok(true)`: the rows are written (the
    /// cache takes the task); `Ok(false)`: a transaction was opened and
    /// stays open.
    fn process_task(&mut self, task: &mut Task) -> Result<bool, String> {
        let open = lock(&self.shared.state).in_flight.is_some();
        if task.event == Event::AfterPromote {
            self.update_group(task, open)?;
            if open {
                self.query("COMMIT")?;
            }
            task.group.failover = false;
            Ok(true)
        } else {
            if let Some(t) = task.timeout.filter(|t| *t > 0.0) {
                task.deadline = Some(Instant::now() + Duration::from_secs_f64(t.min(1e6)));
            }
            if !open {
                self.query("BEGIN")?;
            }
            self.update_group(task, true)?;
            Ok(false)
        }
    }

    fn update_group(&mut self, task: &mut Task, transaction: bool) -> Result<(), String> {
        let current = {
            let st = lock(&self.shared.state);
            st.in_flight.clone().or_else(|| st.cache.get(&task.group.groupid).cloned())
        }
        .unwrap_or_else(|| Task::new(Group::new(task.group.groupid), Event::AfterPromote, None, None));
        let steps = task.group.transition(&current.group);
        if steps.is_empty() {
            return Ok(());
        }
        let wrap = !transaction && steps.len() > 1;
        if wrap {
            self.query("BEGIN")?;
        }
        for node in &steps {
            let Some(sql) = statement(task.group.groupid, node, &task.cooldown) else { continue };
            let rows = self.query(&sql)?;
            if node.nodeid.is_none() && node.role != Role::Removed {
                let id = rows.first().and_then(|r| r.first()).and_then(|v| v.as_deref()).and_then(|v| v.parse().ok());
                match id {
                    Some(id) => task.group.set_nodeid(node, id),
                    None => return Err(format!("citus_add_node gave no node id: {rows:?}")),
                }
            }
        }
        if wrap {
            task.group.failover = false;
            self.query("COMMIT")?;
        }
        Ok(())
    }
}

/// `(groupid, node)` from a `pg_dist_node` row.
fn row_node(row: &Row) -> Option<(i32, Node)> {
    let text = |i: usize| row.get(i).and_then(|v| v.as_deref());
    let groupid = text(0)?.parse().ok()?;
    let port = text(2)?.parse().ok()?;
    let mut node = Node::new(text(1)?, port, Role::from_noderole(text(3)?));
    node.nodeid = Some(text(4)?.parse().ok()?);
    Some((groupid, node))
}
