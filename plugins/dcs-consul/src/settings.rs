//! The `consul:` section, read as Patroni's `consul.py` reads it:
//!
//! - the agent's address is `url` (`scheme://host[:port]`, port 8500 when
//!   absent; it sets scheme, host and port), else `host` (`host[:port]`,
//!   an explicit `port` key wins over the port in it), else
//!   `127.0.0.1:8500`; `scheme` (default `http`) applies without `url`;
//! - `verify` is read with `parse_bool` (default true); a `cacert` turns
//!   verification on whatever `verify` says, as in Patroni;
//! - `cert` is a PEM with the key, or the certificate with `key` beside it;
//! - empty strings count as unset, as Patroni's `if config.get(p)`.

use std::path::PathBuf;

use palisade_plugin_api::sdk::pycompat::patroni::parse_bool;
use palisade_plugin_api::sdk::pycompat::py::truthy;
use palisade_plugin_api::sdk::settings::{error, kind};
use palisade_plugin_api::PluginResult;
use serde_json::{Map, Value};

const SECTION: &str = "consul";
pub(crate) const DEFAULT_PORT: u16 = 8500;

/// Which reads may be served by whom (Consul's `?consistent` / `?stale`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Consistency {
    Default,
    Consistent,
    Stale,
}

impl Consistency {
    /// The query parameter of a read in this mode, if any.
    pub(crate) fn param(self) -> Option<&'static str> {
        match self {
            Consistency::Default => None,
            Consistency::Consistent => Some("consistent"),
            Consistency::Stale => Some("stale"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub token: Option<String>,
    pub verify: bool,
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    /// `None` with a `cert`: the key is in the certificate file.
    pub key: Option<PathBuf>,
    pub dc: Option<String>,
    pub consistency: Consistency,
    /// Check ids the session is bound to (Patroni's default: none, so only
    /// the session TTL counts).
    pub checks: Vec<String>,
    pub register_service: bool,
    /// Sorted, as Patroni keeps them.
    pub service_tags: Vec<String>,
    pub service_check_interval: String,
    pub service_check_tls_server_name: Option<String>,
}

impl Settings {
    /// `scheme://host:port`, brackets around an IPv6 address.
    pub(crate) fn base_url(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => format!("{} ({other})", kind(other)),
    }
}

/// A string setting; numbers are taken as their text, empty means unset.
fn string(map: &Map<String, Value>, key: &str) -> PluginResult<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(error(SECTION, key, format!("expected a string, found {}", show(other)))),
    }
}

/// A list of strings; a comma-separated string is split (the form the
/// environment variables give).
fn strings(map: &Map<String, Value>, key: &str) -> PluginResult<Vec<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => {
            Ok(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => {
                    Err(error(SECTION, &format!("{key}.{i}"), format!("expected a string, found {}", show(other))))
                }
            })
            .collect(),
        Some(other) => Err(error(SECTION, key, format!("expected a list of strings, found {}", show(other)))),
    }
}

fn port_value(key: &str, v: &Value) -> PluginResult<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| error(SECTION, key, format!("expected a port number (1-65535), found {}", show(v))))
}

/// `host[:port]` or `[v6][:port]`; the host without brackets.
pub(crate) fn split_host_port(key: &str, text: &str, default_port: u16) -> PluginResult<(String, u16)> {
    let text = text.trim();
    let bad = |what: &str| error(SECTION, key, format!("'{text}': {what}"));
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("an IPv6 address without its closing ']'"))?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or_else(|| bad("expected ':' and a port after ']'"))?)),
        }
    } else {
        match text.rsplit_once(':') {
            // A bare IPv6 address: no port in it.
            Some((h, _)) if h.contains(':') => (text, None),
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => port_value(key, &Value::String(p.to_string()))?,
    };
    Ok((host.to_string(), port))
}

/// `scheme://host[:port][/path]` as Python's `urlparse` takes it apart.
pub(crate) fn parse_url(text: &str) -> PluginResult<(String, String, u16)> {
    let (scheme, rest) = text
        .trim()
        .split_once("://")
        .ok_or_else(|| error(SECTION, "url", format!("'{text}' is not a URL (expected scheme://host[:port])")))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(error(SECTION, "url", format!("'{text}': the scheme must be http or https")));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // user:password@ is not a thing for Consul; drop it as urlparse does for hostname.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = split_host_port("url", authority, DEFAULT_PORT)?;
    Ok((scheme, host.to_ascii_lowercase(), port))
}

impl Settings {
    pub(crate) fn parse(section_json: &str) -> PluginResult<Settings> {
        let value: Value = if section_json.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(section_json).map_err(|e| error(SECTION, "", format!("not valid JSON: {e}")))?
        };
        let map = match value {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => return Err(error(SECTION, "", format!("expected a mapping, found {}", kind(&other)))),
        };
        let mut scheme = string(&map, "scheme")?.unwrap_or_else(|| "http".into()).to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(error(SECTION, "scheme", format!("'{scheme}': expected http or https")));
        }
        let explicit_port = match map.get("port") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(v) => Some(port_value("port", v)?),
        };
        let (host, port) = if let Some(url) = string(&map, "url")? {
            // The URL decides scheme, host and port (an explicit port too).
            let (s, h, p) = parse_url(&url)?;
            scheme = s;
            (h, p)
        } else if let Some(host) = string(&map, "host")? {
            let (h, p) = split_host_port("host", &host, DEFAULT_PORT)?;
            (h, explicit_port.unwrap_or(p))
        } else {
            ("127.0.0.1".to_string(), explicit_port.unwrap_or(DEFAULT_PORT))
        };
        let verify = match map.get("verify") {
            None | Some(Value::Null) => true,
            Some(v) => match parse_bool(v) {
                Some(b) => b,
                None => {
                    tracing::warn!("consul.verify: {} is not a boolean; certificates are verified", show(v));
                    true
                }
            },
        };
        let consistency = match string(&map, "consistency")?.as_deref() {
            None | Some("default") => Consistency::Default,
            Some("consistent") => Consistency::Consistent,
            Some("stale") => Consistency::Stale,
            Some(other) => {
                return Err(error(
                    SECTION,
                    "consistency",
                    format!("'{other}': expected one of default, consistent, stale"),
                ))
            }
        };
        // Patroni reads it with Python's truth value (the host's
        // validation warns about anything but a boolean): 'false' is true.
        let register_service = map.get("register_service").is_some_and(truthy);
        let mut service_tags = strings(&map, "service_tags")?;
        service_tags.sort();
        let cacert = string(&map, "cacert")?.map(PathBuf::from);
        let cert = string(&map, "cert")?.map(PathBuf::from);
        let key = string(&map, "key")?.map(PathBuf::from);
        if key.is_some() && cert.is_none() {
            tracing::warn!("consul.key is set without consul.cert: it is not used");
        }
        Ok(Settings {
            scheme,
            host,
            port,
            token: string(&map, "token")?,
            verify: verify || cacert.is_some(),
            key: if cert.is_some() { key } else { None },
            cacert,
            cert,
            dc: string(&map, "dc")?,
            consistency,
            checks: strings(&map, "checks")?,
            register_service,
            service_tags,
            service_check_interval: string(&map, "service_check_interval")?.unwrap_or_else(|| "5s".into()),
            service_check_tls_server_name: string(&map, "service_check_tls_server_name")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Settings {
        Settings::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn err(json: &str) -> String {
        Settings::parse(json).expect_err(json).message
    }

    #[test]
    fn address_forms() {
        let cases: &[(&str, &str)] = &[
            ("{}", "http://127.0.0.1:8500"),
            ("null", "http://127.0.0.1:8500"),
            (r#"{"host": "consul.local"}"#, "http://consul.local:8500"),
            (r#"{"host": "consul.local:8501"}"#, "http://consul.local:8501"),
            (r#"{"host": "consul.local:8501", "port": 9000}"#, "http://consul.local:9000"),
            (r#"{"host": "10.0.0.1", "port": "8600", "scheme": "https"}"#, "https://10.0.0.1:8600"),
            (r#"{"host": "[::1]:8501"}"#, "http://[::1]:8501"),
            (r#"{"host": "::1"}"#, "http://[::1]:8500"),
            (r#"{"port": 8502}"#, "http://127.0.0.1:8502"),
            (r#"{"url": "https://Consul.Example:8443/ignored"}"#, "https://consul.example:8443"),
            (r#"{"url": "http://c1", "port": 9999, "scheme": "https"}"#, "http://c1:8500"),
            (r#"{"url": "https://[fe80::1]:8501", "host": "ignored:1"}"#, "https://[fe80::1]:8501"),
            (r#"{"url": "", "host": "h:1"}"#, "http://h:1"),
        ];
        for (json, want) in cases {
            assert_eq!(parse(json).base_url(), *want, "{json}");
        }
    }

    #[test]
    fn bad_addresses_name_the_key() {
        let cases: &[(&str, &str)] = &[
            (r#"{"url": "consul:8500"}"#, "consul.url: 'consul:8500' is not a URL"),
            (r#"{"url": "ftp://c"}"#, "consul.url: 'ftp://c': the scheme must be http or https"),
            (r#"{"host": "h:http"}"#, "consul.host: expected a port number"),
            (r#"{"host": "h:0"}"#, "consul.host: expected a port number"),
            (r#"{"port": 70000}"#, "consul.port: expected a port number"),
            (r#"{"host": "[::1"}"#, "consul.host: '[::1': an IPv6 address without"),
            (r#"{"host": ":8500"}"#, "consul.host: ':8500': no host"),
            (r#"{"scheme": "tcp"}"#, "consul.scheme: 'tcp': expected http or https"),
            (r#"{"host": ["a"]}"#, "consul.host: expected a string, found a list"),
            (r#"{"consistency": "strong"}"#, "consul.consistency: 'strong': expected one of"),
            (r#"{"checks": "a", "service_tags": [1]}"#, "consul.service_tags.0: expected a string, found a number"),
            ("[1]", "consul: expected a mapping, found a list"),
        ];
        for (json, want) in cases {
            let got = err(json);
            assert!(got.starts_with(want), "{json}: {got}");
        }
    }

    #[test]
    fn the_other_settings() {
        let s = parse(
            r#"{"token": "t0k", "dc": "dc2", "consistency": "stale", "checks": ["serfHealth", "x"],
                "register_service": true, "service_tags": ["b", "a"], "service_check_interval": "10s",
                "service_check_tls_server_name": "pg.example", "verify": "false",
                "cert": "/c.pem", "key": "/k.pem"}"#,
        );
        assert_eq!(s.token.as_deref(), Some("t0k"));
        assert_eq!(s.dc.as_deref(), Some("dc2"));
        assert_eq!(s.consistency, Consistency::Stale);
        assert_eq!(s.consistency.param(), Some("stale"));
        assert_eq!(s.checks, ["serfHealth", "x"]);
        assert!(s.register_service);
        assert_eq!(s.service_tags, ["a", "b"], "sorted, as Patroni");
        assert_eq!(s.service_check_interval, "10s");
        assert_eq!(s.service_check_tls_server_name.as_deref(), Some("pg.example"));
        assert!(!s.verify);
        assert_eq!(s.cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(s.key, Some(PathBuf::from("/k.pem")));

        let d = parse("{}");
        assert_eq!(d.consistency, Consistency::Default);
        assert_eq!(d.consistency.param(), None);
        assert!(d.checks.is_empty(), "no checks: only the session TTL counts");
        assert!(!d.register_service);
        assert_eq!(d.service_check_interval, "5s");
        assert!(d.verify);
        assert_eq!((d.token, d.dc, d.cacert, d.cert, d.key), (None, None, None, None, None));

        assert!(parse(r#"{"verify": false, "cacert": "/ca.pem"}"#).verify, "a cacert means verify, as Patroni");
        assert!(parse(r#"{"verify": "garbage"}"#).verify);
        assert_eq!(parse(r#"{"key": "/k.pem"}"#).key, None, "a key without a cert is not used");
        assert_eq!(parse(r#"{"consistency": "consistent"}"#).consistency.param(), Some("consistent"));
        assert_eq!(parse(r#"{"checks": "a, b"}"#).checks, ["a", "b"], "the environment's comma-separated form");
        assert_eq!(parse(r#"{"token": ""}"#).token, None, "empty is unset");
        assert!(parse(r#"{"register_service": "false"}"#).register_service, "Python's bool('false'), as Patroni");
        assert!(!parse(r#"{"register_service": 0}"#).register_service);
        assert!(!parse(r#"{"register_service": ""}"#).register_service);
    }
}
