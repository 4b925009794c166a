//! Sorted sets: members ordered by (score, member bytes), with Redis 7.0's
//! two encodings.
//!
//! - `listpack`: one packed buffer of `[score f64 LE][varint len][member]`
//!   records kept in order; every operation is a linear scan, which is what
//!   Redis does for small sets and is the cheapest in memory.
//! - `skiplist` (the name OBJECT ENCODING prints): an order-statistic B+tree
//!   whose inner nodes keep each child's element count, so rank, select by
//!   rank and range bounds are O(log n), plus a hash index member -> element
//!   ([`Probe`]) for O(1) score lookups and ZSCAN's cursor.
//!
//! Memory: in the big encoding each member lives once, in one small block
//! holding its score and bytes ([`Elem`]); the tree leaves and the hash
//! index hold thin pointers to it (about 8 + 16..32 bytes per member beside
//! the block), where Redis spends a skiplist node, an sds and a dict entry.
//!
//! A set converts from listpack to skiplist when an insertion would pass
//! `zset-max-listpack-entries` or brings a member longer than
//! `zset-max-listpack-value`; like Redis, it never converts back on its
//! own ([`ZSet::shrink_if_small`] is for freshly built store results).
//!
//! Scores are never NaN (commands reject NaN before they get here), so the
//! order is total; -0 and 0 compare equal as in Redis.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cmp::Ordering;
use std::ptr::NonNull;

use super::probe::{Keyed, Probe};
use super::varint;

/// The conversion thresholds (Redis's `zset-max-listpack-*` directives).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

/// Orders two elements as Redis's skiplist does: by score, then by member
/// bytes (memcmp, a shorter prefix first).
pub fn cmp_elems(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2)
        .unwrap_or(Ordering::Equal)
        .then_with(|| m1.cmp(m2))
}

/// A sorted set in one of its two encodings.
#[derive(Debug, Clone)]
pub enum ZSet {
    Listpack(Packed),
    /// Boxed so that every value's `Object` stays small: the tree with
    /// its index is several words, and most sorted sets are small.
    Skiplist(Box<Tree>),
}

impl ZSet {
    /// An empty set in the encoding Redis's `zsetTypeCreate` picks for the
    /// expected number of members and longest member, its index sized for
    /// them (a dump's sorted set loads without a resize).
    pub fn with_hint(size: usize, value_len: usize, limits: Limits) -> ZSet {
        if size <= limits.max_entries && value_len <= limits.max_value {
            ZSet::Listpack(Packed::default())
        } else {
            ZSet::Skiplist(Box::new(Tree {
                root: None,
                index: Probe::with_capacity(size),
            }))
        }
    }

    /// An empty set in the big encoding, for results built before their
    /// size is known ([`shrink_if_small`](Self::shrink_if_small) converts
    /// them at the end when they are small).
    pub fn big() -> ZSet {
        ZSet::Skiplist(Box::default())
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Listpack(_) => "listpack",
            ZSet::Skiplist(_) => "skiplist",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ZSet::Listpack(p) => p.len,
            ZSet::Skiplist(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Listpack(p) => p.find(member).map(|(_, s, _)| s),
            ZSet::Skiplist(t) => t.score(member),
        }
    }

    /// Sets a member's score, adding it if absent; returns the previous
    /// score. Converts to the big encoding first when the addition would
    /// pass the limits.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: Limits) -> Option<f64> {
        if let ZSet::Listpack(p) = self {
            if let Some((off, old, _)) = p.find(member) {
                if old.to_bits() != score.to_bits() {
                    p.remove_at(off);
                    p.insert(member, score);
                }
                return Some(old);
            }
            if p.len < limits.max_entries && member.len() <= limits.max_value {
                p.insert(member, score);
                return None;
            }
            self.convert();
        }
        match self {
            ZSet::Skiplist(t) => t.insert(member, score),
            ZSet::Listpack(_) => None,
        }
    }

    /// Removes a member; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Listpack(p) => {
                let (off, score, _) = p.find(member)?;
                p.remove_at(off);
                Some(score)
            }
            ZSet::Skiplist(t) => t.remove(member),
        }
    }

    /// The 0-based ascending rank of a member, with its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match self {
            ZSet::Listpack(p) => {
                let (_, score, idx) = p.find(member)?;
                Some((idx, score))
            }
            ZSet::Skiplist(t) => t.rank(member),
        }
    }

    /// How many elements satisfy `before`, which must hold for a prefix of
    /// the order (a range bound); O(log n) in the big encoding.
    pub fn count_before(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Listpack(p) => {
                let mut n = 0;
                for (s, m) in p.iter() {
                    if !before(s, m) {
                        break;
                    }
                    n += 1;
                }
                n
            }
            ZSet::Skiplist(t) => t.count_before(&before),
        }
    }

    /// The element at an ascending rank.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match self {
            ZSet::Listpack(p) => p.iter().nth(rank).map(|(s, m)| (m, s)),
            ZSet::Skiplist(t) => t.select(rank).map(|e| (e.member(), e.score())),
        }
    }

    /// Calls `f` for the elements of ascending ranks `start..end`, from the
    /// last one down when `rev`.
    pub fn for_range(&self, start: usize, end: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let end = end.min(self.len());
        if start >= end {
            return;
        }
        match self {
            ZSet::Listpack(p) => {
                if rev {
                    let items: Vec<(f64, &[u8])> = p.iter().skip(start).take(end - start).collect();
                    for (s, m) in items.into_iter().rev() {
                        f(m, s);
                    }
                } else {
                    for (s, m) in p.iter().skip(start).take(end - start) {
                        f(m, s);
                    }
                }
            }
            ZSet::Skiplist(t) => t.visit(start, end, rev, &mut |e: &Elem| f(e.member(), e.score())),
        }
    }

    /// One ZSCAN call from `cursor`: a listpack set is returned whole with
    /// cursor 0, as Redis does; the big encoding's member index is walked
    /// with the reverse-binary cursor until `count` members are collected
    /// or `count * 10` home slots were visited. Returns the next cursor.
    /// The cursor names a place in the index, not a rank, so members that
    /// come and go do not make the walk skip others.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        let t = match self {
            ZSet::Listpack(p) => {
                for (s, m) in p.iter() {
                    f(m, s);
                }
                return 0;
            }
            ZSet::Skiplist(t) => t,
        };
        super::scan_call(cursor, count, |v| {
            let mut met = 0;
            let next = t.index.scan_step(v, |h| {
                met += 1;
                f(h.member(), h.score());
            });
            (next, met)
        })
    }

    /// Removes the elements of ascending ranks `start..end`; returns how
    /// many went.
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match self {
            ZSet::Listpack(p) => p.remove_ranks(start, end),
            ZSet::Skiplist(t) => {
                let mut members = Vec::with_capacity(end - start);
                t.visit(start, end, false, &mut |e: &Elem| {
                    members.push(e.member().to_vec())
                });
                for m in &members {
                    t.remove(m);
                }
                members.len()
            }
        }
    }

    /// Converts a freshly built set back to the small encoding when it fits
    /// (Redis's `zsetConvertToListpackIfNeeded`, used by the *STORE
    /// commands on their results).
    pub fn shrink_if_small(&mut self, limits: Limits) {
        let ZSet::Skiplist(t) = self else {
            return;
        };
        if t.len() > limits.max_entries {
            return;
        }
        let mut p = Packed::default();
        let mut fits = true;
        t.visit(0, t.len(), false, &mut |e: &Elem| {
            fits &= e.member().len() <= limits.max_value;
            p.push(e.member(), e.score());
        });
        if fits {
            *self = ZSet::Listpack(p);
        }
    }

    fn convert(&mut self) {
        let ZSet::Listpack(p) = self else {
            return;
        };
        let mut t = Box::<Tree>::default();
        for (s, m) in p.iter() {
            t.insert(m, s);
        }
        *self = ZSet::Skiplist(t);
    }
}

// ---------------------------------------------------------------------------
// listpack

/// The small encoding: records in order in one buffer.
#[derive(Debug, Clone, Default)]
pub struct Packed {
    buf: Vec<u8>,
    len: usize,
}

impl Packed {
    /// Reads the record at `off`: (score, member, next offset).
    fn at(&self, off: usize) -> (f64, &[u8], usize) {
        let mut s = [0u8; 8];
        s.copy_from_slice(&self.buf[off..off + 8]);
        let (n, used) = varint::get(&self.buf[off + 8..], 0);
        let start = off + 8 + used;
        (
            f64::from_le_bytes(s),
            &self.buf[start..start + n],
            start + n,
        )
    }

    fn iter(&self) -> impl Iterator<Item = (f64, &[u8])> + '_ {
        let mut off = 0;
        std::iter::from_fn(move || {
            if off >= self.buf.len() {
                return None;
            }
            let (s, m, next) = self.at(off);
            off = next;
            Some((s, m))
        })
    }

    /// (offset, score, index) of a member.
    fn find(&self, member: &[u8]) -> Option<(usize, f64, usize)> {
        let mut off = 0;
        let mut idx = 0;
        while off < self.buf.len() {
            let (s, m, next) = self.at(off);
            if m == member {
                return Some((off, s, idx));
            }
            off = next;
            idx += 1;
        }
        None
    }

    /// Redis writes listpack scores as text through `d2string`, which
    /// prints -0 as "0": the small encoding does not keep the sign of zero.
    fn packed_score(score: f64) -> f64 {
        if score == 0.0 {
            0.0
        } else {
            score
        }
    }

    fn record(member: &[u8], score: f64) -> Vec<u8> {
        let score = Self::packed_score(score);
        let mut rec = Vec::with_capacity(8 + varint::len(member.len()) + member.len());
        rec.extend_from_slice(&score.to_le_bytes());
        varint::put(&mut rec, member.len());
        rec.extend_from_slice(member);
        rec
    }

    /// Inserts a member known to be absent at its place in the order.
    fn insert(&mut self, member: &[u8], score: f64) {
        let score = Self::packed_score(score);
        let mut off = 0;
        while off < self.buf.len() {
            let (s, m, next) = self.at(off);
            if cmp_elems(s, m, score, member) == Ordering::Greater {
                break;
            }
            off = next;
        }
        let rec = Self::record(member, score);
        self.buf.splice(off..off, rec);
        self.len += 1;
    }

    /// Appends a member known to sort after every other.
    fn push(&mut self, member: &[u8], score: f64) {
        self.buf
            .extend_from_slice(&Self::packed_score(score).to_le_bytes());
        varint::put(&mut self.buf, member.len());
        self.buf.extend_from_slice(member);
        self.len += 1;
    }

    fn remove_at(&mut self, off: usize) {
        let (_, _, next) = self.at(off);
        self.buf.drain(off..next);
        self.len -= 1;
        if self.buf.capacity() > 2 * self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }

    fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let mut off = 0;
        let (mut from, mut to) = (0, 0);
        for idx in 0..end {
            if idx == start {
                from = off;
            }
            off = self.at(off).2;
            to = off;
        }
        self.buf.drain(from..to);
        self.len -= end - start;
        end - start
    }
}

// ---------------------------------------------------------------------------
// skiplist: elements, the order-statistic tree and the member index

/// One member with its score, in one heap block:
/// `[score f64 LE][varint len][member bytes]`. Owned by the tree leaf
/// that holds it; the member index holds non-owning [`Handle`]s.
struct Elem(NonNull<u8>);

// Safety: an Elem uniquely owns its block of plain bytes.
unsafe impl Send for Elem {}
unsafe impl Sync for Elem {}

impl Elem {
    fn new(member: &[u8], score: f64) -> Elem {
        let size = 8 + varint::len(member.len()) + member.len();
        let layout = Layout::from_size_align(size, 1)
            .unwrap_or_else(|_| handle_alloc_error(Layout::new::<u8>()));
        // Safety: size is at least 9; the block is filled completely below.
        unsafe {
            let p = alloc(layout);
            let Some(p) = NonNull::new(p) else {
                handle_alloc_error(layout)
            };
            let mut head = Vec::with_capacity(18);
            head.extend_from_slice(&score.to_le_bytes());
            varint::put(&mut head, member.len());
            std::ptr::copy_nonoverlapping(head.as_ptr(), p.as_ptr(), head.len());
            std::ptr::copy_nonoverlapping(
                member.as_ptr(),
                p.as_ptr().add(head.len()),
                member.len(),
            );
            Elem(p)
        }
    }

    fn handle(&self) -> Handle {
        Handle(self.0)
    }

    fn score(&self) -> f64 {
        self.handle().score()
    }

    fn member(&self) -> &[u8] {
        // Safety: the block lives as long as self.
        unsafe { self.handle().member_unbound() }
    }

    fn set_score(&mut self, score: f64) {
        // Safety: the first 8 bytes of the block are the score.
        unsafe {
            std::ptr::copy_nonoverlapping(score.to_le_bytes().as_ptr(), self.0.as_ptr(), 8);
        }
    }
}

impl Drop for Elem {
    fn drop(&mut self) {
        let len = self.member().len();
        let size = 8 + varint::len(len) + len;
        // Safety: same size and alignment as allocated in `new`.
        unsafe { dealloc(self.0.as_ptr(), Layout::from_size_align_unchecked(size, 1)) }
    }
}

/// A non-owning pointer to an [`Elem`]'s block, valid while the element is
/// in its tree. Its key is its member bytes ([`Keyed`]), so the index can
/// be searched with a `&[u8]`.
#[derive(Clone, Copy)]
struct Handle(NonNull<u8>);

// Safety: a Handle is only dereferenced while its Tree (which owns the
// element) is borrowed; the Tree is the unit of sharing.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Handle {
    fn score(&self) -> f64 {
        let mut b = [0u8; 8];
        // Safety: a live element block starts with its 8-byte score.
        unsafe { std::ptr::copy_nonoverlapping(self.0.as_ptr(), b.as_mut_ptr(), 8) };
        f64::from_le_bytes(b)
    }

    /// # Safety
    /// The element must outlive the returned slice.
    unsafe fn member_unbound<'a>(&self) -> &'a [u8] {
        let p = self.0.as_ptr().add(8);
        let mut n = 0usize;
        let mut i = 0;
        loop {
            let b = *p.add(i);
            n |= ((b & 0x7f) as usize) << (7 * i);
            i += 1;
            if b < 0x80 {
                break;
            }
        }
        std::slice::from_raw_parts(p.add(i), n)
    }

    fn member(&self) -> &[u8] {
        // Safety: handles are only used while their element is alive (see
        // the type's doc), and the slice borrows the handle.
        unsafe { self.member_unbound() }
    }
}

impl Keyed for Handle {
    fn key(&self) -> &[u8] {
        self.member()
    }
}

/// Elements per leaf at most; a leaf's vector holds one more while it is
/// being split, so its allocation is exactly 64 pointers.
const LEAF_MAX: usize = 63;
/// Children per inner node at most.
const INNER_MAX: usize = 31;

enum Node {
    Leaf(Vec<Elem>),
    Inner(Vec<Kid>),
}

/// A child of an inner node, with its element count and its first
/// element (the separator searches compare with).
struct Kid {
    node: Box<Node>,
    count: usize,
    first: Handle,
}

/// The big encoding: the tree plus the member index.
#[derive(Default)]
pub struct Tree {
    root: Option<Box<Node>>,
    index: Probe<Handle>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree({} members)", self.len())
    }
}

impl Clone for Tree {
    fn clone(&self) -> Tree {
        let mut t = Tree::default();
        self.visit(0, usize::MAX, false, &mut |e: &Elem| {
            t.insert(e.member(), e.score());
        });
        t
    }
}

impl Node {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(kids) => kids.iter().map(|k| k.count).sum(),
        }
    }

    fn first(&self) -> Handle {
        match self {
            Node::Leaf(v) => v[0].handle(),
            Node::Inner(kids) => kids[0].first,
        }
    }

    /// The child whose range holds (score, member): the last one whose
    /// first element is not greater.
    fn child_for(kids: &[Kid], score: f64, member: &[u8]) -> usize {
        kids.partition_point(|k| {
            cmp_elems(k.first.score(), k.first.member(), score, member) != Ordering::Greater
        })
        .saturating_sub(1)
    }

    /// Inserts an element known to be absent; returns the right half when
    /// the node had to split.
    fn insert(&mut self, elem: Elem) -> Option<Box<Node>> {
        match self {
            Node::Leaf(v) => {
                let (s, m) = (elem.score(), elem.member());
                let pos =
                    v.partition_point(|e| cmp_elems(e.score(), e.member(), s, m) == Ordering::Less);
                v.insert(pos, elem);
                if v.len() <= LEAF_MAX {
                    return None;
                }
                // Appends (ZADD with growing scores) keep the left leaf full.
                let at = if pos == v.len() - 1 {
                    LEAF_MAX
                } else {
                    v.len() / 2
                };
                let mut right = Vec::with_capacity(LEAF_MAX + 1);
                right.extend(v.drain(at..));
                Some(Box::new(Node::Leaf(right)))
            }
            Node::Inner(kids) => {
                let (s, m) = (elem.score(), elem.member());
                let i = Self::child_for(kids, s, m);
                let kid = &mut kids[i];
                kid.count += 1;
                let split = kid.node.insert(elem);
                kid.first = kid.node.first();
                if let Some(right) = split {
                    let rc = right.len();
                    kid.count -= rc;
                    let first = right.first();
                    kids.insert(
                        i + 1,
                        Kid {
                            node: right,
                            count: rc,
                            first,
                        },
                    );
                }
                if kids.len() <= INNER_MAX {
                    return None;
                }
                let at = if i + 2 == kids.len() {
                    INNER_MAX
                } else {
                    kids.len() / 2
                };
                let mut right = Vec::with_capacity(INNER_MAX + 1);
                right.extend(kids.drain(at..));
                Some(Box::new(Node::Inner(right)))
            }
        }
    }

    /// Removes the element (score, member); returns it.
    fn remove(&mut self, score: f64, member: &[u8]) -> Option<Elem> {
        match self {
            Node::Leaf(v) => {
                let pos = v
                    .binary_search_by(|e| cmp_elems(e.score(), e.member(), score, member))
                    .ok()?;
                Some(v.remove(pos))
            }
            Node::Inner(kids) => {
                let i = Self::child_for(kids, score, member);
                let gone = kids[i].node.remove(score, member)?;
                kids[i].count -= 1;
                if kids[i].count == 0 {
                    kids.remove(i);
                    return Some(gone);
                }
                kids[i].first = kids[i].node.first();
                Self::rebalance(kids, i);
                Some(gone)
            }
        }
    }

    /// Merges a child that has become small into a neighbour when both fit
    /// in one node, so the tree stays reasonably full after deletions.
    fn rebalance(kids: &mut Vec<Kid>, i: usize) {
        let max = match *kids[i].node {
            Node::Leaf(_) => LEAF_MAX,
            Node::Inner(_) => INNER_MAX,
        };
        let small = |k: &Kid| match &*k.node {
            Node::Leaf(v) => v.len(),
            Node::Inner(c) => c.len(),
        };
        if small(&kids[i]) > max / 4 {
            return;
        }
        let j = if i + 1 < kids.len() && small(&kids[i]) + small(&kids[i + 1]) <= max {
            i + 1
        } else if i > 0 && small(&kids[i - 1]) + small(&kids[i]) <= max {
            i
        } else {
            return;
        };
        // Merge kids[j] into kids[j - 1].
        let right = kids.remove(j);
        let left = &mut kids[j - 1];
        left.count += right.count;
        match (&mut *left.node, *right.node) {
            (Node::Leaf(a), Node::Leaf(b)) => a.extend(b),
            (Node::Inner(a), Node::Inner(b)) => a.extend(b),
            _ => {}
        }
        left.first = left.node.first();
    }

    /// Elements before the first one failing `before`.
    fn count_before(&self, before: &dyn Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            Node::Leaf(v) => v.partition_point(|e| before(e.score(), e.member())),
            Node::Inner(kids) => {
                let k = kids.partition_point(|k| before(k.first.score(), k.first.member()));
                if k == 0 {
                    return 0;
                }
                let skipped: usize = kids[..k - 1].iter().map(|k| k.count).sum();
                skipped + kids[k - 1].node.count_before(before)
            }
        }
    }

    fn select(&self, mut rank: usize) -> Option<&Elem> {
        match self {
            Node::Leaf(v) => v.get(rank),
            Node::Inner(kids) => {
                for k in kids {
                    if rank < k.count {
                        return k.node.select(rank);
                    }
                    rank -= k.count;
                }
                None
            }
        }
    }

    /// Visits the elements of ranks `start..end` of this subtree.
    fn visit(&self, start: usize, end: usize, rev: bool, f: &mut dyn FnMut(&Elem)) {
        match self {
            Node::Leaf(v) => {
                let end = end.min(v.len());
                if start >= end {
                    return;
                }
                if rev {
                    v[start..end].iter().rev().for_each(f);
                } else {
                    v[start..end].iter().for_each(f);
                }
            }
            Node::Inner(kids) => {
                let mut spans = Vec::with_capacity(kids.len());
                let mut base = 0usize;
                for k in kids {
                    let (lo, hi) = (base, base + k.count);
                    base = hi;
                    if hi <= start || lo >= end {
                        continue;
                    }
                    spans.push((k, start.saturating_sub(lo), end.min(hi) - lo));
                }
                if rev {
                    spans.reverse();
                }
                for (k, s, e) in spans {
                    k.node.visit(s, e, rev, f);
                }
            }
        }
    }
}

impl Tree {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        self.index.get(member).map(|h| h.score())
    }

    fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let mut new = None;
        let (&h, _) = self.index.get_or_insert_with(member, || {
            let e = Elem::new(member, score);
            let h = e.handle();
            new = Some(e);
            h
        });
        if let Some(e) = new {
            self.put(e);
            return None;
        }
        let old = h.score();
        if old.to_bits() != score.to_bits() {
            // Re-placed in the order; the block keeps its address, so the
            // index entry stays valid.
            if let Some(mut e) = self.root.as_mut().and_then(|r| r.remove(old, member)) {
                e.set_score(score);
                self.put(e);
            }
        }
        Some(old)
    }

    fn put(&mut self, e: Elem) {
        match &mut self.root {
            None => {
                let mut v = Vec::with_capacity(LEAF_MAX + 1);
                v.push(e);
                self.root = Some(Box::new(Node::Leaf(v)));
            }
            Some(root) => {
                if let Some(right) = root.insert(e) {
                    let Some(left) = self.root.take() else {
                        return;
                    };
                    let kid = |node: Box<Node>| Kid {
                        count: node.len(),
                        first: node.first(),
                        node,
                    };
                    self.root = Some(Box::new(Node::Inner(vec![kid(left), kid(right)])));
                }
            }
        }
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let h = self.index.take(member)?;
        let score = h.score();
        let root = self.root.as_mut()?;
        let gone = root.remove(score, member);
        // Shrink the tree when the root is left with one child or nothing.
        loop {
            match self.root.as_deref_mut() {
                Some(Node::Inner(kids)) if kids.len() == 1 => {
                    self.root = kids.pop().map(|k| k.node);
                }
                Some(Node::Inner(kids)) if kids.is_empty() => self.root = None,
                Some(Node::Leaf(v)) if v.is_empty() => self.root = None,
                _ => break,
            }
        }
        drop(gone);
        Some(score)
    }

    fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let h = self.index.get(member)?;
        let score = h.score();
        let rank = self.count_before(&|s, m| cmp_elems(s, m, score, member) == Ordering::Less);
        Some((rank, score))
    }

    fn count_before(&self, before: &dyn Fn(f64, &[u8]) -> bool) -> usize {
        self.root.as_ref().map_or(0, |r| r.count_before(before))
    }

    fn select(&self, rank: usize) -> Option<&Elem> {
        self.root.as_ref()?.select(rank)
    }

    fn visit(&self, start: usize, end: usize, rev: bool, f: &mut dyn FnMut(&Elem)) {
        if let Some(root) = &self.root {
            root.visit(start, end, rev, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    const LIMITS: Limits = Limits {
        max_entries: 128,
        max_value: 64,
    };

    fn members(z: &ZSet) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        z.for_range(0, z.len(), false, |m, s| out.push((m.to_vec(), s)));
        out
    }

    #[test]
    fn converts_past_the_entry_limit_and_keeps_order() {
        let mut z = ZSet::with_hint(0, 0, LIMITS);
        for i in 0..200u32 {
            z.insert(format!("m{i}").as_bytes(), (i % 7) as f64, LIMITS);
            let want = if i < 128 { "listpack" } else { "skiplist" };
            assert_eq!(z.encoding(), want, "after {i}");
        }
        let all = members(&z);
        assert_eq!(all.len(), 200);
        for w in all.windows(2) {
            assert_eq!(cmp_elems(w[0].1, &w[0].0, w[1].1, &w[1].0), Ordering::Less);
        }
    }

    proptest! {
        /// ZSCAN's guarantee: a full scan returns every member present
        /// throughout it, while members come and go between calls (in
        /// batches that make the index grow and shrink) and scores change.
        #[test]
        fn scan_meets_every_member_present_throughout(
            stable in 130u32..600,
            changes in proptest::collection::vec((0u32..400, any::<bool>()), 1..80),
            count in 1usize..20,
        ) {
            let mut z = ZSet::with_hint(0, 0, LIMITS);
            for i in 0..stable {
                z.insert(format!("s{i}").as_bytes(), f64::from(i), LIMITS);
            }
            let mut others = Vec::new();
            let mut next = 0u32;
            let mut changes = changes.into_iter();
            let mut seen = BTreeSet::new();
            let mut cursor = 0;
            loop {
                cursor = z.scan(cursor, count, |m, _| {
                    seen.insert(m.to_vec());
                });
                match changes.next() {
                    Some((n, true)) => {
                        for _ in 0..n {
                            let m = format!("o{next}").into_bytes();
                            next += 1;
                            // Low scores: they rank before every stable member.
                            z.insert(&m, -f64::from(next), LIMITS);
                            others.push(m);
                        }
                        z.insert(format!("s{n}").as_bytes(), 1e9, LIMITS);
                    }
                    Some((n, false)) => {
                        for m in others.drain(others.len().saturating_sub(n as usize)..) {
                            z.remove(&m);
                        }
                        z.insert(format!("s{n}").as_bytes(), -1e9, LIMITS);
                    }
                    None => {}
                }
                if cursor == 0 {
                    break;
                }
            }
            for i in 0..stable {
                let m = format!("s{i}").into_bytes();
                prop_assert!(seen.contains(&m), "s{} was never met", i);
            }
        }
    }

    #[test]
    fn long_member_converts() {
        let mut z = ZSet::with_hint(0, 0, LIMITS);
        z.insert(b"a", 1.0, LIMITS);
        z.insert(&[b'x'; 64], 1.0, LIMITS);
        assert_eq!(z.encoding(), "listpack");
        z.insert(&[b'x'; 65], 1.0, LIMITS);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.len(), 3);
    }

    #[test]
    fn big_sequential_tree_ranks() {
        let mut z = ZSet::with_hint(1000, 0, LIMITS);
        for i in 0..20_000u32 {
            z.insert(format!("m:{i}").as_bytes(), i as f64, LIMITS);
        }
        assert_eq!(z.rank(b"m:12345"), Some((12345, 12345.0)));
        assert_eq!(
            z.get(19_999).map(|(m, _)| m.to_vec()),
            Some(b"m:19999".to_vec())
        );
        assert_eq!(z.count_before(|s, _| s < 500.0), 500);
        assert_eq!(z.remove_range(100, 19_900), 19_800);
        assert_eq!(z.len(), 200);
        assert_eq!(z.rank(b"m:19950"), Some((150, 19950.0)));
        let clone = z.clone();
        assert_eq!(members(&clone), members(&z));
        z.shrink_if_small(LIMITS);
        assert_eq!(z.encoding(), "skiplist");
        z.remove_range(0, 100);
        z.shrink_if_small(LIMITS);
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(members(&z), members(&clone)[100..].to_vec());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, i8),
        Rem(u8),
        RemRange(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<u8>(), -20i8..20).prop_map(|(m, s)| Op::Add(m, s)),
            2 => any::<u8>().prop_map(Op::Rem),
            1 => (any::<u8>(), 0u8..8).prop_map(|(a, n)| Op::RemRange(a, n)),
        ]
    }

    fn member_name(m: u8) -> Vec<u8> {
        // Some long names, so the value limit is crossed too.
        if m.is_multiple_of(61) {
            vec![b'L'; 60 + (m as usize % 10)]
        } else {
            format!("m{m}").into_bytes()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(op(), 1..600), small in any::<bool>()) {
            let limits = if small { Limits { max_entries: 4, max_value: 64 } } else { LIMITS };
            let mut z = ZSet::with_hint(0, 0, limits);
            let mut order: BTreeSet<(OrdScore, Vec<u8>)> = BTreeSet::new();
            let mut scores: HashMap<Vec<u8>, f64> = HashMap::new();
            for op in ops {
                match op {
                    Op::Add(m, s) => {
                        let m = member_name(m);
                        let s = s as f64 / 2.0;
                        let old = scores.insert(m.clone(), s);
                        if let Some(o) = old {
                            order.remove(&(OrdScore(o), m.clone()));
                        }
                        order.insert((OrdScore(s), m.clone()));
                        prop_assert_eq!(z.insert(&m, s, limits), old);
                    }
                    Op::Rem(m) => {
                        let m = member_name(m);
                        let old = scores.remove(&m);
                        if let Some(o) = old {
                            order.remove(&(OrdScore(o), m.clone()));
                        }
                        prop_assert_eq!(z.remove(&m), old);
                    }
                    Op::RemRange(a, n) => {
                        let start = a as usize % (order.len() + 1);
                        let end = start + n as usize;
                        let gone: Vec<_> = order.iter().skip(start).take(n as usize).cloned().collect();
                        for g in &gone {
                            order.remove(g);
                            scores.remove(&g.1);
                        }
                        prop_assert_eq!(z.remove_range(start, end), gone.len());
                    }
                }
                prop_assert_eq!(z.len(), order.len());
            }
            let want: Vec<(Vec<u8>, f64)> = order.iter().map(|(s, m)| (m.clone(), s.0)).collect();
            prop_assert_eq!(members(&z), want.clone());
            let mut rev = Vec::new();
            z.for_range(0, z.len(), true, |m, s| rev.push((m.to_vec(), s)));
            rev.reverse();
            prop_assert_eq!(&rev, &want);
            for (i, (m, s)) in want.iter().enumerate() {
                prop_assert_eq!(z.rank(m), Some((i, *s)));
                prop_assert_eq!(z.score(m), Some(*s));
                prop_assert_eq!(z.get(i).map(|(m, s)| (m.to_vec(), s)), Some((m.clone(), *s)));
            }
            for bound in -11..11 {
                let b = bound as f64;
                let n = want.iter().filter(|(_, s)| *s < b).count();
                prop_assert_eq!(z.count_before(|s, _| s < b), n);
            }
            if want.len() > 3 {
                let mut part = Vec::new();
                z.for_range(1, want.len() - 1, true, |m, s| part.push((m.to_vec(), s)));
                part.reverse();
                prop_assert_eq!(&part[..], &want[1..want.len() - 1]);
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct OrdScore(f64);
    impl Eq for OrdScore {}
    impl PartialOrd for OrdScore {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for OrdScore {
        fn cmp(&self, o: &Self) -> Ordering {
            self.0.partial_cmp(&o.0).unwrap_or(Ordering::Equal)
        }
    }
}
