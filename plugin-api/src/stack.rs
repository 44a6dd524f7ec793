//! Giving back the stack pages a thread no longer uses (host and plugins).
//!
//! A plugin call runs on one of the host's blocking threads and can go
//! deep (a gRPC call's futures are polled there): 150 KiB of stack for an
//! etcd3 transaction. The kernel keeps every stack page a thread has
//! touched until the thread exits, and the blocking threads live on
//! between calls, so each would keep that much resident for good.
//! [`release_unused`] hands the pages below the caller's frame back to the
//! kernel (the next deep call gets fresh zeroed pages), the way
//! `malloc_trim` hands back free heap. The host calls it after each plugin
//! call and each HA cycle; the SDK's `PluginRuntime::block_on` after each
//! poll that leaves the call waiting (a watch waits for seconds).

/// Stack kept below the caller's frame: room for the next calls' frames
/// without faulting pages back in, and well past the 128-byte red zone.
const KEEP: usize = 16 * 1024;

/// Release the current thread's stack pages below the caller's frame
/// (less [`KEEP`]). Best effort: on any doubt about the stack's bounds it
/// does nothing.
#[inline(never)]
pub fn release_unused() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let marker = 0u8;
        let sp = std::hint::black_box(std::ptr::addr_of!(marker)) as usize;
        let Some((low, high)) = usable_range() else { return };
        let Some((low, end)) = to_release(sp, low, high, page_size()) else { return };
        // SAFETY: [low, end) lies inside this thread's own stack mapping,
        // above its guard and at least KEEP below the current frame: no
        // live data is there (the stack grows down), and the kernel gives
        // zeroed pages if the thread goes that deep again.
        unsafe {
            libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED);
        }
    }
}

/// The pages to release, `[low, end)`, for a frame at `sp` on a stack
/// `[low, high)`: none when the frame is not on that stack (a signal
/// handler on an alternate stack, a coroutine library's own stacks).
fn to_release(sp: usize, low: usize, high: usize, page: usize) -> Option<(usize, usize)> {
    if sp <= low || sp >= high || !page.is_power_of_two() {
        return None;
    }
    let end = sp.checked_sub(KEEP)? & !(page - 1);
    (end > low).then_some((low, end))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096)
}

/// This thread's stack as `[low, high)`: `low` the lowest address that is
/// mapped and not its guard, found once per thread. For the main thread,
/// the `[stack]` mapping of `/proc/self/maps` (glibc's figure for it comes
/// from the stack size limit and can reach below the mapping); for the
/// others, the mapping glibc made, above its guard.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn usable_range() -> Option<(usize, usize)> {
    thread_local! {
        static RANGE: Option<(usize, usize)> = find_range();
    }
    RANGE.with(|r| *r)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn find_range() -> Option<(usize, usize)> {
    // SAFETY: getpid and gettid only read ids.
    let main = unsafe { libc::getpid() == libc::gettid() };
    if main {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        return main_stack(&maps);
    }
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; it is
    // read only when that succeeded, and destroyed after.
    unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size = 0usize;
        let mut guard = 0usize;
        let ok = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) == 0
            && libc::pthread_attr_getguardsize(attr.as_ptr(), &mut guard) == 0;
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if !ok || addr.is_null() || size == 0 {
            return None;
        }
        // glibc reports the usable stack; its guard lies below `addr` or,
        // in older versions, at its start: skip a guard's worth either way.
        let high = (addr as usize).checked_add(size)?;
        Some(((addr as usize).checked_add(guard)?, high))
    }
}

/// The range of the `[stack]` line of a `/proc/<pid>/maps` text.
fn main_stack(maps: &str) -> Option<(usize, usize)> {
    let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
    let range = line.split_whitespace().next()?;
    let (start, end) = range.split_once('-')?;
    let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_stack_is_read_from_the_maps_line_that_names_it() {
        let cases: &[(&str, Option<(usize, usize)>)] = &[
            (
                "55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0          [heap]\n\
                 7ffd2b9e4000-7ffd2ba05000 rw-p 00000000 00:00 0          [stack]\n\
                 7ffd2ba3e000-7ffd2ba42000 r--p 00000000 00:00 0          [vvar]",
                Some((0x7ffd_2b9e_4000, 0x7ffd_2ba0_5000)),
            ),
            ("55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0          [heap]", None),
            ("zz-7ffd2ba05000 rw-p 00000000 00:00 0 [stack]", None),
            ("7ffd2ba05000-7ffd2b9e4000 rw-p 00000000 00:00 0 [stack]", None),
            ("", None),
        ];
        for (maps, want) in cases {
            assert_eq!(main_stack(maps), *want, "{maps}");
        }
    }

    #[test]
    fn only_the_pages_well_below_a_frame_on_the_stack_are_released() {
        const K: usize = 1024;
        let (low, high) = (0x10_0000, 0x30_0000);
        let cases: &[(usize, Option<(usize, usize)>)] = &[
            // 100 KiB below the top: everything from low to 16 KiB under the frame, page-aligned.
            (high - 100 * K, Some((low, (high - 100 * K - KEEP) & !0xfff))),
            (high - 100 * K + 123, Some((low, (high - 100 * K + 123 - KEEP) & !0xfff))),
            // Too close to the bottom: nothing.
            (low + KEEP, None),
            (low + KEEP + 4 * K, Some((low, low + 4 * K))),
            (low + KEEP + 8 * K, Some((low, low + 8 * K))),
            // Not on this stack at all.
            (high, None),
            (high + 64 * K, None),
            (low, None),
            (low - 64 * K, None),
            (KEEP / 2, None),
        ];
        for (sp, want) in cases {
            assert_eq!(to_release(*sp, low, high, 4096), *want, "sp {sp:#x}");
        }
        assert_eq!(to_release(high - 100 * K, low, high, 3000), None, "a page size that is no power of two");
    }

    /// A thread that went deep gives those pages back: its resident stack
    /// (counted from /proc/self/smaps) shrinks after the call.
    #[test]
    fn a_deep_call_s_pages_are_released_afterwards() {
        #[inline(never)]
        fn deep(n: usize) -> u8 {
            let buf = std::hint::black_box([n as u8; 4096]);
            if n == 0 {
                buf[17]
            } else {
                deep(n - 1).wrapping_add(buf[n % 4096])
            }
        }
        let resident = |low: usize| -> u64 {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let mut inside = false;
            let mut kib = 0;
            for l in smaps.lines() {
                if let Some((range, _)) = l.split_once(' ').filter(|(r, _)| r.contains('-') && !r.ends_with(':')) {
                    let (a, b) = range.split_once('-').unwrap();
                    let (a, b) = (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
                    inside = a <= low && low < b;
                } else if inside && l.starts_with("Rss:") {
                    kib = l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
                }
            }
            kib
        };
        let (before, after) = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let (low, _) = usable_range().expect("the thread's stack bounds");
                std::hint::black_box(deep(200)); // about 800 KiB deep
                let before = resident(low);
                release_unused();
                (before, resident(low))
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(before >= 700, "the deep call touched {before} KiB only");
        assert!(after + 600 <= before, "resident stack {before} KiB before, {after} KiB after");
    }
}
