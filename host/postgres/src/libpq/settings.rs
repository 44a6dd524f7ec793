//! libpq's connection settings as values: parsing with libpq's spellings
//! and the checks libpq makes before it connects, and which attempts a
//! connection makes (plain, TLS, one then the other).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// `gssencmode`. palisade's own connections have no GSSAPI, as a libpq
/// built without it: `prefer` means no GSSAPI encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GssEncMode {
    Disable,
    Prefer,
}

/// `channel_binding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelBinding {
    Disable,
    Prefer,
    Require,
}

/// `sslnegotiation` (libpq 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslNegotiation {
    Postgres,
    Direct,
}

/// `target_session_attrs`, for one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    /// With one host: whatever the server is (libpq falls back to any
    /// server when no standby is found).
    PreferStandby,
}

/// Where the server's certificate is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// `sslrootcert` not set: `~/.postgresql/root.crt` when it exists.
    Default,
    /// `sslrootcert=system`: the system's trusted roots.
    System,
    File(PathBuf),
}

/// One connection's libpq settings, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnSettings {
    pub sslmode: SslMode,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub sslpassword: Option<String>,
    pub sslrootcert: RootCert,
    pub sslcrl: Option<PathBuf>,
    pub sslcrldir: Option<PathBuf>,
    pub sslnegotiation: SslNegotiation,
    pub gssencmode: GssEncMode,
    pub channel_binding: ChannelBinding,
    pub target_session_attrs: TargetSessionAttrs,
}

impl Default for ConnSettings {
    /// libpq's defaults (`sslmode=prefer`...).
    fn default() -> Self {
        Self {
            sslmode: SslMode::Prefer,
            sslcert: None,
            sslkey: None,
            sslpassword: None,
            sslrootcert: RootCert::Default,
            sslcrl: None,
            sslcrldir: None,
            sslnegotiation: SslNegotiation::Postgres,
            gssencmode: GssEncMode::Prefer,
            channel_binding: ChannelBinding::Prefer,
            target_session_attrs: TargetSessionAttrs::Any,
        }
    }
}

/// A setting that cannot be used: `key` is the full key path
/// (`postgresql.authentication.superuser.sslmode`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingError {
    pub key: String,
    pub message: String,
}

/// How one connection attempt goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Without TLS.
    Plain,
    /// TLS, falling back to no TLS when the server refuses it (`prefer`).
    TlsPreferred,
    /// TLS or nothing.
    TlsRequired,
}

fn choice<T: Copy>(
    params: &BTreeMap<String, String>,
    prefix: &str,
    key: &str,
    table: &[(&str, T)],
    default: T,
) -> Result<T, SettingError> {
    let Some(value) = params.get(key).filter(|v| !v.is_empty()) else { return Ok(default) };
    table.iter().find(|(name, _)| *name == value).map(|(_, v)| *v).ok_or_else(|| SettingError {
        key: format!("{prefix}{key}"),
        message: format!(
            "invalid value \"{value}\": expected {}",
            table.iter().map(|(n, _)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
        ),
    })
}

impl ConnSettings {
    /// Read the libpq keywords of `params` (`sslmode`, `sslcert`...;
    /// others are not this module's business). `prefix` is put before a
    /// key in errors (`postgresql.authentication.superuser.`). Empty values
    /// are unset. Refuses what libpq refuses before connecting, and what
    /// palisade cannot do: GSSAPI encryption and OpenSSL engine keys.
    pub fn parse(params: &BTreeMap<String, String>, prefix: &str) -> Result<Self, SettingError> {
        use SslMode::*;
        let err = |key: &str, message: String| SettingError { key: format!("{prefix}{key}"), message };
        let text = |key: &str| params.get(key).filter(|v| !v.is_empty()).cloned();
        let sslmode_set = text("sslmode").is_some();
        let mut sslmode = choice(
            params,
            prefix,
            "sslmode",
            &[
                ("disable", Disable),
                ("allow", Allow),
                ("prefer", Prefer),
                ("require", Require),
                ("verify-ca", VerifyCa),
                ("verify-full", VerifyFull),
            ],
            Prefer,
        )?;
        let gss = params.get("gssencmode").map(String::as_str).filter(|v| !v.is_empty());
        let gssencmode =
            match gss {
                None | Some("prefer") => GssEncMode::Prefer,
                Some("disable") => GssEncMode::Disable,
                Some("require") => return Err(err(
                    "gssencmode",
                    "\"require\" needs GSSAPI encryption, which palisade's own connections do not have (as a libpq \
                     built without GSSAPI, which refuses it too): use \"prefer\" or \"disable\""
                        .into(),
                )),
                Some(other) => {
                    return Err(err(
                        "gssencmode",
                        format!("invalid value \"{other}\": expected \"disable\", \"prefer\", \"require\""),
                    ))
                }
            };
        let channel_binding = choice(
            params,
            prefix,
            "channel_binding",
            &[
                ("disable", ChannelBinding::Disable),
                ("prefer", ChannelBinding::Prefer),
                ("require", ChannelBinding::Require),
            ],
            ChannelBinding::Prefer,
        )?;
        let sslnegotiation = choice(
            params,
            prefix,
            "sslnegotiation",
            &[("postgres", SslNegotiation::Postgres), ("direct", SslNegotiation::Direct)],
            SslNegotiation::Postgres,
        )?;
        let target_session_attrs = choice(
            params,
            prefix,
            "target_session_attrs",
            &[
                ("any", TargetSessionAttrs::Any),
                ("read-write", TargetSessionAttrs::ReadWrite),
                ("read-only", TargetSessionAttrs::ReadOnly),
                ("primary", TargetSessionAttrs::Primary),
                ("standby", TargetSessionAttrs::Standby),
                ("prefer-standby", TargetSessionAttrs::PreferStandby),
            ],
            TargetSessionAttrs::Any,
        )?;
        let sslrootcert = match text("sslrootcert") {
            None => RootCert::Default,
            Some(s) if s == "system" => RootCert::System,
            Some(s) => RootCert::File(PathBuf::from(s)),
        };
        if sslrootcert == RootCert::System {
            // libpq 16: the system's roots are only trusted with a host name check.
            if !sslmode_set {
                sslmode = VerifyFull;
            } else if sslmode != VerifyFull {
                return Err(err(
                    "sslmode",
                    format!(
                        "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
                        params.get("sslmode").map(String::as_str).unwrap_or_default()
                    ),
                ));
            }
        }
        if sslnegotiation == SslNegotiation::Direct && !matches!(sslmode, Require | VerifyCa | VerifyFull) {
            return Err(err(
                "sslmode",
                format!(
                    "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", \
                     or \"verify-full\")",
                    params.get("sslmode").map(String::as_str).unwrap_or("prefer")
                ),
            ));
        }
        let sslkey = text("sslkey");
        if let Some(k) = &sslkey {
            // libpq reads `engine:key` as a key held by an OpenSSL engine.
            if k.contains(':') {
                return Err(err(
                    "sslkey",
                    format!("\"{k}\" names a key in an OpenSSL engine, which palisade cannot use: give a PEM file"),
                ));
            }
        }
        Ok(Self {
            sslmode,
            sslcert: text("sslcert").map(PathBuf::from),
            sslkey: sslkey.map(PathBuf::from),
            sslpassword: params.get("sslpassword").cloned(),
            sslrootcert,
            sslcrl: text("sslcrl").map(PathBuf::from),
            sslcrldir: text("sslcrldir").map(PathBuf::from),
            sslnegotiation,
            gssencmode,
            channel_binding,
            target_session_attrs,
        })
    }

    /// The attempts libpq makes, in order: over a Unix socket never TLS
    /// (whatever `sslmode` says); `allow` tries without TLS first and with
    /// it when the server turns the connection down; `prefer` the other
    /// way round.
    pub fn attempts(&self, unix_socket: bool) -> &'static [Attempt] {
        if unix_socket {
            return &[Attempt::Plain];
        }
        match self.sslmode {
            SslMode::Disable => &[Attempt::Plain],
            SslMode::Allow => &[Attempt::Plain, Attempt::TlsRequired],
            SslMode::Prefer => &[Attempt::TlsPreferred, Attempt::Plain],
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[Attempt::TlsRequired],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ConnSettings, String> {
        let map = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ConnSettings::parse(&map, "a.").map_err(|e| e.to_string())
    }

    #[test]
    fn values_as_libpq_spells_them() {
        use SslMode::*;
        let cases: &[(&[(&str, &str)], SslMode)] = &[
            (&[], Prefer),
            (&[("sslmode", "")], Prefer),
            (&[("sslmode", "disable")], Disable),
            (&[("sslmode", "allow")], Allow),
            (&[("sslmode", "require")], Require),
            (&[("sslmode", "verify-ca")], VerifyCa),
            (&[("sslmode", "verify-full")], VerifyFull),
            (&[("sslrootcert", "system")], VerifyFull),
            (&[("sslrootcert", "system"), ("sslmode", "verify-full")], VerifyFull),
            (&[("sslnegotiation", "direct"), ("sslmode", "require")], Require),
        ];
        for (pairs, mode) in cases {
            assert_eq!(parse(pairs).map(|s| s.sslmode), Ok(*mode), "{pairs:?}");
        }
        let s = parse(&[
            ("sslcert", "/c/client.crt"),
            ("sslkey", "/c/client.key"),
            ("sslpassword", ""),
            ("sslrootcert", "/c/ca.crt"),
            ("sslcrl", "/c/ca.crl"),
            ("sslcrldir", "/c/crls"),
            ("channel_binding", "require"),
            ("gssencmode", "disable"),
            ("target_session_attrs", "prefer-standby"),
        ])
        .unwrap();
        assert_eq!(s.sslcert.as_deref(), Some(std::path::Path::new("/c/client.crt")));
        assert_eq!(s.sslkey.as_deref(), Some(std::path::Path::new("/c/client.key")));
        assert_eq!(s.sslpassword.as_deref(), Some(""));
        assert_eq!(s.sslrootcert, RootCert::File("/c/ca.crt".into()));
        assert_eq!(s.sslcrl.as_deref(), Some(std::path::Path::new("/c/ca.crl")));
        assert_eq!(s.sslcrldir.as_deref(), Some(std::path::Path::new("/c/crls")));
        assert_eq!(s.channel_binding, ChannelBinding::Require);
        assert_eq!(s.gssencmode, GssEncMode::Disable);
        assert_eq!(s.target_session_attrs, TargetSessionAttrs::PreferStandby);
        assert_eq!(parse(&[]), Ok(ConnSettings::default()));
    }

    #[test]
    fn refused_settings_name_their_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("sslmode", "required")], "a.sslmode: invalid value \"required\": expected \"disable\", \"allow\""),
            (&[("sslmode", "VERIFY-CA")], "a.sslmode: invalid value \"VERIFY-CA\""),
            (&[("gssencmode", "require")], "a.gssencmode: \"require\" needs GSSAPI encryption"),
            (&[("gssencmode", "yes")], "a.gssencmode: invalid value \"yes\""),
            (&[("channel_binding", "on")], "a.channel_binding: invalid value \"on\""),
            (&[("sslnegotiation", "tls")], "a.sslnegotiation: invalid value \"tls\""),
            (&[("target_session_attrs", "master")], "a.target_session_attrs: invalid value \"master\""),
            (
                &[("sslrootcert", "system"), ("sslmode", "require")],
                "a.sslmode: weak sslmode \"require\" may not be used with sslrootcert=system",
            ),
            (&[("sslnegotiation", "direct")], "a.sslmode: weak sslmode \"prefer\" may not be used with sslnegotiation"),
            (
                &[("sslnegotiation", "direct"), ("sslmode", "disable")],
                "a.sslmode: weak sslmode \"disable\" may not be used with sslnegotiation",
            ),
            (&[("sslkey", "pkcs11:token")], "a.sslkey: \"pkcs11:token\" names a key in an OpenSSL engine"),
        ];
        for (pairs, want) in cases {
            let got = parse(pairs).unwrap_err();
            assert!(got.starts_with(want), "{pairs:?}: {got}");
        }
    }

    #[test]
    fn attempts_follow_libpq() {
        use Attempt::*;
        let cases: &[(&str, bool, &[Attempt])] = &[
            ("disable", false, &[Plain]),
            ("allow", false, &[Plain, TlsRequired]),
            ("prefer", false, &[TlsPreferred, Plain]),
            ("require", false, &[TlsRequired]),
            ("verify-ca", false, &[TlsRequired]),
            ("verify-full", false, &[TlsRequired]),
            // No TLS over a Unix socket, whatever sslmode says.
            ("verify-full", true, &[Plain]),
            ("require", true, &[Plain]),
            ("prefer", true, &[Plain]),
        ];
        for (mode, unix, want) in cases {
            let s = parse(&[("sslmode", mode)]).unwrap();
            assert_eq!(s.attempts(*unix), *want, "{mode} unix={unix}");
        }
    }
}
