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

/// The same minimal configuration as `PATRONI_*` variables.
// Not every test file that includes this module uses it.
#[allow(dead_code)]
pub const MINIMAL_ENV: [(&str, &str); 8] = [
    ("PATRONI_SCOPE", "s"),
    ("PATRONI_NAME", "n1"),
    ("PATRONI_RESTAPI_LISTEN", "127.0.0.1:8008"),
    ("PATRONI_ETCD3_HOSTS", "127.0.0.1:2379"),
    ("PATRONI_POSTGRESQL_LISTEN", "127.0.0.1:5432"),
    ("PATRONI_POSTGRESQL_DATA_DIR", "/tmp/pgdata"),
    ("PATRONI_SUPERUSER_USERNAME", "postgres"),
    ("PATRONI_REPLICATION_USERNAME", "replicator"),
];
