//! The text of `synchronous_standby_names`: reading it as Patroni's
//! `parse_sync_standby_names` does, and writing it as Patroni's
//! `set_synchronous_standby_names` does.

use super::names::NameSet;

/// What Patroni writes when strict mode has no standby to wait for: a name
/// no member has, so commits wait (PostgreSQL's `*` would let any
/// standby, even one outside the cluster, acknowledge them).
pub const STRICT_PLACEHOLDER: &str = "__patroni_strict_sync_replica_placeholder__";

/// How the server picks synchronous standbys from the list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SsnKind {
    /// Empty: asynchronous.
    #[default]
    Off,
    /// `FIRST n (...)`, `n (...)` or a plain list.
    Priority,
    /// `ANY n (...)`.
    Quorum,
}

/// `synchronous_standby_names` after parsing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ssn {
    pub kind: SsnKind,
    /// The list holds `*`.
    pub has_star: bool,
    /// How many standbys must acknowledge.
    pub num: u32,
    /// The names listed (the strict placeholder alone counts as none).
    pub members: NameSet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    First,
    Any,
    Ident,
    Dquot,
    Star,
    Num,
    Comma,
    ParenStart,
    ParenEnd,
    Junk,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// The end of a double-quoted name starting at `start` (`"` followed by
/// runs of other characters or doubled quotes, then `"`), taking the
/// longest match as the regular expression does.
fn dquot_end(s: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let mut end = None;
    loop {
        if s.get(i) == Some(&'"') {
            end = Some(i + 1);
        }
        match s.get(i) {
            Some('"') if s.get(i + 1) == Some(&'"') => i += 2,
            Some('"') | None => break,
            Some(_) => {
                while s.get(i).is_some_and(|c| *c != '"') {
                    i += 1;
                }
            }
        }
    }
    end
}

fn keyword_at(s: &[char], i: usize, word: &str) -> bool {
    let w: Vec<char> = word.chars().collect();
    s.len() >= i + w.len() && s[i..i + w.len()].iter().zip(&w).all(|(a, b)| a.to_ascii_lowercase() == *b)
}

/// Patroni's tokenizer: the alternatives are tried in its order at each
/// position (so `firstname` is the keyword `first` then `name`).
fn tokenize(value: &str) -> Vec<(Tok, String, usize)> {
    let s: Vec<char> = value.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let (tok, end) = if keyword_at(&s, i, "first") {
            (Some(Tok::First), i + 5)
        } else if keyword_at(&s, i, "any") {
            (Some(Tok::Any), i + 3)
        } else if s[i].is_whitespace() {
            let mut j = i;
            while j < s.len() && s[j].is_whitespace() {
                j += 1;
            }
            (None, j)
        } else if is_ident_start(s[i]) {
            let mut j = i + 1;
            while j < s.len() && is_ident_char(s[j]) {
                j += 1;
            }
            (Some(Tok::Ident), j)
        } else if let Some(end) = (s[i] == '"').then(|| dquot_end(&s, i)).flatten() {
            (Some(Tok::Dquot), end)
        } else if s[i] == '*' {
            (Some(Tok::Star), i + 1)
        } else if s[i].is_ascii_digit() {
            let mut j = i;
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            (Some(Tok::Num), j)
        } else {
            let t = match s[i] {
                ',' => Tok::Comma,
                '(' => Tok::ParenStart,
                ')' => Tok::ParenEnd,
                _ => Tok::Junk,
            };
            (Some(t), i + 1)
        };
        if let Some(t) = tok {
            out.push((t, s[i..end].iter().collect(), i));
        }
        i = end;
    }
    out
}

/// Parse `synchronous_standby_names`; the error says what is wrong.
pub fn parse_ssn(value: &str) -> Result<Ssn, String> {
    let tokens = tokenize(value);
    if tokens.is_empty() {
        return Ok(Ssn::default());
    }
    let kinds: Vec<Tok> = tokens.iter().map(|t| t.0).collect();
    let ends_paren = kinds.last() == Some(&Tok::ParenEnd);
    let num = |t: &(Tok, String, usize)| t.1.parse::<u64>().map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let (kind, n, list) = if kinds.starts_with(&[Tok::Any, Tok::Num, Tok::ParenStart]) && ends_paren {
        (SsnKind::Quorum, num(&tokens[1]), &tokens[3..tokens.len() - 1])
    } else if kinds.starts_with(&[Tok::First, Tok::Num, Tok::ParenStart]) && ends_paren {
        (SsnKind::Priority, num(&tokens[1]), &tokens[3..tokens.len() - 1])
    } else if kinds.starts_with(&[Tok::Num, Tok::ParenStart]) && ends_paren {
        (SsnKind::Priority, num(&tokens[0]), &tokens[2..tokens.len() - 1])
    } else {
        (SsnKind::Priority, 1, &tokens[..])
    };
    let mut has_star = false;
    let mut members = NameSet::new();
    for (i, (tok, text, pos)) in list.iter().enumerate() {
        if i % 2 == 1 {
            if i + 1 == list.len() {
                return Err(format!(
                    "Unparsable synchronous_standby_names value {value:?}: Unexpected token {text:?} at {pos}"
                ));
            }
            if *tok != Tok::Comma {
                return Err(format!(
                    "Unparsable synchronous_standby_names value {value:?}: Got token {text:?} while expecting comma at {pos}"
                ));
            }
            continue;
        }
        match tok {
            Tok::Ident | Tok::First | Tok::Any => members.insert(text),
            Tok::Star => {
                members.insert(text);
                has_star = true;
            }
            Tok::Dquot => members.insert(&text[1..text.len() - 1].replace("\"\"", "\"")),
            _ => {
                return Err(format!(
                    "Unparsable synchronous_standby_names value {value:?}: Unexpected token {text:?} at {pos}"
                ))
            }
        }
    }
    if members.len() == 1 && members.contains(STRICT_PLACEHOLDER) {
        members = NameSet::new();
    }
    Ok(Ssn { kind, has_star, num: n, members })
}

/// Patroni's `SYNC_STANDBY_NAME_RE` with Python's `$`, which also matches
/// before one final newline.
fn plain_name(value: &str) -> bool {
    let body = value.strip_suffix('\n').unwrap_or(value);
    let mut chars = body.chars();
    chars.next().is_some_and(is_ident_start) && chars.all(is_ident_char)
}

/// A name as it goes into the list: double-quoted unless it is a plain
/// identifier other than the keywords `first` and `any`.
pub fn quote_standby_name(value: &str) -> String {
    let lower = value.to_lowercase();
    if plain_name(value) && lower != "first" && lower != "any" {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('"', "\"\""))
    }
}

/// The value Patroni gives `synchronous_standby_names` for these standbys
/// (`None`: the setting is removed). `num` is how many must acknowledge;
/// with `quorum` the list is `ANY num (...)`, otherwise `num (...)` (which
/// PostgreSQL reads as `FIRST`) when more than one name is listed. No
/// standby but `num >= 1`, or a `*` among them, gives the strict
/// placeholder.
pub fn ssn_value(sync: &NameSet, num: Option<u32>, quorum: bool) -> Option<String> {
    let strict = sync.contains("*") || (num.is_some_and(|n| n >= 1) && sync.is_empty());
    let mut names: Vec<String> = if strict {
        vec![STRICT_PLACEHOLDER.to_string()]
    } else {
        let mut v: Vec<&str> = sync.iter().collect();
        v.sort_unstable();
        v.into_iter().map(quote_standby_name).collect()
    };
    let first = if names.len() > 1 { None } else { names.pop() };
    let list = match first {
        Some(one) => one,
        None if names.is_empty() => return None,
        None => names.join(","),
    };
    let count = num.unwrap_or(sync.len().max(1) as u32);
    if count == 0 {
        // PostgreSQL refuses `ANY 0 (...)` / `0 (...)`; waiting for no
        // standby is the empty value. (Patroni can write the refused form
        // before a promotion in quorum mode; the server then keeps the old
        // value, or refuses to start.)
        return None;
    }
    if quorum || !names.is_empty() {
        let prefix = if quorum { "ANY " } else { "" };
        Some(format!("{prefix}{count} ({list})"))
    } else {
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> NameSet {
        names.iter().copied().collect()
    }

    #[test]
    fn parse_table() {
        // (value, kind, has_star, num, members) — Patroni's doctests and more.
        let cases: &[(&str, SsnKind, bool, u32, &[&str])] = &[
            ("", SsnKind::Off, false, 0, &[]),
            ("FiRsT", SsnKind::Priority, false, 1, &["first"]),
            ("\"1\"", SsnKind::Priority, false, 1, &["1"]),
            (" a , b ", SsnKind::Priority, false, 1, &["a", "b"]),
            ("ANY 4(\"a\",*,b)", SsnKind::Quorum, true, 4, &["a", "*", "b"]),
            ("ANY 1(__patroni_strict_sync_replica_placeholder__)", SsnKind::Quorum, false, 1, &[]),
            ("2 (n2,n3)", SsnKind::Priority, false, 2, &["n2", "n3"]),
            ("FIRST 2 (n2, \"N 3\")", SsnKind::Priority, false, 2, &["n2", "N 3"]),
            ("\"a\"\"b\"", SsnKind::Priority, false, 1, &["a\"b"]),
            ("__patroni_strict_sync_replica_placeholder__", SsnKind::Priority, false, 1, &[]),
            ("*", SsnKind::Priority, true, 1, &["*"]),
        ];
        for (value, kind, star, num, members) in cases {
            let p = parse_ssn(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!((p.kind, p.has_star, p.num), (*kind, *star, *num), "{value}");
            assert_eq!(p.members, set(members), "{value}");
        }
    }

    #[test]
    fn parse_errors() {
        for value in ["1", "a,", "ANY 4(\"a\" b,\"c c\")", "FIRST 4(\"a\",)", "2 (,)", "a b", "a;b"] {
            assert!(parse_ssn(value).is_err(), "{value}");
        }
    }

    #[test]
    fn quoting() {
        let cases = [
            ("n1", "n1"),
            ("node_2$", "node_2$"),
            ("first", "\"first\""),
            ("ANY", "\"ANY\""),
            ("1node", "\"1node\""),
            ("my-node", "\"my-node\""),
            ("a\"b", "\"a\"\"b\""),
            ("n1\n", "n1\n"),
            ("", "\"\""),
        ];
        for (name, quoted) in cases {
            assert_eq!(quote_standby_name(name), quoted, "{name:?}");
        }
    }

    #[test]
    fn value_table() {
        // (standbys, num, quorum mode, expected)
        let p = STRICT_PLACEHOLDER;
        type Row = (&'static [&'static str], Option<u32>, bool, Option<String>);
        let cases: Vec<Row> = vec![
            (&[], None, false, None),
            (&[], Some(0), false, None),
            (&["n2"], None, false, Some("n2".into())),
            (&["n3", "n2"], None, false, Some("2 (n2,n3)".into())),
            (&["n3", "n2"], Some(1), false, Some("1 (n2,n3)".into())),
            (&["b-1", "a"], None, false, Some("2 (a,\"b-1\")".into())),
            (&[], Some(1), false, Some(p.into())),
            (&["*"], None, false, Some(p.into())),
            (&["n2"], Some(1), true, Some("ANY 1 (n2)".into())),
            (&["n2", "n3", "n4"], Some(2), true, Some("ANY 2 (n2,n3,n4)".into())),
            (&[], Some(1), true, Some(format!("ANY 1 ({p})"))),
            (&[], None, true, None),
            // Waiting for none of them is no wait at all: never `ANY 0`.
            (&["n2", "n3"], Some(0), true, None),
            (&["n2", "n3"], Some(0), false, None),
            (&["n2"], Some(0), true, None),
        ];
        for (names, num, quorum, expected) in cases {
            assert_eq!(ssn_value(&set(names), num, quorum), expected, "{names:?} {num:?} {quorum}");
        }
    }

    #[test]
    fn written_values_read_back() {
        for names in [&["n2"][..], &["n2", "n3"], &["first", "my node"]] {
            for quorum in [false, true] {
                let v = ssn_value(&set(names), Some(1), quorum).unwrap_or_default();
                let p = parse_ssn(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
                assert_eq!(p.members, set(names), "{v}");
                assert_eq!(p.kind, if quorum { SsnKind::Quorum } else { SsnKind::Priority }, "{v}");
            }
        }
    }
}
