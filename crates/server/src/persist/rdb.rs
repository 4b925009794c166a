//! The RDB format as Redis 7.0 writes it (RDB version 10): an encoder that
//! appends records to a buffer and a decoder over a byte slice that trusts
//! no length it reads.
//!
//! ```text
//! "REDIS0010"
//! AUX (0xfa) name value ...          redis-ver, redis-bits, ctime, used-mem, aof-base
//! FUNCTION2 (0xf5) code ...          one per function library
//! per non-empty database:
//!   SELECTDB (0xfe) db  RESIZEDB (0xfb) keys expires
//!   [EXPIRETIME_MS (0xfc) i64 LE] [IDLE (0xf8) len | FREQ (0xf9) u8]
//!   type key value                   one record per key
//! EOF (0xff)  CRC-64 of everything before it, LE (zero: not checked)
//! ```
//!
//! Lengths: `00xxxxxx` (6 bits), `01xxxxxx xxxxxxxx` (14 bits, big
//! endian), `0x80` + u32 BE, `0x81` + u64 BE; `11xxxxxx` marks a special
//! string encoding: 0 int8, 1 int16, 2 int32 (little endian), 3 LZF.
//!
//! Each value type is one arm in [`Encoder::value`] and one in
//! [`Decoder::value`]; the DUMP payload is the same value serialization
//! followed by the RDB version and a CRC-64 (see [`dump`], [`restore`]);
//! FUNCTION DUMP's payload is the library records with the same trailer
//! ([`dump_functions`], [`restore_functions`]).

use std::borrow::Cow;

use super::listpack::{self, Listpack};
use super::{crc64, lzf};
use crate::store::hash::{self, Hash};
use crate::store::list::{End, List};
use crate::store::set::{Member, Set};
use crate::store::zset::{self, ZSet};
use crate::store::{Entry, Object, Value, ValueRef};

pub const RDB_VERSION: u16 = 10;

pub const OP_IDLE: u8 = 248;
pub const OP_FREQ: u8 = 249;
pub const OP_AUX: u8 = 250;
pub const OP_RESIZEDB: u8 = 251;
pub const OP_EXPIRETIME_MS: u8 = 252;
pub const OP_EXPIRETIME: u8 = 253;
pub const OP_SELECTDB: u8 = 254;
pub const OP_EOF: u8 = 255;
pub const OP_MODULE_AUX: u8 = 247;
pub const OP_FUNCTION: u8 = 246;
pub const OP_FUNCTION2: u8 = 245;

pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
/// Quicklist node containers (RDB_TYPE_LIST_QUICKLIST_2).
const QUICKLIST_NODE_PLAIN: u64 = 1;
const QUICKLIST_NODE_PACKED: u64 = 2;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_ZSET_LISTPACK: u8 = 17;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Appends RDB records to a buffer.
pub struct Encoder {
    pub buf: Vec<u8>,
    /// rdbcompression: LZF for strings longer than 20 bytes.
    pub compress: bool,
    /// list-max-listpack-size: how lists are split into quicklist nodes.
    pub list_fill: i32,
}

impl Encoder {
    pub fn new(compress: bool) -> Encoder {
        Encoder {
            buf: Vec::new(),
            compress,
            list_fill: DEFAULT_ENCODINGS.list_fill,
        }
    }

    pub fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    pub fn length(&mut self, n: u64) {
        if n < 1 << 6 {
            self.buf.push(n as u8);
        } else if n < 1 << 14 {
            self.buf.push(0x40 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else if n <= u64::from(u32::MAX) {
            self.buf.push(0x80);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(0x81);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// An integer in the smallest special encoding, if it fits 32 bits.
    fn try_int(&mut self, n: i64) -> bool {
        if let Ok(v) = i8::try_from(n) {
            self.buf.extend_from_slice(&[0xc0 | ENC_INT8, v as u8]);
        } else if let Ok(v) = i16::try_from(n) {
            self.buf.push(0xc0 | ENC_INT16);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else if let Ok(v) = i32::try_from(n) {
            self.buf.push(0xc0 | ENC_INT32);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else {
            return false;
        }
        true
    }

    /// An integer value as a string (Redis's rdbSaveLongLongAsStringObject).
    pub fn int_string(&mut self, n: i64) {
        if !self.try_int(n) {
            let mut b = itoa::Buffer::new();
            self.raw_string(b.format(n).as_bytes());
        }
    }

    /// A string, as rdbSaveRawString picks its encoding: a short canonical
    /// integer as an integer, a long one compressed when that saves space,
    /// else length and bytes.
    pub fn string(&mut self, s: &[u8]) {
        if s.len() <= 11 {
            if let Some(n) = crate::command::args::parse_i64_exact(s) {
                if self.try_int(n) {
                    return;
                }
            }
        }
        if self.compress && s.len() > 20 {
            if let Some(c) = lzf::compress(s, s.len() - 4) {
                self.buf.push(0xc0 | ENC_LZF);
                self.length(c.len() as u64);
                self.length(s.len() as u64);
                self.buf.extend_from_slice(&c);
                return;
            }
        }
        self.raw_string(s);
    }

    fn raw_string(&mut self, s: &[u8]) {
        self.length(s.len() as u64);
        self.buf.extend_from_slice(s);
    }

    pub fn aux(&mut self, name: &str, value: &[u8]) {
        self.buf.push(OP_AUX);
        self.string(name.as_bytes());
        self.string(value);
    }

    /// The type byte and serialization of a value (DUMP's body).
    pub fn value(&mut self, v: ValueRef<'_>) {
        self.byte(rdb_type(v));
        self.value_body(v);
    }

    /// The serialization of a value, after its type byte and key: small
    /// collections as the listpack or intset blob Redis keeps them in,
    /// large ones item by item.
    fn value_body(&mut self, v: ValueRef<'_>) {
        match v {
            ValueRef::Int(n) => self.int_string(n),
            ValueRef::Emb(s) => self.string(s),
            ValueRef::Obj(Object::Raw(s)) => self.string(s),
            ValueRef::Obj(Object::ZSet(z @ ZSet::Listpack(_))) => {
                let mut lp = Listpack::new();
                z.for_range(0, z.len(), false, |m, score| {
                    lp.push(m);
                    listpack::push_score(&mut lp, score);
                });
                self.string(&lp.finish());
            }
            // Highest rank first, as Redis writes a skiplist, so that its
            // loader appends each element at the head.
            ValueRef::Obj(Object::ZSet(z)) => {
                self.length(z.len() as u64);
                z.for_range(0, z.len(), true, |m, score| {
                    self.string(m);
                    self.buf.extend_from_slice(&score.to_le_bytes());
                });
            }
            ValueRef::Obj(Object::List(l)) => self.quicklist(l),
            ValueRef::Obj(Object::Set(Set::Ints(s))) => self.string(&listpack::intset_blob(s)),
            ValueRef::Obj(Object::Set(s)) => {
                self.length(s.len() as u64);
                for m in s.iter() {
                    match m {
                        Member::Int(n) => self.int_string(n),
                        Member::Bytes(b) => self.string(b),
                    }
                }
            }
            ValueRef::Obj(Object::Hash(h @ Hash::Packed(_))) => {
                let mut lp = Listpack::new();
                h.for_each(|f, v| {
                    lp.push(f);
                    lp.push(v);
                });
                self.string(&lp.finish());
            }
            ValueRef::Obj(Object::Hash(h)) => {
                self.length(h.len() as u64);
                h.for_each(|f, v| {
                    self.string(f);
                    self.string(v);
                });
            }
        }
    }

    /// A library's record: the opcode and its code, as Redis 7.0's
    /// rdbSaveFunctions writes it.
    pub fn function(&mut self, code: &[u8]) {
        self.byte(OP_FUNCTION2);
        self.string(code);
    }

    /// A list as RDB_TYPE_LIST_QUICKLIST_2: the node count, then each node's
    /// container and blob. The nodes are split where Redis's quicklist
    /// splits a list pushed at the tail one element at a time (with the
    /// same fill), so a list built by RPUSH dumps to Redis's very bytes.
    fn quicklist(&mut self, l: &List) {
        let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut open: Option<Listpack> = None;
        for item in l.iter() {
            if item.len() >= listpack::PACKED_THRESHOLD {
                if let Some(lp) = open.take() {
                    nodes.push((QUICKLIST_NODE_PACKED, lp.finish()));
                }
                nodes.push((QUICKLIST_NODE_PLAIN, item.to_vec()));
                continue;
            }
            match &mut open {
                Some(lp)
                    if listpack::node_allows(lp.bytes(), lp.len(), self.list_fill, item.len()) =>
                {
                    lp.push(item)
                }
                _ => {
                    if let Some(lp) = open.take() {
                        nodes.push((QUICKLIST_NODE_PACKED, lp.finish()));
                    }
                    let mut lp = Listpack::new();
                    lp.push(item);
                    open = Some(lp);
                }
            }
        }
        if let Some(lp) = open {
            nodes.push((QUICKLIST_NODE_PACKED, lp.finish()));
        }
        self.length(nodes.len() as u64);
        for (container, blob) in &nodes {
            self.length(*container);
            self.string(blob);
        }
    }

    /// One key record: its expiry, type, key and value.
    pub fn entry(&mut self, e: &Entry) {
        if let Some(at) = e.expiry() {
            self.buf.push(OP_EXPIRETIME_MS);
            self.buf.extend_from_slice(&at.to_le_bytes());
        }
        let v = e.value();
        self.byte(rdb_type(v));
        self.string(e.key());
        self.value_body(v);
    }
}

/// The RDB type byte of a value: it names the encoding too, so that the
/// reader can take compact encodings over as they are.
pub fn rdb_type(v: ValueRef<'_>) -> u8 {
    match v {
        ValueRef::Int(_) | ValueRef::Emb(_) | ValueRef::Obj(Object::Raw(_)) => TYPE_STRING,
        // As Redis 7.0: the type follows the in-memory encoding, which
        // ferrokv picks by Redis's rules; lists are always quicklists.
        ValueRef::Obj(Object::ZSet(ZSet::Listpack(_))) => TYPE_ZSET_LISTPACK,
        ValueRef::Obj(Object::ZSet(_)) => TYPE_ZSET_2,
        ValueRef::Obj(Object::List(_)) => TYPE_LIST_QUICKLIST_2,
        ValueRef::Obj(Object::Set(Set::Ints(_))) => TYPE_SET_INTSET,
        ValueRef::Obj(Object::Set(_)) => TYPE_SET,
        ValueRef::Obj(Object::Hash(Hash::Packed(_))) => TYPE_HASH_LISTPACK,
        ValueRef::Obj(Object::Hash(_)) => TYPE_HASH,
    }
}

/// Why reading stopped: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub offset: usize,
    pub what: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.what)
    }
}

pub type Result<T> = std::result::Result<T, LoadError>;

/// Reads RDB records from a byte slice.
pub struct Decoder<'a> {
    data: &'a [u8],
    pub pos: usize,
    /// The encoding thresholds loaded collections are built with.
    pub encodings: Encodings,
}

/// The encoding thresholds (the server's `*-max-*` directives) that
/// loaded collections are built with.
#[derive(Clone, Copy, Debug)]
pub struct Encodings {
    pub zset: zset::Limits,
    pub hash: hash::Limits,
    pub set_max_intset: usize,
    pub list_fill: i32,
}

/// Redis 7.0's defaults.
pub const DEFAULT_ENCODINGS: Encodings = Encodings {
    zset: zset::Limits {
        max_entries: 128,
        max_value: 64,
    },
    hash: hash::Limits {
        entries: 512,
        value: 64,
    },
    set_max_intset: 512,
    list_fill: -2,
};

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Decoder<'a> {
        Decoder {
            data,
            pos: 0,
            encodings: DEFAULT_ENCODINGS,
        }
    }

    pub fn fail<T>(&self, what: impl Into<String>) -> Result<T> {
        Err(LoadError {
            offset: self.pos,
            what: what.into(),
        })
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return self.fail(format!(
                "{what} of {n} bytes, but the data ends after {}",
                self.remaining()
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn byte(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn i64_le(&mut self, what: &str) -> Result<i64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_le_bytes(b))
    }

    /// A length, or the special-encoding marker: (value, is_encoding).
    fn length_or_encoding(&mut self, what: &str) -> Result<(u64, bool)> {
        let first = self.byte(what)?;
        Ok(match first >> 6 {
            0 => (u64::from(first & 0x3f), false),
            1 => {
                let second = self.byte(what)?;
                (u64::from(first & 0x3f) << 8 | u64::from(second), false)
            }
            2 if first == 0x80 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(self.take(4, what)?);
                (u64::from(u32::from_be_bytes(b)), false)
            }
            2 if first == 0x81 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(self.take(8, what)?);
                (u64::from_be_bytes(b), false)
            }
            2 => {
                self.pos -= 1;
                return self.fail(format!("{what}: unknown length encoding 0x{first:02x}"));
            }
            _ => (u64::from(first & 0x3f), true),
        })
    }

    pub fn length(&mut self, what: &str) -> Result<u64> {
        let at = self.pos;
        match self.length_or_encoding(what)? {
            (n, false) => Ok(n),
            _ => Err(LoadError {
                offset: at,
                what: format!("{what}: a length, found a string encoding"),
            }),
        }
    }

    /// A length that counts items each at least `min_bytes` long: larger
    /// than the rest of the data could hold means the data is corrupt.
    pub fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.length(what)?;
        if n > (self.remaining() / min_bytes.max(1)) as u64 {
            return Err(LoadError {
                offset: at,
                what: format!("{what}: {n} items do not fit in the remaining data"),
            });
        }
        Ok(n as usize)
    }

    /// A string in any of its encodings.
    pub fn string(&mut self, what: &str) -> Result<Cow<'a, [u8]>> {
        let at = self.pos;
        let (n, encoded) = self.length_or_encoding(what)?;
        if !encoded {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            return Ok(Cow::Borrowed(self.take(n, what)?));
        }
        let int = |v: i64| {
            Ok(Cow::Owned(
                itoa::Buffer::new().format(v).as_bytes().to_vec(),
            ))
        };
        match n as u8 {
            ENC_INT8 => int(i64::from(self.byte(what)? as i8)),
            ENC_INT16 => {
                let b = self.take(2, what)?;
                int(i64::from(i16::from_le_bytes([b[0], b[1]])))
            }
            ENC_INT32 => {
                let b = self.take(4, what)?;
                int(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            ENC_LZF => {
                let clen = self.length(what)?;
                let len = self.length(what)?;
                let clen = usize::try_from(clen).unwrap_or(usize::MAX);
                let data = self.take(clen, what)?;
                // An LZF stream expands at most ~88 times: a larger claim is
                // corrupt, and must not size an allocation.
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len / 90 > clen {
                    return Err(LoadError {
                        offset: at,
                        what: format!("{what}: LZF length {len} from {clen} bytes"),
                    });
                }
                match lzf::decompress(data, len) {
                    Some(v) => Ok(Cow::Owned(v)),
                    None => Err(LoadError {
                        offset: at,
                        what: format!("{what}: a valid LZF stream"),
                    }),
                }
            }
            other => Err(LoadError {
                offset: at,
                what: format!("{what}: unknown string encoding {other}"),
            }),
        }
    }

    /// The code of a library record after its opcode `op`: OP_FUNCTION2
    /// holds the code; OP_FUNCTION (Redis 7.0's release candidates) holds
    /// name, engine, an optional description and the code without its
    /// `#!` line, which Redis rebuilds. Errors are Redis's texts.
    pub fn function(&mut self, op: u8) -> std::result::Result<Vec<u8>, &'static str> {
        let mut field =
            |what: &'static str| self.string(what).map(Cow::into_owned).map_err(|_| what);
        if op == OP_FUNCTION2 {
            return field("Failed loading library payload");
        }
        let name = field("Failed loading library name")?;
        let engine = field("Failed loading engine name")?;
        let has_desc = self
            .length("a description flag")
            .map_err(|_| "Failed loading library description indicator")?;
        if has_desc != 0 {
            self.string("a description")
                .map_err(|_| "Failed loading library description")?;
        }
        let blob = self
            .string("a library")
            .map_err(|_| "Failed loading library blob")?;
        let mut code = b"#!".to_vec();
        code.extend_from_slice(&engine);
        code.extend_from_slice(b" name=");
        code.extend_from_slice(&name);
        code.push(b'\n');
        code.extend_from_slice(&blob);
        Ok(code)
    }

    /// A value of RDB type `ty` (see [`is_value_type`]), whose type byte
    /// was at `type_at`.
    pub fn value_after_key(&mut self, ty: u8, type_at: usize) -> Result<Value> {
        match ty {
            TYPE_STRING => Ok(Value::string(&self.string("a string value")?)),
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.count("a sorted set's size", 2)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let m = self.string("a sorted set member")?;
                    let score = if ty == TYPE_ZSET_2 {
                        f64::from_le_bytes(
                            self.take(8, "a binary score")?
                                .try_into()
                                .unwrap_or_default(),
                        )
                    } else {
                        self.text_score()?
                    };
                    items.push((m, score));
                }
                self.zset(items, type_at)
            }
            TYPE_ZSET_LISTPACK => {
                let lp = self.string("a sorted set listpack")?;
                let at = self.pos;
                let fail = |what: &str| LoadError {
                    offset: at,
                    what: what.to_string(),
                };
                let flat = listpack_items(&lp).ok_or_else(|| fail("a valid listpack"))?;
                if flat.len() % 2 != 0 {
                    return Err(fail("a listpack of member/score pairs"));
                }
                let mut items = Vec::with_capacity(flat.len() / 2);
                for pair in flat.chunks_exact(2) {
                    let score = match pair[1] {
                        LpItem::Int(n) => n as f64,
                        LpItem::Str(s) => crate::command::args::parse_f64(s)
                            .filter(|s| !s.is_nan())
                            .ok_or_else(|| fail("a score in the listpack"))?,
                    };
                    items.push((pair[0].bytes(), score));
                }
                self.zset(items, type_at)
            }
            TYPE_LIST => {
                let n = self.count("a list's length", 1)?;
                let mut l = List::new();
                for _ in 0..n {
                    l.push(
                        End::Tail,
                        &self.string("a list element")?,
                        self.encodings.list_fill,
                    );
                }
                self.list(l, type_at)
            }
            TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.count("a quicklist's node count", 2)?;
                let mut l = List::new();
                let fill = self.encodings.list_fill;
                for _ in 0..nodes {
                    let at = self.pos;
                    let container = self.length("a quicklist node container")?;
                    let data = self.string("a quicklist node")?;
                    match container {
                        QUICKLIST_NODE_PLAIN => l.push(End::Tail, &data, fill),
                        QUICKLIST_NODE_PACKED => {
                            let entries = listpack_items(&data).ok_or(LoadError {
                                offset: at,
                                what: "a valid listpack in a quicklist node".into(),
                            })?;
                            if entries.is_empty() {
                                return Err(LoadError {
                                    offset: at,
                                    what: "a non-empty quicklist node".into(),
                                });
                            }
                            for e in &entries {
                                e.with_bytes(|b| l.push(End::Tail, b, fill));
                            }
                        }
                        _ => {
                            return Err(LoadError {
                                offset: at,
                                what: "a quicklist node container of 1 (plain) or 2 (packed)"
                                    .into(),
                            })
                        }
                    }
                }
                self.list(l, type_at)
            }
            TYPE_SET => {
                let n = self.count("a set's size", 1)?;
                let mut members = Vec::with_capacity(n);
                for _ in 0..n {
                    members.push(self.string("a set member")?);
                }
                self.set(&members, type_at)
            }
            TYPE_SET_INTSET => {
                let blob = self.string("an intset")?;
                let at = self.pos;
                let members = intset_members(&blob).ok_or(LoadError {
                    offset: at,
                    what: "a valid intset (encoding 2, 4 or 8, sorted members)".into(),
                })?;
                self.set(&members, type_at)
            }
            TYPE_HASH => {
                let n = self.count("a hash's size", 2)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let f = self.string("a hash field")?;
                    let v = self.string("a hash value")?;
                    pairs.push((f, v));
                }
                self.hash(pairs, type_at)
            }
            TYPE_HASH_LISTPACK => {
                let lp = self.string("a hash listpack")?;
                let at = self.pos;
                let flat = listpack_items(&lp).ok_or(LoadError {
                    offset: at,
                    what: "a valid listpack".into(),
                })?;
                if flat.len() % 2 != 0 {
                    return Err(LoadError {
                        offset: at,
                        what: "a listpack of field/value pairs".into(),
                    });
                }
                let pairs = flat
                    .chunks_exact(2)
                    .map(|p| (p[0].bytes(), p[1].bytes()))
                    .collect();
                self.hash(pairs, type_at)
            }
            other => Err(LoadError {
                offset: type_at,
                what: format!(
                    "a value type ferrokv can load (0 string, 1/18 list, 2/11 set, 3/5/17 zset, \
                     4/16 hash), found type {other}"
                ),
            }),
        }
    }

    fn list(&self, l: List, type_at: usize) -> Result<Value> {
        if l.is_empty() {
            return Err(LoadError {
                offset: type_at,
                what: "a non-empty list".into(),
            });
        }
        Ok(Value::Obj(Box::new(Object::List(l))))
    }

    fn set(&self, members: &[impl AsRef<[u8]>], type_at: usize) -> Result<Value> {
        let Some(first) = members.first() else {
            return Err(LoadError {
                offset: type_at,
                what: "a non-empty set".into(),
            });
        };
        let mut s = Set::for_first(first.as_ref());
        for m in members {
            if !s.insert(Member::Bytes(m.as_ref()), self.encodings.set_max_intset) {
                return Err(LoadError {
                    offset: type_at,
                    what: "a set without duplicate members".into(),
                });
            }
        }
        Ok(Value::Obj(Box::new(Object::Set(s))))
    }

    fn hash(
        &self,
        pairs: Vec<(impl AsRef<[u8]>, impl AsRef<[u8]>)>,
        type_at: usize,
    ) -> Result<Value> {
        if pairs.is_empty() {
            return Err(LoadError {
                offset: type_at,
                what: "a non-empty hash".into(),
            });
        }
        let mut h = Hash::new();
        for (f, v) in &pairs {
            if !h.set(f.as_ref(), v.as_ref(), self.encodings.hash) {
                return Err(LoadError {
                    offset: type_at,
                    what: "a hash without duplicate fields".into(),
                });
            }
        }
        Ok(Value::Obj(Box::new(Object::Hash(h))))
    }

    /// RDB_TYPE_ZSET's scores: a length byte, 253 NaN, 254 +inf, 255 -inf,
    /// else that many ASCII characters of a double.
    fn text_score(&mut self) -> Result<f64> {
        let at = self.pos;
        let n = self.byte("a score length")?;
        let v = match n {
            253 => f64::NAN,
            254 => f64::INFINITY,
            255 => f64::NEG_INFINITY,
            n => {
                let t = self.take(n as usize, "a score")?;
                crate::command::args::parse_f64(t).unwrap_or(f64::NAN)
            }
        };
        if v.is_nan() {
            return Err(LoadError {
                offset: at,
                what: "a score that is a number".into(),
            });
        }
        Ok(v)
    }

    /// Builds a sorted set in the encoding its size and members call for.
    fn zset(&self, items: Vec<(impl AsRef<[u8]>, f64)>, type_at: usize) -> Result<Value> {
        if items.is_empty() {
            return Err(LoadError {
                offset: type_at,
                what: "a non-empty sorted set".into(),
            });
        }
        let longest = items
            .iter()
            .map(|(m, _)| m.as_ref().len())
            .max()
            .unwrap_or(0);
        let mut z = ZSet::with_hint(items.len(), longest, self.encodings.zset);
        for (m, score) in &items {
            if z.insert(m.as_ref(), *score, self.encodings.zset).is_some() {
                return Err(LoadError {
                    offset: type_at,
                    what: "a sorted set without duplicate members".into(),
                });
            }
        }
        Ok(Value::Obj(Box::new(Object::ZSet(z))))
    }
}

/// Whether `ty` is a value type [`Decoder::value_after_key`] reads.
pub fn is_value_type(ty: u8) -> bool {
    matches!(
        ty,
        TYPE_STRING
            | TYPE_LIST
            | TYPE_SET
            | TYPE_ZSET
            | TYPE_HASH
            | TYPE_ZSET_2
            | TYPE_SET_INTSET
            | TYPE_HASH_LISTPACK
            | TYPE_ZSET_LISTPACK
            | TYPE_LIST_QUICKLIST_2
    )
}

/// The members of an intset blob (Redis's intset.c layout: encoding u32
/// LE (2, 4 or 8 bytes per member), length u32 LE, members LE in
/// ascending order), as decimal strings. None when malformed.
fn intset_members(blob: &[u8]) -> Option<Vec<Vec<u8>>> {
    let width = u32::from_le_bytes(blob.get(0..4)?.try_into().ok()?) as usize;
    let len = u32::from_le_bytes(blob.get(4..8)?.try_into().ok()?) as usize;
    if !matches!(width, 2 | 4 | 8) || blob.len() != 8 + width.checked_mul(len)? {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    let mut last: Option<i64> = None;
    for chunk in blob[8..].chunks_exact(width) {
        let mut v = 0i64;
        for (i, b) in chunk.iter().enumerate() {
            v |= i64::from(*b) << (8 * i);
        }
        let shift = 64 - 8 * width as u32;
        let v = if shift == 0 { v } else { (v << shift) >> shift };
        if last.is_some_and(|l| l >= v) {
            return None;
        }
        last = Some(v);
        out.push(itoa::Buffer::new().format(v).as_bytes().to_vec());
    }
    Some(out)
}

/// One listpack entry as stored: integer entries stay integers, so that
/// a score needs no text round trip and a string no copy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LpItem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl<'a> LpItem<'a> {
    /// The entry's bytes (an integer as its decimal text).
    pub fn bytes(self) -> Cow<'a, [u8]> {
        match self {
            LpItem::Int(n) => Cow::Owned(itoa::Buffer::new().format(n).as_bytes().to_vec()),
            LpItem::Str(s) => Cow::Borrowed(s),
        }
    }

    /// Calls `f` with the entry's bytes, formatting an integer on the stack.
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            LpItem::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
            LpItem::Str(s) => f(s),
        }
    }
}

/// The entries of a listpack (Redis 7.0's listpack.c layout: total bytes
/// u32 LE, count u16 LE, entries each followed by its back-length, 0xff).
/// None when malformed.
pub fn listpack_items(lp: &[u8]) -> Option<Vec<LpItem<'_>>> {
    let total = u32::from_le_bytes(lp.get(0..4)?.try_into().ok()?) as usize;
    if total != lp.len() || lp.last() != Some(&0xff) {
        return None;
    }
    let bytes = |from: usize, len: usize| lp.get(from..from.checked_add(len)?).map(LpItem::Str);
    let le = |from: usize, n: usize| -> Option<LpItem<'_>> {
        let b = lp.get(from..from + n)?;
        let mut v = 0i64;
        for (i, x) in b.iter().enumerate() {
            v |= i64::from(*x) << (8 * i);
        }
        // Sign-extend from n bytes.
        let shift = 64 - 8 * n as u32;
        Some(LpItem::Int((v << shift) >> shift))
    };
    let count = usize::from(u16::from_le_bytes(lp.get(4..6)?.try_into().ok()?));
    let mut out = Vec::with_capacity(count.min(lp.len()));
    let mut p = 6;
    loop {
        let b = *lp.get(p)?;
        if b == 0xff {
            break;
        }
        let (val, len) = if b & 0x80 == 0 {
            (LpItem::Int(i64::from(b & 0x7f)), 1)
        } else if b & 0xc0 == 0x80 {
            let l = (b & 0x3f) as usize;
            (bytes(p + 1, l)?, 1 + l)
        } else if b & 0xe0 == 0xc0 {
            let u = i64::from(b & 0x1f) << 8 | i64::from(*lp.get(p + 1)?);
            (LpItem::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }), 2)
        } else if b & 0xf0 == 0xe0 {
            let l = ((b & 0x0f) as usize) << 8 | *lp.get(p + 1)? as usize;
            (bytes(p + 2, l)?, 2 + l)
        } else {
            match b {
                0xf0 => {
                    let LpItem::Int(l) = le(p + 1, 4)? else {
                        return None;
                    };
                    let l = l as u32 as usize;
                    (bytes(p + 5, l)?, 5 + l)
                }
                0xf1 => (le(p + 1, 2)?, 3),
                0xf2 => (le(p + 1, 3)?, 4),
                0xf3 => (le(p + 1, 4)?, 5),
                0xf4 => (le(p + 1, 8)?, 9),
                _ => return None,
            }
        };
        let backlen = listpack::backlen_size(len);
        p = p.checked_add(len + backlen)?;
        out.push(val);
    }
    (p + 1 == lp.len()).then_some(out)
}

/// What [`read_file`] hands its sink, in file order.
pub enum Item<'a> {
    /// A library's code (Redis 7.0 writes them before the databases).
    Function(Vec<u8>),
    Key(Record<'a>),
}

/// A key as [`read_file`] found it.
pub struct Record<'a> {
    pub db: usize,
    pub key: Cow<'a, [u8]>,
    pub value: Value,
    /// Absolute unix time in ms.
    pub expiry: Option<i64>,
}

/// Reads a whole RDB file, handing every library and key to `sink` in
/// file order. `databases` bounds SELECTDB; with `verify_crc` a non-zero
/// checksum must match. The sink may refuse an item (duplicate keys, a
/// library that does not load) with a message.
pub fn read_file(
    data: &[u8],
    databases: usize,
    verify_crc: bool,
    encodings: Encodings,
    sink: impl FnMut(Item<'_>) -> std::result::Result<(), String>,
) -> Result<()> {
    read_file_sized(data, databases, verify_crc, encodings, |_, _| {}, sink)
}

/// [`read_file`], also handing `resize` each database's key count from its
/// RESIZEDB record before its keys, to size its tables.
pub fn read_file_sized(
    data: &[u8],
    databases: usize,
    verify_crc: bool,
    encodings: Encodings,
    mut resize: impl FnMut(usize, u64),
    mut sink: impl FnMut(Item<'_>) -> std::result::Result<(), String>,
) -> Result<()> {
    let mut d = Decoder::new(data);
    d.encodings = encodings;
    let magic = d.take(9, "the RDB header \"REDIS\" and a 4-digit version")?;
    if &magic[..5] != b"REDIS" {
        d.pos = 0;
        return d.fail("the RDB header \"REDIS\" (wrong signature)");
    }
    let version = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|v| v.parse::<u16>().ok())
        .filter(|v| (1..=RDB_VERSION).contains(v));
    if version.is_none() {
        d.pos = 5;
        return d.fail(format!("an RDB version from 1 to {RDB_VERSION}"));
    }
    let mut db = 0;
    let mut expiry = None;
    loop {
        let at = d.pos;
        match d.byte("an opcode or a value type (the file ends before its EOF marker)")? {
            OP_EXPIRETIME_MS => expiry = Some(d.i64_le("an expiry time in ms")?),
            OP_EXPIRETIME => {
                let b = d.take(4, "an expiry time in seconds")?;
                expiry = Some(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) * 1000);
            }
            OP_FREQ => {
                d.byte("an LFU frequency")?;
            }
            OP_IDLE => {
                d.length("an LRU idle time")?;
            }
            OP_EOF => break,
            OP_SELECTDB => {
                let n = d.length("a database number")?;
                if n >= databases as u64 {
                    d.pos = at;
                    return d.fail(format!(
                        "a database number below {databases} (found {n}; raise `databases`)"
                    ));
                }
                db = n as usize;
            }
            OP_RESIZEDB => {
                resize(db, d.length("the database size")?);
                d.length("the expires size")?;
            }
            OP_AUX => {
                d.string("an aux field name")?;
                d.string("an aux field value")?;
            }
            op @ (OP_FUNCTION | OP_FUNCTION2) => {
                let code = match d.function(op) {
                    Ok(code) => code,
                    Err(what) => {
                        d.pos = at;
                        return d.fail(format!("a library record ({what})"));
                    }
                };
                if let Err(what) = sink(Item::Function(code)) {
                    d.pos = at;
                    return d.fail(what);
                }
            }
            OP_MODULE_AUX => {
                d.pos = at;
                return d.fail("no module data (ferrokv cannot load it)");
            }
            ty if !is_value_type(ty) => {
                d.pos = at;
                return d.fail(format!(
                    "an opcode or a value type ferrokv can load, found 0x{ty:02x}"
                ));
            }
            ty => {
                let key = d.string("a key")?;
                let value = d.value_after_key(ty, at)?;
                let record = Record {
                    db,
                    key,
                    value,
                    expiry: expiry.take(),
                };
                if let Err(what) = sink(Item::Key(record)) {
                    d.pos = at;
                    return d.fail(what);
                }
            }
        }
    }
    let body_end = d.pos;
    let sum = d.take(8, "the 8-byte checksum after EOF")?;
    let stored = u64::from_le_bytes(sum.try_into().unwrap_or_default());
    if verify_crc && stored != 0 {
        let crc = crc64::update(0, &data[..body_end]);
        if crc != stored {
            d.pos = body_end;
            return d.fail(format!(
                "checksum {stored:016x}, computed {crc:016x} (the file is corrupt)"
            ));
        }
    }
    Ok(())
}

/// The DUMP payload of a value: its type and serialization, then the
/// trailer ([`seal`]). `list_fill` is list-max-listpack-size (see
/// [`Encoder::list_fill`]).
pub fn dump(v: ValueRef<'_>, compress: bool, list_fill: i32) -> Vec<u8> {
    let mut enc = Encoder::new(compress);
    enc.list_fill = list_fill;
    enc.value(v);
    seal(enc.buf)
}

/// The FUNCTION DUMP payload: each library's record, as in an RDB file,
/// then the trailer ([`seal`]).
pub fn dump_functions<C: AsRef<[u8]>>(codes: &[C], compress: bool) -> Vec<u8> {
    let mut enc = Encoder::new(compress);
    for code in codes {
        enc.function(code.as_ref());
    }
    seal(enc.buf)
}

/// Ends a payload with the RDB version (2 bytes LE) and the CRC-64 of
/// all of it (8 bytes LE), which [`verify_payload`] checks.
fn seal(mut buf: Vec<u8>) -> Vec<u8> {
    buf.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::update(0, &buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Why RESTORE refused a payload.
#[derive(Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// Too short, a newer RDB version, or a CRC mismatch.
    VersionOrChecksum,
    /// The payload passed its checks but does not decode.
    BadFormat,
}

/// Checks a DUMP payload's footer (as Redis's verifyDumpPayload).
pub fn verify_payload(p: &[u8]) -> std::result::Result<(), RestoreError> {
    if p.len() < 10 {
        return Err(RestoreError::VersionOrChecksum);
    }
    let footer = &p[p.len() - 10..];
    if u16::from_le_bytes([footer[0], footer[1]]) > RDB_VERSION {
        return Err(RestoreError::VersionOrChecksum);
    }
    let crc = crc64::update(0, &p[..p.len() - 8]);
    if crc.to_le_bytes() != footer[2..] {
        return Err(RestoreError::VersionOrChecksum);
    }
    Ok(())
}

/// The libraries' code of a FUNCTION RESTORE payload, in order. Reading
/// stops at the first record that is not a library or does not decode,
/// whose error (Redis's text) comes last: Redis loads each library as it
/// reads, so the libraries before it are checked first.
pub fn restore_functions(
    p: &[u8],
) -> std::result::Result<Vec<std::result::Result<Vec<u8>, &'static str>>, RestoreError> {
    verify_payload(p)?;
    // Over the whole payload, as Redis reads it: a record may run into the
    // trailer, which only ends the loop.
    let mut d = Decoder::new(p);
    let mut codes = Vec::new();
    while d.remaining() > 10 {
        let code = match d.byte("an opcode") {
            Ok(op @ (OP_FUNCTION | OP_FUNCTION2)) => d.function(op),
            _ => Err("given type is not a function"),
        };
        let stop = code.is_err();
        codes.push(code);
        if stop {
            break;
        }
    }
    Ok(codes)
}

/// Decodes a verified DUMP payload's value.
pub fn restore(p: &[u8], encodings: Encodings) -> std::result::Result<Value, RestoreError> {
    verify_payload(p)?;
    let mut d = Decoder::new(&p[..p.len() - 10]);
    d.encodings = encodings;
    let ty = d.byte("a type").map_err(|_| RestoreError::BadFormat)?;
    d.value_after_key(ty, 0)
        .map_err(|_| RestoreError::BadFormat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &[u8], compress: bool) -> Vec<u8> {
        let mut e = Encoder::new(compress);
        e.string(s);
        let mut d = Decoder::new(&e.buf);
        let out = d.string("s").unwrap().into_owned();
        assert_eq!(d.remaining(), 0);
        out
    }

    #[test]
    fn strings_round_trip_in_every_encoding() {
        for s in [
            &b""[..],
            b"0",
            b"-1",
            b"127",
            b"-128",
            b"128",
            b"32767",
            b"-32769",
            b"2147483647",
            b"-2147483648",
            b"2147483648",
            b"007",
            b"hello",
            &[b'z'; 100],
            &[b'q'; 20000],
        ] {
            assert_eq!(roundtrip(s, true), s);
            assert_eq!(roundtrip(s, false), s);
        }
    }

    #[test]
    fn matches_redis_bytes() {
        // Records as redis-server 7.0.15 wrote them.
        let mut e = Encoder::new(true);
        e.string(b"12345");
        assert_eq!(e.buf, [0xc1, 0x39, 0x30]);
        let mut e = Encoder::new(true);
        e.string(b"99999999999");
        assert_eq!(e.buf[0], 11);
        let mut e = Encoder::new(true);
        e.length(16384);
        assert_eq!(e.buf, [0x80, 0, 0, 0x40, 0]);
        let payload = dump(ValueRef::Emb(b"v"), true, -2);
        assert_eq!(
            payload,
            [0x00, 0x01, b'v', 0x0a, 0x00, 0x91, 0x08, 0xce, 0xb2, 0x19, 0x38, 0x8a, 0xce]
        );
        assert!(
            matches!(restore(&payload, DEFAULT_ENCODINGS), Ok(Value::Emb(v)) if v.as_slice() == b"v")
        );
    }

    /// One collection of each type in each encoding, with its RDB type.
    fn collections() -> Vec<(Object, u8)> {
        let mut out = Vec::new();
        for n in [3usize, 700] {
            let mut h = Hash::new();
            let mut z = ZSet::with_hint(0, 0, DEFAULT_ENCODINGS.zset);
            let mut s = Set::for_first(b"1");
            let mut l = List::new();
            for i in 0..n {
                let item = format!("{}", i as i64 * 7919 - 1000);
                h.set(item.as_bytes(), b"value", DEFAULT_ENCODINGS.hash);
                z.insert(item.as_bytes(), i as f64 / 4.0, DEFAULT_ENCODINGS.zset);
                s.insert(
                    Member::Bytes(item.as_bytes()),
                    DEFAULT_ENCODINGS.set_max_intset,
                );
                l.push(End::Tail, item.as_bytes(), DEFAULT_ENCODINGS.list_fill);
                l.push(
                    End::Tail,
                    &[b'x'; 100][..i % 100],
                    DEFAULT_ENCODINGS.list_fill,
                );
            }
            let small = n < 100;
            out.push((
                Object::Hash(h),
                if small { TYPE_HASH_LISTPACK } else { TYPE_HASH },
            ));
            out.push((
                Object::ZSet(z),
                if small {
                    TYPE_ZSET_LISTPACK
                } else {
                    TYPE_ZSET_2
                },
            ));
            out.push((
                Object::Set(s),
                if small { TYPE_SET_INTSET } else { TYPE_SET },
            ));
            out.push((Object::List(l), TYPE_LIST_QUICKLIST_2));
        }
        out
    }

    #[test]
    fn collections_round_trip_in_their_encodings() {
        for (obj, ty) in collections() {
            let v = ValueRef::Obj(&obj);
            for compress in [true, false] {
                let payload = dump(v, compress, -2);
                assert_eq!(payload[0], ty, "{}", obj.encoding());
                let Ok(Value::Obj(back)) = restore(&payload, DEFAULT_ENCODINGS) else {
                    panic!("{} does not restore", obj.encoding());
                };
                assert_eq!(back.encoding(), obj.encoding());
                // A hashtable's order is its own; everything else is kept.
                if obj.encoding() != "hashtable" {
                    assert!(dump(ValueRef::Obj(&back), compress, -2) == payload);
                }
            }
        }
    }

    #[test]
    fn damaged_collections_fail_cleanly() {
        // The compact encodings: a blob inside a string, whose every byte
        // the decoder checks.
        for (obj, ty) in collections().into_iter().take(4) {
            let body = dump(ValueRef::Obj(&obj), false, -2);
            assert_eq!(body[0], ty);
            let body = &body[..body.len() - 10];
            for at in 0..body.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = body.to_vec();
                    bad[at] ^= flip;
                    let mut d = Decoder::new(&bad[1..]);
                    let _ = d.value_after_key(bad[0], 0);
                }
            }
            for cut in 0..body.len() {
                let mut d = Decoder::new(&body[1..cut.max(1)]);
                assert!(d.value_after_key(body[0], 0).is_err());
            }
        }
    }

    #[test]
    fn function_payloads_match_redis() {
        // FUNCTION DUMP of this library from redis-server 7.0.15 (its code
        // LZF-compressed), and of no library.
        let code = b"#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)";
        let redis = "f5c34056405b1f23216c7561206e616d653d6d796c69620a72656469732e72656769737465725f0b66756e6374696f6e28276d79400b02272c2040066012116b6579732c2061726773292072657475726e600c075b315d20656e64290a008d5936adc6e707da";
        let hex: String = dump_functions(&[code], true)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, redis);
        let empty = dump_functions::<&[u8]>(&[], true);
        assert_eq!(
            empty,
            [0x0a, 0, 0x5d, 0x9b, 0x5c, 0x40, 0x0f, 0x7f, 0xa2, 0xda]
        );
        assert_eq!(restore_functions(&empty), Ok(vec![]));
        let payload = dump_functions(&[code], true);
        assert_eq!(restore_functions(&payload), Ok(vec![Ok(code.to_vec())]));
    }

    #[test]
    fn function_records_in_every_format() {
        // A key's DUMP is not a library.
        assert_eq!(
            restore_functions(&dump(ValueRef::Int(1), true, -2)),
            Ok(vec![Err("given type is not a function")])
        );
        // A library, then a record cut short.
        let mut e = Encoder::new(false);
        e.function(b"#!lua name=a\ncode");
        e.byte(OP_FUNCTION2);
        e.byte(0x40);
        assert_eq!(
            restore_functions(&seal(e.buf)),
            Ok(vec![
                Ok(b"#!lua name=a\ncode".to_vec()),
                Err("Failed loading library payload")
            ])
        );
        // Redis 7.0's release candidates: name, engine, description, code.
        let mut e = Encoder::new(false);
        e.byte(OP_FUNCTION);
        e.string(b"lib");
        e.string(b"LUA");
        e.length(1);
        e.string(b"about");
        e.string(b"body");
        assert_eq!(
            restore_functions(&seal(e.buf)),
            Ok(vec![Ok(b"#!LUA name=lib\nbody".to_vec())])
        );
    }

    #[test]
    fn restore_rejects_bad_payloads() {
        let good = dump(ValueRef::Int(7), true, -2);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(
            restore(&bad_crc, DEFAULT_ENCODINGS),
            Err(RestoreError::VersionOrChecksum)
        ));
        assert!(matches!(
            restore(b"short", DEFAULT_ENCODINGS),
            Err(RestoreError::VersionOrChecksum)
        ));
        // A valid footer over a body that does not decode.
        let mut body = vec![0u8, 0x45];
        body.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64::update(0, &body);
        body.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            restore(&body, DEFAULT_ENCODINGS),
            Err(RestoreError::BadFormat)
        ));
    }

    #[test]
    fn lying_lengths_fail_without_allocating() {
        let mut d = Decoder::new(&[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(d.string("s").is_err());
        let mut d = Decoder::new(&[
            0xc3, 0x01, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
        ]);
        assert!(d.string("s").is_err());
    }

    const LIBRARY: &[u8] =
        b"#!lua name=lib\nredis.register_function('f', function(keys, args) return 1 end)";

    /// A small file in every string encoding, with a library, an expiry
    /// and two databases, as the saver writes it.
    fn sample_file() -> Vec<u8> {
        let mut e = Encoder::new(true);
        e.buf.extend_from_slice(b"REDIS0010");
        e.aux("redis-ver", b"7.0.15");
        e.function(LIBRARY);
        for db in [0u64, 3] {
            e.byte(OP_SELECTDB);
            e.length(db);
            e.byte(OP_RESIZEDB);
            e.length(4);
            e.length(1);
            for (i, v) in [&b"12"[..], b"-70000", b"hello", &[b'x'; 100]]
                .iter()
                .enumerate()
            {
                let entry = Entry::new(
                    format!("k{i}").as_bytes(),
                    Value::string(v),
                    (i == 1).then_some(1 << 40),
                    0,
                );
                e.entry(&entry);
            }
        }
        e.byte(OP_EOF);
        let crc = crc64::update(0, &e.buf);
        e.buf.extend_from_slice(&crc.to_le_bytes());
        e.buf
    }

    #[test]
    fn reads_its_own_files() {
        let data = sample_file();
        let (mut seen, mut functions) = (Vec::new(), Vec::new());
        read_file(&data, 16, true, DEFAULT_ENCODINGS, |item| {
            match item {
                Item::Key(r) => seen.push((r.db, r.key.into_owned(), r.expiry)),
                Item::Function(code) => functions.push(code),
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(functions, [LIBRARY.to_vec()]);
        assert_eq!(seen.len(), 8);
        assert_eq!(seen[1], (0, b"k1".to_vec(), Some(1 << 40)));
        assert_eq!(seen[7].0, 3);
        assert!(read_file(&data, 2, true, DEFAULT_ENCODINGS, |_| Ok(())).is_err());
    }

    #[test]
    fn damaged_files_fail_cleanly() {
        // Every truncation and many single-byte changes: an error (or, for
        // changes the format cannot notice without the checksum, success),
        // never a panic or an allocation the data cannot back.
        let data = sample_file();
        for cut in 0..data.len() {
            assert!(
                read_file(&data[..cut], 16, true, DEFAULT_ENCODINGS, |_| Ok(())).is_err(),
                "cut {cut}"
            );
        }
        for at in 0..data.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[at] ^= flip;
                let _ = read_file(&bad, 16, false, DEFAULT_ENCODINGS, |_| Ok(()));
                assert!(
                    read_file(&bad, 16, true, DEFAULT_ENCODINGS, |_| Ok(())).is_err(),
                    "byte {at}"
                );
                let _ = restore(&bad[9..], DEFAULT_ENCODINGS);
            }
        }
    }
}
