//! PyYAML's emitter, for the documents patronictl prints: `safe_dump` of
//! JSON-like data with sorted keys, `allow_unicode=True` and `width=200`,
//! in block style (`show-config`, `-f yaml`) or flow style (tags in `tsv`).
//! It follows PyYAML's own rules: the scalar analysis that picks plain,
//! single- or double-quoted style, the implicit resolvers that decide
//! whether a plain string would read back as something else, indentation,
//! and the line splitting of long scalars.

use serde_json::{Map, Value};

const BEST_INDENT: usize = 2;
const BEST_WIDTH: usize = 200;

/// `yaml.safe_dump(v, default_flow_style=flow, allow_unicode=True, width=200)`.
pub fn dump(v: &Value, flow: bool) -> String {
    let mut e = Emitter { flow_style: flow, ..Emitter::default() };
    e.node(v, Context::Root);
    // expect_document_end, then a plain root scalar leaves the document
    // open and the stream end closes it with `...`.
    e.write_indent();
    if e.open_ended {
        e.write_indicator("...", true, false, false);
        e.write_indent();
    }
    e.out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Root,
    Sequence,
    MappingKey,
    MappingValue,
}

struct Emitter {
    out: String,
    flow_style: bool,
    column: usize,
    whitespace: bool,
    indention: bool,
    open_ended: bool,
    flow_level: usize,
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
}

impl Default for Emitter {
    fn default() -> Self {
        Self {
            out: String::new(),
            flow_style: false,
            column: 0,
            whitespace: true,
            indention: true,
            open_ended: false,
            flow_level: 0,
            indent: None,
            indents: Vec::new(),
        }
    }
}

impl Emitter {
    fn write(&mut self, data: &str) {
        self.column += data.chars().count();
        self.out.push_str(data);
    }

    fn write_indicator(&mut self, indicator: &str, need_whitespace: bool, whitespace: bool, indention: bool) {
        if !self.whitespace && need_whitespace {
            self.write(" ");
        }
        self.write(indicator);
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
    }

    fn write_line_break(&mut self) {
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
        self.out.push('\n');
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.write(&pad);
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        match self.indent {
            None => self.indent = Some(if flow { BEST_INDENT } else { 0 }),
            Some(i) if !indentless => self.indent = Some(i + BEST_INDENT),
            Some(_) => {}
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().flatten();
    }

    fn node(&mut self, v: &Value, ctx: Context) {
        match v {
            Value::Object(m) => {
                if self.flow_level > 0 || self.flow_style || m.is_empty() {
                    self.flow_mapping(m);
                } else {
                    self.block_mapping(m);
                }
            }
            Value::Array(a) => {
                if self.flow_level > 0 || self.flow_style || a.is_empty() {
                    self.flow_sequence(a);
                } else {
                    // Sequences under a mapping key are not indented.
                    let indentless = ctx == Context::MappingValue && !self.indention;
                    self.block_sequence(a, indentless);
                }
            }
            scalar => {
                self.increase_indent(true, false);
                let (text, implicit) = represent(scalar);
                self.scalar(&text, implicit, ctx);
                self.pop_indent();
            }
        }
    }

    fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
        let mut items: Vec<(&String, &Value)> = m.iter().collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        items
    }

    /// PyYAML's `check_simple_key` for a string key: shorter than 128
    /// characters with its `!!str` tag, not empty, on one line.
    fn simple_key(k: &str) -> bool {
        let a = analyze(k);
        "!!str".len() + k.chars().count() < 128 && !a.empty && !a.multiline
    }

    fn block_mapping(&mut self, m: &Map<String, Value>) {
        self.increase_indent(false, false);
        for (k, v) in Self::sorted(m) {
            self.write_indent();
            let key = Value::String(k.clone());
            if Self::simple_key(k) {
                self.node(&key, Context::MappingKey);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node(&key, Context::MappingValue);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(v, Context::MappingValue);
        }
        self.pop_indent();
    }

    fn block_sequence(&mut self, a: &[Value], indentless: bool) {
        self.increase_indent(false, indentless);
        for v in a {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(v, Context::Sequence);
        }
        self.pop_indent();
    }

    fn flow_mapping(&mut self, m: &Map<String, Value>) {
        self.write_indicator("{", true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        for (i, (k, v)) in Self::sorted(m).into_iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > BEST_WIDTH {
                self.write_indent();
            }
            let key = Value::String(k.clone());
            if Self::simple_key(k) {
                self.node(&key, Context::MappingKey);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, false);
                self.node(&key, Context::MappingValue);
                if self.column > BEST_WIDTH {
                    self.write_indent();
                }
                self.write_indicator(":", true, false, false);
            }
            self.node(v, Context::MappingValue);
        }
        self.pop_indent();
        self.flow_level -= 1;
        self.write_indicator("}", false, false, false);
    }

    fn flow_sequence(&mut self, a: &[Value]) {
        self.write_indicator("[", true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        for (i, v) in a.iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > BEST_WIDTH {
                self.write_indent();
            }
            self.node(v, Context::Sequence);
        }
        self.pop_indent();
        self.flow_level -= 1;
        self.write_indicator("]", false, false, false);
    }

    fn scalar(&mut self, text: &str, implicit: bool, ctx: Context) {
        let a = analyze(text);
        let simple_key = ctx == Context::MappingKey;
        let plain_ok = if self.flow_level > 0 { a.allow_flow_plain } else { a.allow_block_plain };
        let split = !simple_key;
        if implicit && !(simple_key && (a.empty || a.multiline)) && plain_ok {
            if ctx == Context::Root {
                self.open_ended = true;
            }
            self.write_plain(text, split);
        } else if a.allow_single_quoted && !(simple_key && a.multiline) {
            self.write_single_quoted(text, split);
        } else {
            self.write_double_quoted(text, split);
        }
    }

    fn write_plain(&mut self, text: &str, split: bool) {
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut start) = (false, 0);
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        let data: String = chars[start..end].iter().collect();
                        self.write(&data);
                    }
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || is_break(c)) {
                let data: String = chars[start..end].iter().collect();
                self.write(&data);
                start = end;
            }
            spaces = ch == Some(' ');
        }
    }

    fn write_single_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks, mut start) = (false, false, 0);
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && split && start != 0 && end != chars.len() {
                        self.write_indent();
                    } else {
                        let data: String = chars[start..end].iter().collect();
                        self.write(&data);
                    }
                    start = end;
                }
            } else if breaks {
                if ch.is_none_or(|c| !is_break(c)) {
                    if chars[start] == '\n' {
                        self.write_line_break();
                    }
                    for br in &chars[start..end] {
                        if *br == '\n' {
                            self.write_line_break();
                        } else {
                            // A break other than \n is written as itself.
                            self.out.push(*br);
                            self.whitespace = true;
                            self.indention = true;
                            self.column = 0;
                        }
                    }
                    self.write_indent();
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || is_break(c) || c == '\'') && start < end {
                let data: String = chars[start..end].iter().collect();
                self.write(&data);
                start = end;
            }
            if ch == Some('\'') {
                self.write("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let mut start = 0;
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            let escape = ch.is_none_or(|c| {
                matches!(c, '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
                    || !(('\x20'..='\x7e').contains(&c)
                        || ('\u{a0}'..='\u{d7ff}').contains(&c)
                        || ('\u{e000}'..='\u{fffd}').contains(&c))
            });
            if escape {
                if start < end {
                    let data: String = chars[start..end].iter().collect();
                    self.write(&data);
                    start = end;
                }
                if let Some(c) = ch {
                    let data = match c {
                        '\0' => "\\0".to_string(),
                        '\x07' => "\\a".to_string(),
                        '\x08' => "\\b".to_string(),
                        '\t' => "\\t".to_string(),
                        '\n' => "\\n".to_string(),
                        '\x0b' => "\\v".to_string(),
                        '\x0c' => "\\f".to_string(),
                        '\r' => "\\r".to_string(),
                        '\x1b' => "\\e".to_string(),
                        '"' => "\\\"".to_string(),
                        '\\' => "\\\\".to_string(),
                        '\u{85}' => "\\N".to_string(),
                        '\u{a0}' => "\\_".to_string(),
                        '\u{2028}' => "\\L".to_string(),
                        '\u{2029}' => "\\P".to_string(),
                        c if (c as u32) <= 0xff => format!("\\x{:02X}", c as u32),
                        c if (c as u32) <= 0xffff => format!("\\u{:04X}", c as u32),
                        c => format!("\\U{:08X}", c as u32),
                    };
                    self.write(&data);
                    start = end + 1;
                }
            }
            if 0 < end
                && end + 1 < chars.len()
                && (ch == Some(' ') || start >= end)
                // Python's `column + (end - start)`: `start` may be `end + 1`.
                && (self.column + end) as isize - start as isize > BEST_WIDTH as isize
                && split
            {
                let mut data: String = chars[start.min(end)..end].iter().collect();
                data.push('\\');
                if start < end {
                    start = end;
                }
                self.write(&data);
                self.write_indent();
                self.whitespace = false;
                self.indention = false;
                if chars.get(start) == Some(&' ') {
                    self.write("\\");
                }
            }
        }
        self.write_indicator("\"", false, false, false);
    }
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_space_or_break(c: Option<char>) -> bool {
    c.is_none_or(|c| matches!(c, '\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'))
}

/// The text of a scalar and whether a plain one would read back as the
/// same type (`implicit[0]` in PyYAML).
fn represent(v: &Value) -> (String, bool) {
    match v {
        Value::Null => ("null".into(), true),
        Value::Bool(b) => (b.to_string(), true),
        Value::Number(n) if n.is_f64() => (n.as_f64().map_or_else(|| n.to_string(), float), true),
        Value::Number(n) => (n.to_string(), true),
        Value::String(s) => (s.clone(), !resolves_to_other_type(s)),
        // Collections are not scalars; callers never pass them here.
        other => (other.to_string(), true),
    }
}

/// PyYAML's float: Python's repr, lower case, with `.0` before an exponent
/// that has no point (`1.0e+20`).
fn float(f: f64) -> String {
    let repr = crate::pyvalue::py_float(f).to_lowercase();
    match repr.as_str() {
        "nan" => ".nan".into(),
        "inf" => ".inf".into(),
        "-inf" => "-.inf".into(),
        _ if !repr.contains('.') && repr.contains('e') => repr.replacen('e', ".0e", 1),
        _ => repr,
    }
}

struct Analysis {
    empty: bool,
    multiline: bool,
    allow_flow_plain: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

/// PyYAML's `Emitter.analyze_scalar` (with `allow_unicode`).
fn analyze(text: &str) -> Analysis {
    if text.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            allow_flow_plain: false,
            allow_block_plain: true,
            allow_single_quoted: true,
        };
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut block_ind, mut flow_ind) = (false, false);
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    if text.starts_with("---") || text.starts_with("...") {
        block_ind = true;
        flow_ind = true;
    }
    let mut preceded_by_ws = true;
    let mut followed_by_ws = is_space_or_break(chars.get(1).copied());
    let (mut previous_space, mut previous_break) = (false, false);
    let last = chars.len() - 1;
    for (index, &ch) in chars.iter().enumerate() {
        if index == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_ind = true;
                block_ind = true;
            }
            if ch == '?' || ch == ':' {
                flow_ind = true;
                if followed_by_ws {
                    block_ind = true;
                }
            }
            if ch == '-' && followed_by_ws {
                flow_ind = true;
                block_ind = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_ind = true;
            }
            if ch == ':' {
                flow_ind = true;
                if followed_by_ws {
                    block_ind = true;
                }
            }
            if ch == '#' && preceded_by_ws {
                flow_ind = true;
                block_ind = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || ('\x20'..='\x7e').contains(&ch)) {
            let unicode = ch == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&ch)
                || ('\u{e000}'..='\u{fffd}').contains(&ch)
                || ('\u{10000}'..'\u{10ffff}').contains(&ch);
            if !unicode || ch == '\u{feff}' {
                special = true;
            }
        }
        if ch == ' ' {
            leading_space |= index == 0;
            trailing_space |= index == last;
            break_space |= previous_break;
            (previous_space, previous_break) = (true, false);
        } else if is_break(ch) {
            leading_break |= index == 0;
            trailing_break |= index == last;
            space_break |= previous_space;
            (previous_space, previous_break) = (false, true);
        } else {
            (previous_space, previous_break) = (false, false);
        }
        preceded_by_ws = is_space_or_break(Some(ch));
        followed_by_ws = is_space_or_break(chars.get(index + 2).copied());
    }
    let (mut flow_plain, mut block_plain, mut single) = (true, true, true);
    if leading_space || leading_break || trailing_space || trailing_break {
        flow_plain = false;
        block_plain = false;
    }
    if break_space {
        flow_plain = false;
        block_plain = false;
        single = false;
    }
    if space_break || special {
        flow_plain = false;
        block_plain = false;
        single = false;
    }
    if line_breaks {
        flow_plain = false;
        block_plain = false;
    }
    if flow_ind {
        flow_plain = false;
    }
    if block_ind {
        block_plain = false;
    }
    Analysis {
        empty: false,
        multiline: line_breaks,
        allow_flow_plain: flow_plain,
        allow_block_plain: block_plain,
        allow_single_quoted: single,
    }
}

/// Whether PyYAML's implicit resolvers read plain `s` as a bool, int,
/// float, null, timestamp, merge key or value key (so it must be quoted
/// to stay a string).
pub fn resolves_to_other_type(s: &str) -> bool {
    palisade_pycompat::yaml::resolve(s) != palisade_pycompat::yaml::Tag::Str
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected texts printed by PyYAML 6 `safe_dump(..., allow_unicode=True, width=200)`.
    #[test]
    fn scalars_as_pyyaml_writes_them() {
        let cases: &[(&str, &str, &str)] = &[
            ("hello", "k: hello\n", "{k: hello, l: [hello]}\n"),
            ("on", "k: 'on'\n", "{k: 'on', l: ['on']}\n"),
            ("=", "k: '='\n", "{k: '=', l: ['=']}\n"),
            ("<<", "k: '<<'\n", "{k: '<<', l: ['<<']}\n"),
            ("_", "k: _\n", "{k: _, l: [_]}\n"),
            ("2024-1-2", "k: 2024-1-2\n", "{k: 2024-1-2, l: [2024-1-2]}\n"),
            ("2024-01-02", "k: '2024-01-02'\n", "{k: '2024-01-02', l: ['2024-01-02']}\n"),
            ("+.5", "k: +.5\n", "{k: +.5, l: [+.5]}\n"),
            (":a", "k: :a\n", "{k: ':a', l: [':a']}\n"),
            ("a, b", "k: a, b\n", "{k: 'a, b', l: ['a, b']}\n"),
            ("---", "k: '---'\n", "{k: '---', l: ['---']}\n"),
            ("a\nb", "k: 'a\n\n  b'\n", "{k: 'a\n\n    b', l: ['a\n\n      b']}\n"),
            ("a\tb", "k: \"a\\tb\"\n", "{k: \"a\\tb\", l: [\"a\\tb\"]}\n"),
            ("it's", "k: it's\n", "{k: it's, l: [it's]}\n"),
            ("'q'", "k: '''q'''\n", "{k: '''q''', l: ['''q''']}\n"),
            ("%t [%p]: ", "k: '%t [%p]: '\n", "{k: '%t [%p]: ', l: ['%t [%p]: ']}\n"),
            ("é ü", "k: é ü\n", "{k: é ü, l: [é ü]}\n"),
        ];
        for (s, block, flow) in cases {
            assert_eq!(dump(&json!({"k": s}), false), *block, "{s:?}");
            assert_eq!(dump(&json!({"k": s, "l": [s]}), true), *flow, "{s:?}");
        }
    }

    #[test]
    fn documents_as_pyyaml_writes_them() {
        assert_eq!(dump(&json!("abc"), false), "abc\n...\n");
        assert_eq!(dump(&json!("on"), false), "'on'\n");
        assert_eq!(dump(&json!([]), false), "[]\n");
        assert_eq!(dump(&json!({}), false), "{}\n");
        assert_eq!(dump(&json!({"a": [{"b": 1, "c": [1, {}]}, []]}), false), "a:\n- b: 1\n  c:\n  - 1\n  - {}\n- []\n");
        assert_eq!(dump(&json!([[1, 2], {"x": null}]), false), "- - 1\n  - 2\n- x: null\n");
        // Lines longer than 200 columns are folded at a space.
        let long = format!("{} {}", "a".repeat(198), "b".repeat(10));
        assert_eq!(dump(&json!({"k": long}), false), format!("k: {}\n  {}\n", "a".repeat(198), "b".repeat(10)));
    }
}
