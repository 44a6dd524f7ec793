//! What every DCS plugin shares: Patroni's key layout under
//! `/<namespace>/<scope>/` (plus `<group>/` for a Citus group) and the
//! assembly of one read of those keys into a [`DcsSnapshot`].
//!
//! A plugin reads its store its own way (an etcd range, a ZooKeeper tree
//! walk, an HTTP listing) and hands the keys it found to [`assemble`] as
//! [`Stored`] entries: full key, value as stored, the store's own version
//! and the session (lease, ephemeral owner) it hangs on. Nothing is parsed
//! here; garbage written by someone else comes back exactly as stored, and
//! the host decides what to make of it.

use std::collections::BTreeMap;

use crate::contract::{DcsSnapshot, LeaderKey, MemberKey, VersionedValue};

/// The names of a cluster's keys, relative to [`Keys::prefix`].
pub mod names {
    pub const LEADER: &str = "leader";
    pub const CONFIG: &str = "config";
    pub const INITIALIZE: &str = "initialize";
    pub const FAILOVER: &str = "failover";
    pub const SYNC: &str = "sync";
    pub const HISTORY: &str = "history";
    pub const STATUS: &str = "status";
    pub const FAILSAFE: &str = "failsafe";
    /// The legacy optime key Patroni still reads.
    pub const LEADER_OPTIME: &str = "optime/leader";
    /// The directory of the member keys (`members/<name>`).
    pub const MEMBERS: &str = "members/";
}

/// Where each key of one cluster lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
    /// `/<namespace>/<scope>/`, where the Citus group directories live.
    scope_prefix: String,
}

impl Keys {
    /// Patroni squeezes repeated slashes out of `/<namespace>/<scope>`, then
    /// joins the group and the key name with single slashes.
    pub fn new(namespace: &str, scope: &str, group: Option<i32>) -> Self {
        let raw = format!("/{namespace}/{scope}");
        let mut base = String::with_capacity(raw.len());
        for c in raw.chars() {
            if !(c == '/' && base.ends_with('/')) {
                base.push(c);
            }
        }
        let scope_prefix = format!("{base}/");
        let prefix = match group {
            Some(g) => format!("{scope_prefix}{g}/"),
            None => scope_prefix.clone(),
        };
        Self { prefix, scope_prefix }
    }

    /// The keys of Citus group `group` of the same scope.
    pub fn group(&self, group: i32) -> Self {
        Self { prefix: format!("{}{group}/", self.scope_prefix), scope_prefix: self.scope_prefix.clone() }
    }

    /// `/<namespace>/<scope>/` whatever the group: every group's keys start
    /// with it (it ends with `/`).
    pub fn scope_prefix(&self) -> &str {
        &self.scope_prefix
    }

    /// The scope's directory without the trailing `/` (a ZooKeeper path).
    pub fn scope_base(&self) -> &str {
        self.scope_prefix.strip_suffix('/').unwrap_or(&self.scope_prefix)
    }

    /// The group a key under the scope belongs to, and the key's name in
    /// that group: `/service/demo/2/leader` -> `(2, "leader")`.
    pub fn group_of<'a>(&self, key: &'a str) -> Option<(i32, &'a str)> {
        let (group, rest) = key.strip_prefix(self.scope_prefix.as_str())?.split_once('/')?;
        Some((parse_group(group)?, rest))
    }

    /// Every key of the cluster starts with this (it ends with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The cluster's directory without the trailing `/` (a ZooKeeper path).
    pub fn base(&self) -> &str {
        self.prefix.strip_suffix('/').unwrap_or(&self.prefix)
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn member(&self, name: &str) -> String {
        format!("{}{}{name}", self.prefix, names::MEMBERS)
    }

    /// The part of `key` after the prefix, if it is one of ours.
    pub fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.prefix.as_str())
    }
}

/// A Citus group directory's name as a group number, by Patroni's rule
/// (`group_re`: `0`, or digits without a leading zero); anything else, or a
/// number beyond `i32`, is not a group.
pub fn parse_group(name: &str) -> Option<i32> {
    let digits = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
    if !digits || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    name.parse().ok()
}

/// One key as a store holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// The full key (`/service/demo/leader`).
    pub key: String,
    /// The value as stored (invalid UTF-8 replaced, never rejected).
    pub value: String,
    /// The store's version of the key, handed back for compare-and-set.
    pub version: String,
    /// The lease, session or owner the key hangs on; empty when none.
    pub session: String,
}

/// Build the snapshot of the cluster at `keys` from the keys one read
/// found. Keys of other clusters or groups, unknown names and member keys
/// nested deeper than `members/<name>` are skipped, as Patroni skips them.
pub fn assemble<'a>(keys: &Keys, found: impl IntoIterator<Item = &'a Stored>) -> DcsSnapshot {
    let mut s = DcsSnapshot::default();
    let versioned = |n: &Stored| VersionedValue { value: n.value.clone(), version: n.version.clone() };
    for n in found {
        let Some(rel) = keys.relative(&n.key) else {
            continue;
        };
        match rel {
            names::INITIALIZE => s.initialize = Some(n.value.clone()),
            names::CONFIG => s.config = Some(versioned(n)),
            names::LEADER => {
                s.leader =
                    Some(LeaderKey { name: n.value.clone(), version: n.version.clone(), session: n.session.clone() })
            }
            names::FAILOVER => s.failover = Some(versioned(n)),
            names::SYNC => s.sync = Some(versioned(n)),
            names::HISTORY => s.history = Some(versioned(n)),
            names::STATUS => s.status = Some(n.value.clone()),
            names::FAILSAFE => s.failsafe = Some(n.value.clone()),
            names::LEADER_OPTIME => s.leader_optime = Some(n.value.clone()),
            other => {
                if let Some(name) = other.strip_prefix(names::MEMBERS).filter(|n| !n.is_empty() && !n.contains('/')) {
                    s.members.push(MemberKey {
                        name: name.to_string(),
                        value: n.value.clone(),
                        version: n.version.clone(),
                        session: n.session.clone(),
                    });
                }
            }
        }
    }
    s.members.sort_by(|a, b| a.name.cmp(&b.name));
    s
}

/// Build every group's snapshot from one read of everything under the
/// scope (`keys` may be any group's: only its scope counts). A group is
/// present when at least one of its keys was found; keys directly under the
/// scope and directories that are not group numbers are skipped, as
/// Patroni's `_mpp_cluster_loader` skips them.
pub fn assemble_groups<'a>(keys: &Keys, found: impl IntoIterator<Item = &'a Stored>) -> BTreeMap<i32, DcsSnapshot> {
    let mut by_group: BTreeMap<i32, Vec<&Stored>> = BTreeMap::new();
    for n in found {
        if let Some((group, _)) = keys.group_of(&n.key) {
            by_group.entry(group).or_default().push(n);
        }
    }
    by_group.into_iter().map(|(group, nodes)| (group, assemble(&keys.group(group), nodes))).collect()
}

#[cfg(test)]
mod tests {
    use super::names::*;
    use super::*;

    fn stored(key: &str, value: &str, version: &str, session: &str) -> Stored {
        Stored { key: key.into(), value: value.into(), version: version.into(), session: session.into() }
    }

    #[test]
    fn layout() {
        let k = Keys::new("/service/", "demo", None);
        assert_eq!(k.prefix(), "/service/demo/");
        assert_eq!(k.base(), "/service/demo");
        assert_eq!(k.key(LEADER), "/service/demo/leader");
        assert_eq!(k.key(LEADER_OPTIME), "/service/demo/optime/leader");
        assert_eq!(k.member("node1"), "/service/demo/members/node1");
        assert_eq!(k.relative("/service/demo/config"), Some("config"));
        assert_eq!(k.relative("/service/demo2/config"), None);
    }

    #[test]
    fn citus_group_and_odd_namespaces() {
        let cases: &[(&str, &str, Option<i32>, &str)] = &[
            ("/service/", "demo", Some(0), "/service/demo/0/"),
            ("/service/", "demo", Some(2), "/service/demo/2/"),
            ("/", "demo", None, "/demo/"),
            ("/a/b/", "c", None, "/a/b/c/"),
            ("//a//", "c", None, "/a/c/"),
        ];
        for (namespace, scope, group, prefix) in cases {
            assert_eq!(Keys::new(namespace, scope, *group).prefix(), *prefix, "{namespace} {scope} {group:?}");
        }
        assert_eq!(Keys::new("/service/", "demo", Some(2)).member("w"), "/service/demo/2/members/w");
    }

    #[test]
    fn every_key_lands_where_it_belongs() {
        let keys = Keys::new("/service/", "demo", None);
        let found = [
            stored("/service/demo/config", r#"{"ttl":30}"#, "5", ""),
            stored("/service/demo/failover", "", "6", ""),
            stored("/service/demo/failsafe", "{not json", "7", ""),
            stored("/service/demo/history", "[]", "8", ""),
            stored("/service/demo/initialize", "7000000000000000001", "2", ""),
            stored("/service/demo/leader", "n1", "9", "77"),
            stored("/service/demo/members/n2", "garbage", "11", "78"),
            stored("/service/demo/members/n1", "{}", "10", "77"),
            stored("/service/demo/members/deep/x", "ignored", "12", ""),
            stored("/service/demo/members/", "ignored", "12", ""),
            stored("/service/demo/optime/leader", "123", "13", ""),
            stored("/service/demo/status", r#"{"optime":1}"#, "14", ""),
            stored("/service/demo/sync", r#"{"leader":"n1"}"#, "15", ""),
            stored("/service/demo/unknown", "x", "16", ""),
            stored("/service/demo/1/leader", "other group", "17", ""),
            stored("/service/demo2/leader", "other cluster", "18", ""),
        ];
        let s = assemble(&keys, &found);
        assert_eq!(s.initialize.as_deref(), Some("7000000000000000001"));
        assert_eq!(s.config, Some(VersionedValue { value: r#"{"ttl":30}"#.into(), version: "5".into() }));
        assert_eq!(s.leader, Some(LeaderKey { name: "n1".into(), version: "9".into(), session: "77".into() }));
        let names: Vec<&str> = s.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["n1", "n2"]);
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
    }

    #[test]
    fn a_group_sees_only_its_own_keys() {
        let keys = Keys::new("/service/", "demo", Some(1));
        let found = [stored("/service/demo/leader", "n0", "1", ""), stored("/service/demo/1/leader", "n1", "3", "")];
        let s = assemble(&keys, &found);
        assert_eq!(s.leader, Some(LeaderKey { name: "n1".into(), version: "3".into(), session: String::new() }));
    }

    #[test]
    fn group_names_follow_patroni() {
        let cases: &[(&str, Option<i32>)] = &[
            ("0", Some(0)),
            ("1", Some(1)),
            ("12", Some(12)),
            ("2147483647", Some(i32::MAX)),
            ("2147483648", None),
            ("01", None),
            ("00", None),
            ("", None),
            ("-1", None),
            ("+1", None),
            ("1a", None),
            ("members", None),
        ];
        for (name, group) in cases {
            assert_eq!(parse_group(name), *group, "{name:?}");
        }
    }

    #[test]
    fn every_group_from_one_read() {
        // Any group's keys will do: only the scope counts.
        let keys = Keys::new("/service/", "demo", Some(1));
        assert_eq!(keys.scope_prefix(), "/service/demo/");
        assert_eq!(keys.scope_base(), "/service/demo");
        assert_eq!(keys.group(3).prefix(), "/service/demo/3/");
        assert_eq!(keys.group_of("/service/demo/3/members/a"), Some((3, "members/a")));
        assert_eq!(keys.group_of("/service/demo/leader"), None);
        assert_eq!(keys.group_of("/service/demo2/0/leader"), None);
        let found = [
            stored("/service/demo/0/leader", "c1", "1", "s"),
            stored("/service/demo/0/members/c1", "{}", "2", "s"),
            stored("/service/demo/2/members/w2", "{}", "3", ""),
            stored("/service/demo/2/config", "{}", "4", ""),
            stored("/service/demo/1/initialize", "42", "5", ""),
            stored("/service/demo/leader", "no group", "6", ""),
            stored("/service/demo/01/leader", "not a group", "7", ""),
            stored("/service/demo/x/leader", "not a group", "8", ""),
            stored("/service/demo2/0/leader", "other scope", "9", ""),
        ];
        let groups = assemble_groups(&keys, &found);
        assert_eq!(groups.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(groups[&0].leader.as_ref().map(|l| l.name.as_str()), Some("c1"));
        assert_eq!(groups[&0].members.len(), 1);
        assert_eq!(groups[&1].initialize.as_deref(), Some("42"));
        assert_eq!(groups[&2].members[0].name, "w2");
        assert_eq!(groups[&2].config.as_ref().map(|c| c.version.as_str()), Some("4"));
        assert!(groups[&2].leader.is_none());
        assert!(assemble_groups(&keys, &[]).is_empty());
    }
}
