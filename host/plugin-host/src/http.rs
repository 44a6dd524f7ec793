//! The client side of TLS, for the members' REST APIs: PEM certificates
//! and private keys (encrypted PKCS#8 keys are decrypted with the
//! `*_password` setting), and the HTTP(S) client Patroni's
//! `PatroniRequest` makes from the `ctl` and `restapi` sections. The
//! daemon asks its peers with it; palisadectl sends every request with it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use palisade_config::{BasicAuth, LocalConfig};
use palisade_keys::{self as keys, KeyError};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The bytes of `path`; an error names the setting `key`.
pub fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

/// The certificates in `path` (PEM). `key` names the setting in messages.
pub fn load_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path, key)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| format!("{key}: {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key}: {} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The private key in `path` (PEM), decrypting an encrypted PKCS#8 key
/// with `password`. `key` names the setting in messages.
pub fn load_key(path: &Path, password: Option<&str>, key: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path, key)?;
    let text = String::from_utf8_lossy(&pem);
    match keys::decrypt(&text, password) {
        Ok(Some(plain)) => return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain))),
        Ok(None) => {}
        Err(KeyError::NeedsPassword) => {
            return Err(format!("{key}: {} is encrypted: set {key}_password", path.display()))
        }
        Err(e) if e.is_about_password() => return Err(format!("{key}_password: {}: {e}", path.display())),
        Err(e) => return Err(format!("{key}: {}: {e}", path.display())),
    }
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{key}: {}: {e}", path.display()))?
        .ok_or_else(|| format!("{key}: {} holds no PEM private key", path.display()))
}

/// The client certificate and key as reqwest wants them (one PEM).
pub fn client_identity(
    cert: &Path,
    key: Option<&Path>,
    password: Option<&str>,
    section: &str,
) -> Result<reqwest::Identity, String> {
    let cert_pem = String::from_utf8_lossy(&read(cert, &format!("{section}.certfile"))?).into_owned();
    let key_path = key.unwrap_or(cert);
    let key_der = load_key(key_path, password, &format!("{section}.keyfile"))?;
    let (label, der) = match &key_der {
        PrivateKeyDer::Pkcs8(k) => ("PRIVATE KEY", k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => ("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => ("EC PRIVATE KEY", k.secret_sec1_der()),
        _ => return Err(format!("{section}.keyfile: {}: an unsupported kind of key", key_path.display())),
    };
    let key_pem = keys::to_pem(label, der);
    let mut pem = cert_pem.into_bytes();
    pem.push(b'\n');
    pem.extend_from_slice(key_pem.as_bytes());
    reqwest::Identity::from_pem(&pem).map_err(|e| format!("{section}.certfile/keyfile: {e}"))
}

/// How a client checks the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServerCheck {
    /// The chain and the host name.
    Full,
    /// The chain only (insecure, with a client certificate).
    ChainOnly,
    /// Nothing (insecure, without a client certificate).
    Nothing,
}

/// Everything the REST API client is made of, as Patroni's
/// `PatroniRequest.reload_config` takes it from the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSettings {
    pub check: ServerCheck,
    /// The CA bundle and the setting it came from (`ctl.cacert`, else
    /// `restapi.cafile`); without it, the system's roots.
    pub ca: Option<(PathBuf, &'static str)>,
    /// Certificate, key, key password and the section they came from.
    pub identity: Option<(PathBuf, Option<PathBuf>, Option<String>, &'static str)>,
    /// Sent with every request (`ctl.authentication`, else `restapi`'s).
    pub auth: Option<BasicAuth>,
    /// The files' modification times: a replaced file makes new settings.
    stamps: Vec<Option<SystemTime>>,
}

impl ClientSettings {
    /// `insecure`: skip verification as `-k` does (Patroni's daemon always
    /// asks so); `ctl.insecure` does the same.
    ///
    /// As in Patroni, with `ctl.certfile` an insecure client still checks
    /// the chain (but not the host name), and a secure one checks both.
    /// Unlike Patroni, without `ctl.certfile` the client presents
    /// `restapi.certfile` (members then reach peers that require client
    /// certificates without a `ctl` section).
    pub fn new(config: &LocalConfig, insecure: bool) -> Self {
        let (ctl, api) = (&config.ctl, &config.restapi);
        let check = match (insecure || ctl.insecure, ctl.certfile.is_some()) {
            (false, _) => ServerCheck::Full,
            (true, true) => ServerCheck::ChainOnly,
            (true, false) => ServerCheck::Nothing,
        };
        let ca = match (&ctl.cacert, &api.cafile) {
            (Some(c), _) => Some((c.clone(), "ctl.cacert")),
            (None, Some(c)) => Some((c.clone(), "restapi.cafile")),
            (None, None) => None,
        };
        let identity = match (&ctl.certfile, &api.certfile) {
            (Some(c), _) => Some((c.clone(), ctl.keyfile.clone(), ctl.keyfile_password.clone(), "ctl")),
            (None, Some(c)) => Some((c.clone(), api.keyfile.clone(), api.keyfile_password.clone(), "restapi")),
            (None, None) => None,
        };
        let auth = ctl.authentication.clone().or_else(|| api.authentication.clone());
        let mut files: Vec<&Path> = ca.iter().map(|c| c.0.as_path()).collect();
        if let Some((cert, key, _, _)) = &identity {
            files.push(cert);
            files.extend(key.as_deref());
        }
        let stamps = files.iter().map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).collect();
        Self { check, ca, identity, auth, stamps }
    }

    /// The HTTP client these settings describe.
    pub fn client(&self) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(5));
        builder = match self.check {
            ServerCheck::Full => builder,
            ServerCheck::ChainOnly => builder.danger_accept_invalid_hostnames(true),
            // Nothing is verified: the system's roots (about 150
            // certificates, parsed and kept in memory) would go unused.
            ServerCheck::Nothing => builder.danger_accept_invalid_certs(true).tls_built_in_root_certs(false),
        };
        if let Some((ca, setting)) = &self.ca {
            // As urllib3's `ca_certs`: this bundle replaces the system's.
            builder = builder.tls_built_in_root_certs(false);
            let pem = read(ca, setting)?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{setting}: {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!("{setting}: {} holds no PEM certificate", ca.display()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if let Some((cert, key, password, section)) = &self.identity {
            builder = builder.identity(client_identity(cert, key.as_deref(), password.as_deref(), section)?);
        }
        if let Some(a) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.username, a.password));
            let mut value = reqwest::header::HeaderValue::try_from(format!("Basic {token}"))
                .map_err(|e| format!("ctl.authentication: {e}"))?;
            value.set_sensitive(true);
            let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
            builder = builder.default_headers(headers);
        }
        builder.build().map_err(|e| format!("cannot create the HTTP client: {e}"))
    }
}

/// The HTTP client for members' REST APIs (see `ClientSettings::new`).
pub fn http_client(config: &LocalConfig, insecure: bool) -> Result<reqwest::Client, String> {
    ClientSettings::new(config, insecure).client()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LocalConfig {
        let env = std::collections::BTreeMap::from([("PATRONI_SCOPE".to_string(), "test".to_string())]);
        palisade_config::load_for_ctl(None, &env).unwrap().config
    }

    #[test]
    fn client_settings_follow_patroni_request() {
        let auth = |u: &str| Some(BasicAuth { username: u.into(), password: "p".into() });
        let mut c = config();
        let s = ClientSettings::new(&c, false);
        assert_eq!((s.check, s.ca.clone(), s.identity.clone(), s.auth.clone()), (ServerCheck::Full, None, None, None));
        assert_eq!(ClientSettings::new(&c, true).check, ServerCheck::Nothing);

        c.restapi.cafile = Some("/api-ca.crt".into());
        c.restapi.certfile = Some("/api.crt".into());
        c.restapi.authentication = auth("api");
        let s = ClientSettings::new(&c, true);
        assert_eq!(s.check, ServerCheck::Nothing);
        assert_eq!(s.ca, Some(("/api-ca.crt".into(), "restapi.cafile")));
        assert_eq!(s.identity.as_ref().map(|i| i.3), Some("restapi"));
        assert_eq!(s.auth, auth("api"));

        c.ctl.cacert = Some("/ctl-ca.crt".into());
        c.ctl.certfile = Some("/ctl.crt".into());
        c.ctl.keyfile_password = Some("pw".into());
        c.ctl.authentication = auth("ctl");
        let s = ClientSettings::new(&c, true);
        assert_eq!(s.check, ServerCheck::ChainOnly);
        assert_eq!(s.ca, Some(("/ctl-ca.crt".into(), "ctl.cacert")));
        assert_eq!(s.identity, Some(("/ctl.crt".into(), None, Some("pw".into()), "ctl")));
        assert_eq!(s.auth, auth("ctl"));
        assert_eq!(ClientSettings::new(&c, false).check, ServerCheck::Full);
        c.ctl.insecure = true;
        assert_eq!(ClientSettings::new(&c, false).check, ServerCheck::ChainOnly);
    }

    #[test]
    fn missing_files_are_named() {
        let mut c = config();
        c.ctl.cacert = Some("/nonexistent/ca.crt".into());
        let e = http_client(&c, false).unwrap_err();
        assert!(e.starts_with("ctl.cacert: cannot read /nonexistent/ca.crt"), "{e}");
        let e = load_key(Path::new("/nonexistent/k.pem"), None, "restapi.keyfile").unwrap_err();
        assert!(e.starts_with("restapi.keyfile: cannot read /nonexistent/k.pem"), "{e}");
    }
}
