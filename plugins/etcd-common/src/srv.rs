//! DNS SRV discovery of etcd endpoints, as Patroni does it: query the
//! service names below in order and use the first that yields endpoints.
//!
//! Peer records (`_etcd-server*`) are followed through the peer API's
//! member list ([`crate::peer`]).
//!
//! The lookup is a small DNS client of its own (one SRV question over UDP,
//! TCP when the answer is truncated, to the name servers of
//! `/etc/resolv.conf`), so the plugin does not carry a resolver library.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::endpoints::{self, Protocol};
use crate::peer::{self, PeerAccess};

/// One SRV service name to try, and what its records point at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvName {
    pub name: String,
    pub protocol: Protocol,
    /// `_etcd-server*`: records of the peer port (not client endpoints).
    pub peer: bool,
}

/// The names Patroni queries, in its order: client records first, then the
/// plain ones, then the peer ones.
pub fn srv_names(domain: &str, suffix: Option<&str>) -> Vec<SrvName> {
    ["-client-ssl", "-client", "-ssl", "", "-server-ssl", "-server"]
        .into_iter()
        .map(|kind| {
            let service = match suffix {
                Some(s) if !s.is_empty() => format!("{kind}-{s}"),
                _ => kind.to_string(),
            };
            SrvName {
                name: format!("_etcd{service}._tcp.{domain}"),
                protocol: if kind.contains("-ssl") { Protocol::Https } else { Protocol::Http },
                peer: kind.contains("-server"),
            }
        })
        .collect()
}

/// Client endpoints found through SRV under `domain`, or an empty list.
///
/// As in Patroni, the names of [`srv_names`] are asked in order and the
/// first that yields endpoints wins (its protocol is the scheme of the
/// URLs). Client records are the endpoints themselves. Peer records
/// (`_etcd-server-ssl`, `_etcd-server`) point at etcd's peer port: each is
/// asked in turn for `GET /members` (with `peer`'s TLS files, credentials and
/// timeout) until one answers; the members' client URLs are the endpoints.
/// A peer that does not answer, or answers garbage, is logged with its URL
/// and skipped.
pub async fn discover(domain: &str, suffix: Option<&str>, peer: &PeerAccess) -> Vec<String> {
    let servers = name_servers();
    for srv in srv_names(domain, suffix) {
        let records = lookup(&servers, &srv.name).await;
        if records.is_empty() {
            continue;
        }
        let mut urls: Vec<String> = if srv.peer {
            let (urls, failures) = from_peers(&srv, &records, peer).await;
            for failure in failures {
                tracing::warn!("{failure}");
            }
            urls
        } else {
            records.iter().map(|(host, port)| endpoints::endpoint(srv.protocol, host, *port)).collect()
        };
        if urls.is_empty() {
            continue;
        }
        urls.sort();
        urls.dedup();
        tracing::info!("etcd endpoints from SRV {}: {}", srv.name, urls.join(", "));
        return urls;
    }
    tracing::warn!("Can not resolve SRV for {domain}");
    Vec::new()
}

/// The client URLs of the first peer record whose `/members` answers, and
/// what went wrong with the records asked before it (naming the SRV name
/// and the URL).
async fn from_peers(srv: &SrvName, records: &[(String, u16)], peer: &PeerAccess) -> (Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    for (host, port) in records {
        let url = format!("{}/members", endpoints::endpoint(srv.protocol, host, *port));
        match peer::member_client_urls(srv.protocol, host, *port, peer).await {
            Ok(urls) => {
                if urls.is_empty() {
                    failures.push(format!("SRV {}: GET {url} lists no client URL", srv.name));
                }
                return (urls, failures);
            }
            Err(e) => failures.push(format!("SRV {}: GET {url}: {e}", srv.name)),
        }
    }
    (Vec::new(), failures)
}

fn name_servers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = parse_resolv_conf(&text);
    if out.is_empty() {
        out.push(SocketAddr::from(([127, 0, 0, 1], 53)));
    }
    out
}

pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        .filter_map(|addr| addr.split('%').next().and_then(|a| a.parse::<IpAddr>().ok()))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const TYPE_SRV: u16 = 33;

async fn lookup(servers: &[SocketAddr], name: &str) -> Vec<(String, u16)> {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(7);
    let id = (std::process::id() as u16) ^ (nanos as u16);
    let Some(query) = build_query(id, name) else {
        return Vec::new();
    };
    for server in servers.iter().take(3) {
        match tokio::time::timeout(QUERY_TIMEOUT, ask(*server, &query)).await {
            Ok(Some(answer)) => match parse_answer(id, &answer) {
                Some(records) => return records,
                None => continue,
            },
            _ => continue,
        }
    }
    Vec::new()
}

async fn ask(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let bind: SocketAddr =
        if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(server).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf).await.ok()?;
    buf.truncate(n);
    // Truncated: ask again over TCP.
    if buf.len() > 2 && buf[2] & 0x02 != 0 {
        let mut tcp = TcpStream::connect(server).await.ok()?;
        let len = u16::try_from(query.len()).ok()?;
        tcp.write_all(&len.to_be_bytes()).await.ok()?;
        tcp.write_all(query).await.ok()?;
        let mut len = [0u8; 2];
        tcp.read_exact(&mut len).await.ok()?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tcp.read_exact(&mut answer).await.ok()?;
        return Some(answer);
    }
    Some(buf)
}

/// A recursive query for the SRV records of `name`.
pub fn build_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len()).ok().filter(|l| (1..=63).contains(l))?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_SRV.to_be_bytes());
    q.extend_from_slice(&[0, 1]); // class IN
    Some(q)
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// Read a (possibly compressed) name at `pos`; returns it and the position
/// after it in the message.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)?;
        match len {
            0 => {
                return Some((labels.join("."), end.unwrap_or(pos + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let target = usize::from(u16_at(msg, pos)? & 0x3fff);
                end.get_or_insert(pos + 2);
                pos = target;
            }
            l if l & 0xc0 == 0 => {
                let label = msg.get(pos + 1..pos + 1 + usize::from(l))?;
                labels.push(String::from_utf8_lossy(label).into_owned());
                pos += 1 + usize::from(l);
            }
            _ => return None,
        }
    }
    None
}

/// The `(target, port)` of every SRV answer, or `None` when the message is
/// not an answer to our question (or reports a server failure).
pub fn parse_answer(id: u16, msg: &[u8]) -> Option<Vec<(String, u16)>> {
    if u16_at(msg, 0)? != id || msg.get(2)? & 0x80 == 0 {
        return None;
    }
    let rcode = msg.get(3)? & 0x0f;
    if rcode == 3 {
        return Some(Vec::new()); // no such name
    }
    if rcode != 0 {
        return None;
    }
    let questions = u16_at(msg, 4)?;
    let answers = u16_at(msg, 6)?;
    let mut pos = 12;
    for _ in 0..questions {
        pos = read_name(msg, pos)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        let (_, after) = read_name(msg, pos)?;
        let rtype = u16_at(msg, after)?;
        let rdlen = usize::from(u16_at(msg, after + 8)?);
        let rdata = after + 10;
        if rtype == TYPE_SRV && rdlen >= 7 {
            let port = u16_at(msg, rdata + 4)?;
            let (target, _) = read_name(msg, rdata + 6)?;
            if !target.is_empty() && port != 0 {
                out.push((target, port));
            }
        }
        pos = rdata + rdlen;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_patroni_order() {
        let names: Vec<String> = srv_names("example.org", None).into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "_etcd-client-ssl._tcp.example.org",
                "_etcd-client._tcp.example.org",
                "_etcd-ssl._tcp.example.org",
                "_etcd._tcp.example.org",
                "_etcd-server-ssl._tcp.example.org",
                "_etcd-server._tcp.example.org",
            ]
        );
    }

    #[test]
    fn suffix_goes_after_the_kind() {
        let names = srv_names("example.org", Some("foo"));
        assert_eq!(names[0].name, "_etcd-client-ssl-foo._tcp.example.org");
        assert_eq!(names[0].protocol, Protocol::Https);
        assert!(!names[0].peer);
        assert_eq!(names[3].name, "_etcd-foo._tcp.example.org");
        assert_eq!(names[3].protocol, Protocol::Http);
        assert_eq!(names[5].name, "_etcd-server-foo._tcp.example.org");
        assert!(names[5].peer);
    }

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch example.org\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\n";
        let servers = parse_resolv_conf(text);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0], "10.0.0.2:53".parse().unwrap());
    }

    #[test]
    fn query_and_answer_round_trip() {
        let q = build_query(0x1234, "_etcd-client._tcp.example.org").unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert!(build_query(1, &format!("{}.org", "a".repeat(64))).is_none());

        // An answer: the question copied, then two SRV records, the second
        // with its target compressed against the first.
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 2; // two answers
        let question_name = 12u16;
        let rr = |a: &mut Vec<u8>, target: &[u8], port: u16| {
            a.extend_from_slice(&(0xc000 | question_name).to_be_bytes());
            a.extend_from_slice(&TYPE_SRV.to_be_bytes());
            a.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            a.extend_from_slice(&(6 + target.len() as u16).to_be_bytes());
            a.extend_from_slice(&[0, 10, 0, 5]);
            a.extend_from_slice(&port.to_be_bytes());
            a.extend_from_slice(target);
        };
        let first_target_at = a.len() + 12 + 6;
        rr(&mut a, b"\x05etcd1\x07example\x03org\x00", 2379);
        let compressed = [b"\x05etcd2".as_slice(), &(0xc000 | (first_target_at as u16 + 6)).to_be_bytes()].concat();
        rr(&mut a, &compressed, 2380);
        let records = parse_answer(0x1234, &a).unwrap();
        assert_eq!(records, [("etcd1.example.org".to_string(), 2379), ("etcd2.example.org".to_string(), 2380)]);
        assert!(parse_answer(0x9999, &a).is_none(), "another id");
        let mut nx = a.clone();
        nx[3] = 0x83;
        assert_eq!(parse_answer(0x1234, &nx), Some(vec![]));
        assert!(parse_answer(0x1234, &a[..a.len() - 3]).is_none(), "truncated message");
    }

    /// A listener answering every connection with `answer`.
    async fn serve(answer: &'static [u8]) -> u16 {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn peers_are_asked_in_order_until_one_answers() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let garbage = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n<html>").await;
        let empty = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]").await;
        let good = serve(
            b"HTTP/1.1 200 OK\r\nContent-Length: 69\r\n\r\n\
              [{\"clientURLs\":[\"http://e1:2379\"]},{\"clientURLs\":[\"http://e2:2379\"]}]",
        )
        .await;
        let srv = srv_names("example.org", None).pop().unwrap();
        let access = PeerAccess { tls: Default::default(), credentials: None, timeout: Duration::from_secs(2) };
        let local = |port: u16| ("127.0.0.1".to_string(), port);

        let (urls, failures) =
            from_peers(&srv, &[local(dead), local(garbage), local(good), local(dead)], &access).await;
        assert_eq!(urls, ["http://e1:2379", "http://e2:2379"]);
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            failures[0].starts_with(&format!(
                "SRV _etcd-server._tcp.example.org: GET http://127.0.0.1:{dead}/members: cannot connect"
            )),
            "{failures:?}"
        );
        assert!(
            failures[1].starts_with(&format!(
                "SRV _etcd-server._tcp.example.org: GET http://127.0.0.1:{garbage}/members: not JSON"
            )),
            "{failures:?}"
        );

        // An empty member list ends the records of this name (Patroni's
        // `break`): the next name is asked.
        let (urls, failures) = from_peers(&srv, &[local(empty), local(good)], &access).await;
        assert!(urls.is_empty());
        assert!(
            failures[0].ends_with(&format!("GET http://127.0.0.1:{empty}/members lists no client URL")),
            "{failures:?}"
        );

        let (urls, failures) = from_peers(&srv, &[local(dead)], &access).await;
        assert!(urls.is_empty());
        assert_eq!(failures.len(), 1);
    }
}
