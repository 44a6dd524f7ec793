//! What the commands share to talk to the user, as click and patronictl
//! do: prompts and confirmations, hidden password input, patronictl's
//! timestamps and scheduled times, and `--watch`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone};

use crate::ctx::{err, Result};
use crate::Watch;

fn read_line() -> Result<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        // click's Abort: patronictl leaves the prompt line unfinished.
        Ok(0) | Err(_) => err(crate::ctx::ABORTED),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
    }
}

/// click's `prompt`: `text [default]: `.
pub(super) fn prompt(text: &str, default: Option<&str>) -> Result<String> {
    loop {
        match default {
            Some(d) => print!("{text} [{d}]: "),
            None => print!("{text}: "),
        }
        let _ = std::io::stdout().flush();
        let line = read_line()?;
        if !line.is_empty() {
            return Ok(line);
        }
        if let Some(d) = default {
            return Ok(d.to_string());
        }
    }
}

/// click's `confirm`: `text [y/N]: `.
pub(super) fn confirm(text: &str) -> Result<bool> {
    loop {
        print!("{text} [y/N]: ");
        let _ = std::io::stdout().flush();
        match read_line()?.trim().to_lowercase().as_str() {
            "y" | "yes" => return Ok(true),
            "" | "n" | "no" => return Ok(false),
            _ => println!("Error: invalid input"),
        }
    }
}

/// patronictl's `timestamp(precision)`: the local time with microseconds,
/// its last `7 - precision` characters cut off (so `6` keeps five digits
/// of the fraction and `0` none, point included).
pub(super) fn timestamp(precision: usize) -> String {
    cut_timestamp(&Local::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string(), precision)
}

fn cut_timestamp(s: &str, precision: usize) -> String {
    let cut = (s.len() + precision.min(7)).saturating_sub(7);
    s[..cut].to_string()
}

/// patronictl's `parse_scheduled`: `None` for now, else an aware time (local
/// time zone when none is given).
pub(super) fn parse_scheduled(text: Option<&str>) -> Result<Option<DateTime<FixedOffset>>> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty() && *t != "now") else {
        return Ok(None);
    };
    if let Some(at) = palisade_model::values::parse_timestamp(t) {
        return Ok(Some(at));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            if let Some(local) = Local.from_local_datetime(&n).earliest() {
                return Ok(Some(local.fixed_offset()));
            }
        }
    }
    err(format!("Unable to parse scheduled timestamp ({t}). It should be in an unambiguous format (e.g. ISO 8601)"))
}

pub(super) fn iso(t: &DateTime<FixedOffset>) -> String {
    palisade_model::values::format_timestamp(t)
}

pub(super) async fn watching<F, Fut>(w: &Watch, clear: bool, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let every = w.watch.or(if w.w { Some(2.0) } else { None });
    let clear_screen = || {
        if std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H");
        }
    };
    if every.is_some() && clear {
        clear_screen();
    }
    f().await?;
    let Some(secs) = every.filter(|s| *s > 0.0) else { return Ok(()) };
    loop {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        if clear {
            clear_screen();
        }
        f().await?;
    }
}

/// click's `prompt(hide_input=True)`: the answer is not echoed.
pub(super) fn read_password(text: &str) -> Result<String> {
    print!("{text}");
    let _ = std::io::stdout().flush();
    let fd = libc::STDIN_FILENO;
    // SAFETY: a zeroed termios is a valid out-parameter for tcgetattr.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is stdin; `saved` is a valid termios to fill in.
    let is_tty = unsafe { libc::isatty(fd) == 1 && libc::tcgetattr(fd, &mut saved) == 0 };
    if is_tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: fd is stdin and `quiet` a termios read from it.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let line = read_line();
    if is_tty {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        println!();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_cut_as_patronictl_cuts_them() {
        let now = "2026-11-22 19:16:29.628261";
        assert_eq!(cut_timestamp(now, 6), "2026-11-22 19:16:29.62826");
        assert_eq!(cut_timestamp(now, 0), "2026-11-22 19:16:29");
        assert_eq!(cut_timestamp(now, 3), "2026-11-22 19:16:29.62");
    }

    #[test]
    fn scheduled_times() {
        assert_eq!(parse_scheduled(None).unwrap(), None);
        assert_eq!(parse_scheduled(Some("now")).unwrap(), None);
        assert_eq!(parse_scheduled(Some("")).unwrap(), None);
        let at = parse_scheduled(Some("2030-01-02T03:04:05+01:00")).unwrap().unwrap();
        assert_eq!(iso(&at), "2030-01-02T03:04:05+01:00");
        assert!(parse_scheduled(Some("2030-01-02T03:04")).unwrap().is_some());
        assert!(parse_scheduled(Some("soon")).is_err());
    }
}
