//! The compact blobs Redis 7.0 writes small collections as, built byte for
//! byte as Redis builds them, so that a dump (and a DUMP payload) of the
//! same data is the same file: listpacks (listpack.c), intsets (intset.c)
//! and the split of a list into quicklist nodes (quicklist.c).
//!
//! ```text
//! listpack: total-bytes u32 LE | count u16 LE (65535: unknown) | entries | 0xff
//! entry:    encoding [data] backlen
//! intset:   width u32 LE (2, 4 or 8) | count u32 LE | members LE ascending
//! ```
//!
//! An entry that is a canonical integer (string2ll's rules) is stored as an
//! integer in the narrowest of 7, 13, 16, 24, 32 or 64 bits; anything else
//! as a string with a 6, 12 or 32-bit length. The backlen is the entry's
//! size (encoding and data) in 7-bit groups, most significant first, every
//! group but the first with the high bit set, so the entry can be found
//! from its end.

use crate::command::args::parse_i64_exact;
use crate::store::set::IntSet;

const HEADER: usize = 6;
/// The count a header holds when there are more entries than it can say.
const COUNT_UNKNOWN: usize = u16::MAX as usize;

/// A listpack being built by appending entries.
pub struct Listpack {
    /// Header and entries; the end byte is added by [`Listpack::finish`].
    buf: Vec<u8>,
    count: usize,
}

impl Default for Listpack {
    fn default() -> Self {
        Listpack::new()
    }
}

impl Listpack {
    pub fn new() -> Listpack {
        let mut buf = Vec::with_capacity(64);
        buf.resize(HEADER, 0);
        Listpack { buf, count: 0 }
    }

    /// The size the listpack has once finished (Redis's lpBytes).
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a string, as an integer when it is a canonical one (lpAppend).
    pub fn push(&mut self, s: &[u8]) {
        match parse_i64_exact(s) {
            Some(v) => self.push_int(v),
            None => self.push_str(s),
        }
    }

    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        let b = &mut self.buf;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1fff;
            b.extend_from_slice(&[0xc0 | (u >> 8) as u8, u as u8]);
        } else if let Ok(v) = i16::try_from(v) {
            b.push(0xf1);
            b.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            b.push(0xf2);
            b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(v) {
            b.push(0xf3);
            b.extend_from_slice(&v.to_le_bytes());
        } else {
            b.push(0xf4);
            b.extend_from_slice(&v.to_le_bytes());
        }
        self.end_entry(start);
    }

    fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let b = &mut self.buf;
        let n = s.len();
        if n < 64 {
            b.push(0x80 | n as u8);
        } else if n < 4096 {
            b.extend_from_slice(&[0xe0 | (n >> 8) as u8, n as u8]);
        } else {
            b.push(0xf0);
            // Redis's elements are at most 4 GB (proto-max-bulk-len caps
            // them far lower), so the length fits.
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
        self.end_entry(start);
    }

    /// Appends the backlen of the entry that started at `start`.
    fn end_entry(&mut self, start: usize) {
        let l = self.buf.len() - start;
        let groups = backlen_size(l);
        for g in (0..groups).rev() {
            let bits = ((l >> (7 * g)) & 0x7f) as u8;
            self.buf
                .push(if g == groups - 1 { bits } else { bits | 0x80 });
        }
        self.count += 1;
    }

    /// The finished listpack: header filled in and the end byte added.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xff);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = self.count.min(COUNT_UNKNOWN) as u16;
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// Appends a sorted set score as Redis 7.0 stores it in a listpack: the
/// text d2string prints for it (an integer when the double is one of
/// magnitude below 2^52, else %.17g), appended like any string, so
/// integral scores become integer entries.
/// How many bytes the backlen of an entry of `len` bytes takes (7 bits
/// each, as lpEncodeBacklen).
pub fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

pub fn push_score(lp: &mut Listpack, score: f64) {
    const LIMIT: f64 = 4503599627370496.0; // 2^52
    if score > -LIMIT && score < LIMIT && score == score.trunc() && score != 0.0 {
        lp.push_int(score as i64);
    } else {
        lp.push(ferrokv_resp::format_double(score).as_bytes());
    }
}

/// Redis's serialized intset: the set's member width (which, as in Redis,
/// never narrows after removals), its count, the members ascending.
pub fn intset_blob(s: &IntSet) -> Vec<u8> {
    let width = s.width();
    let mut out = Vec::with_capacity(s.blob_len());
    out.extend_from_slice(&u32::from(width).to_le_bytes());
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    for i in 0..s.len() {
        let v = s.get(i);
        match width {
            2 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            4 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

/// Node byte limits for list-max-listpack-size -1 ... -5.
const SIZE_LIMITS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// The byte cap of a node whose fill is an element count.
const SIZE_SAFETY_LIMIT: usize = 8192;
/// Elements this large get a node of their own, unpacked (quicklist's
/// packed_threshold).
pub const PACKED_THRESHOLD: usize = 1 << 30;

/// Redis's allowance for an entry's encoding and backlen when it checks
/// whether an element still fits a node (SIZE_ESTIMATE_OVERHEAD).
const SIZE_ESTIMATE_OVERHEAD: usize = 8;

/// Whether a quicklist node of `node_bytes` (its listpack's size) holding
/// `count` elements takes one more element of `sz` bytes pushed at the
/// tail: Redis 7.0's _quicklistNodeAllowInsert, whose estimate of the
/// entry's size decides where nodes split.
pub fn node_allows(node_bytes: usize, count: usize, fill: i32, sz: usize) -> bool {
    if sz >= PACKED_THRESHOLD {
        return false;
    }
    let new_sz = node_bytes + sz + SIZE_ESTIMATE_OVERHEAD;
    if fill < 0 {
        let level = fill.unsigned_abs() as usize - 1;
        if SIZE_LIMITS.get(level).is_some_and(|&limit| new_sz <= limit) {
            return true;
        }
    }
    if new_sz > SIZE_SAFETY_LIMIT {
        return false;
    }
    usize::try_from(fill).is_ok_and(|fill| count < fill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::rdb::listpack_items;

    #[test]
    fn entries_round_trip_through_the_reader() {
        let items: Vec<Vec<u8>> = [
            &b"0"[..],
            b"127",
            b"128",
            b"-1",
            b"-4096",
            b"4095",
            b"-4097",
            b"32767",
            b"-32768",
            b"32768",
            b"8388607",
            b"-8388608",
            b"8388608",
            b"2147483647",
            b"-2147483649",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"9223372036854775808",
            b"007",
            b"-0",
            b"",
            b"hello",
            &[b'a'; 63],
            &[b'b'; 64],
            &[b'c'; 4095],
            &[b'd'; 4096],
            &[b'e'; 20000],
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        let mut lp = Listpack::new();
        for it in &items {
            lp.push(it);
        }
        let size = lp.bytes();
        let blob = lp.finish();
        assert_eq!(blob.len(), size);
        let read: Vec<Vec<u8>> = listpack_items(&blob)
            .unwrap()
            .into_iter()
            .map(|e| e.bytes().into_owned())
            .collect();
        assert_eq!(read, items);
    }

    #[test]
    fn matches_redis_bytes() {
        // RPUSH l a 1 -1 300 70000 as redis-server 7.0.15 packs it.
        let mut lp = Listpack::new();
        for s in [&b"a"[..], b"1", b"-1", b"300", b"70000"] {
            lp.push(s);
        }
        assert_eq!(
            lp.finish(),
            [
                0x17, 0, 0, 0, 5, 0, 0x81, b'a', 2, 1, 1, 0xdf, 0xff, 2, 0xc1, 0x2c, 2, 0xf2, 0x70,
                0x11, 0x01, 4, 0xff
            ]
        );
    }
}
