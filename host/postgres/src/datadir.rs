//! The data directory as files: is it there, is it initialised, which
//! major version made it, its timeline history files, removing it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use palisade_model::parse_lsn;

/// What is at `postgresql.data_dir`.
#[derive(Debug)]
pub enum DataDirState {
    /// Nothing there (initdb or a basebackup may create it).
    Missing,
    /// A directory with nothing in it but hidden files and `lost+found`
    /// (Patroni's `data_directory_is_empty`).
    Empty,
    /// `global/pg_control` exists: a data directory.
    Initialized,
    /// Files, but no `global/pg_control` (a half-copied backup, a wrong
    /// path...). Patroni treats this as "not empty, not usable".
    NotInitialized,
    /// The path exists and is not a directory.
    NotADirectory,
    /// We may not look inside (permissions) or the file system failed.
    NotAccessible(io::Error),
}

impl DataDirState {
    /// Patroni's `data_directory_empty()`: missing or empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Missing | Self::Empty)
    }
}

/// Look at a data directory without changing it.
pub fn data_dir_state(data_dir: &Path) -> DataDirState {
    match fs::metadata(data_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return DataDirState::Missing,
        Err(e) => return DataDirState::NotAccessible(e),
        Ok(m) if !m.is_dir() => return DataDirState::NotADirectory,
        Ok(_) => {}
    }
    match fs::metadata(data_dir.join("global").join("pg_control")) {
        Ok(m) if m.is_file() => return DataDirState::Initialized,
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return DataDirState::NotAccessible(e),
    }
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) => return DataDirState::NotAccessible(e),
    };
    for entry in entries {
        match entry {
            Ok(entry) => {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with('.') || name == "lost+found") {
                    return DataDirState::NotInitialized;
                }
            }
            Err(e) => return DataDirState::NotAccessible(e),
        }
    }
    DataDirState::Empty
}

/// The major version in `PG_VERSION`, as PostgreSQL numbers it
/// (`15` → 150000, `9.6` → 90600); `None` when the file is missing or odd.
pub fn major_version(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("PG_VERSION")).ok()?;
    parse_major_version(text.trim())
}

/// `15` → 150000, `9.6` → 90600.
pub fn parse_major_version(text: &str) -> Option<u32> {
    let mut parts = text.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = match parts.next() {
        Some(m) => m.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || (major < 10 && minor == 0 && !text.contains('.')) {
        return None;
    }
    Some(major * 10000 + minor * 100)
}

/// One line of a timeline history file: timeline `parent_timeline` ended at
/// `switch_lsn` and the next timeline started there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub parent_timeline: u32,
    pub switch_lsn: u64,
    pub reason: String,
}

/// Parse the text of a `pg_wal/XXXXXXXX.history` file (or of the leader's
/// `TIMELINE_HISTORY` answer): `timeline<TAB>lsn<TAB>reason` lines; other
/// lines (comments, blanks, garbage) are skipped, as Patroni skips them.
pub fn parse_timeline_history(text: &str) -> Vec<HistoryEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.trim().split('\t').collect();
            if fields.len() != 3 {
                return None;
            }
            Some(HistoryEntry {
                parent_timeline: fields[0].parse().ok()?,
                switch_lsn: parse_lsn(fields[1])?,
                reason: fields[2].to_string(),
            })
        })
        .collect()
}

/// Path of the history file that leads to `timeline`.
pub fn history_file_path(data_dir: &Path, timeline: u32) -> PathBuf {
    data_dir.join("pg_wal").join(format!("{timeline:08X}.history"))
}

/// A timeline history file read from `pg_wal`.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineHistoryFile {
    pub entries: Vec<HistoryEntry>,
    /// When the file was written: Patroni stamps the last line of the DCS
    /// `history` key with it.
    pub modified: Option<SystemTime>,
}

/// Read the history of `timeline` from `pg_wal`; `Ok(None)` when there is
/// no such file (timeline 1 never has one).
pub fn read_timeline_history(data_dir: &Path, timeline: u32) -> io::Result<Option<TimelineHistoryFile>> {
    let path = history_file_path(data_dir, timeline);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let modified = fs::metadata(&path).and_then(|m| m.modified()).ok();
            Ok(Some(TimelineHistoryFile { entries: parse_timeline_history(&text), modified }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The lines Patroni writes to the DCS `history` key after a promotion
/// (`Postgresql.get_history`): the file's entries, with the last one stamped
/// with the file's time (local time zone, ISO 8601) and `member_name` when
/// it is the switch to `timeline`.
pub fn history_lines_for_dcs(
    file: &TimelineHistoryFile,
    timeline: u32,
    member_name: &str,
) -> Vec<palisade_model::HistoryLine> {
    let mut lines: Vec<palisade_model::HistoryLine> = file
        .entries
        .iter()
        .map(|e| palisade_model::HistoryLine {
            timeline: e.parent_timeline,
            lsn: e.switch_lsn,
            reason: e.reason.clone(),
            timestamp: None,
            new_leader: None,
        })
        .collect();
    if let (Some(last), Some(modified)) = (lines.last_mut(), file.modified) {
        if last.timeline.checked_add(1) == Some(timeline) {
            let local: chrono::DateTime<chrono::Local> = modified.into();
            last.timestamp = Some(python_isoformat(&local.fixed_offset()));
            last.new_leader = Some(member_name.to_string());
        }
    }
    lines
}

/// Python's `datetime.isoformat()`: microseconds only when not zero, the
/// offset as `+HH:MM`.
pub(crate) fn python_isoformat(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    use chrono::Timelike;
    if t.nanosecond() / 1000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
    }
}

/// Remove a data directory as Patroni does (`remove_data_directory`): a
/// symlink or file is unlinked; for a directory, the targets of a
/// symlinked `pg_wal` and of tablespace links are removed first.
pub fn remove_data_directory(data_dir: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(data_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() || meta.is_file() {
        return fs::remove_file(data_dir);
    }
    let wal = data_dir.join("pg_wal");
    if fs::symlink_metadata(&wal).map(|m| m.file_type().is_symlink()).unwrap_or(false) {
        let target = fs::canonicalize(&wal)?;
        remove_tree_if_exists(&target)?;
    }
    if let Ok(entries) = fs::read_dir(data_dir.join("pg_tblspc")) {
        for entry in entries.flatten() {
            let is_oid = entry.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit());
            let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
            if is_oid && is_link {
                if let Ok(target) = fs::canonicalize(entry.path()) {
                    // Patroni ignores errors here too: the tablespace may be shared or gone.
                    let _ = remove_tree_if_exists(&target);
                }
            }
        }
    }
    fs::remove_dir_all(data_dir)
}

fn remove_tree_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("palisade-datadir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn states() {
        let base = scratch("states");
        assert!(matches!(data_dir_state(&base), DataDirState::Missing));
        fs::create_dir_all(base.join("lost+found")).unwrap();
        fs::write(base.join(".hidden"), "").unwrap();
        assert!(matches!(data_dir_state(&base), DataDirState::Empty));
        assert!(data_dir_state(&base).is_empty());
        fs::write(base.join("PG_VERSION"), "15\n").unwrap();
        assert!(matches!(data_dir_state(&base), DataDirState::NotInitialized));
        assert!(!data_dir_state(&base).is_empty());
        fs::create_dir_all(base.join("global")).unwrap();
        fs::write(base.join("global/pg_control"), "x").unwrap();
        assert!(matches!(data_dir_state(&base), DataDirState::Initialized));
        assert_eq!(major_version(&base), Some(150000));
        assert!(matches!(data_dir_state(&base.join("PG_VERSION")), DataDirState::NotADirectory));
        remove_data_directory(&base).unwrap();
        assert!(matches!(data_dir_state(&base), DataDirState::Missing));
    }

    #[test]
    fn major_versions() {
        for (text, want) in [("15", Some(150000)), ("9.6", Some(90600)), ("10", Some(100000)), ("9", None), ("x", None)]
        {
            assert_eq!(parse_major_version(text), want, "{text}");
        }
    }

    #[test]
    fn history_parsing() {
        let text =
            "1\t0/3000148\tno recovery target specified\n\n# comment\n2\t0/5000000\tbefore 2000-01-01\ngarbage\n";
        assert_eq!(
            parse_timeline_history(text),
            vec![
                HistoryEntry {
                    parent_timeline: 1,
                    switch_lsn: 0x3000148,
                    reason: "no recovery target specified".into()
                },
                HistoryEntry { parent_timeline: 2, switch_lsn: 0x5000000, reason: "before 2000-01-01".into() },
            ]
        );
        assert_eq!(history_file_path(Path::new("/d"), 10), PathBuf::from("/d/pg_wal/0000000A.history"));
    }

    #[test]
    fn dcs_lines_stamp_the_last_switch() {
        let file = TimelineHistoryFile {
            entries: parse_timeline_history("1\t0/3000148\tno recovery target specified\n"),
            modified: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)),
        };
        let lines = history_lines_for_dcs(&file, 2, "node2");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].new_leader.as_deref(), Some("node2"));
        let ts = lines[0].timestamp.clone().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(&ts).unwrap();
        assert_eq!(parsed.timestamp(), 1_700_000_000, "{ts}");
        // Not the switch to the timeline asked about: no stamp.
        assert_eq!(history_lines_for_dcs(&file, 3, "node2")[0].timestamp, None);
    }
}
