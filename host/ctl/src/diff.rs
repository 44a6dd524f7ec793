//! A unified diff of two texts, as Python's `difflib.unified_diff` prints
//! it (three lines of context), for `edit-config`.

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Same,
    Del,
    Add,
}

/// The edit script between `a` and `b` (longest common subsequence).
fn script(a: &[&str], b: &[&str]) -> Vec<(Op, usize, usize)> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((Op::Same, i, j));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push((Op::Add, i, j));
            j += 1;
        } else {
            out.push((Op::Del, i, j));
            i += 1;
        }
    }
    // difflib lists deletions before insertions within a change.
    let mut k = 0;
    while k < out.len() {
        if out[k].0 == Op::Same {
            k += 1;
            continue;
        }
        let start = k;
        while k < out.len() && out[k].0 != Op::Same {
            k += 1;
        }
        out[start..k].sort_by_key(|(op, _, _)| u8::from(*op == Op::Add));
    }
    out
}

fn range(start: usize, len: usize) -> String {
    match len {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        _ => format!("{},{len}", start + 1),
    }
}

/// The diff lines (`--- `, `+++ `, `@@ ... @@`, then ` `/`-`/`+` lines);
/// empty when the texts are the same.
pub fn unified(before: &str, after: &str) -> Vec<String> {
    let a: Vec<&str> = before.trim_end_matches('\n').split('\n').collect();
    let b: Vec<&str> = after.trim_end_matches('\n').split('\n').collect();
    let ops = script(&a, &b);
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, o)| o.0 != Op::Same).map(|(i, _)| i).collect();
    if changed.is_empty() {
        return Vec::new();
    }
    // Group changes whose context (3 lines) touches.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &c in &changed {
        let lo = c.saturating_sub(3);
        let hi = (c + 3).min(ops.len() - 1);
        match groups.last_mut() {
            Some(g) if lo <= g.1 + 1 => g.1 = hi,
            _ => groups.push((lo, hi)),
        }
    }
    let mut out = vec!["--- ".to_string(), "+++ ".to_string()];
    for (lo, hi) in groups {
        let slice = &ops[lo..=hi];
        let a_start = slice.iter().map(|o| o.1).min().unwrap_or(0);
        let b_start = slice.iter().map(|o| o.2).min().unwrap_or(0);
        let a_len = slice.iter().filter(|o| o.0 != Op::Add).count();
        let b_len = slice.iter().filter(|o| o.0 != Op::Del).count();
        out.push(format!("@@ -{} +{} @@", range(a_start, a_len), range(b_start, b_len)));
        for (op, i, j) in slice {
            out.push(match op {
                Op::Same => format!(" {}", a[*i]),
                Op::Del => format!("-{}", a[*i]),
                Op::Add => format!("+{}", b[*j]),
            });
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
}
