//! The hash table of big sets' members and of big sorted sets' member
//! index: open addressing with linear probing over items that carry their
//! own key bytes ([`Keyed`]).
//!
//! Each slot keeps 32 bits of its item's hash beside the item, so probing
//! compares items' bytes only when those bits match (the items live in
//! their own heap blocks, and reading one is a cache miss), and resizing
//! or closing a gap never hashes again.
//!
//! SSCAN and ZSCAN walk it with Redis's reverse-binary cursor over home
//! slots: a member's home is its hash masked to the table's size, so a
//! table twice as large splits each home in two, and a full scan returns
//! every member present throughout it, whatever resizes happen between
//! steps. Deletion shifts the following members back (no tombstones), so
//! the members of a home always sit in the unbroken run that starts
//! there.

use std::sync::OnceLock;

use rand::Rng;

const MIN_SLOTS: usize = 4;

/// An item of the table: found by its key bytes.
pub trait Keyed {
    fn key(&self) -> &[u8];
}

impl Keyed for Box<[u8]> {
    fn key(&self) -> &[u8] {
        self
    }
}

/// Hashes member bytes. One seed per process, random as Redis's siphash
/// seed, so clients cannot aim members at one run of slots.
fn hash(b: &[u8]) -> u32 {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    STATE.get_or_init(ahash::RandomState::new).hash_one(b) as u32
}

#[derive(Debug, Clone)]
pub struct Probe<T> {
    slots: Box<[Option<T>]>,
    hashes: Box<[u32]>,
    len: usize,
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Probe {
            slots: Box::default(),
            hashes: Box::default(),
            len: 0,
        }
    }
}

/// Power-of-two slot count holding `n` items at under 3/4 load.
fn slots_for(n: usize) -> usize {
    (n.saturating_mul(4) / 3 + 1)
        .max(MIN_SLOTS)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX / 2 + 1)
}

impl<T: Keyed> Probe<T> {
    pub fn with_capacity(n: usize) -> Probe<T> {
        let mut t = Probe::default();
        t.resize(slots_for(n));
        t
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn home(&self, h: u32) -> usize {
        h as usize & self.mask()
    }

    fn find(&self, key: &[u8], h: u32) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(h);
        while let Some(item) = &self.slots[i] {
            if self.hashes[i] == h && item.key() == key {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
        None
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        let i = self.find(key, hash(key))?;
        self.slots[i].as_ref()
    }

    /// The item in slot `i`, if any (see [`random_slot`](Self::random_slot)).
    pub fn slot(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.as_ref()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.slots.iter().flatten()
    }

    fn resize(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, (0..size).map(|_| None).collect());
        let old_hashes = std::mem::replace(&mut self.hashes, vec![0; size].into_boxed_slice());
        for (item, h) in old.into_vec().into_iter().zip(old_hashes.iter()) {
            if let Some(item) = item {
                self.place(item, *h);
            }
        }
    }

    /// Puts `item` in the first free slot from its home; returns the slot.
    fn place(&mut self, item: T, h: u32) -> usize {
        let mut i = self.home(h);
        while self.slots[i].is_some() {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = Some(item);
        self.hashes[i] = h;
        i
    }

    /// Adds the item `make` builds for `key`, unless `key` is present:
    /// then nothing is built and it returns false.
    pub fn insert_with(&mut self, key: &[u8], make: impl FnOnce() -> T) -> bool {
        self.get_or_insert_with(key, make).1
    }

    /// The item for `key`, or the one `make` builds for it, added (then
    /// with true): one hash and one search either way.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> T) -> (&T, bool) {
        let h = hash(key);
        let (i, added) = match self.find(key, h) {
            Some(i) => (i, false),
            None => {
                // Keep the load at or under 3/4 so runs stay short.
                if (self.len + 1) * 4 > self.slots.len() * 3 {
                    self.resize(slots_for(self.len + 1).max(self.slots.len() * 2));
                }
                self.len += 1;
                (self.place(make(), h), true)
            }
        };
        match &self.slots[i] {
            Some(item) => (item, added),
            None => unreachable!("slot {i} was just found or filled"),
        }
    }

    pub fn take(&mut self, key: &[u8]) -> Option<T> {
        let i = self.find(key, hash(key))?;
        self.take_at(i)
    }

    /// Takes the item at slot `i`, shifting back the items after it that
    /// the hole would cut off from their home.
    pub fn take_at(&mut self, mut i: usize) -> Option<T> {
        let taken = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        let mask = self.mask();
        let mut j = (i + 1) & mask;
        while self.slots[j].is_some() {
            let home = self.home(self.hashes[j]);
            // The item at j may move to i when its home is not in the
            // cyclic range (i, j].
            let dist_home = j.wrapping_sub(home) & mask;
            let dist_hole = j.wrapping_sub(i) & mask;
            if dist_home >= dist_hole {
                self.slots[i] = self.slots[j].take();
                self.hashes[i] = self.hashes[j];
                i = j;
            }
            j = (j + 1) & mask;
        }
        // Shrink like Redis's htNeedsResize: under 10% full.
        if self.slots.len() > MIN_SLOTS && self.len * 10 < self.slots.len() {
            self.resize(slots_for(self.len));
        }
        Some(taken)
    }

    /// A random occupied slot.
    pub fn random_slot(&self, rng: &mut impl Rng) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        loop {
            let i = rng.gen_range(0..self.slots.len());
            if self.slots[i].is_some() {
                return Some(i);
            }
        }
    }

    /// One scan step at cursor `v`: calls `f` with every item whose home
    /// slot is `v` (modulo the table's size) and returns the next cursor,
    /// 0 when the scan is over.
    pub fn scan_step<'s>(&'s self, v: u64, mut f: impl FnMut(&'s T)) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let start = (v & mask) as usize;
        let mut i = start;
        while let Some(item) = &self.slots[i] {
            if self.home(self.hashes[i]) == start {
                f(item);
            }
            i = (i + 1) & self.mask();
        }
        // Redis's reverse-binary increment of the cursor's masked bits.
        let v = v | !mask;
        v.reverse_bits().wrapping_add(1).reverse_bits()
    }
}
