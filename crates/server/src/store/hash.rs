//! The hash type: field/value maps with Redis 7.0's two encodings.
//!
//! * `listpack` ([`Hash::Packed`]): one exactly-sized byte buffer holding
//!   the pairs one after another, each string as a LEB128 length followed
//!   by its bytes, in insertion order (an update keeps the field's place,
//!   as Redis's listpack does). No allocation per field; lookups scan the
//!   buffer, which is what Redis does too and is cheap at these sizes.
//! * `hashtable` ([`Hash::Table`]): the store's own [`Dict`], each field an
//!   [`Entry`] whose key is the field and whose embedded value is the
//!   value, so a field costs one block plus a bucket, and the table
//!   rehashes incrementally and keeps SCAN's reverse-binary cursor
//!   guarantee exactly as the keyspace does.
//!
//! A hash starts packed and converts, one way, once it holds more than
//! `hash-max-listpack-entries` fields or a field or value longer than
//! `hash-max-listpack-value` bytes is written (see [`Limits`]).

use super::dict::Dict;
use super::entry::{Entry, Value, ValueRef};
use super::keyspace::key_hash;
use super::varint;

/// The conversion thresholds, read from the configuration by the caller.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// hash-max-listpack-entries
    pub entries: usize,
    /// hash-max-listpack-value
    pub value: usize,
}

pub enum Hash {
    Packed(Box<[u8]>),
    Table(Box<Dict>),
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    varint::put(out, s.len());
    out.extend_from_slice(s);
}

/// Reads one length-prefixed string at `pos`; returns it and the position
/// after it. The buffer is only ever written by this module.
fn get_str(buf: &[u8], pos: usize) -> (&[u8], usize) {
    let (n, pos) = varint::get(buf, pos);
    (&buf[pos..pos + n], pos + n)
}

/// A pair of a packed buffer with where it starts and ends.
struct PackedPair<'a> {
    field: &'a [u8],
    value: &'a [u8],
    start: usize,
    end: usize,
}

fn pairs(buf: &[u8]) -> impl Iterator<Item = PackedPair<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let start = pos;
        let (field, p) = get_str(buf, pos);
        let (value, p) = get_str(buf, p);
        pos = p;
        Some(PackedPair {
            field,
            value,
            start,
            end: p,
        })
    })
}

/// A field's block in the table: the field as key, the value embedded
/// whatever its length, since hash values are replaced, never grown.
fn field_entry(field: &[u8], value: &[u8]) -> Entry {
    Entry::new(field, Value::Emb(value.into()), None, 0)
}

fn entry_value(e: &Entry) -> &[u8] {
    match e.value() {
        ValueRef::Emb(v) => v,
        // Only field_entry builds these entries.
        ValueRef::Int(_) | ValueRef::Obj(_) => &[],
    }
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl Hash {
    pub fn new() -> Hash {
        Hash::Packed(Box::default())
    }

    /// OBJECT ENCODING's name for the current encoding.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Packed(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    /// Redis's lazyfreeGetFreeEffort: one buffer, or one block per field.
    pub fn free_effort(&self) -> usize {
        match self {
            Hash::Packed(_) => 1,
            Hash::Table(d) => d.len(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Hash::Packed(buf) => pairs(buf).count(),
            Hash::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Hash::Packed(buf) => buf.is_empty(),
            Hash::Table(d) => d.is_empty(),
        }
    }

    /// The value of `field`. Takes `&mut self` because a table lookup
    /// also advances its incremental rehash.
    pub fn get(&mut self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Packed(buf) => pairs(buf).find(|p| p.field == field).map(|p| p.value),
            Hash::Table(d) => d.get(key_hash(field).1, field).map(entry_value),
        }
    }

    /// Converts to a table when any of `args` is longer than the value
    /// limit, before anything is written (Redis's hashTypeTryConversion,
    /// which HSET and HMSET apply to all their arguments).
    pub fn convert_for(&mut self, args: &[&[u8]], limits: Limits) {
        if matches!(self, Hash::Packed(_)) && args.iter().any(|a| a.len() > limits.value) {
            self.convert();
        }
    }

    /// Sets `field` to `value`; true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        self.convert_for(&[field, value], limits);
        match self {
            Hash::Packed(buf) => {
                let found = pairs(buf)
                    .find(|p| p.field == field)
                    .map(|p| (p.start, p.end));
                let item =
                    varint::len(field.len()) + field.len() + varint::len(value.len()) + value.len();
                let (start, end) = found.unwrap_or((buf.len(), buf.len()));
                let mut out = Vec::with_capacity(buf.len() - (end - start) + item);
                out.extend_from_slice(&buf[..start]);
                put_str(&mut out, field);
                put_str(&mut out, value);
                out.extend_from_slice(&buf[end..]);
                *buf = out.into_boxed_slice();
                if found.is_none() && self.len() > limits.entries {
                    self.convert();
                }
                found.is_none()
            }
            Hash::Table(d) => {
                let h = key_hash(field).1;
                match d.get_mut(h, field) {
                    Some(e) => {
                        e.replace(field_entry(field, value));
                        false
                    }
                    None => {
                        d.insert(h, field_entry(field, value));
                        true
                    }
                }
            }
        }
    }

    /// Removes `field`; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Packed(buf) => {
                let Some((start, end)) = pairs(buf)
                    .find(|p| p.field == field)
                    .map(|p| (p.start, p.end))
                else {
                    return false;
                };
                let mut out = Vec::with_capacity(buf.len() - (end - start));
                out.extend_from_slice(&buf[..start]);
                out.extend_from_slice(&buf[end..]);
                *buf = out.into_boxed_slice();
                true
            }
            Hash::Table(d) => d.remove(key_hash(field).1, field).is_some(),
        }
    }

    /// Calls `f` on every pair, in the encoding's order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        match self {
            Hash::Packed(buf) => pairs(buf).for_each(|p| f(p.field, p.value)),
            Hash::Table(d) => d.for_each(|e| f(e.key(), entry_value(e))),
        }
    }

    /// Every pair, copied out.
    pub fn to_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(|f, v| out.push((f.to_vec(), v.to_vec())));
        out
    }

    /// One HSCAN call from `cursor`: a packed hash is returned whole with
    /// cursor 0, as Redis does; a table is walked with the reverse-binary
    /// cursor until `count` pairs are collected or `count * 10` buckets
    /// were visited. Returns the next cursor.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        let d = match self {
            Hash::Packed(_) => {
                self.for_each(f);
                return 0;
            }
            Hash::Table(d) => d,
        };
        super::scan_call(cursor, count, |v| {
            let mut met = 0;
            // An empty table gives mask 0, which wraps the cursor to 0.
            let mask = d.scan(v, |e| {
                met += 1;
                f(e.key(), entry_value(e));
            });
            let next = (v | !mask).reverse_bits().wrapping_add(1).reverse_bits();
            (next, met)
        })
    }

    /// A random pair (HRANDFIELD). For a table: a random non-empty bucket,
    /// then a random element of its chain, as Redis's dictGetFairRandomKey
    /// approximates.
    pub fn random(&mut self, rng: &mut impl rand::Rng) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Packed(buf) => {
                let n = pairs(buf).count();
                if n == 0 {
                    return None;
                }
                let i = rng.gen_range(0..n);
                pairs(buf).nth(i).map(|p| (p.field, p.value))
            }
            Hash::Table(d) => d.random(rng).map(|e| (e.key(), entry_value(e))),
        }
    }

    /// Packed to table; a table stays as it is (conversion is one-way).
    fn convert(&mut self) {
        let Hash::Packed(buf) = self else {
            return;
        };
        let mut d = Box::<Dict>::default();
        for p in pairs(buf) {
            d.insert(key_hash(p.field).1, field_entry(p.field, p.value));
        }
        *self = Hash::Table(d);
    }
}

impl Clone for Hash {
    fn clone(&self) -> Self {
        match self {
            Hash::Packed(buf) => Hash::Packed(buf.clone()),
            Hash::Table(_) => {
                let mut d = Box::<Dict>::default();
                self.for_each(|f, v| d.insert(key_hash(f).1, field_entry(f, v)));
                Hash::Table(d)
            }
        }
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({}, {} fields)", self.encoding(), self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const SMALL: Limits = Limits {
        entries: 8,
        value: 16,
    };

    fn contents(h: &Hash) -> BTreeMap<Vec<u8>, Vec<u8>> {
        h.to_pairs().into_iter().collect()
    }

    #[test]
    fn packed_keeps_insertion_order_and_updates_in_place() {
        let mut h = Hash::new();
        assert!(h.set(b"a", b"1", SMALL));
        assert!(h.set(b"b", b"2", SMALL));
        assert!(h.set(b"c", b"3", SMALL));
        assert!(!h.set(b"a", b"one", SMALL));
        let order: Vec<_> = h.to_pairs();
        assert_eq!(
            order,
            vec![
                (b"a".to_vec(), b"one".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
                (b"c".to_vec(), b"3".to_vec())
            ]
        );
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn packed_is_compact() {
        let mut h = Hash::new();
        let limits = Limits {
            entries: 512,
            value: 64,
        };
        for i in 0..10u8 {
            h.set(&[b'f', b'0' + i], &[b'v', b'0' + i], limits);
        }
        let Hash::Packed(buf) = &h else {
            panic!("should still be packed");
        };
        assert_eq!(buf.len(), 60);
    }

    #[test]
    fn converts_on_entries_and_on_long_values() {
        let mut h = Hash::new();
        for i in 0..=SMALL.entries {
            h.set(format!("f{i}").as_bytes(), b"v", SMALL);
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), SMALL.entries + 1);

        let mut h = Hash::new();
        h.set(b"a", b"1", SMALL);
        h.set(b"b", &[b'x'; 17], SMALL);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"a"), Some(&b"1"[..]));

        let mut h = Hash::new();
        h.convert_for(&[b"a", &[b'x'; 17]], SMALL);
        assert_eq!(h.encoding(), "hashtable");
        assert!(h.is_empty());
    }

    #[test]
    fn table_scan_returns_everything() {
        let mut h = Hash::new();
        for i in 0..500 {
            h.set(format!("field:{i}").as_bytes(), b"v", SMALL);
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = 0;
        loop {
            cursor = h.scan(cursor, 10, |f, _| {
                seen.insert(f.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 500);
    }

    #[test]
    fn clone_is_deep() {
        let mut h = Hash::new();
        for i in 0..20 {
            h.set(format!("f{i}").as_bytes(), b"v", SMALL);
        }
        let mut c = h.clone();
        c.set(b"f0", b"changed", SMALL);
        assert_eq!(h.get(b"f0"), Some(&b"v"[..]));
        assert_eq!(c.len(), 20);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(Vec<u8>, Vec<u8>),
        Del(Vec<u8>),
    }

    fn field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u8..24).prop_map(|i| vec![b'a' + i]),
            proptest::collection::vec(any::<u8>(), 0..24),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (field(), proptest::collection::vec(any::<u8>(), 0..20))
                .prop_map(|(f, v)| Op::Set(f, v)),
            1 => field().prop_map(Op::Del),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 0..120)) {
            let mut h = Hash::new();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Set(f, v) => {
                        let new = h.set(&f, &v, SMALL);
                        prop_assert_eq!(new, model.insert(f.clone(), v.clone()).is_none());
                        prop_assert_eq!(h.get(&f), Some(&v[..]));
                    }
                    Op::Del(f) => {
                        prop_assert_eq!(h.remove(&f), model.remove(&f).is_some());
                        prop_assert_eq!(h.get(&f), None);
                    }
                }
                prop_assert_eq!(h.len(), model.len());
                // Packed only while within both limits.
                if let Hash::Packed(_) = h {
                    prop_assert!(model.len() <= SMALL.entries);
                    prop_assert!(model
                        .iter()
                        .all(|(f, v)| f.len() <= SMALL.value && v.len() <= SMALL.value));
                }
            }
            prop_assert_eq!(contents(&h), model);
        }
    }
}
