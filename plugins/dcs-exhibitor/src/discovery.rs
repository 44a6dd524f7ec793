//! Exhibitor discovery, as Patroni's `ExhibitorEnsembleProvider`: ask the
//! known Exhibitors (then the configured ones) for
//! `/exhibitor/v1/cluster/list`, answer `{"servers": [...], "port": N}`,
//! and turn it into the ZooKeeper connection string, sorted. Polled every
//! `poll_interval`, every 5 seconds while no answer came yet.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use palisade_plugin_api::sdk;
use palisade_zookeeper_core::Ensemble;
use serde_json::Value;

use crate::http;
use crate::ExhibitorSettings;

const PATH: &str = "/exhibitor/v1/cluster/list";
/// Patroni's timeout for one Exhibitor request.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(3100);
/// How often to ask while no server list is known.
const RETRY: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct State {
    settings: ExhibitorSettings,
    /// The Exhibitors to ask first: the servers of the last answer.
    exhibitors: Mutex<Vec<String>>,
    /// The current connection string, or why there is none.
    hosts: Mutex<Result<String, String>>,
}

pub(crate) struct Discovery {
    state: Arc<State>,
}

/// The connection string of an answer, or why it is not one.
pub(crate) fn connect_string(body: &[u8]) -> Result<(String, Vec<String>), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let servers = v.get("servers").and_then(Value::as_array).ok_or("no 'servers' list")?;
    let port = match v.get("port") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => return Err("no 'port'".into()),
    };
    let mut names: Vec<String> = Vec::with_capacity(servers.len());
    for s in servers {
        match s.as_str() {
            Some(name) if !name.is_empty() => names.push(name.to_string()),
            _ => return Err(format!("'servers' holds {s}, not a host name")),
        }
    }
    if names.is_empty() {
        return Err("an empty 'servers' list".into());
    }
    let mut sorted = names.clone();
    sorted.sort();
    let hosts = sorted.iter().map(|h| format!("{h}:{port}")).collect::<Vec<_>>().join(",");
    Ok((hosts, names))
}

impl State {
    async fn query(&self, exhibitors: &[String]) -> Result<(String, Vec<String>), String> {
        let mut why = Vec::new();
        for host in exhibitors {
            match http::get(host, self.settings.port, PATH, REQUEST_TIMEOUT).await.and_then(|b| connect_string(&b)) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    tracing::debug!("Exhibitor {host}:{}: {e}", self.settings.port);
                    why.push(format!("{host}:{}: {e}", self.settings.port));
                }
            }
        }
        Err(why.join("; "))
    }

    /// One poll; true when an answer came.
    async fn poll(&self) -> bool {
        let known = lock(&self.exhibitors).clone();
        let mut answer = self.query(&known).await;
        if answer.is_err() && known != self.settings.hosts {
            answer = self.query(&self.settings.hosts).await;
        }
        match answer {
            Ok((hosts, servers)) => {
                let mut current = lock(&self.hosts);
                if current.as_ref().ok() != Some(&hosts) {
                    // Patroni's line, the old string empty the first time.
                    let old = current.as_deref().unwrap_or_default();
                    tracing::info!("ZooKeeper connection string has changed: {old} => {hosts}");
                    *current = Ok(hosts);
                    *lock(&self.exhibitors) = servers;
                }
                true
            }
            Err(e) => {
                let mut current = lock(&self.hosts);
                if current.is_err() {
                    *current = Err(format!("no Exhibitor answered yet ({e})"));
                }
                tracing::warn!("no Exhibitor answered {PATH}: {e}");
                false
            }
        }
    }
}

impl Discovery {
    /// Ask the Exhibitors once (up to `first_wait`), then keep polling in
    /// the background for as long as the plugin lives.
    pub(crate) fn start(settings: ExhibitorSettings, first_wait: Duration) -> Self {
        let state = Arc::new(State {
            exhibitors: Mutex::new(settings.hosts.clone()),
            hosts: Mutex::new(Err("no Exhibitor answered yet".into())),
            settings,
        });
        let first = sdk::runtime().block_on(async { tokio::time::timeout(first_wait, state.poll()).await });
        let mut next = if matches!(first, Ok(true)) { state.settings.poll_interval } else { RETRY };
        let weak = Arc::downgrade(&state);
        sdk::runtime().spawn(async move {
            loop {
                tokio::time::sleep(next).await;
                let Some(state) = weak.upgrade() else {
                    return;
                };
                next = if state.poll().await { state.settings.poll_interval } else { RETRY };
            }
        });
        Discovery { state }
    }
}

impl Ensemble for Discovery {
    fn connect_string(&self) -> Result<String, String> {
        lock(&self.state.hosts).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_sorted_connection_strings() {
        let (hosts, servers) = connect_string(br#"{"servers":["z2","z1"],"port":2181}"#).expect("valid");
        assert_eq!(hosts, "z1:2181,z2:2181");
        assert_eq!(servers, ["z2", "z1"]);
        assert_eq!(connect_string(br#"{"servers":["z1"],"port":"2182"}"#).expect("valid").0, "z1:2182");
        for bad in [
            &b"{"[..],
            br#"{"port":1}"#,
            br#"{"servers":[]," port":1}"#,
            br#"{"servers":[1],"port":1}"#,
            br#"{"servers":["a"]}"#,
        ] {
            assert!(connect_string(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
