//! The etcd peer API's member list, for SRV discovery through
//! `_etcd-server-ssl`/`_etcd-server` records (Patroni's
//! `_get_machines_cache_from_srv`): `GET <protocol>://host:port/members` on
//! a peer port answers a JSON list of members, each with its `clientURLs`.
//!
//! The request is a small HTTP/1.1 GET of its own (`Connection: close`, over
//! a tokio TCP stream, TLS through tokio-rustls), so that neither plugin
//! carries another HTTP client: the v3 plugin has none. The answer is read
//! up to [`MAX_ANSWER`] bytes; a body is framed by `Content-Length`, by
//! chunks, or by the end of the connection.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};

use crate::config::TlsFiles;
use crate::endpoints::{self, Protocol};

/// The largest answer (head and body) read from a peer port.
pub const MAX_ANSWER: usize = 4 << 20;
/// The largest response head.
const MAX_HEAD: usize = 64 << 10;

/// How to reach the peer ports: the section's TLS files and credentials, and
/// how long one request may take.
#[derive(Clone, Debug)]
pub struct PeerAccess {
    pub tls: TlsFiles,
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
}

/// The client URLs of every member in the peer API's `/members` answer.
/// A member without a `clientURLs` list makes the answer bad, as in Patroni
/// (a member still starting has an empty one).
pub fn parse_members(body: &[u8]) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Array(members) = value else {
        return Err(format!("expected a list of members, found {}", shorten(&value.to_string())));
    };
    let mut urls = Vec::new();
    for (i, member) in members.iter().enumerate() {
        match member.get("clientURLs") {
            Some(Value::Array(list)) => {
                for url in list {
                    match url {
                        Value::String(s) if !s.trim().is_empty() => urls.push(s.trim().to_string()),
                        other => {
                            return Err(format!(
                                "member {i}: clientURLs holds {}, not a URL",
                                shorten(&other.to_string())
                            ))
                        }
                    }
                }
            }
            Some(Value::Null) => {}
            Some(other) => {
                return Err(format!("member {i}: clientURLs is {}, not a list", shorten(&other.to_string())))
            }
            None => return Err(format!("member {i} has no clientURLs: {}", shorten(&member.to_string()))),
        }
    }
    Ok(urls)
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

/// An HTTP/1.1 response read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Status code and body.
    Complete(u16, Vec<u8>),
    /// More bytes are needed.
    Incomplete,
}

/// Parse an HTTP/1.1 response from `buf`; `at_eof` says the connection has
/// been closed (which ends a body framed by neither length nor chunks, and
/// makes a short one an error).
pub fn parse_response(buf: &[u8], at_eof: bool) -> Result<Parsed, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("response head longer than {MAX_HEAD} bytes"));
        }
        return if at_eof { Err(cut_short(buf)) } else { Ok(Parsed::Incomplete) };
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "response head is not text".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split(' ');
    let (Some(version), Some(code)) = (words.next(), words.next()) else {
        return Err(format!("bad status line '{}'", shorten(status_line)));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line '{}'", shorten(status_line)));
    }
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| (100..1000).contains(c))
        .ok_or_else(|| format!("bad status line '{}'", shorten(status_line)))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line '{}'", shorten(line)));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse::<usize>().map_err(|_| format!("bad Content-Length '{}'", shorten(value)))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers".to_string());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            if !chunked {
                return Err(format!("unsupported Transfer-Encoding '{}'", shorten(value)));
            }
        }
    }
    let rest = &buf[head_end + 4..];
    // No body: 1xx, 204 and 304.
    if matches!(status, 100..=199 | 204 | 304) {
        return Ok(Parsed::Complete(status, Vec::new()));
    }
    if chunked {
        // A chunked body ends with CRLF: parse it only then (not after
        // every read of a long body).
        if !at_eof && !rest.ends_with(b"\r\n") {
            return Ok(Parsed::Incomplete);
        }
        return match dechunk(rest)? {
            Some(body) => Ok(Parsed::Complete(status, body)),
            None if at_eof => Err(cut_short(buf)),
            None => Ok(Parsed::Incomplete),
        };
    }
    match length {
        Some(n) if n > MAX_ANSWER => Err(format!("body of {n} bytes, more than the {MAX_ANSWER} accepted")),
        Some(n) if rest.len() >= n => Ok(Parsed::Complete(status, rest[..n].to_vec())),
        Some(_) if at_eof => Err(cut_short(buf)),
        Some(_) => Ok(Parsed::Incomplete),
        None if at_eof => Ok(Parsed::Complete(status, rest.to_vec())),
        None => Ok(Parsed::Incomplete),
    }
}

fn cut_short(buf: &[u8]) -> String {
    format!("connection closed after {} bytes, before the end of the response", buf.len())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The body of a chunked message, or `None` while incomplete.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(rest, b"\r\n") else {
            return if rest.len() > 1024 { Err("chunk size line too long".to_string()) } else { Ok(None) };
        };
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| "chunk size is not text".to_string())?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size '{}'", shorten(size_text)))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailers (ignored) end with an empty line.
            let mut trailers = rest;
            loop {
                let Some(eol) = find(trailers, b"\r\n") else { return Ok(None) };
                if eol == 0 {
                    return Ok(Some(body));
                }
                trailers = &trailers[eol + 2..];
            }
        }
        if body.len() + size > MAX_ANSWER {
            return Err(format!("chunked body larger than the {MAX_ANSWER} bytes accepted"));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".to_string());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// The GET request for `path` on `host:port`.
pub fn request(host: &str, port: u16, path: &str, credentials: Option<&(String, String)>) -> String {
    let authority = endpoints::endpoint(Protocol::Http, host, port);
    let authority = authority.trim_start_matches("http://");
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: palisade\r\nAccept: application/json\r\n\
         Connection: close\r\n"
    );
    if let Some((user, password)) = credentials {
        req.push_str(&format!("Authorization: Basic {}\r\n", base64(format!("{user}:{password}").as_bytes())));
    }
    req.push_str("\r\n");
    req
}

fn read_pem(key: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read '{}': {e}", path.display()))
}

/// A rustls client configuration from the section's files: `cacert` (the
/// system trust store without it) and the client certificate `cert`/`key`.
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, String> {
    use pki_types::pem::PemObject;
    use pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match &files.cacert {
        Some(path) => {
            let pem = read_pem("cacert", path)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("cacert: '{}': {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("cacert: '{}': {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("cacert: no certificate in '{}'", path.display()));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match &files.cert {
        None => Ok(builder.with_no_client_auth()),
        Some(cert_path) => {
            let pem = read_pem("cert", cert_path)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cert: '{}': {e}", cert_path.display()))?;
            let key_path = files.key.as_deref().unwrap_or(cert_path);
            let key_pem = read_pem("key", key_path)?;
            let key =
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("key: '{}': {e}", key_path.display()))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| format!("cert: '{}': {e}", cert_path.display()))
        }
    }
}

fn end_of(buf: &[u8]) -> Result<(u16, Vec<u8>), String> {
    match parse_response(buf, true)? {
        Parsed::Complete(status, body) => Ok((status, body)),
        Parsed::Incomplete => Err(cut_short(buf)),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, req: &str) -> Result<(u16, Vec<u8>), String> {
    stream.write_all(req.as_bytes()).await.map_err(|e| format!("cannot send the request: {e}"))?;
    stream.flush().await.map_err(|e| format!("cannot send the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        match stream.read(&mut chunk).await {
            // The end of the connection; a TLS peer may close without
            // close_notify (a "ragged" end), taken as the end too.
            Ok(0) => return end_of(&buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return end_of(&buf),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_ANSWER + MAX_HEAD {
                    return Err(format!("answer larger than the {MAX_ANSWER} bytes accepted"));
                }
                if let Parsed::Complete(status, body) = parse_response(&buf, false)? {
                    return Ok((status, body));
                }
            }
            Err(e) => return Err(format!("cannot read the answer: {e}")),
        }
    }
}

async fn get(protocol: Protocol, host: &str, port: u16, access: &PeerAccess) -> Result<(u16, Vec<u8>), String> {
    let req = request(host, port, "/members", access.credentials.as_ref());
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| format!("cannot connect: {e}"))?;
    match protocol {
        Protocol::Http => exchange(tcp, &req).await,
        Protocol::Https => {
            let config = tls_config(&access.tls)?;
            let name = pki_types::ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
                .map_err(|e| format!("bad server name '{host}': {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            exchange(tls, &req).await
        }
    }
}

/// `GET <protocol>://host:port/members`: the members' client URLs, or why
/// not (a status of 400 or more, a bad answer, a timeout).
pub async fn member_client_urls(
    protocol: Protocol,
    host: &str,
    port: u16,
    access: &PeerAccess,
) -> Result<Vec<String>, String> {
    let answer = tokio::time::timeout(access.timeout, get(protocol, host, port, access))
        .await
        .map_err(|_| format!("no answer in {:?}", access.timeout))??;
    let (status, body) = answer;
    if status >= 400 {
        return Err(format!("status {status}: {}", shorten(&String::from_utf8_lossy(&body))));
    }
    parse_members(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_json() {
        let ok: &[(&str, &[&str])] = &[
            ("[]", &[]),
            (
                r#"[{"id":"8e9e05c52164694d","name":"a","peerURLs":["http://127.0.0.1:2380"],"clientURLs":["http://127.0.0.1:2379"]}]"#,
                &["http://127.0.0.1:2379"],
            ),
            (
                r#"[{"clientURLs":["https://a:2379","https://b:2379"]},{"name":"","clientURLs":[]},{"clientURLs":null}]"#,
                &["https://a:2379", "https://b:2379"],
            ),
        ];
        for (body, want) in ok {
            assert_eq!(parse_members(body.as_bytes()), Ok(want.iter().map(|s| s.to_string()).collect()), "{body}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "not JSON"),
            ("<html>", "not JSON"),
            (r#"{"members":[]}"#, "expected a list of members"),
            (r#"[{"name":"a"}]"#, "member 0 has no clientURLs"),
            (r#"[{"clientURLs":[]},{"clientURLs":"http://a:2379"}]"#, "member 1: clientURLs is"),
            (r#"[{"clientURLs":[7]}]"#, "member 0: clientURLs holds 7"),
            (r#"[1]"#, "member 0 has no clientURLs"),
        ];
        for (body, want) in bad {
            let e = parse_members(body.as_bytes()).expect_err(body);
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn http_responses() {
        use Parsed::*;
        let ok = |s: u16, b: &str| Ok(Complete(s, b.as_bytes().to_vec()));
        let cases: &[(&str, bool, Result<Parsed, String>)] = &[
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", false, ok(200, "[]")),
            ("HTTP/1.1 200 OK\r\ncontent-length:  2 \r\n\r\n[]extra", false, ok(200, "[]")),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n[]", false, Ok(Incomplete)),
            ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", false, Ok(Incomplete)),
            ("HTTP/1.1 200 OK\r\n\r\n[1,2]", false, Ok(Incomplete)),
            ("HTTP/1.1 200 OK\r\n\r\n[1,2]", true, ok(200, "[1,2]")),
            ("HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", false, ok(404, "not found")),
            ("HTTP/1.1 204 No Content\r\n\r\n", false, ok(204, "")),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[{\r\n3;x=y\r\n}]\n\r\n0\r\n\r\n",
                false,
                ok(200, "[{}]\n"),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\nX-T: 1\r\n\r\n",
                false,
                ok(200, "[]"),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n2\r\n[]\r\n0\r\n\r\n",
                false,
                ok(200, "[]"),
            ),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n", false, Ok(Incomplete)),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[", false, Ok(Incomplete)),
        ];
        for (text, eof, want) in cases {
            assert_eq!(&parse_response(text.as_bytes(), *eof), want, "{text:?} eof={eof}");
        }
        let bad: &[(&str, bool, &str)] = &[
            ("SSH-2.0-OpenSSH\r\n\r\n", false, "bad status line"),
            ("HTTP/1.1 abc OK\r\n\r\n", false, "bad status line"),
            ("HTTP/1.1\r\n\r\n", false, "bad status line"),
            ("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false, "bad header line"),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, "bad Content-Length"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", false, "conflicting"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", false, "more than the"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n[]", true, "connection closed after"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, "unsupported Transfer-Encoding"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, "bad chunk size"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]xx\r\n", false, "not followed by CRLF"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n", false, "larger than"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n", true, "connection closed after"),
            ("HTTP/1.1 200", true, "connection closed after"),
            ("", true, "connection closed after 0 bytes"),
        ];
        for (text, eof, want) in bad {
            let e = parse_response(text.as_bytes(), *eof).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let long_head = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(parse_response(long_head.as_bytes(), false).unwrap_err().contains("head longer"));
    }

    #[test]
    fn request_text() {
        let creds = ("root".to_string(), "pass word".to_string());
        let r = request("::1", 2380, "/members", Some(&creds));
        assert!(r.starts_with("GET /members HTTP/1.1\r\nHost: [::1]:2380\r\n"), "{r}");
        assert!(r.contains("Connection: close\r\n"), "{r}");
        assert!(r.contains("Authorization: Basic cm9vdDpwYXNzIHdvcmQ=\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"));
        assert!(!request("e1", 2380, "/members", None).contains("Authorization"));
        for (raw, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    /// One answer from a local listener, end to end through the client.
    async fn serve_once(answer: &'static [u8]) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                for piece in answer.chunks(7) {
                    let _ = s.write_all(piece).await;
                    let _ = s.flush().await;
                }
                if answer.is_empty() {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn get_members_over_tcp() {
        let access = PeerAccess { tls: TlsFiles::default(), credentials: None, timeout: Duration::from_millis(500) };
        let port = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1f\r\n[{\"clientURLs\":[\"http://a:1\"]}]\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(member_client_urls(Protocol::Http, "127.0.0.1", port, &access).await, Ok(vec!["http://a:1".into()]));
        let port = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n").await;
        let e = member_client_urls(Protocol::Http, "127.0.0.1", port, &access).await.unwrap_err();
        assert!(e.contains("status 404"), "{e}");
        let port = serve_once(b"").await;
        let e = member_client_urls(Protocol::Http, "127.0.0.1", port, &access).await.unwrap_err();
        assert!(e.contains("no answer in"), "{e}");
    }
}
