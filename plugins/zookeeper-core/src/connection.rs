//! The ZooKeeper session: opened on first use with a session timeout of
//! `ttl`, kept across server restarts and connection losses (the client
//! reconnects with the same session while it is valid), replaced by a new
//! one when it expired, when `ttl` changed or when the ensemble moved; and
//! the retry loop that bounds every operation by `retry_timeout`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use palisade_plugin_api::{DcsTiming, PluginError};
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::settings::{self, Settings};

/// Where the servers are: fixed in the section (`zookeeper:`) or found by
/// discovery (`exhibitor:`).
pub trait Ensemble: Send + Sync + 'static {
    /// The connection string to use now (`h1:2181,h2:2181[/chroot]`), or
    /// why it is not known.
    fn connect_string(&self) -> Result<String, String>;
}

/// A fixed server list.
pub struct Fixed(pub String);

impl Ensemble for Fixed {
    fn connect_string(&self) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

/// Why an operation did not complete.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The store could not be reached or kept failing until the deadline.
    Unreachable(String),
    /// ZooKeeper answered with an error the caller decides about
    /// (no node, node exists, bad version...).
    Answer(zk::Error),
}

impl Failure {
    pub(crate) fn into_plugin_error(self, what: &str) -> PluginError {
        match self {
            Failure::Unreachable(m) => PluginError::dcs(format!("{what}: {m}")),
            Failure::Answer(e) => PluginError::dcs(format!("{what}: ZooKeeper refused the request: {e}")),
        }
    }
}

/// Worth another try before the deadline: anything but an answer about
/// the request itself (the connection is down, the server did not answer,
/// the session is being replaced...).
fn transient(e: &zk::Error) -> bool {
    use zk::Error as E;
    !matches!(
        e,
        E::NoNode
            | E::NodeExists
            | E::BadVersion
            | E::NotEmpty
            | E::NoChildrenForEphemerals
            | E::NoAuth
            | E::InvalidAcl
            | E::AuthFailed
            | E::BadArguments(_)
            | E::Unimplemented
            | E::QuotaExceeded
            | E::NotReadOnly
            | E::ReconfigDisabled
            | E::RuntimeInconsistent
            | E::NoWatcher
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        for e in [
            zk::Error::ConnectionLoss,
            zk::Error::SessionExpired,
            zk::Error::Timeout,
            zk::Error::UnexpectedError("x".into()),
        ] {
            assert!(transient(&e), "{e}");
        }
        for e in [zk::Error::NoNode, zk::Error::NodeExists, zk::Error::BadVersion, zk::Error::NoAuth] {
            assert!(!transient(&e), "{e}");
        }
        let e = Failure::Unreachable("ZooKeeper at h:1 did not answer".into()).into_plugin_error("get_cluster");
        assert_eq!(e.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert_eq!(e.message, "get_cluster: ZooKeeper at h:1 did not answer");
    }
}

/// The time an operation may take: `retry_timeout` from its start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub deadline: Instant,
    pub total: Duration,
}

impl Budget {
    pub(crate) fn new(total: Duration) -> Self {
        Budget { deadline: Instant::now() + total, total }
    }
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

struct Live {
    client: zk::Client,
    /// The connection string it was opened with.
    hosts: String,
    /// The session timeout asked for.
    asked: Duration,
}

pub(crate) struct Connection {
    name: String,
    settings: Settings,
    ensemble: Arc<dyn Ensemble>,
    live: tokio::sync::Mutex<Option<Live>>,
}

impl Connection {
    pub(crate) fn new(name: &str, settings: Settings, ensemble: Arc<dyn Ensemble>) -> Self {
        Connection { name: name.to_string(), settings, ensemble, live: tokio::sync::Mutex::new(None) }
    }

    fn connector(&self, timing: &DcsTiming, session: Option<zk::SessionInfo>) -> Result<zk::Connector, String> {
        let mut c = zk::Client::connector()
            .with_session_timeout(settings::session_timeout(timing.ttl))
            .with_connection_timeout(settings::connect_timeout(timing.retry_timeout));
        for (scheme, cred) in &self.settings.auth_data {
            c = c.with_auth(scheme, cred.as_bytes());
        }
        if let Some(tls) = &self.settings.tls {
            c = c.with_tls(crate::tls::options(&self.name, tls)?);
        }
        if let Some(s) = session {
            c = c.with_session(s);
        }
        Ok(c)
    }

    async fn open(
        &self,
        budget: &Budget,
        timing: &DcsTiming,
        hosts: &str,
        session: Option<zk::SessionInfo>,
    ) -> Result<zk::Client, Failure> {
        let connector = self.connector(timing, session).map_err(Failure::Unreachable)?;
        let secure = self.settings.tls.is_some();
        let connect = async move {
            if secure {
                connector.secure_connect(hosts).await
            } else {
                connector.connect(hosts).await
            }
        };
        match tokio::time::timeout(budget.remaining(), connect).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(zk::Error::SessionExpired)) => Err(Failure::Answer(zk::Error::SessionExpired)),
            Ok(Err(zk::Error::Timeout)) => Err(Failure::Unreachable(format!(
                "cannot connect to ZooKeeper at {hosts}: no server answered within the session timeout ({:?})",
                settings::session_timeout(timing.ttl)
            ))),
            Ok(Err(e)) => Err(Failure::Unreachable(format!("cannot connect to ZooKeeper at {hosts}: {e}"))),
            Err(_) => Err(Failure::Unreachable(format!(
                "cannot connect to ZooKeeper at {hosts} within retry_timeout ({:?})",
                budget.total
            ))),
        }
    }

    /// The client of the current session, opening or replacing it when
    /// needed.
    pub(crate) async fn client(&self, budget: &Budget, timing: &DcsTiming) -> Result<zk::Client, Failure> {
        let hosts = self
            .ensemble
            .connect_string()
            .map_err(|e| Failure::Unreachable(format!("no ZooKeeper servers known: {e}")))?;
        let asked = settings::session_timeout(timing.ttl);
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref() {
            let state = l.client.state();
            if state.is_terminated() {
                tracing::warn!("ZooKeeper session {:x} is {state}: opening a new one", l.client.session_id().0);
                *live = None;
            } else if l.asked != asked {
                tracing::info!("session timeout changes from {:?} to {asked:?}: opening a new session", l.asked);
                *live = None;
            } else if l.hosts != hosts {
                // The ensemble moved (Exhibitor): keep the session on the new servers.
                let session = l.client.session().clone();
                tracing::info!("ZooKeeper servers changed from {} to {hosts}: reconnecting", l.hosts);
                let client = match self.open(budget, timing, &hosts, Some(session)).await {
                    Ok(c) => c,
                    Err(Failure::Answer(zk::Error::SessionExpired)) => {
                        tracing::warn!("the session expired while moving to {hosts}: opening a new one");
                        self.open(budget, timing, &hosts, None).await?
                    }
                    Err(e) => return Err(e),
                };
                *live = Some(Live { client: client.clone(), hosts, asked });
                return Ok(client);
            } else {
                return Ok(l.client.clone());
            }
        }
        let client = self.open(budget, timing, &hosts, None).await?;
        tracing::info!(
            "ZooKeeper session {:x} opened on {hosts} (timeout {:?})",
            client.session_id().0,
            client.session_timeout()
        );
        *live = Some(Live { client: client.clone(), hosts, asked });
        Ok(client)
    }

    /// Close the session (its ephemeral znodes go at once).
    pub(crate) async fn close(&self) {
        let old = self.live.lock().await.take();
        if let Some(l) = old {
            tracing::info!("closing ZooKeeper session {:x}", l.client.session_id().0);
        }
    }

    /// Run `op` with the session's client until it gets an answer or the
    /// budget runs out; connection losses and expired sessions are retried.
    pub(crate) async fn call<T, F, Fut>(&self, budget: &Budget, timing: &DcsTiming, op: F) -> Result<T, Failure>
    where
        F: Fn(zk::Client) -> Fut,
        Fut: Future<Output = Result<T, zk::Error>>,
    {
        loop {
            // Another call may be connecting: wait for it within our budget only.
            let client = match tokio::time::timeout(budget.remaining(), self.client(budget, timing)).await {
                Ok(Ok(c)) => c,
                Ok(Err(Failure::Answer(e))) => return Err(Failure::Unreachable(e.to_string())),
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    let hosts = self.ensemble.connect_string().unwrap_or_default();
                    return Err(Failure::Unreachable(format!(
                        "cannot connect to ZooKeeper at {hosts} within retry_timeout ({:?})",
                        budget.total
                    )));
                }
            };
            let last = match tokio::time::timeout(budget.remaining(), op(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if transient(&e) => e,
                Ok(Err(e)) => return Err(Failure::Answer(e)),
                Err(_) => zk::Error::Timeout,
            };
            let pause = Duration::from_millis(200).min(budget.remaining());
            if pause.is_zero() {
                let hosts = self.ensemble.connect_string().unwrap_or_default();
                return Err(Failure::Unreachable(format!(
                    "ZooKeeper at {hosts} did not answer within retry_timeout ({:?}): {last}",
                    budget.total
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }
}
