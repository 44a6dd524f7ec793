//! PEM private keys protected by a password.
//!
//! Patroni's settings `restapi.keyfile_password`, `ctl.keyfile_password`,
//! `postgresql.*.sslpassword` and `zookeeper.key_password` all name the
//! password of an encrypted private key. This is the one place that opens
//! such a key: [`decrypt`] turns an encrypted PKCS#8 PEM
//! (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 with AES, what `openssl pkcs8
//! -topk8 -v2 aes-256-cbc` writes) into the plain PKCS#8 DER, and refuses
//! the legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED`) with advice.
//! Each caller words the error for its own setting with
//! [`KeyError::reason`]. Plugins reach it as `sdk::keys` (the plugin API's
//! `keys` feature).

use std::fmt;

/// The command that converts a key into the encryption [`decrypt`] reads.
pub const CONVERT: &str = "openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key";

/// Why an encrypted key could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The key is encrypted and no password was given.
    NeedsPassword,
    /// The PEM text is not a well-formed encrypted PKCS#8 document.
    Malformed(String),
    /// The password does not open the key, or its cipher is not one we
    /// read.
    Decrypt(String),
    /// The key is encrypted in OpenSSL's legacy (pre-PKCS#8) format.
    Legacy,
}

impl KeyError {
    /// The error in words, without the setting or the file it is about.
    pub fn reason(&self) -> String {
        match self {
            KeyError::NeedsPassword => "the key is encrypted and no password is set".into(),
            KeyError::Malformed(e) => format!("not a readable encrypted key: {e}"),
            KeyError::Decrypt(e) => format!(
                "cannot decrypt the key ({e}): a wrong password, or an encryption other than PBES2 with AES \
                 (openssl pkcs8 -topk8 -v2 aes-256-cbc)"
            ),
            KeyError::Legacy => {
                format!("the key is encrypted in the legacy OpenSSL format, which palisade cannot read: convert it with '{CONVERT}'")
            }
        }
    }

    /// Whether the password (rather than the key file) is what to fix.
    pub fn is_about_password(&self) -> bool {
        matches!(self, KeyError::NeedsPassword | KeyError::Decrypt(_))
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for KeyError {}

/// Whether `pem` holds an encrypted private key (PKCS#8 or legacy).
pub fn is_encrypted(pem: &str) -> bool {
    pem.contains("BEGIN ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED")
}

/// The plain PKCS#8 DER of the encrypted key in `pem`, opened with
/// `password`; `Ok(None)` when `pem` holds no encrypted key (the caller
/// reads it as a plain key).
pub fn decrypt(pem: &str, password: Option<&str>) -> Result<Option<Vec<u8>>, KeyError> {
    if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        let password = password.ok_or(KeyError::NeedsPassword)?;
        let (_, doc) = pkcs8::SecretDocument::from_pem(pem).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let info =
            pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let plain = info.decrypt(password).map_err(|e| KeyError::Decrypt(e.to_string()))?;
        return Ok(Some(plain.as_bytes().to_vec()));
    }
    if pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(KeyError::Legacy);
    }
    Ok(None)
}

/// `der` (a key of the kind `label` names, e.g. `PRIVATE KEY` for PKCS#8)
/// as PEM text, for clients that take keys only as PEM.
pub fn to_pem(label: &'static str, der: &[u8]) -> String {
    // Encoding bytes as PEM fails only on a label that is not valid.
    pkcs8::der::pem::encode_string(label, pkcs8::LineEnding::LF, der).unwrap_or_default()
}

/// `pem` with an encrypted PKCS#8 key replaced by its plain PEM, or as it
/// is when it holds no encrypted key.
pub fn decrypt_to_pem(pem: &str, password: Option<&str>) -> Result<String, KeyError> {
    Ok(match decrypt(pem, password)? {
        Some(der) => to_pem("PRIVATE KEY", &der),
        None => pem.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An EC key encrypted by `openssl pkcs8 -topk8 -v2 aes-256-cbc
    /// -passout pass:secret`, and the same key unencrypted.
    const ENCRYPTED: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgCdI7pH8JhkQICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEDNn6M+b092yNh2ZFJAjyOAEgZDq
8CSniXjP65FEfOQOoFLDKl2pvzx6ASu8GKjeGMWzZtUePkPhhyY79u/TD+1PwJ9/
egRsupxj7LJXegLutArDvOV8cl11TF4zhZ/0gYOI3XpoKqgYUKVqIPONsQgom5FH
6lADlrUw7xbzE5U1JzdpHbhsPK8QxSBN4yzpbhg3x6GevS3SLuJ8mmjGNa69js8=
-----END ENCRYPTED PRIVATE KEY-----
";
    const PLAIN: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsh8j6Tn40T+A8l/E
X950w4Eu3UJP1Y/7jG+N9gZQ/zyhRANCAAQkZmGHBPMTFtMQdWgDS7RIpc6viY3V
JLThl2SuBSOe/KKIuvmgxEX1YkxGrJLnF51umK3TylC+Rhsy9H7dOD+u
-----END PRIVATE KEY-----
";

    #[test]
    fn keys_and_passwords() {
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let garbled = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nnot base64\n-----END ENCRYPTED PRIVATE KEY-----\n";
        // (what, the PEM, the password, the plain key or a part of the error)
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Result<Option<&'a str>, &'a str>);
        let cases: [Case; 7] = [
            ("a plain key is left to the caller", PLAIN, None, Ok(None)),
            ("a plain key ignores a password", PLAIN, Some("x"), Ok(None)),
            ("the right password", ENCRYPTED, Some("secret"), Ok(Some(PLAIN))),
            ("a wrong password", ENCRYPTED, Some("wrong"), Err("cannot decrypt the key")),
            ("no password", ENCRYPTED, None, Err("no password is set")),
            ("garbled", garbled, Some("secret"), Err("not a readable encrypted key")),
            ("legacy", legacy, Some("secret"), Err("legacy OpenSSL format")),
        ];
        for (what, pem, password, want) in cases {
            let got = decrypt(pem, password).map(|der| der.map(|d| to_pem("PRIVATE KEY", &d)));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), want, "{what}"),
                (Err(e), Err(want)) => assert!(e.reason().contains(want), "{what}: {e}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(decrypt_to_pem(ENCRYPTED, Some("secret")).unwrap(), PLAIN);
        assert_eq!(decrypt_to_pem(PLAIN, None).unwrap(), PLAIN);
        assert!(is_encrypted(ENCRYPTED) && is_encrypted(legacy) && !is_encrypted(PLAIN));
        assert!(KeyError::Decrypt(String::new()).is_about_password() && !KeyError::Legacy.is_about_password());
    }
}
