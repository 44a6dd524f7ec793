//! Patroni's value readers as the configuration uses them. The readers
//! themselves (`parse_bool`, `parse_int` and `parse_real` with units,
//! Python's `str()`, `unquote`) live in `palisade-pycompat`; this module
//! re-exports them and adds what only the configuration needs: short
//! descriptions of values for error messages and `host:port` splitting.

use serde_json::Value;

pub use palisade_pycompat::patroni::{parse_bool, parse_int, parse_real};
pub use palisade_pycompat::py::to_str as py_str;

/// A short description of a value for error messages: `a string 'abc'`,
/// `an integer 5`, `a list`...
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("a boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("a number {n}"),
        Value::Number(n) => format!("an integer {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(60).collect();
            let more = if s.chars().count() > 60 { "..." } else { "" };
            format!("a string '{shown}{more}'")
        }
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// Patroni's `split_host_port`: `host[,host...][:port]`. IPv6 hosts may be
/// bracketed. Without a port, `default_port` is used (an error if `None`).
pub fn split_host_port(value: &str, default_port: Option<u16>) -> Result<(Vec<String>, u16), String> {
    let (hosts_part, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    let hosts: Vec<String> = if hosts_part.contains(':') {
        hosts_part.split(',').map(|h| h.trim().trim_matches(['[', ']']).to_string()).collect()
    } else {
        hosts_part.split(',').map(|h| h.trim().to_string()).collect()
    };
    let port = match (port, default_port) {
        (Some(p), _) => {
            let p = p.trim();
            let p = p.strip_prefix('+').unwrap_or(p);
            match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => n as u16,
                Ok(n) => return Err(format!("port {n} is out of range 1-65535")),
                Err(_) => return Err(format!("'{p}' is not a port number")),
            }
        }
        (None, Some(d)) => d,
        (None, None) => return Err("expected host:port, found no port".into()),
    };
    if hosts.iter().any(String::is_empty) {
        return Err("expected host:port, found an empty host".into());
    }
    Ok((hosts, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_cases() {
        assert_eq!(split_host_port("127.0.0.1", Some(5432)), Ok((vec!["127.0.0.1".into()], 5432)));
        assert_eq!(
            split_host_port("127.0.0.1,192.168.0.101:5400", Some(5432)),
            Ok((vec!["127.0.0.1".into(), "192.168.0.101".into()], 5400))
        );
        assert_eq!(split_host_port("[fe80::1]:8008", None), Ok((vec!["fe80::1".into()], 8008)));
        assert!(split_host_port("host", None).is_err());
        assert!(split_host_port("host:abc", None).is_err());
        assert!(split_host_port("host:70000", None).is_err());
        assert!(split_host_port(":5432", None).is_err());
    }
}
