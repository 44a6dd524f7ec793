//! One range read of the cluster prefix turned into a [`DcsSnapshot`]
//! (by the SDK's `dcs::assemble`): values exactly as stored, mod revisions
//! as versions, lease ids as sessions; plus the [`Memo`] of what was seen.

use std::collections::BTreeMap;

use palisade_plugin_api::sdk::dcs::{self, Stored};
use palisade_plugin_api::DcsSnapshot;

use crate::keys::{self, Keys};

/// One key as read from etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub key: String,
    pub value: String,
    pub mod_revision: i64,
    pub lease: i64,
}

impl Node {
    pub(crate) fn from_kv(kv: &etcd_client::KeyValue) -> Self {
        Node {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            // Values are UTF-8 JSON when Patroni writes them; anything else
            // is passed on with invalid bytes replaced rather than failing
            // the whole snapshot.
            value: String::from_utf8_lossy(kv.value()).into_owned(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        }
    }
}

/// What the plugin remembers of its last snapshot: the baseline for
/// `watch` and for skipping a `touch_member` that would change nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Memo {
    /// The store revision the snapshot was read at.
    pub revision: i64,
    /// Leader key: value and mod revision.
    pub leader: Option<(String, i64)>,
    /// Our own member key: value and lease.
    pub own_member: Option<(String, i64)>,
    pub config: Option<String>,
    pub status: Option<String>,
    pub leader_optime: Option<String>,
}

fn session(lease: i64) -> String {
    if lease == 0 {
        String::new()
    } else {
        lease.to_string()
    }
}

impl Node {
    fn stored(&self) -> Stored {
        Stored {
            key: self.key.clone(),
            value: self.value.clone(),
            version: self.mod_revision.to_string(),
            session: session(self.lease),
        }
    }
}

/// Every Citus group's snapshot from one range read of the whole scope.
pub(crate) fn build_groups(keys: &Keys, nodes: &[Node]) -> BTreeMap<i32, DcsSnapshot> {
    let stored: Vec<Stored> = nodes.iter().map(Node::stored).collect();
    dcs::assemble_groups(keys, &stored)
}

/// Build the snapshot of `keys` from the nodes of one range read taken at
/// `revision`; `own_name` is this member's name.
pub(crate) fn build(keys: &Keys, nodes: &[Node], revision: i64, own_name: &str) -> (DcsSnapshot, Memo) {
    let stored: Vec<Stored> = nodes.iter().map(Node::stored).collect();
    let snapshot = dcs::assemble(keys, &stored);
    let mut memo = Memo { revision, ..Memo::default() };
    let own_member = format!("{}{own_name}", keys::MEMBERS);
    for n in nodes {
        match keys.relative(&n.key) {
            Some(keys::CONFIG) => memo.config = Some(n.value.clone()),
            Some(keys::LEADER) => memo.leader = Some((n.value.clone(), n.mod_revision)),
            Some(keys::STATUS) => memo.status = Some(n.value.clone()),
            Some(keys::LEADER_OPTIME) => memo.leader_optime = Some(n.value.clone()),
            Some(rel) if rel == own_member => memo.own_member = Some((n.value.clone(), n.lease)),
            _ => {}
        }
    }
    (snapshot, memo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_plugin_api::{LeaderKey, MemberKey, VersionedValue};

    fn node(key: &str, value: &str, rev: i64, lease: i64) -> Node {
        Node { key: key.into(), value: value.into(), mod_revision: rev, lease }
    }

    #[test]
    fn every_key_lands_where_it_belongs() {
        let keys = Keys::new("/service/", "demo", None);
        let nodes = [
            node("/service/demo/config", r#"{"ttl":30}"#, 5, 0),
            node("/service/demo/failover", "", 6, 0),
            node("/service/demo/failsafe", "{not json", 7, 0),
            node("/service/demo/history", "[]", 8, 0),
            node("/service/demo/initialize", "7000000000000000001", 2, 0),
            node("/service/demo/leader", "n1", 9, 77),
            node("/service/demo/members/n1", "{}", 10, 77),
            node("/service/demo/members/n2", "garbage", 11, 78),
            node("/service/demo/members/deep/x", "ignored", 12, 0),
            node("/service/demo/optime/leader", "123", 13, 0),
            node("/service/demo/status", r#"{"optime":1}"#, 14, 0),
            node("/service/demo/sync", r#"{"leader":"n1"}"#, 15, 0),
            node("/service/demo/unknown", "x", 16, 0),
            node("/service/demo/1/leader", "other group", 17, 0),
        ];
        let (s, memo) = build(&keys, &nodes, 20, "n1");
        assert_eq!(s.initialize.as_deref(), Some("7000000000000000001"));
        assert_eq!(s.config, Some(VersionedValue { value: r#"{"ttl":30}"#.into(), version: "5".into() }));
        assert_eq!(s.leader, Some(LeaderKey { name: "n1".into(), version: "9".into(), session: "77".into() }));
        assert_eq!(s.members.len(), 2);
        assert_eq!(
            s.members[1],
            MemberKey { name: "n2".into(), value: "garbage".into(), version: "11".into(), session: "78".into() }
        );
        assert_eq!(s.failover.map(|f| f.value), Some(String::new()));
        assert_eq!(s.failsafe.as_deref(), Some("{not json"));
        assert_eq!(s.history.map(|h| h.version), Some("8".into()));
        assert_eq!(s.sync.map(|h| h.version), Some("15".into()));
        assert_eq!(s.status.as_deref(), Some(r#"{"optime":1}"#));
        assert_eq!(s.leader_optime.as_deref(), Some("123"));
        assert_eq!(memo.revision, 20);
        assert_eq!(memo.leader, Some(("n1".into(), 9)));
        assert_eq!(memo.own_member, Some(("{}".into(), 77)));
    }

    #[test]
    fn a_key_without_lease_has_no_session() {
        let keys = Keys::new("/service/", "demo", Some(1));
        let (s, _) = build(&keys, &[node("/service/demo/1/leader", "n1", 3, 0)], 3, "n2");
        assert_eq!(s.leader.map(|l| l.session), Some(String::new()));
    }
}
