//! Quorum commit's state machine, as Patroni's `QuorumStateResolver` runs
//! it: from the `sync` key, PostgreSQL's `synchronous_standby_names` and
//! the standbys streaming now, the ordered changes that bring both to the
//! wanted state without ever breaking the promise made to committers.
//!
//! Two records say who is synchronous. PostgreSQL's
//! `synchronous_standby_names = ANY numsync (sync...)` says which standbys
//! acknowledge a commit; the `sync` key (`leader`, `quorum`, `sync_standby`
//! = the voters) says whom a candidate must ask in the leader race: it needs
//! `quorum + 1` of the leader and the voters. The invariant: every such
//! quorum meets every set of nodes that can acknowledge a commit, so a
//! node holding every acknowledged commit always takes part in the race.
//! With both sets nested, that is `|voters ∪ {leader} ∪ sync ∪ {primary}|
//! <= quorum + numsync + 1`.
//!
//! Each record is changed on its own, so the order matters: what raises
//! `numsync` or `quorum` goes first, what lowers them goes last. Given a
//! replication factor `synchronous_node_count` and the active standbys,
//! the resting state is `sync = voters = active`, `numsync =
//! min(synchronous_node_count, |active|)`, `quorum = |active| - numsync`.
//!
//! Names are compared case-insensitively, as PostgreSQL compares
//! `application_name`s; a set keeps the spelling it last received.
//!
//! Where Patroni 4.1's resolver gives transitions, these are the same (its
//! `tests/test_quorum.py` is the first table below; 20,000 random states
//! were compared against it). Patroni refuses some states its own
//! transitions lead to, when a change is cut short or the factor changes
//! as standbys come and go, and then stays put until something changes;
//! here they resolve, with the invariant still checked at every step:
//! - the factor raised as a standby joins: the quorum is counted from the
//!   factor reached, not the one wanted;
//! - the factor lowered by more than the quorum can grow: it is lowered
//!   only as far as the quorum allows, the rest in a later cycle;
//! - a cut-short factor change whose gone standbys still vote: the live
//!   ones become voters before the gone ones leave PostgreSQL's list, and
//!   a second pass finishes when PostgreSQL's list becomes the shorter;
//! - a failover to a voter while the key asks for every voter: the new
//!   key asks for all but one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use palisade_model::SyncState;

/// The `sync` key as quorum mode reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumSyncKey {
    /// `None` when the key is absent or has no leader.
    pub leader: Option<String>,
    pub quorum: usize,
    /// `sync_standby`.
    pub voters: BTreeSet<String>,
}

impl QuorumSyncKey {
    pub fn from_sync_state(sync: &SyncState) -> Self {
        Self {
            leader: sync.leader.clone(),
            quorum: usize::try_from(sync.quorum).unwrap_or(usize::MAX),
            voters: sync.sync_standby.iter().cloned().collect(),
        }
    }
}

/// PostgreSQL's `synchronous_standby_names`, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumStandbyNames {
    /// How many of `names` must acknowledge a commit.
    pub numsync: usize,
    /// The names listed, the strict placeholder (or `*`) included as listed.
    pub names: BTreeSet<String>,
    /// Written in the `ANY n (...)` form.
    pub any: bool,
}

/// What the primary knows at the start of its quorum step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumInput {
    /// This node, the primary holding the leader lock.
    pub me: String,
    pub sync_key: QuorumSyncKey,
    pub standby_names: QuorumStandbyNames,
    /// Standbys streaming from this primary that may be listed in
    /// `synchronous_standby_names` (not `nosync`, within
    /// `maximum_lag_on_syncnode`).
    pub active: BTreeSet<String>,
    /// The active standbys PostgreSQL reports as having caught up since
    /// they were listed (Patroni's `sync_confirmed`).
    pub confirmed: BTreeSet<String>,
    /// `synchronous_node_count`, the replication factor.
    pub synchronous_node_count: usize,
    /// `synchronous_mode_strict`.
    pub strict: bool,
}

/// One change to make; the fields are the new state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumStep {
    /// Write the `sync` key by compare-and-set against the version last
    /// read: `{"leader": leader, "quorum": quorum, "sync_standby": voters}`.
    SyncKey { leader: String, quorum: usize, voters: BTreeSet<String> },
    /// Set `synchronous_standby_names` to `ANY numsync (names)`, names
    /// sorted and quoted. No names and `numsync >= 1` means the strict
    /// placeholder (commits wait); no names and `numsync == 0`, an empty
    /// value.
    StandbyNames { numsync: usize, names: BTreeSet<String> },
}

/// The outcome of [`resolve_quorum`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumPlan {
    /// Apply in this order, stopping at the first that fails.
    pub steps: Vec<QuorumStep>,
    /// `synchronous_standby_names` has just gained standbys that have not
    /// confirmed yet: read PostgreSQL's state again in about a second and
    /// resolve again (within `loop_wait`), so that the `sync` key names
    /// them sooner.
    pub recheck: bool,
    /// Strict mode with no standby streaming: commits wait; Patroni warns
    /// once "No active replication connections from Patroni members and
    /// synchronous_mode_strict is requested. Commits will be delayed."
    pub strict_hold: bool,
    /// The state read broke the invariant (someone else changed it, or a
    /// change was cut short); the first steps repair it. Patroni logs this
    /// as a WARNING.
    pub warning: Option<String>,
}

/// A state the resolver cannot move from safely. No step may be taken;
/// the next cycle reads the state again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumError(String);

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuorumError {}

/// The steps that take the `sync` key and `synchronous_standby_names` from
/// `input` to the resting state for its active standbys, keeping the
/// invariant after each one.
///
/// How to apply them: in order, each on its own. The order already puts
/// PostgreSQL first when a standby is added or `numsync` rises, and the
/// `sync` key first when one is removed or `quorum` rises, so a standby is
/// never published as a voter before PostgreSQL waits for it. Stop at the
/// first step that fails (a compare-and-set on the `sync` key lost, a
/// reload that did not take): the next cycle reads the new state and
/// resolves again from there. An error means nothing is to be done now.
pub fn resolve_quorum(input: &QuorumInput) -> Result<QuorumPlan, QuorumError> {
    let mut plan = QuorumPlan::default();
    let me = input.me.clone();
    // Strict mode needs at least one synchronous standby.
    let sync_wanted = input.synchronous_node_count.max(usize::from(input.strict));
    let mut key = input.sync_key.clone();
    let leader = match key.leader.as_deref() {
        Some(l) if !l.is_empty() => l.to_string(),
        _ => {
            // Quorum mode starts by naming this node in the key, so that it
            // is on even with no standby to list.
            plan.steps.push(QuorumStep::SyncKey { leader: me.clone(), quorum: 0, voters: BTreeSet::new() });
            key = QuorumSyncKey { leader: Some(me.clone()), quorum: 0, voters: BTreeSet::new() };
            me.clone()
        }
    };
    let voters = Names::of(&key.voters);
    let mut ssn = input.standby_names.clone();
    let active = Names::of(&input.active);

    if leader == me {
        if input.strict && active.is_empty() {
            let numsync = 1usize.max(voters.len().saturating_sub(key.quorum));
            if !voters.same(&Names::of(&ssn.names)) || numsync != ssn.numsync || !ssn.any {
                plan.steps.push(QuorumStep::StandbyNames { numsync, names: voters.spelled() });
            }
            plan.strict_hold = true;
            return Ok(plan);
        }
        if !input.strict && active.is_empty() && voters.is_empty() && (!ssn.names.is_empty() || ssn.numsync != 0) {
            // Nobody left to wait for: stop waiting.
            plan.steps.push(QuorumStep::StandbyNames { numsync: 0, names: BTreeSet::new() });
            ssn = QuorumStandbyNames::default();
        }
    }

    let confirmed = Names::of(&input.confirmed).and(&active).len();
    let mut resolver = Resolver::new(
        leader,
        key.quorum,
        voters,
        ssn.numsync,
        Names::of(&ssn.names),
        confirmed,
        active,
        sync_wanted,
        me,
    );
    let transitions = resolver.run()?;
    plan.warning = resolver.warning.take();
    let empty = transitions.is_empty();
    for t in transitions {
        match t.kind {
            Kind::Quorum => plan.steps.push(QuorumStep::SyncKey {
                leader: t.leader,
                quorum: to_count(t.num)?,
                voters: t.names.spelled(),
            }),
            Kind::Sync => {
                plan.steps.push(QuorumStep::StandbyNames { numsync: to_count(t.num)?, names: t.names.spelled() })
            }
            Kind::Restart => plan.recheck = true,
        }
    }
    if empty && !ssn.any && !ssn.names.is_empty() {
        // A priority list left from `on` mode: same standbys, ANY form.
        plan.steps.push(QuorumStep::StandbyNames { numsync: ssn.numsync, names: ssn.names.clone() });
    }
    Ok(plan)
}

fn to_count(n: i64) -> Result<usize, QuorumError> {
    usize::try_from(n).map_err(|_| QuorumError(format!("negative count {n}")))
}

/// A set of names compared case-insensitively, keeping the spelling it
/// last received (lower-cased name -> spelling).
#[derive(Clone, Debug, Default)]
struct Names(BTreeMap<String, String>);

impl Names {
    fn of<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut set = Names::default();
        for n in names {
            set.add(n.as_ref());
        }
        set
    }

    fn one(name: &str) -> Self {
        Self::of([name])
    }

    fn add(&mut self, name: &str) {
        self.0.insert(name.to_lowercase(), name.to_string());
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn count(&self) -> i64 {
        i64::try_from(self.0.len()).unwrap_or(i64::MAX)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn same(&self, other: &Names) -> bool {
        self.0.keys().eq(other.0.keys())
    }

    fn is_subset(&self, other: &Names) -> bool {
        self.0.keys().all(|k| other.0.contains_key(k))
    }

    fn is_proper_subset(&self, other: &Names) -> bool {
        self.len() < other.len() && self.is_subset(other)
    }

    /// Both; a name in both keeps `other`'s spelling.
    fn union(&self, other: &Names) -> Names {
        let mut out = self.clone();
        for v in other.0.values() {
            out.add(v);
        }
        out
    }

    /// In `self`, not in `other`; `self`'s spelling.
    fn minus(&self, other: &Names) -> Names {
        Names(self.0.iter().filter(|(k, _)| !other.0.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// In both; `other`'s spelling.
    fn and(&self, other: &Names) -> Names {
        Names(other.0.iter().filter(|(k, _)| self.0.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// The spellings, sorted.
    fn sorted(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.values().cloned().collect();
        v.sort();
        v
    }

    fn spelled(&self) -> BTreeSet<String> {
        self.0.values().cloned().collect()
    }
}

impl fmt::Display for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({})", self.sorted().join(", "))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `synchronous_standby_names`.
    Sync,
    /// The `sync` key.
    Quorum,
    /// Nothing changes until PostgreSQL's state is read again.
    Restart,
}

#[derive(Clone, Debug)]
struct Transition {
    kind: Kind,
    leader: String,
    num: i64,
    names: Names,
}

/// Control flow of the first stage.
enum Go {
    On,
    Stop,
}

/// The state as the resolver moves it, and the transitions made so far.
/// Counts are signed so that a bad input shows as a negative count error
/// rather than wrapping around.
#[derive(Clone)]
struct Resolver {
    leader: String,
    quorum: i64,
    voters: Names,
    numsync: i64,
    sync: Names,
    numsync_confirmed: i64,
    active: Names,
    sync_wanted: i64,
    leader_wanted: String,
    out: Vec<Transition>,
    warning: Option<String>,
}

fn signed(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Resolver {
    #[allow(clippy::too_many_arguments)]
    fn new(
        leader: String,
        quorum: usize,
        voters: Names,
        numsync: usize,
        sync: Names,
        numsync_confirmed: usize,
        active: Names,
        sync_wanted: usize,
        leader_wanted: String,
    ) -> Self {
        Self {
            leader,
            quorum: signed(quorum),
            voters,
            // More than the names listed cannot be waited for.
            numsync: signed(numsync.min(sync.len())),
            sync,
            numsync_confirmed: signed(numsync_confirmed),
            active,
            sync_wanted: signed(sync_wanted),
            leader_wanted,
            out: Vec::new(),
            warning: None,
        }
    }

    fn check_invariants(&self) -> Result<(), QuorumError> {
        let voters = self.voters.union(&Names::one(&self.leader));
        let sync = self.sync.union(&Names::one(&self.leader_wanted));
        let nodes = voters.union(&sync).count();
        if !self.voters.is_empty() && nodes > self.quorum + self.numsync + 1 {
            return Err(QuorumError(format!(
                "quorum and synchronous standbys may not overlap: {nodes} nodes > quorum {} + numsync {} + 1",
                self.quorum, self.numsync
            )));
        }
        if !(voters.is_subset(&sync) || sync.is_subset(&voters)) {
            return Err(QuorumError(format!(
                "voters and synchronous standbys differ: voters only {}, synchronous only {}",
                voters.minus(&sync),
                sync.minus(&voters)
            )));
        }
        Ok(())
    }

    /// Whether [`Self::quorum_update`] with these arguments (no change of
    /// leader) would keep the invariant.
    fn would_hold(&self, quorum: i64, voters: &Names, adjust: bool) -> bool {
        if quorum < 0 || (quorum > 0 && quorum >= voters.count()) {
            return false;
        }
        let (quorum, voters) = if self.numsync_confirmed == 0 && self.voters.is_empty() {
            (0, Names::default())
        } else if adjust {
            (quorum + (self.numsync - self.numsync_confirmed).max(0), voters.clone())
        } else {
            (quorum, voters.clone())
        };
        let probe = Resolver { quorum, voters, out: Vec::new(), ..self.clone() };
        probe.check_invariants().is_ok()
    }

    /// Move the `sync` key to (`leader`, `quorum`, `voters`). Unless
    /// `leader` changes: with nobody confirmed and no voters yet the key
    /// stays empty, and with `adjust` the quorum grows by the listed
    /// standbys not yet confirmed.
    fn quorum_update(
        &mut self,
        quorum: i64,
        voters: Names,
        leader: Option<&str>,
        adjust: bool,
    ) -> Result<(), QuorumError> {
        if quorum < 0 {
            return Err(QuorumError(format!("quorum {quorum} < 0 of {voters}")));
        }
        if quorum > 0 && quorum >= voters.count() {
            return Err(QuorumError(format!("quorum {quorum} >= number of voters {voters}")));
        }
        let (mut quorum, mut voters) = (quorum, voters);
        let old_leader = self.leader.clone();
        if let Some(l) = leader {
            self.leader = l.to_string();
        } else if self.numsync_confirmed == 0 && self.voters.is_empty() {
            quorum = 0;
            voters = Names::default();
        } else if adjust {
            quorum += (self.numsync - self.numsync_confirmed).max(0);
        }
        if self.leader == old_leader && quorum == self.quorum && voters.same(&self.voters) {
            if !self.voters.is_empty() {
                return Ok(());
            }
            self.out.push(Transition {
                kind: Kind::Restart,
                leader: self.leader.clone(),
                num: self.quorum,
                names: self.voters.clone(),
            });
        }
        self.quorum = quorum;
        self.voters = voters;
        self.check_invariants()?;
        self.out.push(Transition {
            kind: Kind::Quorum,
            leader: self.leader.clone(),
            num: self.quorum,
            names: self.voters.clone(),
        });
        Ok(())
    }

    /// Move `synchronous_standby_names` to `ANY numsync (sync)`.
    fn sync_update(&mut self, numsync: i64, sync: Names) -> Result<(), QuorumError> {
        if numsync < 0 {
            return Err(QuorumError(format!("numsync {numsync} < 0 of {sync}")));
        }
        if numsync > sync.count() {
            return Err(QuorumError(format!("numsync {numsync} > number of standbys {sync}")));
        }
        self.numsync = numsync;
        self.sync = sync;
        self.check_invariants()?;
        self.out.push(Transition {
            kind: Kind::Sync,
            leader: self.leader.clone(),
            num: self.numsync,
            names: self.sync.clone(),
        });
        Ok(())
    }

    /// All transitions; two in a row of the same kind become the second
    /// (nobody needs to see the first), and nothing follows a restart.
    fn run(&mut self) -> Result<Vec<Transition>, QuorumError> {
        self.generate()?;
        let all = std::mem::take(&mut self.out);
        let mut merged = Vec::new();
        for (i, t) in all.iter().enumerate() {
            if all.get(i + 1).is_some_and(|next| next.kind == t.kind) {
                continue;
            }
            merged.push(t.clone());
            if t.kind == Kind::Restart {
                break;
            }
        }
        Ok(merged)
    }

    fn generate(&mut self) -> Result<(), QuorumError> {
        match self.take_over() {
            Ok(Go::Stop) => return Ok(()),
            Ok(Go::On) => {}
            Err(e) => {
                self.warning = Some(e.to_string());
                self.quorum_update(self.sync.count() - self.numsync, self.sync.clone(), None, true)?;
            }
        }
        if self.leader != self.leader_wanted {
            return Err(QuorumError(format!(
                "the sync key names {} as leader, not {}",
                self.leader, self.leader_wanted
            )));
        }
        // After a restart or a failover nobody has confirmed yet: the
        // quorum says how many of the listed standbys must have.
        let streaming_listed = self.sync.and(&self.active).count();
        if self.numsync_confirmed == 0 && streaming_listed > 0 {
            self.numsync_confirmed = streaming_listed.min(self.voters.count() - self.quorum);
        }
        self.finish_interrupted()?;
        self.remove_gone()?;
        self.add_new()?;
        self.change_replication_factor()
    }

    /// A new primary puts itself in the key as leader and the old leader
    /// among the voters (listing the voters in PostgreSQL first when it
    /// lists nobody yet).
    fn take_over(&mut self) -> Result<Go, QuorumError> {
        if self.leader_wanted == self.leader {
            self.check_invariants()?;
            return Ok(Go::On);
        }
        let voters = self.voters.minus(&Names::one(&self.leader_wanted)).union(&Names::one(&self.leader));
        if self.sync.is_empty() {
            self.sync_update(voters.count() - self.quorum, voters.clone())?;
        }
        let me = self.leader_wanted.clone();
        // The key may ask for every voter (its quorum raised for standbys
        // not confirmed yet); with this node swapped for the old leader
        // that is one too many for a quorum. Patroni stops there for good
        // (after a manual failover to such a voter); asking for all but
        // one is enough, and the invariant check below still applies.
        let quorum = self.quorum.min(voters.count() - 1);
        self.quorum_update(quorum, voters, Some(&me), true)?;
        if self.sync.and(&self.active).is_empty() {
            // Right after a promotion nobody may have reconnected yet: give
            // them a cycle before taking them out.
            return Ok(Go::Stop);
        }
        Ok(Go::On)
    }

    /// The key lists more than PostgreSQL: voters were being added or
    /// removed. Drop the gone ones that PostgreSQL does not list, list the
    /// live ones.
    fn finish_voters_change(&mut self) -> Result<(), QuorumError> {
        let gone = self.voters.minus(&self.sync.union(&self.active));
        if !gone.is_empty() {
            let quorum = self.voters.count() - gone.count() - self.numsync;
            let adjust = self.sync.minus(&self.active).is_empty();
            self.quorum_update(quorum, self.voters.minus(&gone), None, adjust)?;
        }
        let list = self.voters.and(&self.active).minus(&self.sync);
        if !list.is_empty() {
            self.sync_update(self.numsync, self.sync.union(&list))?;
        }
        Ok(())
    }

    /// PostgreSQL lists more than the key: the replication factor was
    /// changing.
    fn finish_factor_change(&mut self) -> Result<(), QuorumError> {
        let gone = self.sync.minus(&self.active);
        let kept = self.sync.minus(&gone);
        // Drop gone ones, keeping some standby common to both records,
        // unless that breaks the invariant (a gone standby still votes):
        // Patroni refuses the state then; here the live ones become
        // voters first and the gone ones leave the usual way.
        if !gone.is_empty() && !kept.is_empty() && (self.voters.is_empty() || !kept.and(&self.voters).is_empty()) {
            let numsync = self.numsync.min(self.sync.count() - gone.count());
            let after = Resolver { numsync, sync: kept.clone(), ..self.clone() };
            if after.check_invariants().is_ok() {
                self.sync_update(numsync, kept)?;
            }
        }
        let vote = self.sync.minus(&self.voters).and(&self.active);
        if !vote.is_empty() {
            let voters = self.voters.union(&vote);
            // PostgreSQL may wait for more standbys than will vote (some it
            // lists are gone): no quorum then, rather than Patroni's
            // refusal of a negative one.
            let quorum = (voters.count() - self.numsync).max(0);
            self.quorum_update(quorum, voters, None, true)?;
        }
        let unlist = self.sync.minus(&self.voters);
        if !unlist.is_empty() {
            let numsync = self.numsync.min(self.sync.count() - unlist.count());
            self.sync_update(numsync, self.sync.minus(&unlist))?;
        }
        Ok(())
    }

    /// Finish a change cut short, where one record already moved and the
    /// other did not, until `sync` and voters are the same set.
    fn finish_interrupted(&mut self) -> Result<(), QuorumError> {
        // One pass is Patroni's. Dropping gone standbys from PostgreSQL's
        // longer list can leave it the shorter one, which Patroni then
        // refuses; a second pass finishes from there.
        for _ in 0..2 {
            if self.sync.is_proper_subset(&self.voters) {
                self.finish_voters_change()?;
            } else if self.voters.is_proper_subset(&self.sync) {
                self.finish_factor_change()?;
            }
        }
        if !self.voters.same(&self.sync) {
            return Err(QuorumError(format!(
                "voters {} and synchronous standbys {} still differ",
                self.voters, self.sync
            )));
        }
        let margin = self.quorum + self.numsync.min(self.numsync_confirmed) - self.voters.union(&self.sync).count();
        if margin > 0 {
            // Half way through a change of the replication factor.
            if self.numsync > self.sync_wanted {
                let numsync = self.sync_wanted.max(self.voters.count() - self.quorum);
                self.sync_update(numsync, self.sync.clone())?;
            } else {
                let quorum = self.sync.count() - self.numsync;
                self.quorum_update(quorum, self.voters.clone(), None, true)?;
            }
        } else {
            let margin = self.quorum + self.numsync - self.voters.union(&self.sync).count();
            if self.numsync == self.sync_wanted && margin > 0 && self.numsync > self.numsync_confirmed {
                let quorum = self.sync.count() - self.numsync;
                self.quorum_update(quorum, self.voters.clone(), None, true)?;
            }
        }
        Ok(())
    }

    /// Take standbys that stopped streaming out of both records.
    fn remove_gone(&mut self) -> Result<(), QuorumError> {
        let mut gone = self.sync.minus(&self.active);
        if gone.is_empty() {
            return Ok(());
        }
        if self.sync.same(&gone) {
            self.quorum_update(0, Names::default(), None, false)?;
            return self.sync_update(0, Names::default());
        }
        if self.quorum > 0 {
            // Lower the quorum first, one gone standby for each.
            let take = usize::try_from(self.quorum).unwrap_or(usize::MAX);
            let remove = Names::of(gone.sorted().into_iter().rev().take(take));
            let sync = self.sync.minus(&remove);
            // Taking standbys out of PostgreSQL's list, the factor may rise.
            let numsync = self.sync_wanted.max(self.numsync).min(sync.count());
            self.sync_update(numsync, sync)?;
            let voters = self.voters.minus(&remove);
            gone = gone.minus(&gone.minus(&self.sync));
            self.quorum_update(voters.count() - self.numsync, voters, None, gone.is_empty())?;
        }
        if !gone.is_empty() {
            if self.quorum != 0 {
                return Err(QuorumError(format!(
                    "quorum {} left while removing {gone} from {}",
                    self.quorum, self.sync
                )));
            }
            let numsync = self.numsync - gone.count();
            let sync = self.sync.minus(&gone);
            let voters = self.voters.minus(&gone);
            let sync_decrease = numsync - self.sync_wanted.min(sync.count());
            let quorum = if sync_decrease != 0 { sync_decrease.min(voters.count() - 1) } else { 0 };
            self.quorum_update(quorum, voters, None, false)?;
            self.sync_update(numsync, sync)?;
        }
        Ok(())
    }

    /// Bring standbys that stream but are not listed into both records.
    fn add_new(&mut self) -> Result<(), QuorumError> {
        let mut new = self.active.minus(&self.sync);
        if new.is_empty() {
            return Ok(());
        }
        let sync_wanted = self.sync_wanted.min(self.sync.union(&new).count());
        let mut increase = sync_wanted - self.numsync;
        if increase > 0 {
            // Reach the replication factor first.
            let add = if self.sync.is_empty() {
                // Only the primary so far: every standby can go in at once.
                new.clone()
            } else {
                let take = usize::try_from(increase).unwrap_or(usize::MAX);
                let add = Names::of(new.sorted().into_iter().take(take));
                increase = add.count();
                add
            };
            self.sync_update(self.numsync + increase, self.sync.union(&add))?;
            let voters = self.voters.union(&add);
            // Fewer new standbys than the factor grows by (the factor is
            // raised as a standby joins): the factor reached is below the
            // one wanted, and a quorum counted from the one wanted may not
            // meet it. Patroni then refuses the state until something
            // changes; count from the factor reached instead.
            let mut quorum = voters.count() - sync_wanted;
            if !self.would_hold(quorum, &voters, true) {
                quorum = voters.count() - self.numsync;
            }
            self.quorum_update(quorum, voters, None, true)?;
            new = new.minus(&self.sync);
        }
        if !new.is_empty() {
            let voters = self.voters.union(&new);
            let adjust = sync_wanted > self.numsync_confirmed;
            self.quorum_update(voters.count() - sync_wanted, voters, None, adjust)?;
            self.sync_update(sync_wanted, self.sync.union(&new))?;
        }
        Ok(())
    }

    /// Apply a change of `synchronous_node_count`.
    fn change_replication_factor(&mut self) -> Result<(), QuorumError> {
        let increase = self.sync_wanted.min(self.sync.count()) - self.numsync;
        if increase > 0 {
            self.sync_update(self.numsync + increase, self.sync.clone())?;
            self.quorum_update(self.voters.count() - self.numsync, self.voters.clone(), None, true)?;
        } else if increase < 0 {
            let mut numsync = self.numsync + increase;
            if self.quorum - increase < self.voters.count() {
                let quorum = self.voters.count() - self.numsync - increase;
                let adjust = self.sync_wanted > self.numsync_confirmed;
                self.quorum_update(quorum, self.voters.clone(), None, adjust)?;
            } else {
                // The quorum cannot grow by as much (it would reach the
                // number of voters): lower the factor only as far as the
                // quorum allows, the rest in a later cycle. Patroni lowers
                // it all the way, breaks the invariant and refuses the
                // state until something changes.
                numsync = numsync.max(self.voters.union(&self.sync).count() - self.quorum);
            }
            self.sync_update(numsync, self.sync.clone())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patroni's resolver parameters: leader, quorum, voters, numsync,
    /// sync, numsync_confirmed, active, sync_wanted, leader_wanted; each
    /// character of a set string is one name.
    type State = (&'static str, i64, &'static str, i64, &'static str, i64, &'static str, i64, &'static str);
    /// kind, leader, num, names.
    type Expected = (&'static str, &'static str, i64, &'static str);

    fn chars(s: &str) -> Names {
        Names::of(s.chars().map(String::from))
    }

    fn count(n: i64) -> usize {
        usize::try_from(n).unwrap()
    }

    struct Params {
        leader: String,
        quorum: i64,
        voters: Names,
        numsync: i64,
        sync: Names,
        confirmed: i64,
        active: Names,
        wanted: i64,
        leader_wanted: String,
    }

    impl Params {
        fn of(s: State) -> Self {
            Self {
                leader: s.0.into(),
                quorum: s.1,
                voters: chars(s.2),
                numsync: s.3,
                sync: chars(s.4),
                confirmed: s.5,
                active: chars(s.6),
                wanted: s.7,
                leader_wanted: s.8.into(),
            }
        }

        fn resolve(&self) -> Result<Vec<Transition>, QuorumError> {
            Resolver::new(
                self.leader.clone(),
                count(self.quorum),
                self.voters.clone(),
                count(self.numsync),
                self.sync.clone(),
                count(self.confirmed),
                self.active.clone(),
                count(self.wanted),
                self.leader_wanted.clone(),
            )
            .run()
        }

        fn apply(&mut self, t: &Transition) {
            match t.kind {
                Kind::Sync => (self.numsync, self.sync) = (t.num, t.names.clone()),
                Kind::Quorum => (self.quorum, self.voters) = (t.num, t.names.clone()),
                Kind::Restart => {}
            }
        }
    }

    fn show(t: &Transition) -> String {
        let kind = match t.kind {
            Kind::Sync => "sync",
            Kind::Quorum => "quorum",
            Kind::Restart => "restart",
        };
        format!("{kind} {} {} {:?}", t.leader, t.num, t.names.spelled())
    }

    fn show_expected(e: &Expected) -> String {
        format!("{} {} {} {:?}", e.0, e.1, e.2, chars(e.3).spelled())
    }

    /// The transitions from `params` are `expected`; so are the rest of
    /// them after the first is applied (a change cut short resumes).
    fn check(params: &mut Params, expected: &[Expected], row: &str) {
        let got = params.resolve().unwrap_or_else(|e| panic!("{row}: {e}"));
        let got_s: Vec<String> = got.iter().map(show).collect();
        let want_s: Vec<String> = expected.iter().map(show_expected).collect();
        assert_eq!(got_s, want_s, "{row}");
        if let Some(first) = got.first() {
            if first.kind != Kind::Restart && first.leader == params.leader {
                params.apply(first);
                check(params, &expected[1..], &format!("{row}, after the first step"));
            }
        }
    }

    fn subsets(names: &Names) -> Vec<Names> {
        let all = names.sorted();
        (0..1u32 << all.len())
            .map(|mask| Names::of(all.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| n)))
            .collect()
    }

    /// Patroni's extra check: in the states its transitions pass through
    /// while the quorum is above what numsync needs, standbys vanishing
    /// again (any subset of the listed ones, any number confirmed, voters
    /// present or cleared) never leave the resolver stuck.
    fn check_interrupted(state: State, expected: &[Expected], row: &str) {
        let original = Params::of(state);
        if !original.sync.is_proper_subset(&original.active) {
            return;
        }
        let mut end = Params::of(state);
        for e in expected {
            if e.0 == "restart" || e.1 != end.leader {
                return;
            }
            let t = Transition {
                kind: if e.0 == "sync" { Kind::Sync } else { Kind::Quorum },
                leader: e.1.into(),
                num: e.2,
                names: chars(e.3),
            };
            end.apply(&t);
        }
        if end.quorum + end.numsync == end.voters.union(&end.sync).count() {
            return;
        }
        let mut params = Params::of(state);
        for e in expected {
            let t = Transition {
                kind: if e.0 == "sync" { Kind::Sync } else { Kind::Quorum },
                leader: e.1.into(),
                num: e.2,
                names: chars(e.3),
            };
            params.apply(&t);
            for active in subsets(&original.sync) {
                for confirmed in 0..=active.count() {
                    params.active = active.clone();
                    params.confirmed = confirmed;
                    params
                        .resolve()
                        .unwrap_or_else(|err| panic!("{row}, active {active}, confirmed {confirmed}: {err}"));
                    if !params.voters.is_empty() {
                        let (voters, quorum) = (params.voters.clone(), params.quorum);
                        (params.voters, params.quorum) = (Names::default(), 0);
                        params.resolve().unwrap_or_else(|err| {
                            panic!("{row}, no voters, active {active}, confirmed {confirmed}: {err}")
                        });
                        (params.voters, params.quorum) = (voters, quorum);
                    }
                }
            }
        }
    }

    /// Every scenario of Patroni's `tests/test_quorum.py`.
    #[test]
    fn patroni_scenarios() {
        let rows: &[(State, &[Expected])] = &[
            // test_1111
            (("a", 0, "", 0, "", 0, "b", 2, "a"), &[("sync", "a", 1, "b"), ("restart", "a", 0, "")]),
            (("a", 0, "", 1, "b", 1, "b", 2, "a"), &[("quorum", "a", 0, "b")]),
            (("a", 0, "", 0, "", 0, "bcde", 2, "a"), &[("sync", "a", 2, "bcde"), ("restart", "a", 0, "")]),
            (("a", 0, "", 2, "bcde", 1, "bcde", 2, "a"), &[("quorum", "a", 3, "bcde")]),
            // test_1222
            (("a", 0, "b", 1, "b", 1, "b", 2, "a"), &[]),
            (("a", 0, "b", 1, "b", 1, "BC", 1, "a"), &[("quorum", "a", 1, "bC"), ("sync", "a", 1, "bC")]),
            (("a", 0, "b", 1, "b", 1, "bc", 2, "a"), &[("sync", "a", 2, "bc"), ("quorum", "a", 1, "bc")]),
            (("a", 1, "bc", 2, "bc", 2, "bc", 2, "a"), &[("quorum", "a", 0, "bc")]),
            (
                ("a", 0, "b", 1, "b", 1, "BCdE", 2, "a"),
                &[("sync", "a", 2, "bC"), ("quorum", "a", 3, "bCdE"), ("sync", "a", 2, "bCdE")],
            ),
            (("a", 3, "bcde", 2, "bcde", 3, "bcde", 2, "a"), &[("quorum", "a", 2, "bcde")]),
            (("a", 0, "b", 1, "b", 0, "", 1, "a"), &[("quorum", "a", 0, ""), ("sync", "a", 0, "")]),
            (
                ("a", 0, "b", 1, "b", 0, "c", 1, "a"),
                &[("quorum", "a", 0, ""), ("sync", "a", 1, "c"), ("restart", "a", 0, "")],
            ),
            (("a", 0, "", 1, "c", 1, "c", 1, "a"), &[("quorum", "a", 0, "c")]),
            // test_1233
            (("a", 0, "b", 2, "bc", 1, "b", 2, "a"), &[("sync", "a", 1, "b")]),
            (("a", 0, "b", 2, "bc", 1, "bc", 2, "a"), &[("quorum", "a", 1, "bc")]),
            (("a", 0, "b", 2, "bc", 1, "bcd", 2, "a"), &[("quorum", "a", 2, "bcd"), ("sync", "a", 2, "bcd")]),
            (("a", 2, "bcd", 2, "bcd", 3, "bcd", 2, "a"), &[("quorum", "a", 1, "bcd")]),
            (("a", 0, "b", 2, "bc", 1, "bc", 1, "a"), &[("quorum", "a", 1, "bc"), ("sync", "a", 1, "bc")]),
            // test_2322
            (("a", 1, "bc", 1, "b", 1, "b", 1, "a"), &[("quorum", "a", 0, "b")]),
            (("a", 1, "bc", 1, "b", 1, "bc", 1, "a"), &[("sync", "a", 1, "bc")]),
            (
                ("a", 1, "bc", 1, "b", 1, "bcd", 1, "a"),
                &[("sync", "a", 1, "bc"), ("quorum", "a", 2, "bcd"), ("sync", "a", 1, "bcd")],
            ),
            (("a", 1, "bc", 1, "b", 1, "bc", 2, "a"), &[("sync", "a", 2, "bc")]),
            (("a", 1, "bc", 2, "bc", 2, "bc", 2, "a"), &[("quorum", "a", 0, "bc")]),
            // test_3535
            (("a", 2, "bcde", 2, "bcde", 2, "bc", 2, "a"), &[("sync", "a", 2, "bc"), ("quorum", "a", 0, "bc")]),
            (("a", 2, "bcde", 2, "bcde", 3, "bcd", 2, "a"), &[("sync", "a", 2, "bcd"), ("quorum", "a", 1, "bcd")]),
            (
                ("a", 2, "bcde", 2, "bcde", 2, "bc", 1, "a"),
                &[("sync", "a", 2, "bc"), ("quorum", "a", 1, "bc"), ("sync", "a", 1, "bc")],
            ),
            (
                ("a", 1, "bcde", 3, "bcde", 2, "bc", 1, "a"),
                &[("sync", "a", 3, "bcd"), ("quorum", "a", 1, "bc"), ("sync", "a", 1, "bc")],
            ),
            (("a", 2, "bcde", 2, "bcde", 2, "bcde", 3, "a"), &[("sync", "a", 3, "bcde")]),
            (("a", 2, "bcde", 3, "bcde", 3, "bcde", 3, "a"), &[("quorum", "a", 1, "bcde")]),
            (
                ("a", 2, "bcde", 2, "bcde", 2, "bcdef", 1, "a"),
                &[("quorum", "a", 4, "bcdef"), ("sync", "a", 1, "bcdef")],
            ),
            (("a", 2, "bcde", 2, "bcde", 2, "bcd", 3, "a"), &[("sync", "a", 3, "bcd"), ("quorum", "a", 1, "bcd")]),
            // test_remove_nosync_node
            (("a", 0, "bc", 2, "bc", 1, "b", 2, "a"), &[("quorum", "a", 0, "b"), ("sync", "a", 1, "b")]),
            // test_swap_sync_node
            (
                ("a", 0, "bc", 2, "bc", 1, "bd", 2, "a"),
                &[("quorum", "a", 0, "b"), ("sync", "a", 2, "bd"), ("quorum", "a", 1, "bd")],
            ),
            // test_promotion
            (("a", 2, "bcd", 0, "", 0, "", 1, "c"), &[("sync", "a", 1, "abd"), ("quorum", "c", 2, "abd")]),
            (("c", 2, "abd", 1, "abd", 0, "b", 1, "c"), &[("sync", "c", 1, "b"), ("quorum", "c", 0, "b")]),
            (("c", 2, "abd", 1, "abd", 0, "", 1, "c"), &[("quorum", "c", 0, ""), ("sync", "c", 0, "")]),
            // test_nonsync_promotion
            (("a", 1, "bc", 0, "", 0, "", 1, "d"), &[("sync", "a", 2, "abc"), ("quorum", "d", 1, "abc")]),
            (
                ("d", 1, "abc", 2, "abc", 0, "bc", 1, "d"),
                &[("sync", "d", 2, "bc"), ("quorum", "d", 1, "bc"), ("sync", "d", 1, "bc")],
            ),
            (("d", 1, "abc", 2, "abc", 0, "", 1, "d"), &[("quorum", "d", 0, ""), ("sync", "d", 0, "")]),
            // test_sync_high_quorum_low_safety_margin_high
            (
                ("a", 2, "bcdef", 4, "bcdef", 3, "bcdef", 2, "a"),
                &[("quorum", "a", 3, "bcdef"), ("sync", "a", 2, "bcdef")],
            ),
            // test_remove_nodes_with_decreasing_sync
            (
                ("a", 1, "bcdef", 4, "bcdef", 2, "bcd", 2, "a"),
                &[("sync", "a", 4, "bcde"), ("quorum", "a", 1, "bcd"), ("sync", "a", 2, "bcd")],
            ),
            (
                ("a", 1, "bcdef", 4, "bcde", 2, "bcdg", 2, "a"),
                &[
                    ("quorum", "a", 1, "bcd"),
                    ("sync", "a", 3, "bcd"),
                    ("quorum", "a", 2, "bcdg"),
                    ("sync", "a", 2, "bcdg"),
                ],
            ),
            (
                ("a", 1, "bcdef", 4, "bcde", 2, "bcdf", 2, "a"),
                &[("sync", "a", 4, "bcdf"), ("quorum", "a", 2, "bcdf"), ("sync", "a", 2, "bcdf")],
            ),
            (("a", 1, "bcdef", 4, "bcde", 2, "bcde", 2, "a"), &[("quorum", "a", 2, "bcde"), ("sync", "a", 2, "bcde")]),
            (("a", 1, "bcdef", 4, "bcde", 2, "cd", 1, "a"), &[("quorum", "a", 1, "cd"), ("sync", "a", 1, "cd")]),
            // test_empty_ssn
            (("a", 1, "bc", 1, "", 0, "", 1, "c"), &[("sync", "a", 1, "ab"), ("quorum", "c", 1, "ab")]),
            (("c", 1, "ab", 1, "ab", 0, "b", 1, "c"), &[("sync", "c", 1, "b"), ("quorum", "c", 0, "b")]),
        ];
        for (i, (state, expected)) in rows.iter().enumerate() {
            let row = format!("row {i}: {state:?}");
            check(&mut Params::of(*state), expected, &row);
            check_interrupted(*state, expected, &row);
        }
    }

    #[test]
    fn broken_states_are_repaired_first() {
        // The invariant does not hold: the quorum is raised first.
        let p = Params::of(("a", 0, "bc", 1, "bc", 1, "bc", 1, "a"));
        let r = Resolver::new("a".into(), 0, chars("bc"), 1, chars("bc"), 1, chars("bc"), 1, "a".into());
        assert!(r.check_invariants().is_err());
        let got: Vec<String> = p.resolve().unwrap().iter().map(show).collect();
        assert_eq!(got, [show_expected(&("quorum", "a", 1, "bc"))]);
        // Someone else changed one of the records: the key follows PostgreSQL.
        let p = Params::of(("a", 1, "bc", 2, "bd", 1, "bd", 1, "a"));
        let r = Resolver::new("a".into(), 1, chars("bc"), 2, chars("bd"), 1, chars("bd"), 1, "a".into());
        assert!(r.check_invariants().is_err());
        let got: Vec<String> = p.resolve().unwrap().iter().map(show).collect();
        assert_eq!(got, [show_expected(&("quorum", "a", 1, "bd")), show_expected(&("sync", "a", 1, "bd"))]);
    }

    #[test]
    fn impossible_updates_are_errors() {
        let new = || Resolver::new("a".into(), 1, chars("bc"), 1, chars("bc"), 1, chars("bc"), 1, "a".into());
        let rows: &[(&str, i64, &str)] =
            &[("quorum", -1, ""), ("quorum", 1, ""), ("quorum", 2, "bc"), ("sync", -1, ""), ("sync", 1, "")];
        for (kind, num, names) in rows {
            let mut r = new();
            let result = match *kind {
                "quorum" => r.quorum_update(*num, chars(names), None, true),
                _ => r.sync_update(*num, chars(names)),
            };
            assert!(result.is_err(), "{kind} {num} {names}");
            assert!(r.out.is_empty());
        }
    }

    fn set(s: &str) -> BTreeSet<String> {
        s.chars().map(String::from).collect()
    }

    fn input(key: (Option<&str>, usize, &str), ssn: (usize, &str, bool), active: &str, confirmed: &str) -> QuorumInput {
        QuorumInput {
            me: "a".into(),
            sync_key: QuorumSyncKey { leader: key.0.map(String::from), quorum: key.1, voters: set(key.2) },
            standby_names: QuorumStandbyNames { numsync: ssn.0, names: set(ssn.1), any: ssn.2 },
            active: set(active),
            confirmed: set(confirmed),
            synchronous_node_count: 1,
            strict: false,
        }
    }

    fn key_step(quorum: usize, voters: &str) -> QuorumStep {
        QuorumStep::SyncKey { leader: "a".into(), quorum, voters: set(voters) }
    }

    fn ssn_step(numsync: usize, names: &str) -> QuorumStep {
        QuorumStep::StandbyNames { numsync, names: set(names) }
    }

    /// What `resolve_quorum` adds around the state machine: enabling the
    /// key, strict mode, clearing, the ANY form, confirmations.
    #[test]
    fn plans() {
        struct Row {
            name: &'static str,
            input: QuorumInput,
            steps: Vec<QuorumStep>,
            recheck: bool,
            strict_hold: bool,
        }
        let strict = |mut i: QuorumInput| {
            i.strict = true;
            i
        };
        let count = |n: usize, mut i: QuorumInput| {
            i.synchronous_node_count = n;
            i
        };
        let rows = vec![
            Row {
                name: "an empty key names this node first, then the standby is listed",
                input: input((None, 0, ""), (0, "", false), "b", ""),
                steps: vec![key_step(0, ""), ssn_step(1, "b")],
                recheck: true,
                strict_hold: false,
            },
            Row {
                name: "once the standby confirms it becomes a voter",
                input: input((Some("a"), 0, ""), (1, "b", true), "b", "b"),
                steps: vec![key_step(0, "b")],
                recheck: false,
                strict_hold: false,
            },
            Row {
                name: "a confirmation from a standby no longer streaming does not count",
                input: input((Some("a"), 0, ""), (1, "b", true), "c", "b"),
                steps: vec![ssn_step(1, "c")],
                recheck: true,
                strict_hold: false,
            },
            Row {
                name: "the resting state needs nothing",
                input: input((Some("a"), 0, "b"), (1, "b", true), "b", "b"),
                steps: vec![],
                recheck: false,
                strict_hold: false,
            },
            Row {
                name: "a priority list from on mode is rewritten in the ANY form",
                input: input((Some("a"), 0, "b"), (1, "b", false), "b", "b"),
                steps: vec![ssn_step(1, "b")],
                recheck: false,
                strict_hold: false,
            },
            Row {
                name: "strict, nobody streaming: PostgreSQL keeps waiting for the voters",
                input: strict(input((Some("a"), 1, "bc"), (1, "bc", true), "", "")),
                steps: vec![],
                recheck: false,
                strict_hold: true,
            },
            Row {
                name: "strict, nobody streaming, PostgreSQL lists nobody: the placeholder",
                input: strict(input((Some("a"), 0, ""), (0, "", false), "", "")),
                steps: vec![ssn_step(1, "")],
                recheck: false,
                strict_hold: true,
            },
            Row {
                name: "strict, nobody streaming, PostgreSQL in another form: rewritten from the key",
                input: strict(input((Some("a"), 0, "bc"), (1, "b", false), "", "")),
                steps: vec![ssn_step(2, "bc")],
                recheck: false,
                strict_hold: true,
            },
            Row {
                name: "strict, the placeholder listed, a standby arrives",
                input: strict(input((Some("a"), 0, ""), (1, "", true), "b", "")),
                steps: vec![ssn_step(1, "b")],
                recheck: true,
                strict_hold: false,
            },
            Row {
                name: "not strict, nobody streaming, nobody voting: PostgreSQL stops waiting",
                input: input((Some("a"), 0, ""), (1, "b", true), "", ""),
                steps: vec![ssn_step(0, "")],
                recheck: false,
                strict_hold: false,
            },
            Row {
                name: "not strict, the voter is gone: out of the key, then out of PostgreSQL",
                input: input((Some("a"), 0, "b"), (1, "b", true), "", ""),
                steps: vec![key_step(0, ""), ssn_step(0, "")],
                recheck: false,
                strict_hold: false,
            },
            Row {
                name: "names differ only in case: the same standbys",
                input: input((Some("a"), 0, "B"), (1, "b", true), "b", "b"),
                steps: vec![],
                recheck: false,
                strict_hold: false,
            },
            Row {
                name: "three standbys, factor 2, all confirmed",
                input: count(2, input((Some("a"), 0, ""), (0, "", false), "bcd", "")),
                steps: vec![ssn_step(2, "bcd")],
                recheck: true,
                strict_hold: false,
            },
            Row {
                name: "three standbys listed, two confirmed: quorum 1",
                input: count(2, input((Some("a"), 0, ""), (2, "bcd", true), "bcd", "bc")),
                steps: vec![key_step(1, "bcd")],
                recheck: false,
                strict_hold: false,
            },
            Row {
                name: "after a failover the old leader joins the voters, then leaves as it does not stream",
                input: QuorumInput {
                    sync_key: QuorumSyncKey { leader: Some("x".into()), quorum: 1, voters: set("abc") },
                    ..input((None, 0, ""), (2, "bcx", true), "bc", "")
                },
                steps: vec![
                    QuorumStep::SyncKey { leader: "a".into(), quorum: 1, voters: set("bcx") },
                    ssn_step(2, "bc"),
                    key_step(1, "bc"),
                    ssn_step(1, "bc"),
                ],
                recheck: false,
                strict_hold: false,
            },
            Row {
                name: "after a failover, PostgreSQL waiting for too few: the quorum grows instead",
                input: QuorumInput {
                    sync_key: QuorumSyncKey { leader: Some("x".into()), quorum: 1, voters: set("abc") },
                    ..input((None, 0, ""), (1, "bc", true), "bc", "")
                },
                steps: vec![key_step(2, "bc")],
                recheck: false,
                strict_hold: false,
            },
        ];
        for row in rows {
            let plan = resolve_quorum(&row.input).unwrap_or_else(|e| panic!("{}: {e}", row.name));
            assert_eq!(plan.steps, row.steps, "{}", row.name);
            assert_eq!(plan.recheck, row.recheck, "{}", row.name);
            assert_eq!(plan.strict_hold, row.strict_hold, "{}", row.name);
        }
    }

    #[test]
    fn a_broken_state_gives_a_warning() {
        let plan = resolve_quorum(&input((Some("a"), 0, "bc"), (1, "bc", true), "bc", "bc")).unwrap();
        assert!(plan.warning.is_some_and(|w| w.contains("may not overlap")));
        assert_eq!(plan.steps, [key_step(1, "bc")]);
    }

    /// A tiny deterministic generator (xorshift64*), so that every run
    /// tests the same states.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
        }

        fn subset(&mut self, of: &[&str]) -> BTreeSet<String> {
            of.iter().filter(|_| self.below(2) == 1).map(|s| s.to_string()).collect()
        }
    }

    /// Safety as the leader race sees it: any `quorum + 1` nodes among the
    /// leader and the voters include one holding every commit the primary
    /// `me` acknowledged (`me` plus any `numsync` of the listed standbys).
    /// With no voters nobody but the leader may be promoted.
    fn safe(key: &QuorumSyncKey, ssn: &QuorumStandbyNames, me: &str) -> bool {
        let Some(leader) = key.leader.as_deref() else { return true };
        if key.voters.is_empty() {
            return true;
        }
        if ssn.names.is_empty() && ssn.numsync > 0 {
            return true; // the placeholder: no commit is acknowledged
        }
        let race = Names::of(&key.voters).union(&Names::one(leader));
        let listed = Names::of(&ssn.names);
        let numsync = ssn.numsync.min(listed.len());
        let me = Names::one(me);
        subsets(&race)
            .iter()
            .filter(|q| q.len() == key.quorum + 1)
            .all(|q| subsets(&listed).iter().filter(|a| a.len() == numsync).all(|a| !q.and(&a.union(&me)).is_empty()))
    }

    fn apply(step: &QuorumStep, key: &mut QuorumSyncKey, ssn: &mut QuorumStandbyNames) {
        match step {
            QuorumStep::SyncKey { leader, quorum, voters } => {
                *key = QuorumSyncKey { leader: Some(leader.clone()), quorum: *quorum, voters: voters.clone() }
            }
            QuorumStep::StandbyNames { numsync, names } => {
                *ssn = QuorumStandbyNames { numsync: *numsync, names: names.clone(), any: true }
            }
        }
    }

    /// Arbitrary states (as if someone else had written both records),
    /// resolved round after round as the daemon would (each plan applied,
    /// then PostgreSQL reports the listed streaming standbys as caught
    /// up): once the invariant holds it holds after every step, and the
    /// state comes to rest at the target. Patroni's resolver refuses about
    /// one such state in twenty-five; this one, where Patroni does not
    /// refuse, gives the very same transitions (compared on 20,000 states),
    /// and refuses only a handful. A refusal takes no step, so it cannot
    /// break anything.
    #[test]
    fn random_states_stay_safe_and_reach_the_target() {
        const NODES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
        let others = &NODES[1..];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut resolved, mut refused) = (0, 0);
        for case in 0..3000 {
            let key_leader = match rng.below(8) {
                0 => None,
                1 | 2 => Some(NODES[1 + rng.below(5)].to_string()),
                _ => Some("a".to_string()),
            };
            let voters: BTreeSet<String> =
                rng.subset(others).into_iter().filter(|v| Some(v) != key_leader.as_ref()).collect();
            // The key never holds a quorum as large as its voters.
            let quorum = rng.below(voters.len().max(1));
            let names = rng.subset(others);
            // PostgreSQL takes no `ANY 0`.
            let numsync = if names.is_empty() { 0 } else { 1 + rng.below(names.len()) };
            let active = rng.subset(others);
            let caught_up: BTreeSet<String> = active.intersection(&names).cloned().collect();
            let confirmed = caught_up.into_iter().filter(|_| rng.below(2) == 1).collect();
            let mut input = QuorumInput {
                me: "a".into(),
                sync_key: QuorumSyncKey { leader: key_leader, quorum, voters },
                standby_names: QuorumStandbyNames { numsync, names, any: rng.below(2) == 1 },
                active,
                confirmed,
                synchronous_node_count: 1 + rng.below(3),
                strict: rng.below(2) == 1,
            };
            let start = format!("case {case}: {input:?}");
            let mut was_safe = safe(&input.sync_key, &input.standby_names, "a");
            let mut rounds = 0;
            loop {
                rounds += 1;
                assert!(rounds <= 10, "{start}: no rest after 10 rounds, at {input:?}");
                if rounds > 1 {
                    // PostgreSQL has caught up with every standby it lists.
                    input.confirmed = input.active.intersection(&input.standby_names.names).cloned().collect();
                }
                let plan = match resolve_quorum(&input) {
                    Ok(plan) => plan,
                    Err(_) => {
                        refused += 1;
                        break;
                    }
                };
                resolved += 1;
                for step in &plan.steps {
                    apply(step, &mut input.sync_key, &mut input.standby_names);
                    let now_safe = safe(&input.sync_key, &input.standby_names, "a");
                    assert!(now_safe || !was_safe, "{start}: {step:?} breaks the invariant: {input:?}");
                    was_safe = now_safe;
                }
                if plan.steps.is_empty() && !plan.recheck {
                    check_target(&input, &start);
                    break;
                }
            }
        }
        assert!(resolved > 3000 && refused < 30, "{resolved} plans, {refused} refusals");
    }

    /// The resting state: everybody streaming is listed and votes, with the
    /// replication factor asked for; in strict mode with nobody streaming,
    /// PostgreSQL waits for the voters.
    fn check_target(input: &QuorumInput, start: &str) {
        let key = &input.sync_key;
        let ssn = &input.standby_names;
        let ctx = format!("{start}: at rest in {input:?}");
        if input.strict && input.active.is_empty() && key.leader.as_ref() == Some(&input.me) {
            assert_eq!(ssn.names, key.voters, "{ctx}");
            assert_eq!(ssn.numsync, 1.max(key.voters.len().saturating_sub(key.quorum)), "{ctx}");
            return;
        }
        assert_eq!(key.leader.as_ref(), Some(&input.me), "{ctx}");
        assert_eq!(key.voters, input.active, "{ctx}");
        assert_eq!(ssn.names, input.active, "{ctx}");
        let wanted = input.synchronous_node_count.max(usize::from(input.strict));
        assert_eq!(ssn.numsync, wanted.min(input.active.len()), "{ctx}");
        assert_eq!(key.quorum, input.active.len() - ssn.numsync, "{ctx}");
        assert!(ssn.any || ssn.names.is_empty(), "{ctx}");
    }

    /// Random histories from an empty cluster: standbys come and go,
    /// `synchronous_node_count` and strict mode change, plans are cut short
    /// after any step (a lost compare-and-set, a crash), PostgreSQL
    /// confirms some of the listed standbys, and the primary fails over to
    /// a voter, which first lists the key's other members in PostgreSQL as
    /// Patroni's pre-promote step does. The resolver never refuses a state
    /// it led to, the invariant holds after every step, and once events
    /// stop the state comes to rest at the target.
    #[test]
    fn random_walks_never_refuse() {
        const NODES: [&str; 5] = ["a", "b", "c", "d", "e"];
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let (mut failovers, mut cut_short) = (0, 0);
        for walk in 0..1000 {
            let mut input = QuorumInput { me: "a".into(), synchronous_node_count: 1, ..Default::default() };
            let mut history: Vec<String> = Vec::new();
            for _ in 0..40 {
                let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != input.me).collect();
                match rng.below(10) {
                    0..=2 => {
                        let node = others[rng.below(others.len())].to_string();
                        if !input.active.remove(&node) {
                            input.active.insert(node);
                        }
                    }
                    3 => input.synchronous_node_count = 1 + rng.below(3),
                    4 => input.strict = !input.strict,
                    5 if input.sync_key.leader.as_ref() == Some(&input.me) && !input.sync_key.voters.is_empty() => {
                        let voters: Vec<&String> = input.sync_key.voters.iter().collect();
                        let new = voters[rng.below(voters.len())].clone();
                        let mut members = input.sync_key.voters.clone();
                        members.insert(input.me.clone());
                        let numsync = members.len() - input.sync_key.quorum - 1;
                        members.remove(&new);
                        // At least 1: PostgreSQL takes no `ANY 0`.
                        input.standby_names = QuorumStandbyNames { numsync: numsync.max(1), names: members, any: true };
                        input.me = new;
                        input.active.clear();
                        failovers += 1;
                        let ctx = format!("walk {walk}: {history:?}: failover to {input:?}");
                        assert!(safe(&input.sync_key, &input.standby_names, &input.me), "{ctx}");
                    }
                    _ => {
                        let plan = resolve_quorum(&input)
                            .unwrap_or_else(|e| panic!("walk {walk}: {history:?}: refused {input:?}: {e}"));
                        let take = if rng.below(3) == 0 { rng.below(plan.steps.len() + 1) } else { plan.steps.len() };
                        if take < plan.steps.len() {
                            cut_short += 1;
                        }
                        for step in &plan.steps[..take] {
                            apply(step, &mut input.sync_key, &mut input.standby_names);
                            history.push(format!("{step:?}"));
                            let ctx = format!("walk {walk}: {history:?}: unsafe {input:?}");
                            assert!(safe(&input.sync_key, &input.standby_names, &input.me), "{ctx}");
                        }
                    }
                }
                let listed: Vec<String> = input
                    .active
                    .intersection(&input.standby_names.names)
                    .filter(|_| rng.below(2) == 1)
                    .cloned()
                    .collect();
                input.confirmed.extend(listed);
                let (active, names) = (&input.active, &input.standby_names.names);
                input.confirmed.retain(|n| active.contains(n) && names.contains(n));
            }
            let mut rounds = 0;
            loop {
                rounds += 1;
                assert!(rounds <= 10, "walk {walk}: no rest after 10 rounds, at {input:?}");
                // PostgreSQL has caught up with every standby it lists.
                input.confirmed = input.active.intersection(&input.standby_names.names).cloned().collect();
                let plan = resolve_quorum(&input)
                    .unwrap_or_else(|e| panic!("walk {walk}: {history:?}: refused {input:?}: {e}"));
                for step in &plan.steps {
                    apply(step, &mut input.sync_key, &mut input.standby_names);
                    assert!(safe(&input.sync_key, &input.standby_names, &input.me), "walk {walk}: unsafe {input:?}");
                }
                if plan.steps.is_empty() && !plan.recheck {
                    check_target(&input, &format!("walk {walk}"));
                    break;
                }
            }
        }
        assert!(failovers > 300 && cut_short > 1000, "{failovers} failovers, {cut_short} plans cut short");
    }
}
