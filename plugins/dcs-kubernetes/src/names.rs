//! Object names and annotation keys, exactly as Patroni's kubernetes
//! module spells them: Patroni's key path `/<scope>[/<group>]/<key>`
//! without the leading slash and with `-` for `/` (the `namespace`
//! setting does not take part: Kubernetes has its own namespaces).

/// The label Patroni's Citus integration puts on every object of a group.
pub(crate) const CITUS_GROUP_LABEL: &str = "citus-group";

/// Annotations of the leader object.
pub(crate) const LEADER: &str = "leader";
pub(crate) const ACQUIRE_TIME: &str = "acquireTime";
pub(crate) const RENEW_TIME: &str = "renewTime";
pub(crate) const TRANSITIONS: &str = "transitions";
pub(crate) const TTL: &str = "ttl";
pub(crate) const OPTIME: &str = "optime";
pub(crate) const SLOTS: &str = "slots";
pub(crate) const RETAIN_SLOTS: &str = "retain_slots";
pub(crate) const FAILSAFE: &str = "failsafe";
/// Annotations of the config object.
pub(crate) const CONFIG: &str = "config";
pub(crate) const INITIALIZE: &str = "initialize";
pub(crate) const HISTORY: &str = "history";
/// The member annotation on each Pod.
pub(crate) const STATUS: &str = "status";

/// The names of one cluster's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Names {
    base: String,
    use_endpoints: bool,
}

impl Names {
    pub(crate) fn new(scope: &str, group: Option<i32>, use_endpoints: bool) -> Self {
        let base = match group {
            Some(g) => format!("{scope}-{g}"),
            None => scope.to_string(),
        };
        Self { base, use_endpoints }
    }

    /// The leader object: `<base>-leader`, or with Endpoints `<base>` (the
    /// Endpoints of the cluster's Service, pointing at the leader).
    pub(crate) fn leader(&self) -> String {
        if self.use_endpoints {
            self.base.clone()
        } else {
            format!("{}-leader", self.base)
        }
    }

    pub(crate) fn config(&self) -> String {
        format!("{}-config", self.base)
    }

    pub(crate) fn failover(&self) -> String {
        format!("{}-failover", self.base)
    }

    pub(crate) fn sync(&self) -> String {
        format!("{}-sync", self.base)
    }

    /// Palisade's Lease (`leader_lease: true`): `<base>-leader`.
    pub(crate) fn lease(&self) -> String {
        format!("{}-leader", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        let n = Names::new("demo", None, false);
        assert_eq!(
            [n.leader(), n.config(), n.failover(), n.sync(), n.lease()],
            ["demo-leader", "demo-config", "demo-failover", "demo-sync", "demo-leader"]
        );
        let n = Names::new("demo", None, true);
        assert_eq!([n.leader(), n.config(), n.sync()], ["demo", "demo-config", "demo-sync"]);
        let n = Names::new("demo", Some(1), false);
        assert_eq!([n.leader(), n.config(), n.failover()], ["demo-1-leader", "demo-1-config", "demo-1-failover"]);
        let n = Names::new("demo", Some(0), true);
        assert_eq!([n.leader(), n.config(), n.sync()], ["demo-0", "demo-0-config", "demo-0-sync"]);
    }
}
