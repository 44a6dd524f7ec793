//! A unified diff of two texts exactly as Python's `difflib.unified_diff`
//! prints it for `edit-config` (three lines of context): the same
//! matching (`SequenceMatcher`, with its "popular line" heuristic for long
//! texts), so the same hunks as patronictl.

use std::collections::HashMap;

/// One `SequenceMatcher` opcode: what turns `a[i1..i2]` into `b[j1..j2]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    Equal,
    Replace,
    Delete,
    Insert,
}

type Opcode = (Tag, usize, usize, usize, usize);

struct Matcher<'a> {
    a: &'a [&'a str],
    b: &'a [&'a str],
    /// Where each line of `b` occurs (ascending), popular lines left out.
    b2j: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Matcher<'a> {
    fn new(a: &'a [&'a str], b: &'a [&'a str]) -> Self {
        let mut b2j: HashMap<&str, Vec<usize>> = HashMap::new();
        for (j, line) in b.iter().enumerate() {
            b2j.entry(line).or_default().push(j);
        }
        // autojunk: in texts of 200 lines or more, lines that make up more
        // than 1% of `b` do not seed matches.
        if b.len() >= 200 {
            let most = b.len() / 100 + 1;
            b2j.retain(|_, idx| idx.len() <= most);
        }
        Self { a, b, b2j }
    }

    /// The longest block with `a[i..i+k] == b[j..j+k]` inside the ranges,
    /// earliest in `a`, then earliest in `b`.
    fn longest_match(&self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> (usize, usize, usize) {
        let (mut besti, mut bestj, mut best) = (alo, blo, 0);
        let mut j2len: HashMap<usize, usize> = HashMap::new();
        for i in alo..ahi {
            let mut next: HashMap<usize, usize> = HashMap::new();
            for &j in self.b2j.get(self.a[i]).map(Vec::as_slice).unwrap_or(&[]) {
                if j < blo {
                    continue;
                }
                if j >= bhi {
                    break;
                }
                let k = j.checked_sub(1).and_then(|p| j2len.get(&p)).copied().unwrap_or(0) + 1;
                next.insert(j, k);
                if k > best {
                    (besti, bestj, best) = (i + 1 - k, j + 1 - k, k);
                }
            }
            j2len = next;
        }
        // Grow it over lines the index left out (popular ones).
        while besti > alo && bestj > blo && self.a[besti - 1] == self.b[bestj - 1] {
            (besti, bestj, best) = (besti - 1, bestj - 1, best + 1);
        }
        while besti + best < ahi && bestj + best < bhi && self.a[besti + best] == self.b[bestj + best] {
            best += 1;
        }
        (besti, bestj, best)
    }

    fn matching_blocks(&self) -> Vec<(usize, usize, usize)> {
        let (la, lb) = (self.a.len(), self.b.len());
        let mut queue = vec![(0, la, 0, lb)];
        let mut blocks = Vec::new();
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let (i, j, k) = self.longest_match(alo, ahi, blo, bhi);
            if k > 0 {
                blocks.push((i, j, k));
                if alo < i && blo < j {
                    queue.push((alo, i, blo, j));
                }
                if i + k < ahi && j + k < bhi {
                    queue.push((i + k, ahi, j + k, bhi));
                }
            }
        }
        blocks.sort_unstable();
        let mut out: Vec<(usize, usize, usize)> = Vec::new();
        for (i, j, k) in blocks {
            match out.last_mut() {
                Some(last) if last.0 + last.2 == i && last.1 + last.2 == j => last.2 += k,
                _ => out.push((i, j, k)),
            }
        }
        out.push((la, lb, 0));
        out
    }

    fn opcodes(&self) -> Vec<Opcode> {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        for (ai, bj, size) in self.matching_blocks() {
            let tag = match (i < ai, j < bj) {
                (true, true) => Some(Tag::Replace),
                (true, false) => Some(Tag::Delete),
                (false, true) => Some(Tag::Insert),
                (false, false) => None,
            };
            if let Some(t) = tag {
                out.push((t, i, ai, j, bj));
            }
            (i, j) = (ai + size, bj + size);
            if size > 0 {
                out.push((Tag::Equal, ai, i, bj, j));
            }
        }
        out
    }

    /// The hunks: changes with `n` lines of context, split where more than
    /// `2n` lines are unchanged.
    fn grouped(&self, n: usize) -> Vec<Vec<Opcode>> {
        let mut codes = self.opcodes();
        if codes.is_empty() {
            codes.push((Tag::Equal, 0, 1, 0, 1));
        }
        if let Some(first) = codes.first_mut().filter(|c| c.0 == Tag::Equal) {
            first.1 = first.1.max(first.2.saturating_sub(n));
            first.3 = first.3.max(first.4.saturating_sub(n));
        }
        if let Some(last) = codes.last_mut().filter(|c| c.0 == Tag::Equal) {
            last.2 = last.2.min(last.1 + n);
            last.4 = last.4.min(last.3 + n);
        }
        let mut groups = Vec::new();
        let mut group = Vec::new();
        for (tag, mut i1, i2, mut j1, j2) in codes {
            if tag == Tag::Equal && i2 - i1 > 2 * n {
                group.push((tag, i1, i2.min(i1 + n), j1, j2.min(j1 + n)));
                groups.push(std::mem::take(&mut group));
                (i1, j1) = (i1.max(i2.saturating_sub(n)), j1.max(j2.saturating_sub(n)));
            }
            group.push((tag, i1, i2, j1, j2));
        }
        let only_context = group.len() == 1 && group[0].0 == Tag::Equal;
        if !group.is_empty() && !only_context {
            groups.push(group);
        }
        groups
    }
}

/// difflib's `_format_range_unified`.
fn range(start: usize, stop: usize) -> String {
    let len = stop - start;
    match len {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        _ => format!("{},{len}", start + 1),
    }
}

/// The diff lines (`--- `, `+++ `, `@@ ... @@`, then ` `/`-`/`+` lines);
/// empty when the texts are the same. Like patronictl, trailing newlines
/// are ignored.
pub fn unified(before: &str, after: &str) -> Vec<String> {
    let a: Vec<&str> = before.trim_end_matches('\n').split('\n').collect();
    let b: Vec<&str> = after.trim_end_matches('\n').split('\n').collect();
    let matcher = Matcher::new(&a, &b);
    let mut out = Vec::new();
    for group in matcher.grouped(3) {
        if out.is_empty() {
            out.push("--- ".to_string());
            out.push("+++ ".to_string());
        }
        let (first, last) = (group[0], group[group.len() - 1]);
        out.push(format!("@@ -{} +{} @@", range(first.1, last.2), range(first.3, last.4)));
        for (tag, i1, i2, j1, j2) in group {
            if tag == Tag::Equal {
                out.extend(a[i1..i2].iter().map(|l| format!(" {l}")));
                continue;
            }
            if matches!(tag, Tag::Replace | Tag::Delete) {
                out.extend(a[i1..i2].iter().map(|l| format!("-{l}")));
            }
            if matches!(tag, Tag::Replace | Tag::Insert) {
                out.extend(b[j1..j2].iter().map(|l| format!("+{l}")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_look_like_difflib() {
        let before = "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\n";
        let after = "a: 1\nb: 2\nc: 3\nd: 40\ne: 5\nf: 6\ng: 7\nh: 8\ni: 9\n";
        assert_eq!(
            unified(before, after),
            [
                "--- ",
                "+++ ",
                "@@ -1,8 +1,9 @@",
                " a: 1",
                " b: 2",
                " c: 3",
                "-d: 4",
                "+d: 40",
                " e: 5",
                " f: 6",
                " g: 7",
                " h: 8",
                "+i: 9"
            ]
        );
        let far_apart = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let changed = "0\n2\n3\n4\n5\n6\n7\n8\n9\n11\n";
        assert_eq!(
            unified(far_apart, changed),
            [
                "--- ",
                "+++ ",
                "@@ -1,4 +1,4 @@",
                "-1",
                "+0",
                " 2",
                " 3",
                " 4",
                "@@ -7,4 +7,4 @@",
                " 7",
                " 8",
                " 9",
                "-10",
                "+11"
            ]
        );
        assert!(unified("x\n", "x\n").is_empty());
    }

    /// Expected values printed by Python's difflib.unified_diff.
    #[test]
    fn same_hunks_as_difflib_where_a_plain_lcs_differs() {
        let config = "loop_wait: 1\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    hot_standby: 'on'\n    max_replication_slots: 10\n    max_wal_senders: 10\n    wal_level: replica\n    wal_log_hints: 'on'\n  use_slots: true\nretry_timeout: 3\nttl: 10\n";
        let edited = config.replace("loop_wait: 1", "loop_wait: 3") + "retry_timeout: 4\n";
        let cases: [(&str, &str, &[&str]); 3] = [
            (
                config,
                &edited,
                &[
                    "--- ",
                    "+++ ",
                    "@@ -1,4 +1,4 @@",
                    "-loop_wait: 1",
                    "+loop_wait: 3",
                    " maximum_lag_on_failover: 1048576",
                    " postgresql:",
                    "   parameters:",
                    "@@ -10,3 +10,4 @@",
                    "   use_slots: true",
                    " retry_timeout: 3",
                    " ttl: 10",
                    "+retry_timeout: 4",
                ],
            ),
            (
                "a\nb\nc\nd\n",
                "d\nc\nb\na\n",
                &["--- ", "+++ ", "@@ -1,4 +1,4 @@", "+d", "+c", "+b", " a", "-b", "-c", "-d"],
            ),
            (
                "x\ny\nx\ny\nz\n",
                "y\nx\nz\nz\nx\n",
                &["--- ", "+++ ", "@@ -1,5 +1,5 @@", "-x", " y", " x", "-y", " z", "+z", "+x"],
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(unified(a, b), want, "{a:?} -> {b:?}");
        }
        // 200 lines or more: lines making up over 1% of the text do not
        // seed matches (difflib's autojunk).
        let text = |changed: u32| {
            let mut lines = vec!["  same: 1".to_string(); 150];
            lines.extend((0..60).map(|i| format!("k{i}: {}", if i == 30 { changed } else { i })));
            lines.join("\n") + "\n"
        };
        assert_eq!(
            unified(&text(30), &text(99)),
            [
                "--- ",
                "+++ ",
                "@@ -178,7 +178,7 @@",
                " k27: 27",
                " k28: 28",
                " k29: 29",
                "-k30: 30",
                "+k30: 99",
                " k31: 31",
                " k32: 32",
                " k33: 33"
            ]
        );
    }
}
