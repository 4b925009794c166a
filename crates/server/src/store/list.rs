//! The list type: a chain of packed nodes (Redis's quicklist idea).
//!
//! A [`List`] is a deque of [`Node`]s; each node packs its elements into
//! one byte buffer, so a list of small elements costs a few bytes per
//! element instead of an allocation each. Every element is written as
//!
//! ```text
//! varint(len)  bytes  backlen
//! ```
//!
//! where `backlen` is `varint(len)` with its bytes reversed, so a node can
//! be walked from either end (listpack's trick): pushes and pops at both
//! ends touch one node and are O(1) in the list's length, bounded by the
//! node size. How full a node may get is decided by
//! `list-max-listpack-size` (the `fill` argument), with Redis's meaning:
//! negative values cap a node's bytes (-1 = 4 KB ... -5 = 64 KB), positive
//! values cap its element count (and 8 KB as a safety limit).
//!
//! Invariants: no node is empty; `len` is the sum of the node counts.
//! Operations take positions already resolved by the caller (the command
//! layer owns Redis's negative-index rules) and never panic on them: an
//! index past the end is reported, not indexed.

use super::varint;
use std::collections::VecDeque;

/// The ends of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

/// Node byte limits for fill -1 ... -5 (Redis's `optimization_level`).
const SIZE_LIMITS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// The byte cap of a node whose fill is an element count.
const SAFETY_LIMIT: usize = 8192;

/// The bytes one element takes in a node.
fn entry_size(item_len: usize) -> usize {
    2 * varint::len(item_len) + item_len
}

fn put_backlen(out: &mut Vec<u8>, n: usize) {
    let start = out.len();
    varint::put(out, n);
    out[start..].reverse();
}

/// Reads the backlen that ends at `end`: (value, where it starts).
fn get_backlen(buf: &[u8], mut end: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        end -= 1;
        let b = buf[end];
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return (n, end);
        }
        shift += 7;
    }
}

/// Packed elements: at most `fill` allows, never empty inside a [`List`].
#[derive(Clone, Debug, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
}

impl Node {
    fn from_items<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Node {
        let mut n = Node::default();
        for it in items {
            n.push_back(it);
        }
        n
    }

    /// The element starting at byte `at`, and where the next one starts.
    fn at(&self, at: usize) -> (&[u8], usize) {
        let (len, data) = varint::get(&self.buf, at);
        (&self.buf[data..data + len], data + len + varint::len(len))
    }

    /// The element ending at byte `end`, and where it starts.
    fn before(&self, end: usize) -> (&[u8], usize) {
        let (len, back) = get_backlen(&self.buf, end);
        let data = back - len;
        (&self.buf[data..back], data - varint::len(len))
    }

    /// Byte offset of element `i` (< count), walking from the nearer end.
    fn offset_of(&self, i: usize) -> usize {
        let count = self.count as usize;
        if i <= count / 2 {
            let mut at = 0;
            for _ in 0..i {
                at = self.at(at).1;
            }
            at
        } else {
            let mut at = self.buf.len();
            for _ in i..count {
                at = self.before(at).1;
            }
            at
        }
    }

    fn encode(item: &[u8]) -> Vec<u8> {
        let mut e = Vec::with_capacity(entry_size(item.len()));
        varint::put(&mut e, item.len());
        e.extend_from_slice(item);
        put_backlen(&mut e, item.len());
        e
    }

    fn push_back(&mut self, item: &[u8]) {
        self.buf.reserve(entry_size(item.len()));
        varint::put(&mut self.buf, item.len());
        self.buf.extend_from_slice(item);
        put_backlen(&mut self.buf, item.len());
        self.count += 1;
    }

    fn insert_at(&mut self, offset: usize, item: &[u8]) {
        let e = Node::encode(item);
        self.buf.splice(offset..offset, e);
        self.count += 1;
    }

    /// Removes the element at byte `offset`, returning it.
    fn remove_at(&mut self, offset: usize) -> Vec<u8> {
        let (item, next) = self.at(offset);
        let item = item.to_vec();
        self.buf.drain(offset..next);
        self.count -= 1;
        item
    }

    fn pop_back(&mut self) -> Vec<u8> {
        let (item, start) = self.before(self.buf.len());
        let item = item.to_vec();
        self.buf.truncate(start);
        self.count -= 1;
        item
    }

    fn items(&self) -> NodeIter<'_> {
        NodeIter {
            node: self,
            front: 0,
            back: self.buf.len(),
        }
    }

    /// Splits off the elements from index `i` on into a new node.
    fn split_off(&mut self, i: usize) -> Node {
        let at = self.offset_of(i);
        let tail = Node {
            buf: self.buf.split_off(at),
            count: self.count - i as u32,
        };
        self.count = i as u32;
        self.buf.shrink_to_fit();
        tail
    }

    /// Whether a node of `size` bytes and `count` elements is within `fill`.
    fn fits(size: usize, count: usize, fill: i32) -> bool {
        if fill < 0 {
            let level = (fill.unsigned_abs() as usize).min(SIZE_LIMITS.len()) - 1;
            return size <= SIZE_LIMITS[level];
        }
        size <= SAFETY_LIMIT && count <= fill as usize
    }

    /// Whether one more element of `item_len` bytes may join this node.
    fn room_for(&self, item_len: usize, fill: i32) -> bool {
        Node::fits(
            self.buf.len() + entry_size(item_len),
            self.count as usize + 1,
            fill,
        )
    }
}

/// The elements of one node, from either end.
struct NodeIter<'a> {
    node: &'a Node,
    front: usize,
    back: usize,
}

impl<'a> Iterator for NodeIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (item, next) = self.node.at(self.front);
        self.front = next;
        Some(item)
    }
}

impl DoubleEndedIterator for NodeIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        let (item, start) = self.node.before(self.back);
        self.back = start;
        Some(item)
    }
}

/// A list value (Redis's quicklist; OBJECT ENCODING says "quicklist").
#[derive(Clone, Debug, Default)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of packed nodes (what freeing the list costs).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes of packed element data, headers excluded.
    pub fn packed_bytes(&self) -> usize {
        self.nodes.iter().map(|n| n.buf.len()).sum()
    }

    /// Adds a node at the front or back; a one-node list gets a one-slot
    /// deque so that small lists carry no spare capacity.
    fn add_node(&mut self, end: End, node: Node) {
        if self.nodes.capacity() == 0 {
            self.nodes.reserve_exact(1);
        }
        match end {
            End::Head => self.nodes.push_front(node),
            End::Tail => self.nodes.push_back(node),
        }
    }

    pub fn push(&mut self, end: End, item: &[u8], fill: i32) {
        let node = match end {
            End::Head => self.nodes.front_mut(),
            End::Tail => self.nodes.back_mut(),
        };
        match node {
            Some(n) if n.room_for(item.len(), fill) => match end {
                End::Head => n.insert_at(0, item),
                End::Tail => n.push_back(item),
            },
            _ => self.add_node(end, Node::from_items([item])),
        }
        self.len += 1;
    }

    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        let node = match end {
            End::Head => self.nodes.front_mut()?,
            End::Tail => self.nodes.back_mut()?,
        };
        let item = match end {
            End::Head => node.remove_at(0),
            End::Tail => node.pop_back(),
        };
        if node.count == 0 {
            match end {
                End::Head => self.nodes.pop_front(),
                End::Tail => self.nodes.pop_back(),
            };
        }
        self.len -= 1;
        Some(item)
    }

    /// The node holding element `index` and the element's index in it,
    /// counting from the nearer end of the list.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut skip = index;
            for (i, n) in self.nodes.iter().enumerate() {
                if skip < n.count as usize {
                    return Some((i, skip));
                }
                skip -= n.count as usize;
            }
        } else {
            let mut from_end = self.len - 1 - index;
            for (i, n) in self.nodes.iter().enumerate().rev() {
                let c = n.count as usize;
                if from_end < c {
                    return Some((i, c - 1 - from_end));
                }
                from_end -= c;
            }
        }
        None
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (n, i) = self.locate(index)?;
        let node = &self.nodes[n];
        Some(node.at(node.offset_of(i)).0)
    }

    /// Replaces element `index`; false when there is none.
    pub fn set(&mut self, index: usize, item: &[u8], fill: i32) -> bool {
        let Some((n, i)) = self.locate(index) else {
            return false;
        };
        let node = &mut self.nodes[n];
        let at = node.offset_of(i);
        let next = node.at(at).1;
        node.buf.splice(at..next, Node::encode(item));
        if node.count > 1 && !Node::fits(node.buf.len(), node.count as usize, fill) {
            // The new element no longer fits beside the others: it moves to a
            // node of its own, between the elements before and after it.
            let mut tail = node.split_off(i);
            let rest = tail.split_off(1);
            let mut at = n + 1;
            if node.count == 0 {
                self.nodes.remove(n);
                at = n;
            }
            self.nodes.insert(at, tail);
            if rest.count > 0 {
                self.nodes.insert(at + 1, rest);
            }
        }
        true
    }

    /// Inserts `item` so that it becomes element `index` (`index == len`
    /// appends). Returns false when `index` is past the end.
    pub fn insert(&mut self, index: usize, item: &[u8], fill: i32) -> bool {
        if index == 0 {
            self.push(End::Head, item, fill);
            return true;
        }
        if index == self.len {
            self.push(End::Tail, item, fill);
            return true;
        }
        let Some((n, i)) = self.locate(index) else {
            return false;
        };
        let node = &mut self.nodes[n];
        if node.room_for(item.len(), fill) {
            let at = node.offset_of(i);
            node.insert_at(at, item);
        } else if i == 0 && n > 0 && self.nodes[n - 1].room_for(item.len(), fill) {
            self.nodes[n - 1].push_back(item);
        } else {
            // A full node splits at the insertion point; the element ends
            // the first half when it fits there, else gets a node between.
            let tail = self.nodes[n].split_off(i);
            let mut at = n + 1;
            if self.nodes[n].count == 0 {
                self.nodes.remove(n);
                at = n;
            }
            if at > 0 && self.nodes[at - 1].room_for(item.len(), fill) {
                self.nodes[at - 1].push_back(item);
            } else {
                self.nodes.insert(at, Node::from_items([item]));
                at += 1;
            }
            self.nodes.insert(at, tail);
        }
        self.len += 1;
        true
    }

    /// All elements from the head.
    pub fn iter(&self) -> Iter<'_> {
        self.range(0, self.len)
    }

    /// `count` elements starting at element `start` (both clamped to the
    /// list), iterable from either end.
    pub fn range(&self, start: usize, count: usize) -> Iter<'_> {
        let count = count.min(self.len.saturating_sub(start));
        let mut it = Iter {
            nodes: &self.nodes,
            front: (0, 0),
            back: (0, 0),
            left: count,
        };
        if count == 0 {
            return it;
        }
        if let (Some((fnode, fi)), Some((bnode, bi))) =
            (self.locate(start), self.locate(start + count - 1))
        {
            let f = &self.nodes[fnode];
            let b = &self.nodes[bnode];
            it.front = (fnode, f.offset_of(fi));
            it.back = (bnode, b.at(b.offset_of(bi)).1);
        } else {
            it.left = 0;
        }
        it
    }

    /// Removes up to `limit` elements equal to `item` (all when `limit` is
    /// 0), scanning from `from`. Returns how many went.
    pub fn remove_matching(&mut self, item: &[u8], limit: usize, from: End, fill: i32) -> usize {
        let mut removed = 0;
        let order: Vec<usize> = match from {
            End::Head => (0..self.nodes.len()).collect(),
            End::Tail => (0..self.nodes.len()).rev().collect(),
        };
        for n in order {
            if limit != 0 && removed == limit {
                break;
            }
            let node = &self.nodes[n];
            let matches = node.items().filter(|e| *e == item).count();
            if matches == 0 {
                continue;
            }
            let room = if limit == 0 {
                matches
            } else {
                matches.min(limit - removed)
            };
            // Rebuild the node without the first `room` matches seen from
            // the scanning end.
            let kept: Vec<&[u8]> = match from {
                End::Head => {
                    let mut skip = room;
                    node.items()
                        .filter(|e| {
                            if skip > 0 && *e == item {
                                skip -= 1;
                                false
                            } else {
                                true
                            }
                        })
                        .collect()
                }
                End::Tail => {
                    let mut skip = room;
                    let mut v: Vec<&[u8]> = node
                        .items()
                        .rev()
                        .filter(|e| {
                            if skip > 0 && *e == item {
                                skip -= 1;
                                false
                            } else {
                                true
                            }
                        })
                        .collect();
                    v.reverse();
                    v
                }
            };
            let rebuilt = Node::from_items(kept);
            self.nodes[n] = rebuilt;
            removed += room;
        }
        self.len -= removed;
        if removed > 0 {
            self.merge_nodes(fill);
        }
        removed
    }

    /// Drops emptied nodes and joins neighbours that fit together, after
    /// removals that may leave many small nodes behind.
    fn merge_nodes(&mut self, fill: i32) {
        let mut merged: VecDeque<Node> = VecDeque::with_capacity(self.nodes.len());
        for node in self.nodes.drain(..) {
            if node.count == 0 {
                continue;
            }
            match merged.back_mut() {
                Some(last)
                    if Node::fits(
                        last.buf.len() + node.buf.len(),
                        (last.count + node.count) as usize,
                        fill,
                    ) =>
                {
                    last.buf.extend_from_slice(&node.buf);
                    last.count += node.count;
                }
                _ => merged.push_back(node),
            }
        }
        merged.shrink_to_fit();
        self.nodes = merged;
    }

    /// Removes `count` elements from one end.
    pub fn remove_end(&mut self, end: End, count: usize) {
        let mut left = count.min(self.len);
        self.len -= left;
        while left > 0 {
            let node = match end {
                End::Head => self.nodes.front_mut(),
                End::Tail => self.nodes.back_mut(),
            };
            let Some(node) = node else { return };
            let c = node.count as usize;
            if c <= left {
                left -= c;
                match end {
                    End::Head => self.nodes.pop_front(),
                    End::Tail => self.nodes.pop_back(),
                };
                continue;
            }
            match end {
                End::Head => {
                    let at = node.offset_of(left);
                    node.buf.drain(..at);
                }
                End::Tail => {
                    let at = node.offset_of(c - left);
                    node.buf.truncate(at);
                }
            }
            node.count -= left as u32;
            node.buf.shrink_to_fit();
            left = 0;
        }
    }
}

/// Elements of a list range, from either end.
pub struct Iter<'a> {
    nodes: &'a VecDeque<Node>,
    /// (node, byte offset of the next element from the front).
    front: (usize, usize),
    /// (node, byte offset just past the next element from the back).
    back: (usize, usize),
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let nodes = self.nodes;
        while self.front.1 >= nodes.get(self.front.0)?.buf.len() {
            self.front = (self.front.0 + 1, 0);
        }
        let (item, next) = nodes.get(self.front.0)?.at(self.front.1);
        self.front.1 = next;
        self.left -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let nodes = self.nodes;
        while self.back.1 == 0 {
            let prev = self.back.0.checked_sub(1)?;
            self.back = (prev, nodes.get(prev)?.buf.len());
        }
        let (item, start) = nodes.get(self.back.0)?.before(self.back.1);
        self.back.1 = start;
        self.left -= 1;
        Some(item)
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_invariants(l: &List, fill: i32) {
        let mut total = 0;
        for n in &l.nodes {
            assert!(n.count > 0, "empty node");
            assert_eq!(n.items().count(), n.count as usize);
            if n.count > 1 {
                assert!(
                    Node::fits(n.buf.len(), n.count as usize, fill),
                    "node over its fill: {} bytes, {} items",
                    n.buf.len(),
                    n.count
                );
            }
            total += n.count as usize;
        }
        assert_eq!(total, l.len);
    }

    fn contents(l: &List) -> Vec<Vec<u8>> {
        l.iter().map(|e| e.to_vec()).collect()
    }

    #[test]
    fn pushes_and_pops_at_both_ends() {
        let mut l = List::new();
        for i in 0..1000u32 {
            l.push(End::Tail, i.to_string().as_bytes(), 4);
            l.push(End::Head, format!("h{i}").as_bytes(), 4);
        }
        check_invariants(&l, 4);
        assert_eq!(l.len(), 2000);
        assert_eq!(l.get(0), Some(&b"h999"[..]));
        assert_eq!(l.get(1999), Some(&b"999"[..]));
        assert_eq!(l.pop(End::Tail).as_deref(), Some(&b"999"[..]));
        assert_eq!(l.pop(End::Head).as_deref(), Some(&b"h999"[..]));
        let back: Vec<&[u8]> = l.iter().rev().take(2).collect();
        assert_eq!(back, vec![&b"998"[..], &b"997"[..]]);
    }

    #[test]
    fn long_elements_use_multibyte_lengths() {
        let mut l = List::new();
        let big = vec![b'x'; 20_000];
        l.push(End::Tail, b"a", -2);
        l.push(End::Tail, &big, -2);
        l.push(End::Head, &big[..300], -2);
        check_invariants(&l, -2);
        assert_eq!(l.get(2).map(|e| e.len()), Some(20_000));
        assert_eq!(l.pop(End::Tail).map(|e| e.len()), Some(20_000));
        assert_eq!(l.pop(End::Head).map(|e| e.len()), Some(300));
        assert_eq!(contents(&l), vec![b"a".to_vec()]);
    }

    #[test]
    fn set_of_a_big_element_splits_its_node() {
        let mut l = List::new();
        for i in 0..10u8 {
            l.push(End::Tail, &[i], -1);
        }
        assert!(l.set(5, &vec![b'y'; 5000], -1));
        check_invariants(&l, -1);
        assert_eq!(l.get(5).map(|e| e.len()), Some(5000));
        assert_eq!(l.get(6), Some(&[6u8][..]));
        assert!(!l.set(10, b"z", -1));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Remove(Vec<u8>, usize, bool),
        RemoveEnd(bool, usize),
        Get(usize),
        Range(usize, usize, bool),
    }

    fn item() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::collection::vec(b'a'..b'd', 0..3),
            1 => prop::collection::vec(any::<u8>(), 100..300),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<bool>(), item()).prop_map(|(h, v)| Op::Push(h, v)),
            2 => any::<bool>().prop_map(Op::Pop),
            1 => (0..40usize, item()).prop_map(|(i, v)| Op::Set(i, v)),
            2 => (0..40usize, item()).prop_map(|(i, v)| Op::Insert(i, v)),
            1 => (item(), 0..4usize, any::<bool>()).prop_map(|(v, n, h)| Op::Remove(v, n, h)),
            1 => (any::<bool>(), 0..5usize).prop_map(|(h, n)| Op::RemoveEnd(h, n)),
            1 => (0..40usize).prop_map(Op::Get),
            1 => (0..40usize, 0..40usize, any::<bool>()).prop_map(|(s, c, r)| Op::Range(s, c, r)),
        ]
    }

    fn end(head: bool) -> End {
        if head {
            End::Head
        } else {
            End::Tail
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn behaves_like_a_vecdeque(
            fill in prop_oneof![Just(-1), Just(-2), Just(1), Just(2), Just(3), Just(0)],
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let mut l = List::new();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(h, v) => {
                        l.push(end(h), &v, fill);
                        if h { m.push_front(v) } else { m.push_back(v) }
                    }
                    Op::Pop(h) => {
                        let want = if h { m.pop_front() } else { m.pop_back() };
                        prop_assert_eq!(l.pop(end(h)), want);
                    }
                    Op::Set(i, v) => {
                        let ok = i < m.len();
                        prop_assert_eq!(l.set(i, &v, fill), ok);
                        if ok { m[i] = v; }
                    }
                    Op::Insert(i, v) => {
                        let ok = i <= m.len();
                        prop_assert_eq!(l.insert(i, &v, fill), ok);
                        if ok { m.insert(i, v); }
                    }
                    Op::Remove(v, limit, h) => {
                        let mut removed = 0;
                        let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
                        let mut scan: Vec<Vec<u8>> = m.drain(..).collect();
                        if !h { scan.reverse(); }
                        for e in scan {
                            if e == v && (limit == 0 || removed < limit) {
                                removed += 1;
                            } else if h {
                                kept.push_back(e);
                            } else {
                                kept.push_front(e);
                            }
                        }
                        m = kept;
                        prop_assert_eq!(l.remove_matching(&v, limit, end(h), fill), removed);
                    }
                    Op::RemoveEnd(h, n) => {
                        l.remove_end(end(h), n);
                        for _ in 0..n.min(m.len()) {
                            if h { m.pop_front(); } else { m.pop_back(); }
                        }
                    }
                    Op::Get(i) => {
                        prop_assert_eq!(l.get(i), m.get(i).map(|v| v.as_slice()));
                    }
                    Op::Range(s, c, rev) => {
                        let want: Vec<&[u8]> = m.iter().skip(s).take(c).map(|v| v.as_slice()).collect();
                        let mut got: Vec<&[u8]> = if rev {
                            l.range(s, c).rev().collect()
                        } else {
                            l.range(s, c).collect()
                        };
                        if rev { got.reverse(); }
                        prop_assert_eq!(got, want);
                    }
                }
                check_invariants(&l, fill);
                prop_assert_eq!(l.len(), m.len());
            }
            let all: Vec<Vec<u8>> = m.into_iter().collect();
            prop_assert_eq!(contents(&l), all);
        }
    }
}
