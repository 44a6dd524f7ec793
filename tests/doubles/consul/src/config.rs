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
  -http-port N         HTTP port (default 8500)
  -client ADDR         address the HTTP API listens on (default 127.0.0.1)
  -bind ADDR           the node's cluster address, shown as the leader and node
                       address (default 127.0.0.1)
  -datacenter NAME     datacenter (default dc1)
  -node NAME           node name (default: the host name)
  -server              report the agent as a server (the double always acts as one)
  -bootstrap-expect 1  accepted for the single server only

Configuration file keys supported: datacenter, node_name, node_id, data_dir,
client_addr, bind_addr, ports.http, server, bootstrap, bootstrap_expect (1),
session_ttl_min, acl.enabled, acl.default_policy (allow|deny),
acl.tokens.initial_management (or the legacy acl.tokens.master).
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub enabled: bool,
    /// `allow` or `deny` (Consul's default: allow).
    pub default_deny: bool,
    pub management_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub datacenter: String,
    pub node_name: String,
    pub node_id: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub client_addr: String,
    pub bind_addr: String,
    pub http_port: u16,
    pub server: bool,
    pub session_ttl_min_ns: u64,
    pub acl: Acl,
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
            http_port: 8500,
            server: false,
            session_ttl_min_ns: 10_000_000_000,
            acl: Acl { enabled: false, default_deny: false, management_token: None },
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

fn unsupported(key: &str) -> String {
    format!("config key {key} is not supported by consul-test-double (a test double, not Consul); see --help")
}

impl Config {
    /// Apply one JSON configuration file's settings.
    pub fn apply_file(&mut self, text: &str, path: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("{path}: not JSON ({e}); consul-test-double reads JSON configuration files only"))?;
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
                "session_ttl_min" => {
                    self.session_ttl_min_ns =
                        crate::util::parse_duration(&string(val, key)?).map_err(|e| format!("config key {key}: {e}"))?
                }
                "ports" => {
                    for (p, pv) in object(val, key)? {
                        match p.as_str() {
                            "http" => {
                                self.http_port =
                                    pv.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0).ok_or_else(
                                        || format!("config key ports.http: expected a port number, got {pv}"),
                                    )?
                            }
                            other => return Err(unsupported(&format!("ports.{other}"))),
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

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    Agent(Config),
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
            "http-port" => {
                cfg.http_port =
                    v.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("-http-port: not a port: {v:?}"))?
            }
            "client" => cfg.client_addr = v,
            "bind" => cfg.bind_addr = v,
            "datacenter" => cfg.datacenter = v,
            "node" => cfg.node_name = v,
            "node-id" => cfg.node_id = Some(v),
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
    if cfg.acl.management_token.is_some() && !cfg.acl.enabled {
        eprintln!("[WARN] acl.tokens are set but acl.enabled is false: ACLs are not enforced (as in Consul)");
    }
    Ok(Command::Agent(cfg))
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
        assert_eq!((c.http_port, c.datacenter.as_str(), c.node_name.as_str()), (18500, "dc2", "n1"));
        assert_eq!(c.bind_addr, "127.0.0.2");
        assert!(c.acl.enabled && c.acl.default_deny);
        assert_eq!(c.acl.management_token.as_deref(), Some("root"));
        let Command::Agent(c) =
            parse_args(&args(&["agent", "--config-file", f.to_str().unwrap(), "--data-dir", "/d", "--http-port", "9"]))
                .unwrap()
        else {
            panic!("agent")
        };
        assert_eq!(c.http_port, 9, "flags win over the file");
        for (text, word) in [
            (r#"{"ui":true}"#, "ui"),
            (r#"{"ports":{"dns":8600}}"#, "ports.dns"),
            (r#"{"acl":{"tokens":{"agent":"x"}}}"#, "acl.tokens.agent"),
            (r#"{"ports":{"http":"x"}}"#, "ports.http"),
            ("datacenter = \"dc1\"", "JSON"),
        ] {
            let err = Config::default().apply_file(text, "f").unwrap_err();
            assert!(err.contains(word), "{text}: {err}");
        }
        assert!(parse_args(&args(&["agent", "-dev"])).is_err());
        assert!(parse_args(&args(&["agent"])).unwrap_err().contains("-data-dir"));
        assert!(matches!(parse_args(&args(&["--help"])), Ok(Command::Help)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
