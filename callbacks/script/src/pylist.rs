//! Python's `str()` of a list of strings (`['cb.sh', 'on_start', 'replica',
//! 'demo']`), so that the lines Patroni logs with a command list read the
//! same here.

/// `str(argv)` as Python 3 prints a list of `str`.
pub fn py_list(argv: &[String]) -> String {
    let items: Vec<String> = argv.iter().map(|s| py_str_repr(s)).collect();
    format!("[{}]", items.join(", "))
}

/// `repr()` of a Python `str`: single quotes unless the text holds a single
/// quote and no double quote; backslash, the quote, `\t`, `\n`, `\r` and
/// other control characters escaped.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_lists_as_python_does() {
        // Expected values are what python3 prints for str([...]).
        let cases: &[(&[&str], &str)] = &[
            (&[], "[]"),
            (&["/bin/cb.sh", "on_start", "replica", "demo"], "['/bin/cb.sh', 'on_start', 'replica', 'demo']"),
            (&["it's"], "[\"it's\"]"),
            (&["both ' and \""], "['both \\' and \"']"),
            (&["say \"hi\""], "['say \"hi\"']"),
            (&["a\\b", "t\tn\nr\r"], "['a\\\\b', 't\\tn\\nr\\r']"),
            (&["\u{1}\u{7f}"], "['\\x01\\x7f']"),
            (&["é"], "['é']"),
        ];
        for (argv, want) in cases {
            let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
            assert_eq!(py_list(&argv), *want, "{argv:?}");
        }
    }
}
