//! The DCS sections (`etcd`, `etcd3`, `consul`, `zookeeper`, `exhibitor`,
//! `kubernetes`, `raft`), checked as Patroni's validator does, without
//! connecting anywhere. Exactly one must be present.

use serde_json::Value;

use crate::check::{Checker, Sec};
use crate::types::DcsSection;
use crate::values::describe;

/// The DCS section names, in the order Patroni looks for them.
pub const DCS_KINDS: [&str; 7] = ["consul", "etcd", "etcd3", "exhibitor", "kubernetes", "raft", "zookeeper"];

/// Finds and checks the DCS section. `required` is false for tools that
/// never talk to the DCS.
pub(crate) fn read(ck: &mut Checker, root: &Sec, required: bool) -> Option<DcsSection> {
    let present: Vec<&str> = DCS_KINDS.iter().copied().filter(|k| root.has(k)).collect();
    match present.as_slice() {
        [] => {
            if required {
                ck.error(
                    "",
                    format!(
                        "no DCS configured: add one of the sections {} (or PATRONI_<DCS>_* variables, e.g. PATRONI_ETCD3_HOSTS)",
                        DCS_KINDS.join(", ")
                    ),
                );
            }
            None
        }
        [kind] => {
            let sec = ck.section(root, kind, true);
            let map = sec.map?;
            let before = ck.errors.len();
            match *kind {
                "etcd" | "etcd3" => etcd(ck, &sec),
                "consul" => consul(ck, &sec),
                "zookeeper" => zookeeper(ck, &sec),
                "exhibitor" => exhibitor(ck, &sec),
                "kubernetes" => kubernetes(ck, &sec),
                _ => raft(ck, &sec),
            }
            (ck.errors.len() == before).then(|| DcsSection { kind: (*kind).to_string(), section: map.clone() })
        }
        several => {
            ck.error("", format!("several DCS sections configured ({}): keep exactly one", several.join(", ")));
            None
        }
    }
}

/// At least one of `keys` must be set.
fn one_of(ck: &mut Checker, sec: &Sec, keys: &[&str]) {
    if !keys.iter().any(|k| sec.has(k)) {
        ck.error(sec.prefix.clone(), format!("needs one of {}", keys.join(", ")));
    }
}

/// `hosts` as a comma-separated string or a list of `host:port`.
fn hosts(ck: &mut Checker, sec: &Sec, key: &str) {
    let path = sec.path(key);
    match sec.get(key) {
        None => {}
        Some(Value::String(s)) => {
            for (i, part) in s.split(',').map(str::trim).enumerate() {
                ck.host_port_text(part, &format!("{path}.{i}"), Some(1), false);
            }
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}.{i}");
                if let Some(s) = ck.string_value(item, &p) {
                    ck.host_port_text(&s, &p, Some(1), false);
                }
            }
        }
        Some(other) => ck.expected(path, "a list of host:port or a comma-separated string", other),
    }
}

fn strings_of(ck: &mut Checker, sec: &Sec, keys: &[&str]) {
    for k in keys {
        ck.string(sec, k);
    }
}

fn port(ck: &mut Checker, sec: &Sec, key: &str) {
    // An empty PATRONI_<DCS>_PORT is kept as an empty string, as Patroni does.
    if sec.get(key).and_then(Value::as_str).is_some_and(str::is_empty) {
        return;
    }
    ck.int(sec, key, 0..=65535, None);
}

fn etcd(ck: &mut Checker, sec: &Sec) {
    one_of(ck, sec, &["host", "hosts", "srv", "srv_suffix", "url", "proxy"]);
    if let Some(h) = ck.string(sec, "host") {
        ck.host_port_text(&h, &sec.path("host"), Some(1), false);
    }
    hosts(ck, sec, "hosts");
    strings_of(
        ck,
        sec,
        &["srv", "srv_suffix", "url", "proxy", "protocol", "username", "password", "cacert", "cert", "key"],
    );
    ck.boolean(sec, "use_proxies");
    port(ck, sec, "port");
}

fn consul(ck: &mut Checker, sec: &Sec) {
    one_of(ck, sec, &["host", "url"]);
    if let Some(h) = ck.string(sec, "host") {
        ck.host_port_text(&h, &sec.path("host"), Some(1), false);
    }
    port(ck, sec, "port");
    strings_of(
        ck,
        sec,
        &[
            "url",
            "scheme",
            "token",
            "cacert",
            "cert",
            "key",
            "dc",
            "service_check_interval",
            "service_check_tls_server_name",
        ],
    );
    // consul.py reads `verify` with parse_bool, `register_service` with bool().
    ck.parse_bool(sec, "verify");
    ck.boolean(sec, "register_service");
    for k in ["checks", "service_tags"] {
        ck.strings(sec, k);
    }
    ck.one_of(sec, "consistency", &["default", "consistent", "stale"], false);
}

fn zookeeper(ck: &mut Checker, sec: &Sec) {
    if !sec.has("hosts") {
        ck.missing(sec.path("hosts"));
    }
    zookeeper_hosts(ck, sec);
    zookeeper_client_keys(ck, sec);
}

/// `hosts` as kazoo takes it: a comma-separated string or a list of
/// `host[:port]`, a chroot after the last one (`z1:2181,z2:2181/patroni`).
fn zookeeper_hosts(ck: &mut Checker, sec: &Sec) {
    let path = sec.path("hosts");
    let parts: Vec<String> = match sec.get("hosts") {
        None => return,
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if let Some(s) = ck.string_value(item, &format!("{path}.{i}")) {
                    out.push(s);
                }
            }
            out
        }
        Some(other) => return ck.expected(path, "a list of host:port or a comma-separated string", other),
    };
    let mut chroot_seen = false;
    for (i, part) in parts.iter().enumerate() {
        let hostport = match part.split_once('/') {
            Some((hp, _)) if chroot_seen => hp,
            Some((hp, _)) => {
                chroot_seen = true;
                hp
            }
            None => part.as_str(),
        };
        if hostport.is_empty() && part.starts_with('/') {
            ck.error(format!("{path}.{i}"), format!("expected host:port before the chroot, found '{part}'"));
            continue;
        }
        if chroot_seen && i + 1 < parts.len() {
            ck.error(format!("{path}.{i}"), format!("a chroot may only follow the last host, found '{part}'"));
            continue;
        }
        ck.host_port_text(hostport, &format!("{path}.{i}"), Some(1), false);
    }
}

/// The ZooKeeper client keys, which `exhibitor` shares with `zookeeper`
/// (Patroni hands the whole section to its ZooKeeper client).
fn zookeeper_client_keys(ck: &mut Checker, sec: &Sec) {
    let use_ssl = ck.boolean(sec, "use_ssl").unwrap_or(false);
    let verify = ck.boolean(sec, "verify").unwrap_or(true);
    strings_of(ck, sec, &["cacert", "cert", "key", "key_password"]);
    if use_ssl && !verify {
        ck.warn(
            sec.path("verify"),
            "false turns off only the host name check: the server certificate's chain is still checked against \
             cacert (Patroni checks nothing)",
        );
    }
    for k in ["set_acls", "auth_data"] {
        ck.mapping(sec, k);
    }
}

fn exhibitor(ck: &mut Checker, sec: &Sec) {
    match sec.get("hosts") {
        None => ck.missing(sec.path("hosts")),
        Some(_) => {
            ck.strings(sec, "hosts");
        }
    }
    if !sec.has("port") {
        ck.missing(sec.path("port"));
    }
    port(ck, sec, "port");
    ck.int(sec, "poll_interval", 1..=i64::MAX, None);
    zookeeper_client_keys(ck, sec);
}

fn kubernetes(ck: &mut Checker, sec: &Sec) {
    if !sec.has("labels") {
        ck.missing(sec.path("labels"));
    }
    ck.mapping(sec, "labels");
    ck.mapping(sec, "bootstrap_labels");
    for k in ["bypass_api_service", "use_endpoints"] {
        ck.boolean(sec, k);
    }
    // `leader_lease` (a Palisade extension) puts the lock on a Lease; the
    // Endpoints mode keeps it on the Endpoints.
    let lease = ck.boolean(sec, "leader_lease").unwrap_or(false);
    let endpoints = sec.get("use_endpoints").is_some_and(palisade_pycompat::py::truthy);
    if lease && endpoints {
        ck.error(sec.path("leader_lease"), "cannot be combined with use_endpoints");
    }
    strings_of(
        ck,
        sec,
        &[
            "namespace",
            "scope_label",
            "role_label",
            "leader_label_value",
            "follower_label_value",
            "standby_leader_label_value",
            "tmp_role_label",
            "cacert",
            "context",
            "kubeconfig",
        ],
    );
    if let Some(ip) = ck.string(sec, "pod_ip") {
        if ip.parse::<std::net::IpAddr>().is_err() {
            ck.error(sec.path("pod_ip"), format!("expected an IPv4 or IPv6 address, found '{ip}'"));
        }
    }
    if let Some(v) = sec.get("ports") {
        let path = sec.path("ports");
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}.{i}");
                    match item {
                        Value::Object(m) => {
                            let s = Sec { map: Some(m), prefix: p.clone() };
                            ck.req_string(&s, "name");
                            if !s.has("port") {
                                ck.missing(s.path("port"));
                            }
                            port(ck, &s, "port");
                        }
                        other => ck.expected(p, "a mapping with name and port", other),
                    }
                }
            }
            other => ck.expected(path, "a list", other),
        }
    }
    match sec.get("retriable_http_codes") {
        None | Some(Value::Number(_)) => {}
        Some(Value::Array(items)) if items.iter().all(|i| i.is_i64() || i.is_u64()) => {}
        Some(other) => ck.error(
            sec.path("retriable_http_codes"),
            format!("expected an HTTP status code or a list of them, found {}", describe(other)),
        ),
    }
}

fn raft(ck: &mut Checker, sec: &Sec) {
    if !sec.has("self_addr") {
        ck.missing(sec.path("self_addr"));
    }
    ck.connect_address(sec, "self_addr", None);
    ck.host_port(sec, "bind_addr", None, false);
    match sec.get("partner_addrs") {
        None => ck.missing(sec.path("partner_addrs")),
        Some(Value::Array(items)) => {
            let path = sec.path("partner_addrs");
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}.{i}");
                if let Some(s) = ck.string_value(item, &p) {
                    ck.host_port_text(&s, &p, None, false);
                }
            }
        }
        Some(other) => ck.expected(sec.path("partner_addrs"), "a list of host:port", other),
    }
    strings_of(ck, sec, &["data_dir", "password"]);
    for k in ["min_timeout", "max_timeout", "connection_timeout", "append_entries_period", "leader_fallback_timeout"] {
        if let Some(v) = sec.get(k) {
            if !crate::values::parse_real(v, None).is_some_and(|r| r > 0.0) {
                ck.expected(sec.path(k), "a positive number of seconds", v);
            }
        }
    }
    if let Some(v) = sec.get("connection_retry_time") {
        if !crate::values::parse_real(v, None).is_some_and(|r| r >= 0.0) {
            ck.expected(sec.path("connection_retry_time"), "a number of seconds", v);
        }
    }
}
