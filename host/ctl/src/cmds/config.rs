//! `edit-config` and `show-config`: the dynamic configuration.

use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};

use super::ui::confirm;
use crate::ctx::{err, CtlError, Ctx, Result};
use crate::{diff, yaml};

fn set_path(config: &mut Map<String, Value>, path: &[String], value: &Value, prefix: &[String]) {
    let path: Vec<String> = if prefix == ["postgresql", "parameters"] { vec![path.join(".")] } else { path.to_vec() };
    let key = path[0].clone();
    if path.len() == 1 {
        if value.is_null() {
            config.remove(&key);
        } else {
            config.insert(key, value.clone());
        }
        return;
    }
    if !config.get(&key).is_some_and(Value::is_object) {
        config.insert(key.clone(), Value::Object(Map::new()));
    }
    let mut p = prefix.to_vec();
    p.push(key.clone());
    if let Some(Value::Object(inner)) = config.get_mut(&key) {
        set_path(inner, &path[1..], value, &p);
        if inner.is_empty() {
            config.remove(&key);
        }
    }
}

/// `--set key.path=value` pairs applied as patronictl applies them (the
/// value read as YAML; `null` removes the key).
fn apply_pairs(data: &Map<String, Value>, pairs: &[String]) -> Result<Map<String, Value>> {
    let mut out = data.clone();
    for pair in pairs {
        let Some((path, value)) = pair.split_once('=').filter(|_| !pair.is_empty()) else {
            return err(format!("Invalid parameter setting {pair}"));
        };
        let value = if value.trim().is_empty() {
            Value::Null
        } else {
            palisade_config::yaml::parse(value)
                .map_err(|e| CtlError(format!("Invalid parameter setting {pair}: {e}")))?
        };
        let keys: Vec<String> = path.trim().split('.').map(String::from).collect();
        set_path(&mut out, &keys, &value, &[]);
    }
    Ok(out)
}

fn read_yaml_file(name: &str) -> Result<Map<String, Value>> {
    let text = if name == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| CtlError(format!("stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(name).map_err(|e| CtlError(format!("{name}: {e}")))?
    };
    match palisade_config::yaml::parse(&text).map_err(|e| CtlError(format!("{name}: {e}")))? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => err(format!("{name}: the configuration must be a mapping")),
    }
}

/// Let the user edit `before` in `$EDITOR` (else `editor` or `vi`); the
/// edited text and what it parses to.
fn invoke_editor(before: &str, name: &str) -> Result<(String, Map<String, Value>)> {
    let editor = std::env::var("EDITOR").ok().filter(|e| !e.is_empty()).or_else(|| {
        ["editor", "vi"]
            .iter()
            .find(|e| std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(e).is_file())))
            .map(|e| e.to_string())
    });
    let Some(editor) = editor else {
        return err("EDITOR environment variable is not set. editor or vi are not available");
    };
    let path = edit_file(&format!("{}-config-", name.replace('/', "_")), before)?;
    let status = std::process::Command::new(&editor).arg(&path).status();
    let after = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => return err(format!("Editor exited with return code {}", s.code().unwrap_or(-1))),
        Err(e) => return err(format!("cannot run the editor {editor}: {e}")),
    }
    let after = after.map_err(|e| CtlError(format!("{}: {e}", path.display())))?;
    let data =
        match palisade_config::yaml::parse(&after).map_err(|e| CtlError(format!("the edited configuration: {e}")))? {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return err("the edited configuration must be a mapping"),
        };
    Ok((after, data))
}

/// A new file `$TMPDIR/<prefix><random>.yaml` holding `text`, readable by
/// its owner only. It is created exclusively: palisadectl may run as root
/// in a shared /tmp, where a planted file or symlink must not be followed.
fn edit_file(prefix: &str, text: &str) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
    for _ in 0..100 {
        // xorshift: unpredictable enough together with O_EXCL.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let path = dir.join(format!("{prefix}{:08x}.yaml", seed as u32));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes()).map_err(|e| CtlError(format!("{}: {e}", path.display())))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return err(format!("{}: {e}", path.display())),
        }
    }
    err(format!("cannot create a temporary file in {}", dir.display()))
}

fn show_diff(before: &str, after: &str) {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for line in diff::unified(before, after) {
        if colour && line.starts_with('+') && !line.starts_with("+++") {
            println!("\x1b[32m{line}\x1b[0m");
        } else if colour && line.starts_with('-') && !line.starts_with("---") {
            println!("\x1b[31m{line}\x1b[0m");
        } else if colour && line.starts_with("@@") {
            println!("\x1b[36m{line}\x1b[0m");
        } else {
            println!("{line}");
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn edit_config(
    ctx: &Ctx,
    name: Option<String>,
    force: bool,
    quiet: bool,
    kvpairs: Vec<String>,
    pgkvpairs: Vec<String>,
    apply: Option<String>,
    replace: Option<String>,
) -> Result<()> {
    let name = ctx.scope(name.as_deref())?;
    let cluster = ctx.cluster(&name).await?;
    let Some(config) = cluster.config.clone() else {
        return err(format!("The config key does not exist in the cluster {name}"));
    };
    let before = yaml::to_yaml(&Value::Object(config.data.clone()));
    let mut changed = config.data.clone();
    let mut edited = false;
    if let Some(f) = &replace {
        changed = read_yaml_file(f)?;
        edited = true;
    }
    if let Some(f) = &apply {
        let patch = read_yaml_file(f)?;
        palisade_config::patch_config(&mut changed, &patch);
        edited = true;
    }
    if !kvpairs.is_empty() || !pgkvpairs.is_empty() {
        let pairs: Vec<String> = kvpairs
            .into_iter()
            .chain(pgkvpairs.iter().map(|p| format!("postgresql.parameters.{}", p.trim_start())))
            .collect();
        changed = apply_pairs(&changed, &pairs)?;
        edited = true;
    }
    // The diff shows the text as edited (comments, order and all), as
    // patronictl shows it; options show the configuration they produce.
    let mut edited_text = None;
    if !edited {
        let (text, data) = invoke_editor(&before, &name)?;
        edited_text = Some(text);
        changed = data;
    }
    if changed == config.data {
        if !quiet {
            println!("Not changed");
        }
        return Ok(());
    }
    let problems = palisade_config::GlobalConfig::errors(&changed);
    let old_problems: Vec<String> =
        palisade_config::GlobalConfig::errors(&config.data).iter().map(ToString::to_string).collect();
    let fresh: Vec<String> = problems.iter().map(ToString::to_string).filter(|p| !old_problems.contains(p)).collect();
    if !fresh.is_empty() {
        return err(format!("invalid configuration: {}", fresh.join("; ")));
    }
    if !quiet {
        let after = edited_text.unwrap_or_else(|| yaml::to_yaml(&Value::Object(changed.clone())));
        show_diff(&before, &after);
    }
    if (apply.as_deref() == Some("-") || replace.as_deref() == Some("-")) && !force {
        println!("Use --force option to apply changes");
        return Ok(());
    }
    if force || confirm("Apply these changes?")? {
        let dcs = ctx.dcs(&name).await?;
        let ok = dcs
            .set_config_value(yaml::to_python_json_compact(&Value::Object(changed)), Some(config.version.clone()))
            .await
            .map_err(|e| CtlError(format!("cannot write the configuration: {e}")))?;
        if !ok {
            return err("Config modification aborted due to concurrent changes");
        }
        println!("Configuration changed");
    }
    Ok(())
}

pub(super) async fn show_config(ctx: &Ctx, name: Option<String>) -> Result<()> {
    let cluster = ctx.cluster(&ctx.scope(name.as_deref())?).await?;
    if let Some(c) = &cluster.config {
        println!("{}", yaml::to_yaml(&Value::Object(c.data.clone())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_pairs_as_patronictl() {
        let data = json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}}).as_object().unwrap().clone();
        let cases = [
            (vec!["ttl=20"], json!({"ttl": 20, "postgresql": {"parameters": {"work_mem": "4MB"}}})),
            (vec!["postgresql.parameters.work_mem=null"], json!({"ttl": 30})),
            (
                vec!["postgresql.parameters.auto_explain.log_min_duration=100ms"],
                json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB", "auto_explain.log_min_duration": "100ms"}}}),
            ),
            (
                vec!["pause=true", "loop_wait=5"],
                json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}, "pause": true, "loop_wait": 5}),
            ),
            (
                vec!["synchronous_mode=on"],
                json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}, "synchronous_mode": true}),
            ),
        ];
        for (pairs, want) in cases {
            let pairs: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
            assert_eq!(Value::Object(apply_pairs(&data, &pairs).unwrap()), want, "{pairs:?}");
        }
        assert!(apply_pairs(&data, &["novalue".into()]).is_err());
    }
}
