//! Member tags (`nofailover`, `failover_priority`, `clonefrom`...), read
//! with Patroni's rules so that old and new spellings agree.

use serde_json::{Map, Value};

use crate::{parse_bool, parse_int};

/// A view of a tags map, from this node's configuration or a member key.
#[derive(Clone, Copy, Debug)]
pub struct Tags<'a>(pub &'a Map<String, Value>);

impl<'a> Tags<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// Python's `bool()` of the tag, as Patroni reads boolean tags (so the
    /// string `'false'` is true; the configuration reader warns about it).
    fn truthy(&self, name: &str) -> bool {
        self.get(name).is_some_and(palisade_pycompat::py::truthy)
    }

    /// A boolean tag that a priority tag can also imply (priority <= 0).
    fn bool_tag(&self, bool_name: &str, priority_name: &str) -> bool {
        if self.get(bool_name).is_some() {
            return self.truthy(bool_name);
        }
        matches!(self.get(priority_name).and_then(parse_int), Some(p) if p <= 0)
    }

    /// A priority tag that the boolean tag can force to 0 (default 1).
    fn priority_tag(&self, bool_name: &str, priority_name: &str) -> i64 {
        if self.truthy(bool_name) {
            return 0;
        }
        self.get(priority_name).and_then(parse_int).unwrap_or(1)
    }

    pub fn nofailover(&self) -> bool {
        self.bool_tag("nofailover", "failover_priority")
    }

    pub fn failover_priority(&self) -> i64 {
        self.priority_tag("nofailover", "failover_priority")
    }

    pub fn nosync(&self) -> bool {
        self.bool_tag("nosync", "sync_priority")
    }

    pub fn sync_priority(&self) -> i64 {
        self.priority_tag("nosync", "sync_priority")
    }

    pub fn noloadbalance(&self) -> bool {
        self.truthy("noloadbalance")
    }

    pub fn clonefrom(&self) -> bool {
        self.truthy("clonefrom")
    }

    pub fn nostream(&self) -> bool {
        self.get("nostream").and_then(parse_bool).unwrap_or(false)
    }

    pub fn replicatefrom(&self) -> Option<&'a str> {
        self.get("replicatefrom").and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// The tags a member publishes: every custom tag, and the predefined
    /// boolean ones only when set (or when their priority twin is present).
    pub fn published(&self) -> Map<String, Value> {
        const PREDEFINED: [&str; 5] = ["clonefrom", "nofailover", "noloadbalance", "nosync", "nostream"];
        self.0
            .iter()
            .filter(|(k, v)| {
                !PREDEFINED.contains(&k.as_str())
                    || self.truthy(k)
                    || (k.as_str() == "nofailover" && self.0.contains_key("failover_priority"))
                    || (k.as_str() == "nosync" && self.0.contains_key("sync_priority"))
                    || matches!(v, Value::Bool(true))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tags(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn failover_tags_table() {
        // (tags, nofailover, failover_priority)
        let cases = [
            (json!({}), false, 1),
            (json!({"nofailover": true}), true, 0),
            (json!({"nofailover": false}), false, 1),
            (json!({"failover_priority": 0}), true, 0),
            (json!({"failover_priority": 3}), false, 3),
            (json!({"failover_priority": -1}), true, -1),
            (json!({"nofailover": false, "failover_priority": 0}), false, 0),
            (json!({"nofailover": true, "failover_priority": 5}), true, 0),
            (json!({"failover_priority": "garbage"}), false, 1),
            (json!({"nofailover": "yes"}), true, 0),
            // Patroni's bool(): any non-empty string is true.
            (json!({"nofailover": "false"}), true, 0),
            (json!({"nofailover": ""}), false, 1),
            (json!({"nofailover": 0, "failover_priority": "0x2"}), false, 2),
        ];
        for (input, nofailover, priority) in cases {
            let m = tags(input.clone());
            let t = Tags(&m);
            assert_eq!(t.nofailover(), nofailover, "{input}");
            assert_eq!(t.failover_priority(), priority, "{input}");
        }
    }

    #[test]
    fn published_drops_false_predefined_tags() {
        let m =
            tags(json!({"nofailover": false, "clonefrom": true, "nosync": false, "sync_priority": 2, "dc": "east"}));
        let published = Tags(&m).published();
        assert_eq!(
            Value::Object(published),
            json!({"clonefrom": true, "nosync": false, "sync_priority": 2, "dc": "east"})
        );
    }

    #[test]
    fn replicatefrom_and_nostream() {
        let m = tags(json!({"replicatefrom": "n2", "nostream": "on"}));
        assert_eq!(Tags(&m).replicatefrom(), Some("n2"));
        assert!(Tags(&m).nostream());
    }
}
