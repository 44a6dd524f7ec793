//! The agent's command line and configuration file, in the forms a real
//! `consul agent` takes for the settings this double supports. Any other
//! setting is refused with an error naming it.

use std::path::PathBuf;

use serde_json::Value;

pub const HELP: &str = "\
consul-test-double: a TEST DOUBLE of the Consul agent's HTTP API, for tests.
It is NOT Consul: one node, no Raft, no gossip, no DNS, no UI. It serves the
subset of the HTTP API that Patroni and Palisade's dcs-consul plugin use (KV
with cas/acquire/release and blocking queries, sessions, agent services and
checks, catalog, health, status), following Consul's documented behaviour.

Usage:
  consul-test-double agent -config-file FILE -data-dir DIR [options]

Options (single or double dash):
  -config-file FILE    JSON configuration (may be given more than once; later wins)
  -data-dir DIR        where the state is kept (write-through; survives kill -9)
  -http-port N         HTTP port (default 8500; -1: off)
  -https-port N        HTTPS port (off by default; needs tls.defaults cert_file/key_file)
  -client ADDR         address the HTTP API listens on (default 127.0.0.1)
  -bind ADDR           the node's cluster address, shown as the leader and node
                       address (default 127.0.0.1)
  -datacenter NAME     datacenter (default dc1)
  -node NAME           node name (default: the host name)
  -server              report the agent as a server (the double always acts as one)
  -bootstrap-expect 1  accepted for the single server only
  -log-level LEVEL     trace, debug, info (default), warn or error; at debug and
                       trace every HTTP request is logged when it finishes, as
                       Consul logs it (\"[DEBUG] agent.http: Request finished:
                       method=GET url=/v1/kv/...?consistent=\")

Configuration files are JSON, or a simple HCL subset when named *.hcl
(key = value, blocks, comments; no lists). Keys supported: datacenter, node_name, node_id, data_dir,
client_addr, bind_addr, ports.http, server, bootstrap, bootstrap_expect (1),
session_ttl_min, log_level, ports.https, tls.defaults.{ca_file,cert_file,key_file,
verify_incoming} (or those four at the top level), acl.enabled, acl.default_policy (allow|deny),
acl.tokens.initial_management (or the legacy acl.tokens.master).
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub enabled: bool,
    /// `allow` or `deny` (Consul's default: allow).
    pub default_deny: bool,
    pub management_token: Option<String>,
}

/// HTTPS: Consul's `tls.defaults` (or the legacy top-level keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Require client certificates signed by `ca_file`.
    pub verify_incoming: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub datacenter: String,
    pub node_name: String,
    pub node_id: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub client_addr: String,
    pub bind_addr: String,
    /// `None`: HTTP off (`ports.http = -1`).
    pub http_port: Option<u16>,
    /// HTTPS port (`ports.https`), off by default as in Consul.
    pub https_port: Option<u16>,
    pub tls: Tls,
    pub server: bool,
    pub session_ttl_min_ns: u64,
    pub acl: Acl,
    /// `log_level` debug or trace: log every HTTP request as it finishes.
    pub log_requests: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            datacenter: "dc1".into(),
            node_name: hostname(),
            node_id: None,
            data_dir: None,
            client_addr: "127.0.0.1".into(),
            bind_addr: "127.0.0.1".into(),
            http_port: Some(8500),
            https_port: None,
            tls: Tls::default(),
            server: false,
            session_ttl_min_ns: 10_000_000_000,
            acl: Acl { enabled: false, default_deny: false, management_token: None },
            log_requests: false,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn string(v: &Value, key: &str) -> Result<String, String> {
    v.as_str().map(str::to_string).ok_or_else(|| format!("config key {key}: expected a string, got {v}"))
}

fn boolean(v: &Value, key: &str) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| format!("config key {key}: expected true or false, got {v}"))
}

fn object<'a>(v: &'a Value, key: &str) -> Result<&'a serde_json::Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("config key {key}: expected an object, got {v}"))
}

/// Consul's log levels; whether the level logs HTTP requests (debug and
/// trace do).
fn log_requests(level: &str, key: &str) -> Result<bool, String> {
    match level.to_ascii_lowercase().as_str() {
        "trace" | "debug" => Ok(true),
        "info" | "warn" | "err" | "error" => Ok(false),
        other => Err(format!("{key}: unknown log level {other:?} (trace, debug, info, warn, error)")),
    }
}

fn unsupported(key: &str) -> String {
    format!("config key {key} is not supported by consul-test-double (a test double, not Consul); see --help")
}

impl Config {
    /// Apply one JSON configuration file's settings.
    pub fn apply_file(&mut self, text: &str, path: &str) -> Result<(), String> {
        let v: Value = if path.ends_with(".hcl") {
            parse_hcl(text).map_err(|e| format!("{path}: {e}"))?
        } else {
            serde_json::from_str(text).map_err(|e| {
                format!("{path}: not JSON ({e}); name an HCL file *.hcl (the simple subset: see --help)")
            })?
        };
        for (key, val) in object(&v, path)? {
            match key.as_str() {
                "datacenter" => self.datacenter = string(val, key)?,
                "node_name" => self.node_name = string(val, key)?,
                "node_id" => self.node_id = Some(string(val, key)?),
                "data_dir" => self.data_dir = Some(PathBuf::from(string(val, key)?)),
                "client_addr" => self.client_addr = string(val, key)?,
                "bind_addr" => self.bind_addr = string(val, key)?,
                "server" => self.server = boolean(val, key)?,
                "bootstrap" => {
                    boolean(val, key)?;
                }
                "bootstrap_expect" => {
                    if val.as_u64() != Some(1) {
                        return Err(format!(
                            "config key bootstrap_expect: only 1 (a single server) is supported, got {val}"
                        ));
                    }
                    self.server = true;
                }
                "log_level" => self.log_requests = log_requests(&string(val, key)?, "config key log_level")?,
                "session_ttl_min" => {
                    self.session_ttl_min_ns =
                        crate::util::parse_duration(&string(val, key)?).map_err(|e| format!("config key {key}: {e}"))?
                }
                "ports" => {
                    for (p, pv) in object(val, key)? {
                        match p.as_str() {
                            "http" => self.http_port = port(pv, "ports.http")?,
                            "https" => self.https_port = port(pv, "ports.https")?,
                            other => return Err(unsupported(&format!("ports.{other}"))),
                        }
                    }
                }
                "ca_file" | "cert_file" | "key_file" | "verify_incoming" => self.tls_key(key, val, key)?,
                "tls" => {
                    for (t, tv) in object(val, key)? {
                        if t != "defaults" {
                            return Err(unsupported(&format!("tls.{t}")));
                        }
                        for (k, kv) in object(tv, "tls.defaults")? {
                            self.tls_key(k, kv, &format!("tls.defaults.{k}"))?;
                        }
                    }
                }
                "acl" => {
                    for (a, av) in object(val, key)? {
                        match a.as_str() {
                            "enabled" => self.acl.enabled = boolean(av, "acl.enabled")?,
                            "default_policy" => {
                                self.acl.default_deny = match string(av, "acl.default_policy")?.as_str() {
                                    "allow" => false,
                                    "deny" => true,
                                    other => {
                                        return Err(format!(
                                            "config key acl.default_policy: expected allow or deny, got {other:?}"
                                        ))
                                    }
                                }
                            }
                            "tokens" => {
                                for (t, tv) in object(av, "acl.tokens")? {
                                    match t.as_str() {
                                        "initial_management" | "master" => {
                                            self.acl.management_token = Some(string(tv, &format!("acl.tokens.{t}"))?)
                                        }
                                        other => return Err(unsupported(&format!("acl.tokens.{other}"))),
                                    }
                                }
                            }
                            other => return Err(unsupported(&format!("acl.{other}"))),
                        }
                    }
                }
                other => return Err(unsupported(other)),
            }
        }
        Ok(())
    }
}

/// The simple subset of HCL that agent configuration files use:
/// `key = value` (strings in double quotes, numbers, `true`/`false`),
/// blocks `name { ... }` (also `name = { ... }`), `#` and `//` comments.
/// Lists, heredocs and repeated keys are refused.
pub fn parse_hcl(text: &str) -> Result<Value, String> {
    Hcl { s: text.as_bytes(), i: 0, line: 1 }.body(false)
}

struct Hcl<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
}

impl Hcl<'_> {
    fn err(&self, what: &str) -> String {
        format!("HCL line {}: {what} (consul-test-double reads JSON and a simple HCL subset)", self.line)
    }

    fn skip(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\n' => {
                    self.line += 1;
                    self.i += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.i += 1,
                b'#' => self.skip_line(),
                b'/' if self.s.get(self.i + 1) == Some(&b'/') => self.skip_line(),
                _ => return,
            }
        }
    }

    fn skip_line(&mut self) {
        while self.i < self.s.len() && self.s[self.i] != b'\n' {
            self.i += 1;
        }
    }

    fn word(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || b"_-.".contains(&self.s[self.i])) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' if self.i + 1 < self.s.len() => {
                    out.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                b'\n' => return Err(self.err("unterminated string")),
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        Err(self.err("unterminated string"))
    }

    fn body(&mut self, nested: bool) -> Result<Value, String> {
        let mut m = serde_json::Map::new();
        loop {
            self.skip();
            if self.i >= self.s.len() {
                return if nested { Err(self.err("missing }")) } else { Ok(Value::Object(m)) };
            }
            if self.s[self.i] == b'}' {
                if !nested {
                    return Err(self.err("unexpected }"));
                }
                self.i += 1;
                return Ok(Value::Object(m));
            }
            let key = if self.s[self.i] == b'"' { self.string()? } else { self.word() };
            if key.is_empty() {
                return Err(self.err(&format!("unexpected {:?}", char::from(self.s[self.i]))));
            }
            self.skip();
            if self.s.get(self.i) == Some(&b'=') {
                self.i += 1;
                self.skip();
            }
            let value = match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    self.body(true)?
                }
                Some(b'"') => Value::String(self.string()?),
                Some(b'[' | b'<') => return Err(self.err(&format!("{key}: lists and heredocs are not supported"))),
                Some(_) => {
                    let w = self.word();
                    match w.as_str() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => match w.parse::<i64>() {
                            Ok(n) => Value::from(n),
                            Err(_) => return Err(self.err(&format!("{key}: cannot read the value {w:?}"))),
                        },
                    }
                }
                None => return Err(self.err(&format!("{key}: missing value"))),
            };
            if m.insert(key.clone(), value).is_some() {
                return Err(self.err(&format!("{key} is given twice")));
            }
        }
    }
}

fn port(v: &Value, key: &str) -> Result<Option<u16>, String> {
    if v.as_i64() == Some(-1) {
        return Ok(None);
    }
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| format!("config key {key}: expected a port number (or -1 for off), got {v}"))
}

impl Config {
    fn tls_key(&mut self, k: &str, v: &Value, name: &str) -> Result<(), String> {
        match k {
            "ca_file" => self.tls.ca_file = Some(PathBuf::from(string(v, name)?)),
            "cert_file" => self.tls.cert_file = Some(PathBuf::from(string(v, name)?)),
            "key_file" => self.tls.key_file = Some(PathBuf::from(string(v, name)?)),
            "verify_incoming" => self.tls.verify_incoming = boolean(v, name)?,
            other => return Err(unsupported(&format!("tls.defaults.{other}"))),
        }
        Ok(())
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    Agent(Box<Config>),
}

/// Parse `agent -config-file F -data-dir D ...` (flags with one or two dashes,
/// `-flag value` or `-flag=value`).
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter().peekable();
    match it.next().map(String::as_str) {
        None | Some("-h" | "-help" | "--help" | "help") => return Ok(Command::Help),
        Some("agent") => {}
        Some(other) => return Err(format!("unknown command {other:?}: only `agent` is served (see --help)")),
    }
    let mut files = Vec::new();
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    while let Some(arg) = it.next() {
        let name = arg.trim_start_matches('-');
        if name.len() == arg.len() {
            return Err(format!("unexpected argument {arg:?} (see --help)"));
        }
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (name.to_string(), None),
        };
        let takes_value = !matches!(name.as_str(), "server" | "h" | "help" | "dev");
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => Some(it.next().cloned().ok_or_else(|| format!("flag -{name} needs a value"))?),
            }
        } else {
            inline
        };
        if name == "config-file" {
            files.push(value.unwrap_or_default());
        } else {
            flags.push((name, value));
        }
    }
    let mut cfg = Config::default();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("-config-file {f}: {e}"))?;
        cfg.apply_file(&text, f)?;
    }
    // Command-line flags win over the files, as with Consul.
    for (name, value) in flags {
        let v = value.clone().unwrap_or_default();
        match name.as_str() {
            "h" | "help" => return Ok(Command::Help),
            "data-dir" => cfg.data_dir = Some(PathBuf::from(v)),
            "http-port" => cfg.http_port = port(&Value::from(v.parse::<i64>().unwrap_or(0)), "-http-port")?,
            "https-port" => cfg.https_port = port(&Value::from(v.parse::<i64>().unwrap_or(0)), "-https-port")?,
            "client" => cfg.client_addr = v,
            "bind" => cfg.bind_addr = v,
            "datacenter" => cfg.datacenter = v,
            "node" => cfg.node_name = v,
            "node-id" => cfg.node_id = Some(v),
            "log-level" => cfg.log_requests = log_requests(&v, "-log-level")?,
            "server" => cfg.server = value.map(|x| x != "false").unwrap_or(true),
            "bootstrap-expect" => {
                if v != "1" {
                    return Err(format!("-bootstrap-expect: only 1 (a single server) is supported, got {v:?}"));
                }
                cfg.server = true;
            }
            other => {
                return Err(format!(
                    "flag -{other} is not supported by consul-test-double (a test double, not Consul); see --help"
                ))
            }
        }
    }
    if cfg.data_dir.is_none() {
        return Err("-data-dir is required (the double keeps its state there, as an agent keeps Raft data)".into());
    }
    if cfg.https_port.is_some() && (cfg.tls.cert_file.is_none() || cfg.tls.key_file.is_none()) {
        return Err("ports.https needs tls.defaults.cert_file and tls.defaults.key_file".into());
    }
    if cfg.tls.verify_incoming && cfg.tls.ca_file.is_none() {
        return Err("tls.defaults.verify_incoming needs tls.defaults.ca_file".into());
    }
    if cfg.http_port.is_none() && cfg.https_port.is_none() {
        return Err("neither ports.http nor ports.https is on".into());
    }
    if cfg.acl.management_token.is_some() && !cfg.acl.enabled {
        eprintln!("[WARN] acl.tokens are set but acl.enabled is false: ACLs are not enforced (as in Consul)");
    }
    Ok(Command::Agent(Box::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn file_and_flags() {
        let dir = std::env::temp_dir().join(format!("ctd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.json");
        std::fs::write(
            &f,
            r#"{"ports":{"http":18500},"datacenter":"dc2","node_name":"n1",
               "acl":{"enabled":true,"default_policy":"deny","tokens":{"initial_management":"root"}}}"#,
        )
        .unwrap();
        let Command::Agent(c) = parse_args(&args(&[
            "agent",
            "-config-file",
            f.to_str().unwrap(),
            "-data-dir",
            "/tmp/x",
            "-bind=127.0.0.2",
        ]))
        .unwrap() else {
            panic!("agent")
        };
        assert_eq!((c.http_port, c.datacenter.as_str(), c.node_name.as_str()), (Some(18500), "dc2", "n1"));
        assert_eq!(c.bind_addr, "127.0.0.2");
        assert!(c.acl.enabled && c.acl.default_deny);
        assert_eq!(c.acl.management_token.as_deref(), Some("root"));
        assert!(!c.log_requests, "info by default");
        let Command::Agent(c) =
            parse_args(&args(&["agent", "--config-file", f.to_str().unwrap(), "--data-dir", "/d", "--http-port", "9"]))
                .unwrap()
        else {
            panic!("agent")
        };
        assert_eq!(c.http_port, Some(9), "flags win over the file");
        for (text, word) in [
            (r#"{"ui":true}"#, "ui"),
            (r#"{"ports":{"dns":8600}}"#, "ports.dns"),
            (r#"{"acl":{"tokens":{"agent":"x"}}}"#, "acl.tokens.agent"),
            (r#"{"ports":{"http":"x"}}"#, "ports.http"),
            ("datacenter = \"dc1\"", "not JSON"),
        ] {
            let err = Config::default().apply_file(text, "f").unwrap_err();
            assert!(err.contains(word), "{text}: {err}");
        }
        let hcl = dir.join("c.hcl");
        std::fs::write(
            &hcl,
            "# a comment\ndatacenter = \"dc3\"\nnode_name = \"n2\" // trailing\nports {\n  http = 18501\n}\n\
             acl = {\n  enabled = true\n  tokens { initial_management = \"t\" }\n}\n",
        )
        .unwrap();
        let Command::Agent(c) =
            parse_args(&args(&["agent", "-config-file", hcl.to_str().unwrap(), "-data-dir", "/d"])).unwrap()
        else {
            panic!("agent")
        };
        assert_eq!((c.http_port, c.datacenter.as_str(), c.node_name.as_str()), (Some(18501), "dc3", "n2"));
        assert!(c.acl.enabled && !c.acl.default_deny);
        assert_eq!(c.acl.management_token.as_deref(), Some("t"));
        for bad in ["ports {\n http = 1\n", "retry_join = [\"x\"]", "a = 1\na = 2", "x = \"open"] {
            assert!(parse_hcl(bad).is_err(), "{bad}");
        }
        assert!(parse_args(&args(&["agent", "-dev"])).is_err());
        assert!(parse_args(&args(&["agent"])).unwrap_err().contains("-data-dir"));
        assert!(matches!(parse_args(&args(&["--help"])), Ok(Command::Help)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn log_level() {
        let dir = std::env::temp_dir().join(format!("ctd-loglevel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.json");
        std::fs::write(&f, r#"{"log_level":"DEBUG"}"#).unwrap();
        let parse = |extra: &[&str]| {
            let mut a = vec!["agent", "-config-file", f.to_str().unwrap(), "-data-dir", "/d"];
            a.extend_from_slice(extra);
            parse_args(&args(&a))
        };
        assert!(matches!(parse(&[]), Ok(Command::Agent(c)) if c.log_requests));
        assert!(matches!(parse(&["-log-level", "warn"]), Ok(Command::Agent(c)) if !c.log_requests));
        assert!(matches!(parse(&["-log-level=trace"]), Ok(Command::Agent(c)) if c.log_requests));
        assert!(parse(&["-log-level", "loud"]).unwrap_err().contains("unknown log level"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
