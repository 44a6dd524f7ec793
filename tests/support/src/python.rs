//! The real Python, for differential tests: virtualenvs built once outside
//! /root (so the unprivileged test user can use them too), a batch runner
//! that feeds a script JSON lines on stdin and reads one answer line per
//! input, and a small seeded generator of random inputs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

/// A virtualenv at `dir` with `requirements` installed from PyPI by pip,
/// built on first use with `/usr/bin/python3 -m venv` (python3-venv) and
/// reused while its marker file exists and lists the same requirements.
/// When the requirements changed (a new extra, say), they are installed
/// into the existing venv with pip and the marker rewritten: other test
/// processes may be using it, so it is updated in place, never removed.
/// Panics with a clear message when it cannot be built.
pub fn venv(dir: &Path, requirements: &[&str]) -> PathBuf {
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let ready = dir.join(".palisade-ready");
    let want = requirements.join("\n");
    // A venv built on another Python (a pyenv one under /root, say) is
    // useless: the test user cannot run it, and Patroni's postmaster start
    // (multiprocessing's spawn) then hangs for ever. Build it again.
    let is_ready = || {
        ready.exists()
            && std::fs::read_to_string(dir.join("pyvenv.cfg"))
                .is_ok_and(|c| c.lines().any(|l| l.replace(' ', "") == "home=/usr/bin"))
    };
    let is_current = || is_ready() && std::fs::read_to_string(&ready).is_ok_and(|r| r == want);
    if is_current() {
        return dir.to_path_buf();
    }
    // Other test processes may be building it: a lock file serialises them.
    let lock_path = PathBuf::from(format!("{}.lock", dir.display()));
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path);
    let _flock = lock.ok().inspect(|f| {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; released when it is dropped.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    });
    if is_current() {
        return dir.to_path_buf();
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let pip_install = || {
        run(
            Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(requirements)
                .env("PIP_NO_INPUT", "1"),
            &format!("installing {requirements:?} from PyPI into {}", dir.display()),
        )
    };
    if is_ready() {
        // Built for other requirements: bring it up to these.
        pip_install();
        std::fs::write(&ready, &want).unwrap_or_else(|e| panic!("cannot write {}: {e}", ready.display()));
        return dir.to_path_buf();
    }
    let _ = std::fs::remove_dir_all(dir);
    run(
        Command::new("/usr/bin/python3").arg("-m").arg("venv").arg(dir),
        &format!("creating the virtualenv {} (python3-venv)", dir.display()),
    );
    pip_install();
    std::fs::write(&ready, &want).unwrap_or_else(|e| panic!("cannot write {}: {e}", ready.display()));
    dir.to_path_buf()
}

/// What the Patroni virtualenv holds: Patroni 4.1 (whose wire formats and
/// Python behaviour Palisade follows) with its support for every DCS the
/// tests run a mixed cluster on (`etcd3`; `etcd`, the v2 API; `zookeeper`,
/// kazoo, which Exhibitor uses too) and psycopg2; it brings PyYAML and
/// PrettyTable, which the differential tests use too.
pub const PATRONI_REQUIREMENTS: [&str; 2] =
    ["patroni[consul,etcd,etcd3,kubernetes,zookeeper]==4.1.*", "psycopg2-binary"];

/// Where the Patroni virtualenv lives (`PALISADE_PATRONI_VENV`, default
/// `/var/tmp/palisade-patroni-venv`).
pub fn patroni_venv_dir() -> PathBuf {
    PathBuf::from(std::env::var("PALISADE_PATRONI_VENV").unwrap_or_else(|_| "/var/tmp/palisade-patroni-venv".into()))
}

/// The Patroni virtualenv, built on first use.
pub fn patroni_venv() -> PathBuf {
    venv(&patroni_venv_dir(), &PATRONI_REQUIREMENTS)
}

/// The Patroni virtualenv's Python.
pub fn patroni_python() -> PathBuf {
    patroni_venv().join("bin/python")
}

/// Run `script` with `python` once over all `inputs` (one line each on
/// stdin) and return its stdout lines; the script must print exactly one
/// line per input. Panics when Python fails or answers a different number
/// of lines.
pub fn run_lines(python: &Path, script: &str, inputs: &[String]) -> Vec<String> {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let text: String = inputs.iter().map(|l| format!("{l}\n")).collect();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let lines: Vec<String> = BufReader::new(stdout).lines().map(|l| l.expect("utf-8 from python")).collect();
    let _ = writer.join();
    let out = child.wait_with_output().expect("wait for python");
    assert!(out.status.success(), "python failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines.len(), inputs.len(), "python answered {} lines for {} inputs", lines.len(), inputs.len());
    lines
}

/// How many random cases a differential test runs: `default`, or
/// `PALISADE_DIFF_CASES` to run more (or fewer).
pub fn case_count(default: usize) -> usize {
    std::env::var("PALISADE_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator (SplitMix64) for test inputs: the one
/// the differential tests and every fuzzer use.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A string of up to `max_len` characters, each from `alphabet`.
    pub fn string_from(&mut self, alphabet: &[char], max_len: usize) -> String {
        let len = self.below(max_len + 1);
        (0..len).map(|_| *self.pick(alphabet)).collect()
    }

    /// Any character: mostly ASCII, sometimes any Unicode scalar value.
    pub fn any_char(&mut self) -> char {
        if self.one_in(4) {
            loop {
                if let Some(c) = char::from_u32(self.below(0x11_0000) as u32) {
                    return c;
                }
            }
        }
        char::from(self.below(128) as u8)
    }

    /// A finite float: small integers, halves, decimals, and random bits.
    pub fn float(&mut self) -> f64 {
        match self.below(5) {
            0 => self.below(2000) as f64 - 1000.0,
            1 => (self.below(2000) as f64 - 1000.0) / 2.0,
            2 => (self.below(2_000_000) as f64 - 1_000_000.0) / 1000.0,
            3 => 10f64.powi(self.below(40) as i32 - 20) * (self.below(1000) as f64 + 0.5),
            _ => loop {
                let f = f64::from_bits(self.next_u64());
                if f.is_finite() {
                    return f;
                }
            },
        }
    }
}
