//! The properties every parser of this crate keeps on any input, checked
//! by one function per parser. Both fuzzers call them: the bounded,
//! seeded test at the bottom of this file (in CI) and the `cargo fuzz`
//! targets under `fuzz/` (`pycompat_*`). A broken property panics with the
//! input and what is wrong (libFuzzer and the test both report a panic).
//!
//! Built for the crate's own tests and with the `fuzzing` feature only.

use serde_json::Value;

use crate::{patroni, py, shlex, url, yaml};

/// `shlex.split`, `quote` and `unquote` on `line`: no panic; a line that
/// splits gives words that, quoted and joined, split back to the same
/// words; any text quoted splits back to itself alone.
pub fn check_shlex(line: &str) {
    if let Ok(words) = shlex::split(line) {
        let joined: Vec<String> = words.iter().map(|w| shlex::quote(w)).collect();
        let again = shlex::split(&joined.join(" "));
        assert_eq!(again.as_ref(), Ok(&words), "split(join(quote(split({line:?})))) is not split({line:?})");
    }
    let quoted = shlex::quote(line);
    assert_eq!(shlex::split(&quoted), Ok(vec![line.to_string()]), "split(quote({line:?})) is not [{line:?}]");
    let _ = shlex::unquote(line);
}

/// PyYAML's resolver and constructors on a plain scalar: no panic, and a
/// scalar as a YAML reader hands it over (no line break, no blank at
/// either end) resolved as a boolean, float or (not too long) integer is
/// read by its constructor, unless Python's constructor raises too: an
/// integer with no digit after its `0x` or `0b` (`0x_`: `int('', 16)`).
/// (PyYAML's `$` also matches
/// before a final line break, so `"no\n"` resolves as a boolean it cannot
/// construct; a reader never hands such a plain scalar over.)
pub fn check_yaml_scalar(text: &str) {
    let tag = yaml::resolve(text);
    let _ = tag.name();
    let (b, i, f) = (yaml::construct_bool(text), yaml::construct_int(text), yaml::construct_float(text));
    if text.contains(['\n', '\r']) || text.trim() != text {
        return;
    }
    let cleaned = text.trim_start_matches(['-', '+']).replace('_', "");
    match tag {
        yaml::Tag::Bool => assert!(b.is_some(), "{text:?} resolves to bool but construct_bool refuses it"),
        yaml::Tag::Float => assert!(f.is_some(), "{text:?} resolves to float but construct_float refuses it"),
        // An integer past i128 is refused by design.
        yaml::Tag::Int if text.len() <= 30 && !matches!(cleaned.as_str(), "0x" | "0b") => {
            assert!(i.is_some(), "{text:?} resolves to int but construct_int refuses it")
        }
        _ => {}
    }
}

/// Units a PostgreSQL setting is given in (`pg_settings.unit`), and none.
const UNITS: &[Option<&str>] =
    &[None, Some("B"), Some("kB"), Some("8kB"), Some("MB"), Some("16MB"), Some("ms"), Some("s"), Some("min")];

/// Patroni's value readers on `text`: no panic; `strtol` and `strtod` hand
/// back a tail of the stripped text; the comparisons and conversions end.
pub fn check_patroni_values(text: &str) {
    let stripped = py::strip(text);
    let (_, rest) = patroni::strtol(text);
    assert!(stripped.ends_with(rest), "strtol({text:?}) left {rest:?}, not a tail of the text");
    let (_, rest) = patroni::strtod(text);
    assert!(stripped.ends_with(rest), "strtod({text:?}) left {rest:?}, not a tail of the text");
    let _ = patroni::parse_bool(text);
    for unit in UNITS {
        let _ = patroni::parse_int(text, *unit);
        let _ = patroni::parse_real(text, *unit);
        for vartype in ["bool", "integer", "real", "enum", "string"] {
            let _ = patroni::maybe_convert_from_base_unit(text, vartype, *unit);
            // A value equals itself once read, unless it cannot be read.
            let _ = patroni::compare_values(vartype, *unit, text, text);
        }
    }
    let _ = patroni::parse_int(&Value::String(text.to_string()), Some("kB"));
}

/// `urlparse(url).hostname` and `.port`: no panic, an error says what is
/// wrong, and a host is lower case as Python gives it.
pub fn check_url(text: &str) {
    match url::hostname_port(text) {
        Ok((host, _port)) => {
            if let Some(h) = host {
                assert!(!h.is_empty(), "hostname_port({text:?}) gave an empty host instead of None");
            }
        }
        Err(e) => assert!(!e.trim().is_empty(), "hostname_port({text:?}) failed without saying why"),
    }
}

/// `str()`, `repr()` and truthiness of `text` read as JSON (when it is
/// JSON) and as a string: no panic; `repr` of a string is quoted.
pub fn check_py(text: &str) {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let _ = (py::to_str(&v), py::repr(&v), py::truthy(&v));
        let _ = (crate::json::dumps(&v), crate::json::dumps_compact(&v));
    }
    let r = py::repr_str(text);
    assert!(r.starts_with(['\'', '"']) && r.ends_with(['\'', '"']), "repr({text:?}) = {r} is not quoted");
    let _ = (py::ascii_str(text), py::strip(text), crate::json::dumps_str(text));
}

#[cfg(test)]
mod tests {
    //! The bounded, seeded version of the `pycompat_*` cargo fuzz targets:
    //! generated text through each check above. `PALISADE_FUZZ_CASES`
    //! (default 4,000 per parser) and `PALISADE_FUZZ_SEED` run longer or
    //! otherwise; a failure prints the seed and case that reproduce it.

    use palisade_test_support::python::Rng;

    /// Pieces the parsers treat specially.
    const PIECES: &[&str] = &[
        "'",
        "\"",
        "\\",
        " ",
        "\t",
        "\n",
        "\r",
        "''",
        "\"\"",
        "#",
        "$",
        "`",
        "0x",
        "0X",
        "0b",
        "0o",
        "0",
        "00",
        "017",
        "1",
        "9",
        "12",
        "_",
        "-",
        "+",
        ".",
        "e",
        "E",
        "e+",
        "e-",
        "inf",
        ".inf",
        ".NaN",
        "nan",
        ":",
        "60",
        "59:",
        "1_000",
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "~",
        "null",
        "true",
        "False",
        "kB",
        "MB",
        "GB",
        "TB",
        "ms",
        "s",
        "min",
        "h",
        "d",
        "8kB",
        "B",
        "[",
        "]",
        "[::1]",
        "@",
        "/",
        "//",
        "postgres://",
        "http://",
        "%",
        "%25",
        "é",
        "\u{0}",
        "\u{85}",
        "\u{a0}",
        "\u{2028}",
        "\u{3000}",
        "\u{1f600}",
        "\u{ffff}",
        "\u{10ffff}",
        "99999999999999999999999999999999999999999",
        "1e309",
        "2026-01-01",
        "2026-01-01T00:00:00Z",
        "=",
        ",",
        "!",
        "&",
        "*",
        "?",
        "|",
        ">",
        "<<",
    ];

    fn text(rng: &mut Rng) -> String {
        let mut s = String::new();
        for _ in 0..rng.below(8) {
            if rng.one_in(6) {
                s.push(char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}'));
            } else {
                s.push_str(rng.pick::<&str>(PIECES));
            }
        }
        s
    }

    fn settings() -> (u64, u64) {
        let var = |name: &str| {
            std::env::var(name).ok().and_then(|v| match v.trim().strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.trim().parse().ok(),
            })
        };
        (var("PALISADE_FUZZ_CASES").unwrap_or(4000), var("PALISADE_FUZZ_SEED").unwrap_or(0x5eed_0c0a))
    }

    fn run(what: &str, check: fn(&str)) {
        let (cases, seed) = settings();
        for case in 0..cases {
            let mut rng = Rng::new(seed.wrapping_add(case));
            let input = text(&mut rng);
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(
                outcome.is_ok(),
                "{what}: input {input:?} failed (rerun: PALISADE_FUZZ_CASES=1 PALISADE_FUZZ_SEED={})",
                seed.wrapping_add(case)
            );
        }
        eprintln!("{what}: {cases} cases from seed {seed:#x}");
    }

    /// Found by the cargo fuzz target `pycompat_yaml`: PyYAML resolves
    /// `0x_` as an integer, then cannot construct it (`int('', 16)`
    /// raises); neither do we, and the check knows it.
    #[test]
    fn scalars_pyyaml_resolves_but_cannot_construct() {
        assert_eq!(crate::yaml::resolve("0x_"), crate::yaml::Tag::Int);
        assert_eq!(crate::yaml::construct_int("0x_"), None);
        assert_eq!(crate::yaml::resolve("-0b__"), crate::yaml::Tag::Int);
        assert_eq!(crate::yaml::construct_int("-0b__"), None);
        for text in ["0x_", "-0b__", "._", "0_", "1_._"] {
            super::check_yaml_scalar(text);
        }
    }

    #[test]
    fn generated_command_lines_split_and_quote_back() {
        run("shlex", super::check_shlex);
    }

    #[test]
    fn generated_plain_scalars_resolve_and_construct() {
        run("yaml", super::check_yaml_scalar);
    }

    #[test]
    fn generated_values_read_as_patroni_reads_them() {
        run("patroni values", super::check_patroni_values);
    }

    #[test]
    fn generated_urls_give_a_host_and_port_or_say_why_not() {
        run("url", super::check_url);
    }

    #[test]
    fn generated_values_print_as_python_prints_them() {
        run("py", super::check_py);
    }
}
