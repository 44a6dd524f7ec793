//! libpq connection strings as Patroni builds them (`primary_conninfo_params`,
//! `format_dsn`, `Member.conn_kwargs`).

use std::collections::BTreeMap;

use palisade_config::RoleAuth;

use super::quote::dsn_value;

/// libpq keywords Patroni writes, in its order. `passfile` replaces
/// `password` when both are known.
const KEYWORDS: &[&str] = &[
    "dbname",
    "user",
    "password",
    "host",
    "port",
    "sslmode",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "application_name",
    "krbsrvname",
    "gssencmode",
    "channel_binding",
    "target_session_attrs",
    "sslnegotiation",
];

/// The first major version that knows a keyword.
fn keyword_min_version(keyword: &str) -> u32 {
    match keyword {
        "target_session_attrs" => 100000,
        "gssencmode" => 120000,
        "channel_binding" | "sslpassword" => 130000,
        "sslcrldir" => 140000,
        "sslnegotiation" => 170000,
        _ => 0,
    }
}

/// Connection parameters by libpq keyword (`user`, not `username`).
pub type ConnParams = BTreeMap<String, String>;

/// Patroni's `format_dsn`: `key=value` pairs in its keyword order, values
/// escaped, keywords the `major` version does not know left out.
/// `passfile` is written instead of `password` when present.
pub fn format_dsn(params: &ConnParams, major: u32) -> String {
    let has_passfile = params.contains_key("passfile");
    KEYWORDS
        .iter()
        .map(|k| if *k == "password" && has_passfile { "passfile" } else { k })
        .filter(|k| major >= keyword_min_version(k))
        .filter_map(|k| params.get(k).map(|v| format!("{k}={}", dsn_value(v))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Credentials as connection parameters: `user`, `password` and the
/// `sslmode`/`sslcert`/... settings of the role.
pub fn auth_params(auth: &RoleAuth) -> ConnParams {
    let mut p: ConnParams = auth.ssl.clone();
    p.remove("options");
    p.remove("connect_timeout");
    if !auth.username.is_empty() {
        p.insert("user".into(), auth.username.clone());
    }
    if let Some(pw) = &auth.password {
        p.insert("password".into(), pw.clone());
    }
    p
}

/// Whom to stream from (or rewind from): a member, or the remote primary of
/// a standby cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowTarget {
    /// The member's name (`None` for a remote source given by address).
    pub name: Option<String>,
    /// One host or several, comma-separated (standby clusters). Empty for
    /// the remote primary of a standby cluster fed only by its archive
    /// (`restore_command` without `host`): nothing to stream from.
    pub host: String,
    pub port: u16,
    /// From the member's URL path; Patroni uses `postgres` when empty.
    pub dbname: Option<String>,
    /// Set when following the primary of another cluster
    /// (`standby_cluster`), which changes the slot and command rules.
    pub remote: Option<RemoteSource>,
    /// In a standby cluster, the archive commands every member's recovery
    /// uses, whoever it follows (Patroni puts them on the member to follow).
    pub archive: ArchiveCommands,
}

/// `standby_cluster` settings that shape the standby leader's recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteSource {
    /// `standby_cluster.primary_slot_name`; no slot when `None`.
    pub primary_slot_name: Option<String>,
    pub recovery_min_apply_delay: Option<String>,
}

/// `restore_command` and `archive_cleanup_command` of a standby cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveCommands {
    pub restore_command: Option<String>,
    pub archive_cleanup_command: Option<String>,
}

impl FollowTarget {
    /// A member of this cluster from its `conn_url`
    /// (`postgres://host:port/dbname`). `None` when the URL cannot be read.
    pub fn member(name: &str, conn_url: &str) -> Option<Self> {
        let url = palisade_model::parse_postgres_url(conn_url)?;
        Some(Self {
            name: Some(name.to_string()),
            host: url.host.to_lowercase(),
            port: url.port,
            dbname: Some(url.dbname).filter(|d| !d.is_empty()),
            remote: None,
            archive: ArchiveCommands::default(),
        })
    }

    /// The remote primary of a standby cluster, at `host:port` (`host`
    /// empty when it is reached only through `restore_command`).
    pub fn remote(host: &str, port: u16, remote: RemoteSource, archive: ArchiveCommands) -> Self {
        Self { name: None, host: host.to_string(), port, dbname: None, remote: Some(remote), archive }
    }

    /// Patroni's `Member.conn_kwargs(auth)`: host, port, dbname plus the
    /// role's credentials and SSL settings.
    pub fn conn_params(&self, auth: &RoleAuth) -> ConnParams {
        let mut p = ConnParams::new();
        p.insert("host".into(), self.host.clone());
        p.insert("port".into(), self.port.to_string());
        if let Some(db) = &self.dbname {
            p.insert("dbname".into(), db.clone());
        }
        p.extend(auth_params(auth));
        p
    }
}

/// Patroni's `primary_conninfo_params`: the target's address, the
/// replication credentials, `application_name` = our member name, and
/// `sslmode`/`gssencmode`/`channel_binding` defaulting to `prefer`.
/// `None` when there is nobody to follow (no target, or ourselves).
pub fn primary_conninfo_params(
    target: Option<&FollowTarget>,
    our_name: &str,
    replication: &RoleAuth,
    major: u32,
) -> Option<ConnParams> {
    let target = target?;
    if target.name.as_deref() == Some(our_name) || target.host.is_empty() {
        return None;
    }
    let mut p = target.conn_params(replication);
    p.insert("application_name".into(), our_name.to_string());
    p.entry("sslmode".into()).or_insert_with(|| "prefer".into());
    if major >= 120000 {
        p.entry("gssencmode".into()).or_insert_with(|| "prefer".into());
    }
    if major >= 130000 {
        p.entry("channel_binding".into()).or_insert_with(|| "prefer".into());
    }
    if major >= 170000 {
        p.entry("sslnegotiation".into()).or_insert_with(|| "postgres".into());
    }
    if p.get("dbname").is_none_or(|d| d.is_empty()) {
        p.insert("dbname".into(), "postgres".into());
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replication() -> RoleAuth {
        RoleAuth { username: "replicator".into(), password: Some("rep pass".into()), ssl: Default::default() }
    }

    #[test]
    fn member_targets() {
        let t = FollowTarget::member("node1", "postgres://Host1.Example:5433/postgres").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.dbname.as_deref()), ("host1.example", 5433, Some("postgres")));
        let t = FollowTarget::member("node1", "postgres://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.dbname.as_deref()), ("::1", 5432, None));
        assert_eq!(FollowTarget::member("x", "not a url"), None);
    }

    #[test]
    fn primary_conninfo_like_patroni() {
        let t = FollowTarget::member("node1", "postgres://127.0.0.1:5433/postgres").unwrap();
        let mut p = primary_conninfo_params(Some(&t), "node2", &replication(), 150000).unwrap();
        assert_eq!(
            format_dsn(&p, 150000),
            r"dbname=postgres user=replicator password=rep\ pass host=127.0.0.1 port=5433 sslmode=prefer application_name=node2 gssencmode=prefer channel_binding=prefer"
        );
        p.insert("passfile".into(), "/home/pg/pgpass".into());
        assert_eq!(
            format_dsn(&p, 150000),
            "dbname=postgres user=replicator passfile=/home/pg/pgpass host=127.0.0.1 port=5433 sslmode=prefer application_name=node2 gssencmode=prefer channel_binding=prefer"
        );
        // Older servers do not get keywords they do not know.
        assert_eq!(
            format_dsn(&p, 110000),
            "dbname=postgres user=replicator passfile=/home/pg/pgpass host=127.0.0.1 port=5433 sslmode=prefer application_name=node2"
        );
        // Never follow ourselves; nothing to follow without a target.
        assert_eq!(primary_conninfo_params(Some(&t), "node1", &replication(), 150000), None);
        assert_eq!(primary_conninfo_params(None, "node2", &replication(), 150000), None);
    }

    #[test]
    fn ssl_settings_pass_through() {
        let mut auth = replication();
        auth.ssl.insert("sslmode".into(), "verify-full".into());
        auth.ssl.insert("sslrootcert".into(), "/certs/ca.pem".into());
        auth.ssl.insert("channel_binding".into(), "require".into());
        auth.ssl.insert("target_session_attrs".into(), "read-write".into());
        auth.password = None;
        let t = FollowTarget::member("node1", "postgres://db1:5432/app").unwrap();
        let p = primary_conninfo_params(Some(&t), "node 2", &auth, 150000).unwrap();
        assert_eq!(
            format_dsn(&p, 150000),
            r"dbname=app user=replicator host=db1 port=5432 sslmode=verify-full sslrootcert=/certs/ca.pem application_name=node\ 2 gssencmode=prefer channel_binding=require target_session_attrs=read-write"
        );
    }
}
