//! The password file libpq reads (`PGPASSFILE`, `passfile=`), written as
//! Patroni writes it: one line per host, for the given port and user, any
//! database.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::conninfo::ConnParams;
use super::quote::pgpass_field;

/// Patroni's `_pgpass_content`: `host:port:*:user:password` lines for the
/// `host`, `port`, `user` and `password` of `params`, one per host when
/// `host` lists several; `*` for a missing field; a socket directory host
/// also gets a `localhost` line. `None` without a password.
pub fn pgpass_content(params: &ConnParams) -> Option<String> {
    let password = params.get("password")?;
    let host = params.get("host").map(String::as_str).filter(|h| !h.is_empty()).unwrap_or("*");
    let mut hosts: Vec<String> = host.split(',').map(str::trim).filter(|h| !h.is_empty()).map(pgpass_field).collect();
    if hosts.iter().any(|h| h.starts_with('/')) && !hosts.iter().any(|h| h == "localhost") {
        hosts.push("localhost".into());
    }
    let field = |k: &str| pgpass_field(params.get(k).map(String::as_str).filter(|v| !v.is_empty()).unwrap_or("*"));
    let (port, user, password) = (field("port"), field("user"), pgpass_field(password));
    Some(hosts.iter().map(|h| format!("{h}:{port}:*:{user}:{password}\n")).collect())
}

/// Write `content` to `path` with mode 0600 (libpq ignores a password file
/// others can read). The file is replaced as a whole.
pub fn write_pgpass(path: &Path, content: &str) -> io::Result<()> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "'{}' exists and it's not a file, check your `postgresql.pgpass` configuration",
                    path.display()
                ),
            ));
        }
    }
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ConnParams {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn content_table() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            (
                &[("host", "10.0.0.1"), ("port", "5432"), ("user", "rep"), ("password", "pw")],
                Some("10.0.0.1:5432:*:rep:pw\n"),
            ),
            (
                &[("host", "h1, h2"), ("port", "5432"), ("user", "rep"), ("password", "a:b\\c")],
                Some("h1:5432:*:rep:a\\:b\\\\c\nh2:5432:*:rep:a\\:b\\\\c\n"),
            ),
            (
                &[("host", "/var/run/postgresql"), ("port", "5432"), ("user", "postgres"), ("password", "pw")],
                Some("/var/run/postgresql:5432:*:postgres:pw\nlocalhost:5432:*:postgres:pw\n"),
            ),
            (&[("port", "5432"), ("password", "pw")], Some("*:5432:*:*:pw\n")),
            (&[("host", "::1"), ("port", "5432"), ("user", "u"), ("password", "pw")], Some("\\:\\:1:5432:*:u:pw\n")),
            (&[("host", "h"), ("user", "u")], None),
        ];
        for (p, want) in cases {
            assert_eq!(pgpass_content(&params(p)).as_deref(), *want, "{p:?}");
        }
    }

    #[test]
    fn written_with_mode_0600() {
        let path = std::env::temp_dir().join(format!("palisade-pgpass-test-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        fs::write(&path, "old\nlonger content\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_pgpass(&path, "h:1:*:u:p\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "h:1:*:u:p\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        fs::remove_file(&path).unwrap();
        assert!(write_pgpass(&std::env::temp_dir(), "x").is_err());
    }
}
