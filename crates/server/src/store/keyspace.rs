//! The keyspace: numbered databases, each split into shards by key hash,
//! each shard a [`Dict`] behind its own mutex.
//!
//! Locking rules: a command locks only the shards of its keys, always in
//! ascending (database, shard) order, so two commands can never wait on
//! each other in a cycle. Commands over a whole database visit its shards
//! one at a time, or lock them all in order when they must be atomic
//! (FLUSHDB, SWAPDB).
//!
//! A transaction that knows all its keys (crate::command::transactions)
//! locks their shards up front, in the same order, and lends them to the
//! commands it runs ([`Keyspace::prelock`]): those find their shards lent
//! instead of locking them again.
//!
//! The low `SHARD_BITS` of a key's hash pick its shard and the bits above
//! them feed the shard's table, so SCAN can treat the shards as the low
//! bits of one big power-of-two table and keep Redis's cursor guarantee.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, MutexGuard, RwLock};

use super::dict::{Dict, EntryMut, Lookup};
use super::entry::{Entry, Value};

pub const SHARD_BITS: u32 = 6;
pub const SHARDS: usize = 1 << SHARD_BITS;
const SHARD_MASK: u64 = SHARDS as u64 - 1;

/// Hashes a key: returns (shard index, hash for the shard's table). The
/// seed is random per process, as Redis's siphash seed is, so that clients
/// cannot aim keys at one bucket.
pub fn key_hash(key: &[u8]) -> (usize, u64) {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    let h = STATE.get_or_init(ahash::RandomState::new).hash_one(key);
    ((h & SHARD_MASK) as usize, h >> SHARD_BITS)
}

/// One shard: a table plus the bookkeeping of its keys with a TTL.
#[derive(Default)]
pub struct Shard {
    pub(crate) dict: Dict,
    /// Keys with an expiry (INFO's `expires=`, and whether the active
    /// expiry cycle needs to look here at all).
    volatile: usize,
    /// Where the active expiry cycle resumes.
    expire_cursor: u64,
    /// A snapshot in progress still needs this shard as it was when the
    /// snapshot began (see crate::persist): whoever locks it first hands
    /// its content to the snapshot before changing anything.
    pending: bool,
}

/// Receives the content of shards that are still pending for a snapshot,
/// from the thread that is about to change them (see crate::persist).
pub trait Freezer: Send + Sync {
    fn freeze(&self, db: usize, shard: usize, content: &Shard);
}

/// The snapshot in progress, shared by every database.
type FreezeSlot = Arc<RwLock<Option<Arc<dyn Freezer>>>>;

impl Shard {
    fn account(&mut self, e: &Entry, added: bool) {
        if e.expiry().is_some() {
            if added {
                self.volatile += 1;
            } else {
                self.volatile -= 1;
            }
        }
    }

    /// Looks a key up, deleting it first if it has expired. `expired` is
    /// incremented for each key removed that way.
    fn get(
        &mut self,
        h: u64,
        key: &[u8],
        now: i64,
        expired: &mut Vec<Entry>,
    ) -> Option<EntryMut<'_>> {
        match self.dict.lookup(h, key, now) {
            Lookup::Live(e) => Some(e),
            Lookup::Expired(e) => {
                self.volatile -= 1;
                expired.push(e);
                None
            }
            Lookup::Missing => None,
        }
    }

    /// Stores `entry` under `key`, replacing a live entry (returned) in
    /// place; an expired one is reclaimed first and reported in `expired`,
    /// never passed off as a previous value. One table lookup either way.
    fn insert(
        &mut self,
        h: u64,
        key: &[u8],
        entry: Entry,
        now: i64,
        expired: &mut Vec<Entry>,
    ) -> Option<Entry> {
        self.account(&entry, true);
        match self.dict.lookup(h, key, now) {
            Lookup::Live(slot) => {
                let old = slot.replace(entry);
                self.account(&old, false);
                Some(old)
            }
            Lookup::Expired(e) => {
                self.account(&e, false);
                expired.push(e);
                self.dict.insert(h, entry);
                None
            }
            Lookup::Missing => {
                self.dict.insert(h, entry);
                None
            }
        }
    }

    fn remove(&mut self, h: u64, key: &[u8]) -> Option<Entry> {
        let e = self.dict.remove(h, key)?;
        self.account(&e, false);
        Some(e)
    }

    pub fn len(&self) -> usize {
        self.dict.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    pub fn volatile(&self) -> usize {
        self.volatile
    }

    /// Calls `f` on every entry, expired ones included.
    pub fn for_each(&self, f: impl FnMut(&Entry)) {
        self.dict.for_each(f)
    }

    /// One step of the active expiry cycle: examines up to `buckets`
    /// buckets and removes the expired keys, returning (examined, removed
    /// entries).
    /// The live keys with a TTL it examined add their remaining TTLs to
    /// `ttls` (INFO keyspace's avg_ttl).
    pub fn expire_step(
        &mut self,
        buckets: usize,
        now: i64,
        ttls: &mut TtlSample,
    ) -> (usize, Vec<Entry>) {
        if self.volatile == 0 {
            return (0, Vec::new());
        }
        let mut gone = Vec::new();
        let mut cursor = self.expire_cursor;
        let checked = self.dict.expire_step(
            &mut cursor,
            buckets,
            |e| match e.expiry() {
                Some(at) if at <= now => true,
                Some(at) => {
                    ttls.sum += at - now;
                    ttls.count += 1;
                    false
                }
                None => false,
            },
            |e| gone.push(e),
        );
        self.expire_cursor = cursor;
        self.volatile -= gone.len();
        (checked, gone)
    }
}

/// Remaining TTLs (ms) of live keys the active expiry cycle examined.
#[derive(Default)]
pub struct TtlSample {
    pub sum: i64,
    pub count: i64,
}

/// One numbered database.
pub struct Db {
    index: usize,
    shards: Box<[Mutex<Shard>]>,
    freezer: FreezeSlot,
    /// Redis's estimate of the keys' average TTL in ms (INFO keyspace),
    /// kept by the active expiry cycle; 0 when no key has a TTL.
    avg_ttl: AtomicI64,
}

impl Db {
    fn new(index: usize, freezer: FreezeSlot) -> Db {
        Db {
            index,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            freezer,
            avg_ttl: AtomicI64::new(0),
        }
    }

    pub fn avg_ttl(&self) -> i64 {
        self.avg_ttl.load(Relaxed)
    }

    /// Folds a sample into the average TTL as Redis does: the first sample
    /// sets it, later ones weigh 2% against the estimate's 98%. With no
    /// key left to sample, there is no average.
    pub fn note_ttls(&self, ttls: &TtlSample, volatile_left: bool) {
        if !volatile_left {
            self.avg_ttl.store(0, Relaxed);
            return;
        }
        if ttls.count == 0 {
            return;
        }
        let sample = ttls.sum / ttls.count;
        let mut avg = self.avg_ttl.load(Relaxed);
        if avg == 0 {
            avg = sample;
        }
        self.avg_ttl.store((avg / 50) * 49 + sample / 50, Relaxed);
    }

    /// Locks shard `i` for a change. This is the one door to a shard for
    /// anything that may modify it: a shard still pending for a snapshot
    /// is handed to the snapshot first.
    pub fn shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        debug_assert!(
            !is_lent(self.index, i),
            "shard {i} of db {} locked again by the transaction holding it",
            self.index
        );
        let mut g = self.shards[i].lock();
        if g.pending {
            if let Some(f) = self.freezer.read().as_ref() {
                f.freeze(self.index, i, &g);
            }
            g.pending = false;
        }
        g
    }

    /// Sizes the empty shards' tables for `keys` keys in all (RESIZEDB when
    /// a dump loads), with room for the shards' uneven shares.
    pub fn reserve(&self, keys: usize) {
        let per_shard = keys / SHARDS;
        let per_shard = per_shard.saturating_add(per_shard / 8 + 16);
        for i in 0..SHARDS {
            self.shard(i).dict.reserve(per_shard);
        }
    }

    /// Starts fetching the bucket of a key whose [`key_hash`] is `(i, h)`,
    /// ahead of its [`Db::insert_loaded`].
    pub fn prefetch(&self, (i, h): (usize, u64)) {
        self.shards[i].lock().dict.prefetch(h);
    }

    /// Adds an entry loaded from a dump, whose key's [`key_hash`] is
    /// `(i, h)`: one lookup. The entry comes back when its key is already
    /// there (a corrupt dump), which is left as it was.
    pub fn insert_loaded(&self, (i, h): (usize, u64), e: Entry) -> Result<(), Entry> {
        let mut shard = self.shard(i);
        if shard.dict.get(h, e.key()).is_some() {
            return Err(e);
        }
        shard.account(&e, true);
        shard.dict.insert(h, e);
        Ok(())
    }

    /// Locks every shard in order, for commands that must see or change the
    /// whole database atomically.
    pub fn lock_all(&self) -> Vec<MutexGuard<'_, Shard>> {
        (0..SHARDS).map(|i| self.shard(i)).collect()
    }

    /// Number of keys (expired keys not yet reclaimed included, as in Redis).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().is_empty())
    }

    /// (keys, keys with an expiry) for INFO keyspace.
    pub fn counts(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(k, v), s| {
            let s = s.lock();
            (k + s.len(), v + s.volatile())
        })
    }

    /// One SCAN step at cursor `v`: visits one bucket (or its expansion
    /// while a shard rehashes) and returns the next cursor, 0 when done.
    /// Empty shards are passed over within the step, as Redis's dictScan
    /// finishes an empty table at once: SCAN bounds its work by steps, and
    /// a small database must not spend them on shards with nothing in them.
    pub fn scan_step(&self, mut v: u64, mut f: impl FnMut(&Entry)) -> u64 {
        loop {
            let shard = self.shards[(v & SHARD_MASK) as usize].lock();
            let empty = shard.dict.is_empty();
            let m = shard.dict.scan(v >> SHARD_BITS, &mut f);
            drop(shard);
            let mask = (m << SHARD_BITS) | SHARD_MASK;
            v = (v | !mask).reverse_bits().wrapping_add(1).reverse_bits();
            if !empty || v == 0 {
                return v;
            }
        }
    }

    /// Removes every key, returning the old tables so that the caller can
    /// free them where it suits (in the background for FLUSHALL ASYNC).
    pub fn take_all(&self) -> Vec<Dict> {
        let mut guards = self.lock_all();
        self.avg_ttl.store(0, Relaxed);
        guards
            .iter_mut()
            .map(|g| std::mem::take(&mut **g).dict)
            .collect()
    }

    /// Calls `f` on every entry, expired ones included, holding one
    /// shard's lock at a time: a view that is consistent per shard, not
    /// across them (KEYS).
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for shard in self.shards.iter() {
            shard.lock().dict.for_each(&mut f);
        }
    }

    /// A random live key, or None when the database is empty. Like
    /// Redis's dbRandomKey, expired keys it happens to pick are deleted
    /// (handed back in `expired`) and the search goes on.
    pub fn random_key(
        &self,
        rng: &mut impl rand::Rng,
        now: i64,
        expired: &mut Vec<Entry>,
    ) -> Option<Vec<u8>> {
        loop {
            let sizes: Vec<usize> = self.shards.iter().map(|s| s.lock().len()).collect();
            let total: usize = sizes.iter().sum();
            if total == 0 {
                return None;
            }
            let mut pick = rng.gen_range(0..total);
            let mut shard = 0;
            while pick >= sizes[shard] {
                pick -= sizes[shard];
                shard += 1;
            }
            let mut g = self.shard(shard);
            // The shard may have emptied since it was counted: pick again.
            let Some(e) = g.dict.random(rng) else {
                continue;
            };
            let key = e.key().to_vec();
            if !matches!(e.expiry(), Some(at) if at <= now) {
                return Some(key);
            }
            let h = key_hash(&key).1;
            expired.extend(g.remove(h, &key));
        }
    }
}

/// All databases.
pub struct Keyspace {
    dbs: Box<[Db]>,
    freezer: FreezeSlot,
}

impl Keyspace {
    pub fn new(databases: usize) -> Keyspace {
        let freezer: FreezeSlot = Arc::default();
        Keyspace {
            dbs: (0..databases)
                .map(|i| Db::new(i, freezer.clone()))
                .collect(),
            freezer,
        }
    }

    /// Starts a snapshot: marks every shard pending and returns each
    /// database's (keys, keys with an expiry). The caller must hold the
    /// exclusive gate, so that no command is halfway through a change.
    pub fn begin_snapshot(&self, freezer: Arc<dyn Freezer>) -> Vec<(usize, usize)> {
        *self.freezer.write() = Some(freezer);
        self.dbs
            .iter()
            .map(|db| {
                db.shards.iter().fold((0, 0), |(k, v), s| {
                    let mut s = s.lock();
                    s.pending = true;
                    (k + s.len(), v + s.volatile())
                })
            })
            .collect()
    }

    /// The snapshot's own visit of a shard: if nobody has frozen it yet,
    /// `f` reads it (under its lock) and the mark is cleared. Returns
    /// whether `f` ran; if not, the shard's content went to the freezer.
    pub fn snapshot_shard(&self, db: usize, shard: usize, f: impl FnOnce(&Shard)) -> bool {
        let mut g = self.dbs[db].shards[shard].lock();
        if !g.pending {
            return false;
        }
        f(&g);
        g.pending = false;
        true
    }

    /// Ends a snapshot, finished or abandoned: no shard stays pending.
    pub fn end_snapshot(&self) {
        *self.freezer.write() = None;
        for db in self.dbs.iter() {
            for s in db.shards.iter() {
                s.lock().pending = false;
            }
        }
    }

    pub fn db(&self, i: usize) -> &Db {
        &self.dbs[i]
    }

    pub fn len(&self) -> usize {
        self.dbs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty()
    }

    /// Locks the shards holding `keys` of database `db`.
    pub fn lock<'a, K: AsRef<[u8]>>(&'a self, db: usize, keys: &[K], now: i64) -> Locked<'a> {
        let mut want: smallvec::SmallVec<[(usize, usize); 4]> =
            keys.iter().map(|k| (db, key_hash(k.as_ref()).0)).collect();
        want.sort_unstable();
        want.dedup();
        self.lock_shards(db, &want, now)
    }

    /// Locks shards given as (database, key) pairs, for commands that span
    /// databases (MOVE, COPY ... DB).
    pub fn lock_across<'a>(
        &'a self,
        default_db: usize,
        keys: &[(usize, &[u8])],
        now: i64,
    ) -> Locked<'a> {
        let mut want: smallvec::SmallVec<[(usize, usize); 4]> =
            keys.iter().map(|(db, k)| (*db, key_hash(k).0)).collect();
        want.sort_unstable();
        want.dedup();
        self.lock_shards(default_db, &want, now)
    }

    fn lock_shards<'a>(&'a self, db: usize, want: &[(usize, usize)], now: i64) -> Locked<'a> {
        Locked {
            db,
            now,
            clock: lru_clock(now),
            guards: want
                .iter()
                .map(|&(d, s)| {
                    let shard = match lent(d, s) {
                        // SAFETY: the transaction on this thread holds the
                        // shard's lock until its Prelocked is dropped, which
                        // outlives the commands it runs; a command never
                        // holds two Locked over one shard (that would
                        // deadlock outside a transaction), so this is the
                        // only reference in use.
                        Some(p) => ShardRef::Lent(unsafe { &mut *p }),
                        None => ShardRef::Own(self.dbs[d].shard(s)),
                    };
                    ((d, s), shard)
                })
                .collect(),
            expired: Vec::new(),
            expired_elsewhere: Vec::new(),
        }
    }

    /// Locks the shards `want` (database, shard) in order and lends them to
    /// the commands this thread runs until the result is dropped (see the
    /// module docs). Nothing else on this thread may lock other shards
    /// meanwhile: that would break the lock order.
    pub fn prelock(&self, mut want: Vec<(usize, usize)>) -> Prelocked<'_> {
        want.sort_unstable();
        want.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            want.iter().map(|&(d, s)| self.dbs[d].shard(s)).collect();
        LENT.with(|l| {
            let mut l = l.borrow_mut();
            debug_assert!(l.is_empty(), "nested transactions");
            for (&id, g) in want.iter().zip(guards.iter_mut()) {
                l.push((id, &mut **g as *mut Shard));
            }
        });
        Prelocked { _guards: guards }
    }

    /// Locks every shard of database `db`, for commands whose keys are
    /// only known once they run (SORT's BY and GET patterns).
    pub fn lock_db(&self, db: usize, now: i64) -> Locked<'_> {
        let want: Vec<(usize, usize)> = (0..SHARDS).map(|s| (db, s)).collect();
        self.lock_shards(db, &want, now)
    }

    /// Exchanges two databases atomically.
    pub fn swap(&self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let mut first = self.dbs[lo].lock_all();
        let mut second = self.dbs[hi].lock_all();
        for (x, y) in first.iter_mut().zip(second.iter_mut()) {
            std::mem::swap(&mut **x, &mut **y);
        }
        let (a, b) = (&self.dbs[lo].avg_ttl, &self.dbs[hi].avg_ttl);
        let moved = a.swap(b.load(Relaxed), Relaxed);
        b.store(moved, Relaxed);
    }
}

/// Redis's 24-bit LRU clock, in seconds.
pub fn lru_clock(now_ms: i64) -> u32 {
    ((now_ms / 1000) as u32) & 0xff_ffff
}

/// A held shard with its (database, shard) position.
type ShardGuard<'a> = ((usize, usize), ShardRef<'a>);

/// A shard a command works on: locked by the command itself, or lent by
/// the transaction that runs it.
enum ShardRef<'a> {
    Own(MutexGuard<'a, Shard>),
    Lent(&'a mut Shard),
}

impl Deref for ShardRef<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        match self {
            ShardRef::Own(g) => g,
            ShardRef::Lent(s) => s,
        }
    }
}

impl DerefMut for ShardRef<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        match self {
            ShardRef::Own(g) => g,
            ShardRef::Lent(s) => s,
        }
    }
}

thread_local! {
    /// The shards the transaction running on this thread holds, for the
    /// commands it runs ([`Keyspace::prelock`]).
    static LENT: RefCell<Vec<((usize, usize), *mut Shard)>> = const { RefCell::new(Vec::new()) };
}

/// The lent shard (db, shard), if the transaction on this thread holds it.
fn lent(db: usize, shard: usize) -> Option<*mut Shard> {
    LENT.with(|l| {
        let l = l.borrow();
        let found = l.iter().find(|(id, _)| *id == (db, shard)).map(|(_, p)| *p);
        // A command of the transaction must not lock a shard it did not
        // declare: waiting for it while holding the others breaks the lock
        // order. The table's key specs decide which commands qualify.
        debug_assert!(
            found.is_some() || l.is_empty(),
            "a transaction's command locked db {db} shard {shard}, which the transaction does not hold"
        );
        found
    })
}

/// Whether the transaction on this thread holds (db, shard).
fn is_lent(db: usize, shard: usize) -> bool {
    LENT.with(|l| l.borrow().iter().any(|(id, _)| *id == (db, shard)))
}

/// The shards of a transaction (see [`Keyspace::prelock`]): lent while
/// this lives, unlocked when it goes.
pub struct Prelocked<'a> {
    _guards: Vec<MutexGuard<'a, Shard>>,
}

impl Drop for Prelocked<'_> {
    fn drop(&mut self) {
        // Before the guards unlock: nothing may borrow a shard unlocked.
        LENT.with(|l| l.borrow_mut().clear());
    }
}

/// The shards a command holds, with the key operations it may perform on
/// them. Keys must belong to shards locked when this was made.
pub struct Locked<'a> {
    db: usize,
    now: i64,
    clock: u32,
    guards: smallvec::SmallVec<[ShardGuard<'a>; 4]>,
    /// Keys of database `db` found expired (and deleted) by lookups: the
    /// caller reports them (stats, notifications, propagation as DEL).
    pub expired: Vec<Entry>,
    /// The same for the other databases a cross-database lock holds.
    expired_elsewhere: Vec<(usize, Vec<Entry>)>,
}

impl Locked<'_> {
    /// Whether lookups found expired keys (in any database).
    pub fn found_expired(&self) -> bool {
        !self.expired.is_empty() || self.expired_elsewhere.iter().any(|(_, e)| !e.is_empty())
    }

    /// Releases the locks, handing back the entries lookups found expired,
    /// by database, so they are freed and reported outside the locks.
    pub fn into_expired(self) -> Vec<(usize, Vec<Entry>)> {
        std::iter::once((self.db, self.expired))
            .chain(self.expired_elsewhere)
            .filter(|(_, e)| !e.is_empty())
            .collect()
    }
}

impl<'a> Locked<'a> {
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn db(&self) -> usize {
        self.db
    }

    fn shard(&mut self, db: usize, key: &[u8]) -> (&mut Shard, u64, &mut Vec<Entry>) {
        let (s, h) = key_hash(key);
        let i = self
            .guards
            .iter()
            .position(|(id, _)| *id == (db, s))
            .unwrap_or_else(|| panic!("shard of a key not locked by its command (db {db})"));
        let expired = if db == self.db {
            &mut self.expired
        } else {
            let at = match self.expired_elsewhere.iter().position(|(d, _)| *d == db) {
                Some(at) => at,
                None => {
                    self.expired_elsewhere.push((db, Vec::new()));
                    self.expired_elsewhere.len() - 1
                }
            };
            &mut self.expired_elsewhere[at].1
        };
        (&mut *self.guards[i].1, h, expired)
    }

    /// Looks up a live key and marks it accessed.
    pub fn get(&mut self, key: &[u8]) -> Option<EntryMut<'_>> {
        self.get_in(self.db, key)
    }

    pub fn get_in(&mut self, db: usize, key: &[u8]) -> Option<EntryMut<'_>> {
        let (now, clock) = (self.now, self.clock);
        let (shard, h, expired) = self.shard(db, key);
        let mut e = shard.get(h, key, now, expired)?;
        e.get_mut().set_clock(clock);
        Some(e)
    }

    /// Looks up a live key without marking it accessed (OBJECT, TYPE-like
    /// introspection that Redis does with LOOKUP_NOTOUCH).
    pub fn peek(&mut self, key: &[u8]) -> Option<EntryMut<'_>> {
        let now = self.now;
        let db = self.db;
        let (shard, h, expired) = self.shard(db, key);
        shard.get(h, key, now, expired)
    }

    /// Stores `value` under `key`, replacing any previous value; returns the
    /// previous entry.
    pub fn set(&mut self, key: &[u8], value: Value, expiry: Option<i64>) -> Option<Entry> {
        self.set_in(self.db, key, value, expiry)
    }

    pub fn set_in(
        &mut self,
        db: usize,
        key: &[u8],
        value: Value,
        expiry: Option<i64>,
    ) -> Option<Entry> {
        let clock = self.clock;
        let now = self.now;
        let (shard, h, expired) = self.shard(db, key);
        shard.insert(h, key, Entry::new(key, value, expiry, clock), now, expired)
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.remove_in(self.db, key)
    }

    /// Removes a live key; an expired one is reclaimed and reported as such.
    pub fn remove_in(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        let now = self.now;
        let (shard, h, expired) = self.shard(db, key);
        shard.get(h, key, now, expired)?;
        shard.remove(h, key)
    }

    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.peek(key).is_some()
    }

    /// Sets or clears the expiry of a live key; false when there is no key.
    pub fn set_expiry(&mut self, key: &[u8], at: Option<i64>) -> bool {
        let now = self.now;
        let db = self.db;
        let (shard, h, expired) = self.shard(db, key);
        let Some(mut e) = shard.get(h, key, now, expired) else {
            return false;
        };
        let had = e.expiry().is_some();
        match at {
            Some(at) if e.get_mut().set_expiry_in_place(at) => {}
            None if !had => {}
            _ => e.replace_with(|old| old.with_expiry(at)),
        }
        match (had, at.is_some()) {
            (false, true) => shard.volatile += 1,
            (true, false) => shard.volatile -= 1,
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards_of(keys: &[&[u8]]) -> Vec<(usize, usize)> {
        keys.iter().map(|k| (0, key_hash(k).0)).collect()
    }

    #[test]
    fn a_prelocked_transaction_lends_its_shards_and_keeps_others_out() {
        let ks = Arc::new(Keyspace::new(1));
        let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
        let held = ks.prelock(shards_of(&keys));
        // The transaction's own commands find their shards lent (locking
        // them again would deadlock this thread).
        {
            let mut locked = ks.lock(0, &keys[..2], 0);
            locked.set(b"a", Value::Int(1), None);
            locked.set(b"b", Value::Int(1), None);
        }
        // Another thread waits for the transaction's shards.
        let other = {
            let ks = ks.clone();
            std::thread::spawn(move || {
                let mut locked = ks.lock(0, &[b"a"], 0);
                locked.get(b"a").is_some()
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!other.is_finished(), "a shard of the transaction was taken");
        drop(held);
        assert!(other.join().unwrap());
        // Nothing is lent any more: this thread locks normally.
        assert!(ks.lock(0, &[b"b"], 0).get(b"b").is_some());
    }
}
