//! `use_ssl`: the client's TLS options from the section's files.

use palisade_plugin_api::sdk::keys::{self, KeyError};
use zookeeper_client as zk;

use crate::settings::Tls;

/// The system's CA bundle, used when no `cacert` is given (Patroni then
/// trusts the system's CAs too).
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn read(section: &str, key: &str, path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{section}.{key}: cannot read {path}: {e}"))
}

pub(crate) fn options(section: &str, tls: &Tls) -> Result<zk::TlsOptions, String> {
    let (key, path) = match &tls.cacert {
        Some(p) => ("cacert", p.as_str()),
        None => ("cacert", SYSTEM_CAS),
    };
    let ca = read(section, key, path)?;
    let mut options = zk::TlsOptions::new().with_pem_ca(&ca).map_err(|e| format!("{section}.{key}: {path}: {e}"))?;
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        let cert_pem = read(section, "cert", cert)?;
        let key_pem = read(section, "key", key)?;
        // zookeeper-client reads plain keys only: open an encrypted one here.
        let key_pem = keys::decrypt_to_pem(&key_pem, tls.key_password.as_deref()).map_err(|e| match e {
            KeyError::NeedsPassword => format!("{section}.key: {key} is encrypted: set {section}.key_password"),
            e if e.is_about_password() => format!("{section}.key_password: {key}: {e}"),
            e => format!("{section}.key: {key}: {e}"),
        })?;
        options = options
            .with_pem_identity(&cert_pem, &key_pem)
            .map_err(|e| format!("{section}.cert/key: {cert}, {key}: {e}"))?;
    }
    if !tls.verify {
        // SAFETY (of the setting, not memory): the operator asked for it
        // with `verify: false`; the chain is still checked against the CAs.
        options = unsafe { options.with_no_hostname_verification() };
    }
    Ok(options)
}
