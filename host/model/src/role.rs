//! The role and state a member publishes, with Patroni's spellings.

use std::fmt;

/// `role` in the member key and in `GET /patroni`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Primary,
    Replica,
    StandbyLeader,
    Demoted,
    Uninitialized,
    Promoted,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Replica => "replica",
            Self::StandbyLeader => "standby_leader",
            Self::Demoted => "demoted",
            Self::Uninitialized => "uninitialized",
            Self::Promoted => "promoted",
        }
    }

    /// Read a role written by any Patroni version (`master` is the old `primary`).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "primary" | "master" => Self::Primary,
            "replica" => Self::Replica,
            "standby_leader" => Self::StandbyLeader,
            "demoted" => Self::Demoted,
            "uninitialized" => Self::Uninitialized,
            "promoted" => Self::Promoted,
            _ => return None,
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `state` in the member key and in `GET /patroni`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    InitializingNewCluster,
    InitdbFailed,
    RunningCustomBootstrap,
    CustomBootstrapFailed,
    CreatingReplica,
    Running,
    Starting,
    StartingAfterCustomBootstrap,
    StartFailed,
    Restarting,
    RestartFailed,
    Stopping,
    Stopped,
    StopFailed,
    Crashed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InitializingNewCluster => "initializing new cluster",
            Self::InitdbFailed => "initdb failed",
            Self::RunningCustomBootstrap => "running custom bootstrap script",
            Self::CustomBootstrapFailed => "custom bootstrap failed",
            Self::CreatingReplica => "creating replica",
            Self::Running => "running",
            Self::Starting => "starting",
            Self::StartingAfterCustomBootstrap => "starting after custom bootstrap",
            Self::StartFailed => "start failed",
            Self::Restarting => "restarting",
            Self::RestartFailed => "restart failed",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::StopFailed => "stop failed",
            Self::Crashed => "crashed",
        }
    }

    /// Patroni's numeric index of the state (the `patroni_postgres_state` metric).
    pub fn index(self) -> u8 {
        match self {
            Self::InitializingNewCluster => 0,
            Self::InitdbFailed => 1,
            Self::RunningCustomBootstrap => 2,
            Self::CustomBootstrapFailed => 3,
            Self::CreatingReplica => 4,
            Self::Running => 5,
            Self::Starting => 6,
            Self::StartingAfterCustomBootstrap => 7,
            Self::StartFailed => 8,
            Self::Restarting => 9,
            Self::RestartFailed => 10,
            Self::Stopping => 11,
            Self::Stopped => 12,
            Self::StopFailed => 13,
            Self::Crashed => 14,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_accept_legacy() {
        for r in [Role::Primary, Role::Replica, Role::StandbyLeader, Role::Demoted, Role::Uninitialized, Role::Promoted]
        {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("master"), Some(Role::Primary));
        assert_eq!(Role::parse("boss"), None);
    }
}
