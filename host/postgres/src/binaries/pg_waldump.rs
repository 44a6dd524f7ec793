use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_model::{format_lsn, parse_lsn};

use super::{Binaries, CommandError, CommandOutput, Env, Invocation, Program};
use crate::controldata::{ClusterState, ControlData};

/// `PGDATA=<data_dir> pg_waldump -t <timeline> -s <start> -n <limit>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaldumpArgs {
    pub data_dir: PathBuf,
    pub timeline: u32,
    pub start: u64,
    pub limit: u32,
}

/// Run pg_waldump. Reading past the end of the WAL is how the end of a
/// record is found, so a non-zero exit is not an error here: the output is
/// returned whatever the exit status.
pub async fn pg_waldump(bins: &Binaries, args: &WaldumpArgs) -> Result<CommandOutput, CommandError> {
    Invocation::new(bins.path(Program::PgWaldump), Env::c_locale().set("PGDATA", &args.data_dir))
        .arg("-t")
        .arg(args.timeline.to_string())
        .arg("-s")
        .arg(format_lsn(args.start))
        .arg("-n")
        .arg(args.limit.to_string())
        .timeout(Duration::from_secs(60))
        .output()
        .await
}

/// One record line of pg_waldump's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Resource manager (`XLOG`, `Heap`...).
    pub rmgr: String,
    pub lsn: u64,
    pub prev: u64,
    /// What follows `desc: `.
    pub desc: String,
}

impl WalRecord {
    /// Parse `rmgr: XLOG len (rec/tot): 114/ 114, tx: 0, lsn: 0/03000028, prev 0/03000000, desc: ...`.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("rmgr:")?.trim_start();
        let rmgr = rest.split_whitespace().next()?.to_string();
        let after_lsn = &rest[rest.find(", lsn: ")? + ", lsn: ".len()..];
        let lsn = parse_lsn(after_lsn.split(',').next()?)?;
        let after_prev = &after_lsn[after_lsn.find(", prev ")? + ", prev ".len()..];
        let prev = parse_lsn(after_prev.split(',').next()?)?;
        let desc = after_prev[after_prev.find("desc: ")? + "desc: ".len()..].to_string();
        Some(Self { rmgr, lsn, prev, desc })
    }
}

/// The end of the checkpoint record at `lsn` (Patroni's
/// `_get_checkpoint_end`): pg_waldump is asked for two records and fails
/// on the second with `error in WAL record at LSN: invalid record length
/// at END`; `END` is where the checkpoint record ends. `None` when the
/// output does not look like that (more WAL follows, or the file is gone).
pub async fn checkpoint_end(
    bins: &Binaries,
    data_dir: &Path,
    timeline: u32,
    lsn: u64,
) -> Result<Option<u64>, CommandError> {
    let args = WaldumpArgs { data_dir: data_dir.to_path_buf(), timeline, start: lsn, limit: 2 };
    let out = pg_waldump(bins, &args).await?;
    Ok(parse_checkpoint_end(&out.stdout, &out.stderr, lsn))
}

pub(crate) fn parse_checkpoint_end(stdout: &str, stderr: &str, lsn: u64) -> Option<u64> {
    let out: Vec<&str> = stdout.trim_end().lines().collect();
    let err: Vec<&str> = stderr.trim_end().lines().collect();
    let full_lsn = format!("{:X}/{:08X}", lsn >> 32, lsn & 0xFFFF_FFFF);
    if out.len() != 1 || err.len() != 1 || !out[0].contains(&format!(", lsn: {full_lsn}, prev ")) {
        return None;
    }
    let rest = &err[0][err[0].find("error in WAL record at ")? + "error in WAL record at ".len()..];
    let (at, rest) = rest.split_once(": invalid record length at ")?;
    let end: String = rest.chars().take_while(|c| c.is_ascii_hexdigit() || *c == '/').collect();
    (parse_lsn(at)? == lsn).then_some(())?;
    parse_lsn(&end)
}

/// Where the WAL of a server that crashed ends: the position right after
/// its last valid record, found by reading from the latest checkpoint's
/// REDO point to the first record that cannot be read (`pg_waldump -q`
/// reports it). `None` when the failure is not one that marks the end of
/// the WAL.
pub async fn end_of_wal(bins: &Binaries, data_dir: &Path, control: &ControlData) -> Result<Option<u64>, CommandError> {
    let out = Invocation::new(bins.path(Program::PgWaldump), Env::c_locale().set("PGDATA", data_dir))
        .arg("-q")
        .arg("-t")
        .arg(control.checkpoint_timeline.to_string())
        .arg("-s")
        .arg(format_lsn(control.redo_lsn))
        .timeout(Duration::from_secs(120))
        .output()
        .await?;
    Ok(parse_end_of_wal(&out.stderr, control.wal_segment_size.unwrap_or(16 << 20)))
}

/// The end of the WAL from pg_waldump's reading error: a zeroed record
/// header (`invalid record length at END`), a page that belongs to an
/// older segment (`... in log segment SEG, offset OFF`), or a missing next
/// segment (`could not find file "SEG"`).
pub(crate) fn parse_end_of_wal(stderr: &str, segment_size: u64) -> Option<u64> {
    let line = stderr.lines().find(|l| l.contains("error"))?;
    if let Some(i) = line.find("invalid record length at ") {
        let rest = &line[i + "invalid record length at ".len()..];
        let end: String = rest.chars().take_while(|c| c.is_ascii_hexdigit() || *c == '/').collect();
        return parse_lsn(&end);
    }
    let segment_lsn = |name: &str| -> Option<u64> {
        let name = name.trim_matches(|c| c == '"' || c == ',' || c == ':');
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let log = u64::from_str_radix(&name[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
        Some((log << 32) + seg * segment_size)
    };
    if let Some(i) = line.find("in log segment ") {
        let rest = &line[i + "in log segment ".len()..];
        let (seg, rest) = rest.split_once(',')?;
        let offset: String =
            rest.trim_start().strip_prefix("offset ")?.chars().take_while(char::is_ascii_digit).collect();
        return Some(segment_lsn(seg)? + offset.parse::<u64>().ok()?);
    }
    if let Some(i) = line.find("could not find file ") {
        let rest = &line[i + "could not find file ".len()..];
        return segment_lsn(rest.split_whitespace().next()?);
    }
    None
}

/// Where a cleanly shut down primary stopped (Patroni's
/// `latest_checkpoint_locations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownCheckpoint {
    /// `Latest checkpoint location`.
    pub checkpoint_lsn: u64,
    /// The last WAL position before the checkpoint that replicas must have:
    /// the checkpoint itself, or the WAL switch record written just before it
    /// when `archive_mode` is on.
    pub last_lsn: u64,
}

/// For a `shut down` pg_control, check with pg_waldump that the latest
/// checkpoint is a shutdown checkpoint and whether a WAL switch precedes it.
/// `Ok(None)` when the cluster is not in `shut down` state.
pub async fn shutdown_checkpoint(
    bins: &Binaries,
    data_dir: &Path,
    control: &ControlData,
) -> Result<Option<ShutdownCheckpoint>, CommandError> {
    if control.state != ClusterState::ShutDown {
        return Ok(None);
    }
    let checkpoint_lsn = control.checkpoint_lsn;
    let timeline = control.checkpoint_timeline;
    let mut last_lsn = checkpoint_lsn;
    let first = read_one(bins, data_dir, timeline, checkpoint_lsn).await?;
    if let Some(record) = first {
        let desc = record.desc.trim().to_lowercase();
        if record.rmgr == "XLOG"
            && record.lsn == checkpoint_lsn
            && desc.starts_with("checkpoint")
            && desc.ends_with("shutdown")
        {
            if let Some(prev) = read_one(bins, data_dir, timeline, record.prev).await? {
                if prev.lsn == record.prev && matches!(prev.desc.trim(), "xlog switch" | "SWITCH") {
                    last_lsn = record.prev;
                }
            }
        }
    }
    Ok(Some(ShutdownCheckpoint { checkpoint_lsn, last_lsn }))
}

async fn read_one(
    bins: &Binaries,
    data_dir: &Path,
    timeline: u32,
    lsn: u64,
) -> Result<Option<WalRecord>, CommandError> {
    let args = WaldumpArgs { data_dir: data_dir.to_path_buf(), timeline, start: lsn, limit: 1 };
    let out = pg_waldump(bins, &args).await?;
    if !out.stderr.trim().is_empty() {
        return Ok(None);
    }
    Ok(out.stdout.lines().next().and_then(WalRecord::parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKPOINT: &str = "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/03000148, prev 0/03000110, desc: CHECKPOINT_SHUTDOWN redo 0/3000148; tli 1; prev tli 1; fpw true; xid 0:735; oid 16389; multi 1; offset 0; oldest xid 716 in DB 1; oldest multi 1 in DB 1; oldest/newest commit timestamp xid: 0/0; oldest running xid 0; shutdown";

    #[test]
    fn parses_records() {
        let r = WalRecord::parse(CHECKPOINT).unwrap();
        assert_eq!(r.rmgr, "XLOG");
        assert_eq!(r.lsn, 0x3000148);
        assert_eq!(r.prev, 0x3000110);
        assert!(r.desc.starts_with("CHECKPOINT_SHUTDOWN") && r.desc.ends_with("shutdown"));
        let switch = "rmgr: XLOG        len (rec/tot):     24/    24, tx:          0, lsn: 0/03000110, prev 0/030000D8, desc: SWITCH ";
        assert_eq!(WalRecord::parse(switch).unwrap().desc.trim(), "SWITCH");
        assert_eq!(WalRecord::parse("garbage"), None);
    }

    #[test]
    fn end_of_wal_from_the_read_error() {
        let seg = 16 << 20;
        let cases = [
            ("pg_waldump: error: error in WAL record at 0/4028730: invalid record length at 0/40287A8: wanted 24, got 0", Some(0x40287A8)),
            ("pg_waldump: error: error in WAL record at 0/4028730: invalid record length at 0/40287A8: expected at least 24, got 0", Some(0x40287A8)),
            ("pg_waldump: error: error in WAL record at 0/4FFFF80: unexpected pageaddr 0/1000000 in log segment 000000010000000000000005, offset 8192", Some(0x5002000)),
            ("pg_waldump: error: error in WAL record at 0/4FFFF80: invalid magic number 0000 in log segment 000000010000000100000002, offset 0", Some(0x1_0200_0000)),
            ("pg_waldump: error: could not find file \"000000010000000000000006\": No such file or directory", Some(0x6000000)),
            ("pg_waldump: error: something else", None),
            ("", None),
        ];
        for (stderr, expected) in cases {
            assert_eq!(parse_end_of_wal(stderr, seg), expected, "{stderr}");
        }
    }

    #[test]
    fn checkpoint_end_from_the_read_error() {
        let err = "pg_waldump: error: error in WAL record at 0/3000148: invalid record length at 0/30001C0: wanted 24, got 0\n";
        assert_eq!(parse_checkpoint_end(CHECKPOINT, err, 0x3000148), Some(0x30001C0));
        let err16 = "pg_waldump: error: error in WAL record at 0/3000148: invalid record length at 0/30001C0: expected at least 24, got 0";
        assert_eq!(parse_checkpoint_end(CHECKPOINT, err16, 0x3000148), Some(0x30001C0));
        // Another record follows the checkpoint: the output has two lines.
        assert_eq!(parse_checkpoint_end(&format!("{CHECKPOINT}\n{CHECKPOINT}"), "", 0x3000148), None);
        // The error is about another record.
        let other =
            "pg_waldump: error: error in WAL record at 0/3000200: invalid record length at 0/3000300: wanted 24, got 0";
        assert_eq!(parse_checkpoint_end(CHECKPOINT, other, 0x3000148), None);
        // The dump did not start at our checkpoint.
        assert_eq!(parse_checkpoint_end(CHECKPOINT, err, 0x3000110), None);
    }
}
