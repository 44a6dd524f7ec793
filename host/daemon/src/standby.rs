//! Standby clusters: whom the standby leader replicates from, built from
//! the `standby_cluster` settings in force (Patroni's `get_remote_member`).

use palisade_config::StandbyCluster;
use palisade_postgres::conf::{ArchiveCommands, FollowTarget, RemoteSource};

/// The `restore_command` and `archive_cleanup_command` a standby cluster's
/// members recover with: those of `standby_cluster`. This is the one place
/// that decides them (a replica plugin that knows its archive may later
/// supply them when the section does not).
pub fn standby_archive_commands(standby: &StandbyCluster) -> ArchiveCommands {
    ArchiveCommands {
        restore_command: standby.restore_command.clone(),
        archive_cleanup_command: standby.archive_cleanup_command.clone(),
    }
}

/// The remote primary as a recovery target: its address (none when the
/// standby cluster is fed only by `restore_command`), the slot, the apply
/// delay and the archive commands.
pub fn remote_target(standby: &StandbyCluster) -> FollowTarget {
    let host = match (&standby.host, standby.port) {
        (Some(h), _) => h.clone(),
        // A port alone: the remote primary listens on this machine.
        (None, Some(_)) => "localhost".to_string(),
        (None, None) => String::new(),
    };
    FollowTarget::remote(
        &host,
        standby.port.unwrap_or(5432),
        RemoteSource {
            primary_slot_name: standby.primary_slot_name.clone(),
            recovery_min_apply_delay: standby.recovery_min_apply_delay.clone(),
        },
        standby_archive_commands(standby),
    )
}

/// How the remote primary is named in log lines (Patroni logs its
/// `conn_url`).
pub fn describe_remote(standby: &StandbyCluster) -> String {
    match (&standby.host, standby.port) {
        (None, None) => "the archive (restore_command)".to_string(),
        (h, p) => format!("postgres://{}:{}", h.as_deref().unwrap_or("localhost"), p.unwrap_or(5432)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_targets() {
        let s = StandbyCluster {
            host: Some("10.0.0.1".into()),
            port: Some(5433),
            primary_slot_name: Some("standby".into()),
            restore_command: Some("r %f %p".into()),
            recovery_min_apply_delay: Some("1min".into()),
            ..Default::default()
        };
        let t = remote_target(&s);
        assert_eq!((t.host.as_str(), t.port, t.name.as_deref()), ("10.0.0.1", 5433, None));
        assert_eq!(t.remote.as_ref().and_then(|r| r.primary_slot_name.as_deref()), Some("standby"));
        assert_eq!(t.archive.restore_command.as_deref(), Some("r %f %p"));
        assert_eq!(describe_remote(&s), "postgres://10.0.0.1:5433");
        let archive_only = StandbyCluster { restore_command: Some("r".into()), ..Default::default() };
        assert_eq!(remote_target(&archive_only).host, "");
        let port_only = StandbyCluster { port: Some(6000), ..Default::default() };
        assert_eq!((remote_target(&port_only).host.as_str(), remote_target(&port_only).port), ("localhost", 6000));
    }
}
