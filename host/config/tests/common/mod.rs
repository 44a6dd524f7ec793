//! What the configuration tests share: the smallest valid local file.

/// A minimal valid configuration; tests append sections to it.
pub const MINIMAL: &str = "\
scope: s
name: n1
restapi:
  listen: 127.0.0.1:8008
etcd3:
  hosts: 127.0.0.1:2379
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /tmp/pgdata
  authentication:
    superuser:
      username: postgres
    replication:
      username: replicator
";
