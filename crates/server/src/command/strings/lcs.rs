//! The longest common subsequence of two strings, as Redis's LCS command
//! computes it: the classic dynamic-programming table, then one walk back
//! from its corner that yields the subsequence and its matching ranges.
//! The walk follows Redis's tie-breaking exactly, because clients see
//! which of several equally long answers comes back.

use crate::command::CmdError;

/// One run of consecutive matching bytes: inclusive index ranges in each
/// string (Redis reports them from the end of the strings backwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub a: (u32, u32),
    pub b: (u32, u32),
    pub len: u32,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lcs {
    /// Length of the longest common subsequence.
    pub len: u32,
    /// The subsequence itself (empty unless asked for).
    pub string: Vec<u8>,
    /// Runs of at least the minimum length (empty unless asked for).
    pub ranges: Vec<Range>,
}

/// What the walk back must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Only the length (LEN).
    Len,
    /// The subsequence (no option).
    String,
    /// The ranges of runs at least this long (IDX [MINMATCHLEN n]).
    Ranges { min_len: u64 },
}

/// Computes the LCS of `a` and `b`. The table costs 4 bytes per cell and
/// may not exceed `max_table` bytes (Redis bounds it by proto-max-bulk-len).
pub fn lcs(a: &[u8], b: &[u8], want: Want, max_table: u64) -> Result<Lcs, CmdError> {
    let too_long = u32::MAX as usize - 1;
    if a.len() >= too_long || b.len() >= too_long {
        return Err(CmdError::Static("ERR String too long for LCS"));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    let bytes = cells.checked_mul(4);
    if matches!(bytes, Some(n) if n > max_table) {
        return Err(CmdError::Static(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let mut dp: Vec<u32> = Vec::new();
    let fits =
        bytes.is_some() && usize::try_from(cells).is_ok_and(|n| dp.try_reserve_exact(n).is_ok());
    if !fits {
        return Err(CmdError::Static(
            "ERR Insufficient memory, failed allocating transient memory for LCS",
        ));
    }
    let w = blen + 1;
    dp.resize(w, 0);
    for i in 1..=alen {
        dp.push(0);
        for j in 1..=blen {
            let v = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * w + j - 1] + 1
            } else {
                dp[(i - 1) * w + j].max(dp[i * w + j - 1])
            };
            dp.push(v);
        }
    }
    let len = dp[alen * w + blen];
    let mut out = Lcs {
        len,
        ..Lcs::default()
    };
    if want == Want::Len {
        return Ok(out);
    }
    let min_len = match want {
        Want::Ranges { min_len } => Some(min_len),
        _ => None,
    };

    // Walk back from the corner; `run` is the run of matches being
    // extended backwards, if any.
    let mut string = vec![0u8; len as usize];
    let mut idx = len as usize;
    let (mut i, mut j) = (alen, blen);
    let mut run: Option<Range> = None;
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            idx -= 1;
            string[idx] = a[i - 1];
            let (ai, bj) = ((i - 1) as u32, (j - 1) as u32);
            match &mut run {
                None => {
                    run = Some(Range {
                        a: (ai, ai),
                        b: (bj, bj),
                        len: 1,
                    })
                }
                // Contiguous with the open run: extend it backwards.
                Some(r) if r.a.0 == ai + 1 && r.b.0 == bj + 1 => {
                    r.a.0 = ai;
                    r.b.0 = bj;
                }
                Some(_) => emit = true,
            }
            // A run touching the start of either string ends the walk.
            if matches!(run, Some(r) if r.a.0 == 0 || r.b.0 == 0) {
                emit = true;
            }
            i -= 1;
            j -= 1;
        } else {
            if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit {
            let done = run.take();
            if let (Some(mut r), Some(min)) = (done, min_len) {
                r.len = r.a.1 - r.a.0 + 1;
                if min == 0 || u64::from(r.len) >= min {
                    out.ranges.push(r);
                }
            }
        }
    }
    if min_len.is_none() {
        out.string = string;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 512 << 20;

    fn r(a: (u32, u32), b: (u32, u32)) -> Range {
        Range {
            a,
            b,
            len: a.1 - a.0 + 1,
        }
    }

    #[test]
    fn string_and_length() {
        let l = lcs(b"ohmytext", b"mynewtext", Want::String, MAX).unwrap();
        assert_eq!((l.len, &l.string[..]), (6, &b"mytext"[..]));
        assert_eq!(
            lcs(b"ohmytext", b"mynewtext", Want::Len, MAX).unwrap().len,
            6
        );
        assert_eq!(lcs(b"", b"abc", Want::String, MAX).unwrap(), Lcs::default());
    }

    #[test]
    fn ranges_as_redis_reports_them() {
        let l = lcs(b"ohmytext", b"mynewtext", Want::Ranges { min_len: 0 }, MAX).unwrap();
        assert_eq!(l.ranges, vec![r((4, 7), (5, 8)), r((2, 3), (0, 1))]);
        assert!(l.string.is_empty());
        let l = lcs(b"ohmytext", b"mynewtext", Want::Ranges { min_len: 4 }, MAX).unwrap();
        assert_eq!(l.ranges, vec![r((4, 7), (5, 8))]);
    }

    #[test]
    fn table_limits() {
        let err = lcs(&[b'a'; 600], &[b'a'; 600], Want::Len, 1 << 20).unwrap_err();
        assert!(err.text().contains("exceeds proto-max-bulk-len"));
        assert_eq!(
            lcs(&[b'a'; 600], &[b'a'; 600], Want::Len, MAX).unwrap().len,
            600
        );
    }
}
