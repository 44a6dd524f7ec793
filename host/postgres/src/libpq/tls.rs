//! The TLS side of a libpq connection, with rustls: which files libpq
//! would read (explicit settings, else `~/.postgresql/...` when they
//! exist), how the server's certificate is checked, the client
//! certificate and its key.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore};

use palisade_keys::{self as keys, KeyError};
use palisade_tls::Verifier;

use super::settings::{ConnSettings, RootCert, SettingError, SslMode};

/// libpq's files under `~/.postgresql`.
const USER_CERT_FILE: &str = ".postgresql/postgresql.crt";
const USER_KEY_FILE: &str = ".postgresql/postgresql.key";
const ROOT_CERT_FILE: &str = ".postgresql/root.crt";
const ROOT_CRL_FILE: &str = ".postgresql/root.crl";

/// The home directory libpq looks in: `$HOME`, else the user's entry.
pub fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    nix::unistd::User::from_uid(nix::unistd::geteuid()).ok().flatten().map(|u| u.dir)
}

/// A TLS configuration for one connection, and notes about settings that
/// had no effect (a CRL that cannot be read: libpq then checks none).
pub struct TlsSetup {
    pub config: Arc<ClientConfig>,
    pub notes: Vec<String>,
}

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Not at all (no root certificate, `sslmode` below verify-ca).
    Nothing,
    /// The chain up to a root (`verify-ca`, or any mode with a root
    /// certificate present, as libpq does).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

impl ConnSettings {
    /// The rustls configuration libpq's rules give for these settings.
    /// `prefix` names keys in errors; `home` is where `~/.postgresql` is.
    pub fn tls_setup(&self, prefix: &str, home: Option<&Path>) -> Result<TlsSetup, SettingError> {
        let err = |key: &str, message: String| SettingError { key: format!("{prefix}{key}"), message };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut notes = Vec::new();

        let default_file = |f: &str| home.map(|h| h.join(f));
        let roots = match &self.sslrootcert {
            RootCert::System => {
                let found = rustls_native_certs::load_native_certs();
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(err(
                        "sslrootcert",
                        "\"system\": no trusted root certificate found on this system".into(),
                    ));
                }
                Some(store)
            }
            RootCert::File(p) => load_roots(p, prefix)?,
            RootCert::Default => match default_file(ROOT_CERT_FILE) {
                Some(p) => load_roots(&p, prefix)?,
                None => None,
            },
        };
        let check = match (&roots, self.sslmode) {
            (Some(_), SslMode::VerifyFull) => Check::Full,
            (Some(_), _) => Check::Chain,
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
                let which = match &self.sslrootcert {
                    RootCert::File(p) => format!("root certificate file \"{}\" does not exist", p.display()),
                    _ => match default_file(ROOT_CERT_FILE) {
                        Some(p) => format!("root certificate file \"{}\" does not exist", p.display()),
                        None => "could not get home directory to locate root certificate file".into(),
                    },
                };
                return Err(err(
                    "sslrootcert",
                    format!(
                        "{which}: either provide the file, use the system's trusted roots with sslrootcert=system, \
                         or change sslmode to disable server certificate verification"
                    ),
                ));
            }
            (None, _) => Check::Nothing,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match roots {
            None => Arc::new(Verifier::nothing(Arc::clone(&provider))),
            Some(store) => {
                let crls = self.crls(home, prefix, &mut notes);
                let mut builder = WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider));
                if !crls.is_empty() {
                    builder = builder.with_crls(crls);
                }
                // A CRL webpki cannot read is refused rather than skipped:
                // libpq (OpenSSL) would check it.
                let inner = builder.build().map_err(|e| {
                    let key = match (&self.sslcrl, &self.sslcrldir) {
                        (None, Some(_)) => "sslcrldir",
                        _ => "sslcrl",
                    };
                    err(key, format!("cannot use the certificate revocation list: {e}"))
                })?;
                Arc::new(Verifier::new(inner, check == Check::Full, Arc::clone(&provider)))
            }
        };

        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err("sslmode", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match self.client_identity(home, prefix)? {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| err("sslkey", format!("certificate does not match private key file: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        // libpq 17 always offers ALPN "postgresql"; direct negotiation needs it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(TlsSetup { config: Arc::new(config), notes })
    }

    /// The CRLs libpq would use: `sslcrl` and `sslcrldir`, else
    /// `~/.postgresql/root.crl`. One that cannot be read is skipped, as
    /// libpq skips it, with a note when it was named explicitly.
    fn crls(
        &self,
        home: Option<&Path>,
        prefix: &str,
        notes: &mut Vec<String>,
    ) -> Vec<CertificateRevocationListDer<'static>> {
        let mut out = Vec::new();
        let mut from_file = |path: &Path, key: Option<&str>, out: &mut Vec<_>| match std::fs::read(path) {
            Ok(pem) => {
                let found: Vec<_> = rustls_pemfile::crls(&mut pem.as_slice()).filter_map(Result::ok).collect();
                if found.is_empty() {
                    if let Some(key) = key {
                        notes.push(format!("{prefix}{key}: {} holds no PEM CRL; no CRL is checked", path.display()));
                    }
                }
                out.extend(found);
            }
            Err(e) => {
                if let Some(key) = key {
                    notes.push(format!("{prefix}{key}: cannot read {}: {e}; no CRL is checked", path.display()));
                }
            }
        };
        if let Some(f) = &self.sslcrl {
            from_file(f, Some("sslcrl"), &mut out);
        }
        if let Some(d) = &self.sslcrldir {
            match std::fs::read_dir(d) {
                Ok(entries) => {
                    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
                    files.sort();
                    for f in files.iter().filter(|f| f.is_file()) {
                        from_file(f, None, &mut out);
                    }
                }
                Err(_) => from_file(d, Some("sslcrldir"), &mut out),
            }
        }
        if self.sslcrl.is_none() && self.sslcrldir.is_none() {
            if let Some(f) = home.map(|h| h.join(ROOT_CRL_FILE)) {
                from_file(&f, None, &mut out);
            }
        }
        out
    }

    /// The client certificate chain and key, when libpq would send one:
    /// `sslcert` (else `~/.postgresql/postgresql.crt`) when the file
    /// exists, with `sslkey` (else `~/.postgresql/postgresql.key`).
    #[allow(clippy::type_complexity)]
    fn client_identity(
        &self,
        home: Option<&Path>,
        prefix: &str,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, SettingError> {
        let err = |key: &str, message: String| SettingError { key: format!("{prefix}{key}"), message };
        let Some(cert_path) = self.sslcert.clone().or_else(|| home.map(|h| h.join(USER_CERT_FILE))) else {
            return Ok(None);
        };
        match std::fs::metadata(&cert_path) {
            Ok(_) => {}
            // libpq goes on without a client certificate: the server may
            // or may not want one.
            Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(e) => {
                return Err(err("sslcert", format!("could not open certificate file \"{}\": {e}", cert_path.display())))
            }
        }
        let certs = read_certs(&cert_path).map_err(|m| err("sslcert", m))?;
        let key_path = match self.sslkey.clone().or_else(|| home.map(|h| h.join(USER_KEY_FILE))) {
            Some(p) => p,
            None => return Err(err("sslkey", "certificate present, but no home directory to find the key in".into())),
        };
        let meta = std::fs::metadata(&key_path).map_err(|e| {
            err(
                "sslkey",
                if e.kind() == ErrorKind::NotFound {
                    format!("certificate present, but not private key file \"{}\"", key_path.display())
                } else {
                    format!("could not open private key file \"{}\": {e}", key_path.display())
                },
            )
        })?;
        if !meta.is_file() {
            return Err(err("sslkey", format!("private key file \"{}\" is not a regular file", key_path.display())));
        }
        let euid = nix::unistd::geteuid().as_raw();
        let mode = meta.mode();
        if (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0) {
            return Err(err(
                "sslkey",
                format!(
                    "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or \
                     less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
                    key_path.display()
                ),
            ));
        }
        let key = load_key(&key_path, self.sslpassword.as_deref()).map_err(|(k, m)| err(k, m))?;
        Ok(Some((certs, key)))
    }
}

/// Root certificates from `path`; `None` when the file does not exist.
fn load_roots(path: &Path, prefix: &str) -> Result<Option<RootCertStore>, SettingError> {
    if std::fs::metadata(path).is_err() {
        return Ok(None);
    }
    let err = |message: String| SettingError { key: format!("{prefix}sslrootcert"), message };
    let certs = read_certs(path).map_err(err)?;
    let mut store = RootCertStore::empty();
    for c in certs {
        store.add(c).map_err(|e| err(format!("could not read root certificate file \"{}\": {e}", path.display())))?;
    }
    Ok(Some(store))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("could not read certificate file \"{}\": {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| format!("could not read certificate file \"{}\": {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("certificate file \"{}\" holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// A PEM private key (PKCS#1, PKCS#8 or SEC1), an encrypted PKCS#8 one
/// decrypted with `password`. The error names the key it is about.
pub fn load_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>, (&'static str, String)> {
    let pem = std::fs::read(path)
        .map_err(|e| ("sslkey", format!("could not read private key file \"{}\": {e}", path.display())))?;
    let text = String::from_utf8_lossy(&pem);
    match keys::decrypt(&text, password) {
        Ok(Some(plain)) => return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain))),
        Ok(None) => {}
        Err(KeyError::NeedsPassword) => {
            return Err((
                "sslpassword",
                format!("private key file \"{}\" is encrypted and sslpassword is not set", path.display()),
            ))
        }
        Err(e) => {
            let setting = if e.is_about_password() { "sslpassword" } else { "sslkey" };
            return Err((setting, format!("private key file \"{}\": {e}", path.display())));
        }
    }
    let key: Option<PrivateKeyDer<'static>> = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| ("sslkey", format!("could not load private key file \"{}\": {e}", path.display())))?;
    key.ok_or_else(|| ("sslkey", format!("private key file \"{}\" holds no PEM private key", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    /// PEM framing around bytes that are not a certificate: enough for the
    /// paths that do not parse the DER.
    const FAKE_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    fn setup(pairs: &[(&str, String)], home: Option<&Path>) -> Result<Check, String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let s = ConnSettings::parse(&map, "a.").map_err(|e| e.to_string())?;
        s.tls_setup("a.", home).map(|_| Check::Nothing).map_err(|e| e.to_string())
    }

    #[test]
    fn files_are_found_and_refused_as_libpq_does() {
        let dir = std::env::temp_dir().join(format!("palisade-libpq-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home/.postgresql")).unwrap();
        let file = |name: &str, text: &str, mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p.to_string_lossy().into_owned()
        };
        let cert = file("client.crt", FAKE_CERT, 0o644);
        let garbage = file("garbage.crt", "not pem\n", 0o644);
        let legacy = file(
            "legacy.key",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            0o600,
        );
        let loose = file("loose.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0o640);
        let home = dir.join("home");
        let s = |v: &str| v.to_string();
        let missing = dir.join("missing.crt").to_string_lossy().into_owned();
        type Case = (Vec<(&'static str, String)>, bool, Result<(), String>);
        let cases: Vec<Case> = vec![
            (vec![("sslmode", s("require"))], false, Ok(())),
            (vec![("sslmode", s("prefer"))], true, Ok(())),
            (
                vec![("sslmode", s("verify-ca"))],
                false,
                Err(s("a.sslrootcert: could not get home directory to locate root certificate file")),
            ),
            (
                vec![("sslmode", s("verify-ca"))],
                true,
                Err(format!(
                    "a.sslrootcert: root certificate file \"{}/.postgresql/root.crt\" does not exist",
                    home.display()
                )),
            ),
            (
                vec![("sslmode", s("verify-full")), ("sslrootcert", missing.clone())],
                false,
                Err(format!("a.sslrootcert: root certificate file \"{missing}\" does not exist")),
            ),
            (vec![("sslrootcert", garbage.clone())], false, Err(s("a.sslrootcert: certificate file"))),
            // A client certificate file that is missing is no certificate.
            (vec![("sslcert", missing.clone())], false, Ok(())),
            (
                vec![("sslcert", cert.clone()), ("sslkey", missing.clone())],
                false,
                Err(format!("a.sslkey: certificate present, but not private key file \"{missing}\"")),
            ),
            (vec![("sslcert", cert.clone()), ("sslkey", legacy)], false, Err(s("a.sslkey: private key file"))),
            (vec![("sslcert", cert.clone()), ("sslkey", loose)], false, Err(s("a.sslkey: private key file"))),
        ];
        for (pairs, with_home, want) in cases {
            let got = setup(&pairs, with_home.then_some(home.as_path())).map(|_| ());
            match (&want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(w), Err(g)) if g.starts_with(w.as_str()) => {}
                _ => panic!("{pairs:?} home={with_home}: wanted {want:?}, got {got:?}"),
            }
        }
        let got = setup(&[("sslcert", cert), ("sslkey", dir.join("legacy.key").to_string_lossy().into_owned())], None);
        assert!(got.is_err_and(|e| e.contains("legacy OpenSSL format")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
