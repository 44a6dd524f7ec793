//! `palisade --list-plugins [CONFIG]`: what is installed in the plugin
//! directory, and what a configuration needs that is not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use palisade_plugin_host::plugins::{self, Installed, Needed};

/// The report and whether everything needed is there (the exit status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub text: String,
    pub ok: bool,
}

/// List the plugins of the directory `config` (if given) or the
/// environment selects, and with `config` the plugins it needs that are
/// missing or unusable.
pub fn list_plugins(config: Option<&Path>, env: &BTreeMap<String, String>) -> Report {
    let mut text = String::new();
    let local = match config {
        None => None,
        Some(path) => match palisade_config::load(Some(path), env) {
            Ok(loaded) => Some(loaded.config),
            Err(errors) => {
                for e in &errors {
                    let _ = writeln!(text, "error: {e}");
                }
                let _ = writeln!(text, "{}: {} problem(s) found", path.display(), errors.len());
                return Report { text, ok: false };
            }
        },
    };
    let dir = plugins::plugin_dir(
        local.as_ref().and_then(|c| c.plugin_dir.as_deref()),
        env.get("PALISADE_PLUGIN_DIR").map(String::as_str),
    );
    let _ = writeln!(text, "plugin directory: {}", dir.display());
    let _ = writeln!(text, "plugin API version: {}", palisade_plugin_api::API_VERSION);
    let installed = match plugins::installed(&dir) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(text, "error: cannot read {}: {e}", dir.display());
            return Report { text, ok: false };
        }
    };
    text.push_str(&table(&installed));
    let Some(local) = local else {
        return Report { text, ok: true };
    };

    let path = config.map(|p| p.display().to_string()).unwrap_or_default();
    let dynamic = palisade_config::dynamic_from_bootstrap(&local);
    let (global, _) = palisade_config::GlobalConfig::from_dynamic(&dynamic);
    let also = global.standby_cluster_config().map(|s| s.replica_methods()).unwrap_or_default();
    let needed = plugins::needed(&local, &dir, &also);
    let _ = writeln!(text, "\n{path} needs:");
    let mut problems = 0;
    if local.dcs.is_none() {
        problems += 1;
        let _ = writeln!(
            text,
            "  dcs: MISSING: no DCS is configured (add an etcd3, etcd, consul, zookeeper, exhibitor or kubernetes \
             section)"
        );
    }
    for need in &needed {
        let found = installed.iter().find(|i| i.kind == need.kind && i.name == need.name.replace('-', "_"));
        let state = match found {
            Some(Installed { loaded: Ok(info), file, .. }) => {
                format!("installed (version {}, {})", info.plugin_version, file.display())
            }
            Some(Installed { loaded: Err(e), .. }) => {
                problems += 1;
                format!("UNUSABLE: {e}")
            }
            None => {
                problems += 1;
                format!(
                    "MISSING: no {} in {} (install the {} package)",
                    plugins::file_name(need.kind, &need.name),
                    dir.display(),
                    plugins::package_name(need.kind, &need.name)
                )
            }
        };
        let Needed { kind, name, because } = need;
        let _ = writeln!(text, "  {kind} {name} (for {because}): {state}");
    }
    // A method of a plugin Palisade ships, without a `command` and without
    // its plugin, runs its name as the command (as Patroni does): legal,
    // but likely not what was meant.
    let methods = local.postgresql.create_replica_methods.iter().chain(&also);
    for method in methods.filter(|m| plugins::OWN_REPLICA_PLUGINS.contains(&m.as_str())) {
        let has_command = local.postgresql.replica_method_sections.get(method).and_then(|s| s.get("command"));
        if has_command.is_none() && needed.iter().any(|n| n.because.ends_with(&format!(": {method}"))) {
            let _ = writeln!(
                text,
                "  note: replica method '{method}' has no command and its plugin is not installed: '{method}' \
                 itself is run as the command, as Patroni does (install the {} package for the plugin)",
                plugins::package_name(palisade_plugin_api::PluginKind::Replica, method)
            );
        }
    }
    if problems == 0 {
        let _ = writeln!(text, "{path}: every plugin it needs is installed");
    } else {
        let _ = writeln!(text, "{path}: {problems} needed plugin(s) missing or unusable");
    }
    Report { text, ok: problems == 0 }
}

fn table(installed: &[Installed]) -> String {
    let mut rows = vec![["KIND".to_string(), "NAME".into(), "API".into(), "VERSION".into(), "FILE".into()]];
    for i in installed {
        let file = i.file.display().to_string();
        rows.push(match &i.loaded {
            Ok(info) => [
                info.kind.to_string(),
                info.name.clone(),
                info.api_version.to_string(),
                info.plugin_version.clone(),
                file,
            ],
            Err(e) => [i.kind.to_string(), i.name.clone(), "-".into(), "-".into(), format!("{file} (UNUSABLE: {e})")],
        });
    }
    if installed.is_empty() {
        return "no plugins installed\n".into();
    }
    let widths: Vec<usize> = (0..4).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
    out
}
