//! Patroni itself, for compatibility tests and side-by-side benchmarks: a
//! virtualenv with the `patroni` package from PyPI (with its etcd3 support
//! and psycopg2), built once with the system Python outside /root (so the
//! unprivileged test user can run it) and reused by later runs. The
//! differential tests of palisade-pycompat and palisadectl use the same
//! one (see `palisade_test_support::python`).

use std::path::PathBuf;

pub use palisade_test_support::python::{patroni_venv_dir as venv_dir, PATRONI_REQUIREMENTS};

/// The virtualenv, created and filled on first use. Panics with a clear
/// message when it cannot be built (no `python3 -m venv`, PyPI unreachable).
pub fn venv() -> PathBuf {
    palisade_test_support::python::patroni_venv()
}
