//! Values written into SQL text the way psycopg writes them for Patroni
//! (client-side: the statement that reaches the server is the text).

/// A string literal: `'...'` with quotes doubled (the server's
/// `standard_conforming_strings` is on by default; a value holding a
/// backslash is written `E'...'`, which means the same either way).
pub fn literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// An identifier, always quoted, as psycopg's `quote_ident`.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Patroni's `format_dsn` for the given keyword/value pairs: `key=value`
/// joined by spaces, with `'`, `\` and spaces escaped by a backslash.
pub fn dsn(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut escaped = String::with_capacity(v.len());
            for c in v.chars() {
                if matches!(c, '\'' | '\\' | ' ') {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            format!("{k}={escaped}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let cases = [
            (literal("host"), "'host'"),
            (literal("o'h"), "'o''h'"),
            (literal(r"a\b"), r"E'a\\b'"),
            (ident("citus"), "\"citus\""),
            (ident("we\"ird"), "\"we\"\"ird\""),
            (dsn(&[("password", "p w'\\"), ("sslcert", "/c.crt")]), r"password=p\ w\'\\ sslcert=/c.crt"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
