//! The `zookeeper:` section (and the ZooKeeper keys an `exhibitor:` section
//! shares with it): hosts, TLS, ACLs and authentication, read as Patroni
//! reads them, with errors that name the key.

use std::time::Duration;

use palisade_plugin_api::sdk::settings::{error, kind};
use palisade_plugin_api::PluginError;
use serde_json::{Map, Value};

/// ZooKeeper's default client port, used when a host has none.
pub const DEFAULT_PORT: u16 = 2181;

/// TLS towards ZooKeeper (`use_ssl: true`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// `cacert`: PEM file of the CAs that sign the servers' certificates.
    pub cacert: Option<String>,
    /// `cert` and `key`: the client's certificate and key (PEM files).
    pub cert: Option<String>,
    pub key: Option<String>,
    /// `key_password`: the password of an encrypted `key`.
    pub key_password: Option<String>,
    /// `verify`: check that the server's certificate names the host.
    pub verify: bool,
}

/// One entry of `set_acls`: `scheme:credential` (`x509` when there is no
/// scheme) and the permission bits it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclEntry {
    pub scheme: String,
    pub id: String,
    /// ZooKeeper's permission bits (READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16).
    pub perms: i32,
}

/// The ZooKeeper connection settings shared by both plugins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `host:port` of each server, in the order given.
    pub hosts: Vec<String>,
    /// The chroot after the host list (`h1:2181,h2:2181/patroni`), if any.
    pub chroot: Option<String>,
    pub tls: Option<Tls>,
    /// `set_acls`: the ACL every znode this plugin creates gets; empty
    /// means ZooKeeper's open ACL, as Patroni.
    pub acls: Vec<AclEntry>,
    /// `auth_data`: `(scheme, credential)` pairs sent on every connection.
    pub auth_data: Vec<(String, String)>,
}

/// The keys this module reads.
const KNOWN: [&str; 9] =
    ["hosts", "use_ssl", "verify", "cacert", "cert", "key", "key_password", "set_acls", "auth_data"];
/// The keys the Exhibitor plugin reads itself.
const EXHIBITOR: [&str; 2] = ["port", "poll_interval"];

/// The permission names `set_acls` accepts, as kazoo's `make_acl` does.
const PERMISSIONS: [(&str, i32); 6] =
    [("READ", 1), ("WRITE", 2), ("CREATE", 4), ("DELETE", 8), ("ADMIN", 16), ("ALL", 31)];

impl Settings {
    /// Read `section` (named `name` in errors). With `with_hosts`, `hosts`
    /// is the ZooKeeper servers and required; without (Exhibitor), `hosts`
    /// belongs to the caller and is not read here.
    pub fn parse(name: &str, section: &Value, with_hosts: bool) -> Result<Self, PluginError> {
        let Value::Object(map) = section else {
            return Err(error(name, "", format!("must be a map, found {}", kind(section))));
        };
        for key in map.keys() {
            let known = KNOWN.contains(&key.as_str()) || (name == "exhibitor" && EXHIBITOR.contains(&key.as_str()));
            if !known {
                tracing::warn!("{name}.{key} is not a setting of this store: ignored");
            }
        }
        let mut s = Settings::default();
        if with_hosts {
            let hosts = map.get("hosts").ok_or_else(|| error(name, "hosts", "is required"))?;
            let (hosts, chroot) = parse_hosts(hosts).map_err(|e| error(name, "hosts", e))?;
            s.hosts = hosts;
            s.chroot = chroot;
        }
        if boolean(name, map, "use_ssl")?.unwrap_or(false) {
            let tls = Tls {
                cacert: string(name, map, "cacert")?,
                cert: string(name, map, "cert")?,
                key: string(name, map, "key")?,
                key_password: string(name, map, "key_password")?,
                verify: boolean(name, map, "verify")?.unwrap_or(true),
            };
            if tls.cert.is_some() != tls.key.is_some() {
                let missing = if tls.cert.is_some() { "key" } else { "cert" };
                return Err(error(name, missing, "is required when a client certificate is configured"));
            }
            if tls.key_password.is_some() && tls.key.is_none() {
                tracing::warn!("{name}.key_password is ignored: there is no key");
            }
            s.tls = Some(tls);
        } else {
            // Patroni ignores the TLS keys without use_ssl; say so rather than
            // silently dropping them.
            for k in ["cacert", "cert", "key", "key_password", "verify"] {
                if map.contains_key(k) {
                    tracing::warn!("{name}.{k} is ignored: use_ssl is not true");
                }
            }
        }
        if let Some(v) = map.get("set_acls") {
            s.acls = parse_acls(v).map_err(|(key, e)| error(name, &key, e))?;
        }
        if let Some(v) = map.get("auth_data") {
            let Value::Object(auth) = v else {
                return Err(error(
                    name,
                    "auth_data",
                    format!("must be a map of scheme: credential, found {}", kind(v)),
                ));
            };
            for (scheme, cred) in auth {
                let Value::String(cred) = cred else {
                    return Err(error(
                        name,
                        &format!("auth_data.{scheme}"),
                        format!("must be a string, found {}", kind(cred)),
                    ));
                };
                s.auth_data.push((scheme.clone(), cred.clone()));
            }
        }
        Ok(s)
    }

    /// The connection string for the client (`h1:2181,h2:2181/chroot`).
    pub fn connect_string(&self) -> String {
        with_chroot(&self.hosts.join(","), self.chroot.as_deref())
    }
}

pub(crate) fn with_chroot(hosts: &str, chroot: Option<&str>) -> String {
    match chroot {
        Some(c) => format!("{hosts}{c}"),
        None => hosts.to_string(),
    }
}

fn boolean(name: &str, map: &Map<String, Value>, key: &str) -> Result<Option<bool>, PluginError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => palisade_plugin_api::sdk::pycompat::patroni::parse_bool(s)
            .map(Some)
            .ok_or_else(|| error(name, key, format!("must be a boolean, found '{s}'"))),
        Some(v) => Err(error(name, key, format!("must be a boolean, found {}", kind(v)))),
    }
}

fn string(name: &str, map: &Map<String, Value>, key: &str) -> Result<Option<String>, PluginError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(error(name, key, format!("must be a string, found {}", kind(v)))),
    }
}

/// `hosts` as Patroni takes it: a comma-separated string or a list of
/// `host[:port]`; a chroot may follow the last host (`.../chroot`), as
/// kazoo allows. Ports default to 2181.
pub fn parse_hosts(v: &Value) -> Result<(Vec<String>, Option<String>), String> {
    let joined = match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => parts.push(s.clone()),
                    other => return Err(format!("item {i} must be a string, found {}", kind(other))),
                }
            }
            parts.join(",")
        }
        other => return Err(format!("must be a list of host:port or a comma-separated string, found {}", kind(other))),
    };
    let (list, chroot) = match joined.find('/') {
        Some(i) => (&joined[..i], Some(&joined[i..])),
        None => (joined.as_str(), None),
    };
    let chroot = match chroot.map(|c| c.trim_end_matches('/')) {
        None | Some("") => None,
        Some(c) if c.contains("//") || c.contains(',') => return Err(format!("'{c}' is not a valid chroot")),
        Some(c) => Some(c.to_string()),
    };
    let mut hosts = Vec::new();
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        hosts.push(host_port(part)?);
    }
    if hosts.is_empty() {
        return Err("names no host".into());
    }
    Ok((hosts, chroot))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, with the default port added.
fn host_port(part: &str) -> Result<String, String> {
    let (host, port) = if let Some(rest) = part.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| format!("'{part}': missing ']'"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| format!("'{part}': expected ':' after ']'"))?),
        };
        (format!("[{h}]"), port)
    } else {
        match part.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!("'{part}': write an IPv6 address as [address]:port"))
            }
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (part.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("'{part}': empty host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("'{part}': '{p}' is not a port")),
        },
    };
    Ok(format!("{host}:{port}"))
}

/// `set_acls`: principal -> list of permissions. Errors carry the key path.
fn parse_acls(v: &Value) -> Result<Vec<AclEntry>, (String, String)> {
    let Value::Object(map) = v else {
        return Err(("set_acls".into(), format!("must be a map of principal: [permissions], found {}", kind(v))));
    };
    let mut out = Vec::with_capacity(map.len());
    for (principal, perms) in map {
        let key = format!("set_acls.{principal}");
        let Value::Array(perms) = perms else {
            return Err((key, format!("must be a list of permissions, found {}", kind(perms))));
        };
        let mut bits = 0;
        for p in perms {
            let Value::String(p) = p else {
                return Err((key, format!("permissions must be strings, found {}", kind(p))));
            };
            let upper = p.to_uppercase();
            match PERMISSIONS.iter().find(|(n, _)| *n == upper) {
                Some((_, b)) => bits |= b,
                None => {
                    return Err((
                        key,
                        format!("unknown permission '{p}' (use READ, WRITE, CREATE, DELETE, ADMIN or ALL)"),
                    ))
                }
            }
        }
        let (scheme, id) = match principal.split_once(':') {
            Some((s, c)) => (s.to_string(), c.to_string()),
            None => ("x509".to_string(), principal.clone()),
        };
        out.push(AclEntry { scheme, id, perms: bits });
    }
    Ok(out)
}

/// The session timeout Patroni asks ZooKeeper for: `ttl` itself (kazoo's
/// `timeout`), in whole milliseconds. The server may clamp it to its
/// `minSessionTimeout`..`maxSessionTimeout`.
pub fn session_timeout(ttl: Duration) -> Duration {
    Duration::from_millis(ttl.as_millis().min(u128::from(u32::MAX)) as u64)
}

/// How long one connection attempt may take: Patroni's handler tries each
/// server for `max(1, retry_timeout / 2)` seconds ("fail early, retry more
/// often").
pub fn connect_timeout(retry_timeout: Duration) -> Duration {
    (retry_timeout / 2).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosts_in_every_form() {
        let cases: &[(Value, &[&str], Option<&str>)] = &[
            (json!("h1:2181,h2:2182"), &["h1:2181", "h2:2182"], None),
            (json!("h1, h2 ,h3:1"), &["h1:2181", "h2:2181", "h3:1"], None),
            (json!(["h1:2181", "h2"]), &["h1:2181", "h2:2181"], None),
            (json!("127.0.0.1"), &["127.0.0.1:2181"], None),
            (json!("h1:2181,h2:2181/patroni"), &["h1:2181", "h2:2181"], Some("/patroni")),
            (json!(["h1", "h2:2000/a/b/"]), &["h1:2181", "h2:2000"], Some("/a/b")),
            (json!("h1/"), &["h1:2181"], None),
            (json!("[::1]:2181,[fe80::1]"), &["[::1]:2181", "[fe80::1]:2181"], None),
        ];
        for (v, hosts, chroot) in cases {
            let (h, c) = parse_hosts(v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(h, *hosts, "{v}");
            assert_eq!(c.as_deref(), *chroot, "{v}");
        }
    }

    #[test]
    fn bad_hosts_say_why() {
        let cases: &[(Value, &str)] = &[
            (json!(""), "names no host"),
            (json!(" , "), "names no host"),
            (json!("h1:x"), "'x' is not a port"),
            (json!("h1:0"), "is not a port"),
            (json!("::1:2181"), "[address]:port"),
            (json!([1]), "item 0 must be a string, found a number"),
            (json!(5), "found a number"),
            (json!("h1/a//b"), "not a valid chroot"),
            (json!("[::1"), "missing ']'"),
        ];
        for (v, want) in cases {
            let e = parse_hosts(v).expect_err(&v.to_string());
            assert!(e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn full_section() {
        let s = Settings::parse(
            "zookeeper",
            &json!({
                "hosts": ["z1:2181", "z2"],
                "use_ssl": true, "cacert": "/ca.pem", "cert": "/c.pem", "key": "/k.pem", "verify": false,
                "key_password": "pw",
                "set_acls": {"CN=principal1": ["ALL"], "digest:user:hash=": ["read", "Write"]},
                "auth_data": {"digest": "user:pass"},
            }),
            true,
        )
        .expect("valid");
        assert_eq!(s.connect_string(), "z1:2181,z2:2181");
        assert_eq!(
            s.tls,
            Some(Tls {
                cacert: Some("/ca.pem".into()),
                cert: Some("/c.pem".into()),
                key: Some("/k.pem".into()),
                key_password: Some("pw".into()),
                verify: false
            })
        );
        assert_eq!(
            s.acls,
            vec![
                AclEntry { scheme: "x509".into(), id: "CN=principal1".into(), perms: 31 },
                AclEntry { scheme: "digest".into(), id: "user:hash=".into(), perms: 3 },
            ]
        );
        assert_eq!(s.auth_data, vec![("digest".to_string(), "user:pass".to_string())]);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(Value, &str)] = &[
            (json!({}), "zookeeper.hosts: is required"),
            (json!({"hosts": 1}), "zookeeper.hosts: must be a list"),
            (json!({"hosts": "h", "use_ssl": "maybe"}), "zookeeper.use_ssl: must be a boolean"),
            (json!({"hosts": "h", "use_ssl": true, "cert": "/c"}), "zookeeper.key: is required"),
            (json!({"hosts": "h", "use_ssl": true, "key_password": 5}), "zookeeper.key_password: must be a string"),
            (json!({"hosts": "h", "set_acls": []}), "zookeeper.set_acls: must be a map"),
            (json!({"hosts": "h", "set_acls": {"p": "ALL"}}), "zookeeper.set_acls.p: must be a list"),
            (json!({"hosts": "h", "set_acls": {"p": ["FLY"]}}), "zookeeper.set_acls.p: unknown permission 'FLY'"),
            (json!({"hosts": "h", "auth_data": {"digest": 1}}), "zookeeper.auth_data.digest: must be a string"),
            (json!({"hosts": "h", "auth_data": "x"}), "zookeeper.auth_data: must be a map"),
            (json!([]), "zookeeper: must be a map"),
        ];
        for (v, want) in cases {
            let e = Settings::parse("zookeeper", v, true).expect_err(&v.to_string());
            assert_eq!(e.kind, palisade_plugin_api::ErrorKind::Config, "{v}");
            assert!(e.message.starts_with(want), "{v}: {}", e.message);
        }
    }

    #[test]
    fn exhibitor_leaves_hosts_alone() {
        let s = Settings::parse("exhibitor", &json!({"hosts": ["e1"], "port": 8181, "auth_data": {}}), false)
            .expect("valid");
        assert!(s.hosts.is_empty());
    }

    #[test]
    fn timeouts_from_timing() {
        assert_eq!(session_timeout(Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(session_timeout(Duration::from_millis(4500)), Duration::from_millis(4500));
        assert_eq!(connect_timeout(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(connect_timeout(Duration::from_secs(1)), Duration::from_secs(1));
    }
}
