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
use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, MutexGuard};

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
    /// snapshot began (see crate::persist).
    pending: Option<Box<Pending>>,
}

/// Encodes records for the snapshot in progress, and receives whole shards
/// from threads about to change all of a shard before the snapshot got
/// to it (see crate::persist).
pub trait Freezer: Send + Sync {
    /// Appends `e`'s record, as the snapshot writes it, to `out`.
    fn encode(&self, e: &Entry, out: &mut Vec<u8>);
    /// A writer got to a key before the saver did: [`encode`](Self::encode)
    /// its entry, if it has one, and count the key's mark of `mark` bytes
    /// with it, until [`marks_dropped`](Self::marks_dropped).
    fn keep(&self, e: Option<&Entry>, mark: usize, out: &mut Vec<u8>);
    /// Takes what a shard still owed the snapshot, whole: `records` of
    /// `keys` keys.
    fn freeze(&self, db: usize, shard: usize, records: Vec<u8>, keys: usize);
    /// A finished shard's set of touched keys, about `bytes`, was dropped
    /// (what [`keep`](Self::keep) counted for it).
    fn marks_dropped(&self, bytes: usize);
}

/// What a touched key costs beside its bytes: the set's slot (a boxed
/// slice's pointer and length, a control byte, free slots at the set's
/// load factor) and the allocation's rounding, roughly.
const MARK_OVERHEAD: usize = 32;

/// What a snapshot still owes for one shard. The saver walks the table
/// with a SCAN cursor, and a key's place in that walk follows from its
/// hash alone: the walk visits hashes in reverse-binary order, whatever
/// the table's size, so the keys it has passed are exactly those whose
/// reversed hash is below the reversed cursor. Before the first change of
/// a key the walk has not passed yet, its record as it was goes to
/// `records` and the key to `touched` (also when it did not exist, so
/// that a key created since is left out); the walk then skips the touched
/// keys. A write costs the encoding of its own key, not of its whole
/// shard, and keys behind the walk cost nothing at all.
pub struct Pending {
    freezer: Arc<dyn Freezer>,
    /// Keys ahead of the walk that changed since the snapshot began.
    /// ahash, as the keyspace hashes, since SipHash showed in the event
    /// loops' profile during a BGSAVE.
    touched: HashSet<Box<[u8]>, ahash::RandomState>,
    records: Vec<u8>,
    /// Where the saver's walk of the table resumes; 0 until its first
    /// visit (it is dropped when the walk wraps around to 0).
    cursor: u64,
    /// What `touched` takes, as reported to the freezer.
    marks_bytes: usize,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.freezer.marks_dropped(self.marks_bytes);
    }
}

/// What the saver gets from one visit of a shard
/// ([`Keyspace::snapshot_visit`]).
pub enum Visit {
    /// Records writers kept, and copies of entries not yet in the
    /// snapshot; `done` once the shard is finished.
    Part {
        records: Vec<u8>,
        copies: Vec<Entry>,
        done: bool,
    },
    /// The shard is no longer pending: what remains of it went to the
    /// freezer whole.
    Gone,
}

/// A table hash's place in the walk of a SCAN cursor: the walk goes
/// through the buckets in reverse-binary order, so a larger table only
/// refines this order, never changes it.
fn walk_position(h: u64) -> u64 {
    h.reverse_bits()
}

impl Pending {
    /// Whether the saver's walk has passed the key whose table hash is `h`:
    /// its record is in the snapshot already.
    fn passed(&self, h: u64) -> bool {
        walk_position(h) < walk_position(self.cursor)
    }

    /// Keeps the record of `key` (table hash `h`) as it is now, unless the
    /// snapshot has it already.
    fn preserve(&mut self, h: u64, key: &[u8], entry: Option<&Entry>) {
        if self.passed(h) || self.touched.contains(key) {
            return;
        }
        let mark = key.len() + MARK_OVERHEAD;
        self.freezer.keep(entry, mark, &mut self.records);
        self.touched.insert(key.into());
        self.marks_bytes += mark;
    }

    /// What the snapshot still lacks of the shard as it was when the
    /// snapshot began, and how many keys of the table that adds.
    fn finish(mut self, dict: &Dict) -> (Vec<u8>, usize) {
        let mut records = std::mem::take(&mut self.records);
        let started = self.cursor != 0;
        let mut keys = 0;
        dict.for_each(|e| {
            if started && self.passed(key_hash(e.key()).1) {
                return;
            }
            if !self.touched.contains(e.key()) {
                self.freezer.encode(e, &mut records);
                keys += 1;
            }
        });
        (records, keys)
    }
}

impl Shard {
    /// Before `key` may change: what a snapshot in progress needs of it.
    /// Reads come through here too (they hand out entries that may be
    /// changed in place), which costs them one encoding per key and
    /// snapshot.
    fn preserve(&mut self, h: u64, key: &[u8]) {
        if let Some(p) = self.pending.as_deref_mut() {
            p.preserve(h, key, self.dict.get(h, key));
        }
    }

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
        self.preserve(h, key);
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
        self.preserve(h, key);
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
        self.preserve(h, key);
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
        let pending = &mut self.pending;
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
            |e| {
                if let Some(p) = pending.as_deref_mut() {
                    p.preserve(key_hash(e.key()).1, e.key(), Some(&e));
                }
                gone.push(e)
            },
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
    /// Redis's estimate of the keys' average TTL in ms (INFO keyspace),
    /// kept by the active expiry cycle; 0 when no key has a TTL.
    avg_ttl: AtomicI64,
}

impl Db {
    fn new(index: usize) -> Db {
        Db {
            index,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
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

    /// Locks shard `i` for changes to single keys, which keep what a
    /// snapshot in progress needs of them themselves ([`Pending`]).
    pub fn shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        debug_assert!(
            !is_lent(self.index, i),
            "shard {i} of db {} locked again by the transaction holding it",
            self.index
        );
        self.shards[i].lock()
    }

    /// Locks shard `i` for a change to all of it (FLUSHDB, SWAPDB, loading):
    /// a shard a snapshot still needs is handed to it whole first.
    fn shard_whole(&self, i: usize) -> MutexGuard<'_, Shard> {
        let mut g = self.shard(i);
        if let Some(p) = g.pending.take() {
            let freezer = p.freezer.clone();
            let (records, keys) = p.finish(&g.dict);
            freezer.freeze(self.index, i, records, keys);
        }
        g
    }

    /// Sizes the empty shards' tables for `keys` keys in all (RESIZEDB when
    /// a dump loads), with room for the shards' uneven shares.
    pub fn reserve(&self, keys: usize) {
        let per_shard = keys / SHARDS;
        let per_shard = per_shard.saturating_add(per_shard / 8 + 16);
        for i in 0..SHARDS {
            self.shard_whole(i).dict.reserve(per_shard);
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
        let mut shard = self.shard_whole(i);
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
        (0..SHARDS).map(|i| self.shard_whole(i)).collect()
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
}

impl Keyspace {
    pub fn new(databases: usize) -> Keyspace {
        Keyspace {
            dbs: (0..databases).map(Db::new).collect(),
        }
    }

    /// Starts a snapshot: marks every shard pending and returns each
    /// database's (keys, keys with an expiry). The caller must hold the
    /// exclusive gate, so that no command is halfway through a change.
    pub fn begin_snapshot(&self, freezer: Arc<dyn Freezer>) -> Vec<(usize, usize)> {
        self.dbs
            .iter()
            .map(|db| {
                db.shards.iter().fold((0, 0), |(k, v), s| {
                    let mut s = s.lock();
                    s.pending = Some(Box::new(Pending {
                        freezer: freezer.clone(),
                        touched: HashSet::default(),
                        records: Vec::new(),
                        cursor: 0,
                        marks_bytes: 0,
                    }));
                    (k + s.len(), v + s.volatile())
                })
            })
            .collect()
    }

    /// The saver's visit of a shard. With a `budget`, it takes the records
    /// writers kept and copies up to about `budget` entries not yet in the
    /// snapshot, and releases the shard: writers wait for no more than
    /// that, and the caller encodes the copies outside the lock, then comes
    /// back for more. Without one (when every other command is held off
    /// anyway), the whole shard is encoded at once.
    pub fn snapshot_visit(&self, db: usize, shard: usize, budget: Option<usize>) -> Visit {
        let mut g = self.dbs[db].shards[shard].lock();
        let shard = &mut *g;
        let Some(budget) = budget else {
            return match shard.pending.take() {
                Some(p) => Visit::Part {
                    records: p.finish(&shard.dict).0,
                    copies: Vec::new(),
                    done: true,
                },
                None => Visit::Gone,
            };
        };
        let Some(p) = shard.pending.as_deref_mut() else {
            return Visit::Gone;
        };
        let records = std::mem::take(&mut p.records);
        let mut copies = Vec::new();
        loop {
            // A table that shrank since the last step puts keys already
            // passed back into the bucket the cursor names (SCAN's repeats):
            // only then do the keys need their place checked.
            let shrunk = p.cursor & !shard.dict.scan_mask() != 0;
            let mask = shard.dict.scan(p.cursor, |e| {
                if shrunk && p.passed(key_hash(e.key()).1) {
                    return;
                }
                if !p.touched.contains(e.key()) {
                    copies.push(e.rebuild(e.value().to_value(), e.expiry()));
                }
            });
            p.cursor = (p.cursor | !mask)
                .reverse_bits()
                .wrapping_add(1)
                .reverse_bits();
            if p.cursor == 0 || copies.len() >= budget {
                break;
            }
        }
        let done = p.cursor == 0;
        if done {
            shard.pending = None;
        }
        Visit::Part {
            records,
            copies,
            done,
        }
    }

    /// Ends a snapshot, finished or abandoned: no shard stays pending.
    pub fn end_snapshot(&self) {
        for db in self.dbs.iter() {
            for s in db.shards.iter() {
                s.lock().pending = None;
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
    use crate::store::entry::ValueRef;

    fn shards_of(keys: &[&[u8]]) -> Vec<(usize, usize)> {
        keys.iter().map(|k| (0, key_hash(k).0)).collect()
    }

    /// Records `key=value;` for integer values; keeps what it is handed whole.
    #[derive(Default)]
    struct Recorder {
        frozen: Mutex<Vec<u8>>,
    }

    impl Freezer for Recorder {
        fn encode(&self, e: &Entry, out: &mut Vec<u8>) {
            let ValueRef::Int(n) = e.value() else {
                panic!("only integers here");
            };
            out.extend_from_slice(e.key());
            out.extend_from_slice(format!("={n};").as_bytes());
        }

        fn keep(&self, e: Option<&Entry>, _mark: usize, out: &mut Vec<u8>) {
            if let Some(e) = e {
                self.encode(e, out);
            }
        }

        fn freeze(&self, _db: usize, _shard: usize, records: Vec<u8>, _keys: usize) {
            self.frozen.lock().extend_from_slice(&records);
        }

        fn marks_dropped(&self, _bytes: usize) {}
    }

    /// One saver visit of shard `i` of database 0, its records appended
    /// to `records`; true once the shard is done with.
    fn visit(
        ks: &Keyspace,
        i: usize,
        budget: Option<usize>,
        recorder: &Recorder,
        records: &mut Vec<u8>,
    ) -> bool {
        match ks.snapshot_visit(0, i, budget) {
            Visit::Part {
                records: kept,
                copies,
                done,
            } => {
                records.extend_from_slice(&kept);
                for e in &copies {
                    recorder.encode(e, records);
                }
                done
            }
            Visit::Gone => true,
        }
    }

    fn parse(records: &[u8]) -> std::collections::BTreeMap<String, i64> {
        String::from_utf8_lossy(records)
            .split_terminator(';')
            .map(|r| {
                let (k, v) = r.split_once('=').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect()
    }

    /// Changes of every kind after a snapshot began, through the key-level
    /// door and whole-shard doors, leave the snapshot as the keyspace was
    /// when it began: each key exactly once, with its value then.
    #[test]
    fn a_snapshot_sees_the_keyspace_as_it_began() {
        let ks = Keyspace::new(1);
        let mut expected = std::collections::BTreeMap::new();
        {
            let mut l = ks.lock_db(0, 0);
            for i in 0..500 {
                let key = format!("k{i}");
                // Some keys expire at 100: still in the snapshot taken at 0.
                let expiry = (i < 20).then_some(100);
                l.set(key.as_bytes(), Value::Int(i), expiry);
                expected.insert(key, i);
            }
            // Keys no writer touches: the walk of a shard takes a few
            // visits, so the table can grow and shrink in between.
            for i in 0..2000 {
                let key = format!("base{i}");
                l.set(key.as_bytes(), Value::Int(i), None);
                expected.insert(key, i);
            }
        }
        let recorder = Arc::new(Recorder::default());
        ks.begin_snapshot(recorder.clone());
        {
            let mut l = ks.lock_db(0, 50);
            for i in 20..500 {
                let key = format!("k{i}");
                match i % 5 {
                    0 => drop(l.set(key.as_bytes(), Value::Int(-1), None)),
                    1 => drop(l.remove(key.as_bytes())),
                    2 => drop(l.get(key.as_bytes())),
                    3 => {
                        l.set_expiry(key.as_bytes(), Some(1000));
                    }
                    _ => {}
                }
                // Created after the snapshot began, some deleted again.
                let new = format!("new{i}");
                l.set(new.as_bytes(), Value::Int(i), None);
                if i % 2 == 0 {
                    l.remove(new.as_bytes());
                }
            }
            // A second change of a key keeps the first record.
            l.set(b"k20", Value::Int(-2), None);
        }
        // The active expiry cycle removes the keys that expired at 100.
        let db = ks.db(0);
        for i in 0..SHARDS {
            db.shard(i)
                .expire_step(1 << 16, 200, &mut TtlSample::default());
        }
        // Half the shards are then changed whole (FLUSHDB and the like).
        for i in (0..SHARDS).step_by(2) {
            drop(db.shard_whole(i));
        }
        let mut records = Vec::new();
        let mut round = 0;
        let mut grown = Vec::new();
        for i in 0..SHARDS {
            // Whole, or a few entries at a time with changes in between:
            // to keys already in the snapshot, to keys not yet in it, and
            // enough new keys to make the table grow under the walk and
            // shrink again, which brings keys behind the walk back into
            // the buckets it visits next. Some shards are then handed
            // over whole halfway through their walk.
            let budget = (i % 3 != 0).then_some(3);
            let mut visits = 0;
            loop {
                if visit(&ks, i, budget, &recorder, &mut records) {
                    break;
                }
                round += 1;
                visits += 1;
                if i % 7 == 5 && visits == 2 {
                    drop(db.shard_whole(i));
                }
                let mut l = ks.lock_db(0, 60);
                // This shard's keys: some already in the snapshot.
                for j in 0..500 {
                    let key = format!("k{j}");
                    if key_hash(key.as_bytes()).0 == i {
                        l.set(key.as_bytes(), Value::Int(-3), None);
                    }
                }
                if round % 3 == 0 {
                    for key in grown.drain(..) {
                        let key: String = key;
                        assert!(l.remove(key.as_bytes()).is_some());
                    }
                } else {
                    let own = (0..)
                        .map(|j| format!("grow{round}:{j}"))
                        .filter(|key| key_hash(key.as_bytes()).0 == i)
                        .take(150);
                    for key in own {
                        l.set(key.as_bytes(), Value::Int(0), None);
                        grown.push(key);
                    }
                }
            }
        }
        records.extend_from_slice(&recorder.frozen.lock());
        ks.end_snapshot();
        let count = String::from_utf8_lossy(&records).matches(';').count();
        assert_eq!(count, expected.len(), "a key came twice");
        assert_eq!(parse(&records), expected);
        // Once over, changes keep nothing.
        ks.lock(0, &[b"k21"], 300).set(b"k21", Value::Int(7), None);
        assert!(matches!(
            ks.snapshot_visit(0, key_hash(b"k21").0, Some(10)),
            Visit::Gone
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Any schedule of writes between the saver's visits of one shard
        /// (changes and deletions of keys on either side of the walk, new
        /// keys, batches that grow and shrink the table, visits of any
        /// size, the shard handed over whole at some point) leaves the
        /// snapshot exactly as the keyspace was when it began.
        #[test]
        fn any_schedule_of_writes_leaves_the_snapshot_as_it_began(
            keys in 1i64..3000,
            rounds in proptest::collection::vec(
                (1usize..6, proptest::collection::vec((0i64..3000, 0u8..4), 0..30), 0usize..300, proptest::bool::ANY),
                1..40,
            ),
            whole_at in proptest::option::of(0usize..40),
        ) {
            let ks = Keyspace::new(1);
            let mut expected = std::collections::BTreeMap::new();
            {
                let mut l = ks.lock_db(0, 0);
                for i in 0..keys {
                    let key = format!("k{i}");
                    l.set(key.as_bytes(), Value::Int(i), None);
                    expected.insert(key, i);
                }
            }
            let recorder = Arc::new(Recorder::default());
            ks.begin_snapshot(recorder.clone());
            let mut records = Vec::new();
            let mut batch = Vec::new();
            let mut next = 0;
            let mut rounds = rounds.into_iter().enumerate();
            // Every shard is walked; the writes aim at all of them.
            for shard in 0..SHARDS {
                loop {
                    let (n, (budget, writes, grow, shrink)) = match rounds.next() {
                        Some(r) => r,
                        None => (usize::MAX, (SHARDS * 1000, Vec::new(), 0, false)),
                    };
                    if whole_at == Some(n) {
                        drop(ks.db(0).shard_whole(shard));
                    }
                    if visit(&ks, shard, Some(budget), &recorder, &mut records) {
                        break;
                    }
                    let mut l = ks.lock_db(0, 10);
                    for (k, op) in writes {
                        let key = format!("k{k}");
                        match op {
                            0 => drop(l.set(key.as_bytes(), Value::Int(-1), None)),
                            1 => drop(l.remove(key.as_bytes())),
                            2 => drop(l.get(key.as_bytes())),
                            _ => drop(l.set(key.as_bytes(), Value::Int(-2), Some(1))),
                        }
                    }
                    // New keys of the shard being walked, to resize its table.
                    let mut grown = 0;
                    while grown < grow {
                        let key = format!("new{next}");
                        next += 1;
                        if key_hash(key.as_bytes()).0 == shard {
                            l.set(key.as_bytes(), Value::Int(0), None);
                            batch.push(key);
                            grown += 1;
                        }
                    }
                    if shrink {
                        for key in batch.drain(..) {
                            l.remove(key.as_bytes());
                        }
                    }
                }
            }
            records.extend_from_slice(&recorder.frozen.lock());
            ks.end_snapshot();
            let count = String::from_utf8_lossy(&records).matches(';').count();
            proptest::prop_assert_eq!(count, expected.len());
            proptest::prop_assert_eq!(parse(&records), expected);
        }
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
