//! Running palisadectl (and patronictl) against a test cluster. Test code only.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cluster::Cluster;

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panic with everything printed unless the command succeeded.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr);
        self
    }
}

/// Run `program args` with node1's configuration (`-c`), `stdin` fed in and
/// extra environment variables.
pub fn run_with(cluster: &Cluster, program: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let config = cluster.nodes[0].config.clone();
    let mut cmd = Command::new(program);
    cmd.arg("-c").arg(&config).args(args).envs(cluster.dcs_env());
    run_command(cmd, program, stdin, env)
}

/// Run `program args` without `-c`, from an empty home directory (no
/// default configuration file either): only `args` and `env` say where
/// the cluster is.
pub fn run_bare(cluster: &Cluster, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = cluster.dir().join("empty-home");
    let _ = std::fs::create_dir_all(&home);
    let mut cmd = Command::new(program);
    cmd.args(args).env("HOME", &home).env_remove("XDG_CONFIG_HOME").env_remove("PATRONICTL_CONFIG_FILE");
    cmd.envs(cluster.dcs_env());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PATRONI_")) {
        cmd.env_remove(k);
    }
    run_command(cmd, program, "", env)
}

fn run_command(mut cmd: Command, program: &Path, stdin: &str, env: &[(&str, &str)]) -> Output {
    cmd.env("PGPASSWORD", crate::cluster::SUPERUSER_PASSWORD).env("NO_COLOR", "1").env_remove("DCS_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run palisadectl from the cluster's staging directory.
pub fn palisadectl(cluster: &Cluster, args: &[&str]) -> Output {
    run_with(cluster, &cluster.bin().join("palisadectl"), args, "", &[])
}

/// `palisadectl ARGS` (with node1's configuration) left running, e.g. a
/// `list -w`, with its output collected line by line; killed on drop.
pub struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(cluster: &Cluster, args: &[&str]) -> Self {
        let mut cmd = Command::new(cluster.bin().join("palisadectl"));
        cmd.arg("-c").arg(&cluster.nodes[0].config).args(args).env("NO_COLOR", "1").env_remove("DCS_URL");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run palisadectl: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// Wait (up to `timeout`) until `count` printed lines satisfy `f`; every
    /// line so far.
    pub fn wait_lines(&mut self, timeout: std::time::Duration, count: usize, f: impl Fn(&str) -> bool) -> &[String] {
        let deadline = std::time::Instant::now() + timeout;
        while self.seen.iter().filter(|l| f(l)).count() < count {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("only {:?} within {timeout:?}", self.seen),
            }
        }
        &self.seen
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
