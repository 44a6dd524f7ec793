//! The replica's data directory: is it empty, emptying it, creating it.
//!
//! Patroni removes the whole directory (and the targets of a symlinked
//! `pg_wal` and of the tablespace links) when a replica method fails. We
//! empty those directories but keep them, so that a data directory that is a
//! mount point, or that has an owner and mode set up by the administrator,
//! survives; the tools that fill it accept an existing empty directory.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `data_dir` as a path, relative ones taken from `cwd` (where the
/// commands run).
pub fn resolve(cwd: &str, data_dir: &str) -> PathBuf {
    let dir = Path::new(data_dir);
    if dir.is_absolute() || cwd.is_empty() {
        dir.to_path_buf()
    } else {
        Path::new(cwd).join(dir)
    }
}

/// Patroni's `data_directory_empty`: no `global/pg_control`, and nothing in
/// the directory but hidden files and `lost+found` (or no directory).
pub fn is_empty(dir: &Path) -> bool {
    if dir.join("global").join("pg_control").exists() {
        return false;
    }
    match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(_) => false,
        Ok(entries) => entries.flatten().all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') || name == "lost+found"
        }),
    }
}

/// Whether the directory holds anything at all (hidden files included).
pub fn has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).map(|mut entries| entries.next().is_some()).unwrap_or(false)
}

/// Before a restore into `dir`, and after a failed one: empty it (hidden
/// files too) unless the method has `keep_data`, with Patroni's log lines.
pub fn clean_unless_kept(dir: &Path, keep_data: bool) -> crate::PluginResult<()> {
    if !has_entries(dir) {
        return Ok(());
    }
    if keep_data {
        if !is_empty(dir) {
            tracing::info!("Leaving data directory uncleaned");
        }
        return Ok(());
    }
    tracing::info!("Removing data directory: {}", dir.display());
    clean(dir).map_err(|e| crate::PluginError::other(format!("cannot empty {}: {e}", dir.display())))
}

/// Create `dir` with mode 0700 when it does not exist (its parents with the
/// default mode). An existing directory with a mode PostgreSQL refuses to
/// start from (anything beyond 0750) is set to 0700: Patroni removed the
/// directory, so the tool that refilled it always made it 0700.
pub fn ensure(dir: &Path) -> io::Result<()> {
    if let Ok(meta) = fs::metadata(dir) {
        if meta.is_dir() && meta.permissions().mode() & 0o027 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        other => other?,
    }
    // The umask may have taken bits away; PostgreSQL wants exactly 0700.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Empty `dir`, and before that the directories its `pg_wal` and tablespace
/// symlinks point to. A missing directory is fine; a file in its place is
/// removed. Retried briefly, in case a process that was just killed still
/// had a file open for writing.
pub fn clean(dir: &Path) -> io::Result<()> {
    let mut attempt = 0;
    loop {
        match clean_once(dir) {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                tracing::debug!("emptying {} failed ({e}), trying again", dir.display());
                attempt += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

fn clean_once(dir: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) => m,
    };
    if meta.is_file() {
        return ignore_missing(fs::remove_file(dir));
    }
    let home = fs::canonicalize(dir)?;
    let mut targets = Vec::new();
    targets.extend(link_target(&dir.join("pg_wal")));
    if let Ok(links) = fs::read_dir(dir.join("pg_tblspc")) {
        targets.extend(links.flatten().filter_map(|l| link_target(&l.path())));
    }
    for target in targets {
        // Never follow a link to the data directory itself or above it.
        if home.starts_with(&target) {
            tracing::warn!("not emptying {}: it contains the data directory", target.display());
            continue;
        }
        tracing::info!("Removing the contents of {}", target.display());
        empty(&target)?;
    }
    empty(dir)
}

/// Where `path` points, when it is a symlink to a directory.
fn link_target(path: &Path) -> Option<PathBuf> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_symlink() {
        return None;
    }
    let target = fs::canonicalize(path).ok()?;
    target.is_dir().then_some(target)
}

fn empty(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        // `file_type` does not follow symlinks: a link is removed, not its target.
        if entry.file_type()?.is_dir() {
            ignore_missing(fs::remove_dir_all(&path))?;
        } else {
            ignore_missing(fs::remove_file(&path))?;
        }
    }
    Ok(())
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> Self {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            let p = std::env::temp_dir().join(format!("palisade-datadir-{label}-{}-{nanos}", std::process::id()));
            fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{e}"));
            Self(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn touch(p: &Path) {
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(p, "x").unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn emptiness_follows_patroni() {
        let t = TempDir::new("empty");
        let d = t.0.join("data");
        assert!(is_empty(&d), "a missing directory is empty");
        fs::create_dir(&d).unwrap_or_else(|e| panic!("{e}"));
        assert!(is_empty(&d));
        touch(&d.join(".hidden"));
        fs::create_dir(d.join("lost+found")).unwrap_or_else(|e| panic!("{e}"));
        assert!(is_empty(&d), "hidden files and lost+found do not count");
        assert!(has_entries(&d));
        touch(&d.join("PG_VERSION"));
        assert!(!is_empty(&d));
    }

    #[test]
    fn clean_empties_the_directory_and_the_link_targets_but_keeps_them() {
        let t = TempDir::new("clean");
        let d = t.0.join("data");
        let wal = t.0.join("wal");
        let ts = t.0.join("ts");
        let outside = t.0.join("outside");
        touch(&d.join("global/pg_control"));
        touch(&d.join(".hidden"));
        touch(&wal.join("000000010000000000000001"));
        touch(&ts.join("PG_15/1/2"));
        touch(&outside.join("keep"));
        std::os::unix::fs::symlink(&wal, d.join("pg_wal")).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(d.join("pg_tblspc")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&ts, d.join("pg_tblspc/16384")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.join("keep"), d.join("a_link")).unwrap_or_else(|e| panic!("{e}"));
        // A link to the data directory's parent must not make us empty it.
        std::os::unix::fs::symlink(&t.0, d.join("pg_tblspc/1")).unwrap_or_else(|e| panic!("{e}"));

        clean(&d).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.is_dir() && !has_entries(&d));
        assert!(wal.is_dir() && !has_entries(&wal));
        assert!(ts.is_dir() && !has_entries(&ts));
        assert!(outside.join("keep").exists(), "a plain symlink's target is left alone");
    }

    #[test]
    fn clean_accepts_a_missing_directory_and_removes_a_file() {
        let t = TempDir::new("file");
        clean(&t.0.join("missing")).unwrap_or_else(|e| panic!("{e}"));
        touch(&t.0.join("file"));
        clean(&t.0.join("file")).unwrap_or_else(|e| panic!("{e}"));
        assert!(!t.0.join("file").exists());
    }

    #[test]
    fn ensure_creates_with_mode_0700() {
        let t = TempDir::new("ensure");
        let d = t.0.join("a/b/data");
        ensure(&d).unwrap_or_else(|e| panic!("{e}"));
        let mode = fs::metadata(&d).unwrap_or_else(|e| panic!("{e}")).permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure(&d).unwrap_or_else(|e| panic!("{e}"));

        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        ensure(&d).unwrap_or_else(|e| panic!("{e}"));
        let mode = fs::metadata(&d).unwrap_or_else(|e| panic!("{e}")).permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "a mode PostgreSQL refuses is fixed");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o750)).unwrap_or_else(|e| panic!("{e}"));
        ensure(&d).unwrap_or_else(|e| panic!("{e}"));
        let mode = fs::metadata(&d).unwrap_or_else(|e| panic!("{e}")).permissions().mode() & 0o777;
        assert_eq!(mode, 0o750, "group access is left alone");
    }

    #[test]
    fn relative_paths_are_taken_from_cwd() {
        assert_eq!(resolve("/srv", "data"), PathBuf::from("/srv/data"));
        assert_eq!(resolve("/srv", "/var/lib/pg"), PathBuf::from("/var/lib/pg"));
        assert_eq!(resolve("", "data"), PathBuf::from("data"));
    }
}
