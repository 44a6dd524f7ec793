//! TLS for the REST API (rustls with ring) and the HTTP client other
//! members and palisadectl use to reach it.

use std::path::Path;
use std::sync::Arc;

use palisade_config::{LocalConfig, RestApiConfig, VerifyClient};
use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, SupportedCipherSuite};

/// OpenSSL's names of the TLS 1.2 suites rustls offers. (TLS 1.3 suites
/// are always on: OpenSSL's cipher list does not govern them either.)
const TLS12_SUITES: [(&str, SupportedCipherSuite); 6] = [
    ("ECDHE-ECDSA-AES128-GCM-SHA256", cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ("ECDHE-RSA-AES128-GCM-SHA256", cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ("ECDHE-ECDSA-AES256-GCM-SHA384", cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ("ECDHE-RSA-AES256-GCM-SHA384", cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ("ECDHE-RSA-CHACHA20-POLY1305", cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
];

/// The suites an OpenSSL cipher string (`restapi.ciphers`) selects among
/// those rustls has, plus warnings for what it cannot honour. Entries
/// naming suites are taken in order; group keywords (`HIGH`, `ECDHE`,
/// `AESGCM`, `CHACHA20`, `DEFAULT`, `ALL`) select the matching suites;
/// exclusions (`!x`, `-x`) remove them.
pub fn select_ciphers(spec: &str) -> (Vec<SupportedCipherSuite>, Vec<String>) {
    let mut chosen: Vec<&str> = Vec::new();
    let mut excluded: Vec<&str> = Vec::new();
    let mut warnings = Vec::new();
    let matches = |word: &str, name: &str| match word.to_ascii_uppercase().as_str() {
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "KECDHE" | "TLSV1.2" => true,
        "AESGCM" | "AES" => name.contains("AES"),
        "AES128" => name.contains("AES128"),
        "AES256" => name.contains("AES256"),
        "CHACHA20" => name.contains("CHACHA20"),
        "ECDSA" | "AECDSA" => name.contains("ECDSA"),
        "RSA" | "ARSA" => name.contains("-RSA-"),
        "SHA256" => name.ends_with("SHA256") || name.contains("CHACHA20"),
        "SHA384" => name.ends_with("SHA384"),
        w => w == name,
    };
    for raw in spec.split([':', ',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
        let (negate, word) = match raw.strip_prefix(['!', '-']) {
            Some(w) => (true, w),
            None => (false, raw.trim_start_matches('+')),
        };
        // `A+B`: every part must match.
        let parts: Vec<&str> = word.split('+').collect();
        let hits: Vec<&str> =
            TLS12_SUITES.iter().map(|(n, _)| *n).filter(|n| parts.iter().all(|p| matches(p, n))).collect();
        if hits.is_empty() {
            if !negate && !word.starts_with('@') {
                warnings.push(format!("'{raw}' names no cipher suite palisade supports; ignored"));
            }
            continue;
        }
        for h in hits {
            if negate {
                excluded.push(h);
            } else if !chosen.contains(&h) {
                chosen.push(h);
            }
        }
    }
    chosen.retain(|c| !excluded.contains(c));
    let suites: Vec<SupportedCipherSuite> =
        chosen.iter().filter_map(|c| TLS12_SUITES.iter().find(|(n, _)| n == c).map(|(_, s)| *s)).collect();
    (suites, warnings)
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
/// with `password`.
pub fn load_key(path: &Path, password: Option<&str>, key: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path, key)?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        let Some(pw) = password else {
            return Err(format!("{key}: {} is encrypted: set keyfile_password", path.display()));
        };
        let (_, doc) = pkcs8::SecretDocument::from_pem(&text).map_err(|e| format!("{key}: {}: {e}", path.display()))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| format!("{key}: {}: {e}", path.display()))?;
        let plain = info.decrypt(pw).map_err(|e| format!("{key}_password: cannot decrypt {}: {e}", path.display()))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec())));
    }
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{key}: {}: {e}", path.display()))?
        .ok_or_else(|| format!("{key}: {} holds no PEM private key", path.display()))
}

/// The TLS configuration of the REST API, or `None` without `certfile`.
pub fn server_config(r: &RestApiConfig) -> Result<Option<Arc<ServerConfig>>, String> {
    let Some(certfile) = &r.certfile else { return Ok(None) };
    let certs = load_certs(certfile, "restapi.certfile")?;
    let key = load_key(r.keyfile.as_deref().unwrap_or(certfile), r.keyfile_password.as_deref(), "restapi.keyfile")?;
    let mut provider = default_provider();
    if let Some(spec) = r.ciphers.as_deref().filter(|s| !s.trim().is_empty()) {
        let (tls12, warnings) = select_ciphers(spec);
        for w in warnings {
            tracing::warn!("restapi.ciphers: {w}");
        }
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
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
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
    let key_pem = match key_der {
        PrivateKeyDer::Pkcs8(k) => {
            pkcs8::der::pem::encode_string("PRIVATE KEY", pkcs8::LineEnding::LF, k.secret_pkcs8_der())
                .map_err(|e| format!("{section}.keyfile: {e}"))?
        }
        _ => String::from_utf8_lossy(&read(key_path, &format!("{section}.keyfile"))?).into_owned(),
    };
    let mut pem = cert_pem.into_bytes();
    pem.push(b'\n');
    pem.extend_from_slice(key_pem.as_bytes());
    reqwest::Identity::from_pem(&pem).map_err(|e| format!("{section}.certfile/keyfile: {e}"))
}

/// The HTTP client for other members' REST APIs, as Patroni's
/// `PatroniRequest`: the `ctl` section's CA, client certificate and
/// `insecure`, falling back to the `restapi` section's files.
pub fn http_client(config: &LocalConfig, insecure: bool) -> Result<reqwest::Client, String> {
    let (ctl, api) = (&config.ctl, &config.restapi);
    let mut builder = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(5));
    if insecure || ctl.insecure {
        builder = builder.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
    }
    if let Some(ca) = ctl.cacert.as_ref().or(api.cafile.as_ref()) {
        let section = if ctl.cacert.is_some() { "ctl.cacert" } else { "restapi.cafile" };
        let pem = read(ca, section)?;
        for c in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{section}: {}: {e}", ca.display()))? {
            builder = builder.add_root_certificate(c);
        }
    }
    let identity = if let Some(cert) = &ctl.certfile {
        Some(client_identity(cert, ctl.keyfile.as_deref(), ctl.keyfile_password.as_deref(), "ctl")?)
    } else if let Some(cert) = &api.certfile {
        Some(client_identity(cert, api.keyfile.as_deref(), api.keyfile_password.as_deref(), "restapi")?)
    } else {
        None
    };
    if let Some(id) = identity {
        builder = builder.identity(id);
    }
    builder.build().map_err(|e| format!("cannot create the HTTP client: {e}"))
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

    #[test]
    fn openssl_cipher_strings_select_rustls_suites() {
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"),
            ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]
        );
        assert_eq!(names("HIGH:!CHACHA20:!ECDSA"), ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]);
        assert_eq!(names("ECDHE+AESGCM+RSA"), ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]);
        assert_eq!(names("ECDHE-RSA-CHACHA20-POLY1305"), ["ECDHE-RSA-CHACHA20-POLY1305"]);
        let (suites, warnings) = select_ciphers("DHE-RSA-AES256-SHA:!aNULL");
        assert!(suites.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("DHE-RSA-AES256-SHA"));
    }
}
