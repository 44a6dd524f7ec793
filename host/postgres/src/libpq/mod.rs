//! libpq's connection settings for the daemon's own connections
//! (tokio-postgres does not read them): `sslmode` from `disable` to
//! `verify-full`, `sslcert`, `sslkey`, `sslpassword`, `sslrootcert`,
//! `sslcrl`, `sslcrldir`, `sslnegotiation`, `gssencmode`,
//! `channel_binding` and `target_session_attrs`, with libpq's rules: no
//! TLS over a Unix socket, `~/.postgresql` files where libpq reads them,
//! `allow`/`prefer` retrying the other way, a root certificate making
//! any mode check the chain.
//!
//! The strings PostgreSQL's own libpq reads (primary_conninfo,
//! pg_basebackup's `--dbname`) carry the same keywords through
//! [`crate::conf::format_dsn`].

mod settings;
mod stream;
mod tls;

use std::path::Path;

use tokio_postgres::{Client, NoTls};

pub use settings::{
    Attempt, ChannelBinding, ConnSettings, GssEncMode, RootCert, SettingError, SslMode, SslNegotiation,
    TargetSessionAttrs,
};
pub use stream::{server_end_point, MakeRustls, RustlsStream};
pub use tls::{home_dir, load_key, Check, TlsSetup};

/// A connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A setting cannot be used (the error names its key).
    #[error(transparent)]
    Settings(#[from] SettingError),
    /// Every attempt failed: the last error, and the earlier ones.
    #[error("{}{}", error_text(.last), earlier_text(.earlier))]
    Failed { last: tokio_postgres::Error, earlier: Vec<String> },
    /// Connected, but the server is not what `target_session_attrs` asks for.
    #[error("{0}")]
    Session(String),
}

/// A tokio-postgres error with its causes (its own text is only the kind:
/// "db error", "error performing TLS handshake"), on one line.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string().replace('\n', "; "));
        source = s.source();
    }
    out
}

fn earlier_text(earlier: &[String]) -> String {
    earlier.iter().map(|e| format!(" (after an earlier attempt: {e})")).collect()
}

impl ConnectError {
    /// The server's error, when it answered with one.
    pub fn db_error(&self) -> Option<&tokio_postgres::Error> {
        match self {
            Self::Failed { last, .. } => Some(last),
            _ => None,
        }
    }
}

fn describe(attempt: Attempt) -> &'static str {
    match attempt {
        Attempt::Plain => "without TLS",
        Attempt::TlsPreferred | Attempt::TlsRequired => "with TLS",
    }
}

/// Connect as libpq would with `settings` to `host` (a TCP host, or a Unix
/// socket directory when it starts with `/`). `base` holds everything
/// else (port, user, password, database, options, timeouts). The
/// connection's task is spawned; `prefix` names keys in errors; `home` is
/// where `~/.postgresql` is looked for.
pub async fn connect(
    base: &tokio_postgres::Config,
    host: &str,
    settings: &ConnSettings,
    prefix: &str,
    home: Option<&Path>,
) -> Result<Client, ConnectError> {
    let attempts = settings.attempts(host.starts_with('/'));
    let mut earlier = Vec::new();
    for (i, attempt) in attempts.iter().enumerate() {
        let last_chance = i + 1 == attempts.len();
        let mut cfg = base.clone();
        cfg.channel_binding(match settings.channel_binding {
            ChannelBinding::Disable => tokio_postgres::config::ChannelBinding::Disable,
            ChannelBinding::Prefer => tokio_postgres::config::ChannelBinding::Prefer,
            ChannelBinding::Require => tokio_postgres::config::ChannelBinding::Require,
        });
        let result = match attempt {
            Attempt::Plain => {
                cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                spawned(cfg.connect(NoTls).await)
            }
            Attempt::TlsPreferred | Attempt::TlsRequired => {
                let setup = match settings.tls_setup(prefix, home) {
                    Ok(s) => s,
                    // libpq goes on with the next attempt when TLS cannot
                    // be set up in `allow` and `prefer` modes.
                    Err(e) if !last_chance => {
                        tracing::warn!("cannot set up TLS, trying without it: {e}");
                        earlier.push(e.to_string());
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                for note in &setup.notes {
                    tracing::warn!("{note}");
                }
                cfg.ssl_mode(if *attempt == Attempt::TlsPreferred {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                cfg.ssl_negotiation(match settings.sslnegotiation {
                    SslNegotiation::Postgres => tokio_postgres::config::SslNegotiation::Postgres,
                    SslNegotiation::Direct => tokio_postgres::config::SslNegotiation::Direct,
                });
                spawned(cfg.connect(MakeRustls::new(setup.config)).await)
            }
        };
        match result {
            Ok(client) => {
                check_session(&client, settings.target_session_attrs).await?;
                return Ok(client);
            }
            Err(e) if last_chance => return Err(ConnectError::Failed { last: e, earlier }),
            Err(e) => earlier.push(format!("{}: {}", describe(*attempt), error_text(&e))),
        }
    }
    // `attempts` is never empty; should it be, say so rather than panic.
    Err(ConnectError::Session("no connection attempt was made".into()))
}

/// Run the connection's task in the background; keep the client.
fn spawned<S, T>(
    result: Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
) -> Result<Client, tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = result?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("connection to postgres closed: {e}");
        }
    });
    Ok(client)
}

/// libpq's `target_session_attrs` check, for one host.
async fn check_session(client: &Client, attrs: TargetSessionAttrs) -> Result<(), ConnectError> {
    let (query, want_on, fail) = match attrs {
        TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby => return Ok(()),
        TargetSessionAttrs::ReadWrite => ("SHOW transaction_read_only", false, "session is read-only"),
        TargetSessionAttrs::ReadOnly => ("SHOW transaction_read_only", true, "session is not read-only"),
        TargetSessionAttrs::Primary => (
            "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN 'on' ELSE 'off' END",
            false,
            "server is in hot standby mode",
        ),
        TargetSessionAttrs::Standby => (
            "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN 'on' ELSE 'off' END",
            true,
            "server is not in hot standby mode",
        ),
    };
    let rows = client.simple_query(query).await.map_err(|e| ConnectError::Session(format!("{query}: {e}")))?;
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
        _ => None,
    });
    match value.as_deref() {
        Some("on") if want_on => Ok(()),
        Some("off") if !want_on => Ok(()),
        _ => Err(ConnectError::Session(fail.into())),
    }
}
