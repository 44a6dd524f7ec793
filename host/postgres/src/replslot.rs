//! Writing a replication slot's state file into `pg_replslot`, as
//! Patroni's `copy_logical_slots` does on a replica: PostgreSQL must be
//! stopped; it reads the slot when it starts.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Modes PostgreSQL uses in this data directory: group-readable when the
/// data directory is.
fn modes(data_dir: &Path) -> (u32, u32) {
    let mode = fs::metadata(data_dir).map(|m| m.permissions().mode()).unwrap_or(0o700);
    if mode & 0o050 == 0o050 {
        (0o750, 0o640)
    } else {
        (0o700, 0o600)
    }
}

fn fsync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Put `data` as the state file of slot `name` (`pg_replslot/<name>/state`),
/// replacing the slot if it exists: written in `<name>.tmp`, synced, then
/// renamed into place.
pub fn install_slot_state(data_dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a slot name")));
    }
    let (dir_mode, file_mode) = modes(data_dir);
    let replslot = data_dir.join("pg_replslot");
    let slot_dir = replslot.join(name);
    let tmp_dir = replslot.join(format!("{name}.tmp"));
    if tmp_dir.exists() {
        fs::remove_dir_all(&tmp_dir)?;
    }
    fs::DirBuilder::new().mode(dir_mode).create(&tmp_dir)?;
    fs::set_permissions(&tmp_dir, fs::Permissions::from_mode(dir_mode))?;
    fsync_dir(&tmp_dir)?;
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(file_mode).open(tmp_dir.join("state"))?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    if slot_dir.exists() {
        fs::remove_dir_all(&slot_dir)?;
    }
    fs::rename(&tmp_dir, &slot_dir)?;
    fs::set_permissions(&slot_dir, fs::Permissions::from_mode(dir_mode))?;
    fsync_dir(&slot_dir)?;
    fsync_dir(&replslot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_and_replaces() {
        let dir = std::env::temp_dir().join(format!("palisade-replslot-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("pg_replslot")).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap_or_else(|e| panic!("{e}"));
        for content in [&b"first"[..], &b"second"[..]] {
            install_slot_state(&dir, "lg", content).unwrap_or_else(|e| panic!("{e}"));
            let state = dir.join("pg_replslot/lg/state");
            assert_eq!(fs::read(&state).unwrap_or_default(), content);
            let mode = fs::metadata(&state).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        assert!(!dir.join("pg_replslot/lg.tmp").exists());
        assert!(install_slot_state(&dir, "../x", b"x").is_err());
        assert!(install_slot_state(&dir, "", b"x").is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
