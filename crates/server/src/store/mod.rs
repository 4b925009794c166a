//! The data store: keyspace, entries and their encodings, expiry.
//!
//! The store knows nothing of sockets or replies: operations return values
//! and errors, and command handlers turn them into replies.

mod dict;
pub mod entry;
pub mod expire;
pub mod hash;
mod keyspace;
pub mod lazyfree;
pub mod list;
pub mod object;
mod probe;
pub mod set;
mod varint;
pub mod zset;

pub use dict::{Dict, EntryMut};

/// One HSCAN or ZSCAN call over a table: `step` visits the place the
/// cursor names and returns the next cursor and how many elements it met;
/// steps go on until the walk wraps to 0, `count` elements were met, or
/// `count * 10` places were visited. Returns the cursor to hand back.
fn scan_call(cursor: u64, count: usize, mut step: impl FnMut(u64) -> (u64, usize)) -> u64 {
    let (mut v, mut seen) = (cursor, 0);
    let mut budget = count.saturating_mul(10);
    loop {
        let (next, met) = step(v);
        v = next;
        seen += met;
        budget = budget.saturating_sub(1);
        if v == 0 || budget == 0 || seen >= count {
            return v;
        }
    }
}
pub use entry::{Entry, Value, ValueRef};
pub use keyspace::{key_hash, lru_clock, Db, Freezer, Keyspace, Locked, Shard, Visit, SHARDS};
pub use object::Object;
