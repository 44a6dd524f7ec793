//! One read of a cluster's znodes: the children of the cluster's znode,
//! then every known key and member in one multi-read. Values exactly as
//! stored (invalid UTF-8 replaced), data versions as versions, ephemeral
//! owners (session ids) as sessions.

use std::collections::BTreeMap;

use palisade_plugin_api::sdk::dcs::{self, names, Keys, Stored};
use palisade_plugin_api::DcsSnapshot;
use zookeeper_client as zk;

/// The version the host sees for a znode: its data version, except for
/// the leader, whose version is the zxid of its last change, so that a
/// leader znode deleted and created again never looks unchanged (its data
/// version would be 0 both times).
pub(crate) fn version(name: &str, stat: &zk::Stat) -> String {
    if name == names::LEADER {
        stat.mzxid.to_string()
    } else {
        stat.version.to_string()
    }
}

fn session(stat: &zk::Stat) -> String {
    if stat.ephemeral_owner == 0 {
        String::new()
    } else {
        stat.ephemeral_owner.to_string()
    }
}

/// The plain keys Patroni keeps directly under the cluster's znode.
const PLAIN: [&str; 8] = [
    names::INITIALIZE,
    names::CONFIG,
    names::LEADER,
    names::FAILOVER,
    names::SYNC,
    names::HISTORY,
    names::STATUS,
    names::FAILSAFE,
];

async fn children(c: &zk::Client, path: &str) -> Result<Vec<String>, zk::Error> {
    match c.list_children(path).await {
        Ok(ch) => Ok(ch),
        Err(zk::Error::NoNode) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn read(c: zk::Client, keys: &Keys) -> Result<Vec<Stored>, zk::Error> {
    let base = keys.base();
    let top = children(&c, base).await?;
    let mut wanted: Vec<String> = Vec::new();
    for name in PLAIN {
        if top.iter().any(|t| t == name) {
            wanted.push(name.to_string());
        }
    }
    if top.iter().any(|t| t == "optime") {
        wanted.push(names::LEADER_OPTIME.to_string());
    }
    if top.iter().any(|t| format!("{t}/") == names::MEMBERS) {
        let mut members = children(&c, &keys.key(names::MEMBERS.trim_end_matches('/'))).await?;
        members.sort();
        wanted.extend(members.into_iter().map(|m| format!("{}{m}", names::MEMBERS)));
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut reader = c.new_multi_reader();
    for name in &wanted {
        reader.add_get_data(&keys.key(name))?;
    }
    let results = reader.commit().await?;
    let mut out = Vec::with_capacity(wanted.len());
    for (name, result) in wanted.iter().zip(results) {
        match result {
            zk::MultiReadResult::Data { data, stat } => out.push(Stored {
                key: keys.key(name),
                value: String::from_utf8_lossy(&data).into_owned(),
                version: version(name, &stat),
                session: session(&stat),
            }),
            // Gone between the listing and the read.
            zk::MultiReadResult::Error { err: zk::Error::NoNode } => {}
            zk::MultiReadResult::Error { err } => return Err(err),
            _ => {}
        }
    }
    Ok(out)
}

/// Every Citus group under the scope, one [`read`] per group znode (as
/// Patroni's ZooKeeper does it: the groups are the scope's children whose
/// name is a group number). A group without any key is left out.
pub(crate) async fn read_groups(c: zk::Client, keys: &Keys) -> Result<BTreeMap<i32, DcsSnapshot>, zk::Error> {
    let mut groups = BTreeMap::new();
    for child in children(&c, keys.scope_base()).await? {
        let Some(group) = dcs::parse_group(&child) else {
            continue;
        };
        let group_keys = keys.group(group);
        let stored = read(c.clone(), &group_keys).await?;
        if !stored.is_empty() {
            groups.insert(group, dcs::assemble(&group_keys, &stored));
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(version: i32, mzxid: i64, owner: i64) -> zk::Stat {
        zk::Stat {
            czxid: 1,
            mzxid,
            pzxid: 1,
            ctime: 0,
            mtime: 0,
            version,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            data_length: 0,
            num_children: 0,
        }
    }

    #[test]
    fn versions_and_sessions() {
        assert_eq!(version(names::LEADER, &stat(0, 77, 5)), "77");
        assert_eq!(version(names::CONFIG, &stat(3, 77, 0)), "3");
        assert_eq!(session(&stat(0, 1, 0)), "");
        assert_eq!(session(&stat(0, 1, 0x1000a)), "65546");
    }
}
