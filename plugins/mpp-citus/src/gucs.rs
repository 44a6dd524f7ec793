//! The PostgreSQL parameters Citus needs, as Patroni's
//! `adjust_postgres_gucs` sets them. Pure.

use palisade_plugin_api::sdk::pycompat::patroni::parse_int;
use palisade_plugin_api::sdk::pycompat::py;
use palisade_plugin_api::sdk::settings::{error, kind};
use palisade_plugin_api::PluginResult;
use serde_json::{Map, Value};

/// Adjust `parameters` (every parameter the host writes):
///
/// - `citus` first in `shared_preload_libraries` (and only once);
/// - `max_prepared_transactions` = 2 × `max_connections` when it is 0
///   (what Citus itself would do);
/// - `wal_level` = `logical` (Citus moves shards with logical replication);
/// - `citus.local_hostname` = how the host reaches the local server
///   (`local_host`, `localhost` when unknown).
pub fn adjust(parameters: &mut Map<String, Value>, local_host: Option<&str>) -> PluginResult<()> {
    let current = match parameters.get("shared_preload_libraries") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => py::to_str(other),
    };
    let mut libraries = vec!["citus".to_string()];
    libraries.extend(current.split(',').map(py::strip).filter(|l| !l.is_empty() && *l != "citus").map(String::from));
    parameters.insert("shared_preload_libraries".into(), Value::String(libraries.join(",")));

    let prepared = parameters
        .get("max_prepared_transactions")
        .ok_or_else(|| error("postgresql.parameters", "max_prepared_transactions", "missing"))?;
    if prepared.as_f64() == Some(0.0) {
        let connections = parameters
            .get("max_connections")
            .ok_or_else(|| error("postgresql.parameters", "max_connections", "missing"))?;
        let n = match connections {
            Value::Number(_) | Value::String(_) => parse_int(connections, None),
            _ => None,
        }
        .ok_or_else(|| {
            error(
                "postgresql.parameters",
                "max_connections",
                format!("expected an integer, found {}", kind(connections)),
            )
        })?;
        parameters.insert("max_prepared_transactions".into(), Value::from(n * 2));
    }

    parameters.insert("wal_level".into(), Value::String("logical".into()));
    parameters.insert("citus.local_hostname".into(), Value::String(local_host.unwrap_or("localhost").to_string()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn as_patroni_adjusts() {
        let cases = [
            (
                json!({"max_connections": 100, "max_prepared_transactions": 0}),
                Some("/run/pg"),
                json!({"shared_preload_libraries": "citus", "max_connections": 100,
                       "max_prepared_transactions": 200, "wal_level": "logical", "citus.local_hostname": "/run/pg"}),
            ),
            (
                json!({"shared_preload_libraries": " pg_stat_statements, citus ,,auto_explain",
                       "max_connections": 50, "max_prepared_transactions": 10, "wal_level": "replica"}),
                None,
                json!({"shared_preload_libraries": "citus,pg_stat_statements,auto_explain", "max_connections": 50,
                       "max_prepared_transactions": 10, "wal_level": "logical", "citus.local_hostname": "localhost"}),
            ),
            (
                json!({"shared_preload_libraries": "citus", "max_connections": "20", "max_prepared_transactions": 0}),
                Some("127.0.0.1"),
                json!({"shared_preload_libraries": "citus", "max_connections": "20", "max_prepared_transactions": 40,
                       "wal_level": "logical", "citus.local_hostname": "127.0.0.1"}),
            ),
        ];
        for (input, host, want) in cases {
            let Value::Object(mut map) = input.clone() else { unreachable!() };
            adjust(&mut map, host).unwrap();
            assert_eq!(Value::Object(map), want, "{input}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (json!({"max_connections": 1}), "postgresql.parameters.max_prepared_transactions: missing"),
            (json!({"max_prepared_transactions": 0}), "postgresql.parameters.max_connections: missing"),
            (
                json!({"max_prepared_transactions": 0, "max_connections": [1]}),
                "postgresql.parameters.max_connections: expected an integer, found a list",
            ),
        ];
        for (input, want) in cases {
            let Value::Object(mut map) = input else { unreachable!() };
            assert_eq!(adjust(&mut map, None).unwrap_err().message, want);
        }
    }
}
