//! Where each key of a cluster lives: Patroni's layout under
//! `/<namespace>/<scope>/` (plus `<group>/` for a Citus group).

pub(crate) const LEADER: &str = "leader";
pub(crate) const CONFIG: &str = "config";
pub(crate) const INITIALIZE: &str = "initialize";
pub(crate) const FAILOVER: &str = "failover";
pub(crate) const SYNC: &str = "sync";
pub(crate) const HISTORY: &str = "history";
pub(crate) const STATUS: &str = "status";
pub(crate) const FAILSAFE: &str = "failsafe";
pub(crate) const LEADER_OPTIME: &str = "optime/leader";
pub(crate) const MEMBERS: &str = "members/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Patroni squeezes repeated slashes out of `/<namespace>/<scope>`, then
    /// joins the group and the key name with single slashes.
    pub(crate) fn new(namespace: &str, scope: &str, group: Option<i32>) -> Self {
        let raw = format!("/{namespace}/{scope}");
        let mut base = String::with_capacity(raw.len());
        for c in raw.chars() {
            if !(c == '/' && base.ends_with('/')) {
                base.push(c);
            }
        }
        let prefix = match group {
            Some(g) => format!("{base}/{g}/"),
            None => format!("{base}/"),
        };
        Self { prefix }
    }

    /// Every key of the cluster starts with this (it ends with `/`).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub(crate) fn member(&self, name: &str) -> String {
        format!("{}{MEMBERS}{name}", self.prefix)
    }

    /// The part of `key` after the prefix, if it is one of ours.
    pub(crate) fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.prefix.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("/service/", "demo", None);
        assert_eq!(k.prefix(), "/service/demo/");
        assert_eq!(k.key(LEADER), "/service/demo/leader");
        assert_eq!(k.key(LEADER_OPTIME), "/service/demo/optime/leader");
        assert_eq!(k.member("node1"), "/service/demo/members/node1");
        assert_eq!(k.relative("/service/demo/config"), Some("config"));
        assert_eq!(k.relative("/service/demo2/config"), None);
    }

    #[test]
    fn citus_group_and_odd_namespaces() {
        assert_eq!(Keys::new("/service/", "demo", Some(0)).key(LEADER), "/service/demo/0/leader");
        assert_eq!(Keys::new("/service/", "demo", Some(2)).member("w"), "/service/demo/2/members/w");
        assert_eq!(Keys::new("/", "demo", None).prefix(), "/demo/");
        assert_eq!(Keys::new("/a/b/", "c", None).prefix(), "/a/b/c/");
    }
}
