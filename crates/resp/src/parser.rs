//! Incremental request parser: RESP multibulk arrays and inline commands.
//!
//! The parser is handed the unconsumed part of a connection's read buffer,
//! starting at the first byte of a request. It either returns a complete
//! request (its arguments are then read from the same buffer through
//! [`RequestParser::args`]), reports that more bytes are needed, or fails
//! with a protocol error. When a request is incomplete, the parser remembers
//! how far it got, so a large multibulk arriving in many reads is scanned
//! once, not once per read.

use std::fmt;

/// Size limits applied while parsing; defaults are Redis 7.0's.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `proto-max-bulk-len`: the longest bulk argument accepted.
    pub max_bulk_len: u64,
    /// Whether the client has authenticated (or needs no authentication).
    /// Unauthenticated clients get Redis's tighter limits, so that a stranger
    /// cannot make the server buffer large requests.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            authenticated: true,
        }
    }
}

/// The longest inline request or count line (Redis's PROTO_INLINE_MAX_SIZE).
const INLINE_MAX: usize = 64 * 1024;
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16384;

/// A malformed request. The text is what Redis replies (after `-ERR `)
/// before closing the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn err<T>(text: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(text.into()))
}

/// Where the arguments of the last parsed request live.
#[derive(Debug, Default)]
enum Kind {
    #[default]
    None,
    /// Byte ranges of the buffer handed to `parse`.
    Multibulk,
    /// Unquoted arguments of an inline command, owned by the parser.
    Inline,
}

/// Parses one request at a time from the front of a buffer.
#[derive(Debug, Default)]
pub struct RequestParser {
    kind: Kind,
    /// Multibulk: (start, end) of each argument parsed so far.
    spans: Vec<(usize, usize)>,
    inline: Vec<Vec<u8>>,
    /// Multibulk progress: `Some(n)` once the `*n` header is read.
    expected: Option<usize>,
    /// Offset of the next unparsed byte of the current request.
    pos: usize,
    /// Length of the bulk whose `$len` header has been read.
    pending_bulk: Option<usize>,
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the request at the start of `buf`.
    ///
    /// Returns `Ok(Some(n))` when a whole request of `n` bytes is present
    /// (`n` may cover only blank lines or an empty multibulk, in which case
    /// [`args_len`](Self::args_len) is 0 and the request is to be skipped),
    /// `Ok(None)` when more bytes are needed. `buf` must start at the same
    /// byte on every call until a request completes.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
        if self.expected.is_none() {
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => {}
                Some(_) => return self.parse_inline(buf),
            }
            let Some(eol) = find_crlf(buf, 0) else {
                if buf.len() > INLINE_MAX {
                    return err("too big mbulk count string");
                }
                return Ok(None);
            };
            let count = parse_int(&buf[1..eol]).filter(|&n| n <= i32::MAX as i64);
            let Some(count) = count else {
                return err("invalid multibulk length");
            };
            if !limits.authenticated && count > UNAUTH_MAX_MULTIBULK {
                return err("unauthenticated multibulk length");
            }
            if count <= 0 {
                self.finish(Kind::Multibulk);
                self.spans.clear();
                return Ok(Some(eol + 2));
            }
            self.spans.clear();
            // Reserve for what the buffer can hold, not what the header claims.
            self.spans.reserve((count as usize).min(1024));
            self.expected = Some(count as usize);
            self.pos = eol + 2;
        }
        let expected = self.expected.unwrap_or(0);
        while self.spans.len() < expected {
            let len = match self.pending_bulk {
                Some(len) => len,
                None => {
                    let Some(&first) = buf.get(self.pos) else {
                        return Ok(None);
                    };
                    let Some(eol) = find_crlf(buf, self.pos) else {
                        if buf.len() - self.pos > INLINE_MAX {
                            return err("too big bulk count string");
                        }
                        return Ok(None);
                    };
                    if first != b'$' {
                        return err(format!("expected '$', got '{}'", first as char));
                    }
                    let len = parse_int(&buf[self.pos + 1..eol])
                        .filter(|&n| n >= 0 && n as u64 <= limits.max_bulk_len);
                    let Some(len) = len else {
                        return err("invalid bulk length");
                    };
                    if !limits.authenticated && len > UNAUTH_MAX_BULK {
                        return err("unauthenticated bulk length");
                    }
                    self.pos = eol + 2;
                    self.pending_bulk = Some(len as usize);
                    len as usize
                }
            };
            // Redis skips the two bytes after the payload without checking them.
            if buf.len() < self.pos + len + 2 {
                return Ok(None);
            }
            self.spans.push((self.pos, self.pos + len));
            self.pos += len + 2;
            self.pending_bulk = None;
        }
        let consumed = self.pos;
        self.finish(Kind::Multibulk);
        Ok(Some(consumed))
    }

    /// How many more bytes the request being parsed needs at least, so the
    /// caller can size its next read for a large bulk in one allocation.
    pub fn bytes_wanted(&self, buffered: usize) -> usize {
        match self.pending_bulk {
            Some(len) => (self.pos + len + 2).saturating_sub(buffered),
            None => 0,
        }
    }

    fn finish(&mut self, kind: Kind) {
        self.kind = kind;
        self.expected = None;
        self.pending_bulk = None;
        self.pos = 0;
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        // Redis looks for the newline with strchr, which stops at a NUL
        // byte: a line with a NUL before its newline never completes.
        let nl = buf
            .iter()
            .position(|&b| b == b'\n' || b == 0)
            .filter(|&i| buf[i] == b'\n');
        let Some(nl) = nl else {
            if buf.len() > INLINE_MAX {
                return err("too big inline request");
            }
            return Ok(None);
        };
        let mut line = &buf[..nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        self.inline.clear();
        if !split_args(line, &mut self.inline) {
            return err("unbalanced quotes in request");
        }
        self.finish(Kind::Inline);
        Ok(Some(nl + 1))
    }

    /// Number of arguments of the request last completed by `parse`.
    pub fn args_len(&self) -> usize {
        match self.kind {
            Kind::None => 0,
            Kind::Multibulk => self.spans.len(),
            Kind::Inline => self.inline.len(),
        }
    }

    /// Appends the arguments of the request last completed by `parse` to
    /// `out`; `buf` is the buffer that was handed to `parse`.
    pub fn args<'a>(&'a self, buf: &'a [u8], out: &mut impl Extend<&'a [u8]>) {
        match self.kind {
            Kind::None => {}
            Kind::Multibulk => out.extend(self.spans.iter().map(|&(s, e)| &buf[s..e])),
            Kind::Inline => out.extend(self.inline.iter().map(|a| a.as_slice())),
        }
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let cr = buf[i..].iter().position(|&b| b == b'\r')? + i;
        if buf.get(cr + 1) == Some(&b'\n') {
            return Some(cr);
        }
        if cr + 1 >= buf.len() {
            return None;
        }
        i = cr + 1;
    }
    None
}

/// Parses a decimal integer as Redis's `string2ll` does: optional `-`, no
/// `+`, no leading zeros, no spaces.
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// C's `isspace`, which unlike `u8::is_ascii_whitespace` includes `\v`.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits an inline command line the way Redis's `sdssplitargs` does:
/// whitespace-separated words, `"..."` with C-like escapes (`\xHH`, `\n`,
/// ...), `'...'` with only `\'`. A closing quote must be followed by
/// whitespace or the end of the line. Returns false on unbalanced quotes.
/// As in C, a NUL byte ends the line.
pub fn split_args(line: &[u8], out: &mut Vec<Vec<u8>>) -> bool {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && c_isspace(line[i]) {
            i += 1;
        }
        if i >= n {
            return true;
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    cur.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !c_isspace(line[i + 1]) {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !c_isspace(line[i + 1]) {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(n) = p.parse(&input[pos..], &Limits::default())? {
            let mut args = Vec::new();
            p.args(&input[pos..], &mut args);
            if !args.is_empty() {
                out.push(args.iter().map(|a| a.to_vec()).collect());
            }
            pos += n;
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let got = parse_all(b"*2\r\n$4\r\necho\r\n$2\r\nhi\r\nPING x\r\n\r\n*0\r\n").unwrap();
        assert_eq!(
            got,
            vec![
                vec![b"echo".to_vec(), b"hi".to_vec()],
                vec![b"PING".to_vec(), b"x".to_vec()]
            ]
        );
    }

    #[test]
    fn errors_use_redis_texts() {
        let cases: &[(&[u8], &str)] = &[
            (b"*3000000000\r\n", "invalid multibulk length"),
            (b"*2\r\n:1\r\n", "expected '$', got ':'"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*1\r\n$600000000\r\n", "invalid bulk length"),
            (b"set a \"b\r\n", "unbalanced quotes in request"),
            (b"set 'a'b c\r\n", "unbalanced quotes in request"),
        ];
        for (input, text) in cases {
            assert_eq!(
                parse_all(input),
                Err(ProtocolError(text.to_string())),
                "{input:?}"
            );
        }
    }

    #[test]
    fn inline_escapes() {
        let got = parse_all(b"ECHO \"\\x41\\n\" 'it\\'s'\n").unwrap();
        assert_eq!(
            got,
            vec![vec![b"ECHO".to_vec(), b"A\n".to_vec(), b"it's".to_vec()]]
        );
    }

    /// Behaviours checked against redis-server 7.0.15; the NUL cases were
    /// found by the inline_split fuzz target (a lone NUL looped forever).
    #[test]
    fn inline_like_sdssplitargs() {
        let split = |line: &[u8]| {
            let mut out = Vec::new();
            split_args(line, &mut out).then_some(out)
        };
        assert_eq!(split(b"\0"), Some(vec![]));
        assert_eq!(split(b"a\0b c"), Some(vec![b"a".to_vec()]));
        assert_eq!(split(b"\"a\0\""), None);
        assert_eq!(split(b"\"a\"\0b"), Some(vec![b"a".to_vec()]));
        assert_eq!(split(b"\x0bPING"), Some(vec![b"PING".to_vec()]));
        assert_eq!(split(b"'a'\x0b"), Some(vec![b"a".to_vec()]));
        assert_eq!(split(b"a\x0bb\x0cc"), Some(vec![b"a\x0bb\x0cc".to_vec()]));
        // Redis never sees the end of a line with a NUL before its newline.
        let mut p = RequestParser::new();
        assert_eq!(
            p.parse(b"ECHO a\0b\r\nPING\r\n", &Limits::default()),
            Ok(None)
        );
    }

    #[test]
    fn resumes_without_rescanning() {
        let input = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::new();
        for end in 0..input.len() {
            assert_eq!(p.parse(&input[..end], &Limits::default()), Ok(None));
        }
        assert_eq!(p.parse(input, &Limits::default()), Ok(Some(input.len())));
        assert_eq!(p.args_len(), 2);
    }

    #[test]
    fn unauthenticated_limits() {
        let limits = Limits {
            authenticated: false,
            ..Limits::default()
        };
        let mut p = RequestParser::new();
        assert_eq!(
            p.parse(b"*11\r\n", &limits),
            Err(ProtocolError("unauthenticated multibulk length".into()))
        );
    }
}
