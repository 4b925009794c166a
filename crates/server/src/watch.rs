//! WATCH: which clients watch which keys, and the write hook's part in
//! invalidating their transactions.
//!
//! A client's transaction is invalidated ("dirty CAS") when any key it
//! watches is changed by a command, deleted by expiry, or removed by a
//! flush or SWAPDB. Writes check an atomic count first, so they pay for
//! WATCH only while someone watches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;

type Watchers = Vec<(u64, Arc<AtomicBool>)>;

#[derive(Default)]
pub struct Watches {
    keys: Mutex<HashMap<(usize, Vec<u8>), Watchers>>,
    count: AtomicUsize,
}

impl Watches {
    pub fn watch(&self, client: u64, dirty: &Arc<AtomicBool>, db: usize, key: &[u8]) {
        let mut keys = self.keys.lock();
        let list = keys.entry((db, key.to_vec())).or_default();
        if !list.iter().any(|(id, _)| *id == client) {
            list.push((client, dirty.clone()));
            self.count.fetch_add(1, Relaxed);
        }
    }

    /// Forgets a client's watches (UNWATCH, EXEC, DISCARD, disconnect).
    pub fn unwatch(&self, client: u64, watched: &[(usize, Vec<u8>)]) {
        if watched.is_empty() {
            return;
        }
        let mut keys = self.keys.lock();
        for k in watched {
            if let Some(list) = keys.get_mut(k) {
                let before = list.len();
                list.retain(|(id, _)| *id != client);
                self.count.fetch_sub(before - list.len(), Relaxed);
                if list.is_empty() {
                    keys.remove(k);
                }
            }
        }
    }

    /// A key changed: every transaction watching it is invalidated.
    pub fn touch(&self, db: usize, key: &[u8]) {
        if self.count.load(Relaxed) == 0 {
            return;
        }
        if let Some(list) = self.keys.lock().get(&(db, key.to_vec())) {
            for (_, dirty) in list {
                dirty.store(true, Relaxed);
            }
        }
    }

    /// The watched keys of a database. A whole-database change (FLUSHDB,
    /// FLUSHALL, SWAPDB) checks which of them exist and touches those; the
    /// check happens outside this registry's lock because it takes shard
    /// locks, which writers hold while they call `touch`.
    pub fn keys_in(&self, db: usize) -> Vec<Vec<u8>> {
        if self.count.load(Relaxed) == 0 {
            return Vec::new();
        }
        self.keys
            .lock()
            .keys()
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k.clone())
            .collect()
    }
}
