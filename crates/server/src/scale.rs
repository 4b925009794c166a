//! How many event loops take connections (`adaptive-loops`).
//!
//! Every loop runs from the start, but new connections are dealt only to
//! the first `active` ones, and a client whose home loop lies beyond them
//! moves in at the next window of its commands (crate::net::Loops). The
//! count starts at one and grows when every loop in use is saturated; it
//! shrinks when the load would fit in one loop fewer with room to spare.
//! One loop that keeps up serves its clients with fewer, larger passes
//! than two that each sleep between small ones: fewer wake-ups, fewer
//! system calls and less CPU per request, the cores left to whatever else
//! runs on the machine. With `adaptive-loops no`, all loops take
//! connections all the time.
//!
//! A loop is saturated when it has not slept: each loop adds up the time
//! it spends parked in the poller ([`Scaling::parked`] and
//! [`Scaling::unparked`], called from its runtime's park hooks), and the
//! cron ([`Scaling::tick`]) turns that into the busy share of each loop.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;

/// A loop this busy (share of wall time not parked) is saturated.
const SATURATED: f64 = 0.95;
/// The count grows after this many cron ticks in a row with every loop in
/// use saturated.
const GROW_AFTER: u32 = 2;
/// The count shrinks when the loops in use add up to at most this share
/// of one loop fewer...
const LIGHT: f64 = 0.6;
/// ...for this many cron ticks in a row.
const SHRINK_AFTER: u32 = 10;

pub struct Scaling {
    adaptive: bool,
    active: AtomicUsize,
    meters: Box<[Meter]>,
    cron: Mutex<Cron>,
}

/// One loop's parked time, written by the loop and read by the cron; a
/// cache line each, so loops do not share one.
#[repr(align(64))]
#[derive(Default)]
struct Meter {
    parked_ns: AtomicU64,
    /// When the current park began (monotonic ns); 0 while running.
    since: AtomicU64,
}

#[derive(Default)]
struct Cron {
    /// When the last tick ran, and each loop's parked time then.
    last: Option<(u64, Vec<u64>)>,
    saturated: u32,
    light: u32,
}

fn now_ns() -> u64 {
    let (s, ns) = crate::read_clock(libc::CLOCK_MONOTONIC).unwrap_or((0, 0));
    (s as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ns as u64)
}

impl Scaling {
    /// For `loops` event loops (the overflow loop aside).
    pub fn new(loops: usize, adaptive: bool) -> Scaling {
        let loops = loops.max(1);
        Scaling {
            adaptive,
            active: AtomicUsize::new(if adaptive { 1 } else { loops }),
            meters: (0..loops).map(|_| Meter::default()).collect(),
            cron: Mutex::new(Cron::default()),
        }
    }

    /// The loops that take connections now (INFO `loops_active`).
    pub fn active(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// The loop a client whose home is `home` belongs on now.
    pub fn home(&self, home: usize) -> usize {
        home % self.active().max(1)
    }

    /// Whether loop `index` keeps a meter.
    pub fn metered(&self, index: usize) -> bool {
        self.adaptive && self.meters.len() > 1 && index < self.meters.len()
    }

    /// Loop `index` is about to sleep in the poller.
    pub fn parked(&self, index: usize) {
        if let Some(m) = self.meters.get(index) {
            m.since.store(now_ns(), Relaxed);
        }
    }

    /// Loop `index` is back from the poller.
    pub fn unparked(&self, index: usize) {
        if let Some(m) = self.meters.get(index) {
            let since = m.since.swap(0, Relaxed);
            if since != 0 {
                m.parked_ns
                    .fetch_add(now_ns().saturating_sub(since), Relaxed);
            }
        }
    }

    /// Each loop's parked time so far, the current park included.
    fn parked_so_far(&self, now: u64) -> Vec<u64> {
        self.meters
            .iter()
            .map(|m| {
                let since = m.since.load(Relaxed);
                let current = if since == 0 {
                    0
                } else {
                    now.saturating_sub(since)
                };
                m.parked_ns.load(Relaxed) + current
            })
            .collect()
    }

    /// Called by the cron: decides whether the count grows or shrinks.
    pub fn tick(&self) {
        if !self.adaptive || self.meters.len() < 2 {
            return;
        }
        let now = now_ns();
        let parked = self.parked_so_far(now);
        let mut cron = self.cron.lock();
        let Some((then, before)) = cron.last.replace((now, parked.clone())) else {
            return;
        };
        let elapsed = now.saturating_sub(then);
        if elapsed == 0 {
            return;
        }
        let k = self.active();
        let busy: Vec<f64> = (0..k)
            .map(|i| {
                let idle = parked[i].saturating_sub(before[i]) as f64 / elapsed as f64;
                (1.0 - idle).clamp(0.0, 1.0)
            })
            .collect();
        let grow = k < self.meters.len() && busy.iter().all(|&b| b >= SATURATED);
        let shrink = k > 1 && busy.iter().sum::<f64>() <= LIGHT * (k - 1) as f64;
        cron.saturated = if grow { cron.saturated + 1 } else { 0 };
        cron.light = if shrink { cron.light + 1 } else { 0 };
        let to = if cron.saturated >= GROW_AFTER {
            k + 1
        } else if cron.light >= SHRINK_AFTER {
            k - 1
        } else {
            return;
        };
        cron.saturated = 0;
        cron.light = 0;
        self.active.store(to, Relaxed);
        tracing::debug!("event loops taking connections: {k} -> {to}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_belong_on_the_loops_in_use() {
        let s = Scaling::new(4, true);
        assert_eq!(s.active(), 1);
        assert_eq!((0..4).map(|h| s.home(h)).collect::<Vec<_>>(), [0, 0, 0, 0]);
        s.active.store(3, Relaxed);
        assert_eq!((0..4).map(|h| s.home(h)).collect::<Vec<_>>(), [0, 1, 2, 0]);
        let fixed = Scaling::new(4, false);
        assert_eq!(fixed.active(), 4);
        assert!(!fixed.metered(0));
    }

    #[test]
    fn a_loop_that_never_parks_makes_the_count_grow_and_idle_loops_shrink_it() {
        let s = Scaling::new(2, true);
        // Loop 0 busy all the time: it never parks.
        for _ in 0..=GROW_AFTER {
            s.tick();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(s.active(), 2);
        // Both loops asleep since: the load fits in one.
        s.parked(0);
        s.parked(1);
        for _ in 0..=SHRINK_AFTER {
            std::thread::sleep(std::time::Duration::from_millis(5));
            s.tick();
        }
        assert_eq!(s.active(), 1);
        // Half busy: loop 0 parks for about half of each interval.
        for _ in 0..=SHRINK_AFTER {
            s.unparked(0);
            std::thread::sleep(std::time::Duration::from_millis(5));
            s.parked(0);
            std::thread::sleep(std::time::Duration::from_millis(5));
            s.tick();
        }
        assert_eq!(s.active(), 1, "a half-busy loop is not saturated");
    }
}
