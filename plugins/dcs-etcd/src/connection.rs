//! The HTTP client of the v2 API: the list of etcd members to talk to (the
//! configured endpoints or SRV records, then, unless `use_proxies`, the
//! cluster's own list from `/v2/machines`, refreshed every `ttl * 10`
//! seconds as Patroni does), TLS, basic authentication, and the retry loop
//! that moves on to the next member and bounds every operation by
//! `retry_timeout`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use palisade_etcd_common::budget::{Budget, FIRST_DELAY, MAX_DELAY};
use palisade_etcd_common::config::{Settings, Source, TlsFiles};
use palisade_etcd_common::endpoints::Protocol;
use palisade_etcd_common::peer::PeerAccess;
use palisade_etcd_common::srv;
use palisade_plugin_api::PluginResult;
use palisade_plugin_http::describe;
use reqwest::Method;

use crate::api::{self, Answer, Failure};

/// One request of the keys API.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub method: Method,
    /// The path and query after the member's base URL.
    pub path: String,
    /// A form body (PUT).
    pub form: Option<String>,
}

/// An answer and whether it took more than one attempt (a retried write
/// may meet what its own first attempt did).
pub(crate) struct Reply {
    pub result: Result<Answer, Failure>,
    pub retried: bool,
}

#[derive(Debug, Default)]
struct Members {
    /// Base URLs (`http://host:port`), the one in use first.
    urls: Vec<String>,
    /// When the list was last taken from etcd (`None`: load it again).
    refreshed: Option<Instant>,
    /// The Raft term last seen per cluster id: a member answering with an
    /// older term is stale (cut off from the quorum), as Patroni checks.
    cluster_id: Option<String>,
    raft_term: u64,
}

pub(crate) struct Connection {
    settings: Settings,
    http: reqwest::Client,
    members: Mutex<Members>,
    /// How long the member list from etcd is trusted (Patroni: `ttl * 10`).
    refresh_every: Mutex<Duration>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn build_client(tls: &TlsFiles) -> PluginResult<reqwest::Client> {
    let files = palisade_plugin_http::Tls {
        cacert: tls.cacert.as_deref(),
        cert: tls.cert.as_deref(),
        key: tls.key.as_deref(),
        verify: true,
    };
    palisade_plugin_http::client("etcd", &files)
}

/// How SRV discovery reaches etcd's peer ports (`_etcd-server*` records):
/// with the section's TLS files and credentials, within one attempt.
fn srv_peer_access(settings: &Settings, timeout: Duration) -> PeerAccess {
    PeerAccess { tls: settings.tls.clone(), credentials: settings.credentials.clone(), timeout }
}

impl Connection {
    pub(crate) fn new(settings: Settings, ttl: Duration) -> PluginResult<Self> {
        let http = build_client(&settings.tls)?;
        if settings.protocol == Protocol::Http && settings.tls.cert.is_some() {
            tracing::debug!("etcd.cert is set but etcd.protocol is http: it is used with https endpoints only");
        }
        Ok(Connection { settings, http, members: Mutex::new(Members::default()), refresh_every: Mutex::new(ttl * 10) })
    }

    pub(crate) fn set_ttl(&self, ttl: Duration) {
        *lock(&self.refresh_every) = ttl * 10;
    }

    /// The endpoints of the section, or of the SRV records (looked up
    /// within one attempt's time; the fallback when none answer in time).
    async fn configured_urls(&self, budget: &Budget) -> Vec<String> {
        match &self.settings.source {
            Source::Urls(urls) => urls.clone(),
            Source::Srv { domain, suffix, fallback } => {
                let peer = srv_peer_access(&self.settings, budget.attempt_timeout());
                let lookup = srv::discover(domain, suffix.as_deref(), &peer);
                match tokio::time::timeout(budget.attempt_timeout(), lookup).await {
                    Ok(found) if !found.is_empty() => found,
                    Ok(_) => fallback.clone(),
                    Err(_) => {
                        tracing::warn!("no SRV answer for {domain} in time; using the fallback endpoints");
                        fallback.clone()
                    }
                }
            }
        }
    }

    /// Send one request to `base`, waiting at most `timeout` for the whole answer.
    pub(crate) async fn send(&self, base: &str, req: &Request, timeout: Duration) -> Result<Answer, SendError> {
        let mut rb = self.http.request(req.method.clone(), format!("{base}{}", req.path)).timeout(timeout);
        if let Some((user, password)) = &self.settings.credentials {
            rb = rb.basic_auth(user, Some(password));
        }
        if let Some(body) = &req.form {
            rb = rb.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body.clone());
        }
        let resp = rb.send().await.map_err(SendError::from)?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (index, cluster_id, term) = (header("x-etcd-index"), header("x-etcd-cluster-id"), header("x-raft-term"));
        let body = resp.text().await.map_err(SendError::from)?;
        self.check_term(base, cluster_id, term.as_deref())?;
        api::parse_answer(status, index.as_deref(), &body).map_err(SendError::Failed)
    }

    fn check_term(&self, base: &str, cluster_id: Option<String>, term: Option<&str>) -> Result<(), SendError> {
        let (Some(id), Some(term)) = (cluster_id, term.and_then(|t| t.trim().parse::<u64>().ok())) else {
            return Ok(());
        };
        let mut m = lock(&self.members);
        if m.cluster_id.as_ref().is_some_and(|known| *known != id) {
            tracing::warn!("etcd cluster id changed from {:?} to {id}", m.cluster_id);
            m.raft_term = 0;
        }
        m.cluster_id = Some(id);
        if term < m.raft_term {
            let msg = format!("{base} answered with raft term {term}, older than {}: a stale member", m.raft_term);
            tracing::warn!("{msg}; switching to another member");
            return Err(SendError::Failed(Failure::Transient(msg)));
        }
        m.raft_term = term;
        Ok(())
    }

    /// The members to try, the one that answered last first; (re)loads the
    /// list when it is missing or too old.
    async fn urls(&self, budget: &Budget) -> Vec<String> {
        let (urls, refreshed) = {
            let m = lock(&self.members);
            (m.urls.clone(), m.refreshed)
        };
        let stale = refreshed.is_none_or(|at| at.elapsed() > *lock(&self.refresh_every));
        if !urls.is_empty() && !stale {
            return urls;
        }
        if urls.is_empty() || refreshed.is_none() {
            let configured = self.configured_urls(budget).await;
            let found = if self.settings.use_proxies { Vec::new() } else { self.machines(&configured, budget).await };
            let list = if found.is_empty() { configured } else { found };
            let mut m = lock(&self.members);
            m.urls = list.clone();
            // Through proxies there is nothing to refresh.
            m.refreshed = (self.settings.use_proxies || !list.is_empty()).then(Instant::now);
            return list;
        }
        // A periodic refresh from the members we know; on failure keep them.
        if !self.settings.use_proxies {
            let found = self.machines(&urls, budget).await;
            let mut m = lock(&self.members);
            m.refreshed = Some(Instant::now());
            if !found.is_empty() {
                if found.iter().collect::<std::collections::BTreeSet<_>>() != m.urls.iter().collect() {
                    tracing::info!("etcd members: {}", found.join(", "));
                }
                // Keep the member in use first when it is still listed.
                let current = m.urls.first().cloned();
                let mut list = found;
                if let Some(pos) = current.and_then(|c| list.iter().position(|u| *u == c)) {
                    list.swap(0, pos);
                }
                m.urls = list;
            }
            return m.urls.clone();
        }
        urls
    }

    /// The cluster's client URLs from `GET /v2/machines` on the first of
    /// `urls` that answers; empty when none does.
    async fn machines(&self, urls: &[String], budget: &Budget) -> Vec<String> {
        for base in urls {
            let timeout = budget.attempt_timeout().min(Duration::from_secs(2));
            if timeout.is_zero() {
                break;
            }
            let mut rb = self.http.get(format!("{base}/v2/machines")).timeout(timeout);
            if let Some((user, password)) = &self.settings.credentials {
                rb = rb.basic_auth(user, Some(password));
            }
            let body = match rb.send().await {
                Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
                Ok(r) => {
                    tracing::debug!("GET {base}/v2/machines: HTTP {}", r.status());
                    continue;
                }
                Err(e) => {
                    tracing::debug!("GET {base}/v2/machines: {}", describe(&e));
                    continue;
                }
            };
            let found = api::parse_machines(&body);
            if !found.is_empty() {
                tracing::debug!("etcd members from {base}: {}", found.join(", "));
                return found;
            }
        }
        Vec::new()
    }

    /// Put `base` first: it answered.
    fn prefer(&self, base: &str) {
        let mut m = lock(&self.members);
        if let Some(pos) = m.urls.iter().position(|u| u == base) {
            if pos != 0 {
                tracing::info!("Selected new etcd server {base}");
                let url = m.urls.remove(pos);
                m.urls.insert(0, url);
            }
        }
    }

    /// The member watches go to (the one in use), if any is known.
    pub(crate) async fn current(&self, budget: &Budget) -> Option<String> {
        self.urls(budget).await.into_iter().next()
    }

    /// After a failed request on `base`: try the next member next time.
    pub(crate) fn rotate_from(&self, base: &str) {
        let mut m = lock(&self.members);
        if m.urls.first().is_some_and(|u| u == base) && m.urls.len() > 1 {
            m.urls.rotate_left(1);
        }
    }

    /// Run `req` on the members in turn, retrying transient failures with a
    /// growing pause (at most a second) until the budget runs out.
    pub(crate) async fn call(&self, budget: &Budget, req: &Request) -> Reply {
        let mut delay = FIRST_DELAY;
        let mut last = String::from("no etcd endpoint is known (SRV gave nothing)");
        let mut attempts = 0u32;
        loop {
            let urls = self.urls(budget).await;
            for base in &urls {
                let timeout = budget.attempt_timeout();
                if timeout.is_zero() {
                    break;
                }
                attempts += 1;
                match self.send(base, req, timeout).await {
                    Ok(answer) => {
                        self.prefer(base);
                        return Reply { result: Ok(answer), retried: attempts > 1 };
                    }
                    Err(SendError::Failed(Failure::Transient(m))) | Err(SendError::Transport { message: m, .. }) => {
                        last = format!("{base}: {m}");
                        tracing::debug!("etcd request {} {} failed: {last}", req.method, req.path);
                    }
                    Err(SendError::Failed(other)) => {
                        self.prefer(base);
                        return Reply { result: Err(other), retried: attempts > 1 };
                    }
                }
            }
            // Every member failed: read the list anew before the next round.
            if !self.settings.use_proxies || urls.is_empty() {
                lock(&self.members).refreshed = None;
            }
            let pause = delay.min(budget.remaining());
            if pause.is_zero() || budget.attempt_timeout().is_zero() {
                break;
            }
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
        Reply {
            result: Err(Failure::Unreachable(format!(
                "etcd is not reachable within retry_timeout ({:?}): {last}",
                budget.retry_timeout
            ))),
            retried: attempts > 1,
        }
    }
}

/// Why one request failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No (complete) answer: connection refused, TLS, timeout.
    Transport { message: String, timeout: bool },
    /// An answer that is an error.
    Failed(Failure),
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> Self {
        SendError::Transport { message: describe(&e), timeout: e.is_timeout() }
    }
}
