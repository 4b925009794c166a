//! The length prefixes of the packed small encodings (list nodes, packed
//! hashes and sorted sets): 7 bits a byte, low bits first, high bit set on
//! every byte but the last. The buffers are only ever written by the
//! encodings themselves.

/// How many bytes `n` takes.
pub fn len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

pub fn put(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads the varint at `at`: (value, position after it).
pub fn get(buf: &[u8], mut at: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[at];
        at += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return (n, at);
        }
        shift += 7;
    }
}
