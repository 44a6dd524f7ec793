//! `register_service`: the member as a service of the local agent, as
//! Patroni's `consul.py` registers it from `touch_member`.
//!
//! - The service is named after the scope, made fit for DNS (lower case,
//!   `.`, `_` and spaces become `-`, other characters `u<code>`, at most
//!   230 characters); its id is `<scope>/<name>`.
//! - Address and port are those of the member's `conn_url`.
//! - Tags: `service_tags`, then the role with `_` as `-` (`primary`,
//!   `replica`, `standby-leader`), and `master` beside `primary`.
//! - One HTTP check: the member's `api_url` with the path `/<role>`, every
//!   `service_check_interval`, deregistered after ten session TTLs
//!   critical, with `TLSServerName` when `service_check_tls_server_name`.
//! - Registered while the member is `running` in one of those roles;
//!   deregistered when it is `stopped` or `register_service` is turned off.

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::go_seconds;

/// Patroni's `service_name_from_scope_name`.
pub(crate) fn service_name(scope: &str) -> String {
    let mut out = String::with_capacity(scope.len());
    for c in scope.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' => out.push(c),
            '.' | ' ' | '_' => out.push('-'),
            other => out.push_str(&format!("u{:04}", u32::from(other))),
        }
    }
    out.chars().take(230).collect()
}

/// The tag a role is known by in the catalogue (`standby_leader` ->
/// `standby-leader`); also the REST API path its check asks.
pub(crate) fn role_tag(role: &str) -> String {
    role.replace('_', "-")
}

/// The tags for a member in `role`: the configured ones, the role, and
/// `master` beside `primary` (for clients of Patroni 3's tags).
pub(crate) fn tags(service_tags: &[String], role: &str) -> Vec<String> {
    let mut tags = service_tags.to_vec();
    tags.push(role_tag(role));
    if role == "primary" {
        tags.push("master".into());
    }
    tags
}

/// A URL taken apart the way the registration needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub scheme: &'a str,
    /// `user@host:port` as written.
    pub netloc: &'a str,
    /// What follows the path: `?query#fragment`, as written.
    pub tail: &'a str,
}

pub(crate) fn split_url(url: &str) -> Option<Url<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (netloc, after) = rest.split_at(end);
    let tail_at = after.find(['?', '#']).unwrap_or(after.len());
    Some(Url { scheme, netloc, tail: &after[tail_at..] })
}

impl Url<'_> {
    /// `hostname` as Python's urlparse gives it: no user, no brackets, lower case.
    pub(crate) fn hostname(&self) -> Option<String> {
        let hostport = self.netloc.rsplit_once('@').map_or(self.netloc, |(_, h)| h);
        let host = if let Some(v6) = hostport.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            hostport.split(':').next().unwrap_or_default()
        };
        (!host.is_empty()).then(|| host.to_lowercase())
    }

    pub(crate) fn port(&self) -> Option<u16> {
        let hostport = self.netloc.rsplit_once('@').map_or(self.netloc, |(_, h)| h);
        let after_host = match hostport.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map(|(_, p)| p).unwrap_or_default(),
            None => hostport.split_once(':').map_or("", |(_, p)| p),
        };
        after_host.strip_prefix(':').unwrap_or(after_host).parse().ok()
    }
}

/// What the service settings are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceSettings {
    pub scope: String,
    pub member: String,
    pub tags: Vec<String>,
    pub check_interval: String,
    pub tls_server_name: Option<String>,
}

/// What to ask the agent for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    /// `PUT /v1/agent/service/register` with this body.
    Register(Value),
    /// `PUT /v1/agent/service/deregister/<id>`.
    Deregister(String),
    /// Nothing now (not running yet, or a role without a service).
    Nothing,
}

/// The fields of the member data the service is made of.
const NEEDED: [&str; 4] = ["role", "api_url", "conn_url", "state"];

/// Whether the service must be updated for `new` after `old` (the data it
/// was last made from): one of [`NEEDED`] changed. `Err` names what is
/// missing from `new`.
pub(crate) fn changed(old: Option<&Value>, new: &Value) -> Result<bool, String> {
    let mut update = false;
    for key in NEEDED {
        let Some(v) = new.get(key) else {
            return Err("Could not register service: not enough params in member data".into());
        };
        if old.and_then(|o| o.get(key)) != Some(v) {
            update = true;
        }
    }
    Ok(update)
}

/// The request for member data `data` (which has every field of
/// [`NEEDED`]); `enabled` is `register_service`; `session_ttl` gives the
/// deregistration delay (ten times it, as Patroni).
pub(crate) fn action(s: &ServiceSettings, enabled: bool, data: &Value, session_ttl: Duration) -> Action {
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (role, state) = (text("role"), text("state"));
    let id = format!("{}/{}", s.scope, s.member);
    if state == "stopped" || !enabled {
        return Action::Deregister(id);
    }
    if !matches!(role.as_str(), "primary" | "replica" | "standby_leader") {
        tracing::warn!("Could not register service: unknown role type {}", role_tag(&role));
        return Action::Nothing;
    }
    if state != "running" {
        return Action::Nothing;
    }
    let api_url = text("api_url");
    let check_url = match split_url(&api_url) {
        Some(u) => format!("{}://{}/{}{}", u.scheme, u.netloc, role_tag(&role), u.tail),
        None => format!("/{}", role_tag(&role)),
    };
    let mut check = json!({
        "http": check_url,
        "interval": s.check_interval,
        "DeregisterCriticalServiceAfter": go_seconds(session_ttl * 10),
    });
    if let Some(name) = &s.tls_server_name {
        check["TLSServerName"] = json!(name);
    }
    let conn_url = text("conn_url");
    let conn = split_url(&conn_url);
    let mut body = json!({
        "name": service_name(&s.scope),
        "enabletagoverride": true,
        "id": id,
        "tags": tags(&s.tags, &role),
        "checks": [check],
    });
    if let Some(host) = conn.as_ref().and_then(Url::hostname) {
        body["address"] = json!(host);
    }
    if let Some(port) = conn.as_ref().and_then(Url::port).filter(|p| *p > 0) {
        body["port"] = json!(port);
    }
    Action::Register(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ServiceSettings {
        ServiceSettings {
            scope: "demo".into(),
            member: "n1".into(),
            tags: vec!["a".into(), "b".into()],
            check_interval: "5s".into(),
            tls_server_name: None,
        }
    }

    fn member(role: &str, state: &str) -> Value {
        json!({"conn_url": "postgres://User@[::1]:5433/postgres", "api_url": "https://10.0.0.1:8008/patroni?x=1",
               "state": state, "role": role, "version": "4.1.0"})
    }

    #[test]
    fn service_names_fit_dns() {
        assert_eq!(service_name("demo"), "demo");
        assert_eq!(service_name("My_Cluster.prod 1"), "my-cluster-prod-1");
        assert_eq!(service_name("a/b"), "au0047b");
        assert_eq!(service_name("é"), "u0233");
        assert_eq!(service_name(&"x".repeat(300)).len(), 230);
    }

    #[test]
    fn roles_and_tags() {
        let cases: &[(&str, &[&str])] = &[
            ("primary", &["a", "b", "primary", "master"]),
            ("replica", &["a", "b", "replica"]),
            ("standby_leader", &["a", "b", "standby-leader"]),
        ];
        for (role, want) in cases {
            assert_eq!(tags(&settings().tags, role), *want, "{role}");
        }
        assert_eq!(role_tag("standby_leader"), "standby-leader");
    }

    #[test]
    fn urls() {
        let u = split_url("postgres://User@[::1]:5433/postgres").unwrap();
        assert_eq!((u.hostname().as_deref(), u.port()), (Some("::1"), Some(5433)));
        let u = split_url("postgres://DB.example/postgres?sslmode=require").unwrap();
        assert_eq!((u.hostname().as_deref(), u.port(), u.tail), (Some("db.example"), None, "?sslmode=require"));
        assert_eq!(split_url("http://h:8008").unwrap().port(), Some(8008));
        assert!(split_url("no url").is_none());
    }

    #[test]
    fn a_running_primary_is_registered_as_patroni_does() {
        let Action::Register(body) = action(&settings(), true, &member("primary", "running"), Duration::from_secs(15))
        else {
            panic!("registered")
        };
        assert_eq!(
            body,
            json!({"name": "demo", "enabletagoverride": true, "id": "demo/n1", "address": "::1", "port": 5433,
                   "tags": ["a", "b", "primary", "master"],
                   "checks": [{"http": "https://10.0.0.1:8008/primary?x=1", "interval": "5s",
                               "DeregisterCriticalServiceAfter": "150s"}]})
        );
        let mut s = settings();
        s.tls_server_name = Some("pg.example".into());
        let Action::Register(body) =
            action(&s, true, &member("standby_leader", "running"), Duration::from_millis(2500))
        else {
            panic!("registered")
        };
        assert_eq!(body["checks"][0]["http"], "https://10.0.0.1:8008/standby-leader?x=1");
        assert_eq!(body["checks"][0]["TLSServerName"], "pg.example");
        assert_eq!(body["checks"][0]["DeregisterCriticalServiceAfter"], "25s");
    }

    #[test]
    fn what_happens_in_each_state() {
        let ttl = Duration::from_secs(15);
        let s = settings();
        assert_eq!(action(&s, true, &member("replica", "stopped"), ttl), Action::Deregister("demo/n1".into()));
        assert_eq!(action(&s, false, &member("replica", "running"), ttl), Action::Deregister("demo/n1".into()));
        assert_eq!(action(&s, true, &member("replica", "starting"), ttl), Action::Nothing);
        assert_eq!(action(&s, true, &member("uninitialized", "running"), ttl), Action::Nothing);
        assert!(matches!(action(&s, true, &member("replica", "running"), ttl), Action::Register(_)));
    }

    #[test]
    fn updates_only_on_change() {
        let a = member("replica", "running");
        assert_eq!(changed(None, &a), Ok(true));
        assert_eq!(changed(Some(&a), &a), Ok(false));
        let mut b = a.clone();
        b["xlog_location"] = json!(5);
        assert_eq!(changed(Some(&a), &b), Ok(false), "other fields do not count");
        assert_eq!(changed(Some(&a), &member("primary", "running")), Ok(true));
        assert!(changed(None, &json!({"role": "replica"})).is_err());
    }
}
