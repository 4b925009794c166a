//! INCRBYFLOAT's arithmetic, done in C `long double` (csrc/ldouble.c) so
//! that sums and their printed form match Redis byte for byte.

use std::os::raw::{c_char, c_int};

use crate::command::CmdError;

/// Redis's MAX_LONG_DOUBLE_CHARS, the size of the output buffer.
const LD_CHARS: usize = 5 * 1024;
const NOT_FLOAT: c_int = -1;
const NAN_OR_INF: c_int = -2;

extern "C" {
    fn ferrokv_ld_incr(
        cur: *const c_char,
        cur_len: usize,
        incr: *const c_char,
        incr_len: usize,
        out: *mut c_char,
        out_cap: usize,
    ) -> c_int;
}

/// `cur + incr` as Redis prints it; `cur` is None for a missing key (0).
pub fn incr(cur: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, CmdError> {
    let mut out = vec![0u8; LD_CHARS];
    let (cur_ptr, cur_len) = match cur {
        Some(c) => (c.as_ptr() as *const c_char, c.len()),
        None => (std::ptr::null(), 0),
    };
    // Safety: both inputs are valid for their lengths (the C side copies
    // them into its own NUL-terminated buffers); `out` has LD_CHARS
    // writable bytes and the C side writes at most `out_cap` of them.
    let n = unsafe {
        ferrokv_ld_incr(
            cur_ptr,
            cur_len,
            incr.as_ptr() as *const c_char,
            incr.len(),
            out.as_mut_ptr() as *mut c_char,
            out.len(),
        )
    };
    match n {
        NOT_FLOAT => Err(CmdError::NotFloat),
        NAN_OR_INF => Err(CmdError::Static(
            "ERR increment would produce NaN or Infinity",
        )),
        n => {
            out.truncate(usize::try_from(n).unwrap_or(0));
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(cur: Option<&str>, by: &str) -> Result<String, CmdError> {
        incr(cur.map(str::as_bytes), by.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn prints_like_redis() {
        assert_eq!(sum(Some("10.5"), "0.1").unwrap(), "10.6");
        assert_eq!(
            sum(Some("10.6"), "5.0e3").unwrap(),
            "5010.60000000000000009"
        );
        assert_eq!(sum(None, "3").unwrap(), "3");
        assert_eq!(sum(None, "-0.0").unwrap(), "0");
        assert_eq!(sum(None, "1e-20").unwrap(), "0");
        assert_eq!(sum(None, "0x10").unwrap(), "16");
        assert_eq!(sum(Some("-5"), "2.5").unwrap(), "-2.5");
        let big = sum(None, "1e308").unwrap();
        assert_eq!(big.len(), 308);
        assert!(big.starts_with("99999999999999999996685879655845645660"));
    }

    #[test]
    fn rejects_like_redis() {
        for bad in ["", " 1", "1 ", "abc", "nan", "1e5000", "1e-5000", "1\x002"] {
            assert_eq!(sum(None, bad), Err(CmdError::NotFloat), "{bad:?}");
        }
        assert_eq!(sum(Some("x"), "1"), Err(CmdError::NotFloat));
        assert_eq!(sum(Some(""), "1"), Err(CmdError::NotFloat));
        let inf = Err(CmdError::Static(
            "ERR increment would produce NaN or Infinity",
        ));
        assert_eq!(sum(None, "inf"), inf);
        assert_eq!(sum(Some("inf"), "-inf"), inf);
        assert_eq!(sum(Some("1e4932"), "1e4932"), inf);
        assert_eq!(sum(None, &"1".repeat(5120)), Err(CmdError::NotFloat));
    }
}
