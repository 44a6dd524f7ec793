//! Asking other members for their status (`GET /patroni`) during the
//! leader race, as Patroni does: all at once, two seconds each, no retry.
//!
//! The HTTP client is Patroni's daemon's `PatroniRequest(config, True)`:
//! the `ctl` section's certificates (else `restapi`'s), basic auth on every
//! request, and remade when a reload changed those settings or files.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use palisade_ha::PeerStatus;
use palisade_model::Member;
use palisade_plugin_host::http::ClientSettings;

/// How long a member may take to answer; a slow member is most likely an
/// unhealthy one (Patroni uses the same two seconds).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the client's settings come from (the daemon's configuration).
type Source = Box<dyn Fn() -> Option<ClientSettings> + Send + Sync>;

#[derive(Clone)]
pub struct PeerClient {
    inner: Arc<Inner>,
}

struct Inner {
    source: OnceLock<Source>,
    /// The client and the settings it was made from (`None`: given as is).
    client: Mutex<(Option<ClientSettings>, reqwest::Client)>,
}

impl PeerClient {
    /// A client used as it is.
    pub fn new(http: reqwest::Client) -> Self {
        Self { inner: Arc::new(Inner { source: OnceLock::new(), client: Mutex::new((None, http)) }) }
    }

    /// A client made from `settings`, remade when they change (see `follow`).
    pub fn with_settings(settings: ClientSettings) -> Result<Self, String> {
        let http = settings.client()?;
        Ok(Self { inner: Arc::new(Inner { source: OnceLock::new(), client: Mutex::new((Some(settings), http)) }) })
    }

    /// Take the settings from `source` before each round of requests
    /// (set once; later calls are ignored).
    pub fn follow(&self, source: impl Fn() -> Option<ClientSettings> + Send + Sync + 'static) {
        let _ = self.inner.source.set(Box::new(source));
    }

    /// The client for the settings in force. Settings that do not work
    /// are reported once and the previous client stays.
    fn http(&self) -> reqwest::Client {
        let settings = self.inner.source.get().and_then(|f| f());
        let mut slot = self.inner.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(settings) = settings.filter(|s| slot.0.as_ref() != Some(s)) {
            match settings.client() {
                Ok(http) => slot.1 = http,
                Err(e) => tracing::error!("{e}; members are asked with the previous settings"),
            }
            slot.0 = Some(settings);
        }
        slot.1.clone()
    }

    /// Fetch the status of one member.
    pub async fn status(&self, member: &Member) -> PeerStatus {
        fetch(&self.http(), member).await
    }

    /// Fetch several members concurrently.
    pub async fn statuses(&self, members: Vec<Member>) -> Vec<PeerStatus> {
        let http = self.http();
        let mut set = tokio::task::JoinSet::new();
        for (i, m) in members.into_iter().enumerate() {
            let http = http.clone();
            set.spawn(async move { (i, fetch(&http, &m).await) });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(v) = r {
                out.push(v);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, s)| s).collect()
    }
}

/// An error with its causes (reqwest's own message says little: the
/// reason a TLS handshake failed is in the chain).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

async fn fetch(http: &reqwest::Client, member: &Member) -> PeerStatus {
    let Some(url) = member.api_url() else {
        return PeerStatus::unreachable(&member.name);
    };
    let result = async {
        let response = http.get(url).timeout(PEER_TIMEOUT).send().await?;
        response.json::<serde_json::Value>().await
    }
    .await;
    match result {
        Ok(body) => {
            tracing::info!("Got response from {} {}: {}", member.name, url, body);
            PeerStatus::from_api_response(&member.name, &body)
        }
        Err(e) => {
            tracing::warn!("Request failed to {}: GET {} ({})", member.name, url, chain(&e));
            PeerStatus::unreachable(&member.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn config(user: &str) -> palisade_config::LocalConfig {
        let env = std::collections::BTreeMap::from([("PATRONI_SCOPE".to_string(), "test".to_string())]);
        let mut c = palisade_config::load_for_ctl(None, &env).unwrap().config;
        c.restapi.authentication = Some(palisade_config::BasicAuth { username: user.into(), password: "pw".into() });
        c
    }

    /// A member answering `GET /patroni` with `{}`; each request's
    /// `Authorization` header is sent back over `seen`.
    async fn member(seen: tokio::sync::mpsc::UnboundedSender<Option<String>>) -> Member {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let auth = text.lines().find_map(|l| l.strip_prefix("authorization: ").map(String::from));
                let _ = seen.send(auth);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
            }
        });
        let value = format!(r#"{{"api_url": "http://127.0.0.1:{port}/patroni", "conn_url": "postgres://x"}}"#);
        Member::from_value("m1", "1", "", &value).unwrap()
    }

    /// Basic auth goes with every request, as Patroni's `PatroniRequest`
    /// sends it, and a reload's new credentials with the next round.
    #[tokio::test]
    async fn members_are_asked_with_the_configured_credentials() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let m = member(tx).await;
        let peers = PeerClient::with_settings(ClientSettings::new(&config("one"), true)).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen_calls = Arc::clone(&calls);
        peers.follow(move || {
            let user = if seen_calls.fetch_add(1, Ordering::SeqCst) == 0 { "one" } else { "two" };
            Some(ClientSettings::new(&config(user), true))
        });
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        use base64::Engine as _;
        peers.statuses(vec![m.clone()]).await;
        assert_eq!(rx.recv().await.unwrap(), Some(format!("Basic {}", b64("one:pw"))));
        peers.statuses(vec![m]).await;
        assert_eq!(rx.recv().await.unwrap(), Some(format!("Basic {}", b64("two:pw"))));
    }
}
