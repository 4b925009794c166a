//! Reply encoder: semantic reply methods whose bytes depend on the
//! connection's protocol version (RESP2 or RESP3), appended to one output
//! buffer that the connection writes once per pipeline batch.

use std::io::Write;

/// The protocol a connection speaks, chosen with `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// A reply whose element count is written after its elements.
#[derive(Debug)]
#[must_use = "a deferred header must be completed with Reply::set_deferred"]
pub struct Deferred {
    at: usize,
    kind: u8,
}

/// Appends replies to an output buffer.
#[derive(Debug, Default)]
pub struct Reply {
    pub buf: Vec<u8>,
    pub proto: Protocol,
}

impl Reply {
    pub fn new(proto: Protocol) -> Self {
        Reply {
            buf: Vec::with_capacity(16 * 1024),
            proto,
        }
    }

    pub fn is_resp3(&self) -> bool {
        self.proto == Protocol::Resp3
    }

    fn header(&mut self, kind: u8, n: i64) {
        self.buf.push(kind);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `+OK`-style status reply. `s` must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// Error reply; `s` is the whole text including its code (`ERR ...`).
    /// Newlines are replaced by spaces, as Redis does, so a client-supplied
    /// string cannot break the framing.
    pub fn error(&mut self, s: &str) {
        self.buf.push(b'-');
        self.buf.extend(
            s.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `n`.
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(n).as_bytes());
    }

    /// Null bulk string: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        match self.proto {
            Protocol::Resp2 => self.buf.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    /// Null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        match self.proto {
            Protocol::Resp2 => self.buf.extend_from_slice(b"*-1\r\n"),
            Protocol::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// Map of `n` pairs; a flat array of 2n elements in RESP2.
    pub fn map(&mut self, n: usize) {
        match self.proto {
            Protocol::Resp2 => self.header(b'*', 2 * n as i64),
            Protocol::Resp3 => self.header(b'%', n as i64),
        }
    }

    pub fn set(&mut self, n: usize) {
        match self.proto {
            Protocol::Resp2 => self.header(b'*', n as i64),
            Protocol::Resp3 => self.header(b'~', n as i64),
        }
    }

    pub fn push(&mut self, n: usize) {
        match self.proto {
            Protocol::Resp2 => self.header(b'*', n as i64),
            Protocol::Resp3 => self.header(b'>', n as i64),
        }
    }

    pub fn bool(&mut self, v: bool) {
        match self.proto {
            Protocol::Resp2 => self.int(v as i64),
            Protocol::Resp3 => self
                .buf
                .extend_from_slice(if v { b"#t\r\n" } else { b"#f\r\n" }),
        }
    }

    /// A double as Redis formats it (`%.17g`, `inf`, `-inf`): a bulk
    /// string in RESP2, a `,` double in RESP3.
    pub fn double(&mut self, d: f64) {
        let text = format_double(d);
        match self.proto {
            Protocol::Resp2 => self.bulk(text.as_bytes()),
            Protocol::Resp3 => {
                self.buf.push(b',');
                self.buf.extend_from_slice(text.as_bytes());
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Verbatim text (`=len\r\ntxt:...` in RESP3, a bulk string in RESP2).
    pub fn verbatim(&mut self, text: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                self.header(b'=', text.len() as i64 + 4);
                self.buf.extend_from_slice(b"txt:");
                self.buf.extend_from_slice(text);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Starts an array, map or set whose length is not known yet.
    pub fn deferred(&mut self, kind: DeferredKind) -> Deferred {
        Deferred {
            at: self.buf.len(),
            kind: match kind {
                DeferredKind::Array => b'*',
                DeferredKind::Map => b'%',
                DeferredKind::Set => b'~',
            },
        }
    }

    /// Completes a deferred header with the number of elements (pairs for
    /// a map) written since it was started.
    pub fn set_deferred(&mut self, d: Deferred, n: usize) {
        let (kind, count) = match (self.proto, d.kind) {
            (Protocol::Resp2, b'%') => (b'*', 2 * n),
            (Protocol::Resp2, _) => (b'*', n),
            (Protocol::Resp3, k) => (k, n),
        };
        let mut head = Vec::with_capacity(24);
        head.push(kind);
        let _ = write!(head, "{count}\r\n");
        self.buf.splice(d.at..d.at, head);
    }

    /// Raw, already encoded bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// The aggregate kind of a [`Deferred`] reply.
#[derive(Clone, Copy, Debug)]
pub enum DeferredKind {
    Array,
    Map,
    Set,
}

/// Formats a double as C's `printf("%.17g")` does, with `inf`/`-inf`/`nan`
/// spelled as Redis spells them.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    format_dyadic(d).unwrap_or_else(|| format_general(d))
}

/// `%.17g` of a finite, non-zero double.
fn format_general(d: f64) -> String {
    // 17 significant digits in scientific form, then laid out as %g would.
    let sci = format!("{:.16e}", d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if exp >= 0 {
        let int_len = exp as usize + 1;
        out.push_str(&digits[..int_len]);
        out.push('.');
        out.push_str(&digits[int_len..]);
    } else {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    }
    trim_fraction(&out).to_string()
}

/// `%.17g` of a double that is a multiple of 2^-10 below 2^53 (integers,
/// halves, quarters ...: most scores) with at most 17 significant digits,
/// from integer arithmetic. Such a value has an exact decimal expansion
/// that short, which is what `%.17g` prints, trailing zeros removed; the
/// general path's exact formatting costs a big-number division per call.
/// None for any other value.
fn format_dyadic(d: f64) -> Option<String> {
    const MAX_K: u32 = 10;
    let a = d.abs();
    // Below 2^-10 no multiple of 2^-10 but zero remains; from 2^53 on, the
    // integer part is no longer exact in a u64 conversion's sense below.
    if !(1.0 / 1024.0..9_007_199_254_740_992.0).contains(&a) {
        return None;
    }
    let int = a.trunc();
    let frac = a - int;
    // frac is exact (Sterbenz), and scaling by a power of two is exact.
    let k = (0..=MAX_K).find(|&k| (frac * f64::from(1u32 << k)).fract() == 0.0)?;
    let int = int as u64;
    let frac_num = (frac * f64::from(1u32 << k)) as u64;
    let int_digits = if int == 0 { 0 } else { int.ilog10() + 1 };
    if int_digits + k > 17 {
        return None;
    }
    let sign = if d < 0.0 { "-" } else { "" };
    if k == 0 {
        return Some(format!("{sign}{int}"));
    }
    // frac_num / 2^k = frac_num * 5^k / 10^k: k decimal digits, the last
    // one non-zero (k is the smallest that makes the fraction whole).
    let digits = frac_num * 5u64.pow(k);
    Some(format!("{sign}{int}.{digits:0width$}", width = k as usize))
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dyadic fast path prints exactly what the general path prints,
    /// over every multiple of 2^-k (k up to 12, past the fast path's 10)
    /// near zero, near the 17-digit limit and near 2^53.
    #[test]
    fn dyadic_doubles_print_as_the_general_path_does() {
        let mut checked = 0;
        for k in 0..=12u32 {
            let scale = f64::from(1u32 << k);
            let bases: [i64; 4] = [0, 1_000_000, 99_999_999_999, 9_007_199_254_740_000];
            for base in bases {
                for n in 0..300i64 {
                    for sign in [1.0, -1.0] {
                        let d = sign * ((base as f64) + n as f64 / scale);
                        if d == 0.0 {
                            continue;
                        }
                        let fast = format_dyadic(d);
                        if let Some(fast) = fast {
                            assert_eq!(fast, format_general(d), "{d}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "the fast path ran {checked} times");
    }

    #[test]
    fn doubles_match_printf_g17() {
        let cases = [
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (3.0, "3"),
            (1e17, "1e+17"),
            (1.2345e-5, "1.2345e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (12345678901234567.0, "12345678901234568"),
            (f64::INFINITY, "inf"),
        ];
        for (d, want) in cases {
            assert_eq!(format_double(d), want, "{d}");
        }
    }

    #[test]
    fn protocol_dependent_shapes() {
        let mut r2 = Reply::new(Protocol::Resp2);
        let mut r3 = Reply::new(Protocol::Resp3);
        for r in [&mut r2, &mut r3] {
            r.map(1);
            r.null();
            r.bool(true);
            r.double(2.0);
        }
        assert_eq!(r2.buf, b"*2\r\n$-1\r\n:1\r\n$1\r\n2\r\n");
        assert_eq!(r3.buf, b"%1\r\n_\r\n#t\r\n,2\r\n");
    }

    #[test]
    fn deferred_headers() {
        let mut r = Reply::new(Protocol::Resp2);
        let d = r.deferred(DeferredKind::Map);
        r.int(1);
        r.int(2);
        r.set_deferred(d, 1);
        assert_eq!(r.buf, b"*2\r\n:1\r\n:2\r\n");
    }
}
