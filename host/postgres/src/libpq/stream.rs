//! tokio-postgres's TLS hooks over rustls, with the `tls-server-end-point`
//! channel binding SCRAM-SHA-256-PLUS needs.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// Makes a TLS connector for the host tokio-postgres connects to.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl MakeRustls {
    pub fn new(config: Arc<ClientConfig>) -> Self {
        Self { config }
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("host name {domain:?}: {e}")))?;
        Ok(RustlsConnect { config: Arc::clone(&self.config), name })
    }
}

/// One TLS handshake.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(|s| RustlsStream(Box::new(s))) })
    }
}

/// A TLS session to the server.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let cert = self.0.get_ref().1.peer_certificates().and_then(|c| c.first());
        match cert.and_then(|c| server_end_point(c.as_ref())) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929's `tls-server-end-point`: the certificate hashed with its
/// signature's hash (MD5 and SHA-1 become SHA-256). `None` for
/// signatures without one hash (Ed25519, RSA-PSS), as the server has none
/// either.
pub fn server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let algorithm =
        match signature_oid(cert_der)? {
            // md5WithRSA, sha1WithRSA, sha256WithRSA, ecdsa-with-SHA1, ecdsa-with-SHA256
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04 | 0x05 | 0x0b]
            | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]
            | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02] => &ring::digest::SHA256,
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]
            | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03] => &ring::digest::SHA384,
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]
            | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04] => &ring::digest::SHA512,
            _ => return None,
        };
    Some(ring::digest::digest(algorithm, cert_der).as_ref().to_vec())
}

/// One DER element: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `Certificate.signatureAlgorithm.algorithm`, as DER OID contents.
fn signature_oid(cert_der: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = der_element(cert_der)? else { return None };
    let (0x30, _tbs, rest) = der_element(cert)? else { return None };
    let (0x30, alg, _) = der_element(rest)? else { return None };
    let (0x06, oid, _) = der_element(alg)? else { return None };
    Some(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate skeleton: SEQUENCE { SEQUENCE {}, SEQUENCE { OID } }.
    fn cert_with(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
        body.extend(alg);
        let mut cert = vec![0x30, body.len() as u8];
        cert.extend(body);
        cert
    }

    #[test]
    fn end_point_hash_follows_the_signature() {
        let rsa = |last: u8| vec![0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last];
        let ec = |tail: &[u8]| [&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04][..], tail].concat();
        let cases: Vec<(Vec<u8>, Option<usize>)> = vec![
            (rsa(0x04), Some(32)),
            (rsa(0x05), Some(32)),
            (rsa(0x0b), Some(32)),
            (rsa(0x0c), Some(48)),
            (rsa(0x0d), Some(64)),
            (rsa(0x0a), None),
            (ec(&[0x01]), Some(32)),
            (ec(&[0x03, 0x02]), Some(32)),
            (ec(&[0x03, 0x03]), Some(48)),
            (ec(&[0x03, 0x04]), Some(64)),
            (vec![0x2b, 0x65, 0x70], None),
        ];
        for (oid, len) in cases {
            let cert = cert_with(&oid);
            let hash = server_end_point(&cert);
            assert_eq!(hash.as_ref().map(Vec::len), len, "{oid:02x?}");
            if len == Some(32) {
                assert_eq!(hash.unwrap(), ring::digest::digest(&ring::digest::SHA256, &cert).as_ref());
            }
        }
        for garbage in [&[][..], &[0x30], &[0x30, 0x85, 1, 2, 3, 4, 5], &[0x31, 0x00], &[0x30, 0x05, 0x30]] {
            assert_eq!(server_end_point(garbage), None, "{garbage:02x?}");
        }
    }
}
