//! Asking other members for their status (`GET /patroni`) during the
//! leader race, as Patroni does: all at once, two seconds each, no retry;
//! and, in failsafe mode, asking them to accept this primary (`POST
//! /failsafe`) while the DCS cannot be reached.
//!
//! The HTTP client is Patroni's daemon's `PatroniRequest(config, True)`:
//! the `ctl` section's certificates (else `restapi`'s), basic auth on every
//! request, and remade when a reload changed those settings or files.

use std::collections::BTreeMap;
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

    /// Call `POST /failsafe` on these members (name, API URL), all at once,
    /// with `body`; whether each accepted (`200 Accepted`, as Patroni's
    /// primary counts it) and the WAL position it sent in its `lsn` header.
    /// A member that does not answer within [`PEER_TIMEOUT`] (one retry
    /// when the connection failed at once, as Patroni's `retries=1`) has
    /// not accepted.
    pub async fn failsafe(
        &self,
        members: Vec<(String, String)>,
        body: serde_json::Value,
    ) -> BTreeMap<String, FailsafeReply> {
        let http = self.http();
        let body = Arc::new(body);
        let mut set = tokio::task::JoinSet::new();
        for (name, api_url) in members {
            let (http, body) = (http.clone(), Arc::clone(&body));
            set.spawn(async move {
                let accepted = call_failsafe(&http, &name, &api_url, &body).await;
                (name, accepted)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(r) = set.join_next().await {
            if let Ok((name, accepted)) = r {
                out.insert(name, accepted);
            }
        }
        out
    }
}

impl PeerClient {
    /// `POST <api_url's base>/<path>` with a JSON `body`, waiting at most
    /// `timeout`, without retry (Patroni's `request(..., retries=0)`).
    /// The answer's status and text, or why there was none; an answer
    /// other than 200 is an error too.
    pub async fn post(
        &self,
        api_url: &str,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<String, String> {
        let url = endpoint_url(api_url, path).ok_or_else(|| format!("{api_url} is not a usable API URL"))?;
        let response = self.http().post(url).json(body).timeout(timeout).send().await.map_err(|e| chain(&e))?;
        let code = response.status().as_u16();
        let text = response.text().await.map_err(|e| chain(&e))?;
        if code == 200 {
            Ok(text)
        } else {
            Err(format!("status {code}: {text}"))
        }
    }
}

/// Patroni's `Member.get_endpoint_url`: the API URL's scheme and host with
/// `path` instead of its own path.
pub fn endpoint_url(api_url: &str, path: &str) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(api_url).ok()?;
    if url.cannot_be_a_base() {
        return None;
    }
    url.set_path(path);
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

/// A member's answer to `POST /failsafe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailsafeReply {
    pub accepted: bool,
    /// Its received/replayed WAL position (the `lsn` header), if it sent a
    /// number there.
    pub lsn: Option<u64>,
}

async fn call_failsafe(http: &reqwest::Client, name: &str, api_url: &str, body: &serde_json::Value) -> FailsafeReply {
    let Some(url) = endpoint_url(api_url, "failsafe") else {
        tracing::warn!("Request failed to {name}: POST {api_url} (not a usable API URL)");
        return FailsafeReply::default();
    };
    let started = std::time::Instant::now();
    let mut retried = false;
    loop {
        let left = PEER_TIMEOUT.saturating_sub(started.elapsed());
        let result = async {
            let response = http.post(url.clone()).json(body).timeout(left).send().await?;
            let code = response.status().as_u16();
            let lsn =
                response.headers().get("lsn").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
            Ok::<_, reqwest::Error>((code, lsn, response.text().await?))
        }
        .await;
        match result {
            Ok((code, lsn, text)) => {
                tracing::info!("Got response from {name} {url}: {text}");
                return FailsafeReply { accepted: code == 200 && text == "Accepted", lsn };
            }
            Err(e) if e.is_connect() && !retried && !left.is_zero() => retried = true,
            Err(e) => {
                tracing::warn!("Request failed to {name}: POST {url} ({})", chain(&e));
                return FailsafeReply::default();
            }
        }
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

    /// A member answering every request with `code` and `body`.
    async fn answering(code: u16, body: &'static str) -> String {
        answering_with(code, "", body).await
    }

    /// The same, with more header lines (each ending in CRLF).
    async fn answering_with(code: u16, headers: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {code} X\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        format!("http://127.0.0.1:{port}/patroni?x=1")
    }

    /// Only `200 Accepted` counts; a refusal, another body, a member that
    /// is not there or an unusable URL do not.
    #[tokio::test]
    async fn failsafe_calls_count_only_200_accepted() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://127.0.0.1:{}/patroni", l.local_addr().unwrap().port())
        };
        let members = vec![
            ("ok".to_string(), answering(200, "Accepted").await),
            ("lsn".to_string(), answering_with(200, "lsn: 12345\r\n", "Accepted").await),
            ("bad-lsn".to_string(), answering_with(200, "lsn: 0/3000\r\n", "Accepted").await),
            ("primary".to_string(), answering(500, "Running as a leader").await),
            ("odd".to_string(), answering(200, "OK").await),
            ("gone".to_string(), closed),
            ("garbage".to_string(), "not a url".to_string()),
        ];
        let peers = PeerClient::new(reqwest::Client::new());
        let got = peers.failsafe(members, serde_json::json!({"name": "me"})).await;
        let want: BTreeMap<String, FailsafeReply> = [
            ("ok", true, None),
            ("lsn", true, Some(12345)),
            ("bad-lsn", true, None),
            ("primary", false, None),
            ("odd", false, None),
            ("gone", false, None),
            ("garbage", false, None),
        ]
        .into_iter()
        .map(|(n, accepted, lsn)| (n.to_string(), FailsafeReply { accepted, lsn }))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn endpoint_urls_keep_scheme_and_host_only() {
        let cases = [
            ("http://10.0.0.1:8008/patroni", Some("http://10.0.0.1:8008/failsafe")),
            ("https://[::1]:8008/patroni?a=b#c", Some("https://[::1]:8008/failsafe")),
            ("not a url", None),
            ("mailto:x@y", None),
        ];
        for (url, want) in cases {
            assert_eq!(endpoint_url(url, "failsafe").map(|u| u.to_string()).as_deref(), want, "{url}");
        }
    }
}
