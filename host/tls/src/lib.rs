//! The server-certificate check the host and the plugins share.
//!
//! libpq's `sslmode=verify-ca` and the ZooKeeper section's `verify: false`
//! ask for the same thing: the server's chain is checked against the CAs,
//! its name is not. rustls offers the whole check (webpki's) or none, so
//! [`Verifier`] wraps webpki's and lets a name mismatch through when asked.
//! It also stands for libpq's `sslmode=require` (no check of the
//! certificate at all). The handshake's signatures are always checked.
//!
//! The host uses it for PostgreSQL connections (`palisade-postgres`); TLS
//! plugins reach it as `sdk::tls` (the plugin API's `tls` feature).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// What [`Verifier`] checks of the server's certificate.
#[derive(Debug)]
enum Check {
    /// Nothing (libpq's `sslmode=require`).
    Nothing,
    /// The chain, through webpki; the name too when `name` is set.
    Chain { webpki: Arc<WebPkiServerVerifier>, name: bool },
}

/// A server-certificate verifier: webpki's, the name check optional.
#[derive(Debug)]
pub struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    /// Check the chain with `webpki` (its roots, its revocation lists),
    /// and the server's name only if `check_name`.
    pub fn new(webpki: Arc<WebPkiServerVerifier>, check_name: bool, provider: Arc<CryptoProvider>) -> Self {
        Verifier { check: Check::Chain { webpki, name: check_name }, provider }
    }

    /// Accept any certificate (the handshake's signatures are still
    /// checked): an encrypted connection to a server not authenticated.
    pub fn nothing(provider: Arc<CryptoProvider>) -> Self {
        Verifier { check: Check::Nothing, provider }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Check::Chain { webpki, name } = &self.check else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain (and revocation) before the name: a name
        // error means the chain is good.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_test_support::certs;
    use rustls::pki_types::pem::PemObject;
    use rustls::RootCertStore;

    #[test]
    fn the_name_is_checked_only_when_asked_the_chain_always() {
        let dir = std::env::temp_dir().join(format!("palisade-tls-verifier-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the certificates");
        certs::ca(&dir, "ca");
        certs::ca(&dir, "other-ca");
        certs::leaf_for(&dir, "ca", "server", "DNS:db.example.test");
        let pem = |f: &str| std::fs::read(dir.join(f)).expect("read a certificate file");
        let der = |f: &str| CertificateDer::from_pem_slice(&pem(f)).expect("a PEM certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = |ca: &str| {
            let mut roots = RootCertStore::empty();
            roots.add(der(&format!("{ca}.crt"))).expect("a root");
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider)).build().expect("webpki")
        };
        let server = der("server.crt");
        let now = UnixTime::now();

        // (roots, check the name, name asked for) -> the error, if refused
        let table = [
            (Some("ca"), true, "db.example.test", None),
            (Some("ca"), true, "127.0.0.1", Some("NotValidForName")),
            (Some("ca"), false, "127.0.0.1", None),
            (Some("ca"), false, "db.example.test", None),
            (Some("other-ca"), false, "db.example.test", Some("UnknownIssuer")),
            (Some("other-ca"), true, "127.0.0.1", Some("UnknownIssuer")),
            (None, true, "127.0.0.1", None),
            (None, false, "db.example.test", None),
        ];
        for (roots, check_name, name, expected) in table {
            let verifier = match roots {
                Some(ca) => Verifier::new(webpki(ca), check_name, Arc::clone(&provider)),
                None => Verifier::nothing(Arc::clone(&provider)),
            };
            let name = ServerName::try_from(name.to_string()).expect("a server name");
            let got =
                verifier.verify_server_cert(&server, &[], &name, &[], now).map(|_| ()).map_err(|e| format!("{e:?}"));
            match (expected, &got) {
                (None, Ok(())) => {}
                (Some(kind), Err(e)) if e.contains(kind) => {}
                _ => panic!("{roots:?} check_name={check_name} {name:?}: expected {expected:?}, got {got:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
