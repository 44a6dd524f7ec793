//! Who may call the unsafe endpoints (POST, PUT, PATCH, DELETE), as
//! Patroni's `check_access`: the allowlist (and the members' addresses),
//! then a client certificate when TLS asks for one, then basic auth. And
//! the extra headers every answer carries.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use axum::extract::{Request, State};
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
    /// `10.0.0.0/8`, `127.0.0.1`, `::1/128`; hostnames resolve to each of
    /// their addresses.
    pub fn parse(text: &str) -> Result<Vec<Net>, String> {
        let text = text.trim();
        let (host, prefix) = match text.split_once('/') {
            Some((h, p)) => (h, Some(p.parse::<u8>().map_err(|_| format!("'{text}': bad prefix length"))?)),
            None => (text, None),
        };
        let addrs: Vec<IpAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) if prefix.is_none() => (host, 0)
                .to_socket_addrs()
                .map_err(|e| format!("'{text}': cannot resolve: {e}"))?
                .map(|a| a.ip())
                .collect(),
            Err(_) => return Err(format!("'{text}': not an address")),
        };
        addrs
            .into_iter()
            .map(|addr| {
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix = prefix.unwrap_or(max);
                if prefix > max {
                    return Err(format!("'{text}': prefix length above {max}"));
                }
                Ok(Net { addr, prefix })
            })
            .collect()
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
    pub fn from_config(r: &RestApiConfig) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut allowlist = Vec::new();
        for (i, entry) in r.allowlist.iter().enumerate() {
            match Net::parse(entry) {
                Ok(nets) => allowlist.extend(nets),
                Err(e) => problems.push(format!("restapi.allowlist[{i}]: {e}")),
            }
        }
        let tls = r.certfile.is_some();
        let mut headers = Vec::new();
        let extra = r.http_extra_headers.iter().map(|h| ("http_extra_headers", h));
        let extra_tls = r.https_extra_headers.iter().filter(|_| tls).map(|h| ("https_extra_headers", h));
        for (section, (k, v)) in extra.chain(extra_tls) {
            match (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
                (Ok(name), Ok(value)) => headers.push((name, value)),
                _ => problems.push(format!("restapi.{section}.{k}: not a valid HTTP header")),
            }
        }
        let auth_key = r
            .authentication
            .as_ref()
            .map(|a| base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.username, a.password)));
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            auth_key,
            allowlist,
            include_members: r.allowlist_include_members,
            verify_client: r.verify_client,
            tls,
            headers,
        })
    }

    /// Patroni's `check_auth_header`.
    pub fn auth_failure(&self, header: Option<&str>) -> Option<&'static str> {
        let key = self.auth_key.as_deref()?;
        match header {
            None => Some("no auth header received"),
            Some(h) if h.strip_prefix("Basic ").is_some_and(|k| k.trim() == key) => None,
            Some(_) => Some("not authenticated"),
        }
    }

    /// Patroni's `check_access`: `None` when allowed, else the answer.
    pub fn check(&self, conn: Option<&ConnInfo>, auth: Option<&str>, members: &[Net]) -> Option<(u16, &'static str)> {
        if !self.allowlist.is_empty() || self.include_members {
            let allowed = conn.is_some_and(|c| {
                let ip = c.remote.ip();
                self.allowlist.iter().chain(members).any(|n| n.contains(ip))
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
}

/// The members' API addresses (`allowlist_include_members`).
fn member_nets(st: &ApiState) -> Vec<Net> {
    let Some(cluster) = st.status.get().cluster.clone() else { return Vec::new() };
    let mut out = Vec::new();
    for m in &cluster.members {
        let Some(url) = m.api_url() else { continue };
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let hostport = rest.split('/').next().unwrap_or("");
        let host = match hostport.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
        };
        if let Ok(nets) = Net::parse(host) {
            out.extend(nets);
        }
    }
    out
}

/// The security in force (rebuilt when the `restapi` section changed).
pub fn current(st: &ApiState) -> Option<Arc<Security>> {
    let shared = st.shared.as_ref()?;
    let config = shared.config.read().unwrap_or_else(|p| p.into_inner());
    let mut cache = st.security.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((cfg, sec)) = cache.as_ref() {
        if *cfg == config.local.restapi {
            return Some(Arc::clone(sec));
        }
    }
    match Security::from_config(&config.local.restapi) {
        Ok(sec) => {
            let sec = Arc::new(sec);
            *cache = Some((config.local.restapi.clone(), Arc::clone(&sec)));
            Some(sec)
        }
        Err(problems) => {
            for p in problems {
                tracing::error!("{p}");
            }
            // Keep the last good rules rather than open the API up.
            cache.as_ref().map(|(_, s)| Arc::clone(s))
        }
    }
}

/// The middleware: access checks on unsafe methods, extra headers on
/// every answer.
pub async fn guard(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(sec) = current(&st) else { return next.run(req).await };
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut resp = if unsafe_method {
        let conn = req.extensions().get::<ConnInfo>().copied();
        let auth = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(String::from);
        let members = if sec.include_members { member_nets(&st) } else { Vec::new() };
        match sec.check(conn.as_ref(), auth.as_deref(), &members) {
            None => next.run(req).await,
            Some((code, why)) => {
                let mut r = reply::text(code, why);
                if code == 401 {
                    r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Patroni\""));
                }
                r
            }
        }
    } else {
        next.run(req).await
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

    #[test]
    fn nets_match_addresses() {
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "192.168.1.1", true),
            ("::1", "::1", true),
            ("fd00::/8", "fd12::1", true),
            ("127.0.0.0/8", "::ffff:127.0.0.5", true),
        ];
        for (net, ip, want) in cases {
            let nets = Net::parse(net).unwrap();
            assert_eq!(nets.iter().any(|n| n.contains(ip.parse().unwrap())), want, "{net} {ip}");
        }
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("nonsense/8").is_err());
        assert!(Net::parse("localhost").unwrap().iter().any(|n| n.contains("127.0.0.1".parse().unwrap())));
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
        let sec = Security::from_config(&r).unwrap();
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
            assert_eq!(sec.check(Some(&c), auth, &[]), want, "{c:?} {auth:?}");
        }
        // Members' addresses are allowed with allowlist_include_members.
        r.allowlist_include_members = true;
        let sec = Security::from_config(&r).unwrap();
        let members = Net::parse("127.0.0.9").unwrap();
        assert_eq!(sec.check(Some(&conn("127.0.0.9", true)), Some(good), &members), None);
    }

    #[test]
    fn extra_headers_by_protocol() {
        let mut r = RestApiConfig::default();
        r.http_extra_headers.insert("X-A".into(), "1".into());
        r.https_extra_headers.insert("Strict-Transport-Security".into(), "max-age=1".into());
        let plain = Security::from_config(&r).unwrap();
        assert_eq!(plain.headers.len(), 1);
        r.certfile = Some("/x.crt".into());
        assert_eq!(Security::from_config(&r).unwrap().headers.len(), 2);
        r.http_extra_headers.insert("Bad Header".into(), "x".into());
        assert_eq!(
            Security::from_config(&r).unwrap_err(),
            vec!["restapi.http_extra_headers.Bad Header: not a valid HTTP header"]
        );
    }
}
