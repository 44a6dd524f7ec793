//! Consul's HTTP API as pure functions: paths, query strings, the KV
//! listing (values in base64), session bodies, and what an answer means.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

/// What went wrong with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No (complete) answer: connection refused, TLS, a read timeout.
    Transport(String),
    /// HTTP 500 from Consul (no leader, an RPC error...): worth retrying.
    Internal(String),
    /// The session named in the request does not exist (any more).
    InvalidSession(String),
    /// The session TTL is outside the agent's `session_ttl_min`..24h.
    InvalidSessionTtl(String),
    /// Retries ran out; the message names the agent and the last error.
    Unreachable(String),
    /// An answer retrying will not change: 403 (ACL), 400, a proxy's page.
    Refused(String),
}

impl Failure {
    /// Worth another attempt within `retry_timeout` (Patroni retries on
    /// connection errors and `ConsulInternalError`).
    pub(crate) fn retriable(&self) -> bool {
        matches!(self, Failure::Transport(_) | Failure::Internal(_))
    }

    pub(crate) fn into_plugin_error(self, what: &str) -> palisade_plugin_api::PluginError {
        use palisade_plugin_api::PluginError;
        match self {
            Failure::Transport(m) | Failure::Unreachable(m) => PluginError::dcs(format!("{what}: {m}")),
            Failure::Internal(m) => PluginError::dcs(format!("{what}: Consul internal error: {m}")),
            Failure::InvalidSession(m) | Failure::InvalidSessionTtl(m) | Failure::Refused(m) => {
                PluginError::dcs(format!("{what}: Consul refused the request: {m}"))
            }
        }
    }
}

/// A raw answer: status, `X-Consul-Index`, body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    pub index: Option<u64>,
    pub body: String,
}

/// Sort an answer into success (any 2xx, and 404 which callers read as
/// "no such key/session") or a [`Failure`], as Patroni's client does with
/// 500 bodies.
pub(crate) fn classify(answer: Answer) -> Result<Answer, Failure> {
    let snippet = || -> String { answer.body.trim().chars().take(200).collect() };
    match answer.status {
        200..=299 | 404 => Ok(answer),
        500 => {
            let body = snippet();
            if body.starts_with("Invalid Session TTL") {
                Err(Failure::InvalidSessionTtl(format!("500 {body}")))
            } else if body.to_ascii_lowercase().starts_with("invalid session") {
                Err(Failure::InvalidSession(format!("500 {body}")))
            } else {
                Err(Failure::Internal(format!("500 {body}")))
            }
        }
        // Bad gateway and friends from a proxy in front of the agent; 429: rate limited.
        429 | 502..=504 => Err(Failure::Internal(format!("HTTP {} {}", answer.status, snippet()))),
        s => Err(Failure::Refused(format!("HTTP {s}: {}", snippet()))),
    }
}

/// `/v1/kv/<key>` for a key as [`palisade_plugin_api::sdk::dcs::Keys`]
/// gives it (`/service/demo/leader`): Consul's KV paths have no leading
/// slash; each segment is encoded, a trailing slash kept.
pub(crate) fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", palisade_plugin_http::key_path(key))
}

/// `?a=b&c=d`, encoded; empty without parameters.
pub(crate) fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    format!("?{}", palisade_plugin_http::form(pairs))
}

/// A Go duration in seconds (`15s`, `2.5s`), as Consul reads `ttl`,
/// `lockdelay` and `wait`.
pub(crate) fn go_seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let text = format!("{:.3}", d.as_secs_f64());
        format!("{}s", text.trim_end_matches('0'))
    }
}

/// One KV entry as `GET /v1/kv/<prefix>?recurse` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The key as Consul names it (no leading slash).
    pub key: String,
    /// The value's bytes, decoded from base64 (`null` is empty).
    pub value: Vec<u8>,
    pub modify_index: u64,
    /// The session holding the key's lock, if any.
    pub session: Option<String>,
}

/// The entries of a KV answer; 404 means none. A listing that is not
/// Consul's is refused rather than read as "no keys".
pub(crate) fn parse_entries(answer: &Answer) -> Result<Vec<Entry>, Failure> {
    if answer.status == 404 {
        return Ok(Vec::new());
    }
    let bad = |what: &str| {
        let snippet: String = answer.body.trim().chars().take(120).collect();
        Failure::Refused(format!("not a Consul KV answer ({what}): '{snippet}'"))
    };
    let json: Value = serde_json::from_str(&answer.body).map_err(|_| bad("not JSON"))?;
    let items = json.as_array().ok_or_else(|| bad("not a list"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let key = item.get("Key").and_then(Value::as_str).ok_or_else(|| bad("an entry without Key"))?;
        let value = match item.get("Value") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => b64.decode(s).map_err(|_| bad("a Value that is not base64"))?,
            Some(_) => return Err(bad("a Value that is not a string")),
        };
        out.push(Entry {
            key: key.to_string(),
            value,
            modify_index: item.get("ModifyIndex").and_then(Value::as_u64).unwrap_or_default(),
            session: item.get("Session").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
        });
    }
    Ok(out)
}

/// The `true`/`false` body of a KV PUT or DELETE.
pub(crate) fn parse_bool_body(answer: &Answer) -> Result<bool, Failure> {
    match answer.body.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => {
            let snippet: String = other.chars().take(120).collect();
            Err(Failure::Refused(format!("HTTP {}: expected true or false, got '{snippet}'", answer.status)))
        }
    }
}

/// The body of `PUT /v1/session/create`, with the keys Patroni's client
/// sends: the name `<scope>-<name>`, the checks, a lock delay of 1 ms, the
/// `delete` behaviour (the keys go with the session) and the TTL.
pub(crate) fn session_body(name: &str, checks: &[String], ttl: Duration) -> String {
    serde_json::json!({
        "name": name,
        "checks": checks,
        "lockdelay": "0.001s",
        "behavior": "delete",
        "ttl": go_seconds(ttl),
    })
    .to_string()
}

/// The `ID` of a created session.
pub(crate) fn parse_session_id(body: &str) -> Result<String, Failure> {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("ID").and_then(Value::as_str).map(str::to_string))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            let snippet: String = body.trim().chars().take(120).collect();
            Failure::Refused(format!("session/create answered without an ID: '{snippet}'"))
        })
}

/// A Go duration (`10s`, `1m0s`, `1.5s`, `500ms`, `1h2m3s`), as Consul
/// prints its settings.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "\u{b5}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// The agent's `session_ttl_min` from `GET /v1/agent/self`: a duration
/// string in `DebugConfig.SessionTTLMin` (current agents), or nanoseconds
/// in `Config.SessionTTLMin` (what Patroni's `adjust_ttl` reads, older
/// agents); Consul's default of 10 s when neither is there.
pub(crate) fn session_ttl_min(body: &str) -> Duration {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let from_debug = v.pointer("/DebugConfig/SessionTTLMin").and_then(Value::as_str).and_then(parse_go_duration);
    let from_config = v.pointer("/Config/SessionTTLMin").and_then(Value::as_u64).map(Duration::from_nanos);
    from_debug.or(from_config).filter(|d| !d.is_zero()).unwrap_or(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status, index: Some(7), body: body.into() }
    }

    #[test]
    fn paths_and_queries() {
        assert_eq!(kv_path("/service/demo/leader"), "/v1/kv/service/demo/leader");
        assert_eq!(kv_path("/service/demo/"), "/v1/kv/service/demo/");
        assert_eq!(kv_path("/service/demo/1/members/nöde 1"), "/v1/kv/service/demo/1/members/n%C3%B6de%201");
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("acquire", "a-b".into()), ("dc", "dc 2".into()), ("wait", "1.5s".into())]),
            "?acquire=a-b&dc=dc%202&wait=1.5s"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_seconds(Duration::from_secs(15)), "15s");
        assert_eq!(go_seconds(Duration::from_millis(2500)), "2.5s");
        assert_eq!(go_seconds(Duration::from_millis(9998)), "9.998s");
        assert_eq!(go_seconds(Duration::from_millis(1)), "0.001s");
    }

    #[test]
    fn kv_listing() {
        let body = r#"[
            {"LockIndex":1,"Key":"service/demo/leader","Flags":0,"Value":"bjE=","Session":"s-1","CreateIndex":9,"ModifyIndex":9},
            {"LockIndex":0,"Key":"service/demo/failover","Flags":0,"Value":null,"CreateIndex":5,"ModifyIndex":6},
            {"Key":"service/demo/members/n2","Value":"/w==","ModifyIndex":11,"Session":""}]"#;
        let entries = parse_entries(&answer(200, body)).unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    key: "service/demo/leader".into(),
                    value: b"n1".to_vec(),
                    modify_index: 9,
                    session: Some("s-1".into())
                },
                Entry { key: "service/demo/failover".into(), value: Vec::new(), modify_index: 6, session: None },
                Entry { key: "service/demo/members/n2".into(), value: vec![0xff], modify_index: 11, session: None },
            ]
        );
        assert!(parse_entries(&answer(404, "")).unwrap().is_empty());
        assert!(matches!(parse_entries(&answer(200, "<html>")), Err(Failure::Refused(m)) if m.contains("not JSON")));
        assert!(matches!(parse_entries(&answer(200, r#"[{"Key":"a","Value":"%%"}]"#)), Err(Failure::Refused(_))));
    }

    #[test]
    fn answers_are_classified_as_patroni_does() {
        assert!(classify(answer(200, "true")).is_ok());
        assert!(classify(answer(404, "")).is_ok());
        assert!(matches!(
            classify(answer(500, "invalid session \"x\"")),
            Err(Failure::InvalidSession(m)) if m == "500 invalid session \"x\""
        ));
        assert!(matches!(
            classify(answer(500, "Invalid Session TTL '2000000000', must be between [10s=24h0m0s]")),
            Err(Failure::InvalidSessionTtl(_))
        ));
        let internal = classify(answer(500, "No cluster leader")).unwrap_err();
        assert!(internal.retriable());
        assert!(classify(answer(502, "Bad Gateway")).unwrap_err().retriable());
        let refused = classify(answer(403, "ACL not found")).unwrap_err();
        assert!(!refused.retriable());
        let e = refused.into_plugin_error("get_cluster");
        assert_eq!(e.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert_eq!(e.message, "get_cluster: Consul refused the request: HTTP 403: ACL not found");
        assert_eq!(parse_bool_body(&answer(200, "true\n")), Ok(true));
        assert_eq!(parse_bool_body(&answer(200, "false")), Ok(false));
        assert!(parse_bool_body(&answer(200, "{}")).is_err());
    }

    #[test]
    fn sessions() {
        let body: Value =
            serde_json::from_str(&session_body("demo-n1", &["serfHealth".into()], Duration::from_secs(15))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"name": "demo-n1", "checks": ["serfHealth"], "lockdelay": "0.001s",
                               "behavior": "delete", "ttl": "15s"})
        );
        let none: Value = serde_json::from_str(&session_body("d-n", &[], Duration::from_millis(2500))).unwrap();
        assert_eq!(none["checks"], serde_json::json!([]), "an empty list: no serfHealth, only the TTL");
        assert_eq!(none["ttl"], "2.5s");
        assert_eq!(parse_session_id(r#"{"ID":"adf4238a-882b-9ddc-4a9d-5b6758e4159e"}"#).unwrap().len(), 36);
        assert!(parse_session_id("{}").is_err());
        assert_eq!(session_ttl_min(r#"{"Config":{"SessionTTLMin":5000000000}}"#), Duration::from_secs(5));
        assert_eq!(session_ttl_min(r#"{"Config":{"SessionTTLMin":0}}"#), Duration::from_secs(10));
        assert_eq!(session_ttl_min(r#"{"DebugConfig":{"SessionTTLMin":"1.5s"}}"#), Duration::from_millis(1500));
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("x"), None);
        assert_eq!(session_ttl_min("garbage"), Duration::from_secs(10));
    }
}
