//! The gRPC client: endpoints (fixed, from SRV, or discovered from the
//! cluster's member list), TLS, authentication, and the retry loop that
//! bounds every operation by `retry_timeout`.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use palisade_plugin_api::{PluginError, PluginResult};

pub(crate) use palisade_etcd_common::budget::Budget;
use palisade_etcd_common::budget::{FIRST_DELAY, MAX_DELAY};
use palisade_etcd_common::peer::PeerAccess;

use crate::config::{Settings, Source, TlsFiles};
use crate::endpoints::Protocol;
use crate::failure::{classify, Failure};
use crate::srv;

pub(crate) struct Connection {
    settings: Settings,
    client: tokio::sync::Mutex<Option<Client>>,
}

fn read_file(key: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("etcd3.{key}: cannot read '{}': {e}", path.display()))
}

fn tls_options(files: &TlsFiles) -> Result<TlsOptions, String> {
    let mut tls = TlsOptions::new();
    tls = match &files.cacert {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read_file("cacert", ca)?)),
        None => tls.with_native_roots(),
    };
    if let Some(cert) = &files.cert {
        let cert_pem = read_file("cert", cert)?;
        let key_pem = match &files.key {
            Some(key) => read_file("key", key)?,
            None => cert_pem.clone(),
        };
        tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
    }
    Ok(tls)
}

fn is_https(urls: &[String]) -> bool {
    urls.iter().any(|u| u.starts_with("https://"))
}

impl Connection {
    pub(crate) fn new(settings: Settings) -> PluginResult<Self> {
        if settings.protocol == Protocol::Https || matches!(&settings.source, Source::Urls(u) if is_https(u)) {
            // Read the files once now so a mistake is a configuration error.
            tls_options(&settings.tls).map_err(PluginError::config)?;
        }
        Ok(Self { settings, client: tokio::sync::Mutex::new(None) })
    }

    fn options(
        &self,
        urls: &[String],
        with_user: bool,
        attempt: Duration,
    ) -> Result<ConnectOptions, etcd_client::Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(attempt)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_tcp_keepalive(Duration::from_secs(5));
        if with_user {
            if let Some((user, password)) = &self.settings.credentials {
                options = options.with_user(user.clone(), password.clone());
            }
        }
        if is_https(urls) {
            let tls = tls_options(&self.settings.tls).map_err(etcd_client::Error::InvalidArgs)?;
            options = options.with_tls(tls);
        }
        Ok(options)
    }

    async fn connect_to(&self, urls: &[String], attempt: Duration) -> Result<Client, etcd_client::Error> {
        match Client::connect(urls, Some(self.options(urls, true, attempt)?)).await {
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("authentication is not enabled") => {
                tracing::info!("etcd authentication is not enabled; connecting without credentials");
                Client::connect(urls, Some(self.options(urls, false, attempt)?)).await
            }
            other => other,
        }
    }

    /// The endpoints of the section, or of the SRV records (looked up
    /// within one attempt; the fallback when none answer in time). Peer
    /// records are followed with the section's TLS files and credentials.
    async fn configured_urls(&self, attempt: Duration) -> Vec<String> {
        match &self.settings.source {
            Source::Urls(urls) => urls.clone(),
            Source::Srv { domain, suffix, fallback } => {
                let peer = PeerAccess {
                    tls: self.settings.tls.clone(),
                    credentials: self.settings.credentials.clone(),
                    timeout: attempt,
                };
                match tokio::time::timeout(attempt, srv::discover(domain, suffix.as_deref(), &peer)).await {
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

    async fn connect(&self, attempt: Duration) -> Result<Client, etcd_client::Error> {
        let urls = self.configured_urls(attempt).await;
        if urls.is_empty() {
            return Err(etcd_client::Error::EndpointError("no etcd endpoint found (SRV gave nothing)".into()));
        }
        let mut client = self.connect_to(&urls, attempt).await?;
        if self.settings.use_proxies {
            return Ok(client);
        }
        // Like Patroni, learn the cluster's members so that losing the
        // configured ones does not lose the store. A failure here is not
        // one of the operation: the configured endpoints still work.
        let discovered = match tokio::time::timeout(attempt, client.member_list()).await {
            Ok(Ok(list)) => list.members().iter().flat_map(|m| m.client_urls().iter().cloned()).collect::<Vec<_>>(),
            Ok(Err(e)) => {
                if matches!(classify(&e), Failure::Transient(_)) {
                    return Err(e);
                }
                tracing::debug!("cannot list the etcd members, using the configured endpoints only: {e}");
                return Ok(client);
            }
            Err(_) => return Ok(client),
        };
        let mut all = urls.clone();
        for url in discovered {
            if !all.contains(&url) {
                all.push(url);
            }
        }
        if all.len() > urls.len() {
            tracing::debug!("etcd endpoints: {}", all.join(", "));
            client = self.connect_to(&all, attempt).await?;
        }
        Ok(client)
    }

    async fn client(&self, attempt: Duration) -> Result<Client, etcd_client::Error> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.connect(attempt).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Forget the client, so the next attempt reconnects (and rediscovers).
    async fn reset(&self) {
        *self.client.lock().await = None;
    }

    /// Run `op` against etcd, retrying transient failures with a growing
    /// delay (at most a second) until the budget runs out.
    pub(crate) async fn call<T, F, Fut>(&self, budget: &Budget, mut op: F) -> Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut delay = FIRST_DELAY;
        let mut last = String::from("the time went waiting on another request of this member");
        loop {
            let attempt = budget.attempt_timeout();
            if attempt.is_zero() {
                break;
            }
            let outcome = tokio::time::timeout(attempt, async {
                let client = self.client(attempt).await?;
                op(client).await
            })
            .await;
            match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => match classify(&e) {
                    Failure::Transient(m) => last = m,
                    other => return Err(other),
                },
                Err(_) => last = format!("no answer within {attempt:?}"),
            }
            tracing::debug!("etcd request failed, will retry: {last}");
            self.reset().await;
            let pause = delay.min(budget.remaining());
            if pause.is_zero() {
                break;
            }
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
        Err(Failure::Unreachable(format!(
            "etcd is not reachable within retry_timeout ({:?}): {last}",
            budget.retry_timeout
        )))
    }
}
