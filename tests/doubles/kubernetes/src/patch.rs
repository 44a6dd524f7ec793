//! The PATCH forms the API server accepts: JSON merge patch (RFC 7386),
//! strategic merge patch (a merge patch that merges the lists Kubernetes
//! marks with a merge key and honours `$patch` directives) and JSON patch
//! (RFC 6902).

use serde_json::{Map, Value};

/// JSON merge patch: objects merge key by key, `null` deletes, anything
/// else (lists included) replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The lists of the served kinds that a strategic merge patch merges
/// (by this key; `""` for lists of scalars) instead of replacing, as the
/// `patchMergeKey`/`patchStrategy` tags of the Kubernetes types say.
/// Paths are field names from the object root, lists transparent.
fn merge_key(path: &[&str]) -> Option<&'static str> {
    Some(match path {
        ["metadata", "ownerReferences"] => "uid",
        ["metadata", "finalizers"] => "",
        ["spec", "containers"] | ["spec", "initContainers"] | ["spec", "ephemeralContainers"] => "name",
        ["spec", "volumes"] | ["spec", "imagePullSecrets"] => "name",
        ["spec", "containers" | "initContainers", "env"] => "name",
        ["spec", "containers" | "initContainers", "ports"] => "containerPort",
        ["spec", "containers" | "initContainers", "volumeMounts"] => "mountPath",
        ["spec", "tolerations"] => return None,
        // Service ports merge by port; Endpoints subsets, addresses and
        // ports are replaced (they carry no merge key).
        ["spec", "ports"] => "port",
        ["status", "conditions"] => "type",
        _ => return None,
    })
}

/// Strategic merge patch on `target`. Errors name what the server would
/// reject (an unknown `$patch` directive).
pub fn strategic(target: &mut Value, patch: &Value) -> Result<(), String> {
    strategic_at(target, patch, &mut Vec::new())
}

fn strategic_at<'a>(target: &mut Value, patch: &'a Value, path: &mut Vec<&'a str>) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("Unknown patch type: {other}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return Ok(()) };
    for (k, v) in p {
        if k.starts_with('$') {
            if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
                continue;
            }
            if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                if let (Some(Value::Array(have)), Value::Array(gone)) = (t.get_mut(field), v) {
                    have.retain(|x| !gone.contains(x));
                }
                continue;
            }
            return Err(format!("unknown directive {k}"));
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        path.push(k.as_str());
        let key = merge_key(path);
        match (key, v) {
            (Some(key), Value::Array(items)) => {
                let slot = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                if let Value::Array(have) = slot {
                    merge_list(have, items, key, path)?;
                }
            }
            _ => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic_at(slot, v, path)?;
                if slot.is_null() {
                    t.remove(k);
                }
            }
        }
        path.pop();
    }
    Ok(())
}

fn merge_list<'a>(have: &mut Vec<Value>, items: &'a [Value], key: &str, path: &mut Vec<&'a str>) -> Result<(), String> {
    if key.is_empty() {
        for item in items {
            if !have.contains(item) {
                have.push(item.clone());
            }
        }
        return Ok(());
    }
    for item in items {
        let Some(id) = item.get(key) else {
            if item.get("$patch").and_then(Value::as_str) == Some("replace") {
                have.clear();
                continue;
            }
            return Err(format!("map: {item} does not contain declared merge key: {key}"));
        };
        let directive = item.get("$patch").and_then(Value::as_str);
        let pos = have.iter().position(|h| h.get(key) == Some(id));
        match (directive, pos) {
            (Some("delete"), Some(i)) => {
                have.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => strategic_at(&mut have[i], item, path)?,
            (_, None) => {
                let mut fresh = Value::Object(Map::new());
                strategic_at(&mut fresh, item, path)?;
                have.push(fresh);
            }
        }
    }
    Ok(())
}

/// Unescape one JSON pointer token.
fn token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

fn parent_and_last<'v>(doc: &'v mut Value, ptr: &str) -> Result<(&'v mut Value, String), String> {
    let Some((parent, last)) = ptr.rsplit_once('/') else {
        return Err(format!("invalid JSON pointer {ptr:?}"));
    };
    let parent_value = doc.pointer_mut(parent).ok_or_else(|| format!("doc is missing path: {parent:?}"))?;
    Ok((parent_value, token(last)))
}

fn add(doc: &mut Value, ptr: &str, value: Value) -> Result<(), String> {
    if ptr.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_and_last(doc, ptr)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let i = if last == "-" { a.len() } else { last.parse().map_err(|_| format!("invalid index {last:?}"))? };
            if i > a.len() {
                return Err(format!("index {i} out of bounds in {ptr:?}"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("cannot add {ptr:?}: its parent is not an object or a list")),
    }
}

fn remove(doc: &mut Value, ptr: &str) -> Result<Value, String> {
    let (parent, last) = parent_and_last(doc, ptr)?;
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(|| format!("doc is missing key: {ptr:?}")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("invalid index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("index {i} out of bounds in {ptr:?}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("doc is missing path: {ptr:?}")),
    }
}

/// JSON patch (RFC 6902): a list of `add`, `remove`, `replace`, `move`,
/// `copy` and `test` operations applied in order; all or nothing.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let Value::Array(ops) = ops else {
        return Err("a JSON patch must be a list of operations".into());
    };
    let mut doc = target.clone();
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).ok_or("an operation without \"op\"")?;
        let path = op.get("path").and_then(Value::as_str).ok_or_else(|| format!("{kind}: no \"path\""))?;
        let value = || op.get("value").cloned().ok_or_else(|| format!("{kind} {path}: no \"value\""));
        let from = || op.get("from").and_then(Value::as_str).ok_or_else(|| format!("{kind} {path}: no \"from\""));
        match kind {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc.pointer(from()?).cloned().ok_or_else(|| format!("copy: missing {:?}", from()))?;
                add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    *target = doc;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_semantics() {
        let cases = [
            (json!({"a": 1}), json!({"a": null}), json!({})),
            (json!({"a": {"b": 1, "c": 2}}), json!({"a": {"b": null, "d": 3}}), json!({"a": {"c": 2, "d": 3}})),
            (json!({"a": [1, 2]}), json!({"a": [3]}), json!({"a": [3]})),
            (json!({"a": 1}), json!({"b": {"c": null}}), json!({"a": 1, "b": {}})),
            (json!({"a": "x"}), json!({"a": {"b": 1}}), json!({"a": {"b": 1}})),
            (
                json!({"metadata": {"annotations": {"leader": "n1", "optime": "5"}}}),
                json!({"metadata": {"annotations": {"leader": null}}}),
                json!({"metadata": {"annotations": {"optime": "5"}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn strategic_merge_semantics() {
        let pod = json!({"metadata": {"labels": {"role": "replica", "app": "pg"}, "finalizers": ["a"]},
            "spec": {"containers": [{"name": "pg", "image": "x"}, {"name": "side", "image": "y"}]}});
        let cases = [
            // Maps merge, null deletes (Patroni's role label removal).
            (
                json!({"metadata": {"labels": {"role": null}, "annotations": {"status": "{}"}}}),
                json!({"metadata": {"labels": {"app": "pg"}, "annotations": {"status": "{}"}, "finalizers": ["a"]},
                "spec": {"containers": [{"name": "pg", "image": "x"}, {"name": "side", "image": "y"}]}}),
            ),
            // Containers merge by name.
            (
                json!({"spec": {"containers": [{"name": "pg", "image": "z"}, {"name": "new"}]}}),
                json!({"metadata": {"labels": {"role": "replica", "app": "pg"}, "finalizers": ["a"]},
                "spec": {"containers": [{"name": "pg", "image": "z"}, {"name": "side", "image": "y"}, {"name": "new"}]}}),
            ),
            // $patch: delete in a merged list; primitive lists merge.
            (
                json!({"metadata": {"finalizers": ["b", "a"]}, "spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
                json!({"metadata": {"labels": {"role": "replica", "app": "pg"}, "finalizers": ["a", "b"]},
                "spec": {"containers": [{"name": "pg", "image": "x"}]}}),
            ),
            // $patch: replace on a map.
            (
                json!({"metadata": {"labels": {"$patch": "replace", "x": "y"}}}),
                json!({"metadata": {"labels": {"x": "y"}, "finalizers": ["a"]},
                "spec": {"containers": [{"name": "pg", "image": "x"}, {"name": "side", "image": "y"}]}}),
            ),
        ];
        for (patch, want) in cases {
            let mut target = pod.clone();
            strategic(&mut target, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"));
            assert_eq!(target, want, "patch {patch}");
        }
        // Endpoints subsets have no merge key: replaced as a whole.
        let mut ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 5432}]}]});
        strategic(&mut ep, &json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]})).unwrap_or_default();
        assert_eq!(ep, json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}));
        strategic(&mut ep, &json!({"subsets": []})).unwrap_or_default();
        assert_eq!(ep, json!({"subsets": []}));
        assert!(strategic(&mut ep, &json!({"$patch": "bogus"})).is_err());
    }

    #[test]
    fn json_patch_semantics() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "items": [1, 2]});
        let cases: Vec<(Value, Option<Value>)> = vec![
            (
                json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}]),
                Some(json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "items": [1, 2]})),
            ),
            (
                json!([{"op": "remove", "path": "/metadata/labels/a"}]),
                Some(json!({"metadata": {"labels": {}}, "items": [1, 2]})),
            ),
            (
                json!([{"op": "replace", "path": "/items/0", "value": 9}, {"op": "add", "path": "/items/-", "value": 3}]),
                Some(json!({"metadata": {"labels": {"a": "1"}}, "items": [9, 2, 3]})),
            ),
            (
                json!([{"op": "test", "path": "/metadata/labels/a", "value": "1"}, {"op": "move", "from": "/metadata/labels/a", "path": "/x"}]),
                Some(json!({"metadata": {"labels": {}}, "items": [1, 2], "x": "1"})),
            ),
            (json!([{"op": "test", "path": "/metadata/labels/a", "value": "2"}]), None),
            (json!([{"op": "remove", "path": "/nope"}]), None),
            (json!([{"op": "replace", "path": "/nope", "value": 1}]), None),
            (json!({"op": "add"}), None),
        ];
        for (ops, want) in cases {
            let mut target = doc.clone();
            let r = json_patch(&mut target, &ops);
            match want {
                Some(w) => {
                    assert!(r.is_ok(), "{ops}: {r:?}");
                    assert_eq!(target, w, "{ops}");
                }
                None => {
                    assert!(r.is_err(), "{ops} should fail");
                    assert_eq!(target, doc, "a failed JSON patch changes nothing");
                }
            }
        }
    }
}
