//! What every command needs: the configuration (file, `PATRONI_*`
//! variables, `--dcs-url`), the DCS through the same plugins the daemon
//! loads, and an HTTP client for the members' REST APIs with the `ctl`
//! section's authentication and TLS.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use palisade_config::{DcsSection, LocalConfig};
use palisade_model::{Cluster, Member};
use palisade_plugin_host::dcs::DcsClient;
use palisade_plugin_host::plugins;

use crate::members::Clusters;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

/// A short error for the user (printed as `Error: ...`, exit code 1).
#[derive(Debug)]
pub struct CtlError(pub String);

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, CtlError>;

/// What click prints, without `Error: `, when input ends at a prompt.
pub const ABORTED: &str = "Aborted!";

pub fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(CtlError(msg.into()))
}

/// `--dcs-url`: `[scheme://]host[:port][/namespace]`, as patronictl reads it
/// (without a scheme, the port picks the store, and 2379 or no port means
/// etcd's v2 API, as in patronictl).
pub fn parse_dcs_url(url: &str) -> Result<DcsSection> {
    // patronictl's DCS_DEFAULTS, in its order: the first with the port wins.
    const DEFAULTS: [(&str, u16); 5] =
        [("zookeeper", 2181), ("exhibitor", 8181), ("consul", 8500), ("etcd", 2379), ("etcd3", 2379)];
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_string(), r),
        None => (String::new(), url.trim_start_matches("//")),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            let port = p.parse::<u16>().map_err(|_| CtlError(format!("--dcs-url: bad port in '{url}'")))?;
            (h.to_string(), Some(port))
        }
        _ => (hostport.to_string(), None),
    };
    let host = if host.is_empty() { "localhost".to_string() } else { host };
    let scheme = if scheme.is_empty() {
        DEFAULTS.iter().find(|(_, p)| Some(*p) == port).map_or("etcd", |(s, _)| *s).to_string()
    } else if DEFAULTS.iter().any(|(s, _)| *s == scheme) {
        scheme
    } else {
        return err(format!("Unknown dcs scheme: {scheme}"));
    };
    let default_port = DEFAULTS.iter().find(|(s, _)| *s == scheme).map_or(2379, |(_, p)| *p);
    let hostport = format!("{host}:{}", port.unwrap_or(default_port));
    let mut section = Map::new();
    match scheme.as_str() {
        "zookeeper" => {
            section.insert("hosts".into(), Value::Array(vec![Value::String(hostport)]));
        }
        "exhibitor" => {
            section.insert("hosts".into(), Value::Array(vec![Value::String(host)]));
            section.insert("port".into(), Value::from(port.unwrap_or(default_port)));
        }
        "consul" | "etcd" | "etcd3" => {
            section.insert("host".into(), Value::String(hostport));
        }
        _ => {}
    }
    let mut out = DcsSection { kind: scheme, section };
    if !path.trim().is_empty() && path.trim() != "/" {
        // The namespace goes to the top level of the configuration.
        out.section.insert("__namespace".into(), Value::String(path.trim().to_string()));
    }
    Ok(out)
}

/// The default configuration file, as click's `get_app_dir('patroni')`.
pub fn default_config_path(env: &BTreeMap<String, String>) -> PathBuf {
    let base = env
        .get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env.get("HOME").cloned().unwrap_or_else(|| "/root".into())).join(".config"));
    base.join("patroni").join("patronictl.yaml")
}

pub struct Ctx {
    base: LocalConfig,
    env: BTreeMap<String, String>,
    http: reqwest::Client,
    auth: Option<(String, String)>,
    dcs: Mutex<HashMap<(String, Option<i32>), DcsClient>>,
    /// The Citus group the command works on (`--group`, or the
    /// configuration's for the commands that default to it).
    group: Option<i32>,
}

impl Ctx {
    /// Read the configuration. `cluster` (a cluster name given on the
    /// command line) stands in for `scope` when the file has none.
    pub fn new(
        config_file: Option<&Path>,
        explicit: bool,
        dcs_url: Option<&str>,
        insecure: bool,
        cluster: Option<&str>,
    ) -> Result<Self> {
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        let path = match config_file {
            Some(p) if p.is_file() => Some(p.to_path_buf()),
            Some(p) if explicit => {
                return err(format!(
                    "Provided config file {} not existing or no read rights. Check the -c/--config-file parameter",
                    p.display()
                ))
            }
            _ => None,
        };
        let dcs_override = dcs_url.map(parse_dcs_url).transpose()?;
        let has_scope = |env: &BTreeMap<String, String>| env.contains_key("PATRONI_SCOPE");
        if let Some(c) = cluster {
            if path.is_none() && !has_scope(&env) && !env.contains_key("PATRONI_CONFIGURATION") {
                env.insert("PATRONI_SCOPE".into(), c.to_string());
            }
        }
        let loaded = match palisade_config::load_for_ctl(path.as_deref(), &env) {
            Ok(l) => l.config,
            Err(problems) => {
                let needs_scope = problems.iter().any(|p| p.path == "scope" || p.message.contains("is empty"));
                match cluster {
                    Some(c) if needs_scope => {
                        env.insert("PATRONI_SCOPE".into(), c.to_string());
                        palisade_config::load_for_ctl(path.as_deref(), &env).map_err(|p| config_errors(&p))?.config
                    }
                    _ => return Err(config_errors(&problems)),
                }
            }
        };
        let mut base = loaded;
        if let Some(mut d) = dcs_override {
            if let Some(Value::String(ns)) = d.section.remove("__namespace") {
                base.namespace = ns;
            }
            base.dcs = Some(d);
        }
        let http = palisade_plugin_host::http::http_client(&base, insecure).map_err(CtlError)?;
        let ctl = &base.ctl;
        let auth = ctl
            .authentication
            .as_ref()
            .or(base.restapi.authentication.as_ref())
            .map(|a| (a.username.clone(), a.password.clone()));
        Ok(Self { base, env, http, auth, dcs: Mutex::new(HashMap::new()), group: None })
    }

    /// Set the command's Citus group: `--group`, else, for the commands
    /// patronictl defaults it for (`default_from_config`), the
    /// configuration's `citus.group`.
    pub fn set_group(&mut self, group: Option<i64>, default_from_config: bool) -> Result<()> {
        let group = match group {
            Some(g) => Some(i32::try_from(g).map_err(|_| CtlError(format!("--group: {g} is out of range")))?),
            None if default_from_config => self.base.citus.as_ref().map(|c| c.group),
            None => None,
        };
        self.group = group;
        Ok(())
    }

    /// The command's Citus group, if any.
    pub fn group(&self) -> Option<i32> {
        self.group
    }

    /// The cluster named on the command line, else the configuration's scope.
    pub fn scope(&self, given: Option<&str>) -> Result<String> {
        match given {
            Some(s) => Ok(s.to_string()),
            None if !self.base.scope.is_empty() => Ok(self.base.scope.clone()),
            None => err("no cluster name given, and the configuration has no scope"),
        }
    }

    /// The configuration's scope, if any.
    pub fn config_scope(&self) -> Option<&str> {
        Some(self.base.scope.as_str()).filter(|s| !s.is_empty())
    }

    /// The DCS of cluster `scope` for the command's group (opened once).
    pub async fn dcs(&self, scope: &str) -> Result<DcsClient> {
        self.dcs_in(scope, self.group).await
    }

    /// The DCS of Citus group `group` of cluster `scope` (with `None`, of
    /// the configuration's group, if any), opened once.
    pub async fn dcs_in(&self, scope: &str, group: Option<i32>) -> Result<DcsClient> {
        let mut cache = self.dcs.lock().await;
        let key = (scope.to_string(), group);
        if let Some(d) = cache.get(&key) {
            return Ok(d.clone());
        }
        let mut config = self.base.clone();
        config.scope = scope.to_string();
        if config.name.is_empty() {
            config.name = scope.to_string();
        }
        if let Some(g) = group {
            // As patronictl: the group's keys, whatever the configuration says.
            let database = config.citus.as_ref().map_or_else(|| "postgres".to_string(), |c| c.database.clone());
            config.citus = Some(palisade_config::CitusConfig { group: g, database });
        }
        let dir =
            plugins::plugin_dir(config.plugin_dir.as_deref(), self.env.get("PALISADE_PLUGIN_DIR").map(String::as_str));
        let timing = plugins::timing(Duration::from_secs(30), Duration::from_secs(10), Duration::from_secs(10));
        let (dcs, _) = plugins::load_dcs(&config, &dir, timing).map_err(|problems| {
            let what = problems.iter().map(|p| p.0.clone()).collect::<Vec<_>>().join("; ");
            CtlError(format!(
                "{what} (plugins are looked for in plugin_dir, else $PALISADE_PLUGIN_DIR, else \
                 ../lib/palisade/plugins next to palisadectl)"
            ))
        })?;
        let client = DcsClient::new(Arc::clone(&dcs), Duration::from_secs(10));
        cache.insert(key, client.clone());
        Ok(client)
    }

    /// A fresh read of cluster `scope`: of the command's group, or on a
    /// Citus cluster without a group, of every group.
    pub async fn clusters(&self, scope: &str) -> Result<Clusters> {
        self.clusters_in(scope, self.group).await
    }

    /// A fresh read of cluster `scope` as patronictl's `get_dcs(scope,
    /// group).get_cluster()` reads it: on a Citus cluster without a group,
    /// every group at once (the coordinator is group 0, empty when it has
    /// no keys yet).
    pub async fn clusters_in(&self, scope: &str, group: Option<i32>) -> Result<Clusters> {
        // patronictl's `is_citus_cluster()`: a `citus` section, or a group.
        let citus = self.base.citus.is_some() || group.is_some();
        let dcs = self.dcs_in(scope, group).await?;
        let failed = |e| CtlError(format!("cannot read cluster {scope} from the DCS: {e}"));
        let by_group = if citus && group.is_none() {
            let mut all = dcs.get_mpp_groups().await.map_err(failed)?;
            all.entry(0).or_default();
            all
        } else {
            BTreeMap::from([(group.unwrap_or(0), dcs.get_cluster().await.map_err(failed)?)])
        };
        Ok(Clusters { citus, group, by_group })
    }

    /// A fresh read of cluster `scope`: the command's group, or the
    /// coordinator.
    pub async fn cluster(&self, scope: &str) -> Result<Cluster> {
        Ok(self.clusters(scope).await?.into_main())
    }

    /// `method /endpoint` on `member`'s REST API; the status and the body.
    pub async fn request(
        &self,
        member: &Member,
        method: &str,
        endpoint: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String)> {
        let Some(api) = member.api_url() else {
            return err(format!("member {} has no api_url", member.name));
        };
        let base = api.strip_suffix("/patroni").unwrap_or(api).trim_end_matches('/');
        let url = format!("{base}/{endpoint}");
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| CtlError(format!("bad HTTP method {method}")))?;
        let mut req = self.http.request(method, &url).timeout(Duration::from_secs(600));
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| CtlError(format!("request to {} ({url}) failed: {e}", member.name)))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text))
    }
}

/// Whether loading failed only because there is no configuration at all
/// (no file, no `PATRONI_*` variables).
pub fn is_empty_config(e: &CtlError) -> bool {
    e.0.starts_with("the configuration is empty")
}

fn config_errors(problems: &[palisade_config::ConfigError]) -> CtlError {
    CtlError(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_urls_are_read_as_patronictl_reads_them() {
        let cases = [
            ("127.0.0.1:2379", "etcd", "host", "127.0.0.1:2379"),
            ("127.0.0.1", "etcd", "host", "127.0.0.1:2379"),
            ("etcd://127.0.0.1:2379", "etcd", "host", "127.0.0.1:2379"),
            ("etcd3://10.0.0.1:2379", "etcd3", "host", "10.0.0.1:2379"),
            ("etcd3://10.0.0.1", "etcd3", "host", "10.0.0.1:2379"),
            ("localhost:8500", "consul", "host", "localhost:8500"),
            ("consul://c1", "consul", "host", "c1:8500"),
        ];
        for (url, kind, key, value) in cases {
            let d = parse_dcs_url(url).unwrap();
            assert_eq!((d.kind.as_str(), d.section[key].as_str()), (kind, Some(value)), "{url}");
        }
        let bare = parse_dcs_url("z1:2181").unwrap();
        assert_eq!((bare.kind.as_str(), &bare.section["hosts"]), ("zookeeper", &serde_json::json!(["z1:2181"])));
        let zk = parse_dcs_url("zookeeper://z1:2181/service").unwrap();
        assert_eq!(zk.section["hosts"], serde_json::json!(["z1:2181"]));
        assert_eq!(zk.section["__namespace"], "/service");
        assert!(parse_dcs_url("redis://x").is_err());
        assert!(parse_dcs_url("etcd3://x:notaport").is_err());
    }
}
