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
    cmd.arg("-c").arg(&config).args(args);
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
