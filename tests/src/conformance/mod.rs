//! The DCS conformance suite: the promises of `palisade_plugin_api::Dcs`
//! (Patroni's AbstractDCS), the contract every DCS plugin must pass,
//! checked against a real store through a loaded plugin. Every check takes
//! a [`DcsFixture`]; a plugin joins the suite by implementing it (its core
//! is the factory `new_dcs(member name) -> Box<dyn Dcs>`) and adding one
//! line, [`dcs_conformance_tests!`](crate::dcs_conformance_tests), to
//! `tests/tests/dcs_conformance.rs`. `docs/ARCHITECTURE.md` ("The DCS
//! conformance suite") says what each module checks.
//!
//! Checks never assert on speed beyond generous bounds that correctness
//! needs ("the watch woke long before its 10 s timeout").

mod groups;
mod layout;
mod lock;
mod outage;
mod race;
mod scale;
mod values;
mod watch;

pub use groups::*;
pub use layout::*;
pub use lock::*;
pub use outage::*;
pub use race::*;
pub use scale::*;
pub use values::*;
pub use watch::*;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use palisade_plugin_api::{Dcs, DcsSnapshot, DcsTiming};

/// A store under test, with a fresh, empty cluster.
pub trait DcsFixture: Sync {
    /// The factory: a new client of the cluster under test, as member
    /// `member`, with [`DcsFixture::timing`].
    fn new_dcs(&self, member: &str) -> Box<dyn Dcs>;
    /// A client of Citus group `group` of the same cluster (its keys under
    /// `<group>/`, Patroni's layout with `citus.group`), as member `member`.
    fn new_dcs_in_group(&self, member: &str, group: i32) -> Box<dyn Dcs>;
    /// The timing the clients were made with (short ttl: a few seconds).
    fn timing(&self) -> DcsTiming;
    /// Write `value` at the cluster's key `key` (`leader`,
    /// `members/<name>`...) behind the plugin's back.
    fn write_raw(&self, key: &str, value: &[u8]);
    /// The bytes stored at the cluster's key `key`, read behind the
    /// plugin's back; `None` when the key does not exist.
    fn read_raw(&self, key: &str) -> Option<Vec<u8>>;
    /// Make the store unreachable (the process is stopped).
    fn stop_store(&self);
    /// Bring it back on the same address with the same data.
    fn start_store(&self);
    /// Freeze the store: connections stay open but nothing answers.
    fn freeze_store(&self);
    fn thaw_store(&self);
    /// A client, as member `member`, of a second cluster on the same store
    /// whose scope starts with this cluster's scope (`demo2` next to
    /// `demo`), to show that `delete_cluster` stays inside its own
    /// cluster. `None` (the default) when the fixture has no second scope;
    /// that part of the check is then skipped.
    fn new_dcs_in_other_scope(&self, member: &str) -> Option<Box<dyn Dcs>> {
        let _ = member;
        None
    }
    /// Make `dcs` stop keeping its leader and member keys alive, as a
    /// member that hangs or dies does: they must then go about `ttl`
    /// later. Returns the client when it can still be used afterwards (it
    /// comes back from its pause), `None` when it had to be dropped.
    ///
    /// The default keeps the client and does nothing: on a store with
    /// leases or TTLs the plugin renews only when called, and the check
    /// stops calling. A fixture whose plugin keeps a session alive in the
    /// background (ZooKeeper) overrides this, for instance by dropping the
    /// client without closing its session, so that the session expires.
    fn stop_renewing(&self, dcs: Box<dyn Dcs>) -> Option<Box<dyn Dcs>> {
        Some(dcs)
    }
    /// The keys this store keeps as fields of an object rather than as one
    /// value, as Patroni keeps them there too (on Kubernetes `failover`,
    /// `sync` and `status` are annotations): such a key holds what Patroni's
    /// schema has, comes back as the same JSON (not the same bytes) and
    /// cannot hold garbage. None (the default) for stores of plain values.
    fn structured_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// The size of the huge values `huge_values_round_trip` writes: 256 KiB
    /// by default; Kubernetes allows 256 KiB of annotations per object in
    /// all, so its fixture asks for less.
    fn huge_value_size(&self) -> usize {
        256 * 1024
    }
}

/// How many clients race in the compare-and-set checks.
pub const RACERS: usize = 12;

/// A member value as Patroni writes it.
pub const MEMBER_JSON: &str = r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.0","xlog_location":50331968,"timeline":1}"#;

pub(crate) fn snapshot(dcs: &dyn Dcs) -> DcsSnapshot {
    dcs.get_cluster().unwrap_or_else(|e| panic!("get_cluster: {e}"))
}

/// `got` is `want` at `key`: the same bytes, or for a key the fixture
/// keeps as fields ([`DcsFixture::structured_keys`]) the same JSON.
pub(crate) fn assert_stored(f: &dyn DcsFixture, key: &str, got: Option<&str>, want: Option<&str>) {
    if f.structured_keys().contains(&key) {
        let json = |v: Option<&str>| {
            v.map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap_or_else(|_| serde_json::Value::from(t)))
        };
        assert_eq!(json(got), json(want), "{key}: the same JSON");
    } else {
        assert_eq!(got, want, "{key}: the same bytes");
    }
}

pub(crate) fn ok<T>(what: &str, r: palisade_plugin_api::PluginResult<T>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Run `f` on its own thread and give up (failing the test) when it has
/// not returned after `limit`: a hang must fail, not stall the suite.
pub(crate) fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let r = f();
        let _ = tx.send((r, started.elapsed()));
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => panic!("{what} still had not returned after {limit:?}"),
    }
}

pub(crate) fn shared(dcs: Box<dyn Dcs>) -> Arc<dyn Dcs> {
    Arc::from(dcs)
}

/// Run `op` on every client at once (released together by a barrier),
/// one thread each; the results in client order.
pub(crate) fn race<C: Sync, T: Send>(clients: &[C], op: impl Fn(usize, &C) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(clients.len());
    thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    op(i, c)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a racer panicked")).collect()
    })
}

/// The indexes of the racers whose result says they won.
pub(crate) fn winners<T>(results: &[T], won: impl Fn(&T) -> bool) -> Vec<usize> {
    results.iter().enumerate().filter(|(_, r)| won(r)).map(|(i, _)| i).collect()
}

/// `n` clients named `<prefix>1`... `<prefix>n`.
pub(crate) fn clients(f: &dyn DcsFixture, prefix: &str, n: usize) -> Vec<Box<dyn Dcs>> {
    (1..=n).map(|i| f.new_dcs(&format!("{prefix}{i}"))).collect()
}

/// Generate one `#[test]` per check; `$make` builds a fresh fixture.
#[macro_export]
macro_rules! dcs_conformance_tests {
    ($make:expr) => {
        $crate::dcs_conformance_tests!(@each $make;
            only_one_acquirer_wins,
            update_leader_by_a_non_owner_fails,
            delete_leader_only_by_the_owner,
            keys_expire_unless_renewed,
            initialize_is_created_once_and_can_be_cancelled,
            config_is_compare_and_set,
            sync_is_compare_and_set,
            failover_is_compare_and_set,
            config_race_has_one_winner,
            sync_race_has_one_winner,
            sync_delete_race_has_one_winner,
            failover_race_has_one_winner,
            values_round_trip_byte_exactly,
            huge_values_round_trip,
            garbage_comes_back_as_stored,
            delete_cluster_removes_every_key,
            delete_cluster_keeps_other_scopes,
            byte_layout_is_patronis,
            values_written_by_patroni_are_read,
            hundred_members_in_one_snapshot,
            watch_wakes_when_the_leader_is_deleted,
            watch_wakes_when_the_leader_changes,
            watch_wakes_when_the_leader_is_written_behind_its_back,
            watch_wakes_when_the_leader_expires,
            watch_sees_a_change_made_before_it_started,
            watch_times_out_without_a_change,
            store_down_gives_dcs_errors_then_recovers,
            frozen_store_gives_dcs_errors_then_recovers,
            every_group_is_read_at_once,
            groups_are_apart_and_their_versions_work,
        );
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let fixture = ($make)();
                $crate::conformance::$check(&fixture);
            }
        )*
    };
}
