//! The palisade daemon: everything that touches the world.
//!
//! - `pg`: the glue between the HA loop and `palisade-postgres`;
//! - `runner`: the HA loop, which asks `palisade-ha` what to do and does it;
//! - `api`: the REST API (axum), served from the runner's published status;
//! - `tls`: the REST API's server-side TLS;
//! - `peers`: `GET /patroni` on other members during the leader race;
//! - `logging`: Patroni's log layout.
//!
//! Plugin loading, the DCS client and the REST API client come from
//! `palisade-plugin-host`, which palisadectl shares. The decisions
//! themselves live in `palisade-ha` (pure); abi_stable types never get
//! past `palisade-plugin-api`.
//!
//! Architecture invariant: no other palisade crate depends on this one
//! (palisadectl included): it is the only one with an HTTP server.

pub mod api;
pub mod cli;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod hooks;
pub mod inventory;
pub mod logging;
pub mod memory;
pub mod mpp;
pub mod peers;
pub mod pg;
pub mod probe;
pub mod runner;
pub mod standby;
pub mod status;
pub mod tls;
pub mod watchdog;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};

use palisade_model::{Role, State};
use palisade_plugin_host::http::ClientSettings;
use palisade_plugin_host::{dcs, plugins};

/// palisade's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Epoch seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The instant `after` from now, saturating far in the future instead of
/// overflowing (`after` may come from configuration or the DCS).
pub fn instant_after(after: std::time::Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(after).or_else(|| now.checked_add(palisade_config::limits::MAX_DURATION)).unwrap_or(now)
}

/// Load the configuration, start the API and run the HA loop until a
/// signal stops it. `path` and `env` are as `palisade_config::load` takes them.
pub fn run_daemon(path: Option<&Path>, env: BTreeMap<String, String>) -> ExitCode {
    let loaded = match palisade_config::load(path, &env) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors {
                eprintln!("palisade: configuration error: {e}");
            }
            eprintln!("palisade: not starting: {} configuration problem(s)", errors.len());
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = logging::init(&loaded.config.log) {
        eprintln!("palisade: configuration error: {e}");
        return ExitCode::FAILURE;
    }
    logging::install_panic_hook();
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    for w in check_connection_settings(&loaded.config) {
        tracing::warn!("{w}");
    }
    let start = prepare(loaded.config, &env);
    // One thread runs the HA loop, the REST API and PostgreSQL's
    // connections; plugin calls and other blocking work go to tokio's
    // blocking pool. A second worker bought no throughput worth its
    // memory (see docs/benchmarks.md).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The daemon's state machine is on the heap: `run` boxes its large
    // parts, so this frame stays small, and the runner gives back the
    // stack below it after each cycle.
    runtime.block_on(Box::pin(run(start, path.map(Path::to_path_buf), env)))
}

/// `palisade --replica-worker`: make the replica the daemon sends on
/// stdin (see `palisade_plugin_host::worker`), its log on stderr.
pub fn replica_worker() -> ExitCode {
    use std::os::fd::AsFd;
    logging::install_panic_hook();
    let start_log = |level: &str| {
        let level = level.parse::<tracing::Level>().unwrap_or(tracing::Level::INFO);
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_max_level(level)
            .try_init();
    };
    // The result goes to the original stdout; whatever the plugin or its
    // commands print goes to stderr, which the daemon logs.
    let result = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            eprintln!("ERROR replica worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: dup2 only makes fd 1 a copy of fd 2.
    if unsafe { libc::dup2(2, 1) } < 0 {
        eprintln!("ERROR replica worker: cannot point stdout at stderr");
        return ExitCode::FAILURE;
    }
    match palisade_plugin_host::worker::serve(std::io::stdin(), result, start_log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR replica worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `run` starts from, worked out before the runtime exists.
struct Start {
    config: runner::RuntimeConfig,
    dir: std::path::PathBuf,
    timing: palisade_plugin_api::DcsTiming,
    /// A standby cluster's own replica methods (known at start from the
    /// cached or bootstrap dynamic configuration), loaded too.
    standby_methods: Vec<String>,
    /// The replica methods as a child process found them (`probe`), or
    /// `None` to load them in this process.
    probed: Option<probe::Probed>,
}

fn prepare(local: palisade_config::LocalConfig, env: &BTreeMap<String, String>) -> Start {
    tracing::info!("palisade {VERSION} starting: scope {}, member {}", local.scope, local.name);
    let dir = plugins::plugin_dir(local.plugin_dir.as_deref(), env.get("PALISADE_PLUGIN_DIR").map(String::as_str));
    let dynamic = pg::load_dynamic_cache(&local.postgresql.data_dir)
        .unwrap_or_else(|| palisade_config::dynamic_from_bootstrap(&local));
    let config = runner::RuntimeConfig::new(local, dynamic, true);
    let timing = plugins::timing(config.global.ttl, config.global.loop_wait, config.global.retry_timeout);
    let standby_methods = config.global.standby_cluster_config().map(|s| s.replica_methods()).unwrap_or_default();
    // Still one thread here: the child can be forked.
    let probed = probe::replica_methods(&config.local, &dir, &standby_methods);
    Start { config, dir, timing, standby_methods, probed }
}

/// Check the files and directories a configuration names (missing ones
/// are warnings: a configuration may be validated on another machine).
pub fn check_paths(config: &palisade_config::LocalConfig) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for check in palisade_config::paths_to_check(config) {
        let meta = std::fs::metadata(&check.path);
        let problem = match (check.kind, &meta) {
            (_, Err(e)) => Some(format!("cannot access {}: {e}", check.path.display())),
            (palisade_config::PathKind::Directory, Ok(m)) if !m.is_dir() => {
                Some(format!("{} is not a directory", check.path.display()))
            }
            (palisade_config::PathKind::File, Ok(m)) if !m.is_file() => {
                Some(format!("{} is not a file", check.path.display()))
            }
            (palisade_config::PathKind::Executable, Ok(m)) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => {
                Some(format!("{} is not an executable file", check.path.display()))
            }
            _ => None,
        };
        if let Some(p) = problem {
            out.push(format!("{}: {p}", check.key));
        }
    }
    out
}

/// libpq settings of `postgresql.authentication` that connections will
/// refuse: any role's values libpq does not know, and for the superuser
/// (whose connections palisade makes itself) what palisade cannot do.
pub fn check_connection_settings(config: &palisade_config::LocalConfig) -> Vec<String> {
    let auth = &config.postgresql.authentication;
    let roles = [
        ("superuser", Some(&auth.superuser)),
        ("replication", Some(&auth.replication)),
        ("rewind", auth.rewind.as_ref()),
    ];
    let mut out = Vec::new();
    for (name, role) in roles {
        let Some(role) = role else { continue };
        let mut ssl = role.ssl.clone();
        if name != "superuser" {
            // PostgreSQL's libpq makes these connections: it may have
            // GSSAPI and OpenSSL engines.
            ssl.retain(|k, v| !(k == "gssencmode" && v == "require") && k != "sslkey");
        }
        let prefix = format!("postgresql.authentication.{name}.");
        if let Err(e) = palisade_postgres::libpq::ConnSettings::parse(&ssl, &prefix) {
            out.push(format!("{e}; connections with it will fail"));
        }
    }
    out
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    (host, port).to_socket_addrs().ok()?.next()
}

async fn run(start: Start, path: Option<std::path::PathBuf>, env: BTreeMap<String, String>) -> ExitCode {
    let Start { config, dir, timing, standby_methods, probed } = start;
    let local = &config.local;
    // Each replica is made by a child of this binary (see
    // `palisade_plugin_host::worker`); /proc/self/exe is the binary this
    // process runs, even once a package upgrade replaced the file.
    let worker = Path::new("/proc/self/exe");
    let opened = match probed {
        None => plugins::load_with(local, &dir, timing, &standby_methods),
        Some(Ok(facts)) => plugins::load_with_probed(local, &dir, timing, facts, worker),
        // The others are loaded all the same, so that every problem is
        // reported at once.
        Some(Err(problems)) => match plugins::load_with_probed(local, &dir, timing, Vec::new(), worker) {
            Ok(_) => Err(problems),
            Err(more) => Err(more.into_iter().chain(problems).collect()),
        },
    };
    // The MPP plugin (with a `citus` section) is loaded next to the others;
    // every problem of both is reported.
    let loaded = match (opened, plugins::load_mpp(&config.local, &dir)) {
        (Ok(p), Ok(mpp)) => (p, mpp),
        (loaded, mpp) => {
            let problems: Vec<_> =
                loaded.err().unwrap_or_default().into_iter().chain(mpp.err().unwrap_or_default()).collect();
            for p in &problems {
                tracing::error!("plugin: {p}");
            }
            tracing::error!("not starting: {} plugin problem(s) (plugin directory {})", problems.len(), dir.display());
            return ExitCode::FAILURE;
        }
    };
    let (loaded, mpp) = loaded;
    tracing::info!("using DCS plugin '{}' from {}", loaded.dcs_name, dir.display());

    // Members ask each other as Patroni's daemon does: `insecure` (see
    // `ClientSettings`).
    let peers = match peers::PeerClient::with_settings(ClientSettings::new(&config.local, true)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("not starting: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = api::serve::check(&config.local.restapi) {
        tracing::error!("not starting: {e}");
        return ExitCode::FAILURE;
    }
    let watchdog =
        match watchdog::Watchdog::new(watchdog::WatchdogSettings::new(&config.local.watchdog, &config.global)) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
    let restapi = config.local.restapi.clone();
    let mut initial = status::NodeStatus::new(&config.local.scope, &config.local.name);
    initial.ttl = config.global.ttl;
    initial.watchdog_failed = !watchdog.is_healthy();
    let board = status::StatusBoard::new(initial);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let listen = config.local.restapi.listen.clone();
    let offers = palisade_plugin_host::plugins::ArchiveOffers::of(&loaded.replicas);
    let mpp = mpp.map(|m| Arc::new(mpp::MppHost::new(m)));
    if let Some(m) = &mpp {
        let role = if m.is_coordinator() { "coordinator" } else { "worker" };
        tracing::info!("Citus {role}: group {}", m.group());
    }
    let pg: Arc<dyn pg::LocalPostgres> =
        Arc::new(pg::LocalPg::with_mpp(&config, mpp.clone()).with_archive_offers(offers));
    let shared = Arc::new(runner::Shared {
        dcs: dcs::DcsClient::new(loaded.dcs, config.global.retry_timeout),
        config: RwLock::new(config),
        tracked: Mutex::new(runner::Tracked::new(Role::Uninitialized, State::Stopped)),
        status: board.clone(),
        pg,
        peers,
        replicas: loaded.replicas,
        callback: loaded.callback.map(Arc::from),
        hooks: Default::default(),
        events: tx,
        config_path: path,
        env,
        scheduled_restart: Mutex::new(None),
        mpp,
        watchdog: Mutex::new(watchdog),
    });

    if shared.mpp.is_some() {
        // The plugin knows the local connection now: the parameters it
        // adjusts (`citus.local_hostname`) are computed again with it.
        mpp::refresh_local(&shared);
        shared.pg.update(&shared.config()).await;
    }
    let weak = Arc::downgrade(&shared);
    shared.peers.follow(move || {
        let shared = weak.upgrade()?;
        let config = shared.config.read().unwrap_or_else(|p| p.into_inner());
        Some(ClientSettings::new(&config.local, true))
    });

    let Some(addr) = resolve(listen.host(), listen.port) else {
        tracing::error!("restapi.listen: cannot resolve '{}'", listen.host());
        return ExitCode::FAILURE;
    };
    if let Err(e) = Box::pin(api::serve(addr, api::ApiState::new(board, Some(Arc::clone(&shared))), restapi)).await {
        tracing::error!(
            "Couldn't start a service on '{}:{}', please check your `restapi.listen` configuration",
            listen.host(),
            listen.port
        );
        tracing::error!("restapi.listen: cannot listen on {addr}: {e}");
        return ExitCode::FAILURE;
    }
    // Boxed, as the API's start above: this future stays small, and so
    // does the main thread's frame that holds it (see `run_daemon`).
    Box::pin(runner::Runner::new(shared, rx).run()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_settings_that_will_fail_are_named() {
        let env = BTreeMap::from([("PATRONI_SCOPE".to_string(), "test".to_string())]);
        let base = palisade_config::load_for_ctl(None, &env).unwrap().config;
        type Case = (&'static str, &'static str, &'static str, Option<&'static str>);
        let cases: &[Case] = &[
            ("superuser", "sslmode", "verify-ca", None),
            ("superuser", "sslmode", "verify_ca", Some("postgresql.authentication.superuser.sslmode: invalid value")),
            ("superuser", "gssencmode", "require", Some("postgresql.authentication.superuser.gssencmode: \"require\"")),
            ("superuser", "sslkey", "engine:key", Some("postgresql.authentication.superuser.sslkey:")),
            // PostgreSQL's libpq makes replication connections: it may have GSSAPI.
            ("replication", "gssencmode", "require", None),
            ("replication", "sslkey", "engine:key", None),
            ("replication", "channel_binding", "always", Some("postgresql.authentication.replication.channel_binding")),
            ("rewind", "sslnegotiation", "tls", Some("postgresql.authentication.rewind.sslnegotiation")),
        ];
        for (role, key, value, want) in cases {
            let mut c = base.clone();
            let auth = &mut c.postgresql.authentication;
            let target = match *role {
                "superuser" => &mut auth.superuser,
                "replication" => &mut auth.replication,
                _ => auth.rewind.get_or_insert_with(Default::default),
            };
            target.ssl.insert(key.to_string(), value.to_string());
            let got = check_connection_settings(&c);
            match want {
                None => assert!(got.is_empty(), "{role}.{key}={value}: {got:?}"),
                Some(w) => {
                    assert_eq!(got.len(), 1, "{role}.{key}={value}: {got:?}");
                    assert!(got[0].starts_with(w) && got[0].ends_with("connections with it will fail"), "{got:?}");
                }
            }
        }
    }
}
