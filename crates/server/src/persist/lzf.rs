//! LZF, the compression Redis uses for long strings in RDB files (liblzf,
//! src/lzf_c.c and src/lzf_d.c). The stream is a sequence of chunks:
//!
//! ```text
//! 000LLLLL <L+1 literal bytes>                 literal run of 1..32 bytes
//! LLLooooo oooooooo                            back-reference, L in 1..6:
//!                                              length L+2, offset o+1 back
//! 111ooooo LLLLLLLL oooooooo                   back-reference of length L+9
//! ```
//!
//! Offsets reach 8192 bytes back, a match is at most 264 bytes. The
//! compressor is liblzf 3.6's lzf_compress with Redis's settings (HLOG 16,
//! VERY_FAST), step for step, so that it finds the same matches and
//! writes the same stream as redis-server: a ferrokv dump of the same data
//! is then the same file. (Redis leaves liblzf's hash table uninitialized,
//! so where a stale slot happens to point at a real match it may find a
//! match this port does not; both streams are valid.)

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// liblzf's IDX(NEXT(hval, p)) with VERY_FAST: the slot of the three
/// bytes whose first two are in `hval`.
fn slot(hval: u32) -> usize {
    ((hval >> (3 * 8 - HLOG)).wrapping_sub(hval.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input` into at most `max_out` bytes, as lzf_compress does;
/// None when it does not fit (Redis then stores the string as it is).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len == 0 || max_out == 0 {
        return None;
    }
    HTAB.with(|t| {
        let mut t = t.borrow_mut();
        let base = t.base;
        // The positions of this call are stored as base + position, so
        // what earlier calls left reads as below base: an empty slot. A
        // table per call would cost more to clear than most strings take
        // to compress.
        t.base = base + in_len as u64 + 1;
        compress_with(input, max_out, &mut t.slots, base)
    })
}

/// liblzf's hash table, kept per thread between calls.
struct Table {
    slots: Box<[u64]>,
    base: u64,
}

thread_local! {
    static HTAB: std::cell::RefCell<Table> = std::cell::RefCell::new(Table {
        slots: vec![0; HSIZE].into_boxed_slice(),
        base: 1,
    });
}

/// Appends one literal byte; a run that reaches MAX_LIT gets its header
/// and the next run's header byte is reserved.
fn push_literal(out: &mut [u8], op: &mut usize, lit: &mut usize, byte: u8) {
    *lit += 1;
    out[*op] = byte;
    *op += 1;
    if *lit == MAX_LIT {
        out[*op - *lit - 1] = (*lit - 1) as u8;
        *lit = 0;
        *op += 1;
    }
}

fn compress_with(input: &[u8], max_out: usize, htab: &mut [u64], base: u64) -> Option<Vec<u8>> {
    let in_len = input.len();
    let mut out = vec![0u8; max_out];
    let out_end = max_out;
    let frst = |i: usize| u32::from(input[i]) << 8 | u32::from(input[i + 1]);
    let next = |v: u32, i: usize| v << 8 | u32::from(input[i + 2]);
    let mut ip = 0usize;
    // `op` is where the next byte goes; the byte before the current
    // literal run (at op - lit - 1) is reserved for its header.
    let mut lit = 0usize;
    let mut op = 1usize;
    let mut hval = if in_len >= 2 { frst(0) } else { 0 };
    while ip + 2 < in_len {
        hval = next(hval, ip);
        let h = slot(hval);
        // An empty slot reads as position 0, which liblzf's
        // `ref > in_data` never matches.
        let r = htab[h].saturating_sub(base) as usize;
        htab[h] = base + ip as u64;
        if r > 0
            && r < ip
            && ip - r - 1 < MAX_OFF
            && input[r + 2] == input[ip + 2]
            && input[r..r + 2] == input[ip..ip + 2]
        {
            let off = ip - r - 1;
            let mut len = 2;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op + 3 + 1 >= out_end && op - usize::from(lit == 0) + 3 + 1 >= out_end {
                return None;
            }
            out[op - lit - 1] = lit.wrapping_sub(1) as u8;
            op -= usize::from(lit == 0);
            // liblzf compares 16 bytes unrolled, without the maxlen test,
            // when more than 16 may match.
            let mut done = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if input[r + len] != input[ip + len] {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1;
            ip += len + 1;
            if ip + 2 >= in_len {
                break;
            }
            // VERY_FAST: index the two positions before the match's end.
            ip -= 2;
            hval = frst(ip);
            for _ in 0..2 {
                hval = next(hval, ip);
                htab[slot(hval)] = base + ip as u64;
                ip += 1;
            }
        } else {
            if op >= out_end {
                return None;
            }
            push_literal(&mut out, &mut op, &mut lit, input[ip]);
            ip += 1;
        }
    }
    if op + 3 > out_end {
        return None;
    }
    while ip < in_len {
        push_literal(&mut out, &mut op, &mut lit, input[ip]);
        ip += 1;
    }
    out[op - lit - 1] = lit.wrapping_sub(1) as u8;
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

/// Decompresses a stream that must expand to exactly `len` bytes. None on
/// any malformed input: a reference before the start, a run past the end,
/// or a different total length.
pub fn decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let lit = input.get(i..i + run)?;
            if out.len() + run > len {
                return None;
            }
            out.extend_from_slice(lit);
            i += run;
        } else {
            let mut l = ctrl >> 5;
            if l == 7 {
                l += *input.get(i)? as usize;
                i += 1;
            }
            let l = l + 2;
            let back = ((ctrl & 0x1f) << 8 | *input.get(i)? as usize) + 1;
            i += 1;
            if back > out.len() || out.len() + l > len {
                return None;
            }
            let from = out.len() - back;
            // Overlapping copies repeat the pattern, byte by byte.
            for k in 0..l {
                let b = out[from + k];
                out.push(b);
            }
        }
    }
    (out.len() == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_redis_output() {
        // "a" * 47 as redis-server 7.0 stored it in an RDB file.
        let stream = [0x01, b'a', b'a', 0xe0, 0x22, 0x00, 0x01, b'a', b'a'];
        assert_eq!(decompress(&stream, 47), Some(vec![b'a'; 47]));
        assert_eq!(decompress(&stream, 46), None);
        assert_eq!(decompress(&stream[..8], 47), None);
        assert_eq!(decompress(&[0x20, 0x00], 3), None);
    }

    #[test]
    fn compresses_as_redis() {
        let stream = [0x01, b'a', b'a', 0xe0, 0x22, 0x00, 0x01, b'a', b'a'];
        assert_eq!(compress(&[b'a'; 47], 43), Some(stream.to_vec()));
    }

    #[test]
    fn round_trips() {
        let mut rng = 0x1234_5678_u64;
        for n in [0usize, 1, 3, 21, 100, 1000, 70_000] {
            for alphabet in [1u64, 4, 256] {
                let data: Vec<u8> = (0..n)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        (rng % alphabet) as u8
                    })
                    .collect();
                if let Some(c) = compress(&data, n.saturating_sub(4)) {
                    assert!(c.len() <= n.saturating_sub(4));
                    assert_eq!(decompress(&c, n), Some(data.clone()), "n={n} a={alphabet}");
                }
            }
        }
        assert!(compress(&[b'x'; 1000], 996).is_some_and(|c| c.len() < 30));
    }
}
