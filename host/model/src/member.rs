//! A cluster member (`members/<name>`), as read from the DCS, and the record
//! this node publishes about itself.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{parse_int, tags::Tags};

/// The Patroni version whose wire formats and behaviour palisade keeps.
/// Members publish it as their `version` so that Patroni nodes in the
/// same cluster treat palisade nodes as their peers; palisadectl shows it
/// as the patronictl it stands for.
pub const PATRONI_COMPAT_VERSION: &str = "4.1.4";

/// A member read from the DCS. The JSON is kept as a map so that fields we
/// do not know (written by a newer Patroni, say) survive; typed accessors
/// read it with Patroni's tolerance for wrong types.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub name: String,
    /// The DCS's version of the key (opaque).
    pub version: String,
    pub session: String,
    pub data: Map<String, Value>,
}

impl Member {
    /// Parse a stored member value. Patroni also accepts a bare connection
    /// URL (`postgres://...`), from its earliest versions.
    pub fn from_value(name: &str, version: &str, session: &str, value: &str) -> Result<Self, String> {
        let data = if value.starts_with("postgres") {
            let mut data = Map::new();
            data.insert("conn_url".into(), Value::String(value.to_string()));
            data
        } else {
            match serde_json::from_str::<Value>(value) {
                Ok(Value::Object(map)) => map,
                Ok(other) => return Err(format!("expected a JSON object, found {}", json_kind(&other))),
                Err(e) => return Err(format!("invalid JSON: {e}")),
            }
        };
        Ok(Self { name: name.to_string(), version: version.to_string(), session: session.to_string(), data })
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    pub fn conn_url(&self) -> Option<&str> {
        self.str_field("conn_url")
    }

    pub fn api_url(&self) -> Option<&str> {
        self.str_field("api_url")
    }

    /// `state`, or `unknown` as Patroni says when it is missing.
    pub fn state(&self) -> &str {
        self.str_field("state").unwrap_or("unknown")
    }

    pub fn role(&self) -> Option<&str> {
        self.str_field("role")
    }

    pub fn is_running(&self) -> bool {
        self.state() == "running"
    }

    pub fn tags_map(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self.data.get("tags") {
            Some(Value::Object(m)) => m,
            _ => EMPTY.get_or_init(Map::new),
        }
    }

    pub fn tags(&self) -> Tags<'_> {
        Tags(self.tags_map())
    }

    pub fn nofailover(&self) -> bool {
        self.tags().nofailover()
    }

    /// `clonefrom` counts only when the member can be connected to.
    pub fn clonefrom(&self) -> bool {
        self.tags().clonefrom() && self.conn_url().is_some()
    }

    fn u64_field(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(parse_int).and_then(|v| u64::try_from(v).ok())
    }

    /// `xlog_location`: the member's WAL position.
    pub fn lsn(&self) -> Option<u64> {
        self.u64_field("xlog_location")
    }

    pub fn receive_lsn(&self) -> Option<u64> {
        self.u64_field("receive_lsn")
    }

    pub fn replay_lsn(&self) -> Option<u64> {
        self.u64_field("replay_lsn")
    }

    pub fn timeline(&self) -> Option<u32> {
        self.data.get("timeline").and_then(parse_int).and_then(|v| u32::try_from(v).ok())
    }

    pub fn replication_state(&self) -> Option<&str> {
        self.str_field("replication_state")
    }

    /// The Patroni version the member runs, as numbers (`4.1.0` -> `[4,1,0]`).
    pub fn patroni_version(&self) -> Option<Vec<u32>> {
        let v = self.str_field("version")?;
        v.split('.').map(|p| p.parse().ok()).collect()
    }

    /// Host and port from `conn_url` (`postgres://host:port/db`).
    pub fn host_port(&self) -> Option<(String, u16)> {
        parse_postgres_url(self.conn_url()?).map(|u| (u.host, u.port))
    }
}

/// How a JSON value is named in messages (`a string`, `an object`...).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The parts of a `postgres://` URL a member publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresUrl {
    pub host: String,
    pub port: u16,
    pub dbname: String,
}

/// Parse `postgres://host:port/dbname` (or `postgresql://`, IPv6 in brackets).
pub fn parse_postgres_url(url: &str) -> Option<PostgresUrl> {
    let rest = url.strip_prefix("postgresql://").or_else(|| url.strip_prefix("postgres://"))?;
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ => 5432,
    };
    if host.is_empty() {
        return None;
    }
    let dbname = path.split('?').next().unwrap_or("").to_string();
    Some(PostgresUrl { host, port, dbname })
}

/// Patroni's `slot_name_from_member_name`: lower case; `-` and `.` become
/// `_`; any other character outside `[a-z0-9_]` becomes `u` and its code
/// point in four decimal digits; at most 63 characters.
pub fn slot_name_from_member_name(member_name: &str) -> String {
    let mut out = String::new();
    for c in member_name.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' => out.push(c),
            '-' | '.' => out.push('_'),
            other => out.push_str(&format!("u{:04}", other as u32)),
        }
    }
    out.chars().take(63).collect()
}

/// What this node publishes in its member key. Field order and omission
/// rules follow Patroni's `touch_member`, so the bytes match.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MemberRecord {
    pub conn_url: String,
    pub api_url: String,
    pub state: String,
    pub role: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_after_promote: Option<bool>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub tags: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_restart_reason: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xlog_location: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_lsn: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_restart: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
}

impl MemberRecord {
    pub fn to_json(&self) -> String {
        crate::to_compact_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_follow_patroni() {
        let cases = [
            ("node1", "node1"),
            ("Node-1.example", "node_1_example"),
            ("a b", "au0032b"),
            ("ü", "u0252"),
            (&"x".repeat(70), &"x".repeat(63)),
        ];
        for (input, expected) in cases {
            assert_eq!(slot_name_from_member_name(input), expected, "{input}");
        }
    }

    #[test]
    fn member_json_is_byte_compatible() {
        let rec = MemberRecord {
            conn_url: "postgres://127.0.0.1:5432/postgres".into(),
            api_url: "http://127.0.0.1:8008/patroni".into(),
            state: "running".into(),
            role: "primary".into(),
            version: "4.1.0".into(),
            xlog_location: Some(50331744),
            timeline: Some(1),
            ..Default::default()
        };
        assert_eq!(
            rec.to_json(),
            r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.0","xlog_location":50331744,"timeline":1}"#
        );
    }

    #[test]
    fn member_parsing_tolerates_and_rejects() {
        let m = Member::from_value("n1", "5", "", r#"{"conn_url":"postgres://h:5433/postgres","xlog_location":"12","timeline":"x","tags":{"nofailover":true}}"#).unwrap();
        assert_eq!(m.lsn(), Some(12));
        assert_eq!(m.timeline(), None);
        assert!(m.nofailover());
        assert_eq!(m.host_port(), Some(("h".to_string(), 5433)));
        assert_eq!(m.state(), "unknown");

        let legacy = Member::from_value("n2", "1", "", "postgres://u:p@h2:5432/postgres").unwrap();
        assert_eq!(legacy.conn_url(), Some("postgres://u:p@h2:5432/postgres"));

        for garbage in ["{", "[1,2]", "42", "null", "\"str\""] {
            assert!(Member::from_value("n3", "1", "", garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn postgres_urls() {
        let cases = [
            ("postgres://h:1/db", Some(("h", 1, "db"))),
            ("postgresql://[::1]:5433/postgres", Some(("::1", 5433, "postgres"))),
            ("postgres://user:pw@h/postgres", Some(("h", 5432, "postgres"))),
            ("http://h:1/x", None),
            ("postgres://:5/x", None),
            ("postgres://h:notaport/x", None),
        ];
        for (url, expected) in cases {
            let got = parse_postgres_url(url);
            let got = got.as_ref().map(|u| (u.host.as_str(), u.port, u.dbname.as_str()));
            assert_eq!(got, expected, "{url}");
        }
    }
}
