//! The daemon's log: Patroni's layout by default
//! (`2026-01-31 12:00:00,123 INFO: message`), JSON on request, to stderr
//! or to rotated files in `log.dir`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use palisade_config::LogConfig;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

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

/// One piece of a Python logging format string.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    /// `%(name)<flags><width>s`: attribute name, left-aligned, width.
    Field {
        name: String,
        left: bool,
        width: usize,
    },
}

/// Parse a Python `%`-style logging format (`%(asctime)s %(levelname)-8s: %(message)s`).
fn parse_format(format: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = format;
    while let Some(pos) = rest.find('%') {
        text.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            text.push('%');
            rest = r;
            continue;
        }
        let Some(r) = rest.strip_prefix('(') else {
            return Err(format!("unsupported '%' directive near '%{}'", rest.chars().take(8).collect::<String>()));
        };
        let close = r.find(')').ok_or("unterminated '%(' in log.format")?;
        let name = r[..close].to_string();
        let mut spec = &r[close + 1..];
        let left = spec.starts_with('-');
        if left {
            spec = &spec[1..];
        }
        let digits: String = spec.chars().take_while(char::is_ascii_digit).collect();
        spec = &spec[digits.len()..];
        let conv = spec.chars().next().ok_or("log.format ends inside a '%(...)' directive")?;
        if !matches!(conv, 's' | 'd' | 'r') {
            return Err(format!("unsupported conversion '%{conv}' for '{name}'"));
        }
        rest = &spec[conv.len_utf8()..];
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Field { name, left, width: digits.parse().unwrap_or(0) });
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Patroni's layout (or the configured `log.format`), or JSON lines.
pub struct PatroniFormat {
    json: bool,
    pieces: Vec<Piece>,
    dateformat: Option<String>,
}

impl PatroniFormat {
    pub fn new(config: &LogConfig) -> Result<Self, String> {
        let pieces = parse_format(&config.format).map_err(|e| format!("log.format: {e}"))?;
        Ok(Self { json: config.format_type == "json", pieces, dateformat: config.dateformat.clone() })
    }

    fn plain() -> Self {
        Self {
            json: false,
            pieces: parse_format("%(asctime)s %(levelname)s: %(message)s").unwrap_or_default(),
            dateformat: None,
        }
    }

    fn asctime(&self, now: &chrono::DateTime<chrono::Local>) -> String {
        match &self.dateformat {
            Some(f) => now.format(f).to_string(),
            None => now.format("%Y-%m-%d %H:%M:%S,%3f").to_string(),
        }
    }

    fn render(&self, now: &chrono::DateTime<chrono::Local>, level: &str, target: &str, message: &str) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { name, left, width } => {
                    let value = match name.as_str() {
                        "asctime" => self.asctime(now),
                        "levelname" => level.to_string(),
                        "message" => message.to_string(),
                        "name" | "module" => target.to_string(),
                        "process" => std::process::id().to_string(),
                        "created" => format!("{:.3}", now.timestamp_millis() as f64 / 1000.0),
                        "msecs" => format!("{}", now.timestamp_subsec_millis()),
                        other => format!("%({other})"),
                    };
                    if *left {
                        out.push_str(&format!("{value:<width$}"));
                    } else {
                        out.push_str(&format!("{value:>width$}"));
                    }
                }
            }
        }
        out
    }
}

impl<S, N> FormatEvent<S, N> for PatroniFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let now = chrono::Local::now();
        let mut message = MessageOnly(String::new());
        event.record(&mut message);
        let level = level_name(event.metadata().level());
        if self.json {
            let line = serde_json::json!({
                "time": self.asctime(&now),
                "level": level,
                "name": event.metadata().target(),
                "message": message.0,
            });
            writeln!(writer, "{line}")
        } else {
            writeln!(writer, "{}", self.render(&now, level, event.metadata().target(), &message.0))
        }
    }
}

/// A log file rotated by size, keeping `file_num` old files
/// (`patroni.log`, `patroni.log.1`...), as Patroni's RotatingFileHandler.
struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_size: u64,
    keep: u32,
}

impl RotatingFile {
    fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self { path: path.to_path_buf(), file: Some(file), written, max_size, keep })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        for i in (1..self.keep).rev() {
            let from = self.path.with_extension(format!("log.{i}"));
            let to = self.path.with_extension(format!("log.{}", i + 1));
            if from.exists() {
                std::fs::rename(&from, &to)?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, self.path.with_extension("log.1"))?;
        }
        self.file = Some(OpenOptions::new().create(true).write(true).truncate(true).open(&self.path)?);
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.max_size > 0 && self.written + buf.len() as u64 > self.max_size {
            self.rotate()?;
        }
        let n = match self.file.as_mut() {
            Some(f) => f.write(buf)?,
            None => return Err(io::Error::other("log file is not open")),
        };
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

#[derive(Clone)]
struct SharedFile(Arc<Mutex<RotatingFile>>);

struct SharedFileGuard<'a>(std::sync::MutexGuard<'a, RotatingFile>);

impl Write for SharedFileGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = SharedFileGuard<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        SharedFileGuard(self.0.lock().unwrap_or_else(|p| p.into_inner()))
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

/// Install the global subscriber. Call once, early.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let targets = filter(config)?;
    let format = PatroniFormat::new(config)?;
    match &config.dir {
        Some(dir) => {
            let path = dir.join("patroni.log");
            let file = RotatingFile::open(&path, config.file_size, config.file_num)
                .map_err(|e| format!("log.dir: cannot open {}: {e}", path.display()))?;
            let layer = tracing_subscriber::fmt::layer()
                .event_format(format)
                .with_writer(SharedFile(Arc::new(Mutex::new(file))));
            tracing_subscriber::registry().with(layer.with_filter(targets)).try_init().map_err(|e| e.to_string())
        }
        None => {
            let layer = tracing_subscriber::fmt::layer().event_format(format).with_writer(io::stderr);
            tracing_subscriber::registry().with(layer.with_filter(targets)).try_init().map_err(|e| e.to_string())
        }
    }
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

    #[test]
    fn python_level_names() {
        assert_eq!(parse_level("warning"), Some(LevelFilter::WARN));
        assert_eq!(parse_level("CRITICAL"), Some(LevelFilter::ERROR));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(level_name(&Level::WARN), "WARNING");
    }

    #[test]
    fn python_format_strings() {
        let now = chrono::Local::now();
        let f = PatroniFormat {
            json: false,
            pieces: parse_format("%(levelname)-8s|%(message)s|%%|%(name)s").unwrap(),
            dateformat: None,
        };
        assert_eq!(f.render(&now, "INFO", "palisade", "hi"), "INFO    |hi|%|palisade");
        let default = PatroniFormat::plain();
        let line = default.render(&now, "WARNING", "x", "msg");
        assert!(line.ends_with(" WARNING: msg"), "{line}");
        assert_eq!(line.len(), "2026-01-31 12:00:00,123 WARNING: msg".len());
        for bad in ["%(message", "%(message)", "%(message)q", "%d"] {
            assert!(parse_format(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rotation_keeps_file_num_files() {
        let dir = std::env::temp_dir().join(format!("palisade-logtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("patroni.log");
        let mut f = RotatingFile::open(&path, 10, 2).unwrap();
        for _ in 0..5 {
            f.write_all(b"123456789\n").unwrap();
        }
        assert!(path.exists());
        assert!(dir.join("patroni.log.1").exists());
        assert!(dir.join("patroni.log.2").exists());
        assert!(!dir.join("patroni.log.3").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
