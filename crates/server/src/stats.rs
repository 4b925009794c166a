//! Server-wide counters reported by INFO, and memory figures read from the
//! allocator and the kernel.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Stripes of the counters every command adds to: one per event loop (up
/// to `STRIPES - 1` loops; more share), and one for every other thread.
pub const STRIPES: usize = 8;

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(STRIPES - 1) };
}

/// Makes the calling thread, event loop `index`, add to a stripe of its
/// own.
pub fn use_loop_stripe(index: usize) {
    STRIPE.set(index % (STRIPES - 1));
}

/// The calling thread's stripe.
pub fn stripe() -> usize {
    STRIPE.get()
}

/// A counter that every event loop adds to with each command or read: one
/// cache line per stripe, summed when read. As one atomic, its line moved
/// between the cores with every command of every loop.
#[derive(Default)]
pub struct Counter {
    stripes: [Line; STRIPES],
}

#[derive(Default)]
#[repr(align(64))]
struct Line(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.stripes[stripe()].0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0, |sum, l| sum.wrapping_add(l.0.load(Relaxed)))
    }

    pub fn reset(&self) {
        for l in &self.stripes {
            l.0.store(0, Relaxed);
        }
    }
}

/// Counters with Redis's INFO names. All are monotonic except where noted;
/// CONFIG RESETSTAT zeroes the resettable ones.
#[derive(Default)]
pub struct Stats {
    pub commands: Counter,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub expired_keys: Counter,
    pub keyspace_hits: Counter,
    pub keyspace_misses: Counter,
    pub net_input_bytes: Counter,
    pub net_output_bytes: Counter,
    /// Reads from clients' sockets, and writes to them (one per reply
    /// batch a connection sends, however many system calls it takes).
    pub reads_processed: Counter,
    pub writes_processed: Counter,
    /// Changes since start (Redis's `dirty`), never reset.
    pub dirty: Counter,
    /// The most `used_memory` seen (by the cron or INFO), never reset.
    pub peak_memory: AtomicU64,
    rates: Mutex<Rates>,
    /// Error replies sent (and errors of commands scripts called), in all
    /// and by error code (Redis's total_error_replies and errorstats).
    pub error_replies: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    /// The active expiry cycle's running estimate of the share of keys
    /// with a TTL that are expired but not yet removed (an f64's bits;
    /// Redis's `stat_expired_stale_perc`).
    expired_stale: AtomicU64,
    /// Cycles that stopped at their time limit.
    pub expire_time_cap_reached: AtomicU64,
    /// Time spent in expiry cycles, in microseconds.
    pub expire_cycle_usec: AtomicU64,
}

/// Samples of the counters INFO shows per-second rates of, as Redis's
/// trackInstantaneousMetric keeps them: a rate per sample period, and the
/// average of the last [`SAMPLES`].
#[derive(Default)]
struct Rates {
    last: Option<(Instant, [u64; 3])>,
    samples: [[f64; SAMPLES]; 3],
    next: usize,
}

const SAMPLES: usize = 16;

/// How often the cron samples the rates (Redis: every 100 ms).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The per-second rates INFO shows.
pub struct Instantaneous {
    pub ops: u64,
    pub input_kbps: f64,
    pub output_kbps: f64,
}

impl Stats {
    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.rejected_connections,
            &self.error_replies,
            &self.expired_stale,
            &self.expire_time_cap_reached,
            &self.expire_cycle_usec,
        ] {
            c.store(0, Relaxed);
        }
        for c in [
            &self.commands,
            &self.expired_keys,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.reads_processed,
            &self.writes_processed,
        ] {
            c.reset();
        }
        self.errors.lock().clear();
    }

    /// Counts an error reply by its code: its first word when a space
    /// ends it within 32 bytes, else ERR (as Redis's afterErrorReply).
    pub fn count_error(&self, text: &str) {
        self.error_replies.fetch_add(1, Relaxed);
        let head = &text.as_bytes()[..text.len().min(32)];
        let code = match head.iter().position(|&b| b == b' ') {
            Some(end) => &text[..end],
            None => "ERR",
        };
        let mut errors = self.errors.lock();
        match errors.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                errors.insert(code.to_string(), 1);
            }
        }
    }

    /// Error codes and their counts, in code order (INFO errorstats).
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors
            .lock()
            .iter()
            .map(|(code, n)| (code.clone(), *n))
            .collect()
    }

    /// Accounts for one active expiry cycle that took `elapsed`, examined
    /// `keys` keys with a TTL and found `expired` of them expired. The
    /// estimate of stale keys moves 5% towards this cycle's share, as
    /// Redis's does. Only the expiry thread calls this.
    pub fn note_expire_cycle(&self, elapsed: Duration, keys: u64, expired: u64, cut_short: bool) {
        self.expire_cycle_usec
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
        if cut_short {
            self.expire_time_cap_reached.fetch_add(1, Relaxed);
        }
        let now = if keys > 0 {
            expired as f64 / keys as f64
        } else {
            0.0
        };
        let before = f64::from_bits(self.expired_stale.load(Relaxed));
        self.expired_stale
            .store((now * 0.05 + before * 0.95).to_bits(), Relaxed);
    }

    /// The estimate of stale keys, in percent (INFO's
    /// `expired_stale_perc`).
    pub fn expired_stale_perc(&self) -> f64 {
        f64::from_bits(self.expired_stale.load(Relaxed)) * 100.0
    }

    /// Records `used_memory` towards the peak; returns it.
    pub fn note_memory(&self, used: u64) -> u64 {
        self.peak_memory.fetch_max(used, Relaxed);
        used
    }

    /// Takes one sample of the rates (called by the cron every
    /// [`SAMPLE_EVERY`]).
    pub fn sample(&self, now: Instant) {
        let values = [
            self.commands.get(),
            self.net_input_bytes.get(),
            self.net_output_bytes.get(),
        ];
        let mut r = self.rates.lock();
        if let Some((at, before)) = r.last {
            let secs = now.saturating_duration_since(at).as_secs_f64();
            if secs > 0.0 {
                let next = r.next;
                for (i, (v, b)) in values.iter().zip(before).enumerate() {
                    // A reset (CONFIG RESETSTAT) counts as no traffic.
                    r.samples[i][next] = v.saturating_sub(b) as f64 / secs;
                }
                r.next = (next + 1) % SAMPLES;
            }
        }
        r.last = Some((now, values));
    }

    pub fn instantaneous(&self) -> Instantaneous {
        let r = self.rates.lock();
        let avg = |i: usize| r.samples[i].iter().sum::<f64>() / SAMPLES as f64;
        Instantaneous {
            ops: avg(0) as u64,
            input_kbps: avg(1) / 1024.0,
            output_kbps: avg(2) / 1024.0,
        }
    }

    pub fn hit(&self, found: bool) {
        if found {
            self.keyspace_hits.add(1);
        } else {
            self.keyspace_misses.add(1);
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

/// jemalloc's view of the heap, as INFO's `allocator_*` fields show it:
/// bytes the program holds, bytes in the pages those sit in, and bytes of
/// those pages resident in RAM.
pub struct Allocator {
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
}

pub fn allocator() -> Allocator {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    Allocator {
        allocated: stats::allocated::read().unwrap_or(0) as u64,
        active: stats::active::read().unwrap_or(0) as u64,
        resident: stats::resident::read().unwrap_or(0) as u64,
    }
}

/// The machine's memory in bytes, from /proc (Redis's
/// total_system_memory); 0 when unknown.
pub fn system_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
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
