//! The hash table of one keyspace shard: chained buckets whose links live
//! inside the entries, power-of-two sizes, and incremental rehashing.
//!
//! It follows Redis's dict because two of Redis's guarantees depend on its
//! shape: a growing table never stalls a command (each operation moves a
//! bucket or so from the old table to the new one), and SCAN's
//! reverse-binary cursor returns every element present for the whole
//! iteration at least once, even while the table grows or shrinks.
//!
//! Callers pass a key's hash with the shard bits already shifted away.

use super::entry::Entry;

/// Empty buckets a single rehash step may skip over (Redis: 10 per bucket).
const EMPTY_VISITS: usize = 10;
const MIN_SIZE: usize = 4;

#[derive(Default)]
struct Table {
    buckets: Box<[*mut u8]>,
    used: usize,
}

impl Table {
    fn with_size(size: usize) -> Table {
        Table {
            buckets: vec![std::ptr::null_mut(); size].into_boxed_slice(),
            used: 0,
        }
    }

    fn mask(&self) -> u64 {
        (self.buckets.len() as u64).wrapping_sub(1)
    }
}

/// A chained hash table of [`Entry`]s keyed by their key bytes.
#[derive(Default)]
pub struct Dict {
    tables: [Table; 2],
    /// Next bucket of `tables[0]` to move while rehashing into `tables[1]`.
    rehash_idx: Option<usize>,
}

// Safety: the bucket pointers are owned entries (see entry.rs); the table
// is only reached through &self/&mut self, so the usual borrow rules apply.
unsafe impl Send for Dict {}
unsafe impl Sync for Dict {}

/// What a lookup found.
pub enum Lookup<'a> {
    Live(EntryMut<'a>),
    /// The key had expired; it has been unlinked and is handed back.
    Expired(Entry),
    Missing,
}

/// A mutable handle to an entry inside the table. It does not hand out
/// `&mut Entry`, so nothing can swap an entry out and lose its chain link.
pub struct EntryMut<'a> {
    slot: &'a mut *mut u8,
}

impl std::ops::Deref for EntryMut<'_> {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        // Safety: a non-null slot holds an owned entry; Entry is
        // repr(transparent) over its block pointer.
        unsafe { &*(self.slot as *const *mut u8 as *const Entry) }
    }
}

impl<'a> EntryMut<'a> {
    pub fn get_mut(&mut self) -> &mut EntryInPlace {
        // Safety: as in Deref; EntryInPlace is repr(transparent) over Entry
        // and exposes no way to replace the entry.
        unsafe { &mut *(self.slot as *mut *mut u8 as *mut EntryInPlace) }
    }

    /// The entry in place for as long as the table borrow lasts, so a
    /// lookup helper can hand out a borrow of the value inside it.
    pub fn into_mut(self) -> &'a mut EntryInPlace {
        // Safety: as in `get_mut`, for the slot's whole lifetime.
        unsafe { &mut *(self.slot as *mut *mut u8 as *mut EntryInPlace) }
    }

    /// Puts `new` where the entry was, keeping its place in the chain, and
    /// returns the old entry.
    pub fn replace(self, new: Entry) -> Entry {
        let mut old = None;
        self.replace_with(|e| {
            old = Some(e);
            new
        });
        old.unwrap_or_else(|| unreachable!("replace_with always calls its closure"))
    }

    /// Rebuilds the entry from its old self (e.g. to add an expiry),
    /// keeping its place in the chain.
    pub fn replace_with(self, f: impl FnOnce(Entry) -> Entry) {
        // Safety: the slot holds an owned entry, which we take back; the
        // slot is refilled before anything else can see it.
        let mut old = unsafe { Entry::from_raw(*self.slot) };
        let next = old.next();
        old.set_next(std::ptr::null_mut());
        let mut new = f(old);
        new.set_next(next);
        *self.slot = new.into_raw();
    }
}

impl<'a> EntryMut<'a> {
    /// The boxed object for as long as the table is borrowed, so that a
    /// collection can be changed in place after its lookup.
    pub fn into_object_mut(self) -> Option<&'a mut super::object::Object> {
        // Safety: as in `get_mut`; the slot borrow moves into the result.
        let entry = unsafe { &mut *(self.slot as *mut *mut u8 as *mut Entry) };
        entry.object_mut()
    }
}

/// An entry borrowed in place: its value and metadata may change, the
/// entry itself may not be moved.
#[repr(transparent)]
pub struct EntryInPlace(Entry);

impl std::ops::Deref for EntryInPlace {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        &self.0
    }
}

impl EntryInPlace {
    pub fn object_mut(&mut self) -> Option<&mut super::object::Object> {
        self.0.object_mut()
    }
    pub fn set_clock(&mut self, clock: u32) {
        self.0.set_clock(clock)
    }
    pub fn set_expiry_in_place(&mut self, at: i64) -> bool {
        self.0.set_expiry_in_place(at)
    }
}

impl Dict {
    pub fn len(&self) -> usize {
        self.tables[0].used + self.tables[1].used
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes used by bucket arrays, for memory reporting.
    pub fn bucket_bytes(&self) -> usize {
        (self.tables[0].buckets.len() + self.tables[1].buckets.len()) * 8
    }

    fn rehashing(&self) -> bool {
        self.rehash_idx.is_some()
    }

    /// Moves up to `n` buckets from the old table to the new one.
    pub fn rehash_step(&mut self, n: usize) {
        let Some(mut idx) = self.rehash_idx else {
            return;
        };
        let mut empty_visits = n * EMPTY_VISITS;
        let mut n = n;
        while n > 0 && self.tables[0].used > 0 {
            n -= 1;
            while self.tables[0].buckets[idx].is_null() {
                idx += 1;
                empty_visits -= 1;
                if empty_visits == 0 {
                    self.rehash_idx = Some(idx);
                    return;
                }
            }
            let mut p = std::mem::replace(&mut self.tables[0].buckets[idx], std::ptr::null_mut());
            while !p.is_null() {
                // Safety: p is an owned entry taken out of the old chain.
                let mut e = unsafe { Entry::from_raw(p) };
                p = e.next();
                let h = hash_of(&e);
                let slot = (h & self.tables[1].mask()) as usize;
                e.set_next(self.tables[1].buckets[slot]);
                self.tables[1].buckets[slot] = e.into_raw();
                self.tables[0].used -= 1;
                self.tables[1].used += 1;
            }
            idx += 1;
        }
        if self.tables[0].used == 0 {
            self.tables[0] = std::mem::take(&mut self.tables[1]);
            self.rehash_idx = None;
            // Deletions during a shrink may call for a smaller table still.
            self.shrink_if_needed();
        } else {
            self.rehash_idx = Some(idx);
        }
    }

    fn resize_to(&mut self, wanted: usize) {
        let size = wanted.max(MIN_SIZE).next_power_of_two();
        if self.rehashing() || size == self.tables[0].buckets.len() {
            return;
        }
        if self.tables[0].buckets.is_empty() {
            self.tables[0] = Table::with_size(size);
            return;
        }
        self.tables[1] = Table::with_size(size);
        self.rehash_idx = Some(0);
    }

    /// Sizes an empty table for `n` entries at once, so that filling it
    /// (loading a dump, as Redis's dictExpand on RESIZEDB) never rehashes.
    pub fn reserve(&mut self, n: usize) {
        if self.is_empty() && !self.rehashing() {
            self.tables[0] = Table::with_size(n.max(MIN_SIZE).next_power_of_two());
        }
    }

    /// Asks the CPU to fetch the bucket `h` falls in, so that a lookup of
    /// it a little later does not wait for memory (loading a dump looks up
    /// keys one after another, each bucket a cache miss otherwise).
    pub fn prefetch(&self, h: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let t = &self.tables[0];
            if let Some(b) = t.buckets.get((h & t.mask()) as usize) {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                // Safety: a prefetch is a hint; the address is a live bucket.
                #[allow(unused_unsafe)]
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(b as *const *mut u8 as *const i8)
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    fn expand_if_needed(&mut self) {
        if self.rehashing() {
            return;
        }
        let t = &self.tables[0];
        if t.buckets.is_empty() || t.used >= t.buckets.len() {
            self.resize_to(t.used + 1);
        }
    }

    /// Starts shrinking when fewer than 10% of the buckets are used, so that
    /// memory is given back after mass deletion or expiry.
    fn shrink_if_needed(&mut self) {
        if self.rehashing() {
            return;
        }
        let t = &self.tables[0];
        if t.buckets.len() > MIN_SIZE && t.used * 10 < t.buckets.len() {
            self.resize_to(t.used);
        }
    }

    /// Finds the slot holding `key` and the table it is in, doing one
    /// rehash step first. The table must come from the search itself: a
    /// key added during a rehash sits in the new table whatever its old
    /// bucket, so the bucket index cannot tell.
    fn find_slot(&mut self, h: u64, key: &[u8]) -> Option<(*mut *mut u8, usize)> {
        if self.rehashing() {
            self.rehash_step(1);
        }
        for t in 0..2 {
            let table = &mut self.tables[t];
            if table.buckets.is_empty() {
                continue;
            }
            let mut slot: *mut *mut u8 = &mut table.buckets[(h & table.mask()) as usize];
            // Safety: slot points at a bucket or at the link of a live entry.
            unsafe {
                while !(*slot).is_null() {
                    let e = &*(slot as *const Entry);
                    if e.key() == key {
                        return Some((slot, t));
                    }
                    slot = (*slot) as *mut *mut u8;
                }
            }
            if !self.rehashing() {
                break;
            }
        }
        None
    }

    /// Finds a key, removing and returning it instead when its expiry is
    /// at or before `now`.
    pub fn lookup(&mut self, h: u64, key: &[u8], now: i64) -> Lookup<'_> {
        let Some((slot, t)) = self.find_slot(h, key) else {
            return Lookup::Missing;
        };
        // Safety: a found slot holds an owned entry.
        let expired = matches!(unsafe { &*(slot as *const Entry) }.expiry(), Some(at) if at <= now);
        if !expired {
            // Safety: as in `get_mut`.
            return Lookup::Live(EntryMut {
                slot: unsafe { &mut *slot },
            });
        }
        // Safety: unlinking the found entry from its chain and owning it.
        let mut e = unsafe {
            let e = Entry::from_raw(*slot);
            *slot = e.next();
            e
        };
        e.set_next(std::ptr::null_mut());
        self.tables[t].used -= 1;
        self.shrink_if_needed();
        Lookup::Expired(e)
    }

    pub fn get(&mut self, h: u64, key: &[u8]) -> Option<&Entry> {
        let (slot, _) = self.find_slot(h, key)?;
        // Safety: a found slot holds an owned entry borrowed for &self.
        Some(unsafe { &*(slot as *const Entry) })
    }

    pub fn get_mut(&mut self, h: u64, key: &[u8]) -> Option<EntryMut<'_>> {
        let (slot, _) = self.find_slot(h, key)?;
        // Safety: as in `get`, with &mut self making the borrow unique.
        Some(EntryMut {
            slot: unsafe { &mut *slot },
        })
    }

    /// Adds an entry whose key is not in the table.
    pub fn insert(&mut self, h: u64, mut entry: Entry) {
        self.expand_if_needed();
        if self.rehashing() {
            self.rehash_step(1);
        }
        let t = if self.rehashing() { 1 } else { 0 };
        let table = &mut self.tables[t];
        let slot = (h & table.mask()) as usize;
        entry.set_next(table.buckets[slot]);
        table.buckets[slot] = entry.into_raw();
        table.used += 1;
    }

    pub fn remove(&mut self, h: u64, key: &[u8]) -> Option<Entry> {
        let (slot, t) = self.find_slot(h, key)?;
        // Safety: unlinking the found entry from its chain and owning it.
        let mut e = unsafe {
            let e = Entry::from_raw(*slot);
            *slot = e.next();
            e
        };
        e.set_next(std::ptr::null_mut());
        self.tables[t].used -= 1;
        self.shrink_if_needed();
        Some(e)
    }

    /// Calls `f` on every entry.
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for t in &self.tables {
            for &head in t.buckets.iter() {
                walk(head, &mut f);
            }
        }
    }

    /// The mask [`scan`](Self::scan) returns, without scanning.
    pub fn scan_mask(&self) -> u64 {
        if self.is_empty() {
            return 0;
        }
        let (a, b) = (self.tables[0].mask(), self.tables[1].mask());
        if self.rehashing() {
            a.min(b)
        } else {
            a
        }
    }

    /// Visits the bucket(s) at reverse-binary cursor position `v` and
    /// returns the mask of the smaller table, which the caller uses to
    /// advance the cursor (see the keyspace's SCAN).
    pub fn scan(&self, v: u64, mut f: impl FnMut(&Entry)) -> u64 {
        if self.is_empty() {
            return 0;
        }
        if !self.rehashing() {
            let t = &self.tables[0];
            walk(t.buckets[(v & t.mask()) as usize], &mut f);
            return t.mask();
        }
        let (small, large) = if self.tables[0].buckets.len() <= self.tables[1].buckets.len() {
            (&self.tables[0], &self.tables[1])
        } else {
            (&self.tables[1], &self.tables[0])
        };
        let m0 = small.mask();
        let m1 = large.mask();
        walk(small.buckets[(v & m0) as usize], &mut f);
        // The buckets of the larger table that expand the small one, from
        // the cursor's own place on, in the cursor's reverse-binary order:
        // a cursor from a table larger than the small one (the table is
        // shrinking) has passed the expansions before its place, and
        // counting up in plain binary from it would skip some after it.
        let mut v = v;
        loop {
            walk(large.buckets[(v & m1) as usize], &mut f);
            v = (v | !m1).reverse_bits().wrapping_add(1).reverse_bits();
            if v & (m0 ^ m1) == 0 {
                break;
            }
        }
        m0
    }

    /// A random entry, or None when empty. Like Redis, it picks a random
    /// non-empty bucket, then a random entry of its chain.
    pub fn random(&mut self, rng: &mut impl rand::Rng) -> Option<&Entry> {
        if self.is_empty() {
            return None;
        }
        if self.rehashing() {
            self.rehash_step(1);
        }
        loop {
            let t = if self.rehashing() && rng.gen_bool(0.5) {
                1
            } else {
                0
            };
            let table = &self.tables[t];
            if table.buckets.is_empty() {
                continue;
            }
            // The slots holding the chain's entries (the bucket, then each
            // entry's link): an &Entry must point at a slot in the table,
            // not at a copy of the pointer that dies with this loop.
            let mut chain: Vec<*const *mut u8> = Vec::new();
            let mut slot: *const *mut u8 = &table.buckets[rng.gen_range(0..table.buckets.len())];
            // Safety: slot points at a bucket or at the link of a live entry.
            unsafe {
                while !(*slot).is_null() {
                    chain.push(slot);
                    slot = (*slot) as *const *mut u8;
                }
            }
            if chain.is_empty() {
                continue;
            }
            let pick = chain[rng.gen_range(0..chain.len())];
            // Safety: the slot holds a live entry borrowed for &self; Entry
            // is repr(transparent) over its block pointer.
            return Some(unsafe { &*(pick as *const Entry) });
        }
    }

    /// Walks up to `buckets` buckets from `*cursor`, removing the entries
    /// for which `expired` holds and handing them to `removed`. While a
    /// rehash is running it helps the rehash instead, which empties the old
    /// table soon enough.
    pub fn expire_step(
        &mut self,
        cursor: &mut u64,
        buckets: usize,
        mut expired: impl FnMut(&Entry) -> bool,
        mut removed: impl FnMut(Entry),
    ) -> usize {
        if self.rehashing() {
            self.rehash_step(buckets);
            return 0;
        }
        let mut checked = 0;
        let table = &mut self.tables[0];
        if table.buckets.is_empty() {
            return 0;
        }
        for _ in 0..buckets.min(table.buckets.len()) {
            let idx = (*cursor & table.mask()) as usize;
            *cursor = cursor.wrapping_add(1);
            let mut slot: *mut *mut u8 = &mut table.buckets[idx];
            // Safety: walking and unlinking owned entries of one chain.
            unsafe {
                while !(*slot).is_null() {
                    checked += 1;
                    if expired(&*(slot as *const Entry)) {
                        let mut e = Entry::from_raw(*slot);
                        *slot = e.next();
                        e.set_next(std::ptr::null_mut());
                        table.used -= 1;
                        removed(e);
                    } else {
                        slot = (*slot) as *mut *mut u8;
                    }
                }
            }
        }
        self.shrink_if_needed();
        checked
    }
}

fn walk(mut p: *mut u8, f: &mut impl FnMut(&Entry)) {
    while !p.is_null() {
        // Safety: p is a live entry in a chain borrowed for the walk.
        let e = unsafe { &*(&p as *const *mut u8 as *const Entry) };
        let next = e.next();
        f(e);
        p = next;
    }
}

/// The dict does not store hashes; rehashing recomputes them through the
/// keyspace's hasher, which is process-wide so that every shard agrees.
fn hash_of(e: &Entry) -> u64 {
    super::keyspace::key_hash(e.key()).1
}

impl Drop for Dict {
    fn drop(&mut self) {
        for t in self.tables.iter_mut() {
            for head in t.buckets.iter_mut() {
                let mut p = std::mem::replace(head, std::ptr::null_mut());
                while !p.is_null() {
                    // Safety: every chained block is owned by the table.
                    let e = unsafe { Entry::from_raw(p) };
                    p = e.next();
                    drop(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::Value;
    use super::super::keyspace::key_hash;
    use super::*;
    use std::collections::HashSet;

    fn key(i: u32) -> Vec<u8> {
        format!("key:{i}").into_bytes()
    }

    #[test]
    fn insert_get_remove_across_resizes() {
        let mut d = Dict::default();
        for i in 0..5000 {
            let k = key(i);
            d.insert(
                key_hash(&k).1,
                Entry::new(&k, Value::Int(i as i64), None, 0),
            );
        }
        assert_eq!(d.len(), 5000);
        for i in 0..5000 {
            let k = key(i);
            assert!(d.get(key_hash(&k).1, &k).is_some(), "{i}");
        }
        for i in 0..4990 {
            let k = key(i);
            assert!(d.remove(key_hash(&k).1, &k).is_some());
        }
        assert_eq!(d.len(), 10);
        for _ in 0..10_000 {
            d.rehash_step(1);
        }
        assert!(
            d.bucket_bytes() <= 64 * 8,
            "table shrank: {}",
            d.bucket_bytes()
        );
    }

    /// The entry handed out must be the table's, readable after the call.
    #[test]
    fn random_returns_a_live_entry() {
        let mut d = Dict::default();
        let keys: HashSet<Vec<u8>> = (0..50).map(key).collect();
        for k in &keys {
            d.insert(key_hash(k).1, Entry::new(k, Value::Int(7), None, 0));
        }
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let e = d.random(&mut rng).expect("non-empty");
            assert!(keys.contains(e.key()));
            assert!(matches!(e.value(), super::super::entry::ValueRef::Int(7)));
        }
    }

    /// SCAN's guarantee: keys present for the whole scan are all returned,
    /// even when the table grows and shrinks between steps.
    #[test]
    fn scan_survives_resizing() {
        let mut d = Dict::default();
        let stable: Vec<_> = (0..300).map(key).collect();
        for k in &stable {
            d.insert(key_hash(k).1, Entry::new(k, Value::Int(0), None, 0));
        }
        let mut seen = HashSet::new();
        let mut v: u64 = 0;
        let mut extra = 10_000;
        let mut removed = 10_000;
        loop {
            let mask = d.scan(v, |e| {
                seen.insert(e.key().to_vec());
            });
            // Grow, then shrink the table while the scan runs.
            if extra < 14_000 {
                for _ in 0..50 {
                    let k = key(extra);
                    extra += 1;
                    d.insert(key_hash(&k).1, Entry::new(&k, Value::Int(0), None, 0));
                }
            } else {
                for _ in 0..200 {
                    if removed < extra {
                        let k = key(removed);
                        d.remove(key_hash(&k).1, &k);
                        removed += 1;
                    }
                }
            }
            v |= !mask;
            v = v.reverse_bits().wrapping_add(1).reverse_bits();
            if v == 0 {
                break;
            }
        }
        for k in &stable {
            assert!(seen.contains(k));
        }
    }

    /// A cursor from a larger table, continued while the table shrinks
    /// (a rehash into a smaller table in progress): the expansions of the
    /// cursor's bucket in the larger table must be walked in the cursor's
    /// own reverse-binary order, or the keys of some are never met. From
    /// any cursor, the scan meets every key at or after its place.
    #[test]
    fn scan_from_a_larger_tables_cursor_during_a_shrink() {
        let mut d = Dict::default();
        let keys: Vec<_> = (0..8200).map(key).collect();
        for k in &keys {
            d.insert(key_hash(k).1, Entry::new(k, Value::Int(0), None, 0));
        }
        while d.rehashing() {
            d.rehash_step(100);
        }
        let large = d.tables[0].mask();
        let mut left = keys.len();
        for k in &keys {
            if d.rehashing() {
                break;
            }
            d.remove(key_hash(k).1, k);
            left -= 1;
        }
        assert!(d.rehashing() && d.scan_mask() < large);
        let live = &keys[keys.len() - left..];
        for place in (0..=large).step_by(37) {
            let start = place.reverse_bits() >> large.leading_zeros();
            let mut seen = HashSet::new();
            let mut v = start;
            loop {
                let mask = d.scan(v, |e| {
                    seen.insert(e.key().to_vec());
                });
                v |= !mask;
                v = v.reverse_bits().wrapping_add(1).reverse_bits();
                if v == 0 {
                    break;
                }
            }
            for k in live {
                let h = key_hash(k).1;
                if (h & large).reverse_bits() >= start.reverse_bits() {
                    assert!(seen.contains(k), "from cursor {start}: a key was never met");
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// SCAN's guarantee under any schedule of growth and shrinking
        /// between steps: batches of other keys come and go, so the
        /// table grows, shrinks, and is caught halfway through rehashes.
        #[test]
        fn scan_meets_every_key_present_throughout(
            stable in 1u32..300,
            changes in proptest::collection::vec((0usize..800, proptest::bool::ANY), 1..120),
        ) {
            let mut d = Dict::default();
            let stable: Vec<_> = (0..stable).map(key).collect();
            for k in &stable {
                d.insert(key_hash(k).1, Entry::new(k, Value::Int(0), None, 0));
            }
            let mut others = Vec::new();
            let mut next = 1_000_000;
            let mut changes = changes.into_iter();
            let mut seen = HashSet::new();
            let mut v: u64 = 0;
            loop {
                let mask = d.scan(v, |e| {
                    seen.insert(e.key().to_vec());
                });
                match changes.next() {
                    Some((n, true)) => {
                        for _ in 0..n {
                            let k = key(next);
                            next += 1;
                            d.insert(key_hash(&k).1, Entry::new(&k, Value::Int(0), None, 0));
                            others.push(k);
                        }
                    }
                    Some((n, false)) => {
                        for k in others.drain(others.len().saturating_sub(n)..) {
                            d.remove(key_hash(&k).1, &k);
                        }
                    }
                    None => {}
                }
                v |= !mask;
                v = v.reverse_bits().wrapping_add(1).reverse_bits();
                if v == 0 {
                    break;
                }
            }
            for k in &stable {
                proptest::prop_assert!(seen.contains(k));
            }
        }
    }

    /// Removing a key added during a rehash must decrement the new
    /// table's count, whatever bucket the key had in the old table.
    #[test]
    fn counts_stay_right_through_rehashes() {
        for seed in 0..200u64 {
            let mut d = Dict::default();
            let mut model = std::collections::BTreeSet::new();
            let mut x = seed;
            for _ in 0..200 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = ((x >> 33) % 40).to_le_bytes();
                let h = super::super::keyspace::key_hash(&k).1;
                if (x >> 20) % 3 == 0 {
                    assert_eq!(d.remove(h, &k).is_some(), model.remove(&k));
                } else if d.get(h, &k).is_none() {
                    d.insert(
                        h,
                        Entry::new(&k, super::super::entry::Value::Int(0), None, 0),
                    );
                    model.insert(k);
                }
                let mut n = 0;
                d.for_each(|_| n += 1);
                assert_eq!((n, d.len()), (model.len(), model.len()), "seed {seed}");
            }
        }
    }
}
