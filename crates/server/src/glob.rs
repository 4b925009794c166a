//! Redis's glob matching (`stringmatchlen`), used by KEYS, SCAN MATCH and
//! CONFIG GET: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, and `\` escapes, with
//! Redis's exact treatment of odd patterns (unterminated classes, reversed
//! ranges, a lone trailing backslash).
//!
//! Patterns come from clients, so matching is bounded: a `*` that failed
//! to match the rest stops longer attempts (as Redis does), which keeps the
//! work polynomial, and nesting is capped so a pattern of many stars cannot
//! exhaust the stack.

const MAX_NESTING: usize = 1000;

/// Whether `string` matches `pattern`.
pub fn matches(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, nocase, &mut skip_longer, 0)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

fn match_impl(
    mut p: &[u8],
    mut s: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: usize,
) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_impl(&p[1..], s, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let c = s[0];
                let mut matched = false;
                loop {
                    let at = |i: usize| p.get(i).copied().unwrap_or(0);
                    if at(0) == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if p[0] == c {
                            matched = true;
                        }
                    } else if at(0) == b']' {
                        break;
                    } else if p.is_empty() {
                        // Unterminated class: it ends with the pattern.
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        // Redis compares C `char`s, signed on the platforms
                        // it runs on: bytes from 0x80 up sort below NUL.
                        let (mut lo, mut hi, mut ch) = (p[0] as i8, p[2] as i8, c as i8);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        if nocase {
                            let lower = |b: i8| (b as u8).to_ascii_lowercase() as i8;
                            lo = lower(lo);
                            hi = lower(hi);
                            ch = lower(ch);
                        }
                        p = &p[2..];
                        if ch >= lo && ch <= hi {
                            matched = true;
                        }
                    } else if eq(p[0], c, nocase) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // The class ran to the end of the pattern.
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if !eq(p[0], s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
            other => {
                if !eq(other, s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_rules() {
        let yes: &[(&str, &str)] = &[
            ("*", "anything"),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h[b-a]llo", "hallo"),
            ("h\\*llo", "h*llo"),
            ("a*", "a"),
            ("[\\]]", "]"),
            ("a[bc", "ab"),
            ("[a-", "a"),
        ];
        for (p, s) in yes {
            assert!(matches(p.as_bytes(), s.as_bytes(), false), "{p} {s}");
        }
        let no: &[(&str, &str)] = &[
            ("h[^e]llo", "hello"),
            ("h?llo", "hllo"),
            ("*", ""),
            ("a[bc", "abc"),
            ("*[", "x["),
            ("[", ""),
            ("h\\*llo", "hello"),
        ];
        for (p, s) in no {
            assert!(!matches(p.as_bytes(), s.as_bytes(), false), "{p} {s}");
        }
        assert!(matches(b"HEL*", b"hello", true));
    }

    /// Checked against redis-server 7.0.15 with KEYS; found by the glob fuzz target.
    #[test]
    fn ranges_compare_signed_chars() {
        assert!(matches(b"[a-\xff]", b"A", false));
        assert!(!matches(b"[a-\xff]", b"b", false));
        assert!(matches(b"[A-\x80]", b"\xc8", false));
        assert!(matches(b"[\x80-\xff]", b"\xc8", false));
        assert!(!matches(b"*[\n-\xff", b"\xff\xff\xd9", false));
        assert!(matches(b"[a-\xff]", b"\xff", true));
        assert!(!matches(b"[a-\xff]", b"b", true));
    }

    #[test]
    fn pathological_patterns_finish() {
        let p = "a*".repeat(5000) + "b";
        let s = "a".repeat(5000);
        assert!(!matches(p.as_bytes(), s.as_bytes(), false));
    }
}
