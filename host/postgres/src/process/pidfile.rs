//! `postmaster.pid`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The lines of `<data_dir>/postmaster.pid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidFile {
    /// Negative for a single-user backend (`postgres --single`).
    pub pid: i32,
    pub data_dir: PathBuf,
    /// Start time, seconds since the epoch.
    pub start_time: Option<i64>,
    pub port: Option<u16>,
    pub socket_dir: Option<String>,
    pub listen_addr: Option<String>,
    /// `starting`, `ready`, `standby`, `stopping` (PostgreSQL 10+).
    pub status: Option<String>,
}

impl PidFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("postmaster.pid")
    }

    /// Read the file; `Ok(None)` when there is none or it cannot be
    /// understood (a file being written).
    pub fn read(data_dir: &Path) -> io::Result<Option<Self>> {
        match fs::read_to_string(Self::path(data_dir)) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let lines: Vec<&str> = text.lines().collect();
        let line = |i: usize| lines.get(i).map(|l| l.trim()).filter(|l| !l.is_empty());
        let pid: i32 = line(0)?.parse().ok().filter(|p| *p != 0)?;
        Some(Self {
            pid,
            data_dir: PathBuf::from(line(1).unwrap_or("")),
            start_time: line(2).and_then(|v| v.parse().ok()),
            port: line(3).and_then(|v| v.parse().ok()),
            socket_dir: line(4).map(String::from),
            listen_addr: line(5).map(String::from),
            status: line(7).map(String::from),
        })
    }

    pub fn is_single_user(&self) -> bool {
        self.pid < 0
    }

    pub fn process_id(&self) -> i32 {
        self.pid.abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_file() {
        let text = "17048\n/tmp/pgt/d\n1795354978\n54999\n/tmp/pgt\n127.0.0.1\n 10011053        16\nready   \n";
        let p = PidFile::parse(text).unwrap();
        assert_eq!(p.pid, 17048);
        assert_eq!(p.data_dir, PathBuf::from("/tmp/pgt/d"));
        assert_eq!(p.start_time, Some(1795354978));
        assert_eq!(p.port, Some(54999));
        assert_eq!(p.socket_dir.as_deref(), Some("/tmp/pgt"));
        assert_eq!(p.listen_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.status.as_deref(), Some("ready"));
        assert!(!p.is_single_user());
    }

    #[test]
    fn single_user_and_garbage() {
        let p = PidFile::parse("-4242\n/data\n").unwrap();
        assert!(p.is_single_user());
        assert_eq!(p.process_id(), 4242);
        assert_eq!(p.start_time, None);
        assert_eq!(PidFile::parse(""), None);
        assert_eq!(PidFile::parse("abc\n"), None);
    }
}
