//! etcd's v2 keys API as pure functions: the request paths and form
//! bodies, the answers (nodes and `X-Etcd-Index`), and what an error code
//! means for the caller.

pub(crate) use palisade_plugin_http::form;
use serde_json::Value;

/// etcd v2 error codes the plugin acts on.
pub(crate) mod code {
    /// The key does not exist (also `prevValue`/`prevExist=true` on a missing key).
    pub const KEY_NOT_FOUND: u64 = 100;
    /// `prevValue` or `prevIndex` did not match.
    pub const TEST_FAILED: u64 = 101;
    /// `prevExist=false` and the key exists.
    pub const NODE_EXIST: u64 = 105;
    /// Raft internal error: worth retrying.
    pub const RAFT_INTERNAL: u64 = 300;
    /// Leader election in progress: worth retrying.
    pub const LEADER_ELECT: u64 = 301;
    /// The watcher was cleared (etcd recovered from a snapshot).
    pub const WATCHER_CLEARED: u64 = 400;
    /// The event at `waitIndex` is older than etcd's event history.
    pub const EVENT_INDEX_CLEARED: u64 = 401;
}

/// An error answer of the v2 API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub code: u64,
    pub message: String,
    pub cause: String,
    /// etcd's index when it answered (0 when not given).
    pub index: u64,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error {} ({})", self.code, self.message)?;
        if !self.cause.is_empty() {
            write!(f, ": {}", self.cause)?;
        }
        Ok(())
    }
}

/// What went wrong with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Worth retrying (on another member): no connection, no answer, a
    /// server error, an election in progress.
    Transient(String),
    /// Retries ran out; the message says what was tried and why it failed.
    Unreachable(String),
    /// etcd answered with an error code the caller may expect
    /// (`KEY_NOT_FOUND`, `TEST_FAILED`, `NODE_EXIST`...).
    Api(ApiError),
    /// An answer that is not the v2 API's (wrong port, a proxy's page...),
    /// or a refusal retrying will not change.
    Refused(String),
}

impl Failure {
    pub(crate) fn is_code(&self, c: u64) -> bool {
        matches!(self, Failure::Api(e) if e.code == c)
    }

    /// The error the host sees; `what` names the operation. Every kind is a
    /// DCS error: the store did not do what was asked.
    pub(crate) fn into_plugin_error(self, what: &str) -> palisade_plugin_api::PluginError {
        use palisade_plugin_api::PluginError;
        match self {
            Failure::Transient(m) | Failure::Unreachable(m) => PluginError::dcs(format!("{what}: {m}")),
            Failure::Api(e) => PluginError::dcs(format!("{what}: etcd refused the request: {e}")),
            Failure::Refused(m) => PluginError::dcs(format!("{what}: etcd refused the request: {m}")),
        }
    }
}

/// One key (or directory) as the v2 API returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Node {
    pub key: String,
    /// `None` for a directory (and in delete/expire events).
    pub value: Option<String>,
    pub modified_index: u64,
    /// Seconds left before the key expires; `None` without a TTL.
    pub ttl: Option<i64>,
    pub dir: bool,
    pub nodes: Vec<Node>,
}

impl Node {
    fn from_json(v: &Value) -> Node {
        Node {
            key: v.get("key").and_then(Value::as_str).unwrap_or_default().to_string(),
            value: v.get("value").and_then(Value::as_str).map(str::to_string),
            modified_index: v.get("modifiedIndex").and_then(Value::as_u64).unwrap_or_default(),
            ttl: v.get("ttl").and_then(Value::as_i64),
            dir: v.get("dir").and_then(Value::as_bool).unwrap_or(false),
            nodes: v
                .get("nodes")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Node::from_json).collect())
                .unwrap_or_default(),
        }
    }

    /// Every key (not directory) at or below this node.
    pub(crate) fn leaves(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            if n.dir {
                stack.extend(n.nodes.iter());
            } else {
                out.push(n);
            }
        }
        out
    }
}

/// A successful answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    /// `X-Etcd-Index`: etcd's index when it answered.
    pub etcd_index: u64,
    /// `get`, `set`, `create`, `update`, `compareAndSwap`, `delete`,
    /// `expire`, `compareAndDelete`.
    pub action: String,
    pub node: Option<Node>,
}

/// Read one HTTP answer of the v2 keys API.
pub(crate) fn parse_answer(status: u16, etcd_index: Option<&str>, body: &str) -> Result<Answer, Failure> {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let Some(Value::Object(map)) = json else {
        let snippet: String = body.trim().chars().take(120).collect();
        let mut what = format!("HTTP {status}, not an etcd v2 answer: '{snippet}'");
        if status == 404 {
            what.push_str(" (is the v2 API enabled? etcd 3 needs --enable-v2=true)");
        }
        return Err(if status >= 500 || status == 429 { Failure::Transient(what) } else { Failure::Refused(what) });
    };
    if let Some(code) = map.get("errorCode").and_then(Value::as_u64) {
        let e = ApiError {
            code,
            message: map.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            cause: map.get("cause").and_then(Value::as_str).unwrap_or_default().to_string(),
            index: map.get("index").and_then(Value::as_u64).unwrap_or_default(),
        };
        return Err(match code {
            code::RAFT_INTERNAL | code::LEADER_ELECT => Failure::Transient(e.to_string()),
            _ => Failure::Api(e),
        });
    }
    if status >= 400 {
        // An error without an etcd error code: the auth layer (`{"message":...}`), a proxy.
        let message = map.get("message").and_then(Value::as_str).unwrap_or_default();
        let what = format!("HTTP {status}: {message}");
        return Err(if status >= 500 { Failure::Transient(what) } else { Failure::Refused(what) });
    }
    Ok(Answer {
        etcd_index: etcd_index.and_then(|i| i.trim().parse().ok()).unwrap_or_default(),
        action: map.get("action").and_then(Value::as_str).unwrap_or_default().to_string(),
        node: map.get("node").map(Node::from_json),
    })
}

/// `/v2/keys/<key>` with every segment of `key` encoded.
pub(crate) fn key_path(key: &str) -> String {
    format!("/v2/keys/{}", palisade_plugin_http::key_path(key))
}

/// `path?query`, or `path` when there are no parameters.
pub(crate) fn with_query(path: String, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        path
    } else {
        format!("{path}?{}", form(pairs))
    }
}

/// The client URLs in a `/v2/machines` answer (comma-separated).
pub(crate) fn parse_machines(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in body.split(',').map(str::trim).filter(|m| m.starts_with("http://") || m.starts_with("https://")) {
        let m = m.trim_end_matches('/').to_string();
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// etcd TTLs count whole seconds: round up, at least one.
pub(crate) fn ttl_seconds(ttl: std::time::Duration) -> u64 {
    (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_forms() {
        assert_eq!(key_path("/service/demo/leader"), "/v2/keys/service/demo/leader");
        assert_eq!(key_path("/service/demo/members/nöde 1"), "/v2/keys/service/demo/members/n%C3%B6de%201");
        assert_eq!(key_path("/service/demo"), "/v2/keys/service/demo");
        assert_eq!(
            form(&[("value", "{\"a\":1}&x=y".into()), ("ttl", "30".into())]),
            "value=%7B%22a%22%3A1%7D%26x%3Dy&ttl=30"
        );
        assert_eq!(form(&[("value", String::new())]), "value=");
        assert_eq!(with_query("/v2/keys/a".into(), &[]), "/v2/keys/a");
        assert_eq!(with_query("/v2/keys/a".into(), &[("recursive", "true".into())]), "/v2/keys/a?recursive=true");
        assert_eq!(palisade_plugin_http::encode("\u{0}\u{1}😀"), "%00%01%F0%9F%98%80");
    }

    #[test]
    fn a_recursive_read() {
        let body = r#"{"action":"get","node":{"key":"/service/demo","dir":true,"nodes":[
            {"key":"/service/demo/leader","value":"n1","expiration":"2026-01-01T00:00:00Z","ttl":28,"modifiedIndex":9,"createdIndex":9},
            {"key":"/service/demo/members","dir":true,"nodes":[
                {"key":"/service/demo/members/n1","value":"{}","modifiedIndex":10,"createdIndex":10,"ttl":30}]},
            {"key":"/service/demo/config","value":"{\"ttl\":30}","modifiedIndex":5,"createdIndex":5}],
            "modifiedIndex":4,"createdIndex":4}}"#;
        let a = parse_answer(200, Some("12"), body).unwrap();
        assert_eq!(a.etcd_index, 12);
        assert_eq!(a.action, "get");
        let root = a.node.unwrap();
        let mut leaves: Vec<(&str, Option<&str>, u64, Option<i64>)> =
            root.leaves().into_iter().map(|n| (n.key.as_str(), n.value.as_deref(), n.modified_index, n.ttl)).collect();
        leaves.sort();
        assert_eq!(
            leaves,
            [
                ("/service/demo/config", Some("{\"ttl\":30}"), 5, None),
                ("/service/demo/leader", Some("n1"), 9, Some(28)),
                ("/service/demo/members/n1", Some("{}"), 10, Some(30)),
            ]
        );
    }

    #[test]
    fn error_classification() {
        let err = |status, body: &str| parse_answer(status, None, body).unwrap_err();
        let not_found = err(404, r#"{"errorCode":100,"message":"Key not found","cause":"/service/demo","index":7}"#);
        assert!(not_found.is_code(code::KEY_NOT_FOUND));
        assert!(matches!(not_found, Failure::Api(ApiError { index: 7, .. })));
        assert!(
            err(412, r#"{"errorCode":101,"message":"Compare failed","cause":"[n1 != n2]"}"#).is_code(code::TEST_FAILED)
        );
        assert!(err(412, r#"{"errorCode":105,"message":"Key already exists"}"#).is_code(code::NODE_EXIST));
        assert!(err(400, r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared"}"#)
            .is_code(code::EVENT_INDEX_CLEARED));
        assert!(matches!(err(500, r#"{"errorCode":300,"message":"Raft Internal Error"}"#), Failure::Transient(_)));
        assert!(matches!(err(503, r#"{"errorCode":301,"message":"During Leader Election"}"#), Failure::Transient(_)));
        assert!(matches!(err(502, "Bad Gateway"), Failure::Transient(_)));
        assert!(matches!(err(404, "404 page not found"), Failure::Refused(m) if m.contains("--enable-v2=true")));
        assert!(
            matches!(err(401, r#"{"message":"Insufficient credentials"}"#), Failure::Refused(m) if m.contains("Insufficient credentials"))
        );
        let e = Failure::Api(ApiError {
            code: 110,
            message: "The request requires user authentication".into(),
            cause: "x".into(),
            index: 0,
        })
        .into_plugin_error("get_cluster");
        assert_eq!(e.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert_eq!(
            e.message,
            "get_cluster: etcd refused the request: error 110 (The request requires user authentication): x"
        );
    }

    #[test]
    fn machines() {
        assert_eq!(
            parse_machines("http://127.0.0.1:2379, https://[::1]:2379/,http://127.0.0.1:2379,garbage"),
            ["http://127.0.0.1:2379", "https://[::1]:2379"]
        );
        assert!(parse_machines("").is_empty());
    }

    #[test]
    fn ttl_rounds_up() {
        use std::time::Duration;
        assert_eq!(ttl_seconds(Duration::from_secs(30)), 30);
        assert_eq!(ttl_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
    }
}
