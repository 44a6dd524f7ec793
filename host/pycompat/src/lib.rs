//! The Python behaviour Palisade mirrors, each piece written once.
//!
//! Patroni is a Python program: what its configuration means is decided
//! by `shlex.split`, `str()`, `repr()`, truthiness, its own `parse_int`
//! and `parse_bool`, PyYAML's implicit resolvers and `json.dumps`. Every
//! crate that needs one of these (config, postgres, model, ctl, and the
//! plugins through the plugin SDK) takes it from here, so that there is
//! one answer to "what would Python do".
//!
//! - [`shlex`]: `shlex.split` (POSIX mode) and Patroni's `unquote`;
//! - [`py`]: `str()`, `repr()`, float `repr()` and `format(x, 'g')`,
//!   truthiness and `str.strip()` of JSON-like values;
//! - [`patroni`]: Patroni's `utils.py` value readers (`parse_bool`,
//!   `parse_int` and `parse_real` with PostgreSQL units, `strtol`,
//!   `strtod`, `compare_values`, `maybe_convert_from_base_unit`) and the
//!   initdb options it refuses;
//! - [`yaml`]: PyYAML's implicit resolvers (which plain scalars are
//!   booleans, integers, floats, nulls, timestamps) and its int/float
//!   constructors;
//! - [`json`]: `json.dumps` text;
//! - [`url`]: `urlparse(url).hostname` and `.port` (members' `conn_url`).
//!
//! Differential tests (`tests/differential.rs`) compare each function with
//! the real Python on thousands of generated inputs.
//!
//! Architecture invariant: a leaf crate. It depends on no other palisade
//! crate (only serde_json) and does no IO; only its tests run Python.

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod json;
pub mod patroni;
mod printable;
pub mod py;
pub mod shlex;
pub mod url;
pub mod yaml;
