//! The single-value keys: `config`, `failover`, `sync`, `history`, `status`.
//! Parsing is tolerant the way Patroni's is: a value somebody else wrote
//! badly degrades to "empty" instead of failing the whole snapshot.

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Map, Value};

use crate::parse_int;

/// The dynamic configuration (`config` key).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    pub version: String,
    pub data: Map<String, Value>,
}

impl ClusterConfig {
    /// Parse the stored value; a value that is not a JSON object is an error
    /// (the caller logs it and treats the config as empty).
    pub fn from_value(version: &str, value: &str) -> Result<Self, String> {
        match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(data)) => Ok(Self { version: version.to_string(), data }),
            Ok(_) => Err("expected a JSON object".into()),
            Err(e) => Err(format!("invalid JSON: {e}")),
        }
    }
}

/// A requested switchover or failover (`failover` key).
#[derive(Clone, Debug, PartialEq)]
pub struct Failover {
    pub version: String,
    /// Set for a switchover: the member that must step down.
    pub leader: Option<String>,
    /// The member that should take over (`member` in the JSON).
    pub candidate: Option<String>,
    pub scheduled_at: Option<ScheduledAt>,
}

/// `scheduled_at` as written; a value that cannot be read is kept so the
/// leader can log it and clean the key up.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduledAt {
    At(DateTime<FixedOffset>),
    Invalid(String),
}

impl Failover {
    /// Parse the stored value: JSON, or the legacy `leader:candidate` text.
    /// An empty or meaningless value gives `None` (no failover requested).
    pub fn from_value(version: &str, value: &str) -> Option<Self> {
        let data = match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(map)) => map,
            Ok(_) => Map::new(),
            Err(_) if !value.trim().is_empty() => {
                let mut parts = value.split(':').map(str::trim);
                let leader = parts.next().filter(|s| !s.is_empty()).map(String::from);
                let candidate = parts.next().filter(|s| !s.is_empty()).map(String::from);
                let f = Self { version: version.to_string(), leader, candidate, scheduled_at: None };
                return f.is_requested().then_some(f);
            }
            Err(_) => Map::new(),
        };
        let text = |k: &str| data.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        let scheduled_at = match data.get("scheduled_at") {
            Some(Value::String(s)) if !s.is_empty() => Some(match parse_timestamp(s) {
                Some(t) => ScheduledAt::At(t),
                None => ScheduledAt::Invalid(s.clone()),
            }),
            Some(Value::Null) | None => None,
            Some(other) => Some(ScheduledAt::Invalid(other.to_string())),
        };
        let f = Self { version: version.to_string(), leader: text("leader"), candidate: text("member"), scheduled_at };
        f.is_requested().then_some(f)
    }

    /// Patroni treats a failover key with neither leader nor candidate as absent.
    pub fn is_requested(&self) -> bool {
        self.leader.is_some() || self.candidate.is_some()
    }

    /// The JSON Patroni writes: only the fields that are set.
    pub fn to_json(
        leader: Option<&str>,
        candidate: Option<&str>,
        scheduled_at: Option<&DateTime<FixedOffset>>,
    ) -> String {
        let mut map = Map::new();
        if let Some(l) = leader.filter(|s| !s.is_empty()) {
            map.insert("leader".into(), json!(l));
        }
        if let Some(c) = candidate.filter(|s| !s.is_empty()) {
            map.insert("member".into(), json!(c));
        }
        if let Some(t) = scheduled_at {
            map.insert("scheduled_at".into(), json!(format_timestamp(t)));
        }
        crate::to_compact_json(&map)
    }
}

/// Read an ISO 8601 timestamp with a zone, as Python's `dateutil` would
/// (`T` or space between date and time, `Z` or an offset).
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    let t = text.trim();
    DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_rfc3339(&t.replacen(' ', "T", 1)))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%z"))
        .ok()
}

/// Python's `datetime.isoformat()` for an aware time: microseconds only when
/// non-zero, offset as `+HH:MM`.
pub fn format_timestamp(t: &DateTime<FixedOffset>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
    }
}

/// The last synchronous replication state the leader published (`sync` key).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncState {
    pub version: Option<String>,
    pub leader: Option<String>,
    pub sync_standby: Vec<String>,
    pub quorum: u32,
}

impl SyncState {
    pub fn from_value(version: &str, value: &str) -> Self {
        let empty = Self { version: Some(version.to_string()), ..Default::default() };
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(value) else {
            return empty;
        };
        let leader = map.get("leader").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        let sync_standby = match map.get("sync_standby") {
            Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            _ => Vec::new(),
        };
        let quorum = if leader.is_some() {
            map.get("quorum").and_then(parse_int).and_then(|q| u32::try_from(q).ok()).unwrap_or(0)
        } else {
            0
        };
        Self { version: Some(version.to_string()), leader, sync_standby, quorum }
    }

    pub fn is_empty(&self) -> bool {
        self.leader.is_none()
    }

    /// The leader followed by the synchronous standbys.
    pub fn members(&self) -> Vec<&str> {
        match &self.leader {
            None => Vec::new(),
            Some(l) => std::iter::once(l.as_str()).chain(self.sync_standby.iter().map(String::as_str)).collect(),
        }
    }

    /// Whether `name` is a synchronous standby (or, with `check_leader`, the
    /// leader), compared case-insensitively as PostgreSQL does.
    pub fn matches(&self, name: &str, check_leader: bool) -> bool {
        if self.is_empty() || name.is_empty() {
            return false;
        }
        let lower = name.to_lowercase();
        self.sync_standby.iter().any(|s| s.to_lowercase() == lower) || (check_leader && self.leader_matches(name))
    }

    pub fn leader_matches(&self, name: &str) -> bool {
        self.leader.as_deref().is_some_and(|l| !name.is_empty() && l.to_lowercase() == name.to_lowercase())
    }

    /// The JSON Patroni writes: `{"leader":..,"quorum":..,"sync_standby":..}`
    /// with the standbys sorted and comma-joined, or null.
    pub fn to_json(leader: Option<&str>, sync_standby: &[String], quorum: u32) -> String {
        let mut sorted: Vec<&String> = sync_standby.iter().collect();
        sorted.sort();
        let standby = if sorted.is_empty() {
            Value::Null
        } else {
            Value::String(sorted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
        };
        let mut map = Map::new();
        map.insert("leader".into(), leader.map_or(Value::Null, |l| json!(l)));
        map.insert("quorum".into(), json!(quorum));
        map.insert("sync_standby".into(), standby);
        crate::to_compact_json(&map)
    }
}

/// One line of the timeline history: `[timeline, lsn, reason, timestamp?, leader?]`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryLine {
    pub timeline: u32,
    pub lsn: u64,
    pub reason: String,
    pub timestamp: Option<String>,
    pub new_leader: Option<String>,
}

impl HistoryLine {
    pub fn to_value(&self) -> Value {
        let mut v = vec![json!(self.timeline), json!(self.lsn), json!(self.reason)];
        if let Some(ts) = &self.timestamp {
            v.push(json!(ts));
            if let Some(l) = &self.new_leader {
                v.push(json!(l));
            }
        }
        Value::Array(v)
    }
}

/// The `history` key.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineHistory {
    pub version: String,
    /// The raw value, for `GET /history` (which serves it as stored).
    pub raw: Value,
    /// The lines that could be read.
    pub lines: Vec<HistoryLine>,
    /// False when the stored value or one of its lines could not be read.
    pub valid: bool,
}

impl TimelineHistory {
    pub fn from_value(version: &str, value: &str) -> Self {
        let raw = serde_json::from_str::<Value>(value).unwrap_or(Value::Null);
        let mut valid = raw.is_array();
        let mut lines = Vec::new();
        if let Value::Array(items) = &raw {
            for item in items {
                match parse_history_line(item) {
                    Some(l) => lines.push(l),
                    None => valid = false,
                }
            }
        }
        Self { version: version.to_string(), raw, lines, valid }
    }

    pub fn to_json(lines: &[HistoryLine]) -> String {
        crate::to_compact_json(&Value::Array(lines.iter().map(HistoryLine::to_value).collect()))
    }
}

fn parse_history_line(item: &Value) -> Option<HistoryLine> {
    let a = item.as_array()?;
    if a.len() < 3 {
        return None;
    }
    let timeline = parse_int(&a[0]).and_then(|v| u32::try_from(v).ok())?;
    let lsn = parse_int(&a[1]).and_then(|v| u64::try_from(v).ok())?;
    let reason = match &a[2] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let timestamp = a.get(3).and_then(Value::as_str).map(String::from);
    let new_leader = a.get(4).and_then(Value::as_str).map(String::from);
    Some(HistoryLine { timeline, lsn, reason, timestamp, new_leader })
}

/// A value that may also be JSON text (Patroni accepts both in `status`).
fn json_text(v: &Value) -> Value {
    match v {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| v.clone()),
        _ => v.clone(),
    }
}

/// The `status` key: the leader's last known WAL position and slots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub last_lsn: u64,
    pub slots: Option<Map<String, Value>>,
    pub retain_slots: Vec<String>,
}

impl Status {
    pub fn from_value(value: &str) -> Self {
        Self::parse(value).0
    }

    /// Read the key as Patroni's `Status.from_node` does (`slots` and
    /// `retain_slots` may also be JSON text), and say what had to be
    /// skipped: a value that is not a JSON object or number, `slots` that
    /// is not a mapping, a slot position that is not a number (read as 0,
    /// as Patroni reads it), `retain_slots` that is not a list of names.
    pub fn parse(value: &str) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let parsed = match serde_json::from_str::<Value>(value) {
            Ok(v) => v,
            Err(e) => return (Self::default(), vec![format!("invalid JSON: {e}")]),
        };
        let status = match parsed {
            Value::Number(_) | Value::String(_) => Self {
                last_lsn: parse_int(&parsed).and_then(|v| u64::try_from(v).ok()).unwrap_or(0),
                ..Default::default()
            },
            Value::Object(map) => {
                let last_lsn = map.get("optime").and_then(parse_int).and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
                let slots = match map.get("slots").map(json_text) {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(m)) => Some(m),
                    Some(other) => {
                        problems.push(format!("slots: expected a mapping, found {}", crate::json_kind(&other)));
                        None
                    }
                };
                for (name, position) in slots.iter().flatten() {
                    if parse_int(position).is_none_or(|v| v < 0) {
                        problems.push(format!("slots.{name}: {position} is not a WAL position; read as 0"));
                    }
                }
                let retain_slots = match map.get("retain_slots").map(json_text) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| {
                            let name = v.as_str().map(String::from);
                            if name.is_none() {
                                problems.push(format!("retain_slots: {v} is not a slot name; skipped"));
                            }
                            name
                        })
                        .collect(),
                    Some(other) => {
                        problems.push(format!("retain_slots: expected a list, found {}", crate::json_kind(&other)));
                        Vec::new()
                    }
                };
                Self { last_lsn, slots, retain_slots }
            }
            other => {
                problems.push(format!("expected a JSON object, found {}", crate::json_kind(&other)));
                Self::default()
            }
        };
        (status, problems)
    }

    /// `{"optime":..,"slots":{..},"retain_slots":[..]}` as Patroni writes it.
    pub fn to_json(last_lsn: u64, slots: Option<&Map<String, Value>>, retain_slots: Option<&[String]>) -> String {
        let mut map = Map::new();
        map.insert("optime".into(), json!(last_lsn));
        if let Some(s) = slots {
            map.insert("slots".into(), Value::Object(s.clone()));
        }
        if let Some(r) = retain_slots {
            map.insert("retain_slots".into(), json!(r));
        }
        crate::to_compact_json(&map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_values() {
        let f = Failover::from_value("1", r#"{"leader":"a","member":"b","scheduled_at":"2016-01-14T10:09:57.1394Z"}"#)
            .unwrap();
        assert_eq!(f.leader.as_deref(), Some("a"));
        assert_eq!(f.candidate.as_deref(), Some("b"));
        assert!(matches!(f.scheduled_at, Some(ScheduledAt::At(_))));

        let legacy = Failover::from_value("1", "a:b").unwrap();
        assert_eq!((legacy.leader.as_deref(), legacy.candidate.as_deref()), (Some("a"), Some("b")));

        assert!(Failover::from_value("1", "{}").is_none());
        assert!(Failover::from_value("1", "").is_none());
        assert!(Failover::from_value("1", "null").is_none());
        assert!(Failover::from_value("1", "[1]").is_none());

        let bad = Failover::from_value("1", r#"{"member":"b","scheduled_at":"tomorrow"}"#).unwrap();
        assert_eq!(bad.scheduled_at, Some(ScheduledAt::Invalid("tomorrow".into())));
    }

    #[test]
    fn failover_json_matches_patroni() {
        let t = parse_timestamp("2026-01-31T12:00:00+00:00").unwrap();
        assert_eq!(
            Failover::to_json(Some("a"), Some("b"), Some(&t)),
            r#"{"leader":"a","member":"b","scheduled_at":"2026-01-31T12:00:00+00:00"}"#
        );
        assert_eq!(Failover::to_json(None, Some("b"), None), r#"{"member":"b"}"#);
        assert_eq!(Failover::to_json(Some(""), None, None), "{}");
    }

    #[test]
    fn timestamps() {
        for text in ["2026-01-31T12:00:00Z", "2026-01-31 12:00:00+02:00", "2026-01-31T12:00:00.5+00:00"] {
            assert!(parse_timestamp(text).is_some(), "{text}");
        }
        for text in ["2026-01-31T12:00:00", "tomorrow", ""] {
            assert!(parse_timestamp(text).is_none(), "{text}");
        }
        let t = parse_timestamp("2026-01-31T12:00:00.5+00:00").unwrap();
        assert_eq!(format_timestamp(&t), "2026-01-31T12:00:00.500000+00:00");
    }

    #[test]
    fn sync_state() {
        let s = SyncState::from_value("3", r#"{"leader":"n1","quorum":1,"sync_standby":"n2,N3"}"#);
        assert_eq!(s.members(), vec!["n1", "n2", "N3"]);
        assert!(s.matches("n3", false));
        assert!(!s.matches("n1", false));
        assert!(s.matches("N1", true));
        assert_eq!(s.quorum, 1);
        assert!(SyncState::from_value("3", "garbage").is_empty());
        assert_eq!(
            SyncState::to_json(Some("n1"), &["n3".into(), "n2".into()], 0),
            r#"{"leader":"n1","quorum":0,"sync_standby":"n2,n3"}"#
        );
        assert_eq!(SyncState::to_json(Some("n1"), &[], 0), r#"{"leader":"n1","quorum":0,"sync_standby":null}"#);
    }

    #[test]
    fn history() {
        let h = TimelineHistory::from_value(
            "1",
            r#"[[1,25165984,"no recovery target specified","2026-01-01T00:00:00+00:00","n2"]]"#,
        );
        assert!(h.valid);
        assert_eq!(h.lines[0].timeline, 1);
        assert_eq!(h.lines[0].new_leader.as_deref(), Some("n2"));
        assert_eq!(TimelineHistory::to_json(&h.lines), h.raw.to_string());
        let bad = TimelineHistory::from_value("1", r#"[["a"]]"#);
        assert!(!bad.valid);
        let legacy = TimelineHistory::from_value("1", r#"[["3","2","x"]]"#);
        assert_eq!(legacy.lines[0].timeline, 3);
    }

    #[test]
    fn status() {
        let s = Status::from_value(r#"{"optime":100,"slots":{"n1":5},"retain_slots":["n1","n2"]}"#);
        assert_eq!(s.last_lsn, 100);
        assert_eq!(s.retain_slots, vec!["n1", "n2"]);
        assert_eq!(Status::from_value("42").last_lsn, 42);
        assert_eq!(Status::from_value("{{").last_lsn, 0);
        assert_eq!(Status::to_json(5, None, Some(&["a".into()])), r#"{"optime":5,"retain_slots":["a"]}"#);
    }

    /// The key's text, then the optime, slots, retain_slots read and the
    /// number of problems reported.
    type StatusCase<'a> = (&'a str, u64, Option<Value>, &'a [&'a str], usize);

    #[test]
    fn status_values_written_by_others() {
        #[rustfmt::skip]
        let cases: [StatusCase<'_>; 7] = [
            (r#"{"optime":1,"slots":{"a":5},"retain_slots":["a"]}"#, 1, Some(json!({"a": 5})), &["a"], 0),
            // JSON text inside, as Patroni also accepts.
            (r#"{"optime":1,"slots":"{\"a\":5}","retain_slots":"[\"a\"]"}"#, 1, Some(json!({"a": 5})), &["a"], 0),
            (r#"{"optime":1,"slots":[1],"retain_slots":{"a":1}}"#, 1, None, &[], 2),
            (r#"{"optime":1,"slots":{"a":"x","b":-1,"c":"7"}}"#, 1, Some(json!({"a": "x", "b": -1, "c": "7"})), &[], 2),
            (r#"{"optime":1,"retain_slots":["a",5,null]}"#, 1, None, &["a"], 2),
            (r#"[1]"#, 0, None, &[], 1),
            (r#"{"#, 0, None, &[], 1),
        ];
        for (text, lsn, slots, retain, problems) in cases {
            let (s, found) = Status::parse(text);
            assert_eq!(s.last_lsn, lsn, "{text}");
            assert_eq!(s.slots.map(Value::Object), slots, "{text}");
            assert_eq!(s.retain_slots, retain, "{text}");
            assert_eq!(found.len(), problems, "{text}: {found:?}");
        }
    }
}
