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
//! Offsets reach 8192 bytes back, a match is at most 264 bytes. Any valid
//! stream loads into Redis, so the compressor need not reproduce liblzf's
//! exact output; the decompressor accepts every stream liblzf writes.

const HLOG: u32 = 14;
const MAX_LIT: usize = 32;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

fn hash(p: &[u8]) -> usize {
    let v = u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]);
    (v.wrapping_mul(2654435761) >> (32 - HLOG)) as usize
}

/// Compresses `input`; None when the result would not be shorter than
/// `max_out` bytes (Redis then stores the string uncompressed).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(max_out.min(input.len() + 16));
    let mut table = vec![0usize; 1 << HLOG];
    let mut lit_start = 0;
    let mut i = 0;
    let flush_literals = |out: &mut Vec<u8>, lit: &[u8]| {
        for run in lit.chunks(MAX_LIT) {
            out.push((run.len() - 1) as u8);
            out.extend_from_slice(run);
        }
    };
    while i + 2 < input.len() {
        let h = hash(&input[i..]);
        // Positions are stored plus one so that 0 means "empty".
        let cand = table[h];
        table[h] = i + 1;
        if cand > 0 {
            let r = cand - 1;
            let off = i - r;
            if off <= MAX_OFF && input[r..r + 3] == input[i..i + 3] {
                let max = (input.len() - i).min(MAX_REF);
                let mut len = 3;
                while len < max && input[r + len] == input[i + len] {
                    len += 1;
                }
                flush_literals(&mut out, &input[lit_start..i]);
                let (l, o) = (len - 2, off - 1);
                if l < 7 {
                    out.push(((l as u8) << 5) | (o >> 8) as u8);
                } else {
                    out.push((7 << 5) | (o >> 8) as u8);
                    out.push((l - 7) as u8);
                }
                out.push(o as u8);
                if out.len() >= max_out {
                    return None;
                }
                // Index the positions inside the match (cheaply: its end).
                let end = i + len;
                let mut j = i + 1;
                while j < end && j + 2 < input.len() {
                    table[hash(&input[j..])] = j + 1;
                    j += 1;
                }
                i = end;
                lit_start = i;
                continue;
            }
        }
        i += 1;
    }
    flush_literals(&mut out, &input[lit_start..]);
    (out.len() < max_out).then_some(out)
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
                    assert!(c.len() < n.saturating_sub(4));
                    assert_eq!(decompress(&c, n), Some(data.clone()), "n={n} a={alphabet}");
                }
            }
        }
        assert!(compress(&[b'x'; 1000], 996).is_some_and(|c| c.len() < 30));
    }
}
