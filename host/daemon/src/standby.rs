//! Standby clusters: whom the standby leader replicates from, built from
//! the `standby_cluster` settings in force (Patroni's `get_remote_member`).

use palisade_config::StandbyCluster;
use palisade_plugin_host::plugins::ArchiveOffers;
use palisade_postgres::conf::{ArchiveCommands, FollowTarget, RemoteSource};

/// The `restore_command` and `archive_cleanup_command` a standby cluster's
/// members recover with. This is the one place that decides them: what
/// `standby_cluster` sets wins, field by field; what it leaves unset comes
/// from the first replica method that offers one (`pgbackrest`, `walg`),
/// among the section's `create_replica_methods`, else `postgresql`'s
/// (`postgresql_methods`).
pub fn standby_archive_commands(
    standby: &StandbyCluster,
    postgresql_methods: &[String],
    offers: &ArchiveOffers,
) -> ArchiveCommands {
    let methods = match &standby.create_replica_methods {
        Some(m) if !m.is_empty() => m.as_slice(),
        _ => postgresql_methods,
    };
    let configured = palisade_plugin_api::ArchiveCommands {
        restore_command: standby.restore_command.clone(),
        archive_cleanup_command: standby.archive_cleanup_command.clone(),
    };
    let chosen = offers.standby_commands(methods, &configured);
    ArchiveCommands { restore_command: chosen.restore_command, archive_cleanup_command: chosen.archive_cleanup_command }
}

/// The remote primary as a recovery target: its address (none when the
/// standby cluster is fed only by `restore_command`), the slot, the apply
/// delay and the archive commands.
pub fn remote_target(standby: &StandbyCluster, archive: ArchiveCommands) -> FollowTarget {
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
        archive,
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
        let none = ArchiveOffers::default();
        let t = remote_target(&s, standby_archive_commands(&s, &[], &none));
        assert_eq!((t.host.as_str(), t.port, t.name.as_deref()), ("10.0.0.1", 5433, None));
        assert_eq!(t.remote.as_ref().and_then(|r| r.primary_slot_name.as_deref()), Some("standby"));
        assert_eq!(t.archive.restore_command.as_deref(), Some("r %f %p"));
        assert_eq!(describe_remote(&s), "postgres://10.0.0.1:5433");
        let archive_only = StandbyCluster { restore_command: Some("r".into()), ..Default::default() };
        assert_eq!(remote_target(&archive_only, ArchiveCommands::default()).host, "");
        let port_only = StandbyCluster { port: Some(6000), ..Default::default() };
        let t = remote_target(&port_only, ArchiveCommands::default());
        assert_eq!((t.host.as_str(), t.port), ("localhost", 6000));
    }

    /// What `standby_cluster` sets wins; the rest comes from the plugins
    /// of the section's methods, else of `postgresql.create_replica_methods`.
    #[test]
    fn archive_commands_from_the_section_or_the_plugins() {
        let offer = |r: &str| palisade_plugin_api::ArchiveCommands {
            restore_command: Some(r.into()),
            archive_cleanup_command: None,
        };
        let offers = ArchiveOffers(vec![
            ("pgbackrest".into(), offer("pgbackrest archive-get %f \"%p\"")),
            ("walg".into(), offer("wal-g wal-fetch \"%f\" \"%p\"")),
        ]);
        let methods = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let section = |m: Option<&[&str]>, restore: Option<&str>| StandbyCluster {
            host: Some("h".into()),
            create_replica_methods: m.map(methods),
            restore_command: restore.map(String::from),
            ..Default::default()
        };
        type Case<'a> = (StandbyCluster, &'a [&'a str], Option<&'a str>);
        let cases: [Case<'_>; 5] = [
            (section(None, None), &["basebackup"], None),
            (section(None, None), &["walg", "basebackup"], Some("wal-g wal-fetch \"%f\" \"%p\"")),
            (section(Some(&["pgbackrest"]), None), &["walg"], Some("pgbackrest archive-get %f \"%p\"")),
            (section(Some(&["basebackup"]), None), &["walg"], None),
            (section(Some(&["pgbackrest"]), Some("cp /a/%f %p")), &["walg"], Some("cp /a/%f %p")),
        ];
        for (s, pg_methods, restore) in cases {
            let got = standby_archive_commands(&s, &methods(pg_methods), &offers);
            assert_eq!(got.restore_command.as_deref(), restore, "{s:?} {pg_methods:?}");
            assert_eq!(got.archive_cleanup_command, None);
        }
    }
}
