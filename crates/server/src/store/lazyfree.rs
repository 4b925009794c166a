//! Freeing large values away from the connection threads (Redis's
//! lazyfree): FLUSHALL/FLUSHDB ASYNC hand over whole tables, UNLINK hands
//! over values whose freeing costs more than [`LAZYFREE_THRESHOLD`]
//! allocations. A connection thread that spent milliseconds in `free`
//! would stall every client it serves. The counts INFO shows
//! (`lazyfree_pending_objects`, `lazyfreed_objects`) are the process's,
//! as the blocking pool that does the work is.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Values costing more allocations than this are freed in the background
/// by UNLINK (Redis's LAZYFREE_THRESHOLD).
pub const LAZYFREE_THRESHOLD: usize = 64;

static PENDING: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

/// Drops `garbage`, which holds `objects` keys or values, on the runtime's
/// blocking pool, or right here when called outside the runtime (start-up,
/// unit tests), where nobody waits.
pub fn free_later<T: Send + 'static>(garbage: T, objects: usize) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            PENDING.fetch_add(objects, Relaxed);
            runtime.spawn_blocking(move || {
                drop(garbage);
                PENDING.fetch_sub(objects, Relaxed);
                FREED.fetch_add(objects as u64, Relaxed);
            });
        }
        Err(_) => drop(garbage),
    }
}

/// Objects handed over and not freed yet (Redis's
/// `lazyfree_pending_objects`).
pub fn pending() -> usize {
    PENDING.load(Relaxed)
}

/// Objects freed in the background so far (Redis's `lazyfreed_objects`).
pub fn freed() -> u64 {
    FREED.load(Relaxed)
}
