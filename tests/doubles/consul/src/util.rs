//! Small pieces: Go durations (the form Consul reads and writes), base64
//! (the KV `Value`), URL percent-decoding, random ids.

use std::io::Read;

/// Parse a Go duration (`"15s"`, `"1m30s"`, `"0.001s"`, `"500ms"`, `"0"`)
/// into nanoseconds. Negative durations are refused.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        if num_len == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += num * scale;
    }
    if total > u64::MAX as f64 / 2.0 {
        return Err(format!("time: invalid duration {s:?} (too large)"));
    }
    Ok(total.round() as u64)
}

/// Format nanoseconds as Go's `time.Duration.String()` does.
pub fn format_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", trim_float(ns as f64 / 1e3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim_float(ns as f64 / 1e6));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = (ns % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_float(s)));
    out
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(input: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in input.bytes() {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|&x| x == c).ok_or_else(|| format!("illegal base64 data: {c:?}"))?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Decode `%XX` escapes (and, in queries, `+` as a space).
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A random version-4 UUID, as Consul's session and node ids are.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    if !filled {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, ns) in [
            ("15s", 15_000_000_000u64),
            ("15.0s", 15_000_000_000),
            ("0.001s", 1_000_000),
            ("1m30s", 90_000_000_000),
            ("500ms", 500_000_000),
            ("0", 0),
            ("9.98s", 9_980_000_000),
            ("1h", 3_600_000_000_000),
        ] {
            assert_eq!(parse_duration(s), Ok(ns), "{s}");
        }
        for s in ["", "15", "-1s", "1x", "s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert_eq!(format_duration(15_000_000_000), "15s");
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(1_000_000), "1ms");
    }

    #[test]
    fn base64_round_trip() {
        for v in [&b""[..], b"a", b"ab", b"abc", b"{\"x\":1}", &[0, 255, 128]] {
            assert_eq!(base64_decode(&base64_encode(v)).unwrap(), v);
        }
        assert_eq!(base64_encode(b"patroni1"), "cGF0cm9uaTE=");
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%2Fb%20c", false), "a/b c");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("100%", false), "100%");
    }
}
