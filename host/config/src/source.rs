//! Where the configuration comes from (a file, a directory of files,
//! `PATRONI_CONFIGURATION`, or the environment alone) and how the pieces
//! are merged. The only IO of this crate is here: reading the files given.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::env;
use crate::types::{ConfigError, ConfigWarning};
use crate::yaml;

/// The variable that may hold the whole YAML configuration.
pub const CONFIGURATION_VARIABLE: &str = "PATRONI_CONFIGURATION";

/// Patroni's `patch_config`: merges `data` into `config` key by key; nested
/// mappings merge recursively, a `null` value removes the key, anything
/// else replaces.
pub fn patch_config(config: &mut Map<String, Value>, data: &Map<String, Value>) {
    for (name, value) in data {
        match value {
            Value::Null => {
                config.remove(name);
            }
            Value::Object(new) => match config.get_mut(name) {
                Some(Value::Object(old)) => patch_config(old, new),
                _ => {
                    config.insert(name.clone(), value.clone());
                }
            },
            _ => {
                config.insert(name.clone(), value.clone());
            }
        }
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> ConfigError {
    ConfigError { path: String::new(), message: format!("{}: {message}", path.display()) }
}

fn read_yaml_file(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    match yaml::parse(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(file_error(path, "does not contain a mapping")),
        Err(e) => Err(file_error(path, format!("invalid YAML: {e}"))),
    }
}

/// The YAML files of `path`: itself, or the `*.yml`/`*.yaml` files of a
/// directory in sorted order.
fn config_files(path: &Path) -> Result<Vec<std::path::PathBuf>, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !meta.is_dir() {
        return Err(file_error(path, "is neither a file nor a directory"));
    }
    let entries = std::fs::read_dir(path).map_err(|e| file_error(path, format!("cannot list: {e}")))?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (name.ends_with(".yml") || name.ends_with(".yaml")) && p.is_file()
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// The merged configuration before validation: the file(s) with the
/// environment patched over, or `PATRONI_CONFIGURATION`, or the environment.
pub fn gather(
    path: Option<&Path>,
    env_vars: &BTreeMap<String, String>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Map<String, Value>, Vec<ConfigError>> {
    if let Some(path) = path {
        let mut config = Map::new();
        let mut errors = Vec::new();
        for file in config_files(path).map_err(|e| vec![e])? {
            match read_yaml_file(&file) {
                Ok(map) => patch_config(&mut config, &map),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let from_env = env::from_env(env_vars, warnings);
        patch_config(&mut config, &from_env);
        return Ok(config);
    }
    if let Some(text) = env_vars.get(CONFIGURATION_VARIABLE) {
        match yaml::parse(text) {
            Ok(Value::Object(map)) if !map.is_empty() => return Ok(map),
            Ok(Value::Object(_) | Value::Null) => {}
            Ok(_) => {
                return Err(vec![ConfigError {
                    path: CONFIGURATION_VARIABLE.into(),
                    message: "does not contain a mapping".into(),
                }])
            }
            Err(e) => {
                return Err(vec![ConfigError {
                    path: CONFIGURATION_VARIABLE.into(),
                    message: format!("invalid YAML: {e}"),
                }])
            }
        }
    }
    Ok(env::from_env(env_vars, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_merges_nested_and_null_removes() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1], "e": 5}).as_object().cloned().expect("object");
        let over =
            json!({"a": {"c": 3, "x": 4}, "d": [2], "e": null, "f": "new"}).as_object().cloned().expect("object");
        patch_config(&mut base, &over);
        assert_eq!(Value::Object(base), json!({"a": {"b": 1, "c": 3, "x": 4}, "d": [2], "f": "new"}));
    }

    #[test]
    fn patroni_configuration_replaces_the_environment() {
        let env: BTreeMap<String, String> = [
            (CONFIGURATION_VARIABLE.to_string(), "scope: from-yaml\nname: n1\n".to_string()),
            ("PATRONI_SCOPE".to_string(), "from-env".to_string()),
        ]
        .into_iter()
        .collect();
        let mut w = Vec::new();
        let got = gather(None, &env, &mut w).expect("gathers");
        assert_eq!(Value::Object(got), json!({"scope": "from-yaml", "name": "n1"}));
    }

    #[test]
    fn empty_patroni_configuration_falls_back_to_the_environment() {
        let env: BTreeMap<String, String> =
            [(CONFIGURATION_VARIABLE.to_string(), "".to_string()), ("PATRONI_SCOPE".to_string(), "e".to_string())]
                .into_iter()
                .collect();
        let mut w = Vec::new();
        assert_eq!(Value::Object(gather(None, &env, &mut w).expect("gathers")), json!({"scope": "e"}));
        let bad: BTreeMap<String, String> =
            [(CONFIGURATION_VARIABLE.to_string(), "[1, 2]".to_string())].into_iter().collect();
        let err = gather(None, &bad, &mut w).expect_err("a list is not a configuration");
        assert_eq!(err[0].path, CONFIGURATION_VARIABLE);
    }
}
