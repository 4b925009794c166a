//! Per-command latency histograms for INFO latencystats, in the layout of
//! the hdr_histogram Redis records them in (1 ns to 1 s, two significant
//! digits), so that the percentiles come out as the same bucket values
//! Redis prints (a call of 1 µs shows as 1.003).
//!
//! LATENCY HISTOGRAM's cumulative buckets come from the same counts, as
//! Redis reads them with hdr's logarithmic iterator.
//!
//! Each event loop records into its own copy (one per statistics stripe),
//! allocated on a command's first call there; INFO adds the copies up.
//! Durations are whole microseconds, recorded as nanoseconds, as Redis
//! does.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// Sub-buckets per bucket: 2^8, the smallest power of two that keeps two
/// significant digits (hdr's `sub_bucket_count`).
const SUB_BUCKET_BITS: u32 = 8;
const HALF: usize = 1 << (SUB_BUCKET_BITS - 1);
/// Redis's LATENCY_HISTOGRAM_MIN_VALUE and MAX_VALUE, in nanoseconds.
const MIN_NS: u64 = 1;
const MAX_NS: u64 = 1_000_000_000;
/// Buckets hdr needs to reach `MAX_NS`: 256 << 22 is the first power past
/// it, so 23, and one more half-bucket row for the first bucket's lower
/// half.
const COUNTS: usize = (23 + 1) * HALF;

#[derive(Default)]
pub struct Histogram {
    counts: OnceLock<Box<[AtomicU64]>>,
}

/// hdr's counts index of a value in nanoseconds.
fn index_of(ns: u64) -> usize {
    let bucket = (64 - (ns | ((1 << SUB_BUCKET_BITS) - 1)).leading_zeros()) - SUB_BUCKET_BITS;
    let sub = (ns >> bucket) as usize;
    (((bucket as usize) + 1) << (SUB_BUCKET_BITS - 1)) + sub - HALF
}

/// The highest value hdr counts in the same place as index `i`'s values.
fn highest_at(i: usize) -> u64 {
    let (bucket, sub) = match (i >> (SUB_BUCKET_BITS - 1)) as i64 - 1 {
        b if b < 0 => (0, i),
        b => (b as u32, (i & (HALF - 1)) + HALF),
    };
    let lowest = (sub as u64) << bucket;
    lowest + (1u64 << bucket) - 1
}

impl Histogram {
    /// Records a call that took `usec` microseconds.
    pub fn record(&self, usec: u64) {
        let ns = usec.saturating_mul(1000).clamp(MIN_NS, MAX_NS);
        let counts = self
            .counts
            .get_or_init(|| (0..COUNTS).map(|_| AtomicU64::new(0)).collect());
        counts[index_of(ns)].fetch_add(1, Relaxed);
    }

    /// CONFIG RESETSTAT: back to no calls.
    pub fn reset(&self) {
        if let Some(counts) = self.counts.get() {
            for c in counts.iter() {
                c.store(0, Relaxed);
            }
        }
    }

    /// Adds this copy's counts to `sum`, which stays empty (no allocation)
    /// until a copy has any: most commands are never called.
    fn add_to(&self, sum: &mut Vec<u64>) {
        if let Some(counts) = self.counts.get() {
            sum.resize(COUNTS, 0);
            for (s, c) in sum.iter_mut().zip(counts.iter()) {
                *s += c.load(Relaxed);
            }
        }
    }
}

/// The copies of one command's histogram, added up for a report.
pub struct Summed {
    counts: Vec<u64>,
    total: u64,
}

impl Summed {
    pub fn of<'a>(copies: impl IntoIterator<Item = &'a Histogram>) -> Summed {
        let mut counts = Vec::new();
        for h in copies {
            h.add_to(&mut counts);
        }
        let total = counts.iter().sum();
        Summed { counts, total }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// hdr_value_at_percentile: the highest value of the first place
    /// where the calls counted so far reach `p` percent of all, in
    /// microseconds.
    pub fn percentile_usec(&self, p: f64) -> f64 {
        let wanted = ((p.min(100.0) / 100.0 * self.total as f64) + 0.5) as u64;
        let wanted = wanted.max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= wanted {
                return highest_at(i) as f64 / 1000.0;
            }
        }
        0.0
    }

    /// LATENCY HISTOGRAM's buckets: hdr's logarithmic iteration from
    /// 1024 ns, doubling. Each level reports the calls counted up to the
    /// place that holds it, labelled with that place's highest value in
    /// whole microseconds (1, 2, 4, 8, 16, 33, 66, ...), and only when the
    /// count grew; it stops once every call is counted, or at the end of
    /// the counts, as hdr does.
    pub fn cdf(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let (mut counted, mut next) = (0, 0);
        let mut level: u64 = 1024;
        while counted < self.total {
            let at = index_of(level);
            if at >= COUNTS {
                break;
            }
            let before = counted;
            while next <= at {
                counted += self.counts[next];
                next += 1;
            }
            if counted > before {
                out.push((highest_at(at) / 1000, counted));
            }
            level *= 2;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_match_hdr() {
        // Values Redis prints for calls of 0, 1, 2, 10 and 33 µs.
        for (usec, shown) in [(0, 1), (1, 1003), (2, 2007), (10, 10047), (33, 33023)] {
            let ns = (usec * 1000).max(1);
            assert_eq!(highest_at(index_of(ns)), shown, "{usec} µs");
        }
        assert!(index_of(MAX_NS) < COUNTS);
        // Every place holds the values between its neighbours' highest.
        for i in 1..COUNTS {
            assert!(highest_at(i) > highest_at(i - 1));
            assert_eq!(index_of(highest_at(i)), i);
        }
    }

    #[test]
    fn percentiles_as_hdr_counts_them() {
        let h = Histogram::default();
        for _ in 0..99 {
            h.record(0);
        }
        h.record(10);
        let s = Summed::of([&h]);
        assert_eq!(s.total(), 100);
        assert_eq!(s.percentile_usec(50.0), 0.001);
        assert_eq!(s.percentile_usec(99.0), 0.001);
        assert_eq!(s.percentile_usec(99.9), 10.047);
        // Redis's LATENCY HISTOGRAM for the same calls.
        assert_eq!(s.cdf(), [(1, 99), (16, 100)]);
        h.record(33);
        assert_eq!(Summed::of([&h]).cdf(), [(1, 99), (16, 100), (33, 101)]);
        h.reset();
        assert_eq!(Summed::of([&h]).total(), 0);
    }
}
