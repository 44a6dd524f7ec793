//! `time.strftime` as Python calls it on Linux (glibc's `strftime`, C
//! locale), for `log.dateformat`: the conversions, the flags `_ - 0 ^ #`,
//! a width, the `E`/`O` modifiers, and an unknown conversion copied as it
//! is (`%f` stays `%f`, as in Python). Never fails, whatever the text.

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

#[derive(Clone, Copy, PartialEq)]
enum Pad {
    Default,
    Space,
    Zero,
    None,
}

/// Format `t` by `format` as glibc's `strftime` does; `zone` is what
/// `%Z` prints ([`zone_abbreviation`] for local time).
pub fn strftime(format: &str, t: &DateTime<FixedOffset>, zone: &str) -> String {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        let mut pad = Pad::Default;
        let mut upper = false;
        let mut swap = false;
        while let Some(c) = chars.get(i) {
            match c {
                '_' => pad = Pad::Space,
                '-' => pad = Pad::None,
                '0' => pad = Pad::Zero,
                '^' => upper = true,
                '#' => swap = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = None;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0usize).saturating_mul(10).saturating_add(d as usize).min(1024));
            i += 1;
        }
        if matches!(chars.get(i), Some('E' | 'O')) {
            i += 1;
        }
        let Some(&conv) = chars.get(i) else {
            // A lone '%' (with flags) at the end is copied.
            out.extend(&chars[start..]);
            break;
        };
        i += 1;
        let spec = Spec { pad, width, upper, swap };
        match render(conv, t, zone, spec) {
            Some(s) => out.push_str(&s),
            None => out.extend(&chars[start..i]),
        }
    }
    out
}

#[derive(Clone, Copy)]
struct Spec {
    pad: Pad,
    width: Option<usize>,
    upper: bool,
    swap: bool,
}

impl Spec {
    /// A number, padded to `default` digits (with `fill`) unless the flags
    /// or the width say otherwise.
    fn number(&self, n: i64, default: usize, fill: char) -> String {
        let digits = n.unsigned_abs().to_string();
        let sign = if n < 0 { "-" } else { "" };
        let (fill, width) = match (self.pad, self.width) {
            (Pad::None, None) => return format!("{sign}{digits}"),
            (Pad::None | Pad::Space, w) => (' ', w.unwrap_or(default)),
            (Pad::Zero, w) => ('0', w.unwrap_or(default)),
            (Pad::Default, w) => (fill, w.unwrap_or(default)),
        };
        let len = sign.len() + digits.len();
        let padding: String = std::iter::repeat_n(fill, width.saturating_sub(len)).collect();
        if fill == '0' {
            format!("{sign}{padding}{digits}")
        } else {
            format!("{padding}{sign}{digits}")
        }
    }

    /// A text, in the case the flags ask for, padded to the width.
    fn text(&self, s: &str, swap_to_lower: bool) -> String {
        let s = if self.upper || (self.swap && !swap_to_lower) {
            s.to_uppercase()
        } else if self.swap {
            s.to_lowercase()
        } else {
            s.to_string()
        };
        let fill = if self.pad == Pad::Zero { '0' } else { ' ' };
        let width = self.width.unwrap_or(0);
        let padding: String = std::iter::repeat_n(fill, width.saturating_sub(s.chars().count())).collect();
        format!("{padding}{s}")
    }
}

fn render(conv: char, t: &DateTime<FixedOffset>, zone: &str, spec: Spec) -> Option<String> {
    let wday = t.weekday().num_days_from_sunday() as usize;
    let yday = i64::from(t.ordinal0());
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let am_pm = if t.hour() < 12 { "AM" } else { "PM" };
    let composite = |f: &str| spec.text(&strftime(f, t, zone), false);
    Some(match conv {
        'a' => spec.text(&DAYS[wday][..3], false),
        'A' => spec.text(DAYS[wday], false),
        'b' | 'h' => spec.text(&MONTHS[t.month0() as usize][..3], false),
        'B' => spec.text(MONTHS[t.month0() as usize], false),
        'p' => spec.text(am_pm, true),
        'P' => spec.text(&am_pm.to_lowercase(), false),
        'Z' => spec.text(zone, true),
        'z' => {
            let secs = t.offset().local_minus_utc();
            let sign = if secs < 0 { '-' } else { '+' };
            let m = secs.unsigned_abs() / 60;
            spec.text(&format!("{sign}{:02}{:02}", m / 60, m % 60), false)
        }
        'C' => spec.number(i64::from(t.year()).div_euclid(100), 2, '0'),
        'd' => spec.number(i64::from(t.day()), 2, '0'),
        'e' => spec.number(i64::from(t.day()), 2, ' '),
        'H' => spec.number(i64::from(t.hour()), 2, '0'),
        'k' => spec.number(i64::from(t.hour()), 2, ' '),
        'I' => spec.number(i64::from(hour12), 2, '0'),
        'l' => spec.number(i64::from(hour12), 2, ' '),
        'j' => spec.number(yday + 1, 3, '0'),
        'm' => spec.number(i64::from(t.month()), 2, '0'),
        'M' => spec.number(i64::from(t.minute()), 2, '0'),
        'S' => spec.number(i64::from(t.second()), 2, '0'),
        's' => spec.number(t.timestamp(), 1, '0'),
        'u' => spec.number(i64::from(t.weekday().number_from_monday()), 1, '0'),
        'w' => spec.number(wday as i64, 1, '0'),
        'U' => spec.number((yday + 7 - wday as i64) / 7, 2, '0'),
        'W' => spec.number((yday + 7 - ((wday as i64 + 6) % 7)) / 7, 2, '0'),
        'V' => spec.number(i64::from(t.iso_week().week()), 2, '0'),
        'G' => spec.number(i64::from(t.iso_week().year()), 1, '0'),
        'g' => spec.number(i64::from(t.iso_week().year()).rem_euclid(100), 2, '0'),
        'y' => spec.number(i64::from(t.year()).rem_euclid(100), 2, '0'),
        'Y' => spec.number(i64::from(t.year()), 1, '0'),
        'n' => spec.text("\n", false),
        't' => spec.text("\t", false),
        '%' => spec.text("%", false),
        'c' => composite("%a %b %e %H:%M:%S %Y"),
        'D' | 'x' => composite("%m/%d/%y"),
        'F' => composite("%Y-%m-%d"),
        'r' => composite("%I:%M:%S %p"),
        'R' => composite("%H:%M"),
        'T' | 'X' => composite("%H:%M:%S"),
        _ => return None,
    })
}

/// The local time zone's abbreviation at `epoch` (`CET`, `UTC`), as
/// `time.strftime('%Z')` prints it.
pub fn zone_abbreviation(epoch: i64) -> String {
    let t: libc::time_t = epoch;
    // SAFETY: a zeroed `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `t` and writes only into `tm`.
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if !ok || tm.tm_zone.is_null() {
        return String::new();
    }
    // SAFETY: tm_zone points to a NUL-terminated name in the C library's
    // time zone data, which lives as long as the process.
    unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Checked with Python 3.11 (`time.strftime(f, time.localtime(t))`,
    /// TZ=UTC) at 2024-12-06 15:46:40 UTC.
    #[test]
    fn glibc_conversions_flags_and_unknowns() {
        let utc = FixedOffset::east_opt(0).expect("UTC");
        let t = utc.timestamp_opt(1_733_500_000, 0).single().expect("a time");
        let cases = [
            ("%Y-%m-%d %H:%M:%S", "2024-12-06 15:46:40"),
            ("%f", "%f"),
            ("%Q", "%Q"),
            ("%", "%"),
            ("abc%", "abc%"),
            ("%3f", "%3f"),
            ("%-d", "6"),
            ("%_d", " 6"),
            ("%Ey", "24"),
            ("%Od", "06"),
            ("%s", "1733500000"),
            ("%e", " 6"),
            ("%k", "15"),
            ("%l", " 3"),
            ("%P", "pm"),
            ("%z", "+0000"),
            ("%Z", "UTC"),
            ("%G-%V", "2024-49"),
            ("%u %w", "5 5"),
            ("%j", "341"),
            ("%C", "20"),
            ("%D", "12/06/24"),
            ("%F", "2024-12-06"),
            ("%T", "15:46:40"),
            ("%R", "15:46"),
            ("%r", "03:46:40 PM"),
            ("%c", "Fri Dec  6 15:46:40 2024"),
            ("%x", "12/06/24"),
            ("%X", "15:46:40"),
            ("%h", "Dec"),
            ("%n%t", "\n\t"),
            ("%%", "%"),
            ("%10Y", "0000002024"),
            ("%^a", "FRI"),
            ("%#b", "DEC"),
            ("%05d", "00006"),
            ("%5a|", "  Fri|"),
            ("%05a|", "00Fri|"),
            ("%_5H|", "   15|"),
            ("%3H", "015"),
            ("%-y", "24"),
            ("%10D|", "  12/06/24|"),
            ("%^p", "PM"),
            ("%#p", "pm"),
            ("%#Z", "utc"),
            ("%#A", "FRIDAY"),
            ("%^B", "DECEMBER"),
            ("%5%", "    %"),
            ("%-e", "6"),
            ("%0e", "06"),
            ("%3e", "  6"),
            ("%U %W %V", "48 49 49"),
            ("%g", "24"),
        ];
        for (format, want) in cases {
            assert_eq!(strftime(format, &t, "UTC"), want, "{format}");
        }
        let cet = FixedOffset::east_opt(3600 + 1800).expect("+01:30");
        let t = cet.timestamp_opt(1_733_500_000, 0).single().expect("a time");
        assert_eq!(strftime("%H:%M %z %Z", &t, "XYZ"), "17:16 +0130 XYZ");
    }
}
