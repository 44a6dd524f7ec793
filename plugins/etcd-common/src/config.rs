//! The connection keys of the `etcd:` and `etcd3:` sections (Patroni reads
//! both with one client configuration), from the JSON the host hands over.

use std::path::PathBuf;
use std::time::Duration;

use palisade_plugin_api::{PluginError, PluginResult};
use serde_json::{Map, Value};

use crate::endpoints::{self, Protocol, DEFAULT_PORT};

/// Where the endpoints come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A fixed list of `proto://host:port` URLs.
    Urls(Vec<String>),
    /// DNS SRV discovery under `domain`; `fallback` (from `hosts`, `url` or
    /// `host`) is used when no record is found.
    Srv { domain: String, suffix: Option<String>, fallback: Vec<String> },
}

/// Client certificate and trust settings (used only with https endpoints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    /// `None` with a `cert`: the key is in the certificate file.
    pub key: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub source: Source,
    /// Treat the endpoints as proxies: no discovery of the cluster members.
    pub use_proxies: bool,
    /// Protocol for endpoints given without one (and for SRV results).
    pub protocol: Protocol,
    pub credentials: Option<(String, String)>,
    pub tls: TlsFiles,
    /// `ttl`, `loop_wait`, `retry_timeout` given inside the section override
    /// the host's timing at start.
    pub ttl: Option<Duration>,
    pub loop_wait: Option<Duration>,
    pub retry_timeout: Option<Duration>,
}

fn err(sec: &str, key: &str, what: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!("{sec}.{key}: {what}"))
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn string(sec: &str, map: &Map<String, Value>, key: &str) -> PluginResult<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(err(sec, key, format!("expected a string, found {}", show(other)))),
    }
}

/// A non-empty string (empty strings count as unset, as in Patroni).
fn nonempty(sec: &str, map: &Map<String, Value>, key: &str) -> PluginResult<Option<String>> {
    Ok(string(sec, map, key)?.filter(|s| !s.trim().is_empty()))
}

fn boolean(sec: &str, map: &Map<String, Value>, key: &str) -> PluginResult<bool> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => Ok(n.as_i64() == Some(1)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
            "0" | "false" | "no" | "off" | "n" | "f" | "" => Ok(false),
            _ => Err(err(sec, key, format!("expected a boolean, found '{s}'"))),
        },
        Some(other) => Err(err(sec, key, format!("expected a boolean, found {}", show(other)))),
    }
}

fn seconds(sec: &str, map: &Map<String, Value>, key: &str) -> PluginResult<Option<Duration>> {
    let secs = match map.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match secs {
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        _ => Err(err(sec, key, format!("expected a positive number of seconds, found {}", show(&map[key])))),
    }
}

fn port(sec: &str, map: &Map<String, Value>) -> PluginResult<u16> {
    let Some(v) = map.get("port").filter(|v| !v.is_null()) else {
        return Ok(DEFAULT_PORT);
    };
    let parsed = match v {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(s) => s.trim().parse::<u16>().ok(),
        _ => None,
    };
    parsed.filter(|p| *p > 0).ok_or_else(|| err(sec, "port", format!("expected a port number, found {}", show(v))))
}

/// `hosts` as a YAML list or a comma-separated string.
fn hosts(
    sec: &str,
    map: &Map<String, Value>,
    protocol: Protocol,
    default_port: u16,
) -> PluginResult<Option<Vec<String>>> {
    let entries: Vec<String> = match map.get("hosts") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    other => return Err(err(sec, "hosts", format!("expected host:port, found {}", show(other)))),
                }
            }
            out
        }
        Some(other) => {
            return Err(err(
                sec,
                "hosts",
                format!("expected a list or a comma-separated string, found {}", show(other)),
            ))
        }
    };
    let mut urls = Vec::new();
    for entry in entries.iter().map(|e| e.trim()) {
        match endpoints::host_entry(entry, protocol, default_port) {
            Some(url) if !urls.contains(&url) => urls.push(url),
            Some(_) => {}
            None => return Err(err(sec, "hosts", format!("expected host:port, found '{entry}'"))),
        }
    }
    if urls.is_empty() {
        return Err(err(sec, "hosts", "the list is empty"));
    }
    Ok(Some(urls))
}

fn file(sec: &str, map: &Map<String, Value>, key: &str) -> PluginResult<Option<PathBuf>> {
    let Some(path) = nonempty(sec, map, key)? else {
        return Ok(None);
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(Some(PathBuf::from(path))),
        Ok(_) => Err(err(sec, key, format!("'{path}' is not a file"))),
        Err(e) => Err(err(sec, key, format!("cannot read '{path}': {e}"))),
    }
}

impl Settings {
    /// Read the section. `json` is the section as the host serialised it.
    pub fn parse(sec: &str, json: &str) -> PluginResult<Self> {
        let value: Value = if json.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(json).map_err(|e| PluginError::config(format!("{sec}: not valid JSON: {e}")))?
        };
        let empty = Map::new();
        let map = match &value {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => return Err(PluginError::config(format!("{sec}: expected a mapping, found {}", show(other)))),
        };

        let mut protocol = match nonempty(sec, map, "protocol")? {
            None => Protocol::Http,
            Some(p) => Protocol::parse(&p)
                .ok_or_else(|| err(sec, "protocol", format!("expected http or https, found '{p}'")))?,
        };
        let mut use_proxies = boolean(sec, map, "use_proxies")?;
        let mut username = nonempty(sec, map, "username")?;
        let mut password = string(sec, map, "password")?.filter(|p| !p.is_empty());
        let default_port = port(sec, map)?;

        // `proxy` wins over everything and implies use_proxies; then `url`
        // (whose scheme and credentials override the section's), `hosts`
        // and `host`, as in Patroni.
        let mut fixed: Option<Vec<String>> = None;
        for key in ["proxy", "url"] {
            if fixed.is_some() {
                break;
            }
            if let Some(raw) = nonempty(sec, map, key)? {
                let url = endpoints::parse_url(&raw)
                    .ok_or_else(|| err(sec, key, format!("expected http(s)://host:port, found '{raw}'")))?;
                protocol = url.protocol;
                if url.username.is_some() {
                    username = url.username.clone();
                    password = url.password.clone();
                }
                if key == "proxy" {
                    use_proxies = true;
                }
                fixed = Some(vec![url.endpoint()]);
            }
        }
        let from_hosts = if map.get("proxy").is_some_and(|v| !v.is_null()) {
            None
        } else {
            hosts(sec, map, protocol, default_port)?
        };
        let from_host = match nonempty(sec, map, "host")? {
            None => None,
            Some(h) => {
                let (host, port) = endpoints::split_host_port(&h, default_port)
                    .ok_or_else(|| err(sec, "host", format!("expected host:port, found '{h}'")))?;
                Some(vec![endpoints::endpoint(protocol, &host, port)])
            }
        };
        let is_proxy = use_proxies && map.get("proxy").is_some_and(|v| !v.is_null());
        let fallback = if is_proxy { fixed.clone() } else { from_hosts.or(fixed).or(from_host) };

        let mut srv_domain = None;
        for key in ["srv", "discovery_srv", "srv_domain"] {
            if let Some(d) = nonempty(sec, map, key)? {
                srv_domain = Some(d.trim().trim_end_matches('.').to_string());
                break;
            }
        }
        let suffix = nonempty(sec, map, "srv_suffix")?.map(|s| s.trim().to_string());

        let source = match (srv_domain, is_proxy) {
            (Some(domain), false) => Source::Srv { domain, suffix, fallback: fallback.unwrap_or_default() },
            _ => match fallback {
                Some(urls) => Source::Urls(urls),
                None => {
                    return Err(PluginError::config(format!(
                        "{sec}: one of host, hosts, url, proxy or srv must be set"
                    )))
                }
            },
        };

        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (Some(_), None) => {
                tracing::warn!("{sec}.username is set without {sec}.password: not authenticating");
                None
            }
            (None, Some(_)) => {
                tracing::warn!("{sec}.password is set without {sec}.username: not authenticating");
                None
            }
            (None, None) => None,
        };

        let tls =
            TlsFiles { cacert: file(sec, map, "cacert")?, cert: file(sec, map, "cert")?, key: file(sec, map, "key")? };
        if tls.key.is_some() && tls.cert.is_none() {
            return Err(err(sec, "key", format!("is set but {sec}.cert is not")));
        }

        Ok(Settings {
            source,
            use_proxies,
            protocol,
            credentials,
            tls,
            ttl: seconds(sec, map, "ttl")?,
            loop_wait: seconds(sec, map, "loop_wait")?,
            retry_timeout: seconds(sec, map, "retry_timeout")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> PluginResult<Settings> {
        Settings::parse("etcd3", json)
    }

    fn urls(json: &str) -> Vec<String> {
        match parse(json).unwrap().source {
            Source::Urls(u) => u,
            other => panic!("expected urls, got {other:?}"),
        }
    }

    #[test]
    fn host_forms() {
        assert_eq!(urls(r#"{"host":"127.0.0.1:2379"}"#), ["http://127.0.0.1:2379"]);
        assert_eq!(urls(r#"{"host":"etcd"}"#), ["http://etcd:2379"]);
        assert_eq!(urls(r#"{"host":"etcd","port":4001}"#), ["http://etcd:4001"]);
        assert_eq!(urls(r#"{"hosts":"a:1, b:2,a:1"}"#), ["http://a:1", "http://b:2"]);
        assert_eq!(urls(r#"{"hosts":["a:1","b"],"protocol":"https"}"#), ["https://a:1", "https://b:2379"]);
        assert_eq!(urls(r#"{"url":"https://etcd:2390"}"#), ["https://etcd:2390"]);
        assert_eq!(urls(r#"{"hosts":["a:1"],"host":"b:2"}"#), ["http://a:1"]);
    }

    #[test]
    fn proxy_implies_use_proxies_and_wins() {
        let s = parse(r#"{"proxy":"http://proxy:8080","hosts":"a:1","srv":"example.org"}"#).unwrap();
        assert!(s.use_proxies);
        assert_eq!(s.source, Source::Urls(vec!["http://proxy:8080".into()]));
    }

    #[test]
    fn url_credentials_override() {
        let s = parse(r#"{"url":"http://u:p@etcd:2379","username":"x","password":"y"}"#).unwrap();
        assert_eq!(s.credentials, Some(("u".into(), "p".into())));
        let s = parse(r#"{"host":"etcd","username":"x","password":"y"}"#).unwrap();
        assert_eq!(s.credentials, Some(("x".into(), "y".into())));
        let s = parse(r#"{"host":"etcd","username":"x"}"#).unwrap();
        assert_eq!(s.credentials, None);
    }

    #[test]
    fn srv_with_fallback() {
        let s = parse(r#"{"srv":"example.org.","srv_suffix":"foo","hosts":"a:1"}"#).unwrap();
        assert_eq!(
            s.source,
            Source::Srv {
                domain: "example.org".into(),
                suffix: Some("foo".into()),
                fallback: vec!["http://a:1".into()]
            }
        );
        let s = parse(r#"{"discovery_srv":"example.org"}"#).unwrap();
        assert!(matches!(s.source, Source::Srv { ref fallback, .. } if fallback.is_empty()));
    }

    #[test]
    fn use_proxies_forms() {
        assert!(parse(r#"{"host":"a","use_proxies":"yes"}"#).unwrap().use_proxies);
        assert!(!parse(r#"{"host":"a","use_proxies":false}"#).unwrap().use_proxies);
    }

    #[test]
    fn timing_overrides() {
        let s = parse(r#"{"host":"a","retry_timeout":"2.5","ttl":4}"#).unwrap();
        assert_eq!(s.retry_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.ttl, Some(Duration::from_secs(4)));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (r#"{"hosts":"a:1,x:y"}"#, "etcd3.hosts: expected host:port, found 'x:y'"),
            (r#"{"hosts":[1]}"#, "etcd3.hosts: expected host:port, found 1"),
            (r#"{"hosts":{"a":1}}"#, "etcd3.hosts: expected a list or a comma-separated string"),
            (r#"{"host":"a:b"}"#, "etcd3.host: expected host:port, found 'a:b'"),
            (r#"{"url":"etcd:2379"}"#, "etcd3.url: expected http(s)://host:port, found 'etcd:2379'"),
            (r#"{"host":"a","protocol":"ftp"}"#, "etcd3.protocol: expected http or https, found 'ftp'"),
            (r#"{"host":"a","port":"x"}"#, "etcd3.port: expected a port number, found 'x'"),
            (r#"{"host":"a","use_proxies":"maybe"}"#, "etcd3.use_proxies: expected a boolean, found 'maybe'"),
            (r#"{"host":"a","retry_timeout":-1}"#, "etcd3.retry_timeout: expected a positive number"),
            (r#"{"host":"a","cacert":"/nonexistent/ca.pem"}"#, "etcd3.cacert: cannot read '/nonexistent/ca.pem'"),
            (r#"{"host":"a","key":"/etc/hostname"}"#, "etcd3.key: is set but etcd3.cert is not"),
            (r#"{}"#, "etcd3: one of host, hosts, url, proxy or srv must be set"),
            (r#"[1]"#, "etcd3: expected a mapping"),
            (r#"{"#, "etcd3: not valid JSON"),
        ];
        for (json, expected) in cases {
            let e = parse(json).unwrap_err();
            assert_eq!(e.kind, palisade_plugin_api::ErrorKind::Config, "{json}");
            assert!(e.message.starts_with(expected), "{json}: {}", e.message);
        }
    }
}
