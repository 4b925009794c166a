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
pub use entry::{Entry, Value, ValueRef};
pub use keyspace::{key_hash, lru_clock, Db, Freezer, Keyspace, Locked, Shard, Visit, SHARDS};
pub use object::Object;
