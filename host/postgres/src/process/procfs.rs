//! What Linux's /proc says about a process.

use std::fs;
use std::path::PathBuf;

/// Fields of `/proc/<pid>/stat` we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// `R`, `S`, `Z`...
    pub state: char,
    pub ppid: i32,
    /// Start time in clock ticks after boot: with the PID, identifies the
    /// process (a reused PID has another start time).
    pub start_ticks: u64,
}

pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Alive and not a zombie.
pub(crate) fn is_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

fn boot_time() -> Option<u64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    text.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// When the process started, in seconds since the epoch.
pub(crate) fn create_time(stat: &ProcStat) -> Option<f64> {
    Some(boot_time()? as f64 + stat.start_ticks as f64 / clock_ticks() as f64)
}

pub(crate) fn exe(pid: i32) -> std::io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe"))
}

pub(crate) fn cwd(pid: i32) -> std::io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd"))
}

/// The command line of `pid`, its arguments joined by spaces (a
/// PostgreSQL process shows its title there: `postgres: checkpointer`).
pub(crate) fn cmdline(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some(text.trim_end().to_string())
}

/// Processes whose parent is `pid`.
pub(crate) fn children(pid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|p| stat(*p).is_some_and(|s| s.ppid == pid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let text = "1234 (postgres: a) b) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 1";
        let s = parse_stat(text).unwrap();
        assert_eq!((s.state, s.ppid, s.start_ticks), ('S', 1, 98765));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(is_alive(me));
        let started = create_time(&s).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(started <= now + 1.0 && now - started < 86400.0 * 365.0);
        assert!(exe(me).is_ok() && cwd(me).is_ok());
    }
}
