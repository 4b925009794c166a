//! The SET type: Redis 7.0's two encodings and the one-way conversion
//! between them.
//!
//! - `intset`: the members are all integers, kept sorted and packed at the
//!   narrowest width (16, 32 or 64 bits) that holds every one of them, as
//!   Redis's intset. Small ones (up to [`INLINE`] bytes) live inside the
//!   object itself, so a set of a few small integers costs no allocation
//!   beyond its entry and its object.
//! - `hashtable`: any other set. An open-addressing table with linear
//!   probing of boxed byte strings (20 bytes a slot with the hash bits, no
//!   per-member node), whose home-slot walk keeps SSCAN's reverse-binary
//!   cursor guarantee across resizes (see [`Probe`]).
//!
//! A set becomes a hashtable when a non-integer is added or its length
//! passes `set-max-intset-entries`, and never goes back.

use rand::Rng;

use super::probe::Probe;

/// Bytes of intset payload kept inline (ten 16-bit members).
pub const INLINE: usize = 20;

/// A member as stored: integers of an intset are not strings until a
/// reply or a conversion needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The integer this member is in an intset, if it is one.
    fn as_int(&self) -> Option<i64> {
        match *self {
            Member::Int(n) => Some(n),
            Member::Bytes(b) => crate::command::args::parse_i64_exact(b),
        }
    }

    /// Calls `f` with the member's string form.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match *self {
            Member::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
            Member::Bytes(b) => f(b),
        }
    }

    pub fn to_owned(self) -> Owned {
        match self {
            Member::Int(n) => Owned::Int(n),
            Member::Bytes(b) => Owned::Bytes(b.into()),
        }
    }
}

/// A member taken out of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Int(i64),
    Bytes(Box<[u8]>),
}

impl Owned {
    pub fn as_member(&self) -> Member<'_> {
        match self {
            Owned::Int(n) => Member::Int(*n),
            Owned::Bytes(b) => Member::Bytes(b),
        }
    }
}

/// A set value.
#[derive(Debug, Clone)]
pub enum Set {
    Ints(IntSet),
    Table(Box<Table>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Ints(IntSet::default())
    }
}

impl Set {
    /// The empty set Redis's `setTypeCreate` makes for a first member: an
    /// intset when the member is an integer.
    pub fn for_first(member: &[u8]) -> Set {
        match Member::Bytes(member).as_int() {
            Some(_) => Set::default(),
            None => Set::Table(Box::default()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Ints(s) => s.len(),
            Set::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn contains(&self, m: Member<'_>) -> bool {
        match self {
            Set::Ints(s) => m.as_int().is_some_and(|n| s.search(n).is_ok()),
            Set::Table(t) => m.with_bytes(|b| t.get(b).is_some()),
        }
    }

    /// Adds a member; false when it was there already. An intset turns
    /// into a hashtable when `m` is not an integer or the set grows past
    /// `max_intset` members.
    pub fn insert(&mut self, m: Member<'_>, max_intset: usize) -> bool {
        match self {
            Set::Ints(s) => match m.as_int() {
                Some(n) => {
                    if !s.insert(n) {
                        return false;
                    }
                    if s.len() > max_intset {
                        self.convert();
                    }
                    true
                }
                None => {
                    self.convert();
                    self.insert(m, max_intset)
                }
            },
            Set::Table(t) => m.with_bytes(|b| t.insert_with(b, || b.into())),
        }
    }

    /// Removes a member; false when it was not there.
    pub fn remove(&mut self, m: Member<'_>) -> bool {
        match self {
            Set::Ints(s) => m.as_int().is_some_and(|n| s.remove(n)),
            Set::Table(t) => m.with_bytes(|b| t.take(b).is_some()),
        }
    }

    fn convert(&mut self) {
        if let Set::Ints(s) = self {
            let mut t = Table::with_capacity(s.len() + 1);
            for i in 0..s.len() {
                let mut buf = itoa::Buffer::new();
                let m = buf.format(s.get(i)).as_bytes();
                t.insert_with(m, || m.into());
            }
            *self = Set::Table(Box::new(t));
        }
    }

    /// Every member: sorted for an intset, table order for a hashtable.
    pub fn iter(&self) -> impl Iterator<Item = Member<'_>> + '_ {
        let (ints, table) = match self {
            Set::Ints(s) => (Some(s), None),
            Set::Table(t) => (None, Some(t)),
        };
        let ints = ints
            .into_iter()
            .flat_map(|s| (0..s.len()).map(|i| Member::Int(s.get(i))));
        let table = table
            .into_iter()
            .flat_map(|t| t.iter().map(|b| Member::Bytes(b)));
        ints.chain(table)
    }

    /// A random member, or None when empty.
    pub fn random(&self, rng: &mut impl Rng) -> Option<Member<'_>> {
        match self {
            Set::Ints(s) if !s.is_empty() => Some(Member::Int(s.get(rng.gen_range(0..s.len())))),
            Set::Ints(_) => None,
            Set::Table(t) => t
                .random_slot(rng)
                .and_then(|i| t.slot(i))
                .map(|b| &**b)
                .map(Member::Bytes),
        }
    }

    /// Removes and returns a random member.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<Owned> {
        match self {
            Set::Ints(s) if !s.is_empty() => {
                let n = s.get(rng.gen_range(0..s.len()));
                s.remove(n);
                Some(Owned::Int(n))
            }
            Set::Ints(_) => None,
            Set::Table(t) => {
                let i = t.random_slot(rng)?;
                t.take_at(i).map(Owned::Bytes)
            }
        }
    }

    /// One SSCAN step of a hashtable at cursor `v`: calls `f` with every
    /// member whose home slot is `v` (modulo the table's size) and returns
    /// the next cursor, 0 when the scan is over. An intset has no cursor:
    /// it is returned whole (and the cursor becomes 0), as in Redis.
    pub fn scan_step<'s>(&'s self, v: u64, mut f: impl FnMut(Member<'s>)) -> u64 {
        match self {
            Set::Ints(_) => {
                self.iter().for_each(f);
                0
            }
            Set::Table(t) => t.scan_step(v, |b| f(Member::Bytes(b))),
        }
    }

    /// Allocations freeing this set costs (Redis's lazyfree effort).
    pub fn free_effort(&self) -> usize {
        match self {
            Set::Ints(_) => 1,
            Set::Table(t) => t.len(),
        }
    }
}

// ---------------------------------------------------------------------------
// intset
// ---------------------------------------------------------------------------

/// Sorted distinct integers, little-endian, all of the same width.
#[derive(Debug, Clone)]
pub struct IntSet {
    repr: IntRepr,
}

/// Three bytes of header and the payload inline fit in the 24 bytes the
/// heap form needs anyway, so the inline form costs nothing.
#[derive(Debug, Clone)]
enum IntRepr {
    Inline {
        width: u8,
        len: u8,
        buf: [u8; INLINE],
    },
    Heap {
        width: u8,
        buf: Box<[u8]>,
    },
}

impl Default for IntSet {
    fn default() -> Self {
        IntSet {
            repr: IntRepr::Inline {
                width: 2,
                len: 0,
                buf: [0; INLINE],
            },
        }
    }
}

/// The narrowest width (in bytes) that holds `n`, as intset's
/// `_intsetValueEncoding`.
fn width_of(n: i64) -> u8 {
    if i16::try_from(n).is_ok() {
        2
    } else if i32::try_from(n).is_ok() {
        4
    } else {
        8
    }
}

fn encode(n: i64, width: u8, out: &mut Vec<u8>) {
    match width {
        2 => out.extend_from_slice(&(n as i16).to_le_bytes()),
        4 => out.extend_from_slice(&(n as i32).to_le_bytes()),
        _ => out.extend_from_slice(&n.to_le_bytes()),
    }
}

fn decode(b: &[u8]) -> i64 {
    match *b {
        [a, b] => i16::from_le_bytes([a, b]) as i64,
        [a, b, c, d] => i32::from_le_bytes([a, b, c, d]) as i64,
        [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => 0,
    }
}

impl IntSet {
    /// (width, packed payload).
    fn parts(&self) -> (u8, &[u8]) {
        match &self.repr {
            IntRepr::Inline { width, len, buf } => {
                (*width, &buf[..*len as usize * *width as usize])
            }
            IntRepr::Heap { width, buf } => (*width, buf),
        }
    }

    fn from_parts(width: u8, data: Vec<u8>) -> IntSet {
        let repr = if data.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..data.len()].copy_from_slice(&data);
            IntRepr::Inline {
                width,
                len: (data.len() / width as usize) as u8,
                buf,
            }
        } else {
            IntRepr::Heap {
                width,
                buf: data.into_boxed_slice(),
            }
        };
        IntSet { repr }
    }

    pub fn len(&self) -> usize {
        let (w, d) = self.parts();
        d.len() / w as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The width in bytes every member is stored at.
    pub fn width(&self) -> u8 {
        self.parts().0
    }

    pub fn get(&self, i: usize) -> i64 {
        let (w, d) = self.parts();
        let w = w as usize;
        decode(&d[i * w..(i + 1) * w])
    }

    pub fn search(&self, n: i64) -> Result<usize, usize> {
        let (w, d) = self.parts();
        if width_of(n) > w {
            // Wider than every member: below or above all of them.
            return Err(if n < 0 { 0 } else { self.len() });
        }
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let v = decode(&d[mid * w as usize..(mid + 1) * w as usize]);
            match v.cmp(&n) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn insert(&mut self, n: i64) -> bool {
        let Err(pos) = self.search(n) else {
            return false;
        };
        let (w, _) = self.parts();
        let width = w.max(width_of(n));
        let len = self.len();
        let mut data = Vec::with_capacity((len + 1) * width as usize);
        for i in 0..pos {
            encode(self.get(i), width, &mut data);
        }
        encode(n, width, &mut data);
        for i in pos..len {
            encode(self.get(i), width, &mut data);
        }
        *self = IntSet::from_parts(width, data);
        true
    }

    /// Removes `n`; the width stays, as in Redis.
    pub fn remove(&mut self, n: i64) -> bool {
        let Ok(pos) = self.search(n) else {
            return false;
        };
        let (w, d) = self.parts();
        let at = pos * w as usize;
        let mut data = Vec::with_capacity(d.len() - w as usize);
        data.extend_from_slice(&d[..at]);
        data.extend_from_slice(&d[at + w as usize..]);
        *self = IntSet::from_parts(w, data);
        true
    }

    /// Bytes of Redis's serialized intset blob (8-byte header + payload).
    pub fn blob_len(&self) -> usize {
        8 + self.parts().1.len()
    }
}

// ---------------------------------------------------------------------------
// hashtable
// ---------------------------------------------------------------------------

/// The members of a big set.
pub type Table = Probe<Box<[u8]>>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn bytes_of(s: &Set) -> BTreeSet<Vec<u8>> {
        s.iter().map(|m| m.with_bytes(|b| b.to_vec())).collect()
    }

    #[test]
    fn sizes_stay_lean() {
        assert!(std::mem::size_of::<Set>() <= 24);
        // Every collection's Object is boxed in its entry: a list's
        // header (its node deque and length) sets the size now.
        assert!(std::mem::size_of::<crate::store::Object>() <= 48);
    }

    #[test]
    fn intset_widths_grow_and_stay_sorted() {
        let mut s = Set::default();
        for n in [5, -3, 1] {
            assert!(s.insert(Member::Int(n), 512));
        }
        let Set::Ints(i) = &s else { panic!() };
        assert_eq!(i.width(), 2);
        assert!(s.insert(Member::Bytes(b"70000"), 512));
        assert!(s.insert(Member::Int(i64::MIN), 512));
        assert!(!s.insert(Member::Bytes(b"70000"), 512));
        let Set::Ints(i) = &s else { panic!() };
        assert_eq!(i.width(), 8);
        let all: Vec<i64> = (0..i.len()).map(|k| i.get(k)).collect();
        assert_eq!(all, vec![i64::MIN, -3, 1, 5, 70000]);
        assert!(s.remove(Member::Int(i64::MIN)));
        assert_eq!(s.encoding(), "intset");
        assert!(s.contains(Member::Bytes(b"-3")));
        assert!(!s.contains(Member::Bytes(b"-03")));
    }

    #[test]
    fn converts_on_strings_and_length() {
        let mut s = Set::default();
        s.insert(Member::Int(1), 512);
        s.insert(Member::Bytes(b"a"), 512);
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(Member::Int(1)));
        let mut s = Set::default();
        for n in 0..3 {
            s.insert(Member::Int(n), 2);
        }
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn scan_returns_every_member_across_resizes() {
        let mut s = Set::Table(Box::default());
        for n in 0..1000 {
            s.insert(Member::Bytes(format!("m{n}").as_bytes()), 0);
        }
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        let mut steps = 0;
        loop {
            cursor = s.scan_step(cursor, |m| {
                seen.insert(m.with_bytes(|b| b.to_vec()));
            });
            steps += 1;
            // Grow then shrink mid-scan; members 0..500 stay throughout.
            if steps == 50 {
                for n in 1000..5000 {
                    s.insert(Member::Bytes(format!("m{n}").as_bytes()), 0);
                }
            }
            if steps == 400 {
                for n in 500..5000 {
                    s.remove(Member::Bytes(format!("m{n}").as_bytes()));
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for n in 0..500 {
            assert!(seen.contains(format!("m{n}").as_bytes()), "m{n} missed");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(Vec<u8>),
        Rem(Vec<u8>),
        Pop(u64),
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => (-40i64..40).prop_map(|n| n.to_string().into_bytes()),
            2 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            2 => (-40000i64..40000).prop_map(|n| n.to_string().into_bytes()),
            1 => "[a-c]{1,2}".prop_map(|s| s.into_bytes()),
            1 => Just(b"007".to_vec()),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => member().prop_map(Op::Add),
            3 => member().prop_map(Op::Rem),
            1 => any::<u64>().prop_map(Op::Pop),
        ]
    }

    proptest! {
        #[test]
        fn matches_a_btreeset(ops in proptest::collection::vec(op(), 0..400), max in 0usize..40) {
            use rand::SeedableRng;
            let mut s = Set::default();
            let mut model = BTreeSet::new();
            let mut was_table = false;
            for o in ops {
                match o {
                    Op::Add(m) => {
                        prop_assert_eq!(s.insert(Member::Bytes(&m), max), model.insert(m.clone()));
                    }
                    Op::Rem(m) => {
                        prop_assert_eq!(s.remove(Member::Bytes(&m)), model.remove(&m));
                    }
                    Op::Pop(seed) => {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                        match s.pop_random(&mut rng) {
                            Some(p) => {
                                let b = p.as_member().with_bytes(|b| b.to_vec());
                                prop_assert!(model.remove(&b));
                            }
                            None => prop_assert!(model.is_empty()),
                        }
                    }
                }
                prop_assert_eq!(s.len(), model.len());
                let ints = model.iter().all(|m| Member::Bytes(m).as_int().is_some());
                match &s {
                    Set::Ints(i) => {
                        prop_assert!(!was_table);
                        prop_assert!(ints && model.len() <= max);
                        let v: Vec<i64> = (0..i.len()).map(|k| i.get(k)).collect();
                        prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
                    }
                    Set::Table(_) => was_table = true,
                }
                for m in &model {
                    prop_assert!(s.contains(Member::Bytes(m)));
                }
            }
            prop_assert_eq!(bytes_of(&s), model);
        }
    }
}
