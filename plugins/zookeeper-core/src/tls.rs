//! `use_ssl`: the client's TLS options from the section's files, and the
//! diagnosis of a handshake that fails (the client library retries a
//! refused handshake like a lost connection until its deadline and keeps
//! no reason: the DCS error would only say "no server answered").

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use palisade_plugin_api::sdk::keys::{self, KeyError};
use palisade_plugin_api::sdk::tls::Verifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
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
    // `verify: false`: the chain is checked against the CAs, the name is
    // not (as the client library's own verifier does it).
    let verifier = Arc::new(Verifier::new(webpki, tls.verify, provider.clone()));
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
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};

    use palisade_test_support::certs;

    /// A fresh directory with CA `ca` and `other-ca`, and `server.crt`
    /// signed by `ca` for `zk.elsewhere.test` only.
    fn certificates(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("palisade-zk-tls-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the certificates");
        certs::ca(&dir, "ca");
        certs::ca(&dir, "other-ca");
        certs::leaf_for(&dir, "ca", "server", "DNS:zk.elsewhere.test");
        dir
    }

    /// A TLS server on 127.0.0.1 presenting `server.crt` to every
    /// connection (the handshake only); its port.
    fn serve(dir: &Path) -> u16 {
        let read = |f: &str| std::fs::read(dir.join(f)).expect("read a certificate file");
        let certs = CertificateDer::pem_slice_iter(&read("server.crt")).collect::<Result<Vec<_>, _>>().expect("certs");
        let key = PrivateKeyDer::from_pem_slice(&read("server.key")).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for mut sock in listener.incoming().flatten() {
                let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else { continue };
                let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
                while conn.is_handshaking() {
                    if conn.complete_io(&mut sock).is_err() {
                        break;
                    }
                }
                let _ = conn.complete_io(&mut sock);
            }
        });
        port
    }

    fn tls(cacert: &Path, verify: bool) -> Tls {
        Tls { cacert: Some(cacert.display().to_string()), verify, ..Tls::default() }
    }

    #[test]
    fn a_handshake_names_why_the_server_certificate_is_refused() {
        let dir = certificates("probe");
        let port = serve(&dir);
        let limit = Duration::from_secs(2);
        let probe = |tls: &Tls| {
            let config = probe_config("zookeeper", tls).expect("a probe configuration");
            handshake_failure(config, "127.0.0.1", port, limit)
        };
        // verify: the name is checked.
        let why = probe(&tls(&dir.join("ca.crt"), true)).expect("a certificate for another name is refused");
        assert!(why.starts_with(&format!("the TLS handshake with 127.0.0.1:{port} fails: ")), "{why}");
        assert!(why.contains(r#"certificate not valid for name "127.0.0.1""#), "{why}");
        // verify: false: the name is not, the chain is.
        assert_eq!(probe(&tls(&dir.join("ca.crt"), false)), None);
        let why = probe(&tls(&dir.join("other-ca.crt"), false)).expect("a certificate of another CA is refused");
        assert!(why.contains("UnknownIssuer"), "{why}");
        // Nobody listening is not a TLS failure (the DCS error says so already).
        let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
        let config = probe_config("zookeeper", &tls(&dir.join("ca.crt"), true)).expect("a probe configuration");
        assert_eq!(handshake_failure(config, "127.0.0.1", closed, limit), None);
        // A cacert that is not PEM is named.
        std::fs::write(dir.join("garbage.crt"), "not a certificate").expect("write");
        let e = probe_config("zookeeper", &tls(&dir.join("garbage.crt"), true));
        assert!(e.is_err_and(|e| e.starts_with("zookeeper.cacert: ")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn servers_of_a_connect_string() {
        assert_eq!(servers("h1:2181,[::1]:2182/chroot/x"), vec![("h1".to_string(), 2181), ("::1".to_string(), 2182)]);
        assert_eq!(servers("127.0.0.1:1"), vec![("127.0.0.1".to_string(), 1)]);
        assert!(servers("").is_empty());
    }
}
