//! `urllib.parse.urlparse(url).hostname` and `.port`, as Patroni reads a
//! member's `conn_url` (Citus: `pg_dist_node` rows are made from them).

/// What `urlparse(url)` gives for `.hostname` and `.port`: the host
/// lowercased (without the brackets of an IPv6 address; `None` when
/// empty) and the port (`None` when absent or empty). An error where
/// Python raises `ValueError` (a port that is not digits or out of range,
/// unbalanced IPv6 brackets).
pub fn hostname_port(url: &str) -> Result<(Option<String>, Option<u16>), String> {
    let netloc = netloc(url);
    if netloc.contains('[') != netloc.contains(']') {
        return Err("Invalid IPv6 URL".into());
    }
    if netloc.contains('[') {
        check_bracketed_netloc(&netloc)?;
    }
    let hostinfo = netloc.rsplit_once('@').map_or(netloc.as_str(), |(_, h)| h);
    let (hostname, port) = match hostinfo.split_once('[') {
        Some((_, bracketed)) => {
            let (h, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            (h, after.split_once(':').map_or("", |(_, p)| p))
        }
        None => hostinfo.split_once(':').unwrap_or((hostinfo, "")),
    };
    let hostname = (!hostname.is_empty()).then(|| match hostname.split_once('%') {
        Some((h, zone)) => format!("{}%{zone}", h.to_lowercase()),
        None => hostname.to_lowercase(),
    });
    let port = if port.is_empty() {
        None
    } else if port.bytes().all(|b| b.is_ascii_digit()) {
        match port.parse::<u32>() {
            Ok(p) if p <= 65535 => Some(p as u16),
            _ => return Err("Port out of range 0-65535".into()),
        }
    } else {
        return Err(format!("Port could not be cast to integer value as {}", crate::py::repr_str(port)));
    };
    Ok((hostname, port))
}

/// urlsplit's checks of a netloc with brackets (Python 3.11.4 and later,
/// and Debian's 3.11.2): nothing before `[`, nothing but `:port` after
/// `]`, and an IPv6 address (with an optional `%scope`) or an `IPvFuture`
/// (`v<hex>.<anything>`) as the host. (Not mirrored: the NFKC check of a
/// non-ASCII netloc.)
fn check_bracketed_netloc(netloc: &str) -> Result<(), String> {
    let hostinfo = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let host = match hostinfo.split_once('[') {
        Some((before, bracketed)) => {
            if !before.is_empty() {
                return Err("Invalid IPv6 URL".into());
            }
            let (host, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            if !after.is_empty() && !after.starts_with(':') {
                return Err("Invalid IPv6 URL".into());
            }
            host
        }
        // The brackets were in the user part: the host is checked all the same.
        None => hostinfo.split_once(':').map_or(hostinfo, |(h, _)| h),
    };
    if let Some(rest) = host.strip_prefix('v') {
        let future = rest.split_once('.').is_some_and(|(hex, tail)| {
            !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !tail.is_empty() && !tail.contains('\n')
        });
        return if future { Ok(()) } else { Err("IPvFuture address is invalid".into()) };
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("An IPv4 address cannot be in brackets".into());
    }
    let (address, scope) = match host.split_once('%') {
        Some((a, s)) => (a, Some(s)),
        None => (host, None),
    };
    let scope_ok = scope.is_none_or(|s| !s.is_empty() && !s.contains('%'));
    if scope_ok && address.parse::<std::net::Ipv6Addr>().is_ok() {
        Ok(())
    } else {
        Err(format!("{} does not appear to be an IPv4 or IPv6 address", crate::py::repr_str(host)))
    }
}

/// `urlsplit(url).netloc`: after the scheme's `//`, up to `/`, `?` or `#`.
fn netloc(url: &str) -> String {
    // urlsplit drops tabs and newlines anywhere and leading C0 controls and spaces.
    let cleaned: String = url.chars().filter(|c| !matches!(c, '\t' | '\r' | '\n')).collect();
    let cleaned = cleaned.trim_start_matches(|c: char| c <= ' ');
    let rest = match cleaned.split_once(':') {
        Some((scheme, rest))
            if scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            rest
        }
        _ => cleaned,
    };
    match rest.strip_prefix("//") {
        Some(after) => after.split(['/', '?', '#']).next().unwrap_or("").to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.hostname` and `.port`, or Python's `ValueError` text.
    type Parsed = Result<(Option<String>, Option<u16>), String>;

    #[test]
    fn as_python_reads_conn_urls() {
        let ok = |h: Option<&str>, p: Option<u16>| Ok((h.map(String::from), p));
        let cases: [(&str, Parsed); 11] = [
            ("postgres://10.0.0.1:5432/postgres", ok(Some("10.0.0.1"), Some(5432))),
            ("postgres://Host.Example:6000/db", ok(Some("host.example"), Some(6000))),
            ("postgres://host/db", ok(Some("host"), None)),
            ("postgres://host:/db", ok(Some("host"), None)),
            ("postgres://user:pw@host:5433/db", ok(Some("host"), Some(5433))),
            ("postgres://[::1]:5434/db", ok(Some("::1"), Some(5434))),
            ("postgres://[FE80::1%Eth0]/db", ok(Some("fe80::1%Eth0"), None)),
            ("postgres:///db", ok(None, None)),
            ("host:5432", ok(None, None)),
            ("postgres://host:99999/db", Err("Port out of range 0-65535".into())),
            ("postgres://host:x/db", Err("Port could not be cast to integer value as 'x'".into())),
        ];
        for (url, want) in cases {
            assert_eq!(hostname_port(url), want, "{url}");
        }
        assert!(hostname_port("postgres://[::1/db").is_err());
    }
}
