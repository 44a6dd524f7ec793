//! Connections to the local server, and the bootstrap steps.
//!
//! The plugin reaches the local server with the superuser settings the
//! host hands over ([`MppLocal`]), with its own `dbname` and `options`, as
//! Patroni's Citus handler does. It connects without TLS: the host's local
//! address is normally a Unix socket, where libpq ignores `sslmode`
//! too; a TCP address with `sslmode` `require` or stricter is refused with
//! an error saying so (docs/plugins/mpp-citus.md).

use std::time::Duration;

use palisade_plugin_api::sdk::pycompat::url::hostname_port;
use palisade_plugin_api::sdk::runtime;
use palisade_plugin_api::{MppLocal, PluginError, PluginResult};
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use crate::settings::Settings;
use crate::sql::{dsn, ident, literal};

/// How long a connection attempt may take unless `connect_timeout` says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One row of a simple query's answer, as text.
pub type Row = Vec<Option<String>>;

/// The local server's host (`host` of the superuser connection), for
/// `citus.local_hostname`.
pub fn local_host(local: &MppLocal) -> Option<&str> {
    local.conn.iter().find(|(k, _)| k == "host").map(|(_, v)| v.as_str())
}

/// `(host, port)` of a `conn_url`, Patroni's `PgDistNode` address: the
/// URL's host and its port, 5432 when absent. `None` (and the reason) when
/// the URL has no host or cannot be read.
pub fn url_address(conn_url: &str) -> Result<(String, u16), String> {
    match hostname_port(conn_url) {
        Ok((Some(host), port)) => Ok((host, port.filter(|p| *p != 0).unwrap_or(5432))),
        Ok((None, _)) => Err(format!("no host in connection URL {conn_url}")),
        Err(e) => Err(format!("failed to parse connection URL {conn_url}: {e}")),
    }
}

/// The connection settings: the host's superuser settings with `dbname`
/// and `options` replaced.
/// `application_name` is Patroni's for the same connection (`Patroni
/// citus` for the metadata connection, `Patroni` at bootstrap), so that
/// monitoring sees what it sees with Patroni.
pub fn config(local: &MppLocal, dbname: &str, options: &str, application_name: &str) -> PluginResult<Config> {
    let mut c = Config::new();
    c.dbname(dbname).options(options).connect_timeout(CONNECT_TIMEOUT).application_name(application_name);
    let unix = local_host(local).is_some_and(|h| h.starts_with('/'));
    for (key, value) in &local.conn {
        match key.as_str() {
            "host" => {
                c.host(value);
            }
            "port" => {
                let port = value.parse().map_err(|_| PluginError::config(format!("port: not a port: {value}")))?;
                c.port(port);
            }
            "user" => {
                c.user(value);
            }
            "password" => {
                c.password(value.as_bytes());
            }
            "connect_timeout" => {
                if let Ok(s) = value.parse::<u64>() {
                    c.connect_timeout(Duration::from_secs(s.max(2)));
                }
            }
            "sslmode" if !unix && matches!(value.as_str(), "require" | "verify-ca" | "verify-full") => {
                return Err(PluginError::config(format!(
                    "sslmode: the citus plugin connects to the local server without TLS, but sslmode is {value} \
                     on a TCP address; use a Unix socket for the local connection"
                )));
            }
            // TLS files and the rest matter only to TLS and libpq features
            // the local connection does not use.
            _ => {}
        }
    }
    Ok(c)
}

/// Connect, with the connection driven by the plugin's runtime.
pub fn connect(config: &Config) -> Result<Client, String> {
    runtime().block_on(async {
        let (client, connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
        runtime().spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("citus connection closed: {e}");
            }
        });
        Ok(client)
    })
}

/// Run one statement (simple query protocol: the text is what runs) and
/// return its rows as text.
pub fn query(client: &Client, sql: &str) -> Result<Vec<Row>, tokio_postgres::Error> {
    let messages = runtime().block_on(client.simple_query(sql))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect()),
            _ => None,
        })
        .collect())
}

/// What bootstrap runs, in order, in which database: Patroni's `bootstrap`.
/// `CREATE DATABASE` only when `citus.database` is not the host's
/// database; the superuser's `password`, `sslcert` and `sslkey` (those
/// set) into `pg_dist_authinfo`; on the coordinator its own address.
pub fn bootstrap_statements(settings: &Settings, local: &MppLocal) -> PluginResult<Vec<(String, String)>> {
    let mut steps = Vec::new();
    if settings.database != local.database {
        steps.push((local.database.clone(), format!("CREATE DATABASE {}", ident(&settings.database))));
    }
    let db = settings.database.clone();
    steps.push((db.clone(), "CREATE EXTENSION IF NOT EXISTS citus".to_string()));
    let auth: Vec<(&str, &str)> = ["password", "sslcert", "sslkey"]
        .iter()
        .filter_map(|k| local.conn.iter().find(|(key, _)| key == k).map(|(_, v)| (*k, v.as_str())))
        .collect();
    if !auth.is_empty() {
        steps.push((
            db.clone(),
            format!(
                "INSERT INTO pg_catalog.pg_dist_authinfo VALUES(0, pg_catalog.current_user(), {})",
                literal(&dsn(&auth))
            ),
        ));
    }
    if settings.is_coordinator() {
        let (host, port) = url_address(&local.conn_url).map_err(PluginError::config)?;
        steps.push((
            db,
            format!("SELECT pg_catalog.citus_set_coordinator_host({}, {port}, 'primary', 'default')", literal(&host)),
        ));
    }
    Ok(steps)
}

/// Run the bootstrap statements, each database on its own connection, as
/// Patroni does (`synchronous_commit=local`, no statement timeout). A
/// database that exists already is fine.
pub fn bootstrap(settings: &Settings, local: &MppLocal) -> PluginResult<()> {
    let steps = bootstrap_statements(settings, local)?;
    let options = "-c synchronous_commit=local -c statement_timeout=0";
    let mut current: Option<(String, Client)> = None;
    for (db, sql) in steps {
        let client = match current.take() {
            Some((d, c)) if d == db => c,
            _ => connect(&config(local, &db, options, "Patroni")?)
                .map_err(|e| PluginError::other(format!("citus bootstrap: connect to database {db}: {e}")))?,
        };
        tracing::debug!("citus bootstrap: {sql}");
        let result = query(&client, &sql);
        current = Some((db, client));
        if let Err(e) = result {
            let duplicate_database = e.code().is_some_and(|c| c.code() == "42P04");
            if sql.starts_with("CREATE DATABASE") && duplicate_database {
                tracing::debug!("citus bootstrap: database {} exists already", settings.database);
                continue;
            }
            let detail = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string());
            return Err(PluginError::other(format!("citus bootstrap: {sql}: {detail}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(conn: &[(&str, &str)], database: &str, conn_url: &str) -> MppLocal {
        MppLocal {
            conn: conn.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            database: database.into(),
            conn_url: conn_url.into(),
        }
    }

    #[test]
    fn bootstrap_as_patroni() {
        let coordinator = Settings { group: 0, database: "citus".into() };
        let worker = Settings { group: 2, database: "postgres".into() };
        let l = local(
            &[("host", "/run/pg"), ("user", "postgres"), ("password", "se cret"), ("sslkey", "/k")],
            "postgres",
            "postgres://10.0.0.5:5433/postgres",
        );
        let sql = |s: &Settings, l: &MppLocal| {
            bootstrap_statements(s, l).unwrap().into_iter().map(|(d, q)| format!("{d}: {q}")).collect::<Vec<_>>()
        };
        assert_eq!(
            sql(&coordinator, &l),
            [
                "postgres: CREATE DATABASE \"citus\"",
                "citus: CREATE EXTENSION IF NOT EXISTS citus",
                r"citus: INSERT INTO pg_catalog.pg_dist_authinfo VALUES(0, pg_catalog.current_user(), E'password=se\\ cret sslkey=/k')",
                "citus: SELECT pg_catalog.citus_set_coordinator_host('10.0.0.5', 5433, 'primary', 'default')",
            ]
        );
        let no_auth = local(&[("host", "/run/pg")], "postgres", "postgres://h/postgres");
        assert_eq!(sql(&worker, &no_auth), ["postgres: CREATE EXTENSION IF NOT EXISTS citus"]);
        let bad = local(&[], "postgres", "postgres:///postgres");
        assert!(bootstrap_statements(&coordinator, &bad).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(url_address("postgres://H1:6000/db"), Ok(("h1".into(), 6000)));
        assert_eq!(url_address("postgres://h1/db"), Ok(("h1".into(), 5432)));
        assert_eq!(url_address("postgres://h1:0/db"), Ok(("h1".into(), 5432)));
        assert!(url_address("postgres://h1:x/db").is_err());
    }

    #[test]
    fn tls_on_tcp_is_refused_by_name() {
        let l = local(&[("host", "127.0.0.1"), ("sslmode", "require")], "postgres", "");
        assert!(config(&l, "citus", "", "Patroni citus").unwrap_err().message.starts_with("sslmode:"));
        let unix = local(&[("host", "/tmp"), ("sslmode", "require")], "postgres", "");
        assert!(config(&unix, "citus", "", "Patroni citus").is_ok());
    }
}
