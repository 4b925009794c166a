//! One key and its value in a single heap block.
//!
//! Memory per key decides whether ferrokv is leaner than Redis, so an entry
//! is one allocation reached through a thin pointer: the hash-chain link,
//! a tag, a 24-bit access clock, the optional expiry, the key, and either
//! the value itself (integers and short strings, Redis's `int` and `embstr`)
//! or a pointer to a boxed [`Object`] for everything that grows in place.
//!
//! Block layout, all little-endian and unaligned past the link:
//! ```text
//! 0..8    next     *mut u8   chain link, owned by the Dict
//! 8       tag      u8        bits 0-1 value kind, bit 2 has-expiry
//! 9..12   clock    [u8; 3]   LRU clock in seconds (Redis's 24-bit lru)
//! 12..    expiry   i64 ms    only with the has-expiry bit
//!         key      varint length + bytes
//!         value    Int: i64 | Emb: varint length + bytes | Obj: pointer
//! ```
//! All unsafe code of the store lives in this module: the rest of the
//! store sees a safe `Entry` that owns its block and frees it on drop.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::{self, NonNull};

use super::object::Object;

/// Strings up to this length are embedded in the entry (Redis's
/// OBJ_ENCODING_EMBSTR_SIZE_LIMIT).
pub const EMBSTR_MAX: usize = 44;

const KIND_INT: u8 = 0;
const KIND_EMB: u8 = 1;
const KIND_OBJ: u8 = 2;
const KIND_MASK: u8 = 0b11;
const HAS_EXPIRY: u8 = 0b100;
const HEADER: usize = 12;

/// The bytes of an embedded string on their way into an entry.
pub type Embedded = smallvec::SmallVec<[u8; EMBSTR_MAX]>;

/// A value to store, before it is laid out in an entry.
#[derive(Debug)]
pub enum Value {
    Int(i64),
    /// A string of at most [`EMBSTR_MAX`] bytes, embedded in the entry.
    /// Held inline until then, so that writing a short string costs no
    /// allocation besides the entry's own.
    Emb(Embedded),
    Obj(Box<Object>),
}

impl Value {
    /// The encoding Redis gives a string written by SET and friends:
    /// `int` when it is the canonical form of an i64, else `embstr` when
    /// short, else `raw`.
    pub fn string(bytes: &[u8]) -> Value {
        if bytes.len() <= 20 {
            if let Some(n) = crate::command::args::parse_i64_exact(bytes) {
                return Value::Int(n);
            }
        }
        if bytes.len() <= EMBSTR_MAX {
            Value::Emb(Embedded::from_slice(bytes))
        } else {
            Value::Obj(Box::new(Object::Raw(bytes.to_vec())))
        }
    }

    /// A string that is expected to grow (APPEND, SETRANGE): always `raw`.
    pub fn raw(bytes: Vec<u8>) -> Value {
        Value::Obj(Box::new(Object::Raw(bytes)))
    }
}

/// A borrowed view of an entry's value.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Int(i64),
    Emb(&'a [u8]),
    Obj(&'a Object),
}

impl ValueRef<'_> {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Int(_) | ValueRef::Emb(_) => "string",
            ValueRef::Obj(o) => o.type_name(),
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            ValueRef::Int(_) => "int",
            ValueRef::Emb(_) => "embstr",
            ValueRef::Obj(o) => o.encoding(),
        }
    }

    /// A deep copy with the same encoding (COPY; Redis's dupStringObject
    /// and friends keep the encoding too).
    pub fn to_value(&self) -> Value {
        match self {
            ValueRef::Int(n) => Value::Int(*n),
            ValueRef::Emb(b) => Value::Emb(Embedded::from_slice(b)),
            ValueRef::Obj(o) => Value::Obj(Box::new((*o).clone())),
        }
    }
}

/// A key with its value, owning one heap block.
#[repr(transparent)]
pub struct Entry {
    ptr: NonNull<u8>,
}

// Safety: an Entry uniquely owns its block and the Object it points to;
// nothing in it is shared, so moving it across threads is sound as long
// as Object is Send + Sync, which the assertion below checks.
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Object>();
};

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Writes `n` as LEB128 at `p`, returning the byte after it.
unsafe fn put_varint(mut p: *mut u8, mut n: usize) -> *mut u8 {
    while n >= 0x80 {
        *p = (n as u8) | 0x80;
        p = p.add(1);
        n >>= 7;
    }
    *p = n as u8;
    p.add(1)
}

unsafe fn get_varint(mut p: *const u8) -> (usize, *const u8) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = *p;
        p = p.add(1);
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return (n, p);
        }
        shift += 7;
    }
}

impl Entry {
    pub fn new(key: &[u8], value: Value, expiry: Option<i64>, clock: u32) -> Entry {
        let (kind, value_len) = match &value {
            Value::Int(_) => (KIND_INT, 8),
            Value::Emb(b) => (KIND_EMB, varint_len(b.len()) + b.len()),
            Value::Obj(_) => (KIND_OBJ, 8),
        };
        let size = HEADER
            + if expiry.is_some() { 8 } else { 0 }
            + varint_len(key.len())
            + key.len()
            + value_len;
        let layout = Layout::from_size_align(size, 8)
            .unwrap_or_else(|_| handle_alloc_error(Layout::new::<u64>()));
        // Safety: size is non-zero (HEADER > 0); every write below stays
        // within the `size` bytes computed above from the same inputs.
        unsafe {
            let base = alloc(layout);
            let Some(ptr) = NonNull::new(base) else {
                handle_alloc_error(layout)
            };
            ptr::write(base as *mut *mut u8, ptr::null_mut());
            *base.add(8) = kind | if expiry.is_some() { HAS_EXPIRY } else { 0 };
            ptr::copy_nonoverlapping(clock.to_le_bytes().as_ptr(), base.add(9), 3);
            let mut p = base.add(HEADER);
            if let Some(at) = expiry {
                ptr::copy_nonoverlapping(at.to_le_bytes().as_ptr(), p, 8);
                p = p.add(8);
            }
            p = put_varint(p, key.len());
            ptr::copy_nonoverlapping(key.as_ptr(), p, key.len());
            p = p.add(key.len());
            match value {
                Value::Int(n) => ptr::copy_nonoverlapping(n.to_le_bytes().as_ptr(), p, 8),
                Value::Emb(b) => {
                    p = put_varint(p, b.len());
                    ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
                }
                Value::Obj(obj) => {
                    let raw = Box::into_raw(obj) as usize;
                    ptr::copy_nonoverlapping(raw.to_le_bytes().as_ptr(), p, 8);
                }
            }
            Entry { ptr }
        }
    }

    fn tag(&self) -> u8 {
        // Safety: the block is at least HEADER bytes and initialised.
        unsafe { *self.ptr.as_ptr().add(8) }
    }

    /// Pointer to the key's length prefix.
    fn key_start(&self) -> *const u8 {
        let skip = if self.tag() & HAS_EXPIRY != 0 { 8 } else { 0 };
        // Safety: the expiry field is present exactly when the bit is set.
        unsafe { self.ptr.as_ptr().add(HEADER + skip) }
    }

    pub fn key(&self) -> &[u8] {
        // Safety: the key was written as varint length + bytes at key_start.
        unsafe {
            let (len, p) = get_varint(self.key_start());
            std::slice::from_raw_parts(p, len)
        }
    }

    fn value_start(&self) -> *const u8 {
        // Safety: the value follows the key directly.
        unsafe {
            let (len, p) = get_varint(self.key_start());
            p.add(len)
        }
    }

    pub fn expiry(&self) -> Option<i64> {
        if self.tag() & HAS_EXPIRY == 0 {
            return None;
        }
        let mut b = [0u8; 8];
        // Safety: the expiry field is present because the bit is set.
        unsafe { ptr::copy_nonoverlapping(self.ptr.as_ptr().add(HEADER), b.as_mut_ptr(), 8) };
        Some(i64::from_le_bytes(b))
    }

    /// Changes the expiry in place when the block already has room for it.
    /// Returns false when the block must be rebuilt (expiry added or removed).
    pub fn set_expiry_in_place(&mut self, at: i64) -> bool {
        if self.tag() & HAS_EXPIRY == 0 {
            return false;
        }
        // Safety: the expiry field is present because the bit is set.
        unsafe {
            ptr::copy_nonoverlapping(at.to_le_bytes().as_ptr(), self.ptr.as_ptr().add(HEADER), 8)
        };
        true
    }

    pub fn clock(&self) -> u32 {
        let mut b = [0u8; 4];
        // Safety: bytes 9..12 are the clock.
        unsafe { ptr::copy_nonoverlapping(self.ptr.as_ptr().add(9), b.as_mut_ptr(), 3) };
        u32::from_le_bytes(b)
    }

    pub fn set_clock(&mut self, clock: u32) {
        // Safety: bytes 9..12 are the clock.
        unsafe {
            ptr::copy_nonoverlapping(clock.to_le_bytes().as_ptr(), self.ptr.as_ptr().add(9), 3)
        };
    }

    fn obj_ptr(&self) -> *mut Object {
        let mut b = [0u8; 8];
        // Safety: only called for KIND_OBJ, whose value is a pointer.
        unsafe { ptr::copy_nonoverlapping(self.value_start(), b.as_mut_ptr(), 8) };
        usize::from_le_bytes(b) as *mut Object
    }

    pub fn value(&self) -> ValueRef<'_> {
        let p = self.value_start();
        match self.tag() & KIND_MASK {
            KIND_INT => {
                let mut b = [0u8; 8];
                // Safety: an int value is 8 bytes at value_start.
                unsafe { ptr::copy_nonoverlapping(p, b.as_mut_ptr(), 8) };
                ValueRef::Int(i64::from_le_bytes(b))
            }
            KIND_EMB => {
                // Safety: an embedded value is varint length + bytes.
                unsafe {
                    let (len, p) = get_varint(p);
                    ValueRef::Emb(std::slice::from_raw_parts(p, len))
                }
            }
            // Safety: the pointer came from Box::into_raw and is owned by
            // this entry for as long as the entry lives.
            _ => ValueRef::Obj(unsafe { &*self.obj_ptr() }),
        }
    }

    /// The boxed object, for values that are changed in place.
    pub fn object_mut(&mut self) -> Option<&mut Object> {
        if self.tag() & KIND_MASK != KIND_OBJ {
            return None;
        }
        // Safety: as in `value`, and `&mut self` makes the borrow unique.
        Some(unsafe { &mut *self.obj_ptr() })
    }

    /// The same key with another value and expiry, keeping the clock.
    pub fn rebuild(&self, value: Value, expiry: Option<i64>) -> Entry {
        Entry::new(self.key(), value, expiry, self.clock())
    }

    /// The same key and value with another expiry. The value moves into
    /// the new block, so even a large collection is not copied.
    pub fn with_expiry(mut self, expiry: Option<i64>) -> Entry {
        let value = self.take_value();
        Entry::new(self.key(), value, expiry, self.clock())
    }

    /// Moves the value out.
    pub fn into_value(mut self) -> Value {
        self.take_value()
    }

    /// Takes the value, leaving an integer in its place so that drop does
    /// not free a boxed object twice.
    fn take_value(&mut self) -> Value {
        match self.value() {
            ValueRef::Int(n) => Value::Int(n),
            ValueRef::Emb(b) => Value::Emb(Embedded::from_slice(b)),
            ValueRef::Obj(_) => {
                // Safety: ownership of the box passes to the returned value;
                // the tag is rewritten so that drop does not free it again
                // (an Obj value and an Int value are both 8 bytes).
                let obj = unsafe { Box::from_raw(self.obj_ptr()) };
                unsafe { *self.ptr.as_ptr().add(8) &= !KIND_MASK };
                Value::Obj(obj)
            }
        }
    }

    pub(super) fn next(&self) -> *mut u8 {
        // Safety: bytes 0..8 are the aligned link.
        unsafe { ptr::read(self.ptr.as_ptr() as *const *mut u8) }
    }

    pub(super) fn set_next(&mut self, next: *mut u8) {
        // Safety: bytes 0..8 are the aligned link.
        unsafe { ptr::write(self.ptr.as_ptr() as *mut *mut u8, next) }
    }

    pub(super) fn into_raw(self) -> *mut u8 {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }

    /// # Safety
    /// `p` must come from `into_raw` and not be owned by anything else.
    pub(super) unsafe fn from_raw(p: *mut u8) -> Entry {
        Entry {
            ptr: NonNull::new_unchecked(p),
        }
    }

    /// Bytes of the block itself, for memory reporting.
    fn block_size(&self) -> usize {
        let end = match self.tag() & KIND_MASK {
            // Safety: as in `value`.
            KIND_EMB => unsafe {
                let (len, p) = get_varint(self.value_start());
                p.add(len)
            },
            _ => unsafe { self.value_start().add(8) },
        };
        end as usize - self.ptr.as_ptr() as usize
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.tag() & KIND_MASK == KIND_OBJ {
            // Safety: the box is owned by this entry (see `into_value`).
            drop(unsafe { Box::from_raw(self.obj_ptr()) });
        }
        let size = self.block_size();
        // Safety: same size and alignment as allocated in `new`.
        unsafe {
            dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(size, 8),
            )
        };
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("expiry", &self.expiry())
            .field("value", &self.value())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let long = vec![b'x'; 300];
        for (value, expiry) in [
            (Value::Int(-42), None),
            (Value::Emb(Embedded::from_slice(b"hello")), Some(1234)),
            (Value::raw(long.clone()), Some(i64::MAX)),
        ] {
            let key = vec![7u8; 200];
            let e = Entry::new(&key, value, expiry, 0xabcdef);
            assert_eq!(e.key(), &key[..]);
            assert_eq!(e.expiry(), expiry);
            assert_eq!(e.clock(), 0xabcdef);
            match e.value() {
                ValueRef::Int(n) => assert_eq!(n, -42),
                ValueRef::Emb(b) => assert_eq!(b, b"hello"),
                ValueRef::Obj(Object::Raw(v)) => assert_eq!(v, &long),
                ValueRef::Obj(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn into_value_moves_the_object_out() {
        let e = Entry::new(b"k", Value::raw(b"abc".to_vec()), None, 0);
        match e.into_value() {
            Value::Obj(o) => assert!(matches!(*o, Object::Raw(ref v) if v == b"abc")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn small_entries_are_small() {
        let e = Entry::new(
            b"key:000000000001",
            Value::Emb(Embedded::from_slice(b"xxxxxxxxxx")),
            None,
            0,
        );
        assert!(e.block_size() <= 48, "{}", e.block_size());
    }
}
