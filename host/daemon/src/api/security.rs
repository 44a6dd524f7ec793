//! Who may call the unsafe endpoints, as Patroni's `check_access`: the
//! allowlist (and the members' addresses), then a client certificate when
//! TLS asks for one, then basic auth. And the extra headers every answer
//! carries.
//!
//! The rules are rebuilt from `shared.config` when its `restapi` section
//! changed (after a reload), so new settings apply to the next request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use palisade_config::{RestApiConfig, VerifyClient};

use super::{reply, ApiState};

/// What the accept loop knows about a connection (a request extension).
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub tls: bool,
    /// The client presented a certificate the server verified.
    pub client_cert: bool,
}

/// An allowlist entry: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn host(addr: IpAddr) -> Net {
        Net { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
    }

    /// `10.0.0.0/8`, `fd00::/8` (host bits may be set, as Python's
    /// `ip_network(v, strict=False)` allows), or a bare address.
    pub fn parse(text: &str) -> Result<Net, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr =
            addr.trim_matches(['[', ']']).parse().map_err(|_| format!("'{text}' is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("'{text}': bad prefix length")),
            },
        };
        Ok(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// An allowlist entry to resolve: Patroni parses entries with a `/` as
/// networks and resolves the others (addresses or host names).
fn needs_lookup(entry: &str) -> bool {
    !entry.contains('/') && entry.trim_matches(['[', ']']).parse::<IpAddr>().is_err()
}

/// The addresses of `host` (as `getaddrinfo` gives them).
async fn lookup(host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => Ok(addrs.map(|a| a.ip()).collect()),
        Err(e) => Err(format!("cannot resolve '{host}': {e}")),
    }
}

/// Which requests are checked, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scope {
    /// Reads, and requests for paths that are no endpoint (they get 501
    /// without a check, as from Patroni).
    Open,
    /// An unsafe endpoint; `members`: the members' addresses count for
    /// the allowlist (all but `POST /failsafe`, as in Patroni).
    Checked { members: bool },
}

impl Scope {
    /// `routed`: the path is one of the API's endpoints.
    pub fn of(method: &Method, path: &str, routed: bool) -> Scope {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || !routed {
            return Scope::Open;
        }
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        Scope::Checked { members: !(*method == Method::POST && first == "failsafe") }
    }
}

/// The access rules of one `restapi` configuration.
#[derive(Debug)]
pub struct Security {
    /// `base64(user:password)`.
    auth_key: Option<String>,
    allowlist: Vec<Net>,
    include_members: bool,
    verify_client: VerifyClient,
    tls: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Security {
    /// The rules of `r`, with host names in the allowlist resolved
    /// beforehand in `resolved`. Entries that cannot be used are left out
    /// (Patroni logs and skips them) and reported.
    pub fn new(r: &RestApiConfig, resolved: &HashMap<String, Result<Vec<IpAddr>, String>>) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut allowlist = Vec::new();
        for (i, entry) in r.allowlist.iter().enumerate() {
            let entry = entry.trim();
            if needs_lookup(entry) {
                match resolved.get(entry) {
                    Some(Ok(ips)) => allowlist.extend(ips.iter().copied().map(Net::host)),
                    Some(Err(e)) => problems.push(format!("restapi.allowlist[{i}]: {e}")),
                    None => problems.push(format!("restapi.allowlist[{i}]: '{entry}' was not resolved")),
                }
                continue;
            }
            match Net::parse(entry) {
                Ok(net) => allowlist.push(net),
                Err(e) => problems.push(format!("restapi.allowlist[{i}]: {e}")),
            }
        }
        // Patroni adds the https headers whenever `certfile` is set, and
        // then every connection is TLS.
        let tls = r.certfile.is_some();
        let mut headers = Vec::new();
        let extra = r.http_extra_headers.iter().map(|h| ("http_extra_headers", h));
        let extra_tls = r.https_extra_headers.iter().filter(|_| tls).map(|h| ("https_extra_headers", h));
        for (section, (k, v)) in extra.chain(extra_tls) {
            match (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
                (Ok(name), Ok(value)) => headers.push((name, value)),
                _ => problems.push(format!("restapi.{section}.{k}: not a valid HTTP header; left out")),
            }
        }
        let auth_key = r
            .authentication
            .as_ref()
            .map(|a| base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.username, a.password)));
        let sec = Self {
            auth_key,
            allowlist,
            include_members: r.allowlist_include_members,
            verify_client: r.verify_client,
            tls,
            headers,
        };
        (sec, problems)
    }

    /// `new`, resolving the allowlist's host names first.
    pub async fn build(r: &RestApiConfig) -> (Self, Vec<String>) {
        let mut resolved = HashMap::new();
        for entry in r.allowlist.iter().map(|e| e.trim()).filter(|e| needs_lookup(e)) {
            // Patroni resolves them for port 8080; any port gives the same addresses.
            resolved.insert(entry.to_string(), lookup(entry, 8080).await);
        }
        Self::new(r, &resolved)
    }

    /// Patroni's `check_auth_header`: the header must be `Basic ` and the
    /// key, exactly.
    pub fn auth_failure(&self, header: Option<&str>) -> Option<&'static str> {
        let key = self.auth_key.as_deref()?;
        match header {
            None => Some("no auth header received"),
            Some(h) if h.strip_prefix("Basic ").is_some_and(|k| same(k.as_bytes(), key.as_bytes())) => None,
            Some(_) => Some("not authenticated"),
        }
    }

    /// Patroni's `check_access`: `None` when allowed, else the answer.
    /// `members`: the members' addresses, or `None` where they do not
    /// count (`POST /failsafe`).
    pub fn check(
        &self,
        conn: Option<&ConnInfo>,
        auth: Option<&str>,
        members: Option<&[Net]>,
    ) -> Option<(u16, &'static str)> {
        let members = members.filter(|_| self.include_members);
        if !self.allowlist.is_empty() || members.is_some() {
            let allowed = conn.is_some_and(|c| {
                let ip = c.remote.ip();
                self.allowlist.iter().chain(members.unwrap_or_default()).any(|n| n.contains(ip))
            });
            if !allowed {
                return Some((403, "Access is denied"));
            }
        }
        if self.tls && self.verify_client != VerifyClient::None && !conn.is_some_and(|c| c.client_cert) {
            return Some((403, "client certificate required"));
        }
        self.auth_failure(auth).map(|why| (401, why))
    }

    /// The answer to a refused request.
    fn refusal(code: u16, why: &str) -> Response {
        let mut r = reply::text(code, why);
        if code == 401 {
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Patroni\""));
        }
        r
    }
}

/// Equality in a time that does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The host and port of an `api_url` (`https://host:8008/patroni`), the
/// port defaulting by scheme as Python's `urlparse` users do.
fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']')?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// The rules in force and the members' addresses, cached: rebuilding them
/// may need DNS.
#[derive(Clone, Default)]
pub struct Cache {
    inner: Arc<Mutex<CacheInner>>,
}

#[derive(Default)]
struct CacheInner {
    rules: Option<(RestApiConfig, Arc<Security>)>,
    /// The members' `api_url`s and their addresses.
    members: Option<(Vec<String>, Arc<Vec<Net>>)>,
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The rules in force (rebuilt when the `restapi` section changed).
pub async fn current(st: &ApiState) -> Option<Arc<Security>> {
    let shared = st.shared.as_ref()?;
    let restapi = {
        let config = shared.config.read().unwrap_or_else(|p| p.into_inner());
        if let Some((cfg, sec)) = st.security.lock().rules.as_ref() {
            if *cfg == config.local.restapi {
                return Some(Arc::clone(sec));
            }
        }
        config.local.restapi.clone()
    };
    let (sec, problems) = Security::build(&restapi).await;
    for p in problems {
        tracing::error!("{p}");
    }
    let sec = Arc::new(sec);
    st.security.lock().rules = Some((restapi, Arc::clone(&sec)));
    Some(sec)
}

/// The addresses of the members' `api_url`s in the cluster last read from
/// the DCS (`allowlist_include_members`).
async fn member_nets(st: &ApiState) -> Arc<Vec<Net>> {
    let urls: Vec<String> = match st.status.get().cluster.as_ref() {
        Some(c) => c.members.iter().filter_map(|m| m.api_url().map(String::from)).collect(),
        None => Vec::new(),
    };
    if let Some((cached, nets)) = st.security.lock().members.as_ref() {
        if *cached == urls {
            return Arc::clone(nets);
        }
    }
    let mut nets = Vec::new();
    for url in &urls {
        let Some((host, port)) = url_host_port(url) else {
            tracing::debug!("Failed to parse url {url}");
            continue;
        };
        match host.parse::<IpAddr>() {
            Ok(ip) => nets.push(Net::host(ip)),
            Err(_) => match lookup(&host, port).await {
                Ok(ips) => nets.extend(ips.into_iter().map(Net::host)),
                Err(e) => tracing::error!("Failed to resolve {host}: {e}"),
            },
        }
    }
    let nets = Arc::new(nets);
    st.security.lock().members = Some((urls, Arc::clone(&nets)));
    nets
}

/// The middleware: access checks on unsafe endpoints, extra headers on
/// every answer.
pub async fn guard(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(sec) = current(&st).await else { return next.run(req).await };
    let routed = req.extensions().get::<MatchedPath>().is_some();
    let refusal = match Scope::of(req.method(), req.uri().path(), routed) {
        Scope::Open => None,
        Scope::Checked { members } => {
            let conn = req.extensions().get::<ConnInfo>().copied();
            let auth = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
            let members = if members && sec.include_members { Some(member_nets(&st).await) } else { None };
            sec.check(conn.as_ref(), auth, members.as_deref().map(Vec::as_slice))
        }
    };
    let mut resp = match refusal {
        None => next.run(req).await,
        Some((code, why)) => Security::refusal(code, why),
    };
    for (k, v) in &sec.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(ip: &str, cert: bool) -> ConnInfo {
        ConnInfo { remote: SocketAddr::new(ip.parse().unwrap(), 1234), tls: true, client_cert: cert }
    }

    fn rules(r: &RestApiConfig) -> Security {
        let (sec, problems) = Security::new(r, &HashMap::new());
        assert_eq!(problems, Vec::<String>::new());
        sec
    }

    #[test]
    fn nets_match_addresses() {
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3/8", "10.200.0.1", true),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.2/32", "127.0.0.2", true),
            ("0.0.0.0/0", "192.168.1.1", true),
            ("::1", "::1", true),
            ("[::1]", "::1", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.5", true),
            ("127.0.0.0/8", "::1", false),
        ];
        for (net, ip, want) in cases {
            assert_eq!(Net::parse(net).unwrap().contains(ip.parse().unwrap()), want, "{net} {ip}");
        }
        for bad in ["10.0.0.0/33", "::/129", "nonsense/8", "10.0.0.0/x", "10.0.0/8"] {
            assert!(Net::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowlist_entries_as_patroni_reads_them() {
        let r = RestApiConfig {
            allowlist: vec![
                "10.0.0.0/8".into(),
                "db1.example".into(),
                "nowhere.invalid".into(),
                "bad/8".into(),
                " 192.168.0.1 ".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            ["10.0.0.0/8", "db1.example", "nowhere.invalid", "bad/8", "192.168.0.1"].map(needs_lookup),
            [false, true, true, false, false]
        );
        let resolved = HashMap::from([
            ("db1.example".to_string(), Ok(vec!["172.16.0.7".parse().unwrap()])),
            ("nowhere.invalid".to_string(), Err("cannot resolve 'nowhere.invalid': no such host".to_string())),
        ]);
        let (sec, problems) = Security::new(&r, &resolved);
        assert_eq!(
            problems,
            [
                "restapi.allowlist[2]: cannot resolve 'nowhere.invalid': no such host",
                "restapi.allowlist[3]: 'bad/8' is not an address or network",
            ]
        );
        // The usable entries are kept: a bad one does not open the API.
        let from = |ip: &str| sec.check(Some(&conn(ip, false)), None, None);
        assert_eq!(from("10.9.9.9"), None);
        assert_eq!(from("172.16.0.7"), None);
        assert_eq!(from("192.168.0.1"), None);
        assert_eq!(from("192.168.0.2"), Some((403, "Access is denied")));
    }

    #[tokio::test]
    async fn host_names_are_resolved() {
        let r = RestApiConfig { allowlist: vec!["localhost".into()], ..Default::default() };
        let (sec, problems) = Security::build(&r).await;
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(sec.check(Some(&conn("127.0.0.1", false)), None, None), None);
    }

    #[test]
    fn basic_auth_as_patroni_checks_it() {
        let r = RestApiConfig {
            authentication: Some(palisade_config::BasicAuth { username: "u".into(), password: "p:w".into() }),
            ..Default::default()
        };
        let sec = rules(&r);
        // base64("u:p:w") = "dTpwOnc="
        let cases = [
            (None, Some("no auth header received")),
            (Some("Basic dTpwOnc="), None),
            (Some("Basic  dTpwOnc="), Some("not authenticated")),
            (Some("Basic dTpwOnc= "), Some("not authenticated")),
            (Some("basic dTpwOnc="), Some("not authenticated")),
            (Some("Bearer dTpwOnc="), Some("not authenticated")),
            (Some("Basic dTpwOnc"), Some("not authenticated")),
            (Some(""), Some("not authenticated")),
        ];
        for (header, want) in cases {
            assert_eq!(sec.auth_failure(header), want, "{header:?}");
        }
        assert_eq!(rules(&RestApiConfig::default()).auth_failure(None), None);
    }

    #[test]
    fn access_is_checked_in_patronis_order() {
        let mut r = RestApiConfig {
            authentication: Some(palisade_config::BasicAuth { username: "u".into(), password: "p".into() }),
            allowlist: vec!["127.0.0.2/32".into()],
            certfile: Some("/x.crt".into()),
            verify_client: VerifyClient::Optional,
            ..Default::default()
        };
        let sec = rules(&r);
        let good = "Basic dTpw";
        let cases = [
            (conn("127.0.0.1", true), Some(good), Some((403, "Access is denied"))),
            (conn("127.0.0.2", false), Some(good), Some((403, "client certificate required"))),
            (conn("127.0.0.2", true), None, Some((401, "no auth header received"))),
            (conn("127.0.0.2", true), Some("Basic bad"), Some((401, "not authenticated"))),
            (conn("127.0.0.2", true), Some("Bearer dTpw"), Some((401, "not authenticated"))),
            (conn("127.0.0.2", true), Some(good), None),
        ];
        for (c, auth, want) in cases {
            assert_eq!(sec.check(Some(&c), auth, Some(&[])), want, "{c:?} {auth:?}");
        }
        // Without a connection (no accept loop), the allowlist cannot pass.
        assert_eq!(sec.check(None, Some(good), Some(&[])), Some((403, "Access is denied")));

        // With allowlist_include_members, the members' addresses pass too,
        // except where they do not count (`None`: POST /failsafe).
        r.allowlist_include_members = true;
        let sec = rules(&r);
        let members = [Net::parse("127.0.0.9").unwrap()];
        let member = conn("127.0.0.9", true);
        assert_eq!(sec.check(Some(&member), Some(good), Some(&members)), None);
        assert_eq!(sec.check(Some(&member), Some(good), None), Some((403, "Access is denied")));

        // Only members: any address is allowed where members do not count.
        r.allowlist.clear();
        let sec = rules(&r);
        assert_eq!(
            sec.check(Some(&conn("10.0.0.1", true)), Some(good), Some(&members)),
            Some((403, "Access is denied"))
        );
        assert_eq!(sec.check(Some(&conn("10.0.0.1", true)), Some(good), None), None);

        // verify_client applies only over TLS, and `none` asks nothing.
        for (certfile, verify, want) in [
            (None, VerifyClient::Required, None),
            (Some("/x.crt"), VerifyClient::None, None),
            (Some("/x.crt"), VerifyClient::Required, Some((403, "client certificate required"))),
        ] {
            let r = RestApiConfig { certfile: certfile.map(Into::into), verify_client: verify, ..Default::default() };
            assert_eq!(
                rules(&r).check(Some(&conn("10.0.0.1", false)), None, Some(&[])),
                want,
                "{certfile:?} {verify:?}"
            );
        }
    }

    #[test]
    fn which_requests_are_checked() {
        let checked = Scope::Checked { members: true };
        let cases = [
            (Method::GET, "/patroni", true, Scope::Open),
            (Method::HEAD, "/primary", true, Scope::Open),
            (Method::OPTIONS, "/replica", false, Scope::Open),
            (Method::GET, "/config", true, Scope::Open),
            (Method::POST, "/reload", true, checked),
            (Method::PATCH, "/config", true, checked),
            (Method::PUT, "/config", true, checked),
            (Method::DELETE, "/switchover", true, checked),
            (Method::POST, "/restart", true, checked),
            (Method::POST, "/mpp", true, checked),
            (Method::POST, "/failsafe", true, Scope::Checked { members: false }),
            // No endpoint there: Patroni answers 501 before any check.
            (Method::POST, "/nothing", false, Scope::Open),
        ];
        for (method, path, routed, want) in cases {
            assert_eq!(Scope::of(&method, path, routed), want, "{method} {path}");
        }
    }

    /// `MatchedPath` tells endpoints from the fallback in the middleware.
    #[tokio::test]
    async fn the_fallback_is_not_an_endpoint() {
        use axum::routing::post;
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route("/reload", post(|| async { "ok" }))
            .fallback(|| async { reply::code_only(501) })
            .layer(axum::middleware::from_fn(|req: Request, next: Next| async move {
                let routed = req.extensions().get::<MatchedPath>().is_some();
                match Scope::of(req.method(), req.uri().path(), routed) {
                    Scope::Open => next.run(req).await,
                    Scope::Checked { .. } => Security::refusal(401, "no auth header received"),
                }
            }));
        for (path, want) in [("/reload", 401), ("/nothing", 501), ("/reload/x", 501)] {
            let req = Request::builder().method("POST").uri(path).body(axum::body::Body::empty()).unwrap();
            assert_eq!(app.clone().oneshot(req).await.unwrap().status().as_u16(), want, "{path}");
        }
    }

    #[test]
    fn refusals_carry_patronis_headers() {
        let r = Security::refusal(401, "not authenticated");
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Basic realm=\"Patroni\"");
        assert_eq!(r.headers()["content-type"], "text/html");
        assert!(!Security::refusal(403, "Access is denied").headers().contains_key(WWW_AUTHENTICATE));
    }

    #[test]
    fn extra_headers_by_protocol() {
        let mut r = RestApiConfig::default();
        r.http_extra_headers.insert("X-A".into(), "1".into());
        r.https_extra_headers.insert("Strict-Transport-Security".into(), "max-age=1".into());
        let names = |r: &RestApiConfig| -> Vec<String> {
            Security::new(r, &HashMap::new()).0.headers.iter().map(|(k, _)| k.to_string()).collect()
        };
        assert_eq!(names(&r), ["x-a"]);
        r.certfile = Some("/x.crt".into());
        assert_eq!(names(&r), ["x-a", "strict-transport-security"]);
        r.http_extra_headers.insert("Bad Header".into(), "x".into());
        let (sec, problems) = Security::new(&r, &HashMap::new());
        assert_eq!(problems, ["restapi.http_extra_headers.Bad Header: not a valid HTTP header; left out"]);
        assert_eq!(sec.headers.len(), 2);
    }

    #[test]
    fn member_urls() {
        let cases = [
            ("http://127.0.0.1:8008/patroni", Some(("127.0.0.1", 8008))),
            ("https://db1.example/patroni", Some(("db1.example", 443))),
            ("http://db1.example/patroni", Some(("db1.example", 80))),
            ("https://[fd00::1]:8009/patroni", Some(("fd00::1", 8009))),
            ("https://user:pw@10.0.0.1:8008/patroni", Some(("10.0.0.1", 8008))),
            ("127.0.0.1:8008", None),
            ("http://:8008/patroni", None),
        ];
        for (url, want) in cases {
            assert_eq!(url_host_port(url), want.map(|(h, p)| (h.to_string(), p)), "{url}");
        }
    }
}
