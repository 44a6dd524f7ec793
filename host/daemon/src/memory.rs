//! Keeping the daemon's resident memory small.
//!
//! Most of an idle daemon's RSS is not its heap (about 3 MB) but the pages
//! of its own code and of its plugins' code that the kernel mapped while
//! start-up ran (configuration, plugin loading, TLS set-up, bootstrap):
//! the kernel maps a file's pages around each one touched, and whole
//! large folios, so nearly all of a 10 MB text ends up resident. Those
//! pages stay in the page cache, shared with every process that maps the
//! file; the daemon only needs the few it runs in its loop.
//!
//! - [`limit_arenas`]: glibc gives every thread that allocates an arena of
//!   its own (up to eight per core), each keeping freed memory; two are
//!   enough for a daemon whose threads mostly wait.
//! - [`trim`]: unmap the pages of code and constants (read-only file
//!   mappings that hold no page of their own: nothing is lost; the next
//!   use maps them again from the page cache, a minor fault) and give the
//!   heap's free memory back. The runner calls it a few times while
//!   start-up settles, then once a minute.

/// Two malloc arenas at most. Call first thing in `main`, before any thread
/// starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The mappings of `/proc/self/smaps` whose pages can be dropped without
/// losing anything: private, read-only file mappings (code, constants,
/// unwind tables) holding no page of their own (`Anonymous: 0 kB`: none
/// was ever written, as the loader's relocations are), as address ranges.
fn droppable(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(range) = mapping(line) {
            current = range;
            continue;
        }
        if let Some(kib) = line.strip_prefix("Anonymous:") {
            if let Some(range) = current.take() {
                if kib.trim() == "0 kB" {
                    out.push(range);
                }
            }
        }
    }
    out
}

/// A mapping's header line: `Some(Some(range))` for a private read-only
/// file mapping, `Some(None)` for any other mapping, `None` for the lines
/// that describe a mapping.
fn mapping(line: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    let read_only = perms == "r-xp" || perms == "r--p";
    Some((read_only && path.starts_with('/') && end > start).then_some((start, end)))
}

/// Unmap the read-only file pages not in use and return free heap memory
/// (see the module's documentation). Returns how many bytes of mappings
/// were dropped (resident or not).
pub fn trim() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut released = 0;
    for (start, end) in droppable(&smaps) {
        // SAFETY: the range is a private, read-only file mapping of this
        // process that holds no page of its own: MADV_DONTNEED drops its
        // pages from our page tables and the next access maps them again
        // from the file, with the same contents.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if rc == 0 {
            released += end - start;
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_file_mappings_without_own_pages() {
        let smaps = "\
55d0c0a00000-55d0c1200000 r-xp 00200000 fd:01 1234 /usr/bin/palisade
Rss:                1000 kB
Anonymous:             0 kB
55d0c1200000-55d0c1300000 r--p 00000000 fd:01 1234 /usr/bin/palisade
Anonymous:             0 kB
55d0c1300000-55d0c1400000 r--p 00300000 fd:01 1234 /usr/bin/palisade
Anonymous:            12 kB
55d0c1400000-55d0c1500000 rw-p 00400000 fd:01 1234 /usr/bin/palisade
Anonymous:             0 kB
7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
7ffd4000-7ffd5000 r--p 00000000 00:00 0
Anonymous:             0 kB
7ffd6000-7ffd7000 r-xs 00000000 fd:01 99 /dev/shm/x
Anonymous:             0 kB
";
        assert_eq!(droppable(smaps), vec![(0x55d0_c0a0_0000, 0x55d0_c120_0000), (0x55d0_c120_0000, 0x55d0_c130_0000)]);
        assert_eq!(droppable("garbage\nAnonymous: 0 kB\n"), vec![]);
    }

    #[test]
    fn trimming_keeps_the_code_running() {
        limit_arenas();
        let before = std::fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(!droppable(&before).is_empty(), "this test binary has code mappings");
        assert!(trim() > 0);
        // The code runs on, mapped again as it is used.
        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
        assert!(trim() > 0);
    }
}
