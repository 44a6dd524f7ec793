//! `load` end to end: files, directories, the environment, validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_config::{
    load, load_for_ctl, paths_to_check, validate_file, ConfigError, InitdbOption, Loaded, PathKind, SynchronousMode,
    VerifyClient,
};
use serde_json::json;

mod common;
use common::MINIMAL;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Loads YAML text through PATRONI_CONFIGURATION (no file needed).
fn load_text(text: &str) -> Result<Loaded, Vec<ConfigError>> {
    load(None, &env(&[("PATRONI_CONFIGURATION", text)]))
}

fn errors_of(text: &str) -> Vec<String> {
    match load_text(text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("palisade-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/full.yml")
}

#[test]
fn full_patroni_example_parses_every_section() {
    let loaded = load(Some(&fixture()), &BTreeMap::new()).expect("the full example is valid");
    let c = &loaded.config;
    assert_eq!((c.scope.as_str(), c.name.as_str(), c.namespace.as_str()), ("batman", "postgresql0", "/service/"));
    assert_eq!(c.plugin_dir.as_deref(), Some(Path::new("/usr/lib/palisade/plugins")));
    // log
    assert_eq!(c.log.level, "INFO");
    assert_eq!(c.log.format_type, "plain");
    assert_eq!(c.log.dateformat.as_deref(), Some("%Y-%m-%d %H:%M:%S"));
    assert_eq!(c.log.dir.as_deref(), Some(Path::new("/var/log/patroni")));
    assert_eq!((c.log.file_num, c.log.file_size), (4, 25_000_000));
    assert_eq!(c.log.loggers.get("urllib3").map(String::as_str), Some("DEBUG"));
    assert_eq!(c.raw["log"]["mode"], json!(0o640), "0640 is octal, as PyYAML reads it");
    // restapi
    let api = &c.restapi;
    assert_eq!(api.listen.hosts, ["0.0.0.0"]);
    assert_eq!(api.connect_address.host(), "10.0.0.1");
    assert_eq!(api.api_url(), "https://10.0.0.1:8008/patroni");
    assert_eq!(api.authentication.as_ref().map(|a| a.username.as_str()), Some("admin"));
    assert_eq!(api.verify_client, VerifyClient::Optional);
    assert_eq!(api.allowlist, ["10.0.0.0/8", "127.0.0.1"]);
    assert!(api.allowlist_include_members, "yes is a boolean");
    assert_eq!(api.http_extra_headers.get("X-XSS-Protection").map(String::as_str), Some("1; mode=block"));
    assert_eq!(api.https_extra_headers.len(), 1);
    assert_eq!(api.request_queue_size, 5);
    // ctl
    assert_eq!(c.ctl.authentication.as_ref().map(|a| a.password.as_str()), Some("secret"));
    assert_eq!(c.ctl.keyfile_password.as_deref(), Some("ctlpass"));
    // dcs
    let dcs = c.dcs.as_ref().expect("dcs");
    assert_eq!(dcs.kind, "etcd3");
    assert_eq!(dcs.section["username"], json!("etcd"));
    // citus
    let citus = c.citus.as_ref().expect("citus");
    assert_eq!((citus.group, citus.database.as_str()), (0, "citus"));
    // bootstrap
    let b = c.bootstrap.as_ref().expect("bootstrap");
    assert_eq!(b.method, "initdb");
    assert_eq!(
        b.initdb,
        [
            InitdbOption::KeyValue("encoding".into(), "UTF8".into()),
            InitdbOption::Flag("data-checksums".into()),
            InitdbOption::KeyValue("locale".into(), "en_US.UTF-8".into()),
        ]
    );
    assert_eq!(b.post_bootstrap.as_deref(), Some("/usr/local/bin/setup_cluster.sh"));
    assert_eq!(b.methods.keys().collect::<Vec<_>>(), ["custom_restore"]);
    assert_eq!(b.dcs["standby_cluster"]["host"], json!("10.1.0.1"));
    assert_eq!(b.dcs["synchronous_mode"], json!(false), "an explicit value survives the Citus default");
    // postgresql
    let pg = &c.postgresql;
    assert_eq!(pg.connect_address.host(), "10.0.0.1");
    assert_eq!(pg.proxy_address.as_ref().map(|p| p.port), Some(6432));
    assert_eq!(pg.config_dir, Path::new("/etc/postgresql/16/main"));
    assert_eq!(pg.bin_dir.as_deref(), Some(Path::new("/usr/lib/postgresql/16/bin")));
    assert_eq!(pg.pgpass, Path::new("/tmp/pgpass0"));
    assert_eq!(pg.authentication.superuser.ssl.len(), 9);
    assert_eq!(pg.authentication.replication.password.as_deref(), Some("rep-pass"));
    assert_eq!(pg.authentication.rewind.as_ref().map(|r| r.username.as_str()), Some("rewind_user"));
    assert_eq!(pg.callbacks.len(), 5);
    assert_eq!(pg.create_replica_methods, ["pgbackrest", "basebackup"]);
    assert!(pg.replica_method_sections.contains_key("pgbackrest"));
    assert!(pg.replica_method_sections.contains_key("basebackup"));
    assert_eq!(pg.parameters["shared_buffers"], json!("256MB"));
    assert_eq!(pg.pg_hba.as_ref().map(Vec::len), Some(2));
    assert_eq!(pg.pg_ident.as_ref().map(Vec::len), Some(1));
    assert_eq!(pg.recovery_conf["recovery_min_apply_delay"], json!(0));
    assert_eq!(pg.custom_conf.as_deref(), Some(Path::new("/etc/postgresql/16/main/custom.conf")));
    assert_eq!(pg.pg_ctl_timeout, Duration::from_secs(60));
    assert_eq!(pg.use_pg_rewind, Some(true));
    assert!(pg.use_unix_socket && !pg.use_unix_socket_repl);
    assert_eq!(pg.pre_promote.as_deref(), Some("/usr/local/bin/fence.sh"));
    assert_eq!(pg.before_stop.as_deref(), Some("/usr/local/bin/before_stop.sh"));
    // watchdog and tags
    assert_eq!(c.watchdog.mode, "automatic");
    assert_eq!(c.watchdog.safety_margin, Duration::from_secs(5));
    assert_eq!(c.watchdog.driver, "default");
    assert_eq!(c.tags["replicatefrom"], json!("10.0.0.2"));
    assert_eq!(c.tags["key3"], json!(1.4));
    // every section kept as read
    for section in ["log", "restapi", "ctl", "etcd3", "citus", "bootstrap", "postgresql", "watchdog", "tags"] {
        assert!(c.raw.contains_key(section), "raw keeps {section}");
    }
    // the full example has nothing to warn about
    assert!(loaded.warnings.is_empty(), "unexpected warnings: {:?}", loaded.warnings);
}

#[test]
fn every_dcs_section_is_accepted() {
    let base = MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "");
    let cases: &[(&str, &str)] = &[
        ("etcd", "etcd:\n  host: 127.0.0.1:2379\n  use_proxies: true\n  srv_suffix: x\n"),
        ("etcd3", "etcd3:\n  hosts: [a:2379, 'b:2379']\n  url: https://a:2379\n"),
        ("etcd3", "etcd3:\n  srv: example.org\n"),
        (
            "consul",
            "consul:\n  host: 127.0.0.1:8500\n  port: 8500\n  scheme: http\n  token: t\n  verify: yes\n  dc: dc1\n  \
             consistency: stale\n  checks: []\n  register_service: true\n  service_tags: [a]\n  \
             service_check_interval: 5s\n  service_check_tls_server_name: x\n",
        ),
        (
            "zookeeper",
            "zookeeper:\n  hosts: ['z1:2181', 'z2:2181']\n  use_ssl: false\n  verify: true\n  \
             set_acls: {CN=principal1: [CREATE, READ]}\n  auth_data: {digest: 'u:p'}\n",
        ),
        ("zookeeper", "zookeeper:\n  hosts: 'z1:2181,z2:2181/patroni'\n"),
        ("zookeeper", "zookeeper:\n  hosts: [z1, 'z2:2181/a/b']\n"),
        ("exhibitor", "exhibitor:\n  hosts: [e1, e2]\n  port: 8181\n  poll_interval: 300\n"),
        (
            "exhibitor",
            "exhibitor:\n  hosts: [e1]\n  port: 8181\n  auth_data: {digest: 'u:p'}\n  set_acls: {'auth:': [ALL]}\n",
        ),
        ("exhibitor", "zookeeper:\n  exhibitor:\n    hosts: [e1]\n    port: 8181\n"),
        (
            "kubernetes",
            "kubernetes:\n  labels: {application: patroni}\n  namespace: db\n  use_endpoints: true\n  \
             pod_ip: 10.2.0.5\n  ports: [{name: postgresql, port: 5432}]\n  bypass_api_service: true\n  \
             retriable_http_codes: [500, 503]\n  scope_label: cluster-name\n  role_label: role\n  \
             leader_label_value: primary\n  follower_label_value: replica\n  standby_leader_label_value: primary\n  \
             tmp_role_label: tmp\n  bootstrap_labels: {a: b}\n",
        ),
        (
            "raft",
            "raft:\n  data_dir: /var/lib/raft\n  self_addr: 10.0.0.1:2222\n  partner_addrs: ['10.0.0.2:2222']\n  \
             password: p\n  min_timeout: 1\n  connection_retry_time: 0\n",
        ),
    ];
    for (kind, section) in cases {
        let loaded = load_text(&format!("{base}{section}")).unwrap_or_else(|e| panic!("{section}: {e:?}"));
        assert_eq!(loaded.config.dcs.as_ref().map(|d| d.kind.as_str()), Some(*kind), "{section}");
    }
}

#[test]
fn environment_overrides_the_file() {
    let dir = TempDir::new("env-over");
    let file = dir.file("patroni.yml", MINIMAL);
    let vars = env(&[
        ("PATRONI_NAME", "from-env"),
        ("PATRONI_RESTAPI_LISTEN", "127.0.0.1:9009"),
        ("PATRONI_RESTAPI_USERNAME", "api"),
        ("PATRONI_RESTAPI_PASSWORD", "pw"),
        ("PATRONI_ETCD3_HOSTS", "'h1:2379','h2:2379'"),
        ("PATRONI_SUPERUSER_PASSWORD", "supw"),
        ("PATRONI_POSTGRESQL_DATA_DIR", "/srv/pg"),
        ("PATRONI_LOG_TYPE", "json"),
        ("PATRONI_CONFIGURATION", "ignored: when a file is given"),
    ]);
    let c = load(Some(&file), &vars).expect("valid").config;
    assert_eq!(c.name, "from-env");
    assert_eq!(c.restapi.listen.port, 9009);
    assert_eq!(c.restapi.authentication.as_ref().map(|a| a.password.as_str()), Some("pw"));
    assert_eq!(c.dcs.as_ref().map(|d| d.section["hosts"].clone()), Some(json!(["h1:2379", "h2:2379"])));
    assert_eq!(c.postgresql.authentication.superuser.username, "postgres", "kept from the file");
    assert_eq!(c.postgresql.authentication.superuser.password.as_deref(), Some("supw"));
    assert_eq!(c.postgresql.data_dir, Path::new("/srv/pg"));
    assert_eq!(c.log.format_type, "json");
    assert!(!c.raw.contains_key("ignored"));
}

#[test]
fn configuration_purely_from_the_environment() {
    let vars = env(&[
        ("PATRONI_SCOPE", "demo"),
        ("PATRONI_NAME", "pg1"),
        ("PATRONI_NAMESPACE", "clusters"),
        ("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008"),
        ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.5:8008"),
        ("PATRONI_ETCD3_HOSTS", "h1:2379,h2:2379"),
        ("PATRONI_POSTGRESQL_LISTEN", "0.0.0.0:5432"),
        ("PATRONI_POSTGRESQL_DATA_DIR", "/data"),
        ("PATRONI_SUPERUSER_USERNAME", "postgres"),
        ("PATRONI_REPLICATION_USERNAME", "standby"),
        ("PATRONI_REPLICATION_PASSWORD", "pw"),
        ("HOME", "/home/pg"),
    ]);
    let c = load(None, &vars).expect("valid").config;
    assert_eq!((c.scope.as_str(), c.name.as_str(), c.namespace.as_str()), ("demo", "pg1", "/clusters/"));
    assert_eq!(c.dcs.as_ref().map(|d| d.kind.as_str()), Some("etcd3"));
    assert_eq!(c.postgresql.connect_address.host(), "localhost", "a wildcard listen connects locally, as Patroni");
    assert_eq!(c.postgresql.pgpass, Path::new("/home/pg/pgpass"));
    assert!(c.bootstrap.is_none());
    assert_eq!(c.restapi.api_url(), "http://10.0.0.5:8008/patroni");
}

#[test]
fn directory_files_merge_in_sorted_order() {
    let dir = TempDir::new("dir");
    dir.file("10-base.yml", MINIMAL);
    dir.file("20-override.yaml", "name: n2\npostgresql:\n  data_dir: /other\ntags:\n  nofailover: true\n");
    dir.file("30-remove.yml", "tags: ~\n");
    dir.file("99-notes.txt", "this: is not yaml: at all: [");
    let c = load(Some(&dir.0), &BTreeMap::new()).expect("valid").config;
    assert_eq!(c.name, "n2");
    assert_eq!(c.postgresql.data_dir, Path::new("/other"));
    assert_eq!(c.postgresql.listen.port, 5432, "kept from the first file");
    assert!(c.tags.is_empty(), "null in a later file removes the key");
}

#[test]
fn unreadable_files_are_errors() {
    let dir = TempDir::new("bad");
    let not_map = dir.file("list.yml", "- a\n- b\n");
    let broken = dir.file("broken.yml", "a: [1, 2\n");
    let missing = dir.0.join("missing.yml");
    for path in [not_map, broken, missing] {
        let errors = load(Some(&path), &BTreeMap::new()).expect_err("not a configuration");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains(&path.display().to_string()), "{}", errors[0]);
    }
    assert!(validate_file(&fixture(), &BTreeMap::new()).is_ok());
}

#[test]
fn yaml_11_booleans_read_as_pyyaml() {
    let text = format!(
        "{MINIMAL}ctl:\n  insecure: YES\nrestapi:\n  listen: 127.0.0.1:8008\n  allowlist_include_members: On\n\
         tags:\n  nosync: no\n  replicatefrom: 'yes'\nwatchdog:\n  mode: off\n"
    );
    let c = load_text(&text).expect("valid").config;
    assert!(c.ctl.insecure);
    assert!(c.restapi.allowlist_include_members);
    assert_eq!(c.tags["nosync"], json!(false));
    assert_eq!(c.tags["replicatefrom"], json!("yes"), "quoted stays a string");
    assert_eq!(c.watchdog.mode, "off", "unquoted off is false, which means off");
    // Quoted, it is a string; Patroni reads the tag with bool(): a warning.
    let quoted = load_text(&format!("{MINIMAL}tags:\n  nofailover: 'yes'\n")).expect("accepted");
    assert_eq!(quoted.config.tags["nofailover"], json!("yes"));
    assert!(quoted.warnings.iter().any(|w| w.path == "tags.nofailover"));
}

#[test]
fn legacy_spellings_are_accepted() {
    let text = "\
scope: s
restapi:
  listen: 127.0.0.1:8008
  auth: 'admin:secret'
zookeeper:
  exhibitor:
    hosts: [e1]
    port: 8181
bootstrap:
  dcs:
    master_start_timeout: 10
  post_init: /bin/init.sh
postgresql:
  name: legacy
  listen: 127.0.0.1:5432
  data_dir: /d
  superuser:
    username: postgres
  replication:
    username: rep
  pg_rewind:
    username: rewinder
";
    let loaded = load_text(text).expect("valid");
    let c = &loaded.config;
    assert_eq!(c.name, "legacy");
    assert_eq!(c.dcs.as_ref().map(|d| d.kind.as_str()), Some("exhibitor"));
    assert_eq!(c.restapi.authentication.as_ref().map(|a| a.username.as_str()), Some("admin"));
    assert_eq!(c.postgresql.authentication.superuser.username, "postgres");
    assert_eq!(c.postgresql.authentication.replication.username, "rep");
    assert_eq!(c.postgresql.use_pg_rewind, Some(true), "pg_rewind present means use it");
    assert_eq!(c.bootstrap.as_ref().and_then(|b| b.post_bootstrap.as_deref()), Some("/bin/init.sh"));
    let dynamic = palisade_config::dynamic_from_bootstrap(c);
    let (global, _) = palisade_config::GlobalConfig::from_dynamic(&dynamic);
    assert_eq!(global.primary_start_timeout, Duration::from_secs(10));
    let warned: Vec<&str> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
    for path in [
        "zookeeper.exhibitor",
        "postgresql.name",
        "restapi.auth",
        "postgresql.superuser",
        "bootstrap.dcs.master_start_timeout",
    ] {
        assert!(warned.contains(&path), "a deprecation warning for {path} in {warned:?}");
    }
}

#[test]
fn each_validation_error_names_its_key() {
    let without = |line: &str| MINIMAL.replace(line, "");
    let cases: Vec<(String, &str)> = vec![
        (without("name: n1\n"), "name: is required but not set"),
        (without("scope: s\n"), "scope: is required but not set"),
        (MINIMAL.replace("  listen: 127.0.0.1:8008\n", "  connect_address: 10.0.0.1:8008\n"), "restapi.listen: is required but not set"),
        (MINIMAL.replace("  listen: 127.0.0.1:5432\n", ""), "postgresql.listen: is required but not set"),
        (without("  data_dir: /tmp/pgdata\n"), "postgresql.data_dir: is required but not set"),
        (
            without("    superuser:\n      username: postgres\n"),
            "postgresql.authentication.superuser: is required but not set",
        ),
        (
            MINIMAL.replace("      username: replicator\n", "      password: x\n"),
            "postgresql.authentication.replication.username: is required but not set",
        ),
        (
            without("etcd3:\n  hosts: 127.0.0.1:2379\n"),
            "no DCS configured: add one of the sections consul, etcd, etcd3, exhibitor, kubernetes, raft, zookeeper (or PATRONI_<DCS>_* variables, e.g. PATRONI_ETCD3_HOSTS)",
        ),
        (format!("{MINIMAL}consul:\n  host: a:8500\n"), "several DCS sections configured (consul, etcd3): keep exactly one"),
        (MINIMAL.replace("127.0.0.1:8008", "localhost"), "restapi.listen: expected host:port, found 'localhost': expected host:port, found no port"),
        (MINIMAL.replace("127.0.0.1:8008", "h:99999"), "restapi.listen: expected host:port, found 'h:99999': port 99999 is out of range 1-65535"),
        (format!("{MINIMAL}log:\n  file_num: abc\n"), "log.file_num: expected an integer, found a string 'abc'"),
        (format!("{MINIMAL}log:\n  level: verbose\n"), "log.level: expected one of DEBUG, INFO, WARN, WARNING, ERROR, FATAL, CRITICAL, found a string 'verbose'"),
        (format!("{MINIMAL}log:\n  type: json\n  format: [message, 5]\n"), "log.format.1: expected a field name or a mapping {field: new name}, found an integer 5"),
        (format!("{MINIMAL}log:\n  type: json\n  format: [{{levelname: 1}}]\n"), "log.format.0.levelname: expected the field's new name (a string), found an integer 1"),
        (MINIMAL.replace("  data_dir: /tmp/pgdata\n", "  data_dir: /tmp/pgdata\n  hooks:\n    on_stop:\n      - {command: x, timeout: 0}\n"), "postgresql.hooks.on_stop.0.timeout: 0 is out of range 1..86400"),
        (format!("{MINIMAL}bootstrap:\n  dcs:\n    ttl: 0\n"), "bootstrap.dcs.ttl: expected a positive number of seconds, found an integer 0; using the default 30"),
        (format!("{MINIMAL}bootstrap:\n  dcs:\n    loop_wait: soon\n"), "bootstrap.dcs.loop_wait: expected a positive number of seconds, found a string 'soon'; using the default 10"),
        (format!("{MINIMAL}bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n        max_connections: many\n"), "bootstrap.dcs.postgresql.parameters.max_connections: a string 'many' fails Patroni's check; PostgreSQL gets the default 100"),
        (format!("{MINIMAL}bootstrap:\n  dcs:\n    standby_cluster:\n      port: 5432x\n"), "bootstrap.dcs.standby_cluster.port: expected a port number, found a string '5432x'"),
        (format!("{MINIMAL}bootstrap:\n  initdb:\n    - pgdata: /x\n"), "bootstrap.initdb.0: the initdb option 'pgdata' is set by palisade and not allowed here"),
        (format!("{MINIMAL}bootstrap:\n  initdb: data-checksums\n"), "bootstrap.initdb: expected a list of options or a mapping, found a string 'data-checksums'"),
        (format!("{MINIMAL}citus:\n  group: '0x1'\n  database: c\n"), "citus.group: expected an integer, found a string '0x1'"),
        (format!("{MINIMAL}watchdog:\n  safety_margin: -2\n"), "watchdog.safety_margin: -2 is out of range (at least -1)"),
        (MINIMAL.replace("restapi:\n", "restapi:\n  connect_address: 0.0.0.0:8008\n"), "restapi.connect_address: '0.0.0.0' is a wildcard address that other members cannot connect to"),
        (MINIMAL.replace("restapi:\n", "restapi:\n  request_queue_size: 5000\n"), "restapi.request_queue_size: 5000 is out of range 0..4096"),
        (MINIMAL.replace("restapi:\n", "restapi:\n  authentication:\n    username: u\n"), "restapi.authentication.password: is required but not set"),
        (MINIMAL.replace("  data_dir: /tmp/pgdata\n", "  data_dir: /tmp/pgdata\n  pg_hba: host all all 0.0.0.0/0 md5\n"), "postgresql.pg_hba: expected a list of strings, found a string 'host all all 0.0.0.0/0 md5'"),
        (MINIMAL.replace("  data_dir: /tmp/pgdata\n", "  data_dir: /tmp/pgdata\n  parameters: [a]\n"), "postgresql.parameters: expected a mapping, found a list"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "etcd3:\n  protocol: http\n"), "etcd3: needs one of host, hosts, srv, srv_suffix, url, proxy"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "etcd3:\n  hosts: [a:1, b:x]\n"), "etcd3.hosts.1: expected host:port, found 'b:x': 'x' is not a port number"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "kubernetes:\n  namespace: x\n"), "kubernetes.labels: is required but not set"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "kubernetes:\n  labels: {}\n  pod_ip: ten\n"), "kubernetes.pod_ip: expected an IPv4 or IPv6 address, found 'ten'"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "raft:\n  self_addr: 127.0.0.1:1\n"), "raft.partner_addrs: is required but not set"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "consul:\n  host: c:8500\n  consistency: eventual\n"), "consul.consistency: expected one of default, consistent, stale, found a string 'eventual'"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "exhibitor:\n  hosts: [e]\n"), "exhibitor.port: is required but not set"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "zookeeper:\n  use_ssl: true\n"), "zookeeper.hosts: is required but not set"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "zookeeper:\n  hosts: 'z1/a,z2'\n"), "zookeeper.hosts.0: a chroot may only follow the last host, found 'z1/a'"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "zookeeper:\n  hosts: z1\n  key_password: [x]\n"), "zookeeper.key_password: expected a string, found a list"),
        (MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "exhibitor:\n  hosts: [e]\n  port: 1\n  auth_data: x\n"), "exhibitor.auth_data: expected a mapping, found a string 'x'"),
        (MINIMAL.replace("name: n1", "name: __patroni_strict_sync_replica_placeholder__"), "name: '__patroni_strict_sync_replica_placeholder__' is reserved"),
        (MINIMAL.replace("name: n1", "name: [a]"), "name: expected a string, found a list"),
        (format!("{MINIMAL}restapi: 5\n"), "restapi: expected a mapping, found an integer 5"),
    ];
    for (text, expected) in &cases {
        let errors = errors_of(text);
        assert_eq!(errors, [*expected], "for:\n{text}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "\
scope: s
restapi:
  listen: nowhere
etcd3:
  hosts: [a:1, b:bad]
log:
  level: LOUD
bootstrap:
  dcs:
    ttl: -3
postgresql:
  listen: 127.0.0.1:5432
  authentication:
    superuser:
      password: x
";
    let errors = load_text(text).expect_err("invalid");
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "name",
            "log.level",
            "restapi.listen",
            "etcd3.hosts.1",
            "bootstrap.dcs.ttl",
            "postgresql.data_dir",
            "postgresql.authentication.superuser.username",
            "postgresql.authentication.replication",
        ]
    );
}

#[test]
fn timings_below_patroni_minimums_are_accepted_with_warnings() {
    let text = format!("{MINIMAL}bootstrap:\n  dcs:\n    ttl: 5\n    loop_wait: 1\n    retry_timeout: 2\n");
    let loaded = load_text(&text).expect("accepted");
    let warned: Vec<&str> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(warned, ["bootstrap.dcs.ttl", "bootstrap.dcs.retry_timeout"]);
    let dynamic = palisade_config::dynamic_from_bootstrap(&loaded.config);
    let (global, _) = palisade_config::GlobalConfig::from_dynamic(&dynamic);
    assert_eq!(
        (global.ttl, global.loop_wait, global.retry_timeout),
        (Duration::from_secs(5), Duration::from_secs(1), Duration::from_secs(2))
    );
    let rule =
        load_text(&format!("{MINIMAL}bootstrap:\n  dcs:\n    ttl: 20\n    loop_wait: 10\n    retry_timeout: 10\n"))
            .expect("accepted");
    assert_eq!(rule.warnings.len(), 1);
    assert!(rule.warnings[0].message.contains("loop_wait + 2 * retry_timeout"), "{}", rule.warnings[0]);
}

#[test]
fn dynamic_from_bootstrap_keeps_bootstrap_dcs_as_written() {
    let text = format!(
        "{MINIMAL}bootstrap:\n  dcs:\n    ttl: 30\n    postgresql:\n      parameters:\n        max_connections: 150\n      use_pg_rewind: true\n    loop_wait: 10\n"
    );
    let c = load_text(&text).expect("valid").config;
    let dynamic = palisade_config::dynamic_from_bootstrap(&c);
    assert_eq!(
        palisade_config::to_dcs_json(&dynamic),
        r#"{"ttl":30,"postgresql":{"parameters":{"max_connections":150},"use_pg_rewind":true},"loop_wait":10}"#
    );
    let with_citus =
        load_text(&format!("{MINIMAL}citus:\n  group: 1\n  database: c\nbootstrap:\n  dcs: {{}}\n")).expect("valid");
    assert_eq!(palisade_config::dynamic_from_bootstrap(&with_citus.config)["synchronous_mode"], json!("quorum"));
    let (global, _) =
        palisade_config::GlobalConfig::from_dynamic(&palisade_config::dynamic_from_bootstrap(&with_citus.config));
    assert_eq!(global.synchronous_mode, SynchronousMode::Quorum);
}

#[test]
fn controlled_parameters_in_the_local_file_warn() {
    let text = MINIMAL
        .replace("  data_dir: /tmp/pgdata\n", "  data_dir: /tmp/pgdata\n  parameters:\n    max_connections: 500\n");
    let loaded = load_text(&text).expect("valid");
    let paths: Vec<&str> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, ["postgresql.parameters.max_connections"]);
}

#[test]
fn numbers_where_strings_are_expected_are_taken_with_a_warning() {
    let text = MINIMAL.replace("      username: replicator\n", "      username: replicator\n      password: 123456\n");
    let loaded = load_text(&text).expect("valid");
    assert_eq!(loaded.config.postgresql.authentication.replication.password.as_deref(), Some("123456"));
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "",
        "~",
        "[]",
        "just a string",
        "scope: {a: [1, {b: null}]}",
        "postgresql: [1, 2]\nrestapi: ~\nname: 1.5\nscope: true\n",
        "bootstrap: 7\nwatchdog: []\ntags: 'x'\ncitus: 1\nlog: [a]\nctl: yes\n",
        "bootstrap:\n  dcs: [1]\n  initdb: {a: [1]}\n  m: 3\n",
        "etcd3: 5\nconsul: ~\n",
        "postgresql:\n  authentication: 3\n  bin_name: [x]\n  callbacks: 7\n  listen: ':'\n",
        "a: &a [*a]\n",
        "\u{0}\u{1}",
        "? |\n  x\n: y\n",
        "postgresql:\n  parameters:\n    Max_Connections: {a: 1}\n",
    ];
    for text in inputs {
        let _ = load_text(text);
        let _ = load_for_ctl(None, &env(&[("PATRONI_CONFIGURATION", text)]));
    }
    assert!(load(None, &BTreeMap::new()).is_err(), "no configuration at all is an error");
}

#[test]
fn ctl_needs_only_the_scope() {
    let loaded = load_for_ctl(None, &env(&[("PATRONI_SCOPE", "demo")])).expect("enough for a control tool");
    assert_eq!(loaded.config.scope, "demo");
    assert!(loaded.config.dcs.is_none());
    assert!(load(None, &env(&[("PATRONI_SCOPE", "demo")])).is_err(), "but not for the daemon");
}

#[test]
fn filesystem_checks_are_listed_not_made() {
    let c = load(Some(&fixture()), &BTreeMap::new()).expect("valid").config;
    let checks = paths_to_check(&c);
    assert!(checks.iter().any(|p| p.key == "postgresql.bin_dir" && p.kind == PathKind::Directory));
    assert!(checks
        .iter()
        .any(|p| p.path == Path::new("/usr/lib/postgresql/16/bin/pg_ctl") && p.kind == PathKind::Executable));
    assert!(!checks.iter().any(|p| p.key.ends_with("pg_rewind")));
    assert!(checks.iter().any(|p| p.key == "restapi.certfile"));
}

/// `bootstrap.method` as Patroni resolves it: a custom method runs only
/// when its section has a `command`; otherwise initdb runs (with a warning).
#[test]
fn bootstrap_method_without_a_command_means_initdb() {
    let cases = [
        ("", "initdb", false),
        ("bootstrap:\n  dcs: {}\n  method: initdb\n", "initdb", false),
        ("bootstrap:\n  dcs: {}\n  method: restore\n  restore:\n    command: /bin/true\n", "restore", false),
        ("bootstrap:\n  dcs: {}\n  method: restore\n", "initdb", true),
        (
            "bootstrap:\n  dcs: {}\n  method: restore\n  restore:\n    keep_existing_recovery_conf: true\n",
            "initdb",
            true,
        ),
    ];
    for (extra, want, warned) in cases {
        let loaded = load_text(&format!("{MINIMAL}{extra}")).expect("valid");
        let method = loaded.config.bootstrap.as_ref().map_or("initdb", |b| b.method.as_str()).to_string();
        assert_eq!(method, want, "{extra}");
        let warning =
            loaded.warnings.iter().any(|w| w.path == "bootstrap.method" && w.message.contains("initdb instead"));
        assert_eq!(warning, warned, "{extra}: {:?}", loaded.warnings);
    }
}

/// A replica method without a `command` runs its own name, as in Patroni,
/// and the load says so; not for basebackup or Palisade's own replica
/// plugins (`pgbackrest`, `walg`), whose sections are their settings.
#[test]
fn replica_methods_without_a_command_are_warned_about_unless_a_plugin_takes_them() {
    for (method, warned) in
        [("mytool", true), ("wal_g", true), ("basebackup", false), ("pgbackrest", false), ("walg", false)]
    {
        let text = MINIMAL.replace(
            "postgresql:\n",
            &format!("postgresql:\n  create_replica_methods: [{method}]\n  {method}:\n    no_leader: true\n"),
        );
        let loaded = load_text(&text).expect("valid");
        let warning = loaded.warnings.iter().any(|w| w.message.contains("itself is run as the command"));
        assert_eq!(warning, warned, "{method}: {:?}", loaded.warnings);
    }
}

/// A contradiction between a boolean tag and its priority is warned about
/// with Patroni's own line (sites alert on it); agreeing values are not.
#[test]
fn conflicting_tags_are_warned_about_in_patronis_words() {
    let cases = [
        (
            "nofailover: true\n  failover_priority: 1\n",
            Some("Conflicting configuration between nofailover: True and failover_priority: 1. Defaulting to nofailover: True"),
        ),
        (
            "nofailover: false\n  failover_priority: 0\n",
            Some("Conflicting configuration between nofailover: False and failover_priority: 0. Defaulting to nofailover: False"),
        ),
        (
            "nosync: true\n  sync_priority: 5\n",
            Some("Conflicting configuration between nosync: True and sync_priority: 5. Defaulting to nosync: True"),
        ),
        ("nofailover: true\n  failover_priority: 0\n", None),
        ("nofailover: false\n  failover_priority: 2\n", None),
    ];
    for (tags, want) in cases {
        let loaded = load_text(&format!("{MINIMAL}tags:\n  {tags}")).expect("accepted");
        let lines: Vec<String> =
            loaded.warnings.iter().map(ToString::to_string).filter(|w| w.contains("Conflicting")).collect();
        match want {
            Some(line) => assert_eq!(lines, [line], "{tags}"),
            None => assert!(lines.is_empty(), "{tags}: {lines:?}"),
        }
    }
}

/// `verify: false` does less than Patroni's (the chain is still checked),
/// so it is accepted with a warning; without `use_ssl` it says nothing here
/// (the plugin warns that the TLS keys are unused).
#[test]
fn zookeeper_verify_false_is_a_warning() {
    let section = |extra: &str| {
        MINIMAL.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", &format!("zookeeper:\n  hosts: z1\n{extra}"))
    };
    let cases = [
        ("  use_ssl: true\n  verify: false\n", true),
        // Patroni hands the value to kazoo as it is: the string 'off' is true.
        ("  use_ssl: true\n  verify: 'off'\n", false),
        ("  use_ssl: true\n  verify: true\n", false),
        ("  use_ssl: true\n", false),
        ("  verify: false\n", false),
    ];
    for (extra, warns) in cases {
        let loaded = load_text(&section(extra)).expect("valid");
        let warned = loaded.warnings.iter().any(|w| w.path == "zookeeper.verify" && w.message.contains("host name"));
        assert_eq!(warned, warns, "{extra}: {:?}", loaded.warnings);
    }
}

/// The `watchdog` section: Patroni's spellings of the mode, -1 as half the
/// ttl, and a warning naming the key for a driver nobody knows.
#[test]
fn watchdog_section() {
    // (section, mode, margin seconds, half ttl, driver, a warning naming this key)
    type Case<'a> = (&'a str, &'a str, u64, bool, &'a str, Option<&'a str>);
    let cases: &[Case] = &[
        ("", "automatic", 5, false, "default", None),
        ("watchdog:\n  mode: require\n", "required", 5, false, "default", None),
        ("watchdog:\n  mode: auto\n  safety_margin: -1\n", "automatic", 0, true, "default", None),
        ("watchdog:\n  mode: required\n  safety_margin: 2\n  driver: testing\n", "required", 2, false, "testing", None),
        ("watchdog:\n  mode: disabled\n  driver: mine\n", "off", 5, false, "mine", None),
        ("watchdog:\n  mode: required\n  driver: mine\n", "required", 5, false, "mine", Some("watchdog.driver")),
        ("watchdog:\n  mode: sometimes\n", "off", 5, false, "default", Some("watchdog.mode")),
    ];
    for (section, mode, margin, half, driver, warning) in cases {
        let loaded = load_text(&format!("{MINIMAL}{section}")).unwrap_or_else(|e| panic!("{section}: {e:?}"));
        let w = &loaded.config.watchdog;
        assert_eq!(
            (w.mode.as_str(), w.safety_margin.as_secs(), w.safety_margin_half_ttl, w.driver.as_str()),
            (*mode, *margin, *half, *driver),
            "{section}"
        );
        let warned: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        match warning {
            Some(key) => assert!(warned.iter().any(|l| l.starts_with(key)), "{section}: {warned:?}"),
            None => assert!(!warned.iter().any(|l| l.contains("watchdog")), "{section}: {warned:?}"),
        }
    }
}
