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

/// How long a TLS connection may take before the plugin looks for why
/// the handshake fails (see `Connection::tls_failure`).
const PROBE_AFTER: Duration = Duration::from_millis(500);
/// The time each step of that look may take.
const PROBE_LIMIT: Duration = Duration::from_secs(1);

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

#[derive(Default)]
struct State {
    live: Option<Live>,
    /// A session whose client was let go to move to other servers, until a
    /// client on the new servers holds it.
    moving: Option<zk::SessionInfo>,
}

pub(crate) struct Connection {
    name: String,
    settings: Settings,
    ensemble: Arc<dyn Ensemble>,
    state: tokio::sync::Mutex<State>,
}

impl Connection {
    pub(crate) fn new(name: &str, settings: Settings, ensemble: Arc<dyn Ensemble>) -> Self {
        Connection { name: name.to_string(), settings, ensemble, state: tokio::sync::Mutex::new(State::default()) }
    }

    /// Clients are detached: dropping one never closes its session (the
    /// session outlives a client replaced when the servers move); sessions
    /// are closed on purpose only, by [`Connection::close_session`].
    fn connector(
        &self,
        timing: &DcsTiming,
        session: Option<zk::SessionInfo>,
        detached: bool,
    ) -> Result<zk::Connector, String> {
        let mut c = zk::Client::connector()
            .with_session_timeout(settings::session_timeout(timing.ttl))
            .with_connection_timeout(settings::connect_timeout(timing.retry_timeout));
        if detached {
            c = c.with_detached();
        }
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
        self.open_with(budget, timing, hosts, session, true).await
    }

    async fn open_with(
        &self,
        budget: &Budget,
        timing: &DcsTiming,
        hosts: &str,
        session: Option<zk::SessionInfo>,
        detached: bool,
    ) -> Result<zk::Client, Failure> {
        let connector = self.connector(timing, session, detached).map_err(Failure::Unreachable)?;
        let secure = self.settings.tls.is_some();
        let connect = async move {
            if secure {
                connector.secure_connect(hosts).await
            } else {
                connector.connect(hosts).await
            }
        };
        // With TLS, a connection that takes long may be a handshake the
        // client keeps retrying: find out why, meanwhile, for the error.
        let mut tls_failure = None;
        let outcome = tokio::time::timeout(budget.remaining(), async {
            tokio::pin!(connect);
            let probe = self.tls_failure(hosts);
            tokio::pin!(probe);
            let mut probed = !secure;
            loop {
                tokio::select! {
                    r = &mut connect => return r,
                    why = &mut probe, if !probed => {
                        probed = true;
                        tls_failure = why;
                    }
                }
            }
        })
        .await;
        let because = |what: String| match &tls_failure {
            Some(why) => format!("cannot connect to ZooKeeper at {hosts}: {why}"),
            None => what,
        };
        match outcome {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(zk::Error::SessionExpired)) => Err(Failure::Answer(zk::Error::SessionExpired)),
            Ok(Err(zk::Error::Timeout)) => Err(Failure::Unreachable(because(format!(
                "cannot connect to ZooKeeper at {hosts}: no server answered within the session timeout ({:?})",
                settings::session_timeout(timing.ttl)
            )))),
            Ok(Err(e)) => Err(Failure::Unreachable(because(format!("cannot connect to ZooKeeper at {hosts}: {e}")))),
            Err(_) => Err(Failure::Unreachable(because(format!(
                "cannot connect to ZooKeeper at {hosts} within retry_timeout ({:?})",
                budget.total
            )))),
        }
    }

    /// Why TLS fails with the first server of `hosts` it fails with (see
    /// [`crate::tls::handshake_failure`]), probed once the connection has
    /// not come up for [`PROBE_AFTER`]; `None` without TLS, or when every
    /// handshake completes or no server can be reached.
    async fn tls_failure(&self, hosts: &str) -> Option<String> {
        let tls = self.settings.tls.as_ref()?;
        tokio::time::sleep(PROBE_AFTER).await;
        let config = match crate::tls::probe_config(&self.name, tls) {
            Ok(c) => c,
            Err(e) => return Some(e),
        };
        let servers = crate::tls::servers(hosts);
        let found = tokio::task::spawn_blocking(move || {
            servers
                .iter()
                .find_map(|(host, port)| crate::tls::handshake_failure(config.clone(), host, *port, PROBE_LIMIT))
        })
        .await
        .ok()
        .flatten();
        if let Some(why) = &found {
            tracing::warn!("{why}");
        }
        found
    }

    /// The client of the current session, opening or replacing it when
    /// needed.
    pub(crate) async fn client(&self, budget: &Budget, timing: &DcsTiming) -> Result<zk::Client, Failure> {
        let hosts = self
            .ensemble
            .connect_string()
            .map_err(|e| Failure::Unreachable(format!("no ZooKeeper servers known: {e}")))?;
        let asked = settings::session_timeout(timing.ttl);
        let mut state = self.state.lock().await;
        if let Some(l) = state.live.as_ref() {
            let session = l.client.state();
            if session.is_terminated() {
                tracing::warn!("ZooKeeper session {:x} is {session}: opening a new one", l.client.session_id().0);
                state.live = None;
            } else if l.asked != asked {
                tracing::info!("session timeout changes from {:?} to {asked:?}: opening a new session", l.asked);
                if let Some(old) = state.live.take() {
                    let info = old.client.session().clone();
                    drop(old);
                    self.close_session(timing, &hosts, info).await;
                }
            } else if l.hosts != hosts {
                // The ensemble moved (Exhibitor): keep the session on the
                // new servers. The old client goes first (detached, it
                // leaves the session alone) so that it cannot take the
                // session back.
                tracing::info!("ZooKeeper servers changed from {} to {hosts}: reconnecting", l.hosts);
                state.moving = state.live.take().map(|old| old.client.session().clone());
            } else {
                return Ok(l.client.clone());
            }
        }
        let client = match state.moving.clone() {
            Some(info) => match self.open(budget, timing, &hosts, Some(info)).await {
                Ok(c) => c,
                Err(Failure::Answer(zk::Error::SessionExpired)) => {
                    tracing::warn!("the session expired while moving to {hosts}: opening a new one");
                    state.moving = None;
                    self.open(budget, timing, &hosts, None).await?
                }
                Err(e) => return Err(e),
            },
            None => self.open(budget, timing, &hosts, None).await?,
        };
        state.moving = None;
        tracing::info!(
            "ZooKeeper session {:x} on {hosts} (timeout {:?})",
            client.session_id().0,
            client.session_timeout()
        );
        state.live = Some(Live { client: client.clone(), hosts, asked });
        Ok(client)
    }

    /// Close `info`'s session on purpose: a client that is not detached
    /// takes it over and is dropped at once, which sends CloseSession (the
    /// session's ephemeral znodes go). When no server answers, the session
    /// expires on its own.
    async fn close_session(&self, timing: &DcsTiming, hosts: &str, info: zk::SessionInfo) {
        let id = info.id().0;
        let budget = Budget::new(settings::connect_timeout(timing.retry_timeout));
        match self.open_with(&budget, timing, hosts, Some(info), false).await {
            Ok(client) => {
                tracing::info!("closing ZooKeeper session {id:x}");
                drop(client);
            }
            Err(e) => tracing::debug!("could not close session {id:x}: {e:?}"),
        }
    }

    /// Close the session (its ephemeral znodes go at once).
    pub(crate) async fn close(&self, timing: &DcsTiming) {
        let mut state = self.state.lock().await;
        let Some(old) = state.live.take() else {
            return;
        };
        let info = old.client.session().clone();
        let hosts = old.hosts.clone();
        drop(old);
        self.close_session(timing, &hosts, info).await;
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
