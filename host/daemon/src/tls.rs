//! The server side of TLS for the REST API (rustls with ring): reads
//! `restapi`'s `certfile`, `keyfile` (encrypted PKCS#8 keys are decrypted
//! with `keyfile_password`), `cafile`, `verify_client` and `ciphers` (an
//! OpenSSL cipher list mapped onto the suites rustls has). The client side
//! (what members and palisadectl reach the API with) is
//! `palisade_plugin_host::http`.

use std::sync::Arc;

use palisade_config::{RestApiConfig, VerifyClient};
use palisade_plugin_host::http::{load_certs, load_key};
use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::crypto::CryptoProvider;
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

    #[test]
    fn missing_files_are_named() {
        let r = RestApiConfig { certfile: Some("/nonexistent/server.crt".into()), ..Default::default() };
        let e = server_config(&r).unwrap_err();
        assert!(e.starts_with("restapi.certfile: cannot read /nonexistent/server.crt"), "{e}");
    }
}
