//! Patroni's `patch_config`: how `PATCH /config` and `palisadectl
//! edit-config` merge a change into the dynamic configuration.

use serde_json::{Map, Value};

/// Patroni's `patch_config`: merge `patch` into `config`, a null deleting
/// the key; `true` when something changed.
pub fn patch_config(config: &mut Map<String, Value>, patch: &Map<String, Value>) -> bool {
    let mut changed = false;
    for (k, v) in patch {
        match v {
            Value::Null => changed |= config.remove(k).is_some(),
            Value::Object(p) => match config.get_mut(k) {
                Some(Value::Object(c)) => changed |= patch_config(c, p),
                _ => {
                    let mut fresh = Map::new();
                    patch_config(&mut fresh, p);
                    changed = true;
                    config.insert(k.clone(), Value::Object(fresh));
                }
            },
            other => {
                if config.get(k) != Some(other) {
                    config.insert(k.clone(), other.clone());
                    changed = true;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_merge_and_null_deletes() {
        let cases = [
            (json!({"ttl": 30}), json!({"ttl": 20}), json!({"ttl": 20}), true),
            (json!({"ttl": 30}), json!({"ttl": 30}), json!({"ttl": 30}), false),
            (json!({"pause": true}), json!({"pause": null}), json!({}), true),
            (json!({}), json!({"pause": null}), json!({}), false),
            (
                json!({"postgresql": {"parameters": {"work_mem": "4MB", "max_connections": 100}}}),
                json!({"postgresql": {"parameters": {"work_mem": null, "shared_buffers": "64MB"}}}),
                json!({"postgresql": {"parameters": {"max_connections": 100, "shared_buffers": "64MB"}}}),
                true,
            ),
            (
                json!({"slots": 1}),
                json!({"slots": {"s": {"type": "physical", "x": null}}}),
                json!({"slots": {"s": {"type": "physical"}}}),
                true,
            ),
        ];
        for (old, patch, want, changed) in cases {
            let mut data = old.as_object().unwrap().clone();
            assert_eq!(patch_config(&mut data, patch.as_object().unwrap()), changed, "{old} + {patch}");
            assert_eq!(Value::Object(data), want, "{old} + {patch}");
        }
    }
}
