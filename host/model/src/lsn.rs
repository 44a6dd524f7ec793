//! PostgreSQL log sequence numbers as text (`16/B374D848`) and as byte positions.

/// Parse `X/X` (hexadecimal halves) into a byte position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
        return None;
    }
    Some((hi << 32) | lo)
}

/// Format a byte position as PostgreSQL does (`0/3000060`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (text, value) in [("0/0", 0u64), ("0/3000060", 0x3000060), ("16/B374D848", 0x16_B374_D848)] {
            assert_eq!(parse_lsn(text), Some(value));
            assert_eq!(format_lsn(value), text);
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in ["", "0", "x/1", "1/", "/1", "1/2/3", "100000000/0"] {
            assert_eq!(parse_lsn(text), None, "{text}");
        }
    }
}
