//! Freeing large values away from the connection threads (Redis's
//! lazyfree): FLUSHALL/FLUSHDB ASYNC hand over whole tables, UNLINK hands
//! over values whose freeing costs more than [`LAZYFREE_THRESHOLD`]
//! allocations. A connection thread that spent milliseconds in `free`
//! would stall every client it serves.

/// Values costing more allocations than this are freed in the background
/// by UNLINK (Redis's LAZYFREE_THRESHOLD).
pub const LAZYFREE_THRESHOLD: usize = 64;

/// Drops `garbage` on the runtime's blocking pool, or right here when
/// called outside the runtime (start-up, unit tests), where nobody waits.
pub fn free_later<T: Send + 'static>(garbage: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(garbage));
        }
        Err(_) => drop(garbage),
    }
}
