//! Custom bootstrap and the post_bootstrap script, with real scripts and a
//! real server.

// Helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{runtime, Node, SUPERUSER_PASSWORD};
use palisade_postgres::bootstrap::custom_bootstrap;
use palisade_postgres::StartOutcome;
use palisade_test_support::{pg_bin_dir, run_unprivileged};
use serde_json::json;

#[test]
fn custom_bootstrap_and_post_bootstrap_script() {
    if !run_unprivileged("custom_bootstrap_and_post_bootstrap_script") {
        return;
    }
    runtime().block_on(async {
        let node = Node::new("n1");
        let dir = node.staging_path().to_path_buf();
        let bin = pg_bin_dir();
        // A custom method that records its arguments and runs initdb itself.
        let custom = dir.join("custom.sh");
        std::fs::write(
            &custom,
            format!(
                "#!/bin/sh\necho \"$@\" > {dir}/custom.args\nfor a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\n\
                 {bin}/initdb -D \"$d\" -U postgres > /dev/null\n",
                dir = dir.display(),
                bin = bin.display()
            ),
        )
        .unwrap();
        // A post_bootstrap script that records what it gets and uses the connection string.
        let post = dir.join("post.sh");
        std::fs::write(
            &post,
            format!(
                "#!/bin/sh\nprintf '%s\\n%s\\n%s\\n' \"$1\" \"$PGPASSFILE\" \"$PGOPTIONS\" > {dir}/post.args\n\
                 exec {bin}/psql \"$1\" -qc 'CREATE TABLE created_by_post_bootstrap ()'\n",
                dir = dir.display(),
                bin = bin.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        for f in [&custom, &post] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        let section = json!({"command": format!("{} --flag", custom.display()), "extra": "x", "keep_existing_recovery_conf": false});
        let method = custom_bootstrap("clone", &section, "batman", &node.data_dir).unwrap();
        node.pg.custom_bootstrap(&method).await.unwrap();
        let args = std::fs::read_to_string(dir.join("custom.args")).unwrap();
        assert_eq!(args.trim(), format!("--flag --scope=batman --datadir={} --extra=x", node.data_dir.display()));

        assert_eq!(node.pg.start(Duration::from_secs(60)).await.unwrap(), StartOutcome::Running, "{}", node.log_tail());
        let hba = std::fs::read_to_string(node.data_dir.join("pg_hba.conf")).unwrap();
        assert!(hba.contains("local\treplication\treplicator\t\ttrust\nlocal\tall\tpostgres\t\ttrust\n"), "{hba}");
        assert!(hba.contains("host\tall\tpostgres\t127.0.0.1/32\ttrust\n"), "{hba}");

        let change = node.pg.post_bootstrap(Some(&format!("{} ", post.display()))).await.unwrap();
        assert!(change.reload_needed, "{change:?}");
        node.pg.reload().await.unwrap();
        let recorded = std::fs::read_to_string(dir.join("post.args")).unwrap();
        let lines: Vec<&str> = recorded.lines().collect();
        assert_eq!(lines[0], format!("dbname=postgres user=postgres host={} port={}", node.socket_dir.display(), node.port));
        assert_eq!(lines[1], dir.join("pgpass").display().to_string());
        assert_eq!(lines[2], "-c synchronous_commit=local -c statement_timeout=0");
        let pgpass = std::fs::read_to_string(dir.join("pgpass")).unwrap();
        assert_eq!(
            pgpass,
            format!("{}:{port}:*:postgres:su secret\nlocalhost:{port}:*:postgres:su secret\n", node.socket_dir.display(), port = node.port)
        );
        assert_eq!(
            node.query("SELECT count(*)::text FROM pg_class WHERE relname = 'created_by_post_bootstrap'").await,
            [Some("1".into())]
        );

        // The trust rules are gone and the superuser's password works.
        let hba = std::fs::read_to_string(node.data_dir.join("pg_hba.conf")).unwrap();
        assert!(!hba.contains("\ttrust") && hba.ends_with("host all all 127.0.0.1/32 scram-sha-256\n"), "{hba}");
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1").port(node.port).user("postgres").password(SUPERUSER_PASSWORD).dbname("postgres");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (client, conn) = loop {
            match cfg.connect(tokio_postgres::NoTls).await {
                Ok(pair) => break pair,
                Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        tokio::spawn(conn);
        client.simple_query("SELECT 1").await.unwrap();
        let mut wrong = cfg.clone();
        wrong.password("wrong");
        assert!(wrong.connect(tokio_postgres::NoTls).await.is_err());
        assert_eq!(
            node.query("SELECT rolreplication::text FROM pg_roles WHERE rolname = 'replicator'").await,
            [Some("true".into())]
        );
    });
}
