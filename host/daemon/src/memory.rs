//! Keeping the daemon's resident memory small.
//!
//! An idle daemon's heap and stacks are about 1.5 MiB; most of the rest of its
//! RSS is pages of its own code and of its plugins' code, which stay in the
//! page cache, shared with every process that maps the files (PSS and the
//! private, anonymous memory tell the daemon's own share).
//!
//! - [`limit_arenas`]: glibc gives every thread that allocates an arena of
//!   its own (up to eight per core), each keeping freed memory; one is
//!   enough for a daemon whose threads mostly wait.
//! - [`trim`]: give the heap's free memory back to the system. The runner
//!   calls it after each cycle (start-up, bootstraps and bursts of REST
//!   requests free what they used).
//! - `palisade_plugin_api::stack::release_unused`: give back the stack
//!   pages deep calls touched, which the kernel would otherwise keep
//!   resident for the thread's life: after each plugin call on tokio's
//!   blocking threads, and after each HA cycle on the main thread.

/// One malloc arena for every thread. Call first thing in `main`, before
/// any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Return the heap's free memory to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
