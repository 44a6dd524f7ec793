//! Which standbys are synchronous now, and which should be (Patroni's
//! `SyncHandler.current_state`).

use palisade_model::{Member, SyncState};

use super::names::NameSet;
use super::ssn::{parse_ssn, Ssn, SsnKind, STRICT_PLACEHOLDER};
use super::SyncSettings;

/// A streaming row of `pg_stat_replication` on the primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalSender {
    pub pid: i64,
    pub application_name: String,
    /// `async`, `potential`, `sync` or `quorum`.
    pub sync_state: String,
    pub write_lsn: Option<u64>,
    pub flush_lsn: Option<u64>,
    pub replay_lsn: Option<u64>,
}

/// What the primary reports about synchronous replication, read in one go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrimarySync {
    /// `current_setting('synchronous_standby_names')`.
    pub ssn: String,
    /// `current_setting('synchronous_commit')`.
    pub synchronous_commit: String,
    pub senders: Vec<WalSender>,
    /// The primary's WAL flush position (Patroni's `last_operation`).
    pub lsn: u64,
}

/// What the leader remembers between cycles about synchronous replication
/// (Patroni keeps it in its `SyncHandler` and `Ha` objects).
#[derive(Clone, Debug, Default)]
pub struct SyncTracker {
    /// The `synchronous_standby_names` seen last, and its parse.
    ssn: Option<String>,
    parsed: Ssn,
    /// The primary's position when that value was first seen: a newly
    /// listed standby counts as synchronous once it has reached it.
    primary_flush_lsn: u64,
    /// Standbys that caught up since they were listed.
    ready: NameSet,
    /// Strict mode has no standby to wait for (the warning was logged).
    pub strict_activated: bool,
}

/// The synchronous state (Patroni's `_SyncState`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncObserved {
    /// How `synchronous_standby_names` lists standbys.
    pub kind: SsnKind,
    /// How many must acknowledge (per `synchronous_standby_names`).
    pub numsync: u32,
    /// The names in `synchronous_standby_names` (the placeholder when it
    /// holds `*`).
    pub sync: NameSet,
    /// Those of them PostgreSQL reports synchronous that have caught up.
    pub sync_confirmed: NameSet,
    /// Streaming standbys that may be synchronous, best first.
    pub active: NameSet,
}

impl SyncTracker {
    /// Take note of the current `synchronous_standby_names`. `true` when it
    /// changed: the caller then makes some WAL traffic so that newly listed
    /// standbys report a position past `primary.lsn`. A value that cannot be
    /// parsed is logged as Patroni does (returned as the second element).
    pub fn observe(&mut self, primary: &PrimarySync) -> (bool, Option<String>) {
        if self.ssn.as_deref() == Some(primary.ssn.as_str()) {
            return (false, None);
        }
        self.ssn = Some(primary.ssn.clone());
        let (parsed, warning) = match parse_ssn(&primary.ssn) {
            Ok(p) => (p, None),
            Err(e) => (Ssn::default(), Some(e)),
        };
        self.parsed = parsed;
        self.ready = self.ready.intersection(&self.parsed.members);
        self.primary_flush_lsn = primary.lsn;
        (true, warning)
    }

    /// Forget everything (this node is no longer the primary).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

struct Replica {
    application_name: String,
    sync_state: String,
    lsn: u64,
    nofailover: bool,
    sync_priority: i64,
}

/// Should `member` stream from another standby (its `replicatefrom`
/// chain reaches one that streams from us)?
fn should_cascade(members: &[&Member], streaming: &NameSet, member: &Member) -> bool {
    let find = |name: &str| members.iter().find(|m| m.name.to_lowercase() == name.to_lowercase()).copied();
    let mut current = member;
    let mut seen = 0;
    loop {
        let Some(up) = current.tags().replicatefrom().and_then(find) else {
            return false;
        };
        if up.tags().replicatefrom().is_none() {
            return streaming.contains(&up.name);
        }
        current = up;
        seen += 1;
        if seen > members.len() {
            // A loop of replicatefrom tags: Patroni would recurse forever.
            return false;
        }
    }
}

/// The synchronous replication state: what PostgreSQL does now, and which
/// standbys are candidates (Patroni's `current_state`, with
/// `_ReplicaList` and `_process_replica_readiness`). Call
/// [`SyncTracker::observe`] with the same `primary` first.
pub fn current_state(
    tracker: &mut SyncTracker,
    me: &str,
    members: &[Member],
    sync_key: &SyncState,
    primary: &PrimarySync,
    settings: &SyncSettings,
) -> SyncObserved {
    let eligible: Vec<&Member> = members
        .iter()
        .filter(|m| m.is_running() && !m.tags().nosync() && m.name.to_lowercase() != me.to_lowercase())
        .collect();
    let column = |s: &WalSender| match primary.synchronous_commit.as_str() {
        "remote_apply" => s.replay_lsn,
        "remote_write" => s.write_lsn,
        _ => s.flush_lsn,
    };
    // One row per name (a later row replaces an earlier one in place).
    let mut rows: Vec<(&WalSender, u64)> = Vec::new();
    for s in &primary.senders {
        let Some(lsn) = column(s) else { continue };
        if !eligible.iter().any(|m| m.name.to_lowercase() == s.application_name.to_lowercase()) {
            continue;
        }
        match rows.iter_mut().find(|(r, _)| r.application_name.to_lowercase() == s.application_name.to_lowercase()) {
            Some(slot) => *slot = (s, lsn),
            None => rows.push((s, lsn)),
        }
    }
    let streaming: NameSet = rows.iter().map(|(r, _)| r.application_name.as_str()).collect();
    let mut list: Vec<Replica> = rows
        .iter()
        .filter_map(|(r, lsn)| {
            let m = eligible.iter().find(|m| m.name.to_lowercase() == r.application_name.to_lowercase())?;
            (!should_cascade(&eligible, &streaming, m)).then(|| Replica {
                application_name: r.application_name.clone(),
                sync_state: r.sync_state.clone(),
                lsn: *lsn,
                nofailover: m.nofailover(),
                sync_priority: m.tags().sync_priority(),
            })
        })
        .collect();
    // Highest sync_priority, then sync_state, then position first; stable.
    list.sort_by(|a, b| (b.sync_priority, &b.sync_state, b.lsn).cmp(&(a.sync_priority, &a.sync_state, a.lsn)));
    let max_lsn = if list.len() > 1 { list.iter().map(|r| r.lsn).max().unwrap_or(0) } else { primary.lsn };

    let quorum = settings.is_quorum();
    for r in &list {
        if tracker.ready.contains(&r.application_name) || !tracker.parsed.members.contains(&r.application_name) {
            continue;
        }
        let ready = if quorum {
            r.lsn >= tracker.primary_flush_lsn && r.sync_state == "quorum"
        } else {
            sync_key.matches(&r.application_name, false)
                || (r.sync_state == "sync" && r.lsn >= tracker.primary_flush_lsn)
        };
        if ready {
            tracker.ready.insert(&r.application_name);
        }
    }

    let mut active = NameSet::new();
    let mut confirmed = NameSet::new();
    let wanted = settings.node_count as usize;
    let mut ordered: Vec<&Replica> = list.iter().collect();
    ordered.sort_by_key(|r| r.nofailover);
    for r in ordered {
        let lag_ok = settings.max_lag_on_syncnode <= 0
            || i128::from(max_lsn) - i128::from(r.lsn) <= i128::from(settings.max_lag_on_syncnode);
        if !lag_ok {
            continue;
        }
        if quorum {
            // nofailover members only fill up to the wanted count.
            if !r.nofailover || active.len() < wanted {
                if tracker.ready.contains(&r.application_name) {
                    confirmed.insert(&r.application_name);
                }
                active.insert(&r.application_name);
            }
        } else {
            active.insert(&r.application_name);
            if r.sync_state == "sync" && tracker.ready.contains(&r.application_name) {
                confirmed.insert(&r.application_name);
            }
            if active.len() >= wanted {
                break;
            }
        }
    }
    let sync = if tracker.parsed.has_star {
        std::iter::once(STRICT_PLACEHOLDER).collect()
    } else {
        tracker.parsed.members.clone()
    };
    SyncObserved { kind: tracker.parsed.kind, numsync: tracker.parsed.num, sync, sync_confirmed: confirmed, active }
}
