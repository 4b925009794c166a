//! Typed argument parsing with Redis's exact error texts: integers as
//! `string2ll` reads them, floats as `strtod` does, options matched without
//! regard to case.

use super::CmdError;

/// Parses the canonical decimal form of an i64, as Redis's `string2ll`:
/// no sign but `-`, no leading zeros, no spaces, no overflow.
pub fn parse_i64_exact(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// An integer argument; `ERR value is not an integer or out of range`.
pub fn int(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64_exact(arg).ok_or(CmdError::NotInteger)
}

/// Parses a double as Redis's `string2d`: `strtod` over the whole string,
/// no leading space, no NaN, no overflow to infinity from a finite text.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() > 255 || s[0].is_ascii_whitespace() || s.contains(&0) {
        return None;
    }
    let mut buf = [0u8; 256];
    buf[..s.len()].copy_from_slice(s);
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // Safety: buf is NUL-terminated; strtod only reads up to the NUL and
    // stores a pointer into buf in `end`.
    let (v, errno, consumed) = unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtod(buf.as_ptr() as *const libc::c_char, &mut end);
        (
            v,
            *libc::__errno_location(),
            end as usize - buf.as_ptr() as usize,
        )
    };
    if consumed != s.len() || v.is_nan() || (errno == libc::ERANGE && v.is_infinite()) {
        return None;
    }
    Some(v)
}

/// A float argument; `ERR value is not a valid float`.
pub fn float(arg: &[u8]) -> Result<f64, CmdError> {
    parse_f64(arg).ok_or(CmdError::NotFloat)
}

/// Case-insensitive comparison of an argument with an option name.
pub fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// A database index argument, checked against the number of databases.
pub fn db_index(arg: &[u8], databases: usize) -> Result<usize, CmdError> {
    let n = parse_i64_exact(arg).ok_or(CmdError::NotInteger)?;
    if n < 0 || n as usize >= databases {
        return Err(CmdError::Static("ERR DB index is out of range"));
    }
    Ok(n as usize)
}

/// A blocking command's timeout in seconds, as Redis 7.0's
/// `getTimeoutFromObjectOrReply` reads it: a float, rounded up to whole
/// milliseconds; 0 waits for ever (`None`). Values too large for a
/// millisecond count wrap negative in Redis, so they are "negative" here.
pub fn timeout(arg: &[u8]) -> Result<Option<std::time::Duration>, CmdError> {
    let secs = parse_f64(arg).ok_or(CmdError::Static(
        "ERR timeout is not a float or out of range",
    ))?;
    let ms = (secs * 1000.0).ceil();
    if !(0.0..9.223_372_036_854_775e18).contains(&ms) {
        return Err(CmdError::Static("ERR timeout is negative"));
    }
    Ok((ms > 0.0).then(|| std::time::Duration::from_millis(ms as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_string2ll() {
        assert_eq!(parse_i64_exact(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64_exact(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"9223372036854775808"[..],
            b"01",
            b"+1",
            b" 1",
            b"-0",
            b"",
            b"-",
            b"1a",
        ] {
            assert_eq!(parse_i64_exact(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn floats_as_strtod() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        for bad in [&b"nan"[..], b" 1", b"1 ", b"abc", b"", b"1e999"] {
            assert_eq!(parse_f64(bad), None, "{bad:?}");
        }
    }
}
