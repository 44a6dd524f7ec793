//! Label and field selectors as the API server parses them: equality-based
//! (`a=b`, `a==b`, `a!=b`) and set-based (`a in (x,y)`, `a notin (x)`,
//! `a`, `!a`) requirements joined by commas, all of which must hold.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// One parsed selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<(String, Op)>,
}

/// Split at commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(rest: &str, whole: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: {whole:?}: expected a parenthesised list of values"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

impl Selector {
    /// Parse a `labelSelector`/`fieldSelector` query value.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Selector { reqs });
        }
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err(format!("unable to parse requirement: empty requirement in {s:?}"));
            }
            let req = if let Some((k, v)) = p.split_once("!=") {
                (k.trim().to_string(), Op::NotEq(v.trim().to_string()))
            } else if let Some((k, v)) = p.split_once("==") {
                (k.trim().to_string(), Op::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = p.split_once('=') {
                (k.trim().to_string(), Op::Eq(v.trim().to_string()))
            } else if let Some(k) = p.strip_prefix('!') {
                (k.trim().to_string(), Op::NotExists)
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                (k.trim().to_string(), Op::NotIn(set_values(rest, p)?))
            } else if let Some((k, rest)) = p.split_once(" in ") {
                (k.trim().to_string(), Op::In(set_values(rest, p)?))
            } else {
                (p.to_string(), Op::Exists)
            };
            if req.0.is_empty() || req.0.contains(char::is_whitespace) {
                return Err(format!("unable to parse requirement: invalid key in {p:?}"));
            }
            reqs.push(req);
        }
        Ok(Selector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether the values `get` gives for each key satisfy every requirement.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.reqs.iter().all(|(k, op)| {
            let v = get(k);
            match op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::NotEq(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }

    /// As a label selector on `object`'s `metadata.labels`.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    /// As a field selector: `metadata.name` and `metadata.namespace` (the
    /// fields every resource supports).
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches_with(|k| match k {
            "metadata.name" => object.pointer("/metadata/name").and_then(Value::as_str),
            "metadata.namespace" => object.pointer("/metadata/namespace").and_then(Value::as_str),
            _ => None,
        })
    }

    /// Field selectors support only `metadata.name` and `metadata.namespace`.
    pub fn check_fields(&self) -> Result<(), String> {
        match self.reqs.iter().find(|(k, _)| k != "metadata.name" && k != "metadata.namespace") {
            Some((k, _)) => Err(format!("field label not supported: {k}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let pod = json!({"metadata": {"labels": {"app": "pg", "cluster-name": "demo", "role": "primary"}}});
        let none = json!({"metadata": {}});
        let cases: &[(&str, bool, bool)] = &[
            ("", true, true),
            ("app=pg", true, false),
            ("app==pg", true, false),
            ("app=pg,cluster-name=demo", true, false),
            ("app=pg,cluster-name=other", false, false),
            ("role!=replica", true, true),
            ("role!=primary", false, true),
            ("role", true, false),
            ("!role", false, true),
            ("role in (primary,master)", true, false),
            ("role in (replica)", false, false),
            ("role notin (replica)", true, true),
            ("app=pg,role notin (primary, master),cluster-name", false, false),
        ];
        for (sel, on_pod, on_none) in cases {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches_labels(&pod), *on_pod, "{sel} on the pod");
            assert_eq!(s.matches_labels(&none), *on_none, "{sel} on no labels");
        }
    }

    #[test]
    fn bad_selectors() {
        for sel in ["a=b,", ",a", "a in x", "a in (x", "a b"] {
            assert!(Selector::parse(sel).is_err(), "{sel} should not parse");
        }
    }

    #[test]
    fn field_selectors() {
        let o = json!({"metadata": {"name": "x", "namespace": "ns"}});
        let s = Selector::parse("metadata.name=x,metadata.namespace!=other").unwrap_or_default();
        assert!(s.check_fields().is_ok());
        assert!(s.matches_fields(&o));
        assert!(!Selector::parse("metadata.name=y").unwrap_or_default().matches_fields(&o));
        assert!(Selector::parse("spec.nodeName=n").unwrap_or_default().check_fields().is_err());
    }
}
