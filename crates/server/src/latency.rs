//! The latency monitor: per event class ("command", "fast-command"), the
//! last 160 samples of operations that took at least
//! `latency-monitor-threshold` milliseconds, one sample per second (the
//! worst one), plus the all-time maximum, as Redis's latency.c keeps them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;

/// Samples kept per event, as Redis's LATENCY_TS_LEN.
const HISTORY: usize = 160;

/// One second's worst latency, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub time: i64,
    pub ms: u64,
}

#[derive(Default)]
pub struct Series {
    pub samples: VecDeque<Sample>,
    pub max: u64,
}

#[derive(Default)]
pub struct Monitor {
    events: Mutex<BTreeMap<&'static str, Series>>,
}

impl Monitor {
    /// Records `ms` for `event` if the monitor is on and the duration
    /// reaches the threshold.
    pub fn add_if_needed(&self, config: &crate::config::Config, event: &'static str, ms: u64) {
        let threshold = config.latency_threshold_ms.load(Relaxed);
        if threshold == 0 || ms < threshold {
            return;
        }
        let now = crate::now_ms() / 1000;
        let mut events = self.events.lock();
        let series = events.entry(event).or_default();
        series.max = series.max.max(ms);
        match series.samples.back_mut() {
            Some(last) if last.time == now => last.ms = last.ms.max(ms),
            _ => {
                if series.samples.len() == HISTORY {
                    series.samples.pop_front();
                }
                series.samples.push_back(Sample { time: now, ms });
            }
        }
    }

    /// Calls `f` with every event that has samples, in name order.
    pub fn with_events<R>(&self, f: impl FnOnce(&BTreeMap<&'static str, Series>) -> R) -> R {
        f(&self.events.lock())
    }

    /// Forgets the named events (all when `names` is empty); returns how
    /// many existed.
    pub fn reset(&self, names: &[&[u8]]) -> usize {
        let mut events = self.events.lock();
        if names.is_empty() {
            let n = events.len();
            events.clear();
            return n;
        }
        let mut n = 0;
        events.retain(|name, _| {
            let drop = names.contains(&name.as_bytes());
            n += drop as usize;
            !drop
        });
        n
    }
}
