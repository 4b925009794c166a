//! `ferrokv::glob::matches` must never panic, must stay fast on any
//! pattern (libFuzzer's -timeout catches runaway backtracking), and must
//! agree with Redis's `stringmatchlen` in both case modes.
//!
//! The reference below transcribes stringmatchlen_impl's C semantics:
//! bytes are `char` (signed on x86-64, which matters in `[a-z]` ranges),
//! reading past the end yields the NUL terminator, a failed `*` stops
//! longer attempts, and recursion deeper than 1000 fails the match.
//!
//! Input layout: bytes 0-1 give the pattern length, the rest is the
//! pattern followed by the string.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn signed(c: u8) -> i32 {
    c as i8 as i32
}

fn lower(c: i32) -> i32 {
    if (b'A' as i32..=b'Z' as i32).contains(&c) {
        c + 32
    } else {
        c
    }
}

fn same(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        lower(signed(a)) == lower(signed(b))
    } else {
        a == b
    }
}

/// `pat[pi..]` and `s[si..]` are the remaining pattern and string; like the
/// C pointers, they always end where the whole inputs end.
#[allow(clippy::too_many_arguments)]
fn reference(
    pat: &[u8],
    mut pi: usize,
    s: &[u8],
    mut si: usize,
    nocase: bool,
    skip: &mut bool,
    nesting: u32,
) -> bool {
    if nesting > 1000 {
        return false;
    }
    let mut plen = pat.len() - pi;
    let mut slen = s.len() - si;
    while plen > 0 && slen > 0 {
        match at(pat, pi) {
            b'*' => {
                while plen > 0 && at(pat, pi + 1) == b'*' {
                    pi += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if reference(pat, pi + 1, s, si, nocase, skip, nesting + 1) {
                        return true;
                    }
                    if *skip {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
                *skip = true;
                return false;
            }
            b'?' => {
                si += 1;
                slen -= 1;
            }
            b'[' => {
                pi += 1;
                plen -= 1;
                let not = at(pat, pi) == b'^';
                if not {
                    pi += 1;
                    plen -= 1;
                }
                let c = at(s, si);
                let mut matched = false;
                loop {
                    let p0 = at(pat, pi);
                    if p0 == b'\\' && plen >= 2 {
                        pi += 1;
                        plen -= 1;
                        if at(pat, pi) == c {
                            matched = true;
                        }
                    } else if p0 == b']' {
                        break;
                    } else if plen == 0 {
                        pi -= 1;
                        plen += 1;
                        break;
                    } else if plen >= 3 && at(pat, pi + 1) == b'-' {
                        let (mut lo, mut hi, mut ch) =
                            (signed(p0), signed(at(pat, pi + 2)), signed(c));
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        if nocase {
                            lo = lower(lo);
                            hi = lower(hi);
                            ch = lower(ch);
                        }
                        pi += 2;
                        plen -= 2;
                        if ch >= lo && ch <= hi {
                            matched = true;
                        }
                    } else if same(p0, c, nocase) {
                        matched = true;
                    }
                    pi += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
            p0 => {
                if p0 == b'\\' && plen >= 2 {
                    pi += 1;
                    plen -= 1;
                }
                if !same(at(pat, pi), at(s, si), nocase) {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
        }
        pi += 1;
        plen -= 1;
        if slen == 0 {
            while at(pat, pi) == b'*' {
                pi += 1;
                plen -= 1;
            }
            break;
        }
    }
    plen == 0 && slen == 0
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let rest = &data[2..];
    let split = u16::from_le_bytes([data[0], data[1]]) as usize % (rest.len() + 1);
    let (pattern, string) = rest.split_at(split);
    for nocase in [false, true] {
        let got = ferrokv::glob::matches(pattern, string, nocase);
        let want = reference(pattern, 0, string, 0, nocase, &mut false, 0);
        assert_eq!(
            got, want,
            "pattern {pattern:?} string {string:?} nocase {nocase}"
        );
    }
});
