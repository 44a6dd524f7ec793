//! Tables as patronictl prints them: `pretty` (PrettyTable with the title
//! in the top rule), `tsv`, `json` and `yaml`.

use serde_json::{Map, Value};

use crate::yaml;

pub use palisade_ctl::cli::Format;

/// Python's `str()` of a cell.
pub fn py_str(v: &Value) -> String {
    crate::pyvalue::py_str(v)
}

/// Column alignment in `pretty` tables.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Render a table. `header` is the title of `pretty` tables (and marks a
/// member list, whose first column is the cluster name).
pub fn render(
    columns: &[String],
    rows: &[Vec<Value>],
    right: &[&str],
    fmt: Format,
    header: &str,
    delimiter: &str,
) -> String {
    match fmt {
        Format::Json | Format::Yaml | Format::Yml => {
            let elements: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let mut m = Map::new();
                    for (k, v) in columns.iter().zip(r) {
                        if header.is_empty() || !py_str(v).is_empty() {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                    Value::Object(m)
                })
                .collect();
            let list = Value::Array(elements);
            if fmt == Format::Json {
                format!("{}\n", yaml::to_python_json(&list))
            } else {
                // click.echo adds a newline to the document's own.
                format!("{}\n", yaml::to_yaml(&list))
            }
        }
        Format::Pretty | Format::Tsv | Format::Topology => {
            let list_cluster = !header.is_empty() && columns.first().is_some_and(|c| c == "Cluster");
            let mut columns = columns.to_vec();
            let mut rows: Vec<Vec<Value>> = rows.to_vec();
            if list_cluster {
                if let Some(i) = columns.iter().position(|c| c == "Tags") {
                    for row in &mut rows {
                        // Any truthy value, as patronictl's `if row[i]`.
                        if palisade_pycompat::py::truthy(&row[i]) {
                            let text =
                                if fmt == Format::Pretty { yaml::to_yaml(&row[i]) } else { yaml::to_flow(&row[i]) };
                            row[i] = Value::String(text.trim().to_string());
                        }
                    }
                }
            }
            if list_cluster && fmt != Format::Tsv {
                let skip = if header.contains(" (group: ") { 2 } else { 1 };
                columns.drain(..skip.min(columns.len()));
                for r in &mut rows {
                    r.drain(..skip.min(r.len()));
                }
            }
            if columns.is_empty() && fmt != Format::Tsv {
                // PrettyTable names the fields of a table made without any.
                let n = rows.first().map_or(0, Vec::len);
                columns = (1..=n).map(|i| format!("Field {i}")).collect();
            }
            let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(py_str).collect()).collect();
            if fmt == Format::Tsv {
                let mut out = String::new();
                if !columns.is_empty() {
                    out.push_str(&columns.join(delimiter));
                    out.push('\n');
                }
                for r in cells {
                    out.push_str(&r.join(delimiter));
                    out.push('\n');
                }
                out
            } else {
                let aligns: Vec<Align> = columns
                    .iter()
                    .map(|c| if right.contains(&c.as_str()) { Align::Right } else { Align::Left })
                    .collect();
                pretty(header, &columns, &cells, &aligns)
            }
        }
    }
}

/// The display width of one line, as wcwidth measures it for PrettyTable:
/// wide (East Asian, emoji) characters count two, combining and control
/// characters nothing, a tab runs to the next multiple of eight.
fn width(s: &str) -> usize {
    use unicode_width::UnicodeWidthStr;
    let mut total = 0;
    for (i, stretch) in s.split('\t').enumerate() {
        if i > 0 {
            total = (total / 8 + 1) * 8;
        }
        for part in stretch.split(|c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
            // A soft hyphen is visible for wcwidth.
            total += part.width() + part.matches('\u{ad}').count();
        }
    }
    total
}

/// Python's `str.expandtabs()`: tabs to the next multiple of eight
/// characters, counted from the last line break.
fn expand_tabs(s: &str) -> String {
    if !s.contains('\t') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut column = 0;
    for c in s.chars() {
        match c {
            '\t' => {
                let n = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', n));
                column += n;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            c => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

fn pad(s: &str, w: usize, a: Align) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    match a {
        Align::Left => format!("{s}{fill}"),
        Align::Right => format!("{fill}{s}"),
    }
}

/// A PrettyTable with patronictl's title injected into the top rule.
pub fn pretty(title: &str, columns: &[String], rows: &[Vec<String>], aligns: &[Align]) -> String {
    // PrettyTable expands the tabs of values (not of field names).
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| expand_tabs(c)).collect()).collect();
    let rows = rows.as_slice();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            let cells = rows.iter().filter_map(|r| r.get(i)).flat_map(|c| c.split('\n')).map(width);
            cells.chain(std::iter::once(width(&columns[i]))).max().unwrap_or(0)
        })
        .collect();
    let rule: String = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        // PrettyTable closes a table without columns too: `++`.
        if widths.is_empty() {
            s.push('+');
        }
        s
    };
    let top = if title.is_empty() {
        rule.clone()
    } else {
        let chars: Vec<char> = rule.chars().collect();
        let max = chars.len().saturating_sub(2);
        let t: String = title.chars().take(max).collect();
        let n = t.chars().count();
        let mut s = String::new();
        s.push(chars[0]);
        s.push_str(&t);
        s.extend(chars.iter().skip(1 + n));
        s
    };
    let line = |cells: &[String]| {
        let mut s = String::from(if widths.is_empty() { "||" } else { "|" });
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).map_or("", String::as_str);
            s.push(' ');
            s.push_str(&pad(c, *w, aligns.get(i).copied().unwrap_or(Align::Left)));
            s.push_str(" |");
        }
        s
    };
    let all_rules = rows.iter().any(|r| r.iter().any(|c| c.contains('\n')));
    let mut out = vec![top, line(columns), rule.clone()];
    for (n, r) in rows.iter().enumerate() {
        let height = r.iter().map(|c| c.split('\n').count()).max().unwrap_or(1);
        for k in 0..height {
            let physical: Vec<String> = r.iter().map(|c| c.split('\n').nth(k).unwrap_or("").to_string()).collect();
            out.push(line(&physical));
        }
        if all_rules && n + 1 < rows.len() {
            out.push(rule.clone());
        }
    }
    out.push(rule);
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_member_list_as_patronictl_prints_it() {
        let columns =
            cols(&["Cluster", "Member", "Host", "Role", "State", "TL", "Receive LSN", "Lag", "Replay LSN", "Lag"]);
        let rows = vec![
            vec![
                json!("demo"),
                json!("node1"),
                json!("127.0.0.1:5432"),
                json!("Leader"),
                json!("running"),
                json!(1),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
            ],
            vec![
                json!("demo"),
                json!("node2"),
                json!("127.0.0.1:5433"),
                json!("Replica"),
                json!("streaming"),
                json!(1),
                json!("0/3000060"),
                json!(0),
                json!("0/3000060"),
                json!(0),
            ],
        ];
        let right = ["Receive LSN", "Replay LSN", "Lag", "TL"];
        let got = render(&columns, &rows, &right, Format::Pretty, " Cluster: demo (7311) ", "\t");
        let want = "\
+ Cluster: demo (7311) ---+---------+-----------+----+-------------+-----+------------+-----+
| Member | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+
| node1  | 127.0.0.1:5432 | Leader  | running   |  1 |             |     |            |     |
| node2  | 127.0.0.1:5433 | Replica | streaming |  1 |   0/3000060 |   0 |  0/3000060 |   0 |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+
";
        assert_eq!(got, want);
        let tsv = render(&columns, &rows, &right, Format::Tsv, " Cluster: demo (7311) ", "\t");
        assert!(tsv.starts_with("Cluster\tMember\tHost"));
        assert!(tsv.contains("\ndemo\tnode2\t127.0.0.1:5433\tReplica\tstreaming\t1\t0/3000060\t0\t0/3000060\t0\n"));
        let json = render(
            &columns[..6],
            &rows.iter().map(|r| r[..6].to_vec()).collect::<Vec<_>>(),
            &right,
            Format::Json,
            " Cluster: demo ",
            "\t",
        );
        assert!(json.starts_with(r#"[{"Cluster": "demo", "Member": "node1", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 1}"#), "{json}");
    }

    #[test]
    fn multi_line_cells_get_rules_between_rows() {
        let got = pretty(
            "",
            &cols(&["A", "B"]),
            &[vec!["x".into(), "1\n22".into()], vec!["y".into(), "3".into()]],
            &[Align::Left, Align::Left],
        );
        assert_eq!(
            got,
            "+---+----+\n| A | B  |\n+---+----+\n| x | 1  |\n|   | 22 |\n+---+----+\n| y | 3  |\n+---+----+\n"
        );
    }

    /// Expected text printed by PrettyTable 3 (wcwidth widths, tabs).
    #[test]
    fn wide_characters_and_tabs_as_prettytable_measures_them() {
        let got = pretty(
            " T ",
            &cols(&["名前", "x\ty"]),
            &[vec!["中文😀".into(), "a\tb".into()], vec!["e\u{301}".into(), "1".into()]],
            &[Align::Left, Align::Right],
        );
        let want = "+ T -----+-----------+\n| 名前   | x\ty |\n+--------+-----------+\n| 中文😀 | a       b |\n| e\u{301}      |         1 |\n+--------+-----------+\n";
        assert_eq!(got, want);
    }

    #[test]
    fn a_long_title_is_cut_to_the_rule() {
        let got = pretty(" Cluster: a-very-long-name ", &cols(&["A"]), &[vec!["x".into()]], &[Align::Left]);
        assert_eq!(got.lines().next(), Some("+ Cl+"));
    }
}
