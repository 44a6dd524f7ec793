//! TLS for the REST API (rustls with ring) and the HTTP client other
//! members and palisadectl use to reach it.
//!
//! The server side reads `restapi`'s `certfile`, `keyfile` (encrypted
//! PKCS#8 keys are decrypted with `keyfile_password`), `cafile`,
//! `verify_client` and `ciphers` (an OpenSSL cipher list mapped onto the
//! suites rustls has). The client side follows Patroni's `PatroniRequest`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use palisade_config::{BasicAuth, LocalConfig, RestApiConfig, VerifyClient};
use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, SupportedCipherSuite};

/// The TLS 1.2 suites rustls offers, by their OpenSSL names, in the order
/// OpenSSL ranks them (strongest first). Each with what OpenSSL's group
/// keywords say of it: authentication and bulk cipher.
const TLS12_SUITES: [(&str, SupportedCipherSuite); 6] = [
    ("ECDHE-ECDSA-AES256-GCM-SHA384", cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ("ECDHE-RSA-AES256-GCM-SHA384", cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ("ECDHE-RSA-CHACHA20-POLY1305", cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ("ECDHE-ECDSA-AES128-GCM-SHA256", cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ("ECDHE-RSA-AES128-GCM-SHA256", cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
];

/// The TLS 1.3 suites: OpenSSL's cipher list does not govern them.
const TLS13_NAMES: [&str; 5] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
];

/// Does OpenSSL's cipher-string word `word` (one part of an `A+B`) select
/// suite `name`? `None`: a word OpenSSL does not know.
fn word_selects(word: &str, name: &str) -> Option<bool> {
    let w = word.to_ascii_uppercase();
    Some(match w.as_str() {
        // Every suite rustls has: ephemeral ECDH, AEAD, TLS 1.2, "HIGH".
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "ECDH" | "KECDHE" | "KEECDH" | "KECDH" | "TLSV1.2" => true,
        "FIPS" => !name.contains("CHACHA20"),
        "AES" | "AESGCM" => name.contains("-AES"),
        "AES128" => name.contains("AES128"),
        "AES256" => name.contains("AES256"),
        "CHACHA20" => name.contains("CHACHA20"),
        "ECDSA" | "AECDSA" => name.contains("-ECDSA-"),
        "ARSA" => name.contains("-RSA-"),
        // Words that select none of them: RSA key exchange (`RSA` is
        // `kRSA`), finite-field DH, other ciphers and MACs, weak classes.
        "RSA"
        | "KRSA"
        | "DH"
        | "DHE"
        | "EDH"
        | "KDHE"
        | "KEDH"
        | "ADH"
        | "AECDH"
        | "PSK"
        | "KPSK"
        | "APSK"
        | "SRP"
        | "KSRP"
        | "DSS"
        | "ADSS"
        | "ANULL"
        | "ENULL"
        | "NULL"
        | "MEDIUM"
        | "LOW"
        | "EXP"
        | "EXPORT"
        | "SSLV3"
        | "TLSV1"
        | "TLSV1.0"
        | "COMPLEMENTOFDEFAULT"
        | "COMPLEMENTOFALL"
        | "SHA1"
        | "SHA"
        | "SHA256"
        | "SHA384"
        | "MD5"
        | "RC4"
        | "DES"
        | "3DES"
        | "IDEA"
        | "SEED"
        | "CAMELLIA"
        | "CAMELLIA128"
        | "CAMELLIA256"
        | "ARIA"
        | "ARIA128"
        | "ARIA256"
        | "AESCCM"
        | "AESCCM8"
        | "CHACHA20-POLY1305"
        | "GOST"
        | "SUITEB128"
        | "SUITEB128ONLY"
        | "SUITEB128C2"
        | "SUITEB192" => false,
        _ if w.contains('-') || w.contains('_') => w == name,
        _ => return None,
    })
}

/// The TLS 1.2 suites an OpenSSL cipher string (`restapi.ciphers`)
/// selects among those rustls has, in OpenSSL's order, with warnings for
/// what palisade cannot honour. OpenSSL's operators are followed: a word
/// adds the suites it selects, `-` removes them, `!` removes them for good,
/// `+` moves them to the end, `A+B` selects what both select,
/// `@STRENGTH` sorts by strength and `@SECLEVEL` is ignored.
pub fn select_ciphers(spec: &str) -> (Vec<SupportedCipherSuite>, Vec<String>) {
    let mut list: Vec<usize> = Vec::new();
    let mut killed: Vec<usize> = Vec::new();
    let mut warnings = Vec::new();
    for raw in spec.split([':', ',', ' ', ';']).map(str::trim).filter(|s| !s.is_empty()) {
        if raw.eq_ignore_ascii_case("@STRENGTH") {
            // TLS12_SUITES is in strength order already.
            list.sort_unstable();
            continue;
        }
        if raw.starts_with('@') {
            continue;
        }
        let (op, word) = match raw.as_bytes()[0] {
            b @ (b'!' | b'-' | b'+') => (b, &raw[1..]),
            _ => (b'=', raw),
        };
        if TLS13_NAMES.iter().any(|n| n.eq_ignore_ascii_case(word)) {
            warnings.push(format!(
                "'{raw}' is a TLS 1.3 suite: the cipher list does not govern TLS 1.3 (all its suites stay on)"
            ));
            continue;
        }
        let mut hits = Vec::new();
        let mut unknown = false;
        for (i, (name, _)) in TLS12_SUITES.iter().enumerate() {
            let mut all = true;
            for part in word.split('+') {
                match word_selects(part, name) {
                    Some(hit) => all &= hit,
                    None => {
                        unknown = true;
                        all = false;
                    }
                }
            }
            if all {
                hits.push(i);
            }
        }
        if unknown {
            warnings.push(format!("'{raw}' is not an OpenSSL cipher name or keyword palisade knows; ignored"));
            continue;
        }
        match op {
            b'!' => {
                list.retain(|i| !hits.contains(i));
                killed.extend(hits);
            }
            b'-' => list.retain(|i| !hits.contains(i)),
            b'+' => {
                let moved: Vec<usize> = list.iter().copied().filter(|i| hits.contains(i)).collect();
                list.retain(|i| !hits.contains(i));
                list.extend(moved);
            }
            _ => {
                if hits.is_empty() {
                    warnings.push(format!(
                        "'{raw}' selects no cipher suite palisade (rustls) offers: only ECDHE with AES-GCM or \
                         ChaCha20-Poly1305; ignored"
                    ));
                }
                for i in hits {
                    if !list.contains(&i) && !killed.contains(&i) {
                        list.push(i);
                    }
                }
            }
        }
    }
    if list.is_empty() {
        warnings.push("no TLS 1.2 cipher suite is left: only TLS 1.3 will be offered".to_string());
    }
    (list.into_iter().map(|i| TLS12_SUITES[i].1).collect(), warnings)
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

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
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        let Some(pw) = password else {
            return Err(format!("{key}: {} is encrypted: set {key}_password", path.display()));
        };
        let (_, doc) = pkcs8::SecretDocument::from_pem(&text).map_err(|e| format!("{key}: {}: {e}", path.display()))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| format!("{key}: {}: {e}", path.display()))?;
        let plain = info.decrypt(pw).map_err(|e| {
            format!(
                "{key}_password: cannot decrypt {} ({e}): a wrong password, or an encryption other than PBES2 \
                 with AES (openssl pkcs8 -topk8 -v2 aes-256-cbc)",
                path.display()
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec())));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "{key}: {} is encrypted in the legacy OpenSSL format, which palisade cannot read: convert it with \
             'openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key'",
            path.display()
        ));
    }
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{key}: {}: {e}", path.display()))?
        .ok_or_else(|| format!("{key}: {} holds no PEM private key", path.display()))
}

/// The REST API's TLS configuration (`None` without `certfile`) and the
/// warnings about `ciphers`, or what is wrong with the settings.
pub fn server_config(r: &RestApiConfig) -> Result<(Option<Arc<ServerConfig>>, Vec<String>), String> {
    let Some(certfile) = &r.certfile else { return Ok((None, Vec::new())) };
    let certs = load_certs(certfile, "restapi.certfile")?;
    let key = load_key(r.keyfile.as_deref().unwrap_or(certfile), r.keyfile_password.as_deref(), "restapi.keyfile")?;
    let mut provider = default_provider();
    let mut warnings = Vec::new();
    if let Some(spec) = r.ciphers.as_deref().filter(|s| !s.trim().is_empty()) {
        let (tls12, w) = select_ciphers(spec);
        warnings.extend(w.into_iter().map(|w| format!("restapi.ciphers: {w}")));
        let mut suites: Vec<SupportedCipherSuite> =
            provider.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS13).copied().collect();
        suites.extend(tls12);
        provider = CryptoProvider { cipher_suites: suites, ..provider };
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("restapi.ciphers: {e}"))?;
    let builder = match r.verify_client {
        VerifyClient::None => builder.with_no_client_auth(),
        mode => {
            let Some(cafile) = &r.cafile else {
                return Err("restapi.cafile: required when verify_client is optional or required".into());
            };
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(cafile, "restapi.cafile")? {
                roots.add(c).map_err(|e| format!("restapi.cafile: {}: {e}", cafile.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == VerifyClient::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("restapi.cafile: {e}"))?)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| format!("restapi.certfile/keyfile: {e}"))?;
    // Python's SSLContext prefers the server's order, and so does Patroni.
    config.ignore_client_order = true;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Some(Arc::new(config)), warnings))
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
    let key_pem = pkcs8::der::pem::encode_string(label, pkcs8::LineEnding::LF, der)
        .map_err(|e| format!("{section}.keyfile: {e}"))?;
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
            ServerCheck::Nothing => builder.danger_accept_invalid_certs(true),
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

    fn names(spec: &str) -> Vec<&'static str> {
        select_ciphers(spec)
            .0
            .iter()
            .filter_map(|s| TLS12_SUITES.iter().find(|(_, x)| x.suite() == s.suite()).map(|(n, _)| *n))
            .collect()
    }

    const E256: &str = "ECDHE-ECDSA-AES256-GCM-SHA384";
    const R256: &str = "ECDHE-RSA-AES256-GCM-SHA384";
    const ECH: &str = "ECDHE-ECDSA-CHACHA20-POLY1305";
    const RCH: &str = "ECDHE-RSA-CHACHA20-POLY1305";
    const E128: &str = "ECDHE-ECDSA-AES128-GCM-SHA256";
    const R128: &str = "ECDHE-RSA-AES128-GCM-SHA256";

    /// The expected lists are what `openssl ciphers -s -tls1_2 SPEC`
    /// (OpenSSL 3.0) prints, restricted to the suites rustls has.
    #[test]
    fn cipher_strings_select_what_openssl_selects() {
        let all = vec![E256, R256, ECH, RCH, E128, R128];
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("HIGH", all.clone()),
            ("DEFAULT", all.clone()),
            ("ECDHE", all.clone()),
            ("kEECDH", all.clone()),
            ("TLSv1.2", all.clone()),
            ("HIGH:!aNULL:!MD5", all.clone()),
            ("HIGH:!RSA", all.clone()),
            ("@STRENGTH:HIGH", all.clone()),
            ("aRSA", vec![R256, RCH, R128]),
            ("aECDSA", vec![E256, ECH, E128]),
            ("AES", vec![E256, R256, E128, R128]),
            ("FIPS", vec![E256, R256, E128, R128]),
            ("AES128", vec![E128, R128]),
            ("CHACHA20", vec![ECH, RCH]),
            ("ECDHE+AESGCM+aRSA", vec![R256, R128]),
            ("EECDH+AESGCM:EDH+AESGCM", vec![E256, R256, E128, R128]),
            ("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256", vec![R256, R128]),
            ("ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384", vec![R128, R256]),
            ("-ALL:ECDHE-RSA-AES128-GCM-SHA256", vec![R128]),
            ("HIGH:-CHACHA20:CHACHA20", vec![E256, R256, E128, R128, ECH, RCH]),
            ("HIGH:!CHACHA20:CHACHA20", vec![E256, R256, E128, R128]),
            ("HIGH:+AES256", vec![ECH, RCH, E128, R128, E256, R256]),
            ("+AES256:HIGH", all.clone()),
            ("AES128:HIGH:@STRENGTH", vec![E256, R256, ECH, RCH, E128, R128]),
            ("HIGH:@SECLEVEL=2", all.clone()),
            ("RSA", vec![]),
            ("SHA256", vec![]),
            ("MEDIUM", vec![]),
        ];
        for (spec, want) in cases {
            assert_eq!(names(spec), want, "{spec}");
        }
    }

    #[test]
    fn cipher_warnings_name_what_is_ignored() {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("HIGH:!aNULL", vec![]),
            ("EECDH+AESGCM:EDH+AESGCM", vec!["'EDH+AESGCM' selects no cipher suite"]),
            ("HIGH:DHE-RSA-AES256-SHA", vec!["'DHE-RSA-AES256-SHA' selects no cipher suite"]),
            ("HIGH:TLS_AES_256_GCM_SHA384", vec!["'TLS_AES_256_GCM_SHA384' is a TLS 1.3 suite"]),
            ("HIGH:BOGUS", vec!["'BOGUS' is not an OpenSSL cipher name or keyword"]),
            (
                "AES256-SHA",
                vec!["'AES256-SHA' selects no cipher suite", "no TLS 1.2 cipher suite is left: only TLS 1.3"],
            ),
        ];
        for (spec, want) in cases {
            let (_, warnings) = select_ciphers(spec);
            assert_eq!(warnings.len(), want.len(), "{spec}: {warnings:?}");
            for (w, start) in warnings.iter().zip(want) {
                assert!(w.starts_with(start), "{spec}: {w}");
            }
        }
    }

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
        let r = RestApiConfig { certfile: Some("/nonexistent/server.crt".into()), ..Default::default() };
        let e = server_config(&r).unwrap_err();
        assert!(e.starts_with("restapi.certfile: cannot read /nonexistent/server.crt"), "{e}");
        let mut c = config();
        c.ctl.cacert = Some("/nonexistent/ca.crt".into());
        let e = http_client(&c, false).unwrap_err();
        assert!(e.starts_with("ctl.cacert: cannot read /nonexistent/ca.crt"), "{e}");
    }
}
