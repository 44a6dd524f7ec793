//! Host, port and URL handling for the `etcd:` and `etcd3:` sections, following the
//! forms Patroni accepts: `host`, `host:port`, `[v6]:port`, a bare IPv6
//! address with a port after its last colon, and `http(s)://` URLs.

/// The port etcd clients use when none is given.
pub const DEFAULT_PORT: u16 = 2379;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A URL split into the parts the plugin uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedUrl {
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl ParsedUrl {
    pub fn endpoint(&self) -> String {
        endpoint(self.protocol, &self.host, self.port)
    }
}

/// `proto://host:port`, with brackets around an IPv6 address.
pub fn endpoint(protocol: Protocol, host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("{}://[{host}]:{port}", protocol.as_str())
    } else {
        format!("{}://{host}:{port}", protocol.as_str())
    }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty() && !host.chars().any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#' | ',' | '[' | ']'))
}

/// Split `host[:port]` as Patroni's `split_host_port` does; `None` when the
/// value is not of that form.
pub fn split_host_port(value: &str, default_port: u16) -> Option<(String, u16)> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => default_port,
            p => parse_port(p.strip_prefix(':')?)?,
        };
        return valid_host(host).then(|| (host.to_string(), port));
    }
    let (host, port) = match value.rsplit_once(':') {
        None => (value, default_port),
        Some((host, port)) => (host, parse_port(port)?),
    };
    valid_host(host).then(|| (host.to_string(), port))
}

fn parse_port(s: &str) -> Option<u16> {
    match s.trim().parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(p) => Some(p),
    }
}

/// Parse `http(s)://[user[:password]@]host[:port][/...]`.
pub fn parse_url(value: &str) -> Option<ParsedUrl> {
    let value = value.trim();
    let (scheme, rest) = value.split_once("://")?;
    let protocol = Protocol::parse(scheme)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport, DEFAULT_PORT)?;
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(user.to_string()), Some(pass.to_string())),
            None => (Some(u.to_string()), None),
        },
    };
    let username = username.filter(|u| !u.is_empty());
    Some(ParsedUrl { protocol, host, port, username, password })
}

/// One entry of `hosts`: `host[:port]`, or (leniently, Patroni does not)
/// a full URL.
pub fn host_entry(value: &str, protocol: Protocol, default_port: u16) -> Option<String> {
    if value.contains("://") {
        return parse_url(value).map(|u| u.endpoint());
    }
    split_host_port(value, default_port).map(|(h, p)| endpoint(protocol, &h, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let cases: &[(&str, Option<(&str, u16)>)] = &[
            ("127.0.0.1:2379", Some(("127.0.0.1", 2379))),
            ("etcd1", Some(("etcd1", 2379))),
            (" etcd1:4001 ", Some(("etcd1", 4001))),
            ("[::1]:2380", Some(("::1", 2380))),
            ("[::1]", Some(("::1", 2379))),
            ("fe80::1:2381", Some(("fe80::1", 2381))),
            ("etcd1:notaport", None),
            ("etcd1:0", None),
            ("etcd1:70000", None),
            (":2379", None),
            ("", None),
            ("two words:2379", None),
            ("[::1]x", None),
        ];
        for (input, expected) in cases {
            let got = split_host_port(input, DEFAULT_PORT);
            assert_eq!(got, expected.map(|(h, p)| (h.to_string(), p)), "{input:?}");
        }
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint(Protocol::Http, "::1", 2379), "http://[::1]:2379");
        assert_eq!(endpoint(Protocol::Https, "etcd", 2379), "https://etcd:2379");
        assert_eq!(host_entry("h:1", Protocol::Https, 2379).as_deref(), Some("https://h:1"));
        assert_eq!(host_entry("http://h:1", Protocol::Https, 2379).as_deref(), Some("http://h:1"));
        assert_eq!(host_entry("h", Protocol::Http, 4001).as_deref(), Some("http://h:4001"));
    }

    #[test]
    fn urls() {
        let u = parse_url("https://user:secret@etcd.example:2390/v3").unwrap();
        assert_eq!(u.protocol, Protocol::Https);
        assert_eq!(u.host, "etcd.example");
        assert_eq!(u.port, 2390);
        assert_eq!(u.username.as_deref(), Some("user"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.endpoint(), "https://etcd.example:2390");
        let u = parse_url("http://[::1]").unwrap();
        assert_eq!(u.endpoint(), "http://[::1]:2379");
        assert_eq!(u.username, None);
        assert!(parse_url("etcd:2379").is_none());
        assert!(parse_url("ftp://etcd:2379").is_none());
        assert!(parse_url("http://").is_none());
    }
}
