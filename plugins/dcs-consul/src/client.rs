//! The HTTP client of the agent: TLS (`cacert`, `cert`/`key`, `verify`),
//! the `X-Consul-Token` header, `dc` on KV and session requests, and the
//! retry loop that bounds every operation by `retry_timeout` (Patroni:
//! retries on connection errors and HTTP 500, pauses growing to a second,
//! one attempt waiting at most a third of `retry_timeout`).

use std::time::{Duration, Instant};

use palisade_plugin_api::PluginResult;
use palisade_plugin_http::describe;
use reqwest::Method;

use crate::api::{self, Answer, Failure};
use crate::settings::Settings;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(1);

/// When an operation has to be done by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub deadline: Instant,
    pub retry_timeout: Duration,
}

impl Budget {
    pub(crate) fn new(retry_timeout: Duration) -> Self {
        Self { deadline: Instant::now() + retry_timeout, retry_timeout }
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// One attempt may take a third of the budget (Patroni's read timeout),
    /// at least a second, never more than what is left.
    pub(crate) fn attempt_timeout(&self) -> Duration {
        (self.retry_timeout / 3).max(Duration::from_secs(1)).min(self.remaining())
    }
}

/// One request.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub method: Method,
    /// The path after the agent's base URL (`/v1/kv/...`).
    pub path: String,
    /// Query parameters (`dc` is added by the client where it applies).
    pub query: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

impl Request {
    pub(crate) fn new(method: Method, path: String) -> Self {
        Request { method, path, query: Vec::new(), body: None }
    }

    pub(crate) fn param(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// An answer and whether it took more than one attempt (a retried write
/// may meet what its own first attempt did).
pub(crate) struct Reply {
    pub result: Result<Answer, Failure>,
    pub retried: bool,
}

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    dc: Option<String>,
}

fn build_http(settings: &Settings) -> PluginResult<reqwest::Client> {
    // Patroni: cert_reqs=CERT_NONE when verify is false.
    let tls = palisade_plugin_http::Tls {
        cacert: settings.cacert.as_deref(),
        cert: settings.cert.as_deref(),
        key: settings.key.as_deref(),
        verify: settings.verify,
    };
    palisade_plugin_http::client("consul", &tls)
}

impl Client {
    pub(crate) fn new(settings: &Settings) -> PluginResult<Self> {
        if !settings.verify && settings.scheme == "https" {
            tracing::warn!("consul.verify is false: the agent's certificate is not checked");
        }
        Ok(Client {
            http: build_http(settings)?,
            base: settings.base_url(),
            token: settings.token.clone(),
            dc: settings.dc.clone(),
        })
    }

    /// The agent's address, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Send `req` once, waiting at most `timeout` for the whole answer.
    pub(crate) async fn send(&self, req: &Request, timeout: Duration) -> Result<Answer, Failure> {
        let mut query = req.query.clone();
        // The agent endpoints take no `dc`; KV and sessions do.
        if let Some(dc) = &self.dc {
            if req.path.starts_with("/v1/kv/") || req.path.starts_with("/v1/session/") {
                query.push(("dc", dc.clone()));
            }
        }
        let url = format!("{}{}{}", self.base, req.path, api::query(&query));
        let mut rb = self.http.request(req.method.clone(), &url).timeout(timeout);
        if let Some(token) = &self.token {
            rb = rb.header("X-Consul-Token", token);
        }
        if let Some(body) = &req.body {
            rb = rb.body(body.clone());
        }
        let transport = |e: reqwest::Error| {
            Failure::Transport(format!("{} {}{}: {}", req.method, self.base, req.path, describe(&e)))
        };
        let resp = rb.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let index =
            resp.headers().get("x-consul-index").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let body = resp.text().await.map_err(transport)?;
        api::classify(Answer { status, index, body })
    }

    /// Send `req`, retrying retriable failures with a growing pause until
    /// the budget runs out.
    pub(crate) async fn call(&self, budget: &Budget, req: &Request) -> Reply {
        let mut delay = FIRST_DELAY;
        let mut attempts = 0u32;
        let mut last = String::from("no attempt fitted in the time left");
        loop {
            let timeout = budget.attempt_timeout();
            if timeout.is_zero() {
                break;
            }
            attempts += 1;
            match self.send(req, timeout).await {
                Ok(a) => return Reply { result: Ok(a), retried: attempts > 1 },
                Err(f) if f.retriable() => {
                    last = match f {
                        Failure::Transport(m) | Failure::Internal(m) => m,
                        other => format!("{other:?}"),
                    };
                    tracing::debug!("consul request {} {} failed: {last}", req.method, req.path);
                }
                Err(f) => return Reply { result: Err(f), retried: attempts > 1 },
            }
            let pause = delay.min(budget.remaining());
            if pause.is_zero() {
                break;
            }
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
        Reply {
            result: Err(Failure::Unreachable(format!(
                "Consul agent {} is not reachable within retry_timeout ({:?}): {last}",
                self.base, budget.retry_timeout
            ))),
            retried: attempts > 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_get_a_third_of_the_budget_at_least_a_second() {
        let b = Budget::new(Duration::from_secs(9));
        assert!(b.attempt_timeout() <= Duration::from_secs(3));
        assert!(b.attempt_timeout() > Duration::from_millis(2900));
        let short = Budget::new(Duration::from_millis(1500));
        assert!(short.attempt_timeout() <= Duration::from_secs(1));
        let spent = Budget { deadline: Instant::now(), retry_timeout: Duration::from_secs(10) };
        assert!(spent.attempt_timeout().is_zero());
    }

    #[test]
    fn an_unreachable_agent_is_named() {
        let settings = Settings::parse(r#"{"host": "127.0.0.1:1"}"#).unwrap();
        let client = Client::new(&settings).unwrap();
        let budget = Budget::new(Duration::from_millis(1200));
        let reply = palisade_plugin_api::sdk::runtime()
            .block_on(client.call(&budget, &Request::new(Method::GET, "/v1/kv/x".into())));
        let err = reply.result.unwrap_err().into_plugin_error("get_cluster");
        assert_eq!(err.kind, palisade_plugin_api::ErrorKind::DcsUnavailable);
        assert!(err.message.contains("Consul agent http://127.0.0.1:1 is not reachable"), "{}", err.message);
    }

    #[test]
    fn a_missing_cacert_is_a_config_error() {
        let settings = Settings::parse(r#"{"cacert": "/nonexistent/ca.pem", "scheme": "https"}"#).unwrap();
        let err = Client::new(&settings).err().expect("a config error");
        assert_eq!(err.kind, palisade_plugin_api::ErrorKind::Config);
        assert!(err.message.starts_with("consul.cacert: cannot read '/nonexistent/ca.pem'"), "{}", err.message);
    }
}
