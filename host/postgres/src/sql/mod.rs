//! SQL on the local server, as the superuser, over one cached connection.
//!
//! The connection follows Patroni's local connection rules
//! ([`LocalConnection::resolve`]); queries have a short statement timeout
//! (2 s, as Patroni's `-c statement_timeout=2000`) and a client-side limit.

mod admin;
mod slots;
mod status;
mod sync;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use palisade_config::PostgresqlConfig;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::binaries::IsReadyArgs;
use crate::conf::{auth_params, format_dsn, ConnParams, ServerParameters};
use crate::libpq::{self, ConnSettings, ConnectError};

pub use slots::{read_slot_states, slot_catalog_xmins, DropSlot, SlotInfo, SlotState};
pub use status::{PendingSetting, PgStatus, ReplicationRow};
pub use sync::{SyncSender, SyncStatus};

/// `application_name` of our connections: Patroni's, so that monitoring
/// that filters the HA daemon's sessions keeps working.
pub const APPLICATION_NAME: &str = "Patroni heartbeat";

/// Where and how the daemon connects to its own PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalConnection {
    /// A TCP host, or a unix socket directory (starts with `/`).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    /// The role's `sslmode`, `sslcert`... settings.
    pub ssl: BTreeMap<String, String>,
    /// Whose credentials these are (`superuser`, `replication`), for messages.
    pub role: &'static str,
    pub connect_timeout: Duration,
    /// Server-side limit for each statement.
    pub statement_timeout: Duration,
}

/// The default socket directory when `use_unix_socket` is set but
/// `unix_socket_directories` is not (libpq's compiled-in default on Debian).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

impl LocalConnection {
    /// Patroni's `resolve_connection_addresses` for the superuser: with
    /// `use_unix_socket`, the first absolute directory of
    /// `unix_socket_directories` (falling back to TCP when none is
    /// absolute); otherwise TCP to `localhost` when PostgreSQL listens on
    /// `*`, `localhost`, `0.0.0.0` or `127.0.0.1`, else to the first listen
    /// address. Database `postgres`.
    pub fn resolve(local: &PostgresqlConfig, params: &ServerParameters) -> Self {
        Self::resolve_with(local, params, local.use_unix_socket)
    }

    /// The address Patroni's `local_replication_address` names (unix
    /// socket when `use_unix_socket_repl`), with the replication user's
    /// credentials.
    pub fn resolve_replication(local: &PostgresqlConfig, params: &ServerParameters) -> Self {
        let mut c = Self::resolve_with(local, params, local.use_unix_socket_repl);
        let rep = &local.authentication.replication;
        c.user = rep.username.clone();
        c.password = rep.password.clone();
        c.ssl = rep.ssl.clone();
        c.role = "replication";
        c
    }

    fn resolve_with(local: &PostgresqlConfig, params: &ServerParameters, unix: bool) -> Self {
        let port = params.get("port").and_then(|p| p.parse().ok()).unwrap_or(local.listen.port);
        let listen = params.get("listen_addresses").map(String::from).unwrap_or_else(|| local.listen.hosts.join(","));
        let tcp = tcp_local_address(&listen);
        let host = if unix {
            match params.get("unix_socket_directories") {
                Some(dirs) => unix_local_address(dirs).unwrap_or(tcp),
                None => DEFAULT_SOCKET_DIR.to_string(),
            }
        } else {
            tcp
        };
        let su = &local.authentication.superuser;
        Self {
            host,
            port,
            user: su.username.clone(),
            password: su.password.clone(),
            dbname: "postgres".into(),
            ssl: su.ssl.clone(),
            role: "superuser",
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(2),
        }
    }

    /// Another member's server at `host:port`, as Patroni reaches the
    /// leader to read files from its data directory: with the rewind
    /// user's credentials (the superuser's when there is no rewind user),
    /// database `postgres`.
    pub fn rewind_to(local: &PostgresqlConfig, host: &str, port: u16) -> Self {
        let auth = &local.authentication;
        let (creds, role) = match &auth.rewind {
            Some(r) => (r, "rewind"),
            None => (&auth.superuser, "superuser"),
        };
        Self {
            host: host.to_string(),
            port,
            user: creds.username.clone(),
            password: creds.password.clone(),
            dbname: "postgres".into(),
            ssl: creds.ssl.clone(),
            role,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(10),
        }
    }

    /// As connection parameters (for pgpass files and connection strings).
    pub fn conn_params(&self) -> ConnParams {
        let mut p = auth_params(&palisade_config::RoleAuth {
            username: self.user.clone(),
            password: self.password.clone(),
            ssl: self.ssl.clone(),
        });
        p.insert("host".into(), self.host.clone());
        p.insert("port".into(), self.port.to_string());
        p.insert("dbname".into(), self.dbname.clone());
        p
    }

    /// The connection string without the password (what Patroni hands to
    /// the post_bootstrap script).
    pub fn dsn_without_password(&self, major: u32) -> String {
        let mut p = self.conn_params();
        p.remove("password");
        format_dsn(&p, major)
    }

    /// `pg_isready` against this address.
    pub fn isready_args(&self) -> IsReadyArgs {
        IsReadyArgs {
            host: Some(self.host.clone()),
            port: self.port,
            dbname: self.dbname.clone(),
            user: Some(self.user.clone()).filter(|u| !u.is_empty()),
            timeout: self.connect_timeout,
        }
    }

    fn describe(&self) -> String {
        match self.ssl.get("sslmode").filter(|m| !m.is_empty() && !self.host.starts_with('/')) {
            Some(mode) => format!("{}:{} as {} (sslmode={mode})", self.host, self.port, self.user),
            None => format!("{}:{} as {}", self.host, self.port, self.user),
        }
    }

    fn config(&self, statement_timeout: Duration) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        if self.host.starts_with('/') {
            cfg.host_path(&self.host);
        } else {
            cfg.host(&self.host);
        }
        cfg.port(self.port)
            .dbname(&self.dbname)
            .application_name(APPLICATION_NAME)
            .connect_timeout(self.connect_timeout);
        cfg.options(format!("-c statement_timeout={} -c pg_stat_statements.track=none", statement_timeout.as_millis()));
        if !self.user.is_empty() {
            cfg.user(&self.user);
        }
        if let Some(pw) = &self.password {
            cfg.password(pw);
        }
        cfg
    }

    /// The key path of these credentials' settings, for messages.
    fn key_prefix(&self) -> String {
        format!("postgresql.authentication.{}.", self.role)
    }

    /// Open a connection of our own (not the cached one), with its own
    /// statement timeout (`Duration::ZERO`: none, as Patroni's CHECKPOINT),
    /// following libpq's rules for the role's `sslmode`, `sslcert`...
    pub async fn connect(&self, statement_timeout: Duration) -> Result<Client, SqlError> {
        let target = self.describe();
        let prefix = self.key_prefix();
        let settings = ConnSettings::parse(&self.ssl, &prefix)
            .map_err(|e| SqlError::Connect { target: target.clone(), source: e.into() })?;
        let cfg = self.config(statement_timeout);
        let home = libpq::home_dir();
        let connecting = libpq::connect(&cfg, &self.host, &settings, &prefix, home.as_deref());
        // Two attempts at most (`allow`, `prefer`), each within connect_timeout.
        let limit = 2 * self.connect_timeout + Duration::from_secs(1);
        match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(source)) => Err(SqlError::Connect { target, source }),
            Err(_) => Err(SqlError::ConnectTimeout { target }),
        }
    }
}

fn unix_local_address(dirs: &str) -> Option<String> {
    dirs.split(',').map(str::trim).find(|d| d.starts_with('/')).map(String::from)
}

fn tcp_local_address(listen_addresses: &str) -> String {
    let addrs: Vec<&str> = listen_addresses.split(',').map(str::trim).collect();
    for a in &addrs {
        if matches!(a.to_lowercase().as_str(), "*" | "localhost" | "0.0.0.0" | "127.0.0.1") {
            return "localhost".into();
        }
    }
    addrs.first().map(|a| a.to_string()).unwrap_or_else(|| "localhost".into())
}

/// A query could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: ConnectError,
    },
    #[error("connecting to PostgreSQL at {target} timed out")]
    ConnectTimeout { target: String },
    #[error("query failed: {}", libpq::error_text(.0))]
    Query(#[source] tokio_postgres::Error),
    #[error("query did not finish within {0:?}")]
    QueryTimeout(Duration),
    #[error("unexpected query result: {0}")]
    Unexpected(String),
}

impl SqlError {
    /// The SQLSTATE the server answered with.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Connect { source, .. } => source.db_error().and_then(tokio_postgres::Error::code),
            Self::Query(source) => source.code(),
            _ => None,
        }
    }

    /// The server could not be reached or the connection broke (as opposed
    /// to an SQL error on a working connection).
    pub fn is_connection_problem(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::QueryTimeout(_) => true,
            Self::Query(e) => e.is_closed() || e.code().is_none(),
            Self::Unexpected(_) => false,
        }
    }

    /// The server answered "the database system is starting up" (or shutting
    /// down): it runs but does not take connections yet.
    pub fn is_cannot_connect_now(&self) -> bool {
        self.code() == Some(&SqlState::CANNOT_CONNECT_NOW)
    }
}

/// The cached superuser connection to the local server.
pub struct Sql {
    target: std::sync::Mutex<LocalConnection>,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

/// Client-side limit on top of the statement timeout.
const QUERY_SLACK: Duration = Duration::from_secs(5);

impl Sql {
    pub fn new(target: LocalConnection) -> Self {
        Self { target: std::sync::Mutex::new(target), client: tokio::sync::Mutex::new(None) }
    }

    pub fn target(&self) -> LocalConnection {
        self.target.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Change where to connect; the cached connection is dropped when the
    /// target changed.
    pub async fn set_target(&self, target: LocalConnection) {
        let changed = {
            let mut t = self.target.lock().unwrap_or_else(|e| e.into_inner());
            let changed = *t != target;
            *t = target;
            changed
        };
        if changed {
            self.close().await;
        }
    }

    /// Drop the cached connection (after a restart, before a stop).
    pub async fn close(&self) {
        self.client.lock().await.take();
    }

    async fn client(&self) -> Result<Arc<Client>, SqlError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let target = self.target();
        tracing::debug!("establishing a new connection to postgres at {}", target.describe());
        let client = Arc::new(target.connect(target.statement_timeout).await?);
        *guard = Some(client.clone());
        Ok(client)
    }

    fn limit(&self) -> Duration {
        self.target().statement_timeout + QUERY_SLACK
    }

    /// Run `f` on the cached client; a connection failure drops the cache.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, SqlError>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let client = self.client().await?;
        let limit = self.limit();
        let result = match tokio::time::timeout(limit, f(client)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SqlError::Query(e)),
            Err(_) => Err(SqlError::QueryTimeout(limit)),
        };
        if let Err(e) = &result {
            if e.is_connection_problem() {
                self.close().await;
            }
        }
        result
    }

    /// Run statements with the simple query protocol; the rows of every
    /// statement, as text.
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, SqlError> {
        let sql = sql.to_string();
        let messages = self.run(|c| async move { c.simple_query(&sql).await }).await?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(String::from)).collect()),
                _ => None,
            })
            .collect())
    }

    /// Run statements, ignoring results.
    pub async fn execute(&self, sql: &str) -> Result<(), SqlError> {
        let sql = sql.to_string();
        self.run(|c| async move { c.batch_execute(&sql).await }).await
    }

    /// `SELECT 1` answered.
    pub async fn ping(&self) -> Result<(), SqlError> {
        self.execute("SELECT 1").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::params::tests::local_config;
    use palisade_config::RoleAuth;

    #[test]
    fn local_address_rules() {
        let mut local = local_config();
        local.authentication.superuser =
            RoleAuth { username: "postgres".into(), password: Some("pw".into()), ssl: Default::default() };
        type Case = (bool, &'static [(&'static str, &'static str)], &'static str);
        let cases: &[Case] = &[
            (false, &[("listen_addresses", "*"), ("port", "5433")], "localhost"),
            (false, &[("listen_addresses", "10.0.0.1,127.0.0.1"), ("port", "5433")], "localhost"),
            (false, &[("listen_addresses", "10.0.0.1, 10.0.0.2"), ("port", "5433")], "10.0.0.1"),
            (
                true,
                &[("listen_addresses", "10.0.0.1"), ("unix_socket_directories", "relative, /tmp/sock")],
                "/tmp/sock",
            ),
            (true, &[("listen_addresses", "10.0.0.1"), ("unix_socket_directories", "relative")], "10.0.0.1"),
            (true, &[("listen_addresses", "10.0.0.1")], "/var/run/postgresql"),
        ];
        for (unix, params, host) in cases {
            local.use_unix_socket = *unix;
            let c = LocalConnection::resolve(&local, &ServerParameters::from_pairs(params.iter().copied()));
            assert_eq!(c.host, *host, "{params:?}");
        }
        local.use_unix_socket = false;
        let c = LocalConnection::resolve(
            &local,
            &ServerParameters::from_pairs([("listen_addresses", "*"), ("port", "5433")]),
        );
        assert_eq!(c.port, 5433);
        assert_eq!(c.dsn_without_password(150000), "dbname=postgres user=postgres host=localhost port=5433");
        assert_eq!(c.isready_args().host.as_deref(), Some("localhost"));
    }
}
