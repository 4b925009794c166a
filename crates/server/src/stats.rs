//! Server-wide counters reported by INFO, and memory figures read from the
//! allocator and the kernel.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters with Redis's INFO names. All are monotonic except where noted;
/// CONFIG RESETSTAT zeroes the resettable ones.
#[derive(Default)]
pub struct Stats {
    pub commands: AtomicU64,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub expired_keys: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Changes since start (Redis's `dirty`), never reset.
    pub dirty: AtomicU64,
}

impl Stats {
    pub fn reset(&self) {
        for c in [
            &self.commands,
            &self.connections_received,
            &self.rejected_connections,
            &self.expired_keys,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.net_input_bytes,
            &self.net_output_bytes,
        ] {
            c.store(0, Relaxed);
        }
    }

    pub fn hit(&self, found: bool) {
        if found {
            self.keyspace_hits.fetch_add(1, Relaxed);
        } else {
            self.keyspace_misses.fetch_add(1, Relaxed);
        }
    }
}

/// Bytes allocated by the process through the allocator (Redis's
/// `used_memory`).
pub fn used_memory() -> u64 {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    stats::allocated::read().unwrap_or(0) as u64
}

/// Resident set size in bytes, from /proc.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // Safety: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

/// CPU time used by the process as (user, system) seconds.
pub fn cpu_times() -> (f64, f64) {
    // Safety: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}
