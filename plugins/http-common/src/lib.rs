//! The HTTP client of the DCS plugins that speak HTTP to their store (the
//! etcd v2 API, Consul's agent): reqwest on rustls with the section's CA,
//! client certificate and key, Patroni's disregard of the proxy
//! variables, and errors that name the section's key. An rlib linked into
//! each of those plugins, so each stays one file to ship.

use std::path::Path;
use std::time::Duration;

use palisade_plugin_api::{PluginError, PluginResult};

/// The TLS files of a section and whether the server's certificate is
/// checked.
#[derive(Clone, Copy, Debug)]
pub struct Tls<'a> {
    /// PEM bundle of the CAs to trust instead of the system's.
    pub cacert: Option<&'a Path>,
    /// The client certificate (PEM).
    pub cert: Option<&'a Path>,
    /// Its key; `None` with a `cert`: the key is in the certificate file.
    pub key: Option<&'a Path>,
    /// `false`: accept any server certificate and name (Patroni's
    /// `verify: false`).
    pub verify: bool,
}

/// Percent-encode everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A store key (`/service/demo/members/n1`) as a URL path below the
/// store's prefix: without the leading slash, each segment encoded, a
/// trailing slash kept.
pub fn key_path(key: &str) -> String {
    key.trim_start_matches('/').split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// `name=value&...`, encoded: a form body or a query string.
pub fn form(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// The error and its causes on one line (reqwest's own message is terse).
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn read_file(section: &str, key: &str, path: &Path) -> PluginResult<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| PluginError::config(format!("{section}.{key}: cannot read '{}': {e}", path.display())))
}

/// The client for section `section` (named in errors: `etcd.cacert: ...`).
pub fn client(section: &str, tls: &Tls) -> PluginResult<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        // Patroni's clients (urllib3 pools) ignore the HTTP(S)_PROXY variables.
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_keepalive(Duration::from_secs(5))
        .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = tls.cacert {
        let certs = reqwest::Certificate::from_pem_bundle(&read_file(section, "cacert", ca)?)
            .map_err(|e| PluginError::config(format!("{section}.cacert: '{}': {}", ca.display(), describe(&e))))?;
        if certs.is_empty() {
            return Err(PluginError::config(format!("{section}.cacert: '{}' holds no certificate", ca.display())));
        }
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some(cert) = tls.cert {
        let mut pem = read_file(section, "cert", cert)?;
        if let Some(key) = tls.key {
            pem.push(b'\n');
            pem.extend(read_file(section, "key", key)?);
        }
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            PluginError::config(format!("{section}.cert: '{}' (with {section}.key): {}", cert.display(), describe(&e)))
        })?;
        b = b.identity(identity);
    }
    if !tls.verify {
        b = b.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
    }
    b.build().map_err(|e| PluginError::config(format!("{section}: cannot build the HTTP client: {}", describe(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        let cases =
            [("plain-._~Az09", "plain-._~Az09"), ("a b/c?d", "a%20b%2Fc%3Fd"), ("\u{0}\u{1}😀", "%00%01%F0%9F%98%80")];
        for (raw, want) in cases {
            assert_eq!(encode(raw), want);
        }
        assert_eq!(key_path("/service/demo/members/n 1"), "service/demo/members/n%201");
        assert_eq!(key_path("/service/demo/"), "service/demo/");
        assert_eq!(form(&[("a", "1".into()), ("b c", "&".into())]), "a=1&b%20c=%26");
        assert_eq!(form(&[]), "");
    }

    #[test]
    fn errors_name_the_sections_key() {
        let missing = Path::new("/nonexistent/file.pem");
        let dir = std::env::temp_dir().join(format!("palisade-http-common-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
            .expect("write");
        let none = Tls { cacert: None, cert: None, key: None, verify: true };
        let cases: [(Tls, &str); 4] = [
            (Tls { cacert: Some(missing), ..none }, "consul.cacert: cannot read '/nonexistent/file.pem'"),
            (Tls { cacert: Some(&empty), ..none }, "consul.cacert: '"),
            (Tls { cert: Some(missing), ..none }, "consul.cert: cannot read"),
            (Tls { cert: Some(&garbage), key: Some(missing), ..none }, "consul.key: cannot read"),
        ];
        for (tls, want) in cases {
            let e = client("consul", &tls).expect_err(want);
            assert!(e.message.starts_with(want), "{want}: {}", e.message);
        }
        assert!(client("etcd", &none).is_ok());
        assert!(client("etcd", &Tls { verify: false, ..none }).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
