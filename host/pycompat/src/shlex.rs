//! Python's `shlex.split` (POSIX mode, no comments), as Patroni splits
//! commands, and Patroni's `unquote` built on it.
//!
//! The rules: blanks (space, tab, CR, LF) separate words; single quotes keep
//! everything literally; inside double quotes a backslash escapes only `"`
//! and `\` (so `"x\$y"` stays `x\$y`); outside quotes a backslash escapes
//! any character; `''` is an empty word; `#`, `$` and backquotes are
//! ordinary characters. An unclosed quote or a final backslash is an error,
//! as it is a `ValueError` in Python.

use std::fmt;

/// Why a command line could not be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// A quote was opened and never closed.
    NoClosingQuotation,
    /// The line ends with a backslash.
    NoEscapedCharacter,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoClosingQuotation => f.write_str("no closing quotation"),
            Self::NoEscapedCharacter => f.write_str("no escaped character after the final backslash"),
        }
    }
}

impl std::error::Error for SplitError {}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Split `line` into words.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut chars = line.chars();
    // `Some` while inside a word (possibly an empty one made of quotes).
    let mut word: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            c if is_blank(c) => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\\' => {
                let escaped = chars.next().ok_or(SplitError::NoEscapedCharacter)?;
                word.get_or_insert_with(String::new).push(escaped);
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        None => return Err(SplitError::NoClosingQuotation),
                        Some('\'') => break,
                        Some(q) => w.push(q),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        None => return Err(SplitError::NoClosingQuotation),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            None => return Err(SplitError::NoEscapedCharacter),
                            Some(e @ ('"' | '\\')) => w.push(e),
                            Some(e) => {
                                w.push('\\');
                                w.push(e);
                            }
                        },
                        Some(q) => w.push(q),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words)
}

/// Patroni's `unquote` (`utils.py`): a value that splits into exactly one
/// word becomes that word (so `'"a b"'` becomes `a b`); anything else,
/// including a value that cannot be split, is kept as it is. Patroni
/// applies it once, to initdb and basebackup option values.
pub fn unquote(value: &str) -> String {
    match split(value) {
        Ok(mut words) if words.len() == 1 => words.pop().unwrap_or_default(),
        _ => value.to_string(),
    }
}

/// Python's `shlex.quote`: a word made only of ASCII letters, digits and
/// `@%+=:,./-_` is left as it is; anything else (the empty word included)
/// is put in single quotes, each `'` inside written as `'"'"'`. The result
/// is one word for `/bin/sh`, and `split` gives the original back.
pub fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c)) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\"'\"'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_python_shlex() {
        // Expected values checked against Python 3's shlex.quote.
        for (word, quoted) in [
            ("", "''"),
            ("plain", "plain"),
            ("/etc/pgbackrest/pgbackrest.conf", "/etc/pgbackrest/pgbackrest.conf"),
            ("a=b,c:d@e%f+g-h_i", "a=b,c:d@e%f+g-h_i"),
            ("a b", "'a b'"),
            ("it's", "'it'\"'\"'s'"),
            ("$HOME", "'$HOME'"),
            ("%p", "%p"),
            ("\"%p\"", "'\"%p\"'"),
            ("caf\u{e9}", "'caf\u{e9}'"),
        ] {
            assert_eq!(quote(word), quoted, "{word:?}");
            assert_eq!(split(&quote(word)).ok(), Some(vec![word.to_string()]), "{word:?}");
        }
    }

    fn ok(line: &str) -> Vec<String> {
        match split(line) {
            Ok(w) => w,
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    #[test]
    fn splits_like_python_shlex() {
        // Expected values checked against Python 3's shlex.split.
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   \t\n", &[]),
            ("a b  c", &["a", "b", "c"]),
            (
                "/usr/bin/restore --stanza=main --delta restore",
                &["/usr/bin/restore", "--stanza=main", "--delta", "restore"],
            ),
            ("a 'b c' d", &["a", "b c", "d"]),
            ("a \"b c\" d", &["a", "b c", "d"]),
            ("a'b'c", &["abc"]),
            ("a '' b", &["a", "", "b"]),
            ("\"\"", &[""]),
            ("a\\ b", &["a b"]),
            ("a\\b", &["ab"]),
            ("'a\\b'", &["a\\b"]),
            ("\"a\\b\"", &["a\\b"]),
            ("\"a\\\"b\"", &["a\"b"]),
            ("\"a\\\\b\"", &["a\\b"]),
            ("\"$HOME `x`\"", &["$HOME `x`"]),
            // Python keeps the backslash before $ and ` in double quotes.
            ("\"x\\$y\"", &["x\\$y"]),
            ("\"a\\`b\"", &["a\\`b"]),
            ("a#b # c", &["a#b", "#", "c"]),
            ("'it'\\''s'", &["it's"]),
            ("x=\"1 2\"y", &["x=1 2y"]),
        ];
        for (line, expected) in cases {
            assert_eq!(ok(line), expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{line:?}");
        }
    }

    #[test]
    fn reports_unbalanced_input() {
        assert_eq!(split("a 'b"), Err(SplitError::NoClosingQuotation));
        assert_eq!(split("a \"b"), Err(SplitError::NoClosingQuotation));
        assert_eq!(split("a \"b\\"), Err(SplitError::NoEscapedCharacter));
        assert_eq!(split("a b\\"), Err(SplitError::NoEscapedCharacter));
    }

    #[test]
    fn unquotes_like_patroni() {
        assert_eq!(unquote("100M"), "100M");
        assert_eq!(unquote("\"bar baz\""), "bar baz");
        assert_eq!(unquote("'bar baz'"), "bar baz");
        assert_eq!(unquote("bar baz"), "bar baz");
        assert_eq!(unquote("\"a multi\" \"quoted string\""), "\"a multi\" \"quoted string\"");
        assert_eq!(unquote("unbalanced \"quoted string"), "unbalanced \"quoted string");
        assert_eq!(unquote(""), "");
    }
}
