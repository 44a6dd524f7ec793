//! A scripted local PostgreSQL for the runner's unit tests: a small state
//! machine behind [`LocalPostgres`] (data directory, running or not, in
//! recovery or not, whom it streams from, the parameters handed over,
//! written and loaded), a log of the calls, and a gate that holds every
//! start half-way (configuration written, server not yet accepting), so
//! that a test can force an interleaving instead of hoping for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_config::BootstrapConfig;
use palisade_ha::{DataDir, Pg};
use palisade_model::{HistoryLine, Member, Role};
use palisade_plugin_api::{PluginResult, ReplicaMethod, ReplicaRequest};
use serde_json::{Map, Value};

use super::RuntimeConfig;
use crate::pg::{AdvanceFailure, Applied, DropOutcome, LocalPostgres, Observed, PgFailure, StopMode};
use crate::status::PgSnapshot;

/// The system identifier every fake cluster has (the DCS fuzzers' too).
pub use crate::fuzzing::dcs::SYSID;

#[derive(Clone, Debug, Default)]
pub struct FakeState {
    /// `Some` when the data directory holds a cluster.
    pub sysid: Option<String>,
    pub running: bool,
    pub in_recovery: bool,
    pub timeline: u32,
    pub wal: u64,
    /// The member recovery streams from.
    pub following: Option<String>,
    /// The parameters of the configuration last handed over (`update`).
    pub settings: Map<String, Value>,
    /// The parameters in postgresql.conf.
    pub written: Map<String, Value>,
    /// The parameters the running server uses (read at start and reload).
    pub loaded: Map<String, Value>,
    pub slots: BTreeMap<String, palisade_ha::Existing>,
    /// What `hot_standby_feedback` is forced to.
    pub hot_standby_feedback: bool,
    /// What was called, in order (`start replica n1`, `stop fast`...).
    pub calls: Vec<String>,
    /// A follow of the running server needs a restart (else a reload
    /// applies it).
    pub follow_restarts: bool,
    /// The postmaster died after answering the status query: the
    /// observation still says running, its pid names no process.
    pub postmaster_died: bool,
    /// `max_replication_slots`: creating a slot beyond it fails.
    pub max_slots: Option<usize>,
}

impl FakeState {
    /// What a follow did: nothing when stopped, else as scripted.
    fn follow_applied(&self) -> Applied {
        match (self.running, self.follow_restarts) {
            (false, _) => Applied::Nothing,
            (true, false) => Applied::Reloaded,
            (true, true) => Applied::Restarted,
        }
    }
}

pub struct FakePg {
    state: Mutex<FakeState>,
    /// Starts wait (after writing the configuration) while this is false.
    gate: tokio::sync::watch::Sender<bool>,
}

impl FakePg {
    /// An empty data directory; `config` is the configuration handed over
    /// at construction, as `LocalPg::new` takes it.
    pub fn new(config: &RuntimeConfig) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(FakeState {
                timeline: 1,
                settings: config.effective.parameters.clone(),
                ..FakeState::default()
            }),
            gate: tokio::sync::watch::Sender::new(true),
        })
    }

    pub fn state(&self) -> FakeState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A physical slot made behind the daemon's back.
    pub fn add_slot(&self, name: &str) {
        let slot = palisade_ha::Existing {
            name: name.to_string(),
            slot_type: "physical".into(),
            restart_lsn: Some(1),
            ..palisade_ha::Existing::default()
        };
        self.with(|s| s.slots.insert(name.to_string(), slot));
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn call(&self, what: impl Into<String>) {
        let what = what.into();
        self.with(|s| s.calls.push(what));
    }

    /// Hold (false) or release (true) every start.
    pub fn open_gate(&self, open: bool) {
        self.gate.send_replace(open);
    }

    /// What a replica method leaves: a copy of the leader's cluster, stopped.
    pub fn copied(&self) {
        self.call("copied");
        self.with(|s| {
            s.sysid = Some(SYSID.into());
            s.running = false;
            s.in_recovery = true;
        });
    }

    fn snapshot(s: &FakeState) -> PgSnapshot {
        PgSnapshot {
            server_version: Some(150000),
            postmaster_start_time: Some("2026-01-01 00:00:00.000 UTC".into()),
            in_recovery: s.in_recovery,
            timeline: Some(s.timeline),
            wal_location: (!s.in_recovery).then_some(s.wal),
            received_location: s.in_recovery.then_some(s.wal),
            replayed_location: s.in_recovery.then_some(s.wal),
            replication_state: (s.in_recovery && s.following.is_some()).then(|| "streaming".into()),
            ..PgSnapshot::default()
        }
    }

    /// Write the configuration, wait at the gate, then accept connections.
    async fn start_as(&self, recovery: Option<Option<String>>) -> Result<bool, PgFailure> {
        let what = match &recovery {
            None => "start primary".to_string(),
            Some(f) => format!("start replica {}", f.as_deref().unwrap_or("-")),
        };
        self.call(what);
        self.with(|s| {
            if s.sysid.is_none() {
                return Err(PgFailure("no data directory".into()));
            }
            s.written = s.settings.clone();
            s.loaded = s.written.clone();
            if let Some(follow) = recovery {
                s.in_recovery = true;
                s.following = follow;
            } else {
                s.in_recovery = false;
                s.following = None;
            }
            Ok(())
        })?;
        let mut gate = self.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        self.with(|s| s.running = true);
        Ok(true)
    }
}

#[async_trait::async_trait]
impl LocalPostgres for FakePg {
    async fn update(&self, config: &RuntimeConfig) {
        self.with(|s| s.settings = config.effective.parameters.clone());
    }

    async fn observe(&self) -> Observed {
        let s = self.state();
        let mut out = Observed {
            data_dir: DataDir::Empty,
            pg: Pg::Stopped,
            cluster_state: None,
            standby_signal: false,
            controldata_timeline: None,
            sysid: None,
            snapshot: None,
            pending_restart_reason: Map::new(),
            // A live process stands for the postmaster: the test's own.
            postmaster_pid: s
                .running
                .then(|| if s.postmaster_died { Some(i32::MAX) } else { i32::try_from(std::process::id()).ok() })
                .flatten(),
        };
        let Some(sysid) = s.sysid.clone() else {
            return out;
        };
        out.data_dir = DataDir::Initialized { sysid: Some(sysid.clone()) };
        out.sysid = Some(sysid);
        out.standby_signal = s.in_recovery;
        if s.running {
            out.pg = Pg::Running { in_recovery: s.in_recovery, timeline: Some(s.timeline), wal_position: s.wal };
            out.snapshot = Some(Self::snapshot(&s));
        } else {
            out.cluster_state = Some(if s.in_recovery { "shut down in recovery" } else { "shut down" }.into());
            out.controldata_timeline = Some(s.timeline);
        }
        out
    }

    async fn position(&self) -> Option<(u64, Option<u32>)> {
        let s = self.state();
        s.running.then_some((s.wal, Some(s.timeline)))
    }

    async fn snapshot_quick(&self) -> Option<PgSnapshot> {
        let s = self.state();
        s.running.then(|| Self::snapshot(&s))
    }

    async fn stop(&self, mode: StopMode) -> Result<Option<u64>, PgFailure> {
        self.call(format!("stop {}", mode.as_str()));
        Ok(self.with(|s| {
            let was_primary = s.running && !s.in_recovery;
            s.running = false;
            was_primary.then_some(s.wal)
        }))
    }

    /// As a real stop: the safepoint (the clients gone) comes while the
    /// server still shuts down, before it is seen stopped.
    async fn stop_to_demote(
        &self,
        mode: StopMode,
        _timeout: Option<Duration>,
        on_safepoint: Box<dyn FnOnce() + Send>,
    ) -> Result<(bool, Option<u64>), PgFailure> {
        self.call(format!("stop {}", mode.as_str()));
        on_safepoint();
        Ok(self.with(|s| {
            let was_running = s.running;
            let was_primary = s.running && !s.in_recovery;
            s.running = false;
            (was_running, was_primary.then_some(s.wal))
        }))
    }

    async fn stop_signalled(&self, mode: StopMode) -> Result<(bool, Option<u64>), PgFailure> {
        self.call(format!("stop {}", mode.as_str()));
        Ok(self.with(|s| {
            let was_running = s.running;
            let was_primary = s.running && !s.in_recovery;
            s.running = false;
            (was_running, was_primary.then_some(s.wal))
        }))
    }

    async fn bootstrap(&self, _bootstrap: &BootstrapConfig) -> Result<(), PgFailure> {
        self.call("bootstrap");
        self.with(|s| {
            s.sysid = Some(SYSID.into());
            s.timeline = 1;
            s.wal = 0x0300_0000;
            s.in_recovery = false;
        });
        Ok(())
    }

    async fn start_bootstrapped(&self) -> Result<bool, PgFailure> {
        self.start_as(None).await
    }

    async fn post_bootstrap(&self, _bootstrap: &BootstrapConfig) -> Result<(), PgFailure> {
        self.call("post_bootstrap");
        Ok(())
    }

    async fn start(&self, role: Role, follow: Option<&Member>) -> Result<bool, PgFailure> {
        self.start_within(role, follow, Duration::from_secs(60)).await
    }

    async fn start_within(&self, role: Role, follow: Option<&Member>, _timeout: Duration) -> Result<bool, PgFailure> {
        match role {
            Role::Primary => self.start_as(None).await,
            _ => self.start_as(Some(follow.map(|m| m.name.clone()))).await,
        }
    }

    async fn follow(&self, member: Option<&Member>) -> Result<Applied, PgFailure> {
        let name = member.map(|m| m.name.clone());
        self.call(format!("follow {}", name.as_deref().unwrap_or("-")));
        Ok(self.with(|s| {
            s.following = name;
            s.follow_applied()
        }))
    }

    async fn follow_remote(&self) -> Result<Applied, PgFailure> {
        self.call("follow remote");
        Ok(self.with(|s| {
            s.following = Some("remote".into());
            s.follow_applied()
        }))
    }

    async fn start_remote(&self) -> Result<bool, PgFailure> {
        self.start_as(Some(Some("remote".into()))).await
    }

    async fn replica_request_remote(&self) -> Result<ReplicaRequest, PgFailure> {
        let mut request = self.replica_request(None).await?;
        request.connstring = Some("host=remote".into());
        Ok(request)
    }

    async fn apply_parameters(&self, config: &RuntimeConfig) -> Result<bool, PgFailure> {
        self.call("apply_parameters");
        Ok(self.with(|s| {
            s.settings = config.effective.parameters.clone();
            s.written = s.settings.clone();
            if s.running {
                s.loaded = s.written.clone();
            }
            s.running
        }))
    }

    async fn promote(&self) -> Result<(), PgFailure> {
        self.call("promote");
        self.with(|s| {
            s.in_recovery = false;
            s.following = None;
            s.timeline += 1;
        });
        Ok(())
    }

    async fn checkpoint(&self) -> Result<(), PgFailure> {
        Ok(())
    }

    async fn rejoin(&self, _leader_timeline: u32, _history: &[HistoryLine]) -> palisade_ha::Rejoin {
        palisade_ha::Rejoin::Free
    }
    async fn stop_within(
        &self,
        mode: StopMode,
        _timeout: std::time::Duration,
    ) -> Result<(bool, Option<u64>), PgFailure> {
        self.stop_signalled(mode).await
    }
    async fn crash_recovery(&self) -> Result<(), PgFailure> {
        Ok(())
    }
    async fn archive_command(&self) -> Option<String> {
        self.with(|s| {
            let get = |k: &str| match s.settings.get(k) {
                Some(Value::Bool(true)) => Some("on".to_string()),
                v => v.and_then(Value::as_str).map(String::from),
            };
            let on = matches!(get("archive_mode").as_deref(), Some("on" | "always"));
            get("archive_command").filter(|c| on && !c.is_empty())
        })
    }
    async fn archive_shutdown_checkpoint_wal(&self, command: &str) {
        self.call(format!("archive shutdown checkpoint: {command}"));
    }
    async fn can_rewind(&self) -> bool {
        false
    }
    fn has_backup_label(&self) -> bool {
        false
    }
    fn superuser_conn_params(&self) -> Vec<(String, String)> {
        vec![("host".into(), "fake".into()), ("port".into(), "5432".into()), ("user".into(), "postgres".into())]
    }
    async fn rewind_from(&self, _leader: &Member) -> palisade_postgres::RewindOutcome {
        palisade_postgres::RewindOutcome::NotNow
    }
    async fn checkpoint_after_promote(&self) -> Result<bool, PgFailure> {
        Ok(true)
    }
    async fn leader_timeline(&self, _leader: &Member) -> Result<Option<u32>, PgFailure> {
        Err(PgFailure("no leader to ask in the fake".into()))
    }

    async fn history_lines(&self, _timeline: u32, _name: &str) -> Vec<HistoryLine> {
        Vec::new()
    }

    async fn replication_slots(&self) -> Result<Vec<palisade_ha::Existing>, PgFailure> {
        Ok(self.state().slots.into_values().collect())
    }

    async fn create_physical_slot(&self, name: &str) -> Result<(), PgFailure> {
        self.call(format!("create_slot {name}"));
        if self.state().max_slots.is_some_and(|max| self.state().slots.len() >= max) {
            return Err(PgFailure("ERROR: all replication slots are in use".into()));
        }
        let slot = palisade_ha::Existing {
            name: name.to_string(),
            slot_type: "physical".into(),
            restart_lsn: Some(1),
            ..palisade_ha::Existing::default()
        };
        self.with(|s| s.slots.insert(name.to_string(), slot));
        Ok(())
    }

    async fn create_logical_slot(&self, database: &str, name: &str, plugin: &str) -> Result<(), PgFailure> {
        self.call(format!("create_logical_slot {name} {database} {plugin}"));
        let slot = palisade_ha::Existing {
            name: name.to_string(),
            slot_type: "logical".into(),
            database: Some(database.into()),
            plugin: Some(plugin.into()),
            restart_lsn: Some(1),
            confirmed_flush_lsn: Some(1),
            ..palisade_ha::Existing::default()
        };
        self.with(|s| s.slots.insert(name.to_string(), slot));
        Ok(())
    }

    async fn advance_slot(&self, name: &str, lsn: u64) -> Result<(), PgFailure> {
        self.call(format!("advance_slot {name} {lsn}"));
        self.with(|s| s.slots.get_mut(name).map(|e| e.restart_lsn = Some(lsn)));
        Ok(())
    }

    async fn advance_logical_slot(&self, _database: &str, name: &str, lsn: u64) -> Result<(), AdvanceFailure> {
        self.call(format!("advance_logical_slot {name} {lsn}"));
        self.with(|s| s.slots.get_mut(name).map(|e| e.confirmed_flush_lsn = Some(lsn)));
        Ok(())
    }

    async fn drop_slot(&self, name: &str) -> Result<DropOutcome, PgFailure> {
        self.call(format!("drop_slot {name}"));
        let dropped = self.with(|s| s.slots.remove(name)).is_some();
        Ok(DropOutcome { active: false, dropped })
    }

    async fn leader_slot_states(
        &self,
        leader: &Member,
        names: &[String],
    ) -> Result<Vec<palisade_ha::LeaderSlot>, PgFailure> {
        self.call(format!("leader_slot_states {} {}", leader.name, names.join(",")));
        Ok(Vec::new())
    }

    async fn leader_catalog_xmins(
        &self,
        _leader: &Member,
        _names: &[String],
    ) -> Result<Vec<(String, Option<u64>)>, PgFailure> {
        Ok(Vec::new())
    }

    fn install_slot_states(&self, slots: &[palisade_ha::LeaderSlot]) -> Result<(), PgFailure> {
        for slot in slots {
            self.call(format!("install_slot_state {}", slot.name));
        }
        Ok(())
    }

    fn set_enforce_hot_standby_feedback(&self, on: bool) -> bool {
        self.with(|s| std::mem::replace(&mut s.hot_standby_feedback, on) != on)
    }

    async fn hot_standby_feedback(&self) -> Result<bool, PgFailure> {
        Ok(self.state().hot_standby_feedback)
    }

    async fn run_script(&self, script: &str) -> Result<i32, PgFailure> {
        self.call(format!("run_script {script}"));
        Ok(0)
    }

    async fn replica_request(&self, source: Option<&Member>) -> Result<ReplicaRequest, PgFailure> {
        Ok(ReplicaRequest {
            scope: "demo".into(),
            name: "fake".into(),
            role: "replica".into(),
            data_dir: "/nonexistent".into(),
            bin_dir: String::new(),
            connstring: source.map(|m| format!("host={}", m.name)),
            env: Vec::new(),
            cwd: "/".into(),
        })
    }

    fn remove_data_directory(&self) -> Result<(), PgFailure> {
        self.call("remove_data_directory");
        self.with(|s| {
            s.sysid = None;
            s.running = false;
        });
        Ok(())
    }

    fn move_data_directory_aside(&self) -> std::io::Result<()> {
        self.call("move_data_directory_aside");
        self.with(|s| s.sysid = None);
        Ok(())
    }

    fn save_dynamic_cache(&self, _dynamic: &Map<String, Value>) -> std::io::Result<()> {
        Ok(())
    }
    async fn sync_status(&self) -> Option<palisade_ha::sync::PrimarySync> {
        // A primary without standbys.
        Some(palisade_ha::sync::PrimarySync { synchronous_commit: "on".into(), ..Default::default() })
    }
    async fn nudge_wal(&self) {}
    async fn set_sync_names(&self, _names: crate::pg::SyncNames) -> Result<bool, PgFailure> {
        Ok(false)
    }
    fn sync_names(&self) -> crate::pg::SyncNames {
        crate::pg::SyncNames::Configured
    }
}

/// A replica method that copies the leader's cluster into the fake.
pub struct FakeReplicaMethod(pub Arc<FakePg>);

impl ReplicaMethod for FakeReplicaMethod {
    fn can_work_without_leader(&self) -> bool {
        false
    }

    fn create_replica(&self, _request: &ReplicaRequest) -> PluginResult<()> {
        self.0.copied();
        Ok(())
    }

    fn cancel(&self) {}
}
