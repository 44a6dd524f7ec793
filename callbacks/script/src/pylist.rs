//! Python's `str()` of a command list (`['cb.sh', 'on_start', 'replica',
//! 'demo']`), so that the lines Patroni logs with a command list read the
//! same here. The Python behaviour itself is the SDK's `pycompat`.

use palisade_plugin_api::sdk::pycompat::py;
use serde_json::Value;

/// `str(argv)` as Python 3 prints a list of `str`.
pub fn py_list(argv: &[String]) -> String {
    py::to_str(&Value::Array(argv.iter().cloned().map(Value::String).collect()))
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
