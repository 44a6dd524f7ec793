//! The daemon's log: Patroni's layout by default
//! (`2026-01-31 12:00:00,123 INFO: message`), any Python logging format
//! (`log.format`, `log.dateformat`), JSON lines as Patroni's
//! python-json-logger writes them (`log.type: json`, `log.static_fields`),
//! to stderr or to rotated files in `log.dir` (`log.mode`).
//!
//! Layout: [`percent`] (Python's `%` formatting), [`strftime`] (glibc's, as
//! `time.strftime`), [`record`] (what each LogRecord attribute is here),
//! [`json`] (the JSON lines).

pub mod heartbeat;
mod json;
mod percent;
mod record;
mod strftime;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use chrono::TimeZone as _;
use palisade_config::{LogConfig, DEFAULT_LOG_FORMAT};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Registry};

use json::JsonLayout;
use percent::Format;
use record::Record;

/// Python logging's level names.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "DEBUG",
    }
}

/// Read a Python logging level name (or a number).
pub fn parse_level(name: &str) -> Option<LevelFilter> {
    Some(match name.trim().to_ascii_uppercase().as_str() {
        "CRITICAL" | "FATAL" | "ERROR" | "50" | "40" => LevelFilter::ERROR,
        "WARNING" | "WARN" | "30" => LevelFilter::WARN,
        "INFO" | "20" => LevelFilter::INFO,
        "DEBUG" | "10" => LevelFilter::DEBUG,
        "TRACE" | "NOTSET" | "0" => LevelFilter::TRACE,
        _ => return None,
    })
}

struct MessageOnly(String);

impl tracing::field::Visit for MessageOnly {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

/// How each line is laid out: `log.format` applied to the record, or a
/// JSON object of the fields it names.
#[derive(Clone, Debug, PartialEq)]
enum Layout {
    Plain(Format),
    Json(JsonLayout),
}

/// Patroni's layout (or the configured `log.format`), or JSON lines.
#[derive(Clone, Debug, PartialEq)]
pub struct PatroniFormat {
    layout: Layout,
    dateformat: Option<String>,
    asctime: bool,
}

/// The attribute names of a `%` format as python-json-logger finds them
/// (every `%(...)`, whatever follows it).
fn json_field_names(format: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = format;
    while let Some(i) = rest.find("%(") {
        let after = &rest[i + 2..];
        // Non-greedy, at least one character: `%()x)` names `)x`.
        match after.char_indices().skip(1).find(|(_, c)| *c == ')') {
            Some((j, _)) => {
                names.push(after[..j].to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    names
}

impl PatroniFormat {
    /// The layout `log` asks for, or what is wrong with `log.format`.
    pub fn new(config: &LogConfig) -> Result<Self, String> {
        let layout = if config.format_type == "json" {
            let fields = match &config.format_fields {
                Some(list) => list.clone(),
                None => {
                    // python-json-logger hands the format to logging.Formatter
                    // first, which wants one well-formed directive.
                    if !percent::has_valid_directive(&config.format) {
                        return Err(format!("log.format: Invalid format '{}' for '%' style", config.format));
                    }
                    json_field_names(&config.format).into_iter().map(|n| (n.clone(), n)).collect()
                }
            };
            Layout::Json(JsonLayout { fields, static_fields: config.static_fields.clone() })
        } else {
            Layout::Plain(Format::parse(&config.format).map_err(|e| format!("log.format: {e}"))?)
        };
        let asctime = match &layout {
            Layout::Plain(f) => f.uses("asctime"),
            Layout::Json(j) => j.fields.iter().any(|(a, _)| a == "asctime"),
        };
        Ok(Self { layout, dateformat: config.dateformat.clone(), asctime })
    }

    fn plain() -> Self {
        let format = Format::parse(DEFAULT_LOG_FORMAT).unwrap_or_else(|_| Format::message_only());
        Self { layout: Layout::Plain(format), dateformat: None, asctime: true }
    }

    /// `logging.Formatter.formatTime`: `time.strftime(dateformat)`, or
    /// `2026-01-31 12:00:00,123`, in local time.
    fn asctime(&self, created: f64) -> String {
        let secs = created.floor() as i64;
        match chrono::Local.timestamp_opt(secs, 0).single() {
            Some(t) => self.asctime_at(created, &t.fixed_offset(), &strftime::zone_abbreviation(secs)),
            None => String::new(),
        }
    }

    fn asctime_at(&self, created: f64, local: &chrono::DateTime<chrono::FixedOffset>, zone: &str) -> String {
        match &self.dateformat {
            Some(f) => strftime::strftime(f, local, zone),
            None => {
                let msecs = ((created - created.trunc()) * 1000.0).trunc() as u32;
                format!("{},{msecs:03}", strftime::strftime("%Y-%m-%d %H:%M:%S", local, zone))
            }
        }
    }

    fn render(&self, record: &Record) -> String {
        let value = |name: &str| record.value(name);
        match &self.layout {
            Layout::Plain(f) => f.render(&value),
            Layout::Json(j) => j.render(&value),
        }
    }
}

impl<S, N> FormatEvent<S, N> for PatroniFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let now = std::time::SystemTime::now();
        let created = now.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let relative_ms = record::start().elapsed().as_secs_f64() * 1000.0;
        let mut message = MessageOnly(String::new());
        event.record(&mut message);
        let meta = event.metadata();
        let span = ctx.lookup_current().map(|s| s.name());
        let (thread_id, thread_name) = Record::this_thread();
        let record = Record {
            created,
            asctime: if self.asctime { self.asctime(created) } else { String::new() },
            level: meta.level(),
            level_name: level_name(meta.level()),
            message: &message.0,
            target: meta.target(),
            file: meta.file(),
            line: meta.line(),
            module_path: meta.module_path(),
            span,
            relative_ms,
            process: std::process::id(),
            process_name: record::program_name(),
            thread_id,
            thread_name,
        };
        writeln!(writer, "{}", self.render(&record))
    }
}

/// A log file rotated by size, keeping `file_num` old files
/// (`patroni.log`, `patroni.log.1`...), as Patroni's RotatingFileHandler:
/// a line that would bring the file to `file_size` bytes starts a new file
/// (none with `file_size: 0`; with `file_num: 0` the file is reopened and
/// grows on, as in Python). Each file opened gets `mode` (`log.mode`, else
/// 0666 less the umask palisade started with).
struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_size: u64,
    keep: u32,
    mode: u32,
}

impl RotatingFile {
    fn open(path: &Path, max_size: u64, keep: u32, mode: u32) -> io::Result<Self> {
        let mut f = Self { path: path.to_path_buf(), file: None, written: 0, max_size, keep, mode };
        f.reopen()?;
        Ok(f)
    }

    fn reopen(&mut self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        self.written = file.metadata().map_or(0, |m| m.len());
        self.file = Some(file);
        Ok(())
    }

    /// `log.mode` changed: the open file takes it now, the next ones too.
    fn set_mode(&mut self, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if mode != self.mode {
            self.mode = mode;
            if let Some(f) = &self.file {
                f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
        }
        Ok(())
    }

    /// The old files there are: their numbers, below `keep`, highest first.
    /// (Found by listing the directory: `file_num` may be huge.)
    fn old_files(&self) -> Vec<u64> {
        let Some(base) = self.path.file_name().map(|n| n.to_string_lossy().into_owned()) else { return Vec::new() };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let n = name.strip_prefix(&base)?.strip_prefix('.')?;
                        if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
                            return None;
                        }
                        n.parse::<u64>().ok()
                    })
                    .filter(|n| *n >= 1 && *n < u64::from(self.keep))
                    .collect()
            })
            .unwrap_or_default();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        numbers
    }

    fn numbered(&self, n: u64) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep > 0 {
            for n in self.old_files() {
                std::fs::rename(self.numbered(n), self.numbered(n + 1))?;
            }
            if self.path.exists() {
                std::fs::rename(&self.path, self.numbered(1))?;
            }
        }
        self.reopen()
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.max_size > 0 && self.written.saturating_add(buf.len() as u64) >= self.max_size {
            self.rotate()?;
        }
        let n = match self.file.as_mut() {
            Some(f) => f.write(buf)?,
            None => return Err(io::Error::other("log file is not open")),
        };
        self.written = self.written.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// The permissions for log files: `log.mode`, else 0666 less the umask
/// palisade started with (read once: a reload must not touch the umask
/// while other threads create files).
fn file_mode(config: &LogConfig) -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    config.mode.unwrap_or_else(|| {
        let umask = *UMASK.get_or_init(|| {
            use nix::sys::stat::{umask, Mode};
            let current = umask(Mode::from_bits_truncate(0o077));
            umask(current);
            current.bits()
        });
        0o666 & !umask
    })
}

/// Where the lines go: stderr, or the rotated `patroni.log` in `log.dir`.
enum Sink {
    Stderr,
    File(RotatingFile),
}

impl Sink {
    fn open(config: &LogConfig) -> Result<Self, String> {
        match &config.dir {
            None => Ok(Self::Stderr),
            Some(dir) => {
                let path = dir.join("patroni.log");
                RotatingFile::open(&path, config.file_size, config.file_num, file_mode(config))
                    .map(Self::File)
                    .map_err(|e| format!("log.dir: cannot open {}: {e}", path.display()))
            }
        }
    }

    /// Follow `config`: the same file takes the new sizes and mode (the
    /// open file gets the mode at once), another place opens anew. On
    /// error the lines keep going where they went.
    fn update(&mut self, config: &LogConfig) -> Result<(), String> {
        if let (Self::File(f), Some(dir)) = (&mut *self, &config.dir) {
            if f.path == dir.join("patroni.log") {
                f.max_size = config.file_size;
                f.keep = config.file_num;
                return f.set_mode(file_mode(config)).map_err(|e| format!("log.mode: {}: {e}", f.path.display()));
            }
        }
        if matches!((&*self, &config.dir), (Self::Stderr, None)) {
            return Ok(());
        }
        *self = Self::open(config)?;
        Ok(())
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stderr => io::stderr().write(buf),
            Self::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stderr => io::stderr().flush(),
            Self::File(f) => f.flush(),
        }
    }
}

/// The writer the formatting layer asks for each line: the current sink.
#[derive(Clone)]
struct SharedSink(Arc<Mutex<Sink>>);

struct SinkGuard<'a>(std::sync::MutexGuard<'a, Sink>);

impl Write for SinkGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for SharedSink {
    type Writer = SinkGuard<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        SinkGuard(self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The current layout, which a reload replaces.
#[derive(Clone)]
struct SharedFormat(Arc<RwLock<PatroniFormat>>);

impl<S, N> FormatEvent<S, N> for SharedFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        self.0.read().unwrap_or_else(|p| p.into_inner()).format_event(ctx, writer, event)
    }
}

/// The filter for a log configuration: the general level plus per-target
/// levels from `log.loggers` (targets are palisade's module paths, e.g.
/// `palisade_daemon::api`, or `plugin` for all plugins).
pub fn filter(config: &LogConfig) -> Result<Targets, String> {
    let level = parse_level(&config.level).ok_or_else(|| format!("log.level: unknown level '{}'", config.level))?;
    let mut targets = Targets::new().with_default(level);
    for (target, lvl) in &config.loggers {
        let l = parse_level(lvl).ok_or_else(|| format!("log.loggers.{target}: unknown level '{lvl}'"))?;
        targets = targets.with_target(target.clone(), l);
    }
    Ok(targets)
}

/// What is wrong with the `log` section beyond what the configuration
/// crate checks (levels, `log.format`), for `--validate-config` and before
/// a reload applies a file.
pub fn check(config: &LogConfig) -> Result<(), String> {
    filter(config)?;
    PatroniFormat::new(config).map(|_| ())
}

/// The parts of the installed log a reload changes, as Patroni's
/// `PatroniLogger.reload_config` does: the level and `log.loggers` (the
/// filter), the layout (`type`, `format`, `dateformat`, `static_fields`),
/// where lines go (`dir`, `file_num`, `file_size`, `mode`) and
/// `traceback_level`. (`deduplicate_heartbeat_logs` is read by the loop
/// each cycle.)
pub struct LogHandle {
    filter: reload::Handle<Targets, Registry>,
    format: SharedFormat,
    sink: SharedSink,
}

/// The subscriber [`LogHandle::build`] makes.
type Installed = Layered<
    tracing_subscriber::fmt::Layer<
        Layered<reload::Layer<Targets, Registry>, Registry>,
        DefaultFields,
        SharedFormat,
        SharedSink,
    >,
    Layered<reload::Layer<Targets, Registry>, Registry>,
>;

impl LogHandle {
    /// A subscriber logging as `config` says, and the handle to change it.
    fn build(config: &LogConfig) -> Result<(Installed, Self), String> {
        let targets = filter(config)?;
        let format = SharedFormat(Arc::new(RwLock::new(PatroniFormat::new(config)?)));
        let sink = SharedSink(Arc::new(Mutex::new(Sink::open(config)?)));
        let (filter, handle) = reload::Layer::new(targets);
        let layer = tracing_subscriber::fmt::layer().event_format(format.clone()).with_writer(sink.clone());
        let subscriber = tracing_subscriber::registry().with(filter).with(layer);
        TRACEBACK_DEBUG.store(config.traceback_debug, Ordering::Relaxed);
        Ok((subscriber, Self { filter: handle, format, sink }))
    }

    /// Apply `config`. Each part that cannot follow (a bad level or
    /// format, a log file that cannot be opened) keeps its old value and
    /// is named in the error.
    fn apply(&self, config: &LogConfig) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        TRACEBACK_DEBUG.store(config.traceback_debug, Ordering::Relaxed);
        match PatroniFormat::new(config) {
            Ok(format) => *self.format.0.write().unwrap_or_else(|p| p.into_inner()) = format,
            Err(e) => problems.push(e),
        }
        if let Err(e) = self.sink.0.lock().unwrap_or_else(|p| p.into_inner()).update(config) {
            problems.push(e);
        }
        // Last, so that lines enabled now are already in the new layout.
        match filter(config) {
            Ok(targets) => {
                if let Err(e) = self.filter.reload(targets) {
                    problems.push(format!("log.level: {e}"));
                }
            }
            Err(e) => problems.push(e),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

static HANDLE: OnceLock<LogHandle> = OnceLock::new();

/// `log.traceback_level: DEBUG`, as the panic hook reads it.
static TRACEBACK_DEBUG: AtomicBool = AtomicBool::new(false);

/// Install the global subscriber. Call once, early.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let (subscriber, handle) = LogHandle::build(config)?;
    subscriber.try_init().map_err(|e| e.to_string())?;
    let _ = HANDLE.set(handle);
    Ok(())
}

/// Apply a reloaded `log` section to the log [`init`] installed (a no-op
/// before it). What cannot be applied is logged at ERROR, and that part
/// of the log stays as it was.
pub fn reload(config: &LogConfig) {
    let Some(handle) = HANDLE.get() else { return };
    if let Err(problems) = handle.apply(config) {
        for p in problems {
            tracing::error!("{p}; this part of the log configuration is unchanged");
        }
    }
}

/// Log a panic through the log, as Patroni logs an exception: the panic
/// (where, and its message) at ERROR, then its backtrace at
/// `log.traceback_level` (ERROR, or DEBUG with `traceback_level: DEBUG`;
/// the setting as last loaded or reloaded).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string payload".to_string());
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        tracing::error!("thread '{thread}' panicked{location}: {payload}");
        let backtrace = std::backtrace::Backtrace::force_capture();
        if TRACEBACK_DEBUG.load(Ordering::Relaxed) {
            tracing::debug!("Traceback (most recent call first):\n{backtrace}");
        } else {
            tracing::error!("Traceback (most recent call first):\n{backtrace}");
        }
    }));
}

/// A bare stderr logger at INFO for the time before the configuration is
/// read (and for `--validate-config`).
pub fn init_default() {
    let layer = tracing_subscriber::fmt::layer().event_format(PatroniFormat::plain()).with_writer(io::stderr);
    let _ = tracing_subscriber::registry().with(layer.with_filter(LevelFilter::INFO)).try_init();
}

use tracing_subscriber::Layer as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What a panic logs with the hook installed, at level INFO.
    fn panic_log(traceback_debug: bool) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(PatroniFormat::plain())
            .with_writer(move || writer.clone())
            .with_max_level(Level::INFO)
            .finish();
        TRACEBACK_DEBUG.store(traceback_debug, Ordering::Relaxed);
        install_panic_hook();
        let result = tracing::subscriber::with_default(subscriber, || {
            std::panic::catch_unwind(|| std::panic::panic_any("the cause".to_string()))
        });
        drop(std::panic::take_hook());
        assert!(result.is_err());
        let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_panic_is_logged_with_its_backtrace_at_the_traceback_level() {
        let log = panic_log(false);
        assert!(log.contains(" ERROR: thread '"), "{log}");
        assert!(log.contains("panicked at host/daemon/src/logging/mod.rs:"), "{log}");
        assert!(log.contains(": the cause\n"), "{log}");
        assert!(log.contains(" ERROR: Traceback (most recent call first):\n"), "{log}");
        // traceback_level: DEBUG, logging at INFO: the panic, not its backtrace.
        let log = panic_log(true);
        assert!(log.contains(": the cause\n"), "{log}");
        assert!(!log.contains("Traceback"), "{log}");
    }

    #[test]
    fn python_level_names() {
        assert_eq!(parse_level("warning"), Some(LevelFilter::WARN));
        assert_eq!(parse_level("CRITICAL"), Some(LevelFilter::ERROR));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(level_name(&Level::WARN), "WARNING");
    }

    fn config(format_type: &str, format: &str, dateformat: Option<&str>) -> LogConfig {
        LogConfig {
            level: "INFO".into(),
            format_type: format_type.into(),
            format: format.into(),
            format_fields: None,
            dateformat: dateformat.map(String::from),
            static_fields: serde_json::Map::new(),
            dir: None,
            file_num: 4,
            file_size: 25_000_000,
            mode: None,
            loggers: Default::default(),
            deduplicate_heartbeat_logs: false,
            traceback_debug: false,
        }
    }

    /// The record Python formatted for the expectations below (TZ=UTC).
    fn record(format: &PatroniFormat) -> Record<'static> {
        let created = 1_733_500_000.123;
        let utc = chrono::FixedOffset::east_opt(0).expect("UTC");
        let t = utc.timestamp_opt(1_733_500_000, 0).single().expect("a time");
        Record {
            created,
            asctime: format.asctime_at(created, &t, "UTC"),
            level: &Level::WARN,
            level_name: "WARNING",
            message: "hello",
            target: "palisade_daemon::runner::cycle",
            file: Some("host/daemon/src/runner/cycle.rs"),
            line: Some(42),
            module_path: Some("palisade_daemon::runner::cycle"),
            span: None,
            relative_ms: 1500.25,
            process: 4242,
            process_name: "palisade",
            thread_id: 777,
            thread_name: Some("main".into()),
        }
    }

    /// Each expected line is what Python 3.11's logging.Formatter printed
    /// for a LogRecord with the same attribute values.
    #[test]
    fn lines_as_python_logging_formats_them() {
        let cases = [
            (
                "%(asctime)s %(levelname)s [%(pathname)s:%(lineno)d - %(funcName)s]: %(message)s",
                None,
                "2024-12-06 15:46:40,122 WARNING [host/daemon/src/runner/cycle.rs:42 - palisade_daemon::runner::cycle]: hello",
            ),
            ("%(levelname)-8s %(name)s:%(lineno)4d %(message)s", None, "WARNING  palisade_daemon::runner::cycle:  42 hello"),
            (
                "%(process)d/%(processName)s %(thread)d/%(threadName)s %(module)s %(filename)s",
                None,
                "4242/palisade 777/main cycle cycle.rs",
            ),
            (
                "%(created)f %(created)s %(msecs)03d %(msecs)s %(relativeCreated)d %(relativeCreated).3f %(levelno)02d",
                None,
                "1733500000.123000 1733500000.123 122 122.0 1500 1500.250 30",
            ),
            (
                "%(args)s %(exc_info)s %(exc_text)r %(stack_info)s %(msg)r %(message).3s|%(levelname)10.4s|%%",
                None,
                "() None None None 'hello' hel|      WARN|%",
            ),
            ("%(asctime)s", None, "2024-12-06 15:46:40,122"),
            ("%(asctime)s", Some("%d.%m.%Y %H:%M:%S"), "06.12.2024 15:46:40"),
            ("%(asctime)s", Some("%Y-%m-%dT%H:%M:%S%z %Z %f"), "2024-12-06T15:46:40+0000 UTC %f"),
            ("%(asctime)s", Some("%s"), "1733500000"),
            (DEFAULT_LOG_FORMAT, None, "2024-12-06 15:46:40,122 WARNING: hello"),
        ];
        for (format, dateformat, want) in cases {
            let f =
                PatroniFormat::new(&config("plain", format, dateformat)).unwrap_or_else(|e| panic!("{format}: {e}"));
            let r = record(&f);
            assert_eq!(f.render(&r), want, "{format} {dateformat:?}");
        }
        let plain = PatroniFormat::plain();
        assert_eq!(plain.render(&record(&plain)), "2024-12-06 15:46:40,122 WARNING: hello");
    }

    /// Patroni's `log.type: json` (python-json-logger 4.2 in Patroni 4.1):
    /// the keys are the format's fields, a list renames, static fields follow.
    #[test]
    fn json_lines_as_patroni_writes_them() {
        let mut list = config("json", DEFAULT_LOG_FORMAT, None);
        list.format_fields = Some(vec![
            ("asctime".into(), "@timestamp".into()),
            ("levelname".into(), "level".into()),
            ("lineno".into(), "lineno".into()),
            ("message".into(), "message".into()),
        ]);
        list.static_fields = serde_json::json!({"app": "patroni", "pod": 7}).as_object().cloned().unwrap_or_default();
        let cases = [
            (
                config("json", DEFAULT_LOG_FORMAT, None),
                r#"{"asctime": "2024-12-06 15:46:40,122", "levelname": "WARNING", "message": "hello"}"#,
            ),
            (
                config("json", "%(levelname)-8s %(process)d %(nosuch)s %(created)s", None),
                r#"{"levelname": "WARNING", "process": 4242, "nosuch": null, "created": 1733500000.123}"#,
            ),
            (
                list,
                r#"{"@timestamp": "2024-12-06 15:46:40,122", "level": "WARNING", "lineno": 42, "message": "hello", "app": "patroni", "pod": 7}"#,
            ),
        ];
        for (c, want) in cases {
            let f = PatroniFormat::new(&c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert_eq!(f.render(&record(&f)), want);
        }
    }

    #[test]
    fn bad_formats_are_configuration_errors() {
        let cases = [
            ("plain", "%(message", "log.format: '%(message': the '%(' is not closed"),
            ("plain", "%(levelname)d", "log.format: '%(levelname)d': levelname is a str"),
            ("plain", "%(nosuch)s", "no attribute 'nosuch'"),
            ("plain", "no fields", "log.format: Invalid format 'no fields' for '%' style"),
            ("json", "no fields", "log.format: Invalid format 'no fields' for '%' style"),
        ];
        for (t, format, want) in cases {
            match PatroniFormat::new(&config(t, format, None)) {
                Ok(_) => panic!("{t} {format} accepted"),
                Err(e) => assert!(e.starts_with("log.format: ") && e.contains(want), "{t} {format}: {e}"),
            }
        }
    }

    /// A whole event through tracing: the log site's file, line and module.
    #[test]
    fn events_carry_their_log_site() {
        let format = PatroniFormat::new(&config(
            "plain",
            "%(levelname)s %(pathname)s:%(lineno)d %(module)s %(funcName)s %(name)s %(process)d %(threadName)s: %(message)s",
            None,
        ))
        .expect("a format");
        let buffer = Buffer::default();
        let out = buffer.clone();
        let layer = tracing_subscriber::fmt::layer().event_format(format).with_writer(move || out.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        let line = line!() + 2;
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(member = "node1", "lost the lock");
        });
        let text = String::from_utf8_lossy(&buffer.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        let thread = std::thread::current().name().map(String::from).unwrap_or_default();
        let want = format!(
            "WARNING host/daemon/src/logging/mod.rs:{line} tests palisade_daemon::logging::tests \
             palisade_daemon::logging::tests {} {thread}: lost the lock member=node1\n",
            std::process::id()
        );
        assert_eq!(text, want);
    }

    /// A fresh directory for one test's log files.
    fn log_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("palisade-logreload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn in_dir(dir: &Path, format: &str) -> LogConfig {
        LogConfig { dir: Some(dir.to_path_buf()), ..config("plain", format, None) }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// `log.level` and `log.loggers` follow a reload: lines below the old
    /// level show up after it, lines of a quietened target go away.
    #[test]
    fn a_reload_changes_the_level_and_the_loggers() {
        let dir = log_dir("level");
        let base = in_dir(&dir, "%(levelname)s %(message)s");
        let (subscriber, handle) = LogHandle::build(&base).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("debug before");
            tracing::info!("info before");
            handle.apply(&LogConfig { level: "DEBUG".into(), ..base.clone() }).unwrap();
            tracing::debug!("debug after");
            let quiet = LogConfig {
                level: "DEBUG".into(),
                loggers: [("palisade_daemon::logging".to_string(), "WARNING".to_string())].into(),
                ..base.clone()
            };
            handle.apply(&quiet).unwrap();
            tracing::info!("info of a quietened logger");
            tracing::warn!("warning of a quietened logger");
            tracing::debug!(target: "palisade_daemon::api", "debug of another logger");
            handle.apply(&LogConfig { level: "ERROR".into(), ..base.clone() }).unwrap();
            tracing::warn!("warning at ERROR");
            tracing::error!("error at ERROR");
        });
        let want = "INFO info before\nDEBUG debug after\nWARNING warning of a quietened logger\n\
                    DEBUG debug of another logger\nERROR error at ERROR\n";
        assert_eq!(read(&dir.join("patroni.log")), want);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `log.type`, `log.format`, `log.dateformat` and `log.static_fields`
    /// follow a reload; a reload with a bad format keeps the layout.
    #[test]
    fn a_reload_changes_the_layout() {
        let dir = log_dir("layout");
        let base = in_dir(&dir, "%(levelname)s %(message)s");
        let (subscriber, handle) = LogHandle::build(&base).unwrap();
        let json = LogConfig {
            format_type: "json".into(),
            format_fields: Some(vec![("levelname".into(), "level".into()), ("message".into(), "message".into())]),
            static_fields: serde_json::json!({"app": "x"}).as_object().cloned().unwrap_or_default(),
            ..base.clone()
        };
        let dated = LogConfig { dateformat: Some("%Y".into()), ..in_dir(&dir, "%(asctime)s|%(message)s") };
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("plain");
            handle.apply(&json).unwrap();
            tracing::info!("json");
            handle.apply(&dated).unwrap();
            tracing::info!("dated");
            let bad = handle.apply(&in_dir(&dir, "%(nosuch)s")).unwrap_err();
            assert!(bad.len() == 1 && bad[0].starts_with("log.format: "), "{bad:?}");
            tracing::info!("still dated");
        });
        let year = chrono::Local::now().format("%Y").to_string();
        let want = format!(
            "INFO plain\n{{\"level\": \"INFO\", \"message\": \"json\", \"app\": \"x\"}}\n\
             {year}|dated\n{year}|still dated\n"
        );
        assert_eq!(read(&dir.join("patroni.log")), want);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `log.dir` follows a reload: from stderr to a file, to another
    /// directory, back to stderr; a directory that cannot be opened keeps
    /// the lines where they went.
    #[test]
    fn a_reload_moves_the_log_between_stderr_and_files() {
        let (a, b) = (log_dir("dir-a"), log_dir("dir-b"));
        let stderr = config("plain", "%(message)s", None);
        let (subscriber, handle) = LogHandle::build(&stderr).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("to stderr");
            handle.apply(&in_dir(&a, "%(message)s")).unwrap();
            tracing::info!("to a");
            handle.apply(&in_dir(&b, "%(message)s")).unwrap();
            tracing::info!("to b");
            let missing = a.join("missing");
            let bad = handle.apply(&in_dir(&missing, "%(message)s")).unwrap_err();
            assert!(bad.len() == 1 && bad[0].starts_with("log.dir: cannot open "), "{bad:?}");
            tracing::info!("still to b");
            handle.apply(&stderr).unwrap();
            tracing::info!("to stderr again");
            handle.apply(&in_dir(&a, "%(message)s")).unwrap();
            tracing::info!("to a again");
        });
        assert_eq!(read(&a.join("patroni.log")), "to a\nto a again\n");
        assert_eq!(read(&b.join("patroni.log")), "to b\nstill to b\n");
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }

    /// `log.file_size`, `log.file_num` and `log.mode` follow a reload of
    /// the same directory, without reopening the file.
    #[test]
    fn a_reload_changes_rotation_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = log_dir("rotation");
        let base = LogConfig { mode: Some(0o644), ..in_dir(&dir, "%(message)s") };
        let (subscriber, handle) = LogHandle::build(&base).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                tracing::info!("123456789");
            }
            assert!(!dir.join("patroni.log.1").exists());
            assert_eq!(mode(&dir.join("patroni.log")), 0o644);
            handle.apply(&LogConfig { file_size: 15, file_num: 1, mode: Some(0o600), ..base.clone() }).unwrap();
            assert_eq!(mode(&dir.join("patroni.log")), 0o600);
            for _ in 0..4 {
                tracing::info!("123456789");
            }
        });
        // Each line would bring the file to 15 bytes: a new file for each,
        // one old file kept.
        assert_eq!(read(&dir.join("patroni.log")), "123456789\n");
        assert_eq!(read(&dir.join("patroni.log.1")), "123456789\n");
        assert!(!dir.join("patroni.log.2").exists());
        assert_eq!(mode(&dir.join("patroni.log.1")), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `log.traceback_level` follows a reload: the panic hook reads it.
    #[test]
    fn a_reload_changes_the_traceback_level() {
        let dir = log_dir("traceback");
        let base = in_dir(&dir, "%(levelname)s %(message)s");
        let (subscriber, handle) = LogHandle::build(&base).unwrap();
        install_panic_hook();
        tracing::subscriber::with_default(subscriber, || {
            let _ = std::panic::catch_unwind(|| std::panic::panic_any("first".to_string()));
            handle.apply(&LogConfig { traceback_debug: true, ..base.clone() }).unwrap();
            let _ = std::panic::catch_unwind(|| std::panic::panic_any("second".to_string()));
        });
        drop(std::panic::take_hook());
        let log = read(&dir.join("patroni.log"));
        let tracebacks: Vec<&str> =
            log.lines().filter(|l| l.ends_with("Traceback (most recent call first):")).collect();
        assert_eq!(tracebacks, ["ERROR Traceback (most recent call first):"], "{log}");
        assert!(log.contains(": first\n") && log.contains(": second\n"), "{log}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_keeps_file_num_files() {
        let dir = std::env::temp_dir().join(format!("palisade-logtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("patroni.log");
        let mut f = RotatingFile::open(&path, 10, 2, 0o640).unwrap();
        for _ in 0..5 {
            f.write_all(b"123456789\n").unwrap();
        }
        assert!(path.exists());
        assert!(dir.join("patroni.log.1").exists());
        assert!(dir.join("patroni.log.2").exists());
        assert!(!dir.join("patroni.log.3").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `file_num` may be anything up to 2^32-1 without a loop over it;
    /// `file_num: 0` keeps one growing file (Python reopens it); the files
    /// get `log.mode`.
    #[test]
    fn rotation_with_extreme_file_num_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("palisade-logtest-extreme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("patroni.log");
        let mut f = RotatingFile::open(&path, 10, u32::MAX, 0o600).unwrap();
        for _ in 0..4 {
            f.write_all(b"123456789\n").unwrap();
        }
        for n in 1..=4 {
            let p = dir.join(format!("patroni.log.{n}"));
            assert!(p.exists(), "{}", p.display());
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();

        std::fs::create_dir_all(&dir).unwrap();
        let mut f = RotatingFile::open(&path, 10, 0, 0o644).unwrap();
        for _ in 0..3 {
            f.write_all(b"123456789\n").unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 30);
        assert!(!dir.join("patroni.log.1").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
