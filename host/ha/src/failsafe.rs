//! Failsafe mode (Patroni's `failsafe_mode`), the pure parts:
//!
//! - what the leader publishes in the `failsafe` key (every member and its
//!   REST API URL);
//! - what a primary that cannot reach the DCS does: it asks every other
//!   member of that key (`POST /failsafe`) and keeps running only when
//!   all of them accept;
//! - how a replica that accepted such a call from the leader sees a
//!   cluster whose leader key is gone: the leader is still there, so it
//!   follows it instead of racing;
//! - which slot positions the slots follow while failsafe mode is active
//!   (the leader's `slots` on a replica, the members' `lsn` replies on the
//!   primary), and whether slots are synced in a cycle that could not
//!   reach the DCS.
//!
//! Unlike Patroni (its issue #3572), every DCS error counts as "the DCS
//! cannot be reached": that is the runner's side (see `runner/cycle.rs`).

use palisade_model::{Cluster, Leader, Member};
use serde_json::{Map, Value};

use crate::offline::Offline;
use crate::output::{Action, Ask, Decision, Level};

/// The reason a primary keeps running in failsafe mode (Patroni's words).
pub const CONTINUE_AS_LEADER: &str =
    "continue to run as a leader because failsafe mode is enabled and all members are accessible";

/// The `failsafe` value for this cluster (Patroni's `_failsafe_config`):
/// every member that publishes an API URL, and this node with its own.
pub fn failsafe_topology(cluster: &Cluster, me: &str, my_api_url: &str) -> Map<String, Value> {
    let mut map: Map<String, Value> = cluster
        .members
        .iter()
        .filter_map(|m| m.api_url().map(|url| (m.name.clone(), Value::String(url.to_string()))))
        .collect();
    if !map.contains_key(me) {
        map.insert(me.to_string(), Value::String(my_api_url.to_string()));
    }
    map
}

/// What the leader writes into the `failsafe` key after it renewed its
/// lock, or `None` when failsafe mode is off or the key already says it
/// (compared as JSON objects: the order of members does not matter).
pub fn failsafe_key_update(enabled: bool, cluster: &Cluster, me: &str, my_api_url: &str) -> Option<String> {
    if !enabled {
        return None;
    }
    let wanted = failsafe_topology(cluster, me, my_api_url);
    if cluster.failsafe.as_ref() == Some(&wanted) {
        return None;
    }
    Some(palisade_model::to_compact_json(&wanted))
}

/// The members a primary must hear from, other than itself, with their API
/// URLs; `Err` says why failsafe mode cannot keep it running (no usable key,
/// or the key does not name it).
pub fn members_to_call(key: Option<&Map<String, Value>>, me: &str) -> Result<Vec<(String, String)>, String> {
    let Some(key) = key else {
        return Err("there is no failsafe topology in the DCS".into());
    };
    if !key.contains_key(me) {
        return Err(format!("the failsafe topology does not name this member ({me})"));
    }
    let mut out = Vec::new();
    for (name, url) in key {
        if name == me {
            continue;
        }
        // A value that is not a URL cannot be called: that member cannot
        // accept, so the answer is a refusal (the runner reports it).
        out.push((name.clone(), url.as_str().unwrap_or_default().to_string()));
    }
    Ok(out)
}

/// Whether failsafe mode keeps this primary running while the DCS cannot
/// be reached (Patroni's `check_failsafe_topology`): every other member of
/// the `failsafe` key must accept its `POST /failsafe`. `Err` is the call
/// to make first; lines explaining a refusal go to `log`.
pub(crate) fn keeps_primary_running(o: &Offline<'_>, log: &mut Vec<(Level, String)>) -> Result<bool, Ask> {
    if !o.settings.failsafe_mode {
        return Ok(false);
    }
    let members = match members_to_call(o.failsafe, o.me) {
        Ok(m) => m,
        Err(why) => {
            log.push((Level::Info, format!("failsafe: {why}")));
            return Ok(false);
        }
    };
    if members.is_empty() {
        return Ok(true);
    }
    let Some(replies) = &o.answers.failsafe else {
        return Err(Ask::Failsafe(members));
    };
    let refused: Vec<&str> =
        members.iter().map(|(n, _)| n.as_str()).filter(|n| replies.get(*n) != Some(&true)).collect();
    if refused.is_empty() {
        return Ok(true);
    }
    log.push((Level::Info, format!("failsafe: not accepted by {}", refused.join(", "))));
    Ok(false)
}

/// A `POST /failsafe` this node accepted: who the leader is and how to
/// reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailsafeLeader {
    pub name: String,
    pub conn_url: String,
    pub api_url: String,
}

/// The cluster as a replica should see it (Patroni's
/// `Failsafe.update_cluster`): when the leader key is gone but the leader
/// called us within the last ttl (`heard` is that call, when still
/// fresh), the leader is still there. `None`: use the snapshot as it is.
pub fn cluster_with_failsafe_leader(cluster: &Cluster, heard: Option<&FailsafeLeader>) -> Option<Cluster> {
    let heard = heard?;
    if !cluster.is_unlocked() {
        return None;
    }
    let mut c = cluster.clone();
    c.leader = Some(Leader { name: heard.name.clone(), version: String::new(), session: String::new() });
    if !c.has_member(&heard.name) {
        let mut data = Map::new();
        data.insert("api_url".into(), Value::String(heard.api_url.clone()));
        data.insert("conn_url".into(), Value::String(heard.conn_url.clone()));
        let member = Member { name: heard.name.clone(), version: String::new(), session: String::new(), data };
        let at = c.members.partition_point(|m| m.name < member.name);
        c.members.insert(at, member);
    }
    Some(c)
}

/// The cluster as slot syncing sees it while failsafe mode is active
/// (Patroni's `Failsafe.update_cluster`). `slots` is what the last
/// failsafe round carried: on a replica, the `slots` the leader sent with
/// `POST /failsafe` (slot name to position, the leader's own WAL position
/// under its slot name), which take the place of the `status` key's, so
/// that permanent and member slot copies keep advancing while the DCS is
/// out of reach; on the primary, the `lsn` each member answered (member
/// name to position), which becomes the position of every member that
/// replicates from another member (`replicatefrom`), so that the primary
/// keeps advancing its slots for them. `None`: failsafe mode is off or not
/// active, use the snapshot as it is.
pub fn cluster_for_slots(
    cluster: &Cluster,
    enabled: bool,
    active: bool,
    slots: Option<&Map<String, Value>>,
) -> Option<Cluster> {
    if !(enabled && active) {
        return None;
    }
    let mut c = cluster.clone();
    c.status.slots = slots.cloned();
    if let Some(slots) = slots {
        for m in &mut c.members {
            let cascading = m.tags().replicatefrom().is_some();
            if let Some(lsn) = slots.get(&m.name).filter(|_| cascading) {
                m.data.insert("xlog_location".into(), lsn.clone());
            }
        }
    }
    Some(c)
}

/// The positions a primary keeps from a failsafe round in which every
/// member accepted (Patroni's `update_slots`): each member's `lsn` reply,
/// when it sent one other than 0. `None` when some member did not accept:
/// the round keeps nothing.
pub fn member_positions(replies: &[(String, bool, Option<u64>)]) -> Option<Map<String, Value>> {
    if !replies.iter().all(|(_, accepted, _)| *accepted) {
        return None;
    }
    Some(
        replies
            .iter()
            .filter_map(|(name, _, lsn)| lsn.filter(|l| *l > 0).map(|l| (name.clone(), Value::from(l))))
            .collect(),
    )
}

/// Whether a cycle that could not reach the DCS still syncs the slots
/// (Patroni's `_sync_replication_slots(dcs_failed=True)`): only with
/// failsafe mode on and not paused, on a running PostgreSQL, and on a
/// primary only while failsafe mode keeps it running. Without failsafe
/// mode, slots are not touched while the DCS is out of reach.
pub fn syncs_slots_offline(o: &Offline<'_>, d: &Decision) -> bool {
    if !o.settings.failsafe_mode || o.settings.paused || !o.local.pg.is_running() {
        return false;
    }
    !o.local.pg.is_primary() || d.actions.contains(&Action::FailsafeActive)
}

/// Members of the `failsafe` key, as the leader race sees them (Patroni's
/// `RemoteMember(name, {'api_url': url})`): only a name and an API URL.
pub fn failsafe_members(key: &Map<String, Value>) -> Vec<Member> {
    key.iter()
        .map(|(name, url)| {
            let mut data = Map::new();
            if let Some(url) = url.as_str() {
                data.insert("api_url".into(), Value::String(url.to_string()));
            }
            Member { name: name.clone(), version: String::new(), session: String::new(), data }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(name: &str, api: Option<&str>) -> Member {
        let mut v = json!({"conn_url": format!("postgres://{name}:5432/postgres"), "state": "running"});
        if let Some(a) = api {
            v["api_url"] = json!(a);
        }
        Member::from_value(name, "1", "", &v.to_string()).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_topology_lists_members_with_an_api_url_and_this_node() {
        let c = Cluster {
            members: vec![
                member("a", Some("http://a/patroni")),
                member("b", None),
                member("c", Some("http://c/patroni")),
            ],
            ..Cluster::default()
        };
        let cases: &[(&str, Value)] = &[
            ("a", json!({"a": "http://a/patroni", "c": "http://c/patroni"})),
            ("d", json!({"a": "http://a/patroni", "c": "http://c/patroni", "d": "http://me/patroni"})),
            // A member without api_url in its key still names itself.
            ("b", json!({"a": "http://a/patroni", "c": "http://c/patroni", "b": "http://me/patroni"})),
        ];
        for (me, want) in cases {
            assert_eq!(Value::Object(failsafe_topology(&c, me, "http://me/patroni")), *want, "{me}");
        }
    }

    #[test]
    fn the_key_is_written_only_when_it_changes() {
        let mut c = Cluster {
            members: vec![member("a", Some("http://a/patroni")), member("b", Some("http://b/p"))],
            ..Cluster::default()
        };
        assert_eq!(failsafe_key_update(false, &c, "a", "http://a/patroni"), None, "failsafe mode off");
        assert_eq!(
            failsafe_key_update(true, &c, "a", "http://a/patroni").as_deref(),
            Some(r#"{"a":"http://a/patroni","b":"http://b/p"}"#)
        );
        // Same members in another order: nothing to write.
        c.failsafe = Some(obj(json!({"b": "http://b/p", "a": "http://a/patroni"})));
        assert_eq!(failsafe_key_update(true, &c, "a", "http://a/patroni"), None);
        // A member left: the key follows.
        c.members.pop();
        assert_eq!(
            failsafe_key_update(true, &c, "a", "http://a/patroni").as_deref(),
            Some(r#"{"a":"http://a/patroni"}"#)
        );
    }

    #[test]
    fn a_replica_that_heard_from_the_leader_sees_it() {
        let heard = FailsafeLeader {
            name: "a".into(),
            conn_url: "postgres://a:5432/postgres".into(),
            api_url: "http://a/patroni".into(),
        };
        let unlocked = Cluster { members: vec![member("b", Some("http://b/patroni"))], ..Cluster::default() };
        let c = cluster_with_failsafe_leader(&unlocked, Some(&heard)).unwrap();
        assert_eq!(c.leader_name(), Some("a"));
        let m = c.leader_member().unwrap();
        assert_eq!((m.api_url(), m.conn_url()), (Some("http://a/patroni"), Some("postgres://a:5432/postgres")));
        assert_eq!(c.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["a", "b"], "kept sorted");
        // The leader's own key is still there: it is kept as it is.
        let with_a = Cluster { members: vec![member("a", Some("http://a2/patroni"))], ..Cluster::default() };
        let c = cluster_with_failsafe_leader(&with_a, Some(&heard)).unwrap();
        assert_eq!(c.leader_member().unwrap().api_url(), Some("http://a2/patroni"));
        // A cluster with a leader, or no call heard: nothing changes.
        let locked = Cluster {
            leader: Some(Leader { name: "b".into(), version: "1".into(), session: String::new() }),
            ..unlocked.clone()
        };
        assert_eq!(cluster_with_failsafe_leader(&locked, Some(&heard)), None);
        assert_eq!(cluster_with_failsafe_leader(&unlocked, None), None);
    }

    #[test]
    fn failsafe_members_carry_only_an_api_url() {
        let ms = failsafe_members(&obj(json!({"a": "http://a/patroni", "b": null})));
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].api_url(), Some("http://a/patroni"));
        assert_eq!(ms[1].api_url(), None);
    }

    fn tagged(name: &str, tags: Value, lsn: u64) -> Member {
        let v = json!({"api_url": "http://h/patroni", "tags": tags, "xlog_location": lsn});
        Member::from_value(name, "1", "", &v.to_string()).unwrap()
    }

    /// What slot syncing sees while failsafe mode is active: the positions
    /// of the last round replace the `status` key's, and a cascading
    /// member's position comes from its `lsn` reply.
    #[test]
    fn slots_follow_the_last_failsafe_round() {
        let c = Cluster {
            members: vec![
                tagged("a", json!({}), 10),
                tagged("b", json!({}), 20),
                tagged("c", json!({"replicatefrom": "b"}), 30),
                tagged("d", json!({"replicatefrom": "b"}), 40),
            ],
            status: palisade_model::Status::from_value(r#"{"optime": 5, "slots": {"perm": 5}}"#),
            ..Cluster::default()
        };
        let leader_sent = obj(json!({"a": 900, "perm": 800}));
        let replies = obj(json!({"b": 200, "c": 300}));
        let lsns = |c: &Cluster| c.members.iter().map(|m| m.lsn().unwrap_or(0)).collect::<Vec<_>>();
        type Row<'a> = (&'a str, bool, bool, Option<&'a Map<String, Value>>, Option<(Option<Value>, Vec<u64>)>);
        let rows: Vec<Row> = vec![
            ("failsafe mode off", false, true, Some(&leader_sent), None),
            ("failsafe mode not active", true, false, Some(&leader_sent), None),
            (
                "a replica takes the leader's slots",
                true,
                true,
                Some(&leader_sent),
                Some((Some(json!({"a": 900, "perm": 800})), vec![10, 20, 30, 40])),
            ),
            (
                "the primary moves only cascading members",
                true,
                true,
                Some(&replies),
                Some((Some(json!({"b": 200, "c": 300})), vec![10, 20, 300, 40])),
            ),
            ("a leader that sent no slots", true, true, None, Some((None, vec![10, 20, 30, 40]))),
        ];
        for (what, enabled, active, slots, want) in rows {
            let got = cluster_for_slots(&c, enabled, active, slots);
            let got = got.map(|g| (g.status.slots.clone().map(Value::Object), lsns(&g)));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn a_round_keeps_positions_only_when_everybody_accepted() {
        let r = |n: &str, ok: bool, lsn: Option<u64>| (n.to_string(), ok, lsn);
        type Reply = (String, bool, Option<u64>);
        let cases: Vec<(&str, Vec<Reply>, Option<Value>)> = vec![
            ("all accepted", vec![r("b", true, Some(7)), r("c", true, Some(9))], Some(json!({"b": 7, "c": 9}))),
            ("no lsn or 0 is left out", vec![r("b", true, None), r("c", true, Some(0))], Some(json!({}))),
            ("one refused", vec![r("b", true, Some(7)), r("c", false, Some(9))], None),
            ("nobody to call", vec![], Some(json!({}))),
        ];
        for (what, replies, want) in cases {
            assert_eq!(member_positions(&replies).map(Value::Object), want, "{what}");
        }
    }

    #[test]
    fn slots_are_synced_offline_only_in_failsafe_mode() {
        use crate::input::{Answers, Local, Pg, Settings};
        let running = |in_recovery| Local {
            pg: Pg::Running { in_recovery, timeline: Some(1), wal_position: 1 },
            ..Local::default()
        };
        let on = Settings { failsafe_mode: true, ..Settings::default() };
        let off = Settings::default();
        let paused = Settings { failsafe_mode: true, paused: true, ..Settings::default() };
        let keep = Decision::new(CONTINUE_AS_LEADER).with(Action::FailsafeActive);
        let wait = Decision::new("DCS is not accessible");
        let answers = Answers::default();
        let rows: Vec<(&str, Local, &Settings, &Decision, bool)> = vec![
            ("a replica in failsafe mode", running(true), &on, &wait, true),
            ("a replica without failsafe mode", running(true), &off, &wait, false),
            ("paused", running(true), &paused, &wait, false),
            ("PostgreSQL is not running", Local::default(), &on, &wait, false),
            ("a primary failsafe mode keeps running", running(false), &on, &keep, true),
            ("a primary that demotes", running(false), &on, &wait, false),
        ];
        for (what, local, settings, d, want) in rows {
            let o = Offline { me: "a", local: &local, settings, failsafe: None, answers: &answers };
            assert_eq!(syncs_slots_offline(&o, d), want, "{what}");
        }
    }
}
