//! Quoting rules for the files and strings we write, each as Patroni applies it.

/// A value in `postgresql.conf`: single quotes around it, with `'` and `\`
/// doubled (`it's` becomes `'it''s'`). A quoted value cannot span lines
/// in that file, so a newline or carriage return (from a replica plugin's
/// `restore_command`, a parameter in the DCS) is written as PostgreSQL's
/// escape (`\n`, `\r`), other control characters but the tab as octal
/// (`\001`): the file stays readable whatever the value.
pub fn conf_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' | '\\' => out.push(c),
            '\n' => {
                out.push_str("\\n");
                continue;
            }
            '\r' => {
                out.push_str("\\r");
                continue;
            }
            c if c.is_ascii_control() && c != '\t' => {
                out.push_str(&format!("\\{:03o}", c as u32));
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A value in a libpq `key=value` connection string: `'`, `\` and space
/// get a backslash in front (Patroni's `format_dsn`).
pub fn dsn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\'' || c == '\\' || c == ' ' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A field of a `.pgpass` line: `:` and `\` get a backslash in front.
pub fn pgpass_field(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == ':' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An SQL string literal, as libpq's `PQescapeLiteral` writes it: quotes
/// doubled, and an `E'...'` literal with doubled backslashes when the value
/// has a backslash.
pub fn sql_literal(value: &str) -> String {
    let has_backslash = value.contains('\\');
    let mut out = String::with_capacity(value.len() + 3);
    if has_backslash {
        out.push_str(" E");
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// An SQL identifier, always double-quoted, with `"` doubled.
pub fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_values() {
        for (input, want) in [
            ("on", "'on'"),
            ("it's", "'it''s'"),
            (r"C:\dir", r"'C:\\dir'"),
            ("", "''"),
            ("cp %p /arch/%f", "'cp %p /arch/%f'"),
            ("a\nb\r\tc\u{1}\u{7f}", r"'a\nb\r	c\001\177'"),
        ] {
            assert_eq!(conf_value(input), want, "{input}");
        }
    }

    #[test]
    fn dsn_values() {
        for (input, want) in [("abc", "abc"), ("a b", r"a\ b"), ("it's", r"it\'s"), (r"a\b", r"a\\b")] {
            assert_eq!(dsn_value(input), want, "{input}");
        }
    }

    #[test]
    fn pgpass_fields() {
        for (input, want) in [("pw", "pw"), ("a:b", r"a\:b"), (r"a\b", r"a\\b"), ("::1", r"\:\:1")] {
            assert_eq!(pgpass_field(input), want, "{input}");
        }
    }

    #[test]
    fn sql_quoting() {
        assert_eq!(sql_literal("secret"), "'secret'");
        assert_eq!(sql_literal("it's"), "'it''s'");
        assert_eq!(sql_literal(r"a\b"), r" E'a\\b'");
        assert_eq!(sql_ident("replicator"), "\"replicator\"");
        assert_eq!(sql_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
