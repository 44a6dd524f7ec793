//! Splitting a `query` script into its statements, as PostgreSQL's lexer
//! sees them: semicolons inside quotes, dollar quotes and comments do not
//! count. `query` needs the last statement alone to learn its column types
//! (the simple query protocol runs the whole script but, through
//! tokio-postgres, does not tell them).

/// The statements of `sql`, trimmed; pieces holding only blanks and
/// comments are left out.
pub fn statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut code, mut i) = (0, false, 0);
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            b';' => {
                if code {
                    out.push(sql[start..i].trim());
                }
                (start, code) = (i + 1, false);
                i += 1;
            }
            b'-' if next == Some(b'-') => {
                i = sql[i..].find('\n').map_or(b.len(), |n| i + n + 1);
            }
            b'/' if next == Some(b'*') => {
                // Block comments nest in PostgreSQL.
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' | b'"' => {
                // E'...' strings take backslash escapes; '' and "" double.
                let escapes =
                    c == b'\'' && i > 0 && matches!(b[i - 1], b'E' | b'e') && !ident_byte(b, i.wrapping_sub(2));
                code = true;
                i += 1;
                while i < b.len() {
                    let escaped = escapes && b[i] == b'\\';
                    if escaped || (b[i] == c && b.get(i + 1) == Some(&c)) {
                        i += 2;
                    } else if b[i] == c {
                        i += 1;
                        break;
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' if !ident_byte(b, i.wrapping_sub(1)) => {
                code = true;
                match dollar_tag(&sql[i..]) {
                    Some(tag) => {
                        let body = i + tag.len();
                        i = sql[body..].find(tag).map_or(b.len(), |n| body + n + tag.len());
                    }
                    None => i += 1,
                }
            }
            c => {
                code |= !c.is_ascii_whitespace();
                i += 1;
            }
        }
    }
    if code {
        out.push(sql[start..].trim());
    }
    out
}

/// Whether `b[i]` exists and may be part of an identifier.
fn ident_byte(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80)
}

/// `$tag$` at the start of `s` (`$$` too); not `$1`.
fn dollar_tag(s: &str) -> Option<&str> {
    let rest = &s[1..];
    let end = rest.find('$')?;
    let tag = &rest[..end];
    let valid = tag.chars().enumerate().all(|(k, c)| c == '_' || c.is_alphabetic() || (k > 0 && c.is_ascii_digit()));
    valid.then(|| &s[..end + 2])
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn semicolons_that_end_statements() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT 1", &["SELECT 1"]),
            ("SELECT 1;", &["SELECT 1"]),
            ("SELECT 1; SELECT 2 AS b ;  ", &["SELECT 1", "SELECT 2 AS b"]),
            ("SELECT ';'; SELECT 2", &["SELECT ';'", "SELECT 2"]),
            ("SELECT 'it''s;'; SELECT 2", &["SELECT 'it''s;'", "SELECT 2"]),
            (r"SELECT E'\';'; SELECT 2", &[r"SELECT E'\';'", "SELECT 2"]),
            (r#"SELECT 1 AS "a;b""#, &[r#"SELECT 1 AS "a;b""#]),
            ("SELECT $$a;b$$; SELECT $x$ $$; $x$", &["SELECT $$a;b$$", "SELECT $x$ $$; $x$"]),
            ("SELECT $1; SELECT 2", &["SELECT $1", "SELECT 2"]),
            ("SELECT 1 -- no; really\n; SELECT 2", &["SELECT 1 -- no; really", "SELECT 2"]),
            ("SELECT 1; /* a /* nested; */ comment; */", &["SELECT 1"]),
            ("SELECT 1; -- done", &["SELECT 1"]),
            ("", &[]),
            (" ; ;", &[]),
        ];
        for (sql, want) in cases {
            assert_eq!(statements(sql), *want, "{sql:?}");
        }
    }
}
