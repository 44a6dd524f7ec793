//! `use_ssl`: the client's TLS options from the section's files, and the
//! diagnosis of a handshake that fails (the client library retries a
//! refused handshake like a lost connection until its deadline and keeps
//! no reason: the DCS error would only say "no server answered").

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use palisade_plugin_api::sdk::keys::{self, KeyError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use zookeeper_client as zk;

use crate::settings::Tls;

/// The system's CA bundle, used when no `cacert` is given (Patroni then
/// trusts the system's CAs too).
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn read(section: &str, key: &str, path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{section}.{key}: cannot read {path}: {e}"))
}

/// The PEM texts the TLS settings name: the CAs, and the client's
/// certificate and (decrypted) key when configured.
struct Pems {
    ca: String,
    ca_path: String,
    identity: Option<(String, String)>,
}

fn pems(section: &str, tls: &Tls) -> Result<Pems, String> {
    let ca_path = tls.cacert.as_deref().unwrap_or(SYSTEM_CAS).to_string();
    let ca = read(section, "cacert", &ca_path)?;
    let identity = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let cert_pem = read(section, "cert", cert)?;
            let key_pem = read(section, "key", key)?;
            // zookeeper-client reads plain keys only: open an encrypted one here.
            let key_pem = keys::decrypt_to_pem(&key_pem, tls.key_password.as_deref()).map_err(|e| match e {
                KeyError::NeedsPassword => format!("{section}.key: {key} is encrypted: set {section}.key_password"),
                e if e.is_about_password() => format!("{section}.key_password: {key}: {e}"),
                e => format!("{section}.key: {key}: {e}"),
            })?;
            Some((cert_pem, key_pem))
        }
        _ => None,
    };
    Ok(Pems { ca, ca_path, identity })
}

pub(crate) fn options(section: &str, tls: &Tls) -> Result<zk::TlsOptions, String> {
    let pems = pems(section, tls)?;
    let mut options =
        zk::TlsOptions::new().with_pem_ca(&pems.ca).map_err(|e| format!("{section}.cacert: {}: {e}", pems.ca_path))?;
    if let (Some((cert_pem, key_pem)), Some(cert), Some(key)) = (&pems.identity, &tls.cert, &tls.key) {
        options = options
            .with_pem_identity(cert_pem, key_pem)
            .map_err(|e| format!("{section}.cert/key: {cert}, {key}: {e}"))?;
    }
    if !tls.verify {
        // SAFETY (of the setting, not memory): the operator asked for it
        // with `verify: false`; the chain is still checked against the CAs.
        options = unsafe { options.with_no_hostname_verification() };
    }
    Ok(options)
}

/// `verify: false`: the chain is checked against the CAs, the name is not
/// (as the client library's own verifier does it).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the
        // chain was good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A rustls client configured as the ZooKeeper client is (same CAs, same
/// client certificate, same `verify`), to find out why a handshake fails.
pub(crate) fn probe_config(section: &str, tls: &Tls) -> Result<Arc<ClientConfig>, String> {
    let pems = pems(section, tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pems.ca.as_bytes()) {
        let cert = cert.map_err(|e| format!("{section}.cacert: {}: {e}", pems.ca_path))?;
        roots.add(cert).map_err(|e| format!("{section}.cacert: {}: {e}", pems.ca_path))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("{section}.cacert: {}: {e}", pems.ca_path))?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.verify { webpki } else { Arc::new(ChainOnly(webpki)) };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{section}: TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &pems.identity {
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{section}.cert: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("{section}.key: {e}"))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| format!("{section}.cert/key: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The servers of a connection string (`h1:2181,[::1]:2181/chroot`) as
/// `(host, port)`; entries without a port are left out (the settings give
/// every host one).
pub(crate) fn servers(connect_string: &str) -> Vec<(String, u16)> {
    let list = connect_string.split('/').next().unwrap_or_default();
    list.split(',')
        .filter_map(|part| {
            let (host, port) = part.trim().rsplit_once(':')?;
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            Some((host.to_string(), port.parse().ok()?))
        })
        .filter(|(host, _)| !host.is_empty())
        .collect()
}

/// Why a TLS handshake with `host:port` fails, when it is TLS that fails
/// (the server's certificate, an alert from the server): `None` when the
/// handshake completes, or when the server cannot be reached at all (then
/// the DCS error says so already). Blocking; at most `limit` per step.
pub(crate) fn handshake_failure(config: Arc<ClientConfig>, host: &str, port: u16, limit: Duration) -> Option<String> {
    let name = ServerName::try_from(host.to_string()).ok()?;
    let addr = (host, port).to_socket_addrs().ok()?.next()?;
    let mut sock = TcpStream::connect_timeout(&addr, limit).ok()?;
    sock.set_read_timeout(Some(limit)).ok()?;
    sock.set_write_timeout(Some(limit)).ok()?;
    let mut conn = rustls::ClientConnection::new(config, name).ok()?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut sock) {
            Ok(_) => {}
            // rustls reports its own errors (certificates, alerts) as invalid data.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Some(format!("the TLS handshake with {host}:{port} fails: {e}"));
            }
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_of_a_connect_string() {
        assert_eq!(servers("h1:2181,[::1]:2182/chroot/x"), vec![("h1".to_string(), 2181), ("::1".to_string(), 2182)]);
        assert_eq!(servers("127.0.0.1:1"), vec![("127.0.0.1".to_string(), 1)]);
        assert!(servers("").is_empty());
    }
}
